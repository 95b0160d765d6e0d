"""measure.py -- the measuring loop of bench/preload/run (see there).

Runs every (program, configuration) pair REPS times, interleaved, through
`bash -c SNIPPET` with D, T and RUN set as tests/shim/workloads.sh
describes; records wall time and the peak RSS that wait4 reports for the
whole workload; checks stdout against glibc; prints markdown.
"""
import argparse, math, os, shutil, statistics, subprocess, sys, tempfile, time


def run_once(snippet, run_prefix, indir):
    tmp = tempfile.mkdtemp(prefix="cgc-bench-run.")
    env = dict(os.environ, D=indir, T=tmp, RUN=run_prefix)
    env.pop("LD_PRELOAD", None)
    start = time.perf_counter()
    proc = subprocess.Popen(["bash", "-c", "set -o pipefail; " + snippet], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read()
    _, status, ru = os.wait4(proc.pid, 0)
    secs = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    shutil.rmtree(tmp, ignore_errors=True)
    return secs, ru.ru_maxrss, out, proc.returncode


def geomean(xs):
    xs = [x for x in xs if x and x > 0]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--scale", default="bench")
    ap.add_argument("--programs", required=True)
    ap.add_argument("--configs", required=True)
    a = ap.parse_args()
    programs = a.programs.split()
    configs = []
    for c in a.configs.split("|"):
        name, _, prefix = c.partition("=")
        configs.append((name.strip(), prefix.strip()))
    indir = os.path.join(a.dir, "in")
    snippets = {p: open(os.path.join(a.dir, "cmd." + p)).read().strip() for p in programs}

    times = {(p, c): [] for p in programs for c, _ in configs}
    rss = {(p, c): [] for p in programs for c, _ in configs}
    ref = {}
    bad = {}
    for r in range(a.reps):
        for p in programs:
            for c, prefix in configs:
                secs, maxrss, out, rc = run_once(snippets[p], prefix, indir)
                times[(p, c)].append(secs)
                rss[(p, c)].append(maxrss)
                key = (out, rc)
                if c == "glibc" and p not in ref:
                    ref[p] = key
                elif p in ref and key != ref[p]:
                    bad.setdefault((p, c), 0)
                    bad[(p, c)] += 1
            print("round %d/%d: %s done" % (r + 1, a.reps, p), file=sys.stderr)

    names = [c for c, _ in configs]
    med_t = {k: statistics.median(v) for k, v in times.items()}
    med_m = {k: statistics.median(v) for k, v in rss.items()}
    print("### Real programs with each malloc (LD_PRELOAD)\n")
    print("%d repetitions, interleaved, %s scale; median wall time and median peak RSS "
          "(largest process), as ratios to glibc (glibc column: seconds / MiB). "
          "`!` marks a configuration whose output or exit status differed from glibc's.\n"
          % (a.reps, a.scale))
    for title, med, fmt in (("Time", med_t, "%.2fs"), ("Peak RSS", med_m, "%.0f MiB")):
        print("**%s**\n" % title)
        print("| program | " + " | ".join(names) + " |")
        print("|---|" + "---:|" * len(names))
        ratios = {c: [] for c in names}
        for p in programs:
            base = med[(p, "glibc")]
            cells = []
            for c in names:
                v = med[(p, c)]
                if c == "glibc":
                    cells.append(fmt % (v / 1024.0 if title == "Peak RSS" else v))
                    continue
                ratio = v / base if base else float("nan")
                ratios[c].append(ratio)
                cells.append("%.2f%s" % (ratio, "!" if (p, c) in bad else ""))
            print("| %s | %s |" % (p, " | ".join(cells)))
        print("| **geomean** | 1.00 | " + " | ".join("**%.2f**" % geomean(ratios[c]) for c in names[1:]) + " |")
        print()
    if bad:
        print("Output mismatches: " + ", ".join("%s/%s (%d)" % (p, c, n) for (p, c), n in sorted(bad.items())))
    else:
        print("Every run printed the same output and exit status as glibc.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
