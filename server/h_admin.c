/* strata.v1.Admin: server statistics. Runs on the io pool: counting the locks
 * scans the lock table (0.4 s for a million locks), which must not hold a
 * gRPC poller. */
#include <time.h>

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
  ss.committed_generation = sst.committed_generation;
  ss.published_generation = sst.published_generation;
  ss.publish_stalls = sst.publish_stalls;
  ss.publish_stalled = sst.publish_stalled != 0;
  ss.publish_error = sst.publish_error;
  uint64_t lag = 0;
  if (st_publish_lags(s->db, &lag, 1) == 1) ss.last_publish_lag_us = lag / 1000;
  resp.store = &ss;
  lk_counts lc;
  lk_list_filter all = {0};
  if (lk_count(s->lk, &all, &lc) == 0) resp.locks_held = lc.temporal + lc.indefinite;
  rpc_call_reply(call, &resp.base);
}

void srv__admin_bind(srv *s, rpc_handler *h) {
  srv__bind_io(s, h, RPC_M_admin_stats, stats);
}
