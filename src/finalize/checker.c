/* checker.c -- the debug checker (CGC_DEBUG=checkfinalizers=1|2), cgc's
 * equivalent of Go's GODEBUG=checkfinalizers.
 *
 * Design: docs/design/finalization.md.  Runs with the world stopped, after
 * marking and before finalizers and cleanups are queued (M3).  For every
 * finalizer on O it runs a separate mark seeded only with O's contents and
 * the finalizer's data; for every cleanup on O, seeded only with its arg.
 * If that mark reaches O, O can never be collected: the report names the
 * object, the kind of registration and where it was made (the caller's
 * return address, symbolized with dladdr).  Level 2 also prints the chain
 * of blocks that leads back to O.
 *
 * The separate mark uses its own visited set (an open-addressing hash of
 * block bases to parent bases in meta memory), so the real mark bits are
 * untouched.  It is a debug mode: one extra mark per registration per
 * collection, bounded to CHECK_MAX_VISIT blocks each.
 */
#include "core/internal.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#define CHECK_MAX_VISIT   (1u << 20)
#define CHECK_MAX_REPORTS 50

struct vent { uintptr_t key, parent; };

static struct {
  struct vent *set; size_t cap, n;
  uintptr_t *stack; size_t scap, top;
  int reports;
  bool truncated;
} ck;

static size_t vhash(uintptr_t k) { return (size_t)((k >> 4) * 0x9E3779B97F4A7C15ull >> 17) & (ck.cap - 1); }

static bool visit(uintptr_t base, uintptr_t parent) {
  if (ck.n * 2 >= ck.cap) { ck.truncated = true; return false; }
  size_t h = vhash(base);
  while (ck.set[h].key) {
    if (ck.set[h].key == base) return false;
    h = (h + 1) & (ck.cap - 1);
  }
  ck.set[h].key = base;
  ck.set[h].parent = parent;
  ck.n++;
  if (ck.top == ck.scap) { ck.truncated = true; return false; }
  ck.stack[ck.top++] = base;
  return true;
}

static uintptr_t parent_of(uintptr_t base) {
  size_t h = vhash(base);
  while (ck.set[h].key) {
    if (ck.set[h].key == base) return ck.set[h].parent;
    h = (h + 1) & (ck.cap - 1);
  }
  return 0;
}

static void reset(void) {
  if (ck.set == NULL) {
    ck.cap = (size_t)CHECK_MAX_VISIT * 2;
    ck.set = cgci_meta_alloc_big(ck.cap * sizeof *ck.set);
    ck.scap = CHECK_MAX_VISIT;
    ck.stack = cgci_meta_alloc_big(ck.scap * sizeof *ck.stack);
  } else if (ck.n) {
    memset(ck.set, 0, ck.cap * sizeof *ck.set);
  }
  ck.n = 0;
  ck.top = 0;
}

/* seed_range -- every block referenced from [lo, hi) is visited with
 * PARENT as its parent. */
static void seed_range(uintptr_t lo, uintptr_t hi, uintptr_t parent) {
  for (uintptr_t p = (lo + 7) & ~(uintptr_t)7; p + 8 <= hi; p += 8) {
    void *b = cgci_find_base(*(uintptr_t *)p, NULL, NULL);
    if (b) visit((uintptr_t)b, parent);
  }
}

/* reaches -- does the closure of the seeds reach TARGET? */
static bool reaches(uintptr_t target) {
  while (ck.top > 0) {
    uintptr_t b = ck.stack[--ck.top];
    if (b == target) return true;
    struct cgci_span *s = cgci_span_of(b);
    if (s == NULL || s->kind == CGCI_KIND_ATOMIC) continue;
    seed_range(b, b + cgci_block_size(s), b);
  }
  return parent_of(target) != 0 || false;
}

static void describe_site(void *site, char *buf, size_t len) {
  Dl_info info;
  if (site && dladdr(site, &info) && info.dli_sname)
    snprintf(buf, len, "%s+0x%lx (%s)", info.dli_sname,
             (unsigned long)((uintptr_t)site - (uintptr_t)info.dli_saddr),
             info.dli_fname ? info.dli_fname : "?");
  else if (site && dladdr(site, &info) && info.dli_fname)
    snprintf(buf, len, "%p (%s+0x%lx)", site, info.dli_fname,
             (unsigned long)((uintptr_t)site - (uintptr_t)info.dli_fbase));
  else
    snprintf(buf, len, "%p", site);
}

/* Findings are recorded with the world stopped and printed after it
 * restarts (cgci_checker_report): symbolizing takes the loader's lock,
 * which a stopped thread inside dlopen could hold. */
#define PATH_MAX_LEN 16
struct finding {
  uintptr_t base;
  void *site;
  int is_fin;
  int npath;
  uintptr_t path[PATH_MAX_LEN];
};
static struct finding *findings;     /* meta memory, CHECK_MAX_REPORTS */

static void check_one(uintptr_t base, int is_fin, void *data_or_arg, void *site, void *ctx) {
  (void)ctx;
  if (ck.reports >= CHECK_MAX_REPORTS) return;
  reset();
  const uintptr_t seed_parent = 1;          /* "the registration itself" */
  if (is_fin) {
    struct cgci_span *s = cgci_span_of(base);
    if (s && s->kind != CGCI_KIND_ATOMIC) seed_range(base, base + cgci_block_size(s), seed_parent);
  }
  void *b = cgci_find_base((uintptr_t)data_or_arg, NULL, NULL);
  if (b) visit((uintptr_t)b, seed_parent);
  if (!reaches(base)) return;
  struct finding *f = &findings[ck.reports++];
  f->base = base;
  f->site = site;
  f->is_fin = is_fin;
  f->npath = 0;
  if (is_fin) cgci_g.st.finalizer_cycles_seen++;
  uintptr_t p = parent_of(base);
  while (p > 1 && f->npath < PATH_MAX_LEN) {
    f->path[f->npath++] = p;
    if (p == base) break;
    p = parent_of(p);
  }
}

/* cgci_checker_run -- with the world stopped, before M3. */
void cgci_checker_run(void) {
  if (findings == NULL) findings = cgci_meta_alloc(CHECK_MAX_REPORTS * sizeof *findings);
  ck.reports = 0;
  ck.truncated = false;
  cgci_specials_each(check_one, NULL);
}

/* cgci_checker_report -- after the world restarted: print what the last
 * check found. */
void cgci_checker_report(void) {
  if (ck.reports == 0) return;
  for (int i = 0; i < ck.reports; i++) {
    struct finding *f = &findings[i];
    char where[256];
    describe_site(f->site, where, sizeof where);
    cgci_log("cgc checkfinalizers: value at %p is reachable from %s (registered at %s)\n",
             (void *)f->base, f->is_fin ? "finalizer" : "cleanup or cleanup argument", where);
    if (cgci_g.cfg.checkfinalizers >= 2) {
      char line[1024];
      int n = snprintf(line, sizeof line, "cgc checkfinalizers:   path: %p", (void *)f->base);
      for (int k = 0; k < f->npath && n < (int)sizeof line - 40; k++)
        n += snprintf(line + n, sizeof line - (size_t)n, " <- %p", (void *)f->path[k]);
      snprintf(line + n, sizeof line - (size_t)n, " <- %s\n",
               f->is_fin ? "finalizer (object contents or data)" : "cleanup arg");
      cgci_log("%s", line);
    }
  }
  cgci_log("cgc checkfinalizers: detected possible issues with cleanups and/or finalizers\n");
  ck.reports = 0;
  if (cgci_g.cfg.strict) cgci_fatal("detected possible issues with cleanups and/or finalizers");
}
