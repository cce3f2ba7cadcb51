/* Ops over the wire: id counters under concurrent clients, lookups, ListStuck. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "test_rpc_server.h"

#define NT 16
#define PER 50

static uint64_t firsts[NT][PER];

static void *alloc_many(void *arg) {
  long t = (long)arg;
  for (int i = 0; i < PER; i++) {
    Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
    q.counter = "test/ids";
    q.count = 10;
    Strata__V1__AllocateIdsResponse *r;
    if (rpc_ops_allocate_ids(C, NULL, &q, &r) == 0) {
      firsts[t][i] = r->first;
      rpc_free(r);
    }
  }
  return NULL;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void test_ops_allocate_ids_disjoint_under_concurrency(void **state) {
  (void)state;
  memset(firsts, 0, sizeof firsts);
  pthread_t t[NT];
  for (long i = 0; i < NT; i++) pthread_create(&t[i], NULL, alloc_many, (void *)i);
  for (int i = 0; i < NT; i++) pthread_join(t[i], NULL);
  uint64_t *all = &firsts[0][0];
  qsort(all, NT * PER, sizeof *all, cmp_u64);
  assert_true(all[0] >= 1);
  for (int i = 1; i < NT * PER; i++) assert_true(all[i] >= all[i - 1] + 10); /* disjoint ranges */
}

void test_ops_get_missing_and_list_stuck(void **state) {
  (void)state;
  Strata__V1__GetOpRequest q = STRATA__V1__GET_OP_REQUEST__INIT;
  q.op_id = 987654321;
  Strata__V1__GetOpResponse *r;
  t_expect_err(rpc_ops_get(C, NULL, &q, &r), STRATA_ENOTFOUND, "987654321");
  Strata__V1__SetStatusRequest sq = STRATA__V1__SET_STATUS_REQUEST__INIT;
  sq.op_id = 987654321;
  sq.status = STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS;
  Strata__V1__SetStatusResponse *sr;
  t_expect_err(rpc_ops_set_status(C, NULL, &sq, &sr), STRATA_ENOTFOUND, "987654321");
  /* An op holding an indefinite lock is stuck; min_age_ms excludes it while young. */
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = "stuck";
  cq.kind = "t_ops";
  Strata__V1__CreateOpResponse *cr;
  assert_int_equal(rpc_ops_create(C, NULL, &cq, &cr), 0);
  uint64_t id = cr->op->op_id;
  rpc_free(cr);
  ProtobufCBinaryData row = t_bytes("t_ops/stuck");
  Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
  aq.op_id = id;
  aq.n_rows = 1;
  aq.rows = &row;
  aq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
  Strata__V1__AcquireResponse *ar;
  assert_int_equal(rpc_locks_acquire(C, NULL, &aq, &ar), 0);
  assert_true(ar->acquired);
  rpc_free(ar);
  Strata__V1__ListStuckRequest lq = STRATA__V1__LIST_STUCK_REQUEST__INIT;
  for (int pass = 0; pass < 2; pass++) {
    lq.min_age_ms = pass ? 3600000 : 0; /* an hour: the op is seconds old */
    rpc_cstream *st;
    assert_int_equal(rpc_ops_list_stuck(C, NULL, &lq, &st), 0);
    Strata__V1__ListStuckResponse *m;
    int rc, found = 0;
    while ((rc = rpc_ops_list_stuck_next(st, &m)) == 1) {
      for (size_t i = 0; i < m->n_ops; i++)
        if (m->ops[i]->op_id == id) {
          found++;
          assert_int_equal(m->ops[i]->n_scope, 1);
          assert_memory_equal(m->ops[i]->scope[0].data, "t_ops/stuck", 11);
        }
      rpc_free(m);
    }
    assert_int_equal(rc, 0);
    rpc_cstream_close(st);
    assert_int_equal(found, pass ? 0 : 1);
  }
  Strata__V1__ReleaseRequest rq = STRATA__V1__RELEASE_REQUEST__INIT;
  rq.op_id = id;
  rq.all = 1;
  Strata__V1__ReleaseResponse *rr;
  assert_int_equal(rpc_locks_release(C, NULL, &rq, &rr), 0);
  assert_int_equal(rr->released, 1);
  rpc_free(rr);
}

/* Creates an op for user "lister"; returns its id. */
static uint64_t create_op(size_t payload_len) {
  Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
  q.user = "lister";
  q.kind = "split";
  uint8_t *p = payload_len ? calloc(1, payload_len) : NULL;
  q.payload.data = p;
  q.payload.len = payload_len;
  Strata__V1__CreateOpResponse *r;
  assert_int_equal(rpc_ops_create(C, NULL, &q, &r), 0);
  uint64_t id = r->op->op_id;
  rpc_free(r);
  free(p);
  return id;
}

/* Runs Ops.List and collects the ids in the order received; returns how
 * many, and the number of messages in *msgs. */
static size_t list_ids(const Strata__V1__ListOpsRequest *q, uint64_t *ids, size_t max, size_t *msgs,
                       uint64_t *last) {
  rpc_cstream *st;
  assert_int_equal(rpc_ops_list(C, NULL, q, &st), 0);
  Strata__V1__ListOpsResponse *m;
  size_t n = 0;
  int rc;
  *msgs = 0;
  while ((rc = rpc_ops_list_next(st, &m)) == 1) {
    (*msgs)++;
    *last = m->last_op_id;
    for (size_t i = 0; i < m->n_ops; i++) {
      assert_true(n < max);
      ids[n++] = m->ops[i]->op_id;
    }
    rpc_free(m);
  }
  assert_int_equal(rc, 0);
  rpc_cstream_close(st);
  return n;
}

void test_ops_list_pages_filters_and_orders(void **state) {
  (void)state;
  uint64_t id[5], got[64], last = 0;
  size_t msgs;
  for (int i = 0; i < 5; i++) id[i] = create_op(0);
  Strata__V1__SetStatusRequest sq = STRATA__V1__SET_STATUS_REQUEST__INIT;
  sq.op_id = id[2];
  sq.status = STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION;
  Strata__V1__SetStatusResponse *sr;
  assert_int_equal(rpc_ops_set_status(C, NULL, &sq, &sr), 0);
  rpc_free(sr);
  /* ascending after a cursor: exactly ours, in order */
  Strata__V1__ListOpsRequest q = STRATA__V1__LIST_OPS_REQUEST__INIT;
  q.after_op_id = id[0] - 1;
  assert_int_equal(list_ids(&q, got, 64, &msgs, &last), 5);
  for (int i = 0; i < 5; i++) assert_int_equal(got[i], id[i]);
  assert_int_equal(last, id[4]);
  /* newest first with a limit, then the next page below the cursor */
  Strata__V1__ListOpsRequest nq = STRATA__V1__LIST_OPS_REQUEST__INIT;
  nq.newest_first = 1;
  nq.limit = 2;
  assert_int_equal(list_ids(&nq, got, 64, &msgs, &last), 2);
  assert_int_equal(got[0], id[4]);
  assert_int_equal(got[1], id[3]);
  nq.before_op_id = id[3];
  assert_int_equal(list_ids(&nq, got, 64, &msgs, &last), 2);
  assert_int_equal(got[0], id[2]);
  /* by status */
  q.status = STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION;
  assert_int_equal(list_ids(&q, got, 64, &msgs, &last), 1);
  assert_int_equal(got[0], id[2]);
  /* nothing matches: one empty message still says the last id */
  q.status = 0;
  q.after_op_id = id[4];
  last = 0;
  assert_int_equal(list_ids(&q, got, 64, &msgs, &last), 0);
  assert_int_equal(msgs, 1);
  assert_int_equal(last, id[4]);
  /* an unknown status is refused and named */
  q.status = 42;
  rpc_cstream *st;
  Strata__V1__ListOpsResponse *m;
  assert_int_equal(rpc_ops_list(C, NULL, &q, &st), 0);
  t_expect_err(rpc_ops_list_next(st, &m), STRATA_EINVALID, "status");
  rpc_cstream_close(st);
  /* ops with 400 KiB payloads span several messages, none lost */
  uint64_t big[6];
  for (int i = 0; i < 6; i++) big[i] = create_op(400 << 10);
  Strata__V1__ListOpsRequest bq = STRATA__V1__LIST_OPS_REQUEST__INIT;
  bq.after_op_id = big[0] - 1;
  assert_int_equal(list_ids(&bq, got, 64, &msgs, &last), 6);
  for (int i = 0; i < 6; i++) assert_int_equal(got[i], big[i]);
  assert_true(msgs >= 2);
}
