/* config.h -- tunables, each with what it trades.  Every one can be
 * overridden at build time (for example CMAKE_C_FLAGS=-DCGCI_MIN_HEAP=...);
 * several also by an environment variable read at initialisation (see
 * docs/usage.md).
 */
#ifndef CGC_CORE_CONFIG_H
#define CGC_CORE_CONFIG_H

/* Address space reserved for the heap (PROT_NONE until used).  Larger costs
 * nothing but page-map address space (8 bytes per 4 KiB page, also only
 * reserved); it bounds the heap.  CGC_HEAP_RESERVE overrides at run time. */
#ifndef CGCI_HEAP_RESERVE
#  define CGCI_HEAP_RESERVE ((size_t)256 << 30)
#endif

/* Address space reserved for collector metadata (span descriptors, thread
 * records, side tables). */
#ifndef CGCI_META_RESERVE
#  define CGCI_META_RESERVE ((size_t)64 << 30)
#endif

/* Fresh pages at the heap frontier taken by spans of at most
 * CGCI_POPULATE_MAX_PAGES are populated ahead, this many bytes per call
 * (grow_frontier in pages.c; released pages taken for such a span are
 * populated too); 0 turns it off.  It is also how much of a large
 * block placed right after them can be resident before the program
 * touches it (check_mark's sparse_large_block allows 16 pages). */
#ifndef CGCI_POPULATE_STEP
#  define CGCI_POPULATE_STEP ((size_t)32 << 10)
#endif
#ifndef CGCI_POPULATE_MAX_PAGES
#  define CGCI_POPULATE_MAX_PAGES 8
#endif

/* Heap memory is committed in steps of this many bytes: fewer mprotect
 * calls versus a little more committed-but-unused address space. */
#ifndef CGCI_COMMIT_STEP
#  define CGCI_COMMIT_STEP ((size_t)4 << 20)
#endif

/* Largest slot of a small size class.  Larger objects get their own run of
 * pages: no internal fragmentation beyond page rounding, but one page-heap
 * operation (under the lock) per allocation. */
#ifndef CGCI_SMALL_MAX
#  define CGCI_SMALL_MAX 8192
#endif

/* Pages a small span is given when its class allows (pages.c,
 * cgci_sizeclass_init): 16 KiB, so that the classes up to 64 bytes get 256
 * slots per span. */
#ifndef CGCI_SPAN_PAGES
#  define CGCI_SPAN_PAGES 4
#endif

/* Free runs are kept in exact-size buckets up to this many pages and in one
 * address-ordered list above it. */
#ifndef CGCI_FREE_BUCKETS
#  define CGCI_FREE_BUCKETS 64
#endif

/* GOGC-like pacing: collect when bytes allocated since the last collection
 * exceed live * percent / 100.  Larger: fewer collections, more memory. */
#ifndef CGCI_GC_PERCENT
#  define CGCI_GC_PERCENT 100
#endif

/* The pacer's peak floor (collect.c, .pace.peak) halves in this many
 * milliseconds; 0 turns it off.  CGC_PEAK_HALFLIFE (ms) overrides. */
#ifndef CGCI_PEAK_HALFLIFE_MS
#  define CGCI_PEAK_HALFLIFE_MS 4000
#endif

/* No allocation-triggered collection until this many bytes have been
 * allocated since the last one: small programs never pay for collection. */
#ifndef CGCI_MIN_HEAP
#  define CGCI_MIN_HEAP ((size_t)4 << 20)
#endif

/* At the end of a collection, resident free pages beyond the allocation
 * budget until the next collection are returned to the OS with
 * MADV_DONTNEED.  Runs that have stayed free for at least this many
 * collections go first; younger ones only if that is not enough. */
#ifndef CGCI_RELEASE_AGE
#  define CGCI_RELEASE_AGE 1
#endif

/* A thread keeps at most this many bytes of explicitly freed objects per
 * size class on its own free list; the rest goes back to the spans, where
 * any thread can reuse it. */
#ifndef CGCI_LOCAL_FREE_MAX
#  define CGCI_LOCAL_FREE_MAX ((size_t)64 << 10)
#endif

/* Mark stack: initial and largest size in entries (16 bytes each).  Past
 * the largest, marking falls back to overflow recovery (mark.c). */
#ifndef CGCI_MSTACK_INIT
#  define CGCI_MSTACK_INIT ((size_t)1 << 16)
#endif
#ifndef CGCI_MSTACK_MAX
#  define CGCI_MSTACK_MAX ((size_t)1 << 26)
#endif

/* Large objects are scanned in chunks of this many bytes so one huge
 * array does not monopolise the mark stack. */
#ifndef CGCI_SCAN_CHUNK
#  define CGCI_SCAN_CHUNK ((size_t)64 << 10)
#endif

/* Heap size from which the heap asks for transparent huge pages; 0:
 * never (the default, see docs/design/heap.md; CGC_HUGEPAGES overrides). */
#ifndef CGCI_HUGE_MIN
#  define CGCI_HUGE_MIN ((size_t)0)
#endif

/* Large objects and foreign mappings of at least this many bytes are
 * scanned only where their pages are resident or swapped out
 * (cgci_os_each_touched); smaller ones are read whole. */
#ifndef CGCI_SPARSE_MIN
#  define CGCI_SPARSE_MIN ((size_t)256 << 10)
#endif

/* Stop-the-world: how long to wait for acknowledgements before signalling
 * the missing threads again, and how many rounds before giving up. */
#ifndef CGCI_STW_RETRY_MS
#  define CGCI_STW_RETRY_MS 50
#endif
#ifndef CGCI_STW_MAX_ROUNDS
#  define CGCI_STW_MAX_ROUNDS 600
#endif

#endif /* CGC_CORE_CONFIG_H */
