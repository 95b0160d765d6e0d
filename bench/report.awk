# report.awk -- turn the raw result lines written by bench/run into the
# markdown tables of the report (or, with -v plotdata=1 -v outdir=DIR, into
# the data files plots.sh draws).  POSIX awk (runs under mawk and gawk).
#
# Input: one line per run,
#   job=NAME be=BACKEND rep=R key=value key=value ...
# rep 0 is the warm-up and is left out of every statistic (but its checks
# still count).  Statistics are medians over repetitions; "min-max" is the
# range of the per-run times.

function med(list,    n, a, i, j, t) {
  n = split(list, a, " ")
  if (n == 0) return ""
  for (i = 2; i <= n; i++)
    for (j = i; j > 1 && a[j] + 0 < a[j - 1] + 0; j--) {
      t = a[j]; a[j] = a[j - 1]; a[j - 1] = t
    }
  return n % 2 ? a[(n + 1) / 2] + 0 : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lo(list,    n, a, i, m) {
  n = split(list, a, " "); m = a[1] + 0
  for (i = 2; i <= n; i++) if (a[i] + 0 < m) m = a[i] + 0
  return m
}
function hi(list,    n, a, i, m) {
  n = split(list, a, " "); m = a[1] + 0
  for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0
  return m
}
function has(job, be, key) { return ((job SUBSEP be SUBSEP key) in V) }
function M(job, be, key) { return has(job, be, key) ? med(V[job, be, key]) : "" }
function f(x, d) { return x == "" ? "-" : sprintf("%." d "f", x) }
function nev(x) { return x == "" ? "-" : (x < 0 ? "never" : f(x, 0)) }
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "" : a / b }
function kind(job) {
  if (job ~ /^alloc/) return "alloc"
  if (job ~ /^finalize-cyc/) return "fincyc"
  if (job ~ /^finalize/) return "fin"
  if (job ~ /^pauses/) return "pauses"
  return "generic"
}

BEGIN {
  nbe = split("cgc boehm boehm-par glibc mimalloc jemalloc machine", BE, " ")
  nsz = split("16 32 64 128 256 512 1024 2048 4096", SZ, " ")
}

{
  delete F
  for (i = 1; i <= NF; i++) {
    eq = index($i, "=")
    if (eq) F[substr($i, 1, eq - 1)] = substr($i, eq + 1)
  }
  job = F["job"]; be = F["be"]; rep = F["rep"]
  if (!(job in SEEN)) { SEEN[job] = 1; JOBS[++njobs] = job }
  SEENBE[job, be] = 1
  if (F["check"] != "ok")
    BAD[++nbad] = job " " be " rep " rep ": check=" F["check"] (("rc" in F) ? " exit " F["rc"] : "")
  else if (F["time_s"] + 0 <= 0)
    BAD[++nbad] = job " " be " rep " rep ": time_s=" F["time_s"]
  if ("digest" in F) {
    if ((job in DIGEST) && DIGEST[job] != F["digest"])
      BAD[++nbad] = job " " be " rep " rep ": digest " F["digest"] " differs from " DIGEST[job]
    DIGEST[job] = F["digest"]
  }
  if (rep == 0 || F["check"] == "CRASH") next
  for (k in F)
    if (k != "job" && k != "be" && k != "rep" && k != "bench" && k != "backend" && k != "check")
      V[job, be, k] = V[job, be, k] (has(job, be, k) ? " " : "") F[k]
}

function generic_table(job,    b, be, t, tb, rb, r) {
  print "### " job
  print ""
  print "| back end | median s | min-max s | time vs Boehm | peak RSS MiB | RSS vs Boehm | GCs | max pause ms | p99 pause ms |"
  print "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  tb = M(job, "boehm", "time_s"); rb = M(job, "boehm", "rss_kb")
  for (b = 1; b <= nbe; b++) {
    be = BE[b]
    if (!has(job, be, "time_s")) {
      if ((job SUBSEP be) in SEENBE) print "| " be " | crashed | | | | | | | |"
      continue
    }
    t = M(job, be, "time_s"); r = M(job, be, "rss_kb")
    gc = (be ~ /^(cgc|boehm)/)
    printf "| %s | %s | %s-%s | %s | %s | %s | %s | %s | %s |\n", be, f(t, 3),
      f(lo(V[job, be, "time_s"]), 3), f(hi(V[job, be, "time_s"]), 3),
      f(ratio(t, tb), 2), f(r / 1024, 1), f(ratio(r, rb), 2),
      gc ? f(M(job, be, "gcs"), 0) : "-",
      gc ? f(M(job, be, "pause_max_ms"), 2) : "-",
      gc ? f(M(job, be, "pause_p99_ms"), 2) : "-"
  }
  print ""
}

function alloc_table(job,    b, be, s, line) {
  print "### " job " (ns per allocation, median)"
  print ""
  line = "| back end |"
  for (s = 1; s <= nsz; s++) line = line " " SZ[s] " B |"
  print line " total s | peak RSS MiB | GCs |"
  line = "|---|"
  for (s = 1; s <= nsz + 3; s++) line = line "---:|"
  print line
  for (b = 1; b <= nbe; b++) {
    be = BE[b]
    if (!has(job, be, "time_s")) continue
    line = "| " be " |"
    for (s = 1; s <= nsz; s++) line = line " " f(M(job, be, "ns_" SZ[s]), 1) " |"
    line = line " " f(M(job, be, "time_s"), 3) " | " f(M(job, be, "rss_kb") / 1024, 1) " | " \
      ((be ~ /^(cgc|boehm)/) ? f(M(job, be, "gcs"), 0) : "-") " |"
    print line
  }
  print ""
}

function fin_tables(    j, job, b, be, any) {
  print "### finalization (objects dropped at once; medians)"
  print ""
  print "Boehm has no cleanups: its `cln` row uses GC_register_finalizer_no_order, the nearest equivalent."
  print ""
  print "| mode | back end | ns per registration | GCs until 99.9% / all callbacks ran | GCs until memory back | callbacks ran | in use before / peak / after MiB | heap after MiB | total s |"
  print "|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for (j = 1; j <= njobs; j++) {
    job = JOBS[j]
    if (kind(job) != "fin") continue
    for (b = 1; b <= nbe; b++) {
      be = BE[b]
      if (!has(job, be, "time_s")) continue
      printf "| %s | %s | %s | %s | %s | %s | %s / %s / %s | %s | %s |\n", substr(job, 10), be,
        job ~ /none/ ? "-" : f(M(job, be, "reg_ns"), 1),
        job ~ /none/ ? "-" : (nev(M(job, be, "gcs_to_999")) " / " nev(M(job, be, "gcs_to_callbacks"))),
        nev(M(job, be, "gcs_to_memory")),
        f(M(job, be, "callbacks_ran"), 0), f(M(job, be, "inuse_before_mb"), 1),
        f(M(job, be, "inuse_peak_mb"), 1), f(M(job, be, "inuse_after_mb"), 1),
        f(M(job, be, "heap_after_mb"), 1), f(M(job, be, "time_s"), 3)
    }
  }
  print ""
  print "2-cycles (pairs a<->b, callbacks on both), after 5 collections:"
  print ""
  print "| mode | back end | objects | callbacks ran | objects reclaimed | total s |"
  print "|---|---|---:|---:|---:|---:|"
  for (j = 1; j <= njobs; j++) {
    job = JOBS[j]
    if (kind(job) != "fincyc") continue
    for (b = 1; b <= nbe; b++) {
      be = BE[b]
      if (!has(job, be, "time_s")) continue
      printf "| %s | %s | %s | %s | %s | %s |\n", substr(job, 10), be,
        f(M(job, be, "objects"), 0), f(M(job, be, "callbacks_ran"), 0),
        f(M(job, be, "reclaimed"), 0), f(M(job, be, "time_s"), 3)
    }
  }
  print ""
}

function pause_table(    j, job, b, be, nm, base, bm, sr) {
  print "### pauses and mark rate (forced full collections on a built heap; medians)"
  print ""
  print "mark rate = live bytes / stop-the-world pause (GB = 1e9 B).  `machine` rows: sequential read of the same nodes and a bare depth-first marker over them (see docs)."
  print ""
  print "| heap | back end | pause ms | COLLECT() ms | mark GB/s | vs Boehm | % of bare marker | peak RSS MiB |"
  print "|---|---|---:|---:|---:|---:|---:|---:|"
  for (j = 1; j <= njobs; j++) {
    job = JOBS[j]
    if (kind(job) != "pauses") continue
    nm = substr(job, 8)
    base = M(job, "boehm", "mark_gbs"); bm = M(job, "machine", "baremark_gbs")
    for (b = 1; b <= nbe; b++) {
      be = BE[b]
      if (!has(job, be, "time_s")) {
        if ((job SUBSEP be) in SEENBE) print "| " nm " | " be " | crashed | | | | | |"
        continue
      }
      if (be == "machine") {
        printf "| %s | machine: seq. read | %s | | %s | %s | | %s |\n", nm,
          f(M(job, be, "seqread_ms"), 1), f(M(job, be, "seqread_gbs"), 2),
          f(ratio(M(job, be, "seqread_gbs"), base), 2), f(M(job, be, "rss_kb") / 1024, 1)
        printf "| %s | machine: bare marker | %s | | %s | %s | 100 | |\n", nm,
          f(M(job, be, "baremark_ms"), 1), f(bm, 2), f(ratio(bm, base), 2)
        continue
      }
      printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", nm, be,
        f(M(job, be, "pause_ms"), 1), f(M(job, be, "collect_ms"), 1),
        f(M(job, be, "mark_gbs"), 2), f(ratio(M(job, be, "mark_gbs"), base), 2),
        f(bm == "" ? "" : 100 * M(job, be, "mark_gbs") / bm, 0),
        f(M(job, be, "rss_kb") / 1024, 1)
    }
  }
  print ""
}

function target(desc, ok, detail) {
  if (ok == "") { printf "| %s | not measured | %s |\n", desc, detail; return }
  printf "| %s | %s | %s |\n", desc, ok ? "met" : "**missed**", detail
}
function tgt_time(job, lim,    t, b, r) {
  t = M(job, "cgc", "time_s"); b = M(job, "boehm", "time_s"); r = ratio(t, b)
  target(job ": cgc time <= " lim " x Boehm", r == "" ? "" : (r <= lim),
    "cgc " f(t, 3) " s, Boehm " f(b, 3) " s, ratio " f(r, 2))
}
function tgt_rss(job, lim,    t, b, r) {
  t = M(job, "cgc", "rss_kb"); b = M(job, "boehm", "rss_kb"); r = ratio(t, b)
  target(job ": cgc peak RSS <= " lim " x Boehm", r == "" ? "" : (r <= lim),
    "cgc " f(t / 1024, 1) " MiB, Boehm " f(b / 1024, 1) " MiB, ratio " f(r, 2))
}
function targets(    t, b, r) {
  print "## Targets"
  print ""
  print "| target | status | numbers |"
  print "|---|---|---|"
  if (mode == "vsboehm" || mode == "full") {
    tgt_time("gcbench", 1.0); tgt_rss("gcbench", 1.3)
    tgt_time("bt18", 1.0); tgt_rss("bt18", 1.3)
  }
  if (mode == "full") {
    tgt_time("gcbench", 0.8); tgt_rss("gcbench", 1.2)
    tgt_time("bt18", 0.8); tgt_rss("bt18", 1.2)
    tgt_time("cycles", 0.8); tgt_rss("cycles", 1.2)
    t = M("pauses-tree-1024", "cgc", "mark_gbs"); b = M("pauses-tree-1024", "boehm", "mark_gbs")
    r = ratio(t, b)
    target("1 GiB tree heap: cgc mark rate >= 2 x Boehm", r == "" ? "" : (r >= 2),
      "cgc " f(t, 2) " GB/s, Boehm " f(b, 2) " GB/s, ratio " f(r, 2))
  }
  print ""
}

END {
  if (plotdata) {
    # ratios.dat: job, then time / Boehm median per back end ("-" = none)
    out = outdir "/ratios.dat"
    printf "job" > out
    for (b = 1; b <= 6; b++) printf " %s", BE[b] > out
    printf "\n" > out
    for (j = 1; j <= njobs; j++) {
      job = JOBS[j]
      if (kind(job) != "generic" && kind(job) != "alloc") continue
      tb = M(job, "boehm", "time_s")
      printf "%s", job > out
      for (b = 1; b <= 6; b++) {
        r = ratio(M(job, BE[b], "time_s"), tb)
        printf " %s", r == "" ? "-" : sprintf("%.3f", r) > out
      }
      printf "\n" > out
    }
    close(out)
    exit
  }
  if (nbad) {
    print "## Failed checks"
    print ""
    for (i = 1; i <= nbad; i++) print "CHECK-FAILED " BAD[i]
    print ""
  }
  if (mode != "quick") targets()
  print "## Results"
  print ""
  for (j = 1; j <= njobs; j++)
    if (kind(JOBS[j]) == "generic") generic_table(JOBS[j])
  for (j = 1; j <= njobs; j++)
    if (kind(JOBS[j]) == "alloc") alloc_table(JOBS[j])
  for (j = 1; j <= njobs; j++)
    if (kind(JOBS[j]) == "fin" || kind(JOBS[j]) == "fincyc") { fin_tables(); break }
  for (j = 1; j <= njobs; j++)
    if (kind(JOBS[j]) == "pauses") { pause_table(); break }
}
