/* specials.c -- per-object side records: finalizers, cleanups, weak
 * handles and free watches, and phases M1-M3 of a collection.
 *
 * Design: docs/design/finalization.md; semantics: docs/semantics.md.
 *
 * Data.  An off-heap hash table maps an object's base address to one
 * record: at most one finalizer (fn, data, registration site), a list of
 * cleanups (each with a unique 64-bit id, also indexed by id so that
 * cgc_cleanup_stop needs no address), a list of weak handles (one per
 * (offset, short/long)), and an optional cgc_debug_on_free flag.  Records
 * live in meta memory, which is never scanned, so a record never keeps its
 * object alive.  Everything here is protected by the collector lock, so
 * every operation is linearizable with respect to collections.
 *
 * Collection phases (world stopped, lock held):
 *   M1 cgci_specials_mark_roots: finalizer data, cleanup args and weak
 *      cells are roots (cells are pointer-free, so targets are not).
 *   M2 cgci_specials_mark_finalizable: the *contents* of every object with
 *      a finalizer are scanned, the object itself is not marked.  This one
 *      rule gives topological order, the cycle leak, and the long
 *      behaviour of weak pointers to objects kept only by finalizable ones.
 *   M3 cgci_specials_resolve: for each unmarked object with a record: with
 *      a finalizer, queue it, clear short weak handles, keep cleanups, and
 *      set the mark bit (resurrect); otherwise clear every weak handle and
 *      queue the cleanups; the object is then reclaimed by the sweep.
 *
 * .inv.handles: a weak cell holds its target's address until M3 (or
 *   cgc_free) clears it, and is NULL forever after.
 * .inv.ids: a cleanup id is in the id index iff the cleanup is registered
 *   and not yet queued; so Stop either removes it (never runs) or finds
 *   nothing (already queued: runs exactly once).
 */
#include "core/internal.h"
#include <string.h>

struct cgci_cln {
  uint64_t id;
  cgc_cleanup_fn fn;
  void *arg;
  uintptr_t offset;
  void *site;
  struct cgci_special *owner;
  struct cgci_cln *next;       /* owner's list */
  struct cgci_cln *id_next;    /* id hash chain */
};

struct cgci_weakrec {
  uintptr_t offset;
  AO_t *cell;                  /* GC-allocated, pointer-free */
  int is_long;
  struct cgci_weakrec *next;
};

struct cgci_special {
  uintptr_t base;
  struct cgci_special *hnext;
  int has_fin;
  cgc_finalizer_fn fin_fn;
  void *fin_data;
  void *fin_site;
  struct cgci_cln *clns;
  struct cgci_weakrec *weaks;
  volatile int *onfree;
};

static struct {
  struct cgci_special **tab;   /* buckets */
  size_t cap, count;
  struct cgci_cln **ids;       /* id index buckets */
  size_t id_cap, id_count;
  uint64_t next_id;
  struct cgci_special *rec_pool;
  struct cgci_cln *cln_pool;
  struct cgci_weakrec *weak_pool;
} sp;

/* Both hashes keep neighbours together: objects registered one after the
 * other usually sit at increasing addresses, and ids are sequential, so
 * consecutive registrations touch consecutive buckets (cache and TLB
 * friendly) and chains stay short (block bases are 16-byte granules). */
static inline size_t hash_addr(uintptr_t a, size_t cap) {
  return (size_t)((a >> 4) ^ (a >> 24)) & (cap - 1);
}
static inline size_t hash_id(uint64_t id, size_t cap) {
  return (size_t)id & (cap - 1);
}

void cgci_specials_init(void) {
  sp.cap = 1024;
  sp.tab = cgci_meta_alloc_big(sp.cap * sizeof *sp.tab);
  sp.id_cap = 1024;
  sp.ids = cgci_meta_alloc_big(sp.id_cap * sizeof *sp.ids);
}

void cgci_specials_atfork_child(void) { /* the table is copied whole; nothing to do */ }

static void grow_tab(void) {
  size_t ncap = sp.cap * 2;
  struct cgci_special **n = cgci_meta_alloc_big(ncap * sizeof *n);
  for (size_t i = 0; i < sp.cap; i++) {
    struct cgci_special *r = sp.tab[i];
    while (r) {
      struct cgci_special *next = r->hnext;
      size_t h = hash_addr(r->base, ncap);
      r->hnext = n[h];
      n[h] = r;
      r = next;
    }
  }
  cgci_meta_free_big(sp.tab, sp.cap * sizeof *sp.tab);
  sp.tab = n;
  sp.cap = ncap;
}

static void grow_ids(void) {
  size_t ncap = sp.id_cap * 2;
  struct cgci_cln **n = cgci_meta_alloc_big(ncap * sizeof *n);
  for (size_t i = 0; i < sp.id_cap; i++) {
    struct cgci_cln *c = sp.ids[i];
    while (c) {
      struct cgci_cln *next = c->id_next;
      size_t h = hash_id(c->id, ncap);
      c->id_next = n[h];
      n[h] = c;
      c = next;
    }
  }
  cgci_meta_free_big(sp.ids, sp.id_cap * sizeof *sp.ids);
  sp.ids = n;
  sp.id_cap = ncap;
}

static struct cgci_special *rec_find(uintptr_t base) {
  for (struct cgci_special *r = sp.tab[hash_addr(base, sp.cap)]; r; r = r->hnext)
    if (r->base == base) return r;
  return NULL;
}

static struct cgci_special *rec_get(uintptr_t base) {
  struct cgci_special *r = rec_find(base);
  if (r) return r;
  if (sp.count >= sp.cap) grow_tab();
  r = sp.rec_pool;
  if (r) { sp.rec_pool = r->hnext; memset(r, 0, sizeof *r); }
  else r = cgci_meta_alloc(sizeof *r);
  r->base = base;
  size_t h = hash_addr(base, sp.cap);
  r->hnext = sp.tab[h];
  sp.tab[h] = r;
  sp.count++;
  struct cgci_span *s = cgci_span_of(base);
  if (s) s->flags |= CGCI_SF_SPECIALS;
  return r;
}

static void rec_delete(struct cgci_special *r) {
  struct cgci_special **pp = &sp.tab[hash_addr(r->base, sp.cap)];
  while (*pp != r) pp = &(*pp)->hnext;
  *pp = r->hnext;
  sp.count--;
  r->hnext = sp.rec_pool;
  sp.rec_pool = r;
}

static bool rec_empty(const struct cgci_special *r) {
  return !r->has_fin && r->clns == NULL && r->weaks == NULL && r->onfree == NULL;
}

static void id_remove(struct cgci_cln *c) {
  struct cgci_cln **pp = &sp.ids[hash_id(c->id, sp.id_cap)];
  while (*pp && *pp != c) pp = &(*pp)->id_next;
  if (*pp) { *pp = c->id_next; sp.id_count--; }
}

static void cln_dispose(struct cgci_cln *c) {
  c->next = sp.cln_pool;
  sp.cln_pool = c;
}

/* ---- argument checking shared by the entry points ------------------------- */

/* resolve -- the base of the live block P points into, or an error code. */
static int resolve(void *p, uintptr_t *base_out) {
  if (!cgci_ready()) cgci_ensure_init();
  uintptr_t a = (uintptr_t)p;
  if (a - cgci_g.heap_lo >= cgci_g.heap_reserved) return CGC_ENOTHEAP;
  void *b = cgci_find_base(a, NULL, NULL);
  if (b == NULL) return CGC_ENOTHEAP;
  *base_out = (uintptr_t)b;
  return CGC_OK;
}

/* ---- FIN ---------------------------------------------------------------- */

int cgc_set_finalizer(void *obj, cgc_finalizer_fn fn, void *data) {
  void *site = __builtin_return_address(0);
  if (obj == NULL) return cgci_error(CGC_EINVAL, "cgc_set_finalizer", "first argument is nil");
  uintptr_t base;
  cgci_lock();
  int r = resolve(obj, &base);
  if (r == CGC_OK && base != (uintptr_t)obj) r = CGC_ENOTBASE;
  if (r != CGC_OK) {
    cgci_unlock();
    return cgci_error(r, "cgc_set_finalizer", r == CGC_ENOTBASE
                      ? "pointer not at beginning of allocated block"
                      : "pointer not in allocated block");
  }
  if (fn == NULL) {
    struct cgci_special *rec = rec_find(base);
    if (rec && rec->has_fin) {
      rec->has_fin = 0;
      rec->fin_fn = NULL;
      rec->fin_data = NULL;
      if (rec_empty(rec)) rec_delete(rec);
    }
    cgci_unlock();
    return CGC_OK;
  }
  struct cgci_special *rec = rec_find(base);
  if (rec && rec->has_fin) {
    cgci_unlock();
    return cgci_error(CGC_EEXIST, "cgc_set_finalizer", "finalizer already set");
  }
  rec = rec_get(base);
  rec->has_fin = 1;
  rec->fin_fn = fn;
  rec->fin_data = data;
  rec->fin_site = site;
  cgci_g.st.finalizers_registered++;
  cgci_unlock();
  cgci_queue_ensure_threads();
  return CGC_OK;
}

/* ---- CLN ---------------------------------------------------------------- */

int cgc_add_cleanup(void *ptr, cgc_cleanup_fn fn, void *arg, cgc_cleanup_t *out) {
  void *site = __builtin_return_address(0);
  if (out) out->id = 0;
  if (ptr == NULL) return cgci_error(CGC_EINVAL, "cgc_add_cleanup", "ptr is nil");
  if (fn == NULL) return cgci_error(CGC_EINVAL, "cgc_add_cleanup", "fn is nil");
  uintptr_t base;
  cgci_lock();
  int r = resolve(ptr, &base);
  if (r != CGC_OK) {
    cgci_unlock();
    return cgci_error(r, "cgc_add_cleanup", "ptr not in allocated block");
  }
  if (arg == ptr) {
    cgci_unlock();
    return cgci_error(CGC_EARGPTR, "cgc_add_cleanup", "ptr is equal to arg, cleanup will never run");
  }
  struct cgci_special *rec = rec_get(base);
  struct cgci_cln *c = sp.cln_pool;
  if (c) { sp.cln_pool = c->next; memset(c, 0, sizeof *c); }
  else c = cgci_meta_alloc(sizeof *c);
  c->id = ++sp.next_id;
  c->fn = fn;
  c->arg = arg;
  c->offset = (uintptr_t)ptr - base;
  c->site = site;
  c->owner = rec;
  c->next = rec->clns;
  rec->clns = c;
  if (sp.id_count >= sp.id_cap) grow_ids();
  size_t h = hash_id(c->id, sp.id_cap);
  c->id_next = sp.ids[h];
  sp.ids[h] = c;
  sp.id_count++;
  cgci_g.st.cleanups_registered++;
  if (out) out->id = c->id;
  cgci_unlock();
  cgci_queue_ensure_threads();
  return CGC_OK;
}

bool cgc_cleanup_stop(cgc_cleanup_t h) {
  if (h.id == 0 || !cgci_ready()) return false;
  cgci_lock();
  struct cgci_cln *c = sp.ids[hash_id(h.id, sp.id_cap)];
  while (c && c->id != h.id) c = c->id_next;
  if (c == NULL) { cgci_unlock(); return false; }
  id_remove(c);
  struct cgci_special *rec = c->owner;
  struct cgci_cln **pp = &rec->clns;
  while (*pp != c) pp = &(*pp)->next;
  *pp = c->next;
  cln_dispose(c);
  if (rec_empty(rec)) rec_delete(rec);
  cgci_g.st.cleanups_cancelled++;
  cgci_unlock();
  return true;
}

/* ---- WEAK ---------------------------------------------------------------- */

static int weak_make(void *p, cgc_weak_t *out, int is_long, const char *fname) {
  if (out == NULL) return cgci_error(CGC_EINVAL, fname, "out is nil");
  out->cell = NULL;
  if (p == NULL) return CGC_OK;
  cgci_ensure_init();
  /* the cell is allocated before taking the lock (allocation may collect;
   * P is our argument, so the object survives that) */
  AO_t *cell = cgc_malloc_atomic(sizeof(AO_t));
  if (cell == NULL) return cgci_error(CGC_ENOMEM, fname, "out of memory");
  uintptr_t base;
  cgci_lock();
  int r = resolve(p, &base);
  if (r != CGC_OK) {
    cgci_unlock();
    cgci_free(cell, false);
    return cgci_error(r, fname, "pointer not in allocated block");
  }
  struct cgci_special *rec = rec_get(base);
  uintptr_t off = (uintptr_t)p - base;
  struct cgci_weakrec *w;
  for (w = rec->weaks; w; w = w->next)
    if (w->offset == off && w->is_long == is_long) break;
  AO_t *spare = NULL;
  if (w != NULL) {
    spare = cell;              /* canonical handle exists */
  } else {
    w = sp.weak_pool;
    if (w) { sp.weak_pool = w->next; memset(w, 0, sizeof *w); }
    else w = cgci_meta_alloc(sizeof *w);
    w->offset = off;
    w->is_long = is_long;
    w->cell = cell;
    AO_store_release(cell, (AO_t)p);
    w->next = rec->weaks;
    rec->weaks = w;
    cgci_g.st.weak_created++;
  }
  out->cell = (void *)w->cell;
  cgci_unlock();
  if (spare) cgci_free(spare, false);
  CGC_KEEP_ALIVE(p);
  return CGC_OK;
}

int cgc_weak_make(void *p, cgc_weak_t *out) { return weak_make(p, out, 0, "cgc_weak_make"); }
int cgc_weak_make_long(void *p, cgc_weak_t *out) { return weak_make(p, out, 1, "cgc_weak_make_long"); }

/* cgc_weak_get -- one atomic load: cells are cleared only with the world
 * stopped, so a non-NULL value read here is an object that the latest
 * completed mark found reachable, and holding it in a register or on the
 * stack keeps it alive from here on. */
void *cgc_weak_get(cgc_weak_t w) {
  if (w.cell == NULL) return NULL;
  return (void *)AO_load_acquire((AO_t *)w.cell);
}

bool cgc_weak_equal(cgc_weak_t a, cgc_weak_t b) { return a.cell == b.cell; }

/* ---- debug free watch ----------------------------------------------------------- */

void cgc_debug_on_free(void *base, volatile int *flag) {
  uintptr_t b;
  if (base == NULL || flag == NULL) { cgci_error(CGC_EINVAL, "cgc_debug_on_free", "argument is nil"); return; }
  cgci_lock();
  int r = resolve(base, &b);
  if (r == CGC_OK && b != (uintptr_t)base) r = CGC_ENOTBASE;
  if (r != CGC_OK) {
    cgci_unlock();
    cgci_error(r, "cgc_debug_on_free", "pointer not a block start");
    return;
  }
  *flag = 0;
  rec_get(b)->onfree = flag;
  cgci_unlock();
}

/* ---- collection phases ------------------------------------------------------------ */

/* EACH_REC -- every record, bucket by bucket; the records of a few
 * buckets ahead are prefetched, since the walk is bound by cache misses. */
#define EACH_REC(r)                                                       \
  for (size_t i_ = 0; i_ < sp.cap; i_++)                                  \
    for (struct cgci_special *r = (i_ + 8 < sp.cap && sp.tab[i_ + 8]       \
           ? __builtin_prefetch(sp.tab[i_ + 8]) : (void)0, sp.tab[i_]),    \
           *n_ = r ? r->hnext : NULL;                                      \
         r != NULL; r = n_, n_ = r ? r->hnext : NULL)

/* cgci_specials_mark_roots -- M1 and M2 in one walk (they share the mark
 * stack and their order does not matter): finalizer data, cleanup args and
 * weak cells are roots; the contents of every finalizable object are
 * pushed without marking the object itself.  The caller drains. */
void cgci_specials_mark_roots(void) {
  EACH_REC(r) {
    if (r->has_fin) {
      cgci_mark_word((uintptr_t)r->fin_data);
      struct cgci_span *s = cgci_span_of(r->base);
      if (s != NULL && s->kind != CGCI_KIND_ATOMIC)
        cgci_mark_push(r->base, r->base + cgci_block_size(s));
    }
    for (struct cgci_cln *c = r->clns; c; c = c->next) cgci_mark_word((uintptr_t)c->arg);
    for (struct cgci_weakrec *w = r->weaks; w; w = w->next) cgci_mark_word((uintptr_t)w->cell);
  }
}

/* cgci_specials_mark_finalizable -- M2 alone, for overflow recovery. */
void cgci_specials_mark_finalizable(void) {
  EACH_REC(r) {
    if (!r->has_fin) continue;
    struct cgci_span *s = cgci_span_of(r->base);
    if (s == NULL || s->kind == CGCI_KIND_ATOMIC) continue;
    cgci_mark_push(r->base, r->base + cgci_block_size(s));
  }
  cgci_mark_drain();         /* an overflow is recovered by the caller */
}

static void clear_weaks(struct cgci_special *r, bool short_only) {
  struct cgci_weakrec **pp = &r->weaks;
  while (*pp) {
    struct cgci_weakrec *w = *pp;
    if (short_only && w->is_long) { pp = &w->next; continue; }
    AO_store_release(w->cell, 0);
    cgci_g.st.weak_cleared++;
    *pp = w->next;
    w->next = sp.weak_pool;
    sp.weak_pool = w;
  }
}

/* queue_cleanups -- move every cleanup of R to the cleanup queue (queue
 * lock held by the caller). */
static void queue_cleanups(struct cgci_special *r) {
  struct cgci_cln *c = r->clns;
  while (c) {
    struct cgci_cln *next = c->next;
    id_remove(c);
    cgci_queue_push_cln(c->fn, c->arg);
    cgci_g.st.cleanups_queued++;
    cgci_cycle_cln_queued++;
    cln_dispose(c);
    c = next;
  }
  r->clns = NULL;
}

/* set_mark_only -- resurrect: set the bit, the contents were scanned in M2. */
static void set_mark_only(uintptr_t base) {
  struct cgci_span *s = cgci_span_of(base);
  if (s->state == CGCI_SPAN_LARGE) s->mark[0] |= 1;
  else cgci_bit_set(s, cgci_slot_index(s, base));
}

void cgci_specials_resolve(void) {
  EACH_REC(r) {
    struct cgci_span *s = cgci_span_of(r->base);
    if (s == NULL) { rec_delete(r); continue; }        /* cannot happen */
    if (s->kind == CGCI_KIND_UNCOLL || cgci_is_marked(r->base)) continue;
    if (r->has_fin) {
      cgci_queue_push_fin((void *)r->base, r->fin_fn, r->fin_data);
      cgci_g.st.finalizers_queued++;
      cgci_cycle_fin_queued++;
      r->has_fin = 0;
      r->fin_fn = NULL;
      r->fin_data = NULL;
      clear_weaks(r, true);
      set_mark_only(r->base);
      if (rec_empty(r)) rec_delete(r);
    } else {
      clear_weaks(r, false);
      queue_cleanups(r);
      if (r->onfree) { *r->onfree = 1; r->onfree = NULL; }
      rec_delete(r);
    }
  }
}

/* cgci_specials_on_free -- explicit free of BASE (lock held): refuse if it
 * has a finalizer, else clear weak handles, queue cleanups, fire the free
 * watch and drop the record. */
int cgci_specials_on_free(void *base) {
  struct cgci_special *r = rec_find((uintptr_t)base);
  if (r == NULL) return CGC_OK;
  if (r->has_fin) return CGC_EBUSY;
  clear_weaks(r, false);
  if (r->clns) {
    cgci_queue_lock();
    queue_cleanups(r);
    cgci_queue_signal_locked();
    cgci_queue_unlock();
  }
  if (r->onfree) *r->onfree = 1;
  rec_delete(r);
  return CGC_OK;
}

/* ---- the debug checker's view ----------------------------------------------------- */

void cgci_specials_each(void (*fn)(uintptr_t base, int is_fin, void *data_or_arg,
                                   void *site, void *ctx), void *ctx) {
  EACH_REC(r) {
    if (r->has_fin) fn(r->base, 1, r->fin_data, r->fin_site, ctx);
    for (struct cgci_cln *c = r->clns; c; c = c->next) fn(r->base, 0, c->arg, c->site, ctx);
  }
}

