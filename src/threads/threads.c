/* threads.c -- the thread registry, automatic registration, and the
 * wrappers that keep threads blocked in system calls out of the way.
 *
 * Design: docs/design/threads.md.
 *
 * Registration.  A thread is registered (a record in meta memory, linked
 * into cgci_g.threads under the lock) when it starts through our
 * pthread_create (exported from libcgc.so, so plain pthread_create calls
 * of a program linked with libcgc land here), through cgc_pthread_create,
 * by cgc_register_thread, or on its first allocation.  A pthread key whose
 * destructor unregisters it makes thread exit safe without the program's
 * help.
 *
 * Blocking.  The stop-the-world signal would make some system calls fail
 * with EINTR even with SA_RESTART (nanosleep, poll, select, epoll_wait,
 * sigsuspend...).  Their wrappers here mark the thread BLOCKED, with its
 * callee-saved registers and stack pointer saved; the collector does not
 * signal a BLOCKED thread but scans it from the saved state, and a thread
 * leaving the blocked state while the world is stopped waits for the
 * restart.  The handshake is a Dekker pair (state, world_stopping) with a
 * full fence on each side:
 *
 * .inv.blocked: a thread whose state the collector reads as BLOCKED after
 *   setting world_stopping does not touch the heap until world_stopping is
 *   clear again.
 */
#include "core/internal.h"
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

__thread struct cgci_thread *cgci_self;
extern void *__libc_stack_end;

#define CGCI_EXPORT __attribute__((visibility("default")))

void *cgci_real_sym(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  if (p == NULL) p = dlsym(RTLD_DEFAULT, name);
  return p;
}

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *,
                                 void *(*)(void *), void *);
static pthread_create_fn real_pthread_create;

static void key_destructor(void *v) {
  struct cgci_thread *t = v;
  if (t != NULL && cgci_self == t) cgci_thread_unregister_self();
}

void cgci_threads_init(void) {
  pthread_key_create(&cgci_g.thread_key, key_destructor);
  real_pthread_create = (pthread_create_fn)cgci_real_sym("pthread_create");
}

static uintptr_t read_tp(void) {
  uintptr_t tp;
  __asm__("mov %%fs:0, %0" : "=r"(tp));
  return tp;
}

static struct cgci_thread *register_with_base(uintptr_t base, int is_main) {
  struct cgci_thread *t = cgci_self;
  if (t != NULL) return t;
  cgci_lock();
  t = cgci_g.thread_pool;
  if (t != NULL) {
    cgci_g.thread_pool = t->next;
    memset(t, 0, sizeof *t);
  } else {
    t = cgci_meta_alloc(sizeof *t);
  }
  t->pth = pthread_self();
  t->tid = cgci_os_gettid();
  t->tp = read_tp();
  t->stack_base = base;
  t->is_main = is_main;
  t->next = cgci_g.threads;
  if (t->next) t->next->prev = t;
  cgci_g.threads = t;
  cgci_g.nthreads++;
  cgci_self = t;
  cgci_unlock();
  pthread_setspecific(cgci_g.thread_key, t);
  return t;
}

/* cgci_thread_register_self -- IS_MAIN -1: find out.  The main thread's
 * stack ends at __libc_stack_end; any other thread's at the top of the
 * mapping that holds its stack pointer (read from /proc/self/maps without
 * allocating). */
struct cgci_thread *cgci_thread_register_self(int is_main) {
  if (cgci_self != NULL) return cgci_self;
  if (is_main < 0) is_main = cgci_os_gettid() == getpid();
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  uintptr_t base = 0, lo, hi;
  if (is_main && __libc_stack_end != NULL && (uintptr_t)__libc_stack_end > sp)
    base = (uintptr_t)__libc_stack_end;
  else if (cgci_os_stack_of(sp, &lo, &hi))
    base = hi;
  else
    base = sp + 65536;          /* cannot happen on Linux; be conservative */
  return register_with_base(base, is_main);
}

void cgci_thread_unregister_self(void) {
  struct cgci_thread *t = cgci_self;
  if (t == NULL) return;
  cgci_thread_drop_cache(t);
  if (t->start_info) { cgci_free(t->start_info, false); t->start_info = NULL; }
  cgci_lock();
  cgci_thread_flush_counters(t);
  if (t->prev) t->prev->next = t->next; else cgci_g.threads = t->next;
  if (t->next) t->next->prev = t->prev;
  cgci_g.nthreads--;
  t->next = cgci_g.thread_pool;
  t->prev = NULL;
  cgci_g.thread_pool = t;
  cgci_self = NULL;
  cgci_unlock();
  pthread_setspecific(cgci_g.thread_key, NULL);
}

int cgc_register_thread(void) {
  cgci_ensure_init();
  return cgci_thread_register_self(-1) ? CGC_OK : CGC_ENOMEM;
}

int cgc_unregister_thread(void) {
  if (!cgci_ready() || cgci_self == NULL)
    return cgci_error(CGC_EINVAL, "cgc_unregister_thread", "thread is not registered");
  cgci_thread_unregister_self();
  return CGC_OK;
}

/* cgci_atfork_child_threads -- only the forking thread survives fork(). */
void cgci_atfork_child_threads(void) {
  struct cgci_thread *self = cgci_self, *t = cgci_g.threads;
  while (t != NULL) {
    struct cgci_thread *next = t->next;
    if (t != self) { t->next = cgci_g.thread_pool; cgci_g.thread_pool = t; }
    t = next;
  }
  cgci_g.threads = self;
  cgci_g.nthreads = self ? 1 : 0;
  if (self) {
    self->next = self->prev = NULL;
    self->tid = cgci_os_gettid();
    self->pth = pthread_self();
  }
  AO_store(&cgci_g.world_stopping, 0);
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c = PTHREAD_COND_INITIALIZER;
  cgci_g.blocked_mu = m;
  cgci_g.blocked_cv = c;
  sem_destroy(&cgci_g.ack_sem);
  sem_init(&cgci_g.ack_sem, 0, 0);
}

/* ---- thread creation ------------------------------------------------------- */

struct start_info { void *(*fn)(void *); void *arg; };

static void *trampoline(void *p) {
  /* The stack above this frame belongs to libc's start_thread and holds no
   * pointers into the heap. */
  uintptr_t base = (uintptr_t)__builtin_frame_address(0) + 2 * sizeof(void *);
  register_with_base(base, 0);
  struct start_info *si = p;
  void *(*fn)(void *) = si->fn;
  void *arg = si->arg;
  /* ARG lives on in this frame from here.  The record itself is freed at
   * unregistration, not now: libc's thread descriptor keeps its address,
   * and a block reused there would be kept alive by it. */
  si->arg = NULL;
  if (cgci_self) cgci_self->start_info = si;
  void *r = fn(arg);
  CGC_KEEP_ALIVE(arg);
  return r;
}

/* The start record is uncollectable, hence a root, so ARG stays alive
 * while the new thread is not yet registered. */
int cgc_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                       void *(*start)(void *), void *arg) {
  cgci_ensure_init();
  if (start == NULL) return EINVAL;
  if (real_pthread_create == NULL) return ENOSYS;
  struct start_info *si = cgc_malloc_uncollectable(sizeof *si);
  if (si == NULL) return EAGAIN;
  si->fn = start;
  si->arg = arg;
  int r = real_pthread_create(thread, attr, trampoline, si);
  if (r != 0) cgci_free(si, false);
  return r;
}

CGCI_EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                               void *(*start)(void *), void *arg) {
  return cgc_pthread_create(thread, attr, start, arg);
}

/* ---- blocking ---------------------------------------------------------------- */

/* cgci_blocking_enter -- save callee-saved registers and the stack pointer,
 * then declare the thread BLOCKED (.inv.blocked). */
CGCI_NOINLINE void cgci_blocking_enter(struct cgci_thread *t) {
  if (t->blocked_depth++ > 0) return;
  __asm__ __volatile__(
    "mov %%rbx, 0(%0)\n\t" "mov %%rbp, 8(%0)\n\t" "mov %%r12, 16(%0)\n\t"
    "mov %%r13, 24(%0)\n\t" "mov %%r14, 32(%0)\n\t" "mov %%r15, 40(%0)\n\t"
    : : "r"(t->blocked_regs) : "memory");
  AO_store(&t->stop_sp, (AO_t)__builtin_frame_address(0));
  AO_store(&t->state, CGCI_TS_BLOCKED);
  AO_nop_full();
}

CGCI_NOINLINE void cgci_blocking_leave(struct cgci_thread *t) {
  if (t->blocked_depth > 1) { t->blocked_depth--; return; }
  for (;;) {
    AO_store(&t->state, CGCI_TS_RUNNING);
    AO_nop_full();
    if (!AO_load(&cgci_g.world_stopping)) break;
    /* a collection is under way: we may not run; wait for the restart */
    AO_store(&t->state, CGCI_TS_BLOCKED);
    AO_nop_full();
    pthread_mutex_lock(&cgci_g.blocked_mu);
    while (AO_load(&cgci_g.world_stopping))
      pthread_cond_wait(&cgci_g.blocked_cv, &cgci_g.blocked_mu);
    pthread_mutex_unlock(&cgci_g.blocked_mu);
  }
  AO_store(&t->stop_sp, 0);
  AO_nop_full();
  t->blocked_depth = 0;          /* last: roots.c scans the saved registers till here */
}

void *cgc_do_blocking(void *(*fn)(void *), void *arg) {
  if (fn == NULL) { cgci_error(CGC_EINVAL, "cgc_do_blocking", "fn is nil"); return NULL; }
  struct cgci_thread *t = cgci_self;
  if (t == NULL || !cgci_ready()) return fn(arg);
  cgci_blocking_enter(t);
  void *r = fn(arg);
  cgci_blocking_leave(t);
  return r;
}

/* WRAP -- define NAME as a blocking wrapper around libc's NAME. */
#define WRAP(ret, name, params, args)                                   \
  CGCI_EXPORT ret name params {                                         \
    static ret (*real_) params;                                         \
    if (real_ == NULL) real_ = (ret (*) params)cgci_real_sym(#name);    \
    struct cgci_thread *t_ = cgci_self;                                 \
    if (t_ == NULL || t_->in_collect) return real_ args;                \
    cgci_blocking_enter(t_);                                            \
    ret rv_ = real_ args;                                               \
    int e_ = errno;                                                     \
    cgci_blocking_leave(t_);                                            \
    errno = e_;                                                         \
    return rv_;                                                         \
  }

/* The sleep family retries when the interruption was the collector's (a
 * late duplicate of the suspend signal can still land in the call): the
 * program asked to sleep, not to be told about our signals. */
static int sleep_ns(struct cgci_thread *t, clockid_t c, int flags,
                    const struct timespec *req, struct timespec *rem) {
  static int (*real_)(clockid_t, int, const struct timespec *, struct timespec *);
  if (real_ == NULL)
    real_ = (int (*)(clockid_t, int, const struct timespec *, struct timespec *))
            cgci_real_sym("clock_nanosleep");
  struct timespec left = *req, r2;
  for (;;) {
    unsigned seen = t ? t->sig_seen : 0;
    if (t) cgci_blocking_enter(t);
    int rv = real_(c, flags, &left, &r2);
    if (t) cgci_blocking_leave(t);
    if (rv == EINTR && t && t->sig_seen != seen) {
      if (!(flags & TIMER_ABSTIME)) left = r2;
      continue;
    }
    if (rv == EINTR && rem && !(flags & TIMER_ABSTIME)) *rem = r2;
    return rv;
  }
}

CGCI_EXPORT int clock_nanosleep(clockid_t c, int f, const struct timespec *req, struct timespec *rem) {
  struct cgci_thread *t = cgci_self;
  return sleep_ns(t && !t->in_collect ? t : NULL, c, f, req, rem);
}

CGCI_EXPORT int nanosleep(const struct timespec *req, struct timespec *rem) {
  if (req == NULL || req->tv_nsec < 0 || req->tv_nsec >= 1000000000L) { errno = EINVAL; return -1; }
  int rv = clock_nanosleep(CLOCK_REALTIME, 0, req, rem);
  if (rv != 0) { errno = rv; return -1; }
  return 0;
}

CGCI_EXPORT int usleep(useconds_t us) {
  struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };
  return nanosleep(&ts, NULL);
}

CGCI_EXPORT unsigned sleep(unsigned s) {
  struct timespec ts = { (time_t)s, 0 }, rem = {0, 0};
  if (nanosleep(&ts, &rem) != 0) return (unsigned)rem.tv_sec + (rem.tv_nsec > 0);
  return 0;
}

WRAP(int, pause, (void), ())
/* WRAP_MS -- a blocking wrapper for calls with a timeout in milliseconds
 * (TMO, -1 = forever) that retries, with the time left, when the
 * interruption was the collector's suspend signal. */
#define WRAP_MS(name, params, args, tmo)                                \
  CGCI_EXPORT int name params {                                         \
    static int (*real_) params;                                         \
    if (real_ == NULL) real_ = (int (*) params)cgci_real_sym(#name);    \
    struct cgci_thread *t_ = cgci_self;                                 \
    if (t_ == NULL || t_->in_collect) return real_ args;                \
    uint64_t end_ = tmo > 0 ? cgci_os_now_ns() + (uint64_t)tmo * 1000000u : 0; \
    for (;;) {                                                          \
      unsigned seen_ = t_->sig_seen;                                    \
      cgci_blocking_enter(t_);                                          \
      int rv_ = real_ args;                                             \
      int e_ = errno;                                                   \
      cgci_blocking_leave(t_);                                          \
      if (rv_ == -1 && e_ == EINTR && t_->sig_seen != seen_) {          \
        if (tmo > 0) {                                                  \
          uint64_t now_ = cgci_os_now_ns();                             \
          tmo = now_ >= end_ ? 0 : (int)((end_ - now_ + 999999) / 1000000); \
        }                                                               \
        continue;                                                       \
      }                                                                 \
      errno = e_;                                                       \
      return rv_;                                                       \
    }                                                                   \
  }

WRAP_MS(poll, (struct pollfd *fds, nfds_t n, int timeout), (fds, n, timeout), timeout)
WRAP_MS(epoll_wait, (int fd, struct epoll_event *ev, int max, int timeout), (fd, ev, max, timeout), timeout)
WRAP_MS(epoll_pwait, (int fd, struct epoll_event *ev, int max, int timeout, const sigset_t *m), (fd, ev, max, timeout, m), timeout)
WRAP(int, ppoll, (struct pollfd *fds, nfds_t n, const struct timespec *ts, const sigset_t *m), (fds, n, ts, m))
WRAP(int, select, (int n, fd_set *r, fd_set *w, fd_set *x, struct timeval *tv), (n, r, w, x, tv))
WRAP(int, pselect, (int n, fd_set *r, fd_set *w, fd_set *x, const struct timespec *ts, const sigset_t *m), (n, r, w, x, ts, m))
WRAP(int, sigsuspend, (const sigset_t *m), (m))
WRAP(int, sigwaitinfo, (const sigset_t *m, siginfo_t *i), (m, i))
WRAP(int, sigtimedwait, (const sigset_t *m, siginfo_t *i, const struct timespec *ts), (m, i, ts))
WRAP(int, sigwait, (const sigset_t *m, int *s), (m, s))

/* ---- signal masks ---------------------------------------------------------------- */

/* A thread that blocks the suspend signal could never be stopped: the
 * collector would wait for it forever.  The mask functions are wrapped to
 * leave that one signal deliverable (Boehm does the same). */
static const sigset_t *allow_suspend(int how, const sigset_t *set, sigset_t *copy) {
  if (set == NULL || how == SIG_UNBLOCK || !cgci_ready()) return set;
  if (!sigismember(set, cgci_g.sig_suspend)) return set;
  *copy = *set;
  sigdelset(copy, cgci_g.sig_suspend);
  return copy;
}

/* Weak: the malloc shim (src/shim/signals.c) has stronger versions that
 * also protect the restart signal. */
CGCI_EXPORT __attribute__((weak)) int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
  static int (*real_)(int, const sigset_t *, sigset_t *);
  if (real_ == NULL) real_ = (int (*)(int, const sigset_t *, sigset_t *))cgci_real_sym("pthread_sigmask");
  sigset_t copy;
  return real_(how, allow_suspend(how, set, &copy), old);
}

CGCI_EXPORT __attribute__((weak)) int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
  static int (*real_)(int, const sigset_t *, sigset_t *);
  if (real_ == NULL) real_ = (int (*)(int, const sigset_t *, sigset_t *))cgci_real_sym("sigprocmask");
  sigset_t copy;
  return real_(how, allow_suspend(how, set, &copy), old);
}
