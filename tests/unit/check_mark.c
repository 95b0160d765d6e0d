/* check_mark.c -- unit: the mark phase.
 *
 * White-box (src/mark/mark.c .overflow, .inv.pushed, .inv.uncoll):
 *   - with the mark stack capped at 16 entries (CGC_MARK_STACK_MAX=16,
 *     read at initialisation, so these tests set it before their first
 *     cgc call; Check forks every test), a long linked list, a wide tree
 *     and a large pointer array stay intact over collections and over a
 *     round of allocation that reuses every free slot (checksums and
 *     free flags on sampled live nodes), the overflow recovery really ran,
 *     and doomed objects, including a doomed wide object, are reclaimed;
 *   - atomic blocks are not scanned: an object referenced only from an
 *     atomic block is collected, the same reference from a scanned block
 *     keeps it;
 *   - uncollectable blocks are roots and are never collected; after
 *     cgc_free of the block its referent is collected.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "core/internal.h"
#include "tsup.h"

struct node {
  struct node *next;
  struct node *kid[2];
  uint64_t val;
};

#define LIST_LEN   60000
#define TREE_WIDE  1000       /* pointer slots of the root: 8000 bytes */
#define TREE_KIDS  16         /* leaves per child */
#define ARRAY_LEN  100000     /* large array of node pointers */
#define NSAMPLE    64

static struct node *volatile g_list;
static void **volatile g_tree;
static struct node **volatile g_array;
static volatile int sample_freed[NSAMPLE];
static int nsample;
static tsup_obj_t doomed[8];
static tsup_obj_t holder, target;

static void init_tiny_stack(void)
{
  ck_assert_int_eq(setenv("CGC_MARK_STACK_MAX", "16", 1), 0);
  tsup_init(-1, 1, 0);
  ck_assert_uint_eq(cgci_g.mstack_max, 16);
  ck_assert_uint_le(cgci_g.mstack_cap, 16);
}

static void sample(void *p)
{
  if (nsample < NSAMPLE)
    cgc_debug_on_free(p, &sample_freed[nsample++]);
}

static uint64_t build_list(void)
{
  uint64_t sum = 0;
  struct node *head = NULL;

  for (uint64_t i = 0; i < LIST_LEN; i++) {
    struct node *n = cgc_malloc(sizeof *n);

    ck_assert_ptr_nonnull(n);
    n->val = i * 2654435761u + 7;
    n->next = head;
    head = n;
    sum += n->val;
    if (i % 1000 == 0)
      sample(n);
  }
  g_list = head;
  return sum;
}

static uint64_t sum_list(void)
{
  uint64_t sum = 0;
  size_t len = 0;

  for (struct node *n = g_list; n; n = n->next, len++)
    sum += n->val;
  ck_assert_uint_eq(len, LIST_LEN);
  return sum;
}

static uint64_t build_tree(void)
{
  uint64_t sum = 0;
  void **root = cgc_malloc(TREE_WIDE * sizeof(void *));

  ck_assert_ptr_nonnull(root);
  for (int i = 0; i < TREE_WIDE; i++) {
    void **child = cgc_malloc(TREE_KIDS * sizeof(void *));

    ck_assert_ptr_nonnull(child);
    root[i] = child;
    for (int k = 0; k < TREE_KIDS; k++) {
      struct node *leaf = cgc_malloc(sizeof *leaf);

      leaf->val = (uint64_t)i * 131 + (uint64_t)k;
      sum += leaf->val;
      child[k] = leaf;
      if ((i * TREE_KIDS + k) % 997 == 0)
        sample(leaf);
    }
  }
  g_tree = root;
  return sum;
}

static uint64_t sum_tree(void)
{
  uint64_t sum = 0;

  for (int i = 0; i < TREE_WIDE; i++) {
    void **child = g_tree[i];

    for (int k = 0; k < TREE_KIDS; k++)
      sum += ((struct node *)child[k])->val;
  }
  return sum;
}

static uint64_t build_array(void)
{
  uint64_t sum = 0;
  struct node **a = cgc_malloc(ARRAY_LEN * sizeof *a);

  ck_assert_ptr_nonnull(a);
  for (int i = 0; i < ARRAY_LEN; i++) {
    a[i] = cgc_malloc(sizeof(struct node));
    a[i]->val = (uint64_t)i ^ 0x5555;
    sum += a[i]->val;
    if (i % 4999 == 0)
      sample(a[i]);
  }
  g_array = a;
  return sum;
}

static uint64_t sum_array(void)
{
  uint64_t sum = 0;

  for (int i = 0; i < ARRAY_LEN; i++)
    sum += g_array[i]->val;
  return sum;
}

/* Doomed: a wide object pointing at seven small ones, and nothing else. */
static void make_doomed(void)
{
  tsup_new(&doomed[0], TREE_WIDE * sizeof(void *));
  for (int i = 1; i < 8; i++) {
    tsup_new(&doomed[i], 32 + 16 * (size_t)i);
    tsup_link(&doomed[0], (size_t)i * 100, &doomed[i]);
  }
}

/* Hand out every free slot of the classes the structures use, with a
 * pattern, so a wrongly freed live node would be overwritten. */
static void churn(void)
{
  for (int i = 0; i < 3 * LIST_LEN; i++) {
    void *p = cgc_malloc_atomic(sizeof(struct node));
    memset(p, 0xAB, sizeof(struct node));
    if (i % 8 == 0) {
      void *q = cgc_malloc(TREE_KIDS * sizeof(void *));
      memset(q, 0xCD, TREE_KIDS * sizeof(void *));
    }
  }
}

START_TEST(overflow_list_tree_array_survive)
{
  uint64_t ls, ts, as, ov0;

  init_tiny_stack();
  nsample = 0;
  ls = build_list();
  ts = build_tree();
  as = build_array();
  make_doomed();
  ov0 = cgci_g.st_overflows;
  tsup_collect(2);
  ck_assert_msg(cgci_g.st_overflows > ov0, "overflow recovery never ran");
  ck_assert_uint_eq(cgci_g.mstack_cap, 16);
  ck_assert_int_eq(tsup_count_freed(doomed, 8), 8);
  for (int i = 0; i < nsample; i++)
    ck_assert_msg(!sample_freed[i], "live sample %d reclaimed", i);
  ck_assert_uint_eq(sum_list(), ls);
  ck_assert_uint_eq(sum_tree(), ts);
  ck_assert_uint_eq(sum_array(), as);
  churn();
  tsup_collect(1);
  churn();
  for (int i = 0; i < nsample; i++)
    ck_assert_msg(!sample_freed[i], "live sample %d reclaimed", i);
  ck_assert_uint_eq(sum_list(), ls);
  ck_assert_uint_eq(sum_tree(), ts);
  ck_assert_uint_eq(sum_array(), as);
}
END_TEST

/* Dropping the structures under the tiny stack reclaims them. */
START_TEST(overflow_then_drop_reclaims)
{
  cgc_stats_t s0, s1;

  init_tiny_stack();
  nsample = 0;
  (void)build_tree();
  (void)build_list();
  tsup_collect(1);
  for (int i = 0; i < nsample; i++)
    ck_assert(!sample_freed[i]);
  cgc_get_stats(&s0);
  g_tree = NULL;
  g_list = NULL;
  tsup_collect(2);
  cgc_get_stats(&s1);
  /* bulk: at least most of the 77000 objects */
  ck_assert_uint_ge(s1.objects_freed - s0.objects_freed, 70000);
  ck_assert_int_ge(nsample, 50);
  int freed = 0;
  for (int i = 0; i < nsample; i++)
    freed += sample_freed[i] != 0;
  ck_assert_int_ge(freed, nsample / 2);
}
END_TEST

/* ---- atomic blocks are not scanned -------------------------------------- */

static void *volatile g_block;

static void make_holder(int atomic)
{
  void *b = atomic ? cgc_malloc_atomic(64) : cgc_malloc(64);

  ck_assert_ptr_nonnull(b);
  memset(b, 0, 64);
  g_block = b;
  holder.hid = tsup_hide(b);
  holder.size = 64;
  tsup_new(&target, 48);
  tsup_link(&holder, 3, &target);
}

START_TEST(atomic_not_scanned)
{
  tsup_init(-1, 1, 0);
  make_holder(1);
  tsup_collect(2);
  ck_assert_int_eq(target.freed, 1);
  ck_assert_ptr_eq(cgc_base(g_block), g_block);     /* the holder lives */
}
END_TEST

START_TEST(scanned_block_keeps_referent)
{
  tsup_init(-1, 1, 0);
  make_holder(0);
  tsup_collect(2);
  ck_assert_int_eq(target.freed, 0);
  ck_assert(tsup_weak_live(target.weak));
  g_block = NULL;
  tsup_collect(2);
  ck_assert_int_eq(target.freed, 1);
}
END_TEST

/* ---- big blocks are scanned where they were touched --------------------- */

#define SPARSE_BYTES ((size_t)64 << 20)

static tsup_obj_t sparse_t[3];

/* resident_pages -- pages of [P, P+N) mapped in (mincore counts a page
 * mapped to the shared zero page too, so a read shows on every kernel). */
static long resident_pages(const void *p, size_t n)
{
  static unsigned char vec[(SPARSE_BYTES >> 12) + 1];
  long c = 0;

  ck_assert_uint_le(n >> 12, sizeof vec);
  ck_assert_int_eq(mincore((void *)p, n, vec), 0);
  for (size_t i = 0; i < (n + 4095) >> 12; i++)
    c += vec[i] & 1;
  return c;
}

/* sparse_setup -- a 64 MiB block with pointers on three of its pages
 * (first word, middle, last word); the rest is never written. */
static __attribute__((noinline)) void sparse_setup(void)
{
  size_t at[3] = {0, (40 << 20) + 8, SPARSE_BYTES - 8};
  char *b = cgc_malloc(SPARSE_BYTES);

  ck_assert_ptr_nonnull(b);
  g_block = b;
  holder.hid = tsup_hide(b);
  holder.size = SPARSE_BYTES;
  for (int i = 0; i < 3; i++) {
    tsup_new(&sparse_t[i], 48);
    tsup_link(&holder, at[i] / sizeof(void *), &sparse_t[i]);
  }
}

START_TEST(sparse_large_block)
{
  tsup_init(-1, 1, 0);
  sparse_setup();
  long before = resident_pages(tsup_unhide(holder.hid), SPARSE_BYTES);
  tsup_collect(2);
  long grown = resident_pages(tsup_unhide(holder.hid), SPARSE_BYTES) - before;
  for (int i = 0; i < 3; i++) {
    ck_assert_int_eq(sparse_t[i].freed, 0);
    ck_assert(tsup_weak_live(sparse_t[i].weak));
  }
  /* the untouched 64 MiB were not read: a read would fault them in on
   * kernels without the shared zero page (and cost a fault per page on
   * every kernel) */
  ck_assert_int_le(before, 16);
  ck_assert_int_le(grown, 0);
  g_block = NULL;
  tsup_collect(3);
  for (int i = 0; i < 3; i++)
    ck_assert_int_eq(sparse_t[i].freed, 1);
}
END_TEST

/* cgci_os_each_touched on a mapping with a known touch pattern, with
 * unaligned ends: runs are clipped to the range and cover exactly the
 * touched pages. */
struct runs { int n; uintptr_t lo[16], hi[16]; };

static void record_run(uintptr_t lo, uintptr_t hi, void *ctx)
{
  struct runs *r = ctx;

  ck_assert_int_lt(r->n, 16);
  r->lo[r->n] = lo;
  r->hi[r->n] = hi;
  r->n++;
}

START_TEST(each_touched_runs)
{
  size_t n = 64 << 12;
  char *m = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  struct runs r = {0};

  ck_assert_ptr_ne(m, MAP_FAILED);
  tsup_init(-1, 1, 0);
  m[0] = 1;                                    /* page 0 */
  m[(5 << 12) + 100] = 1;                      /* pages 5, 6 */
  m[(6 << 12) + 4000] = 1;
  m[(63 << 12) + 8] = 1;                       /* page 63 */
  cgci_os_pagemap_begin();
  int ok = cgci_os_each_touched((uintptr_t)m + 100, (uintptr_t)m + n - 100, record_run, &r);
  cgci_os_pagemap_end();
  ck_assert(ok);                               /* Linux: /proc is there */
  ck_assert_int_eq(r.n, 3);
  ck_assert_uint_eq(r.lo[0], (uintptr_t)m + 100);          /* clipped */
  ck_assert_uint_eq(r.hi[0], (uintptr_t)m + 4096);
  ck_assert_uint_eq(r.lo[1], (uintptr_t)m + (5 << 12));
  ck_assert_uint_eq(r.hi[1], (uintptr_t)m + (7 << 12));
  ck_assert_uint_eq(r.lo[2], (uintptr_t)m + (63 << 12));
  ck_assert_uint_eq(r.hi[2], (uintptr_t)m + n - 100);      /* clipped */
  /* outside a collection pagemap is closed: the caller scans everything */
  ck_assert(!cgci_os_each_touched((uintptr_t)m, (uintptr_t)m + n, record_run, &r));
  munmap(m, n);
}
END_TEST

/* A sparse block with more touched runs than the mark stack holds: the
 * collection ends, and every pointer on a touched page is found. */
#define SPARSE_RUNS 40
static tsup_obj_t run_t[SPARSE_RUNS];

static __attribute__((noinline)) void sparse_many_setup(void)
{
  size_t bytes = (size_t)SPARSE_RUNS * 2 * 4096;
  char *b = cgc_malloc(bytes);

  ck_assert_ptr_nonnull(b);
  g_block = b;
  holder.hid = tsup_hide(b);
  holder.size = bytes;
  for (int i = 0; i < SPARSE_RUNS; i++) {           /* every other page */
    tsup_new(&run_t[i], 48);
    tsup_link(&holder, (size_t)i * 2 * 4096 / sizeof(void *) + 3, &run_t[i]);
  }
}

START_TEST(sparse_block_tiny_stack)
{
  init_tiny_stack();
  sparse_many_setup();
  tsup_collect(2);
  for (int i = 0; i < SPARSE_RUNS; i++)
    ck_assert_int_eq(run_t[i].freed, 0);
  g_block = NULL;
  tsup_collect(3);
  for (int i = 0; i < SPARSE_RUNS; i++)
    ck_assert_int_eq(run_t[i].freed, 1);
}
END_TEST

/* ---- uncollectable blocks are roots ------------------------------------- */

/* UNCOLL spans listed for the root scan (cgci_g.uncoll); whether S is one */
static size_t uncoll_listed(const struct cgci_span *s, int *found)
{
  size_t n = 0;

  *found = 0;
  for (const struct cgci_span *l = cgci_g.uncoll; l != NULL; l = l->uc_next, n++)
    *found |= l == s;
  return n;
}

/* An uncollectable block of SIZE keeps its referent alive, and the
 * referent goes once the block is freed.  The root scan finds such blocks
 * only through the list of UNCOLL spans: the block's span must be on it,
 * and a large block's span must leave it when the block is freed. */
static void uncoll_body(size_t size)
{
  void *u;
  int found;
  size_t n0 = uncoll_listed(NULL, &found);
  int large = size + 1 > CGCI_SMALL_MAX;   /* a span of its own */

  u = cgc_malloc_uncollectable(size);
  ck_assert_ptr_nonnull(u);
  struct cgci_span *s = cgci_span_of((uintptr_t)u);
  size_t n1 = uncoll_listed(s, &found);
  ck_assert_msg(found, "the span of an uncollectable block is not listed");
  if (large)
    ck_assert_uint_eq(n1, n0 + 1);
  holder.hid = tsup_hide(u);     /* no pointer to U anywhere */
  holder.size = size;
  u = NULL;
  tsup_new(&target, 48);
  tsup_link(&holder, 1, &target);
  tsup_collect(3);
  ck_assert_int_eq(target.freed, 0);
  ck_assert(tsup_weak_live(target.weak));
  ck_assert_ptr_eq(cgc_base(tsup_unhide(holder.hid)), tsup_unhide(holder.hid));
  ck_assert_uint_ge(cgc_usable_size(tsup_unhide(holder.hid)), size);
  ck_assert_int_eq(cgc_free(tsup_unhide(holder.hid)), CGC_OK);
  if (large) {
    ck_assert_uint_eq(uncoll_listed(s, &found), n0);
    ck_assert(!found);
  }
  tsup_collect(2);
  ck_assert_int_eq(target.freed, 1);
}

static void uncoll_case(size_t size, int tiny)
{
  if (tiny)
    init_tiny_stack();
  else
    tsup_init(-1, 1, 0);
  uncoll_body(size);
}

START_TEST(uncollectable_small_is_root) { uncoll_case(64, 0); }
END_TEST
START_TEST(uncollectable_large_is_root) { uncoll_case(20000, 0); }
END_TEST
START_TEST(uncollectable_root_tiny_stack) { uncoll_case(4000, 1); }
END_TEST
/* big enough to be scanned over its touched pages only */
START_TEST(uncollectable_sparse_is_root) { uncoll_case((size_t)1 << 20, 0); }
END_TEST
/* the last UNCOLL span freed, then a new one: still a root */
START_TEST(uncollectable_again_after_last_freed)
{
  tsup_init(-1, 1, 0);
  uncoll_body(20000);
  uncoll_body(20000);
  uncoll_body(64);
}
END_TEST

static Suite *mark_suite(void)
{
  Suite *s = suite_create("mark");
  TCase *tc = tcase_create("overflow");
  TCase *tk = tcase_create("kinds");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, overflow_list_tree_array_survive);
  tcase_add_test(tc, overflow_then_drop_reclaims);
  suite_add_tcase(s, tc);
  tcase_set_timeout(tk, 30);
  tcase_add_test(tk, atomic_not_scanned);
  tcase_add_test(tk, scanned_block_keeps_referent);
  tcase_add_test(tk, sparse_large_block);
  tcase_add_test(tk, each_touched_runs);
  tcase_add_test(tk, sparse_block_tiny_stack);
  tcase_add_test(tk, uncollectable_small_is_root);
  tcase_add_test(tk, uncollectable_large_is_root);
  tcase_add_test(tk, uncollectable_root_tiny_stack);
  tcase_add_test(tk, uncollectable_sparse_is_root);
  tcase_add_test(tk, uncollectable_again_after_last_freed);
  suite_add_tcase(s, tk);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, mark_suite);
}
