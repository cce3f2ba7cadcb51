/*
 * health and stats: the standard grpc.health.v1 Check and Admin.Stats.
 */
#include <string.h>

#include "tools/stratactl/ctl.h"

int ctl_health(ctl_ctx *x, const ctl_args *a) {
  Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  q.service = "";
  rpc_callopts co = ctl_callopts(x, 0);
  Grpc__Health__V1__HealthCheckResponse *r = NULL;
  int rc = rpc_health_check(ctl_client(x), &co, &q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Health.Check");
  const ProtobufCEnumValue *ev =
      protobuf_c_enum_descriptor_get_value(&grpc__health__v1__health_check_response__serving_status__descriptor, r->status);
  const char *status = ev ? ev->name : "UNKNOWN";
  int serving = r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  if (x->json) ctl_json_print(json_pack("{s:s, s:s, s:b}", "addr", x->addr, "status", status, "serving", serving));
  else printf("%s: %s\n", x->addr, status);
  rpc_free(r);
  if (!serving) fprintf(stderr, "stratactl: health: strata-server at %s is not serving\n", x->addr);
  return serving ? CTL_OK : CTL_REFUSED;
}

/* A commit group histogram (Admin.Stats): {"le": [...], "counts": [...]}, or
 * null from a server that does not send it. */
static json_t *group_hist_json(const Strata__V1__GroupHistogram *h) {
  if (!h) return json_null();
  json_t *le = json_array(), *c = json_array();
  for (size_t i = 0; i < h->n_le; i++) json_array_append_new(le, ctl_json_u64(h->le[i]));
  for (size_t i = 0; i < h->n_counts; i++) json_array_append_new(c, ctl_json_u64(h->counts[i]));
  return json_pack("{s:o, s:o}", "le", le, "counts", c);
}

/* The non-empty buckets: "<=1: 5, <=2: 7, >1024: 1". */
static void group_hist_print(const char *label, const Strata__V1__GroupHistogram *h) {
  if (!h || h->n_counts != h->n_le + 1) return;
  printf("%s", label);
  int any = 0;
  for (size_t i = 0; i < h->n_counts; i++) {
    if (!h->counts[i]) continue;
    if (i < h->n_le) printf("%s<=%llu: %llu", any ? ", " : "", (unsigned long long)h->le[i],
                            (unsigned long long)h->counts[i]);
    else printf("%s>%llu: %llu", any ? ", " : "", (unsigned long long)(h->n_le ? h->le[h->n_le - 1] : 0),
                (unsigned long long)h->counts[i]);
    any = 1;
  }
  printf("%s\n", any ? "" : "-");
}

/* The store's counters as a JSON object. */
static json_t *store_json(const Strata__V1__StoreStats *t) {
  json_t *so = json_object();
  json_object_set_new(so, "commits", ctl_json_u64(t->commits));
  json_object_set_new(so, "commit_groups", ctl_json_u64(t->commit_groups));
  json_object_set_new(so, "bytes_written", ctl_json_u64(t->bytes_written));
  json_object_set_new(so, "cache_hits", ctl_json_u64(t->cache_hits));
  json_object_set_new(so, "cache_misses", ctl_json_u64(t->cache_misses));
  json_object_set_new(so, "cache_bytes", ctl_json_u64(t->cache_bytes));
  json_object_set_new(so, "build_ns", ctl_json_u64(t->build_ns));
  json_object_set_new(so, "sync_ns", ctl_json_u64(t->sync_ns));
  json_object_set_new(so, "publish_ns", ctl_json_u64(t->publish_ns));
  json_object_set_new(so, "tree_wait_ns", ctl_json_u64(t->tree_wait_ns));
  json_object_set_new(so, "committed_generation", ctl_json_u64(t->committed_generation));
  json_object_set_new(so, "published_generation", ctl_json_u64(t->published_generation));
  json_object_set_new(so, "last_publish_lag_us", ctl_json_u64(t->last_publish_lag_us));
  json_object_set_new(so, "publish_stalls", ctl_json_u64(t->publish_stalls));
  json_object_set_new(so, "publish_stalled", json_boolean(t->publish_stalled));
  json_object_set_new(so, "publish_error", json_string(t->publish_error));
  json_object_set_new(so, "group_size", group_hist_json(t->group_size));
  json_object_set_new(so, "group_bytes", group_hist_json(t->group_bytes));
  return so;
}

static void stats_json(ctl_ctx *x, const Strata__V1__StatsResponse *r) {
  json_t *o = json_object();
  json_object_set_new(o, "addr", json_string(x->addr));
  json_object_set_new(o, "server_version", json_string(r->server_version ? r->server_version : ""));
  json_object_set_new(o, "uptime_ms", json_integer(r->uptime_ns / 1000000));
  json_object_set_new(o, "latest", r->latest ? ctl_json_version(r->latest->generation,
                                                                r->latest->commit_time_ns)
                                             : json_null());
  json_object_set_new(o, "calls_total", ctl_json_u64(r->calls_total));
  json_object_set_new(o, "calls_active", ctl_json_u64(r->calls_active));
  json_object_set_new(o, "calls_failed", ctl_json_u64(r->calls_failed));
  json_object_set_new(o, "max_message_bytes", ctl_json_u64(r->max_message_bytes));
  json_object_set_new(o, "data_dir", json_string(r->data_dir ? r->data_dir : ""));
  json_object_set_new(o, "locks_held", ctl_json_u64(r->locks_held));
  json_object_set_new(o, "store", r->store ? store_json(r->store) : json_null());
  ctl_json_print(o);
}

/* The store's counters, one line per concern, per commit group where it applies. */
static void store_print(const Strata__V1__StoreStats *t) {
  unsigned long long g = t->commit_groups;
  printf("commits:           %llu in %llu groups (%.1f per group)\n", (unsigned long long)t->commits, g,
         g ? (double)t->commits / (double)g : 0.0);
  group_hist_print("groups by commits: ", t->group_size);
  printf("bytes written:     %llu\n", (unsigned long long)t->bytes_written);
  group_hist_print("groups by bytes:   ", t->group_bytes);
  printf("node cache:        %llu hits, %llu misses, %llu bytes\n", (unsigned long long)t->cache_hits,
         (unsigned long long)t->cache_misses, (unsigned long long)t->cache_bytes);
  printf("commit phases:     build %.0f us, sync %.0f us, after sync %.0f us per group\n",
         g ? (double)t->build_ns / 1e3 / (double)g : 0.0, g ? (double)t->sync_ns / 1e3 / (double)g : 0.0,
         g ? (double)(t->publish_ns + t->tree_wait_ns) / 1e3 / (double)g : 0.0);
  printf("generations:       v%llu committed, v%llu published (%llu behind; last batch %.1f ms)\n",
         (unsigned long long)t->committed_generation, (unsigned long long)t->published_generation,
         (unsigned long long)(t->committed_generation - t->published_generation),
         (double)t->last_publish_lag_us / 1e3);
  if (t->publish_stalled)
    printf("publication:       STALLED, retrying (%llu stalls so far): %s\n",
           (unsigned long long)t->publish_stalls, t->publish_error);
  else if (t->publish_stalls)
    printf("publication:       running (stalled %llu times since start)\n", (unsigned long long)t->publish_stalls);
}

static void stats_print(ctl_ctx *x, const Strata__V1__StatsResponse *r) {
  char up[32], tb[48];
  printf("addr:              %s\n", x->addr);
  printf("server version:    %s\n", r->server_version);
  printf("uptime:            %s\n", ctl_dur_str(r->uptime_ns / 1000000, up, sizeof up));
  if (r->latest)
    printf("latest version:    v%llu (%s)\n", (unsigned long long)r->latest->generation,
           ctl_time_str(r->latest->commit_time_ns, 9, tb, sizeof tb));
  else
    printf("latest version:    - (store not available)\n");
  printf("calls total:       %llu\n", (unsigned long long)r->calls_total);
  printf("calls active:      %llu\n", (unsigned long long)r->calls_active);
  printf("calls failed:      %llu\n", (unsigned long long)r->calls_failed);
  printf("max message bytes: %llu\n", (unsigned long long)r->max_message_bytes);
  printf("data dir:          %s\n", r->data_dir);
  printf("locks held:        %llu\n", (unsigned long long)r->locks_held);
  if (r->store) store_print(r->store);
}

int ctl_stats(ctl_ctx *x, const ctl_args *a) {
  if (ctl_has(a, "watch")) return ctl_stats_watch(x, a);
  Strata__V1__StatsRequest q = STRATA__V1__STATS_REQUEST__INIT;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__StatsResponse *r = NULL;
  int rc = rpc_admin_stats(ctl_client(x), &co, &q, &r);
  if (rc) return ctl_rpc_fail(x, rc, "Admin.Stats");
  if (x->json) stats_json(x, r);
  else stats_print(x, r);
  rpc_free(r);
  return CTL_OK;
}
