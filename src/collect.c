/* collect.c -- one collection, start to end.
 *
 * Design: docs/design/overview.md.  The caller holds the collector lock.
 *
 *   make sure the snapshot of data segments is fresh (roots.c), take the
 *   queue lock
 *   M0 stop the world
 *      gather thread counters; clear mark bits; mark thread free lists
 *   M1 mark from roots: data segments, registered ranges, stacks, registers,
 *      TLS, uncollectable blocks, finalizer data, cleanup args, weak cells,
 *      queued and in-flight callback entries
 *   M2 scan the contents of finalizable objects without marking them (in
 *      the same walk of the specials as their M1 roots; debug checker
 *      here, when on)
 *   M3 resolve specials: queue finalizers (resurrecting their objects) and
 *      cleanups, clear weak handles
 *   M4 sweep span metadata; return idle free runs to the OS; set the next
 *      trigger
 *   M5 restart the world; wake the callback threads
 *
 * This is the normative algorithm of the specification (section 1.1) with
 * M3 done eagerly inside the pause, so that cgc_collect() returning means
 * every callback it discovered is queued and cgc_weak_get never needs to
 * sweep.
 */
#include "core/internal.h"
#include "core/ext.h"
#include <string.h>

struct cycle {
  uint64_t t0, t_stopped, t_marked, t_end;
  size_t heap_before, list_objs, list_bytes;
};

static size_t heap_bytes(void) {
  return (cgci_g.pages_in_use + cgci_g.pages_free_committed) << CGCI_PAGE_SHIFT;
}

/* mark_lists -- objects on thread free lists are owned: set their bits
 * (.inv.lists), never scan them. */
static void mark_lists(struct cycle *c) {
  for (struct cgci_thread *t = cgci_g.threads; t; t = t->next)
    for (int k = 0; k < 2; k++)
      for (unsigned sc = 0; sc < cgci_g.nclasses; sc++)
        for (void **p = t->fl[k][sc]; p; p = p[0]) {
          struct cgci_span *s = cgci_span_of((uintptr_t)p);
          cgci_bit_set(s, cgci_slot_index(s, (uintptr_t)p));
          c->list_objs++;
          c->list_bytes += s->slot;
        }
}

/* peak_floor -- .pace.peak: a budget that lets the heap grow back to the
 * highest level it reached recently before the next collection.  The
 * pages of that peak were already resident once, so the process's peak
 * footprint was already paid for; collecting far below it, as a program
 * that built a big temporary structure and dropped it would otherwise do,
 * spends processor time without lowering that peak.  The floor is the
 * heap the program really reached (live + allocated at a collection),
 * counted only up to the goal the GOGC rule had set itself, so a heap
 * that grows to the floor does not renew the floor; it halves every
 * peak_halflife_ns, so memory a program no longer needs is collected and
 * given back within seconds.  Returns the budget: TRIG, or the room up to
 * the floor if that is more. */
static size_t peak_floor(const struct cycle *c, size_t live, size_t trig, uint64_t reached) {
  uint64_t half = cgci_g.peak_halflife_ns;
  /* counted only up to the goal the GOGC rule set last time; nothing when
   * it set none (the first collection, or pacing was off: a heap grown
   * with collections off is not a level this rule let it reach) */
  if (reached > cgci_g.prev_goal) reached = cgci_g.prev_goal;
  cgci_g.prev_goal = cgci_g.gc_percent < 0 ? 0 : live + trig;
  if (half == 0 || cgci_g.gc_percent < 0) return trig;
  size_t floor = cgci_g.peak;
  uint64_t age = c->t_stopped - cgci_g.peak_ns;
  if (floor != 0) {
    uint64_t n = age / half;                  /* whole half-lives, then linear */
    floor = n >= 64 ? 0 : floor >> n;
    floor -= (size_t)((double)floor * (double)(age % half) / (double)half / 2.0);
  }
  if (reached >= floor) {
    cgci_g.peak = (size_t)reached;
    cgci_g.peak_ns = c->t_stopped;
    floor = (size_t)reached;
  }
  return floor > live && floor - live > trig ? floor - live : trig;
}

static void do_collect(struct cycle *c) {
  c->heap_before = heap_bytes();
  cgci_stop_world();
  cgci_mark_alert();             /* helpers wake while the roots are scanned */
  c->t_stopped = cgci_os_now_ns();
  cgci_os_pagemap_begin();       /* for scanning big blocks sparsely */
  for (struct cgci_thread *t = cgci_g.threads; t; t = t->next) cgci_thread_flush_counters(t);
  cgci_cycle_fin_queued = cgci_cycle_cln_queued = 0;
  cgci_g.bytes_marked = 0;

  cgci_sweep_clear_marks();
  mark_lists(c);
  /* M1, with M2 folded into the walk of the specials */
  cgci_roots_mark_all();
  cgci_specials_mark_roots();
  cgci_queue_mark_roots();
  cgci_mark_drain();
  cgci_mark_recover_overflow(true);
  if (cgci_g.cfg.checkfinalizers > 0) cgci_checker_run();
  /* M3 */
  cgci_specials_resolve();
  if (cgci_g.gc_hook) {
    cgci_g.in_gc_hook = 1;
    cgci_g.gc_hook();
    cgci_g.in_gc_hook = 0;
  }
  c->t_marked = cgci_os_now_ns();
  /* M4 */
  uint64_t objs_before = cgci_g.live_objs + (cgci_g.st.objects_allocated - cgci_g.objs_alloc_mark)
                         - (cgci_g.explicit_freed_objs - cgci_g.objs_freed_mark);
  uint64_t bytes_before = cgci_g.live_bytes + (cgci_g.st.bytes_allocated - cgci_g.bytes_alloc_mark)
                          - (cgci_g.explicit_freed_bytes - cgci_g.bytes_freed_mark);
  /* the small-object part of it, for the peak floor: large blocks are
   * often not touched in full, so their bytes say little about the
   * resident heap (explicitly freed large blocks are subtracted twice,
   * which only lowers the floor) */
  uint64_t large_before = cgci_g.live_large + (cgci_g.large_allocated - cgci_g.large_alloc_mark);
  uint64_t small_before = bytes_before > large_before ? bytes_before - large_before : 0;
  cgci_g.large_alloc_mark = cgci_g.large_allocated;
  cgci_sweep();
  /* objects sitting on free lists are not live */
  cgci_g.live_objs -= c->list_objs < cgci_g.live_objs ? c->list_objs : cgci_g.live_objs;
  cgci_g.live_bytes -= c->list_bytes < cgci_g.live_bytes ? c->list_bytes : cgci_g.live_bytes;
  if (objs_before > cgci_g.live_objs) cgci_g.st.objects_freed += objs_before - cgci_g.live_objs;
  if (bytes_before > cgci_g.live_bytes) cgci_g.st.bytes_freed += bytes_before - cgci_g.live_bytes;
  cgci_g.objs_alloc_mark = cgci_g.st.objects_allocated;
  cgci_g.bytes_alloc_mark = cgci_g.st.bytes_allocated;
  cgci_g.objs_freed_mark = cgci_g.explicit_freed_objs;
  cgci_g.bytes_freed_mark = cgci_g.explicit_freed_bytes;
  cgci_g.st.collections++;

  /* pacing: GOGC-style goal, no lower than the minimum heap, and early
   * enough to stay under a hard limit */
  size_t live = cgci_g.live_bytes;
  /* The budget follows the mean live size of this cycle and the previous
   * one: a collection that happens to land on a momentary peak of the live
   * heap (a big temporary structure almost built) would otherwise double
   * the heap for the cycles after it.  Roots count too (as in Go since
   * 1.18): scanning them is part of every collection's cost, so a program
   * with large data segments or deep stacks collects less often.  Not the
   * anonymous mappings scanned under the malloc shim, though: they are
   * another allocator's heap (Python's arenas, say), and counting them
   * would grow this heap in proportion to that one. */
  size_t basis = cgci_g.prev_live != 0 ? live / 2 + cgci_g.prev_live / 2 : live;
  basis += cgci_g.root_bytes_paced;
  cgci_g.prev_live = live;
  size_t trig = cgci_g.gc_percent < 0 ? SIZE_MAX / 2
                                      : (size_t)((double)basis * cgci_g.gc_percent / 100.0);
  if (trig < cgci_g.min_heap) trig = cgci_g.min_heap;
  trig = peak_floor(c, live, trig, small_before);
  if (cgci_g.heap_limit) {
    size_t room = cgci_g.heap_limit > live ? cgci_g.heap_limit - live : 0;
    if (trig > room / 2 + (room / 4)) trig = room / 2 + room / 4;
    if (trig < ((size_t)256 << 10)) trig = (size_t)256 << 10;
  }
  cgci_g.trigger = trig;
  /* Keep resident the free memory the next cycle will want: the budget,
   * plus an eighth for the free slots of partly used spans, which the
   * budget counts but which take no pages (without it, every cycle gives
   * back a few runs and faults them in again).  With pacing off, never
   * more than the live heap (or the minimum heap). */
  size_t keep = trig + trig / 8;
  size_t cap = live > cgci_g.min_heap ? live : cgci_g.min_heap;
  if (cgci_g.gc_percent < 0) keep = trig < cap ? trig : cap;
  cgci_pages_release_old(keep);
  cgci_g.alloc_since_gc = 0;
  cgci_g.st.bytes_marked_total += cgci_g.bytes_marked;

  cgci_os_pagemap_end();
  cgci_mark_quiesce();
  cgci_start_world();
  c->t_end = cgci_os_now_ns();
}

void cgci_collect_locked(const char *reason) {
  struct cgci_thread *self = cgci_self;
  if (self && self->in_collect) return;          /* no recursion */
  struct cycle c;
  memset(&c, 0, sizeof c);
  (void)reason;                  /* for a debugger's backtrace */
  c.t0 = cgci_os_now_ns();
  if (self) self->in_collect = 1;
  if (cgci_roots_snapshot_stale()) cgci_roots_snapshot();   /* rare here */
  cgci_queue_lock();
  cgci_roots_lock();
  cgci_meta_lock();              /* held through the pause: see pages.c */
  cgci_meta_nolock(1);
  do_collect(&c);
  cgci_meta_nolock(0);
  cgci_meta_unlock();
  cgci_roots_unlock();
  cgci_queue_unlock();
  if (self) self->in_collect = 0;

  uint64_t pause = c.t_end - c.t_stopped + (c.t_stopped - c.t0);
  uint64_t mark = c.t_marked - c.t_stopped, sweep = c.t_end - c.t_marked;
  cgci_g.st.pause_total_ns += pause;
  if (pause > cgci_g.st.pause_max_ns) cgci_g.st.pause_max_ns = pause;
  cgci_g.st.mark_ns_total += mark;
  cgci_g.st.sweep_ns_total += sweep;
  if (cgci_g.trace) {
    /* callbacks that ran since the previous collection */
    uint64_t fr = cgci_g.st.finalizers_run - cgci_g.trace_fin_run;
    uint64_t cr = cgci_g.st.cleanups_run - cgci_g.trace_cln_run;
    cgci_g.trace_fin_run = cgci_g.st.finalizers_run;
    cgci_g.trace_cln_run = cgci_g.st.cleanups_run;
    cgci_trace_cycle(cgci_g.st.collections, pause, mark, sweep, c.heap_before,
                     heap_bytes(), cgci_g.live_bytes + cgci_g.trigger, cgci_g.nthreads,
                     cgci_g.root_bytes, cgci_cycle_fin_queued, fr, cgci_cycle_cln_queued, cr);
  }
  if (cgci_g.cfg.checkfinalizers > 0) {
    cgci_checker_report();
    cgci_log("cgc checkfinalizers: finalizers queued=%zu cleanups queued=%zu\n",
             cgci_queue_len_fin(), cgci_queue_len_cln());
  }
  if (cgci_cycle_fin_queued || cgci_cycle_cln_queued) cgci_queue_wake();
}

void cgci_ext_set_gc_hook(cgci_gc_hook_fn fn) {
  cgci_ensure_init();
  cgci_lock();
  cgci_g.gc_hook = fn;
  cgci_unlock();
}
