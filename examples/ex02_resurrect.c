/* ex02_resurrect.c -- a finalizer can resurrect its object; it runs again
 * only if it re-arms itself.
 *
 * What it teaches:
 *   - The finalizer receives the object and may store it somewhere reachable
 *     (here: a global).  The object is then simply alive again.
 *   - The finalizer record was removed when it was queued, so after the
 *     object becomes unreachable a second time it is reclaimed in ONE
 *     collection, and the finalizer does not run again.
 *   - Weak pointers made before the resurrection stay NULL forever; a weak
 *     pointer made after it is a new, different handle that reads the object.
 *   - A finalizer that calls cgc_set_finalizer(obj, ...) again (re-arming)
 *     runs again at every collection that finds the object unreachable,
 *     until it stops re-arming.  Cleanups cannot do any of this: they never
 *     get the object.
 */
#include <stdio.h>
#include "common.h"

typedef struct conn {
  int id;
  int uses;
} conn_t;

static ex_track_t r_obj, a_obj;
static conn_t *graveyard;          /* a global: a root */
static int r_runs, a_runs;
static cgc_weak_t weak_after;      /* made after the resurrection */

static void resurrect(void *obj, void *data)
{
  (void)data;
  r_runs++;
  graveyard = obj;                 /* the object is reachable again */
  ex_log("finalizer(R) ran and stored R in a global (resurrection)");
}

#define REARM_TIMES 3

static void rearm(void *obj, void *data)
{
  conn_t *c = obj;

  (void)data;
  a_runs++;
  c->uses++;
  if (c->uses < REARM_TIMES) {
    cgc_set_finalizer(obj, rearm, NULL);
    ex_log("finalizer(A) run %d: re-armed itself", c->uses);
  } else {
    ex_log("finalizer(A) run %d: did not re-arm", c->uses);
  }
}

static EX_NOINLINE void make_r(void)
{
  conn_t *r = cgc_malloc(sizeof *r);

  ex_track(&r_obj, "R", r);
  cgc_set_finalizer(r, resurrect, NULL);
}

static EX_NOINLINE void make_a(void)
{
  conn_t *a = cgc_malloc(sizeof *a);

  ex_track(&a_obj, "A", a);
  cgc_set_finalizer(a, rearm, NULL);
}

/* Uses the resurrected object through the global, in a frame of its own. */
static EX_NOINLINE int use_resurrected(void)
{
  if (graveyard == NULL)
    return 0;
  graveyard->uses++;
  cgc_weak_make(graveyard, &weak_after);
  return ex_is(&r_obj, graveyard);
}

static EX_NOINLINE void drop_resurrected(void)
{
  graveyard = NULL;
}

int main(void)
{
  ex_track_t *r_list[] = {&r_obj, NULL};
  ex_track_t *a_list[] = {&a_obj, NULL};

  ex_begin("ex02: resurrection, and running again only when re-armed");

  ex_section("R's finalizer stores R in a global");
  make_r();
  ex_gc();
  ex_show(r_list);
  ex_expect(r_runs == 1, "the finalizer ran once");
  ex_expect(!r_obj.freed, "R is alive (resurrected)");
  ex_expect(use_resurrected(), "the global holds R and R can be used");
  ex_expect(!ex_weak_alive(r_obj.weak),
            "the weak pointer made before the resurrection stays NULL");
  ex_expect(ex_weak_alive(weak_after),
            "a weak pointer made after the resurrection reads R");
  ex_expect(!cgc_weak_equal(r_obj.weak, weak_after),
            "the two weak pointers are different handles");
  ex_gc();
  ex_show(r_list);
  ex_expect(r_runs == 1 && !r_obj.freed,
            "R is still reachable from the global: kept, no second run");

  ex_section("the global is cleared: R is unreachable again");
  drop_resurrected();
  ex_gc();
  ex_show(r_list);
  printf("   weak pointer made after the resurrection reads: %s\n",
         ex_weak_show(weak_after, &r_obj));
  ex_expect(r_runs == 1, "the finalizer did NOT run again (not re-armed)");
  ex_expect(r_obj.freed, "R was reclaimed by this single collection");
  ex_expect(!ex_weak_alive(weak_after), "the newer weak pointer reads NULL");

  ex_section("A's finalizer re-arms itself until it has run 3 times");
  make_a();
  for (int i = 1; i <= REARM_TIMES + 1; i++) {
    ex_gc();
    ex_show(a_list);
    if (i <= REARM_TIMES)
      ex_expect(a_runs == i && !a_obj.freed,
                "run %d of the finalizer, A kept alive", i);
    else
      ex_expect(a_runs == REARM_TIMES && a_obj.freed,
                "no finalizer left: A reclaimed at collection %d", i);
  }

  return ex_finish();
}
