/* Locks over the wire: grants, refusals as data, waiting, deadlines, renew,
 * check, list and privileged release. Each test uses its own op ids and rows. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "test_rpc_server.h"

static int acquire(uint64_t op, const char *row, int kind, uint64_t ttl, uint64_t wait_ms,
                   const rpc_callopts *co, Strata__V1__AcquireResponse **r) {
  ProtobufCBinaryData rows[1] = {t_bytes(row)};
  Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
  q.op_id = op;
  q.n_rows = 1;
  q.rows = rows;
  q.kind = kind;
  q.ttl_ms = ttl;
  q.wait_ms = wait_ms;
  return rpc_locks_acquire(C, co, &q, r);
}

static int release(uint64_t op, const char *row, int privileged, uint64_t *n) {
  ProtobufCBinaryData rows[1] = {t_bytes(row ? row : "")};
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  q.op_id = op;
  q.n_rows = row ? 1 : 0;
  q.rows = rows;
  q.all = row == NULL;
  q.privileged = privileged;
  Strata__V1__ReleaseResponse *r;
  int rc = rpc_locks_release(C, NULL, &q, &r);
  if (!rc) *n = r->released;
  rpc_free(r);
  return rc;
}

#define TEMPORAL STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL

void test_locks_acquire_conflict_release(void **state) {
  (void)state;
  Strata__V1__AcquireResponse *r;
  assert_int_equal(acquire(101, "L1", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_true(r->acquired);
  uint64_t tok = r->fencing_token;
  assert_true(tok > 0);
  assert_true(r->expires_at_ns > 0);
  rpc_free(r);
  /* Another op is refused with the holder named: a result, not an error. */
  assert_int_equal(acquire(102, "L1", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_false(r->acquired);
  assert_int_equal(r->n_conflicts, 1);
  assert_int_equal(r->conflicts[0]->op_id, 101);
  assert_memory_equal(r->conflicts[0]->row.data, "L1", 2);
  rpc_free(r);
  uint64_t n;
  assert_int_equal(release(101, "L1", 0, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(acquire(102, "L1", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_true(r->acquired);
  assert_true(r->fencing_token > tok); /* tokens only grow */
  rpc_free(r);
  assert_int_equal(release(102, NULL, 0, &n), 0);
}

/* Releases op's row once a waiting acquire is open on the server (more calls
 * active than `base`; polled, not guessed with a sleep), and no sooner than
 * 300 ms after `t0`, so that a waiter wrongly granted the held row at once
 * has returned before the release. Records when the release was sent. */
typedef struct releaser {
  uint64_t op;
  const char *row;
  uint64_t base;
  int64_t t0, sent_at;
  uint64_t released;
  int rc;
} releaser;

static void *release_when_waited(void *arg) {
  releaser *rl = arg;
  t_wait_calls_at_least(rl->base + 1);
  while (t_now_ms() - rl->t0 < 300) usleep(10000);
  rl->sent_at = t_now_ms();
  rl->rc = release(rl->op, rl->row, 0, &rl->released);
  return NULL;
}

void test_locks_waiting_acquire_granted_after_release(void **state) {
  (void)state;
  Strata__V1__AcquireResponse *r;
  assert_int_equal(acquire(201, "L2", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_true(r->acquired);
  rpc_free(r);
  releaser rl = {.op = 201, .row = "L2", .base = t_wait_calls_at_most(1)};
  rl.t0 = t_now_ms();
  pthread_t t;
  pthread_create(&t, NULL, release_when_waited, &rl);
  /* A minute of wait_ms, so that only the release can explain a grant well
   * before that; the thread is joined before any assertion. */
  rpc_callopts co = {.timeout_ms = 120000};
  int rc = acquire(202, "L2", TEMPORAL, 30000, 60000, &co, &r);
  int64_t done_at = t_now_ms();
  pthread_join(t, NULL);
  assert_int_equal(rc, 0);
  int acquired = r->acquired;
  rpc_free(r);
  assert_true(acquired);
  assert_int_equal(rl.rc, 0);
  assert_int_equal(rl.released, 1); /* 201 still held the row until then */
  assert_true(done_at >= rl.sent_at); /* granted after the release, not before */
  /* Woken by the release, not by the end of its minute of wait_ms: the margin
   * is for slow machines, the broken case takes 60 s. */
  assert_true(done_at - rl.sent_at < 30000);
  uint64_t n;
  assert_int_equal(release(202, NULL, 0, &n), 0);
}

void test_locks_wait_bounded_by_deadline(void **state) {
  (void)state;
  Strata__V1__AcquireResponse *r;
  assert_int_equal(acquire(301, "L3", TEMPORAL, 30000, 0, NULL, &r), 0);
  rpc_free(r);
  uint64_t base = t_wait_calls_at_most(1);
  rpc_callopts co = {.timeout_ms = 400};
  int64_t t0 = t_now_ms();
  int rc = acquire(302, "L3", TEMPORAL, 30000, 60000, &co, &r);
  int64_t took = t_now_ms() - t0;
  /* Either the server answered "not acquired" just before the deadline, or the
   * deadline won the race; either way after waiting, not at once. */
  if (rc == 0) {
    assert_false(r->acquired);
    assert_int_equal(r->conflicts[0]->op_id, 301);
    rpc_free(r);
  } else {
    assert_int_equal(rc, STRATA_EDEADLINE);
  }
  assert_true(took >= 300);
  /* Never a minute-long wait: the server ended the waiting call at the
   * deadline too (a server that waited out wait_ms would keep it active for
   * 60 s), whatever the client saw. Measured by outcome, not by the clock. */
  assert_true(t_wait_calls_at_most(base) <= base);
  uint64_t n;
  assert_int_equal(release(301, NULL, 0, &n), 0);
}

/* wait_ms = UINT64_MAX means "wait forever": the wait deadline saturates instead
 * of overflowing into the past (which answered acquired=false at once). */
void test_locks_wait_forever_saturates(void **state) {
  (void)state;
  Strata__V1__AcquireResponse *r;
  assert_int_equal(acquire(511, "L5", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_true(r->acquired);
  rpc_free(r);
  /* No client deadline: granted when the holder releases, not refused at once. */
  releaser rl = {.op = 511, .row = "L5", .base = t_wait_calls_at_most(1)};
  rl.t0 = t_now_ms();
  pthread_t th;
  pthread_create(&th, NULL, release_when_waited, &rl);
  rpc_callopts forever = {.timeout_ms = -1};
  int rc = acquire(512, "L5", TEMPORAL, 30000, UINT64_MAX, &forever, &r);
  int64_t done_at = t_now_ms();
  pthread_join(th, NULL);
  assert_int_equal(rc, 0);
  int acquired = r->acquired;
  rpc_free(r);
  assert_true(acquired);
  assert_int_equal(rl.rc, 0);
  assert_int_equal(rl.released, 1);
  assert_true(done_at >= rl.sent_at);
  /* A short client deadline bounds the endless wait: it lasts until the deadline. */
  uint64_t base = t_wait_calls_at_most(1);
  rpc_callopts co = {.timeout_ms = 400};
  int64_t t0 = t_now_ms();
  rc = acquire(513, "L5", TEMPORAL, 30000, UINT64_MAX, &co, &r);
  int64_t took = t_now_ms() - t0;
  if (rc == 0) {
    assert_false(r->acquired);
    assert_int_equal(r->conflicts[0]->op_id, 512);
    rpc_free(r);
  } else {
    assert_int_equal(rc, STRATA_EDEADLINE);
  }
  assert_true(took >= 300);
  /* ... and on the server too: the endless wait did not outlive the deadline. */
  assert_true(t_wait_calls_at_most(base) <= base);
  uint64_t n;
  assert_int_equal(release(512, NULL, 0, &n), 0);
}

void test_locks_renew_check_list_privileged_release(void **state) {
  (void)state;
  Strata__V1__AcquireResponse *r;
  assert_int_equal(acquire(401, "L4a", TEMPORAL, 30000, 0, NULL, &r), 0);
  rpc_free(r);
  assert_int_equal(acquire(401, "L4b", TEMPORAL, 30000, 0, NULL, &r), 0);
  rpc_free(r);
  /* Renew by the holder extends; by another op is FAILED_PRECONDITION naming the row. */
  ProtobufCBinaryData rows[2] = {t_bytes("L4a"), t_bytes("L4z")};
  Strata__V1__RenewRequest rq = STRATA__V1__RENEW_REQUEST__INIT;
  rq.op_id = 401;
  rq.n_rows = 1;
  rq.rows = rows;
  rq.ttl_ms = 60000;
  Strata__V1__RenewResponse *rr;
  assert_int_equal(rpc_locks_renew(C, NULL, &rq, &rr), 0);
  assert_true(rr->expires_at_ns > 0);
  rpc_free(rr);
  rq.op_id = 402;
  t_expect_err(rpc_locks_renew(C, NULL, &rq, &rr), STRATA_ELOCKED, "held by op 401");
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_FAILED_PRECONDITION);
  /* Check lists the rows the op does not hold. */
  Strata__V1__CheckRequest cq = STRATA__V1__CHECK_REQUEST__INIT;
  cq.op_id = 401;
  cq.n_rows = 2;
  cq.rows = rows;
  Strata__V1__CheckResponse *cr;
  assert_int_equal(rpc_locks_check(C, NULL, &cq, &cr), 0);
  assert_false(cr->all_held);
  assert_int_equal(cr->n_missing, 1);
  assert_memory_equal(cr->missing[0].data, "L4z", 3);
  rpc_free(cr);
  /* List filtered by op and prefix. */
  Strata__V1__ListLocksRequest lq = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  lq.op_id = 401;
  lq.prefix = t_bytes("L4");
  rpc_cstream *st;
  assert_int_equal(rpc_locks_list(C, NULL, &lq, &st), 0);
  Strata__V1__ListLocksResponse *lm;
  size_t seen = 0;
  int rc;
  while ((rc = rpc_locks_list_next(st, &lm)) == 1) {
    for (size_t i = 0; i < lm->n_locks; i++) {
      assert_int_equal(lm->locks[i]->op_id, 401);
      assert_int_equal(lm->locks[i]->kind, TEMPORAL);
      assert_true(lm->locks[i]->fencing_token > 0);
      /* The server's clock comes with the listing: the lock (renewed to a
       * 60 s TTL above) has at most 60 s left on it, measured there. */
      assert_true(lm->server_time_ns > 0);
      assert_true(lm->locks[i]->expires_at_ns > lm->server_time_ns);
      assert_true(lm->locks[i]->expires_at_ns - lm->server_time_ns <= 60000000000LL);
      assert_true(lm->server_time_ns >= lm->locks[i]->acquired_at_ns);
      seen++;
    }
    rpc_free(lm);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(seen, 2);
  rpc_cstream_close(st);
  /* An operator frees another op's row. */
  uint64_t n;
  assert_int_equal(release(0, "L4a", 1, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(acquire(402, "L4a", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_true(r->acquired);
  rpc_free(r);
  assert_int_equal(release(401, NULL, 0, &n), 0);
  assert_int_equal(release(402, NULL, 0, &n), 0);
}

/* Rows are exclusive whatever the kinds: another op's plain temporal acquire
 * of a row held indefinitely is refused naming the holder, and Check never
 * says yes to both; only a privileged release lets it in. */
void test_locks_indefinite_excludes_temporal_acquires(void **state) {
  (void)state;
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = "t_locks";
  cq.kind = "exclusive";
  Strata__V1__CreateOpResponse *cr;
  assert_int_equal(rpc_ops_create(C, NULL, &cq, &cr), 0);
  uint64_t holder = cr->op->op_id;
  rpc_free(cr);
  Strata__V1__AcquireResponse *r;
  assert_int_equal(acquire(holder, "LX", STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE, 0, 0, NULL, &r), 0);
  assert_true(r->acquired);
  rpc_free(r);
  assert_int_equal(acquire(601, "LX", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_false(r->acquired);
  assert_int_equal(r->n_conflicts, 1);
  assert_int_equal(r->conflicts[0]->op_id, holder);
  assert_int_equal(r->conflicts[0]->kind, STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE);
  rpc_free(r);
  ProtobufCBinaryData row = t_bytes("LX");
  Strata__V1__CheckRequest kq = STRATA__V1__CHECK_REQUEST__INIT;
  kq.n_rows = 1;
  kq.rows = &row;
  Strata__V1__CheckResponse *k;
  uint64_t ops[2] = {holder, 601};
  for (int i = 0; i < 2; i++) {
    kq.op_id = ops[i];
    assert_int_equal(rpc_locks_check(C, NULL, &kq, &k), 0);
    assert_int_equal(k->all_held, i == 0);
    rpc_free(k);
  }
  uint64_t n;
  assert_int_equal(release(0, "LX", 1, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(acquire(601, "LX", TEMPORAL, 30000, 0, NULL, &r), 0);
  assert_true(r->acquired);
  rpc_free(r);
  assert_int_equal(release(601, NULL, 0, &n), 0);
}
