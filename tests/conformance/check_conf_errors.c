/* check_conf_errors.c -- conformance: validation, explicit free, strict
 * mode and the debug checker.
 *
 * Covers spec sections 2.2, 3.2, 5.4, 10.4, 10.5 and 10.8: every error
 * code of cgc_set_finalizer (NULL, stack / static / libc-malloc pointers,
 * interior and one-past-the-end pointers, a second finalizer), of
 * cgc_add_cleanup (NULL ptr or fn, non-heap, arg == ptr) and of
 * cgc_weak_make, with nothing registered on failure; the error hook;
 * cgc_free (NULL, interior, non-heap, double free, EBUSY with a finalizer
 * and the object left intact, cleanups queued and weak pointers cleared at
 * once, no collection needed); strict mode (every misuse aborts, checked
 * with forked death tests, and the one-line messages of section 10.4,
 * checked on the captured stderr of a child); the finalizer checker's
 * reports, its per-collection line, and its abort in strict mode.
 */
#define _GNU_SOURCE
#include <check.h>
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

static tsup_obj_t o[4];
static atomic_int nfin, ncln;
static char static_buf[64];

static void fin_count(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_fetch_add(&nfin, 1);
}

static void cln_count(void *arg)
{
  (void)arg;
  atomic_fetch_add(&ncln, 1);
}

/* ---- validation (error codes) ------------------------------------------- */

START_TEST(err_set_finalizer_codes)
{
  char stack_buf[64];
  void *m = malloc(64);
  cgc_stats_t s0, s1;

  ck_assert_ptr_nonnull(m);
  tsup_new(&o[0], 64);
  cgc_get_stats(&s0);
  ck_assert_int_eq(cgc_set_finalizer(NULL, fin_count, NULL), CGC_EINVAL);
  ck_assert_int_eq(cgc_set_finalizer(stack_buf, fin_count, NULL), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_set_finalizer(static_buf, fin_count, NULL),
                   CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_set_finalizer(m, fin_count, NULL), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_set_finalizer((void *)fin_count, fin_count, NULL),
                   CGC_ENOTHEAP);                        /* code */
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.finalizers_registered, s0.finalizers_registered);
  free(m);
}
END_TEST

/* Interior / one-past-end / second registration: done deep. */
static atomic_int rc_interior = 99, rc_end = 99, rc_first = 99, rc_second = 99;

static void fin_codes_deep(void *ctx)
{
  char *p = tsup_unhide(o[0].hid);

  (void)ctx;
  atomic_store(&rc_interior, cgc_set_finalizer(p + 8, fin_count, NULL));
  atomic_store(&rc_end, cgc_set_finalizer(p + 64, fin_count, NULL));
  atomic_store(&rc_first, cgc_set_finalizer(p, fin_count, NULL));
  atomic_store(&rc_second, cgc_set_finalizer(p, fin_count, NULL));
}

START_TEST(err_set_finalizer_not_base_and_eexist)
{
  cgc_stats_t s0, s1;

  tsup_new(&o[0], 64);
  cgc_get_stats(&s0);
  tsup_deep(fin_codes_deep, NULL);
  cgc_get_stats(&s1);
  ck_assert_int_eq(tsup_get(&rc_interior), CGC_ENOTBASE);
  ck_assert_int_eq(tsup_get(&rc_end), CGC_ENOTBASE);
  ck_assert_int_eq(tsup_get(&rc_first), CGC_OK);
  ck_assert_int_eq(tsup_get(&rc_second), CGC_EEXIST);
  ck_assert_uint_eq(s1.finalizers_registered - s0.finalizers_registered, 1);
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&nfin), 1);
}
END_TEST

START_TEST(err_add_cleanup_codes)
{
  char stack_buf[64];
  void *m = malloc(64);
  cgc_stats_t s0, s1;
  cgc_cleanup_t h;

  ck_assert_ptr_nonnull(m);
  tsup_new(&o[0], 64);
  cgc_get_stats(&s0);
  ck_assert_int_eq(cgc_add_cleanup(NULL, cln_count, NULL, &h), CGC_EINVAL);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, NULL, NULL, &h), CGC_EINVAL);
  ck_assert_int_eq(cgc_add_cleanup(stack_buf, cln_count, NULL, &h),
                   CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_add_cleanup(static_buf, cln_count, NULL, &h),
                   CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_add_cleanup(m, cln_count, NULL, &h), CGC_ENOTHEAP);
  ck_assert_int_eq(tsup_add_cln_obj(&o[0], 8, cln_count, &o[0], 8, &h),
                   CGC_EARGPTR);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.cleanups_registered, s0.cleanups_registered);
  tsup_collect_wait(2);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  free(m);
}
END_TEST

START_TEST(err_weak_make_codes)
{
  char stack_buf[64];
  void *m = malloc(64);
  cgc_weak_t w;

  ck_assert_ptr_nonnull(m);
  ck_assert_int_eq(cgc_weak_make(stack_buf, &w), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_weak_make(static_buf, &w), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_weak_make(m, &w), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_weak_make_long(stack_buf, &w), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_weak_make_long(m, &w), CGC_ENOTHEAP);
  free(m);
}
END_TEST

static atomic_int hook_calls, hook_last_err;
static char hook_funcs[8][64];

static void error_hook(int err, const char *func, const char *msg)
{
  int k = atomic_fetch_add(&hook_calls, 1);

  (void)msg;
  atomic_store(&hook_last_err, err);
  if (k < 8 && func != NULL)
    snprintf(hook_funcs[k], sizeof hook_funcs[k], "%s", func);
}

START_TEST(err_hook_called_on_misuse)
{
  char stack_buf[64];

  cgc_set_error_hook(error_hook);
  ck_assert_int_eq(cgc_set_finalizer(NULL, fin_count, NULL), CGC_EINVAL);
  ck_assert_int_eq(tsup_get(&hook_last_err), CGC_EINVAL);
  ck_assert_int_eq(cgc_add_cleanup(stack_buf, cln_count, NULL, NULL),
                   CGC_ENOTHEAP);
  ck_assert_int_eq(tsup_get(&hook_last_err), CGC_ENOTHEAP);
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_free(&o[0], 8), CGC_ENOTBASE);
  ck_assert_int_eq(tsup_get(&hook_last_err), CGC_ENOTBASE);
  ck_assert_int_eq(tsup_get(&hook_calls), 3);
  ck_assert_ptr_nonnull(strstr(hook_funcs[0], "cgc_set_finalizer"));
  ck_assert_ptr_nonnull(strstr(hook_funcs[1], "cgc_add_cleanup"));
  ck_assert_ptr_nonnull(strstr(hook_funcs[2], "cgc_free"));
}
END_TEST

START_TEST(err_strerror_texts)
{
  static const int codes[] = { CGC_OK, CGC_EINVAL, CGC_ENOTHEAP, CGC_ENOTBASE,
                               CGC_EEXIST, CGC_EARGPTR, CGC_EBUSY, CGC_ENOMEM,
                               CGC_EDEADLK };

  for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
    const char *s = cgc_strerror(codes[i]);
    ck_assert_ptr_nonnull(s);
    ck_assert(s[0] != '\0');
    for (size_t j = 0; j < i; j++)
      ck_assert_str_ne(s, cgc_strerror(codes[j]));
  }
}
END_TEST

/* ---- cgc_free (section 10.8) ------------------------------------------------ */

START_TEST(free_null_ok)
{
  ck_assert_int_eq(cgc_free(NULL), CGC_OK);
}
END_TEST

START_TEST(free_interior_and_not_heap)
{
  char stack_buf[64];
  void *m = malloc(64);

  ck_assert_ptr_nonnull(m);
  tsup_new(&o[0], 64);
  tsup_root(0, &o[0], 0);
  ck_assert_int_eq(tsup_free(&o[0], 8), CGC_ENOTBASE);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 1);
  ck_assert_int_eq(cgc_free(stack_buf), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_free(static_buf), CGC_ENOTHEAP);
  ck_assert_int_eq(cgc_free(m), CGC_ENOTHEAP);
  free(m);
}
END_TEST

START_TEST(free_double_free_einval)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_free(&o[0], 0), CGC_OK);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_free(&o[0], 0), CGC_EINVAL);
}
END_TEST

START_TEST(free_finalizable_ebusy)
{
  tsup_new(&o[0], 64);
  tsup_fill(&o[0], 0, 0x66);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_free(&o[0], 0), CGC_EBUSY);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_obj_check_fill(&o[0], 0, 0x66), 1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 1);
  /* still finalizable */
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  /* after clearing, the free succeeds */
  tsup_new(&o[1], 64);
  ck_assert_int_eq(tsup_set_fin(&o[1], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_free(&o[1], 0), CGC_EBUSY);
  ck_assert_int_eq(tsup_set_fin(&o[1], NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_free(&o[1], 0), CGC_OK);
  ck_assert_int_eq(o[1].freed, 1);
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&nfin), 1);
}
END_TEST

static atomic_int count_by_arg[4];

static void cln_index(void *arg)
{
  atomic_fetch_add(&count_by_arg[(uintptr_t)arg & 3], 1);
  atomic_fetch_add(&ncln, 1);
}

START_TEST(free_queues_cleanups_and_clears_weak)
{
  cgc_cleanup_t h1, h2;
  cgc_weak_t w8, wl;
  cgc_stats_t s0, s1;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_index, (void *)1, &h1), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 32, cln_index, (void *)2, &h2), CGC_OK);
  ck_assert_int_eq(tsup_weak(&o[0], 8, &w8), CGC_OK);
  ck_assert_int_eq(tsup_weak_long(&o[0], 16, &wl), CGC_OK);
  tsup_root(0, &o[0], 0);
  cgc_get_stats(&s0);
  ck_assert_int_eq(tsup_free(&o[0], 0), CGC_OK);
  tsup_unroot(0);
  cgc_get_stats(&s1);
  ck_assert_int_eq(o[0].freed, 1);                 /* at once */
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);
  ck_assert_int_eq(tsup_weak_live(w8), 0);
  ck_assert_int_eq(tsup_weak_live(wl), 0);
  ck_assert_uint_eq(s1.cleanups_queued - s0.cleanups_queued, 2);
  ck_assert_uint_eq(s1.collections, s0.collections);
  ck_assert(!cgc_cleanup_stop(h1));                /* already queued */
  tsup_wait();
  ck_assert_int_eq(tsup_get(&count_by_arg[1]), 1);
  ck_assert_int_eq(tsup_get(&count_by_arg[2]), 1);
  ck_assert(!cgc_cleanup_stop(h2));
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&ncln), 2);
}
END_TEST

/* ---- strict mode --------------------------------------------------------- */

/* Each case commits one misuse.  No Check assertions here: the cases also
 * run in a plain forked child whose stderr is captured. */
enum { NMISUSE = 15 };

static const char *const misuse_msg[NMISUSE] = {
  "cgc_set_finalizer: first argument is nil",
  "cgc_set_finalizer: pointer not in allocated block",
  "cgc_set_finalizer: pointer not in allocated block",
  "cgc_set_finalizer: pointer not in allocated block",
  "cgc_set_finalizer: pointer not at beginning of allocated block",
  "cgc_set_finalizer: finalizer already set",
  "cgc_add_cleanup: ptr is nil",
  "cgc_add_cleanup: ptr not in allocated block",
  "cgc_add_cleanup: ptr is equal to arg, cleanup will never run",
  "cgc_free: object has a finalizer",
  NULL, NULL, NULL, NULL, NULL,
};

static TSUP_NOINLINE void misuse(int k)
{
  char stack_buf[64];
  char *p = cgc_malloc(64);
  void *m = malloc(64);

  switch (k) {
  case 0: cgc_set_finalizer(NULL, fin_count, NULL); break;
  case 1: cgc_set_finalizer(stack_buf, fin_count, NULL); break;
  case 2: cgc_set_finalizer(static_buf, fin_count, NULL); break;
  case 3: cgc_set_finalizer(m, fin_count, NULL); break;
  case 4: cgc_set_finalizer(p + 16, fin_count, NULL); break;
  case 5:
    cgc_set_finalizer(p, fin_count, NULL);
    cgc_set_finalizer(p, fin_count, NULL);
    break;
  case 6: cgc_add_cleanup(NULL, cln_count, NULL, NULL); break;
  case 7: cgc_add_cleanup(stack_buf, cln_count, NULL, NULL); break;
  case 8: cgc_add_cleanup(p, cln_count, p, NULL); break;
  case 9:
    cgc_set_finalizer(p, fin_count, NULL);
    cgc_free(p);
    break;
  case 10: cgc_free(p + 8); break;
  case 11: cgc_free(m); break;
  case 12:
    cgc_free(p);
    cgc_free(p);
    break;
  case 13: cgc_add_cleanup(p, NULL, NULL, NULL); break;
  case 14: { cgc_weak_t w; cgc_weak_make(stack_buf, &w); break; }
  }
  CGC_KEEP_ALIVE(p);
  CGC_KEEP_ALIVE(m);
  CGC_KEEP_ALIVE(stack_buf);
}

START_TEST(strict_misuse_aborts)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;

  cfg.strict = 1;
  cgc_init(&cfg);
  misuse(_i);
}
END_TEST

/* Run FN(K) in a forked child with stderr captured into BUF. */
static int run_captured(void (*fn)(int), int k, char *buf, size_t cap)
{
  int fds[2], status = 0;
  size_t len = 0;
  pid_t pid;

  ck_assert_int_eq(pipe(fds), 0);
  fflush(stderr);
  pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    fn(k);
    _exit(0);
  }
  close(fds[1]);
  for (;;) {
    ssize_t r = read(fds[0], buf + len, cap - 1 - len);
    if (r <= 0)
      break;
    len += (size_t)r;
    if (len == cap - 1)
      break;
  }
  buf[len] = '\0';
  close(fds[0]);
  ck_assert_int_eq(waitpid(pid, &status, 0), pid);
  return status;
}

static void strict_child(int k)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;

  cfg.strict = 1;
  cgc_init(&cfg);
  misuse(k);
}

START_TEST(strict_misuse_message)
{
  char buf[8192];
  int st = run_captured(strict_child, _i, buf, sizeof buf);

  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                "case %d: status %#x, stderr: %s", _i, st, buf);
  ck_assert_msg(strstr(buf, misuse_msg[_i]) != NULL,
                "case %d: expected \"%s\" on stderr, got: %s", _i,
                misuse_msg[_i], buf);
}
END_TEST

/* ---- the finalizer checker (section 10.5) ------------------------------- */

static TSUP_NOINLINE void checker_scenario(int k)
{
  char *p = cgc_malloc(64), *q = cgc_malloc(64);

  switch (k) {
  case 0: /* data reaches the object */
    cgc_set_finalizer(p, fin_count, p);
    break;
  case 1: /* the object reaches itself */
    *(void **)p = p;
    cgc_set_finalizer(p, fin_count, NULL);
    break;
  case 2: /* cleanup arg reaches the object */
    *(void **)q = p;
    cgc_add_cleanup(p, cln_count, q, NULL);
    break;
  case 3: /* clean registrations */
    cgc_set_finalizer(p, fin_count, NULL);
    cgc_add_cleanup(q, cln_count, NULL, NULL);
    break;
  }
  p = q = NULL;
}

static void checker_child(int k)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;

  cfg.checkfinalizers = 1;
  cfg.strict = k >= 4;
  cgc_init(&cfg);
  cgc_set_gc_percent(-1);
  checker_scenario(k % 4);
  tsup_scrub();
  cgc_collect();
  tsup_scrub();
  cgc_collect();
  tsup_scrub();
  cgc_collect();
  cgc_wait_idle(TSUP_WAIT_NS);
}

static int count_lines_with(const char *buf, const char *needle)
{
  int n = 0;

  for (const char *s = strstr(buf, needle); s; s = strstr(s + 1, needle))
    n++;
  return n;
}

START_TEST(checker_reports)
{
  static const char *const want[3] = {
    "is reachable from finalizer",
    "is reachable from finalizer",
    "is reachable from cleanup or cleanup argument",
  };
  char buf[16384];
  int st = run_captured(checker_child, _i, buf, sizeof buf);

  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "case %d: status %#x, stderr: %s", _i, st, buf);
  ck_assert_int_eq(count_lines_with(buf, "cgc checkfinalizers: finalizers queued="),
                   3);
  if (_i < 3) {
    ck_assert_msg(strstr(buf, want[_i]) != NULL, "case %d: %s", _i, buf);
    ck_assert_msg(strstr(buf, "value at ") != NULL, "case %d: %s", _i, buf);
  } else {
    ck_assert_msg(strstr(buf, "is reachable from") == NULL, "%s", buf);
  }
}
END_TEST

START_TEST(checker_strict_aborts)
{
  char buf[16384];
  int st = run_captured(checker_child, 4 + _i, buf, sizeof buf);

  ck_assert_msg(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT,
                "case %d: status %#x, stderr: %s", _i, st, buf);
  ck_assert_msg(strstr(buf, "detected possible issues with cleanups and/or "
                            "finalizers") != NULL, "%s", buf);
}
END_TEST

static Suite *errors_suite(void)
{
  Suite *s = suite_create("conf_errors");
  TCase *tc = tcase_create("validation");
  TCase *tf = tcase_create("free");
  TCase *ts = tcase_create("strict");
  TCase *tk = tcase_create("checker");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, err_set_finalizer_codes);
  tcase_add_test(tc, err_set_finalizer_not_base_and_eexist);
  tcase_add_test(tc, err_add_cleanup_codes);
  tcase_add_test(tc, err_weak_make_codes);
  tcase_add_test(tc, err_hook_called_on_misuse);
  tcase_add_test(tc, err_strerror_texts);
  suite_add_tcase(s, tc);

  tcase_add_checked_fixture(tf, tsup_setup_default, NULL);
  tcase_set_timeout(tf, 60);
  tcase_add_test(tf, free_null_ok);
  tcase_add_test(tf, free_interior_and_not_heap);
  tcase_add_test(tf, free_double_free_einval);
  tcase_add_test(tf, free_finalizable_ebusy);
  tcase_add_test(tf, free_queues_cleanups_and_clears_weak);
  suite_add_tcase(s, tf);

  tcase_set_timeout(ts, 60);
  tcase_add_loop_test_raise_signal(ts, strict_misuse_aborts, SIGABRT, 0,
                                   NMISUSE);
  tcase_add_loop_test(ts, strict_misuse_message, 0, 10);
  suite_add_tcase(s, ts);

  tcase_set_timeout(tk, 60);
  tcase_add_loop_test(tk, checker_reports, 0, 4);
  tcase_add_loop_test(tk, checker_strict_aborts, 0, 3);
  suite_add_tcase(s, tk);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, errors_suite);
}
