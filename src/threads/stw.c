/* stw.c -- stopping and restarting the world with signals.
 *
 * Design: docs/design/threads.md.  The collector holds the lock.
 *
 * Protocol.  stop_gen is a counter, odd while the world is stopped.  To
 * stop, the collector sets world_stopping, makes stop_gen odd and sends the
 * suspend signal (tgkill, so a thread that died without unregistering gives
 * ESRCH instead of undefined behaviour) to every registered thread that is
 * not BLOCKED (threads.c).  The handler publishes an address in its own
 * frame as the thread's stack pointer (the kernel saved every register in
 * the signal frame above it, so scanning from there covers them), records
 * the generation it acknowledges, posts the semaphore, then sigsuspends
 * until stop_gen changes.  The restart signal is blocked in the handler and
 * only unblocked atomically by sigsuspend, so it cannot be lost; and the
 * generation, not the signal, is the authority, so spurious wake-ups are
 * harmless.
 *
 * Lost suspend signals: the collector waits on the semaphore with a
 * timeout and re-sends to every thread that has not acknowledged this
 * generation; the handler ignores a generation it already acknowledged.
 *
 * Both handlers use SA_RESTART, so interrupted restartable system calls
 * resume transparently; the calls that never restart are wrapped
 * (threads.c) so that blocked threads are not signalled at all.
 */
#include "core/internal.h"
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

static void suspend_handler(int sig, siginfo_t *info, void *uctx) {
  (void)sig; (void)info;
  int saved_errno = errno;
  struct cgci_thread *t = cgci_self;
  if (t != NULL) t->sig_seen++;          /* lets wrappers tell our EINTR */
  AO_t gen = AO_load_acquire(&cgci_g.stop_gen);
  /* Nothing to do when the world is running, when this generation is
   * acknowledged already (a duplicate), or when the thread is BLOCKED: the
   * collector counts a blocked thread as stopped and will not restart it,
   * so it must not suspend here (a late signal from an earlier generation
   * lands exactly in such system calls). */
  if (t == NULL || !(gen & 1) || AO_load(&t->ack_gen) == gen ||
      AO_load(&t->state) == CGCI_TS_BLOCKED) {
    errno = saved_errno;
    return;
  }
  volatile uintptr_t here = 0;
  uintptr_t sp = (uintptr_t)&here;
  /* On an alternate signal stack (the thread was running an SA_ONSTACK
   * handler of the program): the signal frames are on that stack, and the
   * normal stack is live from the interrupted stack pointer (or, if that is
   * on the alternate stack too, as a whole; roots.c). */
  stack_t ss;
  t->on_alt = 0;
  if (sigaltstack(NULL, &ss) == 0 && (ss.ss_flags & SS_ONSTACK)) {
    const ucontext_t *uc = uctx;
    uintptr_t isp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    t->alt_lo = sp;
    t->alt_hi = (uintptr_t)ss.ss_sp + ss.ss_size;
    t->on_alt = 1;
    sp = (isp < t->stack_base && t->stack_base - isp < ((uintptr_t)1 << 30)) ? isp - 128 : 0;
  }
  AO_store(&t->stop_sp, (AO_t)sp);
  AO_store_release(&t->ack_gen, gen);
  sem_post(&cgci_g.ack_sem);
  sigset_t mask;
  sigfillset(&mask);
  sigdelset(&mask, cgci_g.sig_restart);
  /* let fatal and job-control signals through while suspended */
  sigdelset(&mask, SIGINT); sigdelset(&mask, SIGQUIT); sigdelset(&mask, SIGTERM);
  sigdelset(&mask, SIGSEGV); sigdelset(&mask, SIGBUS); sigdelset(&mask, SIGABRT);
  while (AO_load_acquire(&cgci_g.stop_gen) == gen)
    syscall(SYS_rt_sigsuspend, &mask, (size_t)(_NSIG / 8));
  if (AO_load(&t->state) != CGCI_TS_BLOCKED) AO_store(&t->stop_sp, 0);
  errno = saved_errno;
}

static void restart_handler(int sig) {
  (void)sig;
  struct cgci_thread *t = cgci_self;
  if (t != NULL) t->sig_seen++;          /* lets wrappers tell our EINTR */
}

void cgci_stw_init(void) {
  if (cgci_g.sig_suspend == cgci_g.sig_restart)
    cgci_fatal("CGC_SIG_SUSPEND and CGC_SIG_RESTART must differ");
  sem_init(&cgci_g.ack_sem, 0, 0);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = suspend_handler;
  sa.sa_flags = SA_RESTART | SA_SIGINFO;
  sigfillset(&sa.sa_mask);
  sigdelset(&sa.sa_mask, SIGSEGV); sigdelset(&sa.sa_mask, SIGBUS);
  sigdelset(&sa.sa_mask, SIGABRT); sigdelset(&sa.sa_mask, SIGINT);
  sigdelset(&sa.sa_mask, SIGQUIT); sigdelset(&sa.sa_mask, SIGTERM);
  if (sigaction(cgci_g.sig_suspend, &sa, NULL) != 0) cgci_fatal("cannot install the suspend handler");
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = restart_handler;
  sa.sa_flags = SA_RESTART;
  sigfillset(&sa.sa_mask);
  if (sigaction(cgci_g.sig_restart, &sa, NULL) != 0) cgci_fatal("cannot install the restart handler");
  /* make sure neither signal is blocked in this thread (inherited masks) */
  sigset_t m;
  sigemptyset(&m);
  sigaddset(&m, cgci_g.sig_suspend);
  pthread_sigmask(SIG_UNBLOCK, &m, NULL);
}

static int send(struct cgci_thread *t, int sig) {
  return (int)syscall(SYS_tgkill, (long)getpid(), (long)t->tid, (long)sig);
}

/* drop_dead -- a thread that exited without unregistering (tgkill said
 * ESRCH): forget it. */
static void drop_dead(struct cgci_thread *t) {
  if (t->prev) t->prev->next = t->next; else cgci_g.threads = t->next;
  if (t->next) t->next->prev = t->prev;
  cgci_g.nthreads--;
  t->next = cgci_g.thread_pool;
  t->prev = NULL;
  cgci_g.thread_pool = t;
}

void cgci_stop_world(void) {
  struct cgci_thread *self = cgci_self;
  AO_store(&cgci_g.world_stopping, 1);
  AO_nop_full();
  AO_t gen = AO_load(&cgci_g.stop_gen) + 1;
  AO_store_release(&cgci_g.stop_gen, gen);
  AO_nop_full();
  size_t expected = 0;
  struct cgci_thread *t = cgci_g.threads;
  while (t != NULL) {
    struct cgci_thread *next = t->next;
    t->dead = 0;
    if (t != self && AO_load(&t->state) != CGCI_TS_BLOCKED) {
      if (send(t, cgci_g.sig_suspend) != 0 && errno == ESRCH) drop_dead(t);
      else { t->dead = 2; expected++; }      /* 2: signalled this round */
    }
    t = next;
  }
  /* Completion is decided per thread, not by counting semaphore posts: a
   * thread has stopped when it acknowledged this generation, or when it
   * has since declared itself BLOCKED (.inv.blocked in threads.c).  The
   * semaphore only wakes us up; stray posts cost an extra loop. */
  int rounds = 0;
  uint64_t wait_ms = CGCI_STW_RETRY_MS;
  (void)expected;
  for (;;) {
    bool all = true;
    for (t = cgci_g.threads; t; t = t->next)
      if (t->dead == 2 && AO_load_acquire(&t->ack_gen) != gen &&
          AO_load(&t->state) != CGCI_TS_BLOCKED) { all = false; break; }
    if (all) break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)(wait_ms * 1000000);
    while (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    if (sem_timedwait(&cgci_g.ack_sem, &ts) == 0 || errno == EINTR) continue;
    /* timeout: re-send to whoever has not answered; back off, since a
     * duplicate signal can interrupt a system call */
    if (++rounds > CGCI_STW_MAX_ROUNDS) cgci_fatal("threads do not answer the suspend signal");
    if (wait_ms < 1000) wait_ms *= 2;
    for (t = cgci_g.threads; t; t = t->next)
      if (t->dead == 2 && AO_load_acquire(&t->ack_gen) != gen &&
          AO_load(&t->state) != CGCI_TS_BLOCKED &&
          send(t, cgci_g.sig_suspend) != 0 && errno == ESRCH)
        t->dead = 1;                     /* died in between */
  }
  while (sem_trywait(&cgci_g.ack_sem) == 0) { }   /* drain stray posts */
  for (t = cgci_g.threads; t; ) {
    struct cgci_thread *next = t->next;
    if (t->dead == 1) drop_dead(t);
    t = next;
  }
}

void cgci_start_world(void) {
  AO_t gen = AO_load(&cgci_g.stop_gen);
  AO_store(&cgci_g.world_stopping, 0);
  AO_nop_full();
  AO_store_release(&cgci_g.stop_gen, gen + 1);
  /* restart exactly the threads suspended in this generation: signalled
   * by us this round or not (a late signal may have stopped a thread we
   * counted as blocked), and not a signalled thread that became BLOCKED
   * before its handler ran (it did not suspend; a restart signal would
   * only interrupt its system call) */
  for (struct cgci_thread *t = cgci_g.threads; t; t = t->next) {
    if (AO_load_acquire(&t->ack_gen) == gen) send(t, cgci_g.sig_restart);
    t->dead = 0;
  }
  pthread_mutex_lock(&cgci_g.blocked_mu);
  pthread_cond_broadcast(&cgci_g.blocked_cv);
  pthread_mutex_unlock(&cgci_g.blocked_mu);
}
