/* os_linux.c -- the operating-system boundary: address space, time,
 * output, /proc parsing.  The only file with mmap, madvise and raw /proc
 * reads.  Nothing here allocates through libc: /proc files are read with
 * open/read into stack buffers.
 *
 * Design: docs/design/os.md.
 */
#if !defined(__linux__)
#  error "os_linux.c is Linux-only"
#endif
#include "core/internal.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

void *cgci_os_reserve(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

#ifndef MADV_POPULATE_WRITE
#  define MADV_POPULATE_WRITE 23
#endif

/* cgci_os_populate -- fault in committed pages now, in one call (a kernel
 * without MADV_POPULATE_WRITE says EINVAL: they fault on touch instead). */
void cgci_os_populate(void *p, size_t bytes) { (void)madvise(p, bytes, MADV_POPULATE_WRITE); }

/* cgci_os_commit -- make [P, P+BYTES) usable and fault it in now with one
 * system call: on virtual machines a page fault costs microseconds, and
 * metadata is committed only when it is about to be used (heap pages are
 * committed ahead in CGCI_COMMIT_STEP steps, so they fault in lazily and do
 * not count in the RSS before use).  Kernels before 5.14
 * lack MADV_POPULATE_WRITE; then pages fault in lazily as usual. */
bool cgci_os_commit(void *p, size_t bytes, bool populate) {
  if (mprotect(p, bytes, PROT_READ | PROT_WRITE) != 0) return false;
  if (populate) cgci_os_populate(p, bytes);
  return true;
}

void cgci_os_hugepages(void *p, size_t bytes) { (void)madvise(p, bytes, MADV_HUGEPAGE); }
void cgci_os_nohugepages(void *p, size_t bytes) { (void)madvise(p, bytes, MADV_NOHUGEPAGE); }

/* cgci_os_release -- give the pages back; they read as zero afterwards. */
void cgci_os_release(void *p, size_t bytes) {
  (void)madvise(p, bytes, MADV_DONTNEED);
}

void *cgci_os_map(size_t bytes) {
  void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? NULL : p;
}

void cgci_os_unmap(void *p, size_t bytes) { (void)munmap(p, bytes); }

void *cgci_os_remap(void *p, size_t old_bytes, size_t new_bytes) {
  void *q = mremap(p, old_bytes, new_bytes, MREMAP_MAYMOVE);
  return q == MAP_FAILED ? NULL : q;
}

/* cgci_os_each_touched -- call FN(LO', HI', CTX) on each maximal run of
 * [LO, HI) (private memory; any alignment) whose pages may hold what a
 * program wrote at run time: present in memory or swapped out, as
 * /proc/self/pagemap says (bits 63 and 62; readable without privileges).
 * A page that is neither was never written or was given back with
 * MADV_DONTNEED: it reads as zero (anonymous) or as the file's bytes, and
 * holds no pointer made at run time, so a conservative scan can skip it.
 * Reading such a page would instead fault it in: a collection that scans
 * a 256 MiB buffer the program touched 1 MiB of would otherwise make it
 * resident (on kernels without the shared zero page) and take a page
 * fault per page.  mincore() cannot serve here: it reports swapped-out
 * pages as absent.  Runs are clipped to [LO, HI); a partial page at either
 * end belongs to the run of its page.  False when pagemap is not open (no
 * /proc, or outside a collection); then the caller scans everything.
 *
 * The descriptor is opened by the collecting thread for one collection
 * (cgci_os_pagemap_begin/end, world stopped): a descriptor kept across
 * collections could be closed or replaced by the program, or be the
 * parent's after fork.  Helper markers share it; pread has no offset. */
static int pagemap_fd = -1;

void cgci_os_pagemap_begin(void) {
  pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

void cgci_os_pagemap_end(void) {
  if (pagemap_fd >= 0) (void)close(pagemap_fd);
  pagemap_fd = -1;
}

bool cgci_os_each_touched(uintptr_t lo, uintptr_t hi, cgci_run_fn fn, void *ctx) {
  int fd = pagemap_fd;
  if (fd < 0) return false;
  enum { BATCH = 512 };
  uint64_t ent[BATCH];
  const uint64_t keep = (uint64_t)3 << 62;              /* present | swapped */
  const uintptr_t pg = 4096;                            /* pagemap's unit */
  uintptr_t run = 0;                                    /* open run, or 0 */
  uintptr_t a = lo & ~(pg - 1);                         /* page being read */
  while (a < hi) {
    size_t want = (size_t)((hi - a + pg - 1) / pg);
    if (want > BATCH) want = BATCH;
    ssize_t got = pread(fd, ent, want * sizeof(uint64_t), (off_t)((a / pg) * sizeof(uint64_t)));
    if (got < (ssize_t)sizeof(uint64_t)) {              /* cannot tell: */
      if (run == 0) run = a;                            /* the rest is touched */
      break;
    }
    size_t k = (size_t)got / sizeof(uint64_t);
    for (size_t i = 0; i < k; i++, a += pg) {
      if (ent[i] & keep) {
        if (run == 0) run = a;
      } else if (run != 0) {
        fn(run < lo ? lo : run, a, ctx);
        run = 0;
      }
    }
  }
  if (run != 0) fn(run < lo ? lo : run, hi, ctx);
  return true;
}

uint64_t cgci_os_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void cgci_os_write(int fd, const char *s, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) { if (errno == EINTR) continue; return; }
    s += w; n -= (size_t)w;
  }
}

pid_t cgci_os_gettid(void) { return (pid_t)syscall(SYS_gettid); }

int cgci_os_ncpu(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n < 1 ? 1 : (int)n;
}

/* cgci_os_getenv -- getenv without locale or allocation concerns. */
const char *cgci_os_getenv(const char *name) {
  size_t len = strlen(name);
  if (environ == NULL) return NULL;
  for (char **e = environ; *e; e++)
    if (strncmp(*e, name, len) == 0 && (*e)[len] == '=') return *e + len + 1;
  return NULL;
}

/* ---- /proc/self/maps --------------------------------------------------- */

static uintptr_t parse_hex(const char **pp) {
  const char *p = *pp; uintptr_t v = 0;
  for (;;) {
    char c = *p;
    if (c >= '0' && c <= '9') v = v * 16 + (uintptr_t)(c - '0');
    else if (c >= 'a' && c <= 'f') v = v * 16 + (uintptr_t)(c - 'a' + 10);
    else break;
    p++;
  }
  *pp = p;
  return v;
}

/* cgci_os_each_mapping -- call FN for every line of /proc/self/maps.  Reads
 * in 16 KiB chunks on the stack; lines longer than the buffer are cut. */
void cgci_os_each_mapping(cgci_maps_fn fn, void *ctx) {
  int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[16384];
  size_t have = 0;
  for (;;) {
    ssize_t r = read(fd, buf + have, sizeof buf - 1 - have);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 && have == 0) break;
    if (r > 0) have += (size_t)r;
    buf[have] = 0;
    char *line = buf, *nl;
    while ((nl = memchr(line, '\n', have - (size_t)(line - buf))) != NULL) {
      *nl = 0;
      const char *p = line;
      uintptr_t lo = parse_hex(&p);
      if (*p == '-') p++;
      uintptr_t hi = parse_hex(&p);
      while (*p == ' ') p++;
      char perms[5] = {0};
      for (int i = 0; i < 4 && p[i]; i++) perms[i] = p[i];
      /* skip perms, offset, dev, inode to the name */
      int fields = 0;
      while (*p && fields < 4) { while (*p && *p != ' ') p++; while (*p == ' ') p++; fields++; }
      fn(lo, hi, perms, p, ctx);
      line = nl + 1;
    }
    size_t rest = have - (size_t)(line - buf);
    if (r <= 0) break;
    if (rest == have) rest = 0;            /* overlong line: drop it */
    memmove(buf, line, rest);
    have = rest;
  }
  close(fd);
}

struct stack_find { uintptr_t sp, lo, hi; bool found; };

static void find_stack_cb(uintptr_t lo, uintptr_t hi, const char *perms,
                          const char *name, void *ctx) {
  (void)perms; (void)name;
  struct stack_find *f = ctx;
  if (f->sp >= lo && f->sp < hi) { f->lo = lo; f->hi = hi; f->found = true; }
}

/* cgci_os_stack_of -- the mapping that contains SP (a thread's stack). */
bool cgci_os_stack_of(uintptr_t sp, uintptr_t *lo, uintptr_t *hi) {
  struct stack_find f = { sp, 0, 0, false };
  cgci_os_each_mapping(find_stack_cb, &f);
  if (f.found) { *lo = f.lo; *hi = f.hi; }
  return f.found;
}
