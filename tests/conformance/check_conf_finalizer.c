/* check_conf_finalizer.c -- conformance: resurrecting finalizers (FIN).
 *
 * Covers spec sections 1, 2 and 10.3: a finalizer runs exactly once; it
 * gets the registered pointer and data; the object is alive (contents
 * intact, weak pointers already NULL) while queued and while running,
 * across any number of collections; its storage comes back at the first
 * collection after the finalizer returned (two collections, against one
 * for a cleanup); resurrection and re-arming; clearing with fn == NULL and
 * EEXIST keeping the first finalizer; data kept alive while registered and
 * until the call returns; topological order (A->B: A first, one link per
 * collection, a chain of N needs N+1 collections); cycles and self-loops
 * through a finalizable object are never collected nor finalized;
 * finalizers run serially on one dedicated thread; cgc_collect returns
 * with everything it discovered queued; cgc_malloc(0) objects are real.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "cgc.h"
#include "tsup.h"

#define NOBJ 8

static tsup_obj_t o[NOBJ];
static atomic_int nfin, nfin2, ncln;
static atomic_int logv[16], loglen;
static atomic_uintptr_t seen_obj, seen_data;
static atomic_int seen_fill_ok, seen_base_ok, seen_freed, seen_weak_live;
static atomic_int entered, release, rearm_rc;
static void *volatile resurrected;

static int index_of(void *data) { return (int)((tsup_obj_t *)data - o); }

static void fin_count(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_fetch_add(&nfin, 1);
}

static void fin_count2(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_fetch_add(&nfin2, 1);
}

static void cln_count(void *arg)
{
  (void)arg;
  atomic_fetch_add(&ncln, 1);
}

/* data is &o[i]: log i. */
static void fin_log(void *obj, void *data)
{
  int k = atomic_fetch_add(&loglen, 1);

  (void)obj;
  if (k < 16)
    atomic_store(&logv[k], index_of(data));
  atomic_fetch_add(&nfin, 1);
}

/* ---- runs once, pointer and data ------------------------------------------ */

START_TEST(fin_runs_once)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  tsup_collect_wait(3);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

static void fin_record(void *obj, void *data)
{
  atomic_store(&seen_obj, tsup_hide(obj));
  atomic_store(&seen_data, (uintptr_t)data);
  atomic_fetch_add(&nfin, 1);
}

START_TEST(fin_receives_registered_pointer_and_data)
{
  tsup_new(&o[0], 48);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_record, &o[5]), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert(atomic_load(&seen_obj) == o[0].hid);
  ck_assert(atomic_load(&seen_data) == (uintptr_t)&o[5]);
}
END_TEST

/* ---- alive while queued and running --------------------------------------- */

#define FILL_SIZE 256
#define FILL_BYTE 0x5A

/* Checks the object from inside its finalizer, after allocating enough
 * same-sized objects that premature reuse of its storage would show. */
static void fin_inspect(void *obj, void *data)
{
  (void)data;
  for (int i = 0; i < 64; i++) {
    char *q = cgc_malloc(FILL_SIZE);
    if (q != NULL)
      q[0] = 1;
  }
  atomic_store(&seen_fill_ok, tsup_check_fill(obj, 0, FILL_SIZE, FILL_BYTE));
  atomic_store(&seen_base_ok,
               cgc_base(obj) == obj && cgc_usable_size(obj) >= FILL_SIZE);
  atomic_store(&seen_freed, o[0].freed);
  atomic_store(&seen_weak_live, cgc_weak_get(o[0].weak) != NULL);
  atomic_fetch_add(&nfin, 1);
}

START_TEST(fin_object_alive_during_call)
{
  tsup_new(&o[0], FILL_SIZE);
  tsup_fill(&o[0], 0, FILL_BYTE);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_inspect, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&seen_fill_ok), 1);
  ck_assert_int_eq(tsup_get(&seen_base_ok), 1);
  ck_assert_int_eq(tsup_get(&seen_freed), 0);
  ck_assert_int_eq(tsup_get(&seen_weak_live), 0);   /* short weak: cleared */
}
END_TEST

static void fin_block(void *obj, void *data)
{
  (void)data;
  atomic_store(&entered, 1);
  for (int i = 0; i < 60000 && !atomic_load(&release); i++)
    tsup_sleep_ms(1);
  atomic_store(&seen_fill_ok, tsup_check_fill(obj, 0, FILL_SIZE, FILL_BYTE));
  atomic_fetch_add(&nfin, 1);
}

START_TEST(fin_in_flight_object_survives_collections)
{
  tsup_new(&o[0], FILL_SIZE);
  tsup_fill(&o[0], 0, FILL_BYTE);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_block, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  tsup_collect(3);                  /* while the finalizer is running */
  ck_assert_int_eq(o[0].freed, 0);
  atomic_store(&release, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&seen_fill_ok), 1);
  ck_assert_int_eq(o[0].freed, 0);
  tsup_collect(1);                  /* first collection after it returned */
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

START_TEST(fin_queued_object_survives_collections)
{
  cgc_stats_t st;

  tsup_new(&o[0], FILL_SIZE);
  tsup_fill(&o[0], 0, FILL_BYTE);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_inspect, NULL), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  cgc_get_stats(&st);
  ck_assert_uint_eq(st.fin_queue_len, 1);
  tsup_collect(3);                  /* queued, not run: a root */
  tsup_sleep_ms(50);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(o[0].freed, 0);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&seen_fill_ok), 1);
  ck_assert_int_eq(tsup_get(&seen_freed), 0);
  ck_assert_int_eq(o[0].freed, 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

/* ---- reclamation timing ------------------------------------------------------ */

START_TEST(fin_storage_back_after_two_collections_cleanup_after_one)
{
  tsup_new(&o[0], 64);                          /* finalizer */
  tsup_new(&o[1], 64);                          /* cleanup */
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);              /* same collection */
  ck_assert_int_eq(o[0].freed, 0);              /* queued, resurrected */
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert_int_eq(o[0].freed, 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);              /* second collection */
}
END_TEST

/* ---- resurrection and re-arming --------------------------------------------- */

static void fin_resurrect(void *obj, void *data)
{
  (void)data;
  resurrected = obj;
  atomic_fetch_add(&nfin, 1);
}

static TSUP_NOINLINE void drop_resurrected(void) { resurrected = NULL; }

START_TEST(fin_resurrection)
{
  cgc_weak_t w2;

  tsup_new(&o[0], 128);
  tsup_fill(&o[0], 0, 0x33);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_resurrect, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  tsup_collect_wait(3);                         /* resurrected: alive */
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_obj_check_fill(&o[0], 0, 0x33), 1);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 0);   /* stays NULL */
  ck_assert_int_eq(tsup_weak(&o[0], 0, &w2), CGC_OK);
  ck_assert_int_eq(tsup_weak_is(w2, o[0].hid), 1);
  ck_assert(!cgc_weak_equal(w2, o[0].weak));
  drop_resurrected();
  tsup_collect(1);                              /* no finalizer now: one GC */
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_weak_live(w2), 0);
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&nfin), 1);      /* never again */
}
END_TEST

static void fin_rearm(void *obj, void *data)
{
  int n = atomic_fetch_add(&nfin, 1) + 1;

  if (n < 3) {
    int rc = cgc_set_finalizer(obj, fin_rearm, data);
    if (rc != CGC_OK)
      atomic_store(&rearm_rc, rc);
  }
}

START_TEST(fin_rearm_runs_again)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_rearm, NULL), CGC_OK);
  for (int k = 1; k <= 3; k++) {
    tsup_collect_wait(1);
    ck_assert_int_eq(tsup_get(&nfin), k);
    ck_assert_int_eq(o[0].freed, 0);
  }
  ck_assert_int_eq(tsup_get(&rearm_rc), 0);
  tsup_collect_wait(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(tsup_get(&nfin), 3);
}
END_TEST

/* ---- clearing and replacing -------------------------------------------------- */

START_TEST(fin_clear_with_null_fn)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], NULL, NULL), CGC_OK);  /* none yet */
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], NULL, NULL), CGC_OK);  /* again */
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);              /* plain object: one GC */
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&nfin), 0);
}
END_TEST

START_TEST(fin_set_again_after_clear)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count2, NULL), CGC_OK);
  tsup_collect_wait(2);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(tsup_get(&nfin2), 1);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

START_TEST(fin_second_registration_eexist_keeps_first)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count2, NULL), CGC_EEXIST);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_EEXIST);
  tsup_collect_wait(3);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&nfin2), 0);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

/* ---- data is a root -------------------------------------------------------- */

START_TEST(fin_data_alive_while_registered)
{
  tsup_new(&o[0], 64);                  /* finalizable, rooted */
  tsup_new(&o[1], 64);                  /* reachable only from data */
  ck_assert_int_eq(tsup_set_fin_obj(&o[0], fin_count, &o[1]), CGC_OK);
  tsup_root(0, &o[0], 0);
  tsup_collect_wait(3);
  ck_assert_int_eq(o[1].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 1);
  ck_assert_int_eq(tsup_set_fin(&o[0], NULL, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_get(&nfin), 0);
}
END_TEST

static void fin_data_block(void *obj, void *data)
{
  (void)obj;
  atomic_store(&entered, 1);
  for (int i = 0; i < 60000 && !atomic_load(&release); i++)
    tsup_sleep_ms(1);
  atomic_store(&seen_fill_ok, tsup_check_fill(data, 0, 64, 0x77));
  atomic_fetch_add(&nfin, 1);
}

START_TEST(fin_data_alive_until_finalizer_returns)
{
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  tsup_fill(&o[1], 0, 0x77);
  ck_assert_int_eq(tsup_set_fin_obj(&o[0], fin_data_block, &o[1]), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  tsup_collect(2);
  ck_assert_int_eq(o[1].freed, 0);
  atomic_store(&release, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&seen_fill_ok), 1);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(o[1].freed, 1);
}
END_TEST

START_TEST(fin_data_reaching_object_leaks)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin_obj(&o[0], fin_count, &o[0]), CGC_OK);
  tsup_collect_wait(4);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(o[0].freed, 0);
}
END_TEST

/* ---- ordering -------------------------------------------------------------- */

START_TEST(fin_order_a_then_b)
{
  tsup_new(&o[0], 64);                              /* A */
  tsup_new(&o[1], 64);                              /* B */
  tsup_link(&o[0], 0, &o[1]);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_log, &o[0]), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[1], fin_log, &o[1]), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&loglen), 1);
  ck_assert_int_eq(tsup_get(&logv[0]), 0);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(o[1].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 1);  /* B was marked via A */
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(o[1].freed, 0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&loglen), 2);
  ck_assert_int_eq(tsup_get(&logv[1]), 1);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);
}
END_TEST

/* A chain o[0] -> o[1] -> ... -> o[n-1], all finalizable: one finalizer per
 * collection, in chain order, and N+1 collections to reclaim everything. */
START_TEST(fin_chain_needs_n_plus_1_collections)
{
  int n = _i;

  for (int i = 0; i < n; i++)
    tsup_new(&o[i], 64);
  for (int i = 0; i + 1 < n; i++)
    tsup_link(&o[i], 0, &o[i + 1]);
  for (int i = 0; i < n; i++)
    ck_assert_int_eq(tsup_set_fin(&o[i], fin_log, &o[i]), CGC_OK);
  for (int k = 1; k <= n; k++) {
    tsup_collect_wait(1);
    ck_assert_int_eq(tsup_get(&nfin), k);
    ck_assert_int_eq(tsup_get(&logv[k - 1]), k - 1);
    ck_assert_int_eq(tsup_count_freed(o, n), k - 1);
  }
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_count_freed(o, n), n);
  ck_assert_int_eq(tsup_get(&nfin), n);
}
END_TEST

START_TEST(fin_finalizable_retains_plain_referent)
{
  cgc_stats_t s0, s1;

  tsup_new(&o[0], 64);                       /* A, finalizable */
  tsup_new(&o[1], 64);                       /* B, plain, with a cleanup */
  tsup_link(&o[0], 0, &o[1]);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_count, NULL, NULL), CGC_OK);
  cgc_get_stats(&s0);
  tsup_collect(1);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.cleanups_queued - s0.cleanups_queued, 0);
  ck_assert_int_eq(o[1].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(o[1].freed, 1);
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

START_TEST(fin_plain_referrer_freed_in_first_collection)
{
  tsup_new(&o[0], 64);                       /* A, plain */
  tsup_new(&o[1], 64);                       /* B, finalizable */
  tsup_link(&o[0], 0, &o[1]);
  ck_assert_int_eq(tsup_set_fin(&o[1], fin_count, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_int_eq(o[1].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
  tsup_collect(1);
  ck_assert_int_eq(o[1].freed, 1);
}
END_TEST

/* ---- cycles ---------------------------------------------------------------- */

START_TEST(fin_two_cycle_never_collected)
{
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  tsup_link(&o[0], 0, &o[1]);
  tsup_link(&o[1], 0, &o[0]);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[1], fin_count, NULL), CGC_OK);
  tsup_collect_wait(5);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(tsup_count_freed(o, 2), 0);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 1);
  ck_assert_int_eq(tsup_weak_live(o[1].weak), 1);
}
END_TEST

START_TEST(fin_self_loop_never_collected)
{
  tsup_new(&o[0], 64);
  tsup_link_interior(&o[0], 1, &o[0], 8);     /* even an interior self-link */
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  tsup_collect_wait(5);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert_int_eq(tsup_weak_live(o[0].weak), 1);
}
END_TEST

START_TEST(fin_cycle_with_plain_member_never_collected)
{
  tsup_new(&o[0], 64);                         /* finalizable */
  tsup_new(&o[1], 64);                         /* plain, with a cleanup */
  tsup_new(&o[2], 64);                         /* plain */
  tsup_link(&o[0], 0, &o[1]);
  tsup_link(&o[1], 0, &o[2]);
  tsup_link(&o[2], 0, &o[0]);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_count, NULL, NULL), CGC_OK);
  tsup_collect_wait(5);
  ck_assert_int_eq(tsup_get(&nfin), 0);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  ck_assert_int_eq(tsup_count_freed(o, 3), 0);
}
END_TEST

/* ---- execution context ----------------------------------------------------- */

#define NSERIAL 12
static atomic_int inside, max_inside;
static pthread_t fin_thread[NSERIAL];
static atomic_int fin_thread_set[NSERIAL];

static tsup_obj_t many[NSERIAL];

static void fin_serial(void *obj, void *data)
{
  int i = (int)((tsup_obj_t *)data - many);
  int now = atomic_fetch_add(&inside, 1) + 1;
  int m = atomic_load(&max_inside);

  (void)obj;
  while (now > m && !atomic_compare_exchange_weak(&max_inside, &m, now))
    ;
  if (i >= 0 && i < NSERIAL) {
    fin_thread[i] = pthread_self();
    atomic_store(&fin_thread_set[i], 1);
  }
  tsup_sleep_ms(2);
  atomic_fetch_sub(&inside, 1);
  atomic_fetch_add(&nfin, 1);
}

START_TEST(fin_serial_on_one_dedicated_thread)
{
  pthread_t self = pthread_self();

  for (int i = 0; i < NSERIAL; i++) {
    tsup_new(&many[i], 32);
    ck_assert_int_eq(tsup_set_fin(&many[i], fin_serial, &many[i]),
                     CGC_OK);
  }
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), NSERIAL);
  ck_assert_int_eq(tsup_get(&max_inside), 1);
  for (int i = 0; i < NSERIAL; i++) {
    ck_assert_int_eq(tsup_get(&fin_thread_set[i]), 1);
    ck_assert(pthread_equal(fin_thread[i], fin_thread[0]));
  }
  ck_assert(!pthread_equal(fin_thread[0], self));
}
END_TEST

START_TEST(fin_collect_returns_with_all_queued)
{
  cgc_stats_t s0, s1;

  for (int i = 0; i < 6; i++) {
    tsup_new(&o[i], 32);
    ck_assert_int_eq(tsup_set_fin(&o[i], fin_count, NULL), CGC_OK);
  }
  cgc_pause_callbacks(1);
  cgc_get_stats(&s0);
  tsup_collect(1);
  cgc_get_stats(&s1);
  ck_assert_uint_eq(s1.finalizers_queued - s0.finalizers_queued, 6);
  ck_assert_uint_eq(s1.fin_queue_len, 6);
  for (int i = 0; i < 6; i++)
    ck_assert_int_eq(tsup_weak_live(o[i].weak), 0);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 6);
}
END_TEST

/* cgc_malloc(0) gives distinct real objects that can carry finalizers. */
static uintptr_t zero_hid[2];
static volatile int zero_freed[2];

static void make_zero_size(void *ctx)
{
  (void)ctx;
  void *a = cgc_malloc(0), *b = cgc_malloc(0);

  ck_assert_ptr_nonnull(a);
  ck_assert_ptr_nonnull(b);
  ck_assert_ptr_ne(a, b);
  zero_hid[0] = tsup_hide(a);
  zero_hid[1] = tsup_hide(b);
  cgc_debug_on_free(a, &zero_freed[0]);
  cgc_debug_on_free(b, &zero_freed[1]);
  ck_assert_int_eq(cgc_set_finalizer(a, fin_count, NULL), CGC_OK);
  ck_assert_int_eq(cgc_set_finalizer(b, fin_count, NULL), CGC_OK);
}

START_TEST(fin_zero_size_objects_are_real)
{
  tsup_deep(make_zero_size, NULL);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 2);
  tsup_collect(1);
  ck_assert_int_eq(zero_freed[0], 1);
  ck_assert_int_eq(zero_freed[1], 1);
}
END_TEST

static Suite *finalizer_suite(void)
{
  Suite *s = suite_create("conf_finalizer");
  TCase *tc = tcase_create("fin");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, fin_runs_once);
  tcase_add_test(tc, fin_receives_registered_pointer_and_data);
  tcase_add_test(tc, fin_object_alive_during_call);
  tcase_add_test(tc, fin_in_flight_object_survives_collections);
  tcase_add_test(tc, fin_queued_object_survives_collections);
  tcase_add_test(tc, fin_storage_back_after_two_collections_cleanup_after_one);
  tcase_add_test(tc, fin_resurrection);
  tcase_add_test(tc, fin_rearm_runs_again);
  tcase_add_test(tc, fin_clear_with_null_fn);
  tcase_add_test(tc, fin_set_again_after_clear);
  tcase_add_test(tc, fin_second_registration_eexist_keeps_first);
  tcase_add_test(tc, fin_data_alive_while_registered);
  tcase_add_test(tc, fin_data_alive_until_finalizer_returns);
  tcase_add_test(tc, fin_data_reaching_object_leaks);
  tcase_add_test(tc, fin_order_a_then_b);
  tcase_add_loop_test(tc, fin_chain_needs_n_plus_1_collections, 1, NOBJ);
  tcase_add_test(tc, fin_finalizable_retains_plain_referent);
  tcase_add_test(tc, fin_plain_referrer_freed_in_first_collection);
  tcase_add_test(tc, fin_two_cycle_never_collected);
  tcase_add_test(tc, fin_self_loop_never_collected);
  tcase_add_test(tc, fin_cycle_with_plain_member_never_collected);
  tcase_add_test(tc, fin_serial_on_one_dedicated_thread);
  tcase_add_test(tc, fin_collect_returns_with_all_queued);
  tcase_add_test(tc, fin_zero_size_objects_are_real);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, finalizer_suite);
}
