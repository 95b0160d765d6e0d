/* queue.c -- the finalizer and cleanup queues and the threads that run
 * them.
 *
 * Design: docs/design/finalization.md.
 *
 * Two FIFO rings in meta memory: finalizer entries (obj, fn, data) and
 * cleanup entries (fn, arg).  Both are roots (cgci_queue_mark_roots), and
 * so is the in-flight record of every callback being executed, until it
 * returns.  One finalizer thread runs finalizers serially; a pool of K
 * cleanup threads takes cleanups one entry at a time, so with K >= 2 one
 * blocked cleanup never stops the others; K == 0 runs cleanups on the
 * finalizer thread (Go 1.24's model).  In on-demand mode there are no
 * threads and cgc_run_pending runs entries on the caller's thread.
 *
 * Locks: the queue lock (qmu) is taken after the collector lock, never
 * before it; the collector holds both across a collection, so no stopped
 * thread can hold qmu.  No lock is held while user code runs.
 *
 * .inv.inflight: an entry leaves a ring only into an in-flight record (or
 *   the stack of a cgc_run_pending caller), under qmu, so at every instant
 *   it is reachable from a root until its callback returns.
 * .inv.serial: at most one finalizer runs at a time (fin_running).
 */
#include "core/internal.h"
#include <errno.h>
#include <string.h>
#include <time.h>

uint64_t cgci_cycle_fin_queued, cgci_cycle_cln_queued;

struct fin_ent { void *obj; cgc_finalizer_fn fn; void *data; };
struct cln_ent { cgc_cleanup_fn fn; void *arg; };

#define MAX_CB_THREADS 64

struct inflight { void *a, *b; };   /* (obj, data) or (arg, -) */

static struct {
  pthread_mutex_t mu;
  pthread_cond_t work;              /* something to do, or stop */
  pthread_cond_t idle;              /* queues drained */
  struct fin_ent *fin; size_t fin_cap, fin_head, fin_len;
  struct cln_ent *cln; size_t cln_cap, cln_head, cln_len;
  struct inflight *slots;           /* meta: one per callback thread + 1 */
  int nthreads;                     /* started callback threads */
  pthread_t tids[MAX_CB_THREADS];
  int started, stopping, paused;
  int running;                      /* callbacks executing now */
  int fin_running;                  /* .inv.serial */
  int k;                            /* cleanup threads */
} q = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
        .idle = PTHREAD_COND_INITIALIZER };

void cgci_queue_lock(void) { pthread_mutex_lock(&q.mu); }
void cgci_queue_unlock(void) { pthread_mutex_unlock(&q.mu); }

void cgci_queue_init(void) {
  q.slots = cgci_meta_alloc((MAX_CB_THREADS + 1) * sizeof *q.slots);
}

size_t cgci_queue_len_fin(void) { return q.fin_len; }
size_t cgci_queue_len_cln(void) { return q.cln_len; }

/* ---- rings (qmu held) --------------------------------------------------------- */

static void fin_grow(void) {
  size_t ncap = q.fin_cap ? q.fin_cap * 2 : 1024;
  struct fin_ent *n = cgci_meta_alloc_big(ncap * sizeof *n);
  for (size_t i = 0; i < q.fin_len; i++) n[i] = q.fin[(q.fin_head + i) % q.fin_cap];
  if (q.fin) cgci_meta_free_big(q.fin, q.fin_cap * sizeof *q.fin);
  q.fin = n; q.fin_cap = ncap; q.fin_head = 0;
}

static void cln_grow(void) {
  size_t ncap = q.cln_cap ? q.cln_cap * 2 : 1024;
  struct cln_ent *n = cgci_meta_alloc_big(ncap * sizeof *n);
  for (size_t i = 0; i < q.cln_len; i++) n[i] = q.cln[(q.cln_head + i) % q.cln_cap];
  if (q.cln) cgci_meta_free_big(q.cln, q.cln_cap * sizeof *q.cln);
  q.cln = n; q.cln_cap = ncap; q.cln_head = 0;
}

void cgci_queue_push_fin(void *obj, cgc_finalizer_fn fn, void *data) {
  if (q.fin_len == q.fin_cap) fin_grow();
  q.fin[(q.fin_head + q.fin_len++) % q.fin_cap] = (struct fin_ent){obj, fn, data};
}

void cgci_queue_push_cln(cgc_cleanup_fn fn, void *arg) {
  if (q.cln_len == q.cln_cap) cln_grow();
  q.cln[(q.cln_head + q.cln_len++) % q.cln_cap] = (struct cln_ent){fn, arg};
}

static struct fin_ent fin_pop(void) {
  struct fin_ent e = q.fin[q.fin_head];
  memset(&q.fin[q.fin_head], 0, sizeof e);
  q.fin_head = (q.fin_head + 1) % q.fin_cap;
  q.fin_len--;
  return e;
}

static struct cln_ent cln_pop(void) {
  struct cln_ent e = q.cln[q.cln_head];
  memset(&q.cln[q.cln_head], 0, sizeof e);
  q.cln_head = (q.cln_head + 1) % q.cln_cap;
  q.cln_len--;
  return e;
}

/* cgci_queue_mark_roots -- queued entries and in-flight records (world
 * stopped, qmu held by the collector). */
void cgci_queue_mark_roots(void) {
  for (size_t i = 0; i < q.fin_len; i++) {
    struct fin_ent *e = &q.fin[(q.fin_head + i) % q.fin_cap];
    cgci_mark_word((uintptr_t)e->obj);
    cgci_mark_word((uintptr_t)e->data);
  }
  for (size_t i = 0; i < q.cln_len; i++)
    cgci_mark_word((uintptr_t)q.cln[(q.cln_head + i) % q.cln_cap].arg);
  for (int i = 0; i <= MAX_CB_THREADS; i++) {
    cgci_mark_word((uintptr_t)q.slots[i].a);
    cgci_mark_word((uintptr_t)q.slots[i].b);
  }
}

void cgci_queue_signal_locked(void) {
  if (q.fin_len || q.cln_len) pthread_cond_broadcast(&q.work);
}

/* cgci_queue_needs_threads -- work is queued but no thread will run it
 * (after fork, or before the first registration started them). */
bool cgci_queue_needs_threads(void) {
  return !q.started && (q.fin_len || q.cln_len) && !cgci_g.cfg.on_demand;
}

void cgci_queue_wake(void) {
  pthread_mutex_lock(&q.mu);
  cgci_queue_signal_locked();
  pthread_mutex_unlock(&q.mu);
}

/* ---- running callbacks ------------------------------------------------------------ */

static void exited_in_callback(void *arg) {
  (void)arg;
  cgci_fatal(cgci_self && cgci_self->is_callback == 1 ? "finalizer thread exited"
                                                     : "cleanup thread exited");
}

/* invoke_* -- call user code through a small frame that is popped before
 * the thread parks, and catch pthread_exit out of it. */
static CGCI_NOINLINE void invoke_fin(cgc_finalizer_fn fn, void *obj, void *data) {
  pthread_cleanup_push(exited_in_callback, NULL);
  fn(obj, data);
  pthread_cleanup_pop(0);
}

static CGCI_NOINLINE void invoke_cln(cgc_cleanup_fn fn, void *arg) {
  pthread_cleanup_push(exited_in_callback, NULL);
  fn(arg);
  pthread_cleanup_pop(0);
}

/* scrub_regs -- clear the vector registers: the compiler moves pointer
 * pairs through them, and a stopped thread's registers are scanned from
 * its signal frame. */
static CGCI_NOINLINE void scrub_regs(void) {
  __asm__ __volatile__(
    "pxor %%xmm0, %%xmm0\n\t" "pxor %%xmm1, %%xmm1\n\t" "pxor %%xmm2, %%xmm2\n\t"
    "pxor %%xmm3, %%xmm3\n\t" "pxor %%xmm4, %%xmm4\n\t" "pxor %%xmm5, %%xmm5\n\t"
    "pxor %%xmm6, %%xmm6\n\t" "pxor %%xmm7, %%xmm7\n\t" "pxor %%xmm8, %%xmm8\n\t"
    "pxor %%xmm9, %%xmm9\n\t" "pxor %%xmm10, %%xmm10\n\t" "pxor %%xmm11, %%xmm11\n\t"
    "pxor %%xmm12, %%xmm12\n\t" "pxor %%xmm13, %%xmm13\n\t" "pxor %%xmm14, %%xmm14\n\t"
    "pxor %%xmm15, %%xmm15\n\t"
    ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
        "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "memory");
}

/* scrub -- overwrite 8 KiB of dead stack below the caller and the vector
 * registers, so no stale copy of an entry keeps its object alive (spec
 * 10.3 rule 4).  Done before the queues go idle; between two callbacks a
 * light scrub of the frames the callback trampoline used is enough,
 * because the next callback overwrites the rest. */
static CGCI_NOINLINE void scrub(void) {
  volatile char band[8192];
  memset((char *)band, 0, sizeof band);
  __asm__ __volatile__("" : : "r"(band) : "memory");
  scrub_regs();
}

static CGCI_NOINLINE void scrub_light(void) {
  volatile char band[512];
  memset((char *)band, 0, sizeof band);
  __asm__ __volatile__("" : : "r"(band) : "memory");
  scrub_regs();
}

/* take_locked -- the next entry this thread may run; 0 none, 1 fin, 2 cln. */
static int take_locked(bool may_fin, bool may_cln, struct inflight *slot,
                       struct fin_ent *fe, struct cln_ent *ce) {
  if (q.paused) return 0;
  if (may_fin && q.fin_len && !q.fin_running) {
    *fe = fin_pop();
    slot->a = fe->obj; slot->b = fe->data;
    q.fin_running = 1;
    q.running++;
    return 1;
  }
  if (may_cln && q.cln_len) {
    *ce = cln_pop();
    slot->a = ce->arg; slot->b = NULL;
    q.running++;
    return 2;
  }
  return 0;
}

static void done_locked(int kind, struct inflight *slot) {
  slot->a = slot->b = NULL;
  q.running--;
  if (kind == 1) { q.fin_running = 0; cgci_g.st.finalizers_run++; }
  else cgci_g.st.cleanups_run++;
  if (q.fin_len == 0 && q.cln_len == 0 && q.running == 0) pthread_cond_broadcast(&q.idle);
  if (kind == 1 && q.fin_len) pthread_cond_broadcast(&q.work);
}

/* run_one -- take and run one entry; 0 if none was ready, else its kind.
 * The entry is retired (retire) only after the caller scrubbed the stack
 * and registers, so that a cgc_wait_idle that returns is never followed by
 * a collection that still sees a stale copy of the entry (spec 10.3 rule 4). */
static CGCI_NOINLINE int run_one(bool may_fin, bool may_cln, struct inflight *slot) {
  struct fin_ent fe;
  struct cln_ent ce;
  pthread_mutex_lock(&q.mu);
  int kind = take_locked(may_fin, may_cln, slot, &fe, &ce);
  pthread_mutex_unlock(&q.mu);
  if (kind == 0) return 0;
  if (cgci_self) cgci_self->in_callback = 1;
  if (kind == 1) invoke_fin(fe.fn, fe.obj, fe.data);
  else invoke_cln(ce.fn, ce.arg);
  if (cgci_self) cgci_self->in_callback = 0;
  memset(&fe, 0, sizeof fe);
  memset(&ce, 0, sizeof ce);
  __asm__ __volatile__("" : : "r"(&fe), "r"(&ce) : "memory");
  return kind;
}

/* retire -- the entry in SLOT has run.  If the queues are empty, retiring
 * may make them idle (what cgc_wait_idle waits for): scrub fully first. */
static CGCI_NOINLINE void retire(int kind, struct inflight *slot) {
  pthread_mutex_lock(&q.mu);
  if (q.fin_len == 0 && q.cln_len == 0) {
    pthread_mutex_unlock(&q.mu);
    scrub();
    pthread_mutex_lock(&q.mu);
  }
  done_locked(kind, slot);
  pthread_mutex_unlock(&q.mu);
}

/* callback_thread -- P is the thread's index, not a pointer: index 0 is
 * the finalizer thread, the others run cleanups. */
static void *callback_thread(void *p) {
  int index = (int)(uintptr_t)p;
  int kind = index == 0 ? 1 : 2;
  cgci_self->is_callback = kind;
  struct inflight *slot = &q.slots[index];
  bool may_fin = kind == 1, may_cln = kind == 2 || q.k == 0;
  for (;;) {
    int kind = run_one(may_fin, may_cln, slot);
    scrub_light();
    if (kind) { retire(kind, slot); continue; }
    scrub();
    /* Idle, the thread holds no heap pointer that its stack (scrubbed)
     * and saved registers do not show, and it touches only the queue: it
     * waits BLOCKED, so collections neither signal nor restart it.  It
     * cannot take its next entry while a collection runs, since the
     * collector holds q.mu throughout. */
    cgci_blocking_enter(cgci_self);
    pthread_mutex_lock(&q.mu);
    while (!q.stopping && (q.paused ||
           !((may_fin && q.fin_len && !q.fin_running) || (may_cln && q.cln_len))))
      pthread_cond_wait(&q.work, &q.mu);
    int stop = q.stopping;
    pthread_mutex_unlock(&q.mu);
    cgci_blocking_leave(cgci_self);
    if (stop) break;
  }
  return NULL;
}

/* cgci_queue_ensure_threads -- start the callback threads if they are not
 * running (lazily, never with a lock held by the caller). */
void cgci_queue_ensure_threads(void) {
  if (q.started || !cgci_ready()) return;
  pthread_mutex_lock(&q.mu);
  if (q.started || cgci_g.cfg.on_demand) { pthread_mutex_unlock(&q.mu); return; }
  q.started = 1;
  q.stopping = 0;
  int k = cgci_g.cfg.cleanup_threads;
  if (k < 0) { k = cgci_os_ncpu() / 4; if (k < 1) k = 1; }
  if (k > MAX_CB_THREADS - 1) k = MAX_CB_THREADS - 1;
  q.k = k;
  pthread_mutex_unlock(&q.mu);
  int n = 0;
  for (int i = 0; i <= k; i++) {
    if (cgc_pthread_create(&q.tids[n], NULL, callback_thread, (void *)(uintptr_t)i) != 0) break;
    n++;
  }
  pthread_mutex_lock(&q.mu);
  q.nthreads = n;
  pthread_cond_broadcast(&q.work);
  pthread_mutex_unlock(&q.mu);
}

void cgci_queue_atfork_child(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c1 = PTHREAD_COND_INITIALIZER, c2 = PTHREAD_COND_INITIALIZER;
  q.mu = m; q.work = c1; q.idle = c2;
  /* the callback threads do not exist in the child; entries they were
   * running are lost with them (they ran in the parent) */
  q.started = 0; q.nthreads = 0; q.running = 0; q.fin_running = 0; q.stopping = 0;
  memset(q.slots, 0, (MAX_CB_THREADS + 1) * sizeof *q.slots);
}

/* ---- public entry points ---------------------------------------------------------- */

int cgc_wait_idle(int64_t timeout_ns) {
  if (!cgci_ready()) return 1;
  if (cgci_self && cgci_self->in_callback)
    return cgci_error(CGC_EDEADLK, "cgc_wait_idle", "called from a finalizer or cleanup");
  cgci_queue_ensure_threads();
  if (cgci_g.cfg.on_demand) {          /* nothing runs unless asked to */
    pthread_mutex_lock(&q.mu);
    int empty = !(q.fin_len || q.cln_len || q.running);
    pthread_mutex_unlock(&q.mu);
    return empty;
  }
  struct timespec deadline;
  clock_gettime(CLOCK_REALTIME, &deadline);
  if (timeout_ns >= 0) {
    deadline.tv_sec += timeout_ns / 1000000000;
    deadline.tv_nsec += timeout_ns % 1000000000;
    if (deadline.tv_nsec >= 1000000000) { deadline.tv_sec++; deadline.tv_nsec -= 1000000000; }
  }
  int idle = 1;
  pthread_mutex_lock(&q.mu);
  while (q.fin_len || q.cln_len || q.running) {
    if (timeout_ns < 0) pthread_cond_wait(&q.idle, &q.mu);
    else if (pthread_cond_timedwait(&q.idle, &q.mu, &deadline) == ETIMEDOUT) {
      idle = !(q.fin_len || q.cln_len || q.running);
      break;
    }
  }
  pthread_mutex_unlock(&q.mu);
  return idle;
}

int cgc_run_pending(int max) {
  if (!cgci_ready()) return 0;
  int n = 0;
  struct inflight *slot = &q.slots[MAX_CB_THREADS];
  while (max <= 0 || n < max) {
    /* the shared caller slot: serialize callers of cgc_run_pending */
    static pthread_mutex_t caller_mu = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&caller_mu);
    int kind = run_one(true, true, slot);
    scrub();
    if (kind) retire(kind, slot);
    pthread_mutex_unlock(&caller_mu);
    if (!kind) break;
    n++;
  }
  scrub();
  return n;
}

void cgc_pause_callbacks(int on) {
  cgci_ensure_init();
  pthread_mutex_lock(&q.mu);
  q.paused = on != 0;
  if (!q.paused) pthread_cond_broadcast(&q.work);
  pthread_mutex_unlock(&q.mu);
}

/* stop_threads -- stop and join the callback threads; queued entries stay
 * queued (cgc_init uses it to apply a new thread configuration). */
static void stop_threads(void) {
  pthread_mutex_lock(&q.mu);
  int n = q.nthreads;
  q.stopping = 1;
  pthread_cond_broadcast(&q.work);
  pthread_mutex_unlock(&q.mu);
  for (int i = 0; i < n; i++) pthread_join(q.tids[i], NULL);
  pthread_mutex_lock(&q.mu);
  q.nthreads = 0;
  q.started = 0;
  q.stopping = 0;
  pthread_mutex_unlock(&q.mu);
}

/* cgci_queue_reconfigure -- CFG replaces the callback settings; threads
 * are restarted if their number or the on-demand mode changed. */
void cgci_queue_reconfigure(const cgc_config_t *cfg) {
  pthread_mutex_lock(&q.mu);
  bool restart = q.started && (cfg->on_demand != cgci_g.cfg.on_demand ||
                               cfg->cleanup_threads != cgci_g.cfg.cleanup_threads);
  pthread_mutex_unlock(&q.mu);
  if (restart) stop_threads();
  pthread_mutex_lock(&q.mu);
  cgci_g.cfg = *cfg;
  pthread_mutex_unlock(&q.mu);
}

/* cgci_queue_shutdown -- stop and join the callback threads; discard the
 * queues unless run_pending_at_shutdown. */
void cgci_queue_shutdown(void) {
  if (!cgci_ready()) return;
  if (cgci_g.cfg.run_pending_at_shutdown) {
    if (q.started && !q.paused) cgc_wait_idle(-1);
    else cgc_run_pending(0);
  }
  stop_threads();
  pthread_mutex_lock(&q.mu);
  q.fin_len = q.cln_len = 0;
  q.fin_head = q.cln_head = 0;
  pthread_cond_broadcast(&q.idle);
  pthread_mutex_unlock(&q.mu);
}

void cgc_shutdown(void) { cgci_queue_shutdown(); }
