/* check_roots.c -- unit: root scanning.
 *
 * White-box (src/roots/roots.c): an object referenced only from
 *   (a) a static variable of the program,
 *   (b) the data segment of a library loaded with dlopen (rootlib.c; the
 *       collector keeps working after dlclose, and what only the closed
 *       library referenced is collected),
 *   (c) a __thread variable, of the main thread and of another thread,
 *   (d) a range registered with cgc_add_roots (a libc-malloc buffer, which
 *       is not a root otherwise), until cgc_remove_roots,
 *   (e) the stack of another thread while it is blocked in nanosleep or
 *       in poll (wrapped blocking calls: scanned from the saved state),
 * survives collections with its contents, and is collected once the
 * reference is dropped.  Doomed objects are made by the tsup helpers and
 * stored through deep helpers, so no stale copy stays in the test body.
 */
#include <check.h>
#include <dlfcn.h>
#include <link.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/internal.h"
#include "tsup.h"

#ifndef ROOTLIB_PATH
#  error "ROOTLIB_PATH must name the built rootlib module"
#endif

static tsup_obj_t o[4];
static void *volatile g_root;
static __thread void *volatile tls_root;

static void setup(void) { tsup_init(-1, 1, 0); }

/* ---- storing a hidden object's address, deep ------------------------------- */

struct put_ctx { void *volatile *where; tsup_obj_t *obj; void (*fn)(void *); };

static void put_deep(void *c)
{
  struct put_ctx *p = c;
  void *v = p->obj ? tsup_unhide(p->obj->hid) : NULL;

  if (p->fn)
    p->fn(v);
  else
    *p->where = v;
}

/* *WHERE = OBJ's base (NULL if OBJ is NULL). */
static void put(void *volatile *where, tsup_obj_t *obj)
{
  struct put_ctx c = { where, obj, NULL };
  tsup_deep(put_deep, &c);
}

/* FN(OBJ's base). */
static void call_with(void (*fn)(void *), tsup_obj_t *obj)
{
  struct put_ctx c = { NULL, obj, fn };
  tsup_deep(put_deep, &c);
}

static void new_filled(tsup_obj_t *obj, size_t size, unsigned char v)
{
  tsup_new(obj, size);
  tsup_fill(obj, 0, v);
}

static void assert_alive(tsup_obj_t *obj, unsigned char v)
{
  ck_assert_int_eq(obj->freed, 0);
  ck_assert(tsup_weak_live(obj->weak));
  ck_assert(tsup_obj_check_fill(obj, 0, v));
}

/* ---- (a) static variable --------------------------------------------------- */

START_TEST(global_is_root)
{
  new_filled(&o[0], 96, 0x11);
  put(&g_root, &o[0]);
  tsup_collect(3);
  assert_alive(&o[0], 0x11);
  g_root = NULL;
  tsup_collect(2);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

/* ---- (b) a dlopen'ed library's data ------------------------------------------ */

static void (*lib_set)(void *);
static void *(*lib_get)(void);

static void *open_rootlib(void)
{
  void *h = dlopen(ROOTLIB_PATH, RTLD_NOW | RTLD_LOCAL);

  ck_assert_msg(h != NULL, "dlopen: %s", dlerror());
  lib_set = (void (*)(void *))dlsym(h, "rootlib_set");
  lib_get = (void *(*)(void))dlsym(h, "rootlib_get");
  ck_assert(lib_set != NULL && lib_get != NULL);
  return h;
}

START_TEST(dlopen_data_is_root)
{
  void *h;

  new_filled(&o[0], 64, 0x22);
  new_filled(&o[2], 64, 0x44);
  put(&g_root, &o[2]);                  /* a live control */
  h = open_rootlib();
  call_with(lib_set, &o[0]);
  tsup_collect(3);
  assert_alive(&o[0], 0x22);
  ck_assert(tsup_hide(lib_get()) == o[0].hid);
  lib_set(NULL);
  tsup_collect(2);
  ck_assert_int_eq(o[0].freed, 1);

  /* referenced only by the library, which is then closed */
  new_filled(&o[1], 64, 0x33);
  call_with(lib_set, &o[1]);
  tsup_collect(1);
  assert_alive(&o[1], 0x33);
  lib_set = NULL;
  lib_get = NULL;
  ck_assert_int_eq(dlclose(h), 0);
  tsup_collect(2);
  ck_assert_int_eq(o[1].freed, 1);
  /* the collector keeps working */
  for (int i = 0; i < 1000; i++)
    ck_assert_ptr_nonnull(cgc_malloc(64));
  tsup_collect(2);
  assert_alive(&o[2], 0x44);
  h = open_rootlib();                   /* a fresh copy: fresh data */
  ck_assert_ptr_null(lib_get());
  ck_assert_int_eq(dlclose(h), 0);
  tsup_collect(1);
  assert_alive(&o[2], 0x44);
}
END_TEST

/* ---- (c) __thread variables -------------------------------------------------- */

START_TEST(main_thread_tls_is_root)
{
  ck_assert_uint_gt(cgci_g.static_tls_size, 0);
  new_filled(&o[0], 80, 0x55);
  put(&tls_root, &o[0]);
  tsup_collect(3);
  assert_alive(&o[0], 0x55);
  tls_root = NULL;
  tsup_collect(2);
  ck_assert_int_eq(o[0].freed, 1);
}
END_TEST

/* A helper thread obeying commands: each command is executed, the
 * thread's dead stack is scrubbed, then acknowledged. */
enum { CMD_NONE, CMD_TLS_SET, CMD_TLS_DROP, CMD_STACK_HOLD, CMD_STACK_DROP,
       CMD_EXIT };

static atomic_int cmd, ack, use_poll;

static void thread_sleep(void)
{
  if (atomic_load(&use_poll)) {
    (void)poll(NULL, 0, 5);     /* EINTR is check_threads' business */
  } else {
    struct timespec ts = { 0, 5 * 1000 * 1000 };
    ck_assert_int_eq(nanosleep(&ts, NULL), 0);
  }
}

static void *helper_thread(void *arg)
{
  void *volatile keep = NULL;
  int seen = 0;

  (void)arg;
  for (;;) {
    int c;

    while ((c = atomic_load(&cmd)) == CMD_NONE || atomic_load(&ack) == seen + 1)
      thread_sleep();
    switch (c) {
    case CMD_TLS_SET:    put(&tls_root, &o[1]); break;
    case CMD_TLS_DROP:   tls_root = NULL; break;
    case CMD_STACK_HOLD: put(&keep, &o[2]); break;
    case CMD_STACK_DROP: keep = NULL; break;
    default: break;
    }
    tsup_scrub();
    atomic_store(&cmd, CMD_NONE);
    atomic_store(&ack, ++seen);
    if (c == CMD_EXIT)
      break;
  }
  return NULL;
}

static void command(int c)
{
  int want = atomic_load(&ack) + 1;

  atomic_store(&cmd, c);
  ck_assert_int_eq(tsup_wait_for(&ack, want, 10000), want);
}

static pthread_t start_helper(int poll_mode)
{
  pthread_t th;

  atomic_store(&cmd, CMD_NONE);
  atomic_store(&ack, 0);
  atomic_store(&use_poll, poll_mode);
  ck_assert_int_eq(pthread_create(&th, NULL, helper_thread, NULL), 0);
  return th;
}

static void stop_helper(pthread_t th)
{
  command(CMD_EXIT);
  ck_assert_int_eq(pthread_join(th, NULL), 0);
}

START_TEST(other_thread_tls_is_root)
{
  pthread_t th = start_helper(0);

  new_filled(&o[0], 80, 0x66);
  new_filled(&o[1], 80, 0x77);
  put(&tls_root, &o[0]);                /* main's copy of the variable */
  command(CMD_TLS_SET);                 /* the thread's copy */
  tsup_collect(3);
  assert_alive(&o[0], 0x66);
  assert_alive(&o[1], 0x77);
  command(CMD_TLS_DROP);
  tsup_collect(2);
  ck_assert_int_eq(o[1].freed, 1);
  assert_alive(&o[0], 0x66);
  tls_root = NULL;
  tsup_collect(2);
  ck_assert_int_eq(o[0].freed, 1);
  stop_helper(th);
}
END_TEST

/* ---- (d) registered ranges ------------------------------------------------------ */

START_TEST(add_roots_range)
{
  void *volatile *buf = calloc(16, sizeof(void *));
  void *volatile *other = calloc(16, sizeof(void *));

  ck_assert(buf != NULL && other != NULL);
  new_filled(&o[0], 128, 0x88);
  new_filled(&o[1], 128, 0x99);
  put(&buf[5], &o[0]);
  put(&other[5], &o[1]);               /* libc memory, not registered */
  ck_assert_int_eq(cgc_add_roots((void *)buf, (void *)(buf + 16)), CGC_OK);
  tsup_collect(3);
  assert_alive(&o[0], 0x88);
  ck_assert_int_eq(o[1].freed, 1);     /* libc memory is no root */
  ck_assert_int_eq(cgc_remove_roots((void *)buf, (void *)(buf + 16)), CGC_OK);
  tsup_collect(2);
  ck_assert_int_eq(o[0].freed, 1);
  ck_assert_uint_eq(cgci_g.nroots, 0);
  free((void *)buf);
  free((void *)other);
}
END_TEST

/* ---- (e) another thread's stack while it is blocked ------------------------------ */

static void blocked_stack_case(int poll_mode)
{
  pthread_t th = start_helper(poll_mode);
  int blocked_seen = 0;

  new_filled(&o[2], 200, 0xA5);
  command(CMD_STACK_HOLD);
  for (int i = 0; i < 6; i++) {
    /* count collections that found the thread in its blocking call */
    for (struct cgci_thread *t = cgci_g.threads; t; t = t->next)
      if (t != cgci_self && t->pth == th && AO_load(&t->state) == CGCI_TS_BLOCKED)
        blocked_seen++;
    tsup_collect(1);
    tsup_sleep_ms(3);
  }
  ck_assert_int_gt(blocked_seen, 0);
  assert_alive(&o[2], 0xA5);
  command(CMD_STACK_DROP);
  tsup_collect(2);
  ck_assert_int_eq(o[2].freed, 1);
  stop_helper(th);
}

START_TEST(blocked_in_nanosleep_stack_is_root) { blocked_stack_case(0); }
END_TEST
START_TEST(blocked_in_poll_stack_is_root) { blocked_stack_case(1); }
END_TEST

/* ---- (g) fork while one of our snapshots waits for the loader lock ------------
 *
 * A program thread sits in its own dl_iterate_phdr callback, holding the
 * loader's write lock; another thread starts a data-segment snapshot and
 * waits for that lock; the main thread forks.  In the child the lock stays
 * held by a thread that no longer exists, so the child must never call
 * dl_iterate_phdr: it keeps the parent's snapshot, and a global pointer is
 * still a root.  Before this was handled the child hung in its first
 * collection (the alarm turns a hang into a failure). */

static atomic_int holder_in, holder_release;

static int hold_cb(struct dl_phdr_info *info, size_t size, void *data)
{
  (void)info; (void)size; (void)data;
  atomic_store(&holder_in, 1);
  while (!atomic_load(&holder_release))
    tsup_sleep_ms(5);
  return 1;
}

static void *holder_main(void *arg) { (void)arg; dl_iterate_phdr(hold_cb, NULL); return NULL; }
static void *snapper_main(void *arg) { (void)arg; cgci_roots_snapshot(); return NULL; }

static __attribute__((noinline)) int child_checks(void)
{
  unsigned char *p = g_root;
  int ok = 1;

  for (int r = 0; r < 3; r++) {
    cgc_collect();
    for (int i = 0; i < 2000; i++) {          /* reuse what was freed */
      unsigned char *q = cgc_malloc(96);
      if (q == NULL)
        return 0;
      memset(q, 0, 96);
    }
  }
  for (int i = 0; i < 96; i++)
    ok &= p[i] == 0x5a;
  return ok && o[0].freed == 0;
}

START_TEST(fork_while_snapshot_waits)
{
  pthread_t h, sn;
  int st;

  new_filled(&o[0], 96, 0x5a);
  put(&g_root, &o[0]);
  tsup_collect(1);                            /* a snapshot exists */
  ck_assert_int_eq(pthread_create(&h, NULL, holder_main, NULL), 0);
  while (!atomic_load(&holder_in))
    tsup_sleep_ms(1);
  ck_assert_int_eq(pthread_create(&sn, NULL, snapper_main, NULL), 0);
  tsup_sleep_ms(100);                         /* the snapshot is waiting */
  pid_t pid = fork();
  ck_assert_int_ge(pid, 0);
  if (pid == 0) {
    alarm(20);
    _exit(child_checks() ? 0 : 1);
  }
  atomic_store(&holder_release, 1);
  pthread_join(h, NULL);
  pthread_join(sn, NULL);
  ck_assert_int_eq(waitpid(pid, &st, 0), pid);
  ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
                "child status %d (signal %d)", st, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
  assert_alive(&o[0], 0x5a);
}
END_TEST

/* ---- snapshots are taken once per collection ------------------------------ */

/* Past the trigger with collection disabled, no collection comes, so the
 * allocation slow path must not enumerate the data segments again and
 * again; with collection enabled, once per collection.  (A regression
 * here costs a dl_iterate_phdr and two meta mappings per span refill.) */
START_TEST(snapshot_once_per_collection)
{
  enum { N = 1 << 18, SZ = 64 };             /* 16 MiB, far past the trigger */
  cgc_set_gc_percent(100);
  tsup_collect(1);
  AO_t before = AO_load(&cgci_roots_nsnap);
  cgc_disable();
  for (int i = 0; i < N; i++)
    ck_assert_ptr_nonnull(cgc_malloc(SZ));
  AO_t disabled = AO_load(&cgci_roots_nsnap) - before;
  cgc_enable();
  ck_assert_msg(disabled <= 1, "%lu snapshots with collection disabled", (unsigned long)disabled);

  cgc_stats_t st0, st1;
  cgc_get_stats(&st0);
  before = AO_load(&cgci_roots_nsnap);
  for (int i = 0; i < 4 * N; i++)
    ck_assert_ptr_nonnull(cgc_malloc(SZ));
  cgc_get_stats(&st1);
  AO_t n = AO_load(&cgci_roots_nsnap) - before;
  uint64_t gcs = st1.collections - st0.collections;
  ck_assert_uint_ge(gcs, 2);
  ck_assert_msg(n >= 1 && n <= gcs + 1, "%lu snapshots for %lu collections", (unsigned long)n,
                (unsigned long)gcs);
  cgc_set_gc_percent(-1);
}
END_TEST

static Suite *roots_suite(void)
{
  Suite *s = suite_create("roots");
  TCase *tc = tcase_create("roots");

  tcase_add_checked_fixture(tc, setup, NULL);
  tcase_set_timeout(tc, 30);
  tcase_add_test(tc, global_is_root);
  tcase_add_test(tc, dlopen_data_is_root);
  tcase_add_test(tc, main_thread_tls_is_root);
  tcase_add_test(tc, other_thread_tls_is_root);
  tcase_add_test(tc, add_roots_range);
  tcase_add_test(tc, blocked_in_nanosleep_stack_is_root);
  tcase_add_test(tc, blocked_in_poll_stack_is_root);
  tcase_add_test(tc, fork_while_snapshot_waits);
  tcase_add_test(tc, snapshot_once_per_collection);
  suite_add_tcase(s, tc);
  return s;
}

int main(int argc, char **argv)
{
  return tsup_main(argc, argv, 20240601, roots_suite);
}
