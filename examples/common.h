/* common.h -- small helpers shared by the cgc examples.
 *
 * The examples show, on the real collector, what happens to an object at
 * each collection.  To make that output deterministic under a conservative
 * collector they all follow the same hygiene:
 *
 *   - doomed objects are created in __attribute__((noinline)) helpers, so no
 *     copy of their address stays in main's live stack frame or registers;
 *   - the examples never keep a raw address of a doomed object in scanned
 *     memory: an ex_track_t stores it complemented (~address), which is not
 *     a pointer, plus a debug "freed" flag and a weak pointer;
 *   - ex_gc() calls cgc_debug_scrub_stack() before cgc_collect() and
 *     cgc_wait_idle(-1) after it, so the callbacks discovered by that
 *     collection have run when it prints what happened.
 *
 * Callbacks do not print directly (several cleanup threads may run at the
 * same time); they append a line to a log with ex_log(), and ex_gc() prints
 * the lines of each collection in sorted order.
 */
#ifndef CGC_EXAMPLES_COMMON_H
#define CGC_EXAMPLES_COMMON_H

#include <stdint.h>
#include <cgc.h>

#define EX_NOINLINE __attribute__((noinline))

/* One object under observation.  Lives in static storage (a root, but it
 * holds no pointer to the object: the address is complemented). */
typedef struct ex_track {
  const char *name;
  uintptr_t hidden;        /* ~address of the object */
  volatile int freed;      /* set to 1 by the collector (cgc_debug_on_free) */
  cgc_weak_t weak;         /* a short weak pointer made at creation */
} ex_track_t;

/* ex_begin -- print the title (if not NULL); line-buffer stdout so the output of the
 * program and of the collector (stderr) interleave in order; turn off
 * automatic collections, so that only the example's own cgc_collect()
 * calls run. */
void ex_begin(const char *title);

/* ex_section -- print a sub-heading. */
void ex_section(const char *title);

/* ex_track -- start observing OBJ (a block start) under NAME: remember its
 * address complemented, ask the collector to set T->freed when its storage
 * is reclaimed, and make a short weak pointer to it. */
void ex_track(ex_track_t *t, const char *name, void *obj);

/* ex_is -- does P point to T's object?  (Compares with the hidden
 * address; safe to call from callbacks.) */
int ex_is(const ex_track_t *t, const void *p);

/* ex_weak_show -- "NULL", or T's name if W reads as T's object, or
 * "another object". */
const char *ex_weak_show(cgc_weak_t w, const ex_track_t *t);

/* ex_weak_alive -- 1 if W does not read NULL (the pointer is never handed
 * back to the caller, so no copy of it lands in the caller's frame). */
int ex_weak_alive(cgc_weak_t w);

/* ex_show -- one line: "NAME: freed=yes|no  weak=..." for each tracked
 * object in the NULL-terminated list. */
void ex_show(ex_track_t *const *list);

/* ex_gc -- scrub the stack, run one collection, wait until every callback
 * it queued has run, then print "GC n" and the callbacks that ran.
 * Returns n (1 for the first collection of the program). */
int ex_gc(void);

/* ex_gc_quiet -- the same without printing anything. */
void ex_gc_quiet(void);

/* ex_log -- append one line to the callback log (thread-safe; use it from
 * finalizers and cleanups). */
void ex_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ex_flush_log -- print and clear the callback log (sorted). */
void ex_flush_log(void);

/* ex_on_main_thread -- 1 if the caller is the thread that called
 * ex_begin. */
int ex_on_main_thread(void);

/* ex_expect -- print "[ok] what" or "[FAIL] what" and count failures. */
#define ex_expect(cond, ...) ex_expect_at((cond) ? 1 : 0, __FILE__, __LINE__, __VA_ARGS__)
void ex_expect_at(int ok, const char *file, int line, const char *fmt, ...)
  __attribute__((format(printf, 4, 5)));

/* ex_failed -- how many expectations have failed so far. */
int ex_failed(void);

/* ex_finish -- print the verdict; the value to return from main (0 if
 * every expectation held, 1 otherwise). */
int ex_finish(void);

#endif /* CGC_EXAMPLES_COMMON_H */
