/* ex09_threads.c -- where and when callbacks run: on-demand mode, cleanups
 * on the finalizer thread (K = 0), and a cleanup pool (K = 2) that keeps
 * working while a finalizer is blocked.
 *
 * What it teaches:
 *   - cgc_collect() only QUEUES callbacks.  They run later on callback
 *     threads; cgc_wait_idle() waits until both queues are empty and no
 *     callback is running.
 *   - With cgc_config_t.on_demand = 1 there are no callback threads: queued
 *     callbacks wait until the program calls cgc_run_pending(), and they run
 *     on the calling thread (Boehm's finalize-on-demand).
 *   - cleanup_threads = 0 runs cleanups on the single finalizer thread (the
 *     Go 1.24 model); cleanup_threads = K >= 1 gives cleanups their own pool
 *     (Go 1.25), so a finalizer that blocks does not hold cleanups up.
 *   - A callback must not wait for the queues to drain: cgc_wait_idle()
 *     called from a callback returns CGC_EDEADLK instead of deadlocking.
 *   - cgc_init() may be called again to change these callback settings;
 *     here it switches from on-demand mode to callback threads.  The
 *     cleanup_threads = 0 case runs in a second process of this program,
 *     configured from the start.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "common.h"

static ex_track_t tx, ty;
static pthread_t fin_thread, cln_thread;
static atomic_int fin_runs, cln_runs, fin_on_main, cln_on_main;
static atomic_int block_finalizer, finalizer_blocked, release_finalizer;
static atomic_int wait_idle_in_cleanup = 1;

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

  nanosleep(&ts, NULL);
}

static void finalize(void *obj, void *data)
{
  (void)obj;
  (void)data;
  fin_thread = pthread_self();
  atomic_store(&fin_on_main, ex_on_main_thread());
  if (atomic_load(&block_finalizer)) {
    atomic_store(&finalizer_blocked, 1);
    ex_log("finalizer: blocked until main released it");
    while (!atomic_load(&release_finalizer))
      sleep_ms(1);
  }
  ex_log("finalizer: ran on the %s thread", ex_on_main_thread() ? "main"
         : "finalizer");
  atomic_fetch_add(&fin_runs, 1);
}

static void cleanup(void *arg)
{
  (void)arg;
  cln_thread = pthread_self();
  atomic_store(&cln_on_main, ex_on_main_thread());
  atomic_store(&wait_idle_in_cleanup, cgc_wait_idle(0));
  ex_log("cleanup: ran on %s thread; cgc_wait_idle inside it returned %d",
         ex_on_main_thread() ? "the main" : "a callback",
         atomic_load(&wait_idle_in_cleanup));
  atomic_fetch_add(&cln_runs, 1);
}

static EX_NOINLINE void make_pair(void)
{
  void *x = cgc_malloc(32);
  void *y = cgc_malloc(32);

  ex_track(&tx, "X", x);
  ex_track(&ty, "Y", y);
  cgc_set_finalizer(x, finalize, NULL);
  cgc_add_cleanup(y, cleanup, NULL, NULL);
}

static EX_NOINLINE void collect_no_wait(void)
{
  cgc_debug_scrub_stack();
  cgc_collect();
}

static void reset(void)
{
  atomic_store(&fin_runs, 0);
  atomic_store(&cln_runs, 0);
}

/* The K = 0 part, run in a process of its own so that the collector is
 * configured before its callback threads start. */
static int k0_child(void)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;

  cfg.cleanup_threads = 0;
  cgc_init(&cfg);
  ex_begin(NULL);
  make_pair();
  ex_gc();
  ex_expect(fin_runs == 1 && cln_runs == 1 && !fin_on_main && !cln_on_main,
            "both ran on a callback thread");
  ex_expect(pthread_equal(fin_thread, cln_thread),
            "the finalizer and the cleanup ran on the same thread");
  return ex_failed() == 0 ? 0 : 1;
}

static void run_self(const char *arg)
{
  int status = 0;
  pid_t pid;

  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    execl("/proc/self/exe", "ex09_threads", arg, (char *)NULL);
    _exit(127);
  }
  waitpid(pid, &status, 0);
  ex_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0,
            "the child process met its expectations");
}

int main(int argc, char **argv)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;
  cgc_stats_t st;
  int ran;

  if (argc > 1 && strcmp(argv[1], "--k0") == 0)
    return k0_child();

  cfg.on_demand = 1;
  cgc_init(&cfg);
  ex_begin("ex09: where callbacks run");

  ex_section("on-demand mode: nothing runs until cgc_run_pending()");
  make_pair();
  collect_no_wait();
  sleep_ms(100);
  cgc_get_stats(&st);
  printf("   after cgc_collect + 100 ms: finalizer queue %llu, cleanup "
         "queue %llu, run so far %d\n", (unsigned long long)st.fin_queue_len,
         (unsigned long long)st.cln_queue_len,
         atomic_load(&fin_runs) + atomic_load(&cln_runs));
  ex_expect(st.fin_queue_len == 1 && st.cln_queue_len == 1 &&
            fin_runs + cln_runs == 0, "both callbacks are queued, none ran");
  ran = cgc_run_pending(0);
  printf("   cgc_run_pending(0) returned %d\n", ran);
  ex_flush_log();
  ex_expect(ran == 2 && fin_on_main && cln_on_main,
            "both ran inside cgc_run_pending, on the main thread");
  ex_expect(cgc_wait_idle(0) == 1, "the queues are now empty");


  ex_section("cleanup_threads = 2: a blocked finalizer does not stop "
             "cleanups");
  cfg.on_demand = 0;
  cfg.cleanup_threads = 2;
  ex_expect(cgc_init(&cfg) == CGC_OK, "cgc_init switches from on-demand "
            "mode to callback threads");
  reset();
  atomic_store(&block_finalizer, 1);
  make_pair();
  collect_no_wait();
  for (int i = 0; i < 5000; i++) {
    if (atomic_load(&cln_runs) == 1 && atomic_load(&finalizer_blocked))
      break;
    sleep_ms(1);
  }
  ex_expect(atomic_load(&cln_runs) == 1 && atomic_load(&fin_runs) == 0,
            "the cleanup ran while the finalizer was blocked");
  printf("   (the finalizer is still blocked at this point)\n");
  ex_expect(!pthread_equal(fin_thread, cln_thread),
            "on a different thread");
  atomic_store(&release_finalizer, 1);
  ex_expect(cgc_wait_idle(-1) == 1, "cgc_wait_idle returns once the "
            "finalizer finished");
  ex_flush_log();
  ex_expect(atomic_load(&wait_idle_in_cleanup) == CGC_EDEADLK,
            "cgc_wait_idle called inside a callback returned CGC_EDEADLK");

  ex_section("cleanup_threads = 0: cleanups run on the finalizer thread "
             "(a new process)");
  run_self("--k0");

  return ex_finish();
}
