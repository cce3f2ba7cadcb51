/*
 * stratactl downsample status: each strata-downsample worker's checkpoint of a
 * volume against the latest generation (issue 14). The keys and their reading are
 * tools/downsample/status.c's (ds_status), the worker's own code.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <jansson.h>

#include "tools/downsample/ds.h"
#include "tools/stratactl/ctl.h"

/* Commit time of generation g (ns), 0 when unknown. */
static int64_t commit_time(rpc_client *c, uint64_t g) {
  Strata__V1__VersionsRequest q = STRATA__V1__VERSIONS_REQUEST__INIT;
  q.start_generation = g;
  q.end_generation = g;
  q.limit = 1;
  rpc_cstream *st = NULL;
  int64_t t = 0;
  if (rpc_kv_versions(c, NULL, &q, &st)) return 0;
  Strata__V1__VersionsResponse *m = NULL;
  while (rpc_kv_versions_next(st, &m) == 1) {
    if (m->n_versions && !t) t = m->versions[0]->commit_time_ns;
    rpc_free(m);
  }
  rpc_cstream_close(st);
  return t;
}

int ctl_downsample_status(ctl_ctx *x, const ctl_args *a) {
  const char *prefix = ctl_val(a, "prefix", 0);
  if (!prefix || !*prefix) return ctl_usage(a->cmd, "--prefix PREFIX is required (the volume's key prefix)");
  rpc_client *c = ctl_client(x);
  uint64_t latest = 0;
  ds_ckpt *ck = NULL;
  size_t n = 0;
  char err[1024];
  int rc = ds_status(c, prefix, &latest, &ck, &n, err, sizeof err);
  if (rc) return ctl_rpc_fail(x, rc, "downsample status");
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t now = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
  json_t *arr = json_array();
  if (!x->json) printf("%-20s %12s %12s %10s %10s\n", "WORKER", "CHECKPOINT", "LATEST", "BEHIND", "LAG_MS");
  for (size_t i = 0; i < n; i++) {
    uint64_t behind = latest > ck[i].generation ? latest - ck[i].generation : 0;
    /* how long the oldest generation after the checkpoint has been waiting */
    int64_t t = behind ? commit_time(c, ck[i].generation + 1) : 0;
    int64_t lag_ms = t && now > t ? (now - t) / 1000000 : 0;
    if (x->json)
      json_array_append_new(arr, json_pack("{s:s, s:o, s:o, s:o, s:I}", "worker", ck[i].name, "checkpoint",
                                           ctl_json_u64(ck[i].generation), "latest", ctl_json_u64(latest),
                                           "behind", ctl_json_u64(behind), "lag_ms", (json_int_t)lag_ms));
    else
      printf("%-20s %12" PRIu64 " %12" PRIu64 " %10" PRIu64 " %10" PRId64 "\n", ck[i].name, ck[i].generation,
             latest, behind, lag_ms);
  }
  if (x->json) ctl_json_print(json_pack("{s:s, s:o, s:o}", "prefix", prefix, "latest", ctl_json_u64(latest),
                                        "workers", arr));
  else {
    json_decref(arr);
    if (!n) printf("no downsample checkpoint under %s" DS_DIR "checkpoint/ (latest generation %" PRIu64 ")\n",
                   prefix, latest);
  }
  free(ck);
  return CTL_OK;
}
