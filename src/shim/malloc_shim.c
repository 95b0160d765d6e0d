/* malloc_shim.c -- the libc allocation functions of libcgc-preload.so,
 * forwarded to the collector.
 *
 * Design: docs/malloc-replacement.md.  The library is meant for
 * LD_PRELOAD (see the cgc-run wrapper).  CGC_MODE picks what free does
 * (collect, gc, safe, leakcheck); shim.h lists the modes.
 *
 * .inv.boot: every allocation made before the collector is ready, or while
 *   it initialises on this thread (cgci_ext_ready() == 0), comes from the
 *   bootstrap area: a static array plus, if that runs out, single-use
 *   mmap chunks.  Bootstrap blocks carry a 16-byte header with their size,
 *   are never reused, and free() of them is ignored.  The area is
 *   registered as a root so what the loader keeps there stays alive.
 * .inv.foreign: free/realloc of a pointer that is neither a bootstrap block
 *   nor a live cgc block start is counted and ignored (realloc returns
 *   NULL with ENOMEM); no error hook fires (cgci_ext_free_quiet).
 * .inv.errno: free() preserves errno; failed allocations set ENOMEM.
 * .assume.nomalloc: see shim.h.  The file is compiled with -fno-builtin so
 *   that the compiler cannot turn malloc+memset into a call to calloc.
 */
#include "shim/shim.h"
#include "core/ext.h"
#include "cgc.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SHIM_EXPORT __attribute__((visibility("default")))
#define LIKELY(e)   __builtin_expect(!!(e), 1)
#define UNLIKELY(e) __builtin_expect(!!(e), 0)
#define RA()        ((uintptr_t)__builtin_return_address(0))

/* Collection trigger in collect mode (see shim_init). */
#ifndef SHIM_COLLECT_GC_PERCENT
#  define SHIM_COLLECT_GC_PERCENT 400
#endif

/* Largest request we pass on: above PTRDIFF_MAX glibc fails too. */
#define SHIM_MAX_REQUEST ((size_t)PTRDIFF_MAX - 65536)

int cgci_shim_mode = CGCI_SHIM_COLLECT;
__thread int cgci_shim_busy __attribute__((tls_model("initial-exec")));

/* Initialisation state: 0 none, 1 running (on the thread with t_in_init),
 * 2 done. */
static atomic_int shim_state;
static __thread int t_in_init __attribute__((tls_model("initial-exec")));
static int shim_show_stats;          /* CGC_SHOW_STATS set */
static int shim_safe_report;         /* CGC_SAFE_REPORT=1 */

/* Counters of unusual events (relaxed atomics; only on slow paths, except
 * ignored frees in gc mode). */
static atomic_ulong n_boot_allocs, n_boot_bytes, n_boot_frees;
static atomic_ulong n_foreign_frees, n_interior_frees, n_double_frees;
static atomic_ulong n_ignored_frees, n_foreign_reallocs, n_core_errors;


/* ---- Small helpers: output, getenv, mmap ------------------------------ */

void cgci_shim_out_init(struct cgci_shim_out *o, int fd)
{
  o->fd = fd;
  o->len = 0;
}

void cgci_shim_out_flush(struct cgci_shim_out *o)
{
  size_t off = 0;

  while (off < o->len) {
    ssize_t w = write(o->fd, o->buf + off, o->len - off);
    if (w < 0 && errno == EINTR)
      continue;
    if (w <= 0)
      break;
    off += (size_t)w;
  }
  o->len = 0;
}

void cgci_shim_out_str(struct cgci_shim_out *o, const char *s)
{
  while (*s) {
    if (o->len == sizeof o->buf)
      cgci_shim_out_flush(o);
    o->buf[o->len++] = *s++;
  }
}

void cgci_shim_out_u64(struct cgci_shim_out *o, uint64_t v)
{
  char tmp[24];
  int i = (int)sizeof tmp - 1;

  tmp[i] = 0;
  do {
    tmp[--i] = (char)('0' + v % 10);
    v /= 10;
  } while (v);
  cgci_shim_out_str(o, tmp + i);
}

void cgci_shim_out_hex(struct cgci_shim_out *o, uintptr_t v)
{
  char tmp[24];
  int i = (int)sizeof tmp - 1;

  tmp[i] = 0;
  do {
    tmp[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v);
  tmp[--i] = 'x';
  tmp[--i] = '0';
  cgci_shim_out_str(o, tmp + i);
}

void cgci_shim_out_sym(struct cgci_shim_out *o, uintptr_t pc)
{
  Dl_info info;

  cgci_shim_out_hex(o, pc);
  memset(&info, 0, sizeof info);
  cgci_shim_busy++;
  /* PC is a return address: look up PC-1 so a call at the very end of a
   * function is attributed to it, not to the next one. */
  int ok = pc != 0 && dladdr((void *)(pc - 1), &info) != 0;
  cgci_shim_busy--;
  if (!ok)
    return;
  if (info.dli_sname != NULL) {
    cgci_shim_out_str(o, " in ");
    cgci_shim_out_str(o, info.dli_sname);
    cgci_shim_out_str(o, "+");
    cgci_shim_out_hex(o, pc - (uintptr_t)info.dli_saddr);
  }
  if (info.dli_fname != NULL) {
    cgci_shim_out_str(o, " (");
    cgci_shim_out_str(o, info.dli_fname[0] ? info.dli_fname : "main program");
    if (info.dli_sname == NULL) {
      cgci_shim_out_str(o, "+");
      cgci_shim_out_hex(o, pc - (uintptr_t)info.dli_fbase);
    }
    cgci_shim_out_str(o, ")");
  }
}

/* Our tables live in memory the collector owns but never scans
 * (cgci_ext_map): scanning them would cost time at every collection, and
 * the quarantine and leak tables name blocks that must not look
 * referenced (they also store addresses complemented, .inv.hidden). */
void *cgci_shim_map(size_t bytes)
{
  return cgci_ext_map(bytes);
}

void cgci_shim_unmap(void *p, size_t bytes)
{
  if (p != NULL)
    cgci_ext_unmap(p, bytes);
}

/* A copy of /proc/self/environ for the case where malloc runs before libc
 * has set environ (it normally has: libc initialises first). */
static char shim_env_copy[32768];
static size_t shim_env_len;
static int shim_env_loaded;

static const char *env_scan(const char *name, const char *p, const char *end)
{
  size_t nl = strlen(name);

  while (p < end) {
    size_t l = strnlen(p, (size_t)(end - p));
    if (l > nl && memcmp(p, name, nl) == 0 && p[nl] == '=')
      return p + nl + 1;
    p += l + 1;
  }
  return NULL;
}

const char *cgci_shim_getenv(const char *name)
{
  extern char **environ;
  char **e = environ;
  size_t nl = strlen(name);

  if (e != NULL) {
    for (; *e != NULL; e++)
      if (strncmp(*e, name, nl) == 0 && (*e)[nl] == '=')
        return *e + nl + 1;
    return NULL;
  }
  if (!shim_env_loaded) {
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t r;
      while (shim_env_len < sizeof shim_env_copy - 1 &&
             (r = read(fd, shim_env_copy + shim_env_len,
                       sizeof shim_env_copy - 1 - shim_env_len)) > 0)
        shim_env_len += (size_t)r;
      close(fd);
    }
    shim_env_loaded = 1;
  }
  return env_scan(name, shim_env_copy, shim_env_copy + shim_env_len);
}


/* ---- Bootstrap area (.inv.boot) -------------------------------------- */

#define BOOT_STATIC_SIZE   (256u * 1024u)
#define BOOT_MAX_CHUNKS    128
#define BOOT_MAGIC         0xC6C0B007u

struct boot_hdr {
  uint32_t magic;          /* BOOT_MAGIC */
  uint32_t pad;
  size_t size;             /* bytes requested */
};

static unsigned char boot_static[BOOT_STATIC_SIZE] __attribute__((aligned(4096)));
static atomic_size_t boot_used;
/* Overflow chunks, each holding exactly one allocation. */
static struct { atomic_uintptr_t lo, hi; } boot_chunks[BOOT_MAX_CHUNKS];
static atomic_int boot_nchunks;

static int is_boot(const void *p)
{
  uintptr_t a = (uintptr_t)p;

  if (a >= (uintptr_t)boot_static && a < (uintptr_t)boot_static + BOOT_STATIC_SIZE)
    return 1;
  int n = atomic_load_explicit(&boot_nchunks, memory_order_acquire);
  for (int i = 0; i < n && i < BOOT_MAX_CHUNKS; i++)
    if (a >= atomic_load(&boot_chunks[i].lo) && a < atomic_load(&boot_chunks[i].hi))
      return 1;
  return 0;
}

static size_t boot_size(const void *p)
{
  const struct boot_hdr *h = (const struct boot_hdr *)p - 1;
  return h->magic == BOOT_MAGIC ? h->size : 0;
}

/* boot_alloc -- N bytes aligned to ALIGN (a power of two >= 16), zeroed. */
static void *boot_alloc(size_t align, size_t n)
{
  if (align < 16)
    align = 16;
  if (n > SHIM_MAX_REQUEST - align) {
    errno = ENOMEM;
    return NULL;
  }
  size_t need = (n + sizeof(struct boot_hdr) + align + 15) & ~(size_t)15;
  uintptr_t raw = 0;
  size_t off = atomic_fetch_add(&boot_used, need);

  if (off + need <= BOOT_STATIC_SIZE) {
    raw = (uintptr_t)boot_static + off;
  } else {
    int i = atomic_fetch_add(&boot_nchunks, 1);
    size_t bytes = (need + 4095) & ~(size_t)4095;
    if (i >= BOOT_MAX_CHUNKS) {
      errno = ENOMEM;
      return NULL;
    }
    void *m = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
      errno = ENOMEM;
      return NULL;
    }
    raw = (uintptr_t)m;
    atomic_store(&boot_chunks[i].hi, raw + bytes);
    atomic_store(&boot_chunks[i].lo, raw);
  }
  uintptr_t user = (raw + sizeof(struct boot_hdr) + align - 1) & ~(uintptr_t)(align - 1);
  struct boot_hdr *h = (struct boot_hdr *)user - 1;
  h->magic = BOOT_MAGIC;
  h->size = n;
  atomic_fetch_add_explicit(&n_boot_allocs, 1, memory_order_relaxed);
  atomic_fetch_add_explicit(&n_boot_bytes, n, memory_order_relaxed);
  return (void *)user;
}


/* ---- Initialisation --------------------------------------------------- */

static void shim_gc_hook(void)
{
  if (cgci_shim_mode == CGCI_SHIM_SAFE)
    cgci_quarantine_gc_hook();
  else if (cgci_shim_mode == CGCI_SHIM_LEAKCHECK)
    cgci_leak_gc_hook();
}

static void shim_error_hook(int err, const char *func, const char *msg)
{
  (void)err;
  (void)func;
  (void)msg;
  atomic_fetch_add_explicit(&n_core_errors, 1, memory_order_relaxed);
}

static void shim_die(const char *msg)
{
  struct cgci_shim_out o;

  cgci_shim_out_init(&o, 2);
  cgci_shim_out_str(&o, "cgc-preload: ");
  cgci_shim_out_str(&o, msg);
  cgci_shim_out_str(&o, "\n");
  cgci_shim_out_flush(&o);
  abort();
}

static int parse_mode(const char *s)
{
  if (s == NULL || *s == 0 || strcmp(s, "collect") == 0)
    return CGCI_SHIM_COLLECT;
  if (strcmp(s, "gc") == 0)
    return CGCI_SHIM_GC;
  if (strcmp(s, "safe") == 0)
    return CGCI_SHIM_SAFE;
  if (strcmp(s, "leakcheck") == 0 || strcmp(s, "leak") == 0)
    return CGCI_SHIM_LEAKCHECK;
  shim_die("CGC_MODE must be collect, gc, safe or leakcheck");
  return CGCI_SHIM_COLLECT;
}

static int env_flag(const char *name)
{
  const char *v = cgci_shim_getenv(name);
  return v != NULL && *v != 0 && strcmp(v, "0") != 0;
}

/* shim_init -- initialise the collector and the mode; returns 1 if the
 * caller may use the collector now, 0 if it must use the bootstrap area
 * (another thread is initialising, or we are inside the initialisation). */
static __attribute__((noinline)) int shim_init(void)
{
  int st = atomic_load(&shim_state);

  if (st == 2)
    return cgci_ext_ready();
  if (t_in_init || st == 1)
    return 0;
  int expected = 0;
  if (!atomic_compare_exchange_strong(&shim_state, &expected, 1))
    return 0;
  t_in_init = 1;

  cgci_shim_mode = parse_mode(cgci_shim_getenv("CGC_MODE"));
  shim_show_stats = env_flag("CGC_SHOW_STATS");
  shim_safe_report = env_flag("CGC_SAFE_REPORT");
  cgci_shim_signals_before_init();
  int ir = cgc_init(NULL);
  cgci_shim_signals_after_init();
  if (ir != CGC_OK)
    shim_die("cgc_init failed");
  cgc_set_error_hook(shim_error_hook);
  /* Programs keep malloc'd pointers in memory they map themselves (pools,
   * arenas, other allocators' chunks): scan those mappings as roots.
   * CGC_SCAN_MAPPINGS=0 turns it off, for diagnosis only. */
  const char *sm = cgci_shim_getenv("CGC_SCAN_MAPPINGS");
  cgci_ext_scan_mappings(sm == NULL || strcmp(sm, "0") != 0);
  cgc_add_roots(boot_static, boot_static + BOOT_STATIC_SIZE);
  switch (cgci_shim_mode) {
  case CGCI_SHIM_COLLECT:
    /* free() releases at once and the collector's trigger counts net
     * growth, so here a collection only finds leaks: run it less often
     * (the heap may reach 5x the live data before one, instead of 2x)
     * unless the user chose. */
    if (cgci_shim_getenv("CGC_GCPERCENT") == NULL)
      cgc_set_gc_percent(SHIM_COLLECT_GC_PERCENT);
    break;
  case CGCI_SHIM_SAFE:
    cgci_quarantine_init();
    cgci_ext_set_gc_hook(shim_gc_hook);
    break;
  case CGCI_SHIM_LEAKCHECK:
    cgc_disable();
    cgc_set_gc_percent(-1);
    cgci_leak_init();
    cgci_ext_set_gc_hook(shim_gc_hook);
    break;
  default:
    break;
  }

  t_in_init = 0;
  atomic_store(&shim_state, 2);
  return cgci_ext_ready();
}

/* core_ok -- may this call go to the collector?  (Initialises on demand.) */
static inline int core_ok(void)
{
  if (LIKELY(atomic_load_explicit(&shim_state, memory_order_acquire) == 2)
      && LIKELY(cgci_ext_ready()))
    return 1;
  return shim_init();
}

__attribute__((constructor)) static void shim_ctor(void)
{
  core_ok();
}


/* ---- Allocation -------------------------------------------------------- */

static void *alloc_aligned(size_t align, size_t n)
{
  void *p;

  if (UNLIKELY(n > SHIM_MAX_REQUEST)) {
    errno = ENOMEM;
    return NULL;
  }
  if (UNLIKELY(!core_ok()))
    return boot_alloc(align, n);
  if (UNLIKELY(cgci_shim_mode == CGCI_SHIM_LEAKCHECK))
    cgci_leak_poll();
  p = align <= 16 ? cgc_malloc(n) : cgc_memalign(align, n);
  if (UNLIKELY(p == NULL)) {
    errno = ENOMEM;
    return NULL;
  }
  if (UNLIKELY(cgci_shim_mode == CGCI_SHIM_LEAKCHECK))
    cgci_leak_record(p, n);
  return p;
}

SHIM_EXPORT void *malloc(size_t n)
{
  return alloc_aligned(16, n);
}

SHIM_EXPORT void *calloc(size_t n, size_t size)
{
  size_t total;

  if (UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
    errno = ENOMEM;
    return NULL;
  }
  /* cgc_malloc and the bootstrap area both return zeroed memory. */
  return alloc_aligned(16, total);
}

/* release -- what free() does with a pointer, by mode.  SITE is the
 * caller of free/realloc (for safe mode's report). */
static void release(void *p, uintptr_t site)
{
  int r;

  if (is_boot(p)) {
    atomic_fetch_add_explicit(&n_boot_frees, 1, memory_order_relaxed);
    return;
  }
  if (UNLIKELY(!core_ok())) {
    atomic_fetch_add_explicit(&n_foreign_frees, 1, memory_order_relaxed);
    return;
  }
  switch (cgci_shim_mode) {
  case CGCI_SHIM_GC:
    atomic_fetch_add_explicit(&n_ignored_frees, 1, memory_order_relaxed);
    return;
  case CGCI_SHIM_SAFE: {
    size_t usable = cgc_usable_size(p);
    if (usable == 0)
      break;                        /* not a live block start: classify */
    cgci_quarantine_free(p, usable, site);
    return;
  }
  case CGCI_SHIM_LEAKCHECK:
    cgci_leak_poll();
    cgci_leak_forget(p);
    break;
  default:
    break;
  }
  r = cgci_ext_free_quiet(p);
  switch (r) {
  case CGC_OK:
  case CGC_EBUSY:                   /* malloc'ed objects have no finalizers */
    break;
  case CGC_ENOTBASE:
    atomic_fetch_add_explicit(&n_interior_frees, 1, memory_order_relaxed);
    break;
  case CGC_EINVAL:
    atomic_fetch_add_explicit(&n_double_frees, 1, memory_order_relaxed);
    break;
  default:
    atomic_fetch_add_explicit(&n_foreign_frees, 1, memory_order_relaxed);
    break;
  }
}

SHIM_EXPORT void free(void *p)
{
  if (p == NULL)
    return;
  int saved = errno;
  release(p, RA());
  errno = saved;
}

static void *realloc_at(void *p, size_t n, uintptr_t site)
{
  size_t old;
  void *q;

  if (p == NULL)
    return alloc_aligned(16, n);
  if (is_boot(p)) {
    old = boot_size(p);
    q = alloc_aligned(16, n);
    if (q != NULL)
      memcpy(q, p, old < n ? old : n);
    atomic_fetch_add_explicit(&n_boot_frees, 1, memory_order_relaxed);
    return q;
  }
  if (n == 0) {                       /* glibc: free and return NULL */
    release(p, site);
    return NULL;
  }
  if (UNLIKELY(n > SHIM_MAX_REQUEST) || UNLIKELY(!core_ok())) {
    errno = ENOMEM;
    return NULL;
  }
  old = cgc_usable_size(p);
  if (UNLIKELY(old == 0)) {           /* .inv.foreign */
    atomic_fetch_add_explicit(&n_foreign_reallocs, 1, memory_order_relaxed);
    errno = ENOMEM;
    return NULL;
  }
  if (LIKELY(cgci_shim_mode == CGCI_SHIM_COLLECT)) {
    q = cgc_realloc(p, n);
    if (q == NULL)
      errno = ENOMEM;
    return q;
  }
  /* Other modes move by hand so that the old block gets the mode's free. */
  if (n <= old && n >= old / 2) {
    if (cgci_shim_mode == CGCI_SHIM_LEAKCHECK)
      cgci_leak_resize(p, n);
    return p;
  }
  q = alloc_aligned(16, n);
  if (q == NULL)
    return NULL;
  memcpy(q, p, old < n ? old : n);
  release(p, site);
  return q;
}

SHIM_EXPORT void *realloc(void *p, size_t n)
{
  return realloc_at(p, n, RA());
}

SHIM_EXPORT void *reallocarray(void *p, size_t n, size_t size)
{
  size_t total;

  if (__builtin_mul_overflow(n, size, &total)) {
    errno = ENOMEM;
    return NULL;
  }
  return realloc_at(p, total, RA());
}

static int is_pow2(size_t a)
{
  return a != 0 && (a & (a - 1)) == 0;
}

SHIM_EXPORT int posix_memalign(void **out, size_t align, size_t n)
{
  if (!is_pow2(align) || align % sizeof(void *) != 0)
    return EINVAL;
  int saved = errno;
  void *p = alloc_aligned(align, n);
  errno = saved;
  if (p == NULL)
    return ENOMEM;
  *out = p;
  return 0;
}

SHIM_EXPORT void *aligned_alloc(size_t align, size_t n)
{
  if (!is_pow2(align)) {            /* glibc 2.36 behaviour */
    errno = EINVAL;
    return NULL;
  }
  return alloc_aligned(align, n);
}

SHIM_EXPORT void *memalign(size_t align, size_t n)
{
  if (align > SHIM_MAX_REQUEST / 2) {
    errno = EINVAL;
    return NULL;
  }
  size_t a = 1;
  while (a < align)                 /* glibc rounds up to a power of two */
    a <<= 1;
  return alloc_aligned(a, n);
}

static size_t page_size(void)
{
  static size_t ps;
  if (ps == 0)
    ps = (size_t)sysconf(_SC_PAGESIZE);
  return ps;
}

SHIM_EXPORT void *valloc(size_t n)
{
  return alloc_aligned(page_size(), n);
}

SHIM_EXPORT void *pvalloc(size_t n)
{
  size_t ps = page_size();
  if (n > SHIM_MAX_REQUEST) {
    errno = ENOMEM;
    return NULL;
  }
  return alloc_aligned(ps, (n + ps - 1) & ~(ps - 1));
}

SHIM_EXPORT size_t malloc_usable_size(void *p)
{
  if (p == NULL)
    return 0;
  if (is_boot(p))
    return boot_size(p);
  if (!core_ok())
    return 0;
  return cgc_usable_size(p);
}


/* ---- dlopen: no collection while the loader runs ----------------------- */

/* A collection walks the loader's list of objects to find data segments;
 * while dlopen/dlclose are changing it (and running constructors that
 * allocate) collections triggered by this process are put off, as bdwgc's
 * GC_dlopen does. */
typedef void *(*dlopen_fn)(const char *, int);
typedef int (*dlclose_fn)(void *);
static _Atomic(dlopen_fn) real_dlopen;
static _Atomic(dlclose_fn) real_dlclose;

SHIM_EXPORT void *dlopen(const char *file, int flags)
{
  dlopen_fn f = atomic_load(&real_dlopen);

  if (f == NULL) {
    f = (dlopen_fn)dlsym(RTLD_NEXT, "dlopen");
    atomic_store(&real_dlopen, f);
  }
  if (!core_ok() || cgci_shim_mode == CGCI_SHIM_LEAKCHECK) {
    cgci_ext_dl_change(1);
    void *h = f(file, flags);
    cgci_ext_dl_change(0);
    return h;
  }
  cgc_disable();
  cgci_ext_dl_change(1);
  void *h = f(file, flags);
  cgci_ext_dl_change(0);
  cgc_enable();
  return h;
}

SHIM_EXPORT int dlclose(void *h)
{
  dlclose_fn f = atomic_load(&real_dlclose);

  if (f == NULL) {
    f = (dlclose_fn)dlsym(RTLD_NEXT, "dlclose");
    atomic_store(&real_dlclose, f);
  }
  if (!core_ok() || cgci_shim_mode == CGCI_SHIM_LEAKCHECK) {
    cgci_ext_dl_change(1);
    int r = f(h);
    cgci_ext_dl_change(0);
    return r;
  }
  cgc_disable();
  cgci_ext_dl_change(1);
  int r = f(h);
  cgci_ext_dl_change(0);
  cgc_enable();
  return r;
}


/* ---- Exit: reports and statistics -------------------------------------- */

static const char *mode_name(int m)
{
  static const char *const names[] = { "collect", "gc", "safe", "leakcheck" };
  return names[m & 3];
}

static void put_count(struct cgci_shim_out *o, const char *label, atomic_ulong *c)
{
  cgci_shim_out_str(o, label);
  cgci_shim_out_u64(o, atomic_load(c));
}

static void shim_print_stats(int fd)
{
  struct cgci_shim_out o;

  cgci_shim_out_init(&o, fd);
  cgci_shim_out_str(&o, "cgc-preload: mode=");
  cgci_shim_out_str(&o, mode_name(cgci_shim_mode));
  put_count(&o, " bootstrap_allocs=", &n_boot_allocs);
  put_count(&o, " bootstrap_bytes=", &n_boot_bytes);
  put_count(&o, " bootstrap_frees=", &n_boot_frees);
  put_count(&o, " ignored_frees=", &n_ignored_frees);
  put_count(&o, " foreign_frees=", &n_foreign_frees);
  put_count(&o, " interior_frees=", &n_interior_frees);
  put_count(&o, " double_frees=", &n_double_frees);
  put_count(&o, " foreign_reallocs=", &n_foreign_reallocs);
  put_count(&o, " core_errors=", &n_core_errors);
  cgci_shim_out_str(&o, "\n");
  cgci_shim_out_flush(&o);
}

__attribute__((destructor)) static void shim_fini(void)
{
  if (atomic_load(&shim_state) != 2)
    return;
  if (shim_show_stats)
    shim_print_stats(2);
  if (cgci_shim_mode == CGCI_SHIM_SAFE && (shim_safe_report || shim_show_stats))
    cgci_quarantine_report(2, shim_safe_report);
  if (cgci_shim_mode == CGCI_SHIM_LEAKCHECK)
    cgci_leak_at_exit();
}

/* cgc_shim_counters -- for tests: fill OUT[0..7] with the counters above
 * (boot allocs, boot frees, ignored, foreign, interior, double, foreign
 * reallocs, core errors).  Returns the mode. */
SHIM_EXPORT int cgc_shim_counters(unsigned long out[8])
{
  out[0] = atomic_load(&n_boot_allocs);
  out[1] = atomic_load(&n_boot_frees);
  out[2] = atomic_load(&n_ignored_frees);
  out[3] = atomic_load(&n_foreign_frees);
  out[4] = atomic_load(&n_interior_frees);
  out[5] = atomic_load(&n_double_frees);
  out[6] = atomic_load(&n_foreign_reallocs);
  out[7] = atomic_load(&n_core_errors);
  return cgci_shim_mode;
}
