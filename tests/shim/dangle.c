/* dangle.c -- a premature free for safe mode's report.
 *
 * premature() frees a block but keeps its address in a global; the loop
 * then allocates enough to run several collections.  Under
 * `cgc-run --mode=safe --safe-report` the first collection must find the
 * freed block still referenced and report the free in premature().  The
 * block was zeroed by free, so the program prints keep[0]=0 (glibc would
 * print whatever the allocator left there).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *keep;
void *volatile sink;

__attribute__((noinline)) void premature(void)
{
  keep = malloc(300);
  strcpy(keep, "hello");
  free(keep);                        /* keep now dangles */
}

int main(void)
{
  premature();
  for (int i = 0; i < 300000; i++) {
    char *p = malloc(100 + (size_t)(i % 1000));
    sink = p;
    free(p);
    sink = malloc(64);               /* dropped: garbage for the collector */
  }
  printf("keep[0]=%d\n", keep[0]);
  return 0;
}
