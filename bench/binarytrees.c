/* binarytrees.c -- "binary-trees" from the Computer Language Benchmarks
 * Game, written from the game's published description:
 *
 *   max = max(min + 2, N) with min = 4;
 *   build a "stretch" tree of depth max+1, check it, drop it;
 *   build a long-lived tree of depth max and keep it to the end;
 *   for d = min, min+2, ..., max: build 2^(max - d + min) trees of depth d
 *   bottom-up, check each (check = number of nodes), drop it, and print
 *   "<iterations>\t trees of depth <d>\t check: <sum>";
 *   finally check the long-lived tree.
 *
 * A node is {left, right}.  Malloc back ends free every tree by walking it
 * (the game's C entries use memory pools instead; we measure general
 * allocators here).  The program verifies every check against its closed
 * form 2^(d+1)-1 and prints "check=FAIL" on any mismatch, and prints a
 * digest (sum of all checks) that must be equal on every back end.
 *
 * Multi-threaded variant (--threads N, N > 1): for each depth the
 * iterations are split round-robin among N threads (the stretch and
 * long-lived trees stay on the main thread).
 *
 * usage: binarytrees [--depth 18] [--threads 1] [--print 1]
 */
#include "common.h"

typedef struct tnode {
  struct tnode *left, *right;
} tnode_t;

static tnode_t *bottom_up(int depth)
{
  tnode_t *n = ALLOC(sizeof *n);
  if (depth > 0) {
    n->left = bottom_up(depth - 1);
    n->right = bottom_up(depth - 1);
  } else {
    n->left = n->right = NULL;
  }
  return n;
}

static long item_check(const tnode_t *n)
{
  return n->left ? 1 + item_check(n->left) + item_check(n->right) : 1;
}

static void free_tree(tnode_t *n)
{
#if BACKEND_IS_GC
  (void)n;
#else
  if (n->left) {
    free_tree(n->left);
    free_tree(n->right);
  }
  FREE(n);
#endif
}

enum { MIN_DEPTH = 4, MAX_THREADS = 64, MAX_DEPTHS = 32 };

static int max_depth, nthreads = 1;
static long depth_check[MAX_THREADS][MAX_DEPTHS];

static void *worker(void *arg)
{
  int id = (int)(intptr_t)arg;
  for (int d = MIN_DEPTH; d <= max_depth; d += 2) {
    long iters = 1L << (max_depth - d + MIN_DEPTH), sum = 0;
    for (long i = id; i < iters; i += nthreads) {
      tnode_t *t = bottom_up(d);
      sum += item_check(t);
      free_tree(t);
    }
    depth_check[id][d] = sum;
  }
  return NULL;
}

int main(int argc, char **argv)
{
  int n = (int)bench_arg(argc, argv, "depth", 18);
  int print = (int)bench_arg(argc, argv, "print", 1);
  nthreads = (int)bench_arg(argc, argv, "threads", 1);
  if (nthreads < 1)
    nthreads = 1;
  if (nthreads > MAX_THREADS)
    nthreads = MAX_THREADS;
  max_depth = n < MIN_DEPTH + 2 ? MIN_DEPTH + 2 : n;
  if (max_depth + 1 >= MAX_DEPTHS)
    return 2;
  int ok = 1;
  long digest = 0;

  INIT();
  double t0 = bk_now();

  tnode_t *stretch = bottom_up(max_depth + 1);
  long c = item_check(stretch);
  free_tree(stretch);
  if (print)
    printf("stretch tree of depth %d\t check: %ld\n", max_depth + 1, c);
  ok &= c == (1L << (max_depth + 2)) - 1;
  digest += c;

  tnode_t *long_lived = bottom_up(max_depth);

  if (nthreads == 1) {
    worker((void *)(intptr_t)0);
  } else {
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < nthreads; i++)
      if (THREAD_CREATE(&th[i], worker, (void *)(intptr_t)i) != 0) {
        fprintf(stderr, "binarytrees: thread creation failed\n");
        return 1;
      }
    for (int i = 0; i < nthreads; i++)
      pthread_join(th[i], NULL);
  }
  for (int d = MIN_DEPTH; d <= max_depth; d += 2) {
    long iters = 1L << (max_depth - d + MIN_DEPTH), sum = 0;
    for (int i = 0; i < nthreads; i++)
      sum += depth_check[i][d];
    if (print)
      printf("%ld\t trees of depth %d\t check: %ld\n", iters, d, sum);
    ok &= sum == iters * ((1L << (d + 1)) - 1);
    digest += sum;
  }

  c = item_check(long_lived);
  if (print)
    printf("long lived tree of depth %d\t check: %ld\n", max_depth, c);
  ok &= c == (1L << (max_depth + 1)) - 1;
  digest += c;
  double secs = bk_now() - t0;
  KEEP_ALIVE(long_lived);

  char name[32];
  if (nthreads == 1)
    snprintf(name, sizeof name, "bt%d", n);
  else
    snprintf(name, sizeof name, "bt%d-mt%d", n, nthreads);
  bench_result(name, secs, ok, " digest=%ld", digest);
  free_tree(long_lived);
  return ok ? 0 : 1;
}
