/* pauses.c -- pause time and mark rate of a full collection over a large
 * live heap, with the machine's own limits measured on the same shape.
 * Written for this suite; the method (live bytes / pause, against a
 * memory-bandwidth bound) follows the usual way collectors report marking
 * throughput.
 *
 * Shapes (--shape):
 *   tree   complete binary trees of 32-byte nodes {left, right, a, b},
 *          allocated in depth-first order (so neighbours in the tree are
 *          neighbours in memory), depth <= 20 (64 MiB per tree);
 *   list   4096 singly linked lists of 32-byte nodes; each new node goes
 *          to the front of a random list, so following a list jumps around
 *          the whole heap (a pointer chase with no locality).
 * --mib sets the live size (nominal: nodes x 32 bytes).
 *
 * Collector back ends build the shape with collections disabled (the
 * build is setup), then run --gcs (default 3) forced collections.  Reported: the collector's own
 * stop-the-world pause for each (Boehm: GC_EVENT_START..END; cgc: delta of
 * pause_total_ns) and the wall time of the COLLECT() call; mark rate =
 * live bytes / median pause (GB = 1e9 bytes).
 *
 * Machine back end (BACKEND_MALLOC with --machine 1): builds the same shape
 * in one mmap'd region with a bump pointer, then measures
 *   seqread   sequential read of every word of the nodes (a bandwidth
 *             bound: no marker can visit the live bytes faster), and
 *   baremark  a minimal depth-first marker: explicit stack, side bitmap
 *             with one bit per 16-byte granule (cleared in the timing),
 *             every word of a node tested against the region bounds,
 *             fixed 32-byte objects (no size lookup, no header, no
 *             interior-pointer tables) -- what a marker costs with all
 *             bookkeeping stripped away.
 * Each is timed --gcs times, median reported.
 *
 * usage: pauses --shape tree|list --mib 64 [--gcs 3] [--machine 1]
 */
#include "common.h"
#include <sys/mman.h>

typedef struct pnode {
  struct pnode *left, *right;
  long a, b;
} pnode_t;

enum { NLISTS = 4096, MAX_ROOTS = 1 << 16 };

static pnode_t **roots;            /* global: scanned as a root */
static long nroots;
static long nodes_built;

/* The machine back end allocates from one region with a bump pointer. */
static char *region, *region_top, *region_end;
static int machine;

static pnode_t *new_pnode(void)
{
  nodes_built++;
  if (machine) {
    pnode_t *n = (pnode_t *)region_top;
    region_top += sizeof *n;
    if (region_top > region_end)
      abort();
    n->left = n->right = NULL;
    return n;
  }
  pnode_t *n = ALLOC(sizeof *n);
  n->left = n->right = NULL;
  return n;
}

static pnode_t *build_tree(int depth)
{
  pnode_t *n = new_pnode();
  n->a = depth;
  if (depth > 0) {
    n->left = build_tree(depth - 1);
    n->right = build_tree(depth - 1);
  }
  return n;
}

static void build(const char *shape, long nodes)
{
  bench_rng_t rng = { 88172645463325252ULL };
  if (!strcmp(shape, "tree")) {
    while (nodes_built < nodes && nroots < MAX_ROOTS) {
      long left = nodes - nodes_built;
      int d = 0;
      while (d < 20 && (2L << (d + 1)) - 1 <= left)
        d++;
      roots[nroots++] = build_tree(d);
    }
  } else {
    nroots = NLISTS;
    while (nodes_built < nodes) {
      pnode_t *n = new_pnode();
      uint64_t r = bench_rand_below(&rng, NLISTS);
      n->a = (long)nodes_built;
      n->left = roots[r];
      roots[r] = n;
    }
  }
}

static double median(double *v, int n)
{
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j] < v[j - 1]; j--) {
      double t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  return n ? (n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2) : 0;
}

/* ---- machine limits ------------------------------------------------------ */

static double seqread(uint64_t *sink)
{
  double t = bk_now();
  const uint64_t *p = (const uint64_t *)region, *e = (const uint64_t *)region_top;
  uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  for (; p + 4 <= e; p += 4) {
    s0 += p[0];
    s1 += p[1];
    s2 += p[2];
    s3 += p[3];
  }
  *sink += s0 + s1 + s2 + s3;
  return bk_now() - t;
}

static double baremark(long *marked_out)
{
  uintptr_t lo = (uintptr_t)region, hi = (uintptr_t)region_top;
  size_t ngran = (hi - lo) / 16 + 1;
  static uint64_t *bits;
  static pnode_t **stack;
  static size_t cap = 1 << 20;
  if (!bits)
    bits = malloc((ngran / 64 + 1) * sizeof *bits);
  if (!stack)
    stack = malloc(cap * sizeof *stack);
  double t = bk_now();
  memset(bits, 0, (ngran / 64 + 1) * sizeof *bits);
  size_t sp = 0;
  long marked = 0;
  for (long r = 0; r <= nroots; r++) {
    /* roots, then drain; the root array is scanned like an object */
    uintptr_t w = r < nroots ? (uintptr_t)roots[r] : 0;
    if (w >= lo && w < hi) {
      uintptr_t base = lo + ((w - lo) & ~(uintptr_t)31);
      size_t g = (base - lo) >> 4;
      if (!(bits[g >> 6] & (1ULL << (g & 63)))) {
        bits[g >> 6] |= 1ULL << (g & 63);
        stack[sp++] = (pnode_t *)base;
      }
    }
    while (sp > 0) {
      const uintptr_t *o = (const uintptr_t *)stack[--sp];
      marked++;
      for (int k = 0; k < 4; k++) {
        uintptr_t v = o[k];
        if (v < lo || v >= hi)
          continue;
        uintptr_t base = lo + ((v - lo) & ~(uintptr_t)31);
        size_t g = (base - lo) >> 4;
        uint64_t m = 1ULL << (g & 63);
        if (bits[g >> 6] & m)
          continue;
        bits[g >> 6] |= m;
        if (sp == cap) {
          cap *= 2;
          stack = realloc(stack, cap * sizeof *stack);
          if (!stack)
            abort();
        }
        stack[sp++] = (pnode_t *)base;
      }
    }
  }
  *marked_out = marked;
  return bk_now() - t;
}

int main(int argc, char **argv)
{
  const char *shape = bench_arg_str(argc, argv, "shape", "tree");
  long mib = bench_arg(argc, argv, "mib", 64);
  int ngcs = (int)bench_arg(argc, argv, "gcs", 3);
  machine = (int)bench_arg(argc, argv, "machine", 0);
  long nodes = mib * 1048576 / (long)sizeof(pnode_t);
  double live = (double)nodes * (double)sizeof(pnode_t);
  double p[64], w[64];
  int ok = 1;
  char name[48];
  if (ngcs < 1 || ngcs > 64)
    ngcs = 3;
  snprintf(name, sizeof name, "pauses-%s-%ld", shape, mib);

  INIT();
  double t0 = bk_now();
  if (machine) {
    size_t len = (size_t)nodes * sizeof(pnode_t) + 4096;
    region = mmap(NULL, len, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
      return 1;
    region_top = region;
    region_end = region + len;
    roots = calloc(MAX_ROOTS, sizeof *roots);
  } else {
    roots = ALLOC(MAX_ROOTS * sizeof *roots);
    memset(roots, 0, MAX_ROOTS * sizeof *roots);
  }
  GC_OFF();                       /* the build is setup, not measured */
  build(shape, nodes);
  GC_ON();
  double build_s = bk_now() - t0;

  if (machine) {
    uint64_t sink = 0;
    double r[64];
    long marked = 0;
    seqread(&sink);
    for (int i = 0; i < ngcs; i++) {
      r[i] = seqread(&sink);
      p[i] = baremark(&marked);
    }
    ok = marked == nodes_built;
    double rs = median(r, ngcs), ms = median(p, ngcs);
    bench_result(name, bk_now() - t0, ok,
                 " live_mb=%.1f build_s=%.3f seqread_ms=%.2f seqread_gbs=%.2f"
                 " baremark_ms=%.2f baremark_gbs=%.2f sink=%llu",
                 live / 1048576.0, build_s, rs * 1e3, live / rs / 1e9,
                 ms * 1e3, live / ms / 1e9, (unsigned long long)(sink & 1));
    return ok ? 0 : 1;
  }

  for (int i = 0; i < ngcs; i++) {
    bk_stats_t before, after;
    bk_stats(&before);
    double t = bk_now();
    COLLECT();
    w[i] = bk_now() - t;
    bk_stats(&after);
    p[i] = after.pause_total_ns > before.pause_total_ns
               ? (double)(after.pause_total_ns - before.pause_total_ns) * 1e-9
               : w[i];
  }
  /* the heap must still be intact: count the nodes */
  long count = 0;
  for (long r = 0; r < nroots; r++) {
    pnode_t *stack[64];
    int sp = 0;
    if (!strcmp(shape, "tree")) {
      if (roots[r])
        stack[sp++] = roots[r];
      while (sp > 0) {
        pnode_t *n = stack[--sp];
        count++;
        if (n->left) {
          stack[sp++] = n->left;
          stack[sp++] = n->right;
        }
      }
    } else {
      for (pnode_t *n = roots[r]; n; n = n->left)
        count++;
    }
  }
  ok = count == nodes_built;
  double pm = median(p, ngcs), wm = median(w, ngcs);
  bench_result(name, bk_now() - t0, ok,
               " live_mb=%.1f build_s=%.3f pause_ms=%.2f collect_ms=%.2f"
               " mark_gbs=%.2f",
               live / 1048576.0, build_s, pm * 1e3, wm * 1e3, live / pm / 1e9);
  return ok ? 0 : 1;
}
