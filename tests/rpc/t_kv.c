/*
 * Kv over the wire against the real store engine: commits and reads at pins,
 * BatchGet, List ranges and paging, Versions, conditions and lock fences
 * refused with FAILED_PRECONDITION naming the culprit, Ops.Create's start
 * generation, and concurrent committers (Watch: t_watch.c). Tests share one store per group, so each uses its own
 * key prefix and generations relative to what it committed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"
#include "test_rpc_server.h"

int t_commit(const char *const *kvs, const char *const *dels, uint64_t *gen) {
  Strata__V1__Put p[16], *pp[16];
  ProtobufCBinaryData d[16];
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  for (size_t i = 0; kvs && kvs[2 * i]; i++) {
    strata__v1__put__init(&p[i]);
    p[i].key = t_bytes(kvs[2 * i]);
    p[i].value = t_bytes(kvs[2 * i + 1]);
    pp[i] = &p[i];
    q.n_puts++;
  }
  for (size_t i = 0; dels && dels[i]; i++) d[q.n_deletes++] = t_bytes(dels[i]);
  q.puts = pp;
  q.deletes = d;
  Strata__V1__CommitResponse *r;
  int rc = rpc_kv_commit(C, NULL, &q, &r);
  if (!rc) {
    if (gen) *gen = r->version->generation;
    rpc_free(r);
  } else {
    fprintf(stderr, "commit failed: %s: %s\n", strata_errname(rc), strata_errmsg());
  }
  return rc;
}

static int get_at(const char *key, uint64_t gen, char *out, size_t n) {
  Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  q.key = t_bytes(key);
  if (gen) {
    pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
    pin.generation = gen;
    q.pin = &pin;
  }
  Strata__V1__GetResponse *r;
  int rc = rpc_kv_get(C, NULL, &q, &r);
  if (rc) return rc;
  if (!r->found) {
    rpc_free(r);
    return STRATA_ENOTFOUND;
  }
  snprintf(out, n, "%.*s", (int)r->value.len, (const char *)r->value.data);
  rpc_free(r);
  return 0;
}

void test_kv_commit_get_pins_batch_get(void **state) {
  (void)state;
  uint64_t g1, g2;
  const char *a[] = {"kv1/a", "one", "kv1/b", "bee", NULL};
  assert_int_equal(t_commit(a, NULL, &g1), 0);
  const char *b[] = {"kv1/a", "two", NULL}, *del[] = {"kv1/b", NULL};
  assert_int_equal(t_commit(b, del, &g2), 0);
  assert_true(g2 > g1);
  char v[64];
  assert_int_equal(get_at("kv1/a", 0, v, sizeof v), 0);
  assert_string_equal(v, "two");
  assert_int_equal(get_at("kv1/a", g1, v, sizeof v), 0);
  assert_string_equal(v, "one");
  assert_int_equal(get_at("kv1/b", 0, v, sizeof v), STRATA_ENOTFOUND);
  assert_int_equal(get_at("kv1/b", g1, v, sizeof v), 0);
  /* Pins past the end or before the beginning name the field. */
  t_expect_err(get_at("kv1/a", g2 + 1000, v, sizeof v), STRATA_ERANGE, "pin.generation");
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_OUT_OF_RANGE);
  Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
  pin.pin_case = STRATA__V1__VERSION_PIN__PIN_COMMIT_TIME_NS;
  pin.commit_time_ns = 1;
  Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
  gq.key = t_bytes("kv1/a");
  gq.pin = &pin;
  Strata__V1__GetResponse *gr;
  t_expect_err(rpc_kv_get(C, NULL, &gq, &gr), STRATA_ENOTFOUND, "pin.commit_time_ns");
  /* A commit-time pin reads the version current at that time. */
  gq.pin = NULL;
  assert_int_equal(rpc_kv_get(C, NULL, &gq, &gr), 0);
  pin.commit_time_ns = gr->version->commit_time_ns - 1; /* just before g2 */
  rpc_free(gr);
  gq.pin = &pin;
  assert_int_equal(rpc_kv_get(C, NULL, &gq, &gr), 0);
  assert_int_equal(gr->version->generation, g2 - 1);
  rpc_free(gr);
  /* BatchGet: one snapshot, request order, found flags. */
  ProtobufCBinaryData keys[3] = {t_bytes("kv1/b"), t_bytes("kv1/a"), t_bytes("kv1/zz")};
  Strata__V1__BatchGetRequest bq = STRATA__V1__BATCH_GET_REQUEST__INIT;
  bq.n_keys = 3;
  bq.keys = keys;
  Strata__V1__VersionPin p1 = STRATA__V1__VERSION_PIN__INIT;
  p1.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
  p1.generation = g1;
  bq.pin = &p1;
  Strata__V1__BatchGetResponse *br;
  assert_int_equal(rpc_kv_batch_get(C, NULL, &bq, &br), 0);
  assert_int_equal(br->n_entries, 3);
  assert_true(br->entries[0]->found && br->entries[1]->found && !br->entries[2]->found);
  assert_memory_equal(br->entries[1]->value.data, "one", 3);
  assert_int_equal(br->version->generation, g1);
  rpc_free(br);
}

/* rpc_kv_batch_get_each against rpc_kv_batch_get: a response of ~6 MiB (more than
 * gRPC's default 4 MiB message whatever the seed: 8 values of 256 KiB and 16 of
 * 150-300 KiB, so it arrives in many slices and values straddle them) with empty, tiny and 256 KiB-plus values, a missing key and a duplicate,
 * in a shuffled order: every entry exactly once, in request order, byte-equal;
 * a callback's non-zero result stops the walk and is returned. */
#define BE_N 40
typedef struct be_seen {
  size_t calls, stop_at;
  int found[BE_N + 2];
  uint8_t *val[BE_N + 2];
  size_t len[BE_N + 2];
} be_seen;

static int be_take(void *ctx, size_t i, int found, const uint8_t *v, size_t len) {
  be_seen *s = ctx;
  assert_int_equal(i, s->calls); /* in order, each once */
  s->calls++;
  s->found[i] = found;
  s->len[i] = len;
  s->val[i] = malloc(len ? len : 1);
  assert_non_null(s->val[i]);
  if (len) memcpy(s->val[i], v, len);
  return s->stop_at && s->calls == s->stop_at ? 7 : 0;
}

void test_kv_batch_get_each_matches_batch_get(void **state) {
  (void)state;
  unsigned seed = getenv("STRATA_SEED") ? (unsigned)strtoul(getenv("STRATA_SEED"), NULL, 10)
                                        : (unsigned)time(NULL);
  fprintf(stderr, "STRATA_SEED=%u\n", seed);
  srand(seed);
  static char names[BE_N + 1][24];
  Strata__V1__Put p[BE_N], *pp[BE_N];
  uint8_t *vals[BE_N];
  for (int i = 0; i < BE_N; i++) {
    size_t n = i % 5 == 0 ? 0 : i % 5 == 1 ? 1 + (size_t)rand() % 100
                          : i % 5 == 2 ? ((size_t)256 << 10) + (size_t)rand() % 1000
                                       : ((size_t)150 << 10) + (size_t)rand() % (150 << 10);
    vals[i] = malloc(n ? n : 1);
    assert_non_null(vals[i]);
    for (size_t k = 0; k < n; k++) vals[i][k] = (uint8_t)rand();
    snprintf(names[i], sizeof names[i], "kvbe/%03d", i);
    strata__v1__put__init(&p[i]);
    p[i].key = t_bytes(names[i]);
    p[i].value = (ProtobufCBinaryData){n, vals[i]};
    pp[i] = &p[i];
  }
  snprintf(names[BE_N], sizeof names[BE_N], "kvbe/missing");
  Strata__V1__CommitRequest cq = STRATA__V1__COMMIT_REQUEST__INIT;
  cq.puts = pp;
  cq.n_puts = BE_N;
  Strata__V1__CommitResponse *cr;
  assert_int_equal(rpc_kv_commit(C, NULL, &cq, &cr), 0);
  uint64_t g = cr->version->generation;
  rpc_free(cr);
  /* every key shuffled, then the missing one and a duplicate */
  ProtobufCBinaryData keys[BE_N + 2];
  for (int i = 0; i < BE_N; i++) keys[i] = t_bytes(names[i]);
  for (int i = BE_N - 1; i > 0; i--) {
    int j = rand() % (i + 1);
    ProtobufCBinaryData t = keys[i];
    keys[i] = keys[j];
    keys[j] = t;
  }
  keys[BE_N] = t_bytes(names[BE_N]);
  keys[BE_N + 1] = keys[0];
  Strata__V1__BatchGetRequest q = STRATA__V1__BATCH_GET_REQUEST__INIT;
  q.keys = keys;
  q.n_keys = BE_N + 2;
  Strata__V1__BatchGetResponse *r;
  assert_int_equal(rpc_kv_batch_get(C, NULL, &q, &r), 0);
  be_seen *s = calloc(1, sizeof *s);
  assert_non_null(s);
  uint64_t at = 0;
  assert_int_equal(rpc_kv_batch_get_each(C, NULL, &q, be_take, s, &at), 0);
  assert_int_equal(s->calls, BE_N + 2);
  assert_int_equal(at, r->version->generation);
  assert_true(at >= g);
  size_t total = 0;
  for (size_t i = 0; i < BE_N + 2; i++) {
    assert_int_equal(s->found[i], r->entries[i]->found);
    assert_int_equal(s->len[i], r->entries[i]->value.len);
    if (s->len[i]) assert_memory_equal(s->val[i], r->entries[i]->value.data, s->len[i]);
    int k = atoi((const char *)keys[i].data + 5); /* the value committed */
    if (i < BE_N + 1 && keys[i].len == 8) {
      assert_true(s->found[i]);
      assert_int_equal(s->len[i], p[k].value.len);
      if (s->len[i]) assert_memory_equal(s->val[i], vals[k], s->len[i]);
    }
    total += s->len[i];
    free(s->val[i]);
  }
  assert_false(s->found[BE_N]);
  assert_true(total > ((size_t)4 << 20));
  rpc_free(r);
  /* the callback stops the walk */
  memset(s, 0, sizeof *s);
  s->stop_at = 3;
  assert_int_equal(rpc_kv_batch_get_each(C, NULL, &q, be_take, s, NULL), 7);
  assert_int_equal(s->calls, 3);
  for (size_t i = 0; i < 3; i++) free(s->val[i]);
  free(s);
  for (int i = 0; i < BE_N; i++) free(vals[i]);
}

static size_t list_keys(const char *prefix, const char *start, const char *end, uint64_t limit,
                        int keys_only, char (*out)[32], size_t max, int *msgs) {
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  q.prefix = t_bytes(prefix);
  if (start) q.start = t_bytes(start);
  if (end) q.end = t_bytes(end);
  q.limit = limit;
  q.keys_only = keys_only;
  rpc_cstream *st;
  assert_int_equal(rpc_kv_list(C, NULL, &q, &st), 0);
  Strata__V1__ListResponse *m;
  size_t n = 0;
  int rc;
  *msgs = 0;
  while ((rc = rpc_kv_list_next(st, &m)) == 1) {
    (*msgs)++;
    for (size_t i = 0; i < m->n_entries; i++, n++) {
      if (n < max)
        snprintf(out[n], 32, "%.*s", (int)m->entries[i]->key.len, (char *)m->entries[i]->key.data);
      if (keys_only) assert_int_equal(m->entries[i]->value.len, 0);
    }
    rpc_free(m);
  }
  assert_int_equal(rc, 0);
  rpc_cstream_close(st);
  return n;
}

void test_kv_list_ranges_limits_and_paging(void **state) {
  (void)state;
  /* 2500 keys in 25 commits of 100 (BatchGet-size requests). */
  char kbuf[100][24], vbuf[100][16];
  for (int c = 0; c < 25; c++) {
    Strata__V1__Put p[100], *pp[100];
    for (int i = 0; i < 100; i++) {
      snprintf(kbuf[i], sizeof kbuf[i], "ls/%05d", c * 100 + i);
      snprintf(vbuf[i], sizeof vbuf[i], "v%d", i);
      strata__v1__put__init(&p[i]);
      p[i].key = t_bytes(kbuf[i]);
      p[i].value = t_bytes(vbuf[i]);
      pp[i] = &p[i];
    }
    Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
    q.n_puts = 100;
    q.puts = pp;
    Strata__V1__CommitResponse *r;
    int rc = rpc_kv_commit(C, NULL, &q, &r);
    if (rc) fail_msg("commit %d: %s: %s", c, strata_errname(rc), strata_errmsg());
    rpc_free(r);
  }
  static char keys[3000][32];
  int msgs;
  size_t n = list_keys("ls/", NULL, NULL, 0, 0, keys, 3000, &msgs);
  assert_int_equal(n, 2500);
  assert_true(msgs >= 3); /* paged: at most 1000 per message */
  for (size_t i = 1; i < n; i++) assert_true(strcmp(keys[i - 1], keys[i]) < 0);
  n = list_keys("ls/", "ls/00100", "ls/00110", 0, 1, keys, 3000, &msgs);
  assert_int_equal(n, 10);
  assert_string_equal(keys[0], "ls/00100");
  assert_string_equal(keys[9], "ls/00109");
  n = list_keys("ls/", "ls/02495", NULL, 3, 0, keys, 3000, &msgs);
  assert_int_equal(n, 3);
  n = list_keys("ls/zz", NULL, NULL, 0, 0, keys, 3000, &msgs);
  assert_int_equal(n, 0);
  /* Nothing matches, yet one message comes: it carries the version listed. */
  assert_int_equal(msgs, 1);
}

void test_kv_versions(void **state) {
  (void)state;
  uint64_t g;
  const char *a[] = {"ver/x", "1", NULL};
  assert_int_equal(t_commit(a, NULL, &g), 0);
  Strata__V1__VersionsRequest q = STRATA__V1__VERSIONS_REQUEST__INIT;
  rpc_cstream *st;
  Strata__V1__VersionsResponse *m;
  int rc;
  uint64_t prev = 0, count = 0;
  int64_t prev_t = 0;
  assert_int_equal(rpc_kv_versions(C, NULL, &q, &st), 0);
  while ((rc = rpc_kv_versions_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_versions; i++, count++) {
      assert_int_equal(m->versions[i]->generation, prev + 1);
      assert_true(m->versions[i]->commit_time_ns > prev_t);
      prev = m->versions[i]->generation;
      prev_t = m->versions[i]->commit_time_ns;
    }
    rpc_free(m);
  }
  assert_int_equal(rc, 0);
  rpc_cstream_close(st);
  assert_int_equal(prev, g);
  assert_int_equal(count, g);
  q.descending = 1;
  q.limit = 2;
  assert_int_equal(rpc_kv_versions(C, NULL, &q, &st), 0);
  assert_int_equal(rpc_kv_versions_next(st, &m), 1);
  assert_int_equal(m->n_versions, 2);
  assert_int_equal(m->versions[0]->generation, g);
  assert_int_equal(m->versions[1]->generation, g - 1);
  rpc_free(m);
  assert_int_equal(rpc_kv_versions_next(st, &m), 0);
  rpc_cstream_close(st);
}

void test_kv_conditions_fail_naming_the_condition(void **state) {
  (void)state;
  uint64_t g1, g2;
  const char *a[] = {"cond/k", "v1", NULL};
  assert_int_equal(t_commit(a, NULL, &g1), 0);
  Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
  p.key = t_bytes("cond/k");
  p.value = t_bytes("v2");
  Strata__V1__Condition c0 = STRATA__V1__CONDITION__INIT, c1 = STRATA__V1__CONDITION__INIT;
  Strata__V1__Condition *cs[2] = {&c0, &c1};
  c0.key = t_bytes("cond/other");
  c0.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
  c1.key = t_bytes("cond/k");
  c1.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = &pp;
  q.n_conditions = 2;
  q.conditions = cs;
  Strata__V1__CommitResponse *r;
  t_expect_err(rpc_kv_commit(C, NULL, &q, &r), STRATA_ECONDITION, NULL);
  assert_string_equal(strata_errmsg(), "FAILED_PRECONDITION: conditions[1]: condition 'absent' "
                                       "failed on key \"cond/k\": the key exists");
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_FAILED_PRECONDITION);
  /* Unchanged since g1 holds; the hash of "v1" holds. */
  uint8_t h[ST_HASH_BYTES];
  st_value_hash("v1", 2, h);
  c1.kind = STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE;
  c1.generation = g1;
  c0.key = t_bytes("cond/k");
  c0.kind = STRATA__V1__CONDITION__KIND__KIND_VALUE_HASH;
  c0.value_hash = (ProtobufCBinaryData){ST_HASH_BYTES, h};
  assert_int_equal(rpc_kv_commit(C, NULL, &q, &r), 0);
  g2 = r->version->generation;
  rpc_free(r);
  assert_true(g2 > g1);
  /* Now both are stale. */
  t_expect_err(rpc_kv_commit(C, NULL, &q, &r), STRATA_ECONDITION, "conditions[");
  char v[16];
  assert_int_equal(get_at("cond/k", 0, v, sizeof v), 0);
  assert_string_equal(v, "v2");
}

void test_kv_fenced_commit(void **state) {
  (void)state;
  ProtobufCBinaryData row = t_bytes("fence/row");
  Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
  aq.op_id = 501;
  aq.n_rows = 1;
  aq.rows = &row;
  aq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  aq.ttl_ms = 30000;
  Strata__V1__AcquireResponse *ar;
  assert_int_equal(rpc_locks_acquire(C, NULL, &aq, &ar), 0);
  assert_true(ar->acquired);
  rpc_free(ar);
  Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
  p.key = t_bytes("fence/k");
  p.value = t_bytes("x");
  Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
  f.op_id = 501;
  f.n_rows = 1;
  f.rows = &row;
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = &pp;
  q.fence = &f;
  Strata__V1__CommitResponse *r;
  assert_int_equal(rpc_kv_commit(C, NULL, &q, &r), 0);
  rpc_free(r);
  /* The lock is gone: the same fenced commit is refused naming the row. */
  Strata__V1__ReleaseRequest rq = STRATA__V1__RELEASE_REQUEST__INIT;
  rq.op_id = 501;
  rq.all = 1;
  Strata__V1__ReleaseResponse *rr;
  assert_int_equal(rpc_locks_release(C, NULL, &rq, &rr), 0);
  rpc_free(rr);
  t_expect_err(rpc_kv_commit(C, NULL, &q, &r), STRATA_EFENCED, "no longer holds row");
  assert_non_null(strstr(strata_errmsg(), "fence/row"));
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_FAILED_PRECONDITION);
  /* Another op took the row: the refusal names the row and its holder. */
  aq.op_id = 502;
  assert_int_equal(rpc_locks_acquire(C, NULL, &aq, &ar), 0);
  assert_true(ar->acquired);
  rpc_free(ar);
  t_expect_err(rpc_kv_commit(C, NULL, &q, &r), STRATA_EFENCED,
               "op 501 no longer holds row \"fence/row\"; op 502 holds it");
  rq.op_id = 502;
  assert_int_equal(rpc_locks_release(C, NULL, &rq, &rr), 0);
  rpc_free(rr);
}

void test_ops_create_records_start_generation(void **state) {
  (void)state;
  uint64_t g;
  const char *a[] = {"op/k", "before", NULL};
  assert_int_equal(t_commit(a, NULL, &g), 0);
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = "alice";
  cq.kind = "split";
  cq.payload = t_bytes("{}");
  Strata__V1__CreateOpResponse *cr;
  assert_int_equal(rpc_ops_create(C, NULL, &cq, &cr), 0);
  uint64_t id = cr->op->op_id, start = cr->op->start_generation;
  assert_int_equal(start, g);
  assert_int_equal(cr->op->status, STRATA__V1__OP_STATUS__OP_STATUS_CREATED);
  rpc_free(cr);
  const char *b[] = {"op/k", "after", NULL};
  assert_int_equal(t_commit(b, NULL, NULL), 0);
  char v[16];
  assert_int_equal(get_at("op/k", start, v, sizeof v), 0); /* the state before the op */
  assert_string_equal(v, "before");
  Strata__V1__SetStatusRequest sq = STRATA__V1__SET_STATUS_REQUEST__INIT;
  sq.op_id = id;
  sq.status = STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED;
  Strata__V1__SetStatusResponse *sr;
  assert_int_equal(rpc_ops_set_status(C, NULL, &sq, &sr), 0);
  assert_int_equal(sr->op->status, STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED);
  rpc_free(sr);
  Strata__V1__GetOpRequest gq = STRATA__V1__GET_OP_REQUEST__INIT;
  gq.op_id = id;
  Strata__V1__GetOpResponse *gr;
  assert_int_equal(rpc_ops_get(C, NULL, &gq, &gr), 0);
  assert_string_equal(gr->op->user, "alice");
  assert_memory_equal(gr->op->payload.data, "{}", 2);
  rpc_free(gr);
}

#define NCOMMITTERS 16
#define PER_COMMITTER 20
static void *committer(void *arg) {
  long t = (long)arg;
  long ok = 0;
  for (int i = 0; i < PER_COMMITTER; i++) {
    char k[32], v[32];
    snprintf(k, sizeof k, "cc/%02ld/%03d", t, i);
    snprintf(v, sizeof v, "%ld-%d", t, i);
    const char *kv[] = {k, v, NULL};
    if (t_commit(kv, NULL, NULL) == 0) ok++;
  }
  return (void *)ok;
}

void test_kv_concurrent_committers(void **state) {
  (void)state;
  pthread_t th[NCOMMITTERS];
  for (long i = 0; i < NCOMMITTERS; i++) pthread_create(&th[i], NULL, committer, (void *)i);
  long ok = 0;
  for (int i = 0; i < NCOMMITTERS; i++) {
    void *r;
    pthread_join(th[i], &r);
    ok += (long)r;
  }
  assert_int_equal(ok, NCOMMITTERS * PER_COMMITTER);
  static char keys[400][32];
  int msgs;
  assert_int_equal(list_keys("cc/", NULL, NULL, 0, 1, keys, 400, &msgs),
                   NCOMMITTERS * PER_COMMITTER);
}

void test_ops_indefinite_scope_listed_as_stuck_until_released(void **state) {
  (void)state;
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = "bob";
  cq.kind = "merge";
  Strata__V1__CreateOpResponse *cr;
  assert_int_equal(rpc_ops_create(C, NULL, &cq, &cr), 0);
  uint64_t id = cr->op->op_id;
  rpc_free(cr);
  ProtobufCBinaryData rows[2] = {t_bytes("stuck/r1"), t_bytes("stuck/r2")};
  Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
  aq.op_id = id;
  aq.n_rows = 2;
  aq.rows = rows;
  aq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
  Strata__V1__AcquireResponse *ar;
  assert_int_equal(rpc_locks_acquire(C, NULL, &aq, &ar), 0);
  assert_true(ar->acquired);
  assert_int_equal(ar->expires_at_ns, 0); /* indefinite: never */
  rpc_free(ar);
  /* The op's scope is recorded and it is listed as stuck (not SUCCESS). */
  Strata__V1__GetOpRequest gq = STRATA__V1__GET_OP_REQUEST__INIT;
  gq.op_id = id;
  Strata__V1__GetOpResponse *gr;
  assert_int_equal(rpc_ops_get(C, NULL, &gq, &gr), 0);
  assert_int_equal(gr->op->n_scope, 2);
  rpc_free(gr);
  Strata__V1__ListStuckRequest lq = STRATA__V1__LIST_STUCK_REQUEST__INIT;
  rpc_cstream *st;
  Strata__V1__ListStuckResponse *m;
  int found = 0, rc;
  assert_int_equal(rpc_ops_list_stuck(C, NULL, &lq, &st), 0);
  while ((rc = rpc_ops_list_stuck_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_ops; i++) found += m->ops[i]->op_id == id;
    rpc_free(m);
  }
  assert_int_equal(rc, 0);
  rpc_cstream_close(st);
  assert_int_equal(found, 1);
  /* An operator's privileged release clears the locks and the scope. */
  Strata__V1__ReleaseRequest rq = STRATA__V1__RELEASE_REQUEST__INIT;
  rq.op_id = id;
  rq.all = 1;
  rq.privileged = 1;
  Strata__V1__ReleaseResponse *rr;
  assert_int_equal(rpc_locks_release(C, NULL, &rq, &rr), 0);
  assert_int_equal(rr->released, 2);
  rpc_free(rr);
  assert_int_equal(rpc_ops_list_stuck(C, NULL, &lq, &st), 0);
  found = 0;
  while ((rc = rpc_ops_list_stuck_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_ops; i++) found += m->ops[i]->op_id == id;
    rpc_free(m);
  }
  rpc_cstream_close(st);
  assert_int_equal(found, 0);
}
