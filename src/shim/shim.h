/* shim.h -- internal interface between the files of the malloc
 * replacement (libcgc-preload.so): the exported malloc family in
 * malloc_shim.c, safe mode's quarantine in quarantine.c and leakcheck
 * mode in leakcheck.c.
 *
 * Design: docs/malloc-replacement.md.
 *
 * .assume.nomalloc: nothing in src/shim calls libc's malloc family (we are
 *   it).  Tables live in memory from mmap; text goes out through write(2)
 *   via the tiny formatter below, never stdio.
 * .assume.hidden: every name here is hidden (the whole shim is compiled
 *   with -fvisibility=hidden); only the libc allocation names and
 *   cgc_leakcheck_report are exported.
 */
#ifndef CGC_SHIM_SHIM_H
#define CGC_SHIM_SHIM_H
#ifndef CGC_BUILDING
#  error "src/shim/shim.h is internal to cgc"
#endif

#include <stddef.h>
#include <stdint.h>

/* ---- Modes (CGC_MODE) ------------------------------------------------ */

enum cgci_shim_mode {
  CGCI_SHIM_COLLECT = 0,  /* free releases now; GC reclaims leaks too */
  CGCI_SHIM_GC,           /* free ignored; only the GC reclaims */
  CGCI_SHIM_SAFE,         /* free zeroes + quarantines until a GC */
  CGCI_SHIM_LEAKCHECK     /* free releases; no GC; leaks reported */
};

extern int cgci_shim_mode;           /* enum cgci_shim_mode, set at init */

/* True while the calling thread is inside shim code that may re-enter
 * malloc (the unwinder, dladdr, the report).  Re-entrant calls skip site
 * recording and polling. */
extern __thread int cgci_shim_busy __attribute__((tls_model("initial-exec")));

/* ---- Output without malloc ------------------------------------------- */

struct cgci_shim_out {
  int fd;                 /* where flush writes */
  size_t len;             /* bytes in buf */
  char buf[1024];
};

void cgci_shim_out_init(struct cgci_shim_out *o, int fd);
void cgci_shim_out_str(struct cgci_shim_out *o, const char *s);
void cgci_shim_out_u64(struct cgci_shim_out *o, uint64_t v);
void cgci_shim_out_hex(struct cgci_shim_out *o, uintptr_t v);
void cgci_shim_out_flush(struct cgci_shim_out *o);
/* Append "SYM+0xOFF (OBJECT)" for code address PC, using dladdr.  Must
 * not be called with the world stopped (dladdr takes the loader lock). */
void cgci_shim_out_sym(struct cgci_shim_out *o, uintptr_t pc);

/* getenv replacement that works before libc's environ is set and never
 * allocates; NULL if unset. */
const char *cgci_shim_getenv(const char *name);

/* Anonymous read-write memory from mmap (zeroed), NULL on failure. */
void *cgci_shim_map(size_t bytes);
void cgci_shim_unmap(void *p, size_t bytes);

/* ---- Signals (signals.c) ---------------------------------------------- */

extern int cgci_shim_sig[2];        /* the collector's signals, if ours */
/* Around cgc_init: choose real-time signals for the collector unless the
 * user did, then start protecting them. */
void cgci_shim_signals_before_init(void);
void cgci_shim_signals_after_init(void);

/* ---- Safe mode (quarantine.c) ------------------------------------------ */

void cgci_quarantine_init(void);
/* P is a live block start of USABLE bytes freed by the program from
 * call site SITE: zero it and remember it until the next collection. */
void cgci_quarantine_free(void *p, size_t usable, uintptr_t site);
/* Part of the gc hook: classify the quarantined blocks. */
void cgci_quarantine_gc_hook(void);
/* Print the summary and, with CGC_SAFE_REPORT=1, each dangling free. */
void cgci_quarantine_report(int fd, int verbose);

/* ---- Leakcheck mode (leakcheck.c) -------------------------------------- */

void cgci_leak_init(void);
/* Remember live block P of N requested bytes with its allocation site. */
void cgci_leak_record(void *p, size_t n);
/* Update the size of P after an in-place realloc. */
void cgci_leak_resize(void *p, size_t n);
/* Forget P (about to be freed).  0 if P was not recorded. */
int cgci_leak_forget(void *p);
/* Part of the gc hook: count the unmarked recorded blocks. */
void cgci_leak_gc_hook(void);
/* Run a collection and report; returns the number of leaked objects. */
uint64_t cgci_leak_report(const char *why);
/* Called on malloc/free entry: runs a report requested by SIGUSR2. */
void cgci_leak_poll(void);
/* The destructor's report: may end the process with CGC_LEAK_EXITCODE. */
void cgci_leak_at_exit(void);

#endif /* CGC_SHIM_SHIM_H */
