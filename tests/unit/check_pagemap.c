/* check_pagemap.c -- unit: the page map and pointer lookup.
 *
 * White-box (src/heap/pages.c cgci_find_base, .inv.runs; alloc.c
 * cgc_base, cgc_usable_size): for small and large blocks of every kind,
 * the base, every interior byte and the one-past-the-end pointer of the
 * requested size resolve to the block start; the first byte past the slot
 * or the page run does not.  Pointers that must give NULL / 0: NULL, the
 * stack, a global, libc malloc memory, code, the address just below the
 * heap, the unused reserve above the frontier, a free slot, a free page
 * run, an explicitly freed block (small, large, uncollectable) and a block
 * reclaimed by a collection.  Every page of a large span maps to its
 * descriptor.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tsup.h"

static char global_buf[256];
static tsup_obj_t doomed[4];

/* No callback threads: nothing allocates behind the test's back. */
static void setup(void) { tsup_init(-1, 1, 0); }

static void check_block(char *p, size_t n)
{
  struct cgci_span *s;

  ck_assert_ptr_eq(cgci_find_base((uintptr_t)p, &s, NULL), p);
  for (size_t off = 0; off <= n; off++) {
    ck_assert_ptr_eq(cgc_base(p + off), p);
    ck_assert_ptr_eq(cgci_find_base((uintptr_t)(p + off), NULL, NULL), p);
  }
  ck_assert_uint_ge(cgc_usable_size(p), n);
  ck_assert_uint_eq(cgc_usable_size(p), cgci_block_size(s) - 1);
  /* the byte after the block belongs to another block or to none */
  ck_assert_ptr_ne(cgc_base(p + cgci_block_size(s)), p);
  if (n > 0)
    ck_assert_uint_eq(cgc_usable_size(p + 1), 0);
}

START_TEST(small_blocks_resolve)
{
  static const size_t sizes[] = { 0, 1, 15, 16, 17, 100, 128, 129, 1000,
                                  4095, 4096, 5000, 8191 };

  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *a = cgc_malloc(n), *b = cgc_malloc_atomic(n);
    char *u = cgc_malloc_uncollectable(n);

    check_block(a, n);
    check_block(b, n);
    check_block(u, n);
    ck_assert_int_eq(cgci_span_of((uintptr_t)a)->state, CGCI_SPAN_SMALL);
    ck_assert_int_eq(cgc_free(u), CGC_OK);
  }
}
END_TEST

START_TEST(large_blocks_resolve)
{
  static const size_t sizes[] = { 8192, 8193, 3 * 4096 + 100, 65536,
                                  1 << 20 };

  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t n = sizes[i];
    char *p = i % 2 ? cgc_malloc(n) : cgc_malloc_atomic(n);
    struct cgci_span *s = cgci_span_of((uintptr_t)p);
    size_t first = ((uintptr_t)p - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT;

    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->state, CGCI_SPAN_LARGE);
    ck_assert_uint_eq(s->start, (uintptr_t)p);
    ck_assert_uint_eq(s->large_bytes, (size_t)s->npages << CGCI_PAGE_SHIFT);
    for (size_t pg = 0; pg < s->npages; pg++)
      ck_assert_ptr_eq(cgci_g.pagemap[first + pg], s);
    check_block(p, n);
  }
}
END_TEST

START_TEST(foreign_pointers_give_null)
{
  char stack_buf[64];
  char *m = malloc(64);
  uintptr_t above = cgci_g.heap_lo + cgci_g.heap_used + CGCI_PAGE_SIZE;

  ck_assert_ptr_nonnull(m);
  (void)cgc_malloc(32);                     /* the heap exists */
  ck_assert_ptr_null(cgc_base(NULL));
  ck_assert_ptr_null(cgc_base(stack_buf));
  ck_assert_ptr_null(cgc_base(stack_buf + 8));
  ck_assert_ptr_null(cgc_base(global_buf));
  ck_assert_ptr_null(cgc_base(m));
  ck_assert_ptr_null(cgc_base(m + 8));
  ck_assert_ptr_null(cgc_base((void *)(uintptr_t)check_block));
  ck_assert_ptr_null(cgc_base((void *)(cgci_g.heap_lo - 1)));
  ck_assert_ptr_null(cgci_find_base(cgci_g.heap_lo - 1, NULL, NULL));
  if (above < cgci_g.heap_lo + cgci_g.heap_reserved)
    ck_assert_ptr_null(cgc_base((void *)above));
  ck_assert_uint_eq(cgc_usable_size(NULL), 0);
  ck_assert_uint_eq(cgc_usable_size(stack_buf), 0);
  ck_assert_uint_eq(cgc_usable_size(global_buf), 0);
  ck_assert_uint_eq(cgc_usable_size(m), 0);
  free(m);
}
END_TEST

/* Slots of an uncollectable span that were never handed out have clear
 * bits (.inv.bits): not blocks. */
START_TEST(free_slot_gives_null)
{
  char *u = cgc_malloc_uncollectable(3000);
  struct cgci_span *s = cgci_span_of((uintptr_t)u);

  ck_assert_uint_eq(cgci_slot_index(s, (uintptr_t)u), 0);  /* fresh span */
  for (uint32_t i = 1; i < s->nobj; i++) {
    char *slot = (char *)(s->start + (uintptr_t)i * s->slot);

    ck_assert(!cgci_bit_get(s, i));
    ck_assert_ptr_null(cgc_base(slot));
    ck_assert_ptr_null(cgc_base(slot + 17));
    ck_assert_uint_eq(cgc_usable_size(slot), 0);
  }
  /* past the last slot, in the span's tail */
  ck_assert_ptr_null(cgc_base((char *)(s->start + (uintptr_t)s->nobj * s->slot)));
  ck_assert_int_eq(cgc_free(u), CGC_OK);
}
END_TEST

/* Slots that sit on the thread's free list after a refill are free
 * storage, not live blocks (cgc.h: cgc_base and cgc_usable_size). */
START_TEST(cached_free_slot_gives_null)
{
  char *p = cgc_malloc(3000);
  struct cgci_span *s = cgci_span_of((uintptr_t)p);
  char *next = p + s->slot;

  ck_assert_uint_lt(cgci_slot_index(s, (uintptr_t)next), s->nobj);
  ck_assert_ptr_null(cgc_base(next));
  ck_assert_uint_eq(cgc_usable_size(next), 0);
}
END_TEST

START_TEST(freed_small_gives_null)
{
  char *p = cgc_malloc(100), *a = cgc_malloc_atomic(100);

  ck_assert_int_eq(cgc_free(p), CGC_OK);
  ck_assert_int_eq(cgc_free(a), CGC_OK);
  ck_assert_ptr_null(cgc_base(p));
  ck_assert_ptr_null(cgc_base(p + 10));
  ck_assert_uint_eq(cgc_usable_size(p), 0);
  ck_assert_ptr_null(cgc_base(a));
  ck_assert_uint_eq(cgc_usable_size(a), 0);
}
END_TEST

START_TEST(freed_uncollectable_and_large_give_null)
{
  char *u = cgc_malloc_uncollectable(100);
  char *l = cgc_malloc(40000);
  uintptr_t first;

  ck_assert_int_eq(cgc_free(u), CGC_OK);
  ck_assert_ptr_null(cgc_base(u));
  ck_assert_uint_eq(cgc_usable_size(u), 0);
  ck_assert_int_eq(cgc_free(l), CGC_OK);
  for (size_t off = 0; off < 40000; off += 512)
    ck_assert_ptr_null(cgc_base(l + off));
  ck_assert_uint_eq(cgc_usable_size(l), 0);
  /* the pages are a free run now: first page maps to a FREE descriptor */
  first = ((uintptr_t)l - cgci_g.heap_lo) >> CGCI_PAGE_SHIFT;
  ck_assert_ptr_null(cgci_span_of((uintptr_t)l));
  for (size_t pg = first; pg < first + 10; pg++) {
    struct cgci_span *r = cgci_g.pagemap[pg];
    ck_assert(r == NULL || r->state == CGCI_SPAN_FREE);
  }
}
END_TEST

/* A block reclaimed by a collection is no block. */
START_TEST(collected_gives_null)
{
  tsup_new(&doomed[0], 48);
  tsup_new(&doomed[1], 20000);
  tsup_collect(2);
  ck_assert_int_eq(doomed[0].freed, 1);
  ck_assert_int_eq(doomed[1].freed, 1);
  ck_assert_ptr_null(cgc_base(tsup_unhide(doomed[0].hid)));
  ck_assert_ptr_null(cgc_base((char *)tsup_unhide(doomed[0].hid) + 8));
  ck_assert_uint_eq(cgc_usable_size(tsup_unhide(doomed[0].hid)), 0);
  ck_assert_ptr_null(cgc_base(tsup_unhide(doomed[1].hid)));
  ck_assert_uint_eq(cgc_usable_size(tsup_unhide(doomed[1].hid)), 0);
}
END_TEST

static Suite *pagemap_suite(void)
{
  Suite *s = suite_create("pagemap");
  TCase *tc = tcase_create("lookup");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, small_blocks_resolve);
  tcase_add_test(tc, large_blocks_resolve);
  tcase_add_test(tc, foreign_pointers_give_null);
  tcase_add_test(tc, free_slot_gives_null);
  tcase_add_test(tc, cached_free_slot_gives_null);
  tcase_add_test(tc, freed_small_gives_null);
  tcase_add_test(tc, freed_uncollectable_and_large_give_null);
  tcase_add_test(tc, collected_gives_null);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, pagemap_suite);
}
