/* ex01_single.c -- one object: a finalizer costs two collections, a cleanup
 * one.
 *
 * What it teaches:
 *   - A finalizer (cgc_set_finalizer, Go's SetFinalizer) receives the object,
 *     so the collection that finds the object unreachable must keep it: the
 *     object is resurrected, the finalizer runs, and the memory only comes
 *     back at the NEXT collection (two collections in total).
 *   - A cleanup (cgc_add_cleanup, Go's AddCleanup) never sees the object: the
 *     collection that finds it unreachable reclaims it and queues the cleanup
 *     (one collection).
 *   - In both cases a (short) weak pointer reads NULL as soon as the object
 *     is found unreachable, even while the finalizer is running.
 */
#include <stdio.h>
#include "common.h"

typedef struct resource {
  int id;
  char payload[60];
} resource_t;

static ex_track_t fin_obj, cln_obj;
static int finalizer_runs, cleanup_runs;
static int weak_null_in_finalizer = -1;

static void finalize(void *obj, void *data)
{
  resource_t *r = obj;

  finalizer_runs++;
  /* The object is alive during the call: its fields can still be read. */
  weak_null_in_finalizer = !ex_weak_alive(fin_obj.weak);
  ex_log("finalizer(%s) got the object (id=%d, data=\"%s\"); weak pointer "
         "inside: %s", ex_is(&fin_obj, obj) ? "X" : "?", r->id,
         (const char *)data, weak_null_in_finalizer ? "NULL" : "X");
}

static void cleanup(void *arg)
{
  cleanup_runs++;
  ex_log("cleanup(arg=\"%s\") ran; the object is already gone",
         (const char *)arg);
}

/* The doomed objects are made here, so that no copy of their address is
 * left in main's frame. */
static EX_NOINLINE void make_finalizable(void)
{
  resource_t *x = cgc_malloc(sizeof *x);

  x->id = 1;
  ex_track(&fin_obj, "X", x);
  cgc_set_finalizer(x, finalize, "data of X");
}

static EX_NOINLINE void make_with_cleanup(void)
{
  resource_t *y = cgc_malloc(sizeof *y);

  y->id = 2;
  ex_track(&cln_obj, "Y", y);
  cgc_add_cleanup(y, cleanup, "arg of Y", NULL);
}

int main(void)
{
  ex_track_t *fin_list[] = {&fin_obj, NULL};
  ex_track_t *cln_list[] = {&cln_obj, NULL};

  ex_begin("ex01: one object, finalizer (2 collections) vs cleanup (1)");

  ex_section("X has a finalizer; X becomes unreachable");
  make_finalizable();
  ex_gc();
  ex_show(fin_list);
  ex_expect(finalizer_runs == 1, "the finalizer ran once");
  ex_expect(weak_null_in_finalizer == 1,
            "the weak pointer was already NULL inside the finalizer");
  ex_expect(!fin_obj.freed, "X's memory was NOT reclaimed (resurrected for "
            "the finalizer)");
  ex_expect(!ex_weak_alive(fin_obj.weak), "the weak pointer reads NULL");
  ex_gc();
  ex_show(fin_list);
  ex_expect(finalizer_runs == 1, "the finalizer did not run again");
  ex_expect(fin_obj.freed, "X's memory came back at the second collection");

  ex_section("Y has a cleanup; Y becomes unreachable");
  make_with_cleanup();
  ex_gc();
  ex_show(cln_list);
  ex_expect(cleanup_runs == 1, "the cleanup ran once");
  ex_expect(cln_obj.freed, "Y's memory came back at the first collection");
  ex_expect(!ex_weak_alive(cln_obj.weak), "the weak pointer reads NULL");
  ex_gc();
  ex_expect(cleanup_runs == 1, "the cleanup did not run again");

  return ex_finish();
}
