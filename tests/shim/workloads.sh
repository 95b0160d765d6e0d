# workloads.sh -- deterministic workloads of real Debian programs, shared
# by tests/shim/real_programs.sh (correctness under every mode) and
# bench/preload/run (timing).  Source it; then:
#
#   wl_setup DIR SCALE      make the inputs in DIR (SCALE: test or bench)
#   wl_cmd NAME             print the shell snippet of workload NAME
#   WL_NAMES                the workload names
#   wl_packages NAME        Debian packages the workload needs
#
# A snippet runs under `bash -c` with D (the input dir), T (a fresh scratch
# dir) and RUN (a command prefix, e.g. "env LD_PRELOAD=... CGC_MODE=safe",
# or empty for plain glibc) in the environment.  It prints a result that
# must not depend on the allocator: checksums and counts, never times or
# addresses.  Every program of interest is started through $RUN, and so
# are its children (LD_PRELOAD is inherited).

WL_NAMES="python3 perl sqlite3 xz gzip sort git make gcc gawk jq tclsh bash"

wl_packages() {
  case $1 in
    python3) echo python3 ;;
    perl) echo perl ;;
    sqlite3) echo sqlite3 ;;
    xz) echo xz-utils ;;
    gzip) echo gzip ;;
    sort) echo coreutils ;;
    git) echo git ;;
    make) echo "make gcc" ;;
    gcc) echo gcc ;;
    gawk) echo gawk ;;
    jq) echo jq ;;
    tclsh) echo tcl ;;
    bash) echo bash ;;
  esac
}

wl_binary() {
  case $1 in
    tclsh) echo tclsh ;;
    make) echo make ;;
    *) echo "$1" ;;
  esac
}

# wl_setup DIR SCALE -- inputs; run without any preload.
wl_setup() {
  local d=$1 scale=$2 n
  case $scale in
    bench) n=2 ;;
    *) n=1 ;;
  esac
  mkdir -p "$d"
  echo "$n" > "$d/scale"
  env -u LD_PRELOAD python3 - "$d" "$n" <<'PY'
import json, os, random, sys
d, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(20240601)
words = ["".join(rnd.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rnd.randint(2, 9)))
         for _ in range(5000)]
with open(os.path.join(d, "text"), "w") as f:
    for i in range(40000 * n):
        f.write(" ".join(rnd.choice(words) for _ in range(rnd.randint(3, 14))) + "\n")
with open(os.path.join(d, "lines"), "w") as f:
    for i in range(150000 * n):
        f.write("%d %s %s\n" % (rnd.randint(0, 10**6), rnd.choice(words), rnd.choice(words)))
with open(os.path.join(d, "data.json"), "w") as f:
    json.dump([{"name": rnd.choice(words) + str(i), "v": rnd.randint(0, 10**6),
                "tags": [rnd.choice(words) for _ in range(rnd.randint(0, 5))]}
               for i in range(30000 * n)], f)
# A C file big enough to make cc1 allocate.
with open(os.path.join(d, "big.c"), "w") as f:
    for i in range(60 * n):
        f.write("struct s%d { int a, b; double c; struct s%d *next; };\n" % (i, i))
        f.write("int f%d(int x, struct s%d *p) {\n  int acc = %d;\n" % (i, i, i))
        f.write("  for (int k = 0; k < x; k++) {\n")
        f.write("    switch ((k * %d) %% 7) {\n" % (i + 3))
        for c in range(7):
            f.write("    case %d: acc += k * %d + (p ? p->a : 0); break;\n" % (c, rnd.randint(1, 99)))
        f.write("    }\n    if (acc > %d) acc ^= x << 3;\n  }\n  return acc;\n}\n" % rnd.randint(1000, 9999))
# A makefile with many small recipes and a few compiles.
os.makedirs(os.path.join(d, "mk"), exist_ok=True)
with open(os.path.join(d, "mk", "Makefile"), "w") as f:
    t = ["t%d.out" % i for i in range(30 * n)]
    objs = ["c%d.o" % i for i in range(6)]
    f.write("all: %s %s\n\techo done\n" % (" ".join(t), " ".join(objs)))
    for i, x in enumerate(t):
        f.write("%s:\n\techo %s $$(( %d * 7 )) > $@\n\tcat $@ | tr a-z A-Z >> $@\n" % (x, x, i))
    for i, o in enumerate(objs):
        f.write("%s:\n\tprintf 'int g%d(int x){return x*%d;}\\n' > c%d.c\n\tgcc -O2 -c c%d.c -o $@\n" % (o, i, i + 2, i, i))
PY
  cat > "$d/work.py" <<'PY'
import array, bz2, ctypes, decimal, hashlib, json, lzma, re, sqlite3, sys, threading, zlib
n = int(sys.argv[1])
text = open(sys.argv[2]).read()
counts = {}
for w in re.findall(r"[a-z]+", text):
    counts[w] = counts.get(w, 0) + 1
top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
print("words", len(counts), top)
data = json.load(open(sys.argv[3]))
print("json", len(data), sum(x["v"] for x in data) % 1000003, len(json.dumps(data)))
print("zlib", zlib.crc32(zlib.compress(text.encode(), 6)), "bz2", len(bz2.compress(text[:200000].encode())))
print("lzma", hashlib.sha256(lzma.compress(text[:300000].encode())).hexdigest()[:16])
decimal.getcontext().prec = 50
print("decimal", sum(decimal.Decimal(i) / 7 for i in range(2000 * n)))
db = sqlite3.connect(":memory:")
db.execute("create table t(k, v)")
db.executemany("insert into t values(?, ?)", ((x["name"], x["v"]) for x in data))
print("sqlite", db.execute("select count(*), sum(v) % 9973 from t where v % 2 = 0").fetchone())
# growing buffers: large reallocs
buf = bytearray()
for i in range(200 * n):
    buf += bytes([i % 251]) * 100000
print("bytearray", len(buf), zlib.crc32(buf))
a = array.array("d")
for i in range(300000 * n):
    a.append(i * 0.5)
print("array", len(a), sum(a))
# threads
res = [0] * 4
def work(k):
    res[k] = sum(len(str(i)) for i in range(50000 * n))
ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
print("threads", res)
# the aligned allocation functions, called through ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = libc.aligned_alloc.restype = libc.memalign.restype = ctypes.c_void_p
libc.aligned_alloc.argtypes = libc.memalign.argtypes = [ctypes.c_size_t, ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.malloc_usable_size.argtypes = [ctypes.c_void_p]
libc.malloc_usable_size.restype = ctypes.c_size_t
ok = 0
for align in (16, 64, 256, 4096, 65536):
    p = ctypes.c_void_p()
    r = libc.posix_memalign(ctypes.byref(p), ctypes.c_size_t(align), ctypes.c_size_t(1000))
    q = libc.aligned_alloc(align, align * 4)
    m = libc.memalign(align, 3000)
    ok += r == 0 and p.value % align == 0 and q % align == 0 and m % align == 0
    ok += libc.malloc_usable_size(m) >= 3000
    ctypes.memset(p, 1, 1000); ctypes.memset(q, 2, align * 4); ctypes.memset(m, 3, 3000)
    libc.free(p); libc.free(q); libc.free(m)
print("aligned", ok)
PY
  cat > "$d/work.pl" <<'PL'
use strict; use warnings;
my ($n, $file) = @ARGV;
my (%c, @lines);
open(my $fh, "<", $file) or die;
while (my $l = <$fh>) { chomp $l; push @lines, $l; $c{$_}++ for split / /, $l; }
my @top = (sort { $c{$b} <=> $c{$a} || $a cmp $b } keys %c)[0..4];
print "words ", scalar(keys %c), " @top\n";
my @s = sort { length($a) <=> length($b) || $a cmp $b } @lines;
print "longest ", length($s[-1]), " first '$s[0]'\n";
my $acc = 0;
for my $i (1 .. 20000 * $n) { my $str = sprintf("%08d-%s", $i, "x" x ($i % 50)); $acc += length($str); $acc %= 1000003; }
print "acc $acc\n";
my %h; $h{$_ % 1000}{$_} = [$_ .. $_ + 5] for 1 .. 30000 * $n;
my $t = 0; $t += scalar(keys %{$h{$_}}) for keys %h;
print "nested $t\n";
(my $joined = join(",", @lines[0..999])) =~ s/([aeiou])/uc $1/ge;
print "subst ", length($joined), "\n";
PL
  cat > "$d/work.sql" <<SQL
create table t(id integer primary key, k text, v integer);
with recursive c(x) as (select 1 union all select x + 1 from c where x < $((60000 * n)))
insert into t(k, v) select 'key' || (x * 7919 % 1000), x * 104729 % 1000003 from c;
create index tk on t(k);
select count(*), sum(v) % 9973 from t;
select k, count(*), max(v) from t group by k order by count(*) desc, k limit 5;
select count(*) from t a join t b on a.k = b.k and a.id < b.id where a.id < 3000;
select group_concat(k, '') is not null, length(group_concat(k, '')) from (select k from t order by v limit 5000);
SQL
  cat > "$d/work.tcl" <<'TCL'
set n [lindex $argv 0]
set f [open [lindex $argv 1]]; set text [read $f]; close $f
foreach w [split $text " \n"] { if {$w ne ""} { dict incr counts $w } }
puts "words [dict size $counts]"
set l {}
for {set i 0} {$i < 100000 * $n} {incr i} { lappend l [expr {($i * 7919) % 100003}] }
set s [lsort -integer $l]
puts "sorted [lindex $s 0] [lindex $s end] [llength $s]"
set str ""
for {set i 0} {$i < 20000 * $n} {incr i} { append str [format %05d $i] }
puts "string [string length $str] [string first 19999 $str]"
array set a {}
for {set i 0} {$i < 50000 * $n} {incr i} { set a($i) [list $i [expr {$i * 2}]] }
puts "array [array size a]"
TCL
  cat > "$d/work.sh" <<'SH'
n=$1
declare -A cnt
words=()
while read -r -a ws; do
  for w in "${ws[@]}"; do cnt[$w]=$(( ${cnt[$w]:-0} + 1 )); done
  words+=("${ws[0]}")
done < <(head -n $((1500 * n)) "$2")
echo "distinct ${#cnt[@]} lines ${#words[@]}"
s=""
for ((i = 0; i < 5000 * n; i++)); do s+="${words[i % ${#words[@]}]}"; done
echo "concat ${#s}"
t=0
for ((i = 0; i < 20 * n; i++)); do x=$(echo "$i" | tr 0-9 a-j); t=$(( t + ${#x} )); done
echo "subshells $t"
up=${s^^}; echo "upper ${up:0:20}"
SH
}

# wl_cmd NAME -- the snippet for workload NAME.
wl_cmd() {
  case $1 in
    python3) echo '$RUN python3 "$D/work.py" "$(cat "$D/scale")" "$D/text" "$D/data.json"' ;;
    perl) echo '$RUN perl "$D/work.pl" "$(cat "$D/scale")" "$D/text"' ;;
    sqlite3) echo '$RUN sqlite3 :memory: < "$D/work.sql"' ;;
    xz) echo '$RUN xz -T2 --block-size=262144 -6 -c "$D/text" > "$T/t.xz" && md5sum < "$T/t.xz" && $RUN xz -T2 -dc "$T/t.xz" | md5sum' ;;
    gzip) echo '$RUN gzip -6 -c "$D/lines" > "$T/l.gz" && md5sum < "$T/l.gz" && $RUN gzip -dc "$T/l.gz" | md5sum' ;;
    sort) echo '$RUN sort --parallel=2 -S 8M -T "$T" -k2,2 -k1,1n "$D/lines" | md5sum; $RUN sort -u "$D/text" | wc -l' ;;
    git) echo 'cd "$T" && export HOME="$T" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=a GIT_AUTHOR_EMAIL=a@b GIT_COMMITTER_NAME=a GIT_COMMITTER_EMAIL=a@b GIT_AUTHOR_DATE="2020-01-01T00:00:00Z" GIT_COMMITTER_DATE="2020-01-01T00:00:00Z" && $RUN git init -q -b main r && cd r && split -l 2000 "$D/text" part && $RUN git add . && $RUN git commit -qm one && sed -i s/a/A/ partaa && $RUN git commit -qam two && $RUN git log --format=%H%n%s && $RUN git gc -q && $RUN git count-objects -v | grep -E "^(count|in-pack)" && $RUN git diff HEAD~1 --stat | tail -1' ;;
    make) echo 'cp -r "$D/mk" "$T/mk" && cd "$T/mk" && $RUN make -s -j2 | sort | md5sum && cat t*.out | md5sum' ;;
    gcc) echo '$RUN gcc -O2 -S -o - "$D/big.c" | md5sum' ;;
    gawk) echo '$RUN gawk '\''{ for (i = 1; i <= NF; i++) c[$i]++; l[NR] = $0 } END { n = asorti(c, k); for (i = 1; i <= n; i += 499) print k[i], c[k[i]]; print NR, length(l) }'\'' "$D/text"' ;;
    jq) echo '$RUN jq -c '\''[.[] | select(.v % 3 == 0) | {k: .name, s: (.tags | join(","))}] | length, (map(.k) | sort | .[0:3]), (map(.s | length) | add)'\'' "$D/data.json"' ;;
    tclsh) echo '$RUN tclsh "$D/work.tcl" "$(cat "$D/scale")" "$D/text"' ;;
    bash) echo '$RUN bash "$D/work.sh" "$(cat "$D/scale")" "$D/text"' ;;
    *) return 1 ;;
  esac
}

# wl_run NAME DIR RUNPREFIX -- run workload NAME once; stdout is its result.
wl_run() {
  local name=$1 d=$2 run=$3 t rc
  t=$(mktemp -d "${TMPDIR:-/tmp}/cgc-wl.XXXXXX")
  D=$d T=$t RUN=$run bash -c "set -o pipefail; $(wl_cmd "$name")"
  rc=$?
  rm -rf "$t"
  return $rc
}
