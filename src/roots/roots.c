/* roots.c -- find and scan every root a C program has.
 *
 * Design: docs/design/roots.md.  Called with the world stopped.
 *
 *   1. Writable PT_LOAD segments of the executable and of every loaded
 *      shared object, enumerated afresh at each collection with
 *      dl_iterate_phdr (so dlopen and dlclose just work), minus their
 *      PT_GNU_RELRO part (read-only after relocation) and minus the
 *      collector's own globals (cgci_g, which holds heap addresses that are
 *      not references).
 *   2. Ranges registered with cgc_add_roots.
 *   3. Every registered thread's stack from its saved stack pointer to its
 *      base, the registers it saved (in the signal frame, or in its record
 *      when blocked), and its static TLS block and thread control block:
 *      [tp - (static TLS size - TCB size), tp + TCB size).  Boehm misses
 *      objects referenced only from __thread variables; cgc does not.
 *      The helper markers' control blocks and static TLS too (their DTV
 *      comes from malloc, which may be cgc's); not their stacks.
 *   4. Uncollectable blocks.
 *   5. With cgci_ext_scan_mappings(1): every writable private anonymous
 *      mapping cgc does not own (for the malloc shim).
 *
 * Deadlock note: dl_iterate_phdr takes the loader lock; see "data
 * segments" below for how the collector avoids calling it at a bad time.
 */
#include "core/internal.h"
#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <string.h>

void cgci_roots_init(void) {
  void (*get_static)(size_t *, size_t *) =
    (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
  const uint32_t *tcb = (const uint32_t *)dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
  size_t size = 0, align = 0;
  if (get_static) get_static(&size, &align);
  cgci_g.tcb_size = tcb ? *tcb : 0;
  cgci_g.static_tls_align = align;
  if (size != 0 && cgci_g.tcb_size != 0 && size > cgci_g.tcb_size)
    cgci_g.static_tls_size = size - cgci_g.tcb_size;
  else {
    /* not glibc, or a glibc without these private symbols: TLS is then
     * not scanned (documented in docs/usage.md) */
    cgci_g.static_tls_size = 0;
    cgci_g.tcb_size = 0;
  }
}

/* ---- scanning a range minus cgci_g ------------------------------------------ */

static void scan_root(uintptr_t lo, uintptr_t hi) {
  uintptr_t glo = (uintptr_t)&cgci_g, ghi = glo + sizeof cgci_g;
  if (hi <= lo) return;
  cgci_g.root_bytes += hi - lo;
  if (hi <= glo || lo >= ghi) { cgci_mark_range(lo, hi); return; }
  if (lo < glo) cgci_mark_range(lo, glo);
  if (hi > ghi) cgci_mark_range(ghi, hi);
}

static void scan_root_run(uintptr_t lo, uintptr_t hi, void *ctx) { (void)ctx; scan_root(lo, hi); }
static void mark_run(uintptr_t lo, uintptr_t hi, void *ctx) { (void)ctx; cgci_mark_range(lo, hi); }

/* scan_sparse -- SCAN(lo, hi) the parts of [LO, HI), private memory, that
 * may hold pointers: a big range only over its touched pages (a page never
 * written reads as zero, or as a file's bytes, and holds no pointer made
 * at run time; see cgci_os_each_touched), a small one whole. */
static void scan_sparse(uintptr_t lo, uintptr_t hi, cgci_run_fn scan) {
  if (hi <= lo) return;
  if (hi - lo < CGCI_SPARSE_MIN || !cgci_os_each_touched(lo, hi, scan, NULL)) scan(lo, hi, NULL);
}

/* ---- data segments ------------------------------------------------------------------
 *
 * The writable segments of every loaded object are enumerated with
 * dl_iterate_phdr into a *snapshot*, outside the collector lock whenever
 * possible (cgci_roots_snapshot, called from the allocation slow path when
 * a collection is near and from cgc_collect).  dl_iterate_phdr takes the
 * loader lock: calling it with the collector lock held could deadlock
 * against a thread that allocates inside a dl_iterate_phdr callback, and
 * calling it with the world stopped could deadlock against a stopped
 * thread that holds the loader lock.
 *
 * A snapshot can go stale: dlopen and dlclose (wrapped here) bump dl_gen,
 * and a collection that finds dl_gen changed takes a fresh snapshot before
 * it stops the world.  Libraries that libc loads and unloads by itself
 * (gconv, NSS) bypass the wrappers, so with the world stopped every range
 * is also checked against /proc/self/maps (read without any user-space
 * lock): only parts still mapped readable and writable are scanned.
 */

struct snapshot { size_t n, cap, bytes; AO_t gen; struct cgci_root r[]; };

static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct snapshot *snap;        /* published snapshot, meta memory */
static AO_t snap_cycle;              /* collections + 1 when SNAP was published */
AO_t cgci_roots_nsnap;               /* snapshots published (tests read it) */
static AO_t dl_gen;                  /* odd while a dlopen/dlclose runs */

static void snap_add(struct snapshot *sn, uintptr_t lo, uintptr_t hi) {
  if (hi <= lo || sn->n == sn->cap) return;
  sn->r[sn->n].lo = lo;
  sn->r[sn->n].hi = hi;
  sn->n++;
}

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *ctx) {
  (void)size;
  struct snapshot *sn = ctx;
  uintptr_t relro_lo = 0, relro_hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_GNU_RELRO) {
      relro_lo = info->dlpi_addr + ph->p_vaddr;
      relro_hi = relro_lo + ph->p_memsz;
    }
  }
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    uintptr_t hi = lo + ph->p_memsz;
    if (relro_hi > relro_lo && relro_lo < hi && relro_hi > lo) {
      /* cut the RELRO part out (read-only after relocation) */
      if (relro_lo > lo) snap_add(sn, lo, relro_lo);
      if (relro_hi < hi) snap_add(sn, relro_hi, hi);
    } else {
      snap_add(sn, lo, hi);
    }
  }
  return 0;
}

/* fork and dl_iterate_phdr.  dl_iterate_phdr holds the loader's write
 * lock, which glibc (2.36) does not reset in a fork child: a fork that
 * lands while one of our threads is inside leaves the child's first
 * snapshot blocked forever.  Blocking fork until no thread of ours is
 * inside could deadlock (a thread inside may wait for the loader lock held
 * by a program thread that waits for the collector lock the forking thread
 * holds), so the prepare handler sets FORKING (new snapshots are skipped:
 * outside a collection they are only a prefetch), then waits a bounded
 * time for IN_ITER to drop to zero.  If it does not, the child never calls
 * dl_iterate_phdr: it keeps the parent's snapshot, or, with none, scans
 * every writable private mapping (a superset of the data segments). */
static AO_t in_iter;              /* our threads inside dl_iterate_phdr */
static AO_t forking;              /* a fork's prepare handler is running */
static int fork_busy;             /* IN_ITER was not zero at fork */
static int child_no_iter;         /* never call dl_iterate_phdr (child) */

void cgci_roots_fork_prepare(void) {
  AO_store_full(&forking, 1);
  for (int i = 0; i < 2000 && AO_load_full(&in_iter) != 0; i++) {
    struct timespec ts = {0, 100 * 1000};
    nanosleep(&ts, NULL);
  }
  fork_busy = AO_load_full(&in_iter) != 0;
}

void cgci_roots_fork_parent(void) { AO_store_full(&forking, 0); }

/* cgci_roots_snapshot -- enumerate the writable segments now.  May be
 * called with or without the collector lock (see above for why without is
 * preferred); never with the world stopped. */
void cgci_roots_snapshot(void) {
  if (child_no_iter) {
    /* keep what we have: the loader lock may be held by a thread that
     * did not survive fork (see above) */
    pthread_mutex_lock(&snap_mu);
    if (snap != NULL) snap->gen = AO_load_acquire(&dl_gen) & ~(AO_t)1;
    pthread_mutex_unlock(&snap_mu);
    return;
  }
  size_t cap = 512;
  size_t bytes = sizeof(struct snapshot) + cap * sizeof(struct cgci_root);
  for (;;) {
    AO_t gen = AO_load_acquire(&dl_gen);
    struct snapshot *sn = cgci_meta_alloc_big(bytes);
    sn->cap = cap;
    sn->bytes = bytes;
    sn->gen = gen;
    AO_fetch_and_add1_full(&in_iter);
    if (AO_load_full(&forking)) {           /* a prefetch: skip it */
      AO_fetch_and_sub1_full(&in_iter);
      cgci_meta_free_big(sn, bytes);
      return;
    }
    dl_iterate_phdr(phdr_cb, sn);
    AO_fetch_and_sub1_full(&in_iter);
    if (sn->n == cap) {                       /* too many: retry bigger */
      cgci_meta_free_big(sn, bytes);
      cap *= 4;
      bytes = sizeof(struct snapshot) + cap * sizeof(struct cgci_root);
      continue;
    }
    pthread_mutex_lock(&snap_mu);
    struct snapshot *old = snap;
    snap = sn;
    AO_store(&snap_cycle, (AO_t)cgci_collections() + 1);
    AO_fetch_and_add1(&cgci_roots_nsnap);
    pthread_mutex_unlock(&snap_mu);
    if (old) cgci_meta_free_big(old, old->bytes);
    return;
  }
}

/* cgci_roots_snapshot_stale -- true if no snapshot reflects the current
 * set of objects loaded through dlopen/dlclose. */
bool cgci_roots_snapshot_stale(void) {
  struct snapshot *sn = snap;
  AO_t gen = AO_load_acquire(&dl_gen);
  return sn == NULL || sn->gen != gen || (gen & 1);
}

/* cgci_roots_snapshot_due -- true unless a snapshot was published since
 * the last collection and is not stale: the allocation slow path takes one
 * when a collection is near, and once per collection is enough.  (Without
 * this, a program past its trigger with collection disabled took one at
 * every slow-path allocation.) */
bool cgci_roots_snapshot_due(void) {
  return AO_load(&snap_cycle) != (AO_t)cgci_collections() + 1 || cgci_roots_snapshot_stale();
}

typedef void *(*dlopen_fn)(const char *, int);
typedef int (*dlclose_fn)(void *);

/* cgci_ext_dl_change -- the loader's list of objects is about to change
 * (BEGIN 1) or has changed (0).  The wrappers below call it; so do the
 * malloc shim's own dlopen/dlclose, which take precedence there. */
void cgci_ext_dl_change(int begin) {
  (void)begin;
  AO_fetch_and_add1(&dl_gen);
}

/* Weak: the malloc shim defines its own (which call cgci_ext_dl_change). */
__attribute__((visibility("default"), weak)) void *dlopen(const char *file, int mode) {
  static dlopen_fn real_;
  if (real_ == NULL) real_ = (dlopen_fn)cgci_real_sym("dlopen");
  AO_fetch_and_add1(&dl_gen);
  void *h = real_(file, mode);
  AO_fetch_and_add1(&dl_gen);
  return h;
}

__attribute__((visibility("default"), weak)) int dlclose(void *handle) {
  static dlclose_fn real_;
  if (real_ == NULL) real_ = (dlclose_fn)cgci_real_sym("dlclose");
  AO_fetch_and_add1(&dl_gen);
  int r = real_(handle);
  AO_fetch_and_add1(&dl_gen);
  return r;
}

/* The readable and writable private mappings, read once per collection
 * with the world stopped: data-segment ranges are clipped to them, and
 * with cgci_ext_scan_mappings(1) the anonymous ones are roots too. */
struct rwmaps { size_t n, cap; struct cgci_root *r; unsigned char *anon; /* RW_* */ };
enum { RW_ANON = 1, RW_PRIVATE = 2 };     /* private anonymous; private */
static struct rwmaps rw;

/* rw_cb -- record one mapping.  The arrays live in a mapping of their own
 * (mmap takes no user-space lock; the world is stopped), which
 * scan_foreign skips. */
static void rw_cb(uintptr_t lo, uintptr_t hi, const char *perms, const char *name, void *ctx) {
  (void)ctx;
  if (perms[0] != 'r' || perms[1] != 'w') return;
  if (rw.n == rw.cap) {
    size_t ncap = rw.cap ? rw.cap * 2 : 4096;
    size_t bytes = ncap * (sizeof(struct cgci_root) + 1);
    void *m = cgci_os_map(bytes);
    if (m == NULL) cgci_fatal("cannot map the mapping table");
    struct cgci_root *nr = m;
    unsigned char *na = (unsigned char *)(nr + ncap);
    if (rw.r) {
      memcpy(nr, rw.r, rw.n * sizeof *nr);
      memcpy(na, rw.anon, rw.n);
      cgci_os_unmap(rw.r, rw.cap * (sizeof(struct cgci_root) + 1));
    }
    rw.r = nr; rw.anon = na; rw.cap = ncap;
  }
  rw.r[rw.n].lo = lo;
  rw.r[rw.n].hi = hi;
  rw.anon[rw.n] = (unsigned char)(perms[3] != 'p' ? 0 : name[0] == 0 ? RW_ANON | RW_PRIVATE : RW_PRIVATE);
  rw.n++;
}

/* The collector holds snap_mu from before it stops the world until after
 * it restarts it: a thread stopped while publishing a snapshot cannot be
 * holding it then. */
void cgci_roots_lock(void) { pthread_mutex_lock(&snap_mu); }
void cgci_roots_atfork_child(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  snap_mu = m;
  if (fork_busy) child_no_iter = 1;
  AO_store(&in_iter, 0);
  AO_store(&forking, 0);
}
void cgci_roots_unlock(void) { pthread_mutex_unlock(&snap_mu); }

/* scan_clipped -- scan the parts of [LO, HI) that are mapped rw (RW is
 * sorted, as /proc/self/maps is). */
static void scan_clipped(uintptr_t lo, uintptr_t hi) {
  for (size_t i = 0; i < rw.n && rw.r[i].lo < hi; i++) {
    if (rw.r[i].hi <= lo) continue;
    uintptr_t a = lo > rw.r[i].lo ? lo : rw.r[i].lo;
    uintptr_t b = hi < rw.r[i].hi ? hi : rw.r[i].hi;
    scan_root(a, b);
  }
}

/* ---- registered ranges ------------------------------------------------------------ */

int cgc_add_roots(void *lo, void *hi) {
  if (lo == NULL || hi == NULL || (uintptr_t)lo > (uintptr_t)hi)
    return cgci_error(CGC_EINVAL, "cgc_add_roots", "invalid range");
  cgci_ensure_init();
  cgci_lock();
  if (cgci_g.nroots == cgci_g.roots_cap) {
    size_t ncap = cgci_g.roots_cap ? cgci_g.roots_cap * 2 : 64;
    struct cgci_root *n = cgci_meta_alloc_big(ncap * sizeof *n);
    if (cgci_g.roots) {
      memcpy(n, cgci_g.roots, cgci_g.nroots * sizeof *n);
      cgci_meta_free_big(cgci_g.roots, cgci_g.roots_cap * sizeof *n);
    }
    cgci_g.roots = n;
    cgci_g.roots_cap = ncap;
  }
  cgci_g.roots[cgci_g.nroots].lo = (uintptr_t)lo;
  cgci_g.roots[cgci_g.nroots].hi = (uintptr_t)hi;
  cgci_g.nroots++;
  cgci_unlock();
  return CGC_OK;
}

int cgc_remove_roots(void *lo, void *hi) {
  cgci_ensure_init();
  cgci_lock();
  for (size_t i = 0; i < cgci_g.nroots; i++)
    if (cgci_g.roots[i].lo == (uintptr_t)lo && cgci_g.roots[i].hi == (uintptr_t)hi) {
      cgci_g.roots[i] = cgci_g.roots[--cgci_g.nroots];
      cgci_unlock();
      return CGC_OK;
    }
  cgci_unlock();
  return cgci_error(CGC_EINVAL, "cgc_remove_roots", "no such root range");
}

/* ---- threads ----------------------------------------------------------------------- */

/* cgci_roots_thread_tls -- the static TLS block and TCB of thread T. */
void cgci_roots_thread_tls(struct cgci_thread *t) {
  if (t->tp == 0 || cgci_g.static_tls_size == 0) return;
  scan_root(t->tp - cgci_g.static_tls_size, t->tp + cgci_g.tcb_size);
}

/* scan_self -- the collecting thread: spill callee-saved registers into a
 * jmp_buf in this frame, then scan from here to the stack base. */
static CGCI_NOINLINE void scan_self(struct cgci_thread *t) {
  jmp_buf regs;
  setjmp(regs);
  __builtin_unwind_init();
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  /* include the jmp_buf, which may sit below the frame address */
  uintptr_t lo = (uintptr_t)&regs < sp ? (uintptr_t)&regs : sp;
  scan_root(lo, t->stack_base);
  cgci_roots_thread_tls(t);
  __asm__ __volatile__("" : : "r"(&regs) : "memory");
}

static void scan_thread(struct cgci_thread *t) {
  if (t == cgci_self) { scan_self(t); return; }
  uintptr_t sp = (uintptr_t)AO_load(&t->stop_sp);
  if (t->on_alt && AO_load(&t->state) != CGCI_TS_BLOCKED) {
    /* stopped on an alternate signal stack (stw.c) */
    if (t->alt_hi > t->alt_lo) scan_root(t->alt_lo, t->alt_hi);
    if (sp == 0) {                   /* the whole normal stack, as mapped */
      for (size_t i = 0; i < rw.n; i++)
        if (rw.r[i].lo < t->stack_base && rw.r[i].hi >= t->stack_base) {
          scan_root(rw.r[i].lo, t->stack_base);
          break;
        }
    }
  }
  if (sp != 0 && sp < t->stack_base) scan_root(sp, t->stack_base);
  /* inside a blocking call, leaving it included: a thread leaving one
   * flips its state to RUNNING and back while the world is stopped, so
   * the state alone does not tell (blocked_depth drops last) */
  if (t->blocked_depth > 0)
    scan_root((uintptr_t)t->blocked_regs, (uintptr_t)(t->blocked_regs + 8));
  cgci_roots_thread_tls(t);
}

/* ---- uncollectable blocks ----------------------------------------------------------- */

static void scan_uncoll(struct cgci_span *s) {
  cgc_assert(s->kind == CGCI_KIND_UNCOLL && s->state != CGCI_SPAN_FREE);
  if (s->state == CGCI_SPAN_LARGE) { scan_sparse(s->start, s->start + s->large_bytes, mark_run); return; }
  for (uint32_t i = 0; i < s->nobj; i++)
    if (cgci_bit_get(s, i)) {
      uintptr_t b = s->start + (uintptr_t)i * s->slot;
      cgci_mark_range(b, b + s->slot);
    }
}

/* ---- foreign mappings (malloc shim) -------------------------------------------------- */

/* scan_excluding -- scan [LO, HI) minus the ranges EX[K..N).  Linux
 * merges adjacent anonymous mappings, so a program's own mmap region can
 * share one line of /proc/self/maps with a mapping of ours: subtract, do
 * not skip. */
static void scan_excluding(uintptr_t lo, uintptr_t hi, const struct cgci_root *ex,
                           size_t k, size_t n) {
  for (; k < n; k++) {
    if (ex[k].hi <= lo || ex[k].lo >= hi) continue;
    if (ex[k].lo > lo) scan_excluding(lo, ex[k].lo, ex, k + 1, n);
    if (ex[k].hi < hi) scan_excluding(ex[k].hi, hi, ex, k + 1, n);
    return;
  }
  scan_sparse(lo, hi, scan_root_run);
}

/* scan_foreign -- an anonymous private rw mapping as a root, minus
 * everything cgc owns or scans otherwise: the heap, metadata, page map,
 * mark stacks and helper stacks, this table, and registered threads'
 * stacks (scanned from their stack pointer; a thread stack starts at the
 * low end of its mapping, above a guard page). */
static void scan_foreign(uintptr_t lo, uintptr_t hi) {
  struct cgci_root ex[128];
  size_t n = 0;
  ex[n++] = (struct cgci_root){cgci_g.heap_lo, cgci_g.heap_lo + cgci_g.heap_reserved};
  ex[n++] = (struct cgci_root){cgci_g.meta_lo, cgci_g.meta_lo + cgci_g.meta_reserved};
  ex[n++] = (struct cgci_root){(uintptr_t)cgci_g.pagemap, (uintptr_t)cgci_g.pagemap +
                               (cgci_g.heap_reserved >> CGCI_PAGE_SHIFT) * sizeof(void *)};
  if (rw.r) ex[n++] = (struct cgci_root){(uintptr_t)rw.r, (uintptr_t)rw.r +
                                         rw.cap * (sizeof(struct cgci_root) + 1)};
  n += cgci_mark_owned_ranges(ex + n, 24);
  for (struct cgci_thread *t = cgci_g.threads; t && n < 128; t = t->next)
    if (t->stack_base > lo && t->stack_base <= hi) ex[n++] = (struct cgci_root){lo, t->stack_base};
  scan_excluding(lo, hi, ex, 0, n);
}

void cgci_ext_scan_mappings(int on) {
  cgci_ensure_init();
  cgci_g.scan_mappings = on;
}

/* cgci_roots_mark_all -- scan every root (world stopped). */
void cgci_roots_mark_all(void) {
  cgci_g.root_bytes = 0;
  rw.n = 0;
  cgci_os_each_mapping(rw_cb, NULL);
  if (snap != NULL)                        /* snap_mu held by the collector */
    for (size_t i = 0; i < snap->n; i++) scan_clipped(snap->r[i].lo, snap->r[i].hi);
  for (size_t i = 0; i < cgci_g.nroots; i++)
    scan_root(cgci_g.roots[i].lo, cgci_g.roots[i].hi);
  for (struct cgci_thread *t = cgci_g.threads; t; t = t->next) scan_thread(t);
  cgci_mark_helper_tls(scan_root);
  /* their own list: a walk of every span would cost 3-30 ms on a 1.5 GiB
   * heap of small spans (descriptors in the cache or not) */
  for (struct cgci_span *s = cgci_g.uncoll; s != NULL; s = s->uc_next) scan_uncoll(s);
  /* the pacer counts these roots, not foreign mappings (collect.c) */
  cgci_g.root_bytes_paced = cgci_g.root_bytes;
  if (snap == NULL && child_no_iter) {
    /* no data-segment list in this child: every writable private mapping */
    for (size_t i = 0; i < rw.n; i++)
      if (rw.anon[i] & RW_PRIVATE) scan_foreign(rw.r[i].lo, rw.r[i].hi);
  } else if (cgci_g.scan_mappings) {
    for (size_t i = 0; i < rw.n; i++)
      if (rw.anon[i] & RW_ANON) scan_foreign(rw.r[i].lo, rw.r[i].hi);
  }
}
