/* mark.c -- the mark phase: set the mark bit of every block reachable from
 * the roots, conservatively, on one or several threads.
 *
 * Design: docs/design/mark.md.  Runs only with the world stopped and the
 * collector lock held; never allocates from the collected heap.
 *
 * .inv.pushed: a NORMAL block is pushed on some mark stack when its bit
 *   goes from clear to set (in parallel marking two markers may both see it
 *   clear and push it twice: harmless, the scan is idempotent); ATOMIC
 *   blocks are marked, never pushed.
 * .inv.uncoll: bits of UNCOLL spans are their allocation map and are never
 *   set or cleared here; their blocks are scanned as roots (roots.c).
 * .inv.done: when every mark stack is empty and no overflow is pending,
 *   every block reachable from a scanned range is marked.
 * .overflow: when a stack cannot grow, the push is dropped (the block is
 *   already marked) and the overflow flag is set; cgci_mark_recover_overflow
 *   then rescans every marked block, which restores .inv.done.  Each round
 *   scans at least the dropped blocks, so it terminates.
 * .assume.align: words are read at 8-byte alignment; a pointer stored
 *   unaligned is not seen (documented limit).
 *
 * Parallel marking.  Roots are scanned by the collecting thread into its
 * own stack.  Draining then runs on up to CGC_MARKERS threads (default: the
 * number of CPUs, at most 8) when the heap is large enough to pay for
 * waking them: each marker drains its own stack and, when another marker
 * is waiting for work, hands over the oldest half of its stack (the roots
 * of the biggest unexplored subgraphs) through a shared pool of chunks.
 * Marking ends when no marker is active and the pool is empty.
 *
 * .par.priv: a locked instruction per marked object (compare-and-swap on
 *   the shared mark word) drains the store buffer and stops later loads
 *   from overtaking it, which costs about a fifth of the parallel mark
 *   rate.  So in a parallel phase each marker reads and writes the shared
 *   mark word with plain (relaxed) accesses, and also sets the bit in
 *   private words of its own that no other thread touches: markers 0 and
 *   1 in the span descriptor's second line (pmark), next to the shared
 *   word's line, markers 2 and up in a table of their own indexed like the
 *   page map.  Two markers writing the same word at once can lose one's
 *   bit in the shared word; the only effect during the phase is that some
 *   marker may see that object as unmarked and scan it again (harmless,
 *   as above).  When the phase ends, with every helper parked,
 *   merge_private ORs the private words into the shared ones and clears them, so
 *   every object any marker pushed is marked again (.inv.pushed).
 */
#include "core/internal.h"
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Each marker on cache lines of its own: top and bytes change at every
 * push and pop, and markers run on different cores. */
struct __attribute__((aligned(128))) marker {
  struct cgci_markent *stack;     /* own mapping */
  size_t top, cap;
  void *tstack;                   /* helper's thread stack, own mapping */
  size_t tstack_bytes;
  size_t bytes;                   /* bytes marked by this marker */
  uint64_t *priv;                 /* .par.priv table of markers >= CGCI_DESC_MARKERS:
                                     CGCI_MARK_WORDS per page */
  int overflow;
};

#define MAX_MARKERS 8
#ifdef CGCI_TEST_LOST_MARKS
_Static_assert(CGCI_TEST_MARKERS == MAX_MARKERS, "test counter array");
#endif
#define CHUNK 128
#define PREFETCH_RING 32          /* a power of two */
#define PAR_MIN_HEAP ((size_t)8 << 20)    /* CGC_PAR_MIN_HEAP overrides */
/* How long a marker out of work spins before it sleeps, and how long an
 * alerted helper spins waiting for its phase to start.  Waking a sleeping
 * thread costs tens of microseconds (more in a virtual machine), which is
 * the length of a whole hand-over on a small heap; the world is stopped,
 * so the spinning takes no processor from the program. */
#define SPIN_WORK_NS ((uint64_t)50 * 1000)
#define SPIN_START_NS ((uint64_t)2 * 1000 * 1000)

struct chunk { struct chunk *next; size_t n; struct cgci_markent e[CHUNK]; };

static struct marker markers[MAX_MARKERS];   /* [0]: the collecting thread */

#ifdef CGCI_TEST_LOST_MARKS
AO_t cgci_test_lost_marks[CGCI_TEST_MARKERS];  /* shared stores dropped, by marker */
AO_t cgci_test_helper_delay_ns;                /* a woken helper sleeps this long */
#endif

static struct {
  pthread_mutex_t mu;
  pthread_cond_t work;            /* pool not empty, or phase over */
  pthread_cond_t start;           /* a parallel phase begins */
  pthread_cond_t done;            /* all helpers parked */
  struct chunk *full, *spare;     /* shared work, recycled chunks */
  AO_t nfull;                     /* chunks on FULL: read while spinning */
  volatile int waiting;           /* markers waiting for work */
  AO_t active;                    /* markers working in this phase */
  int parked;                     /* helpers parked between phases */
  AO_t phase;                     /* incremented per parallel phase */
  unsigned alert;                 /* incremented by cgci_mark_alert */
  AO_t pausing;                   /* between cgci_mark_alert and cgci_mark_quiesce */
  int nhelpers;                   /* started helper threads */
  int nmarkers;                   /* wanted, including the collector */
  size_t min_heap;                /* heap size that starts the helpers */
  int disabled;                   /* during overflow recovery */
  int spans;                      /* this phase walks spans, not marks */
  AO_t span_claim;                /* ... (parts << 32) | next part to claim */
  AO_t span_done;                 /* ... parts walked */
  cgci_span_fn span_fn;           /* ... calling this on each span */
  size_t span_pages;              /* ... of pages [0, span_pages) */
} par = { .mu = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
          .start = PTHREAD_COND_INITIALIZER, .done = PTHREAD_COND_INITIALIZER };

static void marker_init(struct marker *m) {
  m->cap = CGCI_MSTACK_INIT < cgci_g.mstack_max ? CGCI_MSTACK_INIT : cgci_g.mstack_max;
  m->stack = cgci_os_map(m->cap * sizeof(struct cgci_markent));
  if (m->stack == NULL) cgci_fatal("cannot map a mark stack");
  m->top = 0;
}

void cgci_mark_init(void) {
  marker_init(&markers[0]);
  cgci_g.mstack = markers[0].stack;
  cgci_g.mstack_cap = markers[0].cap;
  const char *e = cgci_os_getenv("CGC_MARKERS");
  int n = cgci_os_ncpu();
  if (e != NULL) { n = 0; for (; *e >= '0' && *e <= '9'; e++) n = n * 10 + (*e - '0'); }
  if (n < 1) n = 1;
  if (n > MAX_MARKERS) n = MAX_MARKERS;
  par.nmarkers = n;
  par.min_heap = PAR_MIN_HEAP;
  if ((e = cgci_os_getenv("CGC_PAR_MIN_HEAP")) != NULL) par.min_heap = cgci_parse_size(e);
}

static CGCI_NOINLINE bool mstack_grow(struct marker *m) {
  if (m->cap >= cgci_g.mstack_max) return false;
  size_t ncap = m->cap * 2;
  if (ncap > cgci_g.mstack_max) ncap = cgci_g.mstack_max;
  void *p = cgci_os_remap(m->stack, m->cap * sizeof(struct cgci_markent),
                          ncap * sizeof(struct cgci_markent));
  if (p == NULL) return false;
  m->stack = p;
  m->cap = ncap;
  if (m == &markers[0]) { cgci_g.mstack = p; cgci_g.mstack_cap = ncap; }
  return true;
}

static inline void push(struct marker *m, uintptr_t lo, uintptr_t hi) {
  if (CGCI_UNLIKELY(m->top == m->cap) && !mstack_grow(m)) {
    m->overflow = 1;
    return;
  }
  struct cgci_markent *e = &m->stack[m->top++];
  e->lo = lo;
  e->hi = hi;
}

void cgci_mark_push(uintptr_t lo, uintptr_t hi) { if (hi > lo) push(&markers[0], lo, hi); }

/* set_bit -- set BIT in *W; false if it was already set.  PAR: other
 * markers run at the same time (.par.priv): the shared word is accessed
 * relaxed, and the bit also goes into PRIV, this marker's own copy of
 * the word. */
static inline bool set_bit(uint64_t *w, uint64_t bit, const bool par_, uint64_t *priv,
                           const struct marker *m) {
  (void)m;
  if (!par_) {
    uint64_t old = *w;
    if (old & bit) return false;
    *w = old | bit;
    return true;
  }
  AO_t *aw = (AO_t *)(void *)w;
  uint64_t old = (uint64_t)AO_load(aw);
  if (old & bit) return false;
#ifdef CGCI_TEST_LOST_MARKS
  /* fault injection for the unit tests (check_parmark): lose one shared
   * store in CGCI_TEST_LOST_MARKS, as a racing marker could */
  static _Thread_local unsigned tick;
  if (++tick % CGCI_TEST_LOST_MARKS == 0) AO_fetch_and_add1(&cgci_test_lost_marks[m - markers]);
  else
#endif
  AO_store(aw, (AO_t)(old | bit));
  *priv |= bit;
  return true;
}

/* priv_word -- marker MID's .par.priv copy of mark word K of span S: in
 * the descriptor for markers 0 and 1, else in the marker's table TAB.
 * The descriptor's second line is next to the first, which the marker
 * has just read; a table entry is on a line of its own, usually a cache
 * miss on a big heap (the 1 GiB tree heap, 2 markers: 3.24 GB/s with the
 * table, 3.81 with the descriptor, medians of 8 interleaved runs). */
static inline uint64_t *priv_word(uint64_t *tab, int mid, struct cgci_span *s, uintptr_t heap_lo,
                                  uint32_t k) {
  if (tab == NULL) return &s->pmark[mid][k];
  return &tab[((s->start - heap_lo) >> CGCI_PAGE_SHIFT) * CGCI_MARK_WORDS + k];
}

/* push_large -- a large block's contents.  A big one is pushed as the
 * runs of pages the program has touched: the rest reads as zero, and
 * reading it would fault it in (see cgci_os_each_touched).  When the stack
 * cannot take another run, the last free entry takes everything from that
 * run to the end of the block, so a sparse block never overflows the
 * stack by itself (.overflow recovery pushes blocks one at a time onto an
 * empty stack and must make progress). */
struct large_ctx { struct marker *m; uintptr_t end; bool full; };

static void push_run(uintptr_t lo, uintptr_t hi, void *ctx) {
  struct large_ctx *c = ctx;
  if (c->full) return;
  if (c->m->top + 1 >= c->m->cap && !mstack_grow(c->m)) {
    c->full = true;
    hi = c->end;
  }
  push(c->m, lo, hi);
}

static CGCI_NOINLINE void push_large(struct marker *m, const struct cgci_span *s) {
  uintptr_t lo = s->start, hi = s->start + s->large_bytes;
  struct large_ctx c = {m, hi, false};
  if (s->large_bytes < CGCI_SPARSE_MIN || !cgci_os_each_touched(lo, hi, push_run, &c))
    push(m, lo, hi);
}

/* mark_one -- the candidate pointer W: mark and push the block it points
 * into, if any.  Kept small: it runs for every word scanned. */
static inline void mark_one(struct marker *m, uintptr_t w, uintptr_t heap_lo, size_t heap_used,
                            struct cgci_span **pagemap) {
  uintptr_t off = w - heap_lo;
  if (off >= heap_used) return;
  struct cgci_span *s = pagemap[off >> CGCI_PAGE_SHIFT];
  if (s == NULL) return;
  if (CGCI_LIKELY(s->state == CGCI_SPAN_SMALL)) {
    uint32_t idx = cgci_slot_index(s, w);
    if (idx >= s->nobj) return;
    if (s->kind == CGCI_KIND_UNCOLL) return;           /* .inv.uncoll */
    if (!set_bit(&s->mark[idx >> 6], (uint64_t)1 << (idx & 63), false, NULL, m)) return;
    m->bytes += s->slot;
    if (s->kind == CGCI_KIND_NORMAL) {
      uintptr_t base = s->start + (uintptr_t)idx * s->slot;
      push(m, base, base + s->slot);
    }
  } else if (s->state == CGCI_SPAN_LARGE) {
    if (s->kind == CGCI_KIND_UNCOLL) return;
    if (!set_bit(&s->mark[0], 1, false, NULL, m)) return;
    m->bytes += s->large_bytes;
    if (s->kind == CGCI_KIND_NORMAL) push_large(m, s);
  }
}

void cgci_mark_word(uintptr_t w) {
  mark_one(&markers[0], w, cgci_g.heap_lo, cgci_g.heap_used, cgci_g.pagemap);
}

/* scan -- every aligned word of [LO, HI) is a candidate pointer (roots;
 * drain_local has its own copy of this loop). */
static inline void scan(struct marker *m, uintptr_t lo, uintptr_t hi) {
  uintptr_t heap_lo = cgci_g.heap_lo;
  size_t heap_used = cgci_g.heap_used;
  struct cgci_span **pagemap = cgci_g.pagemap;
  const uintptr_t *p = (const uintptr_t *)((lo + 7) & ~(uintptr_t)7);
  const uintptr_t *end = (const uintptr_t *)(hi & ~(uintptr_t)7);
  for (; p < end; p++) {
    uintptr_t w = *p;
    if (w - heap_lo < heap_used) mark_one(m, w, heap_lo, heap_used, pagemap);
  }
}

/* cgci_mark_range -- scan a root range now (roots are never pushed, so a
 * huge root range cannot overflow the stack). */
void cgci_mark_range(uintptr_t lo, uintptr_t hi) {
  if (hi <= lo) return;
  scan(&markers[0], lo, hi);
}

/* share -- hand the oldest half of M's stack to the pool (PAR.mu not
 * held).  Oldest entries root the largest unexplored parts of the graph. */
static CGCI_NOINLINE void share(struct marker *m) {
  size_t give = m->top / 2;
  if (give == 0) return;
  if (give > CHUNK) give = CHUNK;
  pthread_mutex_lock(&par.mu);
  struct chunk *c = par.spare;
  if (c) par.spare = c->next;
  else c = cgci_meta_alloc(sizeof *c);
  memcpy(c->e, m->stack, give * sizeof c->e[0]);
  c->n = give;
  c->next = par.full;
  par.full = c;
  AO_store(&par.nfull, AO_load(&par.nfull) + 1);
  pthread_cond_signal(&par.work);
  pthread_mutex_unlock(&par.mu);
  memmove(m->stack, m->stack + give, (m->top - give) * sizeof m->stack[0]);
  m->top -= give;
}

/* drain_local -- scan until M's stack is empty.  Popped entries pass
 * through a small FIFO after a prefetch of their first line, so by the
 * time an object is scanned its memory is (usually) in cache: marking is
 * bound by cache misses, and this hides most of them.
 *
 * This is mark_one and scan folded into one loop, with the stack pointer,
 * top, capacity and the marked-byte count in locals: through M they would
 * be stored and reloaded at every push (the compiler cannot tell the
 * stack's entries from M's fields).  Every slow path (a full stack, a
 * large block, handing work over) writes TOP back to M first and reloads
 * all three after. */
static inline __attribute__((always_inline)) void drain_local(struct marker *m, const bool par_,
                                                              const bool tab_) {
  const uintptr_t heap_lo = cgci_g.heap_lo;
  const size_t heap_used = cgci_g.heap_used;
  struct cgci_span **const pagemap = cgci_g.pagemap;
  uint64_t *const priv = tab_ ? m->priv : NULL;      /* NULL: in the descriptor */
  const int mid = (int)(m - markers);
  struct cgci_markent *stack = m->stack;
  size_t top = m->top, cap = m->cap, bytes = 0;
  struct cgci_markent ring[PREFETCH_RING];
  unsigned head = 0, n = 0, tick = 0;
#define RELOAD() (stack = m->stack, top = m->top, cap = m->cap)
  for (;;) {
    if (top > 0 && n < PREFETCH_RING) {
      /* Two 8-byte loads, not one 16-byte copy: the entry on top was
       * usually pushed a moment ago by two 8-byte stores, and a load that
       * needs data from two pending stores cannot be forwarded from them;
       * it waits until they reach the cache.  The empty asm keeps the
       * compiler from merging the loads into one vector load
       * (.perf.forward). */
      --top;
      uintptr_t lo = stack[top].lo, hi = stack[top].hi;
      __asm__("" : "+r"(lo), "+r"(hi));
      __builtin_prefetch((const void *)lo);
      /* a small object may straddle two lines (a 48-byte slot does half
       * the time): fetch its last line too.  Without a test for "same
       * line": for 48-byte slots that branch goes either way at random,
       * and a second prefetch of a line already asked for costs less
       * than a mispredicted branch. */
      if (hi - lo <= 256) __builtin_prefetch((const void *)(hi - 1));
      ring[(head + n) % PREFETCH_RING].lo = lo;
      ring[(head + n) % PREFETCH_RING].hi = hi;
      n++;
      continue;
    }
    if (n == 0) break;
    struct cgci_markent e = ring[head];
    head = (head + 1) % PREFETCH_RING;
    n--;
    if (e.hi - e.lo > CGCI_SCAN_CHUNK) {           /* rest later */
      m->top = top;
      push(m, e.lo + CGCI_SCAN_CHUNK, e.hi);
      RELOAD();
      e.hi = e.lo + CGCI_SCAN_CHUNK;
    }
    const uintptr_t *p = (const uintptr_t *)((e.lo + 7) & ~(uintptr_t)7);
    const uintptr_t *end = (const uintptr_t *)(e.hi & ~(uintptr_t)7);
    for (; p < end; p++) {
      uintptr_t w = *p, off = w - heap_lo;
      if (off >= heap_used) continue;
      struct cgci_span *s = pagemap[off >> CGCI_PAGE_SHIFT];
      if (s == NULL) continue;
      if (CGCI_LIKELY(s->state == CGCI_SPAN_SMALL)) {
        uint32_t idx = cgci_slot_index(s, w);
        if (idx >= s->nobj || s->kind == CGCI_KIND_UNCOLL) continue;   /* .inv.uncoll */
        if (!set_bit(&s->mark[idx >> 6], (uint64_t)1 << (idx & 63), par_,
                     par_ ? priv_word(priv, mid, s, heap_lo, idx >> 6) : NULL, m)) continue;
        uintptr_t slot = s->slot;
        bytes += slot;
        if (s->kind != CGCI_KIND_NORMAL) continue;
        if (CGCI_UNLIKELY(top == cap)) {
          m->top = top;
          bool grown = mstack_grow(m);
          RELOAD();
          if (!grown) { m->overflow = 1; continue; }             /* .overflow */
        }
        uintptr_t base = s->start + (uintptr_t)idx * slot;
        stack[top].lo = base;
        stack[top].hi = base + slot;
        top++;
      } else if (s->state == CGCI_SPAN_LARGE) {
        if (s->kind == CGCI_KIND_UNCOLL ||
            !set_bit(&s->mark[0], 1, par_, par_ ? priv_word(priv, mid, s, heap_lo, 0) : NULL, m)) continue;
        bytes += s->large_bytes;
        if (s->kind != CGCI_KIND_NORMAL) continue;
        m->top = top;
        push_large(m, s);
        RELOAD();
      }
    }
    if (par_ && (++tick & 63) == 0 && par.waiting > 0 && top >= 2) {
      m->top = top;
      share(m);
      RELOAD();
    }
  }
#undef RELOAD
  m->top = top;
  m->bytes += bytes;
}

static CGCI_NOINLINE void drain_single(struct marker *m) { drain_local(m, false, false); }
static CGCI_NOINLINE void drain_parallel_desc(struct marker *m) { drain_local(m, true, false); }
static CGCI_NOINLINE void drain_parallel_table(struct marker *m) { drain_local(m, true, true); }

/* take -- move a chunk from the pool to M's stack (PAR.mu held). */
static void take(struct marker *m) {
  struct chunk *c = par.full;
  par.full = c->next;
  AO_store(&par.nfull, AO_load(&par.nfull) - 1);
  while (m->top + c->n > m->cap && mstack_grow(m)) { }
  size_t n = c->n;
  if (m->top + n > m->cap) { m->overflow = 1; n = m->cap - m->top; }
  memcpy(m->stack + m->top, c->e, n * sizeof c->e[0]);
  m->top += n;
  c->next = par.spare;
  par.spare = c;
}

/* spin_until -- spin for at most NS nanoseconds or until DONE(ARG). */
static bool spin_until(bool (*done)(unsigned), unsigned arg, uint64_t ns) {
  uint64_t t0 = 0;
  for (unsigned i = 0;; i++) {
    if (done(arg)) return true;
    __builtin_ia32_pause();
    if ((i & 63) == 0) {
      uint64_t now = cgci_os_now_ns();
      if (t0 == 0) t0 = now;
      else if (now - t0 >= ns) return false;
    }
  }
}

static bool work_or_end(unsigned arg) {
  (void)arg;
  return AO_load(&par.nfull) > 0 || AO_load(&par.active) == 0;
}

/* work -- one marker's part of a parallel phase. */
static void work(struct marker *m) {
  for (;;) {
    if (m - markers < CGCI_DESC_MARKERS) drain_parallel_desc(m);
    else drain_parallel_table(m);
    pthread_mutex_lock(&par.mu);
    if (par.full) { take(m); pthread_mutex_unlock(&par.mu); continue; }
    AO_store(&par.active, AO_load(&par.active) - 1);
    if (AO_load(&par.active) == 0) {        /* everyone is out of work */
      pthread_cond_broadcast(&par.work);
      pthread_mutex_unlock(&par.mu);
      return;
    }
    par.waiting++;
    pthread_mutex_unlock(&par.mu);
    (void)spin_until(work_or_end, 0, SPIN_WORK_NS);
    pthread_mutex_lock(&par.mu);
    while (par.full == NULL && AO_load(&par.active) > 0) pthread_cond_wait(&par.work, &par.mu);
    par.waiting--;
    if (par.full == NULL) { pthread_mutex_unlock(&par.mu); return; }
    AO_store(&par.active, AO_load(&par.active) + 1);
    take(m);
    pthread_mutex_unlock(&par.mu);
  }
}

/* phase_started -- a phase after SEEN has begun, or the collection is
 * over: a helper spinning in wait for the next phase must not go on
 * spinning into the program's time once the world is restarted (with
 * as many busy mutator threads as processors, that time is theirs). */
static bool phase_started(unsigned seen) {
  return (unsigned)AO_load(&par.phase) != seen || AO_load(&par.pausing) == 0;
}

/* run_start_from -- the first page at or after P that starts a run (or
 * END).  Interior pages of a free run map to NULL; of a SMALL or LARGE
 * span, to a descriptor that starts before them. */
static size_t run_start_from(size_t p, size_t end) {
  for (; p < end; p++) {
    struct cgci_span *s = cgci_g.pagemap[p];
    if (s != NULL && s->start == cgci_g.heap_lo + (p << CGCI_PAGE_SHIFT)) return p;
  }
  return end;
}

/* span_parts -- claim parts of the current span walk and walk them until
 * none is left.  The walk is cut into SPAN_PARTS_PER_MARKER parts per
 * marker, claimed one at a time, so that a marker that starts late (a
 * helper whose processor was idle takes milliseconds to wake in a virtual
 * machine) or is descheduled midway leaves its share to the others
 * instead of holding up the pause.  Part K is the runs that start in
 * pages [start(K * size), start((K + 1) * size)), start() being the
 * first run start at or after a page: the parts cover every run once.
 * The fields are read only after a successful claim: a claimed part keeps
 * its walk from ending, so they are that walk's. */
#define SPAN_PARTS_PER_MARKER 16
static void span_parts(void) {
  for (;;) {
    AO_t v = AO_load(&par.span_claim);
    unsigned parts = (unsigned)(v >> 32), k = (unsigned)v;
    if (k >= parts) return;
    if (!AO_compare_and_swap_full(&par.span_claim, v, v + 1)) continue;
    size_t npages = par.span_pages, size = (npages + parts - 1) / parts;
    size_t lo = (size_t)k * size, hi = lo + size;     /* hi >= npages for the last part */
    lo = lo < npages ? run_start_from(lo, npages) : npages;
    hi = hi < npages ? run_start_from(hi, npages) : npages;
    cgci_each_span_in(lo, hi, par.span_fn, NULL);
    if ((unsigned)AO_fetch_and_add1_full(&par.span_done) + 1 == parts) {
      pthread_mutex_lock(&par.mu);
      pthread_cond_broadcast(&par.done);
      pthread_mutex_unlock(&par.mu);
    }
  }
}

static bool span_walk_over(unsigned parts) { return (unsigned)AO_load(&par.span_done) >= parts; }

/* cgci_mark_each_span -- FN(S, NULL) on every SMALL and LARGE span, shared
 * between the collecting thread and the helper markers (span_parts) when
 * the heap is at least eight times the parallel-marking threshold (64 MiB
 * by default): clearing mark bits and merging the private tables each
 * walk every span, 5-6 ms apiece on one thread for the 1 GiB tree heap of
 * bench/pauses.  FN may write only S's own fields and must not free or
 * split it.  World stopped, collector lock held. */
void cgci_mark_each_span(cgci_span_fn fn) {
  size_t npages = cgci_g.heap_used >> CGCI_PAGE_SHIFT;
  unsigned parts = (unsigned)(par.nhelpers + 1) * SPAN_PARTS_PER_MARKER;
  if (par.nhelpers == 0 || par.disabled || cgci_g.heap_used < par.min_heap * 8 ||
      npages < (size_t)parts * 16) {
    cgci_each_span_in(0, npages, fn, NULL);
    return;
  }
  pthread_mutex_lock(&par.mu);
  par.spans = 1;
  par.span_fn = fn;
  par.span_pages = npages;
  AO_store(&par.span_done, 0);
  AO_store_release(&par.span_claim, (AO_t)parts << 32);
  AO_store(&par.phase, AO_load(&par.phase) + 1);
  pthread_cond_broadcast(&par.start);
  pthread_mutex_unlock(&par.mu);
  span_parts();
  /* every part is claimed; wait for those a helper is still walking */
  if (!spin_until(span_walk_over, parts, SPIN_WORK_NS)) {
    pthread_mutex_lock(&par.mu);
    while (!span_walk_over(parts)) pthread_cond_wait(&par.done, &par.mu);
    pthread_mutex_unlock(&par.mu);
  }
  /* PAR.spans stays set until the next phase begins: a helper that wakes
   * only now must see this phase as a span walk (and find nothing left),
   * not as marking */
  AO_store(&par.span_claim, 0);
}

static void *helper_main(void *arg) {
  struct marker *m = arg;
  unsigned seen = 0;
  sigset_t all;
  sigfillset(&all);
  syscall(SYS_rt_sigprocmask, SIG_BLOCK, &all, NULL, (size_t)(_NSIG / 8));
  cgci_meta_nolock(1);       /* runs only in pauses; chunks under par.mu */
  unsigned alerted = 0;
  pthread_mutex_lock(&par.mu);
  for (;;) {
    par.parked++;
    pthread_cond_broadcast(&par.done);
    for (;;) {
      while ((unsigned)AO_load(&par.phase) == seen && par.alert == alerted)
        pthread_cond_wait(&par.start, &par.mu);
      if ((unsigned)AO_load(&par.phase) != seen) break;
      /* alerted: a collection has begun and will probably mark in
       * parallel once the roots are scanned; wait for it awake */
      alerted = par.alert;
      pthread_mutex_unlock(&par.mu);
      (void)spin_until(phase_started, seen, SPIN_START_NS);
      pthread_mutex_lock(&par.mu);
    }
#ifdef CGCI_TEST_LOST_MARKS
    /* for the unit tests (check_parmark): a helper that wakes late, as one
     * on an idle virtual processor does; it finds the phase over */
    if (AO_load(&cgci_test_helper_delay_ns) != 0) {
      struct timespec ts = {0, (long)AO_load(&cgci_test_helper_delay_ns)};
      pthread_mutex_unlock(&par.mu);
      nanosleep(&ts, NULL);
      pthread_mutex_lock(&par.mu);
    }
#endif
    par.parked--;
    seen = (unsigned)AO_load(&par.phase);
    bool spans = par.spans;
    pthread_mutex_unlock(&par.mu);
    if (spans) {
      span_parts();             /* nothing left if this helper woke late */
      /* a span walk opens a collection (clearing marks) or ends its
       * marking (merging): another phase follows shortly, so wait for it
       * awake, as when alerted */
      (void)spin_until(phase_started, seen, SPIN_START_NS);
      pthread_mutex_lock(&par.mu);
      continue;                                 /* park, or take that phase */
    }
    work(m);
    pthread_mutex_lock(&par.mu);
  }
  return NULL;
}

static size_t priv_bytes(void) {
  return (cgci_g.heap_reserved >> CGCI_PAGE_SHIFT) * CGCI_MARK_WORDS * sizeof(uint64_t);
}

/* priv_init -- reserve M's .par.priv table (markers from
 * CGCI_DESC_MARKERS on): CGCI_MARK_WORDS words for every page the heap may
 * ever have (made writable by priv_cover; pages are backed only once
 * written, about 1/128 of the heap marked in parallel). */
static bool priv_init(struct marker *m) {
  if (m->priv != NULL) return true;
  void *p = cgci_os_reserve(priv_bytes());
  if (p == NULL) return false;
  /* a huge page would back 2 MiB of table, that is 256 MiB of heap */
  cgci_os_hugepages(p, priv_bytes());
  m->priv = p;
  return true;
}

/* priv_cover -- make every table in use writable up to the heap frontier,
 * in 64 KiB steps (reserved address space is committed only as the heap
 * grows, as the heap and the page map are).  False if the kernel refuses:
 * that collection then marks on one thread.  World stopped. */
static bool priv_cover(void) {
  static size_t committed;               /* bytes of each table, so far */
  size_t need = (cgci_g.heap_used >> CGCI_PAGE_SHIFT) * CGCI_MARK_WORDS * sizeof(uint64_t);
  need = (need + ((size_t)64 << 10) - 1) & ~(((size_t)64 << 10) - 1);
  if (need > priv_bytes()) need = priv_bytes();
  if (need <= committed) return true;
  for (int i = CGCI_DESC_MARKERS; i <= par.nhelpers; i++)
    if (!cgci_os_commit((char *)markers[i].priv + committed, need - committed, false)) return false;
  committed = need;
  return true;
}

/* cgci_mark_start_helpers -- start the helper markers once the heap is big
 * enough to use them.  Called with no lock held (pthread_create may call
 * malloc, which may be cgc's): from the allocation slow path and from
 * cgc_collect, before they take the collector lock. */
void cgci_mark_start_helpers(void) {
  static AO_t started;
  if (par.nmarkers <= 1 || cgci_g.heap_used < par.min_heap || AO_load(&started)) return;
  if (!cgci_cas(&started, 0, 1)) return;
  int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *) =
    (int (*)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *))cgci_real_sym("pthread_create");
  if (create == NULL) return;
  /* Helpers run on stacks of our own (excluded from the scan of foreign
   * mappings, also in a forked child where they no longer run).  The
   * creating thread must not block the suspend signal around
   * pthread_create, which may call malloc (cgc's own under the shim) and
   * wait for a collection: each helper blocks every signal itself. */
  int n = 0;
  for (int i = 1; i < par.nmarkers; i++) {
    if (markers[i].stack == NULL) marker_init(&markers[i]);
    if (i >= CGCI_DESC_MARKERS && !priv_init(&markers[i])) break;
    if (markers[i].tstack == NULL) {
      markers[i].tstack_bytes = (size_t)256 << 10;
      markers[i].tstack = cgci_os_map(markers[i].tstack_bytes);
      if (markers[i].tstack == NULL) break;
    }
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstack(&attr, markers[i].tstack, markers[i].tstack_bytes);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t t;
    int r = create(&t, &attr, helper_main, &markers[i]);
    pthread_attr_destroy(&attr);
    if (r != 0) break;
    n++;
  }
  /* published under the lock the collector reads it with */
  cgci_lock();
  pthread_mutex_lock(&par.mu);
  par.nhelpers = n;
  pthread_mutex_unlock(&par.mu);
  cgci_unlock();
}

/* merge_private -- .par.priv: OR every marker's private words into the
 * shared mark words and clear them.  Every helper is parked. */
static void merge_span(struct cgci_span *s, void *ctx) {
  (void)ctx;
  /* table entries exist only at the first page of a SMALL or LARGE span
   * (priv_word) */
  size_t pg = (s->start - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT;
  for (int i = 0; i <= par.nhelpers; i++) {
    uint64_t *t = i < CGCI_DESC_MARKERS ? s->pmark[i] : markers[i].priv + pg * CGCI_MARK_WORDS;
    uint64_t any = 0;
    for (int k = 0; k < CGCI_MARK_WORDS; k++) any |= t[k];
    if (any == 0) continue;
    for (int k = 0; k < CGCI_MARK_WORDS; k++) { s->mark[k] |= t[k]; t[k] = 0; }
  }
}

/* (split between the markers on a big heap: each span is merged by one
 * thread, which alone writes its words and its entries in every table) */
static void merge_private(void) { cgci_mark_each_span(merge_span); }

/* drain_parallel -- marker 0 has the roots' work; share it with helpers. */
static void drain_parallel(void) {
  pthread_mutex_lock(&par.mu);
  par.spans = 0;
  AO_store(&par.active, (AO_t)par.nhelpers + 1);
  AO_store(&par.phase, AO_load(&par.phase) + 1);
  pthread_cond_broadcast(&par.start);
  pthread_mutex_unlock(&par.mu);
  work(&markers[0]);
  /* wait until every helper is parked again, so none touches the heap
   * after we return */
  pthread_mutex_lock(&par.mu);
  while (par.parked < par.nhelpers) pthread_cond_wait(&par.done, &par.mu);
  pthread_mutex_unlock(&par.mu);
  merge_private();
  for (int i = 1; i <= par.nhelpers; i++) {
    markers[0].bytes += markers[i].bytes;
    markers[i].bytes = 0;
    if (markers[i].overflow) { markers[0].overflow = 1; markers[i].overflow = 0; }
  }
}

/* cgci_mark_alert -- a collection has stopped the world: wake the helpers
 * now, so that they are running, not still waking up, when the roots are
 * scanned and the parallel drain starts (under the same conditions as
 * cgci_mark_drain's).  An alerted helper spins for a bounded time waiting
 * for the phase, then sleeps again. */
void cgci_mark_alert(void) {
  if (par.nhelpers == 0 || par.disabled) return;
  AO_store(&par.pausing, 1);
  pthread_mutex_lock(&par.mu);
  par.alert++;
  pthread_cond_broadcast(&par.start);
  pthread_mutex_unlock(&par.mu);
}

/* cgci_mark_quiesce -- the collection is about to restart the world:
 * helpers still spinning for a phase stop and sleep. */
void cgci_mark_quiesce(void) { AO_store(&par.pausing, 0); }

void cgci_mark_drain(void) {
  struct marker *m = &markers[0];
  if (par.nhelpers > 0 && !par.disabled && m->top > 0 && priv_cover())
    drain_parallel();
  else
    drain_single(m);
  cgci_g.bytes_marked += m->bytes;
  m->bytes = 0;
  if (m->overflow) { cgci_g.mstack_overflow = 1; m->overflow = 0; }
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
  struct marker *m = &markers[0];
  if (s->kind == CGCI_KIND_ATOMIC) return;
  if (s->state == CGCI_SPAN_LARGE) {
    if (s->mark[0] & 1) { push_large(m, s); cgci_mark_drain(); }
    return;
  }
  for (uint32_t i = 0; i < s->nobj; i++)
    if (cgci_bit_get(s, i)) {
      uintptr_t b = s->start + (uintptr_t)i * s->slot;
      push(m, b, b + s->slot);
      cgci_mark_drain();
    }
}

void cgci_mark_recover_overflow(bool with_finalizable) {
  par.disabled = 1;
  while (cgci_g.mstack_overflow) {
    cgci_g.mstack_overflow = 0;
    cgci_g.st_overflows++;
    cgci_each_span(rescan_span, NULL);
    if (with_finalizable) cgci_specials_mark_finalizable();
    cgci_mark_drain();
  }
  par.disabled = 0;
}

/* cgci_mark_atfork_child -- the helpers do not exist in a child. */
void cgci_mark_atfork_child(void) {
  pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
  pthread_cond_t c1 = PTHREAD_COND_INITIALIZER, c2 = PTHREAD_COND_INITIALIZER,
                 c3 = PTHREAD_COND_INITIALIZER;
  par.mu = m; par.work = c1; par.start = c2; par.done = c3;
  par.nhelpers = 0; par.parked = 0; AO_store(&par.active, 0); par.waiting = 0;
  par.spans = 0; AO_store(&par.span_claim, 0);
  par.full = NULL; AO_store(&par.nfull, 0);
  /* leave started set: a child does not start markers of its own */
}

/* cgci_mark_helper_tls -- call SCAN on the top of each helper's thread
 * stack: glibc puts the thread's control block and static TLS there, and
 * the control block points to the thread's DTV, which glibc allocates
 * with malloc, that is from this heap when cgc is the program's malloc.
 * The rest of a helper's stack is never scanned (cgci_mark_owned_ranges):
 * it holds nothing but stale addresses from marking. */
void cgci_mark_helper_tls(void (*scan)(uintptr_t lo, uintptr_t hi)) {
  size_t top = cgci_g.static_tls_size + cgci_g.tcb_size;
  /* glibc aligns the control block down from the stack's top by up to
   * the static TLS alignment */
  top = top == 0 ? (size_t)16 << 10 : top + cgci_g.static_tls_align + 64;
  for (int i = 1; i < MAX_MARKERS; i++) {
    struct marker *m = &markers[i];
    if (m->tstack == NULL || top > m->tstack_bytes) continue;
    uintptr_t hi = (uintptr_t)m->tstack + m->tstack_bytes;
    scan(hi - top, hi);
  }
}

/* cgci_mark_owned_ranges -- the mappings of the marker machinery (mark
 * stacks, helper thread stacks, .par.priv tables), for roots.c to leave
 * out of foreign mappings.  Returns how many were written to OUT (at most
 * MAX). */
size_t cgci_mark_owned_ranges(struct cgci_root *out, size_t max) {
  size_t n = 0;
  for (int i = 0; i < MAX_MARKERS && n + 3 <= max; i++) {
    struct marker *m = &markers[i];
    if (m->priv) {
      out[n].lo = (uintptr_t)m->priv;
      out[n].hi = out[n].lo + (cgci_g.heap_reserved >> CGCI_PAGE_SHIFT) * CGCI_MARK_WORDS *
                              sizeof(uint64_t);
      n++;
    }
    if (m->stack) {
      out[n].lo = (uintptr_t)m->stack;
      out[n].hi = out[n].lo + m->cap * sizeof(struct cgci_markent);
      n++;
    }
    if (m->tstack) {
      out[n].lo = (uintptr_t)m->tstack;
      out[n].hi = out[n].lo + m->tstack_bytes;
      n++;
    }
  }
  return n;
}
