/* ex10_errors.c -- misuse returns an error code (and calls the error hook);
 * strict mode turns misuse into an immediate abort with one line.
 *
 * What it teaches:
 *   - Each registration function checks its pointer: NULL (CGC_EINVAL), not
 *     in the collected heap (CGC_ENOTHEAP), not the start of a block where a
 *     start is required (CGC_ENOTBASE), a second finalizer (CGC_EEXIST), a
 *     cleanup whose arg is the object itself (CGC_EARGPTR), freeing an
 *     object that has a finalizer (CGC_EBUSY).  The call does nothing and
 *     returns the code; the error hook sees every such misuse.
 *   - Cleanups and weak pointers accept interior pointers; finalizers need
 *     the block start.
 *   - With strict mode (cgc_config_t.strict = 1 or CGC_STRICT=1) the same
 *     misuse prints one line to stderr and aborts, like Go's fatal errors.
 *     This program runs itself a second time in strict mode to show it.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common.h"

static int hook_calls;
static char last_hook[160];

static void error_hook(int err, const char *func, const char *msg)
{
  hook_calls++;
  snprintf(last_hook, sizeof last_hook, "%s: %s (%s)", func, msg,
           cgc_strerror(err));
}

static void fin(void *obj, void *data)
{
  (void)obj;
  (void)data;
}

static void cln(void *arg)
{
  (void)arg;
}

static int errors_returned;

static void check(const char *call, int got, int want)
{
  ex_expect(got == want, "%-44s -> %d %s", call, got, cgc_strerror(got));
  if (got != CGC_OK) {
    errors_returned++;
    printf("         error hook saw: %s\n",
           last_hook[0] != '\0' ? last_hook : "(nothing)");
  }
  last_hook[0] = '\0';
}

static int static_object;

/* The strict-mode child: the second finalizer aborts the process. */
static int strict_child(void)
{
  cgc_config_t cfg = CGC_CONFIG_DEFAULT;
  void *p;

  cfg.strict = 1;
  cgc_init(&cfg);
  p = cgc_malloc(16);
  cgc_set_finalizer(p, fin, NULL);
  cgc_set_finalizer(p, fin, NULL);       /* aborts here */
  printf("not reached\n");
  return 0;
}

static void run_strict_child(const char *self)
{
  int pipefd[2], status;
  char out[512];
  ssize_t n;
  pid_t pid;

  if (pipe(pipefd) != 0) {
    perror("pipe");
    exit(2);
  }
  fflush(stdout);
  pid = fork();
  if (pid == 0) {
    dup2(pipefd[1], 2);
    close(pipefd[0]);
    close(pipefd[1]);
    execl(self, self, "--strict-child", (char *)NULL);
    _exit(127);
  }
  close(pipefd[1]);
  n = read(pipefd[0], out, sizeof out - 1);
  out[n > 0 ? n : 0] = '\0';
  close(pipefd[0]);
  waitpid(pid, &status, 0);
  printf("   child stderr: %s", out);
  if (n > 0 && out[n - 1] != '\n')
    printf("\n");
  printf("   child status: %s\n", WIFSIGNALED(status)
         ? (WTERMSIG(status) == SIGABRT ? "killed by SIGABRT" : "killed by a signal")
         : "exited");
  ex_expect(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT,
            "strict mode aborted the child");
  ex_expect(strstr(out, "cgc_set_finalizer: finalizer already set") != NULL,
            "with the message \"cgc_set_finalizer: finalizer already set\"");
}

int main(int argc, char **argv)
{
  int local = 0;
  char *p, *q;
  cgc_weak_t w;
  cgc_cleanup_t h;

  if (argc > 1 && strcmp(argv[1], "--strict-child") == 0)
    return strict_child();

  ex_begin("ex10: error codes, the error hook, strict mode");
  cgc_set_error_hook(error_hook);
  p = cgc_malloc(32);
  q = cgc_malloc(32);

  ex_section("finalizers");
  check("cgc_set_finalizer(NULL, fn, NULL)", cgc_set_finalizer(NULL, fin, NULL), CGC_EINVAL);
  check("cgc_set_finalizer(&local, fn, NULL)", cgc_set_finalizer(&local, fin, NULL), CGC_ENOTHEAP);
  check("cgc_set_finalizer(&static_object, fn, NULL)", cgc_set_finalizer(&static_object, fin, NULL), CGC_ENOTHEAP);
  check("cgc_set_finalizer(p + 8, fn, NULL)", cgc_set_finalizer(p + 8, fin, NULL), CGC_ENOTBASE);
  check("cgc_set_finalizer(p, fn, NULL)", cgc_set_finalizer(p, fin, NULL), CGC_OK);
  check("cgc_set_finalizer(p, fn, NULL) again", cgc_set_finalizer(p, fin, NULL), CGC_EEXIST);
  check("cgc_free(p) while it has a finalizer", cgc_free(p), CGC_EBUSY);
  check("cgc_set_finalizer(p, NULL, NULL) (clear)", cgc_set_finalizer(p, NULL, NULL), CGC_OK);
  check("cgc_free(p)", cgc_free(p), CGC_OK);

  ex_section("cleanups");
  check("cgc_add_cleanup(NULL, fn, NULL, &h)", cgc_add_cleanup(NULL, cln, NULL, &h), CGC_EINVAL);
  check("cgc_add_cleanup(q, NULL, NULL, &h)", cgc_add_cleanup(q, NULL, NULL, &h), CGC_EINVAL);
  check("cgc_add_cleanup(&local, fn, NULL, &h)", cgc_add_cleanup(&local, cln, NULL, &h), CGC_ENOTHEAP);
  check("cgc_add_cleanup(q, fn, q, &h)", cgc_add_cleanup(q, cln, q, &h), CGC_EARGPTR);
  check("cgc_add_cleanup(q + 8, fn, NULL, &h)", cgc_add_cleanup(q + 8, cln, NULL, &h), CGC_OK);
  ex_expect(cgc_cleanup_stop(h), "cgc_cleanup_stop(h) -> true");

  ex_section("weak pointers");
  check("cgc_weak_make(&local, &w)", cgc_weak_make(&local, &w), CGC_ENOTHEAP);
  check("cgc_weak_make(q + 8, &w)", cgc_weak_make(q + 8, &w), CGC_OK);
  check("cgc_weak_make(NULL, &w)", cgc_weak_make(NULL, &w), CGC_OK);
  ex_expect(cgc_weak_get(w) == NULL, "the weak pointer made from NULL "
            "reads NULL");
  CGC_KEEP_ALIVE(q);

  ex_expect(hook_calls == errors_returned, "the error hook was called once "
            "per error (%d)", hook_calls);

  ex_section("strict mode (CGC_STRICT=1 or cgc_config_t.strict = 1)");
  run_strict_child("/proc/self/exe");

  return ex_finish();
}
