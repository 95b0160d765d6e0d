/* error.c -- misuse reporting, fatal errors and log output.
 *
 * Every public entry point reports misuse through cgci_error(): in strict
 * mode that prints "FUNC: MSG" (the Go-style texts of the specification)
 * and aborts; otherwise the error hook, if any, is called and the code is
 * returned to the caller.  Output goes straight to fd 2 with write(2):
 * never stdio, which takes locks a stopped thread may hold.
 */
#include "core/internal.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cgci_error(int err, const char *func, const char *msg) {
  if (!cgci_ready()) cgci_ensure_init();   /* CGC_STRICT is read there */
  if (cgci_g.cfg.strict) {
    char line[256];
    int n = snprintf(line, sizeof line, "%s: %s\n", func, msg);
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1;
    cgci_os_write(2, line, (size_t)n);
    abort();
  }
  cgc_error_fn hook = cgci_g.error_hook;
  if (hook) hook(err, func, msg);
  return err;
}

void cgci_fatal(const char *msg) {
  cgci_log("cgc: fatal: %s\n", msg);
  abort();
}

void cgci_assert_fail(const char *expr, const char *file, int line) {
  cgci_log("cgc: assertion failed: %s (%s:%d)\n", expr, file, line);
  abort();
}

/* cgci_log -- printf to stderr through a stack buffer.  vsnprintf with
 * integer and string conversions does not allocate. */
void cgci_log(const char *fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
  cgci_os_write(2, buf, (size_t)n);
}

const char *cgc_strerror(int err) {
  switch (err) {
  case CGC_OK:       return "success";
  case CGC_EINVAL:   return "invalid argument";
  case CGC_ENOTHEAP: return "pointer not in the collected heap";
  case CGC_ENOTBASE: return "pointer not at the start of a block";
  case CGC_EEXIST:   return "object already has a finalizer";
  case CGC_EARGPTR:  return "cleanup argument equals the object pointer";
  case CGC_EBUSY:    return "object has a finalizer";
  case CGC_ENOMEM:   return "out of memory";
  case CGC_EDEADLK:  return "would deadlock";
  default:           return "unknown error";
  }
}

cgc_error_fn cgc_set_error_hook(cgc_error_fn fn) {
  cgc_error_fn old = cgci_g.error_hook;
  cgci_g.error_hook = fn;
  return old;
}

cgc_oom_fn cgc_set_oom_hook(cgc_oom_fn fn) {
  cgc_oom_fn old = cgci_g.oom_hook;
  cgci_g.oom_hook = fn;
  return old;
}
