/* mark.c -- the mark phase: set the mark bit of every block reachable from
 * the roots, conservatively.
 *
 * Design: docs/design/mark.md.  Runs only with the world stopped and the
 * collector lock held; never allocates from the collected heap.
 *
 * .inv.pushed: a NORMAL block is pushed on the mark stack exactly when its
 *   bit goes from clear to set; ATOMIC blocks are marked, never pushed.
 * .inv.uncoll: bits of UNCOLL spans are their allocation map and are never
 *   set or cleared here; their blocks are scanned as roots (roots.c).
 * .inv.done: when the stack is empty and mstack_overflow is clear, every
 *   block reachable from a scanned range is marked.
 * .overflow: when the stack cannot grow, the push is dropped (the block is
 *   already marked) and mstack_overflow is set; cgci_mark_recover_overflow
 *   then rescans every marked block, which restores .inv.done.  Each round
 *   scans at least the dropped blocks, so it terminates.
 * .assume.align: words are read at 8-byte alignment; a pointer stored
 *   unaligned is not seen (documented limit).
 */
#include "core/internal.h"
#include <string.h>

void cgci_mark_init(void) {
  cgci_g.mstack_cap = CGCI_MSTACK_INIT < cgci_g.mstack_max ? CGCI_MSTACK_INIT : cgci_g.mstack_max;
  cgci_g.mstack = cgci_os_map(cgci_g.mstack_cap * sizeof(struct cgci_markent));
  if (cgci_g.mstack == NULL) cgci_fatal("cannot map the mark stack");
}

static CGCI_NOINLINE bool mstack_grow(void) {
  if (cgci_g.mstack_cap >= cgci_g.mstack_max) return false;
  size_t ncap = cgci_g.mstack_cap * 2;
  if (ncap > cgci_g.mstack_max) ncap = cgci_g.mstack_max;
  void *p = cgci_os_remap(cgci_g.mstack, cgci_g.mstack_cap * sizeof(struct cgci_markent),
                          ncap * sizeof(struct cgci_markent));
  if (p == NULL) return false;
  cgci_g.mstack = p;
  cgci_g.mstack_cap = ncap;
  return true;
}

static inline void push(uintptr_t lo, uintptr_t hi) {
  if (CGCI_UNLIKELY(cgci_g.mstack_top == cgci_g.mstack_cap) && !mstack_grow()) {
    cgci_g.mstack_overflow = 1;
    return;
  }
  struct cgci_markent *e = &cgci_g.mstack[cgci_g.mstack_top++];
  e->lo = lo;
  e->hi = hi;
}

void cgci_mark_push(uintptr_t lo, uintptr_t hi) { if (hi > lo) push(lo, hi); }

/* mark_one -- the candidate pointer W: mark and push the block it points
 * into, if any.  Kept small: it runs for every word scanned. */
static inline void mark_one(uintptr_t w, uintptr_t heap_lo, size_t heap_used,
                            struct cgci_span **pagemap) {
  uintptr_t off = w - heap_lo;
  if (off >= heap_used) return;
  struct cgci_span *s = pagemap[off >> CGCI_PAGE_SHIFT];
  if (s == NULL) return;
  if (CGCI_LIKELY(s->state == CGCI_SPAN_SMALL)) {
    uint32_t idx = cgci_slot_index(s, w);
    if (idx >= s->nobj) return;
    uint64_t bit = (uint64_t)1 << (idx & 63);
    uint64_t *mw = &s->mark[idx >> 6];
    if (*mw & bit) return;
    if (s->kind == CGCI_KIND_UNCOLL) return;           /* .inv.uncoll */
    *mw |= bit;
    cgci_g.bytes_marked += s->slot;
    if (s->kind == CGCI_KIND_NORMAL) {
      uintptr_t base = s->start + (uintptr_t)idx * s->slot;
      push(base, base + s->slot);
    }
  } else if (s->state == CGCI_SPAN_LARGE) {
    if ((s->mark[0] & 1) || s->kind == CGCI_KIND_UNCOLL) return;
    s->mark[0] = 1;
    cgci_g.bytes_marked += s->large_bytes;
    if (s->kind == CGCI_KIND_NORMAL) push(s->start, s->start + s->large_bytes);
  }
}

void cgci_mark_word(uintptr_t w) {
  mark_one(w, cgci_g.heap_lo, cgci_g.heap_used, cgci_g.pagemap);
}

/* scan -- every aligned word of [LO, HI) is a candidate pointer. */
static inline void scan(uintptr_t lo, uintptr_t hi) {
  uintptr_t heap_lo = cgci_g.heap_lo;
  size_t heap_used = cgci_g.heap_used;
  struct cgci_span **pagemap = cgci_g.pagemap;
  const uintptr_t *p = (const uintptr_t *)((lo + 7) & ~(uintptr_t)7);
  const uintptr_t *end = (const uintptr_t *)(hi & ~(uintptr_t)7);
  for (; p < end; p++) {
    uintptr_t w = *p;
    if (w - heap_lo < heap_used) mark_one(w, heap_lo, heap_used, pagemap);
  }
}

/* cgci_mark_range -- scan a root range now (roots are never pushed, so a
 * huge root range cannot overflow the stack). */
void cgci_mark_range(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo) return;
  scan(lo, hi);
}

/* cgci_mark_drain -- scan until the stack is empty.  Popped entries pass
 * through a small FIFO after a prefetch of their first line, so by the
 * time an object is scanned its memory is (usually) in cache: marking is
 * bound by cache misses, and this hides most of them. */
#define PREFETCH_RING 32
void cgci_mark_drain(void) {
  struct cgci_markent ring[PREFETCH_RING];
  unsigned head = 0, n = 0;
  for (;;) {
    if (cgci_g.mstack_top > 0 && n < PREFETCH_RING) {
      struct cgci_markent e = cgci_g.mstack[--cgci_g.mstack_top];
      __builtin_prefetch((const void *)e.lo);
      ring[(head + n) % PREFETCH_RING] = e;
      n++;
      continue;
    }
    if (n == 0) break;
    struct cgci_markent e = ring[head];
    head = (head + 1) % PREFETCH_RING;
    n--;
    if (e.hi - e.lo > CGCI_SCAN_CHUNK) {
      push(e.lo + CGCI_SCAN_CHUNK, e.hi);      /* rest later */
      e.hi = e.lo + CGCI_SCAN_CHUNK;
    }
    scan(e.lo, e.hi);
  }
}

/* cgci_mark_object -- mark BASE (a block start) and push its contents if
 * it is scanned.  Returns true if it was not marked before. */
bool cgci_mark_object(void *base) {
  struct cgci_span *s = cgci_span_of((uintptr_t)base);
  if (s == NULL) return false;
  bool was = cgci_is_marked((uintptr_t)base);
  cgci_mark_word((uintptr_t)base);
  return !was;
}

bool cgci_is_marked(uintptr_t base) {
  struct cgci_span *s = cgci_span_of(base);
  if (s == NULL) return false;
  if (s->state == CGCI_SPAN_LARGE) return s->mark[0] & 1;
  uint32_t idx = cgci_slot_index(s, base);
  return idx < s->nobj && cgci_bit_get(s, idx);
}

int cgci_ext_is_marked(const void *base) {
  return cgci_ready() && cgci_is_marked((uintptr_t)base);
}

/* rescan_span -- push the contents of every marked block of S, draining as
 * we go so the stack stays small. */
static void rescan_span(struct cgci_span *s, void *ctx) {
  (void)ctx;
  if (s->kind == CGCI_KIND_ATOMIC) return;
  if (s->state == CGCI_SPAN_LARGE) {
    if (s->mark[0] & 1) { push(s->start, s->start + s->large_bytes); cgci_mark_drain(); }
    return;
  }
  for (uint32_t i = 0; i < s->nobj; i++)
    if (cgci_bit_get(s, i)) {
      uintptr_t b = s->start + (uintptr_t)i * s->slot;
      push(b, b + s->slot);
      cgci_mark_drain();
    }
}

void cgci_mark_recover_overflow(bool with_finalizable) {
  while (cgci_g.mstack_overflow) {
    cgci_g.mstack_overflow = 0;
    cgci_g.st_overflows++;
    cgci_each_span(rescan_span, NULL);
    if (with_finalizable) cgci_specials_mark_finalizable();
    cgci_mark_drain();
  }
}
