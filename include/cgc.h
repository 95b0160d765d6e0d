/* cgc.h -- public interface of the cgc conservative garbage collector.
 *
 * cgc is a conservative, stop-the-world, non-moving mark-sweep collector for
 * C programs on Linux x86-64.  It offers two finalization disciplines side by
 * side, plus weak pointers:
 *
 *   - resurrecting finalizers (Go's runtime.SetFinalizer): cgc_set_finalizer
 *   - non-resurrecting cleanups (Go's runtime.AddCleanup): cgc_add_cleanup
 *   - weak pointers (Go's weak.Pointer): cgc_weak_make / cgc_weak_get
 *
 * The normative semantics are in docs/semantics.md (for users) and in the
 * project's specification.  Names beginning with cgc_ / CGC_ are API;
 * anything else is private.
 *
 * Threads.  Any thread may call any function here.  Threads created with
 * pthread_create in a program linked with libcgc.so (or with
 * cgc_pthread_create) are registered automatically; a thread that first
 * allocates without being registered is registered on the spot.  Threads
 * that only hold pointers to collected memory in their stacks without ever
 * calling cgc must call cgc_register_thread().
 *
 * Errors.  Functions that can fail return 0 (CGC_OK) or a negative CGC_E*
 * code and report the misuse through the error hook (cgc_set_error_hook).
 * With strict mode on (cgc_config_t.strict or CGC_STRICT=1) a misuse prints
 * one line to stderr and aborts instead.
 */
#ifndef CGC_H
#define CGC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <pthread.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CGC_VERSION 100           /* major*10000 + minor*100 + patch */

#if defined(__GNUC__)
#  define CGC_API __attribute__((visibility("default")))
#  define CGC_MALLOC_ATTR __attribute__((malloc))
#else
#  define CGC_API
#  define CGC_MALLOC_ATTR
#endif

/* ---- Error codes ------------------------------------------------------ */

enum {
  CGC_OK       =  0,
  CGC_EINVAL   = -1,   /* bad argument (NULL, double free, bad alignment) */
  CGC_ENOTHEAP = -2,   /* pointer is not inside the collected heap */
  CGC_ENOTBASE = -3,   /* interior pointer where a block start is needed */
  CGC_EEXIST   = -4,   /* the object already has a finalizer */
  CGC_EARGPTR  = -5,   /* cleanup arg equals ptr: the cleanup would never run */
  CGC_EBUSY    = -6,   /* object has a finalizer, cannot be freed */
  CGC_ENOMEM   = -7,   /* heap limit reached or the OS refused memory */
  CGC_EDEADLK  = -8    /* waiting would deadlock (called from a callback) */
};

/* cgc_strerror -- a short English text for an error code. */
CGC_API const char *cgc_strerror(int err);

/* ---- Lifecycle -------------------------------------------------------- */

typedef struct cgc_config {
  int cleanup_threads;         /* K; -1 = default max(1, ncpu/4); 0 = run
                                  cleanups on the finalizer thread */
  int on_demand;               /* 1 = no callback threads: cgc_run_pending() */
  int strict;                  /* 1 = misuse aborts with a one-line message */
  int checkfinalizers;         /* 0, 1, 2: debug checker (CGC_DEBUG too) */
  int run_pending_at_shutdown; /* 1 = cgc_shutdown runs queued callbacks */
} cgc_config_t;

/* CGC_CONFIG_DEFAULT -- initializer with every field at its default. */
#define CGC_CONFIG_DEFAULT { -1, 0, 0, 0, 0 }

/* cgc_init -- initialize the collector.  Optional: the first allocation
 * initializes with defaults.  CFG may be NULL.  Environment variables
 * (CGC_GCPERCENT, CGC_MEMLIMIT, CGC_TRACE, CGC_STRICT, CGC_DEBUG, ...) are
 * read here; a config passed explicitly wins over them.  Calling it again
 * after the collector is running changes only the callback settings and
 * returns CGC_OK. */
CGC_API int cgc_init(const cgc_config_t *cfg);

/* cgc_shutdown -- stop the finalizer and cleanup threads.  Queued
 * callbacks are discarded unless run_pending_at_shutdown was set.  Memory
 * stays valid; the next cgc_init, cgc_set_finalizer, cgc_add_cleanup or
 * cgc_wait_idle starts the callback threads again. */
CGC_API void cgc_shutdown(void);

/* ---- Allocation ------------------------------------------------------- */

/* cgc_malloc -- N zeroed bytes, scanned for pointers, 16-byte aligned.
 * N == 0 gives a distinct minimum-sized object.  NULL (after the
 * out-of-memory hook ran) if the heap limit is reached. */
CGC_API void *cgc_malloc(size_t n) CGC_MALLOC_ATTR;

/* cgc_malloc_atomic -- N bytes that are never scanned (strings, numbers).
 * Not zeroed. */
CGC_API void *cgc_malloc_atomic(size_t n) CGC_MALLOC_ATTR;

/* cgc_malloc_uncollectable -- N zeroed, scanned bytes that are a root and
 * are never collected; release them with cgc_free. */
CGC_API void *cgc_malloc_uncollectable(size_t n) CGC_MALLOC_ATTR;

/* cgc_calloc -- zeroed, scanned array; NULL with CGC_EINVAL reported on
 * overflow of n*size. */
CGC_API void *cgc_calloc(size_t n, size_t size) CGC_MALLOC_ATTR;

/* cgc_realloc -- resize P (NULL: allocate).  The new block has P's kind
 * (scanned or atomic); the old block is freed if it moved.  N == 0 with a
 * non-NULL P frees P and returns NULL, as glibc does.  CGC_ENOTBASE etc.
 * are reported, and NULL returned, for a P that is not a block start. */
CGC_API void *cgc_realloc(void *p, size_t n) CGC_MALLOC_ATTR;

/* cgc_strdup -- a pointer-free copy of S. */
CGC_API char *cgc_strdup(const char *s) CGC_MALLOC_ATTR;

/* cgc_memalign -- N scanned, zeroed bytes aligned to ALIGN (a power of
 * two).  NULL and CGC_EINVAL reported if ALIGN is not a power of two. */
CGC_API void *cgc_memalign(size_t align, size_t n) CGC_MALLOC_ATTR;

/* cgc_usable_size -- bytes usable at P (a block start), 0 if P is NULL or
 * not a live block start. */
CGC_API size_t cgc_usable_size(void *p);

/* cgc_free -- release BASE now.  Its cleanups are queued, its weak pointers
 * read NULL at once.  CGC_OK for NULL.  CGC_EBUSY if it has a finalizer,
 * CGC_ENOTBASE for an interior pointer, CGC_ENOTHEAP for a pointer outside
 * the heap, CGC_EINVAL for a (detected) second free. */
CGC_API int cgc_free(void *base);

/* cgc_base -- the start of the block that P points into (interior and
 * one-past-the-end pointers count), or NULL if P is not in a live block. */
CGC_API void *cgc_base(void *p);

/* ---- Roots ------------------------------------------------------------ */

/* cgc_add_roots -- scan [LO, HI) conservatively at every collection.
 * CGC_EINVAL if LO > HI or either is NULL.  Data and bss of the program and
 * of every loaded shared library, thread stacks, registers and static TLS
 * are found automatically. */
CGC_API int cgc_add_roots(void *lo, void *hi);

/* cgc_remove_roots -- stop scanning a range given to cgc_add_roots (exact
 * bounds).  CGC_EINVAL if no such range. */
CGC_API int cgc_remove_roots(void *lo, void *hi);

/* ---- Threads ---------------------------------------------------------- */

/* cgc_register_thread -- make the calling thread known: its stack,
 * registers and TLS are scanned.  Idempotent.  */
CGC_API int cgc_register_thread(void);

/* cgc_unregister_thread -- the calling thread no longer holds pointers to
 * collected memory.  Threads are unregistered automatically at exit. */
CGC_API int cgc_unregister_thread(void);

/* cgc_pthread_create -- pthread_create that registers the new thread. */
CGC_API int cgc_pthread_create(pthread_t *thread, const pthread_attr_t *attr,
                               void *(*start)(void *), void *arg);

/* cgc_do_blocking -- call FN(ARG) in a state where the collector does not
 * need to stop this thread (no signal, no EINTR): FN must not touch
 * collected memory.  Common blocking libc calls (nanosleep, poll, select,
 * epoll_wait, sigsuspend, ...) are wrapped this way automatically. */
CGC_API void *cgc_do_blocking(void *(*fn)(void *), void *arg);

/* ---- Collection control ----------------------------------------------- */

/* cgc_collect -- run one full stop-the-world collection.  Returns when
 * every finalizer and cleanup it discovered is queued (not yet run). */
CGC_API void cgc_collect(void);

/* cgc_disable / cgc_enable -- nestable; while disabled no collection is
 * triggered by allocation (cgc_collect still collects). */
CGC_API void cgc_disable(void);
CGC_API void cgc_enable(void);

/* cgc_set_gc_percent -- collect when bytes allocated since the last
 * collection exceed live * percent / 100; negative = off.  Returns the old
 * value.  Default 100 or CGC_GCPERCENT. */
CGC_API int cgc_set_gc_percent(int percent);

/* cgc_set_heap_limit -- hard limit on heap bytes (0 = none).  At the limit
 * an allocation collects, retries, then calls the out-of-memory hook and
 * returns NULL.  CGC_EINVAL if the heap already exceeds BYTES after a
 * collection (the limit is then still set). */
CGC_API int cgc_set_heap_limit(size_t bytes);

typedef void (*cgc_oom_fn)(size_t request);
/* cgc_set_oom_hook -- called (no lock held) before an allocation returns
 * NULL.  Returns the previous hook. */
CGC_API cgc_oom_fn cgc_set_oom_hook(cgc_oom_fn fn);

typedef void (*cgc_error_fn)(int err, const char *func, const char *msg);
/* cgc_set_error_hook -- called on every misuse reported with an error
 * code (not in strict mode, which aborts).  Returns the previous hook. */
CGC_API cgc_error_fn cgc_set_error_hook(cgc_error_fn fn);

/* ---- FIN: resurrecting finalizers (Go SetFinalizer) --------------------- */

typedef void (*cgc_finalizer_fn)(void *obj, void *data);

/* cgc_set_finalizer -- call FN(OBJ, DATA) on the finalizer thread once,
 * after OBJ becomes unreachable from the roots and from every other
 * finalizable object.  OBJ must be a block start.  OBJ is alive during the
 * call and may be stored anywhere (resurrected); its memory comes back at
 * the first collection after FN returns, if it is unreachable again.  One
 * finalizer per object: CGC_EEXIST on a second one; FN == NULL clears.
 * A cycle through a finalizable object is never collected.  DATA is kept
 * alive while the finalizer is registered. */
CGC_API int cgc_set_finalizer(void *obj_base, cgc_finalizer_fn fn, void *data);

/* ---- CLN: non-resurrecting cleanups (Go AddCleanup) --------------------- */

typedef void (*cgc_cleanup_fn)(void *arg);
typedef struct cgc_cleanup { uint64_t id; } cgc_cleanup_t; /* id only */

/* cgc_add_cleanup -- call FN(ARG) on a cleanup thread after the object
 * that PTR points into (interior pointers allowed) becomes unreachable.
 * The object is reclaimed by the collection that queues FN and is never
 * passed to it.  Any number per object.  ARG is a root until FN returns:
 * if ARG reaches the object it never dies (CGC_EARGPTR when ARG == PTR).
 * OUT may be NULL. */
CGC_API int cgc_add_cleanup(void *ptr, cgc_cleanup_fn fn, void *arg,
                            cgc_cleanup_t *out);

/* cgc_cleanup_stop -- cancel; true iff this call removed a cleanup that
 * had not yet been queued.  Stale, zero or repeated handles give false. */
CGC_API bool cgc_cleanup_stop(cgc_cleanup_t h);

/* ---- WEAK: weak pointers (Go weak.Pointer; short) ---------------------- */

typedef struct cgc_weak { void *cell; } cgc_weak_t; /* zero = null weak */

/* cgc_weak_make -- a weak pointer to P (interior allowed; NULL gives the
 * null weak).  Weak pointers made from equal pointers compare equal while
 * the object lives and after.  It reads NULL as soon as the object is found
 * unreachable (before its finalizer runs or its cleanups are queued). */
CGC_API int cgc_weak_make(void *p, cgc_weak_t *out);

/* cgc_weak_get -- the pointer, or NULL if the object was found dead. */
CGC_API void *cgc_weak_get(cgc_weak_t w);

/* cgc_weak_equal -- true iff made from the same pointer (same handle). */
CGC_API bool cgc_weak_equal(cgc_weak_t a, cgc_weak_t b);

/* cgc_weak_make_long -- a long weak pointer (Boehm long link, .NET
 * trackResurrection): cleared only when the storage is reclaimed, so it
 * survives finalization and resurrection.  For comparisons. */
CGC_API int cgc_weak_make_long(void *p, cgc_weak_t *out);

/* ---- Keep-alive --------------------------------------------------------- */

#if defined(__GNUC__)
#  define CGC_KEEP_ALIVE(p) __asm__ __volatile__("" : : "g"(p) : "memory")
#else
CGC_API void cgc_keep_alive(const volatile void *p);
#  define CGC_KEEP_ALIVE(p) cgc_keep_alive((const volatile void *)(p))
#endif

/* ---- Callback execution, synchronization, test hooks ------------------- */

/* cgc_wait_idle -- wait until both queues are empty and no callback runs.
 * TIMEOUT_NS < 0 waits forever.  1 idle, 0 timeout, CGC_EDEADLK when
 * called from a finalizer or cleanup. */
CGC_API int cgc_wait_idle(int64_t timeout_ns);

/* cgc_run_pending -- run up to MAX queued callbacks (MAX <= 0: all) on the
 * calling thread; returns how many ran.  Meant for on-demand mode. */
CGC_API int cgc_run_pending(int max);

/* cgc_pause_callbacks -- while on, callback threads take no new entries. */
CGC_API void cgc_pause_callbacks(int on);

/* cgc_debug_on_free -- *FLAG = 1 when BASE's storage is reclaimed.  FLAG
 * must live outside the collected heap.  Does not keep BASE alive. */
CGC_API void cgc_debug_on_free(void *base, volatile int *flag);

/* cgc_debug_scrub_stack -- overwrite the dead stack below the caller and
 * the caller-saved registers, so stale copies of pointers do not keep
 * objects alive. */
CGC_API void cgc_debug_scrub_stack(void);

/* ---- Statistics --------------------------------------------------------- */

typedef struct cgc_stats {
  uint64_t collections;
  uint64_t finalizers_registered, finalizers_queued, finalizers_run;
  uint64_t cleanups_registered, cleanups_queued, cleanups_run,
           cleanups_cancelled;
  uint64_t weak_created, weak_cleared;
  uint64_t objects_live, bytes_live, objects_freed, bytes_freed;
  uint64_t fin_queue_len, cln_queue_len;   /* instantaneous */
  /* extensions beyond the specification's list */
  uint64_t pause_total_ns, pause_max_ns;   /* stop-the-world time */
  uint64_t heap_size;         /* bytes of heap pages held (not released) */
  uint64_t heap_reserved;     /* bytes of address space reserved */
  uint64_t bytes_allocated;   /* cumulative bytes handed out */
  uint64_t objects_allocated; /* cumulative objects handed out */
  uint64_t bytes_released;    /* cumulative bytes returned to the OS */
  uint64_t threads;           /* registered threads now */
  uint64_t gc_goal;           /* heap bytes at which the next GC starts */
  uint64_t mark_ns_total, sweep_ns_total;
  uint64_t bytes_marked_total; /* sum over collections of bytes marked */
  uint64_t finalizer_cycles_seen; /* checker: finalizer cycles reported */
} cgc_stats_t;

CGC_API void cgc_get_stats(cgc_stats_t *out);

/* cgc_print_stats -- one summary block to FD (as CGC_SHOW_STATS=1). */
CGC_API void cgc_print_stats(int fd);

#ifdef __cplusplus
}
#endif
#endif /* CGC_H */
