/*
 * Coordinator mode through a real strata-server (issue 12, points 1-3): the
 * writer registry (leases on the server's clock, surviving a restart, ids
 * never reused), commits of references to writers' own files and every bad
 * reference (right status, naming the file, nothing visible), a mixed commit
 * with conditions and a lock fence, and references surviving a SIGKILL. GC
 * and the store check are in test_coord_gc.c; the fixture both share is
 * coord_fixture.h. Needs $STRATA_SERVER_BIN. Leases use the shortest TTL
 * (1 s) and the tests poll ListWriters until the server says the lease ended:
 * no fixed sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <cmocka.h>

#include "common/err.h"
#include "coord_fixture.h"

/* --- registry ---------------------------------------------------------------------- */

static void test_register_renew_unregister_list(void **state) {
  (void)state;
  tc_writer a = tc_reg("host-a/1", 60000), b = tc_reg("host-b/2", 60000);
  assert_true(a.id != 0 && b.id > a.id);
  char want[64];
  snprintf(want, sizeof want, "d/w%014llx-", (unsigned long long)a.id);
  assert_string_equal(a.prefix, want);
  assert_true(a.store_dir[0] == '/');
  int live = 0;
  assert_true(tc_listed(a.id, &live, NULL, NULL, NULL));
  assert_true(live);

  Strata__V1__RenewWriterRequest rq = STRATA__V1__RENEW_WRITER_REQUEST__INIT;
  rq.writer_id = a.id;
  rq.lease_ttl_ms = 120000;
  Strata__V1__RenewWriterResponse *rr;
  assert_int_equal(rpc_coord_renew_writer(C, NULL, &rq, &rr), 0);
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  int64_t now_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
  assert_true(rr->lease_expires_ns > now_ns + (int64_t)100000 * 1000000);
  rpc_free(rr);

  Strata__V1__UnregisterWriterRequest uq = STRATA__V1__UNREGISTER_WRITER_REQUEST__INIT;
  uq.writer_id = b.id;
  Strata__V1__UnregisterWriterResponse *ur;
  assert_int_equal(rpc_coord_unregister_writer(C, NULL, &uq, &ur), 0);
  rpc_free(ur);
  assert_true(tc_listed(b.id, &live, NULL, NULL, NULL));
  assert_false(live);
  /* An ended writer cannot renew; an unknown one is NOT_FOUND. */
  rq.writer_id = b.id;
  assert_int_equal(rpc_coord_renew_writer(C, NULL, &rq, &rr), STRATA_EEXPIRED);
  rq.writer_id = 999999;
  assert_int_equal(rpc_coord_renew_writer(C, NULL, &rq, &rr), STRATA_ENOTFOUND);
  /* Live-only listing leaves b out. */
  Strata__V1__ListWritersRequest lq = STRATA__V1__LIST_WRITERS_REQUEST__INIT;
  Strata__V1__ListWritersResponse *lr;
  assert_int_equal(rpc_coord_list_writers(C, NULL, &lq, &lr), 0);
  for (size_t i = 0; i < lr->n_writers; i++) assert_true(lr->writers[i]->writer_id != b.id);
  rpc_free(lr);
  /* Bad registrations. */
  Strata__V1__RegisterWriterRequest q = STRATA__V1__REGISTER_WRITER_REQUEST__INIT;
  Strata__V1__RegisterWriterResponse *r;
  q.name = "x";
  q.lease_ttl_ms = 10;
  assert_int_equal(rpc_coord_register_writer(C, NULL, &q, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "lease_ttl_ms"));
  q.name = "";
  q.lease_ttl_ms = 5000;
  assert_int_equal(rpc_coord_register_writer(C, NULL, &q, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "name"));
}

/* A lease ends on the server's clock, the registry survives a restart, ids
 * are not reused, and an ended writer's commit is refused with nothing
 * visible. */
static void test_lease_expiry_restart_and_refused_commit(void **state) {
  (void)state;
  tc_writer w = tc_reg("short", 1000), keep = tc_reg("long", 3600000);
  tc_write_file(&w, "f1", "hello world", 11, 1);
  tc_put p = {.key = "exp/k1", .ref_name = "f1", .off = 0, .len = 5};
  assert_int_equal(tc_commit(&w, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  tc_want_value("exp/k1", "hello", 5);
  tc_wait_ended(&w);
  tc_put p2 = {.key = "exp/k2", .ref_name = "f1", .off = 6, .len = 5};
  assert_int_equal(tc_commit(&w, &p2, 1, NULL, 0, NULL, 0, NULL, NULL), STRATA_EEXPIRED);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_FAILED_PRECONDITION);
  assert_non_null(strstr(strata_errmsg(), "lease ended"));
  tc_want_absent("exp/k2");

  /* Restart: the registry is as it was, and ids continue after the last. */
  char dir[512];
  snprintf(dir, sizeof dir, "%s", H.dir);
  tc_stop();
  tc_start(dir);
  int live = 1;
  uint64_t bytes = 0, last_gen = 0, files = 0;
  assert_true(tc_listed(w.id, &live, &bytes, &last_gen, &files));
  assert_false(live);
  assert_int_equal(bytes, 5);
  assert_true(last_gen >= 1);
  assert_int_equal(files, 1);
  assert_true(tc_listed(keep.id, &live, NULL, NULL, NULL));
  assert_true(live);
  tc_writer n = tc_reg("after-restart", 60000);
  assert_true(n.id > keep.id);
  assert_int_equal(tc_commit(&w, &p2, 1, NULL, 0, NULL, 0, NULL, NULL), STRATA_EEXPIRED);
  tc_want_absent("exp/k2");
  tc_want_value("exp/k1", "hello", 5);
}


/* --- references ---------------------------------------------------------------------- */

/* Commits one reference put of "bad/ref" to the first 10 bytes of `path` (a
 * full store path, not a name under w's prefix) as writer w; returns the
 * call's code. */
static int commit_ref_path(const tc_writer *w, char *path) {
  Strata__V1__Put pv[1], *pp[1] = {&pv[0]};
  Strata__V1__DataRef d = STRATA__V1__DATA_REF__INIT;
  d.path = path;
  d.length = 10;
  strata__v1__put__init(&pv[0]);
  pv[0].key = (ProtobufCBinaryData){7, (uint8_t *)"bad/ref"};
  pv[0].ref = &d;
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = pp;
  q.writer_id = w->id;
  Strata__V1__CommitResponse *r;
  return rpc_kv_commit(C, NULL, &q, &r);
}

/* Each bad reference is refused with its status and a message naming the
 * file; the good puts of the same commit stay invisible. */
static void test_bad_references_refused_nothing_visible(void **state) {
  (void)state;
  tc_writer w = tc_reg("bad-refs", 60000), other = tc_reg("other", 60000);
  char data[100];
  for (int i = 0; i < 100; i++) data[i] = (char)('a' + i % 26);
  tc_write_file(&w, "good", data, sizeof data, 1);
  tc_write_file(&w, "unreg", data, sizeof data, 0);
  tc_write_file(&other, "theirs", data, sizeof data, 1);
  struct {
    const char *name;
    tc_put bad;
    const tc_writer *as;
    int want;
    grpc_status_code status;
    const char *msg;
  } cases[] = {
      {"outside the prefix", {.key = "bad/ref", .ref_name = "theirs", .len = 10}, &other, 0, 0, NULL},
      {"unregistered file", {.key = "bad/ref", .ref_name = "unreg", .len = 10}, &w, STRATA_ECONDITION,
       GRPC_STATUS_FAILED_PRECONDITION, "unreg"},
      {"past the end", {.key = "bad/ref", .ref_name = "good", .off = 95, .len = 10}, &w, STRATA_ERANGE,
       GRPC_STATUS_OUT_OF_RANGE, "good"},
      {"checksum mismatch",
       {.key = "bad/ref", .ref_name = "good", .len = 10, .has_crc = 1, .crc = 12345}, &w,
       STRATA_ECORRUPT, GRPC_STATUS_DATA_LOSS, "good"},
      {"missing file", {.key = "bad/ref", .ref_name = "nofile", .len = 10}, &w, STRATA_ENOTFOUND,
       GRPC_STATUS_NOT_FOUND, "nofile"},
      {"value and ref", {.key = "bad/ref", .value = "x", .ref_name = "good", .len = 10}, &w,
       STRATA_EINVALID, GRPC_STATUS_INVALID_ARGUMENT, "both value"},
      {"zero length", {.key = "bad/ref", .ref_name = "good", .len = 0}, &w, STRATA_EINVALID,
       GRPC_STATUS_INVALID_ARGUMENT, "length"},
  };
  char theirs[200];
  snprintf(theirs, sizeof theirs, "%stheirs", other.prefix);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tc_put ps[3] = {{.key = "bad/visible", .value = "v"},
                    {.key = "bad/good-ref", .ref_name = "good", .len = 10, .has_crc = 1,
                     .crc = tc_crc(data, 10)},
                    cases[i].bad};
    int rc;
    if (i == 0) {
      /* w commits a reference into other's prefix: the path is built with
       * other's prefix, the writer_id is w's. */
      rc = commit_ref_path(&w, theirs);
      cases[i].want = STRATA_EINVALID;
      cases[i].status = GRPC_STATUS_INVALID_ARGUMENT;
      cases[i].msg = theirs;
    } else {
      rc = tc_commit(cases[i].as, ps, 3, NULL, 0, NULL, 0, NULL, NULL);
    }
    if (rc != cases[i].want || !strstr(strata_errmsg(), cases[i].msg))
      fprintf(stderr, "%s: rc %d, %s\n", cases[i].name, rc, strata_errmsg());
    assert_int_equal(rc, cases[i].want);
    assert_int_equal(rpc_client_last_status(), cases[i].status);
    assert_non_null(strstr(strata_errmsg(), cases[i].msg));
    tc_want_absent("bad/visible");
    tc_want_absent("bad/good-ref");
    tc_want_absent("bad/ref");
  }
  /* A reference without writer_id. */
  tc_put p = {.key = "bad/ref", .ref_name = "good", .len = 10};
  tc_writer none = w;
  none.id = 0;
  assert_int_equal(tc_commit(&none, &p, 1, NULL, 0, NULL, 0, NULL, NULL), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "writer_id"));
  /* The good reference alone lands, with the right bytes. */
  tc_put ok = {.key = "bad/good-ref", .ref_name = "good", .off = 3, .len = 10, .has_crc = 1,
               .crc = tc_crc(data + 3, 10)};
  assert_int_equal(tc_commit(&w, &ok, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  tc_want_value("bad/good-ref", data + 3, 10);
}

/* Value puts, reference puts, a delete, conditions and a lock fence in one
 * commit: all at one generation, or (a condition or the fence fails) none. */
static void test_mixed_commit_is_atomic(void **state) {
  (void)state;
  tc_writer w = tc_reg("mixed", 60000);
  const char *bytes = "0123456789abcdefghij";
  tc_write_file(&w, "m1", bytes, 20, 1);
  tc_put seed = {.key = "mix/old", .value = "old"};
  assert_int_equal(tc_commit(NULL, &seed, 1, NULL, 0, NULL, 0, NULL, NULL), 0);

  Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
  ProtobufCBinaryData row = {6, (uint8_t *)"row-mx"};
  aq.op_id = 77;
  aq.n_rows = 1;
  aq.rows = &row;
  aq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  aq.ttl_ms = 600000;
  Strata__V1__AcquireResponse *ar;
  assert_int_equal(rpc_locks_acquire(C, NULL, &aq, &ar), 0);
  rpc_free(ar);
  Strata__V1__LockFence fence = STRATA__V1__LOCK_FENCE__INIT;
  fence.op_id = 77;
  fence.n_rows = 1;
  fence.rows = &row;
  Strata__V1__LockFence wrong = fence;
  wrong.op_id = 78;

  tc_put ps[3] = {{.key = "mix/v", .value = "by value"},
                  {.key = "mix/r1", .ref_name = "m1", .off = 0, .len = 10, .has_crc = 1,
                   .crc = tc_crc(bytes, 10)},
                  {.key = "mix/r2", .ref_name = "m1", .off = 10, .len = 10}};
  const char *dels[1] = {"mix/old"};
  Strata__V1__Condition absent = STRATA__V1__CONDITION__INIT;
  absent.key = (ProtobufCBinaryData){5, (uint8_t *)"mix/v"};
  absent.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
  Strata__V1__Condition present = absent;
  present.key = (ProtobufCBinaryData){7, (uint8_t *)"mix/old"};
  Strata__V1__Condition *ok_conds[1] = {&absent}, *bad_conds[2] = {&absent, &present};

  /* The fence of another op: refused, nothing visible. */
  assert_int_equal(tc_commit(&w, ps, 3, dels, 1, ok_conds, 1, &wrong, NULL), STRATA_EFENCED);
  /* A failing condition: refused, nothing visible. */
  assert_int_equal(tc_commit(&w, ps, 3, dels, 1, bad_conds, 2, &fence, NULL), STRATA_ECONDITION);
  tc_want_absent("mix/v");
  tc_want_absent("mix/r1");
  tc_want_absent("mix/r2");
  tc_want_value("mix/old", "old", 3);
  /* Everything holds: one generation with all of it. */
  uint64_t g = 0;
  assert_int_equal(tc_commit(&w, ps, 3, dels, 1, ok_conds, 1, &fence, &g), 0);
  assert_true(g > 0);
  tc_want_value("mix/v", "by value", 8);
  tc_want_value("mix/r1", bytes, 10);
  tc_want_value("mix/r2", bytes + 10, 10);
  tc_want_absent("mix/old");
  uint64_t bytes_committed = 0, last = 0;
  assert_true(tc_listed(w.id, NULL, &bytes_committed, &last, NULL));
  assert_int_equal(bytes_committed, 20);
  assert_int_equal(last, g);
}

/* A server killed with SIGKILL right after acknowledging reference puts
 * (commit log mode: the log record names the writer's file) serves them after
 * the restart, the registry still knows the writer, and the check is clean. */
static void test_references_survive_sigkill(void **state) {
  (void)state;
  tc_writer w = tc_reg("killed", 3600000);
  char data[3000];
  for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(i * 7);
  tc_write_file(&w, "big", data, sizeof data, 1);
  uint64_t g = 0;
  for (int i = 0; i < 10; i++) {
    char k[32];
    snprintf(k, sizeof k, "kill/%02d", i);
    tc_put p = {.key = k, .ref_name = "big", .off = (uint64_t)i * 300, .len = 300, .has_crc = 1,
                .crc = tc_crc(data + i * 300, 300)};
    assert_int_equal(tc_commit(&w, &p, 1, NULL, 0, NULL, 0, NULL, &g), 0);
  }
  rpc_client_close(C);
  C = NULL;
  kill(H.pid, SIGKILL);
  waitpid(H.pid, NULL, 0);
  H.pid = 0;
  char dir[512];
  snprintf(dir, sizeof dir, "%s", H.dir);
  tc_start(dir);
  for (int i = 0; i < 10; i++) {
    char k[32];
    snprintf(k, sizeof k, "kill/%02d", i);
    tc_want_value(k, data + i * 300, 300);
  }
  int live = 0;
  uint64_t last = 0;
  assert_true(tc_listed(w.id, &live, NULL, &last, NULL));
  assert_true(live);
  assert_int_equal(last, g);
  Strata__V1__CheckStoreResponse *c = tc_check();
  assert_int_equal(c->errors_total, 0);
  assert_int_equal(c->missing_files, 0);
  rpc_free(c);
}


int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_renew_unregister_list, tc_setup, tc_teardown),
      cmocka_unit_test_setup_teardown(test_lease_expiry_restart_and_refused_commit, tc_setup,
                                      tc_teardown),
      cmocka_unit_test_setup_teardown(test_bad_references_refused_nothing_visible, tc_setup,
                                      tc_teardown),
      cmocka_unit_test_setup_teardown(test_mixed_commit_is_atomic, tc_setup, tc_teardown),
      cmocka_unit_test_setup_teardown(test_references_survive_sigkill, tc_setup, tc_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
