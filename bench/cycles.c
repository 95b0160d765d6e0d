/* cycles.c -- cyclic garbage: the shapes reference counting cannot free
 * and a tracing collector must, written for this suite.
 *
 * The program keeps a sliding window of W live structures.  Each round it
 * builds one structure of random size s in 2..1000 nodes, verifies it, and
 * stores it in the window slot of the structure built W rounds earlier,
 * which becomes garbage.  Structures alternate between:
 *
 *   ring   a doubly linked circular list (next/prev), every node on a
 *          cycle of length s and on 2-cycles with its neighbours;
 *   graph  a spine 0 -> 1 -> ... -> s-1 where every node also has a back
 *          edge to a random earlier node and a cross edge to a random node,
 *          so the graph is full of cycles of all lengths.
 *
 * Every round also re-verifies a random older structure in the window
 * (catches memory freed while still reachable).  Malloc back ends free a
 * dropped structure by walking its next pointers (ring: once around;
 * graph: along the spine).  Node = {next, prev/back, cross, value}.
 *
 * usage: cycles [--rounds 60000] [--window 256] [--seed 1]
 */
#include "common.h"

typedef struct cnode {
  struct cnode *next, *back, *cross;
  long value;
} cnode_t;

typedef struct {
  cnode_t *head;
  long size;
  int kind;            /* 0 ring, 1 graph */
} slot_t;

static cnode_t *build_ring(long s)
{
  cnode_t *head = ALLOC(sizeof *head), *prev = head;
  head->value = 0;
  for (long i = 1; i < s; i++) {
    cnode_t *n = ALLOC(sizeof *n);
    n->value = i;
    n->back = prev;
    n->cross = NULL;
    prev->next = n;
    prev = n;
  }
  prev->next = head;
  head->back = prev;
  head->cross = NULL;
  return head;
}

static cnode_t *build_graph(long s, bench_rng_t *rng, cnode_t **scratch)
{
  cnode_t *head = NULL, *prev = NULL;
  for (long i = 0; i < s; i++) {
    cnode_t *n = ALLOC(sizeof *n);
    n->value = i;
    n->next = NULL;
    n->back = i ? scratch[bench_rand_below(rng, (uint64_t)i)] : n;
    n->cross = NULL;
    scratch[i] = n;
    if (prev)
      prev->next = n;
    else
      head = n;
    prev = n;
  }
  for (long i = 0; i < s; i++)
    scratch[i]->cross = scratch[bench_rand_below(rng, (uint64_t)s)];
  for (long i = 0; i < s; i++)   /* do not leave a root to the nodes */
    scratch[i] = NULL;
  return head;
}

/* verify -- walk the structure the way its shape promises; 1 if intact. */
static int verify(const slot_t *sl)
{
  const cnode_t *n = sl->head;
  long sum = 0, want = sl->size * (sl->size - 1) / 2;
  if (sl->kind == 0) {
    for (long i = 0; i < sl->size; i++, n = n->next) {
      if (n->value != i || n->next->back != n)
        return 0;
      sum += n->value;
    }
    return n == sl->head && sum == want;
  }
  for (long i = 0; i < sl->size; i++, n = n->next) {
    if (n->value != i || n->back->value > i || n->cross->value >= sl->size)
      return 0;
    sum += n->value;
  }
  return n == NULL && sum == want;
}

static void release(slot_t *sl)
{
#if BACKEND_IS_GC
  (void)sl;
#else
  cnode_t *n = sl->head;
  for (long i = 0; i < sl->size; i++) {
    cnode_t *next = n->next;
    FREE(n);
    n = next;
  }
#endif
  sl->head = NULL;
}

int main(int argc, char **argv)
{
  long rounds = bench_arg(argc, argv, "rounds", 60000);
  long window = bench_arg(argc, argv, "window", 256);
  bench_rng_t rng = { (uint64_t)bench_arg(argc, argv, "seed", 1) * 2654435761u + 1 };
  int ok = 1;
  long nodes = 0;
  uint64_t digest = 0;

  INIT();
  double t0 = bk_now();
  /* the window and scratch are collector memory, scanned like any heap
   * object, so the structures in them are reachable through the heap */
  slot_t *win = ALLOC(sizeof *win * (size_t)window);
  cnode_t **scratch = ALLOC(sizeof *scratch * 1000);
  for (long i = 0; i < window; i++)
    win[i].head = NULL;

  for (long r = 0; r < rounds; r++) {
    slot_t *sl = &win[r % window];
    if (sl->head)
      release(sl);
    long s = 2 + (long)bench_rand_below(&rng, 999);
    sl->size = s;
    sl->kind = (int)(r & 1);
    sl->head = sl->kind ? build_graph(s, &rng, scratch) : build_ring(s);
    nodes += s;
    if (!verify(sl))
      ok = 0;
    const slot_t *old = &win[bench_rand_below(&rng, (uint64_t)window)];
    if (old->head && !verify(old))
      ok = 0;
    digest = digest * 31 + (uint64_t)s + (uint64_t)sl->head->next->value;
  }
  for (long i = 0; i < window; i++)
    if (win[i].head && !verify(&win[i]))
      ok = 0;
  double secs = bk_now() - t0;
  for (long i = 0; i < window; i++)
    if (win[i].head)
      release(&win[i]);
  FREE(win);
  FREE(scratch);
  bench_result("cycles", secs, ok, " nodes=%ld digest=%llu", nodes,
               (unsigned long long)digest);
  return ok ? 0 : 1;
}
