/* stress_fork.c -- fork() while other threads allocate: the child must be
 * able to go on allocating and collecting (pthread_atfork handlers), and
 * the parent must be unaffected.
 *
 *   stress_fork [seconds]
 */
#include <cgc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct node { struct node *next; uint64_t v; } node;
static atomic_int stop_flag;

static node *list(int n, uint64_t seed) {
  node *h = NULL;
  for (int i = 0; i < n; i++) { node *x = cgc_malloc(sizeof *x); x->v = seed + (uint64_t)i; x->next = h; h = x; }
  return h;
}
static uint64_t sum(node *h) { uint64_t s = 0; for (; h; h = h->next) s += h->v; return s; }
static uint64_t expect(int n, uint64_t seed) { return (uint64_t)n * seed + (uint64_t)n * (uint64_t)(n - 1) / 2; }

static void *churn(void *arg) {
  uint64_t seed = (uint64_t)(uintptr_t)arg;
  node *keep = list(1000, seed);
  while (!atomic_load(&stop_flag)) {
    node *t = list(200, seed);
    if (sum(t) != expect(200, seed)) { fprintf(stderr, "FAIL: parent list corrupted\n"); exit(1); }
    if (sum(keep) != expect(1000, seed)) { fprintf(stderr, "FAIL: parent kept list corrupted\n"); exit(1); }
  }
  return NULL;
}

int main(int argc, char **argv) {
  double secs = argc > 1 ? atof(argv[1]) : 4;
  pthread_t th[3];
  for (int i = 0; i < 3; i++) cgc_pthread_create(&th[i], NULL, churn, (void *)(uintptr_t)(i * 100000 + 1));
  node *mine = list(5000, 7);
  int forks = 0;
  double waited = 0;
  while (waited < secs) {
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 2; }
    if (pid == 0) {
      /* child: allocate, collect, verify, and make a thread of its own */
      for (int r = 0; r < 20; r++) {
        node *t = list(2000, (uint64_t)r);
        cgc_collect();
        if (sum(t) != expect(2000, (uint64_t)r) || sum(mine) != expect(5000, 7)) _exit(3);
      }
      pthread_t c;
      if (cgc_pthread_create(&c, NULL, churn, (void *)(uintptr_t)99) != 0) _exit(4);
      usleep(20000);
      atomic_store(&stop_flag, 1);
      pthread_join(c, NULL);
      cgc_collect();
      _exit(sum(mine) == expect(5000, 7) ? 0 : 5);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      fprintf(stderr, "FAIL: child %d status %d\n", forks, st);
      return 1;
    }
    forks++;
    cgc_collect();
    usleep(50000);
    waited += 0.05 + 0.02;
  }
  atomic_store(&stop_flag, 1);
  for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
  if (sum(mine) != expect(5000, 7)) { fprintf(stderr, "FAIL: parent list\n"); return 1; }
  printf("stress_fork: %d forks, all children allocated and collected correctly\n", forks);
  return forks > 0 ? 0 : 1;
}
