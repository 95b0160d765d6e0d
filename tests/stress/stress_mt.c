/* stress_mt.c -- several threads build and drop trees, lists and cyclic
 * graphs while collections are forced from several threads at once; every
 * live structure's checksum is verified after each collection the thread
 * observes.  Seeded; the seed is printed first.
 *
 *   stress_mt [seconds] [threads] [seed]     (defaults 20, 4, time)
 *   CGC_STRESS_SECONDS overrides the duration.
 *
 * A structure freed too early shows up as a checksum mismatch (its memory
 * was reused and overwritten) or a crash; the test then exits non-zero.
 */
#include <cgc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WINDOW 64

typedef struct node {
  struct node *a, *b;          /* children / next / back edges */
  uint64_t val;
  char pad[];                  /* variable payload for size mix */
} node;

enum { K_TREE, K_LIST, K_RING, K_GRAPH, K_ARRAY, NKINDS };

typedef struct {
  int kind;
  void *root;
  uint64_t sum;
  size_t n;
} structure;

static atomic_int stop_flag;
static atomic_long total_checks, total_builds, total_collects;
static int nthreads = 4;
static double seconds = 20;

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
  return *s;
}

static node *mk(uint64_t *s, uint64_t v) {
  size_t extra = (rnd(s) % 8 == 0) ? (size_t)(rnd(s) % 200) : 0;
  node *n = cgc_malloc(sizeof(node) + extra);
  if (!n) { fprintf(stderr, "allocation failed\n"); exit(2); }
  n->val = v;
  if (extra) memset(n->pad, (int)(v & 0x7f), extra);
  return n;
}

static node *tree(uint64_t *s, int d, uint64_t *sum) {
  node *n = mk(s, rnd(s));
  *sum += n->val;
  if (d > 0) { n->a = tree(s, d - 1, sum); n->b = tree(s, d - 1, sum); }
  return n;
}

static uint64_t tree_sum(node *n) { return n ? n->val + tree_sum(n->a) + tree_sum(n->b) : 0; }

static void build(uint64_t *s, structure *st) {
  st->kind = (int)(rnd(s) % NKINDS);
  st->sum = 0;
  switch (st->kind) {
  case K_TREE:
    st->root = tree(s, 3 + (int)(rnd(s) % 8), &st->sum);
    break;
  case K_LIST: {
    size_t n = 1 + rnd(s) % 500;
    node *h = NULL;
    for (size_t i = 0; i < n; i++) { node *x = mk(s, rnd(s)); x->a = h; h = x; st->sum += x->val; }
    st->root = h; st->n = n;
    break;
  }
  case K_RING: {                /* doubly linked ring */
    size_t n = 2 + rnd(s) % 300;
    node *first = mk(s, rnd(s)), *prev = first;
    st->sum += first->val;
    for (size_t i = 1; i < n; i++) {
      node *x = mk(s, rnd(s)); st->sum += x->val;
      prev->a = x; x->b = prev; prev = x;
    }
    prev->a = first; first->b = prev;
    st->root = first; st->n = n;
    break;
  }
  case K_GRAPH: {               /* chain with random back edges */
    size_t n = 2 + rnd(s) % 400;
    node **v = cgc_malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) { v[i] = mk(s, rnd(s)); st->sum += v[i]->val; if (i) v[i - 1]->a = v[i]; }
    for (size_t i = 0; i < n; i++) v[i]->b = v[rnd(s) % (i + 1)];
    st->root = v[0]; st->n = n;
    break;
  }
  case K_ARRAY: {               /* large pointer-free block + header */
    size_t n = 1000 + rnd(s) % 40000;
    uint32_t *arr = cgc_malloc_atomic(n * sizeof *arr);
    node *h = mk(s, n);
    for (size_t i = 0; i < n; i++) { arr[i] = (uint32_t)rnd(s); st->sum += arr[i]; }
    h->a = (node *)(void *)arr;
    st->root = h; st->n = n;
    break;
  }
  }
}

static uint64_t measure(structure *st) {
  uint64_t sum = 0;
  switch (st->kind) {
  case K_TREE: return tree_sum(st->root);
  case K_LIST: for (node *x = st->root; x; x = x->a) sum += x->val; return sum;
  case K_RING: {
    node *x = st->root; size_t i = 0;
    do { sum += x->val; if (x->a->b != x) return ~sum; x = x->a; } while (x != st->root && ++i < st->n + 1);
    return sum;
  }
  case K_GRAPH: for (node *x = st->root; x; x = x->a) sum += x->val; return sum;
  case K_ARRAY: {
    node *h = st->root; uint32_t *arr = (uint32_t *)(void *)h->a;
    if (h->val != st->n) return ~sum;
    for (size_t i = 0; i < st->n; i++) sum += arr[i];
    return sum;
  }
  }
  return 0;
}

static uint64_t collections(void) {
  cgc_stats_t s;
  cgc_get_stats(&s);
  return s.collections;
}

static void *worker(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  structure *live = cgc_malloc(WINDOW * sizeof *live);   /* scanned, on our stack */
  uint64_t seen = collections();
  long ops = 0;
  while (!atomic_load(&stop_flag)) {
    int slot = (int)(rnd(&seed) % WINDOW);
    build(&seed, &live[slot]);
    atomic_fetch_add(&total_builds, 1);
    if (++ops % 64 == 0) {
      if (rnd(&seed) % 16 == 0) { cgc_collect(); atomic_fetch_add(&total_collects, 1); }
      uint64_t now = collections();
      if (now != seen) {
        seen = now;
        for (int i = 0; i < WINDOW; i++) {
          if (!live[i].root) continue;
          if (measure(&live[i]) != live[i].sum) {
            fprintf(stderr, "FAIL: checksum mismatch kind %d slot %d after collection %llu\n",
                    live[i].kind, i, (unsigned long long)now);
            exit(1);
          }
          atomic_fetch_add(&total_checks, 1);
        }
      }
    }
  }
  for (int i = 0; i < WINDOW; i++)
    if (live[i].root && measure(&live[i]) != live[i].sum) {
      fprintf(stderr, "FAIL: final checksum mismatch\n");
      exit(1);
    }
  return NULL;
}

int main(int argc, char **argv) {
  uint64_t seed = (uint64_t)time(NULL);
  if (argc > 1) seconds = atof(argv[1]);
  if (argc > 2) nthreads = atoi(argv[2]);
  if (argc > 3) seed = strtoull(argv[3], NULL, 0);
  const char *e = getenv("CGC_STRESS_SECONDS");
  if (e) seconds = atof(e);
  if (seed == 0) seed = 1;
  printf("stress_mt: seed %llu, %d threads, %.0f s\n", (unsigned long long)seed, nthreads, seconds);
  fflush(stdout);
  pthread_t th[64];
  if (nthreads > 64) nthreads = 64;
  for (int i = 0; i < nthreads; i++)
    if (cgc_pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(seed * 7919 + (uint64_t)i + 1)) != 0) {
      perror("pthread_create");
      return 2;
    }
  struct timespec ts = { (time_t)seconds, (long)((seconds - (time_t)seconds) * 1e9) };
  nanosleep(&ts, NULL);
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
  cgc_stats_t s;
  cgc_get_stats(&s);
  printf("stress_mt: %ld structures built, %ld verified, %ld forced collections, "
         "%llu collections, max pause %.2f ms, heap %.1f MB\n",
         atomic_load(&total_builds), atomic_load(&total_checks), atomic_load(&total_collects),
         (unsigned long long)s.collections, s.pause_max_ns / 1e6, s.heap_size / 1048576.0);
  if (atomic_load(&total_checks) == 0 || s.collections == 0) {
    fprintf(stderr, "FAIL: nothing was verified\n");
    return 1;
  }
  return 0;
}
