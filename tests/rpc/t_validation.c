/* Every kind of bad request gets INVALID_ARGUMENT with a message naming the field. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "test_rpc_server.h"

#define UNARY(fn, Resp, req, field)                                           \
  do {                                                                        \
    Resp *r_ = NULL;                                                          \
    t_expect_err(fn(C, NULL, &req, &r_), STRATA_EINVALID, field);             \
    assert_int_equal(rpc_client_last_status(), GRPC_STATUS_INVALID_ARGUMENT); \
    assert_null(r_);                                                          \
  } while (0)

/* Get and BatchGet; bigkey is over the key limit. */
static void kv_read_cases(ProtobufCBinaryData bigkey) {
  ProtobufCBinaryData empty = {0, NULL};
  {
    Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
    UNARY(rpc_kv_get, Strata__V1__GetResponse, q, "key: must not be empty");
    q.key = bigkey;
    UNARY(rpc_kv_get, Strata__V1__GetResponse, q, "key: 70000 bytes exceeds");
    q.key = t_bytes("k");
    Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
    q.pin = &pin;
    pin.pin_case = STRATA__V1__VERSION_PIN__PIN_COMMIT_TIME_NS;
    pin.commit_time_ns = -5;
    UNARY(rpc_kv_get, Strata__V1__GetResponse, q, "pin.commit_time_ns");
  }
  {
    Strata__V1__BatchGetRequest q = STRATA__V1__BATCH_GET_REQUEST__INIT;
    UNARY(rpc_kv_batch_get, Strata__V1__BatchGetResponse, q, "keys: at least 1");
    ProtobufCBinaryData keys[2] = {t_bytes("a"), empty};
    q.n_keys = 2;
    q.keys = keys;
    UNARY(rpc_kv_batch_get, Strata__V1__BatchGetResponse, q, "keys[1]: must not be empty");
  }
}

/* Commit: the request as a whole, then puts, deletes, conditions and the fence
 * in turn, each made valid before the next is spoiled. */
static void kv_commit_cases(void) {
  {
    Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "at least one key");
    {
      /* Conditions alone are refused too (docs/protocol.md): no generation. */
      Strata__V1__Condition c0 = STRATA__V1__CONDITION__INIT, *pc0 = &c0;
      c0.key = t_bytes("x");
      c0.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
      q.n_conditions = 1;
      q.conditions = &pc0;
      UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "at least one key");
      q.n_conditions = 0;
      q.conditions = NULL;
    }
    Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
    q.n_puts = 1;
    q.puts = &pp;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "puts[0].key: must not be empty");
    p.key = t_bytes("x");
    ProtobufCBinaryData del = t_bytes("x");
    q.n_deletes = 1;
    q.deletes = &del;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "appears more than once");
    q.n_deletes = 0;
    Strata__V1__Condition c = STRATA__V1__CONDITION__INIT, *pc = &c;
    c.key = t_bytes("x");
    c.kind = 9;
    q.n_conditions = 1;
    q.conditions = &pc;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "conditions[0].kind: 9 is not a known");
    c.kind = STRATA__V1__CONDITION__KIND__KIND_UNSPECIFIED;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "KIND_UNSPECIFIED is not allowed");
    c.kind = STRATA__V1__CONDITION__KIND__KIND_VALUE_HASH;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "conditions[0].value_hash");
    q.n_conditions = 0;
    Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
    q.fence = &f;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "fence.op_id");
    f.op_id = 3;
    UNARY(rpc_kv_commit, Strata__V1__CommitResponse, q, "fence.rows");
  }
}

/* List, Versions and Watch; bigkey is over the key limit. */
static void kv_stream_cases(ProtobufCBinaryData bigkey) {
  {
    /* Streams report validation errors on their first read. */
    Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
    q.start = t_bytes("b");
    q.end = t_bytes("a");
    rpc_cstream *st;
    Strata__V1__ListResponse *m;
    assert_int_equal(rpc_kv_list(C, NULL, &q, &st), 0);
    t_expect_err(rpc_kv_list_next(st, &m), STRATA_EINVALID, "end: must be greater than start");
    rpc_cstream_close(st);
    Strata__V1__VersionsRequest v = STRATA__V1__VERSIONS_REQUEST__INIT;
    v.start_generation = 5;
    v.end_generation = 2;
    Strata__V1__VersionsResponse *vm;
    assert_int_equal(rpc_kv_versions(C, NULL, &v, &st), 0);
    t_expect_err(rpc_kv_versions_next(st, &vm), STRATA_EINVALID, "end_generation");
    rpc_cstream_close(st);
    Strata__V1__WatchRequest w = STRATA__V1__WATCH_REQUEST__INIT;
    w.prefix = bigkey;
    Strata__V1__WatchResponse *wm;
    assert_int_equal(rpc_kv_watch(C, NULL, &w, &st), 0);
    t_expect_err(rpc_kv_watch_next(st, &wm), STRATA_EINVALID, "prefix");
    rpc_cstream_close(st);
  }
}

static void kv_cases(void) {
  uint8_t *big = calloc(1, 70000);
  ProtobufCBinaryData bigkey = {70000, big};
  kv_read_cases(bigkey);
  kv_commit_cases();
  kv_stream_cases(bigkey);
  free(big);
}

static void locks_cases(void) {
  ProtobufCBinaryData rows[2] = {t_bytes("r1"), t_bytes("r1")};
  {
    Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
    q.n_rows = 1;
    q.rows = rows;
    q.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
    q.ttl_ms = 1000;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "op_id: must be set");
    q.op_id = 1;
    q.ttl_ms = 0;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "ttl_ms: must be > 0");
    q.ttl_ms = 1000;
    q.kind = 0;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "kind: LOCK_KIND_UNSPECIFIED");
    q.kind = 17;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "kind: 17 is not a known");
    q.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
    q.n_rows = 2;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "rows: key \"r1\" appears more");
    q.n_rows = 0;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "rows: at least 1");
    uint8_t *big = calloc(1, 5000);
    ProtobufCBinaryData br = {5000, big};
    q.n_rows = 1;
    q.rows = &br;
    UNARY(rpc_locks_acquire, Strata__V1__AcquireResponse, q, "rows[0]: 5000 bytes exceeds");
    free(big);
  }
  {
    Strata__V1__RenewRequest q = STRATA__V1__RENEW_REQUEST__INIT;
    q.op_id = 1;
    q.n_rows = 1;
    q.rows = rows;
    UNARY(rpc_locks_renew, Strata__V1__RenewResponse, q, "ttl_ms: must be > 0");
  }
  {
    Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
    q.n_rows = 1;
    q.rows = rows;
    UNARY(rpc_locks_release, Strata__V1__ReleaseResponse, q, "op_id: must be set");
    q.op_id = 1;
    q.all = 1;
    UNARY(rpc_locks_release, Strata__V1__ReleaseResponse, q, "rows: must be empty when all");
  }
  {
    Strata__V1__CheckRequest q = STRATA__V1__CHECK_REQUEST__INIT;
    q.op_id = 1;
    UNARY(rpc_locks_check, Strata__V1__CheckResponse, q, "rows: at least 1");
  }
  {
    Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
    q.kind = 5;
    rpc_cstream *st;
    Strata__V1__ListLocksResponse *m;
    assert_int_equal(rpc_locks_list(C, NULL, &q, &st), 0);
    t_expect_err(rpc_locks_list_next(st, &m), STRATA_EINVALID, "kind: 5");
    rpc_cstream_close(st);
  }
}

static void ops_cases(void) {
  {
    Strata__V1__GetOpRequest q = STRATA__V1__GET_OP_REQUEST__INIT;
    UNARY(rpc_ops_get, Strata__V1__GetOpResponse, q, "op_id: must be set");
  }
  {
    Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
    q.op_id = 1;
    UNARY(rpc_ops_set_status, Strata__V1__SetStatusResponse, q, "status: OP_STATUS_UNSPECIFIED");
    q.status = 42;
    UNARY(rpc_ops_set_status, Strata__V1__SetStatusResponse, q, "status: 42 is not a known");
  }
  {
    Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
    q.count = 1;
    UNARY(rpc_ops_allocate_ids, Strata__V1__AllocateIdsResponse, q, "counter");
    q.counter = "c";
    q.count = 0;
    UNARY(rpc_ops_allocate_ids, Strata__V1__AllocateIdsResponse, q, "count: must be");
  }
  {
    Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
    q.kind = "split";
    UNARY(rpc_ops_create, Strata__V1__CreateOpResponse, q, "user");
  }
}

/* Raw request bytes (a text field a C client cannot even express) must fail
 * with INVALID_ARGUMENT naming `field`, with the strata-error trailer. */
static void raw_invalid(const char *path, const void *req, size_t n, const char *field) {
  void *resp = NULL;
  size_t rn = 0;
  t_expect_err(rpc_client_raw(C, path, NULL, req, n, &resp, &rn), STRATA_EINVALID, field);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_INVALID_ARGUMENT);
  assert_string_equal(rpc_client_last_trailer(), "STRATA_EINVALID");
  free(resp);
}

/* Text fields are UTF-8 without NULs, checked before anything is stored:
 * "nul\0A" and "nul\0B" are refused, never folded into one counter "nul". */
static void text_cases(void) {
  static const uint8_t bad_user[] = {0x0a, 3, 'a', 0xff, 'b', 0x12, 5, 's', 'p', 'l', 'i', 't'};
  raw_invalid("/strata.v1.Ops/Create", bad_user, sizeof bad_user, "user: is not valid UTF-8");
  static const uint8_t nul_kind[] = {0x0a, 2, 'm', 'e', 0x12, 3, 'a', 0, 'b'};
  raw_invalid("/strata.v1.Ops/Create", nul_kind, sizeof nul_kind, "kind: contains a NUL byte");
  static const uint8_t nul_a[] = {0x0a, 5, 'n', 'u', 'l', 0, 'A', 0x10, 1};
  static const uint8_t nul_b[] = {0x0a, 5, 'n', 'u', 'l', 0, 'B', 0x10, 1};
  raw_invalid("/strata.v1.Ops/AllocateIds", nul_a, sizeof nul_a, "counter: contains a NUL");
  raw_invalid("/strata.v1.Ops/AllocateIds", nul_b, sizeof nul_b, "counter: contains a NUL");
  static const uint8_t surrogate[] = {0x0a, 3, 0xed, 0xa0, 0x80, 0x10, 1};
  raw_invalid("/strata.v1.Ops/AllocateIds", surrogate, sizeof surrogate, "counter: is not valid");
  static const uint8_t health[] = {0x0a, 2, 0xc0, 0xaf};
  raw_invalid("/grpc.health.v1.Health/Check", health, sizeof health, "service: is not valid");
  /* Nothing reached the counter "nul": it starts where a fresh counter starts. */
  Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
  Strata__V1__AllocateIdsResponse *a = NULL, *b = NULL;
  q.count = 1;
  q.counter = "nul";
  assert_int_equal(rpc_ops_allocate_ids(C, NULL, &q, &a), 0);
  q.counter = "text-cases-fresh";
  assert_int_equal(rpc_ops_allocate_ids(C, NULL, &q, &b), 0);
  assert_int_equal(a->first, b->first);
  rpc_free(a);
  rpc_free(b);
  /* Valid multi-byte text passes. */
  Strata__V1__CreateOpRequest c = STRATA__V1__CREATE_OP_REQUEST__INIT;
  Strata__V1__CreateOpResponse *cr = NULL;
  c.user = "z\xc3\xbcrich-\xf0\x9f\x98\x80";
  c.kind = "split";
  assert_int_equal(rpc_ops_create(C, NULL, &c, &cr), 0);
  rpc_free(cr);
}

void test_validation_names_the_field(void **state) {
  (void)state;
  kv_cases();
  locks_cases();
  ops_cases();
  text_cases();
}
