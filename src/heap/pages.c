/* pages.c -- the page heap, the page map, size classes and meta memory.
 *
 * Design: docs/design/heap.md.  All functions here run with the collector
 * lock held (or during initialisation), except cgci_find_base, which only
 * reads the page map and may run anywhere.
 *
 * .inv.runs: every run of pages below the frontier (heap_used) is exactly
 *   one span: SMALL, LARGE or FREE.  pagemap[first page of a run] is its
 *   descriptor.  Every page of a SMALL or LARGE span maps to it; of a FREE
 *   run only the first and the last page do, the others map to NULL.
 * .inv.freeflags: a FREE run is either wholly released to the OS (RELEASED)
 *   or wholly resident; runs of different kinds are never merged, so the
 *   heap size (pages in use + resident free pages) is exact.
 * .inv.buckets: a FREE run of n pages is on free_runs[n] if
 *   n <= CGCI_FREE_BUCKETS, else on free_runs[CGCI_FREE_BUCKETS] ("big").
 */
#include "core/internal.h"
#include <string.h>

/* ---- meta memory --------------------------------------------------------
 * A reserved range committed from the low end.  Small requests are bump
 * allocated and never freed (callers pool them); page-granular requests can
 * be freed onto a first-fit list and are reused. */

static pthread_mutex_t meta_mu = PTHREAD_MUTEX_INITIALIZER;
struct bigfree { struct bigfree *next; size_t bytes; };
static struct bigfree *big_free;   /* meta memory, not heap */

/* meta_bump -- BYTES at ALIGN from the low end.  Small metadata is
 * pre-faulted (one madvise per MiB instead of a fault per page); big
 * blocks (the shim's tables, most of which a program never touches) are
 * committed without faulting them in. */
static void *meta_bump(size_t bytes, size_t align) {
  uintptr_t p = (cgci_g.meta_lo + cgci_g.meta_used + align - 1) & ~(uintptr_t)(align - 1);
  size_t end = p + bytes - cgci_g.meta_lo;
  if (end > cgci_g.meta_reserved) cgci_fatal("metadata reserve exhausted");
  if (end > cgci_g.meta_committed) {
    /* metadata is pre-faulted (cgci_os_commit), so commit it in small steps */
    size_t step = (size_t)1 << 20;
    size_t want = (end + step - 1) & ~(step - 1);
    if (want > cgci_g.meta_reserved) want = cgci_g.meta_reserved;
    if (!cgci_os_commit((void *)(cgci_g.meta_lo + cgci_g.meta_committed),
                        want - cgci_g.meta_committed, bytes < ((size_t)256 << 10)))
      cgci_fatal("cannot commit metadata memory");
    cgci_g.meta_committed = want;
  }
  cgci_g.meta_used = end;
  return (void *)p;
}

/* The meta lock during a collection.  A mutator can be stopped while it
 * holds meta_mu (it publishes data-segment snapshots without the collector
 * lock), so the collector takes meta_mu *before* stopping the world and
 * holds it through the pause (cgci_meta_lock/cgci_meta_hold).  Code that
 * runs in the pause -- the collecting thread and the helper markers, which
 * serialise among themselves with their own lock -- then uses meta memory
 * without taking meta_mu again (meta_nolock). */
static __thread int meta_nolock;

void cgci_meta_lock(void) { pthread_mutex_lock(&meta_mu); }
void cgci_meta_unlock(void) { pthread_mutex_unlock(&meta_mu); }
void cgci_meta_nolock(int on) { meta_nolock = on; }

static inline void meta_enter(void) { if (!meta_nolock) pthread_mutex_lock(&meta_mu); }
static inline void meta_leave(void) { if (!meta_nolock) pthread_mutex_unlock(&meta_mu); }
void cgci_meta_atfork_child(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  meta_mu = m;
}

void *cgci_meta_alloc(size_t bytes) {
  meta_enter();
  void *p = meta_bump((bytes + 15) & ~(size_t)15, 16);
  meta_leave();
  return p;    /* fresh meta memory is zero */
}

void *cgci_meta_alloc_aligned(size_t bytes, size_t align) {
  meta_enter();
  void *p = meta_bump((bytes + align - 1) & ~(align - 1), align);
  meta_leave();
  return p;
}

void *cgci_meta_alloc_big(size_t bytes) {
  bytes = (bytes + CGCI_PAGE_SIZE - 1) & ~(CGCI_PAGE_SIZE - 1);
  meta_enter();
  struct bigfree **pp = &big_free, *b;
  while ((b = *pp) != NULL && b->bytes < bytes) pp = &b->next;
  void *p;
  if (b != NULL) {
    *pp = b->next;
    if (b->bytes > bytes) {          /* keep the tail */
      struct bigfree *t = (struct bigfree *)((char *)b + bytes);
      t->bytes = b->bytes - bytes;
      t->next = big_free;
      big_free = t;
    }
    p = b;
    memset(p, 0, sizeof *b);         /* rest was zeroed when freed */
  } else {
    p = meta_bump(bytes, CGCI_PAGE_SIZE);
  }
  meta_leave();
  return p;
}

void cgci_meta_free_big(void *p, size_t bytes) {
  bytes = (bytes + CGCI_PAGE_SIZE - 1) & ~(CGCI_PAGE_SIZE - 1);
  cgci_os_release(p, bytes);         /* reads as zero from now on */
  meta_enter();
  struct bigfree *b = p;
  b->bytes = bytes;
  b->next = big_free;
  big_free = b;
  meta_leave();
}

void *cgci_ext_map(size_t bytes) { cgci_ensure_init(); return cgci_meta_alloc_big(bytes); }
/* (the shim calls these from mutator threads, which never have meta_nolock
 * set: they block on meta_mu while a collection holds it) */
void cgci_ext_unmap(void *p, size_t bytes) { if (p) cgci_meta_free_big(p, bytes); }

/* ---- span descriptors ---------------------------------------------------- */

struct cgci_span *cgci_span_new(void) {
  struct cgci_span *s = cgci_g.span_pool;
  if (s != NULL) {
    cgci_g.span_pool = s->next;
    memset(s, 0, sizeof *s);
    return s;
  }
  return cgci_meta_alloc_aligned(sizeof *s, 64);
}

void cgci_span_dispose(struct cgci_span *s) {
  s->state = CGCI_SPAN_FREE;
  s->next = cgci_g.span_pool;
  cgci_g.span_pool = s;
}

/* ---- initialisation ------------------------------------------------------ */

void cgci_heap_init(void) {
  size_t reserve = CGCI_HEAP_RESERVE;
  const char *e = cgci_os_getenv("CGC_HEAP_RESERVE");
  if (e != NULL) {
    size_t v = cgci_parse_size(e);
    if (v >= ((size_t)64 << 20)) reserve = v;
  }
  reserve &= ~(CGCI_COMMIT_STEP - 1);
  void *heap = NULL;
  while (heap == NULL && reserve >= ((size_t)64 << 20)) {
    heap = cgci_os_reserve(reserve + CGCI_HUGE_ALIGN);
    if (heap == NULL) reserve /= 2;
  }
  if (heap == NULL) cgci_fatal("cannot reserve address space for the heap");
  /* huge-page aligned, so that every 2 MiB of heap can be one huge page
   * (the slop below stays reserved and unused) */
  cgci_g.heap_lo = ((uintptr_t)heap + CGCI_HUGE_ALIGN - 1) & ~(uintptr_t)(CGCI_HUGE_ALIGN - 1);
  cgci_g.heap_reserved = reserve;
  size_t pm_bytes = (reserve >> CGCI_PAGE_SHIFT) * sizeof(struct cgci_span *);
  cgci_g.pagemap = cgci_os_reserve(pm_bytes);
  if (cgci_g.pagemap == NULL) cgci_fatal("cannot reserve the page map");
  size_t meta = CGCI_META_RESERVE;
  void *m = NULL;
  while (m == NULL && meta >= ((size_t)256 << 20)) {
    m = cgci_os_reserve(meta);
    if (m == NULL) meta /= 2;
  }
  if (m == NULL) cgci_fatal("cannot reserve metadata address space");
  cgci_g.meta_lo = (uintptr_t)m;
  cgci_g.meta_reserved = meta;
}

/* cgci_sizeclass_init -- granule classes to 128 bytes, then four classes
 * per doubling to CGCI_SMALL_MAX (waste per object under 20%).  A span of a
 * class has at most CGCI_MAX_OBJS slots and the most pages up to
 * CGCI_SPAN_PAGES that waste at most 1/16 of the span; when no such size
 * wastes that little, the fewest pages up to 8 that do.  Big spans
 * spread the fixed costs of a span (a page-heap allocation and free, a
 * descriptor visited by every walk of the spans in each collection, a
 * refill) over more objects. */
_Static_assert(CGCI_SPAN_PAGES >= 1 && CGCI_SPAN_PAGES <= 8, "a small span has 1 to 8 pages");

void cgci_sizeclass_init(void) {
  uint32_t n = 0, sz = 16;
  while (sz <= CGCI_SMALL_MAX && n < CGCI_NCLASSES) {
    cgci_g.class_size[n++] = sz;
    uint32_t step = sz < 128 ? 16 : sz / 4;
    if (sz >= 128) step = (uint32_t)1 << (31 - __builtin_clz(sz)) >> 2;
    sz += step;
  }
  cgci_g.nclasses = n;
  for (uint32_t c = 0; c < n; c++) {
    uint32_t size = cgci_g.class_size[c], best = 0;
    for (uint32_t np = 1; np <= 8; np++) {
      if (np > CGCI_SPAN_PAGES && best != 0) break;
      uint32_t bytes = np * (uint32_t)CGCI_PAGE_SIZE;
      if (bytes / size > CGCI_MAX_OBJS) break;
      if (bytes < size || (bytes % size) * 16 > bytes) continue;    /* waste > 1/16 */
      best = np;
    }
    cgc_assert(best != 0);           /* every class meets the goal (unit.sizeclass) */
    cgci_g.class_pages[c] = best;
  }
  /* size_class[g] for a request needing g granules (with the hidden byte) */
  uint32_t c = 0;
  for (uint32_t g = 0; g <= CGCI_SMALL_MAX / CGCI_GRANULE; g++) {
    uint32_t bytes = g * CGCI_GRANULE;
    while (c < n && cgci_g.class_size[c] < bytes) c++;
    cgci_g.size_class[g] = (uint8_t)(c < n ? c : n - 1);
  }
  cgci_g.size_class[0] = 0;
}

/* ---- page heap ----------------------------------------------------------- */

static size_t page_no(uintptr_t addr) {
  return (addr - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT;
}

static unsigned bucket_of(size_t npages) {
  return npages <= CGCI_FREE_BUCKETS ? (unsigned)npages : CGCI_FREE_BUCKETS;
}

static void run_unlink(struct cgci_span *r) {
  if (r->prev) r->prev->next = r->next;
  else cgci_g.free_runs[bucket_of(r->npages)] = r->next;
  if (r->next) r->next->prev = r->prev;
  r->next = r->prev = NULL;
}

static void run_link(struct cgci_span *r) {
  unsigned b = bucket_of(r->npages);
  r->prev = NULL;
  r->next = cgci_g.free_runs[b];
  if (r->next) r->next->prev = r;
  cgci_g.free_runs[b] = r;
}

/* run_mark_bounds -- .inv.runs for a FREE run. */
static void run_mark_bounds(struct cgci_span *r) {
  size_t p = page_no(r->start);
  cgci_g.pagemap[p] = r;
  cgci_g.pagemap[p + r->npages - 1] = r;
}

static void run_insert(struct cgci_span *r) {
  r->state = CGCI_SPAN_FREE;
  run_mark_bounds(r);
  run_link(r);
  if (!(r->flags & CGCI_SF_RELEASED)) cgci_g.pages_free_committed += r->npages;
}

static void run_remove(struct cgci_span *r) {
  run_unlink(r);
  if (!(r->flags & CGCI_SF_RELEASED)) cgci_g.pages_free_committed -= r->npages;
  size_t p = page_no(r->start);
  cgci_g.pagemap[p] = NULL;
  cgci_g.pagemap[p + r->npages - 1] = NULL;
}

/* grow_frontier -- make NPAGES fresh pages at the frontier into a run. */
static struct cgci_span *grow_frontier(size_t npages) {
  size_t bytes = npages << CGCI_PAGE_SHIFT;
  if (cgci_g.heap_used + bytes > cgci_g.heap_reserved) return NULL;
  size_t end = cgci_g.heap_used + bytes;
  if (end > cgci_g.heap_committed) {
    size_t want = (end + CGCI_COMMIT_STEP - 1) & ~(CGCI_COMMIT_STEP - 1);
    if (want > cgci_g.heap_reserved) want = cgci_g.heap_reserved;
    if (!cgci_os_commit((void *)(cgci_g.heap_lo + cgci_g.heap_committed),
                        want - cgci_g.heap_committed, false))
      return NULL;
    /* From CGC_HUGEPAGES bytes of heap on, ask for transparent huge pages:
     * marking a big heap is bound by TLB misses as much as by cache
     * misses.  Below that the 2 MiB fault granularity would cost small
     * programs RSS.  The first time, the whole committed heap. */
    if (cgci_g.huge_min != 0 && want >= cgci_g.huge_min) {
      size_t from = cgci_g.huge_on ? cgci_g.heap_committed : 0;
      cgci_os_hugepages((void *)(cgci_g.heap_lo + from), want - from);
      cgci_g.huge_on = 1;
    }
    /* the page map grows with the heap */
    size_t pm_lo = ((cgci_g.heap_committed >> CGCI_PAGE_SHIFT) * sizeof(void *)) & ~(CGCI_PAGE_SIZE - 1);
    size_t pm_hi = ((want >> CGCI_PAGE_SHIFT) * sizeof(void *) + CGCI_PAGE_SIZE - 1) & ~(CGCI_PAGE_SIZE - 1);
    if (!cgci_os_commit((char *)cgci_g.pagemap + pm_lo, pm_hi - pm_lo, false)) return NULL;
    cgci_g.heap_committed = want;
  }
  /* Populate fresh pages for small spans ahead, a step at a time: on the
   * benchmark machine (a virtual machine) a page fault costs 10.5 us per
   * 4 KiB page and populating it 5.3 us, and a small span is written whole
   * as soon as it is taken (the allocator's lazy sweep).  Large blocks
   * fault on touch: a program may never touch all of one.  At most one
   * step of populated pages waits beyond the frontier. */
  if (CGCI_POPULATE_STEP != 0 && npages <= CGCI_POPULATE_MAX_PAGES &&
      end > cgci_g.heap_populated) {
    size_t from = cgci_g.heap_populated > cgci_g.heap_used ? cgci_g.heap_populated : cgci_g.heap_used;
    size_t want = (end + CGCI_POPULATE_STEP - 1) & ~(CGCI_POPULATE_STEP - 1);
    if (want > cgci_g.heap_committed) want = cgci_g.heap_committed;
    cgci_os_populate((void *)(cgci_g.heap_lo + from), want - from);
    cgci_g.heap_populated = want;
  }
  struct cgci_span *r = cgci_span_new();
  r->start = cgci_g.heap_lo + cgci_g.heap_used;
  r->npages = (uint32_t)npages;
  r->flags = CGCI_SF_ZEROED;
  r->state = CGCI_SPAN_FREE;
  r->free_gc = cgci_g.st.collections;
  cgci_g.heap_used = end;
  return r;
}

/* split_front -- R is unlinked; keep its first N pages in R and return the
 * rest to the free lists. */
static void split_front(struct cgci_span *r, size_t n) {
  if (r->npages == n) return;
  struct cgci_span *rest = cgci_span_new();
  rest->start = r->start + (n << CGCI_PAGE_SHIFT);
  rest->npages = (uint32_t)(r->npages - n);
  rest->flags = r->flags & (CGCI_SF_ZEROED | CGCI_SF_RELEASED);
  rest->free_gc = r->free_gc;
  r->npages = (uint32_t)n;
  run_insert(rest);
}

/* find_run -- a free run of at least NEED pages: resident runs before
 * released ones (a released run costs a page fault per page); exact
 * buckets first, then best fit, lowest address on ties, among big runs. */
static struct cgci_span *find_run_kind(size_t need, bool released) {
  for (size_t b = need; b < CGCI_FREE_BUCKETS; b++)
    for (struct cgci_span *r = cgci_g.free_runs[b]; r; r = r->next)
      if (((r->flags & CGCI_SF_RELEASED) != 0) == released) return r;
  struct cgci_span *best = NULL;
  for (struct cgci_span *r = cgci_g.free_runs[CGCI_FREE_BUCKETS]; r; r = r->next) {
    if (r->npages < need || ((r->flags & CGCI_SF_RELEASED) != 0) != released) continue;
    if (best == NULL || r->npages < best->npages ||
        (r->npages == best->npages && r->start < best->start))
      best = r;
  }
  return best;
}

static struct cgci_span *find_run(size_t need) {
  struct cgci_span *r = find_run_kind(need, false);
  return r ? r : find_run_kind(need, true);
}

/* cgci_pages_alloc -- a run of NPAGES pages whose start is aligned to
 * ALIGN_PAGES pages (a power of two, 1 for none), as a span descriptor
 * whose state the caller sets.  *ZEROED tells whether every byte is zero.
 * NULL when the heap limit or the reservation is reached. */
struct cgci_span *cgci_pages_alloc(size_t npages, size_t align_pages, bool *zeroed) {
  if (cgci_g.heap_limit != 0 &&
      ((cgci_g.pages_in_use + npages) << CGCI_PAGE_SHIFT) > cgci_g.heap_limit)
    return NULL;
  size_t need = npages + (align_pages > 1 ? align_pages - 1 : 0);
  struct cgci_span *r = find_run(need);
  if (r != NULL) {
    run_remove(r);
  } else {
    /* extend the frontier */
    r = grow_frontier(need);
    if (r == NULL) return NULL;
  }
  if (align_pages > 1) {
    uintptr_t a = align_pages << CGCI_PAGE_SHIFT;
    uintptr_t off = (a - (r->start & (a - 1))) & (a - 1);
    if (off != 0) {
      size_t pre = off >> CGCI_PAGE_SHIFT;
      struct cgci_span *head = cgci_span_new();
      head->start = r->start;
      head->npages = (uint32_t)pre;
      head->flags = r->flags & (CGCI_SF_ZEROED | CGCI_SF_RELEASED);
      head->free_gc = r->free_gc;
      r->start += off;
      r->npages -= (uint32_t)pre;
      run_insert(head);
    }
  }
  split_front(r, npages);
  *zeroed = (r->flags & CGCI_SF_ZEROED) != 0;
  /* released pages taken for a small span: populate them in one call
   * rather than fault them in one by one (see grow_frontier) */
  if (CGCI_POPULATE_STEP != 0 && (r->flags & CGCI_SF_RELEASED) && npages <= CGCI_POPULATE_MAX_PAGES)
    cgci_os_populate((void *)r->start, npages << CGCI_PAGE_SHIFT);
  r->flags = 0;
  r->next = r->prev = NULL;
  cgci_g.pages_in_use += npages;
  return r;
}

/* cgci_uncoll_link -- S has just become a SMALL or LARGE span of UNCOLL
 * kind: its blocks are roots, found through this list (roots.c) rather
 * than a walk of every span.  cgci_pages_free unlinks it. */
void cgci_uncoll_link(struct cgci_span *s) {
  s->uc_prev = NULL;
  s->uc_next = cgci_g.uncoll;
  if (s->uc_next) s->uc_next->uc_prev = s;
  cgci_g.uncoll = s;
}

/* cgci_pages_free -- S's pages become a free run, merged with free
 * neighbours of the same residency (.inv.freeflags). */
void cgci_pages_free(struct cgci_span *s) {
  size_t p = page_no(s->start), n = s->npages;
  if (s->state != CGCI_SPAN_FREE && s->kind == CGCI_KIND_UNCOLL) {
    cgc_assert(s->uc_prev != NULL || cgci_g.uncoll == s);     /* listed */
    if (s->uc_prev) s->uc_prev->uc_next = s->uc_next; else cgci_g.uncoll = s->uc_next;
    if (s->uc_next) s->uc_next->uc_prev = s->uc_prev;
    s->uc_next = s->uc_prev = NULL;
  }
  cgci_g.pages_in_use -= n;
  for (size_t i = 0; i < n; i++) cgci_g.pagemap[p + i] = NULL;
  s->state = CGCI_SPAN_FREE;
  s->flags = 0;
  s->free_gc = cgci_g.st.collections;
  s->next = s->prev = NULL;
  if (p > 0) {
    struct cgci_span *l = cgci_g.pagemap[p - 1];
    if (l && l->state == CGCI_SPAN_FREE && !(l->flags & CGCI_SF_RELEASED)) {
      run_remove(l);
      s->start = l->start;
      s->npages += l->npages;
      if (l->free_gc < s->free_gc) s->free_gc = l->free_gc;
      cgci_span_dispose(l);
    }
  }
  size_t after = page_no(s->start) + s->npages;
  if (after < (cgci_g.heap_used >> CGCI_PAGE_SHIFT)) {
    struct cgci_span *r = cgci_g.pagemap[after];
    if (r && r->state == CGCI_SPAN_FREE && !(r->flags & CGCI_SF_RELEASED)) {
      run_remove(r);
      s->npages += r->npages;
      if (r->free_gc < s->free_gc) s->free_gc = r->free_gc;
      cgci_span_dispose(r);
    }
  }
  run_insert(s);
}

/* merge_released -- R (unlinked, just released) joins its released
 * neighbours and goes back on the free lists. */
static void merge_released(struct cgci_span *r) {
  size_t p = page_no(r->start);
  if (p > 0) {
    struct cgci_span *l = cgci_g.pagemap[p - 1];
    if (l && l->state == CGCI_SPAN_FREE && (l->flags & CGCI_SF_RELEASED)) {
      run_remove(l);
      r->start = l->start;
      r->npages += l->npages;
      cgci_span_dispose(l);
    }
  }
  size_t after = page_no(r->start) + r->npages;
  if (after < (cgci_g.heap_used >> CGCI_PAGE_SHIFT)) {
    struct cgci_span *n = cgci_g.pagemap[after];
    if (n && n->state == CGCI_SPAN_FREE && (n->flags & CGCI_SF_RELEASED)) {
      run_remove(n);
      r->npages += n->npages;
      cgci_span_dispose(n);
    }
  }
  run_insert(r);
}

/* cgci_pages_release_old -- return idle free runs to the OS, keeping
 * KEEP_BYTES of resident free memory: the allocation budget until the next
 * collection, which would otherwise be faulted straight back in.  Runs free
 * for at least release_age collections go first, then younger ones if there
 * is still too much.  Candidates are gathered first: two resident free runs
 * are never adjacent (cgci_pages_free merges them), so releasing one never
 * disposes of another candidate. */
void cgci_pages_release_old(size_t keep_bytes) {
  uint64_t now = cgci_g.st.collections;
  size_t keep = keep_bytes >> CGCI_PAGE_SHIFT;
  for (int pass = 0; pass < 2 && cgci_g.pages_free_committed > keep; pass++) {
    struct cgci_span *cand = NULL;
    for (unsigned b = 0; b <= CGCI_FREE_BUCKETS; b++)
      for (struct cgci_span *r = cgci_g.free_runs[b]; r; r = r->next)
        if (!(r->flags & CGCI_SF_RELEASED) &&
            (pass == 1 || r->free_gc + cgci_g.release_age <= now)) {
          r->rel_next = cand;
          cand = r;
        }
    while (cand != NULL && cgci_g.pages_free_committed > keep) {
      struct cgci_span *r = cand;
      cand = r->rel_next;
      run_remove(r);
      size_t excess = cgci_g.pages_free_committed + r->npages - keep;
      if (r->npages > excess) {
        /* release only the tail; the head stays resident */
        struct cgci_span *head = cgci_span_new();
        head->start = r->start;
        head->npages = (uint32_t)(r->npages - excess);
        head->flags = r->flags;
        head->free_gc = r->free_gc;
        r->start += (uintptr_t)head->npages << CGCI_PAGE_SHIFT;
        r->npages = (uint32_t)excess;
        run_insert(head);
      }
      cgci_os_release((void *)r->start, (size_t)r->npages << CGCI_PAGE_SHIFT);
      cgci_g.st.bytes_released += (uint64_t)r->npages << CGCI_PAGE_SHIFT;
      r->flags |= CGCI_SF_RELEASED | CGCI_SF_ZEROED;
      merge_released(r);
    }
  }
}

/* ---- pointer lookup ------------------------------------------------------ */

void *cgci_find_base(uintptr_t addr, struct cgci_span **span_out, uint32_t *idx_out) {
  struct cgci_span *s = cgci_span_of(addr);
  if (s == NULL) return NULL;
  uint32_t idx = 0;
  uintptr_t base;
  if (s->state == CGCI_SPAN_SMALL) {
    idx = cgci_slot_index(s, addr);
    if (idx >= s->nobj || !cgci_bit_get(s, idx)) return NULL;
    base = s->start + (uintptr_t)idx * s->slot;
    /* a slot on a free list has its bit set but carries the free cookie */
    if (((const uintptr_t *)base)[1] == (base ^ CGCI_FREE_COOKIE)) return NULL;
  } else {
    if (addr - s->start >= s->large_bytes) return NULL;
    base = s->start;
  }
  if (span_out) *span_out = s;
  if (idx_out) *idx_out = idx;
  return (void *)base;
}
