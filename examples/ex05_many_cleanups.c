/* ex05_many_cleanups.c -- several cleanups on one object; cancelling one;
 * an object with both a finalizer and cleanups.
 *
 * What it teaches:
 *   - An object can carry any number of cleanups, registered at its start
 *     or at interior pointers (a field).  Each has its own handle and runs
 *     exactly once; their order is unspecified and they may run in parallel
 *     on the cleanup threads.
 *   - cgc_cleanup_stop(h) cancels one cleanup.  It returns true only for the
 *     call that removed a cleanup that was still registered; a second stop,
 *     or a stop after the cleanup was queued or ran, returns false.
 *   - By contrast an object has at most ONE finalizer: a second
 *     cgc_set_finalizer returns CGC_EEXIST and keeps the first.
 *   - An object with a finalizer AND cleanups: the finalizer runs first
 *     (object resurrected, cleanups kept), and the cleanups run at the next
 *     collection, when the object dies without a finalizer.
 */
#include <stdbool.h>
#include <stdio.h>
#include "common.h"

typedef struct session {
  int socket_fd;
  char tmp_path[32];
  long bytes;
} session_t;

static ex_track_t s_obj, m_obj;
static cgc_cleanup_t h_close, h_unlink, h_log, h_cancelled;
static int runs_close, runs_unlink, runs_log, runs_cancelled, runs_fin;
static int eexist_result = 1;

static void close_socket(void *arg)
{
  (void)arg;
  runs_close++;
  ex_log("cleanup 'close socket' ran");
}

static void unlink_tmp(void *arg)
{
  (void)arg;
  runs_unlink++;
  ex_log("cleanup 'unlink temp file' ran (registered on &s->tmp_path)");
}

static void log_stats(void *arg)
{
  (void)arg;
  runs_log++;
  ex_log("cleanup 'log statistics' ran");
}

static void cancelled(void *arg)
{
  (void)arg;
  runs_cancelled++;
  ex_log("cleanup 'cancelled' ran (it should not have)");
}

static void finalize(void *obj, void *data)
{
  (void)obj;
  (void)data;
  runs_fin++;
  ex_log("finalizer(M) ran");
}

static void second_finalizer(void *obj, void *data)
{
  (void)obj;
  (void)data;
}

static EX_NOINLINE void make_session(void)
{
  session_t *s = cgc_malloc(sizeof *s);

  ex_track(&s_obj, "S", s);
  cgc_add_cleanup(s, close_socket, NULL, &h_close);
  cgc_add_cleanup(s->tmp_path, unlink_tmp, NULL, &h_unlink); /* interior */
  cgc_add_cleanup(s, log_stats, NULL, &h_log);
  cgc_add_cleanup(s, cancelled, NULL, &h_cancelled);
}

static EX_NOINLINE void make_mixed(void)
{
  session_t *m = cgc_malloc(sizeof *m);

  ex_track(&m_obj, "M", m);
  cgc_add_cleanup(m, log_stats, NULL, NULL);
  cgc_add_cleanup(m, close_socket, NULL, NULL);
  cgc_set_finalizer(m, finalize, NULL);
  eexist_result = cgc_set_finalizer(m, second_finalizer, NULL);
}

int main(void)
{
  ex_track_t *s_list[] = {&s_obj, NULL};
  ex_track_t *m_list[] = {&m_obj, NULL};
  cgc_stats_t before, after;
  bool first, second;

  ex_begin("ex05: several cleanups on one object");

  ex_section("S gets four cleanups; the fourth is cancelled");
  cgc_get_stats(&before);
  make_session();
  printf("   handle ids: %llu %llu %llu %llu (unique, never 0)\n",
         (unsigned long long)h_close.id, (unsigned long long)h_unlink.id,
         (unsigned long long)h_log.id, (unsigned long long)h_cancelled.id);
  ex_expect(h_close.id != 0 && h_close.id != h_unlink.id &&
            h_unlink.id != h_log.id && h_log.id != h_cancelled.id,
            "four distinct handles");
  first = cgc_cleanup_stop(h_cancelled);
  second = cgc_cleanup_stop(h_cancelled);
  printf("   cgc_cleanup_stop(4th): %s, again: %s\n", first ? "true" : "false",
         second ? "true" : "false");
  ex_expect(first && !second, "the first stop cancels, the second is a no-op");
  ex_gc();
  ex_show(s_list);
  ex_expect(runs_close == 1 && runs_unlink == 1 && runs_log == 1,
            "each remaining cleanup ran exactly once");
  ex_expect(runs_cancelled == 0, "the cancelled cleanup did not run");
  ex_expect(s_obj.freed, "S was reclaimed by the same collection");
  ex_expect(!cgc_cleanup_stop(h_close), "stop after the cleanup ran: false");
  cgc_get_stats(&after);
  printf("   stats: cleanups registered +%llu, queued +%llu, run +%llu, "
         "cancelled +%llu\n",
         (unsigned long long)(after.cleanups_registered - before.cleanups_registered),
         (unsigned long long)(after.cleanups_queued - before.cleanups_queued),
         (unsigned long long)(after.cleanups_run - before.cleanups_run),
         (unsigned long long)(after.cleanups_cancelled - before.cleanups_cancelled));
  ex_expect(after.cleanups_registered - before.cleanups_registered == 4 &&
            after.cleanups_queued - before.cleanups_queued == 3 &&
            after.cleanups_run - before.cleanups_run == 3 &&
            after.cleanups_cancelled - before.cleanups_cancelled == 1,
            "the counters agree: 4 registered, 3 queued, 3 run, 1 cancelled");

  ex_section("M has a finalizer and two cleanups");
  runs_close = runs_log = 0;
  make_mixed();
  printf("   second cgc_set_finalizer(M): %d (%s)\n", eexist_result,
         cgc_strerror(eexist_result));
  ex_expect(eexist_result == CGC_EEXIST, "one finalizer per object: "
            "CGC_EEXIST");
  ex_gc();
  ex_show(m_list);
  ex_expect(runs_fin == 1 && runs_close + runs_log == 0,
            "the finalizer ran first; the cleanups wait");
  ex_gc();
  ex_show(m_list);
  ex_expect(runs_fin == 1 && runs_close == 1 && runs_log == 1 && m_obj.freed,
            "next collection: both cleanups ran and M was reclaimed");

  return ex_finish();
}
