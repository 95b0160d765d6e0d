/* stress_altstack.c -- a thread stopped while it runs a program's signal
 * handler on an alternate signal stack (SA_ONSTACK).  Objects referenced
 * only from the handler's frame (on the alternate stack) and only from the
 * interrupted frame (on the normal stack) must both survive collections.
 */
#include <cgc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct node { struct node *next; uint64_t v; } node;

static atomic_int in_handler, release, bad;
static char altstack[1 << 16];

static __attribute__((noinline)) node *chain(int n, uint64_t seed) {
  node *h = NULL;
  for (int i = 0; i < n; i++) { node *x = cgc_malloc(sizeof *x); x->v = seed + (uint64_t)i; x->next = h; h = x; }
  return h;
}

static __attribute__((noinline)) int check(node *h, int n, uint64_t seed) {
  for (int i = n - 1; i >= 0; i--, h = h->next)
    if (h == NULL || h->v != seed + (uint64_t)i) return 0;
  return h == NULL;
}

static void handler(int sig) {
  (void)sig;
  node *mine = chain(2000, 1000000);          /* only on the alternate stack */
  atomic_store(&in_handler, 1);
  while (!atomic_load(&release)) {
    if (!check(mine, 2000, 1000000)) { atomic_store(&bad, 1); break; }
  }
  CGC_KEEP_ALIVE(mine);
}

static void *worker(void *arg) {
  (void)arg;
  stack_t ss = { .ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0 };
  sigaltstack(&ss, NULL);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = handler;
  sa.sa_flags = SA_ONSTACK;
  sigaction(SIGUSR1, &sa, NULL);
  node *outer = chain(3000, 7);               /* only on the normal stack */
  raise(SIGUSR1);                             /* runs handler() until released */
  if (!check(outer, 3000, 7)) atomic_store(&bad, 2);
  CGC_KEEP_ALIVE(outer);
  return NULL;
}

int main(void) {
  pthread_t t;
  cgc_pthread_create(&t, NULL, worker, NULL);
  while (!atomic_load(&in_handler)) { }
  for (int i = 0; i < 50; i++) {
    cgc_collect();
    for (int j = 0; j < 20000; j++) { void *volatile p = cgc_malloc(16); (void)p; }
  }
  atomic_store(&release, 1);
  pthread_join(t, NULL);
  printf("stress_altstack: %s\n", atomic_load(&bad) ? "FAIL" : "objects survived");
  return atomic_load(&bad) ? 1 : 0;
}
