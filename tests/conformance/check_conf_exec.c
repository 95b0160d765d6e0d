/* check_conf_exec.c -- conformance: where and when callbacks run.
 *
 * Covers spec sections 2.6, 3.1, 3.6, 10.1, 10.3 and 10.6: a blocked
 * finalizer does not stop cleanups (K >= 1, cleanups on their own
 * threads); with K = 2 a blocked cleanup does not stop the other queued
 * cleanups; K = 0 runs cleanups on the finalizer thread; on-demand mode
 * runs callbacks only in cgc_run_pending, on the calling thread, up to MAX;
 * cgc_wait_idle returns CGC_EDEADLK inside any callback, 0 on timeout, and
 * waits for a running callback; cgc_pause_callbacks; callbacks that
 * allocate, collect, register and cancel; no lock is held while user code
 * runs; registrations and cancellations from several threads while other
 * threads collect (stop is exact: true means never runs, false means runs
 * exactly once); concurrent cgc_weak_make is canonical; a callback thread
 * that exits aborts the process; cgc_shutdown discards pending callbacks
 * unless run_pending_at_shutdown, and never runs them for live objects.
 */
#define _GNU_SOURCE
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "cgc.h"
#include "tsup.h"

#define NOBJ 16
#define IDX(i) ((void *)(uintptr_t)(i))

static tsup_obj_t o[NOBJ];
static atomic_int nfin, ncln, entered, release, done;
static pthread_t fin_thr, cln_thr;
static atomic_int fin_thr_set, cln_thr_set;

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

static void fin_where(void *obj, void *data)
{
  (void)obj;
  (void)data;
  fin_thr = pthread_self();
  atomic_store(&fin_thr_set, 1);
  atomic_fetch_add(&nfin, 1);
}

static void cln_where(void *arg)
{
  (void)arg;
  cln_thr = pthread_self();
  atomic_store(&cln_thr_set, 1);
  atomic_fetch_add(&ncln, 1);
}

static void block_until_released(void)
{
  atomic_store(&entered, 1);
  for (int i = 0; i < 60000 && !atomic_load(&release); i++)
    tsup_sleep_ms(1);
}

static void fin_block(void *obj, void *data)
{
  (void)obj;
  (void)data;
  fin_thr = pthread_self();
  atomic_store(&fin_thr_set, 1);
  block_until_released();
  atomic_fetch_add(&nfin, 1);
}

static void cln_block(void *arg)
{
  (void)arg;
  block_until_released();
  atomic_fetch_add(&ncln, 1);
}

static void setup_k0(void) { tsup_init(0, 0, 0); }
static void setup_k2(void) { tsup_init(2, 0, 0); }
static void setup_on_demand(void) { tsup_init(-1, 1, 0); }

/* ---- threads ------------------------------------------------------------ */

START_TEST(exec_blocked_finalizer_does_not_stop_cleanups)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_block, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  for (int i = 1; i <= 3; i++) {
    tsup_new(&o[i], 64);
    ck_assert_int_eq(tsup_add_cln(&o[i], 0, i == 1 ? cln_where : cln_count,
                                  NULL, NULL), CGC_OK);
  }
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&ncln, 3, 20000), 3);
  ck_assert_int_eq(tsup_get(&nfin), 0);         /* still blocked */
  ck_assert(!pthread_equal(cln_thr, fin_thr));
  ck_assert(!pthread_equal(cln_thr, pthread_self()));
  atomic_store(&release, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 1);
}
END_TEST

START_TEST(exec_blocked_cleanup_does_not_stop_others_k2)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_block, NULL, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  for (int i = 1; i <= 10; i++) {
    tsup_new(&o[i], 64);
    ck_assert_int_eq(tsup_add_cln(&o[i], 0, cln_count, NULL, NULL), CGC_OK);
  }
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&ncln, 10, 20000), 10);
  atomic_store(&release, 1);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&ncln), 11);
}
END_TEST

START_TEST(exec_k0_cleanups_run_on_finalizer_thread)
{
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_where, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_where, NULL, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert(pthread_equal(fin_thr, cln_thr));
  ck_assert(!pthread_equal(fin_thr, pthread_self()));
  for (int i = 2; i < 12; i++) {
    tsup_new(&o[i], 32);
    ck_assert_int_eq(tsup_add_cln(&o[i], 0, cln_count, NULL, NULL), CGC_OK);
  }
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&ncln), 11);
}
END_TEST

static atomic_int deadlk_rc = 99;

static void cln_where_and_wait(void *arg)
{
  atomic_store(&deadlk_rc, cgc_wait_idle(0));
  cln_where(arg);
}

START_TEST(exec_on_demand_run_pending)
{
  cgc_stats_t st;

  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_where, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_where_and_wait, NULL, NULL),
                   CGC_OK);
  tsup_collect(1);
  tsup_sleep_ms(100);
  ck_assert_int_eq(tsup_get(&nfin) + tsup_get(&ncln), 0);
  cgc_get_stats(&st);
  ck_assert_uint_eq(st.fin_queue_len, 1);
  ck_assert_uint_eq(st.cln_queue_len, 1);
  ck_assert_int_eq(cgc_run_pending(1), 1);
  ck_assert_int_eq(tsup_get(&nfin) + tsup_get(&ncln), 1);
  ck_assert_int_eq(cgc_run_pending(0), 1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert(pthread_equal(fin_thr, pthread_self()));
  ck_assert(pthread_equal(cln_thr, pthread_self()));
  ck_assert_int_eq(tsup_get(&deadlk_rc), CGC_EDEADLK);
  ck_assert_int_eq(cgc_run_pending(0), 0);
  ck_assert_int_eq(cgc_wait_idle(TSUP_WAIT_NS), 1);
  ck_assert_int_eq(o[1].freed, 1);
  ck_assert_int_eq(o[0].freed, 0);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

/* ---- cgc_wait_idle ----------------------------------------------------------- */

static atomic_int fin_rc_forever = 99, fin_rc_zero = 99;
static atomic_int cln_rc_forever = 99, cln_rc_zero = 99;

static void fin_wait_idle(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_store(&fin_rc_forever, cgc_wait_idle(-1));
  atomic_store(&fin_rc_zero, cgc_wait_idle(0));
  atomic_fetch_add(&nfin, 1);
}

static void cln_wait_idle(void *arg)
{
  (void)arg;
  atomic_store(&cln_rc_forever, cgc_wait_idle(-1));
  atomic_store(&cln_rc_zero, cgc_wait_idle(1000000));
  atomic_fetch_add(&ncln, 1);
}

START_TEST(exec_wait_idle_edeadlk_in_callbacks)
{
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_wait_idle, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_wait_idle, NULL, NULL), CGC_OK);
  tsup_collect_wait(1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert_int_eq(tsup_get(&fin_rc_forever), CGC_EDEADLK);
  ck_assert_int_eq(tsup_get(&fin_rc_zero), CGC_EDEADLK);
  ck_assert_int_eq(tsup_get(&cln_rc_forever), CGC_EDEADLK);
  ck_assert_int_eq(tsup_get(&cln_rc_zero), CGC_EDEADLK);
}
END_TEST

static int64_t now_ns(void)
{
  struct timespec ts;

  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

START_TEST(exec_wait_idle_timeout_returns_0)
{
  int64_t t0, dt;

  ck_assert_int_eq(cgc_wait_idle(TSUP_WAIT_NS), 1);        /* nothing to do */
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  t0 = now_ns();
  ck_assert_int_eq(cgc_wait_idle(50 * 1000 * 1000), 0);
  dt = now_ns() - t0;
  ck_assert_msg(dt >= 40 * 1000 * 1000, "returned after %lld ns", (long long)dt);
  ck_assert_int_eq(tsup_get(&ncln), 0);
  cgc_pause_callbacks(0);
  ck_assert_int_eq(cgc_wait_idle(-1), 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
}
END_TEST

static void fin_slow(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_store(&entered, 1);
  tsup_sleep_ms(200);
  atomic_store(&done, 1);
}

START_TEST(exec_wait_idle_waits_for_running_callback)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_slow, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  ck_assert_int_eq(cgc_wait_idle(-1), 1);
  ck_assert_int_eq(tsup_get(&done), 1);
}
END_TEST

START_TEST(exec_pause_callbacks)
{
  cgc_stats_t st;

  cgc_pause_callbacks(1);
  for (int i = 0; i < 10; i++) {
    tsup_new(&o[i], 32);
    if (i < 5)
      ck_assert_int_eq(tsup_set_fin(&o[i], fin_count, NULL), CGC_OK);
    else
      ck_assert_int_eq(tsup_add_cln(&o[i], 0, cln_count, NULL, NULL), CGC_OK);
  }
  tsup_collect(1);
  tsup_sleep_ms(150);
  ck_assert_int_eq(tsup_get(&nfin) + tsup_get(&ncln), 0);
  cgc_get_stats(&st);
  ck_assert_uint_eq(st.fin_queue_len, 5);
  ck_assert_uint_eq(st.cln_queue_len, 5);
  cgc_pause_callbacks(0);
  tsup_wait();
  ck_assert_int_eq(tsup_get(&nfin), 5);
  ck_assert_int_eq(tsup_get(&ncln), 5);
  cgc_get_stats(&st);
  ck_assert_uint_eq(st.fin_queue_len, 0);
  ck_assert_uint_eq(st.cln_queue_len, 0);
}
END_TEST

/* ---- callbacks that use the collector --------------------------------------- */

static cgc_cleanup_t stop_from_fin, stop_from_cln;
static atomic_int nz, nw, n_never;
static atomic_int busy_ok_fin = -1, busy_ok_cln = -1;
static volatile int z_freed[2], w_freed[2];

static void cln_z(void *arg) { (void)arg; atomic_fetch_add(&nz, 1); }
static void fin_w(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_fetch_add(&nw, 1);
}
static void cln_never(void *arg) { (void)arg; atomic_fetch_add(&n_never, 1); }

/* Allocate, register a cleanup and a finalizer, make a weak pointer,
 * collect, and cancel a cleanup of a live object.  1 iff all worked. */
static int busy_callback(int who, cgc_cleanup_t stop_me)
{
  char *z = cgc_malloc(64), *w = cgc_malloc(96);
  cgc_weak_t wz;
  int ok = z != NULL && w != NULL;

  if (!ok)
    return 0;
  cgc_debug_on_free(z, &z_freed[who]);
  cgc_debug_on_free(w, &w_freed[who]);
  ok &= cgc_add_cleanup(z + 8, cln_z, NULL, NULL) == CGC_OK;
  ok &= cgc_set_finalizer(w, fin_w, NULL) == CGC_OK;
  ok &= cgc_weak_make(z, &wz) == CGC_OK;
  cgc_collect();
  ok &= cgc_weak_get(wz) == z;                  /* z is on this stack */
  ok &= cgc_cleanup_stop(stop_me);
  CGC_KEEP_ALIVE(z);
  CGC_KEEP_ALIVE(w);
  return ok;
}

static void fin_busy(void *obj, void *data)
{
  (void)obj;
  (void)data;
  atomic_store(&busy_ok_fin, busy_callback(0, stop_from_fin));
  atomic_fetch_add(&nfin, 1);
}

static void cln_busy(void *arg)
{
  (void)arg;
  atomic_store(&busy_ok_cln, busy_callback(1, stop_from_cln));
  atomic_fetch_add(&ncln, 1);
}

START_TEST(exec_callbacks_allocate_collect_register_cancel)
{
  cgc_stats_t s0, s1;

  tsup_new(&o[2], 64);                          /* R: live, two cleanups */
  tsup_root(0, &o[2], 0);
  ck_assert_int_eq(tsup_add_cln(&o[2], 0, cln_never, NULL, &stop_from_fin),
                   CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[2], 8, cln_never, NULL, &stop_from_cln),
                   CGC_OK);
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_busy, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_busy, NULL, NULL), CGC_OK);
  cgc_get_stats(&s0);
  tsup_collect_wait(1);
  cgc_get_stats(&s1);
  ck_assert_int_eq(tsup_get(&nfin), 1);
  ck_assert_int_eq(tsup_get(&ncln), 1);
  ck_assert_int_eq(tsup_get(&busy_ok_fin), 1);
  ck_assert_int_eq(tsup_get(&busy_ok_cln), 1);
  ck_assert_uint_eq(s1.collections - s0.collections, 3);
  tsup_collect_wait(3);
  ck_assert_int_eq(tsup_get(&nz), 2);
  ck_assert_int_eq(tsup_get(&nw), 2);
  tsup_collect(1);
  ck_assert_int_eq(z_freed[0] + z_freed[1] + w_freed[0] + w_freed[1], 4);
  tsup_unroot(0);
  tsup_collect_wait(2);
  ck_assert_int_eq(o[2].freed, 1);
  ck_assert_int_eq(tsup_get(&n_never), 0);
}
END_TEST

static void make_lots(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < 2000; i++) {
    char *p = cgc_malloc(48);
    cgc_weak_t w;
    cgc_cleanup_t h;

    ck_assert_ptr_nonnull(p);
    ck_assert_int_eq(cgc_add_cleanup(p, cln_count, NULL, &h), CGC_OK);
    ck_assert_int_eq(cgc_weak_make(p + 8, &w), CGC_OK);
    if (i % 2)
      ck_assert(cgc_cleanup_stop(h));
    ck_assert_int_eq(cgc_set_finalizer(p, fin_count, NULL), CGC_OK);
    if (i % 3)
      ck_assert_int_eq(cgc_set_finalizer(p, NULL, NULL), CGC_OK);
    CGC_KEEP_ALIVE(p);
  }
}

START_TEST(exec_no_lock_held_while_callback_runs)
{
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_block, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_wait_for(&entered, 1, 20000), 1);
  tsup_deep(make_lots, NULL);                   /* while it is running */
  tsup_collect(2);
  atomic_store(&release, 1);
  tsup_wait();
  tsup_collect_wait(2);       /* finalized objects die, their cleanups run */
  /* 1 blocked + 667 kept finalizers (i % 3 == 0); 1000 unstopped cleanups */
  ck_assert_int_eq(tsup_get(&nfin), 1 + 667);
  ck_assert_int_eq(tsup_get(&ncln), 1000);
}
END_TEST

/* ---- several threads ---------------------------------------------------------- */

#define NWORK 3
#define NPER 1200
#define NTOT (NWORK * NPER)

static atomic_int runs[NTOT];
static int stopped[NTOT];          /* 1: stop or clear returned success */
static atomic_int early_stop_failed, workers_done;

static void cln_idx(void *arg) { atomic_fetch_add(&runs[(uintptr_t)arg - 1], 1); }
static void fin_idx(void *obj, void *data)
{
  (void)obj;
  atomic_fetch_add(&runs[(uintptr_t)data - 1], 1);
}

static void *worker(void *argp)
{
  int w = (int)(uintptr_t)argp;
  uint64_t rng = tsup_seed() * 31 + (uint64_t)w;
  cgc_cleanup_t late[NPER];
  int late_idx[NPER], nlate = 0;

  for (int i = 0; i < NPER; i++) {
    int idx = w * NPER + i;
    unsigned r = (unsigned)(tsup_rand(&rng) % 5);
    char *p = cgc_malloc(32);
    cgc_cleanup_t h;

    if (p == NULL)
      abort();
    if (r < 3) {
      if (cgc_add_cleanup(p + (i % 32), cln_idx, IDX(idx + 1), &h) != CGC_OK)
        abort();
      if (r == 0) {                       /* held: stop must win */
        stopped[idx] = cgc_cleanup_stop(h);
        if (!stopped[idx])
          atomic_store(&early_stop_failed, 1);
      } else if (r == 1) {                /* dropped: stop later, racing */
        late[nlate] = h;
        late_idx[nlate++] = idx;
      }
    } else {
      if (cgc_set_finalizer(p, fin_idx, IDX(idx + 1)) != CGC_OK)
        abort();
      if (r == 3) {                       /* held: clearing always wins */
        stopped[idx] = cgc_set_finalizer(p, NULL, NULL) == CGC_OK;
        if (!stopped[idx])
          atomic_store(&early_stop_failed, 1);
      }
    }
    CGC_KEEP_ALIVE(p);
    p = NULL;
  }
  tsup_scrub();
  for (int k = 0; k < nlate; k++)
    stopped[late_idx[k]] = cgc_cleanup_stop(late[k]);
  atomic_fetch_add(&workers_done, 1);
  return NULL;
}

static void *collector(void *argp)
{
  (void)argp;
  while (atomic_load(&workers_done) < NWORK) {
    cgc_collect();
    tsup_sleep_ms(2);
  }
  return NULL;
}

START_TEST(exec_threads_register_and_cancel_while_collecting)
{
  pthread_t tw[NWORK], tc;

  ck_assert_int_eq(cgc_pthread_create(&tc, NULL, collector, NULL), 0);
  for (int w = 0; w < NWORK; w++)
    ck_assert_int_eq(cgc_pthread_create(&tw[w], NULL, worker,
                                        (void *)(uintptr_t)w), 0);
  for (int w = 0; w < NWORK; w++)
    pthread_join(tw[w], NULL);
  pthread_join(tc, NULL);
  ck_assert_int_eq(tsup_get(&early_stop_failed), 0);
  tsup_collect_wait(3);
  for (int i = 0; i < NTOT; i++) {
    int n = atomic_load(&runs[i]);
    ck_assert_msg(n == (stopped[i] ? 0 : 1), "registration %d: stopped=%d "
                  "but ran %d times", i, stopped[i], n);
  }
}
END_TEST

#define NWEAKT 4
static cgc_weak_t weak_seen[NWEAKT][3];
static atomic_int weak_go;

static void *weak_maker(void *argp)
{
  int t = (int)(uintptr_t)argp;

  while (!atomic_load(&weak_go))
    ;
  for (int k = 0; k < 200; k++)
    for (int off = 0; off < 3; off++) {
      cgc_weak_t w;
      char *p = tsup_roots[0];

      if (cgc_weak_make(p + off * 8, &w) != CGC_OK)
        abort();
      if (k == 0)
        weak_seen[t][off] = w;
      else if (!cgc_weak_equal(w, weak_seen[t][off]))
        abort();
    }
  return NULL;
}

START_TEST(exec_concurrent_weak_make_is_canonical)
{
  pthread_t t[NWEAKT];

  tsup_new(&o[0], 64);
  tsup_root(0, &o[0], 0);
  for (int i = 0; i < NWEAKT; i++)
    ck_assert_int_eq(cgc_pthread_create(&t[i], NULL, weak_maker,
                                        (void *)(uintptr_t)i), 0);
  atomic_store(&weak_go, 1);
  for (int i = 0; i < NWEAKT; i++)
    pthread_join(t[i], NULL);
  for (int i = 1; i < NWEAKT; i++)
    for (int off = 0; off < 3; off++)
      ck_assert(cgc_weak_equal(weak_seen[i][off], weak_seen[0][off]));
  ck_assert(cgc_weak_equal(weak_seen[0][0], o[0].weak));
  ck_assert(!cgc_weak_equal(weak_seen[0][1], weak_seen[0][2]));
}
END_TEST

/* ---- abnormal exit of a callback thread (section 10.3 rule 7) -------------- */

static void fin_exit(void *obj, void *data)
{
  (void)obj;
  (void)data;
  pthread_exit(NULL);
}

static void cln_exit(void *arg)
{
  (void)arg;
  pthread_exit(NULL);
}

START_TEST(exec_callback_thread_exit_aborts)
{
  tsup_setup_default();
  tsup_new(&o[0], 64);
  if (_i == 0)
    ck_assert_int_eq(tsup_set_fin(&o[0], fin_exit, NULL), CGC_OK);
  else
    ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_exit, NULL, NULL), CGC_OK);
  tsup_collect(1);
  cgc_wait_idle(10LL * 1000 * 1000 * 1000);
  tsup_sleep_ms(500);
}
END_TEST

/* ---- no false retention by the library (section 10.3 rule 4) --------------- */

/* The first blocks allocated after the callback threads started must die
 * like any other.  Deliberately without tsup_init's quarantine. */
static volatile int first_freed[64];

static void make_first(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < 64; i++) {
    void *p = cgc_malloc(16 + 16 * (size_t)(i % 4));

    ck_assert_ptr_nonnull(p);
    cgc_debug_on_free(p, &first_freed[i]);
  }
}

START_TEST(exec_no_retention_of_first_blocks_after_init)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;
  int kept = 0;

  ck_assert_int_eq(cgc_init(&cfg), CGC_OK);
  cgc_set_gc_percent(-1);
  tsup_sleep_ms(50);                      /* callback threads start */
  tsup_deep(make_first, NULL);
  tsup_collect(1);
  for (int i = 0; i < 64; i++)
    kept += !first_freed[i];
  ck_assert_msg(kept == 0, "%d of 64 unreachable blocks retained", kept);
}
END_TEST

/* ---- shutdown (section 10.3 rule 8) ----------------------------------------- */

static void init_shutdown_cfg(int run_pending_at_shutdown)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;

  cfg.on_demand = 1;
  cfg.run_pending_at_shutdown = run_pending_at_shutdown;
  ck_assert_int_eq(cgc_init(&cfg), CGC_OK);
  cgc_set_gc_percent(-1);
}

START_TEST(exec_shutdown_discards_or_runs_pending)
{
  int run_at_shutdown = _i;

  init_shutdown_cfg(run_at_shutdown);
  tsup_new(&o[0], 64);
  tsup_new(&o[1], 64);
  tsup_new(&o[2], 64);                            /* live, finalizable */
  tsup_root(0, &o[2], 0);
  ck_assert_int_eq(tsup_set_fin(&o[0], fin_count, NULL), CGC_OK);
  ck_assert_int_eq(tsup_add_cln(&o[1], 0, cln_count, NULL, NULL), CGC_OK);
  ck_assert_int_eq(tsup_set_fin(&o[2], fin_count, NULL), CGC_OK);
  tsup_collect(1);
  ck_assert_int_eq(tsup_get(&nfin) + tsup_get(&ncln), 0);
  cgc_shutdown();
  ck_assert_int_eq(tsup_get(&nfin), run_at_shutdown);
  ck_assert_int_eq(tsup_get(&ncln), run_at_shutdown);
  ck_assert_int_eq(cgc_run_pending(0), 0);
  tsup_sleep_ms(50);
  ck_assert_int_eq(tsup_get(&nfin), run_at_shutdown);
  ck_assert_int_eq(tsup_get(&ncln), run_at_shutdown);
}
END_TEST

START_TEST(exec_shutdown_discards_pending_with_threads)
{
  tsup_setup_default();
  tsup_new(&o[0], 64);
  ck_assert_int_eq(tsup_add_cln(&o[0], 0, cln_count, NULL, NULL), CGC_OK);
  cgc_pause_callbacks(1);
  tsup_collect(1);
  cgc_shutdown();
  cgc_pause_callbacks(0);
  tsup_sleep_ms(200);
  ck_assert_int_eq(tsup_get(&ncln), 0);
}
END_TEST

static Suite *exec_suite(void)
{
  Suite *s = suite_create("conf_exec");
  TCase *tc = tcase_create("default");
  TCase *t2 = tcase_create("k2");
  TCase *t0 = tcase_create("k0");
  TCase *td = tcase_create("on_demand");
  TCase *tx = tcase_create("lifecycle");

  tcase_add_checked_fixture(tc, tsup_setup_default, NULL);
  tcase_set_timeout(tc, 90);
  tcase_add_test(tc, exec_blocked_finalizer_does_not_stop_cleanups);
  tcase_add_test(tc, exec_wait_idle_edeadlk_in_callbacks);
  tcase_add_test(tc, exec_wait_idle_timeout_returns_0);
  tcase_add_test(tc, exec_wait_idle_waits_for_running_callback);
  tcase_add_test(tc, exec_pause_callbacks);
  tcase_add_test(tc, exec_callbacks_allocate_collect_register_cancel);
  tcase_add_test(tc, exec_no_lock_held_while_callback_runs);
  tcase_add_test(tc, exec_threads_register_and_cancel_while_collecting);
  tcase_add_test(tc, exec_concurrent_weak_make_is_canonical);
  suite_add_tcase(s, tc);

  tcase_add_checked_fixture(t2, setup_k2, NULL);
  tcase_set_timeout(t2, 60);
  tcase_add_test(t2, exec_blocked_cleanup_does_not_stop_others_k2);
  suite_add_tcase(s, t2);

  tcase_add_checked_fixture(t0, setup_k0, NULL);
  tcase_set_timeout(t0, 60);
  tcase_add_test(t0, exec_k0_cleanups_run_on_finalizer_thread);
  suite_add_tcase(s, t0);

  tcase_add_checked_fixture(td, setup_on_demand, NULL);
  tcase_set_timeout(td, 60);
  tcase_add_test(td, exec_on_demand_run_pending);
  suite_add_tcase(s, td);

  tcase_set_timeout(tx, 60);
  tcase_add_loop_test_raise_signal(tx, exec_callback_thread_exit_aborts,
                                   SIGABRT, 0, 2);
  tcase_add_loop_test(tx, exec_shutdown_discards_or_runs_pending, 0, 2);
  tcase_add_test(tx, exec_shutdown_discards_pending_with_threads);
  tcase_add_test(tx, exec_no_retention_of_first_blocks_after_init);
  suite_add_tcase(s, tx);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 1, exec_suite);
}
