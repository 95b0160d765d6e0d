/* stress.c -- multi-threaded malloc/free stress with checksums, for every
 * mode of the preload library.
 *
 * Each thread keeps a table of blocks, each filled with a pattern derived
 * from a per-block tag, and at random allocates (malloc, calloc,
 * posix_memalign, aligned_alloc, memalign), reallocates (growing and
 * shrinking), frees, or hands a block to another thread through a shared
 * mailbox.  Every block is verified before it is freed or resized.  The
 * output (totals of verified bytes and block counts) depends only on the
 * seed, so it must be the same with glibc and with every cgc mode.
 * usage: stress [SEED] [THREADS] [OPS]
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 512

struct block {
  unsigned char *p;
  size_t n;
  uint32_t tag;
};

static pthread_mutex_t mbox_mu = PTHREAD_MUTEX_INITIALIZER;
static struct block *mbox;          /* big enough for every hand-over */
static long mbox_n;
static atomic_ullong verified_bytes, verified_blocks, errors;
static unsigned long long seed0 = 12345;
static long ops = 200000;

static uint64_t rnd(uint64_t *s)
{
  uint64_t x = *s += 0x9E3779B97F4A7C15u;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
  return x ^ (x >> 31);
}

static unsigned char pat(uint32_t tag, size_t i)
{
  return (unsigned char)(tag * 31u + i * 7u + (i >> 8));
}

static void fill(struct block *b, size_t from)
{
  for (size_t i = from; i < b->n; i++)
    b->p[i] = pat(b->tag, i);
}

static void verify(const struct block *b, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (b->p[i] != pat(b->tag, i)) {
      atomic_fetch_add(&errors, 1);
      fprintf(stderr, "stress: corrupt block tag %u at %zu of %zu\n", b->tag, i, n);
      return;
    }
  atomic_fetch_add(&verified_bytes, n);
  atomic_fetch_add(&verified_blocks, 1);
}

static size_t pick_size(uint64_t *s)
{
  uint64_t r = rnd(s) % 1000;
  if (r < 700)
    return 1 + rnd(s) % 128;
  if (r < 950)
    return 129 + rnd(s) % 4000;
  if (r < 998)
    return 4096 + rnd(s) % 60000;
  return 100000 + rnd(s) % 2000000;
}

static void *alloc_some(uint64_t *s, size_t n)
{
  void *p = NULL;
  size_t align = (size_t)16 << (rnd(s) % 9);   /* 16 .. 4096 */

  switch (rnd(s) % 8) {
  case 0: {
    p = calloc(1, n);
    for (size_t i = 0; p && i < n; i++)
      if (((unsigned char *)p)[i] != 0) {
        atomic_fetch_add(&errors, 1);
        fprintf(stderr, "stress: calloc memory not zero\n");
        break;
      }
    return p;
  }
  case 1:
    if (posix_memalign(&p, align, n) != 0)
      p = NULL;
    break;
  case 2:
    p = aligned_alloc(align, (n + align - 1) / align * align);
    break;
  case 3:
    p = memalign(align, n);
    break;
  default:
    return malloc(n);
  }
  if (p != NULL && ((uintptr_t)p & (align - 1)) != 0) {
    atomic_fetch_add(&errors, 1);
    fprintf(stderr, "stress: misaligned block\n");
  }
  return p;
}

static void *worker(void *arg)
{
  uintptr_t id = (uintptr_t)arg;
  uint64_t s = seed0 * 1000003u + id;
  struct block *tab = calloc(SLOTS, sizeof *tab);
  uint32_t tagc = (uint32_t)id << 24;

  for (long op = 0; op < ops; op++) {
    struct block *b = &tab[rnd(&s) % SLOTS];
    uint64_t r = rnd(&s) % 100;
    if (b->p == NULL) {
      b->n = pick_size(&s);
      b->p = alloc_some(&s, b->n);
      if (b->p == NULL) {
        atomic_fetch_add(&errors, 1);
        continue;
      }
      b->tag = ++tagc;
      fill(b, 0);
      if (malloc_usable_size(b->p) < b->n)
        atomic_fetch_add(&errors, 1);
    } else if (r < 15) {                     /* resize */
      size_t n = r < 10 ? b->n * 2 + 1 : b->n / 2 + 1;
      unsigned char *q = realloc(b->p, n);
      if (q == NULL) {
        atomic_fetch_add(&errors, 1);
        continue;
      }
      b->p = q;
      verify(b, n < b->n ? n : b->n);
      size_t old = b->n;
      b->n = n;
      if (n > old)
        fill(b, old);
    } else if (r < 25) {                     /* hand over */
      pthread_mutex_lock(&mbox_mu);
      mbox[mbox_n++] = *b;              /* always succeeds: deterministic */
      b->p = NULL;
      pthread_mutex_unlock(&mbox_mu);
    } else if (r < 35) {                     /* take one and free it */
      struct block got = { 0 };
      pthread_mutex_lock(&mbox_mu);
      if (mbox_n > 0)
        got = mbox[--mbox_n];
      pthread_mutex_unlock(&mbox_mu);
      if (got.p != NULL) {
        verify(&got, got.n);
        free(got.p);
      }
    } else {                                 /* free */
      verify(b, b->n);
      free(b->p);
      b->p = NULL;
    }
  }
  for (int i = 0; i < SLOTS; i++)
    if (tab[i].p != NULL) {
      verify(&tab[i], tab[i].n);
      free(tab[i].p);
    }
  free(tab);
  return NULL;
}

int main(int argc, char **argv)
{
  int nthreads = 4;

  if (argc > 1)
    seed0 = strtoull(argv[1], NULL, 0);
  if (argc > 2)
    nthreads = atoi(argv[2]);
  if (argc > 3)
    ops = atol(argv[3]);
  fprintf(stderr, "stress: seed=%llu threads=%d ops=%ld\n", seed0, nthreads, ops);

  pthread_t th[64];
  if (nthreads > 64)
    nthreads = 64;
  mbox = malloc(sizeof *mbox * (size_t)(nthreads * (ops / 10 + 1)));
  for (int i = 0; i < nthreads; i++)
    pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
  for (int i = 0; i < nthreads; i++)
    pthread_join(th[i], NULL);
  for (long i = 0; i < mbox_n; i++) {
    verify(&mbox[i], mbox[i].n);
    free(mbox[i].p);
  }
  free(mbox);
  /* Which thread verifies a handed-over block depends on timing, but the
   * totals do not. */
  printf("stress: threads=%d ops=%ld verified_blocks=%llu verified_bytes=%llu errors=%llu\n",
         nthreads, ops, (unsigned long long)verified_blocks,
         (unsigned long long)verified_bytes, (unsigned long long)errors);
  return errors == 0 ? 0 : 1;
}
