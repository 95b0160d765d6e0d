/* ex08_keepalive.c -- a file wrapper closed by a cleanup, and the
 * "unreachable earlier than you think" hazard that CGC_KEEP_ALIVE fixes.
 *
 * What it teaches:
 *   - A wrapper object owns a file descriptor; a cleanup closes the
 *     descriptor when the wrapper is collected.  The cleanup's arg is the
 *     descriptor NUMBER, not the wrapper (that would leak, see ex06).
 *   - file_read(f) loads f->fd and then never mentions f again.  From that
 *     point the compiler is free to forget f: it is in no register and no
 *     stack slot, so a collection that happens before read() (another
 *     thread allocating, for instance) finds the wrapper unreachable, runs
 *     the cleanup and closes the descriptor while it is still about to be
 *     used.  Worse, a file opened meanwhile gets the same descriptor number,
 *     and read() silently reads the WRONG file.
 *   - CGC_KEEP_ALIVE(f) after the last use of the descriptor is a use of f
 *     that the compiler cannot remove, so f stays in a register or stack
 *     slot that the collector scans until that point.
 *
 * To make the hazard deterministic, this program forces the collection
 * itself, inside meanwhile(), at the worst moment: between the last use of
 * the wrapper and the read.  The outcome depends on the compiler's register
 * allocation: with optimization (the default RelWithDebInfo build) the
 * wrapper is dead at that point and the hazard shows every time; an -O0
 * build keeps every variable in the stack frame, which hides it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common.h"

typedef struct file {
  int fd;
  char name[28];
} file_t;

static char data_path[64], secret_path[64];
static int other_fd = -1;          /* opened by "another part of the program" */
static ex_track_t wrappers[2];
static int wrapper_count;
static int closes;

static void close_fd(void *arg)
{
  int fd = (int)(intptr_t)arg;

  closes++;
  close(fd);
  ex_log("cleanup closed fd %d", fd);
}

static EX_NOINLINE file_t *file_open(const char *path, const char *name)
{
  file_t *f = cgc_malloc(sizeof *f);

  f->fd = open(path, O_RDONLY);
  snprintf(f->name, sizeof f->name, "%s", name);
  ex_track(&wrappers[wrapper_count], wrapper_count == 0 ? "F1" : "F2", f);
  printf("   file_open: wrapper %s owns fd %d\n",
         wrappers[wrapper_count].name, f->fd);
  wrapper_count++;
  /* arg is the descriptor number: it does not point into the heap. */
  cgc_add_cleanup(f, close_fd, (void *)(intptr_t)f->fd, NULL);
  return f;
}

/* What another thread might do at any moment: allocate (and so trigger a
 * collection), then open a file. */
static EX_NOINLINE void meanwhile(void)
{
  printf("   meanwhile: a collection runs...\n");
  ex_gc();
  other_fd = open(secret_path, O_RDONLY);
  printf("   meanwhile: another file was opened and got fd %d\n", other_fd);
}

/* The hazard: f is not used after f->fd is loaded. */
static EX_NOINLINE ssize_t file_read(file_t *f, char *buf, size_t n)
{
  int fd = f->fd;

  meanwhile();
  return read(fd, buf, n);
}

/* The fix: f is kept alive until the read has returned. */
static EX_NOINLINE ssize_t file_read_kept(file_t *f, char *buf, size_t n)
{
  int fd = f->fd;
  ssize_t r;

  meanwhile();
  r = read(fd, buf, n);
  CGC_KEEP_ALIVE(f);
  return r;
}

/* Opens the data file and reads it once; the wrapper is dropped by the
 * caller immediately, as in `n = file_read(file_open(path), ...)`. */
static EX_NOINLINE ssize_t read_once(int keep_alive, char *buf, size_t n)
{
  if (keep_alive)
    return file_read_kept(file_open(data_path, "data"), buf, n);
  return file_read(file_open(data_path, "data"), buf, n);
}

static void write_file(char *path, const char *tmpl, const char *text)
{
  int fd;

  snprintf(path, 64, "%s", tmpl);
  fd = mkstemp(path);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
    perror("temporary file");
    exit(2);
  }
  close(fd);
}

static void report(ssize_t r, const char *buf)
{
  if (r < 0)
    printf("   read() failed: %s\n", strerror(errno));
  else
    printf("   read() returned %zd bytes: \"%.*s\"\n", r,
           (int)(r > 0 && buf[r - 1] == '\n' ? r - 1 : r), buf);
}

int main(void)
{
  char buf[64];
  ssize_t r;
  int hazard;

  ex_begin("ex08: file wrapper closed by a cleanup, with and without "
           "CGC_KEEP_ALIVE");
  write_file(data_path, "/tmp/cgc-ex08-data-XXXXXX", "contents of the data file\n");
  write_file(secret_path, "/tmp/cgc-ex08-secret-XXXXXX", "SECRET password file\n");

  ex_section("without CGC_KEEP_ALIVE");
  memset(buf, 0, sizeof buf);
  r = read_once(0, buf, sizeof buf);
  report(r, buf);
  ex_show((ex_track_t *[]){&wrappers[0], NULL});
  hazard = wrappers[0].freed;
  if (hazard) {
    ex_expect(closes == 1, "the wrapper was collected during file_read and "
              "its cleanup closed the descriptor before read()");
    ex_expect(r < 0 || strncmp(buf, "contents", 8) != 0,
              "so read() failed or read another file");
  } else {
    printf("   the compiler kept the wrapper alive in this build (-O0?): "
           "the hazard did not show this time\n");
  }
#if defined(__OPTIMIZE__)
  ex_expect(hazard, "in an optimized build the hazard shows");
#endif
  close(other_fd);
  ex_gc();                         /* nothing left to do */

  ex_section("with CGC_KEEP_ALIVE(f) after the read");
  memset(buf, 0, sizeof buf);
  closes = 0;
  r = read_once(1, buf, sizeof buf);
  report(r, buf);
  ex_show((ex_track_t *[]){&wrappers[1], NULL});
  ex_expect(r > 0 && strncmp(buf, "contents", 8) == 0,
            "read() read the right file");
  ex_expect(!wrappers[1].freed && closes == 0,
            "the wrapper survived the collection in the middle");
  close(other_fd);
  ex_gc();
  ex_show((ex_track_t *[]){&wrappers[1], NULL});
  ex_expect(wrappers[1].freed && closes == 1,
            "after file_read_kept returned, the next collection closed it");

  unlink(data_path);
  unlink(secret_path);
  return ex_finish();
}
