/* alloc.c -- allocation micro-benchmark, written for this suite.
 *
 * For each size 16, 32, ..., 4096 bytes: allocate N objects (N chosen so
 * each size moves the same number of bytes, between 64 Ki and 4 Mi
 * objects), write the first and last word of each, and keep only a window
 * of the last 1024: the object pushed out of the window is freed (malloc
 * back ends) or dropped (collectors).  So the cost per allocation includes
 * the amortized cost of getting the memory back -- free() for mallocs, a
 * collection over a small live set for collectors -- which is what a
 * program that allocates short-lived objects pays.
 *
 * Collectors return zeroed, scanned memory (ALLOC); mallocs return
 * uninitialized memory.  That difference is part of what is measured.
 *
 * --threads N runs the same loop in N threads at once; ns/alloc is then
 * wall time divided by the allocations of one thread (perfect scaling
 * shows the single-thread number).
 *
 * usage: alloc [--threads 1] [--mbytes 256]
 */
#include "common.h"

enum { WINDOW = 1024, NSIZES = 9 };
static const size_t sizes[NSIZES] = { 16, 32, 64, 128, 256, 512, 1024, 2048, 4096 };
static long mbytes = 256;

static long count_for(size_t size)
{
  long n = (long)((size_t)mbytes * 1048576 / size);
  long lo = 65536 * mbytes / 256, hi = 4194304L * mbytes / 256;
  if (lo < 1024) lo = 1024;
  if (n < lo) n = lo;
  if (n > hi) n = hi;
  return n;
}

typedef struct { size_t size; long n; uint64_t sum; } job_t;

static void *run(void *arg)
{
  job_t *j = arg;
  void **win = ALLOC(sizeof(void *) * WINDOW);
  memset(win, 0, sizeof(void *) * WINDOW);
  uint64_t sum = 0;
  for (long i = 0; i < j->n; i++) {
    long *p = ALLOC(j->size);
    p[0] = i;
    p[j->size / sizeof(long) - 1] = i;
    void **slot = &win[i & (WINDOW - 1)];
    if (*slot) {
      sum += (uint64_t)((long *)*slot)[0];
      FREE(*slot);
    }
    *slot = p;
  }
  for (int i = 0; i < WINDOW; i++) {
    if (win[i])
      sum += (uint64_t)((long *)win[i])[0];
    FREE(win[i]);
  }
  FREE(win);
  j->sum = sum;
  return NULL;
}

int main(int argc, char **argv)
{
  int nthreads = (int)bench_arg(argc, argv, "threads", 1);
  mbytes = bench_arg(argc, argv, "mbytes", 256);
  if (nthreads < 1) nthreads = 1;
  if (nthreads > 16) nthreads = 16;
  double ns[NSIZES];
  int ok = 1;

  INIT();
  double t0 = bk_now();
  for (int s = 0; s < NSIZES; s++) {
    job_t jobs[16];
    pthread_t th[16];
    long n = count_for(sizes[s]);
    uint64_t want = (uint64_t)n * (uint64_t)(n - 1) / 2;
    double t = bk_now();
    for (int i = 0; i < nthreads; i++) {
      jobs[i].size = sizes[s];
      jobs[i].n = n;
      if (nthreads == 1)
        run(&jobs[i]);
      else if (THREAD_CREATE(&th[i], run, &jobs[i]) != 0)
        return 1;
    }
    if (nthreads > 1)
      for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    ns[s] = (bk_now() - t) * 1e9 / (double)n;
    for (int i = 0; i < nthreads; i++)
      ok &= jobs[i].sum == want;
  }
  double secs = bk_now() - t0;

  char extra[512];
  int len = 0;
  for (int s = 0; s < NSIZES; s++)
    len += snprintf(extra + len, sizeof extra - (size_t)len, " ns_%zu=%.1f",
                    sizes[s], ns[s]);
  char name[32];
  snprintf(name, sizeof name, nthreads == 1 ? "alloc" : "alloc-mt%d", nthreads);
  bench_result(name, secs, ok, "%s", extra);
  return ok ? 0 : 1;
}
