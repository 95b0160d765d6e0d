/* roots.c -- find and scan every root a C program has.
 *
 * Design: docs/design/roots.md.  Called with the world stopped.
 *
 *   1. Writable PT_LOAD segments of the executable and of every loaded
 *      shared object, enumerated afresh at each collection with
 *      dl_iterate_phdr (so dlopen and dlclose just work), minus their
 *      PT_GNU_RELRO part (read-only after relocation) and minus the
 *      collector's own globals (cgci_g, which holds heap addresses that are
 *      not references).
 *   2. Ranges registered with cgc_add_roots.
 *   3. Every registered thread's stack from its saved stack pointer to its
 *      base, the registers it saved (in the signal frame, or in its record
 *      when blocked), and its static TLS block and thread control block:
 *      [tp - (static TLS size - TCB size), tp + TCB size).  Boehm misses
 *      objects referenced only from __thread variables; cgc does not.
 *   4. Uncollectable blocks.
 *   5. With cgci_ext_scan_mappings(1): every writable private anonymous
 *      mapping cgc does not own (for the malloc shim).
 *
 * Deadlock note: dl_iterate_phdr takes the loader lock.  The collector
 * calls it before stopping the world (collect.c holds it across the whole
 * pause by running the collection inside the iteration callback), so no
 * stopped thread can hold it.
 */
#include "core/internal.h"
#include <dlfcn.h>
#include <link.h>
#include <setjmp.h>
#include <string.h>

void cgci_roots_init(void) {
  void (*get_static)(size_t *, size_t *) =
    (void (*)(size_t *, size_t *))dlsym(RTLD_DEFAULT, "_dl_get_tls_static_info");
  const uint32_t *tcb = (const uint32_t *)dlsym(RTLD_DEFAULT, "_thread_db_sizeof_pthread");
  size_t size = 0, align = 0;
  if (get_static) get_static(&size, &align);
  cgci_g.tcb_size = tcb ? *tcb : 0;
  if (size != 0 && cgci_g.tcb_size != 0 && size > cgci_g.tcb_size)
    cgci_g.static_tls_size = size - cgci_g.tcb_size;
  else {
    /* not glibc, or a glibc without these private symbols: TLS is then
     * not scanned (documented in docs/usage.md) */
    cgci_g.static_tls_size = 0;
    cgci_g.tcb_size = 0;
  }
}

/* ---- scanning a range minus cgci_g ------------------------------------------ */

static void scan_root(uintptr_t lo, uintptr_t hi) {
  uintptr_t glo = (uintptr_t)&cgci_g, ghi = glo + sizeof cgci_g;
  if (hi <= lo) return;
  cgci_g.root_bytes += hi - lo;
  if (hi <= glo || lo >= ghi) { cgci_mark_range(lo, hi); return; }
  if (lo < glo) cgci_mark_range(lo, glo);
  if (hi > ghi) cgci_mark_range(ghi, hi);
}

/* ---- data segments ----------------------------------------------------------------- */

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *ctx) {
  (void)size; (void)ctx;
  uintptr_t relro_lo = 0, relro_hi = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type == PT_GNU_RELRO) {
      relro_lo = info->dlpi_addr + ph->p_vaddr;
      relro_hi = relro_lo + ph->p_memsz;
    }
  }
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_W)) continue;
    uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
    uintptr_t hi = lo + ph->p_memsz;
    if (relro_hi > relro_lo && relro_lo < hi && relro_hi > lo) {
      /* cut the RELRO part out (it sits at the start in practice) */
      if (relro_lo > lo) scan_root(lo, relro_lo);
      if (relro_hi < hi) scan_root(relro_hi, hi);
    } else {
      scan_root(lo, hi);
    }
  }
  return 0;
}

/* ---- registered ranges ------------------------------------------------------------ */

int cgc_add_roots(void *lo, void *hi) {
  if (lo == NULL || hi == NULL || (uintptr_t)lo > (uintptr_t)hi)
    return cgci_error(CGC_EINVAL, "cgc_add_roots", "invalid range");
  cgci_ensure_init();
  cgci_lock();
  if (cgci_g.nroots == cgci_g.roots_cap) {
    size_t ncap = cgci_g.roots_cap ? cgci_g.roots_cap * 2 : 64;
    struct cgci_root *n = cgci_meta_alloc_big(ncap * sizeof *n);
    if (cgci_g.roots) {
      memcpy(n, cgci_g.roots, cgci_g.nroots * sizeof *n);
      cgci_meta_free_big(cgci_g.roots, cgci_g.roots_cap * sizeof *n);
    }
    cgci_g.roots = n;
    cgci_g.roots_cap = ncap;
  }
  cgci_g.roots[cgci_g.nroots].lo = (uintptr_t)lo;
  cgci_g.roots[cgci_g.nroots].hi = (uintptr_t)hi;
  cgci_g.nroots++;
  cgci_unlock();
  return CGC_OK;
}

int cgc_remove_roots(void *lo, void *hi) {
  cgci_ensure_init();
  cgci_lock();
  for (size_t i = 0; i < cgci_g.nroots; i++)
    if (cgci_g.roots[i].lo == (uintptr_t)lo && cgci_g.roots[i].hi == (uintptr_t)hi) {
      cgci_g.roots[i] = cgci_g.roots[--cgci_g.nroots];
      cgci_unlock();
      return CGC_OK;
    }
  cgci_unlock();
  return cgci_error(CGC_EINVAL, "cgc_remove_roots", "no such root range");
}

/* ---- threads ----------------------------------------------------------------------- */

/* cgci_roots_thread_tls -- the static TLS block and TCB of thread T. */
void cgci_roots_thread_tls(struct cgci_thread *t) {
  if (t->tp == 0 || cgci_g.static_tls_size == 0) return;
  scan_root(t->tp - cgci_g.static_tls_size, t->tp + cgci_g.tcb_size);
}

/* scan_self -- the collecting thread: spill callee-saved registers into a
 * jmp_buf in this frame, then scan from here to the stack base. */
static CGCI_NOINLINE void scan_self(struct cgci_thread *t) {
  jmp_buf regs;
  setjmp(regs);
  __builtin_unwind_init();
  uintptr_t sp = (uintptr_t)__builtin_frame_address(0);
  /* include the jmp_buf, which may sit below the frame address */
  uintptr_t lo = (uintptr_t)&regs < sp ? (uintptr_t)&regs : sp;
  scan_root(lo, t->stack_base);
  cgci_roots_thread_tls(t);
  __asm__ __volatile__("" : : "r"(&regs) : "memory");
}

static void scan_thread(struct cgci_thread *t) {
  if (t == cgci_self) { scan_self(t); return; }
  uintptr_t sp = (uintptr_t)AO_load(&t->stop_sp);
  if (sp != 0 && sp < t->stack_base) scan_root(sp, t->stack_base);
  if (AO_load(&t->state) == CGCI_TS_BLOCKED)
    scan_root((uintptr_t)t->blocked_regs, (uintptr_t)(t->blocked_regs + 8));
  cgci_roots_thread_tls(t);
}

/* ---- uncollectable blocks ----------------------------------------------------------- */

static void scan_uncoll(struct cgci_span *s, void *ctx) {
  (void)ctx;
  if (s->kind != CGCI_KIND_UNCOLL) return;
  if (s->state == CGCI_SPAN_LARGE) { cgci_mark_range(s->start, s->start + s->large_bytes); return; }
  for (uint32_t i = 0; i < s->nobj; i++)
    if (cgci_bit_get(s, i)) {
      uintptr_t b = s->start + (uintptr_t)i * s->slot;
      cgci_mark_range(b, b + s->slot);
    }
}

/* ---- foreign mappings (malloc shim) -------------------------------------------------- */

static bool overlaps(uintptr_t lo, uintptr_t hi, uintptr_t a, size_t len) {
  return lo < a + len && hi > a;
}

static void maps_cb(uintptr_t lo, uintptr_t hi, const char *perms, const char *name, void *ctx) {
  (void)ctx;
  if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p') return;
  if (name[0] != 0) return;        /* file-backed, [stack], [heap]... */
  if (overlaps(lo, hi, cgci_g.heap_lo, cgci_g.heap_reserved)) return;
  if (overlaps(lo, hi, cgci_g.meta_lo, cgci_g.meta_reserved)) return;
  if (overlaps(lo, hi, (uintptr_t)cgci_g.pagemap,
               (cgci_g.heap_reserved >> CGCI_PAGE_SHIFT) * sizeof(void *))) return;
  if (cgci_mark_stack_owned(lo, hi)) return;
  for (struct cgci_thread *t = cgci_g.threads; t; t = t->next)
    if (t->stack_base > lo && t->stack_base <= hi) return;   /* a thread stack */
  scan_root(lo, hi);
}

void cgci_ext_scan_mappings(int on) {
  cgci_ensure_init();
  cgci_g.scan_mappings = on;
}

/* cgci_roots_mark_all -- scan every root (world stopped, loader lock held
 * by this thread). */
void cgci_roots_mark_all(void) {
  cgci_g.root_bytes = 0;
  dl_iterate_phdr(phdr_cb, NULL);
  for (size_t i = 0; i < cgci_g.nroots; i++)
    scan_root(cgci_g.roots[i].lo, cgci_g.roots[i].hi);
  for (struct cgci_thread *t = cgci_g.threads; t; t = t->next) scan_thread(t);
  cgci_each_span(scan_uncoll, NULL);
  if (cgci_g.scan_mappings) cgci_os_each_mapping(maps_cb, NULL);
}
