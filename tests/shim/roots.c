/* roots.c -- places where real programs keep the only pointer to malloc'd
 * memory, plus huge reallocs, fork and stray frees.
 *
 * Each part stores blocks filled with a known pattern, then allocates and
 * drops a few hundred MiB (so that the collector runs several times in
 * the gc and safe modes), then checks the blocks.  A block the collector
 * wrongly reclaimed shows up as a changed pattern.
 *   - an anonymous mapping from mmap (the shim scans foreign mappings)
 *   - a __thread variable of another thread (static TLS)
 *   - pthread_setspecific of another thread
 *   - a realloc'd buffer grown to 256 MiB
 *   - memory a fork child allocates and checks
 * usage: roots [mmap] [tls] [realloc] [fork] [stray]   (default: all but
 * stray).  "stray" frees pointers it never allocated: only under the
 * preload library, glibc aborts on that.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#define NBLK 64
#define BLK  4000

static int failures;

static void fill(unsigned char *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    p[i] = (unsigned char)(seed + i * 13);
}

static int check(const unsigned char *p, size_t n, unsigned seed)
{
  for (size_t i = 0; i < n; i++)
    if (p[i] != (unsigned char)(seed + i * 13))
      return 0;
  return 1;
}

/* churn -- allocate and drop MB mebibytes in mixed sizes. */
static void __attribute__((noinline)) churn(size_t mb)
{
  size_t total = 0;
  while (total < mb << 20) {
    size_t n = 64 + (total / 64) % 20000;
    char *p = malloc(n);
    memset(p, 0x5a, n);
    total += n;
    if (total % 3 == 0)
      free(p);
  }
}

static void report(const char *what, int ok)
{
  printf("%-28s %s\n", what, ok ? "ok" : "FAILED");
  if (!ok)
    failures++;
}

/* ---- mmap ---- */

/* sparse_store / sparse_check -- the only pointer to a block lives at AT;
 * noinline, so no copy of it stays in the caller's frame. */
static void __attribute__((noinline)) sparse_store(char *at, unsigned seed)
{
  void *b = malloc(BLK);
  fill(b, BLK, seed);
  memcpy(at, &b, sizeof b);
}

static int __attribute__((noinline)) sparse_check(char *at, unsigned seed)
{
  void *b;
  memcpy(&b, at, sizeof b);
  int ok = check(b, BLK, seed);
  free(b);
  return ok;
}

static void part_mmap(void)
{
  void **slots = mmap(NULL, 1 << 16, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  for (unsigned i = 0; i < NBLK; i++) {
    slots[i * 7] = malloc(BLK);
    fill(slots[i * 7], BLK, i);
  }
  churn(200);
  int ok = 1;
  for (unsigned i = 0; i < NBLK; i++)
    ok &= check(slots[i * 7], BLK, i);
  report("pointers in an mmap region", ok);
  for (unsigned i = 0; i < NBLK; i++)
    free(slots[i * 7]);
  munmap(slots, 1 << 16);

  /* a big mapping the program touches only here and there: the collector
   * reads only its resident pages, so the pointers must sit on them (first
   * page, a page in the middle, last word) and still be found */
  size_t big = (size_t)8 << 20;
  char *m = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) {
    perror("mmap");
    failures++;
    return;
  }
  size_t at[3] = {0, (3 << 20) + 4096 * 5 + 8, big - sizeof(void *)};
  for (unsigned i = 0; i < 3; i++)
    sparse_store(m + at[i], 100 + i);
  churn(200);
  ok = 1;
  for (unsigned i = 0; i < 3; i++)
    ok &= sparse_check(m + at[i], 100 + i);
  report("pointers in a sparse mapping", ok);
  munmap(m, big);
}

/* ---- TLS and thread-specific data ---- */
static __thread unsigned char *tls_block;
static pthread_key_t key;
static pthread_barrier_t bar;
static int tls_ok, tsd_ok;

static void *tls_thread(void *arg)
{
  (void)arg;
  tls_block = malloc(BLK);
  fill(tls_block, BLK, 77);
  unsigned char *t = malloc(BLK);
  fill(t, BLK, 78);
  pthread_setspecific(key, t);
  t = NULL;
  pthread_barrier_wait(&bar);          /* main churns now */
  pthread_barrier_wait(&bar);
  tls_ok = check(tls_block, BLK, 77);
  tsd_ok = check(pthread_getspecific(key), BLK, 78);
  free(tls_block);
  return NULL;
}

static void part_tls(void)
{
  pthread_t th;
  pthread_key_create(&key, free);
  pthread_barrier_init(&bar, NULL, 2);
  pthread_create(&th, NULL, tls_thread, NULL);
  pthread_barrier_wait(&bar);
  churn(200);
  pthread_barrier_wait(&bar);
  pthread_join(th, NULL);
  report("pointer only in __thread", tls_ok);
  report("pointer only in setspecific", tsd_ok);
}

/* ---- huge realloc ---- */
static void part_realloc(void)
{
  size_t n = 1000;
  unsigned char *p = malloc(n);
  int ok = 1;
  fill(p, n, 5);
  while (n < ((size_t)256 << 20)) {
    size_t m = n * 2;
    p = realloc(p, m);
    if (p == NULL) {
      ok = 0;
      break;
    }
    ok &= check(p, n, 5);
    fill(p, m, 5);
    n = m;
  }
  if (p != NULL) {
    p = realloc(p, 4096);              /* shrink */
    ok &= p != NULL && check(p, 4096, 5);
  }
  free(p);
  report("realloc up to 256 MiB", ok);
}

/* ---- fork ---- */
static void part_fork(void)
{
  unsigned char *before = malloc(BLK);
  fill(before, BLK, 9);
  fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) {
    churn(50);
    int ok = check(before, BLK, 9);
    unsigned char *q = malloc(BLK);
    fill(q, BLK, 10);
    ok &= check(q, BLK, 10);
    free(q);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  report("fork child allocates", WIFEXITED(st) && WEXITSTATUS(st) == 0);
  report("parent block after fork", check(before, BLK, 9));
  free(before);
}

/* ---- stray frees (preload only) ---- */
static char not_from_malloc[256];

/* launder -- hide where a pointer came from, so the compiler does not
 * warn about the deliberate bad frees. */
static void *launder(void *p)
{
  void *volatile v = p;
  return v;
}

static void part_stray(void)
{
  char local[64];
  char *p = malloc(100);
  free(launder(not_from_malloc + 16));
  free(launder(local));
  free(launder(p + 8));                /* interior pointer */
  void *q = realloc(launder(not_from_malloc), 100);
  free(p);
  report("stray frees ignored", q == NULL);
}

/* want -- was part NAME asked for on the command line (none: all but
 * "stray")? */
static int want(int argc, char **argv, const char *name)
{
  if (argc < 2)
    return strcmp(name, "stray") != 0;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], name) == 0)
      return 1;
  return 0;
}

int main(int argc, char **argv)
{
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (want(argc, argv, "mmap"))
    part_mmap();
  if (want(argc, argv, "tls"))
    part_tls();
  if (want(argc, argv, "realloc"))
    part_realloc();
  if (want(argc, argv, "fork"))
    part_fork();
  if (want(argc, argv, "stray"))
    part_stray();
  printf("roots: %s\n", failures ? "FAILED" : "all ok");
  return failures ? 1 : 0;
}
