/* uaf.c -- a use-after-free: free an object, allocate another of the same
 * size, write through the dangling pointer, look at the new object.
 *
 * With glibc the new object usually reuses the freed memory and is
 * corrupted; with cgc in safe mode (CGC_MODE=safe) freed memory is not
 * reused while a pointer to it exists, so the new object is intact.
 * usage: uaf --expect=corrupted|intact|any   (exit 0 iff as expected)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const size_t sizes[] = { 24, 64, 200, 1000, 5000, 70000 };

/* one_round -- returns 1 if the new object was corrupted. */
static int __attribute__((noinline)) one_round(size_t size)
{
  char *victim = malloc(size);
  if (victim == NULL)
    exit(2);
  memset(victim, 'v', size);
  /* Keep a copy the compiler cannot reason about: it would otherwise drop
   * the (undefined) write through a freed pointer below. */
  char *volatile dangling = victim;
  free(victim);                      /* dangling now dangles */

  char *fresh = malloc(size);
  if (fresh == NULL)
    exit(2);
  memset(fresh, 'f', size);

  /* The bug: a write through the dangling pointer. */
  memset(dangling, 'X', size / 2);
  /* And it would assume that memory fresh from malloc cannot be reached
   * through an older pointer: make it read FRESH again. */
  __asm__ volatile("" : : "r"(fresh) : "memory");

  int corrupted = 0;
  for (size_t i = 0; i < size; i++)
    if (fresh[i] != 'f')
      corrupted = 1;
  printf("size %6zu: new object %s\n", size, corrupted ? "CORRUPTED" : "intact");
  /* fresh is deliberately not freed: its memory stays distinct. */
  return corrupted;
}

int main(int argc, char **argv)
{
  const char *expect = argc > 1 ? argv[1] : "--expect=any";
  int ncorrupt = 0, n = (int)(sizeof sizes / sizeof sizes[0]);

  for (int i = 0; i < n; i++)
    ncorrupt += one_round(sizes[i]);
  printf("%d of %d rounds corrupted\n", ncorrupt, n);
  fflush(stdout);
  if (strcmp(expect, "--expect=intact") == 0)
    return ncorrupt == 0 ? 0 : 1;
  if (strcmp(expect, "--expect=corrupted") == 0)
    return ncorrupt > 0 ? 0 : 1;
  return 0;
}
