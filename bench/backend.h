/* backend.h -- the thin layer that lets one benchmark source run on every
 * memory manager we compare.
 *
 * Select exactly one back end at compile time:
 *
 *   -DBACKEND_CGC        cgc (link libcgc.so, -lpthread -ldl -latomic_ops)
 *   -DBACKEND_BOEHM      Debian's bdwgc 8.2.2 as configured by default
 *                        (-lgc); parallel markers start only when the
 *                        program creates its first thread
 *   -DBACKEND_BOEHM_PAR  the same library with GC_start_mark_threads()
 *                        called right after GC_INIT, so single-threaded
 *                        programs mark in parallel too
 *   -DBACKEND_MALLOC     explicit malloc/free.  The same object file is
 *                        linked three ways: plain (glibc), with -lmimalloc
 *                        and with -ljemalloc; both libraries define malloc
 *                        and free and win symbol resolution.  INIT()
 *                        checks with dladdr() which library really serves
 *                        malloc and aborts if it is not the expected one
 *                        (BENCH_EXPECT_MALLOC=glibc|mimalloc|jemalloc).
 *
 * Every benchmark uses only these names:
 *
 *   INIT()            once, first thing in main
 *   ALLOC(n)          n bytes that may hold pointers (zeroed for collectors;
 *                     plain malloc for the malloc back ends)
 *   ALLOC_ATOMIC(n)   n bytes without pointers, not zeroed
 *   FREE(p)           free for malloc back ends, nothing for collectors
 *   COLLECT()         a forced full collection (nothing for mallocs)
 *   GC_OFF(), GC_ON() no collection triggered by allocation in between
 *   THREAD_CREATE(t, fn, arg)  pthread_create that registers with the GC
 *   bk_stats(&s)      collections, pause max / p99, heap bytes
 *   bk_heap_bytes()   heap held by the collector (RSS for mallocs)
 *   bk_clear_stack()  overwrite a band of dead stack (conservative hygiene)
 *
 * Pause measurement.  Boehm: GC_set_on_collection_event; the hook stores
 * clock_gettime(CLOCK_MONOTONIC) at GC_EVENT_START and the difference at
 * GC_EVENT_END into a static array.  The hook runs with the allocator lock
 * held and possibly with the world stopped; it neither allocates nor locks,
 * and clock_gettime is served by the vDSO, so this is safe.  START..END is
 * the whole collection as the collecting thread sees it (stop, mark,
 * finalizer scan, start of the lazy sweep); the lazy sweep itself happens
 * later inside allocation and is not a pause.
 *
 * cgc has no public per-collection event, only cumulative counters
 * (collections, pause_total_ns, pause_max_ns).  ALLOC polls cgc_get_stats
 * every BK_POLL_EVERY allocations per thread; a poll that sees k new
 * collections records k pauses of (delta pause_total)/k.  pause_max is
 * exact (cgc's own), p99 is exact when at most one collection happens
 * between polls and an average of neighbours otherwise.  The countdown that
 * drives polling is compiled into every back end so the wrapper costs the
 * same everywhere; only cgc (and the trace mode below) do work when it hits
 * zero.
 *
 * Trace mode.  With BENCH_TRACE=file.csv in the environment the poll runs
 * on every back end and appends "seconds,heap_bytes,rss_bytes,collections"
 * rows; with BENCH_PAUSELOG=file every recorded pause (ns) is written at
 * exit.  The harness uses these only in separate, untimed runs.
 */
#ifndef BENCH_BACKEND_H
#define BENCH_BACKEND_H

#ifndef _GNU_SOURCE
#  define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(BACKEND_CGC)
#  include "cgc.h"
#  define BACKEND_NAME "cgc"
#  define BACKEND_IS_GC 1
#elif defined(BACKEND_BOEHM) || defined(BACKEND_BOEHM_PAR)
#  define GC_THREADS
#  include <gc/gc.h>
#  ifdef BACKEND_BOEHM_PAR
#    define BACKEND_NAME "boehm-par"
#  else
#    define BACKEND_NAME "boehm"
#  endif
#  define BACKEND_IS_GC 1
#  define BACKEND_BOEHM_ANY 1
#elif defined(BACKEND_MALLOC)
#  include <dlfcn.h>
#  define BACKEND_NAME bk_malloc_name()
#  define BACKEND_IS_GC 0
#else
#  error "define one of BACKEND_CGC, BACKEND_BOEHM, BACKEND_BOEHM_PAR, BACKEND_MALLOC"
#endif

#ifndef BK_POLL_EVERY
#  define BK_POLL_EVERY 4096
#endif
#define BK_MAX_PAUSES (1 << 16)

#if defined(__GNUC__)
#  define BK_UNUSED __attribute__((unused))
#  define BK_NOINLINE __attribute__((noinline))
#  define BK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#  define BK_UNUSED
#  define BK_NOINLINE
#  define BK_UNLIKELY(x) (x)
#endif

typedef struct bk_stats {
  uint64_t collections;
  uint64_t pause_max_ns, pause_p99_ns, pause_total_ns, npauses;
  uint64_t heap_bytes;
} bk_stats_t;

/* ---- shared state ------------------------------------------------------ */

static uint64_t bk_pauses[BK_MAX_PAUSES];
static uint64_t bk_npauses;          /* may exceed BK_MAX_PAUSES */
static uint64_t bk_pause_max, bk_pause_total;
static pthread_mutex_t bk_poll_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *bk_trace;
static double bk_t0;
static __thread int bk_countdown = BK_POLL_EVERY;
static int bk_poll_needed;           /* 1 for cgc or when tracing */

static inline double bk_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static BK_UNUSED uint64_t bk_rss_bytes(void)
{
  long pages = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f) {
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
      resident = 0;
    fclose(f);
  }
  return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

static BK_UNUSED void bk_record_pause(uint64_t ns)
{
  if (bk_npauses < BK_MAX_PAUSES)
    bk_pauses[bk_npauses] = ns;
  bk_npauses++;
  bk_pause_total += ns;
  if (ns > bk_pause_max)
    bk_pause_max = ns;
}

/* ---- back-end specific parts ------------------------------------------- */

#if defined(BACKEND_CGC)

static uint64_t bk_seen_collections, bk_seen_pause_total;

static void bk_poll_stats_locked(void)
{
  cgc_stats_t s;
  cgc_get_stats(&s);
  if (s.collections > bk_seen_collections) {
    uint64_t k = s.collections - bk_seen_collections;
    uint64_t d = s.pause_total_ns - bk_seen_pause_total;
    for (uint64_t i = 0; i < k; i++)
      bk_record_pause(d / k);
    bk_seen_collections = s.collections;
    bk_seen_pause_total = s.pause_total_ns;
  }
  if (s.pause_max_ns > bk_pause_max)
    bk_pause_max = s.pause_max_ns;
}

static inline uint64_t bk_heap_bytes(void)
{
  cgc_stats_t s;
  cgc_get_stats(&s);
  return s.heap_size;
}
static inline uint64_t bk_collections(void)
{
  cgc_stats_t s;
  cgc_get_stats(&s);
  return s.collections;
}
static void bk_init_backend(void)
{
  cgc_init(NULL);
  bk_poll_needed = 1;
}
#  define BK_ALLOC_RAW(n) cgc_malloc(n)
#  define BK_ALLOC_ATOMIC_RAW(n) cgc_malloc_atomic(n)
#  define FREE(p) ((void)(p))
#  define COLLECT() cgc_collect()
#  define GC_OFF() cgc_disable()
#  define GC_ON() cgc_enable()
#  define THREAD_CREATE(t, fn, arg) cgc_pthread_create((t), NULL, (fn), (arg))

#elif defined(BACKEND_BOEHM_ANY)

static double bk_gc_start;
static void GC_CALLBACK bk_on_gc_event(GC_EventType e)
{
  /* allocator lock held, maybe world stopped: no allocation, no locks */
  if (e == GC_EVENT_START)
    bk_gc_start = bk_now();
  else if (e == GC_EVENT_END)
    bk_record_pause((uint64_t)((bk_now() - bk_gc_start) * 1e9));
}
static void bk_poll_stats_locked(void) {}
static inline uint64_t bk_heap_bytes(void) { return GC_get_heap_size(); }
static inline uint64_t bk_collections(void) { return GC_get_gc_no(); }
static void bk_init_backend(void)
{
  GC_INIT();
  GC_set_on_collection_event(bk_on_gc_event);
#  ifdef BACKEND_BOEHM_PAR
  GC_start_mark_threads();
#  endif
}
#  define BK_ALLOC_RAW(n) GC_MALLOC(n)
#  define BK_ALLOC_ATOMIC_RAW(n) GC_MALLOC_ATOMIC(n)
#  define FREE(p) ((void)(p))
#  define COLLECT() GC_gcollect()
#  define GC_OFF() GC_disable()
#  define GC_ON() GC_enable()
#  define THREAD_CREATE(t, fn, arg) GC_pthread_create((t), NULL, (fn), (arg))

#else /* BACKEND_MALLOC */

static void bk_poll_stats_locked(void) {}
static inline uint64_t bk_heap_bytes(void) { return bk_rss_bytes(); }
static inline const char *bk_malloc_name(void)
{
  const char *n = getenv("BENCH_EXPECT_MALLOC");
  return n ? n : "malloc";
}
static inline uint64_t bk_collections(void) { return 0; }
static void bk_init_backend(void)
{
  /* Check which library serves malloc: linking -lmimalloc/-ljemalloc
   * must really replace glibc's malloc, or the numbers are mislabelled. */
  const char *want = getenv("BENCH_EXPECT_MALLOC");
  Dl_info info;
  void *(*volatile fn)(size_t) = malloc;
  const char *lib = "?";
  if (dladdr((void *)fn, &info) && info.dli_fname)
    lib = info.dli_fname;
  if (want && strcmp(want, "glibc") != 0 && !strstr(lib, want)) {
    fprintf(stderr, "backend: malloc comes from %s, expected %s\n", lib, want);
    exit(2);
  }
  if (want && strcmp(want, "glibc") == 0 && !strstr(lib, "libc.so")) {
    fprintf(stderr, "backend: malloc comes from %s, expected glibc\n", lib);
    exit(2);
  }
}
#  define BK_ALLOC_RAW(n) malloc(n)
#  define BK_ALLOC_ATOMIC_RAW(n) malloc(n)
#  define FREE(p) free(p)
#  define COLLECT() ((void)0)
#  define GC_OFF() ((void)0)
#  define GC_ON() ((void)0)
#  define THREAD_CREATE(t, fn, arg) pthread_create((t), NULL, (fn), (arg))

#endif

/* ---- polling, tracing, allocation wrappers ------------------------------ */

static BK_NOINLINE void bk_poll(void)
{
  bk_countdown = BK_POLL_EVERY;
  if (!bk_poll_needed)
    return;
  pthread_mutex_lock(&bk_poll_lock);
  bk_poll_stats_locked();
  if (bk_trace)
    fprintf(bk_trace, "%.6f,%llu,%llu,%llu\n", bk_now() - bk_t0,
            (unsigned long long)bk_heap_bytes(),
            (unsigned long long)bk_rss_bytes(),
            (unsigned long long)bk_collections());
  pthread_mutex_unlock(&bk_poll_lock);
}

static inline void *bk_check(void *p, size_t n)
{
  if (BK_UNLIKELY(p == NULL)) {
    fprintf(stderr, "backend %s: allocation of %zu bytes failed\n",
            BACKEND_NAME, n);
    abort();
  }
  if (BK_UNLIKELY(--bk_countdown <= 0))
    bk_poll();
  return p;
}

#define ALLOC(n) bk_check(BK_ALLOC_RAW(n), (n))
#define ALLOC_ATOMIC(n) bk_check(BK_ALLOC_ATOMIC_RAW(n), (n))

static int bk_cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static BK_UNUSED void bk_stats(bk_stats_t *out)
{
  pthread_mutex_lock(&bk_poll_lock);
  bk_poll_stats_locked();
  uint64_t n = bk_npauses < BK_MAX_PAUSES ? bk_npauses : BK_MAX_PAUSES;
  uint64_t p99 = 0;
  if (n > 0) {
    uint64_t *tmp = malloc(n * sizeof *tmp);
    if (tmp) {
      memcpy(tmp, bk_pauses, n * sizeof *tmp);
      qsort(tmp, n, sizeof *tmp, bk_cmp_u64);
      uint64_t idx = (n * 99 + 99) / 100;   /* ceil(0.99 n), 1-based */
      p99 = tmp[(idx ? idx : 1) - 1];
      free(tmp);
    }
  }
  out->collections = bk_collections();
  out->pause_max_ns = bk_pause_max;
  out->pause_p99_ns = p99;
  out->pause_total_ns = bk_pause_total;
  out->npauses = bk_npauses;
  out->heap_bytes = bk_heap_bytes();
  pthread_mutex_unlock(&bk_poll_lock);
}

static void bk_write_pauselog(void)
{
  const char *path = getenv("BENCH_PAUSELOG");
  if (!path)
    return;
  FILE *f = fopen(path, "w");
  if (!f)
    return;
  uint64_t n = bk_npauses < BK_MAX_PAUSES ? bk_npauses : BK_MAX_PAUSES;
  for (uint64_t i = 0; i < n; i++)
    fprintf(f, "%llu\n", (unsigned long long)bk_pauses[i]);
  fclose(f);
}

static BK_UNUSED void bk_finish(void)
{
  pthread_mutex_lock(&bk_poll_lock);
  bk_poll_stats_locked();
  pthread_mutex_unlock(&bk_poll_lock);
  bk_write_pauselog();
  if (bk_trace) {
    fclose(bk_trace);
    bk_trace = NULL;
  }
}

static BK_UNUSED void bk_init(void)
{
  const char *tr = getenv("BENCH_TRACE");
  bk_t0 = bk_now();
  bk_init_backend();
  if (tr) {
    bk_trace = fopen(tr, "w");
    if (bk_trace) {
      fprintf(bk_trace, "seconds,heap_bytes,rss_bytes,collections\n");
      bk_poll_needed = 1;
    }
  }
}
#define INIT() bk_init()

/* bk_clear_stack -- overwrite a band of stack below the caller so stale
 * pointer copies in dead frames do not keep objects alive. */
static BK_NOINLINE BK_UNUSED void bk_clear_stack(void)
{
#if defined(BACKEND_CGC)
  cgc_debug_scrub_stack();
#else
  volatile char band[64 * 1024];
  memset((char *)band, 0, sizeof band);
  __asm__ __volatile__("" : : "r"(band) : "memory");
#endif
}

#endif /* BENCH_BACKEND_H */
