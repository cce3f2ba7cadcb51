/* Writes a seed corpus of valid encodings for every fuzz target into
 * DIR/<target>/, so fuzzing starts from inputs deep inside the format: the
 * codecs' encodings, and for the per-service RPC targets valid requests of
 * every method (first byte: the method's index in the target's list).
 * Usage: seeds DIR */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "rpc/methods.h"
#include "tests/codec_samples.h"

static int put(const char *dir, const char *target, int i, const uint8_t *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, target);
  if (mkdir(path, 0755) && errno != EEXIST) return perror(path), -1;
  snprintf(path, sizeof path, "%s/%s/seed-%d", dir, target, i);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) return perror(path), -1;
  return 0;
}

/* --- the per-service RPC targets: [method index][request bytes] ------------- */

static int put_req(const char *dir, const char *target, int *seed, uint8_t idx,
                   const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *p = malloc(n + 1);
  if (!p) return -1;
  p[0] = idx;
  protobuf_c_message_pack(m, p + 1);
  int rc = put(dir, target, (*seed)++, p, n + 1);
  free(p);
  return rc;
}

#define B(s) ((ProtobufCBinaryData){sizeof(s) - 1, (uint8_t *)(s)})

static int kv_seeds(const char *dir, int *seed) {
  const char *t = "fuzz_svc_kv";
  int rc = 0;
  ProtobufCBinaryData keys[3] = {B("a"), B("b/1"), B("c")};
  Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
  pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
  pin.generation = 1;
  Strata__V1__GetRequest g = STRATA__V1__GET_REQUEST__INIT;
  g.key = keys[0];
  rc |= put_req(dir, t, seed, 0, &g.base);
  g.pin = &pin;
  rc |= put_req(dir, t, seed, 0, &g.base);
  Strata__V1__BatchGetRequest bg = STRATA__V1__BATCH_GET_REQUEST__INIT;
  bg.n_keys = 3;
  bg.keys = keys;
  rc |= put_req(dir, t, seed, 1, &bg.base);
  Strata__V1__ListRequest l = STRATA__V1__LIST_REQUEST__INIT;
  rc |= put_req(dir, t, seed, 2, &l.base);
  l.start = B("a");
  l.end = B("z");
  l.prefix = B("b/");
  l.limit = 10;
  l.keys_only = 1;
  rc |= put_req(dir, t, seed, 2, &l.base);
  Strata__V1__Put p1 = STRATA__V1__PUT__INIT, p2 = STRATA__V1__PUT__INIT, *pp[2] = {&p1, &p2};
  p1.key = B("a");
  p1.value = B("value-a");
  p2.key = B("b/1");
  p2.value = B("value-b");
  Strata__V1__CommitRequest c = STRATA__V1__COMMIT_REQUEST__INIT;
  c.n_puts = 2;
  c.puts = pp;
  rc |= put_req(dir, t, seed, 3, &c.base);
  Strata__V1__Condition k1 = STRATA__V1__CONDITION__INIT, *kp = &k1;
  k1.key = B("c");
  k1.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
  c.n_conditions = 1;
  c.conditions = &kp;
  c.n_deletes = 1;
  c.deletes = &keys[2];
  rc |= put_req(dir, t, seed, 3, &c.base);
  k1.kind = STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE;
  k1.generation = 1;
  Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
  f.op_id = 1;
  f.n_rows = 1;
  f.rows = &keys[0];
  c.fence = &f;
  rc |= put_req(dir, t, seed, 3, &c.base);
  Strata__V1__VersionsRequest v = STRATA__V1__VERSIONS_REQUEST__INIT;
  rc |= put_req(dir, t, seed, 4, &v.base);
  v.start_generation = 1;
  v.end_generation = 3;
  v.descending = 1;
  v.limit = 2;
  rc |= put_req(dir, t, seed, 4, &v.base);
  Strata__V1__WatchRequest w = STRATA__V1__WATCH_REQUEST__INIT;
  rc |= put_req(dir, t, seed, 5, &w.base);
  w.from_generation = 1;
  w.prefix = B("b/");
  rc |= put_req(dir, t, seed, 5, &w.base);
  return rc;
}

static int locks_seeds(const char *dir, int *seed) {
  const char *t = "fuzz_svc_locks";
  int rc = 0;
  ProtobufCBinaryData rows[2] = {B("\x12\x34row-1"), B("\x56\x78row-2")};
  Strata__V1__AcquireRequest a = STRATA__V1__ACQUIRE_REQUEST__INIT;
  a.op_id = 1;
  a.n_rows = 2;
  a.rows = rows;
  a.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  a.ttl_ms = 60000;
  rc |= put_req(dir, t, seed, 0, &a.base);
  a.op_id = 2;
  a.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
  a.ttl_ms = 0;
  a.wait_ms = 5;
  rc |= put_req(dir, t, seed, 0, &a.base);
  Strata__V1__RenewRequest r = STRATA__V1__RENEW_REQUEST__INIT;
  r.op_id = 1;
  r.n_rows = 1;
  r.rows = rows;
  r.ttl_ms = 1000;
  rc |= put_req(dir, t, seed, 1, &r.base);
  Strata__V1__ReleaseRequest rl = STRATA__V1__RELEASE_REQUEST__INIT;
  rl.op_id = 1;
  rl.n_rows = 2;
  rl.rows = rows;
  rc |= put_req(dir, t, seed, 2, &rl.base);
  rl.n_rows = 0;
  rl.all = 1;
  rl.privileged = 1;
  rc |= put_req(dir, t, seed, 2, &rl.base);
  Strata__V1__ListLocksRequest l = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  rc |= put_req(dir, t, seed, 3, &l.base);
  l.op_id = 1;
  l.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  l.prefix = B("\x12");
  rc |= put_req(dir, t, seed, 3, &l.base);
  Strata__V1__CheckRequest c = STRATA__V1__CHECK_REQUEST__INIT;
  c.op_id = 1;
  c.n_rows = 2;
  c.rows = rows;
  rc |= put_req(dir, t, seed, 4, &c.base);
  return rc;
}

static int ops_seeds(const char *dir, int *seed) {
  const char *t = "fuzz_svc_ops";
  int rc = 0;
  Strata__V1__CreateOpRequest c = STRATA__V1__CREATE_OP_REQUEST__INIT;
  c.user = "alice";
  c.kind = "split";
  c.payload = B("{\"sv\": [1, 2]}");
  rc |= put_req(dir, t, seed, 0, &c.base);
  c.user = "z\xc3\xbcrich";
  rc |= put_req(dir, t, seed, 0, &c.base);
  Strata__V1__GetOpRequest g = STRATA__V1__GET_OP_REQUEST__INIT;
  g.op_id = 1;
  rc |= put_req(dir, t, seed, 1, &g.base);
  Strata__V1__SetStatusRequest s = STRATA__V1__SET_STATUS_REQUEST__INIT;
  s.op_id = 1;
  s.status = STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED;
  rc |= put_req(dir, t, seed, 2, &s.base);
  Strata__V1__ListStuckRequest ls = STRATA__V1__LIST_STUCK_REQUEST__INIT;
  rc |= put_req(dir, t, seed, 3, &ls.base);
  Strata__V1__ListOpsRequest l = STRATA__V1__LIST_OPS_REQUEST__INIT;
  rc |= put_req(dir, t, seed, 4, &l.base);
  l.status = STRATA__V1__OP_STATUS__OP_STATUS_CREATED;
  l.newest_first = 1;
  l.limit = 3;
  rc |= put_req(dir, t, seed, 4, &l.base);
  Strata__V1__AllocateIdsRequest a = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
  a.counter = "supervoxel/chunk/0x1f";
  a.count = 100;
  rc |= put_req(dir, t, seed, 5, &a.base);
  return rc;
}

static int coord_seeds(const char *dir, int *seed) {
  const char *t = "fuzz_svc_coord";
  int rc = 0;
  Strata__V1__RegisterWriterRequest r = STRATA__V1__REGISTER_WRITER_REQUEST__INIT;
  r.name = "host-1/4242";
  r.lease_ttl_ms = 60000;
  rc |= put_req(dir, t, seed, 0, &r.base);
  Strata__V1__RenewWriterRequest rn = STRATA__V1__RENEW_WRITER_REQUEST__INIT;
  rn.writer_id = 1;
  rc |= put_req(dir, t, seed, 1, &rn.base);
  Strata__V1__UnregisterWriterRequest u = STRATA__V1__UNREGISTER_WRITER_REQUEST__INIT;
  u.writer_id = 1;
  rc |= put_req(dir, t, seed, 2, &u.base);
  Strata__V1__RegisterFileRequest f = STRATA__V1__REGISTER_FILE_REQUEST__INIT;
  f.writer_id = 1;
  f.path = "d/w00000000000001-chunk-0";
  rc |= put_req(dir, t, seed, 3, &f.base);
  Strata__V1__ListWritersRequest l = STRATA__V1__LIST_WRITERS_REQUEST__INIT;
  l.include_expired = 1;
  rc |= put_req(dir, t, seed, 4, &l.base);
  Strata__V1__DataRef d = STRATA__V1__DATA_REF__INIT;
  d.path = "d/w00000000000001-chunk-0";
  d.length = 64;
  d.has_crc32c = 1;
  d.crc32c = 0x12345678;
  Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
  p.key = B("scale0/0-64_0-64_0-64");
  p.ref = &d;
  Strata__V1__CommitRequest c = STRATA__V1__COMMIT_REQUEST__INIT;
  c.n_puts = 1;
  c.puts = &pp;
  c.writer_id = 1;
  rc |= put_req(dir, t, seed, 5, &c.base);
  return rc;
}

static int small_seeds(const char *dir, int *seed) {
  int rc = 0;
  Strata__V1__StatsRequest st = STRATA__V1__STATS_REQUEST__INIT;
  rc |= put_req(dir, "fuzz_svc_admin", seed, 0, &st.base);
  Strata__V1__GcRequest gq = STRATA__V1__GC_REQUEST__INIT;
  gq.dry_run = 1;
  rc |= put_req(dir, "fuzz_svc_admin", seed, 1, &gq.base);
  Strata__V1__CheckStoreRequest cq = STRATA__V1__CHECK_STORE_REQUEST__INIT;
  rc |= put_req(dir, "fuzz_svc_admin", seed, 2, &cq.base);
  Grpc__Health__V1__HealthCheckRequest h = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  rc |= put_req(dir, "fuzz_svc_health", seed, 0, &h.base);
  h.service = "strata.v1.Kv";
  rc |= put_req(dir, "fuzz_svc_health", seed, 0, &h.base);
  return rc;
}

int main(int argc, char **argv) {
  if (argc != 2) return fprintf(stderr, "usage: seeds DIR\n"), 2;
  const char *dir = argv[1];
  int rc = 0, seed = 0;
  strata_buf b = STRATA_BUF_INIT;
  ocdbt_leaf_entry e[40];
  ocdbt_interior_entry c[12];
  uint8_t kb[40 * 32], vb[40 * 32];
  ocdbt_version v[16];
  ocdbt_vnode_ref r[16];
  for (int z = 0; z < 2; z++) {
    ocdbt_config cfg = sample_config(z);
    ocdbt_btnode node;
    for (size_t n = 1; n <= 40; n *= 6) {
      sample_leaf(&node, e, n, kb, vb, 7);
      b.len = 0;
      rc |= ocdbt_btnode_encode(&cfg, &node, &b) || put(dir, "fuzz_btnode", seed++, b.p, b.len);
    }
    sample_interior(&node, c, 12, kb);
    b.len = 0;
    rc |= ocdbt_btnode_encode(&cfg, &node, &b) || put(dir, "fuzz_btnode", seed++, b.p, b.len);

    sample_versions(v, 5, 33);
    ocdbt_vtnode leaf = {4, 0, {2, sample_files}, 5, v, NULL, NULL};
    b.len = 0;
    rc |= ocdbt_vtnode_encode(&cfg, &leaf, &b) || put(dir, "fuzz_vtnode", seed++, b.p, b.len);
    for (int i = 0; i < 4; i++) r[i] = (ocdbt_vnode_ref){16u * (i + 1), {i % 2, 10u * i, 9}, 16, 5u + i, 0};
    ocdbt_vtnode in = {4, 1, {2, sample_files}, 4, NULL, r, NULL};
    b.len = 0;
    rc |= ocdbt_vtnode_encode(&cfg, &in, &b) || put(dir, "fuzz_vtnode", seed++, b.p, b.len);

    ocdbt_manifest m;
    sample_manifest(&m, v, r, z);
    b.len = 0;
    rc |= ocdbt_manifest_encode(&m, &b) || put(dir, "fuzz_manifest", seed++, b.p, b.len);
    m.config.manifest_kind = OCDBT_MANIFEST_NUMBERED;
    b.len = 0;
    rc |= ocdbt_manifest_encode(&m, &b) || put(dir, "fuzz_manifest", seed++, b.p, b.len);
  }
  /* Bare tables, behind the two-byte transitive length the target reads. */
  uint8_t pre[2] = {0, 5};
  for (size_t n = 0; n <= 3; n++) {
    ocdbt_dft d = {n, sample_files};
    b.len = 0;
    rc |= strata_buf_append(&b, pre, 2) || ocdbt_dft_encode(&d, &b) ||
          put(dir, "fuzz_dft", seed++, b.p, b.len);
  }
  strata_buf_free(&b);
  rc |= kv_seeds(dir, &seed) || locks_seeds(dir, &seed) || ops_seeds(dir, &seed) ||
        coord_seeds(dir, &seed) || small_seeds(dir, &seed);
  if (rc) fprintf(stderr, "seeds: failed\n");
  return rc ? 1 : 0;
}
