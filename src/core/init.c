/* init.c -- lazy, allocation-free initialisation, environment options and
 * the collector lock.
 *
 * The first cgc call from any thread initialises the collector; cgc_init
 * is optional.  Initialisation order matters because the malloc shim may
 * be called back by libc while we initialise: the heap comes first, so
 * that a reentrant allocation from the same thread can already be served
 * (the shim checks cgci_ext_ready() and uses its bootstrap area until
 * initialisation is complete).
 */
#include "core/internal.h"
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>

struct cgci_globals cgci_g = {
  .lock = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP,
  .blocked_mu = PTHREAD_MUTEX_INITIALIZER,
  .blocked_cv = PTHREAD_COND_INITIALIZER,
  .cfg = CGC_CONFIG_DEFAULT,
};

/* ---- the collector lock ------------------------------------------------ */

void cgci_lock(void) { pthread_mutex_lock(&cgci_g.lock); }

void cgci_unlock(void) { pthread_mutex_unlock(&cgci_g.lock); }

/* ---- environment ------------------------------------------------------- */

/* cgci_parse_size -- "123", "64k", "64KiB", "1.5G"... into bytes; 0 if bad. */
size_t cgci_parse_size(const char *s) {
  if (s == NULL || *s == 0) return 0;
  double v = 0, frac = 0, scale = 1;
  int seen = 0, dot = 0;
  for (; *s; s++) {
    if (*s >= '0' && *s <= '9') {
      seen = 1;
      if (dot) { scale /= 10; frac += (*s - '0') * scale; }
      else v = v * 10 + (*s - '0');
    } else if (*s == '.' && !dot) dot = 1;
    else break;
  }
  if (!seen) return 0;
  v += frac;
  while (*s == ' ') s++;
  switch (*s) {
  case 'k': case 'K': v *= 1024.0; break;
  case 'm': case 'M': v *= 1024.0 * 1024; break;
  case 'g': case 'G': v *= 1024.0 * 1024 * 1024; break;
  case 't': case 'T': v *= 1024.0 * 1024 * 1024 * 1024; break;
  default: break;
  }
  return (size_t)v;
}

static int parse_int(const char *s, int dflt) {
  if (s == NULL || *s == 0) return dflt;
  int neg = 0, v = 0, seen = 0;
  if (*s == '-') { neg = 1; s++; }
  for (; *s >= '0' && *s <= '9'; s++) { v = v * 10 + (*s - '0'); seen = 1; }
  return seen ? (neg ? -v : v) : dflt;
}

static int parse_signal(const char *s, int dflt) {
  if (s == NULL || *s == 0) return dflt;
  if (strncmp(s, "SIG", 3) == 0) s += 3;
  static const struct { const char *name; int sig; } names[] = {
    {"PWR", SIGPWR}, {"XCPU", SIGXCPU}, {"USR1", SIGUSR1}, {"USR2", SIGUSR2},
    {"XFSZ", SIGXFSZ}, {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},
  };
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(s, names[i].name) == 0) return names[i].sig;
  if (strncmp(s, "RTMIN+", 6) == 0) return SIGRTMIN + parse_int(s + 6, 0);
  int v = parse_int(s, -1);
  return (v > 0 && v < NSIG) ? v : dflt;
}

static void read_environment(void) {
  const char *e;
  cgci_g.gc_percent = CGCI_GC_PERCENT;
  if ((e = cgci_os_getenv("CGC_GCPERCENT")) != NULL) {
    if (strcmp(e, "off") == 0) cgci_g.gc_percent = -1;
    else cgci_g.gc_percent = parse_int(e, CGCI_GC_PERCENT);
  }
  cgci_g.heap_limit = cgci_parse_size(cgci_os_getenv("CGC_MEMLIMIT"));
  cgci_g.min_heap = CGCI_MIN_HEAP;
  if ((e = cgci_os_getenv("CGC_MIN_HEAP")) != NULL) cgci_g.min_heap = cgci_parse_size(e);
  cgci_g.huge_min = CGCI_HUGE_MIN;
  if ((e = cgci_os_getenv("CGC_HUGEPAGES")) != NULL)
    cgci_g.huge_min = strcmp(e, "off") == 0 ? 0 : cgci_parse_size(e);
  int halflife_ms = parse_int(cgci_os_getenv("CGC_PEAK_HALFLIFE"), CGCI_PEAK_HALFLIFE_MS);
  /* negative: off, like 0 (not a half-life of 2^64 ns) */
  cgci_g.peak_halflife_ns = halflife_ms > 0 ? (uint64_t)halflife_ms * 1000000u : 0;
  cgci_g.release_age = CGCI_RELEASE_AGE;
  if ((e = cgci_os_getenv("CGC_RELEASE_AGE")) != NULL)
    cgci_g.release_age = (size_t)parse_int(e, CGCI_RELEASE_AGE);
  cgci_g.trace = parse_int(cgci_os_getenv("CGC_TRACE"), 0);
  cgci_g.show_stats = parse_int(cgci_os_getenv("CGC_SHOW_STATS"), 0);
  cgci_g.cfg.strict = parse_int(cgci_os_getenv("CGC_STRICT"), 0);
  cgci_g.cfg.cleanup_threads = parse_int(cgci_os_getenv("CGC_CLEANUP_THREADS"), -1);
  if ((e = cgci_os_getenv("CGC_DEBUG")) != NULL) {
    const char *k = strstr(e, "checkfinalizers=");
    if (k) cgci_g.cfg.checkfinalizers = parse_int(k + 16, 0);
  }
  cgci_g.mstack_max = CGCI_MSTACK_MAX;
  if ((e = cgci_os_getenv("CGC_MARK_STACK_MAX")) != NULL)
    cgci_g.mstack_max = (size_t)parse_int(e, (int)CGCI_MSTACK_MAX);
  if (cgci_g.mstack_max < 16) cgci_g.mstack_max = 16;
#ifdef CGC_SIG_SUSPEND_DEFAULT
  int dsus = CGC_SIG_SUSPEND_DEFAULT;
#else
  int dsus = SIGPWR;
#endif
#ifdef CGC_SIG_RESTART_DEFAULT
  int dres = CGC_SIG_RESTART_DEFAULT;
#else
  int dres = SIGXCPU;
#endif
  cgci_g.sig_suspend = parse_signal(cgci_os_getenv("CGC_SIG_SUSPEND"), dsus);
  cgci_g.sig_restart = parse_signal(cgci_os_getenv("CGC_SIG_RESTART"), dres);
}

/* ---- fork -------------------------------------------------------------- */

static void atfork_prepare(void) {
  if (!cgci_ready()) return;
  cgci_lock();                /* the lock order: collector, queue, meta */
  cgci_roots_fork_prepare();  /* no thread of ours inside dl_iterate_phdr */
  cgci_queue_lock();
  cgci_meta_lock();
}

static void atfork_parent(void) {
  if (!cgci_ready()) return;
  cgci_meta_unlock();
  cgci_queue_unlock();
  cgci_roots_fork_parent();
  cgci_unlock();
}

/* In the child only the forking thread exists: locks are re-created, the
 * registry shrinks to this thread, and the callback threads are started
 * again on demand. */
static void atfork_child(void) {
  if (!cgci_ready()) return;
  pthread_mutex_t fresh = PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP;
  cgci_g.lock = fresh;
  cgci_meta_atfork_child();
  cgci_mark_atfork_child();
  cgci_roots_atfork_child();
  cgci_atfork_child_threads();
  cgci_queue_atfork_child();
  cgci_specials_atfork_child();
}

/* ---- initialisation ------------------------------------------------------ */

static void do_init(void) {
  cgci_g.t_start_ns = cgci_os_now_ns();
  read_environment();
  cgci_heap_init();
  cgci_sizeclass_init();
  cgci_mark_init();
  cgci_specials_init();
  cgci_roots_init();
  cgci_stw_init();
  cgci_threads_init();
  cgci_queue_init();
  cgci_g.trigger = cgci_g.min_heap;
  AO_store_release(&cgci_g.init_state, 2);
  /* registration of the initialising thread may need the heap ready */
  if (cgci_self == NULL) cgci_thread_register_self(-1);
  pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
  if (cgci_g.show_stats) atexit(cgci_stats_atexit);
}

void cgci_ensure_init(void) {
  if (CGCI_LIKELY(AO_load_acquire(&cgci_g.init_state) == 2)) return;
  if (cgci_cas(&cgci_g.init_state, 0, 1)) {
    cgci_g.init_tid = cgci_os_gettid();
    do_init();
    return;
  }
  if (cgci_g.init_tid == cgci_os_gettid()) return;   /* reentrant: see top */
  while (AO_load_acquire(&cgci_g.init_state) != 2) sched_yield();
}

int cgci_ext_ready(void) { return cgci_ready(); }

int cgc_init(const cgc_config_t *cfg) {
  cgci_ensure_init();
  if (cfg != NULL) {
    if (cfg->cleanup_threads < -1 || cfg->checkfinalizers < 0 || cfg->checkfinalizers > 2)
      return cgci_error(CGC_EINVAL, "cgc_init", "invalid configuration");
    cgc_config_t c = *cfg;
    /* the environment can switch debugging aids on, never off */
    if (cgci_g.cfg.strict > c.strict) c.strict = cgci_g.cfg.strict;
    if (cgci_g.cfg.checkfinalizers > c.checkfinalizers)
      c.checkfinalizers = cgci_g.cfg.checkfinalizers;
    cgci_queue_reconfigure(&c);
  }
  cgci_queue_ensure_threads();
  return CGC_OK;
}
