/* finalize.c -- cost of finalization, cgc versus Boehm, written for this
 * suite (the semantics compared are in the project's finalization
 * specification; Boehm's behaviour is described in its finalization docs).
 *
 * Modes (--mode):
 *   fin     N small objects, each with a finalizer, all dropped at once
 *           cgc: cgc_set_finalizer; Boehm: GC_register_finalizer
 *   cln     the same with a cleanup
 *           cgc: cgc_add_cleanup; Boehm has no cleanups: the nearest thing
 *           is GC_register_finalizer_no_order (unordered, but still keeps
 *           the object for one more collection and could resurrect it)
 *   none    the same objects without callbacks (the baseline)
 *   cycfin  P pairs a<->b, both with a finalizer
 *   cyccln  P pairs a<->b, both with a cleanup (Boehm: no_order)
 *
 * For fin/cln/none it reports: ns per registration; collections until
 * 99.9% of the callbacks ran and until every one ran (-1: not within
 * --max-gcs; conservative scanning may keep a few objects); collections until the memory came back (bytes in use
 * back to within 10% of the dropped amount above where it was before the
 * allocation, i.e. at least 90% of it reusable); heap held and bytes in
 * use after that.  For the cycle modes it reports how many callbacks ran
 * and how many objects were reclaimed after 5 collections.
 *
 * Callbacks: cgc runs them on its own threads, we wait with
 * cgc_wait_idle(-1) after each cgc_collect.  Boehm runs in on-demand mode
 * (GC_set_finalize_on_demand(1)) and we call GC_invoke_finalizers() after
 * each GC_gcollect, so the counts are per collection.  "In use" is
 * cgc_stats_t.bytes_live for cgc and GC_get_heap_size() -
 * GC_get_free_bytes() for Boehm (whole free blocks only; Boehm frees an
 * empty block at collection time, so dropped objects show up at once).
 * Reclamation is observed with cgc_debug_on_free for cgc and with long
 * disappearing links (GC_register_long_link) for Boehm.
 *
 * Conservative-GC hygiene: the doomed objects are made in a noinline
 * helper whose array of pointers is cleared before it returns, and the
 * stack is scrubbed (cgc_debug_scrub_stack / a cleared band) before each
 * collection.
 *
 * usage: finalize --mode fin|cln|none|cycfin|cyccln [--n 1000000]
 *                 [--pairs 100000] [--max-gcs 20]
 */
#include "common.h"
#include <stdatomic.h>

#if !BACKEND_IS_GC
int main(void)
{
  fprintf(stderr, "finalize: collectors only\n");
  return 2;
}
#else

typedef struct obj {
  struct obj *peer;
  long value;
  long pad[2];
} obj_t;

static atomic_long ran;

#if defined(BACKEND_CGC)
static void on_fin(void *o, void *d) { (void)o; (void)d; atomic_fetch_add(&ran, 1); }
static void on_cln(void *a) { (void)a; atomic_fetch_add(&ran, 1); }
static int reg_fin(obj_t *o) { return cgc_set_finalizer(o, on_fin, NULL); }
static int reg_cln(obj_t *o) { return cgc_add_cleanup(o, on_cln, NULL, NULL); }
static void run_callbacks(void) { cgc_wait_idle(-1); }
static uint64_t in_use(void)
{
  cgc_stats_t s;
  cgc_get_stats(&s);
  return s.bytes_live;
}
static void watch_free(obj_t *o, volatile int *flag, void **link)
{
  (void)link;
  cgc_debug_on_free(o, flag);
}
static long count_freed(volatile int *flags, void **links, long n)
{
  (void)links;
  long c = 0;
  for (long i = 0; i < n; i++)
    c += flags[i] != 0;
  return c;
}
static void fin_setup(void) {}
#else
static void GC_CALLBACK on_fin(void *o, void *d) { (void)o; (void)d; atomic_fetch_add(&ran, 1); }
static int reg_fin(obj_t *o)
{
  GC_register_finalizer(o, on_fin, NULL, NULL, NULL);
  return 0;
}
static int reg_cln(obj_t *o)
{
  GC_register_finalizer_no_order(o, on_fin, NULL, NULL, NULL);
  return 0;
}
static void run_callbacks(void)
{
  while (GC_should_invoke_finalizers())
    GC_invoke_finalizers();
}
static uint64_t in_use(void) { return GC_get_heap_size() - GC_get_free_bytes(); }
static void watch_free(obj_t *o, volatile int *flag, void **link)
{
  (void)flag;
  *link = o;      /* outside the collected heap: not a root */
  GC_register_long_link(link, o);
}
static long count_freed(volatile int *flags, void **links, long n)
{
  (void)flags;
  long c = 0;
  for (long i = 0; i < n; i++)
    c += links[i] == NULL;
  return c;
}
static void fin_setup(void) { GC_set_finalize_on_demand(1); }
#endif

static void full_collect(void)
{
  bk_clear_stack();
  COLLECT();
  run_callbacks();
}

/* make_dropped -- allocate N objects, register MODE callbacks (timed),
 * then forget them.  Returns nanoseconds spent registering. */
static BK_NOINLINE double make_dropped(const char *mode, long n)
{
  obj_t **arr = ALLOC(sizeof *arr * (size_t)n);
  for (long i = 0; i < n; i++) {
    arr[i] = ALLOC(sizeof(obj_t));
    arr[i]->value = i;
  }
  double t = bk_now();
  int bad = 0;
  if (!strcmp(mode, "fin")) {
    for (long i = 0; i < n; i++)
      bad |= reg_fin(arr[i]);
  } else if (!strcmp(mode, "cln")) {
    for (long i = 0; i < n; i++)
      bad |= reg_cln(arr[i]);
  }
  t = bk_now() - t;
  if (bad)
    fprintf(stderr, "finalize: a registration failed\n");
  memset(arr, 0, sizeof *arr * (size_t)n);
  return t * 1e9;
}

/* make_pairs -- P pairs pointing at each other, callbacks on both ends. */
static BK_NOINLINE void make_pairs(int fin, long p, volatile int *flags,
                                   void **links)
{
  for (long i = 0; i < p; i++) {
    obj_t *a = ALLOC(sizeof(obj_t)), *b = ALLOC(sizeof(obj_t));
    a->peer = b;
    b->peer = a;
    if (fin) {
      reg_fin(a);
      reg_fin(b);
    } else {
      reg_cln(a);
      reg_cln(b);
    }
    watch_free(a, &flags[2 * i], &links[2 * i]);
    watch_free(b, &flags[2 * i + 1], &links[2 * i + 1]);
  }
}

static int run_cycles(const char *mode, long pairs)
{
  int fin = !strcmp(mode, "cycfin");
  long nobj = 2 * pairs;
  volatile int *flags = calloc((size_t)nobj, sizeof *flags);
  void **links = calloc((size_t)nobj, sizeof *links);
  if (!flags || !links)
    return 1;
  double t0 = bk_now();
  make_pairs(fin, pairs, flags, links);
  for (int k = 0; k < 5; k++)
    full_collect();
  double secs = bk_now() - t0;
  long freed = count_freed(flags, links, nobj);
  /* sanity: cleanups on a cycle must be collectable; cgc finalizers on a
   * cycle must not run (spec: a cycle through a finalizable object is
   * never collected) */
  int ok = 1;
#if defined(BACKEND_CGC)
  ok = fin ? atomic_load(&ran) == 0 : atomic_load(&ran) >= nobj / 2;
#endif
  char name[32];
  snprintf(name, sizeof name, "finalize-%s", mode);
  bench_result(name, secs, ok, " objects=%ld callbacks_ran=%ld reclaimed=%ld",
               nobj, (long)atomic_load(&ran), freed);
  return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
  const char *mode = bench_arg_str(argc, argv, "mode", "fin");
  long n = bench_arg(argc, argv, "n", 1000000);
  long pairs = bench_arg(argc, argv, "pairs", 100000);
  int max_gcs = (int)bench_arg(argc, argv, "max-gcs", 20);

  INIT();
  fin_setup();
  if (!strncmp(mode, "cyc", 3))
    return run_cycles(mode, pairs);

  full_collect();
  full_collect();
  uint64_t base = in_use();
  int callbacks = strcmp(mode, "none") != 0;

  double t0 = bk_now();
  double reg_ns = make_dropped(mode, n);
  uint64_t peak = in_use();
  int gcs_cb = callbacks ? -1 : 0, gcs_most = gcs_cb, gcs_mem = -1, k;
  for (k = 1; k <= max_gcs && (gcs_cb < 0 || gcs_mem < 0); k++) {
    full_collect();
    if (gcs_most < 0 && atomic_load(&ran) >= n - n / 1000)
      gcs_most = k;
    if (gcs_cb < 0 && atomic_load(&ran) >= n)
      gcs_cb = k;
    uint64_t now = in_use();
    if (gcs_mem < 0 && now <= base + (peak > base ? (peak - base) / 10 : 0))
      gcs_mem = k;
  }
  double secs = bk_now() - t0;
  uint64_t heap = bk_heap_bytes(), live = in_use();
  /* a bound, not an exact count: conservative scanning may keep a few */
  int ok = (!callbacks || atomic_load(&ran) >= n * 9 / 10) && gcs_mem > 0;
  char name[32];
  snprintf(name, sizeof name, "finalize-%s", mode);
  bench_result(name, secs, ok,
               " objects=%ld reg_ns=%.1f gcs_to_callbacks=%d gcs_to_999=%d"
               " gcs_to_memory=%d"
               " callbacks_ran=%ld inuse_before_mb=%.1f inuse_peak_mb=%.1f"
               " inuse_after_mb=%.1f heap_after_mb=%.1f",
               n, callbacks ? reg_ns / (double)n : 0.0, gcs_cb, gcs_most, gcs_mem,
               (long)atomic_load(&ran), (double)base / 1048576.0,
               (double)peak / 1048576.0, (double)live / 1048576.0,
               (double)heap / 1048576.0);
  return ok ? 0 : 1;
}
#endif
