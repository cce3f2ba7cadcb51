/*
 * The Prometheus text endpoint (--metrics-listen HOST:PORT, off by default),
 * served by libmicrohttpd on its own thread: GET /metrics renders the figures
 * below from the engines at scrape time. docs/operations.md "Metrics" lists
 * every metric and what to alert on; tests/retain/test_metrics.py scrapes it.
 */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/err.h"
#include "locks/oplog.h"
#include "server/datadir.h"
#include "server/log.h"
#include "server/srv_int.h"

/* Commit latency buckets, seconds (upper bounds; +Inf implied). */
static const double lat_le[SRV_LAT_BUCKETS] = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                                0.02,   0.05,  0.1,   0.5,   2};

void srv__hist_add(srv_hist *h, int64_t ns) {
  double sec = (double)ns / 1e9;
  size_t i = 0;
  while (i < SRV_LAT_BUCKETS && sec > lat_le[i]) i++;
  __atomic_add_fetch(&h->b[i], 1, __ATOMIC_RELAXED);
  __atomic_add_fetch(&h->sum_ns, (uint64_t)(ns > 0 ? ns : 0), __ATOMIC_RELAXED);
}

void srv__metrics_commit(srv *s, int64_t ns) { srv__hist_add(&s->m_commit, ns); }

void srv__metrics_read(srv *s) { __atomic_add_fetch(&s->m_reads, 1, __ATOMIC_RELAXED); }

typedef struct out {
  char *p;
  size_t n, cap;
} out;

__attribute__((format(printf, 2, 3))) static void put(out *o, const char *fmt, ...) {
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(o->p ? o->p + o->n : NULL, o->p ? o->cap - o->n : 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (o->p && o->n + (size_t)k < o->cap) {
      o->n += (size_t)k;
      return;
    }
    size_t cap = o->cap ? o->cap * 2 : 16384;
    while (cap < o->n + (size_t)k + 1) cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) return;
    o->p = p;
    o->cap = cap;
  }
}

static void metric(out *o, const char *name, const char *type, const char *help, double v) {
  put(o, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name, v);
}

static void hist(out *o, const char *name, const char *help, srv_hist *h) {
  put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i <= SRV_LAT_BUCKETS; i++) {
    cum += __atomic_load_n(&h->b[i], __ATOMIC_RELAXED);
    if (i < SRV_LAT_BUCKETS) put(o, "%s_bucket{le=\"%g\"} %llu\n", name, lat_le[i], (unsigned long long)cum);
    else put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
  }
  put(o, "%s_sum %.9f\n%s_count %llu\n", name, (double)__atomic_load_n(&h->sum_ns, __ATOMIC_RELAXED) / 1e9,
      name, (unsigned long long)cum);
}

/* A histogram from per-bucket (not cumulative) counts with integer bounds. */
static void hist_u64(out *o, const char *name, const char *help, const uint64_t *le, const uint64_t *counts,
                     size_t nle, double sum) {
  put(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  uint64_t cum = 0;
  for (size_t i = 0; i <= nle; i++) {
    cum += counts[i];
    if (i < nle) put(o, "%s_bucket{le=\"%llu\"} %llu\n", name, (unsigned long long)le[i], (unsigned long long)cum);
    else put(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
  }
  put(o, "%s_sum %.17g\n%s_count %llu\n", name, sum, name, (unsigned long long)cum);
}

/* Commits, their groups and durations, reads and the node cache. */
static void render_commits(srv *s, out *o) {
  st_stats st;
  st_get_stats(s->db, &st);
  metric(o, "strata_commits_total", "counter", "Transactions committed (acknowledged durable).", (double)st.commits);
  metric(o, "strata_commit_groups_total", "counter", "Group commits (generations); commits/groups is the mean group size.",
         (double)st.groups);
  metric(o, "strata_bytes_written_total", "counter", "Bytes the store wrote for commits.", (double)st.bytes_written);
  hist_u64(o, "strata_commit_group_size", "Commits per commit group (generation).", st_group_size_le, st.group_size,
           ST_GROUP_BUCKETS, (double)st.commits);
  hist_u64(o, "strata_commit_group_bytes", "Bytes each commit group wrote (data, log record, manifest).",
           st_group_bytes_le, st.group_bytes, ST_GROUP_BUCKETS, (double)st.bytes_written);
  metric(o, "strata_reads_total", "counter", "Kv.Get, Kv.BatchGet and Kv.List calls.",
         (double)__atomic_load_n(&s->m_reads, __ATOMIC_RELAXED));
  metric(o, "strata_node_cache_hits_total", "counter", "Node cache lookups answered from memory.", (double)st.cache_hits);
  metric(o, "strata_node_cache_misses_total", "counter", "Node cache lookups that read a file.", (double)st.cache_misses);
  hist(o, "strata_commit_duration_seconds", "Kv.Commit from submission to durable and visible.", &s->m_commit);
}

/* Lock waits and waiters, fence rejections, locks held by kind. */
static void render_locks(srv *s, out *o) {
  hist(o, "strata_lock_wait_duration_seconds", "Time waiting Locks.Acquire calls (wait_ms > 0) spent acquiring.",
       &s->m_lockwait);
  metric(o, "strata_lock_waiters", "gauge", "Locks.Acquire calls waiting now.",
         (double)__atomic_load_n(&s->m_waiters, __ATOMIC_RELAXED));
  metric(o, "strata_fence_rejections_total", "counter", "Commits the fence refused (a lock or a writer lease lost).",
         (double)__atomic_load_n(&s->m_fence_rejects, __ATOMIC_RELAXED));
  lk_counts lc;
  lk_list_filter all = {0};
  if (lk_count(s->lk, &all, &lc) == 0) {
    put(o, "# HELP strata_locks_held Locks held now, by kind.\n# TYPE strata_locks_held gauge\n");
    put(o, "strata_locks_held{kind=\"temporal\"} %llu\nstrata_locks_held{kind=\"indefinite\"} %llu\n",
        (unsigned long long)lc.temporal, (unsigned long long)lc.indefinite);
  }
}

/* The op log: ops by status, stuck ops. */
static void render_ops(srv *s, out *o) {
  static const oplog_status sts[] = {OPLOG_CREATED, OPLOG_WRITE_STARTED, OPLOG_SUCCESS, OPLOG_EXCEPTION,
                                     OPLOG_WRITE_FAILED};
  put(o, "# HELP strata_ops Ops in the op log, by status.\n# TYPE strata_ops gauge\n");
  for (size_t i = 0; i < sizeof sts / sizeof sts[0]; i++) {
    oplog_list_filter f = {.status = sts[i]};
    oplog_op *ops;
    size_t n;
    if (oplog_list(lk_oplog(s->lk), &f, &ops, &n) == 0) {
      put(o, "strata_ops{status=\"%s\"} %zu\n", oplog_status_name(sts[i]), n);
      oplog_ops_free(ops, n);
    }
  }
  oplog_op *stuck;
  size_t nstuck;
  if (oplog_list_stuck(lk_oplog(s->lk), (int64_t)SRV_METRICS_STUCK_S * 1000000000, &stuck, &nstuck) == 0) {
    metric(o, "strata_ops_stuck", "gauge", "Ops not SUCCESS holding rows, created over 10 minutes ago.", (double)nstuck);
    oplog_ops_free(stuck, nstuck);
  }
}

/* The retained generations and GC over Strata's own files. */
static void render_store(srv *s, out *o) {
  st_retained rr;
  st_retained_range(s->db, &rr);
  metric(o, "strata_latest_generation", "gauge", "The latest committed generation.", (double)rr.latest_generation);
  metric(o, "strata_oldest_retained_generation", "gauge", "The oldest generation the version tree keeps.",
         (double)rr.oldest_generation);
  st_gc_own_totals gt;
  st_gc_own_totals_get(s->db, &gt);
  metric(o, "strata_gc_runs_total", "counter", "GC passes over Strata's own files.", (double)gt.runs);
  metric(o, "strata_gc_scanned_files_total", "counter", "Unreferenced files GC found (summed over passes).",
         (double)gt.files_scanned);
  metric(o, "strata_gc_scanned_bytes_total", "counter", "Bytes of the unreferenced files GC found.", (double)gt.bytes_scanned);
  metric(o, "strata_gc_removed_files_total", "counter", "Files GC removed.", (double)gt.files_removed);
  metric(o, "strata_gc_removed_bytes_total", "counter", "Bytes GC removed.", (double)gt.bytes_removed);
  metric(o, "strata_gc_waiting_files", "gauge", "Unreferenced files inside the grace period at the last pass.",
         (double)gt.files_waiting);
  metric(o, "strata_gc_work_total", "counter",
         "GC work done: version tree nodes, versions and B+tree nodes walked, candidate files decided.",
         (double)gt.work);
  metric(o, "strata_gc_running", "gauge", "1 while a GC pass over Strata's own files runs.", (double)gt.running);
}

/* Coordinator-mode writers and the gRPC server's calls. */
static void render_writers_rpc(srv *s, out *o) {
  wreg_info *ws;
  size_t nw;
  if (wreg_list(s->wr, 0, &ws, &nw) == 0) {
    size_t live = 0;
    for (size_t i = 0; i < nw; i++) live += ws[i].live != 0;
    metric(o, "strata_coordinator_writers_live", "gauge", "Coordinator-mode writers with a live lease.", (double)live);
    free(ws);
  }
  rpc_server *rpc = __atomic_load_n(&s->rpc, __ATOMIC_ACQUIRE); /* set after metrics start */
  if (rpc) {
    rpc_server_stats rs;
    rpc_server_get_stats(rpc, &rs);
    metric(o, "strata_rpc_calls_total", "counter", "Calls accepted, all methods.", (double)rs.calls_total);
    metric(o, "strata_rpc_calls_failed_total", "counter", "Calls that ended with a status other than OK.",
           (double)rs.calls_failed);
    metric(o, "strata_rpc_calls_active", "gauge", "Calls in progress.", (double)rs.calls_active);
  }
}

/* The whole scrape, in this order (tests/retain/test_metrics.py reads it). */
static void render(srv *s, out *o) {
  render_commits(s, o);
  render_locks(s, o);
  render_ops(s, o);
  render_store(s, o);
  render_writers_rpc(s, o);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_size, void **ptr) {
  srv *s = cls;
  if (strcmp(method, "GET") != 0) return MHD_NO;
  struct MHD_Response *r;
  unsigned code = MHD_HTTP_OK;
  if (strcmp(url, "/metrics") != 0) {
    static const char nf[] = "not found: the metrics are at /metrics\n";
    r = MHD_create_response_from_buffer(sizeof nf - 1, (void *)nf, MHD_RESPMEM_PERSISTENT);
    code = MHD_HTTP_NOT_FOUND;
  } else {
    out o = {0};
    render(s, &o);
    r = MHD_create_response_from_buffer(o.n, o.p ? o.p : (void *)"", MHD_RESPMEM_MUST_FREE);
    if (!o.p) r = NULL;
  }
  if (!r) return MHD_NO;
  MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
  enum MHD_Result ret = MHD_queue_response(c, code, r);
  MHD_destroy_response(r);
  return ret;
}

/* The one parser of --metrics-listen: an IPv4 HOST:PORT (PORT 0..65535) into
 * *a and host. Returns 0, or -1 with one line in msg. */
static int metrics_addr(const char *l, struct sockaddr_in *a, char *host, size_t hcap, char *msg,
                        size_t cap) {
  if (srv_listen_syntax("--metrics-listen", l, msg, cap)) return -1;
  const char *colon = strrchr(l, ':');
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  if ((size_t)(colon - l) >= hcap) {
    snprintf(msg, cap, "--metrics-listen %s: expected IPv4-HOST:PORT", l);
    return -1;
  }
  memcpy(host, l, (size_t)(colon - l));
  host[colon - l] = 0;
  if (inet_pton(AF_INET, host, &a->sin_addr) != 1) {
    snprintf(msg, cap, "--metrics-listen %s: %s is not an IPv4 address (expected IPv4-HOST:PORT)", l,
             host);
    return -1;
  }
  a->sin_port = htons((uint16_t)strtoul(colon + 1, NULL, 10));
  return 0;
}

int srv_check_metrics_listen(const char *l, char *msg, size_t cap) {
  struct sockaddr_in a;
  char host[64];
  if (metrics_addr(l, &a, host, sizeof host, msg, cap)) return -1;
  return srv_check_listen("--metrics-listen", l, msg, cap);
}

int srv__metrics_start(srv *s) {
  const char *l = s->o.metrics_listen;
  if (!l || !*l) return 0;
  struct sockaddr_in a;
  char host[64], why[512];
  if (metrics_addr(l, &a, host, sizeof host, why, sizeof why))
    return strata_err(STRATA_EINVALID, "%s", why);
  unsigned port = ntohs(a.sin_port);
  s->metrics = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, (uint16_t)port, NULL,
                                NULL, answer, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&a,
                                MHD_OPTION_CONNECTION_LIMIT, 16u, MHD_OPTION_CONNECTION_TIMEOUT, 10u,
                                MHD_OPTION_END);
  if (!s->metrics) return strata_err(STRATA_EIO, "--metrics-listen %s: cannot listen", l);
  const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->metrics, MHD_DAEMON_INFO_BIND_PORT);
  srv_log(SRV_LOG_INFO, "event=metrics_ready addr=%s port=%u", host, di ? (unsigned)di->port : (unsigned)port);
  return 0;
}

void srv__metrics_stop(srv *s) {
  if (s->metrics) MHD_stop_daemon(s->metrics);
  s->metrics = NULL;
}
