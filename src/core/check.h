/* check.h -- internal assertion levels.
 *
 * CGC_CHECK 0: none.  1 (default): cheap checks on slow paths.  2: also
 * per-object checks in the collector.  3: heap verification after each
 * collection.  A failed check prints file, line and expression and aborts.
 */
#ifndef CGC_CORE_CHECK_H
#define CGC_CORE_CHECK_H

#ifndef CGC_CHECK
#  ifdef NDEBUG
#    define CGC_CHECK 0
#  else
#    define CGC_CHECK 1
#  endif
#endif

void cgci_assert_fail(const char *expr, const char *file, int line)
  __attribute__((noreturn));

#define CGCI_CHECK_AT(level, e) \
  ((CGC_CHECK >= (level) && !(e)) ? cgci_assert_fail(#e, __FILE__, __LINE__) : (void)0)
#define cgc_assert(e)          CGCI_CHECK_AT(1, e)
#define cgc_assert_internal(e) CGCI_CHECK_AT(2, e)
#define cgc_assert_heap(e)     CGCI_CHECK_AT(3, e)

#endif /* CGC_CORE_CHECK_H */
