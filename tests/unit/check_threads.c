/* check_threads.c -- unit: thread registration, blocking calls and the
 * stop-the-world signals, in a program linked with the shared library.
 *
 * Linked with libcgc.so and using only the public header, as an
 * application would: plain pthread_create and the blocking libc calls
 * (nanosleep, clock_nanosleep, usleep, poll) reach the library's
 * interposed versions.
 *   - a thread made with plain pthread_create is registered before it
 *     calls cgc, and an object referenced only from its stack survives
 *     collections forced from the main thread and from a third thread;
 *   - a raw thread (libc's own pthread_create) registers with
 *     cgc_register_thread (idempotent) and leaves with
 *     cgc_unregister_thread (a second call is CGC_EINVAL);
 *   - threads sleeping in the wrapped calls while collections run see no
 *     EINTR and are not lost (poll included: a known race, see below);
 *   - threads are created, allocate and exit while another thread
 *     collects without pause; their structures stay intact and the thread
 *     count returns to its baseline;
 *   - CGC_SIG_SUSPEND=SIGUSR1 CGC_SIG_RESTART=SIGUSR2 (set before
 *     initialisation in a forked test) install the handlers on those
 *     signals, leave the defaults alone, and collections with threads work.
 */
#include <check.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cgc.h"
#include "tsup.h"

static tsup_obj_t o[2];

/* No callback threads: the thread count is the test's own threads. */
static void setup(void) { tsup_init(-1, 1, 0); }

static uint64_t nthreads(void)
{
  cgc_stats_t s;

  cgc_get_stats(&s);
  return s.threads;
}

/* ---- storing a hidden address deep (no cgc call) --------------------------- */

struct put_ctx { void *volatile *where; tsup_obj_t *obj; };

static void put_deep(void *c)
{
  struct put_ctx *p = c;
  *p->where = p->obj ? tsup_unhide(p->obj->hid) : NULL;
}

static void put(void *volatile *where, tsup_obj_t *obj)
{
  struct put_ctx c = { where, obj };
  tsup_deep(put_deep, &c);
}

/* ---- a holder thread: keeps one object on its stack ----------------------- */

static atomic_int h_phase;       /* 1 started, 2 holding, 3 drop, 4 dropped, 5 exit */
static atomic_int h_register;    /* the thread calls cgc_register_thread */

static void spin_until(atomic_int *v, int value)
{
  while (atomic_load(v) < value) {
    struct timespec ts = { 0, 1000 * 1000 };
    nanosleep(&ts, NULL);
  }
}

static void *holder_thread(void *arg)
{
  void *volatile keep = NULL;

  (void)arg;
  if (atomic_load(&h_register)) {
    ck_assert_int_eq(cgc_register_thread(), CGC_OK);
    ck_assert_int_eq(cgc_register_thread(), CGC_OK);   /* idempotent */
  }
  atomic_store(&h_phase, 1);
  put(&keep, &o[0]);
  tsup_clear_stack();
  atomic_store(&h_phase, 2);
  spin_until(&h_phase, 3);
  keep = NULL;
  tsup_clear_stack();
  atomic_store(&h_phase, 4);
  spin_until(&h_phase, 5);
  if (atomic_load(&h_register)) {
    ck_assert_int_eq(cgc_unregister_thread(), CGC_OK);
    ck_assert_int_eq(cgc_unregister_thread(), CGC_EINVAL);
  }
  return NULL;
}

static void *collector_thread(void *arg)
{
  int n = *(int *)arg;

  for (int i = 0; i < n; i++) {
    tsup_scrub();
    cgc_collect();
  }
  return NULL;
}

static void collect_from_other_thread(int n)
{
  pthread_t c;

  ck_assert_int_eq(pthread_create(&c, NULL, collector_thread, &n), 0);
  ck_assert_int_eq(pthread_join(c, NULL), 0);
}

/* holder_begin -- reset the holder protocol (REG: the thread registers
 * itself), give it a fresh object in o[0]; the registered-thread count
 * before the thread starts. */
static uint64_t holder_begin(int reg)
{
  uint64_t base = nthreads();

  atomic_store(&h_phase, 0);
  atomic_store(&h_register, reg);
  tsup_new(&o[0], 96);
  tsup_fill(&o[0], 0, 0x6B);
  return base;
}

/* Run the holder protocol with thread TH already started. */
static void holder_protocol(pthread_t th, uint64_t base)
{
  spin_until(&h_phase, 2);
  ck_assert_uint_eq(nthreads(), base + 1);
  tsup_collect(2);
  collect_from_other_thread(3);
  tsup_collect(1);
  ck_assert_int_eq(o[0].freed, 0);
  ck_assert(tsup_obj_check_fill(&o[0], 0, 0x6B));
  atomic_store(&h_phase, 3);
  spin_until(&h_phase, 4);
  tsup_collect(2);
  ck_assert_int_eq(o[0].freed, 1);
  atomic_store(&h_phase, 5);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
  ck_assert_uint_eq(nthreads(), base);
}

START_TEST(plain_pthread_create_registers)
{
  pthread_t th;
  uint64_t base;

  setup();
  base = holder_begin(0);
  ck_assert_int_eq(pthread_create(&th, NULL, holder_thread, NULL), 0);
  spin_until(&h_phase, 1);
  /* registered before the thread called anything of cgc */
  ck_assert_uint_eq(nthreads(), base + 1);
  holder_protocol(th, base);
}
END_TEST

typedef int (*create_fn)(pthread_t *, const pthread_attr_t *,
                         void *(*)(void *), void *);

START_TEST(raw_thread_register_unregister)
{
  void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  create_fn raw;
  pthread_t th;
  uint64_t base;

  ck_assert_ptr_nonnull(libc);
  raw = (create_fn)dlsym(libc, "pthread_create");
  ck_assert_ptr_nonnull(raw);
  ck_assert(raw != (create_fn)pthread_create);     /* not the wrapper */
  setup();
  base = holder_begin(1);
  ck_assert_int_eq(raw(&th, NULL, holder_thread, NULL), 0);
  holder_protocol(th, base);
  dlclose(libc);
}
END_TEST

/* ---- blocking calls while collections run ------------------------------------ */

static atomic_int sleepers_stop, sleep_errors, sleep_calls;

static void *sleeper_thread(void *arg)
{
  int mode = *(int *)arg;

  while (!atomic_load(&sleepers_stop)) {
    struct timespec ts = { 0, 500 * 1000 };
    int rc;

    switch (mode) {
    case 0:  rc = nanosleep(&ts, NULL); break;
    case 1:  rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL); break;
    case 2:  rc = usleep(300); break;
    case 3:  rc = poll(NULL, 0, 1); break;
    default: rc = poll(NULL, 0, 0); break;
    }
    if (rc != 0)
      atomic_fetch_add(&sleep_errors, 1);
    atomic_fetch_add(&sleep_calls, 1);
  }
  return NULL;
}

static void sleepers_case(const int *modes, int nmodes, int ncollect)
{
  pthread_t th[8];
  uint64_t base;

  setup();
  base = nthreads();
  atomic_store(&sleepers_stop, 0);
  atomic_store(&sleep_errors, 0);
  atomic_store(&sleep_calls, 0);
  for (int i = 0; i < nmodes; i++)
    ck_assert_int_eq(pthread_create(&th[i], NULL, sleeper_thread,
                                    (void *)&modes[i]), 0);
  /* each registers itself on its way in, before its start routine */
  for (int ms = 0; ms < 5000 && nthreads() < base + (uint64_t)nmodes; ms++)
    tsup_sleep_ms(1);
  ck_assert_uint_eq(nthreads(), base + (uint64_t)nmodes);
  for (int i = 0; i < ncollect; i++) {
    cgc_collect();
    if (i % 8 == 0)
      ck_assert_ptr_nonnull(cgc_malloc(64));
  }
  atomic_store(&sleepers_stop, 1);
  for (int i = 0; i < nmodes; i++)
    ck_assert_int_eq(pthread_join(th[i], NULL), 0);
  ck_assert_int_gt(atomic_load(&sleep_calls), nmodes);
  ck_assert_msg(atomic_load(&sleep_errors) == 0,
                "%d of %d blocking calls failed (EINTR) during collections",
                atomic_load(&sleep_errors), atomic_load(&sleep_calls));
}

START_TEST(sleep_no_eintr)
{
  static const int modes[] = { 0, 0, 1, 2 };
  sleepers_case(modes, 4, 1500);
}
END_TEST

/* poll is wrapped like nanosleep (cgc.h, cgc_do_blocking): no EINTR, and a
 * thread that sits in the wrapper must never be left suspended. */
START_TEST(poll_no_eintr_no_hang)
{
  static const int modes[] = { 3, 4, 4 };
  sleepers_case(modes, 3, 4000);
}
END_TEST

/* ---- threads come and go while collections run ----------------------------------- */

static atomic_int churn_stop, churn_bad;

struct cnode { struct cnode *next; uint64_t v; };

static void *churn_collector(void *arg)
{
  (void)arg;
  while (!atomic_load(&churn_stop))
    cgc_collect();
  return NULL;
}

static void *churn_worker(void *arg)
{
  uint64_t seed = (uint64_t)(uintptr_t)arg, sum = 0, again = 0;
  struct cnode *head = NULL;

  for (int i = 0; i < 300; i++) {
    struct cnode *n = cgc_malloc(sizeof *n);

    n->v = tsup_rand(&seed);
    n->next = head;
    head = n;
    sum += n->v;
  }
  usleep(200);
  for (struct cnode *n = head; n; n = n->next)
    again += n->v;
  if (again != sum)
    atomic_fetch_add(&churn_bad, 1);
  return NULL;
}

START_TEST(threads_come_and_go)
{
  pthread_t col, w[4];
  uint64_t base, seed = tsup_seed();

  setup();
  base = nthreads();
  atomic_store(&churn_stop, 0);
  atomic_store(&churn_bad, 0);
  ck_assert_int_eq(pthread_create(&col, NULL, churn_collector, NULL), 0);
  for (int round = 0; round < 25; round++) {
    for (int i = 0; i < 4; i++)
      ck_assert_int_eq(pthread_create(&w[i], NULL, churn_worker,
                                      (void *)(uintptr_t)tsup_rand(&seed)), 0);
    for (int i = 0; i < 4; i++)
      ck_assert_int_eq(pthread_join(w[i], NULL), 0);
  }
  atomic_store(&churn_stop, 1);
  ck_assert_int_eq(pthread_join(col, NULL), 0);
  ck_assert_int_eq(atomic_load(&churn_bad), 0);
  ck_assert_uint_eq(nthreads(), base);
}
END_TEST

/* ---- custom stop-the-world signals -------------------------------------------------- */

START_TEST(custom_signals)
{
  struct sigaction sa;
  pthread_t th;
  uint64_t base;

  ck_assert_int_eq(setenv("CGC_SIG_SUSPEND", "SIGUSR1", 1), 0);
  ck_assert_int_eq(setenv("CGC_SIG_RESTART", "SIGUSR2", 1), 0);
  setup();
  ck_assert_int_eq(sigaction(SIGUSR1, NULL, &sa), 0);
  ck_assert(sa.sa_flags & SA_SIGINFO);
  ck_assert(sa.sa_sigaction != NULL);
  ck_assert_int_eq(sigaction(SIGUSR2, NULL, &sa), 0);
  ck_assert(sa.sa_handler != SIG_DFL && sa.sa_handler != SIG_IGN);
  ck_assert_int_eq(sigaction(SIGPWR, NULL, &sa), 0);
  ck_assert(sa.sa_handler == SIG_DFL);
  ck_assert_int_eq(sigaction(SIGXCPU, NULL, &sa), 0);
  ck_assert(sa.sa_handler == SIG_DFL);
  base = holder_begin(0);
  ck_assert_int_eq(pthread_create(&th, NULL, holder_thread, NULL), 0);
  holder_protocol(th, base);
  /* and with threads that allocate while being stopped */
  atomic_store(&churn_stop, 0);
  atomic_store(&churn_bad, 0);
  for (int round = 0; round < 5; round++) {
    pthread_t w[3];

    for (int i = 0; i < 3; i++)
      ck_assert_int_eq(pthread_create(&w[i], NULL, churn_worker,
                                      (void *)(uintptr_t)(round * 3 + i)), 0);
    cgc_collect();
    for (int i = 0; i < 3; i++)
      ck_assert_int_eq(pthread_join(w[i], NULL), 0);
  }
  ck_assert_int_eq(atomic_load(&churn_bad), 0);
}
END_TEST

static Suite *threads_suite(void)
{
  Suite *s = suite_create("threads");
  TCase *tr = tcase_create("registration");
  TCase *tb = tcase_create("blocking");
  TCase *ts = tcase_create("signals");

  tcase_set_timeout(tr, 30);
  tcase_add_test(tr, plain_pthread_create_registers);
  tcase_add_test(tr, raw_thread_register_unregister);
  tcase_add_test(tr, threads_come_and_go);
  suite_add_tcase(s, tr);
  tcase_set_timeout(tb, 30);
  tcase_add_test(tb, sleep_no_eintr);
  tcase_add_test(tb, poll_no_eintr_no_hang);
  suite_add_tcase(s, tb);
  tcase_set_timeout(ts, 30);
  tcase_add_test(ts, custom_signals);
  suite_add_tcase(s, ts);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, threads_suite);
}
