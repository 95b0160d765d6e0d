/* ex04_cycles.c -- a 2-cycle and a self-loop: leaked with finalizers,
 * collected with cleanups.
 *
 * What it teaches:
 *   - The collector scans the contents of every object with a finalizer
 *     (that is how finalizers get their dependency order).  In a cycle
 *     A<->B, or a self-loop S->S, the finalizable object is therefore always
 *     reachable from its own contents: its finalizer never runs and the
 *     memory is never reclaimed.  This is the behaviour of Go's SetFinalizer
 *     and of Boehm's GC_register_finalizer.
 *   - Weak pointers into such a leaked cycle keep reading the objects, so a
 *     program can still reach them and break the cycle by hand.  After that
 *     the finalizers run, in dependency order.
 *   - With cleanups, cycles are ordinary garbage: one collection reclaims
 *     them and runs every cleanup.
 */
#include <stdio.h>
#include "common.h"

typedef struct node {
  struct node *next;
  const char *name;
} node_t;

static ex_track_t fa, fb, fs;      /* finalizers: A<->B and S->S */
static ex_track_t ca, cb, cs;      /* cleanups:   A<->B and S->S */
static int fin_runs, cln_runs;

static void finalize(void *obj, void *data)
{
  (void)data;
  fin_runs++;
  ex_log("finalizer(%s) ran", ((node_t *)obj)->name);
}

static void cleanup(void *arg)
{
  cln_runs++;
  ex_log("cleanup(%s) ran", (const char *)arg);
}

static EX_NOINLINE void make_cycles(int finalizers, ex_track_t *ta,
                                    ex_track_t *tb, ex_track_t *ts)
{
  node_t *a = cgc_malloc(sizeof *a);
  node_t *b = cgc_malloc(sizeof *b);
  node_t *s = cgc_malloc(sizeof *s);

  a->next = b;
  b->next = a;
  s->next = s;
  a->name = "A";
  b->name = "B";
  s->name = "S";
  ex_track(ta, "A", a);
  ex_track(tb, "B", b);
  ex_track(ts, "S", s);
  if (finalizers) {
    cgc_set_finalizer(a, finalize, NULL);
    cgc_set_finalizer(b, finalize, NULL);
    cgc_set_finalizer(s, finalize, NULL);
  } else {
    cgc_add_cleanup(a, cleanup, "A", NULL);
    cgc_add_cleanup(b, cleanup, "B", NULL);
    cgc_add_cleanup(s, cleanup, "S", NULL);
  }
}

/* Recover A and S through their weak pointers and cut their links. */
static EX_NOINLINE int break_cycles(void)
{
  node_t *a = cgc_weak_get(fa.weak);
  node_t *s = cgc_weak_get(fs.weak);

  if (a == NULL || s == NULL)
    return 0;
  a->next = NULL;                  /* now only B -> A remains */
  s->next = NULL;
  return 1;
}

int main(void)
{
  ex_track_t *flist[] = {&fa, &fb, &fs, NULL};
  ex_track_t *clist[] = {&ca, &cb, &cs, NULL};

  ex_begin("ex04: cycles leak with finalizers, are collected with cleanups");

  ex_section("A<->B and S->S, every object has a finalizer");
  make_cycles(1, &fa, &fb, &fs);
  for (int i = 0; i < 3; i++) {
    ex_gc();
    ex_show(flist);
  }
  ex_expect(fin_runs == 0, "after 3 collections no finalizer has run");
  ex_expect(!fa.freed && !fb.freed && !fs.freed, "nothing was reclaimed: "
            "the cycles leak");
  ex_expect(ex_weak_alive(fa.weak) && ex_weak_alive(fs.weak),
            "weak pointers into the leaked cycles still read the objects");

  ex_section("break the cycles by hand (A->next = NULL, S->next = NULL)");
  ex_expect(break_cycles(), "A and S recovered through their weak pointers");
  ex_gc();
  ex_show(flist);
  ex_expect(fin_runs == 2, "B's and S's finalizers ran (A is still kept by "
            "B's contents)");
  ex_gc();
  ex_show(flist);
  ex_expect(fin_runs == 3 && fb.freed && fs.freed,
            "B and S freed, then A's finalizer ran");
  ex_gc();
  ex_show(flist);
  ex_expect(fa.freed, "A freed: everything reclaimed");

  ex_section("A<->B and S->S, every object has a cleanup");
  make_cycles(0, &ca, &cb, &cs);
  ex_gc();
  ex_show(clist);
  ex_expect(cln_runs == 3, "all three cleanups ran at the first collection");
  ex_expect(ca.freed && cb.freed && cs.freed, "both cycles were reclaimed");

  return ex_finish();
}
