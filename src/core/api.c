/* api.c -- public entry points that belong to no single subsystem:
 * collection, stack scrubbing, keep-alive.  Allocation entry points live in
 * heap/alloc.c, finalization in finalize/, roots in roots/, threads in
 * threads/; each checks its own arguments and reports misuse through
 * cgci_error (core/error.c).
 */
#include "core/internal.h"
#include <string.h>

void cgc_collect(void) {
  cgci_ensure_init();
  if (cgci_self == NULL) cgci_thread_register_self(-1);
  cgci_mark_start_helpers();
  cgci_roots_snapshot();
  cgci_lock();
  cgci_collect_locked("explicit");
  cgci_unlock();
  if (cgci_queue_needs_threads()) cgci_queue_ensure_threads();
}

/* clear_band -- zero a band of stack below the caller. */
static CGCI_NOINLINE void clear_band(void) {
  volatile char band[16384];
  memset((char *)band, 0, sizeof band);
  __asm__ __volatile__("" : : "r"(band) : "memory");
}

/* cgc_debug_scrub_stack -- overwrite the dead stack below the caller and
 * the caller-saved registers (they are dead at a call by the ABI; clobbering
 * them here makes sure no stale copy survives in them). */
CGCI_NOINLINE void cgc_debug_scrub_stack(void) {
  clear_band();
  __asm__ __volatile__(
    "xor %%eax, %%eax\n\t" "xor %%ecx, %%ecx\n\t" "xor %%edx, %%edx\n\t"
    "xor %%esi, %%esi\n\t" "xor %%edi, %%edi\n\t" "xor %%r8d, %%r8d\n\t"
    "xor %%r9d, %%r9d\n\t" "xor %%r10d, %%r10d\n\t" "xor %%r11d, %%r11d\n\t"
    "pxor %%xmm0, %%xmm0\n\t" "pxor %%xmm1, %%xmm1\n\t"
    ::: "rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11",
        "xmm0", "xmm1", "memory");
}

CGCI_NOINLINE void cgc_keep_alive(const volatile void *p) {
  __asm__ __volatile__("" : : "r"(p) : "memory");
}
