/* strata.v1.Admin: server statistics, GC (gc.c) and the store check. All run
 * on the io pool: counting the locks scans the lock table (0.4 s for a
 * million locks), GC and the check walk every version; none may hold a gRPC
 * poller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/version.h"
#include "server/srv_int.h"

static void stats(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m;
  srv *s = ctx;
  rpc_server_stats st;
  rpc_server_get_stats(rpc_call_server(call), &st);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  Strata__V1__StatsResponse resp = STRATA__V1__STATS_RESPONSE__INIT;
  resp.server_version = (char *)strata_version_line();
  resp.uptime_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - st.started_ns;
  resp.calls_total = st.calls_total;
  resp.calls_active = st.calls_active;
  resp.calls_failed = st.calls_failed;
  resp.max_message_bytes = rpc_server_max_message_bytes(rpc_call_server(call));
  resp.data_dir = s->data_dir;
  Strata__V1__Version v = STRATA__V1__VERSION__INIT;
  st_snap *sn;
  if (st_snap_latest(s->db, &sn) == 0) {
    st_version_info vi = st_snap_info(sn);
    v.generation = vi.generation;
    v.commit_time_ns = (int64_t)vi.commit_time;
    resp.latest = &v;
    st_snap_release(sn);
  }
  Strata__V1__StoreStats ss = STRATA__V1__STORE_STATS__INIT;
  st_stats sst;
  st_get_stats(s->db, &sst);
  ss.commits = sst.commits;
  ss.commit_groups = sst.groups;
  ss.bytes_written = sst.bytes_written;
  ss.cache_hits = sst.cache_hits;
  ss.cache_misses = sst.cache_misses;
  ss.cache_bytes = sst.cache_bytes;
  ss.build_ns = sst.ns_build;
  ss.sync_ns = sst.ns_sync;
  ss.publish_ns = sst.ns_publish;
  ss.tree_wait_ns = sst.ns_tree_wait;
  ss.committed_generation = sst.committed_generation;
  ss.published_generation = sst.published_generation;
  ss.publish_stalls = sst.publish_stalls;
  ss.publish_stalled = sst.publish_stalled != 0;
  ss.publish_error = sst.publish_error;
  uint64_t lag = 0;
  if (st_publish_lags(s->db, &lag, 1) == 1) ss.last_publish_lag_us = lag / 1000;
  Strata__V1__GroupHistogram gs = STRATA__V1__GROUP_HISTOGRAM__INIT, gb = STRATA__V1__GROUP_HISTOGRAM__INIT;
  gs.n_le = gb.n_le = ST_GROUP_BUCKETS;
  gs.le = (uint64_t *)st_group_size_le;
  gb.le = (uint64_t *)st_group_bytes_le;
  gs.n_counts = gb.n_counts = ST_GROUP_BUCKETS + 1;
  gs.counts = sst.group_size;
  gb.counts = sst.group_bytes;
  ss.group_size = &gs;
  ss.group_bytes = &gb;
  resp.store = &ss;
  Strata__V1__GcProgress gp = STRATA__V1__GC_PROGRESS__INIT;
  st_gc_own_totals gt;
  st_gc_own_totals_get(s->db, &gt);
  gp.runs = gt.runs;
  gp.files_scanned = gt.files_scanned;
  gp.bytes_scanned = gt.bytes_scanned;
  gp.files_removed = gt.files_removed;
  gp.bytes_removed = gt.bytes_removed;
  gp.files_waiting = gt.files_waiting;
  gp.bytes_waiting = gt.bytes_waiting;
  resp.gc = &gp;
  Strata__V1__RetainedRange rg = STRATA__V1__RETAINED_RANGE__INIT;
  srv__retained_range(s, &rg);
  resp.retained = &rg;
  lk_counts lc;
  lk_list_filter all = {0};
  if (lk_count(s->lk, &all, &lc) == 0) resp.locks_held = lc.temporal + lc.indefinite;
  rpc_call_reply(call, &resp.base);
}

static void gc(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__GcRequest *r = (const void *)m;
  srv_gc_report g;
  int rc = srv__gc_run(s, r->dry_run, &g);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__GcResponse resp = STRATA__V1__GC_RESPONSE__INIT;
  resp.files_removed = g.files_removed;
  resp.bytes_removed = g.bytes_removed;
  resp.own_files_removed = g.own.files_removed;
  resp.own_bytes_removed = g.own.bytes_removed;
  resp.own_files_waiting = g.own.files_waiting;
  resp.n_paths = g.npaths;
  resp.paths = g.paths;
  resp.files_kept = g.files_kept;
  resp.writers_collected = g.writers_collected;
  resp.writers_deferred = g.writers_deferred;
  resp.versions_walked = g.versions_walked;
  rpc_call_reply(call, &resp.base);
  srv__gc_report_free(&g);
}

/* The unreferenced files of d/ (not Strata's own, no version references
 * them) into resp; *paths holds the first ST_CHECK_LIST_MAX (freed by the
 * caller). */
static int unreferenced(srv *s, const st_fileset *refs, char **names, size_t n,
                        Strata__V1__CheckStoreResponse *resp, char ***paths) {
  int rc = 0;
  *paths = calloc(ST_CHECK_LIST_MAX, sizeof **paths);
  if (!*paths) return strata_err(STRATA_ENOMEM, "check");
  for (size_t i = 0; i < n; i++) {
    size_t pl = strlen(names[i]) + 3;
    char *p = malloc(pl);
    if (!p) {
      rc = strata_err(STRATA_ENOMEM, "check");
      break;
    }
    snprintf(p, pl, "d/%s", names[i]);
    uint64_t size = 0, id;
    int live = 0;
    if (st_fileset_has(refs, p) || st_file_size(s->db, p, &size) == STRATA_ENOTFOUND) {
      free(p);
      strata_err_clear();
      continue; /* referenced, or removed since the listing */
    }
    resp->unreferenced_files++;
    resp->unreferenced_bytes += size;
    if (wreg_parse_name(names[i], &id) && wreg_known(s->wr, id, &live) && live)
      resp->unreferenced_live_writer_files++;
    if (resp->n_unreferenced_paths < ST_CHECK_LIST_MAX)
      (*paths)[resp->n_unreferenced_paths++] = p;
    else
      free(p);
  }
  resp->unreferenced_paths = *paths;
  return rc;
}

static void check(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)m;
  srv *s = ctx;
  st_fileset *refs = NULL;
  st_check_result res;
  char **paths = NULL, **names = NULL;
  size_t n = 0;
  Strata__V1__CheckStoreResponse resp = STRATA__V1__CHECK_STORE_RESPONSE__INIT;
  /* d/ is listed before the walk: a file a writer creates after the listing
   * is not looked at, and one listed and then committed before the walk
   * starts is in the walk. */
  int rc = st_foreign_files(s->db, &names, &n);
  if (!rc) rc = st_walk(s->db, 1, &refs, &res);
  if (rc) {
    free(names);
    srv__fail(call, rc);
    return;
  }
  if ((rc = unreferenced(s, refs, names, n, &resp, &paths))) goto out;
  resp.versions_checked = res.versions;
  resp.nodes_checked = res.nodes;
  resp.values_checked = res.values;
  resp.bytes_checked = res.bytes;
  resp.errors_total = res.nerrors;
  resp.n_errors = res.n_errors;
  resp.errors = res.errors;
  resp.missing_files = res.nmissing;
  resp.n_missing_paths = res.n_missing;
  resp.missing_paths = res.missing;
  rpc_call_reply(call, &resp.base);
out:
  if (rc) srv__fail(call, rc);
  for (size_t i = 0; i < resp.n_unreferenced_paths; i++) free(paths[i]);
  free(paths);
  free(names);
  st_check_result_free(&res);
  st_fileset_free(refs);
}

void srv__admin_bind(srv *s, rpc_handler *h) {
  /* All on the io pool (the file's comment); Admin.Retention is retain.c's. */
  static const srv_route routes[] = {
      {RPC_M_admin_stats, NULL, stats, SRV_IO},
      {RPC_M_admin_gc, NULL, gc, SRV_IO},
      {RPC_M_admin_retention, NULL, srv__retention_handler, SRV_IO},
      {RPC_M_admin_check, NULL, check, SRV_IO},
  };
  srv__bind(s, h, routes, sizeof routes / sizeof routes[0]);
}
