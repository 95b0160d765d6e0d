/* tsup.h -- helpers shared by the cgc Check suites.
 *
 * Conservative-collector hygiene.  A stale copy of a pointer in a register
 * or in a dead stack slot keeps its object alive, so a test that asserts
 * "X was reclaimed" must never hold X's address in the test body.  The
 * rules the suites follow:
 *
 *   - doomed objects are created and wired up only inside the helpers
 *     below (or through tsup_deep), which run on a padded, zeroed stack
 *     region well below the caller and return nothing pointer-like;
 *   - the test body keeps only tsup_obj_t records (in static storage, with
 *     the address stored complemented, so it is not a pointer), cleanup
 *     handles (ids) and weak handles (pointer-free cells);
 *   - before every collection the stack below the caller is cleared and
 *     the caller-saved registers are scrubbed (tsup_scrub);
 *   - callbacks count into atomics in static storage; the test body waits
 *     with cgc_wait_idle and asserts in the main thread.
 *
 * Every suite prints its seed first; a seed can be passed as argv[1] or
 * in TSUP_SEED.
 */
#ifndef TSUP_H
#define TSUP_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <check.h>

#include "cgc.h"

#define TSUP_NOINLINE __attribute__((noinline, noclone))

/* How long the suites wait for callbacks before calling it a hang. */
#define TSUP_WAIT_NS (30LL * 1000 * 1000 * 1000)

/* Number of static root slots (tsup_root). */
#define TSUP_NROOTS 16

/* ---- seeds and randomness --------------------------------------------- */

/* Parse the seed (argv[1], else TSUP_SEED, else DEFAULT), print it on
 * stderr before anything else happens, and remember it. */
unsigned long long tsup_seed_init(int argc, char **argv, unsigned long long def);
/* The main of every suite: tsup_seed_init(ARGC, ARGV, DEF), then run the
 * suite MAKE builds with Check's environment settings (CK_RUN_SUITE, ...);
 * 0 if every test passed, else 1. */
int tsup_main(int argc, char **argv, unsigned long long def, Suite *(*make)(void));
unsigned long long tsup_seed(void);
/* splitmix64 step. */
uint64_t tsup_rand(uint64_t *state);

/* ---- collector set-up --------------------------------------------------- */

/* cgc_init with the given settings, then turn allocation-triggered
 * collections off so that the suites decide exactly when a collection
 * happens. */
void tsup_init(int cleanup_threads, int on_demand, int strict);
/* tsup_init(-1, 0, 0): the default configuration. */
void tsup_setup_default(void);

/* ---- hygiene ------------------------------------------------------------ */

/* Zero a band of stack below the caller. */
void tsup_clear_stack(void);
/* tsup_clear_stack, then cgc_debug_scrub_stack. */
void tsup_scrub(void);
/* Call FN(CTX) with its frame well below the caller's, on a zeroed pad.
 * Pointers FN leaves behind in dead stack are then cleared by the next
 * tsup_scrub, while the shallow frames of the collection helpers never
 * overlap them. */
void tsup_deep(void (*fn)(void *), void *ctx);

/* Read an atomic counter (a function, so that assertion texts stay short). */
static inline int tsup_get(atomic_int *v) { return atomic_load(v); }

/* ---- collections and waiting ------------------------------------------- */

/* N times: scrub, cgc_collect.  Does not wait for callbacks. */
void tsup_collect(int n);
/* N times: scrub, cgc_collect, cgc_wait_idle (asserted to reach idle). */
void tsup_collect_wait(int n);
/* Assert that cgc_wait_idle(TSUP_WAIT_NS) reports idle. */
void tsup_wait(void);
/* Poll until *V >= VALUE or TIMEOUT_MS passed; returns the last value. */
int tsup_wait_for(atomic_int *v, int value, int timeout_ms);
void tsup_sleep_ms(int ms);

/* ---- hidden pointers ---------------------------------------------------- */

/* The complement of a user-space address is never a heap address. */
static inline uintptr_t tsup_hide(const void *p) { return ~(uintptr_t)p; }
static inline void *tsup_unhide(uintptr_t h) { return (void *)~h; }

/* ---- tracked objects ---------------------------------------------------- */

typedef struct tsup_obj {
  uintptr_t hid;        /* complemented base address */
  size_t size;          /* requested size */
  volatile int freed;   /* set by cgc_debug_on_free */
  cgc_weak_t weak;      /* short weak pointer to the base */
} tsup_obj_t;

/* Allocate a scanned object of SIZE bytes (>= 16), fill its pointer-sized
 * slots with zeros, arm the free flag and make a weak pointer to it. */
void tsup_new(tsup_obj_t *o, size_t size);
/* Store TO's base (or NULL) into pointer slot SLOT of FROM. */
void tsup_link(tsup_obj_t *from, size_t slot, tsup_obj_t *to);
/* Store a pointer to byte OFF of TO into slot SLOT of FROM. */
void tsup_link_interior(tsup_obj_t *from, size_t slot, tsup_obj_t *to,
                        size_t off);
/* Fill bytes [sizeof(void*)*NSLOTS, size) of O with V (pointer slots at
 * the start are left alone). */
void tsup_fill(tsup_obj_t *o, size_t nslots, unsigned char v);
/* 1 iff bytes [FROM, N) at P all equal V. */
int tsup_check_fill(const void *p, size_t from, size_t n, unsigned char v);
/* tsup_check_fill on a live tracked object. */
int tsup_obj_check_fill(tsup_obj_t *o, size_t nslots, unsigned char v);

int tsup_set_fin(tsup_obj_t *o, cgc_finalizer_fn fn, void *data);
/* Finalizer whose data is DATA_OBJ's base address. */
int tsup_set_fin_obj(tsup_obj_t *o, cgc_finalizer_fn fn, tsup_obj_t *data_obj);
/* Cleanup on base+OFF. */
int tsup_add_cln(tsup_obj_t *o, size_t off, cgc_cleanup_fn fn, void *arg,
                 cgc_cleanup_t *h);
/* Cleanup on base+OFF whose arg is ARG_OBJ's base + ARG_OFF. */
int tsup_add_cln_obj(tsup_obj_t *o, size_t off, cgc_cleanup_fn fn,
                     tsup_obj_t *arg_obj, size_t arg_off, cgc_cleanup_t *h);
/* Weak pointer (short or long) to base+OFF. */
int tsup_weak(tsup_obj_t *o, size_t off, cgc_weak_t *out);
int tsup_weak_long(tsup_obj_t *o, size_t off, cgc_weak_t *out);
int tsup_free(tsup_obj_t *o, size_t off);

/* Static roots: tsup_roots[SLOT] = base + OFF of O, or NULL. */
extern void *volatile tsup_roots[TSUP_NROOTS];
void tsup_root(int slot, tsup_obj_t *o, size_t off);
void tsup_unroot(int slot);

/* 1 iff cgc_weak_get(W) is not NULL. */
int tsup_weak_live(cgc_weak_t w);
/* 1 iff cgc_weak_get(W) equals the address hidden in HID. */
int tsup_weak_is(cgc_weak_t w, uintptr_t hid);
/* The hidden value of cgc_weak_get(W) (tsup_hide(NULL) if it is NULL). */
uintptr_t tsup_weak_hid(cgc_weak_t w);

/* Number of objects among O[0..N) whose free flag is set. */
int tsup_count_freed(const tsup_obj_t *o, int n);

#endif /* TSUP_H */
