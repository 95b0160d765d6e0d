/* leaky.c -- a program with known leaks, for leakcheck mode and valgrind.
 *
 * Leaks, by allocation site:
 *   leak_strings  10 objects of 100 bytes     (pointers dropped)
 *   leak_list      5 objects of 48 bytes      (a list whose head is dropped:
 *                                              1 direct + 4 indirect)
 *   leak_grown     1 object of 3000 bytes     (malloc 1000, realloc 3000)
 * total: 16 objects, 4240 bytes.  Everything else is freed or stays
 * reachable from a global.  With "none" as argument nothing leaks.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct node {
  struct node *next;
  char payload[40];
};

void *keep[20];                      /* reachable: not leaks */
void *warm[16];                      /* reachable: see churn */

__attribute__((noinline)) void leak_strings(int i)
{
  char *s = malloc(100);
  snprintf(s, 100, "string %d", i);
  __asm__ volatile("" : : "r"(s) : "memory");
}

__attribute__((noinline)) struct node *make_node(struct node *next)
{
  struct node *n = malloc(sizeof *n);
  n->next = next;
  strcpy(n->payload, "node");
  return n;
}

__attribute__((noinline)) void leak_list(void)
{
  struct node *head = NULL;
  for (int i = 0; i < 5; i++)
    head = make_node(head);
  __asm__ volatile("" : : "r"(head) : "memory");
}

__attribute__((noinline)) void leak_grown(void)
{
  char *b = malloc(1000);
  memset(b, 1, 1000);
  b = realloc(b, 3000);
  memset(b, 2, 3000);
  __asm__ volatile("" : : "r"(b) : "memory");
}

__attribute__((noinline)) void churn(void)
{
  for (int i = 0; i < 50; i++) {
    void *p = malloc((size_t)(i * 37 + 1));
    free(p);
  }
  for (int i = 0; i < 20; i++)
    keep[i] = calloc(1, 64);
  /* A conservative collector may see a stale copy of an address it once
   * handed out (in its own helper threads' stacks, say); take the first
   * blocks of the size classes used below with reachable objects so that
   * such an address is never one of the deliberate leaks. */
  for (int i = 0; i < 8; i++) {
    warm[i] = malloc(sizeof(struct node));
    warm[8 + i] = malloc(100);
  }
}

/* scrub -- overwrite dead stack so stale copies of the leaked pointers do
 * not make them look reachable (to us and to valgrind alike). */
__attribute__((noinline)) void scrub(void)
{
  volatile char buf[16384];
  memset((char *)buf, 0, sizeof buf);
}

int main(int argc, char **argv)
{
  int leak = !(argc > 1 && strcmp(argv[1], "none") == 0);

  churn();
  if (leak) {
    for (int i = 0; i < 10; i++)
      leak_strings(i);
    leak_list();
    leak_grown();
  }
  /* print before the scrub: the first call of printf goes through the
   * dynamic linker's lazy binding, which saves the registers (vector
   * registers too, which may still hold an address from the leaking
   * calls) in dead stack that the report's collection later scans */
  printf("leaky: %s\n", leak ? "leaked 16 objects, 4240 bytes" : "no leaks");
  fflush(stdout);
  scrub();
  return 0;
}
