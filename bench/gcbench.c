/* gcbench.c -- GCBench, the binary-tree allocation benchmark of John Ellis
 * and Pete Kovac (Java), later adapted to C/C++ by Hans Boehm, written here
 * from its published description (see the Boehm GC "GCBench" page and the
 * summary in the project's research notes, section 4.3):
 *
 *   1. stretch the heap with one tree of depth 18, then drop it;
 *   2. build a long-lived tree of depth 16 (top-down) and a pointer-free
 *      array of 500,000 doubles, both kept to the end;
 *   3. for depths 4, 6, ..., 16 build 2*size(18)/size(d) trees top-down
 *      (allocate a node, then fill its children) and as many bottom-up
 *      (children first), dropping each tree right away;
 *   4. check the long-lived tree and the array are intact.
 *
 * Nodes are {left, right, i, j}.  Malloc back ends free each dropped tree
 * by walking it, which is what a C program without a collector would do.
 *
 * Multi-threaded variant (--threads N, N >= 1): steps 1, 2 and 4 run in
 * main, step 3 runs in N mutator threads at once (each does the whole
 * per-depth loop), so the work grows with N.  --threads 0 (default) runs
 * step 3 on the main thread, like the original.
 *
 * usage: gcbench [--threads N] [--stretch 18] [--longlived 16]
 *                [--maxdepth 16] [--array 500000]
 */
#include "common.h"

typedef struct node {
  struct node *left, *right;
  int i, j;
} node_t;

static int stretch_depth = 18, long_lived_depth = 16;
static int min_depth = 4, max_depth = 16;
static long array_size = 500000;

static long tree_size(int d) { return (1L << (d + 1)) - 1; }
static long num_iters(int d) { return 2 * tree_size(stretch_depth) / tree_size(d); }

static node_t *new_node(node_t *l, node_t *r)
{
  node_t *n = ALLOC(sizeof *n);
  n->left = l;
  n->right = r;
  n->i = 0;
  n->j = 0;
  return n;
}

/* populate -- top-down: the parent exists before its children. */
static void populate(int depth, node_t *n)
{
  if (depth <= 0)
    return;
  depth--;
  n->left = new_node(NULL, NULL);
  n->right = new_node(NULL, NULL);
  populate(depth, n->left);
  populate(depth, n->right);
}

/* make_tree -- bottom-up: children are allocated before the parent. */
static node_t *make_tree(int depth)
{
  if (depth <= 0)
    return new_node(NULL, NULL);
  node_t *l = make_tree(depth - 1);
  node_t *r = make_tree(depth - 1);
  return new_node(l, r);
}

static long count_nodes(const node_t *n)
{
  return n ? 1 + count_nodes(n->left) + count_nodes(n->right) : 0;
}

static void free_tree(node_t *n)
{
#if BACKEND_IS_GC
  (void)n;
#else
  if (!n)
    return;
  free_tree(n->left);
  free_tree(n->right);
  FREE(n);
#endif
}

/* time_construction -- the per-depth loop; returns 1 if the last trees
 * built at every depth had the right number of nodes. */
static int time_construction(int depth)
{
  long iters = num_iters(depth);
  long want = tree_size(depth);
  int ok = 1;
  node_t *t;

  for (long k = 0; k < iters; k++) {
    t = new_node(NULL, NULL);
    populate(depth, t);
    if (k == iters - 1 && count_nodes(t) != want)
      ok = 0;
    free_tree(t);
  }
  for (long k = 0; k < iters; k++) {
    t = make_tree(depth);
    if (k == iters - 1 && count_nodes(t) != want)
      ok = 0;
    free_tree(t);
  }
  return ok;
}

static void *depth_loop(void *arg)
{
  int *ok = arg;
  for (int d = min_depth; d <= max_depth; d += 2)
    if (!time_construction(d))
      *ok = 0;
  return NULL;
}

int main(int argc, char **argv)
{
  int nthreads = (int)bench_arg(argc, argv, "threads", 0);
  stretch_depth = (int)bench_arg(argc, argv, "stretch", 18);
  long_lived_depth = (int)bench_arg(argc, argv, "longlived", 16);
  max_depth = (int)bench_arg(argc, argv, "maxdepth", 16);
  array_size = bench_arg(argc, argv, "array", 500000);
  int ok = 1;
  char name[32];

  INIT();
  double t0 = bk_now();

  node_t *tmp = make_tree(stretch_depth);           /* stretch */
  if (count_nodes(tmp) != tree_size(stretch_depth))
    ok = 0;
  free_tree(tmp);
  tmp = NULL;

  node_t *long_lived = new_node(NULL, NULL);
  populate(long_lived_depth, long_lived);
  double *array = ALLOC_ATOMIC(sizeof(double) * (size_t)array_size);
  for (long i = 0; i < array_size / 2; i++)
    array[i] = 1.0 / (double)i;
  for (long i = array_size / 2; i < array_size; i++)
    array[i] = 1.0 / (double)i;

  if (nthreads <= 0) {
    depth_loop(&ok);
  } else {
    pthread_t th[64];
    int oks[64];
    if (nthreads > 64)
      nthreads = 64;
    for (int i = 0; i < nthreads; i++) {
      oks[i] = 1;
      if (THREAD_CREATE(&th[i], depth_loop, &oks[i]) != 0) {
        fprintf(stderr, "gcbench: thread creation failed\n");
        return 1;
      }
    }
    for (int i = 0; i < nthreads; i++) {
      pthread_join(th[i], NULL);
      ok &= oks[i];
    }
  }

  if (count_nodes(long_lived) != tree_size(long_lived_depth))
    ok = 0;
  if (array_size > 1000 && array[1000] != 1.0 / 1000)
    ok = 0;
  double secs = bk_now() - t0;
  KEEP_ALIVE(long_lived);
  KEEP_ALIVE(array);

  if (nthreads <= 0)
    snprintf(name, sizeof name, "gcbench");
  else
    snprintf(name, sizeof name, "gcbench-mt%d", nthreads);
  bench_result(name, secs, ok, " nodes_long_lived=%ld", tree_size(long_lived_depth));
  free_tree(long_lived);
  FREE(array);
  return ok ? 0 : 1;
}
