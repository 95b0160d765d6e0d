/* common.h -- helpers shared by the benchmarks: argument parsing, a small
 * PRNG, and the one-line result record the harness (bench/run) parses.
 *
 * Result record, one line on stdout:
 *   RESULT bench=NAME backend=BE time_s=T rss_kb=K gcs=N pause_max_ms=M
 *          pause_p99_ms=P heap_mb=H check=ok|FAIL [extra key=value ...]
 * time_s is wall time of the measured part; rss_kb is the peak resident set
 * of the whole process (getrusage ru_maxrss, all threads).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include "backend.h"
#include <stdarg.h>
#include <sys/resource.h>

/* KEEP_ALIVE -- make P look used here, so it stays a root until this point. */
#define KEEP_ALIVE(p) __asm__ __volatile__("" : : "g"(p) : "memory")

static BK_UNUSED long bench_peak_rss_kb(void)
{
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* bench_result -- print the RESULT line; EXTRA is a printf format for
 * additional " key=value" fields (may be ""). */
static BK_UNUSED void bench_result(const char *bench, double secs, int ok,
                                   const char *extra, ...)
{
  bk_stats_t s;
  bk_stats(&s);
  bk_finish();
  printf("RESULT bench=%s backend=%s time_s=%.6f rss_kb=%ld gcs=%llu "
         "pause_max_ms=%.3f pause_p99_ms=%.3f pauses=%llu heap_mb=%.1f "
         "check=%s",
         bench, BACKEND_NAME, secs, bench_peak_rss_kb(),
         (unsigned long long)s.collections, (double)s.pause_max_ns / 1e6,
         (double)s.pause_p99_ns / 1e6, (unsigned long long)s.npauses,
         (double)s.heap_bytes / 1048576.0, ok ? "ok" : "FAIL");
  if (extra && *extra) {
    va_list ap;
    va_start(ap, extra);
    vprintf(extra, ap);
    va_end(ap);
  }
  printf("\n");
  fflush(stdout);
}

/* xorshift64* -- deterministic, seedable, good enough for shapes. */
typedef struct { uint64_t s; } bench_rng_t;
static inline uint64_t bench_rand(bench_rng_t *r)
{
  uint64_t x = r->s;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  r->s = x;
  return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t bench_rand_below(bench_rng_t *r, uint64_t n)
{
  return bench_rand(r) % n;
}

/* bench_arg -- the value after "--NAME" in argv, or DEF. */
static BK_UNUSED long bench_arg(int argc, char **argv, const char *name,
                                long def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (argv[i][0] == '-' && argv[i][1] == '-' && !strcmp(argv[i] + 2, name))
      return strtol(argv[i + 1], NULL, 0);
  return def;
}

static BK_UNUSED const char *bench_arg_str(int argc, char **argv,
                                           const char *name, const char *def)
{
  for (int i = 1; i + 1 < argc; i++)
    if (argv[i][0] == '-' && argv[i][1] == '-' && !strcmp(argv[i] + 2, name))
      return argv[i + 1];
  return def;
}

#endif /* BENCH_COMMON_H */
