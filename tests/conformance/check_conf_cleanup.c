/* check_conf_cleanup.c -- conformance: non-resurrecting cleanups (CLN).
 *
 * Covers spec sections 1, 3 and 10.2-10.3: a cleanup runs exactly once
 * with its arg, and its object is reclaimed by the collection that queues
 * it; several cleanups on one object (same or different interior
 * pointers) all run; interior and one-past-the-end pointers keep objects
 * alive; cycles and self-loops with cleanups are collected in one
 * collection, and the dead object's referents die with it; arg is a root
 * until the cleanup returned; arg == ptr is refused with CGC_EARGPTR and
 * registers nothing; arg reaching the object is accepted and leaks;
 * cgc_cleanup_stop before the decision (true, never runs), after queueing
 * (false, runs once), repeated, zero and stale handles; handles hold only
 * an id, so storing them does not keep objects alive; small objects are
 * never batched into one block.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cgc.h"
#include "tsup.h"

#define NOBJ 8
#define NMANY 200

static tsup_obj_t o[NOBJ];
static tsup_obj_t many[NMANY];
static atomic_int ncln;
static atomic_int count_by_arg[NMANY + 1];
static atomic_uintptr_t last_arg;
static atomic_int entered, release, seen_fill_ok;

static void cln_count(void *arg)
{
  atomic_store(&last_arg, (uintptr_t)arg);
  atomic_fetch_add(&ncln, 1);
}

/* arg is a small integer 1..NMANY. */
static void cln_index(void *arg)
{
  uintptr_t i = (uintptr_t)arg;

  if (i <= NMANY)
    atomic_fetch_add(&count_by_arg[i], 1);
  atomic_fetch_add(&ncln, 1);
}

#define IDX(i) ((void *)(uintptr_t)(i))

/* ---- basic ------------------------------------------------------------------- */

START_TEST(cln_runs_once_object_freed_in_same_collection)
{
  cgc_cleanup_t h;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, IDX(0x1234), &h),
                   CGC_OK);
  ck_assert(h.id != 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert(atomic_load(&last_arg) == 0x1234);
  tsup_collect_wait(3);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(cln_several_on_one_object_all_run)
{
  int n = _i;
  cgc_cleanup_t h[16];

  tsup_new(&o[0], 64);
  for (int i = 1; i <= n; i++) {
    size_t off = (size_t)(i % 3) * 8 * (size_t)(i % 2);  /* repeats offsets */
    ck_assert_int_eq(tsup_add_cln(&o[0], off, cln_index, IDX(i), &h[i]),
                     CGC_OK);
    for (int j = 1; j < i; j++)
      ck_assert(h[j].id != h[i].id);
  }
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), n);
  for (int i = 1; i <= n; i++)
    ck_assert_int_eq(tsup_get(&count_by_arg[i]), 1);
}
END_TEST

START_TEST(cln_out_handle_may_be_null)
{
  tsup_new(&o[0], 32);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

/* ---- interior pointers ----------------------------------------------------------- */

START_TEST(cln_interior_pointer)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 40, cln_count, NULL, NULL), CGC_OK);
  tsup_root(0, &o[0], 40);                 /* only an interior pointer */
  tsup_collect_wait(2);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  tsup_unroot(0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(cln_one_past_end_pointer_keeps_alive)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 63, cln_count, NULL, NULL), CGC_OK);
  tsup_root(0, &o[0], 64);                 /* base + size */
  tsup_collect_wait(2);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  tsup_unroot(0);
  tsup_collect_wait(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(cln_interior_heap_reference_keeps_alive)
{
  tsup_new(&o[0], 64);                     /* holder, rooted */
  tsup_new(&o[1], 64);                     /* target */
  tsup_link_interior(&o[0], 0, &o[1], 24);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_root(0, &o[0], 0);
  tsup_collect_wait(2);
  ck_assert_int_eq(o[1].freed, 0);
  tsup_link(&o[0], 0, NULL);
  tsup_collect_wait(1);
  ck_assert_int_eq(o[1].freed, 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

/* ---- graphs: collected in one collection ---------------------------------------- */

START_TEST(cln_two_cycle_collected_in_one_collection)
{
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  tsup_link(&o[0], 0, &o[1]);
  tsup_link(&o[1], 0, &o[0]);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_index, IDX(1), NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 8, cln_index, IDX(2), NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_count_freed(o, 2), 2);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&count_by_arg[1]), 1);
  ck_assert_int_eq(tsup_get(&count_by_arg[2]), 1);
}
END_TEST

START_TEST(cln_self_loop_collected_in_one_collection)
{
  tsup_new(&o[0], 64);
  tsup_link(&o[0], 0, &o[0]);
  tsup_link_interior(&o[0], 1, &o[0], 32);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(cln_chain_collected_in_one_collection)
{
  for (int i = 0; i < 4; i++) {
    tsup_new(&o[i], 64);
    ck_assert_int_eq(tsup_add_cln(&o[i], 0, cln_index, IDX(i + 1), NULL),
                     CGC_OK);
  }
  for (int i = 0; i < 3; i++)
    tsup_link(&o[i], 0, &o[i + 1]);
  tsup_collect(1);
  ck_assert_int_eq(tsup_count_freed(o, 4), 4);
  tsup_wait();
  for (int i = 1; i <= 4; i++)
    ck_assert_int_eq(tsup_get(&count_by_arg[i]), 1);
}
END_TEST

START_TEST(cln_referents_not_retained)
{
  tsup_new(&o[0], 64);                    /* with a cleanup */
  tsup_new(&o[1], 64);                    /* plain referents */
  tsup_new(&o[2], 64);
  tsup_link(&o[0], 0, &o[1]);
  tsup_link(&o[1], 0, &o[2]);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_count_freed(o, 3), 3);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

/* ---- arg -------------------------------------------------------------------------- */

static void cln_arg_block(void *arg)
{
  atomic_store(&entered, 1);
  for (int i = 0; i < 60000 && !atomic_load(&release); i++)
    tsup_sleep_ms(1);
  atomic_store(&seen_fill_ok, tsup_check_fill(arg, 0, 64, 0x44));
  atomic_fetch_add(&ncln, 1);
}

START_TEST(cln_arg_alive_until_cleanup_returns)
{
  tsup_new(&o[0], 64);                    /* X */
  tsup_new(&o[1], 64);                    /* D, reachable only from arg */
  tsup_fill(&o[1], 0, 0x44);
  ck_assert_int_eq(tsup_add_cln_obj(&o[0], 0, cln_arg_block, &o[1], 0, NULL),
                   CGC_OK);
  tsup_root(0, &o[0], 0);
  tsup_collect_wait(2);                   /* registered: arg is a root */
  ck_assert_int_eq(o[1].freed, 0);
  tsup_unroot(0);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(o[1].freed, 0);
  tsup_collect(2);                        /* queued: still a root */
  ck_assert_int_eq(o[1].freed, 0);
  cgc_pause_callbacks(0);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  tsup_collect(2);                        /* running: still a root */
  ck_assert_int_eq(o[1].freed, 0);
  atomic_store(&release, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&seen_fill_ok), 1);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);
}
END_TEST

START_TEST(cln_arg_equal_ptr_refused)
{
  cgc_stats_t s0, s1;
  cgc_cleanup_t h = { 0 };

  tsup_new(&o[0], 64);
  cgc_get_stats(&s0);
  ck_assert_int_eq(tsup_add_cln_obj(&o[0], 0, cln_count, &o[0], 0, &h),
                   CGC_EARGPTR);
  ck_assert_int_eq(tsup_add_cln_obj(&o[0], 16, cln_count, &o[0], 16, &h),
                   CGC_EARGPTR);          /* exact equality at an interior */
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.cleanups_registered, s0.cleanups_registered);
  ck_assert(!cgc_cleanup_stop(h));
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);        /* nothing registered: dies */
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
}
END_TEST

START_TEST(cln_arg_reaching_object_leaks)
{
  tsup_new(&o[0], 64);                    /* arg points inside, not at ptr */
  ck_assert_int_eq(tsup_add_cln_obj(&o[0], 0, cln_count, &o[0], 8, NULL),
                   CGC_OK);
  tsup_new(&o[1], 64);                    /* arg reaches ptr indirectly */
  tsup_new(&o[2], 64);
  tsup_link(&o[2], 0, &o[1]);
  ck_assert_int_eq(tsup_add_cln_obj(&o[1], 0, cln_count, &o[2], 0, NULL),
                   CGC_OK);
  tsup_collect_wait(4);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(o[1].freed, 0);
}
END_TEST

/* ---- cgc_cleanup_stop --------------------------------------------------------------- */

START_TEST(cln_stop_before_decision)
{
  cgc_cleanup_t h, h2;
  cgc_stats_t s0, s1;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_index, IDX(1), &h), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 8, cln_index, IDX(2), &h2), CGC_OK);
  cgc_get_stats(&s0);
  ck_assert(cgc_cleanup_stop(h));          /* object still reachable */
  ck_assert(!cgc_cleanup_stop(h));         /* repeated */
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.cleanups_cancelled - s0.cleanups_cancelled, 1);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&count_by_arg[1]), 0);
  ck_assert_int_eq(tsup_get(&count_by_arg[2]), 1);
  ck_assert(!cgc_cleanup_stop(h));
  ck_assert(!cgc_cleanup_stop(h2));        /* already ran */
}
END_TEST

START_TEST(cln_stop_after_queued)
{
  cgc_cleanup_t h;
  cgc_stats_t s0, s1;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, &h), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  cgc_get_stats(&s0);
  ck_assert_uint_eq(s0.cln_queue_len, 1);
  ck_assert(!cgc_cleanup_stop(h));
  ck_assert(!cgc_cleanup_stop(h));
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.cleanups_cancelled, s0.cleanups_cancelled);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert(!cgc_cleanup_stop(h));
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(cln_stop_zero_handle)
{
  cgc_cleanup_t z = { 0 };

  ck_assert(!cgc_cleanup_stop(z));
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  ck_assert(!cgc_cleanup_stop(z));        /* does not touch real cleanups */
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(cln_stop_stale_handle_after_object_died)
{
  cgc_cleanup_t h, hn[64];

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_index, IDX(NMANY), &h), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&count_by_arg[NMANY]), 1);
  ck_assert(!cgc_cleanup_stop(h));
  /* New objects of the same size, likely at the reused address. */
  for (int i = 0; i < 64; i++) {
    tsup_new(&many[i], 64);
    ck_assert_int_eq(tsup_add_cln(&many[i], 0, cln_index, IDX(i + 1), &hn[i]),
                     CGC_OK);
    ck_assert(hn[i].id != h.id);
  }
  ck_assert(!cgc_cleanup_stop(h));
  tsup_collect_wait(1);
  for (int i = 0; i < 64; i++)
    ck_assert_int_eq(tsup_get(&count_by_arg[i + 1]), 1);
  ck_assert_int_eq(tsup_get(&count_by_arg[NMANY]), 1);
}
END_TEST

/* ---- handles hold no address ----------------------------------------------------- */

_Static_assert(sizeof(cgc_cleanup_t) == sizeof(uint64_t),
               "cgc_cleanup_t must hold only the id");

static cgc_cleanup_t stored[NMANY];       /* static storage: a scanned root */
static atomic_int id_is_address;

static void register_many(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < NMANY; i++) {
    char *p = cgc_malloc(32);

    ck_assert_ptr_nonnull(p);
    cgc_debug_on_free(p, &many[i].freed);
    ck_assert_int_eq(cgc_add_cleanup(p + (i % 32), cln_index, IDX(i + 1),
                                     &stored[i]), CGC_OK);
    if (stored[i].id >= (uint64_t)(uintptr_t)p &&
        stored[i].id <= (uint64_t)(uintptr_t)p + 32)
      atomic_store(&id_is_address, 1);
  }
}

START_TEST(cln_handles_hold_only_ids)
{
  tsup_deep(register_many, NULL);
  ck_assert_int_eq(tsup_get(&id_is_address), 0);
  for (int i = 0; i < NMANY; i++) {
    ck_assert(stored[i].id != 0);
    for (int j = 0; j < i; j++)
      ck_assert(stored[j].id != stored[i].id);
  }
  tsup_collect_wait(1);                   /* handles do not keep them alive */
  ck_assert_int_eq(tsup_count_freed(many, NMANY), NMANY);
  ck_assert_int_eq(tsup_get(&ncln), NMANY);
  for (int i = 0; i < NMANY; i++)
    ck_assert_int_eq(tsup_get(&count_by_arg[i + 1]), 1);
}
END_TEST

/* ---- no batching of small objects ------------------------------------------------ */

static volatile int small_freed[8];

static void make_small(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < 8; i++) {
    void *p = (i & 2) ? cgc_malloc(8) : cgc_malloc_atomic(8);

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_eq(cgc_base(p), p);
    cgc_debug_on_free(p, &small_freed[i]);
    ck_assert_int_eq(cgc_add_cleanup(p, cln_index, IDX(i + 1), NULL), CGC_OK);
    if (i % 2 == 0)
      tsup_roots[i / 2] = p;
  }
}

START_TEST(cln_small_objects_not_batched)
{
  tsup_deep(make_small, NULL);
  tsup_collect_wait(2);
  for (int i = 0; i < 8; i++) {
    ck_assert_int_eq(small_freed[i], i % 2);
    ck_assert_int_eq(tsup_get(&count_by_arg[i + 1]), i % 2);
  }
}
END_TEST

static Suite *cleanup_suite(void)
{
  Suite *s = suite_create("conf_cleanup");
  TCase *tc = tcase_create("cln");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, cln_runs_once_object_freed_in_same_collection);
  tcase_add_loop_test(tc, cln_several_on_one_object_all_run, 1, 9);
  tcase_add_test(tc, cln_out_handle_may_be_null);
  tcase_add_test(tc, cln_interior_pointer);
  tcase_add_test(tc, cln_one_past_end_pointer_keeps_alive);
  tcase_add_test(tc, cln_interior_heap_reference_keeps_alive);
  tcase_add_test(tc, cln_two_cycle_collected_in_one_collection);
  tcase_add_test(tc, cln_self_loop_collected_in_one_collection);
  tcase_add_test(tc, cln_chain_collected_in_one_collection);
  tcase_add_test(tc, cln_referents_not_retained);
  tcase_add_test(tc, cln_arg_alive_until_cleanup_returns);
  tcase_add_test(tc, cln_arg_equal_ptr_refused);
  tcase_add_test(tc, cln_arg_reaching_object_leaks);
  tcase_add_test(tc, cln_stop_before_decision);
  tcase_add_test(tc, cln_stop_after_queued);
  tcase_add_test(tc, cln_stop_zero_handle);
  tcase_add_test(tc, cln_stop_stale_handle_after_object_died);
  tcase_add_test(tc, cln_handles_hold_only_ids);
  tcase_add_test(tc, cln_small_objects_not_batched);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, cleanup_suite);
}
