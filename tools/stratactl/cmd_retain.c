/*
 * retention show / set / hold / release (Admin.Retention), gc --status and the
 * retained range of kv versions (Admin.Stats). docs/stratactl.md.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tools/stratactl/ctl.h"

static json_t *range_json(const Strata__V1__RetainedRange *g) {
  json_t *o = json_object();
  if (!g) return o;
  json_object_set_new(o, "oldest_generation", ctl_json_u64(g->oldest_generation));
  json_object_set_new(o, "oldest_commit_time_ns", json_integer(g->oldest_commit_time_ns));
  json_object_set_new(o, "latest_generation", ctl_json_u64(g->latest_generation));
  json_object_set_new(o, "floor", ctl_json_u64(g->floor));
  return o;
}

void ctl_print_range(const Strata__V1__RetainedRange *g) {
  if (!g) return;
  char tb[48];
  printf("retained v%llu..v%llu (oldest committed %s)", (unsigned long long)g->oldest_generation,
         (unsigned long long)g->latest_generation, ctl_time_str(g->oldest_commit_time_ns, 3, tb, sizeof tb));
  if (g->floor > g->oldest_generation)
    printf("; versions below v%llu are dropped by the next commit", (unsigned long long)g->floor);
  printf("\n");
}

static int retention_call(ctl_ctx *x, const Strata__V1__RetentionRequest *q) {
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__RetentionResponse *r = NULL;
  int rc = rpc_admin_retention(ctl_client(x), &co, q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Admin.Retention");
  if (x->json) {
    json_t *o = json_object();
    json_object_set_new(o, "policy", json_string(r->policy));
    if (r->keep_versions) json_object_set_new(o, "keep_versions", ctl_json_u64(r->keep_versions));
    if (r->keep_for_ns) json_object_set_new(o, "keep_for_ns", ctl_json_u64(r->keep_for_ns));
    json_t *hs = json_array();
    for (size_t i = 0; i < r->n_holds; i++)
      json_array_append_new(hs, json_pack("{s:o, s:I, s:s}", "generation", ctl_json_u64(r->holds[i]->generation),
                                          "created_ns", (json_int_t)r->holds[i]->created_ns, "reason",
                                          r->holds[i]->reason));
    json_object_set_new(o, "holds", hs);
    json_object_set_new(o, "retained", range_json(r->retained));
    json_object_set_new(o, "oldest_op_base", ctl_json_u64(r->oldest_op_base));
    json_object_set_new(o, "oldest_watcher", ctl_json_u64(r->oldest_watcher));
    ctl_json_print(o);
  } else {
    char d[32];
    if (r->keep_versions) printf("policy: keep-versions %llu\n", (unsigned long long)r->keep_versions);
    else if (r->keep_for_ns) printf("policy: keep-for %s\n", ctl_dur_str((int64_t)(r->keep_for_ns / 1000000), d, sizeof d));
    else printf("policy: keep-all\n");
    for (size_t i = 0; i < r->n_holds; i++)
      printf("hold: v%llu  %s\n", (unsigned long long)r->holds[i]->generation, r->holds[i]->reason);
    if (r->oldest_op_base) printf("oldest base of an op not SUCCESS: v%llu\n", (unsigned long long)r->oldest_op_base);
    if (r->oldest_watcher) printf("oldest live watcher at: v%llu\n", (unsigned long long)r->oldest_watcher);
    ctl_print_range(r->retained);
  }
  rpc_free(r);
  return CTL_OK;
}

static int parse_gen(const ctl_args *a, const char *s, uint64_t *g) {
  const char *n = s && (s[0] == 'v' || s[0] == 'V') ? s + 1 : s;
  if (!n || ctl_u64_parse(n, 1, UINT64_MAX, g))
    return ctl_usage(a->cmd, "expected a version vN (N >= 1), got \"%s\"", s ? s : "");
  return 0;
}

int ctl_retention_show(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__RetentionRequest q = STRATA__V1__RETENTION_REQUEST__INIT;
  q.action_case = STRATA__V1__RETENTION_REQUEST__ACTION_SHOW;
  q.show = 1;
  return retention_call(x, &q);
}

int ctl_retention_set(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__RetentionRequest q = STRATA__V1__RETENTION_REQUEST__INIT;
  int n = ctl_has(a, "keep-versions") + ctl_has(a, "keep-for") + ctl_has(a, "keep-all");
  if (n != 1) return ctl_usage(a->cmd, "give exactly one of --keep-versions, --keep-for, --keep-all");
  if (ctl_has(a, "keep-versions")) {
    const char *s = ctl_val(a, "keep-versions", 0);
    q.action_case = STRATA__V1__RETENTION_REQUEST__ACTION_KEEP_VERSIONS;
    if (ctl_u64_parse(s, 1, UINT64_MAX, &q.keep_versions))
      return ctl_usage(a->cmd, "--keep-versions: expected a number >= 1, got \"%s\"", s);
  } else if (ctl_has(a, "keep-for")) {
    const char *s = ctl_val(a, "keep-for", 0);
    int64_t ms;
    if (ctl_dur_parse(s, &ms) || ms <= 0)
      return ctl_usage(a->cmd, "--keep-for: expected a duration like 30d or 12h, got \"%s\"", s);
    q.action_case = STRATA__V1__RETENTION_REQUEST__ACTION_KEEP_FOR_NS;
    q.keep_for_ns = (uint64_t)ms * 1000000u;
  } else {
    q.action_case = STRATA__V1__RETENTION_REQUEST__ACTION_KEEP_ALL;
    q.keep_all = 1;
  }
  return retention_call(x, &q);
}

int ctl_retention_hold(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__RetentionRequest q = STRATA__V1__RETENTION_REQUEST__INIT;
  q.action_case = STRATA__V1__RETENTION_REQUEST__ACTION_HOLD;
  int rc = parse_gen(a, a->pos[0], &q.hold);
  if (rc) return rc;
  q.reason = (char *)(ctl_has(a, "reason") ? ctl_val(a, "reason", 0) : "");
  return retention_call(x, &q);
}

int ctl_retention_release(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__RetentionRequest q = STRATA__V1__RETENTION_REQUEST__INIT;
  q.action_case = STRATA__V1__RETENTION_REQUEST__ACTION_RELEASE;
  int rc = parse_gen(a, a->pos[0], &q.release);
  if (rc) return rc;
  return retention_call(x, &q);
}

/* gc --status: GC progress and the retained range from Admin.Stats. */
int ctl_gc_status(ctl_ctx *x) {
  Strata__V1__StatsRequest q = STRATA__V1__STATS_REQUEST__INIT;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__StatsResponse *r = NULL;
  int rc = rpc_admin_stats(ctl_client(x), &co, &q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Admin.Stats");
  const Strata__V1__GcProgress *g = r->gc;
  Strata__V1__GcProgress none = STRATA__V1__GC_PROGRESS__INIT;
  if (!g) g = &none;
  if (x->json) {
    json_t *o = json_object();
    json_object_set_new(o, "runs", ctl_json_u64(g->runs));
    json_object_set_new(o, "files_scanned", ctl_json_u64(g->files_scanned));
    json_object_set_new(o, "bytes_scanned", ctl_json_u64(g->bytes_scanned));
    json_object_set_new(o, "files_removed", ctl_json_u64(g->files_removed));
    json_object_set_new(o, "bytes_removed", ctl_json_u64(g->bytes_removed));
    json_object_set_new(o, "files_waiting", ctl_json_u64(g->files_waiting));
    json_object_set_new(o, "bytes_waiting", ctl_json_u64(g->bytes_waiting));
    json_object_set_new(o, "retained", range_json(r->retained));
    ctl_json_print(o);
  } else {
    printf("GC of Strata's own files since the server started: %llu runs; %llu unreferenced files "
           "found (%llu bytes), %llu removed (%llu bytes); waiting out the grace period: %llu files "
           "(%llu bytes)\n",
           (unsigned long long)g->runs, (unsigned long long)g->files_scanned,
           (unsigned long long)g->bytes_scanned, (unsigned long long)g->files_removed,
           (unsigned long long)g->bytes_removed, (unsigned long long)g->files_waiting,
           (unsigned long long)g->bytes_waiting);
    ctl_print_range(r->retained);
  }
  rpc_free(r);
  return CTL_OK;
}

/* The retained range, for kv versions (NULL when the call fails). */
Strata__V1__StatsResponse *ctl_stats_for_range(ctl_ctx *x) {
  Strata__V1__StatsRequest q = STRATA__V1__STATS_REQUEST__INIT;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__StatsResponse *r = NULL;
  return rpc_admin_stats(ctl_client(x), &co, &q, &r) ? NULL : r;
}

json_t *ctl_range_json(const Strata__V1__RetainedRange *g) { return range_json(g); }

/* --- stats --watch ------------------------------------------------------------------- */

static double per_s(uint64_t a, uint64_t b, double dt) { return dt > 0 && b >= a ? (double)(b - a) / dt : 0; }

/* A compact live view from Admin.Stats (like top): rates from consecutive
 * answers. On a terminal the screen is redrawn; otherwise views are appended.
 * --count N stops after N views (tests, scripts). */
int ctl_stats_watch(ctl_ctx *x, const ctl_args *a) {
  int64_t every_ms = 1000;
  uint64_t count = 0;
  const char *s = ctl_val(a, "interval", 0);
  if (s && (ctl_dur_parse(s, &every_ms) || every_ms < 100))
    return ctl_usage(a->cmd, "--interval: expected a duration of at least 100ms, got \"%s\"", s);
  s = ctl_val(a, "count", 0);
  if (s && ctl_u64_parse(s, 1, UINT64_MAX, &count))
    return ctl_usage(a->cmd, "--count: expected a number >= 1, got \"%s\"", s);
  int tty = isatty(1);
  Strata__V1__StatsResponse *prev = NULL;
  int64_t prev_t = 0;
  for (uint64_t n = 0; !count || n < count; n++) {
    Strata__V1__StatsRequest q = STRATA__V1__STATS_REQUEST__INIT;
    rpc_callopts co = ctl_callopts(x, 0);
    Strata__V1__StatsResponse *r = NULL;
    int rc = rpc_admin_stats(ctl_client(x), &co, &q, &r);
    if (rc) {
      rpc_free(prev);
      return ctl_rpc_fail(x, rc, "Admin.Stats");
    }
    int64_t t = ctl_now_ns();
    double dt = prev ? (double)(t - prev_t) / 1e9 : 0;
    const Strata__V1__StoreStats *st = r->store, *pst = prev ? prev->store : NULL;
    Strata__V1__StoreStats z = STRATA__V1__STORE_STATS__INIT;
    if (!st) st = &z;
    if (!pst) pst = st;
    const Strata__V1__GcProgress *g = r->gc;
    Strata__V1__GcProgress gz = STRATA__V1__GC_PROGRESS__INIT;
    if (!g) g = &gz;
    char up[32];
    if (tty) printf("\033[H\033[2J");
    else if (n) printf("\n");
    printf("strata %s  up %s  latest v%llu", x->addr ? x->addr : "", ctl_dur_str(r->uptime_ns / 1000000, up, sizeof up),
           (unsigned long long)(r->latest ? r->latest->generation : 0));
    if (r->retained)
      printf("  retained v%llu..v%llu", (unsigned long long)r->retained->oldest_generation,
             (unsigned long long)r->retained->latest_generation);
    printf("\n");
    double cps = per_s(pst->commits, st->commits, dt), gps = per_s(pst->commit_groups, st->commit_groups, dt);
    printf("commits/s %8.1f  groups/s %8.1f  mean group %5.1f  written MB/s %7.2f\n", cps, gps,
           gps > 0 ? cps / gps : 0, per_s(pst->bytes_written, st->bytes_written, dt) / 1e6);
    printf("calls/s   %8.1f  failed/s %8.1f  active %llu  locks held %llu\n",
           per_s(prev ? prev->calls_total : r->calls_total, r->calls_total, dt),
           per_s(prev ? prev->calls_failed : r->calls_failed, r->calls_failed, dt),
           (unsigned long long)r->calls_active, (unsigned long long)r->locks_held);
    uint64_t lk = st->cache_hits + st->cache_misses;
    printf("cache hit %7.2f%%  cache MB %8.1f  publish lag ms %.1f%s\n",
           lk ? 100.0 * (double)st->cache_hits / (double)lk : 100.0, (double)st->cache_bytes / 1e6,
           (double)st->last_publish_lag_us / 1000, st->publish_stalled ? "  PUBLISH STALLED" : "");
    printf("gc runs %llu  removed %llu files %.1f MB  waiting %llu files\n", (unsigned long long)g->runs,
           (unsigned long long)g->files_removed, (double)g->bytes_removed / 1e6, (unsigned long long)g->files_waiting);
    fflush(stdout);
    rpc_free(prev);
    prev = r;
    prev_t = t;
    if (count && n + 1 >= count) break;
    struct timespec ts = {every_ms / 1000, (long)(every_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  rpc_free(prev);
  return CTL_OK;
}
