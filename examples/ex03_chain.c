/* ex03_chain.c -- a chain A->B->C: N+1 collections with finalizers, one
 * with cleanups.
 *
 * What it teaches:
 *   - Finalizers run in dependency order.  While A is finalizable, everything
 *     A points to is kept (the collector scans the contents of every object
 *     that has a finalizer), so only A's finalizer can be queued.  B's turn
 *     comes after A has been finalized and freed, then C's.  A chain of N
 *     finalizable objects needs N+1 collections to be reclaimed.  (A
 *     finalizer may therefore safely use what its object points to.)
 *   - Cleanups have no order and do not keep anything alive: the whole chain
 *     dies, and all its cleanups are queued, in one collection.
 *   - Mixed: a finalizable A pointing to a B that only has a cleanup keeps B
 *     (and delays B's cleanup) until A has been finalized.
 */
#include <stdio.h>
#include "common.h"

typedef struct node {
  struct node *next;
  const char *name;
} node_t;

static ex_track_t fa, fb, fc;      /* chain with finalizers */
static ex_track_t ca, cb, cc;      /* chain with cleanups */
static ex_track_t ma, mb;          /* finalizable A -> B with a cleanup */
static int fin_runs, cln_runs;

static void finalize(void *obj, void *data)
{
  node_t *n = obj;

  (void)data;
  fin_runs++;
  ex_log("finalizer(%s) ran; its next pointer is still usable: %s",
         n->name, n->next != NULL ? n->next->name : "(none)");
}

static void cleanup(void *arg)
{
  cln_runs++;
  ex_log("cleanup(%s) ran", (const char *)arg);
}

/* Builds A->B->C; returns nothing, so the chain is unreachable at once. */
static EX_NOINLINE void make_chain(int finalizers, ex_track_t *ta,
                                   ex_track_t *tb, ex_track_t *tc)
{
  node_t *a = cgc_malloc(sizeof *a);
  node_t *b = cgc_malloc(sizeof *b);
  node_t *c = cgc_malloc(sizeof *c);

  a->next = b;
  b->next = c;
  a->name = "A";
  b->name = "B";
  c->name = "C";
  ex_track(ta, "A", a);
  ex_track(tb, "B", b);
  ex_track(tc, "C", c);
  if (finalizers) {
    cgc_set_finalizer(a, finalize, NULL);
    cgc_set_finalizer(b, finalize, NULL);
    cgc_set_finalizer(c, finalize, NULL);
  } else {
    cgc_add_cleanup(a, cleanup, "A", NULL);
    cgc_add_cleanup(b, cleanup, "B", NULL);
    cgc_add_cleanup(c, cleanup, "C", NULL);
  }
}

static EX_NOINLINE void make_mixed(void)
{
  node_t *a = cgc_malloc(sizeof *a);
  node_t *b = cgc_malloc(sizeof *b);

  a->next = b;
  a->name = "A";
  b->name = "B";
  ex_track(&ma, "A", a);
  ex_track(&mb, "B", b);
  cgc_set_finalizer(a, finalize, NULL);
  cgc_add_cleanup(b, cleanup, "B", NULL);
}

int main(void)
{
  ex_track_t *flist[] = {&fa, &fb, &fc, NULL};
  ex_track_t *clist[] = {&ca, &cb, &cc, NULL};
  ex_track_t *mlist[] = {&ma, &mb, NULL};
  ex_track_t *order[] = {&fa, &fb, &fc};

  ex_begin("ex03: chain A->B->C, finalizers (N+1 collections) vs cleanups (1)");

  ex_section("A->B->C, every node has a finalizer");
  make_chain(1, &fa, &fb, &fc);
  for (int i = 1; i <= 4; i++) {
    ex_gc();
    ex_show(flist);
    if (i <= 3)
      ex_expect(fin_runs == i, "collection %d ran exactly one finalizer, %s's",
                i, order[i - 1]->name);
    for (int k = 0; k < 3; k++)
      ex_expect(order[k]->freed == (k < i - 1), "%s %s", order[k]->name,
                k < i - 1 ? "freed" : "not freed yet");
  }
  ex_expect(fin_runs == 3, "3 objects, 3 finalizers, 4 collections");

  ex_section("A->B->C, every node has a cleanup");
  make_chain(0, &ca, &cb, &cc);
  ex_gc();
  ex_show(clist);
  ex_expect(cln_runs == 3, "all three cleanups ran after one collection");
  ex_expect(ca.freed && cb.freed && cc.freed, "all three objects freed");

  ex_section("finalizable A -> B that has a cleanup");
  cln_runs = fin_runs = 0;
  make_mixed();
  ex_gc();
  ex_show(mlist);
  ex_expect(fin_runs == 1 && cln_runs == 0,
            "A was finalized; B is kept by A, its cleanup waits");
  ex_expect(ex_weak_alive(mb.weak), "B's weak pointer still reads B");
  ex_gc();
  ex_show(mlist);
  ex_expect(cln_runs == 1 && ma.freed && mb.freed,
            "second collection: A and B freed, B's cleanup ran");

  return ex_finish();
}
