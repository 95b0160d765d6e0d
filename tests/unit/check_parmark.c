/* check_parmark.c -- unit: parallel marking (src/mark/mark.c .par.priv).
 *
 * Parallel markers set mark bits in the shared mark words with plain
 * stores, so two markers writing one word at once can lose a bit; each
 * marker's private words hold every bit it set (markers 0 and 1 in the
 * span descriptor, markers from 2 on in a table of their own), and the
 * end of the parallel phase ORs them back in.  Races are too rare to test that by
 * chance, so this suite links cgc_lostmarks: the library built with
 * CGCI_TEST_LOST_MARKS=4, where every parallel marker drops one shared
 * store in four, as a lost update would.  Then, with two markers from
 * the first collection on (CGC_PAR_MIN_HEAP=0, CGC_MARKERS=2, or the
 * number in CGC_TEST_MARKERS: ctest runs the suite again with 3, so that a
 * table is merged too; set before the first cgc call; Check forks every
 * test):
 *   - stores really were dropped, in every collection, and by every helper
 *     marker too (so its private words, not only the collecting thread's,
 *     are merged);
 *   - every node of a tree and of two interleaved lists (their nodes share
 *     mark words) is marked after each collection, and their checksums
 *     survive a round of allocation that hands out every free slot;
 *   - the private words are cleared after the merge: once the lists are dropped
 *     (the tree stays, so collections still mark in parallel), the next
 *     collections reclaim them (sampled with cgc_debug_on_free, and in
 *     bulk through the statistics).
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"
#include "tsup.h"

struct node {
  struct node *left, *right;
  uint64_t val, chk;
};

#define DEPTH     16          /* tree: 2^16 - 1 nodes */
#define LIST_LEN  40000       /* each of the two lists */
#define NSAMPLE   64

static struct node *volatile g_tree;
static struct node *volatile g_list[2];
static volatile int sample_freed[NSAMPLE];
static int sample_in_list[NSAMPLE];
static int nsample;

static int nmarkers(void)
{
  const char *e = getenv("CGC_TEST_MARKERS");
  int n = e ? atoi(e) : 2;

  ck_assert_int_ge(n, 2);
  ck_assert_int_le(n, CGCI_TEST_MARKERS);
  return n;
}

static void init_parallel(void)
{
  char buf[16];

  snprintf(buf, sizeof buf, "%d", nmarkers());
  ck_assert_int_eq(setenv("CGC_PAR_MIN_HEAP", "0", 1), 0);
  ck_assert_int_eq(setenv("CGC_MARKERS", buf, 1), 0);
  tsup_init(-1, 1, 0);
}

/* helpers_idle -- how many helper markers have not dropped a store yet */
static int helpers_idle(void)
{
  int idle = 0;

  for (int i = 1; i < nmarkers(); i++)
    idle += AO_load(&cgci_test_lost_marks[i]) == 0;
  return idle;
}

static struct node *new_node(uint64_t val)
{
  struct node *n = cgc_malloc(sizeof *n);

  ck_assert_ptr_nonnull(n);
  n->val = val;
  n->chk = val * 0x9E3779B97F4A7C15ull + 1;
  int in_list = val >= (1u << DEPTH);   /* the tree is built first */

  if (nsample < NSAMPLE && val % (in_list ? 2003 : 3001) == 0) {
    sample_in_list[nsample] = in_list;       /* 21 in the tree, 40 in lists */
    cgc_debug_on_free(n, &sample_freed[nsample++]);
  }
  return n;
}

static struct node *build_tree(int depth, uint64_t *next)
{
  struct node *n = new_node((*next)++);

  if (depth > 1) {
    n->left = build_tree(depth - 1, next);
    n->right = build_tree(depth - 1, next);
  }
  return n;
}

/* Two lists built together: node i of one and node i of the other are
 * neighbours in memory, so the markers that walk them write the same
 * mark words. */
static void build_lists(uint64_t *next)
{
  struct node *head[2] = {NULL, NULL};

  for (int i = 0; i < LIST_LEN; i++)
    for (int k = 0; k < 2; k++) {
      struct node *n = new_node((*next)++);

      n->left = head[k];
      head[k] = n;
    }
  g_list[0] = head[0];
  g_list[1] = head[1];
}

static CGCI_NOINLINE void build_all(void)
{
  uint64_t next = 1;

  nsample = 0;
  g_tree = build_tree(DEPTH, &next);
  build_lists(&next);
}

/* Count the nodes under N; every one must be marked and intact. */
static long check_tree(const struct node *n)
{
  if (n == NULL)
    return 0;
  ck_assert_msg(cgci_is_marked((uintptr_t)n), "live tree node %p unmarked", (void *)n);
  ck_assert_uint_eq(n->chk, n->val * 0x9E3779B97F4A7C15ull + 1);
  return 1 + check_tree(n->left) + check_tree(n->right);
}

static long check_list(const struct node *n)
{
  long len = 0;

  for (; n != NULL; n = n->left, len++) {
    ck_assert_msg(cgci_is_marked((uintptr_t)n), "live list node %p unmarked", (void *)n);
    ck_assert_uint_eq(n->chk, n->val * 0x9E3779B97F4A7C15ull + 1);
  }
  return len;
}

static void check_all(void)
{
  ck_assert_int_eq(check_tree(g_tree), (1L << DEPTH) - 1);
  ck_assert_int_eq(check_list(g_list[0]), LIST_LEN);
  ck_assert_int_eq(check_list(g_list[1]), LIST_LEN);
}

/* Stores dropped so far, by every marker. */
static AO_t lost_total(void)
{
  AO_t n = 0;

  for (int i = 0; i < CGCI_TEST_MARKERS; i++)
    n += AO_load(&cgci_test_lost_marks[i]);
  return n;
}

/* Hand out every free slot of the nodes' class and kind, with a pattern,
 * so a wrongly freed live node would be overwritten. */
static void churn(void)
{
  for (int i = 0; i < 3 * LIST_LEN; i++) {
    void *p = cgc_malloc(sizeof(struct node));

    ck_assert_ptr_nonnull(p);
    memset(p, 0xAB, sizeof(struct node));
  }
}

START_TEST(lost_stores_are_repaired)
{
  AO_t lost0;

  init_parallel();
  build_all();
  for (int round = 0; round < 6; round++) {
    lost0 = lost_total();
    tsup_collect(1);
    ck_assert_msg(lost_total() > lost0, "round %d: no parallel phase dropped a store", round);
    check_all();
    churn();
    check_all();
  }
  /* Every helper must get work, so that its words are among those merged.
   * It is handed half of a stack whenever it waits, but only once it is
   * running: the collector no longer waits for it to start (span walks
   * are claimed in parts), and on a loaded machine a woken helper can
   * take longer to run than a whole mark of these ~145000 nodes.  So
   * collect until it has marked, within a bound it never comes near. */
  for (int extra = 0; extra < 500 && helpers_idle() > 0; extra++) {
    tsup_collect(1);
    check_all();
  }
  ck_assert_msg(helpers_idle() == 0, "%d helper marker(s) never marked", helpers_idle());
  for (int i = 0; i < nsample; i++)
    ck_assert_msg(!sample_freed[i], "live sample %d reclaimed", i);
}
END_TEST

START_TEST(private_words_cleared_after_merge)
{
  cgc_stats_t s0, s1;
  int in_list = 0, freed = 0;

  init_parallel();
  build_all();
  tsup_collect(1);
  check_all();
  for (int i = 0; i < nsample; i++) {
    ck_assert(!sample_freed[i]);
    in_list += sample_in_list[i];
  }
  ck_assert_int_ge(in_list, 20);
  ck_assert_int_ge(nsample - in_list, 20);
  /* every helper must have marked while the lists were live, so that its
   * private words, not only the collecting thread's, held their bits */
  for (int extra = 0; extra < 500 && helpers_idle() > 0; extra++) {
    tsup_collect(1);
    check_all();
  }
  ck_assert_msg(helpers_idle() == 0, "%d helper marker(s) never marked", helpers_idle());
  /* drop the lists, keep the tree: the next collections still mark in
   * parallel, and would OR stale private words back into the lists' words */
  cgc_get_stats(&s0);
  g_list[0] = g_list[1] = NULL;
  tsup_scrub();
  for (int round = 0; round < 3; round++) {
    AO_t lost0 = lost_total();

    tsup_collect(1);
    ck_assert(lost_total() > lost0);
  }
  ck_assert_int_eq(check_tree(g_tree), (1L << DEPTH) - 1);
  cgc_get_stats(&s1);
  /* bulk: allow a few nodes pinned by stray stack words */
  ck_assert_uint_ge(s1.objects_freed - s0.objects_freed, (uint64_t)(2 * LIST_LEN * 99 / 100));
  for (int i = 0; i < nsample; i++) {
    if (sample_in_list[i])
      freed += sample_freed[i] != 0;
    else
      ck_assert_msg(!sample_freed[i], "live tree sample %d reclaimed", i);
  }
  ck_assert_int_ge(freed, in_list - 2);
}
END_TEST

/* A helper that wakes only after the collector has walked every span
 * alone (clearing marks, merging the private words) finds that walk over, and
 * must take it as one, not as a marking phase: it would then count
 * itself out of marking it never joined, and the next parallel phase
 * would wait forever (the tcase timeout fails the test).  Marking and
 * reclaiming must be exact all the same. */
START_TEST(late_helper)
{
  cgc_stats_t s0, s1;

  init_parallel();
  AO_store(&cgci_test_helper_delay_ns, 3 * 1000 * 1000);
  build_all();
  for (int round = 0; round < 6; round++) {
    AO_t lost0 = lost_total();

    tsup_collect(1);
    ck_assert_msg(lost_total() > lost0, "round %d: no parallel phase", round);
    check_all();
    churn();
    check_all();
  }
  cgc_get_stats(&s0);
  g_list[0] = g_list[1] = NULL;
  tsup_scrub();
  tsup_collect(2);
  ck_assert_int_eq(check_tree(g_tree), (1L << DEPTH) - 1);
  cgc_get_stats(&s1);
  ck_assert_uint_ge(s1.objects_freed - s0.objects_freed, (uint64_t)(2 * LIST_LEN * 99 / 100));
  AO_store(&cgci_test_helper_delay_ns, 0);
}
END_TEST

static Suite *parmark_suite(void)
{
  Suite *s = suite_create("parmark");
  TCase *tc = tcase_create("lost");

  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, lost_stores_are_repaired);
  tcase_add_test(tc, private_words_cleared_after_merge);
  tcase_add_test(tc, late_helper);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, parmark_suite);
}
