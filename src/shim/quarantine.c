/* quarantine.c -- safe mode (CGC_MODE=safe): free() never releases.
 *
 * Design: docs/malloc-replacement.md, "safe".  This is the MarkUs idea:
 * a freed block is zeroed and left allocated, so its memory cannot be
 * handed out again while a dangling pointer to it exists; the collector
 * reclaims it at the first collection that finds it unreachable.  Zeroing
 * stops a dangling block from keeping other blocks alive.
 *
 * To count the frees that were premature ("dangling": still referenced at
 * the next collection) every free appends an entry to an append-only log;
 * the gc hook looks each entry up with cgci_ext_is_marked and empties the
 * log.
 *
 * .inv.hidden: the log stores ~address, so the collector, which scans
 *   this mmap'd log as a foreign mapping, never sees a pointer to a
 *   quarantined block (otherwise every one would look referenced).
 * .inv.publish: a writer claims an index with fetch_add, fills the entry
 *   and stores `hidden` last (release).  The hook runs with the world
 *   stopped; an entry whose `hidden` is still 0 belongs to a writer stopped
 *   between claim and store: it is left for the next collection (and then
 *   ignored as stale because its epoch is old).
 * .inv.epoch: an entry is only judged by the collection that follows its
 *   free (epoch equal); older ones are counted as unchecked.
 * Counts are statistics: a conservative root scan can see a stale copy of
 * the freed pointer in a dead stack slot, so "dangling" is an upper bound.
 */
#include "shim/shim.h"
#include "core/ext.h"
#include "cgc.h"

#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

#define Q_CHUNK_SHIFT 15                     /* 32768 entries a chunk */
#define Q_CHUNK_LEN   ((size_t)1 << Q_CHUNK_SHIFT)
#define Q_MAX_CHUNKS  4096                   /* 128 Mi frees per cycle */
#define Q_MAX_REPORTS 64
#define Q_BIG         (256u * 1024u)         /* zero by madvise above this */

struct q_entry {
  atomic_uintptr_t hidden;   /* ~address; 0 = not yet written, 1 = done */
  uintptr_t site;            /* return address of the free call */
  uint64_t epoch;            /* collections seen when freed */
  size_t size;               /* usable bytes */
};

static _Atomic(struct q_entry *) q_chunks[Q_MAX_CHUNKS];
static atomic_size_t q_next;       /* next index to claim */
static size_t q_done;              /* entries below were judged (hook only) */
static atomic_uint_fast64_t q_epoch;

/* Statistics, written by the hook (world stopped) or relaxed atomics. */
static atomic_ulong q_frees, q_bytes, q_untracked;
static uint64_t q_dangling, q_dangling_bytes, q_reclaimed, q_unchecked;

static struct {
  uintptr_t addr, site;
  size_t size;
  uint64_t gc;
} q_reports[Q_MAX_REPORTS];
static unsigned q_nreports;

void cgci_quarantine_init(void)
{
}

static struct q_entry *q_chunk(size_t c, int create)
{
  struct q_entry *ch = atomic_load_explicit(&q_chunks[c], memory_order_acquire);

  if (ch != NULL || !create)
    return ch;
  struct q_entry *fresh = cgci_shim_map(Q_CHUNK_LEN * sizeof *fresh);
  if (fresh == NULL)
    return NULL;
  if (!atomic_compare_exchange_strong(&q_chunks[c], &ch, fresh)) {
    cgci_shim_unmap(fresh, Q_CHUNK_LEN * sizeof *fresh);
    return ch;
  }
  return fresh;
}

/* zero -- clear USABLE bytes at P; big blocks give their pages back. */
static void zero(void *p, size_t usable)
{
  uintptr_t lo = (uintptr_t)p, hi = lo + usable;
  uintptr_t plo = (lo + 4095) & ~(uintptr_t)4095, phi = hi & ~(uintptr_t)4095;

  if (usable >= Q_BIG && phi > plo &&
      madvise((void *)plo, phi - plo, MADV_DONTNEED) == 0) {
    memset(p, 0, plo - lo);
    memset((void *)phi, 0, hi - phi);
    return;
  }
  memset(p, 0, usable);
}

void cgci_quarantine_free(void *p, size_t usable, uintptr_t site)
{
  zero(p, usable);
  atomic_fetch_add_explicit(&q_frees, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&q_bytes, usable, memory_order_relaxed);

  uint64_t ep = atomic_load_explicit(&q_epoch, memory_order_relaxed);
  size_t i = atomic_fetch_add_explicit(&q_next, 1, memory_order_relaxed);
  size_t c = i >> Q_CHUNK_SHIFT;
  struct q_entry *ch = c < Q_MAX_CHUNKS ? q_chunk(c, 1) : NULL;
  if (ch == NULL) {
    atomic_fetch_add_explicit(&q_untracked, 1, memory_order_relaxed);
    return;
  }
  struct q_entry *e = &ch[i & (Q_CHUNK_LEN - 1)];
  e->site = site;
  e->epoch = ep;
  e->size = usable;
  atomic_store_explicit(&e->hidden, ~(uintptr_t)p, memory_order_release);
}

void cgci_quarantine_gc_hook(void)
{
  uint64_t ep = atomic_load_explicit(&q_epoch, memory_order_relaxed);
  size_t n = atomic_load_explicit(&q_next, memory_order_relaxed);
  size_t first_open = n;

  if (n > Q_MAX_CHUNKS * Q_CHUNK_LEN)
    n = Q_MAX_CHUNKS * Q_CHUNK_LEN;
  for (size_t i = q_done; i < n; i++) {
    struct q_entry *ch = q_chunk(i >> Q_CHUNK_SHIFT, 0);
    if (ch == NULL) {
      if (first_open == n)
        first_open = i;
      continue;
    }
    struct q_entry *e = &ch[i & (Q_CHUNK_LEN - 1)];
    uintptr_t h = atomic_load_explicit(&e->hidden, memory_order_acquire);
    if (h == 0) {                   /* .inv.publish: writer stopped */
      if (first_open == n)
        first_open = i;
      continue;
    }
    if (h == 1)
      continue;
    if (e->epoch != ep) {
      q_unchecked++;
    } else if (cgci_ext_is_marked((const void *)~h)) {
      q_dangling++;
      q_dangling_bytes += e->size;
      if (q_nreports < Q_MAX_REPORTS) {
        q_reports[q_nreports].addr = ~h;
        q_reports[q_nreports].site = e->site;
        q_reports[q_nreports].size = e->size;
        q_reports[q_nreports].gc = ep + 1;
        q_nreports++;
      }
    } else {
      q_reclaimed++;
    }
    atomic_store_explicit(&e->hidden, 1, memory_order_relaxed);
  }
  if (first_open == n) {
    /* Everything judged: empty the log (entries back to "unwritten"). */
    for (size_t i = 0; i < n; i++) {
      struct q_entry *ch = q_chunk(i >> Q_CHUNK_SHIFT, 0);
      if (ch != NULL)
        atomic_store_explicit(&ch[i & (Q_CHUNK_LEN - 1)].hidden, 0,
                              memory_order_relaxed);
    }
    atomic_store_explicit(&q_next, 0, memory_order_relaxed);
    q_done = 0;
  } else {
    q_done = first_open;
  }
  atomic_store_explicit(&q_epoch, ep + 1, memory_order_relaxed);
}

void cgci_quarantine_report(int fd, int verbose)
{
  struct cgci_shim_out o;

  cgci_shim_out_init(&o, fd);
  if (verbose) {
    for (unsigned i = 0; i < q_nreports; i++) {
      cgci_shim_out_str(&o, "cgc-safe: block ");
      cgci_shim_out_hex(&o, q_reports[i].addr);
      cgci_shim_out_str(&o, " (");
      cgci_shim_out_u64(&o, q_reports[i].size);
      cgci_shim_out_str(&o, " bytes) was still referenced at collection ");
      cgci_shim_out_u64(&o, q_reports[i].gc);
      cgci_shim_out_str(&o, " after free from ");
      cgci_shim_out_sym(&o, q_reports[i].site);
      cgci_shim_out_str(&o, "\n");
    }
    if (q_dangling > q_nreports)
      cgci_shim_out_str(&o, "cgc-safe: (further dangling frees not listed)\n");
  }
  cgci_shim_out_str(&o, "cgc-safe: frees=");
  cgci_shim_out_u64(&o, atomic_load(&q_frees));
  cgci_shim_out_str(&o, " bytes=");
  cgci_shim_out_u64(&o, atomic_load(&q_bytes));
  cgci_shim_out_str(&o, " reclaimed=");
  cgci_shim_out_u64(&o, q_reclaimed);
  cgci_shim_out_str(&o, " dangling=");
  cgci_shim_out_u64(&o, q_dangling);
  cgci_shim_out_str(&o, " dangling_bytes=");
  cgci_shim_out_u64(&o, q_dangling_bytes);
  cgci_shim_out_str(&o, " unchecked=");
  cgci_shim_out_u64(&o, q_unchecked + atomic_load(&q_untracked));
  cgci_shim_out_str(&o, " collections=");
  cgci_shim_out_u64(&o, atomic_load(&q_epoch));
  cgci_shim_out_str(&o, "\n");
  cgci_shim_out_flush(&o);
}
