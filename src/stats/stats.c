/* stats.c -- statistics, the per-collection trace line and the exit
 * summary.  Output is formatted with integer arithmetic into stack buffers
 * and written with write(2): nothing here allocates or takes stdio locks.
 *
 * CGC_TRACE=1 prints one line per collection, in the spirit of Go's
 * GODEBUG=gctrace=1:
 *
 *   cgc: gc 12 @1.234s: pause 0.812 ms (mark 0.700 + sweep 0.112),
 *        heap 33.1 -> 17.9 -> 35.8 MB goal, 3 threads, 412 KB roots,
 *        fin 2 queued 1 run, cln 7 queued 7 run
 *
 * "run" counts the callbacks that finished since the previous collection.
 */
#include "core/internal.h"
#include <stdio.h>
#include <string.h>

/* fmt_ms -- "12.345" for NS nanoseconds, as milliseconds. */
static void fmt_ms(char *buf, size_t len, uint64_t ns) {
  snprintf(buf, len, "%llu.%03llu", (unsigned long long)(ns / 1000000),
           (unsigned long long)(ns / 1000 % 1000));
}

/* fmt_mb -- "12.3" for BYTES, in MiB. */
static void fmt_mb(char *buf, size_t len, uint64_t bytes) {
  uint64_t tenths = bytes * 10 / (1024 * 1024);
  snprintf(buf, len, "%llu.%llu", (unsigned long long)(tenths / 10), (unsigned long long)(tenths % 10));
}

void cgci_trace_cycle(uint64_t n, uint64_t pause_ns, uint64_t mark_ns,
                      uint64_t sweep_ns, size_t before, size_t after,
                      size_t goal, size_t nthreads, size_t root_bytes,
                      uint64_t finq, uint64_t finr, uint64_t clnq, uint64_t clnr) {
  char at[32], p[32], m[32], s[32], b[32], a[32], g[32];
  fmt_ms(at, sizeof at, cgci_os_now_ns() - cgci_g.t_start_ns);
  fmt_ms(p, sizeof p, pause_ns);
  fmt_ms(m, sizeof m, mark_ns);
  fmt_ms(s, sizeof s, sweep_ns);
  fmt_mb(b, sizeof b, before);
  fmt_mb(a, sizeof a, after);
  fmt_mb(g, sizeof g, goal);
  /* "@" is in seconds: at holds ms.us, print it as s.ms */
  unsigned long long ms_total = (cgci_os_now_ns() - cgci_g.t_start_ns) / 1000000;
  cgci_log("cgc: gc %llu @%llu.%03llus: pause %s ms (mark %s + sweep %s), "
           "heap %s -> %s -> %s MB goal, %zu threads, %zu KB roots, "
           "fin %llu queued %llu run, cln %llu queued %llu run\n",
           (unsigned long long)n, ms_total / 1000, ms_total % 1000, p, m, s, b, a, g,
           nthreads, root_bytes / 1024, (unsigned long long)finq, (unsigned long long)finr,
           (unsigned long long)clnq, (unsigned long long)clnr);
  (void)at;
}

void cgc_get_stats(cgc_stats_t *out) {
  if (out == NULL) return;
  cgci_ensure_init();
  cgci_lock();
  struct cgci_thread *t = cgci_self;
  if (t) cgci_thread_flush_counters(t);
  cgci_queue_lock();
  *out = cgci_g.st;
  out->fin_queue_len = cgci_queue_len_fin();
  out->cln_queue_len = cgci_queue_len_cln();
  cgci_queue_unlock();
  uint64_t net_objs = (cgci_g.st.objects_allocated - cgci_g.objs_alloc_mark)
                      - (cgci_g.explicit_freed_objs - cgci_g.objs_freed_mark);
  uint64_t net_bytes = (cgci_g.st.bytes_allocated - cgci_g.bytes_alloc_mark)
                       - (cgci_g.explicit_freed_bytes - cgci_g.bytes_freed_mark);
  out->objects_live = cgci_g.live_objs + net_objs;
  out->bytes_live = cgci_g.live_bytes + net_bytes;
  out->heap_size = (cgci_g.pages_in_use + cgci_g.pages_free_committed) << CGCI_PAGE_SHIFT;
  out->heap_reserved = cgci_g.heap_reserved;
  out->threads = cgci_g.nthreads;
  out->gc_goal = cgci_g.live_bytes + cgci_g.trigger;
  cgci_unlock();
}

void cgc_print_stats(int fd) {
  cgc_stats_t s;
  cgc_get_stats(&s);
  char buf[2048], tp[32], mp[32], hs[32], live[32], alloc[32];
  fmt_ms(tp, sizeof tp, s.pause_total_ns);
  fmt_ms(mp, sizeof mp, s.pause_max_ns);
  fmt_mb(hs, sizeof hs, s.heap_size);
  fmt_mb(live, sizeof live, s.bytes_live);
  fmt_mb(alloc, sizeof alloc, s.bytes_allocated);
  int n = snprintf(buf, sizeof buf,
    "cgc statistics:\n"
    "  collections          %llu (pause total %s ms, max %s ms)\n"
    "  heap                 %s MB (live %s MB, %llu objects)\n"
    "  allocated            %s MB in %llu objects\n"
    "  freed                %llu objects, %llu bytes\n"
    "  returned to the OS   %llu bytes\n"
    "  finalizers           %llu registered, %llu queued, %llu run\n"
    "  cleanups             %llu registered, %llu queued, %llu run, %llu cancelled\n"
    "  weak pointers        %llu created, %llu cleared\n"
    "  threads              %llu\n",
    (unsigned long long)s.collections, tp, mp, hs, live, (unsigned long long)s.objects_live,
    alloc, (unsigned long long)s.objects_allocated,
    (unsigned long long)s.objects_freed, (unsigned long long)s.bytes_freed,
    (unsigned long long)s.bytes_released,
    (unsigned long long)s.finalizers_registered, (unsigned long long)s.finalizers_queued,
    (unsigned long long)s.finalizers_run,
    (unsigned long long)s.cleanups_registered, (unsigned long long)s.cleanups_queued,
    (unsigned long long)s.cleanups_run, (unsigned long long)s.cleanups_cancelled,
    (unsigned long long)s.weak_created, (unsigned long long)s.weak_cleared,
    (unsigned long long)s.threads);
  if (n > (int)sizeof buf - 1) n = (int)sizeof buf - 1;
  if (n > 0) cgci_os_write(fd, buf, (size_t)n);
}

void cgci_stats_atexit(void) { cgc_print_stats(2); }
