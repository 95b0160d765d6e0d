#!/usr/bin/env bash
# plots.sh -- draw the report's PNG plots with gnuplot from the files a
# bench/run invocation left in $OUT:
#   ratios.png  median time / Boehm median, per benchmark and back end
#               (from ratios.dat, written by report.awk)
#   pauses.png  distribution of collection pauses in binary-trees depth 18
#               (from pauses-bt18-BE.txt, one pause in ns per line)
#   heap.png    heap size over time in GCBench (from heap-gcbench-BE.csv;
#               collectors: heap held, mallocs: resident set)
# Called by bench/run with OUT and BACKS set.
set -u
cd "$OUT" || exit 1

if [ -f ratios.dat ] && [ "$(wc -l <ratios.dat)" -gt 1 ]; then
  ncol=$(head -1 ratios.dat | wc -w)
  gnuplot <<EOF
set terminal pngcairo size 1100,520 font "sans,10"
set output "ratios.png"
set title "time relative to Boehm (median; lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set datafile missing "-"
set key outside right top
set xtics rotate by -35
set ylabel "time / Boehm time"
set grid ytics
set yrange [0:*]
plot for [c=2:$ncol] "ratios.dat" using c:xtic(1) title columnheader(c)
EOF
fi

plot=""
for be in cgc boehm boehm-par; do
  f="pauses-bt18-$be.txt"
  [ -s "$f" ] || continue
  sort -n "$f" | awk -v n="$(wc -l <"$f")" '{ printf "%.2f %.4f\n", 100 * NR / n, $1 / 1e6 }' >"pcdf-$be.dat"
  plot="$plot${plot:+, }\"pcdf-$be.dat\" using 1:2 with steps lw 2 title \"$be\""
done
if [ -n "$plot" ]; then
  gnuplot <<EOF
set terminal pngcairo size 900,520 font "sans,10"
set output "pauses.png"
set title "collection pauses, binary-trees depth 18 (sorted)"
set xlabel "percentile of collections"
set ylabel "pause (ms)"
set grid
set key left top
plot $plot
EOF
fi

plot=""
for be in $BACKS; do
  f="heap-gcbench-$be.csv"
  [ -s "$f" ] || continue
  plot="$plot${plot:+, }\"$f\" using 1:(\$2/1048576) with lines lw 2 title \"$be\""
done
if [ -n "$plot" ]; then
  gnuplot <<EOF
set terminal pngcairo size 900,520 font "sans,10"
set output "heap.png"
set title "GCBench: heap over time (collectors: heap held; mallocs: RSS)"
set datafile separator ","
set xlabel "seconds"
set ylabel "MiB"
set grid
set key right bottom
plot $plot
EOF
fi
exit 0
