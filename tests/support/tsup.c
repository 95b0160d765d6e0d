/* tsup.c -- helpers shared by the cgc Check suites (see tsup.h).
 *
 * Every helper that touches a heap address runs its work through
 * tsup_deep(), so that the address only ever lives in frames far below the
 * test body.  tsup_scrub() then clears that region and the registers
 * before the test body collects.
 */
#define _GNU_SOURCE
#include "tsup.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TSUP_PAD  8192            /* bytes between test body and helpers */
#define TSUP_BAND (128 * 1024)    /* bytes cleared below the caller */

void *volatile tsup_roots[TSUP_NROOTS];

static unsigned long long tsup_seed_value;

/* ---- seeds ---------------------------------------------------------- */

unsigned long long tsup_seed_init(int argc, char **argv, unsigned long long def)
{
  const char *s = argc > 1 ? argv[1] : getenv("TSUP_SEED");
  unsigned long long seed = def;

  if (s != NULL && *s != '\0')
    seed = strtoull(s, NULL, 0);
  fprintf(stderr, "%s: seed=%llu\n", argc > 0 ? argv[0] : "test", seed);
  fflush(stderr);
  tsup_seed_value = seed;
  return seed;
}

unsigned long long tsup_seed(void) { return tsup_seed_value; }

uint64_t tsup_rand(uint64_t *state)
{
  uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/* ---- hygiene ------------------------------------------------------------ */

TSUP_NOINLINE void tsup_clear_stack(void)
{
  char band[TSUP_BAND];

  memset(band, 0, sizeof band);
  __asm__ __volatile__("" : : "r"(band) : "memory");
}

TSUP_NOINLINE void tsup_scrub(void)
{
  tsup_clear_stack();
  cgc_debug_scrub_stack();
}

TSUP_NOINLINE void tsup_deep(void (*fn)(void *), void *ctx)
{
  char pad[TSUP_PAD];

  memset(pad, 0, sizeof pad);
  __asm__ __volatile__("" : : "r"(pad) : "memory");
  fn(ctx);
  __asm__ __volatile__("" : : "r"(pad) : "memory");
}

/* ---- collections and waiting --------------------------------------------- */

TSUP_NOINLINE void tsup_collect(int n)
{
  for (int i = 0; i < n; i++) {
    tsup_scrub();
    cgc_collect();
  }
}

TSUP_NOINLINE void tsup_wait(void)
{
  ck_assert_int_eq(cgc_wait_idle(TSUP_WAIT_NS), 1);
}

TSUP_NOINLINE void tsup_collect_wait(int n)
{
  for (int i = 0; i < n; i++) {
    tsup_scrub();
    cgc_collect();
    tsup_wait();
  }
}

void tsup_sleep_ms(int ms)
{
  struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

int tsup_wait_for(atomic_int *v, int value, int timeout_ms)
{
  int cur = atomic_load(v);

  for (int waited = 0; cur < value && waited < timeout_ms; waited++) {
    tsup_sleep_ms(1);
    cur = atomic_load(v);
  }
  return cur;
}

/* ---- tracked objects: all work runs deep --------------------------------- */

enum op_kind {
  OP_NEW, OP_LINK, OP_LINK_INTERIOR, OP_FILL, OP_CHECK_FILL, OP_SET_FIN,
  OP_SET_FIN_OBJ, OP_ADD_CLN, OP_ADD_CLN_OBJ, OP_WEAK, OP_WEAK_LONG, OP_FREE,
  OP_ROOT, OP_WEAK_LIVE, OP_WEAK_IS, OP_WEAK_HID
};

struct op {
  enum op_kind kind;
  tsup_obj_t *a, *b;
  size_t x, y;
  void *arg;
  cgc_finalizer_fn ffn;
  cgc_cleanup_fn cfn;
  cgc_cleanup_t *h;
  cgc_weak_t *w;
  cgc_weak_t wv;
  uintptr_t hid;
  unsigned char v;
  int rc;
};

static char *base_of(const tsup_obj_t *o) { return tsup_unhide(o->hid); }

static void op_new(struct op *op)
{
  tsup_obj_t *o = op->a;
  void *p = cgc_malloc(op->x);

  ck_assert_msg(p != NULL, "cgc_malloc(%zu) failed", op->x);
  o->hid = tsup_hide(p);
  o->size = op->x;
  o->freed = 0;
  cgc_debug_on_free(p, &o->freed);
  ck_assert_int_eq(cgc_weak_make(p, &o->weak), CGC_OK);
}

static void op_run(void *ctx)
{
  struct op *op = ctx;

  switch (op->kind) {
  case OP_NEW:
    op_new(op);
    break;
  case OP_LINK:
    ((void **)base_of(op->a))[op->x] = op->b ? base_of(op->b) : NULL;
    break;
  case OP_LINK_INTERIOR:
    ((void **)base_of(op->a))[op->x] = base_of(op->b) + op->y;
    break;
  case OP_FILL:
    memset(base_of(op->a) + op->x * sizeof(void *), op->v,
           op->a->size - op->x * sizeof(void *));
    break;
  case OP_CHECK_FILL:
    op->rc = tsup_check_fill(base_of(op->a), op->x * sizeof(void *),
                             op->a->size, op->v);
    break;
  case OP_SET_FIN:
    op->rc = cgc_set_finalizer(base_of(op->a), op->ffn, op->arg);
    break;
  case OP_SET_FIN_OBJ:
    op->rc = cgc_set_finalizer(base_of(op->a), op->ffn, base_of(op->b));
    break;
  case OP_ADD_CLN:
    op->rc = cgc_add_cleanup(base_of(op->a) + op->x, op->cfn, op->arg, op->h);
    break;
  case OP_ADD_CLN_OBJ:
    op->rc = cgc_add_cleanup(base_of(op->a) + op->x, op->cfn,
                             base_of(op->b) + op->y, op->h);
    break;
  case OP_WEAK:
    op->rc = cgc_weak_make(base_of(op->a) + op->x, op->w);
    break;
  case OP_WEAK_LONG:
    op->rc = cgc_weak_make_long(base_of(op->a) + op->x, op->w);
    break;
  case OP_FREE:
    op->rc = cgc_free(base_of(op->a) + op->x);
    break;
  case OP_ROOT:
    tsup_roots[op->y] = op->a ? base_of(op->a) + op->x : NULL;
    break;
  case OP_WEAK_LIVE:
    op->rc = cgc_weak_get(op->wv) != NULL;
    break;
  case OP_WEAK_IS:
    op->rc = tsup_hide(cgc_weak_get(op->wv)) == op->hid;
    break;
  case OP_WEAK_HID:
    op->hid = tsup_hide(cgc_weak_get(op->wv));
    break;
  }
}

static int run(struct op *op)
{
  tsup_deep(op_run, op);
  return op->rc;
}

void tsup_new(tsup_obj_t *o, size_t size)
{
  struct op op = { .kind = OP_NEW, .a = o, .x = size < 16 ? 16 : size };
  run(&op);
}

void tsup_link(tsup_obj_t *from, size_t slot, tsup_obj_t *to)
{
  struct op op = { .kind = OP_LINK, .a = from, .b = to, .x = slot };
  ck_assert((slot + 1) * sizeof(void *) <= from->size);
  run(&op);
}

void tsup_link_interior(tsup_obj_t *from, size_t slot, tsup_obj_t *to,
                        size_t off)
{
  struct op op = { .kind = OP_LINK_INTERIOR, .a = from, .b = to, .x = slot,
                   .y = off };
  ck_assert((slot + 1) * sizeof(void *) <= from->size);
  run(&op);
}

void tsup_fill(tsup_obj_t *o, size_t nslots, unsigned char v)
{
  struct op op = { .kind = OP_FILL, .a = o, .x = nslots, .v = v };
  run(&op);
}

int tsup_check_fill(const void *p, size_t from, size_t n, unsigned char v)
{
  const unsigned char *c = p;

  for (size_t i = from; i < n; i++)
    if (c[i] != v)
      return 0;
  return 1;
}

int tsup_obj_check_fill(tsup_obj_t *o, size_t nslots, unsigned char v)
{
  struct op op = { .kind = OP_CHECK_FILL, .a = o, .x = nslots, .v = v };
  return run(&op);
}

int tsup_set_fin(tsup_obj_t *o, cgc_finalizer_fn fn, void *data)
{
  struct op op = { .kind = OP_SET_FIN, .a = o, .ffn = fn, .arg = data };
  return run(&op);
}

int tsup_set_fin_obj(tsup_obj_t *o, cgc_finalizer_fn fn, tsup_obj_t *data_obj)
{
  struct op op = { .kind = OP_SET_FIN_OBJ, .a = o, .ffn = fn, .b = data_obj };
  return run(&op);
}

int tsup_add_cln(tsup_obj_t *o, size_t off, cgc_cleanup_fn fn, void *arg,
                 cgc_cleanup_t *h)
{
  struct op op = { .kind = OP_ADD_CLN, .a = o, .x = off, .cfn = fn,
                   .arg = arg, .h = h };
  return run(&op);
}

int tsup_add_cln_obj(tsup_obj_t *o, size_t off, cgc_cleanup_fn fn,
                     tsup_obj_t *arg_obj, size_t arg_off, cgc_cleanup_t *h)
{
  struct op op = { .kind = OP_ADD_CLN_OBJ, .a = o, .x = off, .cfn = fn,
                   .b = arg_obj, .y = arg_off, .h = h };
  return run(&op);
}

int tsup_weak(tsup_obj_t *o, size_t off, cgc_weak_t *out)
{
  struct op op = { .kind = OP_WEAK, .a = o, .x = off, .w = out };
  return run(&op);
}

int tsup_weak_long(tsup_obj_t *o, size_t off, cgc_weak_t *out)
{
  struct op op = { .kind = OP_WEAK_LONG, .a = o, .x = off, .w = out };
  return run(&op);
}

int tsup_free(tsup_obj_t *o, size_t off)
{
  struct op op = { .kind = OP_FREE, .a = o, .x = off };
  return run(&op);
}

void tsup_root(int slot, tsup_obj_t *o, size_t off)
{
  struct op op = { .kind = OP_ROOT, .a = o, .x = off, .y = (size_t)slot };
  ck_assert(slot >= 0 && slot < TSUP_NROOTS);
  run(&op);
}

void tsup_unroot(int slot)
{
  struct op op = { .kind = OP_ROOT, .a = NULL, .y = (size_t)slot };
  ck_assert(slot >= 0 && slot < TSUP_NROOTS);
  run(&op);
}

int tsup_weak_live(cgc_weak_t w)
{
  struct op op = { .kind = OP_WEAK_LIVE, .wv = w };
  return run(&op);
}

int tsup_weak_is(cgc_weak_t w, uintptr_t hid)
{
  struct op op = { .kind = OP_WEAK_IS, .wv = w, .hid = hid };
  return run(&op);
}

uintptr_t tsup_weak_hid(cgc_weak_t w)
{
  struct op op = { .kind = OP_WEAK_HID, .wv = w };
  run(&op);
  return op.hid;
}

int tsup_count_freed(const tsup_obj_t *o, int n)
{
  int k = 0;

  for (int i = 0; i < n; i++)
    k += o[i].freed != 0;
  return k;
}

/* ---- quarantine -------------------------------------------------------------
 *
 * Addresses that something outside the test keeps referring to (for
 * instance a stale start argument of a callback thread that pointed to a
 * block since freed) would retain any test object later allocated there.
 * tsup_init therefore lets the callback threads start, then allocates
 * probe objects of the sizes the suites use, collects, and keeps every
 * probe that was not reclaimed rooted for the rest of the process, so
 * that no test object can land on such an address.  The conformance
 * suite checks the library's own retention separately. */

#define TSUP_NPROBE 512
#define TSUP_NQUAR 64

static void *volatile tsup_quarantine[TSUP_NQUAR];
static int tsup_nquar;
static volatile int tsup_probe_freed[TSUP_NPROBE];
static uintptr_t tsup_probe_hid[TSUP_NPROBE];
static atomic_int tsup_warm_runs;

static void tsup_warm_fin(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_fetch_add(&tsup_warm_runs, 1);
}

static void tsup_warm_cln(void *arg)
{
  (void)arg;
  atomic_fetch_add(&tsup_warm_runs, 1);
}

static void tsup_probe_alloc(void *ctx)
{
  static const size_t sizes[] = { 0, 8, 16, 32, 48, 64, 96, 128, 256 };
  int warm = ctx != NULL;

  if (warm) {
    void *a = cgc_malloc(64), *b = cgc_malloc(64);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(cgc_set_finalizer(a, tsup_warm_fin, NULL), CGC_OK);
    ck_assert_int_eq(cgc_add_cleanup(b, tsup_warm_cln, NULL, NULL), CGC_OK);
    return;
  }
  for (int i = 0; i < TSUP_NPROBE; i++) {
    size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
    void *p = (i / 9) % 2 ? cgc_malloc_atomic(n) : cgc_malloc(n);

    ck_assert_ptr_nonnull(p);
    tsup_probe_freed[i] = 0;
    tsup_probe_hid[i] = tsup_hide(p);
    cgc_debug_on_free(p, &tsup_probe_freed[i]);
  }
}

static void tsup_probe_keep(void *ctx)
{
  int i = *(int *)ctx;

  if (tsup_nquar < TSUP_NQUAR)
    tsup_quarantine[tsup_nquar++] = tsup_unhide(tsup_probe_hid[i]);
}

static void tsup_quarantine_init(int threads)
{
  if (threads) {
    tsup_deep(tsup_probe_alloc, &tsup_nquar);   /* start the threads */
    tsup_collect(1);
    ck_assert_int_eq(cgc_wait_idle(TSUP_WAIT_NS), 1);
    tsup_sleep_ms(20);
  }
  for (int round = 0; round < 3; round++) {
    int kept = 0;

    tsup_deep(tsup_probe_alloc, NULL);
    tsup_collect(1);
    for (int i = 0; i < TSUP_NPROBE; i++)
      if (!tsup_probe_freed[i]) {
        tsup_deep(tsup_probe_keep, &i);
        kept++;
      }
    if (kept == 0)
      break;
  }
  if (threads)
    ck_assert_int_eq(cgc_wait_idle(TSUP_WAIT_NS), 1);
}

void tsup_init(int cleanup_threads, int on_demand, int strict)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;

  cfg.cleanup_threads = cleanup_threads;
  cfg.on_demand = on_demand;
  cfg.strict = strict;
  ck_assert_int_eq(cgc_init(&cfg), CGC_OK);
  cgc_set_gc_percent(-1);
  tsup_quarantine_init(!on_demand);
}

void tsup_setup_default(void) { tsup_init(-1, 0, 0); }

int tsup_main(int argc, char **argv, unsigned long long def, Suite *(*make)(void))
{
  SRunner *sr;
  int failed;

  tsup_seed_init(argc, argv, def);
  sr = srunner_create(make());
  srunner_run_all(sr, CK_ENV);
  failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed == 0 ? 0 : 1;
}
