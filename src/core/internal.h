/* internal.h -- shared types and cross-subsystem declarations of cgc.
 *
 * Design: docs/design/overview.md.
 *
 * Heap layout.  At first use the collector reserves one large range of
 * address space (CGCI_HEAP_RESERVE, PROT_NONE) and commits it from the low
 * end as the heap grows.  The heap is cut into 4 KiB pages; consecutive
 * pages form *spans*:
 *
 *   - a SMALL span holds objects of one size class and one kind; it has up
 *     to CGCI_MAX_OBJS slots and keeps one mark bit per slot inline;
 *   - a LARGE span holds one object of more than CGCI_SMALL_MAX bytes;
 *   - a FREE span is a run of unused pages owned by the page heap.
 *
 * A page map (one pointer per page, also a reserved range) sends every page
 * of a SMALL or LARGE span to its descriptor, and the first and last page of
 * a FREE run to the free run's descriptor; other pages map to NULL.  So
 * deciding whether a word points into a live object is: subtract heap_lo,
 * compare with the committed size, load the page-map entry, and for a small
 * span multiply the offset by a reciprocal to get the slot index.
 *
 * Mark bits are the allocation map.  After a collection a slot's bit is set
 * iff its object was reachable or sits on some thread's free list; a clear
 * bit means free and available to the lazy sweeper (alloc.c), which turns
 * all the clear slots of a span into a thread-local free list at once and
 * sets their bits.  Between collections, therefore:
 *
 *   .inv.bits: slot bit clear  ==>  the slot is free and on no list.
 *   .inv.lists: every object on a thread free list has its bit set, is
 *     zeroed except words 0 (link) and 1 (free cookie) if its kind is
 *     scanned, and is never handed to two owners.
 *   .inv.nmarked: span->nmarked == popcount(span->mark) for small spans
 *     outside a collection.
 *
 * Descriptors, thread records, side tables and queues live in *meta*
 * memory: a second reserved range the collector never scans, allocated by
 * meta.c-style bump and free-list allocators here in pages.c.  The
 * collector never calls libc malloc.
 *
 * Every mutable global the collector owns lives in the one struct cgci_g so
 * that root scanning can skip it (it holds heap addresses that must not
 * count as references).
 */
#ifndef CGC_CORE_INTERNAL_H
#define CGC_CORE_INTERNAL_H
#ifndef CGC_BUILDING
#  error "src/core/internal.h is internal to cgc"
#endif

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/types.h>
#include "cgc.h"
#include "core/atomic.h"
#include "core/config.h"
#include "core/check.h"

#define CGCI_LIKELY(x)   __builtin_expect(!!(x), 1)
#define CGCI_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CGCI_NOINLINE    __attribute__((noinline))
#define CGCI_HIDDEN      __attribute__((visibility("hidden")))

#define CGCI_PAGE_SHIFT 12
#define CGCI_PAGE_SIZE  ((size_t)1 << CGCI_PAGE_SHIFT)
#define CGCI_HUGE_ALIGN ((size_t)2 << 20)   /* x86-64 transparent huge page */
#define CGCI_GRANULE    16
#define CGCI_MAX_OBJS   256            /* slots per small span; 4 mark words */
#define CGCI_MARK_WORDS (CGCI_MAX_OBJS / 64)
#define CGCI_DESC_MARKERS 2            /* markers whose .par.priv bits are in the descriptor */
#define CGCI_NCLASSES   32

/* Block kinds: which free lists and spans an object comes from. */
enum { CGCI_KIND_NORMAL = 0,  /* scanned, zeroed */
       CGCI_KIND_ATOMIC = 1,  /* never scanned */
       CGCI_KIND_UNCOLL = 2,  /* scanned root, freed only explicitly */
       CGCI_NKINDS = 3 };

enum { CGCI_SPAN_FREE = 0, CGCI_SPAN_SMALL = 1, CGCI_SPAN_LARGE = 2 };

/* span flags */
#define CGCI_SF_PARTIAL  0x01   /* on a partial list */
#define CGCI_SF_SPECIALS 0x02   /* some object here has specials */
#define CGCI_SF_ZEROED   0x04   /* free run: every byte is zero */
#define CGCI_SF_RELEASED 0x08   /* free run: returned to the OS */

/* The first 64 bytes (one cache line; descriptors are 64-byte aligned)
 * hold everything the mark loop reads for a small object.  The second
 * line holds the private mark bits of markers 0 and 1 during a parallel
 * phase (mark.c, .par.priv); it is zero at every other time. */
struct __attribute__((aligned(64))) cgci_span {
  uintptr_t start;               /* first byte */
  uint32_t  npages;              /* pages in the run */
  uint8_t   state;               /* CGCI_SPAN_* */
  uint8_t   kind;                /* CGCI_KIND_* */
  uint8_t   sc;                  /* size class (small) */
  uint8_t   flags;               /* CGCI_SF_* */
  uint32_t  slot;                /* slot bytes (small); 0 for large */
  uint32_t  nobj;                /* slots (small); 1 for large */
  uint32_t  magic;               /* ceil(2^32 / slot): offset -> index */
  uint32_t  nmarked;             /* set bits (.inv.nmarked) */
  uint64_t  mark[CGCI_MARK_WORDS]; /* mark bits = allocation map */
  uint64_t  pmark[CGCI_DESC_MARKERS][CGCI_MARK_WORDS]; /* .par.priv, markers 0, 1 */
  size_t    large_bytes;         /* large: the whole run, npages * 4 KiB */
  struct cgci_span *next, *prev; /* partial list or free-run bucket */
  uint64_t  free_gc;             /* free run: collection it became free */
  struct cgci_span *rel_next;    /* release candidates (pages.c) */
  struct cgci_span *uc_next, *uc_prev; /* UNCOLL spans: cgci_g.uncoll */
};
_Static_assert(sizeof(struct cgci_span) == 192, "a span descriptor is three cache lines");
_Static_assert(offsetof(struct cgci_span, pmark) == 64, "private mark bits on the second line");

/* Thread records, one per registered thread, in meta memory. */
enum { CGCI_TS_RUNNING = 0, CGCI_TS_BLOCKED = 1 };

struct cgci_thread {
  /* allocation cache: hot fields first */
  void     *fl[2][CGCI_NCLASSES];   /* free lists, NORMAL and ATOMIC */
  uint32_t  nfl[2][CGCI_NCLASSES];  /* their lengths */
  size_t    alloc_bytes;            /* since last flush into cgci_g */
  size_t    alloc_objs;
  size_t    freed_bytes;
  size_t    freed_objs;
  /* registry */
  struct cgci_thread *next, *prev;
  pthread_t pth;
  pid_t     tid;
  uintptr_t stack_base;             /* high end of the stack */
  uintptr_t tp;                     /* thread pointer (%fs base) */
  AO_t      stop_sp;                /* SP published when stopped/blocked */
  AO_t      state;                  /* CGCI_TS_* */
  AO_t      ack_gen;                /* last stop generation acknowledged */
  uintptr_t blocked_regs[8];        /* callee-saved registers when blocked */
  volatile int blocked_depth;       /* nesting of blocking calls */
  int       is_main;
  int       is_callback;            /* a finalizer or cleanup thread */
  int       in_callback;            /* running user callback code now */
  int       in_collect;             /* this thread runs the collector */
  int       dead;
  volatile unsigned sig_seen;       /* suspend signals received */
  void     *start_info;             /* uncollectable start record */
  int       on_alt;                 /* stopped on its alternate signal stack */
  uintptr_t alt_lo, alt_hi;         /* that stack, from the handler's frame up */
};

/* ---- globals ----------------------------------------------------------- */

struct cgci_root { uintptr_t lo, hi; };

struct cgci_globals {
  /* heap geometry */
  uintptr_t heap_lo;                /* reserved range */
  size_t    heap_reserved;
  size_t    heap_committed;         /* bytes mapped RW from heap_lo */
  size_t    heap_populated;         /* bytes from heap_lo populated ahead */
  size_t    heap_used;              /* frontier: pages ever handed out */
  struct cgci_span **pagemap;       /* one entry per reserved page */
  uintptr_t meta_lo; size_t meta_reserved, meta_committed, meta_used;
  /* size classes */
  uint8_t   size_class[CGCI_SMALL_MAX / CGCI_GRANULE + 2];
  uint32_t  class_size[CGCI_NCLASSES];
  uint32_t  class_pages[CGCI_NCLASSES];
  uint32_t  nclasses;
  /* page heap */
  struct cgci_span *free_runs[CGCI_FREE_BUCKETS + 1]; /* by pages; last: big */
  struct cgci_span *partial[CGCI_NKINDS][CGCI_NCLASSES];
  struct cgci_span *span_pool;      /* recycled descriptors */
  size_t    pages_in_use;           /* pages in SMALL/LARGE spans */
  size_t    pages_free_committed;   /* pages in free runs, not released */
  /* locks */
  pthread_mutex_t lock;             /* the collector lock */
  /* collection policy */
  int       gc_percent;             /* < 0: off */
  int       disabled;               /* cgc_disable nesting */
  size_t    min_heap;               /* no trigger below this many bytes */
  size_t    huge_min;               /* heap size that turns on THP; 0: never */
  int       huge_on;                /* MADV_HUGEPAGE applied (pages.c) */
  size_t    heap_limit;             /* 0: none */
  int64_t   alloc_since_gc;         /* net bytes since last collection */
  uint64_t  explicit_freed_objs, explicit_freed_bytes; /* by cgc_free */
  uint64_t  objs_alloc_mark, bytes_alloc_mark, objs_freed_mark, bytes_freed_mark; /* at last GC */
  size_t    trigger;                /* collect when alloc_since_gc >= this */
  size_t    live_bytes, live_objs;  /* after last collection */
  size_t    release_age;            /* collections a free run waits */
  size_t    prev_live;              /* live bytes after the previous one */
  size_t    prev_goal;              /* live + budget the pacer itself set last time */
  size_t    live_large;             /* of live_bytes, in LARGE spans (last collection) */
  uint64_t  large_allocated, large_alloc_mark; /* LARGE bytes handed out: total, at last GC */
  size_t    peak;                   /* .pace.peak: heap reached, as of peak_ns */
  uint64_t  peak_ns;
  uint64_t  peak_halflife_ns;       /* 0: no peak floor */
  /* statistics */
  cgc_stats_t st;
  /* marking */
  struct cgci_markent *mstack;      /* mark stack (own mapping) */
  size_t    mstack_cap, mstack_max;   /* marker 0's stack (mark.c) */
  int       mstack_overflow;
  size_t    bytes_marked;
  uint64_t  st_overflows;            /* mark-stack overflow recoveries */
  /* roots */
  struct cgci_root *roots;          /* cgc_add_roots ranges (meta) */
  size_t    nroots, roots_cap;
  size_t    root_bytes;             /* scanned in the last collection */
  size_t    root_bytes_paced;       /* the part of it the pacer counts */
  int       scan_mappings;          /* ext: scan foreign rw mappings */
  size_t    static_tls_size;        /* glibc's static TLS block size */
  size_t    static_tls_align;       /* and its alignment */
  size_t    tcb_size;               /* bytes of struct pthread to scan */
  /* threads */
  struct cgci_thread *threads;      /* registry (list) */
  size_t    nthreads;
  struct cgci_thread *thread_pool;  /* free records */
  pthread_key_t thread_key;         /* destructor unregisters */
  int       sig_suspend, sig_restart;
  sem_t     ack_sem;
  AO_t      stop_gen;               /* odd while the world is stopped */
  AO_t      world_stopping;         /* 1 from stop to restart */
  pthread_mutex_t blocked_mu;       /* threads leaving cgc_do_blocking wait */
  pthread_cond_t  blocked_cv;
  /* configuration */
  cgc_config_t cfg;
  int       trace;                  /* CGC_TRACE */
  struct cgci_span *uncoll;         /* SMALL and LARGE spans of UNCOLL kind (roots.c) */
  uint64_t  trace_fin_run, trace_cln_run; /* callbacks run at the last trace */
  int       show_stats;             /* CGC_SHOW_STATS */
  uint64_t  t_start_ns;
  cgc_oom_fn oom_hook;
  cgc_error_fn error_hook;
  void    (*gc_hook)(void);
  int       in_gc_hook;
  /* lifecycle */
  AO_t      init_state;             /* 0 none, 1 running, 2 done */
  pid_t     init_tid;
};

CGCI_HIDDEN extern struct cgci_globals cgci_g;
CGCI_HIDDEN extern __thread struct cgci_thread *cgci_self;

/* ---- core/error.c ------------------------------------------------------ */
int  cgci_error(int err, const char *func, const char *msg);
void cgci_fatal(const char *msg) __attribute__((noreturn));
void cgci_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- core/init.c -------------------------------------------------------- */
void cgci_ensure_init(void);
static inline bool cgci_ready(void) { return AO_load(&cgci_g.init_state) == 2; }
void cgci_lock(void);
void cgci_unlock(void);

/* ---- os/os_linux.c ------------------------------------------------------ */
void    *cgci_os_reserve(size_t bytes);
bool     cgci_os_commit(void *p, size_t bytes, bool populate);
void     cgci_os_populate(void *p, size_t bytes);
void     cgci_os_nohugepages(void *p, size_t bytes);
void     cgci_os_release(void *p, size_t bytes);   /* MADV_DONTNEED */
void     cgci_os_hugepages(void *p, size_t bytes);
void    *cgci_os_map(size_t bytes);                 /* fresh RW mapping */
void     cgci_os_unmap(void *p, size_t bytes);
void    *cgci_os_remap(void *p, size_t old_bytes, size_t new_bytes);
uint64_t cgci_os_now_ns(void);
void     cgci_os_write(int fd, const char *s, size_t n);
bool     cgci_os_stack_of(uintptr_t sp, uintptr_t *lo, uintptr_t *hi);
typedef void (*cgci_maps_fn)(uintptr_t lo, uintptr_t hi, const char *perms,
                             const char *name, void *ctx);
void     cgci_os_each_mapping(cgci_maps_fn fn, void *ctx);
typedef void (*cgci_run_fn)(uintptr_t lo, uintptr_t hi, void *ctx);
bool     cgci_os_each_touched(uintptr_t lo, uintptr_t hi, cgci_run_fn fn, void *ctx);
void     cgci_os_pagemap_begin(void);           /* collector, world stopped */
void     cgci_os_pagemap_end(void);
int      cgci_os_ncpu(void);
pid_t    cgci_os_gettid(void);
const char *cgci_os_getenv(const char *name);
size_t   cgci_parse_size(const char *s);          /* init.c */

/* ---- heap/pages.c ------------------------------------------------------- */
void  cgci_heap_init(void);
struct cgci_span *cgci_pages_alloc(size_t npages, size_t align_pages, bool *zeroed);
void  cgci_pages_free(struct cgci_span *s);
void  cgci_uncoll_link(struct cgci_span *s);
void  cgci_pages_release_old(size_t keep_bytes); /* return idle runs to the OS */
void *cgci_meta_alloc(size_t bytes);          /* zeroed, never freed */
void *cgci_meta_alloc_aligned(size_t bytes, size_t align);
void *cgci_meta_alloc_big(size_t bytes);      /* page-granular, freeable */
void  cgci_meta_free_big(void *p, size_t bytes);
struct cgci_span *cgci_span_new(void);
void  cgci_span_dispose(struct cgci_span *s);
void  cgci_sizeclass_init(void);
void  cgci_meta_lock(void);
void  cgci_meta_unlock(void);
void  cgci_meta_atfork_child(void);
void  cgci_meta_nolock(int on);

/* cgci_span_of -- descriptor of the SMALL or LARGE span containing ADDR, or
 * NULL.  Fast: one subtraction, one compare, one load. */
static inline struct cgci_span *cgci_span_of(uintptr_t addr) {
  uintptr_t off = addr - cgci_g.heap_lo;
  if (off >= cgci_g.heap_used) return NULL;
  struct cgci_span *s = cgci_g.pagemap[off >> CGCI_PAGE_SHIFT];
  if (s == NULL || s->state == CGCI_SPAN_FREE) return NULL;
  return s;
}

/* cgci_slot_index -- slot of ADDR in small span S (may be >= nobj for the
 * tail past the last slot). */
static inline uint32_t cgci_slot_index(const struct cgci_span *s, uintptr_t addr) {
  return (uint32_t)(((uint64_t)(addr - s->start) * s->magic) >> 32);
}

/* cgci_pmark_clear -- the private mark words are zero (true outside a
 * parallel mark phase: the merge clears them, mark.c .par.priv). */
static inline bool cgci_pmark_clear(const struct cgci_span *s) {
  uint64_t any = 0;
  for (int i = 0; i < CGCI_DESC_MARKERS; i++)
    for (int k = 0; k < CGCI_MARK_WORDS; k++) any |= s->pmark[i][k];
  return any == 0;
}

static inline bool cgci_bit_get(const struct cgci_span *s, uint32_t i) {
  return (s->mark[i >> 6] >> (i & 63)) & 1;
}
static inline void cgci_bit_set(struct cgci_span *s, uint32_t i) {
  s->mark[i >> 6] |= (uint64_t)1 << (i & 63);
}
static inline void cgci_bit_clear(struct cgci_span *s, uint32_t i) {
  s->mark[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

/* cgci_find_base -- block start for any pointer into a live block (interior
 * and one-past-end included); NULL otherwise.  Also returns the span and
 * slot through OUT params when non-NULL. */
void *cgci_find_base(uintptr_t addr, struct cgci_span **span_out, uint32_t *idx_out);

/* ---- heap/alloc.c ------------------------------------------------------- */
void *cgci_alloc(size_t n, int kind, bool may_collect);
void *cgci_alloc_slow(size_t n, int kind, bool may_collect);
int   cgci_free(void *p, bool report);
size_t cgci_block_size(struct cgci_span *s);    /* usable bytes */
void  cgci_thread_flush_counters(struct cgci_thread *t);
void  cgci_thread_drop_cache(struct cgci_thread *t);
void  cgci_check_trigger_locked(void);
#define CGCI_FREE_COOKIE ((uintptr_t)0xC6C0F4EEDEADB10Cull)

/* ---- mark/mark.c -------------------------------------------------------- */
struct cgci_markent { uintptr_t lo, hi; };
void cgci_mark_init(void);
void cgci_mark_word(uintptr_t w);
void cgci_mark_range(uintptr_t lo, uintptr_t hi);       /* scan now */
void cgci_mark_push(uintptr_t lo, uintptr_t hi);        /* scan later */
void cgci_mark_alert(void);
void cgci_mark_quiesce(void);
void cgci_mark_drain(void);
void cgci_mark_recover_overflow(bool with_finalizable);
bool cgci_is_marked(uintptr_t base);
void cgci_mark_start_helpers(void);
void cgci_mark_atfork_child(void);
struct cgci_root;
size_t cgci_mark_owned_ranges(struct cgci_root *out, size_t max);
void   cgci_mark_helper_tls(void (*scan)(uintptr_t lo, uintptr_t hi));
#ifdef CGCI_TEST_LOST_MARKS
#define CGCI_TEST_MARKERS 8
extern AO_t cgci_test_lost_marks[CGCI_TEST_MARKERS]; /* mark.c fault injection, by marker */
extern AO_t cgci_test_helper_delay_ns;              /* mark.c: helpers wake this late */
#endif

/* ---- sweep/sweep.c ------------------------------------------------------ */
void cgci_sweep_clear_marks(void);
void cgci_sweep(void);
typedef void (*cgci_span_fn)(struct cgci_span *s, void *ctx);
void cgci_each_span(cgci_span_fn fn, void *ctx);
void cgci_each_span_in(size_t first_page, size_t end_page, cgci_span_fn fn, void *ctx);
void cgci_mark_each_span(cgci_span_fn fn);   /* split with the helpers (mark.c) */

/* ---- roots/roots.c ------------------------------------------------------ */
void cgci_roots_init(void);
void cgci_roots_mark_all(void);           /* world stopped */
void cgci_roots_snapshot(void);           /* never with the world stopped */
bool cgci_roots_snapshot_stale(void);
bool cgci_roots_snapshot_due(void);       /* none since the last collection */
CGCI_HIDDEN extern AO_t cgci_roots_nsnap; /* snapshots published so far */
/* collections so far, read without the collector lock */
static inline uint64_t cgci_collections(void) {
  return (uint64_t)AO_load((const AO_t *)(const void *)&cgci_g.st.collections);
}
void cgci_roots_lock(void);
void cgci_roots_unlock(void);
void cgci_roots_atfork_child(void);
void cgci_roots_fork_prepare(void);
void cgci_roots_fork_parent(void);
void cgci_roots_thread_tls(struct cgci_thread *t);

/* ---- threads/threads.c and stw.c --------------------------------------- */
void cgci_threads_init(void);
struct cgci_thread *cgci_thread_register_self(int is_main);
void cgci_thread_unregister_self(void);
void cgci_stw_init(void);
void cgci_stop_world(void);
void cgci_start_world(void);
void cgci_atfork_child_threads(void);
void cgci_blocking_enter(struct cgci_thread *t);
void cgci_blocking_leave(struct cgci_thread *t);
void *cgci_real_sym(const char *name);

/* ---- finalize ----------------------------------------------------------- */
void cgci_specials_init(void);
void cgci_specials_mark_roots(void);      /* M1: data, args, weak cells */
void cgci_specials_mark_finalizable(void);/* M2 */
void cgci_specials_resolve(void);         /* M3 */
int  cgci_specials_on_free(void *base);   /* explicit free; EBUSY if FIN */
void cgci_specials_atfork_child(void);
void cgci_queue_init(void);
void cgci_queue_mark_roots(void);
void cgci_queue_push_fin(void *obj, cgc_finalizer_fn fn, void *data);
void cgci_queue_push_cln(cgc_cleanup_fn fn, void *arg);
void cgci_queue_wake(void);
bool cgci_queue_needs_threads(void);
void cgci_queue_signal_locked(void);
void cgci_specials_each(void (*fn)(uintptr_t base, int is_fin, void *data_or_arg,
                                   void *site, void *ctx), void *ctx);
void cgci_queue_shutdown(void);
void cgci_queue_reconfigure(const cgc_config_t *cfg);
size_t cgci_queue_len_fin(void);
size_t cgci_queue_len_cln(void);
void cgci_queue_lock(void);
void cgci_queue_unlock(void);
void cgci_queue_atfork_child(void);
void cgci_queue_ensure_threads(void);
void cgci_checker_run(void);
void cgci_checker_report(void);
extern CGCI_HIDDEN uint64_t cgci_cycle_fin_queued, cgci_cycle_cln_queued;

/* ---- collect.c ---------------------------------------------------------- */
void cgci_collect_locked(const char *reason);

/* ---- stats/stats.c ------------------------------------------------------ */
void cgci_trace_cycle(uint64_t n, uint64_t pause_ns, uint64_t mark_ns,
                      uint64_t sweep_ns, size_t before, size_t after,
                      size_t goal, size_t nthreads, size_t root_bytes,
                      uint64_t finq, uint64_t finr, uint64_t clnq, uint64_t clnr);
void cgci_stats_atexit(void);

#endif /* CGC_CORE_INTERNAL_H */
