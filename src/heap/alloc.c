/* alloc.c -- allocation and explicit free.
 *
 * Design: docs/design/heap.md.
 *
 * Fast path: each registered thread has one singly linked free list per
 * (kind, size class).  cgc_malloc pops from it with no lock and no atomic
 * operation: three loads, four stores.  Objects on a list are zero except
 * word 0 (the link) and word 1 (a free cookie that lets cgc_free detect a
 * second free), so popping clears two words and the object is ready.
 *
 * Slow path, under the collector lock: count what the thread allocated,
 * collect if the pacer says so, then *lazy-sweep* one span of the class:
 * every slot whose mark bit is clear (.inv.bits in core/internal.h) is
 * zeroed, threaded onto the thread's list and its bit set, so the span is
 * wholly owned until the next collection recomputes the bits.  A class with
 * no partial span gets a fresh span from the page heap.
 *
 * Explicit free pushes the object on the freeing thread's list (reuse is
 * immediate and thread-local, as in mimalloc); when a list holds more than
 * CGCI_LOCAL_FREE_MAX bytes half of it goes back to the spans under the
 * lock, so memory freed by one thread is reusable by all.
 */
#include "core/internal.h"
#include "core/ext.h"
#include <string.h>
#include <errno.h>

static inline void *pop(struct cgci_thread *t, int kind, unsigned sc) {
  void **p = t->fl[kind][sc];
  if (CGCI_LIKELY(p != NULL)) {
    t->fl[kind][sc] = p[0];
    p[0] = NULL;
    p[1] = NULL;
    t->nfl[kind][sc]--;
    t->alloc_bytes += cgci_g.class_size[sc];
    t->alloc_objs++;
  }
  return p;
}

void *cgc_malloc(size_t n) {
  struct cgci_thread *t = cgci_self;
  if (CGCI_LIKELY(t != NULL && n < CGCI_SMALL_MAX)) {
    void *p = pop(t, CGCI_KIND_NORMAL, cgci_g.size_class[(n + CGCI_GRANULE) >> 4]);
    if (CGCI_LIKELY(p != NULL)) return p;
  }
  return cgci_alloc_slow(n, CGCI_KIND_NORMAL, true);
}

void *cgc_malloc_atomic(size_t n) {
  struct cgci_thread *t = cgci_self;
  if (CGCI_LIKELY(t != NULL && n < CGCI_SMALL_MAX)) {
    void *p = pop(t, CGCI_KIND_ATOMIC, cgci_g.size_class[(n + CGCI_GRANULE) >> 4]);
    if (CGCI_LIKELY(p != NULL)) return p;
  }
  return cgci_alloc_slow(n, CGCI_KIND_ATOMIC, true);
}

void *cgci_alloc(size_t n, int kind, bool may_collect) {
  if (kind == CGCI_KIND_NORMAL && may_collect) return cgc_malloc(n);
  if (kind == CGCI_KIND_ATOMIC && may_collect) return cgc_malloc_atomic(n);
  return cgci_alloc_slow(n, kind, may_collect);
}

/* ---- counters ------------------------------------------------------------- */

/* cgci_thread_flush_counters -- move T's allocation counters into the
 * globals (lock held, or T stopped). */
void cgci_thread_flush_counters(struct cgci_thread *t) {
  cgci_g.alloc_since_gc += (int64_t)t->alloc_bytes - (int64_t)t->freed_bytes;
  cgci_g.st.bytes_allocated += t->alloc_bytes;
  cgci_g.st.objects_allocated += t->alloc_objs;
  cgci_g.st.bytes_freed += t->freed_bytes;
  cgci_g.st.objects_freed += t->freed_objs;
  cgci_g.explicit_freed_objs += t->freed_objs;
  cgci_g.explicit_freed_bytes += t->freed_bytes;
  t->alloc_bytes = t->alloc_objs = t->freed_bytes = t->freed_objs = 0;
}

void cgci_check_trigger_locked(void) {
  if (cgci_g.gc_percent < 0 || cgci_g.disabled > 0) return;
  if (cgci_g.alloc_since_gc >= (int64_t)cgci_g.trigger) cgci_collect_locked("alloc");
}

/* ---- spans ---------------------------------------------------------------- */

static void partial_add(struct cgci_span *s) {
  if (s->flags & CGCI_SF_PARTIAL) return;
  struct cgci_span **head = &cgci_g.partial[s->kind][s->sc];
  s->prev = NULL;
  s->next = *head;
  if (*head) (*head)->prev = s;
  *head = s;
  s->flags |= CGCI_SF_PARTIAL;
}

static void partial_remove(struct cgci_span *s) {
  if (!(s->flags & CGCI_SF_PARTIAL)) return;
  if (s->prev) s->prev->next = s->next;
  else cgci_g.partial[s->kind][s->sc] = s->next;
  if (s->next) s->next->prev = s->prev;
  s->next = s->prev = NULL;
  s->flags &= (uint8_t)~CGCI_SF_PARTIAL;
}

/* cgci_span_release_slot -- clear slot IDX of small span S outside a
 * collection (lock held): the slot becomes free for any thread. */
static void span_release_slot(struct cgci_span *s, uint32_t idx) {
  cgc_assert(cgci_bit_get(s, idx));
  cgci_bit_clear(s, idx);
  if (--s->nmarked == 0) {
    partial_remove(s);
    cgci_pages_free(s);             /* S becomes the free run's descriptor */
  } else {
    partial_add(s);
  }
}

/* new_small_span -- a fresh span for class SC of KIND, all slots free. */
static struct cgci_span *new_small_span(int kind, unsigned sc, bool *zeroed) {
  struct cgci_span *s = cgci_pages_alloc(cgci_g.class_pages[sc], 1, zeroed);
  if (s == NULL) return NULL;
  cgc_assert(cgci_pmark_clear(s));
  s->state = CGCI_SPAN_SMALL;
  s->kind = (uint8_t)kind;
  if (kind == CGCI_KIND_UNCOLL) cgci_uncoll_link(s);
  s->sc = (uint8_t)sc;
  s->slot = cgci_g.class_size[sc];
  s->nobj = (uint32_t)((s->npages << CGCI_PAGE_SHIFT) / s->slot);
  s->magic = (uint32_t)(((uint64_t)1 << 32) / s->slot + 1);
  s->nmarked = 0;
  memset(s->mark, 0, sizeof s->mark);
  size_t p = (s->start - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT;
  for (uint32_t i = 0; i < s->npages; i++) cgci_g.pagemap[p + i] = s;
  return s;
}

/* build_list -- lazy sweep of S: thread every clear slot onto T's list in
 * address order, zeroing scanned slots unless the span is known zero. */
static void build_list(struct cgci_thread *t, struct cgci_span *s, bool zeroed) {
  int kind = s->kind;
  void *head = t->fl[kind][s->sc];
  uint32_t n = 0;
  if (s->nmarked == 0) {
    /* a wholly free span: one memset, then a tight linking loop */
    if (kind == CGCI_KIND_NORMAL && !zeroed) memset((void *)s->start, 0, (size_t)s->nobj * s->slot);
    uintptr_t slot = s->slot;
    for (uintptr_t o = s->start + (uintptr_t)(s->nobj - 1) * slot;; o -= slot) {
      ((uintptr_t *)o)[0] = (uintptr_t)head;
      ((uintptr_t *)o)[1] = o ^ CGCI_FREE_COOKIE;
      head = (void *)o;
      if (o == s->start) break;
    }
    n = s->nobj;
  } else for (int32_t i = (int32_t)s->nobj - 1; i >= 0; i--) {
    if (cgci_bit_get(s, (uint32_t)i)) continue;
    uintptr_t *o = (uintptr_t *)(s->start + (uintptr_t)i * s->slot);
    if (kind == CGCI_KIND_NORMAL && !zeroed) memset(o, 0, s->slot);
    o[0] = (uintptr_t)head;
    o[1] = (uintptr_t)o ^ CGCI_FREE_COOKIE;
    head = o;
    n++;
  }
  for (uint32_t w = 0; w < CGCI_MARK_WORDS; w++) {
    uint32_t lo = w * 64;
    if (lo >= s->nobj) { s->mark[w] = 0; continue; }
    uint32_t cnt = s->nobj - lo;
    s->mark[w] = cnt >= 64 ? ~(uint64_t)0 : (((uint64_t)1 << cnt) - 1);
  }
  s->nmarked = s->nobj;
  t->fl[kind][s->sc] = head;
  t->nfl[kind][s->sc] += n;
}

/* refill -- give T's empty list for (KIND, SC) a span's worth of slots. */
static bool refill(struct cgci_thread *t, int kind, unsigned sc) {
  struct cgci_span *s = cgci_g.partial[kind][sc];
  if (s != NULL) {
    partial_remove(s);
    build_list(t, s, false);
    return true;
  }
  bool zeroed;
  s = new_small_span(kind, sc, &zeroed);
  if (s == NULL) return false;
  build_list(t, s, zeroed);
  return true;
}

/* take_slot -- one object of class SC from a span, without a thread cache
 * (uncollectable objects, unregistered callers).  Lock held. */
static void *take_slot(int kind, unsigned sc) {
  struct cgci_span *s = cgci_g.partial[kind][sc];
  bool zeroed = false;
  if (s == NULL) {
    s = new_small_span(kind, sc, &zeroed);
    if (s == NULL) return NULL;
    partial_add(s);
  }
  uint32_t idx = 0;
  for (uint32_t w = 0; w < CGCI_MARK_WORDS; w++) {
    uint64_t free_bits = ~s->mark[w];
    if (free_bits) { idx = w * 64 + (uint32_t)__builtin_ctzll(free_bits); break; }
  }
  cgc_assert(idx < s->nobj);
  cgci_bit_set(s, idx);
  if (++s->nmarked == s->nobj) partial_remove(s);
  void *p = (void *)(s->start + (uintptr_t)idx * s->slot);
  if (kind != CGCI_KIND_ATOMIC && !zeroed) memset(p, 0, s->slot);
  else ((uintptr_t *)p)[0] = ((uintptr_t *)p)[1] = 0;
  cgci_g.alloc_since_gc += s->slot;
  cgci_g.st.bytes_allocated += s->slot;
  cgci_g.st.objects_allocated++;
  return p;
}

/* alloc_large -- a span of its own for N bytes (lock held). */
static void *alloc_large(size_t n, int kind, size_t align, bool *zeroed) {
  size_t npages = (n + CGCI_PAGE_SIZE - 1) >> CGCI_PAGE_SHIFT;
  size_t align_pages = align > CGCI_PAGE_SIZE ? align >> CGCI_PAGE_SHIFT : 1;
  struct cgci_span *s = cgci_pages_alloc(npages, align_pages, zeroed);
  if (s == NULL) return NULL;
  cgc_assert(cgci_pmark_clear(s));
  s->state = CGCI_SPAN_LARGE;
  s->kind = (uint8_t)kind;
  if (kind == CGCI_KIND_UNCOLL) cgci_uncoll_link(s);
  s->slot = 0;
  s->nobj = 1;
  s->large_bytes = npages << CGCI_PAGE_SHIFT;
  memset(s->mark, 0, sizeof s->mark);
  s->mark[0] = 1;           /* allocated; cleared only by a collection */
  s->nmarked = 1;
  size_t p = (s->start - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT;
  for (size_t i = 0; i < npages; i++) cgci_g.pagemap[p + i] = s;
  cgci_g.alloc_since_gc += (int64_t)s->large_bytes;
  cgci_g.st.bytes_allocated += s->large_bytes;
  cgci_g.large_allocated += s->large_bytes;
  cgci_g.st.objects_allocated++;
  return (void *)s->start;
}

/* out_of_memory -- the end of every failed allocation: hook, then NULL. */
static void *out_of_memory(size_t n) {
  cgc_oom_fn hook = cgci_g.oom_hook;
  if (hook) hook(n);
  errno = ENOMEM;
  return NULL;
}

/* alloc_locked -- one attempt at an object of N bytes (hidden byte
 * included) with alignment ALIGN; lock held. */
static void *alloc_locked(struct cgci_thread *t, size_t need, int kind,
                          size_t align, int sc_forced, bool *zeroed) {
  *zeroed = false;
  if (need <= CGCI_SMALL_MAX && align <= CGCI_PAGE_SIZE) {
    unsigned sc = sc_forced >= 0 ? (unsigned)sc_forced
                                 : cgci_g.size_class[(need + CGCI_GRANULE - 1) >> 4];
    if (t != NULL && kind != CGCI_KIND_UNCOLL) {
      if (t->fl[kind][sc] == NULL && !refill(t, kind, sc)) return NULL;
      *zeroed = true;         /* list objects are ready */
      return pop(t, kind, sc);
    }
    *zeroed = true;
    return take_slot(kind, sc);
  }
  return alloc_large(need, kind, align, zeroed);
}

/* alloc_common -- the slow path shared by every allocation function. */
static void *alloc_common(size_t n, int kind, bool may_collect, size_t align, int sc_forced) {
  cgci_ensure_init();
  struct cgci_thread *t = cgci_self;
  if (t == NULL && cgci_ready()) t = cgci_thread_register_self(0);
  if (n >= cgci_g.heap_reserved) return out_of_memory(n);
  size_t need = n + 1;                        /* the hidden byte (spec 1) */
  void *p;
  bool zeroed;
  cgci_mark_start_helpers();                  /* no-op unless the heap grew */
  /* a collection is near: enumerate data segments now, without the lock */
  if (may_collect && cgci_g.gc_percent >= 0 && cgci_g.disabled == 0 &&
      cgci_g.alloc_since_gc + (int64_t)(t ? t->alloc_bytes : 0) >= (int64_t)cgci_g.trigger &&
      cgci_roots_snapshot_due())
    cgci_roots_snapshot();
  cgci_lock();
  if (t != NULL) cgci_thread_flush_counters(t);
  if (may_collect) cgci_check_trigger_locked();
  p = alloc_locked(t, need, kind, align, sc_forced, &zeroed);
  if (p == NULL && may_collect) {
    /* at the limit: collect, retry, then give up */
    cgci_collect_locked("limit");
    p = alloc_locked(t, need, kind, align, sc_forced, &zeroed);
  }
  cgci_unlock();
  if (CGCI_UNLIKELY(cgci_queue_needs_threads())) cgci_queue_ensure_threads();
  if (p == NULL) return out_of_memory(n);
  if (!zeroed && kind != CGCI_KIND_ATOMIC) {
    struct cgci_span *s = cgci_span_of((uintptr_t)p);
    memset(p, 0, cgci_block_size(s));
  }
  return p;
}

void *cgci_alloc_slow(size_t n, int kind, bool may_collect) {
  return alloc_common(n, kind, may_collect, CGCI_GRANULE, -1);
}

void *cgci_ext_malloc_nogc(size_t n) {
  return alloc_common(n, CGCI_KIND_NORMAL, false, CGCI_GRANULE, -1);
}

void *cgc_malloc_uncollectable(size_t n) {
  return alloc_common(n, CGCI_KIND_UNCOLL, true, CGCI_GRANULE, -1);
}

void *cgc_memalign(size_t align, size_t n) {
  if (align == 0 || (align & (align - 1)) != 0) {
    cgci_error(CGC_EINVAL, "cgc_memalign", "alignment is not a power of two");
    errno = EINVAL;
    return NULL;
  }
  if (align <= CGCI_GRANULE) return cgc_malloc(n);
  cgci_ensure_init();
  if (align <= CGCI_PAGE_SIZE && n + 1 <= CGCI_SMALL_MAX) {
    /* a class whose slots are multiples of ALIGN: spans start on pages */
    for (unsigned c = cgci_g.size_class[(n + CGCI_GRANULE) >> 4]; c < cgci_g.nclasses; c++)
      if (cgci_g.class_size[c] % align == 0)
        return alloc_common(n, CGCI_KIND_NORMAL, true, align, (int)c);
  }
  /* a large object: page-aligned, or aligned runs of pages */
  size_t big = n < CGCI_SMALL_MAX ? CGCI_SMALL_MAX : n;
  return alloc_common(big, CGCI_KIND_NORMAL, true, align, -1);
}

size_t cgci_block_size(struct cgci_span *s) {
  return s->state == CGCI_SPAN_SMALL ? s->slot : s->large_bytes;
}

/* ---- explicit free ---------------------------------------------------------- */

/* flush_surplus -- give half of T's list for (KIND, SC) back to the spans. */
static void flush_surplus(struct cgci_thread *t, int kind, unsigned sc, uint32_t keep) {
  cgci_lock();
  while (t->nfl[kind][sc] > keep) {
    void **p = t->fl[kind][sc];
    t->fl[kind][sc] = p[0];
    t->nfl[kind][sc]--;
    struct cgci_span *s = cgci_span_of((uintptr_t)p);
    span_release_slot(s, cgci_slot_index(s, (uintptr_t)p));
  }
  cgci_unlock();
}

/* cgci_thread_drop_cache -- return every list object of T to its span
 * (thread exit). */
void cgci_thread_drop_cache(struct cgci_thread *t) {
  for (int k = 0; k < 2; k++)
    for (unsigned c = 0; c < cgci_g.nclasses; c++)
      if (t->nfl[k][c]) flush_surplus(t, k, c, 0);
}

int cgci_free(void *p, bool report) {
  if (p == NULL) return CGC_OK;
  uintptr_t a = (uintptr_t)p;
  if (!cgci_ready() || a - cgci_g.heap_lo >= cgci_g.heap_reserved)
    return report ? cgci_error(CGC_ENOTHEAP, "cgc_free", "pointer not in allocated block")
                  : CGC_ENOTHEAP;
  struct cgci_span *s = cgci_span_of(a);
  if (s == NULL)
    return report ? cgci_error(CGC_EINVAL, "cgc_free", "block already freed") : CGC_EINVAL;
  uint32_t idx = 0;
  if (s->state == CGCI_SPAN_SMALL) {
    idx = cgci_slot_index(s, a);
    if (idx >= s->nobj || s->start + (uintptr_t)idx * s->slot != a)
      return report ? cgci_error(CGC_ENOTBASE, "cgc_free", "pointer not at beginning of allocated block")
                    : CGC_ENOTBASE;
    if (!cgci_bit_get(s, idx) || ((uintptr_t *)p)[1] == (a ^ CGCI_FREE_COOKIE))
      return report ? cgci_error(CGC_EINVAL, "cgc_free", "block already freed") : CGC_EINVAL;
  } else if (a != s->start) {
    return report ? cgci_error(CGC_ENOTBASE, "cgc_free", "pointer not at beginning of allocated block")
                  : CGC_ENOTBASE;
  }
  if (s->flags & CGCI_SF_SPECIALS) {
    cgci_lock();
    int r = cgci_specials_on_free(p);
    cgci_unlock();
    if (r == CGC_EBUSY)
      return report ? cgci_error(CGC_EBUSY, "cgc_free", "object has a finalizer") : CGC_EBUSY;
  }
  struct cgci_thread *t = cgci_self;
  if (s->state == CGCI_SPAN_SMALL && s->kind != CGCI_KIND_UNCOLL && t != NULL) {
    int kind = s->kind;
    unsigned sc = s->sc;
    uint32_t slot = s->slot;
    if (kind == CGCI_KIND_NORMAL) memset(p, 0, slot);
    ((uintptr_t *)p)[0] = (uintptr_t)t->fl[kind][sc];
    ((uintptr_t *)p)[1] = a ^ CGCI_FREE_COOKIE;
    t->fl[kind][sc] = p;
    t->freed_bytes += slot;
    t->freed_objs++;
    if (++t->nfl[kind][sc] * (size_t)slot > CGCI_LOCAL_FREE_MAX)
      flush_surplus(t, kind, sc, t->nfl[kind][sc] / 2);
    return CGC_OK;
  }
  cgci_lock();
  size_t bytes = cgci_block_size(s);
  if (s->state == CGCI_SPAN_SMALL) {
    ((uintptr_t *)p)[1] = a ^ CGCI_FREE_COOKIE;
    span_release_slot(s, idx);
  } else {
    cgci_pages_free(s);
  }
  cgci_g.alloc_since_gc -= (int64_t)bytes;
  cgci_g.st.bytes_freed += bytes;
  cgci_g.st.objects_freed++;
  cgci_g.explicit_freed_objs++;
  cgci_g.explicit_freed_bytes += bytes;
  cgci_unlock();
  return CGC_OK;
}

int cgc_free(void *base) { return cgci_free(base, true); }
int cgci_ext_free_quiet(void *p) { return cgci_free(p, false); }

/* ---- the rest of the malloc family ----------------------------------------- */

void *cgc_calloc(size_t n, size_t size) {
  size_t total;
  if (__builtin_mul_overflow(n, size, &total)) {
    cgci_error(CGC_EINVAL, "cgc_calloc", "size overflow");
    errno = ENOMEM;
    return NULL;
  }
  return cgc_malloc(total);         /* scanned objects are always zeroed */
}

char *cgc_strdup(const char *str) {
  if (str == NULL) {
    cgci_error(CGC_EINVAL, "cgc_strdup", "argument is nil");
    return NULL;
  }
  size_t len = strlen(str) + 1;
  char *p = cgc_malloc_atomic(len);
  if (p) memcpy(p, str, len);
  return p;
}

size_t cgc_usable_size(void *p) {
  struct cgci_span *s;
  if (p == NULL || !cgci_ready()) return 0;
  void *base = cgci_find_base((uintptr_t)p, &s, NULL);
  if (base != p) return 0;
  return cgci_block_size(s) - 1;
}

void *cgc_base(void *p) {
  if (p == NULL || !cgci_ready()) return NULL;
  return cgci_find_base((uintptr_t)p, NULL, NULL);
}

void *cgc_realloc(void *p, size_t n) {
  if (p == NULL) return cgc_malloc(n);
  struct cgci_span *s;
  if (!cgci_ready() || cgci_find_base((uintptr_t)p, &s, NULL) != p) {
    int err = !cgci_ready() || cgci_span_of((uintptr_t)p) == NULL ? CGC_ENOTHEAP : CGC_ENOTBASE;
    cgci_error(err, "cgc_realloc", err == CGC_ENOTHEAP ? "pointer not in allocated block"
                                                       : "pointer not at beginning of allocated block");
    return NULL;
  }
  if (n == 0) { cgc_free(p); return NULL; }
  size_t old = cgci_block_size(s) - 1;
  int kind = s->kind;                /* scanned, atomic or uncollectable */
  if (n <= old && (n >= old / 2 || old < 64)) {
    /* shrink in place; clear the dropped tail of a scanned block so stale
     * pointers there keep nothing alive */
    if (kind != CGCI_KIND_ATOMIC) memset((char *)p + n, 0, old - n);
    return p;
  }
  void *q = cgci_alloc(n, kind, true);
  if (q == NULL) return NULL;
  memcpy(q, p, n < old ? n : old);
  cgci_free(p, false);              /* a finalizable block stays in place */
  return q;
}

/* ---- collection control -------------------------------------------------------- */

void cgc_disable(void) { cgci_ensure_init(); cgci_lock(); cgci_g.disabled++; cgci_unlock(); }
void cgc_enable(void) {
  cgci_ensure_init();
  cgci_lock();
  if (cgci_g.disabled > 0) cgci_g.disabled--;
  cgci_unlock();
}

int cgc_set_gc_percent(int percent) {
  cgci_ensure_init();
  cgci_lock();
  int old = cgci_g.gc_percent;
  cgci_g.gc_percent = percent < 0 ? -1 : percent;
  if (percent >= 0) {          /* re-arm the trigger now */
    size_t trig = (size_t)((double)cgci_g.live_bytes * percent / 100.0);
    cgci_g.trigger = trig < cgci_g.min_heap ? cgci_g.min_heap : trig;
  }
  cgci_unlock();
  return old;
}

int cgc_set_heap_limit(size_t bytes) {
  cgci_ensure_init();
  cgci_lock();
  cgci_g.heap_limit = bytes;
  int r = CGC_OK;
  if (bytes != 0 && (cgci_g.pages_in_use << CGCI_PAGE_SHIFT) > bytes) {
    cgci_collect_locked("limit");
    if ((cgci_g.pages_in_use << CGCI_PAGE_SHIFT) > bytes) r = CGC_EINVAL;
  }
  cgci_unlock();
  if (r != CGC_OK) cgci_error(r, "cgc_set_heap_limit", "heap already above the limit");
  return r;
}
