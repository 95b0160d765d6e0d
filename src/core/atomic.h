/* atomic.h -- the one place cgc touches libatomic_ops.
 *
 * Every atomic access in the collector goes through AO_* from
 * libatomic_ops, named here by the ordering it needs.  Only lock-free
 * primitives are used, so they are safe inside the stop-the-world signal
 * handler (threads/stw.c).
 */
#ifndef CGC_CORE_ATOMIC_H
#define CGC_CORE_ATOMIC_H
#include <atomic_ops.h>

#if !defined(AO_HAVE_load_acquire) || !defined(AO_HAVE_store_release) \
    || !defined(AO_HAVE_fetch_and_add) || !defined(AO_HAVE_compare_and_swap_full) \
    || !defined(AO_HAVE_nop_full)
#  error "cgc needs lock-free AO_load_acquire, AO_store_release, AO_fetch_and_add, CAS and AO_nop_full"
#endif

#define cgci_load_acquire(p)      AO_load_acquire(p)
#define cgci_load_relaxed(p)      AO_load(p)
#define cgci_store_release(p, v)  AO_store_release((p), (AO_t)(v))
#define cgci_store_relaxed(p, v)  AO_store((p), (AO_t)(v))
#define cgci_fetch_add(p, v)      AO_fetch_and_add((p), (AO_t)(v))
#define cgci_cas(p, o, n)         AO_compare_and_swap_full((p), (AO_t)(o), (AO_t)(n))
#define cgci_fence()              AO_nop_full()

#endif /* CGC_CORE_ATOMIC_H */
