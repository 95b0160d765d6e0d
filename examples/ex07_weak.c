/* ex07_weak.c -- when weak pointers read NULL: short vs long, around a
 * finalizer and around a cleanup, and the "kept only by a finalizable
 * object" case (spec section 5.3).
 *
 * What it teaches:
 *   - cgc_weak_make gives a SHORT weak pointer (Go's weak.Pointer, Java's
 *     WeakReference, .NET's short WeakReference): it reads NULL as soon as a
 *     collection finds the object unreachable, before the finalizer runs,
 *     and it stays NULL even if the finalizer resurrects the object.
 *   - cgc_weak_make_long gives a LONG weak pointer (Boehm's long link, .NET's
 *     trackResurrection): it reads NULL only when the storage is reclaimed,
 *     so it follows the object through its finalizer (and a resurrection).
 *   - With a cleanup, both kinds read NULL at once: the object is reclaimed
 *     by the collection that queues the cleanup, so inside the cleanup they
 *     already read NULL.
 *   - Section 5.3: an object B reachable only from a dying finalizable A is
 *     kept (A's finalizer may use it), so a weak pointer to B still reads B
 *     while A is being finalized.  It reads NULL one collection later.  In
 *     Java, and with Boehm's short links, it would already be NULL.
 */
#include <stdio.h>
#include "common.h"

typedef struct node {
  struct node *next;
  const char *name;
} node_t;

static ex_track_t x, y, a, b;
static cgc_weak_t x_long, y_long, b_long;
static int fin_runs, cln_runs;
static int x_short_in_fin = -1, x_long_in_fin = -1;
static int y_short_in_cln = -1, y_long_in_cln = -1;
static int b_short_in_fin = -1;

static void finalize_x(void *obj, void *data)
{
  (void)obj;
  (void)data;
  fin_runs++;
  x_short_in_fin = ex_weak_alive(x.weak);
  x_long_in_fin = ex_weak_alive(x_long);
  ex_log("finalizer(X): short weak reads %s, long weak reads %s",
         ex_weak_show(x.weak, &x), ex_weak_show(x_long, &x));
}

static void cleanup_y(void *arg)
{
  (void)arg;
  cln_runs++;
  y_short_in_cln = ex_weak_alive(y.weak);
  y_long_in_cln = ex_weak_alive(y_long);
  ex_log("cleanup(Y): short weak reads %s, long weak reads %s",
         ex_weak_show(y.weak, &y), ex_weak_show(y_long, &y));
}

static void finalize_a(void *obj, void *data)
{
  node_t *n = obj;

  (void)data;
  fin_runs++;
  b_short_in_fin = ex_weak_alive(b.weak);
  ex_log("finalizer(A): A->next is %s; weak pointer to B reads %s",
         n->next->name, ex_weak_show(b.weak, &b));
}

static EX_NOINLINE void make_x(void)
{
  node_t *p = cgc_malloc(sizeof *p);

  ex_track(&x, "X", p);
  cgc_weak_make_long(p, &x_long);
  cgc_set_finalizer(p, finalize_x, NULL);
}

static EX_NOINLINE void make_y(void)
{
  node_t *p = cgc_malloc(sizeof *p);

  ex_track(&y, "Y", p);
  cgc_weak_make_long(p, &y_long);
  cgc_add_cleanup(p, cleanup_y, NULL, NULL);
}

static EX_NOINLINE void make_a_b(void)
{
  node_t *pa = cgc_malloc(sizeof *pa);
  node_t *pb = cgc_malloc(sizeof *pb);

  pa->name = "A";
  pb->name = "B";
  pa->next = pb;                   /* B is reachable only from A */
  ex_track(&a, "A", pa);
  ex_track(&b, "B", pb);
  cgc_weak_make_long(pb, &b_long);
  cgc_set_finalizer(pa, finalize_a, NULL);
}

static void show_long(const char *name, cgc_weak_t w, const ex_track_t *t)
{
  printf("   %-3s long weak pointer reads: %s\n", name, ex_weak_show(w, t));
}

int main(void)
{
  ex_track_t *xl[] = {&x, NULL}, *yl[] = {&y, NULL}, *abl[] = {&a, &b, NULL};

  ex_begin("ex07: weak pointer timing, short vs long");

  ex_section("X has a finalizer; short and long weak pointers to X");
  make_x();
  ex_gc();
  ex_show(xl);
  show_long("X", x_long, &x);
  ex_expect(x_short_in_fin == 0 && x_long_in_fin == 1,
            "during the finalizer: short NULL, long still X");
  ex_expect(!ex_weak_alive(x.weak) && ex_weak_alive(x_long) && !x.freed,
            "after the first collection: short NULL, long X (storage kept)");
  ex_gc();
  ex_show(xl);
  show_long("X", x_long, &x);
  ex_expect(x.freed && !ex_weak_alive(x_long),
            "after the second: storage reclaimed, long NULL too");

  ex_section("Y has a cleanup; short and long weak pointers to Y");
  make_y();
  ex_gc();
  ex_show(yl);
  show_long("Y", y_long, &y);
  ex_expect(y_short_in_cln == 0 && y_long_in_cln == 0,
            "during the cleanup both already read NULL");
  ex_expect(y.freed && !ex_weak_alive(y_long), "after the first "
            "collection: Y reclaimed, both NULL");

  ex_section("finalizable A -> plain B, B reachable only from A (spec 5.3)");
  make_a_b();
  ex_gc();
  ex_show(abl);
  show_long("B", b_long, &b);
  ex_expect(!ex_weak_alive(a.weak), "A's weak pointer: NULL (A was queued)");
  ex_expect(b_short_in_fin == 1 && ex_weak_alive(b.weak) && !b.freed,
            "B's SHORT weak pointer still reads B during and after A's "
            "finalizer (Go behaviour; Java/Boehm short would be NULL)");
  ex_gc();
  ex_show(abl);
  show_long("B", b_long, &b);
  ex_expect(a.freed && b.freed && !ex_weak_alive(b.weak) &&
            !ex_weak_alive(b_long), "second collection: A and B reclaimed, "
            "every weak pointer NULL");

  return ex_finish();
}
