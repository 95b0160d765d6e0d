/* leakcheck.c -- leakcheck mode (CGC_MODE=leakcheck): a leak detector in
 * the manner of LeakSanitizer, with the collector as the reachability
 * engine.
 *
 * Design: docs/malloc-replacement.md, "leakcheck".  malloc and free behave
 * as usual (free releases at once) and collections are off.  Every
 * allocation records its call stack (a site).  A report -- at exit, after
 * SIGUSR2, or from cgc_leakcheck_report() -- runs one collection; the gc
 * hook, called after marking, finds every recorded block that is not
 * marked: nothing reachable points to it and it was never freed, so it is
 * a leak.  Leaks are summed per site and printed, largest first.
 *
 * Tables (all mmap'd, never malloc'd):
 *   - live blocks: 16 shards, each an open-addressing hash table keyed by
 *     ~address (.inv.hidden), guarded by its own mutex;
 *   - sites: an insert-only, lock-free hash set of call stacks.
 *
 * .inv.hidden: block addresses are stored complemented, so the collector,
 *   which scans these mappings as foreign roots, does not see them.
 * .inv.report: the hook reads the shards only during a report, while the
 *   reporting thread holds every shard mutex, so no thread can be stopped
 *   half-way through changing a table.
 * .inv.forget-first: free forgets the block before releasing it, so the
 *   address cannot be reused and recorded by another thread before its
 *   old entry is gone.
 * .assume.unwind: by default stacks come from walking frame pointers
 *   (fast, like LeakSanitizer's default unwinder), bounded by the thread's
 *   stack; in code built without frame pointers only the first frame (the
 *   caller of malloc) is reliable.  CGC_LEAK_UNWIND=full uses
 *   _Unwind_Backtrace (exact with unwind tables, many times slower).
 *   Either may allocate on first use; re-entrant allocations
 *   (cgci_shim_busy) get the site "unknown".
 */
#include "shim/shim.h"
#include "core/ext.h"
#include "cgc.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#define SHIM_EXPORT __attribute__((visibility("default")))

#define LK_SHARDS     16
#define LK_MAX_DEPTH  16
#define LK_MAX_SITES  (1u << 18)
#define LK_SLOTS      (1u << 20)        /* site hash slots, power of two */
#define LK_EMPTY      ((uintptr_t)0)
#define LK_TOMB       ((uintptr_t)1)

struct lk_entry {
  uintptr_t hidden;          /* ~address, LK_EMPTY or LK_TOMB */
  size_t size;               /* bytes requested */
  uint32_t site;             /* index into lk_sites */
  uint32_t pad;
};

struct lk_shard {
  pthread_mutex_t mu;
  struct lk_entry *tab;      /* cap entries, mmap'd */
  size_t cap;                /* power of two, 0 before first use */
  size_t used;               /* live + tombstones */
  size_t live;
};

struct lk_site {
  uint64_t hash;
  uint32_t depth;            /* frames in pc[] */
  uint32_t pad;
  uintptr_t pc[LK_MAX_DEPTH];
  uint64_t leak_count;       /* found by the report in progress */
  uint64_t leak_bytes;
};

static struct lk_shard lk_shard[LK_SHARDS];
static struct lk_site *lk_sites;        /* LK_MAX_SITES, mmap'd */
static atomic_uint *lk_slots;           /* site index + 1, 0 = empty */
static atomic_uint lk_nsites = 1;       /* site 0 = unknown */
static int lk_depth = 8;                /* CGC_LEAK_DEPTH */
static int lk_full_unwind;              /* CGC_LEAK_UNWIND=full */
static __thread uintptr_t t_stack_lo, t_stack_hi
  __attribute__((tls_model("initial-exec")));
static int lk_exitcode = 23;            /* CGC_LEAK_EXITCODE */
static int lk_at_exit = 1;              /* CGC_LEAK_AT_EXIT */
static int lk_fd = 2;                   /* CGC_LEAK_LOG or stderr */
static int lk_ready;
static uintptr_t lk_self_lo, lk_self_hi; /* our own text, skipped */
static volatile sig_atomic_t lk_signalled;
static volatile int lk_scanning;        /* set while a report collects */
static pthread_mutex_t lk_report_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t lk_total_leaks;         /* over every report of the run */


/* ---- Call stacks ----------------------------------------------------- */

struct lk_trace {
  uintptr_t pc[LK_MAX_DEPTH];
  int n, max;
};

static _Unwind_Reason_Code lk_unwind_cb(struct _Unwind_Context *ctx, void *arg)
{
  struct lk_trace *t = arg;
  uintptr_t pc = (uintptr_t)_Unwind_GetIP(ctx);

  if (pc == 0)
    return _URC_END_OF_STACK;
  if (pc >= lk_self_lo && pc < lk_self_hi)
    return _URC_NO_REASON;          /* our own frames */
  t->pc[t->n++] = pc;
  return t->n >= t->max ? _URC_END_OF_STACK : _URC_NO_REASON;
}

static uint64_t lk_hash_pcs(const uintptr_t *pc, int n)
{
  uint64_t h = 0x9E3779B97F4A7C15u;

  for (int i = 0; i < n; i++) {
    h ^= pc[i];
    h *= 0xBF58476D1CE4E5B9u;
    h ^= h >> 31;
  }
  return h;
}

/* lk_site_of -- the index of the site for stack T (created if new). */
static uint32_t lk_site_of(const struct lk_trace *t)
{
  uint64_t h = lk_hash_pcs(t->pc, t->n);
  size_t mask = LK_SLOTS - 1;

  for (size_t i = (size_t)h & mask, probes = 0; probes < LK_SLOTS;
       i = (i + 1) & mask, probes++) {
    unsigned v = atomic_load_explicit(&lk_slots[i], memory_order_acquire);
    if (v == 0) {
      unsigned id = atomic_fetch_add(&lk_nsites, 1);
      if (id >= LK_MAX_SITES)
        return 0;
      struct lk_site *s = &lk_sites[id];
      s->hash = h;
      s->depth = (uint32_t)t->n;
      memcpy(s->pc, t->pc, (size_t)t->n * sizeof t->pc[0]);
      if (atomic_compare_exchange_strong(&lk_slots[i], &v, id + 1))
        return id;
      /* Lost the race for this slot: the site id is wasted; look again. */
    }
    const struct lk_site *s = &lk_sites[v - 1];
    if (s->hash == h && s->depth == (uint32_t)t->n &&
        memcmp(s->pc, t->pc, (size_t)t->n * sizeof t->pc[0]) == 0)
      return v - 1;
  }
  return 0;
}

/* lk_stack_bounds -- find (once per thread) the calling thread's stack. */
static void lk_stack_bounds(void)
{
  pthread_attr_t a;
  void *addr = NULL;
  size_t size = 0;

  t_stack_hi = 1;                   /* "looked": no second attempt */
  if (pthread_getattr_np(pthread_self(), &a) != 0)
    return;
  if (pthread_attr_getstack(&a, &addr, &size) == 0 && addr != NULL) {
    t_stack_lo = (uintptr_t)addr;
    t_stack_hi = (uintptr_t)addr + size;
  }
  pthread_attr_destroy(&a);
}

/* lk_walk_frames -- follow the frame-pointer chain from our own frame.
 * Every frame address must lie inside this thread's stack and grow, so a
 * caller that uses %rbp for data ends the walk instead of crashing it. */
static __attribute__((noinline)) void lk_walk_frames(struct lk_trace *t)
{
  uintptr_t fp = (uintptr_t)__builtin_frame_address(0);
  uintptr_t lo = t_stack_lo, hi = t_stack_hi;

  if (hi <= lo) {
    /* Unknown stack (a thread made without pthread_create): trust only
     * the page our own frame is on. */
    lo = fp;
    hi = (fp | 4095) + 1;
  }
  while (t->n < t->max) {
    if (fp < lo || fp > hi - 16 || (fp & 7) != 0)
      break;
    uintptr_t next = ((const uintptr_t *)fp)[0];
    uintptr_t ra = ((const uintptr_t *)fp)[1];
    if (ra < 4096)
      break;
    if (ra < lk_self_lo || ra >= lk_self_hi)
      t->pc[t->n++] = ra;
    if (next <= fp)
      break;
    fp = next;
  }
}

static uint32_t lk_current_site(void)
{
  struct lk_trace t;

  if (cgci_shim_busy)
    return 0;
  t.n = 0;
  t.max = lk_depth;
  cgci_shim_busy++;
  if (lk_full_unwind) {
    _Unwind_Backtrace(lk_unwind_cb, &t);
  } else {
    if (t_stack_hi == 0)
      lk_stack_bounds();
    lk_walk_frames(&t);
  }
  cgci_shim_busy--;
  return t.n > 0 ? lk_site_of(&t) : 0;
}


/* ---- Live-block table -------------------------------------------------- */

static size_t lk_hash_ptr(uintptr_t p)
{
  uint64_t x = (uint64_t)p >> 4;
  x *= 0x9E3779B97F4A7C15u;
  return (size_t)(x ^ (x >> 29));
}

static struct lk_shard *lk_shard_of(uintptr_t p)
{
  /* Top bits pick the shard, low bits the slot inside it. */
  return &lk_shard[lk_hash_ptr(p) >> 60 & (LK_SHARDS - 1)];
}

/* lk_find -- the entry for hidden key H in S, or NULL. */
static struct lk_entry *lk_find(struct lk_shard *s, uintptr_t h)
{
  if (s->cap == 0)
    return NULL;
  size_t mask = s->cap - 1;
  for (size_t i = lk_hash_ptr(~h) & mask;; i = (i + 1) & mask) {
    struct lk_entry *e = &s->tab[i];
    if (e->hidden == h)
      return e;
    if (e->hidden == LK_EMPTY)
      return NULL;
  }
}

static void lk_insert_raw(struct lk_entry *tab, size_t cap,
                          uintptr_t h, size_t size, uint32_t site)
{
  size_t mask = cap - 1;
  for (size_t i = lk_hash_ptr(~h) & mask;; i = (i + 1) & mask) {
    if (tab[i].hidden == LK_EMPTY || tab[i].hidden == LK_TOMB) {
      tab[i].hidden = h;
      tab[i].size = size;
      tab[i].site = site;
      return;
    }
  }
}

/* lk_grow -- rehash S into a table of twice the live size (at least 4096
 * entries).  0 if memory ran out. */
static int lk_grow(struct lk_shard *s)
{
  size_t cap = 4096;
  while (cap < 4 * (s->live + 1))
    cap *= 2;
  struct lk_entry *tab = cgci_shim_map(cap * sizeof *tab);
  if (tab == NULL)
    return 0;
  for (size_t i = 0; i < s->cap; i++)
    if (s->tab[i].hidden > LK_TOMB)
      lk_insert_raw(tab, cap, s->tab[i].hidden, s->tab[i].size, s->tab[i].site);
  cgci_shim_unmap(s->tab, s->cap * sizeof *tab);
  s->tab = tab;
  s->cap = cap;
  s->used = s->live;
  return 1;
}

void cgci_leak_record(void *p, size_t n)
{
  uintptr_t h = ~(uintptr_t)p;
  uint32_t site = lk_current_site();
  struct lk_shard *s = lk_shard_of((uintptr_t)p);

  pthread_mutex_lock(&s->mu);
  if ((s->used + 1) * 4 >= s->cap * 3 && !lk_grow(s)) {
    pthread_mutex_unlock(&s->mu);
    return;
  }
  struct lk_entry *e = lk_find(s, h);
  if (e != NULL) {                  /* stale entry for a reused address */
    e->size = n;
    e->site = site;
  } else {
    size_t mask = s->cap - 1, i = lk_hash_ptr((uintptr_t)p) & mask;
    while (s->tab[i].hidden > LK_TOMB)
      i = (i + 1) & mask;
    if (s->tab[i].hidden == LK_EMPTY)
      s->used++;
    s->tab[i].hidden = h;
    s->tab[i].size = n;
    s->tab[i].site = site;
    s->live++;
  }
  pthread_mutex_unlock(&s->mu);
}

void cgci_leak_resize(void *p, size_t n)
{
  struct lk_shard *s = lk_shard_of((uintptr_t)p);

  pthread_mutex_lock(&s->mu);
  struct lk_entry *e = lk_find(s, ~(uintptr_t)p);
  if (e != NULL)
    e->size = n;
  pthread_mutex_unlock(&s->mu);
}

int cgci_leak_forget(void *p)
{
  struct lk_shard *s = lk_shard_of((uintptr_t)p);
  int found = 0;

  pthread_mutex_lock(&s->mu);
  struct lk_entry *e = lk_find(s, ~(uintptr_t)p);
  if (e != NULL) {
    e->hidden = LK_TOMB;
    s->live--;
    found = 1;
  }
  pthread_mutex_unlock(&s->mu);
  return found;
}


/* ---- Setup, fork, signal ---------------------------------------------- */

static void lk_lock_all(void)
{
  for (int i = 0; i < LK_SHARDS; i++)
    pthread_mutex_lock(&lk_shard[i].mu);
}

static void lk_unlock_all(void)
{
  for (int i = LK_SHARDS - 1; i >= 0; i--)
    pthread_mutex_unlock(&lk_shard[i].mu);
}

static void lk_on_signal(int sig)
{
  (void)sig;
  lk_signalled = 1;
}

/* lk_find_self -- the bounds of this library's executable segment. */
static void lk_find_self(void)
{
  extern const ElfW(Ehdr) __ehdr_start __attribute__((visibility("hidden")));
  const ElfW(Ehdr) *eh = &__ehdr_start;
  const ElfW(Phdr) *ph = (const ElfW(Phdr) *)((const char *)eh + eh->e_phoff);
  uintptr_t base = (uintptr_t)eh, first = UINTPTR_MAX;

  /* The ELF header sits at the lowest loaded address: find the load bias
   * from the first PT_LOAD's vaddr. */
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && ph[i].p_vaddr < first)
      first = ph[i].p_vaddr;
  uintptr_t bias = base - (first & ~(uintptr_t)4095);
  for (int i = 0; i < eh->e_phnum; i++)
    if (ph[i].p_type == PT_LOAD && (ph[i].p_flags & PF_X)) {
      lk_self_lo = bias + ph[i].p_vaddr;
      lk_self_hi = lk_self_lo + ph[i].p_memsz;
    }
}

static int lk_env_int(const char *name, int dflt)
{
  const char *v = cgci_shim_getenv(name);
  if (v == NULL || *v == 0)
    return dflt;
  return atoi(v);
}

void cgci_leak_init(void)
{
  for (int i = 0; i < LK_SHARDS; i++)
    pthread_mutex_init(&lk_shard[i].mu, NULL);
  lk_sites = cgci_shim_map((size_t)LK_MAX_SITES * sizeof *lk_sites);
  lk_slots = cgci_shim_map((size_t)LK_SLOTS * sizeof *lk_slots);
  if (lk_sites == NULL || lk_slots == NULL)
    return;
  lk_depth = lk_env_int("CGC_LEAK_DEPTH", 8);
  if (lk_depth < 1)
    lk_depth = 1;
  if (lk_depth > LK_MAX_DEPTH)
    lk_depth = LK_MAX_DEPTH;
  lk_exitcode = lk_env_int("CGC_LEAK_EXITCODE", 23);
  const char *uw = cgci_shim_getenv("CGC_LEAK_UNWIND");
  lk_full_unwind = uw != NULL && strcmp(uw, "full") == 0;
  lk_at_exit = lk_env_int("CGC_LEAK_AT_EXIT", 1);
  const char *log = cgci_shim_getenv("CGC_LEAK_LOG");
  if (log != NULL && *log) {
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd >= 0)
      lk_fd = fd;
  } else {
    /* Programs close stderr before exiting (coreutils, xz): keep a copy
     * for the report at exit, as sanitizers do. */
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 10);
    if (fd >= 0)
      lk_fd = fd;
  }
  lk_find_self();
  pthread_atfork(lk_lock_all, lk_unlock_all, lk_unlock_all);
  if (lk_env_int("CGC_LEAK_SIGNAL", 1)) {
    struct sigaction old, sa;
    if (sigaction(SIGUSR2, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
      memset(&sa, 0, sizeof sa);
      sa.sa_handler = lk_on_signal;
      sa.sa_flags = SA_RESTART;
      sigemptyset(&sa.sa_mask);
      sigaction(SIGUSR2, &sa, NULL);
    }
  }
  lk_ready = 1;
}


/* ---- The report --------------------------------------------------------- */

void cgci_leak_gc_hook(void)
{
  if (!lk_scanning)
    return;
  for (int k = 0; k < LK_SHARDS; k++) {
    struct lk_shard *s = &lk_shard[k];
    for (size_t i = 0; i < s->cap; i++) {
      struct lk_entry *e = &s->tab[i];
      if (e->hidden <= LK_TOMB || cgci_ext_is_marked((const void *)~e->hidden))
        continue;
      struct lk_site *site = &lk_sites[e->site];
      site->leak_count++;
      site->leak_bytes += e->size;
      e->hidden = LK_TOMB;          /* the sweep reclaims it */
      s->live--;
    }
  }
}

/* lk_sort -- order site ids by leaked bytes, largest first (shell sort). */
static void lk_sort(uint32_t *ids, size_t n)
{
  for (size_t gap = n / 2; gap > 0; gap /= 2)
    for (size_t i = gap; i < n; i++) {
      uint32_t v = ids[i];
      size_t j = i;
      while (j >= gap && lk_sites[ids[j - gap]].leak_bytes < lk_sites[v].leak_bytes) {
        ids[j] = ids[j - gap];
        j -= gap;
      }
      ids[j] = v;
    }
}

static void lk_print_site(struct cgci_shim_out *o, uint32_t id)
{
  const struct lk_site *s = &lk_sites[id];

  cgci_shim_out_str(o, "Leak of ");
  cgci_shim_out_u64(o, s->leak_bytes);
  cgci_shim_out_str(o, " byte(s) in ");
  cgci_shim_out_u64(o, s->leak_count);
  cgci_shim_out_str(o, " object(s) allocated from:\n");
  if (id == 0 || s->depth == 0)
    cgci_shim_out_str(o, "    #0 <unknown site>\n");
  for (uint32_t f = 0; id != 0 && f < s->depth; f++) {
    cgci_shim_out_str(o, "    #");
    cgci_shim_out_u64(o, f);
    cgci_shim_out_str(o, " ");
    cgci_shim_out_sym(o, s->pc[f]);
    cgci_shim_out_str(o, "\n");
    cgci_shim_out_flush(o);
  }
  cgci_shim_out_str(o, "\n");
  cgci_shim_out_flush(o);
}

uint64_t cgci_leak_report(const char *why)
{
  uint64_t objects = 0, bytes = 0;
  size_t nleaky = 0;

  if (!lk_ready)
    return 0;
  cgci_shim_busy++;
  pthread_mutex_lock(&lk_report_mu);
  unsigned nsites = atomic_load(&lk_nsites);
  if (nsites > LK_MAX_SITES)
    nsites = LK_MAX_SITES;
  for (unsigned i = 0; i < nsites; i++)
    lk_sites[i].leak_count = lk_sites[i].leak_bytes = 0;

  cgc_debug_scrub_stack();
  lk_lock_all();                    /* .inv.report */
  lk_scanning = 1;
  cgc_collect();
  lk_scanning = 0;
  lk_unlock_all();

  uint32_t *ids = cgci_shim_map((size_t)nsites * sizeof *ids);
  for (unsigned i = 0; i < nsites; i++)
    if (lk_sites[i].leak_count != 0) {
      objects += lk_sites[i].leak_count;
      bytes += lk_sites[i].leak_bytes;
      if (ids != NULL)
        ids[nleaky] = i;
      nleaky++;
    }

  struct cgci_shim_out o;
  cgci_shim_out_init(&o, lk_fd);
  cgci_shim_out_str(&o, "==");
  cgci_shim_out_u64(&o, (uint64_t)getpid());
  cgci_shim_out_str(&o, "== cgc-leakcheck: ");
  cgci_shim_out_str(&o, why);
  cgci_shim_out_str(&o, objects ? ": leaks found\n\n" : ": no leaks\n");
  cgci_shim_out_flush(&o);
  if (ids != NULL) {
    lk_sort(ids, nleaky);
    for (size_t i = 0; i < nleaky; i++)
      lk_print_site(&o, ids[i]);
    cgci_shim_unmap(ids, (size_t)nsites * sizeof *ids);
  }
  if (objects) {
    cgci_shim_out_str(&o, "SUMMARY: cgc-leakcheck: ");
    cgci_shim_out_u64(&o, bytes);
    cgci_shim_out_str(&o, " byte(s) leaked in ");
    cgci_shim_out_u64(&o, objects);
    cgci_shim_out_str(&o, " allocation(s) from ");
    cgci_shim_out_u64(&o, nleaky);
    cgci_shim_out_str(&o, " site(s).\n");
    cgci_shim_out_flush(&o);
  }
  lk_total_leaks += objects;
  pthread_mutex_unlock(&lk_report_mu);
  cgci_shim_busy--;
  return objects;
}

void cgci_leak_poll(void)
{
  if (__builtin_expect(lk_signalled, 0) && !cgci_shim_busy) {
    lk_signalled = 0;
    cgci_leak_report("report on SIGUSR2");
  }
}

void cgci_leak_at_exit(void)
{
  if (!lk_ready || !lk_at_exit)
    return;
  cgci_leak_report("report at exit");
  if (lk_total_leaks > 0 && lk_exitcode != 0) {
    fflush(NULL);                   /* exit() would flush after us */
    _exit(lk_exitcode);
  }
}

/* cgc_leakcheck_report -- run a leak report now (leakcheck mode only);
 * returns the number of leaked objects found, 0 in other modes. */
SHIM_EXPORT unsigned long cgc_leakcheck_report(void)
{
  if (cgci_shim_mode != CGCI_SHIM_LEAKCHECK)
    return 0;
  return (unsigned long)cgci_leak_report("report requested");
}
