/* check_api.c -- api: every entry point of cgc.h with valid and invalid
 * input.
 *
 * Public header only.  Each misuse (NULL, a stack pointer, a global, libc
 * malloc memory, an interior pointer where a block start is needed, a
 * double free, a bad alignment, a size overflow, a bad range, a bad
 * configuration) must return its documented code, call the error hook
 * once with that code, and leave the heap intact: a live list built by
 * the fixture keeps its checksum after every misuse.  Also covered: the
 * malloc family's contents and alignment, the heap limit with the
 * out-of-memory hook (and recovery), cgc_disable/cgc_enable, gc percent,
 * statistics, strict mode (abort with one line on stderr), and
 * cgc_strerror for every code.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgc.h"
#include "tsup.h"

/* ---- the live structure and the hooks ------------------------------------ */

struct lnode { struct lnode *next; uint64_t v; char pad[40]; };

#define LIVE_LEN 256
static struct lnode *volatile g_live;
static uint64_t live_sum;
static char global_buf[64];

static int hook_calls, hook_last;
static const char *hook_func;
static int oom_calls;
static size_t oom_last;

static void error_hook(int err, const char *func, const char *msg)
{
  hook_calls++;
  hook_last = err;
  hook_func = func;
  ck_assert_ptr_nonnull(msg);
}

static void oom_hook(size_t request)
{
  oom_calls++;
  oom_last = request;
}

static void build_live(void)
{
  struct lnode *head = NULL;

  live_sum = 0;
  for (int i = 0; i < LIVE_LEN; i++) {
    struct lnode *n = cgc_malloc(sizeof *n);

    ck_assert_ptr_nonnull(n);
    n->v = (uint64_t)i * 0x9E3779B97F4A7C15ull;
    memset(n->pad, i & 0xFF, sizeof n->pad);
    n->next = head;
    head = n;
    live_sum += n->v;
  }
  g_live = head;
}

static int heap_ok(void)
{
  uint64_t sum = 0;
  int len = 0;

  for (struct lnode *n = g_live; n; n = n->next, len++) {
    sum += n->v;
    if (cgc_base(n) != n)
      return 0;
  }
  return len == LIVE_LEN && sum == live_sum;
}

static void setup(void)
{
  tsup_init(-1, 1, 0);
  hook_calls = 0;
  hook_last = 0;
  hook_func = NULL;
  oom_calls = 0;
  cgc_set_error_hook(error_hook);
  build_live();
}

/* CALL returns CODE, the hook saw CODE once, the heap is intact. */
#define EXPECT_CODE(call, code)                                       \
  do {                                                                \
    int n0_ = hook_calls;                                             \
    ck_assert_int_eq((call), (code));                                 \
    ck_assert_int_eq(hook_calls, n0_ + 1);                            \
    ck_assert_int_eq(hook_last, (code));                              \
    ck_assert(heap_ok());                                             \
  } while (0)

/* CALL returns NULL, the hook saw CODE once, the heap is intact. */
#define EXPECT_NULL(call, code)                                       \
  do {                                                                \
    int n0_ = hook_calls;                                             \
    ck_assert_ptr_null((call));                                       \
    ck_assert_int_eq(hook_calls, n0_ + 1);                            \
    ck_assert_int_eq(hook_last, (code));                              \
    ck_assert(heap_ok());                                             \
  } while (0)

/* STMT (an assertion on a valid call) reports nothing to the hook. */
#define EXPECT_QUIET(stmt)                                            \
  do {                                                                \
    int n0_ = hook_calls;                                             \
    stmt;                                                             \
    ck_assert_int_eq(hook_calls, n0_);                                \
  } while (0)

/* ---- cgc_strerror, cgc_init, cgc_shutdown ------------------------------------ */

START_TEST(strerror_every_code)
{
  static const int codes[] = { CGC_OK, CGC_EINVAL, CGC_ENOTHEAP, CGC_ENOTBASE,
                               CGC_EEXIST, CGC_EARGPTR, CGC_EBUSY,
                               CGC_ENOMEM, CGC_EDEADLK };
  const int n = (int)(sizeof codes / sizeof codes[0]);
  const char *unknown = cgc_strerror(-1000);

  ck_assert_ptr_nonnull(unknown);
  for (int i = 0; i < n; i++) {
    const char *s = cgc_strerror(codes[i]);

    ck_assert_ptr_nonnull(s);
    ck_assert_uint_gt(strlen(s), 0);
    ck_assert_ptr_null(strchr(s, '\n'));
    ck_assert_str_ne(s, unknown);
    for (int j = 0; j < i; j++)
      ck_assert_str_ne(s, cgc_strerror(codes[j]));
  }
  ck_assert_str_eq(cgc_strerror(42), unknown);
}
END_TEST

START_TEST(init_and_shutdown)
{
  cgc_config_t bad = CGC_CONFIG_DEFAULT;

  EXPECT_QUIET(ck_assert_int_eq(cgc_init(NULL), CGC_OK));
  bad.cleanup_threads = -2;
  EXPECT_CODE(cgc_init(&bad), CGC_EINVAL);
  bad.cleanup_threads = -1;
  bad.checkfinalizers = 3;
  EXPECT_CODE(cgc_init(&bad), CGC_EINVAL);
  bad.checkfinalizers = -1;
  EXPECT_CODE(cgc_init(&bad), CGC_EINVAL);
  cgc_shutdown();
  ck_assert(heap_ok());
  ck_assert_ptr_nonnull(cgc_malloc(100));        /* re-initialises */
  EXPECT_QUIET(ck_assert_int_eq(cgc_init(NULL), CGC_OK));
  cgc_shutdown();
  cgc_shutdown();                                /* twice is harmless */
  ck_assert(heap_ok());
}
END_TEST

/* ---- allocation ---------------------------------------------------------- */

START_TEST(malloc_kinds)
{
  char *p = cgc_malloc(100), *a = cgc_malloc_atomic(100);
  char *u = cgc_malloc_uncollectable(100);

  ck_assert(p && a && u);
  ck_assert(tsup_check_fill(p, 0, 100, 0));
  ck_assert(tsup_check_fill(u, 0, 100, 0));
  for (char *q = p; q; q = q == p ? a : q == a ? u : NULL) {
    ck_assert_uint_eq((uintptr_t)q % 16, 0);
    ck_assert_ptr_eq(cgc_base(q), q);
    ck_assert_ptr_eq(cgc_base(q + 99), q);
    ck_assert_ptr_eq(cgc_base(q + 100), q);      /* one past the end */
    ck_assert_uint_ge(cgc_usable_size(q), 100);
    memset(q, 0x5C, cgc_usable_size(q));
  }
  tsup_collect(1);
  ck_assert(heap_ok());
  EXPECT_QUIET(ck_assert_int_eq(cgc_free(u), CGC_OK));
}
END_TEST

START_TEST(malloc_zero_distinct)
{
  void *p[64];

  for (int i = 0; i < 64; i++) {
    p[i] = cgc_malloc(0);
    ck_assert_ptr_nonnull(p[i]);
    ck_assert_ptr_eq(cgc_base(p[i]), p[i]);
    for (int j = 0; j < i; j++)
      ck_assert_ptr_ne(p[i], p[j]);
  }
  ck_assert_ptr_nonnull(cgc_malloc_atomic(0));
  ck_assert_ptr_ne(cgc_malloc_atomic(0), cgc_malloc_atomic(0));
}
END_TEST

START_TEST(calloc_cases)
{
  uint64_t *p = cgc_calloc(10, sizeof *p);

  ck_assert_ptr_nonnull(p);
  ck_assert(tsup_check_fill(p, 0, 10 * sizeof *p, 0));
  ck_assert_uint_ge(cgc_usable_size(p), 80);
  EXPECT_QUIET(ck_assert_ptr_nonnull(cgc_calloc(0, 0)));
  EXPECT_NULL(cgc_calloc(SIZE_MAX / 2, 3), CGC_EINVAL);
  EXPECT_NULL(cgc_calloc(SIZE_MAX, SIZE_MAX), CGC_EINVAL);
  EXPECT_NULL(cgc_calloc((size_t)1 << 33, (size_t)1 << 33), CGC_EINVAL);
}
END_TEST

START_TEST(realloc_cases)
{
  char stack_buf[32];
  char *m = malloc(32);
  unsigned char *p, *q;

  ck_assert_ptr_nonnull(m);
  p = cgc_realloc(NULL, 100);                     /* NULL: allocate */
  ck_assert_ptr_nonnull(p);
  for (int i = 0; i < 100; i++)
    p[i] = (unsigned char)i;
  q = cgc_realloc(p, 20000);                      /* growth, moves */
  ck_assert_ptr_nonnull(q);
  for (int i = 0; i < 100; i++)
    ck_assert_uint_eq(q[i], (unsigned char)i);
  ck_assert_uint_ge(cgc_usable_size(q), 20000);
  memset(q + 100, 0xEE, 19900);
  if (q != p)
    EXPECT_CODE(cgc_free(p), CGC_EINVAL);         /* old block freed */
  p = cgc_realloc(q, 50);                         /* shrink */
  ck_assert_ptr_nonnull(p);
  for (int i = 0; i < 50; i++)
    ck_assert_uint_eq(p[i], (unsigned char)i);
  ck_assert_uint_ge(cgc_usable_size(p), 50);
  q = cgc_realloc(p, 60);                         /* small growth */
  for (int i = 0; i < 50; i++)
    ck_assert_uint_eq(q[i], (unsigned char)i);
  EXPECT_QUIET(ck_assert_ptr_null(cgc_realloc(q, 0)));   /* frees */
  EXPECT_CODE(cgc_free(q), CGC_EINVAL);
  /* the atomic kind survives realloc: contents are kept, not zeroed */
  p = cgc_malloc_atomic(16);
  memcpy(p, "atomic-contents", 16);
  q = cgc_realloc(p, 4000);
  ck_assert_str_eq((char *)q, "atomic-contents");
  /* misuse */
  p = cgc_malloc(64);
  EXPECT_NULL(cgc_realloc(p + 8, 128), CGC_ENOTBASE);
  EXPECT_NULL(cgc_realloc(stack_buf, 128), CGC_ENOTHEAP);
  EXPECT_NULL(cgc_realloc(m, 128), CGC_ENOTHEAP);
  EXPECT_NULL(cgc_realloc(global_buf, 128), CGC_ENOTHEAP);
  ck_assert_ptr_eq(cgc_base(p), p);                /* P untouched */
  free(m);
}
END_TEST

START_TEST(strdup_cases)
{
  static const char *texts[] = { "", "x", "hello, collector",
                                 "a somewhat longer string, over the sixteen "
                                 "byte granule and then some" };

  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    char *s = cgc_strdup(texts[i]);

    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_ne(s, texts[i]);
    ck_assert_str_eq(s, texts[i]);
    ck_assert_ptr_eq(cgc_base(s), s);
    ck_assert_uint_ge(cgc_usable_size(s), strlen(texts[i]) + 1);
  }
  EXPECT_NULL(cgc_strdup(NULL), CGC_EINVAL);
}
END_TEST

START_TEST(memalign_cases)
{
  static const size_t sizes[] = { 0, 1, 100, 5000, 70000 };
  static const size_t bad[] = { 0, 3, 24, 48, 100, 65535, 65537 };

  for (size_t align = 1; align <= 65536; align <<= 1)
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
      unsigned char *p = cgc_memalign(align, sizes[i]);

      ck_assert_msg(p != NULL, "memalign(%zu, %zu)", align, sizes[i]);
      ck_assert_msg((uintptr_t)p % align == 0, "memalign(%zu, %zu) = %p",
                    align, sizes[i], (void *)p);
      ck_assert_ptr_eq(cgc_base(p), p);
      ck_assert_uint_ge(cgc_usable_size(p), sizes[i]);
      ck_assert(tsup_check_fill(p, 0, sizes[i], 0));
      memset(p, 0xA1, sizes[i]);
    }
  tsup_collect(1);
  ck_assert(heap_ok());
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    EXPECT_NULL(cgc_memalign(bad[i], 64), CGC_EINVAL);
}
END_TEST

START_TEST(usable_size_and_base_cases)
{
  char stack_buf[32];
  char *m = malloc(32);
  char *p = cgc_malloc(40);

  ck_assert_ptr_nonnull(m);
  ck_assert_uint_eq(cgc_usable_size(NULL), 0);
  ck_assert_uint_eq(cgc_usable_size(stack_buf), 0);
  ck_assert_uint_eq(cgc_usable_size(global_buf), 0);
  ck_assert_uint_eq(cgc_usable_size(m), 0);
  ck_assert_uint_eq(cgc_usable_size(p + 1), 0);
  ck_assert_uint_ge(cgc_usable_size(p), 40);
  ck_assert_ptr_null(cgc_base(NULL));
  ck_assert_ptr_null(cgc_base(stack_buf));
  ck_assert_ptr_null(cgc_base(global_buf));
  ck_assert_ptr_null(cgc_base(m));
  ck_assert_ptr_eq(cgc_base(p + 39), p);
  ck_assert(heap_ok());
  free(m);
}
END_TEST

/* ---- cgc_free --------------------------------------------------------------- */

static void fin_nop(void *obj, void *data) { (void)obj; (void)data; }

START_TEST(free_cases)
{
  char stack_buf[32];
  char *m = malloc(32);
  char *p = cgc_malloc(64), *l = cgc_malloc(50000), *f = cgc_malloc(32);
  char *u = cgc_malloc_uncollectable(64);

  ck_assert_ptr_nonnull(m);
  EXPECT_QUIET(ck_assert_int_eq(cgc_free(NULL), CGC_OK));
  EXPECT_CODE(cgc_free(stack_buf), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_free(global_buf), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_free(m), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_free(p + 16), CGC_ENOTBASE);
  EXPECT_CODE(cgc_free(l + 4096), CGC_ENOTBASE);
  EXPECT_CODE(cgc_free(l + 8), CGC_ENOTBASE);
  ck_assert_int_eq(cgc_set_finalizer(f, fin_nop, NULL), CGC_OK);
  EXPECT_CODE(cgc_free(f), CGC_EBUSY);
  ck_assert_ptr_eq(cgc_base(f), f);                 /* left intact */
  EXPECT_QUIET(ck_assert_int_eq(cgc_free(p), CGC_OK));
  EXPECT_CODE(cgc_free(p), CGC_EINVAL);             /* double free */
  EXPECT_QUIET(ck_assert_int_eq(cgc_free(l), CGC_OK));
  EXPECT_CODE(cgc_free(l), CGC_EINVAL);
  EXPECT_QUIET(ck_assert_int_eq(cgc_free(u), CGC_OK));
  EXPECT_CODE(cgc_free(u), CGC_EINVAL);
  ck_assert_ptr_nonnull(cgc_malloc(64));
  tsup_collect(1);
  ck_assert(heap_ok());
  free(m);
}
END_TEST

/* ---- roots, threads, blocking ------------------------------------------------- */

START_TEST(roots_api)
{
  static void *range[8];
  int x;

  EXPECT_CODE(cgc_add_roots(NULL, range + 8), CGC_EINVAL);
  EXPECT_CODE(cgc_add_roots(range, NULL), CGC_EINVAL);
  EXPECT_CODE(cgc_add_roots(range + 8, range), CGC_EINVAL);
  EXPECT_CODE(cgc_remove_roots(range, range + 8), CGC_EINVAL);
  EXPECT_QUIET(ck_assert_int_eq(cgc_add_roots(range, range + 8), CGC_OK));
  EXPECT_CODE(cgc_remove_roots(range, range + 4), CGC_EINVAL);  /* inexact */
  EXPECT_QUIET(ck_assert_int_eq(cgc_add_roots(&x, &x), CGC_OK)); /* empty */
  EXPECT_QUIET(ck_assert_int_eq(cgc_remove_roots(&x, &x), CGC_OK));
  tsup_collect(1);
  EXPECT_QUIET(ck_assert_int_eq(cgc_remove_roots(range, range + 8), CGC_OK));
  EXPECT_CODE(cgc_remove_roots(range, range + 8), CGC_EINVAL);
}
END_TEST

static void *thread_fn(void *arg)
{
  int *v = arg;

  ck_assert_int_eq(cgc_register_thread(), CGC_OK);
  ck_assert_ptr_nonnull(cgc_malloc(32));
  *v = 7;
  return arg;
}

static void *blocking_fn(void *arg) { return (char *)arg + 1; }

START_TEST(threads_api)
{
  pthread_t th;
  void *ret = NULL;
  static int v;
  cgc_stats_t s0, s1;

  EXPECT_QUIET(ck_assert_int_eq(cgc_register_thread(), CGC_OK));
  EXPECT_QUIET(ck_assert_int_eq(cgc_register_thread(), CGC_OK));
  cgc_get_stats(&s0);
  EXPECT_QUIET(ck_assert_int_eq(cgc_unregister_thread(), CGC_OK));
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.threads + 1, s0.threads);
  EXPECT_CODE(cgc_unregister_thread(), CGC_EINVAL);
  EXPECT_QUIET(ck_assert_int_eq(cgc_register_thread(), CGC_OK));
  ck_assert_int_eq(cgc_pthread_create(&th, NULL, thread_fn, &v), 0);
  ck_assert_int_eq(pthread_join(th, &ret), 0);
  ck_assert_ptr_eq(ret, &v);
  ck_assert_int_eq(v, 7);
  ck_assert_int_eq(cgc_pthread_create(&th, NULL, NULL, NULL), EINVAL);
  ck_assert_ptr_eq(cgc_do_blocking(blocking_fn, global_buf), global_buf + 1);
  EXPECT_NULL(cgc_do_blocking(NULL, NULL), CGC_EINVAL);
  ck_assert(heap_ok());
}
END_TEST

/* ---- finalizers, cleanups, weak pointers, callbacks ------------------------------ */

static atomic_int ncleaned;
static void cln_count(void *arg) { (void)arg; atomic_fetch_add(&ncleaned, 1); }

static tsup_obj_t doomed[4];

START_TEST(specials_api)
{
  char stack_buf[32];
  char *m = malloc(32);
  char *p = cgc_malloc(64);
  cgc_cleanup_t h, zero = { 0 };
  cgc_weak_t w, w2, wl, wn;

  ck_assert_ptr_nonnull(m);
  /* finalizers */
  EXPECT_CODE(cgc_set_finalizer(NULL, fin_nop, NULL), CGC_EINVAL);
  EXPECT_CODE(cgc_set_finalizer(stack_buf, fin_nop, NULL), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_set_finalizer(m, fin_nop, NULL), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_set_finalizer(p + 8, fin_nop, NULL), CGC_ENOTBASE);
  EXPECT_QUIET(ck_assert_int_eq(cgc_set_finalizer(p, fin_nop, NULL), CGC_OK));
  EXPECT_CODE(cgc_set_finalizer(p, fin_nop, NULL), CGC_EEXIST);
  EXPECT_QUIET(ck_assert_int_eq(cgc_set_finalizer(p, NULL, NULL), CGC_OK));
  EXPECT_QUIET(ck_assert_int_eq(cgc_set_finalizer(p, fin_nop, NULL), CGC_OK));
  ck_assert_int_eq(cgc_set_finalizer(p, NULL, NULL), CGC_OK);
  /* cleanups */
  EXPECT_CODE(cgc_add_cleanup(NULL, cln_count, NULL, &h), CGC_EINVAL);
  ck_assert_uint_eq(h.id, 0);
  EXPECT_CODE(cgc_add_cleanup(p, NULL, NULL, &h), CGC_EINVAL);
  EXPECT_CODE(cgc_add_cleanup(stack_buf, cln_count, NULL, &h), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_add_cleanup(m, cln_count, NULL, &h), CGC_ENOTHEAP);
  EXPECT_CODE(cgc_add_cleanup(p, cln_count, p, &h), CGC_EARGPTR);
  EXPECT_QUIET(ck_assert_int_eq(cgc_add_cleanup(p + 8, cln_count, NULL, &h), CGC_OK));
  ck_assert_uint_ne(h.id, 0);
  ck_assert(cgc_cleanup_stop(h));
  ck_assert(!cgc_cleanup_stop(h));
  ck_assert(!cgc_cleanup_stop(zero));
  ck_assert_int_eq(cgc_add_cleanup(p, cln_count, NULL, NULL), CGC_OK);
  /* weak pointers */
  EXPECT_CODE(cgc_weak_make(p, NULL), CGC_EINVAL);
  EXPECT_CODE(cgc_weak_make_long(p, NULL), CGC_EINVAL);
  EXPECT_CODE(cgc_weak_make(stack_buf, &w), CGC_ENOTHEAP);
  ck_assert_ptr_null(cgc_weak_get(w));
  EXPECT_CODE(cgc_weak_make(m, &w), CGC_ENOTHEAP);
  EXPECT_QUIET(ck_assert_int_eq(cgc_weak_make(NULL, &wn), CGC_OK));
  ck_assert_ptr_null(cgc_weak_get(wn));
  ck_assert_int_eq(cgc_weak_make(p, &w), CGC_OK);
  ck_assert_int_eq(cgc_weak_make(p, &w2), CGC_OK);
  ck_assert_int_eq(cgc_weak_make_long(p + 16, &wl), CGC_OK);
  ck_assert_ptr_eq(cgc_weak_get(w), p);
  ck_assert_ptr_eq(cgc_weak_get(wl), p + 16);
  ck_assert(cgc_weak_equal(w, w2));
  ck_assert(!cgc_weak_equal(w, wl));
  ck_assert(!cgc_weak_equal(w, wn));
  CGC_KEEP_ALIVE(p);
  ck_assert(heap_ok());
  free(m);
}
END_TEST

START_TEST(callbacks_on_demand)
{
  cgc_stats_t s;
  int n;

  atomic_store(&ncleaned, 0);
  for (int i = 0; i < 4; i++) {
    tsup_new(&doomed[i], 32);
    ck_assert_int_eq(tsup_add_cln(&doomed[i], 0, cln_count, NULL, NULL), CGC_OK);
  }
  tsup_collect(2);
  cgc_get_stats(&s);
  ck_assert_uint_eq(s.cln_queue_len, 4);
  ck_assert_int_eq(cgc_wait_idle(0), 0);          /* queued, not run */
  cgc_pause_callbacks(1);
  cgc_pause_callbacks(0);
  ck_assert_int_eq(cgc_run_pending(1), 1);
  n = cgc_run_pending(0);
  ck_assert_int_eq(n, 3);
  ck_assert_int_eq(atomic_load(&ncleaned), 4);
  ck_assert_int_eq(cgc_run_pending(0), 0);
  ck_assert_int_eq(cgc_wait_idle(0), 1);
  ck_assert_int_eq(cgc_wait_idle(-1), 1);
  ck_assert(heap_ok());
}
END_TEST

START_TEST(debug_api)
{
  static volatile int flag;
  char stack_buf[32];
  int fds[2];
  char buf[4096];
  ssize_t got;

  EXPECT_CODE((cgc_debug_on_free(NULL, &flag), hook_last), CGC_EINVAL);
  EXPECT_CODE((cgc_debug_on_free(cgc_malloc(16), NULL), hook_last), CGC_EINVAL);
  EXPECT_CODE((cgc_debug_on_free(stack_buf, &flag), hook_last), CGC_ENOTHEAP);
  tsup_new(&doomed[0], 64);
  cgc_debug_scrub_stack();
  tsup_collect(2);
  ck_assert_int_eq(doomed[0].freed, 1);
  cgc_get_stats(NULL);                            /* ignored */
  ck_assert_int_eq(pipe(fds), 0);
  cgc_print_stats(fds[1]);
  close(fds[1]);
  got = read(fds[0], buf, sizeof buf - 1);
  close(fds[0]);
  ck_assert_int_gt(got, 0);
  buf[got] = 0;
  ck_assert_ptr_nonnull(strstr(buf, "collections"));
  ck_assert(heap_ok());
}
END_TEST

/* ---- error hook ---------------------------------------------------------------- */

START_TEST(error_hook_cases)
{
  char stack_buf[8];

  ck_assert(cgc_set_error_hook(NULL) == error_hook);
  ck_assert_int_eq(cgc_free(stack_buf), CGC_ENOTHEAP);    /* no hook: quiet */
  ck_assert_int_eq(hook_calls, 0);
  ck_assert(cgc_set_error_hook(error_hook) == NULL);
  EXPECT_CODE(cgc_free(stack_buf), CGC_ENOTHEAP);
  ck_assert_str_eq(hook_func, "cgc_free");
  EXPECT_NULL(cgc_memalign(3, 8), CGC_EINVAL);
  ck_assert_str_eq(hook_func, "cgc_memalign");
  EXPECT_CODE(cgc_remove_roots(stack_buf, stack_buf + 8), CGC_EINVAL);
  ck_assert_str_eq(hook_func, "cgc_remove_roots");
}
END_TEST

/* ---- heap limit and out-of-memory hook ------------------------------------------- */

#define CHUNK ((size_t)64 << 10)
#define NCHUNK 512
static unsigned char *volatile chunks[NCHUNK];
static void *volatile g_small;

static int fill_chunks(int from)
{
  int i;

  for (i = from; i < NCHUNK; i++) {
    unsigned char *c = cgc_malloc_atomic(CHUNK);

    if (c == NULL)
      break;
    memset(c, i & 0xFF, CHUNK);
    chunks[i] = c;
  }
  return i;
}

static void check_chunks(int from, int to)
{
  for (int i = from; i < to; i++)
    if (chunks[i] != NULL)
      ck_assert_msg(tsup_check_fill(chunks[i], 0, CHUNK, (unsigned char)i),
                    "chunk %d damaged", i);
}

START_TEST(heap_limit_and_oom)
{
  cgc_stats_t s;
  size_t limit;
  int n, m;

  ck_assert(cgc_set_oom_hook(oom_hook) == NULL);
  cgc_get_stats(&s);
  limit = s.heap_size + ((size_t)8 << 20);
  EXPECT_QUIET(ck_assert_int_eq(cgc_set_heap_limit(limit), CGC_OK));
  n = fill_chunks(0);
  ck_assert_int_lt(n, NCHUNK);                    /* the limit bit */
  ck_assert_int_ge(n, 64);                        /* >= 4 MiB fit */
  ck_assert_int_eq(oom_calls, 1);
  ck_assert_uint_eq(oom_last, CHUNK);
  cgc_get_stats(&s);
  ck_assert_uint_le(s.heap_size, limit);
  check_chunks(0, n);
  ck_assert(heap_ok());
  /* small live objects hit the limit too */
  for (int i = 0; i < 100000 && oom_calls == 1; i++) {
    void **q = cgc_malloc(1000);

    if (q == NULL)
      break;
    q[0] = g_small;
    g_small = q;
  }
  ck_assert_int_eq(oom_calls, 2);
  ck_assert_uint_eq(oom_last, 1000);
  check_chunks(0, n);
  ck_assert(heap_ok());
  g_small = NULL;
  /* drop half: allocation works again */
  for (int i = 0; i < n; i += 2)
    chunks[i] = NULL;
  tsup_collect(1);
  m = fill_chunks(n);
  ck_assert_int_ge(m - n, n / 4);
  check_chunks(0, m);
  ck_assert(heap_ok());
  /* a limit below the live heap */
  EXPECT_CODE(cgc_set_heap_limit(4096), CGC_EINVAL);
  EXPECT_QUIET(ck_assert_int_eq(cgc_set_heap_limit(0), CGC_OK));
  ck_assert_ptr_nonnull(cgc_malloc_atomic(CHUNK));
  ck_assert(cgc_set_oom_hook(NULL) == oom_hook);
  check_chunks(0, m);
  ck_assert(heap_ok());
}
END_TEST

/* ---- collection control ------------------------------------------------------------ */

static uint64_t collections(void)
{
  cgc_stats_t s;

  cgc_get_stats(&s);
  return s.collections;
}

static void garbage(size_t bytes)
{
  for (size_t done = 0; done < bytes; done += CHUNK)
    ck_assert_ptr_nonnull(cgc_malloc_atomic(CHUNK));
}

START_TEST(disable_enable)
{
  uint64_t c0;

  ck_assert_int_eq(cgc_set_gc_percent(100), -1);  /* tsup turned it off */
  c0 = collections();
  cgc_disable();
  cgc_disable();
  garbage((size_t)48 << 20);
  ck_assert_uint_eq(collections(), c0);
  cgc_enable();                                    /* still disabled once */
  garbage((size_t)48 << 20);
  ck_assert_uint_eq(collections(), c0);
  cgc_collect();                                   /* explicit still works */
  ck_assert_uint_eq(collections(), c0 + 1);
  cgc_enable();
  garbage((size_t)48 << 20);
  ck_assert_uint_gt(collections(), c0 + 1);
  cgc_enable();                                    /* unbalanced: harmless */
  ck_assert(heap_ok());
}
END_TEST

START_TEST(gc_percent)
{
  uint64_t c0;

  ck_assert_int_eq(cgc_set_gc_percent(50), -1);
  ck_assert_int_eq(cgc_set_gc_percent(200), 50);
  ck_assert_int_eq(cgc_set_gc_percent(-7), 200);
  ck_assert_int_eq(cgc_set_gc_percent(-1), -1);    /* negative = off */
  c0 = collections();
  garbage((size_t)48 << 20);
  ck_assert_uint_eq(collections(), c0);
  ck_assert_int_eq(cgc_set_gc_percent(100), -1);
  garbage((size_t)48 << 20);
  ck_assert_uint_gt(collections(), c0);
  ck_assert(heap_ok());
}
END_TEST

/* ---- pacing: the peak floor (collect.c .pace.peak) ---------------------------------- */

static uint64_t gc_goal(void)
{
  cgc_stats_t s;

  cgc_get_stats(&s);
  return s.gc_goal;
}

#define SMALL_CHUNK 4000                    /* a small-object class */
#define NSMALL ((32 << 20) / SMALL_CHUNK)
static unsigned char *volatile small_chunks[NSMALL];

static void garbage_small(size_t bytes)
{
  for (size_t done = 0; done < bytes; done += SMALL_CHUNK)
    ck_assert_ptr_nonnull(cgc_malloc_atomic(SMALL_CHUNK));
}

/* Reach a heap of about 64 MiB by allocation (32 MiB live, then garbage
 * until the pacer collects), in small objects or in large blocks, then
 * drop everything and collect twice, so that the GOGC rule alone would set
 * the minimum heap.  Returns the goal the heap reached. */
static uint64_t reach_peak_then_drop(int large)
{
  uint64_t c0, peak;

  ck_assert_int_eq(cgc_set_gc_percent(100), -1);   /* tsup turned it off */
  if (large)
    for (int i = 0; i < NCHUNK; i++)
      ck_assert_ptr_nonnull(chunks[i] = cgc_malloc_atomic(CHUNK));
  else
    for (int i = 0; i < NSMALL; i++)
      ck_assert_ptr_nonnull(small_chunks[i] = cgc_malloc_atomic(SMALL_CHUNK));
  cgc_collect();
  peak = gc_goal();
  ck_assert_uint_ge(peak, (uint64_t)60 << 20);
  c0 = collections();
  for (int i = 0; i < 4096 && collections() == c0; i++) {
    if (large)
      garbage(CHUNK);
    else
      garbage_small(CHUNK);
  }
  ck_assert_uint_gt(collections(), c0);           /* the heap reached the goal */
  for (int i = 0; i < NCHUNK; i++)
    chunks[i] = NULL;
  for (int i = 0; i < NSMALL; i++)
    small_chunks[i] = NULL;
  cgc_collect();
  cgc_collect();
  return peak;
}

static void setup_peak(int halflife_ms)
{
  char buf[32];

  snprintf(buf, sizeof buf, "%d", halflife_ms);
  ck_assert_int_eq(setenv("CGC_PEAK_HALFLIFE", buf, 1), 0);
  setup();
}

static void setup_peak_300ms(void) { setup_peak(300); }
static void setup_peak_off(void) { setup_peak(0); }

/* With a half-life of 300 ms, the goal stays near a peak of small objects
 * for a while: 16 MiB of garbage collects nothing.  Five half-lives later
 * the floor is a thirty-second of the peak and the goal is the GOGC
 * rule's again. */
START_TEST(peak_floor)
{
  uint64_t peak = reach_peak_then_drop(0), c0;

  ck_assert_uint_ge(gc_goal(), peak / 2);
  c0 = collections();
  garbage((size_t)16 << 20);
  ck_assert_uint_eq(collections(), c0);
  usleep(1500 * 1000);
  cgc_collect();
  ck_assert_uint_lt(gc_goal(), peak / 4);
  ck_assert(heap_ok());
}
END_TEST

/* no_floor_after -- after a peak (of large blocks if LARGE), the goal is
 * the GOGC rule's at once: 16 MiB of garbage collects. */
static void no_floor_after(int large)
{
  uint64_t peak = reach_peak_then_drop(large), c0;

  ck_assert_uint_lt(gc_goal(), peak / 4);
  c0 = collections();
  garbage((size_t)16 << 20);
  ck_assert_uint_gt(collections(), c0);
  ck_assert(heap_ok());
}

/* A peak of large blocks sets no floor: they are often not touched in
 * full, so their bytes say little about the resident heap. */
START_TEST(peak_floor_large) { no_floor_after(1); }
END_TEST

/* CGC_PEAK_HALFLIFE=0: no floor after a peak of small objects either. */
START_TEST(peak_floor_off) { no_floor_after(0); }
END_TEST

/* ---- statistics ---------------------------------------------------------------------- */

START_TEST(stats_move)
{
  cgc_stats_t a, b;
  void *p;

  cgc_get_stats(&a);
  ck_assert_uint_ge(a.threads, 1);
  ck_assert_uint_ge(a.heap_size, a.bytes_live);
  ck_assert_uint_ge(a.heap_reserved, a.heap_size);
  p = cgc_malloc(1000);
  cgc_get_stats(&b);
  ck_assert_uint_ge(b.bytes_allocated - a.bytes_allocated, 1000);
  ck_assert_uint_eq(b.objects_allocated - a.objects_allocated, 1);
  ck_assert_uint_eq(b.collections, a.collections);
  ck_assert_int_eq(cgc_free(p), CGC_OK);
  cgc_get_stats(&a);
  ck_assert_uint_eq(a.objects_freed - b.objects_freed, 1);
  ck_assert_uint_ge(a.bytes_freed - b.bytes_freed, 1000);
  /* collections and reclaimed garbage */
  for (int i = 0; i < 4; i++)
    tsup_new(&doomed[i], 200);
  tsup_collect(1);
  cgc_get_stats(&b);
  ck_assert_uint_eq(b.collections, a.collections + 1);
  ck_assert_uint_ge(b.objects_freed - a.objects_freed, 4);
  ck_assert_int_eq(tsup_count_freed(doomed, 4), 4);
  ck_assert_uint_ge(b.pause_total_ns, 1);
  /* the heap grows with live data */
  for (int i = 0; i < 128; i++)
    chunks[i] = cgc_malloc_atomic(CHUNK);
  cgc_get_stats(&a);
  ck_assert_uint_ge(a.heap_size, b.heap_size + 127 * CHUNK);
  ck_assert_uint_ge(a.bytes_allocated - b.bytes_allocated, 128 * CHUNK);
  tsup_collect(1);
  cgc_get_stats(&b);
  ck_assert_uint_ge(b.bytes_live, 128 * CHUNK);
  ck_assert_uint_ge(b.objects_live, 128 + LIVE_LEN);
  ck_assert(heap_ok());
}
END_TEST

/* ---- strict mode ---------------------------------------------------------------------- */

START_TEST(strict_aborts)
{
  char stack_buf[8];

  tsup_init(-1, 1, 1);
  cgc_free(stack_buf);
  ck_abort_msg("strict mode did not abort");
}
END_TEST

START_TEST(strict_env_aborts)
{
  ck_assert_int_eq(setenv("CGC_STRICT", "1", 1), 0);
  ck_assert_ptr_nonnull(cgc_malloc(8));           /* initialises */
  ck_assert_ptr_null(cgc_memalign(24, 8));
  ck_abort_msg("CGC_STRICT=1 did not abort");
}
END_TEST

/* The misuse is the process's first cgc call: CGC_STRICT=1 still holds. */
START_TEST(strict_env_first_call_aborts)
{
  ck_assert_int_eq(setenv("CGC_STRICT", "1", 1), 0);
  ck_assert_ptr_null(cgc_memalign(24, 8));
  ck_abort_msg("CGC_STRICT=1 did not abort a first-call misuse");
}
END_TEST

/* The message: one line, naming the function, on stderr of a child. */
START_TEST(strict_one_line)
{
  int fds[2], status;
  char buf[512];
  ssize_t got, total = 0;
  pid_t pid;

  ck_assert_int_eq(pipe(fds), 0);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    char stack_buf[8];
    cgc_config_t cfg = CGC_CONFIG_DEFAULT;

    dup2(fds[1], 2);
    close(fds[0]);
    cfg.on_demand = 1;
    cfg.strict = 1;
    cgc_init(&cfg);
    cgc_free(stack_buf);
    _exit(0);
  }
  close(fds[1]);
  while ((got = read(fds[0], buf + total, sizeof buf - 1 - (size_t)total)) > 0)
    total += got;
  close(fds[0]);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  ck_assert(WIFSIGNALED(status));
  ck_assert_int_eq(WTERMSIG(status), SIGABRT);
  buf[total] = 0;
  ck_assert_int_gt(total, 1);
  ck_assert_int_eq(buf[total - 1], '\n');
  ck_assert_ptr_eq(strchr(buf, '\n'), buf + total - 1);   /* one line */
  ck_assert_ptr_nonnull(strstr(buf, "cgc_free"));
}
END_TEST

static Suite *api_suite(void)
{
  Suite *s = suite_create("api");
  TCase *tc = tcase_create("api");
  TCase *tl = tcase_create("limits");
  TCase *ts = tcase_create("strict");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, strerror_every_code);
  tcase_add_test(tc, init_and_shutdown);
  tcase_add_test(tc, malloc_kinds);
  tcase_add_test(tc, malloc_zero_distinct);
  tcase_add_test(tc, calloc_cases);
  tcase_add_test(tc, realloc_cases);
  tcase_add_test(tc, strdup_cases);
  tcase_add_test(tc, memalign_cases);
  tcase_add_test(tc, usable_size_and_base_cases);
  tcase_add_test(tc, free_cases);
  tcase_add_test(tc, roots_api);
  tcase_add_test(tc, threads_api);
  tcase_add_test(tc, specials_api);
  tcase_add_test(tc, callbacks_on_demand);
  tcase_add_test(tc, debug_api);
  tcase_add_test(tc, error_hook_cases);
  tcase_add_test(tc, stats_move);
  suite_add_tcase(s, tc);

  tcase_add_checked_fixture(tl, setup, NULL);
  tcase_set_timeout(tl, 30);
  tcase_add_test(tl, heap_limit_and_oom);
  tcase_add_test(tl, disable_enable);
  tcase_add_test(tl, gc_percent);
  suite_add_tcase(s, tl);

  TCase *tp = tcase_create("peak");
  tcase_add_checked_fixture(tp, setup_peak_300ms, NULL);
  tcase_set_timeout(tp, 30);
  tcase_add_test(tp, peak_floor);
  tcase_add_test(tp, peak_floor_large);
  suite_add_tcase(s, tp);
  TCase *tq = tcase_create("peak_off");
  tcase_add_checked_fixture(tq, setup_peak_off, NULL);
  tcase_set_timeout(tq, 30);
  tcase_add_test(tq, peak_floor_off);
  suite_add_tcase(s, tq);

  tcase_set_timeout(ts, 30);
  tcase_add_test_raise_signal(ts, strict_aborts, SIGABRT);
  tcase_add_test_raise_signal(ts, strict_env_aborts, SIGABRT);
  tcase_add_test_raise_signal(ts, strict_env_first_call_aborts, SIGABRT);
  tcase_add_test(ts, strict_one_line);
  suite_add_tcase(s, ts);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, api_suite);
}
