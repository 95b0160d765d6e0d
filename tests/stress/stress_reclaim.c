/* stress_reclaim.c -- allocate 50x a 64 MiB heap limit in short-lived
 * objects of mixed sizes (small, medium, large) and check that the process
 * runs in bounded memory: no allocation fails, and peak RSS stays below
 * the limit plus a fixed allowance for the collector's metadata and the
 * program itself.
 */
#include <cgc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#define LIMIT ((size_t)64 << 20)

static uint64_t rnd(uint64_t *s) { *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17; return *s; }

int main(void) {
  if (cgc_set_heap_limit(LIMIT) != 0) { fprintf(stderr, "FAIL: set limit\n"); return 1; }
  uint64_t seed = 88172645463325252ull;
  size_t total = 0, target = 50 * LIMIT;
  void *keep[256] = {0};                 /* a small live window */
  while (total < target) {
    size_t r = rnd(&seed) % 100, n;
    if (r < 80) n = 16 + rnd(&seed) % 240;
    else if (r < 98) n = 256 + rnd(&seed) % 8000;
    else n = 16384 + rnd(&seed) % (1 << 20);
    void *p = (r & 1) ? cgc_malloc_atomic(n) : cgc_malloc(n);
    if (p == NULL) { fprintf(stderr, "FAIL: allocation of %zu failed after %zu MB\n", n, total >> 20); return 1; }
    memset(p, 0x5a, n < 64 ? n : 64);
    keep[rnd(&seed) % 256] = p;
    total += n;
  }
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  size_t peak = (size_t)ru.ru_maxrss * 1024;
  cgc_stats_t s;
  cgc_get_stats(&s);
  printf("stress_reclaim: allocated %zu MB under a %zu MB limit, %llu collections, peak RSS %.1f MB\n",
         total >> 20, LIMIT >> 20, (unsigned long long)s.collections, peak / 1048576.0);
  if (peak > LIMIT + ((size_t)32 << 20)) { fprintf(stderr, "FAIL: peak RSS above limit + 32 MB\n"); return 1; }
  if (s.collections < 10) { fprintf(stderr, "FAIL: too few collections\n"); return 1; }
  (void)keep;
  return 0;
}
