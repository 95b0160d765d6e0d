/* check_conf_mixed.c -- conformance: objects with both a finalizer and
 * cleanups.
 *
 * Covers spec section 4 (and the M3 step of section 1.1): the cleanups of
 * a finalizable object stay attached when its finalizer is queued, and run
 * only after finalization and a later death without a finalizer (the
 * storage then comes back in the same collection); re-arming delays them
 * again; permanent resurrection means they never run, until the object
 * dies later; they can still be stopped (true) while the finalizer is
 * queued or after it ran; a finalizer may add a cleanup to its own object.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cgc.h"
#include "tsup.h"

static tsup_obj_t o[4];
static atomic_int nfin, ncln, add_rc = 1;
static void *volatile resurrected;

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

START_TEST(mixed_cleanups_run_after_finalization_and_later_death)
{
  cgc_stats_t s0, s1;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 16, cln_count, NULL, NULL), CGC_OK);
  cgc_get_stats(&s0);
  tsup_collect(1);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.finalizers_queued - s0.finalizers_queued, 1);
  ck_assert_uint_eq(s1.cleanups_queued - s0.cleanups_queued, 0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  ck_assert_int_eq(o[0].freed, 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 2);
  ck_assert_int_eq(tsup_get(&nfin), 1);
}
END_TEST

static void fin_rearm(void *obj, void *data)
{
  if (atomic_fetch_add(&nfin, 1) + 1 < 3)
    cgc_set_finalizer(obj, fin_rearm, data);
}

START_TEST(mixed_rearming_delays_cleanups)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_rearm, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 8, cln_count, NULL, NULL), CGC_OK);
  for (int k = 1; k <= 3; k++) {
    tsup_collect_wait(1);
    ck_assert_int_eq(tsup_get(&nfin), k);
    ck_assert_int_eq(tsup_get(&ncln), 0);
    ck_assert_int_eq(o[0].freed, 0);
  }
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

static void fin_resurrect(void *obj, void *data)
{
  (void)data;
  resurrected = obj;
  atomic_fetch_add(&nfin, 1);
}

static TSUP_NOINLINE void drop_resurrected(void) { resurrected = NULL; }

START_TEST(mixed_resurrection_keeps_cleanups_pending)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_resurrect, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_collect_wait(4);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  ck_assert_int_eq(o[0].freed, 0);
  drop_resurrected();
  tsup_collect(1);                 /* dies now without a finalizer */
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
}
END_TEST

START_TEST(mixed_stop_while_finalizer_queued)
{
  cgc_cleanup_t h;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, &h), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  ck_assert(cgc_cleanup_stop(h));  /* still registered, not queued */
  ck_assert(!cgc_cleanup_stop(h));
  cgc_pause_callbacks(0);
  tsup_collect_wait(3);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

START_TEST(mixed_stop_after_finalizer_ran)
{
  cgc_cleanup_t h;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, &h), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert(cgc_cleanup_stop(h));
  tsup_collect_wait(2);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
}
END_TEST

static void fin_add_cleanup(void *obj, void *data)
{
  (void)data;
  atomic_store(&add_rc, cgc_add_cleanup((char *)obj + 8, cln_count, NULL,
                                        NULL));
  atomic_fetch_add(&nfin, 1);
}

START_TEST(mixed_finalizer_adds_cleanup_to_its_object)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_add_cleanup, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&add_rc), CGC_OK);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

static Suite *mixed_suite(void)
{
  Suite *s = suite_create("conf_mixed");
  TCase *tc = tcase_create("mixed");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, mixed_cleanups_run_after_finalization_and_later_death);
  tcase_add_test(tc, mixed_rearming_delays_cleanups);
  tcase_add_test(tc, mixed_resurrection_keeps_cleanups_pending);
  tcase_add_test(tc, mixed_stop_while_finalizer_queued);
  tcase_add_test(tc, mixed_stop_after_finalizer_ran);
  tcase_add_test(tc, mixed_finalizer_adds_cleanup_to_its_object);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, mixed_suite);
}
