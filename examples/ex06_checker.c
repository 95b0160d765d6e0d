/* ex06_checker.c -- a cleanup whose argument leads back to its object never
 * runs; the debug checker finds it.
 *
 * What it teaches:
 *   - A cleanup's arg (and a finalizer's data) is a root until the callback
 *     has run.  If the object can be reached from it, the object never
 *     becomes unreachable: the callback never runs and the memory leaks.
 *   - cgc rejects only the obvious case arg == ptr (CGC_EARGPTR).  An arg
 *     that points to a context which points back to the object, or an
 *     interior pointer into the object, is accepted and leaks silently.
 *   - The debug checker (cgc_config_t.checkfinalizers = 1, or the
 *     environment variable CGC_DEBUG=checkfinalizers=1) re-marks from each
 *     registration's arg/data at every collection and reports the objects it
 *     reaches, with the address of the code that registered them.  This
 *     program captures what the checker writes on stderr and prints it.
 *   - The fix: do not let arg reach the object (copy the few values the
 *     cleanup needs).  cgc_cleanup_stop() also releases the arg, after which
 *     the object is collected.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

typedef struct buffer {
  int fd;
  char data[56];
} buffer_t;

typedef struct ctx {
  buffer_t *owner;                 /* the trap: points back to the object */
  int fd;
} ctx_t;

static ex_track_t o1, o2, o3, f1;
static cgc_cleanup_t h1;
static int runs_o1, runs_o2, runs_o3, runs_f1;
static int argptr_result = 1;

static void flush_ctx(void *arg)
{
  (void)arg;
  runs_o1++;
  ex_log("cleanup(O1) ran");
}

static void flush_interior(void *arg)
{
  (void)arg;
  runs_o2++;
  ex_log("cleanup(O2) ran");
}

static void close_fd(void *arg)
{
  runs_o3++;
  ex_log("cleanup(O3) ran with fd %d", (int)(intptr_t)arg);
}

static void finalize(void *obj, void *data)
{
  (void)obj;
  (void)data;
  runs_f1++;
  ex_log("finalizer(F1) ran");
}

static EX_NOINLINE void make_objects(void)
{
  buffer_t *a = cgc_malloc(sizeof *a);
  buffer_t *b = cgc_malloc(sizeof *b);
  buffer_t *c = cgc_malloc(sizeof *c);
  buffer_t *f = cgc_malloc(sizeof *f);
  ctx_t *ca = cgc_malloc(sizeof *ca);
  ctx_t *cf = cgc_malloc(sizeof *cf);

  ex_track(&o1, "O1", a);
  ex_track(&o2, "O2", b);
  ex_track(&o3, "O3", c);
  ex_track(&f1, "F1", f);
  c->fd = 42;

  /* Rejected: the argument IS the object. */
  argptr_result = cgc_add_cleanup(a, flush_ctx, a, NULL);
  /* Accepted, leaks: the argument is a context that points back. */
  ca->owner = a;
  cgc_add_cleanup(a, flush_ctx, ca, &h1);
  /* Accepted, leaks: the argument points inside the object. */
  cgc_add_cleanup(b, flush_interior, b->data, NULL);
  /* Correct: the argument is a copy of what the cleanup needs. */
  cgc_add_cleanup(c, close_fd, (void *)(intptr_t)c->fd, NULL);
  /* The same trap with a finalizer: its data reaches the object. */
  cf->owner = f;
  cgc_set_finalizer(f, finalize, cf);
}

/* Run one collection with fd 2 redirected to a temporary file, then print
 * what the collector wrote there.  Returns how many findings it reported. */
static int gc_capturing_stderr(int print)
{
  static char text[16384];
  FILE *tmp = tmpfile();
  int saved = dup(2);
  size_t n;
  int findings = 0;

  fflush(stderr);
  dup2(fileno(tmp), 2);
  ex_gc_quiet();
  fflush(stderr);
  dup2(saved, 2);
  close(saved);
  rewind(tmp);
  n = fread(text, 1, sizeof text - 1, tmp);
  text[n] = '\0';
  fclose(tmp);
  for (const char *p = text; (p = strstr(p, "is reachable from")) != NULL; p++)
    findings++;
  if (print) {
    printf("   the collector wrote to stderr:\n");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
      printf("   | %s\n", line);
  }
  return findings;
}

int main(void)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;
  ex_track_t *list[] = {&o1, &o2, &o3, &f1, NULL};
  int findings;

  cfg.checkfinalizers = 1;
  cgc_init(&cfg);
  ex_begin("ex06: arg reaching the object leaks; the debug checker finds it");

  make_objects();
  printf("   cgc_add_cleanup(O1, fn, O1): %d (%s)\n", argptr_result,
         cgc_strerror(argptr_result));
  ex_expect(argptr_result == CGC_EARGPTR, "arg == ptr is rejected");

  ex_section("collection 1 with checkfinalizers=1");
  findings = gc_capturing_stderr(1);
  printf("GC 1\n");
  ex_flush_log();
  ex_show(list);
  ex_expect(runs_o3 == 1 && o3.freed, "O3 (arg is a copy of the fd) was "
            "collected and its cleanup ran");
  ex_expect(runs_o1 == 0 && runs_o2 == 0 && runs_f1 == 0,
            "O1, O2 and F1 were not collected");
  ex_expect(findings >= 3, "the checker reported the three leaks "
            "(%d findings)", findings);

  ex_section("two more collections: the leaks stay");
  for (int i = 2; i <= 3; i++) {
    findings = gc_capturing_stderr(0);
    printf("GC %d (checker findings: %d)\n", i, findings);
    ex_flush_log();
  }
  ex_show(list);
  ex_expect(!o1.freed && !o2.freed && !f1.freed, "still leaked");

  ex_section("cgc_cleanup_stop(O1's cleanup) releases its arg");
  ex_expect(cgc_cleanup_stop(h1), "the stop removed the cleanup");
  findings = gc_capturing_stderr(0);
  printf("GC 4 (checker findings: %d)\n", findings);
  ex_flush_log();
  ex_show(list);
  ex_expect(o1.freed && runs_o1 == 0, "O1 was collected (its cancelled "
            "cleanup did not run)");

  return ex_finish();
}
