/* check_conf_weak.c -- conformance: weak pointers (WEAK).
 *
 * Covers spec sections 5 and 10.2: the null weak; canonical handles per
 * (object, offset) and equality, also after the object died, and a fresh
 * handle for a later object at a reused address; interior weak pointers
 * return the interior address; a weak pointer is not a root and reads NULL
 * as soon as cgc_collect returns; it is NULL before and during cleanups,
 * and from the moment a finalizer is queued, staying NULL after
 * resurrection (new handles are distinct); the section 5.3 case (an object
 * kept only by a finalizable object keeps its weak pointer non-NULL in that
 * cycle) and finalizer cycles; weak cells are pointer-free and kept alive
 * by user copies; long weak pointers (cgc_weak_make_long) survive
 * finalization and resurrection and clear when the storage is reclaimed.
 */
#define _GNU_SOURCE
#include <check.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "cgc.h"
#include "tsup.h"

#define NOBJ 8

static tsup_obj_t o[NOBJ];
static atomic_int nfin, ncln;
static atomic_int seen_weak_live = -1, seen_weak8_live = -1, seen_b_live = -1;
static cgc_weak_t w8;               /* weak to o[0] + 8 */
static void *volatile resurrected;

static void fin_count(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_fetch_add(&nfin, 1);
}

START_TEST(weak_null)
{
  cgc_weak_t w, zero;

  memset(&w, 0xAB, sizeof w);
  memset(&zero, 0, sizeof zero);
  ck_assert_int_eq(cgc_weak_make(NULL, &w), CGC_OK);
  ck_assert(memcmp(&w, &zero, sizeof w) == 0);
  ck_assert_ptr_null(cgc_weak_get(w));
  ck_assert(cgc_weak_equal(w, zero));
  ck_assert(cgc_weak_equal(zero, zero));
  ck_assert_int_eq(cgc_weak_make_long(NULL, &w), CGC_OK);
  ck_assert_ptr_null(cgc_weak_get(w));
  ck_assert(cgc_weak_equal(w, zero));
}
END_TEST

START_TEST(weak_get_and_canonical_handle)
{
  cgc_weak_t w2, zero = { 0 };

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak_is(o[0].weak, o[0].hid), 1);
  ck_assert_int_eq(tsup_weak(&o[0], 0, &w2), CGC_OK);
  ck_assert(cgc_weak_equal(o[0].weak, w2));
  ck_assert(o[0].weak.cell == w2.cell);        /* one handle per offset */
  ck_assert(!cgc_weak_equal(o[0].weak, zero));
  tsup_root(0, &o[0], 0);
  tsup_collect_wait(2);                          /* live: unchanged */
  ck_assert_int_eq(tsup_weak_is(w2, o[0].hid), 1);
}
END_TEST

START_TEST(weak_interior_offsets)
{
  cgc_weak_t a, b, c;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak(&o[0], 8, &a), CGC_OK);
  ck_assert_int_eq(tsup_weak(&o[0], 8, &b), CGC_OK);
  ck_assert_int_eq(tsup_weak(&o[0], 40, &c), CGC_OK);
  ck_assert_int_eq(tsup_weak_is(a, o[0].hid - 8), 1);   /* ~(p+8) == ~p-8 */
  ck_assert_int_eq(tsup_weak_is(c, o[0].hid - 40), 1);
  ck_assert(cgc_weak_equal(a, b));
  ck_assert(a.cell == b.cell);
  ck_assert(!cgc_weak_equal(a, c));
  ck_assert(!cgc_weak_equal(a, o[0].weak));
  ck_assert(!cgc_weak_equal(c, o[0].weak));
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);               /* weak pointers: no root */
  ck_assert_int_eq(tsup_weak_live(a), 0);
  ck_assert_int_eq(tsup_weak_live(c), 0);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);
  ck_assert(cgc_weak_equal(a, b));               /* still, after death */
  ck_assert(!cgc_weak_equal(a, c));
  ck_assert(!cgc_weak_equal(a, o[0].weak));
}
END_TEST

START_TEST(weak_cleared_when_collect_returns)
{
  cgc_weak_t w2;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak(&o[0], 0, &w2), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);
  ck_assert(cgc_weak_equal(o[0].weak, w2));
}
END_TEST

/* A later object at the same address gets a new handle. */
static atomic_int reuse_found, reuse_ok;

static void try_reuse(void *ctx)
{
  uintptr_t old = o[0].hid;

  (void)ctx;
  for (int i = 0; i < 4096 && !atomic_load(&reuse_found); i++) {
    void *p = cgc_malloc(64);
    cgc_weak_t w;

    ck_assert_ptr_nonnull(p);
    if (tsup_hide(p) != old)
      continue;
    atomic_store(&reuse_found, 1);
    ck_assert_int_eq(cgc_weak_make(p, &w), CGC_OK);
    atomic_store(&reuse_ok, !cgc_weak_equal(w, o[0].weak) &&
                            cgc_weak_get(w) == p &&
                            cgc_weak_get(o[0].weak) == NULL);
  }
}

START_TEST(weak_reused_address_gets_new_handle)
{
  tsup_new(&o[0], 64);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  tsup_deep(try_reuse, NULL);
  if (atomic_load(&reuse_found))
    ck_assert_int_eq(tsup_get(&reuse_ok), 1);
}
END_TEST

/* The cell is pointer-free and is kept alive by a user copy. */
static uintptr_t cell_hid;
static atomic_int heap_copy_live = -1, heap_copy_same = -1;

static void store_weak_in_heap(void *ctx)
{
  (void)ctx;
  memcpy(tsup_unhide(o[0].hid), &o[1].weak, sizeof(cgc_weak_t));
  cell_hid = tsup_hide(o[1].weak.cell);
  memset(&o[1].weak, 0, sizeof o[1].weak);      /* only the heap copy left */
}

static void read_weak_from_heap(void *ctx)
{
  cgc_weak_t w;

  (void)ctx;
  memcpy(&w, tsup_unhide(o[0].hid), sizeof w);
  atomic_store(&heap_copy_same, tsup_hide(w.cell) == cell_hid);
  atomic_store(&heap_copy_live, cgc_weak_get(w) != NULL);
}

static void churn_atomic(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < 4096; i++) {
    unsigned char *q = cgc_malloc_atomic(sizeof(void *));
    if (q != NULL)
      memset(q, 0xFF, sizeof(void *));
  }
}

START_TEST(weak_cell_pointer_free_and_kept_by_copies)
{
  tsup_new(&o[0], 64);                           /* holder, rooted */
  tsup_new(&o[1], 64);                           /* target */
  tsup_root(0, &o[0], 0);
  tsup_deep(store_weak_in_heap, NULL);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);               /* the copy is no root */
  tsup_collect(2);
  tsup_deep(churn_atomic, NULL);                 /* reuse any freed cell */
  tsup_deep(read_weak_from_heap, NULL);
  ck_assert_int_eq(tsup_get(&heap_copy_same), 1);
  ck_assert_int_eq(tsup_get(&heap_copy_live), 0);
}
END_TEST

/* ---- cleanups ------------------------------------------------------------- */

static void cln_check_weak(void *arg)
{
  (void)arg;
  atomic_store(&seen_weak_live, tsup_weak_live(o[0].weak));
  atomic_store(&seen_weak8_live, tsup_weak_live(w8));
  atomic_fetch_add(&ncln, 1);
}

START_TEST(weak_cleared_before_cleanups_run)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak(&o[0], 8, &w8), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[0], 8, cln_check_weak, NULL, NULL),
                   CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);  /* before it runs */
  ck_assert_int_eq(tsup_weak_live(w8), 0);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert_int_eq(tsup_get(&seen_weak_live), 0); /* and during */
  ck_assert_int_eq(tsup_get(&seen_weak8_live), 0);
}
END_TEST

/* ---- finalizers ------------------------------------------------------------ */

static void fin_check_weak_resurrect(void *obj, void *data)
{
  (void)data;
  atomic_store(&seen_weak_live, tsup_weak_live(o[0].weak));
  atomic_store(&seen_weak8_live, tsup_weak_live(w8));
  resurrected = obj;
  atomic_fetch_add(&nfin, 1);
}

static TSUP_NOINLINE void drop_resurrected(void) { resurrected = NULL; }

START_TEST(weak_cleared_when_finalizer_queued)
{
  cgc_weak_t n0, n8;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak(&o[0], 8, &w8), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_check_weak_resurrect, NULL),
                   CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);   /* queued: NULL */
  ck_assert_int_eq(tsup_weak_live(w8), 0);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&seen_weak_live), 0);
  ck_assert_int_eq(tsup_get(&seen_weak8_live), 0);
  tsup_collect_wait(2);                             /* resurrected */
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);   /* stays NULL */
  ck_assert_int_eq(tsup_weak_live(w8), 0);
  ck_assert_int_eq(tsup_weak(&o[0], 0, &n0), CGC_OK);
  ck_assert_int_eq(tsup_weak(&o[0], 8, &n8), CGC_OK);
  ck_assert_int_eq(tsup_weak_is(n0, o[0].hid), 1);
  ck_assert_int_eq(tsup_weak_is(n8, o[0].hid - 8), 1);
  ck_assert(!cgc_weak_equal(n0, o[0].weak));
  ck_assert(!cgc_weak_equal(n8, w8));
  drop_resurrected();
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(n0), 0);
  ck_assert_int_eq(tsup_weak_live(n8), 0);
}
END_TEST

static void fin_check_b(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_store(&seen_b_live, tsup_weak_live(o[1].weak));
  atomic_fetch_add(&nfin, 1);
}

/* Section 5.3: B reachable only from finalizable A. */
START_TEST(weak_kept_for_object_retained_by_finalizable)
{
  tsup_new(&o[0], 64);                              /* A */
  tsup_new(&o[1], 64);                              /* B */
  tsup_link(&o[0], 0, &o[1]);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_check_b, NULL), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);
  ck_assert_int_eq(tsup_weak_is(o[1].weak, o[1].hid), 1);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&seen_b_live), 1);
  ck_assert_int_eq(tsup_weak_is(o[1].weak, o[1].hid), 1);
  tsup_collect(1);                                  /* A released B */
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 0);
  ck_assert_int_eq(o[1].freed, 1);
}
END_TEST

START_TEST(weak_into_finalizer_cycle_stays_non_null)
{
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  tsup_link(&o[0], 0, &o[1]);
  tsup_link(&o[1], 0, &o[0]);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  tsup_collect_wait(4);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(tsup_weak_is(o[0].weak, o[0].hid), 1);
  ck_assert_int_eq(tsup_weak_is(o[1].weak, o[1].hid), 1);
}
END_TEST

/* ---- long weak pointers --------------------------------------------------- */

START_TEST(weak_long_survives_finalization)
{
  cgc_weak_t wl, wl8;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak_long(&o[0], 0, &wl), CGC_OK);
  ck_assert_int_eq(tsup_weak_long(&o[0], 8, &wl8), CGC_OK);
  ck_assert_int_eq(tsup_weak_is(wl, o[0].hid), 1);
  ck_assert_int_eq(tsup_weak_is(wl8, o[0].hid - 8), 1);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);   /* short: cleared */
  ck_assert_int_eq(tsup_weak_is(wl, o[0].hid), 1);  /* long: not */
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_weak_is(wl, o[0].hid), 1);
  ck_assert_int_eq(tsup_weak_is(wl8, o[0].hid - 8), 1);
  tsup_collect(1);                                  /* storage reclaimed */
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(wl), 0);
  ck_assert_int_eq(tsup_weak_live(wl8), 0);
}
END_TEST

static void fin_resurrect(void *obj, void *data)
{
  (void)data;
  resurrected = obj;
  atomic_fetch_add(&nfin, 1);
}

START_TEST(weak_long_tracks_resurrection)
{
  cgc_weak_t wl;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak_long(&o[0], 0, &wl), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_resurrect, NULL), CGC_OK);
  tsup_collect_wait(3);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);
  ck_assert_int_eq(tsup_weak_is(wl, o[0].hid), 1);
  drop_resurrected();
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(wl), 0);
}
END_TEST

START_TEST(weak_long_plain_object_cleared_at_reclamation)
{
  cgc_weak_t wl;

  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_weak_long(&o[0], 24, &wl), CGC_OK);
  ck_assert_int_eq(tsup_weak_is(wl, o[0].hid - 24), 1);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(wl), 0);
}
END_TEST

START_TEST(weak_long_retained_by_finalizable)
{
  cgc_weak_t wl;

  tsup_new(&o[0], 64);                              /* A */
  tsup_new(&o[1], 64);                              /* B */
  tsup_link(&o[0], 0, &o[1]);
  ck_assert_int_eq(tsup_weak_long(&o[1], 0, &wl), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_weak_is(wl, o[1].hid), 1);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);
  ck_assert_int_eq(tsup_weak_live(wl), 0);
}
END_TEST

static Suite *weak_suite(void)
{
  Suite *s = suite_create("conf_weak");
  TCase *tc = tcase_create("weak");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, weak_null);
  tcase_add_test(tc, weak_get_and_canonical_handle);
  tcase_add_test(tc, weak_interior_offsets);
  tcase_add_test(tc, weak_cleared_when_collect_returns);
  tcase_add_test(tc, weak_reused_address_gets_new_handle);
  tcase_add_test(tc, weak_cell_pointer_free_and_kept_by_copies);
  tcase_add_test(tc, weak_cleared_before_cleanups_run);
  tcase_add_test(tc, weak_cleared_when_finalizer_queued);
  tcase_add_test(tc, weak_kept_for_object_retained_by_finalizable);
  tcase_add_test(tc, weak_into_finalizer_cycle_stays_non_null);
  tcase_add_test(tc, weak_long_survives_finalization);
  tcase_add_test(tc, weak_long_tracks_resurrection);
  tcase_add_test(tc, weak_long_plain_object_cleared_at_reclamation);
  tcase_add_test(tc, weak_long_retained_by_finalizable);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, weak_suite);
}
