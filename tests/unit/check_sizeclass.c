/* check_sizeclass.c -- unit: size classes and the slot-index reciprocal.
 *
 * White-box (src/heap/pages.c cgci_sizeclass_init, src/heap/alloc.c):
 *   - every request size 0..8192 gets a block whose slot holds the size
 *     plus the hidden byte; sizes up to CGCI_SMALL_MAX - 1 map through
 *     size_class[] to the smallest class that fits, 8192 becomes large;
 *   - classes are strictly increasing multiples of the granule, the last
 *     one is CGCI_SMALL_MAX, and the per-object waste bound of the design
 *     holds (under one granule up to 128 bytes, under 20% above);
 *   - a span of every class has at most CGCI_MAX_OBJS slots, at most 8
 *     pages, and the span's tail waste is small;
 *   - cgci_slot_index (offset times the magic reciprocal) equals
 *     offset / slot for every byte offset of a span of every class, in
 *     real spans of every kind.
 */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "core/internal.h"
#include "tsup.h"

static void setup(void) { tsup_init(-1, 1, 0); }

/* The class the allocator picks for a request of N bytes. */
static unsigned class_of(size_t n)
{
  return cgci_g.size_class[(n + CGCI_GRANULE) >> 4];
}

START_TEST(classes_increasing)
{
  ck_assert_uint_gt(cgci_g.nclasses, 8);
  ck_assert_uint_le(cgci_g.nclasses, CGCI_NCLASSES);
  ck_assert_uint_eq(cgci_g.class_size[0], CGCI_GRANULE);
  ck_assert_uint_eq(cgci_g.class_size[cgci_g.nclasses - 1], CGCI_SMALL_MAX);
  for (unsigned c = 0; c < cgci_g.nclasses; c++) {
    ck_assert_uint_eq(cgci_g.class_size[c] % CGCI_GRANULE, 0);
    if (c > 0)
      ck_assert_msg(cgci_g.class_size[c] > cgci_g.class_size[c - 1],
                    "class %u (%u) not above class %u (%u)", c,
                    cgci_g.class_size[c], c - 1, cgci_g.class_size[c - 1]);
  }
}
END_TEST

START_TEST(every_size_fits_with_hidden_byte)
{
  for (size_t n = 0; n < CGCI_SMALL_MAX; n++) {
    unsigned c = class_of(n);
    uint32_t slot = cgci_g.class_size[c];

    ck_assert_uint_lt(c, cgci_g.nclasses);
    ck_assert_msg(slot >= n + 1, "size %zu: slot %u has no hidden byte", n,
                  slot);
    /* the smallest class that fits */
    if (c > 0)
      ck_assert_msg(cgci_g.class_size[c - 1] < n + 1,
                    "size %zu: class %u chosen, %u would fit", n, c, c - 1);
    /* waste bound of the design */
    if (slot <= 128)
      ck_assert_msg(slot - (n + 1) < CGCI_GRANULE, "size %zu slot %u", n,
                    slot);
    else
      ck_assert_msg((slot - (n + 1)) * 5 < slot, "size %zu slot %u: >= 20%%",
                    n, slot);
  }
}
END_TEST

/* The same through real allocations: the block's span has the class's
 * slot and usable size is at least the request. */
START_TEST(every_size_allocates)
{
  for (size_t n = 0; n <= CGCI_SMALL_MAX; n++) {
    void *p = n % 2 ? cgc_malloc(n) : cgc_malloc_atomic(n);
    struct cgci_span *s;

    ck_assert_ptr_nonnull(p);
    ck_assert_ptr_eq(cgci_find_base((uintptr_t)p, &s, NULL), p);
    ck_assert_uint_ge(cgc_usable_size(p), n);
    ck_assert_uint_eq(cgc_usable_size(p) + 1, cgci_block_size(s));
    ck_assert_uint_eq((uintptr_t)p % CGCI_GRANULE, 0);
    if (n < CGCI_SMALL_MAX) {
      ck_assert_int_eq(s->state, CGCI_SPAN_SMALL);
      ck_assert_uint_eq(s->slot, cgci_g.class_size[class_of(n)]);
      ck_assert_uint_eq(s->sc, class_of(n));
    } else {
      ck_assert_int_eq(s->state, CGCI_SPAN_LARGE);   /* 8192 + hidden byte */
      ck_assert_uint_ge(s->large_bytes, n + 1);
    }
    ck_assert_int_eq(s->kind, n % 2 ? CGCI_KIND_NORMAL : CGCI_KIND_ATOMIC);
    ck_assert_int_eq(cgc_free(p), CGC_OK);
  }
}
END_TEST

START_TEST(span_geometry)
{
  for (unsigned c = 0; c < cgci_g.nclasses; c++) {
    uint32_t slot = cgci_g.class_size[c], np = cgci_g.class_pages[c];
    size_t bytes = (size_t)np * CGCI_PAGE_SIZE;

    ck_assert_uint_ge(np, 1);
    ck_assert_uint_le(np, 8);
    ck_assert_uint_ge(bytes / slot, 1);
    ck_assert_msg(bytes / slot <= CGCI_MAX_OBJS, "class %u: %zu slots", c,
                  bytes / slot);
    /* tail waste: every class of the table meets the 1/16 goal */
    ck_assert_msg((bytes % slot) * 16 <= bytes, "class %u (%u): tail %zu of %zu",
                  c, slot, bytes % slot, bytes);
    /* the rule, restated: the most pages up to CGCI_SPAN_PAGES that meet
     * the goal with at most CGCI_MAX_OBJS slots; if none, the fewest pages
     * up to 8 that do */
    uint32_t want = 0;
    for (uint32_t k = 1; k <= 8; k++) {
      size_t b = (size_t)k * CGCI_PAGE_SIZE;
      bool ok = b >= slot && b / slot <= CGCI_MAX_OBJS && (b % slot) * 16 <= b;
      if (ok && k <= CGCI_SPAN_PAGES) want = k;
      else if (ok && want == 0) want = k;
    }
    ck_assert_msg(want != 0, "class %u (%u): no span size meets the goal", c, slot);
    ck_assert_msg(np == want, "class %u (%u): %u pages, the rule gives %u", c, slot, np, want);
    /* so the classes whose 256 slots fit in CGCI_SPAN_PAGES fill them */
    if ((size_t)slot * CGCI_MAX_OBJS <= (size_t)CGCI_SPAN_PAGES * CGCI_PAGE_SIZE)
      ck_assert_uint_eq(bytes / slot, CGCI_MAX_OBJS);
  }
  /* with the default limit (16 KiB), that is every class up to 64 bytes,
   * the sizes of list and tree nodes */
  if (CGCI_SPAN_PAGES == 4)
    for (unsigned c = 0; c < cgci_g.nclasses && cgci_g.class_size[c] <= 64; c++)
      ck_assert_uint_eq((size_t)cgci_g.class_pages[c] * CGCI_PAGE_SIZE / cgci_g.class_size[c],
                        CGCI_MAX_OBJS);
}
END_TEST

/* Every class and kind: a real span, every byte offset. */
START_TEST(slot_index_exact)
{
  static const int kinds[] = { CGCI_KIND_NORMAL, CGCI_KIND_ATOMIC,
                               CGCI_KIND_UNCOLL };

  for (unsigned c = 0; c < cgci_g.nclasses; c++)
    for (int k = 0; k < 3; k++) {
      size_t n = cgci_g.class_size[c] - 1;
      void *p = kinds[k] == CGCI_KIND_NORMAL ? cgc_malloc(n)
              : kinds[k] == CGCI_KIND_ATOMIC ? cgc_malloc_atomic(n)
                                             : cgc_malloc_uncollectable(n);
      struct cgci_span *s = cgci_span_of((uintptr_t)p);
      size_t span_bytes;

      ck_assert_ptr_nonnull(s);
      ck_assert_int_eq(s->state, CGCI_SPAN_SMALL);
      ck_assert_int_eq(s->kind, kinds[k]);
      ck_assert_uint_eq(s->slot, cgci_g.class_size[c]);
      ck_assert_uint_eq(s->npages, cgci_g.class_pages[c]);
      span_bytes = (size_t)s->npages << CGCI_PAGE_SHIFT;
      ck_assert_uint_eq(s->nobj, span_bytes / s->slot);
      ck_assert_uint_le(s->nobj, CGCI_MAX_OBJS);
      for (size_t off = 0; off < span_bytes; off++) {
        uint32_t idx = cgci_slot_index(s, s->start + off);

        if (idx != off / s->slot)
          ck_abort_msg("class %u slot %u: offset %zu gives %u, want %zu", c,
                       s->slot, off, idx, off / s->slot);
      }
      ck_assert_int_eq(cgc_free(p), CGC_OK);
    }
}
END_TEST

static Suite *sizeclass_suite(void)
{
  Suite *s = suite_create("sizeclass");
  TCase *tc = tcase_create("classes");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, classes_increasing);
  tcase_add_test(tc, every_size_fits_with_hidden_byte);
  tcase_add_test(tc, every_size_allocates);
  tcase_add_test(tc, span_geometry);
  tcase_add_test(tc, slot_index_exact);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, sizeclass_suite);
}
