/* sweep.c -- the end of a collection: turn mark bits into free space.
 *
 * Design: docs/design/sweep.md.  Runs with the world stopped and the lock
 * held.  Sweeping here touches only span descriptors, never object memory:
 *
 *   - a small span with no marked slot goes back to the page heap;
 *   - a small span with some clear slots goes on its class's partial list,
 *     where the allocator's lazy sweep (alloc.c build_list) will zero and
 *     reuse the slots when a thread needs them;
 *   - an unmarked large object's pages go back to the page heap.
 *
 * So the pause pays O(spans), and object memory is touched only when it is
 * about to be reused.  Free runs that stay unused are returned to the OS
 * by cgci_pages_release_old().
 *
 * .inv.partial: after cgci_sweep, a small span is on partial[kind][sc] iff
 *   0 < nmarked < nobj.
 */
#include "core/internal.h"
#include <string.h>

/* cgci_each_span_in -- call FN on every SMALL and LARGE span of the runs
 * that start in pages [P, END), in address order; P is the first page of a
 * run (.inv.runs).  FN may free the span it is given. */
void cgci_each_span_in(size_t p, size_t end, cgci_span_fn fn, void *ctx) {
  while (p < end) {
    struct cgci_span *s = cgci_g.pagemap[p];
    cgc_assert(s != NULL);                       /* .inv.runs */
    size_t n = s->npages;
    if (s->state != CGCI_SPAN_FREE) {
      fn(s, ctx);
      /* FN may have freed S: cgci_pages_free keeps S as the descriptor of
       * the merged free run, which may extend past the old end */
      if (s->state == CGCI_SPAN_FREE)
        n = ((s->start - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT) + s->npages - p;
    }
    p += n;
  }
}

void cgci_each_span(cgci_span_fn fn, void *ctx) {
  cgci_each_span_in(0, cgci_g.heap_used >> CGCI_PAGE_SHIFT, fn, ctx);
}

static void clear_span(struct cgci_span *s, void *ctx) {
  (void)ctx;
  if (s->kind == CGCI_KIND_UNCOLL) return;       /* bits = allocation */
  memset(s->mark, 0, sizeof s->mark);
}

void cgci_sweep_clear_marks(void) { cgci_mark_each_span(clear_span); }

struct sweep_ctx { size_t live_bytes, live_objs, freed_bytes, freed_objs, live_large; };

static void sweep_span(struct cgci_span *s, void *vctx) {
  struct sweep_ctx *c = vctx;
  if (s->state == CGCI_SPAN_LARGE) {
    if (s->mark[0] & 1) {
      c->live_bytes += s->large_bytes;
      c->live_large += s->large_bytes;
      c->live_objs++;
    } else {
      c->freed_bytes += s->large_bytes;
      c->freed_objs++;
      cgci_pages_free(s);
    }
    return;
  }
  uint32_t n = 0;
  for (int w = 0; w < CGCI_MARK_WORDS; w++) n += (uint32_t)__builtin_popcountll(s->mark[w]);
  s->nmarked = n;
  c->live_bytes += (size_t)n * s->slot;
  c->live_objs += n;
  s->flags &= (uint8_t)~CGCI_SF_PARTIAL;
  s->next = s->prev = NULL;
  if (n == 0) {
    cgci_pages_free(s);
  } else if (n < s->nobj) {
    struct cgci_span **head = &cgci_g.partial[s->kind][s->sc];
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
    s->flags |= CGCI_SF_PARTIAL;
  }
}

/* cgci_sweep -- rebuild the partial lists, free empty spans, count. */
void cgci_sweep(void) {
  memset(cgci_g.partial, 0, sizeof cgci_g.partial);
  struct sweep_ctx c = {0, 0, 0, 0, 0};
  cgci_each_span(sweep_span, &c);
  cgci_g.live_bytes = c.live_bytes;
  cgci_g.live_large = c.live_large;
  cgci_g.live_objs = c.live_objs;
}
