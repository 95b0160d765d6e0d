/* common.c -- helpers shared by the cgc examples (see common.h). */
#include "common.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EX_LOG_MAX  128
#define EX_LOG_LINE 160

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_lines[EX_LOG_MAX][EX_LOG_LINE];
static int log_count;
static pthread_t main_thread;
static int failures;
static int collections;

void ex_begin(const char *title)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  main_thread = pthread_self();
  /* Only the collections the example asks for: no automatic ones. */
  cgc_set_gc_percent(-1);
  if (title != NULL)
    printf("== %s ==\n", title);
}

void ex_section(const char *title)
{
  printf("\n-- %s\n", title);
}

void ex_track(ex_track_t *t, const char *name, void *obj)
{
  t->name = name;
  t->hidden = ~(uintptr_t)obj;
  t->freed = 0;
  cgc_debug_on_free(obj, &t->freed);
  if (cgc_weak_make(obj, &t->weak) != CGC_OK)
    ex_expect(0, "cgc_weak_make(%s) succeeds", name);
}

int ex_is(const ex_track_t *t, const void *p)
{
  return (uintptr_t)p == ~t->hidden;
}

EX_NOINLINE const char *ex_weak_show(cgc_weak_t w, const ex_track_t *t)
{
  void *p = cgc_weak_get(w);

  if (p == NULL)
    return "NULL";
  return t != NULL && ex_is(t, p) ? t->name : "another object";
}

EX_NOINLINE int ex_weak_alive(cgc_weak_t w)
{
  return cgc_weak_get(w) != NULL;
}

void ex_show(ex_track_t *const *list)
{
  for (; *list != NULL; list++) {
    ex_track_t *t = *list;
    printf("   %-3s memory freed: %-3s  weak pointer reads: %s\n", t->name,
           t->freed ? "yes" : "no", ex_weak_show(t->weak, t));
  }
}

void ex_log(const char *fmt, ...)
{
  va_list ap;

  pthread_mutex_lock(&log_lock);
  if (log_count < EX_LOG_MAX) {
    va_start(ap, fmt);
    vsnprintf(log_lines[log_count], EX_LOG_LINE, fmt, ap);
    va_end(ap);
    log_count++;
  }
  pthread_mutex_unlock(&log_lock);
}

static int cmp_lines(const void *a, const void *b)
{
  return strcmp((const char *)a, (const char *)b);
}

void ex_flush_log(void)
{
  pthread_mutex_lock(&log_lock);
  qsort(log_lines, (size_t)log_count, EX_LOG_LINE, cmp_lines);
  if (log_count == 0)
    printf("   callbacks run: none\n");
  for (int i = 0; i < log_count; i++)
    printf("   callback: %s\n", log_lines[i]);
  log_count = 0;
  pthread_mutex_unlock(&log_lock);
}

int ex_on_main_thread(void)
{
  return pthread_equal(pthread_self(), main_thread);
}

static EX_NOINLINE void gc_below_pad(void)
{
  cgc_debug_scrub_stack();
  cgc_collect();
  if (cgc_wait_idle(-1) != 1)
    ex_expect(0, "cgc_wait_idle(-1) returns 1");
}

/* ex_gc_quiet -- collect from below a zeroed pad.  The scrub only clears
 * stack *below* its caller; unused slots of the frames just above it (the
 * alignment slot of gc_below_pad, say) can still hold a copy of a pointer
 * left by an earlier, deeper call such as the one that made the doomed
 * object.  Collecting from under a freshly zeroed pad deeper than those
 * calls went keeps such slots out of the live part of the stack.  One
 * kilobyte was not enough: cgc_add_cleanup's calls reach further below
 * the caller's frame, and with some stack alignments (the start of the
 * stack is randomized) a slot of gc_below_pad kept ex04's cycle alive. */
EX_NOINLINE void ex_gc_quiet(void)
{
  volatile char pad[16384];
  memset((char *)pad, 0, sizeof pad);
  gc_below_pad();
  __asm__ __volatile__("" : : "r"(pad) : "memory");
  collections++;
}

EX_NOINLINE int ex_gc(void)
{
  ex_gc_quiet();
  printf("GC %d\n", collections);
  ex_flush_log();
  return collections;
}

void ex_expect_at(int ok, const char *file, int line, const char *fmt, ...)
{
  va_list ap;

  printf("   [%s] ", ok ? "ok" : "FAIL");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  if (!ok) {
    const char *base = strrchr(file, '/');
    printf("   (%s:%d)", base != NULL ? base + 1 : file, line);
    failures++;
  }
  printf("\n");
}

int ex_failed(void)
{
  return failures;
}

int ex_finish(void)
{
  if (failures == 0) {
    printf("\nRESULT: PASS\n");
    return 0;
  }
  printf("\nRESULT: FAIL (%d expectation%s not met)\n", failures,
         failures == 1 ? "" : "s");
  return 1;
}
