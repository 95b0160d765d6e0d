/* check_sweep.c -- unit: sweeping, reuse and returning memory.
 *
 * White-box (src/sweep/sweep.c, src/heap/pages.c .inv.runs,
 * .inv.freeflags; alloc.c explicit free):
 *   - an explicitly freed block is handed out again by the next
 *     allocation of its class (small, atomic, large);
 *   - slots of unreachable objects are reused by later allocations of the
 *     class without growing the heap frontier;
 *   - spans whose objects all die go back to the page heap (pages_in_use
 *     falls), explicitly freed uncollectable spans too;
 *   - idle free runs are returned to the OS after a collection or two
 *     (stats bytes_released grows, heap_size shrinks);
 *   - freed large objects, collected or explicitly freed, leave one
 *     coalesced free run.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tsup.h"

#define NREUSE 2000
#define REUSE_SIZE 1500

static uintptr_t hid[NREUSE];
static tsup_obj_t big[3];

static void setup(void) { tsup_init(-1, 1, 0); }

/* ---- explicit free -------------------------------------------------------- */

START_TEST(explicit_free_reused)
{
  static const size_t sizes[] = { 0, 48, 200, 3000, 8000 };

  setup();
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    char *p = cgc_malloc(sizes[i]), *a = cgc_malloc_atomic(sizes[i]);

    memset(p, 0x5A, sizes[i]);
    ck_assert_int_eq(cgc_free(p), CGC_OK);
    ck_assert_int_eq(cgc_free(a), CGC_OK);
    ck_assert_ptr_eq(cgc_malloc(sizes[i]), p);
    ck_assert(tsup_check_fill(p, 0, sizes[i], 0));   /* zeroed again */
    ck_assert_ptr_eq(cgc_malloc_atomic(sizes[i]), a);
  }
}
END_TEST

START_TEST(explicit_free_large_reused)
{
  char *p, *q;

  setup();
  p = cgc_malloc(5 * 4096);
  memset(p, 0x77, 5 * 4096);
  ck_assert_int_eq(cgc_free(p), CGC_OK);
  q = cgc_malloc(5 * 4096);
  ck_assert_ptr_eq(q, p);
  ck_assert(tsup_check_fill(q, 0, 5 * 4096, 0));
}
END_TEST

/* A whole span of uncollectable blocks, freed one by one: the span goes
 * back to the page heap when the last one goes. */
START_TEST(explicit_free_returns_span)
{
  void *u[CGCI_MAX_OBJS];
  struct cgci_span *s;
  size_t before, nobj;
  uint32_t sc;

  setup();
  u[0] = cgc_malloc_uncollectable(2000);
  s = cgci_span_of((uintptr_t)u[0]);
  nobj = s->nobj;
  sc = s->sc;
  ck_assert_uint_eq(s->nmarked, 1);                 /* a fresh span */
  for (size_t i = 1; i < nobj; i++) {
    u[i] = cgc_malloc_uncollectable(2000);
    ck_assert_ptr_eq(cgci_span_of((uintptr_t)u[i]), s);
  }
  ck_assert_uint_eq(s->nmarked, nobj);
  before = cgci_g.pages_in_use;
  for (size_t i = 0; i < nobj; i++)
    ck_assert_int_eq(cgc_free(u[i]), CGC_OK);
  ck_assert_uint_eq(cgci_g.pages_in_use, before - cgci_g.class_pages[sc]);
  ck_assert_ptr_null(cgci_span_of((uintptr_t)u[0]));
}
END_TEST

/* ---- reuse of unreachable objects ------------------------------------------ */

static void alloc_reuse_set(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < NREUSE; i++) {
    void *p = cgc_malloc(REUSE_SIZE);

    ck_assert_ptr_nonnull(p);
    hid[i] = tsup_hide(p);
  }
}

static int cmp_uptr(const void *a, const void *b)
{
  uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
  return x < y ? -1 : x > y;
}

START_TEST(unreachable_reused)
{
  size_t frontier;
  int reused = 0;

  setup();
  tsup_deep(alloc_reuse_set, NULL);
  qsort(hid, NREUSE, sizeof hid[0], cmp_uptr);
  tsup_collect(2);
  frontier = cgci_g.heap_used;
  for (int i = 0; i < NREUSE; i++) {
    uintptr_t h = tsup_hide(cgc_malloc(REUSE_SIZE));

    reused += bsearch(&h, hid, NREUSE, sizeof hid[0], cmp_uptr) != NULL;
  }
  ck_assert_msg(reused >= NREUSE / 2, "only %d of %d slots reused", reused,
                NREUSE);
  ck_assert_uint_eq(cgci_g.heap_used, frontier);
}
END_TEST

/* ---- spans back to the page heap, memory back to the OS --------------------- */

#define RELEASE_OBJS 24576       /* 24 MiB of 1 KiB objects */

static void alloc_release_set(void *ctx)
{
  (void)ctx;
  for (int i = 0; i < RELEASE_OBJS; i++)
    ck_assert_ptr_nonnull(cgc_malloc(1000));
}

START_TEST(dead_spans_released)
{
  size_t p0, p1, p2;
  cgc_stats_t s1, s2;

  ck_assert_int_eq(setenv("CGC_MIN_HEAP", "65536", 1), 0);
  setup();
  cgc_set_gc_percent(100);       /* a finite goal: idle runs go back */
  cgc_disable();                 /* but collections only when asked */
  tsup_collect(1);
  p0 = cgci_g.pages_in_use;
  tsup_deep(alloc_release_set, NULL);
  p1 = cgci_g.pages_in_use;
  ck_assert_uint_ge(p1 - p0, (RELEASE_OBJS * 1000) >> CGCI_PAGE_SHIFT);
  cgc_get_stats(&s1);
  tsup_collect(1);
  p2 = cgci_g.pages_in_use;
  ck_assert_msg(p2 + (p1 - p0) * 9 / 10 <= p1,
                "pages in use %zu -> %zu -> %zu", p0, p1, p2);
  tsup_collect(2);
  cgc_get_stats(&s2);
  /* resident free memory is cut to the budget (docs/design/heap.md 6),
   * which grows with the roots: several MB in a sanitizer build */
  size_t keep = cgci_g.trigger + cgci_g.trigger / 8;
  ck_assert_msg(keep <= ((size_t)RELEASE_OBJS * 1000) / 2, "budget %zu (roots %zu)", keep,
                cgci_g.root_bytes);
  ck_assert_uint_le(cgci_g.pages_free_committed << CGCI_PAGE_SHIFT, keep);
  ck_assert_uint_ge(s2.bytes_released - s1.bytes_released,
                    (size_t)RELEASE_OBJS * 1000 - keep - ((size_t)1 << 20));
  ck_assert_uint_le(s2.heap_size + ((size_t)RELEASE_OBJS * 1000 - keep) / 2, s1.heap_size);
  cgc_enable();
}
END_TEST

/* ---- large objects: freed and coalesced ------------------------------------- */

#define BIG_PAGES 5

static void assert_one_run(void)
{
  uintptr_t a = (uintptr_t)tsup_unhide(big[0].hid);
  uintptr_t end = a + 3 * (BIG_PAGES << CGCI_PAGE_SHIFT);
  struct cgci_span *r = cgci_g.pagemap[(a - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT];

  ck_assert_ptr_nonnull(r);
  ck_assert_int_eq(r->state, CGCI_SPAN_FREE);
  ck_assert_uint_le(r->start, a);
  ck_assert_uint_ge(r->start + ((uintptr_t)r->npages << CGCI_PAGE_SHIFT), end);
  for (int i = 0; i < 3; i++)
    ck_assert_ptr_null(cgc_base(tsup_unhide(big[i].hid)));
}

static void alloc_bigs(void)
{
  for (int i = 0; i < 3; i++)
    tsup_new(&big[i], (BIG_PAGES << CGCI_PAGE_SHIFT) - 1);
  for (int i = 1; i < 3; i++)
    ck_assert_msg(big[i].hid == big[0].hid - (uintptr_t)i * (BIG_PAGES << CGCI_PAGE_SHIFT),
                  "large objects not adjacent");
}

START_TEST(large_collected_coalesced)
{
  setup();
  alloc_bigs();
  tsup_collect(2);
  ck_assert_int_eq(tsup_count_freed(big, 3), 3);
  assert_one_run();
}
END_TEST

START_TEST(large_freed_coalesced)
{
  setup();
  alloc_bigs();
  ck_assert_int_eq(tsup_free(&big[1], 0), CGC_OK);
  ck_assert_int_eq(tsup_free(&big[0], 0), CGC_OK);
  ck_assert_int_eq(tsup_free(&big[2], 0), CGC_OK);
  assert_one_run();
  ck_assert_int_eq(tsup_count_freed(big, 3), 3);
}
END_TEST

static Suite *sweep_suite(void)
{
  Suite *s = suite_create("sweep");
  TCase *tc = tcase_create("sweep");

  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, explicit_free_reused);
  tcase_add_test(tc, explicit_free_large_reused);
  tcase_add_test(tc, explicit_free_returns_span);
  tcase_add_test(tc, unreachable_reused);
  tcase_add_test(tc, dead_spans_released);
  tcase_add_test(tc, large_collected_coalesced);
  tcase_add_test(tc, large_freed_coalesced);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, sweep_suite);
}
