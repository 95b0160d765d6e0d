/* stress_interpose.c -- threads created with plain pthread_create in a
 * program linked with libcgc.so are registered automatically: their stacks
 * are scanned, so objects reachable only from them survive collections
 * forced by other threads.  Also exercises nanosleep (a wrapped blocking
 * call) while the world is stopped: the sleep must not return EINTR.
 */
#include <cgc.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct node { struct node *next; uint64_t v; } node;
static atomic_int stop_flag, failures, eintr;

static void *holder(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  node *h = NULL;
  for (int i = 0; i < 20000; i++) { node *x = cgc_malloc(sizeof *x); x->v = seed ^ (uint64_t)i; x->next = h; h = x; }
  while (!atomic_load(&stop_flag)) {
    uint64_t i = 20000;
    for (node *x = h; x; x = x->next) if (x->v != (seed ^ --i)) { atomic_fetch_add(&failures, 1); break; }
    struct timespec ts = {0, 2000000};
    if (nanosleep(&ts, NULL) != 0 && errno == EINTR) atomic_fetch_add(&eintr, 1);
  }
  return NULL;
}

static void *collector(void *arg) {
  (void)arg;
  for (int i = 0; i < 200; i++) { cgc_collect(); for (int j = 0; j < 1000; j++) { void *volatile p = cgc_malloc(64); (void)p; } }
  return NULL;
}

int main(void) {
  pthread_t h[3], c[2];
  for (int i = 0; i < 3; i++) pthread_create(&h[i], NULL, holder, (void *)(uintptr_t)((i + 1) * 1000003));
  for (int i = 0; i < 2; i++) pthread_create(&c[i], NULL, collector, NULL);
  for (int i = 0; i < 2; i++) pthread_join(c[i], NULL);
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < 3; i++) pthread_join(h[i], NULL);
  cgc_stats_t s;
  cgc_get_stats(&s);
  printf("stress_interpose: %llu collections, %d corrupted lists, %d EINTR from nanosleep\n",
         (unsigned long long)s.collections, atomic_load(&failures), atomic_load(&eintr));
  return (atomic_load(&failures) == 0 && atomic_load(&eintr) == 0 && s.collections >= 400) ? 0 : 1;
}
