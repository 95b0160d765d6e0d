/* ext.h -- hooks the collector offers to its own extensions (the malloc
 * shim in src/shim).  Not public API: only code built inside this tree may
 * include it (CGC_BUILDING).
 */
#ifndef CGC_CORE_EXT_H
#define CGC_CORE_EXT_H
#ifndef CGC_BUILDING
#  error "src/core/ext.h is internal to cgc"
#endif
#include <stddef.h>

/* A hook called once per collection with the world stopped and the
 * collector lock held, after marking and after finalizers and cleanups were
 * queued, before unmarked blocks become reusable.  It must not allocate,
 * take locks, call cgc_* functions or libc functions that lock (stdio,
 * malloc).  cgci_ext_is_marked() answers for any block inside it. */
typedef void (*cgci_gc_hook_fn)(void);
void cgci_ext_set_gc_hook(cgci_gc_hook_fn fn);

/* 1 if BASE (a block start) was marked reachable by the collection in
 * progress (inside the gc hook) or, outside it, by the latest collection or
 * allocated since.  0 otherwise (also for non-heap pointers). */
int cgci_ext_is_marked(const void *base);

/* Scan every writable private mapping of the process that cgc does not own
 * (read from /proc/self/maps at each collection) as a root.  For the
 * LD_PRELOAD shim: programs keep malloc pointers in memory they mmap. */
void cgci_ext_scan_mappings(int on);

/* Allocation that never triggers a collection and never calls the OOM
 * hook: for allocations made while libc or the loader hold locks. */
void *cgci_ext_malloc_nogc(size_t n);

/* Free without error reporting: returns the CGC_E* code silently. */
int cgci_ext_free_quiet(void *p);

/* Memory that cgc owns and never scans, for the shim's own tables
 * (quarantine, allocation sites).  Do not use plain mmap for tables that
 * hold heap addresses: with cgci_ext_scan_mappings(1) a foreign mapping is
 * a root and would keep every object it names alive.  Zero-filled. */
void *cgci_ext_map(size_t bytes);
void  cgci_ext_unmap(void *p, size_t bytes);

/* Call with 1 before and 0 after a dlopen or dlclose: the collector then
 * knows its snapshot of data segments is stale.  The core's own dlopen and
 * dlclose wrappers (weak) do this; a shim that defines them must too. */
void cgci_ext_dl_change(int begin);

/* Is the collector initialised and not inside its own initialisation on
 * this thread?  The shim serves allocations made during initialisation
 * from a static bootstrap area. */
int cgci_ext_ready(void);

#endif /* CGC_CORE_EXT_H */
