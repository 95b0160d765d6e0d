/* check_conf_stats.c -- conformance: statistics and volume.
 *
 * Covers spec sections 7, 10.1 and 10.8: the cgc_stats_t counters count
 * exactly (finalizers registered / queued / run, cleanups registered /
 * queued / run / cancelled, weak handles created / cleared, collections,
 * including collections started from callbacks, and the instantaneous
 * queue lengths), and 10^6 callbacks (half finalizers, half cleanups) all
 * run exactly once.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cgc.h"
#include "tsup.h"

static tsup_obj_t o[8];
static atomic_int nfin, ncln;

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

#define D(field) (s1.field - s0.field)

START_TEST(stats_counters_exact)
{
  cgc_stats_t s0, s1;
  cgc_cleanup_t h_c1, h_c2;
  cgc_weak_t w8, w16;
  enum { F0, F1, F2, F3, C0, C1, C2 };

  cgc_get_stats(&s0);
  for (int i = F0; i <= C2; i++)
    tsup_new(&o[i], 64);                       /* one weak handle each */
  for (int i = F0; i <= F3; i++)
    ck_assert_int_eq(tsup_set_fin(&o[i], fin_count, NULL), CGC_OK);
  tsup_root(0, &o[F3], 0);
  tsup_root(1, &o[C2], 0);
  ck_assert_int_eq(tsup_add_cln(&o[C0], 0, cln_count, NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[C0], 8, cln_count, NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[C1], 0, cln_count, NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[C1], 0, cln_count, NULL, &h_c1), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[C2], 0, cln_count, NULL, &h_c2), CGC_OK);
  ck_assert(cgc_cleanup_stop(h_c1));
  ck_assert(cgc_cleanup_stop(h_c2));
  ck_assert(!cgc_cleanup_stop(h_c2));          /* not counted again */
  ck_assert_int_eq(tsup_weak(&o[C0], 8, &w8), CGC_OK);
  ck_assert_int_eq(tsup_weak(&o[C0], 16, &w16), CGC_OK);

  cgc_get_stats(&s1);
  ck_assert_uint_eq(D(finalizers_registered), 4);
  ck_assert_uint_eq(D(cleanups_registered), 5);
  ck_assert_uint_eq(D(cleanups_cancelled), 2);
  ck_assert_uint_eq(D(weak_created), 9);
  ck_assert_uint_eq(D(finalizers_queued), 0);
  ck_assert_uint_eq(D(cleanups_queued), 0);
  ck_assert_uint_eq(D(weak_cleared), 0);
  ck_assert_uint_eq(D(collections), 0);

  cgc_pause_callbacks(1);
  tsup_collect(1);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(D(collections), 1);
  ck_assert_uint_eq(D(finalizers_queued), 3);
  ck_assert_uint_eq(D(cleanups_queued), 3);
  ck_assert_uint_eq(s1.fin_queue_len, 3);
  ck_assert_uint_eq(s1.cln_queue_len, 3);
  ck_assert_uint_eq(D(weak_cleared), 3 + 3 + 1);
  ck_assert_uint_eq(D(finalizers_run), 0);
  ck_assert_uint_eq(D(cleanups_run), 0);
  ck_assert_uint_ge(D(objects_freed), 2);
  ck_assert_uint_ge(D(bytes_freed), 2 * 64);

  cgc_pause_callbacks(0);
  tsup_wait();
  cgc_get_stats(&s1);
  ck_assert_uint_eq(D(finalizers_run), 3);
  ck_assert_uint_eq(D(cleanups_run), 3);
  ck_assert_uint_eq(s1.fin_queue_len, 0);
  ck_assert_uint_eq(s1.cln_queue_len, 0);
  ck_assert_int_eq(tsup_get(&nfin), 3);
  ck_assert_int_eq(tsup_get(&ncln), 3);

  tsup_collect(2);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(D(collections), 3);
  ck_assert_uint_eq(D(finalizers_registered), 4);
  ck_assert_uint_eq(D(finalizers_queued), 3);
  ck_assert_uint_eq(D(finalizers_run), 3);
  ck_assert_uint_eq(D(cleanups_registered), 5);
  ck_assert_uint_eq(D(cleanups_queued), 3);
  ck_assert_uint_eq(D(cleanups_run), 3);
  ck_assert_uint_eq(D(cleanups_cancelled), 2);
  ck_assert_uint_eq(D(weak_created), 9);
  ck_assert_uint_eq(D(weak_cleared), 7);
  ck_assert_uint_ge(D(objects_freed), 5);
  ck_assert_uint_ge(D(bytes_freed), 5 * 64);
  ck_assert_int_eq(tsup_count_freed(o, 7), 5);
}
END_TEST

static void fin_collects(void *obj, void *data)
{
  (void)obj;
  (void)data;
  cgc_collect();
  cgc_collect();
  atomic_fetch_add(&nfin, 1);
}

START_TEST(stats_collections_exact)
{
  cgc_stats_t s0, s1;

  cgc_get_stats(&s0);
  tsup_collect(5);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(D(collections), 5);
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_collects, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(D(collections), 5 + 1 + 2);
}
END_TEST

/* ---- volume ------------------------------------------------------------------ */

#define NMILLION 1000000

static void make_million(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < NMILLION; i++) {
    void *p = cgc_malloc(16);

    ck_assert_ptr_nonnull(p);
    if (i % 2 == 0)
      ck_assert_int_eq(cgc_set_finalizer(p, fin_count, NULL), CGC_OK);
    else
      ck_assert_int_eq(cgc_add_cleanup(p, cln_count, NULL, NULL), CGC_OK);
  }
}

START_TEST(stats_million_callbacks_all_run)
{
  cgc_stats_t s0, s1;

  cgc_get_stats(&s0);
  tsup_deep(make_million, NULL);
  tsup_collect_wait(1);
  cgc_get_stats(&s1);
  ck_assert_int_eq(tsup_get(&nfin), NMILLION / 2);
  ck_assert_int_eq(tsup_get(&ncln), NMILLION / 2);
  ck_assert_uint_eq(D(finalizers_registered), NMILLION / 2);
  ck_assert_uint_eq(D(finalizers_run), NMILLION / 2);
  ck_assert_uint_eq(D(cleanups_registered), NMILLION / 2);
  ck_assert_uint_eq(D(cleanups_run), NMILLION / 2);
  tsup_collect(1);
  cgc_get_stats(&s1);
  /* Reclamation in bulk: a bound (a stray register copy may pin one or
   * two objects); the callback counts above are exact. */
  ck_assert_uint_ge(D(objects_freed), NMILLION - 16);
}
END_TEST

static Suite *stats_suite(void)
{
  Suite *s = suite_create("conf_stats");
  TCase *tc = tcase_create("stats");
  TCase *tv = tcase_create("volume");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, stats_counters_exact);
  tcase_add_test(tc, stats_collections_exact);
  suite_add_tcase(s, tc);

  tcase_add_checked_fixture(tv, tsup_setup_default, NULL);
  tcase_set_timeout(tv, 240);
  tcase_add_test(tv, stats_million_callbacks_all_run);
  suite_add_tcase(s, tv);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, stats_suite);
}
