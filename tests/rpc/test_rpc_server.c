/*
 * Integration tests of every RPC through the C client library, run twice:
 * against the in-process server (server/embedded.h) and against a real
 * strata-server process ($STRATA_SERVER_BIN). Results, validation errors
 * naming the field, refusals as data, deadlines, unknown methods, oversize
 * messages, concurrent clients, and the data-directory lock.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "rpc/client.h"
#include "srv_harness.h"
#include "test_rpc_server.h"

harness H;
rpc_client *C;
static const char *server_bin; /* NULL in the embedded group */

/* The extra server a test starts for itself. Its teardown stops it (unless the
 * test did) and removes its directory, so a failed assertion leaves no
 * strata-server running and no directory behind. */
static harness X;

static int stop_extra(void **state) {
  (void)state;
  if (X.pid > 0 || X.emb) harness_stop(&X);
  if (X.dir[0]) harness_rmdir(X.dir);
  memset(&X, 0, sizeof X);
  return 0;
}

int64_t t_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

ProtobufCBinaryData t_bytes(const char *s) {
  return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

void t_expect_err(int rc, int want, const char *substr) {
  if (rc != want || (substr && !strstr(strata_errmsg(), substr)))
    fail_msg("rc %s (%d), want %s; message \"%s\", want it to contain \"%s\"", strata_errname(rc),
             rc, strata_errname(want), strata_errmsg(), substr ? substr : "");
}

uint64_t t_calls_active(void) {
  Strata__V1__StatsRequest q = STRATA__V1__STATS_REQUEST__INIT;
  Strata__V1__StatsResponse *r;
  if (rpc_admin_stats(C, NULL, &q, &r)) return UINT64_MAX;
  uint64_t n = r->calls_active;
  rpc_free(r);
  return n;
}

/* Polls Admin.Stats for up to 30 s: a slow machine gets there, a server that
 * never does fails the caller's assertion. */
uint64_t t_wait_calls_at_most(uint64_t n) {
  uint64_t got = t_calls_active();
  for (int64_t t0 = t_now_ms(); got > n && t_now_ms() - t0 < 30000; got = t_calls_active())
    usleep(10000);
  return got;
}

uint64_t t_wait_calls_at_least(uint64_t n) {
  uint64_t got = t_calls_active();
  for (int64_t t0 = t_now_ms(); (got < n || got == UINT64_MAX) && t_now_ms() - t0 < 30000;
       got = t_calls_active())
    usleep(10000);
  return got;
}

int srv_latest(uint64_t *gen) {
  Strata__V1__StatsRequest req = STRATA__V1__STATS_REQUEST__INIT;
  Strata__V1__StatsResponse *r;
  int rc = rpc_admin_stats(C, NULL, &req, &r);
  if (rc) return rc;
  *gen = r->latest ? r->latest->generation : 0;
  rpc_free(r);
  return 0;
}

static int group_setup(void **state) {
  (void)state;
  if (harness_start(&H, server_bin, NULL, NULL)) return -1;
  /* A generous default deadline: a loaded machine under ASan is slow, and tests
   * that are about deadlines set their own. */
  rpc_client_opts o = {.addr = H.addr, .timeout_ms = 30000, .wait_for_ready = 1};
  return rpc_client_open(&o, &C);
}

static int group_teardown(void **state) {
  (void)state;
  rpc_client_close(C);
  int rc = harness_stop(&H);
  harness_rmdir(H.dir);
  if (rc != 0) fprintf(stderr, "server exit status %d\n", rc);
  return rc == 0 ? 0 : -1;
}

/* --- Health, Admin, generic ---------------------------------------------------- */

static void test_health_serving_and_unknown_service(void **state) {
  (void)state;
  Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *resp;
  const char *names[] = {"", "strata.v1.Kv", "strata.v1.Locks", "strata.v1.Ops", "strata.v1.Admin"};
  for (size_t i = 0; i < 5; i++) {
    req.service = (char *)names[i];
    assert_int_equal(rpc_health_check(C, NULL, &req, &resp), 0);
    assert_int_equal(resp->status,
                     GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING);
    rpc_free(resp);
  }
  req.service = "strata.v1.Nope";
  t_expect_err(rpc_health_check(C, NULL, &req, &resp), STRATA_ENOTFOUND, "strata.v1.Nope");
}

/* Commits one put (the key as its value); returns its generation. */
static uint64_t put_one(rpc_client *c, const char *key) {
  Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
  p.key = t_bytes(key);
  p.value = t_bytes(key);
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = &pp;
  Strata__V1__CommitResponse *r;
  assert_int_equal(rpc_kv_commit(c, NULL, &q, &r), 0);
  assert_non_null(r->version);
  uint64_t gen = r->version->generation;
  rpc_free(r);
  return gen;
}

static void test_admin_stats(void **state) {
  (void)state;
  Strata__V1__StatsRequest req = STRATA__V1__STATS_REQUEST__INIT;
  Strata__V1__StatsResponse *r;
  assert_int_equal(rpc_admin_stats(C, NULL, &req, &r), 0);
  assert_string_equal(r->data_dir, H.dir);
  assert_int_equal(r->max_message_bytes, 64u << 20);
  assert_true(r->calls_total >= 1);
  assert_true(r->calls_active >= 1); /* this call */
  assert_true(r->uptime_ns > 0);
  assert_non_null(strstr(r->server_version, "strata"));
  assert_non_null(r->store);
  Strata__V1__StoreStats before = *r->store;
  rpc_free(r);
  /* One commit (a key no other test lists) moves the store's counters by one. */
  uint64_t gen = put_one(C, "admin/probe");
  assert_int_equal(rpc_admin_stats(C, NULL, &req, &r), 0);
  assert_non_null(r->store);
  assert_int_equal(r->store->commits, before.commits + 1);
  assert_int_equal(r->store->commit_groups, before.commit_groups + 1);
  assert_true(r->store->bytes_written > before.bytes_written);
  assert_true(r->store->build_ns > before.build_ns);
  assert_true(r->store->sync_ns > before.sync_ns); /* the commit log's sync */
  /* The rename phase is the per-group path's (--no-commit-log); the server's
   * default commits through the log, where it stays 0. */
  assert_true(r->store->publish_ns == before.publish_ns);
  assert_true(r->store->cache_bytes > 0); /* the commit's nodes are cached */
  /* Acknowledged means visible to Strata's readers at once; the OCDBT files
   * follow when the publisher has written the batch (polled for up to 30 s). */
  assert_true(r->store->committed_generation >= gen);
  for (int64_t t0 = t_now_ms(); r->store->published_generation < gen && t_now_ms() - t0 < 30000;) {
    rpc_free(r);
    usleep(10000);
    assert_int_equal(rpc_admin_stats(C, NULL, &req, &r), 0);
    assert_non_null(r->store);
  }
  assert_true(r->store->published_generation >= gen);
  assert_true(r->store->last_publish_lag_us > 0);
  rpc_free(r);
}

static void test_unknown_method_unimplemented_at_once(void **state) {
  (void)state;
  /* "At once": the answer is UNIMPLEMENTED, not the deadline expiring (which
   * would be DEADLINE_EXCEEDED), however slow the machine is. */
  t_expect_err(rpc_client_raw(C, "/strata.v1.Kv/Explode", NULL, "", 0, NULL, NULL),
               STRATA_EUNSUPPORTED, "/strata.v1.Kv/Explode");
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_UNIMPLEMENTED);
}

static void test_oversize_message_resource_exhausted_then_serving(void **state) {
  (void)state;
  rpc_client *big;
  rpc_client_opts o = {.addr = H.addr, .timeout_ms = 20000, .max_message_bytes = 80u << 20};
  assert_int_equal(rpc_client_open(&o, &big), 0);
  size_t n = (64u << 20) + 4096;
  uint8_t *v = malloc(n);
  memset(v, 'x', n);
  Strata__V1__CreateOpRequest req = STRATA__V1__CREATE_OP_REQUEST__INIT;
  req.user = "u";
  req.kind = "k";
  req.payload = (ProtobufCBinaryData){n, v};
  Strata__V1__CreateOpResponse *r;
  int rc = rpc_ops_create(big, NULL, &req, &r);
  assert_int_equal(rc, STRATA_ETOOBIG);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  free(v);
  rpc_client_close(big);
  Grpc__Health__V1__HealthCheckRequest h = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *hr;
  assert_int_equal(rpc_health_check(C, NULL, &h, &hr), 0);
  rpc_free(hr);
}

static void test_second_server_on_same_dir_refuses(void **state) {
  (void)state;
  if (server_bin) {
    char err[4096];
    const char *args[] = {server_bin, "--listen", "127.0.0.1:0", "--data-dir", H.dir, NULL};
    int st = harness_run(server_bin, args, err, sizeof err);
    assert_int_equal(st, 1);
    assert_non_null(strstr(err, "in use by another strata-server"));
  } else {
    srv_embedded *e;
    t_expect_err(srv_embedded_start(H.dir, &e), STRATA_EBUSY, "in use by another strata-server");
  }
}

static void test_bad_flags_exit_2(void **state) {
  (void)state;
  if (!server_bin) skip();
  char err[4096];
  const char *a1[] = {server_bin, "--threads", "zero", NULL};
  assert_int_equal(harness_run(server_bin, a1, err, sizeof err), 2);
  assert_non_null(strstr(err, "--threads"));
  const char *a2[] = {server_bin, "--log-level", "loud", NULL};
  assert_int_equal(harness_run(server_bin, a2, err, sizeof err), 2);
  const char *a3[] = {server_bin, "--help", NULL};
  assert_int_equal(harness_run(server_bin, a3, err, sizeof err), 0);
  assert_non_null(strstr(err, "--max-message-bytes"));
}

static void test_listen_address_in_use_fails_clearly(void **state) {
  (void)state;
  if (!server_bin) skip();
  char err[4096], dir[] = "/tmp/strata-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  const char *args[] = {server_bin, "--listen", H.addr, "--data-dir", dir, NULL};
  assert_int_equal(harness_run(server_bin, args, err, sizeof err), 1);
  assert_non_null(strstr(err, "cannot listen on"));
  harness_rmdir(dir);
}

/* --max-message-bytes is honoured in both directions and the server carries on. */
static void test_max_message_bytes_flag(void **state) {
  (void)state;
  if (!server_bin) skip();
  const char *extra[] = {"--max-message-bytes", "1048576", NULL};
  assert_int_equal(harness_start(&X, server_bin, NULL, extra), 0);
  rpc_client *c;
  rpc_client_opts o = {.addr = X.addr, .timeout_ms = 30000, .wait_for_ready = 1};
  assert_int_equal(rpc_client_open(&o, &c), 0);
  size_t n = 2u << 20;
  uint8_t *v = calloc(1, n);
  Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
  p.key = t_bytes("big");
  p.value = (ProtobufCBinaryData){n, v};
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = &pp;
  Strata__V1__CommitResponse *r;
  t_expect_err(rpc_kv_commit(c, NULL, &q, &r), STRATA_ETOOBIG, NULL);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_RESOURCE_EXHAUSTED);
  /* 900 KiB fits going in, and the reply of a Get fits going out. */
  p.value.len = 900u << 10;
  assert_int_equal(rpc_kv_commit(c, NULL, &q, &r), 0);
  rpc_free(r);
  Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
  gq.key = t_bytes("big");
  Strata__V1__GetResponse *gr;
  assert_int_equal(rpc_kv_get(c, NULL, &gq, &gr), 0);
  assert_int_equal(gr->value.len, 900u << 10);
  rpc_free(gr);
  Strata__V1__StatsRequest sq = STRATA__V1__STATS_REQUEST__INIT;
  Strata__V1__StatsResponse *sr;
  assert_int_equal(rpc_admin_stats(c, NULL, &sq, &sr), 0);
  assert_int_equal(sr->max_message_bytes, 1048576);
  rpc_free(sr);
  free(v);
  rpc_client_close(c);
  assert_int_equal(harness_stop(&X), 0);
}

/* --no-commit-log commits through per-group files (the rename phase runs and
 * the files are never behind); the default commits through the log. One data
 * directory goes per-group -> log -> per-group across restarts, and every
 * start reads everything the other mode wrote. */
static void test_no_commit_log_flag_and_switching_modes(void **state) {
  (void)state;
  if (!server_bin) skip();
  char dir[] = "/tmp/strata-test-XXXXXX";
  assert_non_null(mkdtemp(dir));
  const char *per_group[] = {"--no-commit-log", NULL};
  const char *keys[] = {"mode/a", "mode/b", "mode/c"};
  for (int round = 0; round < 3; round++) {
    int log = round == 1;
    assert_int_equal(harness_start(&X, server_bin, dir, log ? NULL : per_group), 0);
    rpc_client *c;
    rpc_client_opts o = {.addr = X.addr, .timeout_ms = 30000, .wait_for_ready = 1};
    assert_int_equal(rpc_client_open(&o, &c), 0);
    for (int k = 0; k < round; k++) { /* what the earlier rounds wrote */
      Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
      gq.key = t_bytes(keys[k]);
      Strata__V1__GetResponse *gr;
      assert_int_equal(rpc_kv_get(c, NULL, &gq, &gr), 0);
      assert_int_equal(gr->value.len, strlen(keys[k]));
      assert_memory_equal(gr->value.data, keys[k], strlen(keys[k]));
      rpc_free(gr);
    }
    uint64_t gen = put_one(c, keys[round]);
    assert_int_equal(gen, (uint64_t)round + 1);
    Strata__V1__StatsRequest sq = STRATA__V1__STATS_REQUEST__INIT;
    Strata__V1__StatsResponse *sr;
    assert_int_equal(rpc_admin_stats(c, NULL, &sq, &sr), 0);
    assert_non_null(sr->store);
    assert_int_equal(sr->store->committed_generation, gen);
    if (log) {
      assert_int_equal(sr->store->publish_ns, 0); /* no per-group rename phase */
    } else {
      assert_true(sr->store->publish_ns > 0);
      assert_int_equal(sr->store->tree_wait_ns, 0); /* no tree build overlaps a sync */
      assert_int_equal(sr->store->published_generation, gen); /* published before the ack */
    }
    rpc_free(sr);
    rpc_client_close(c);
    assert_int_equal(harness_stop(&X), 0);
  }
  harness_rmdir(dir);
}

static void test_sigint_drains_and_exits_0(void **state) {
  (void)state;
  if (!server_bin) skip();
  assert_int_equal(harness_start(&X, server_bin, NULL, NULL), 0);
  kill(X.pid, SIGINT);
  int st;
  pid_t w = waitpid(X.pid, &st, 0);
  if (w == X.pid) X.pid = 0; /* reaped: the teardown must not signal the pid again */
  assert_true(w > 0);
  assert_true(WIFEXITED(st));
  assert_int_equal(WEXITSTATUS(st), 0);
}

/* Ops.List, Ops.ListStuck and Locks.List size their messages by what the rows
 * take: 6 ops each holding 64 indefinite 4 KiB rows (1.5 MiB of scope and of
 * lock rows) all arrive through a server limited to 1 MiB messages. */
enum { BIG_OPS = 6, BIG_ROWS = 64, BIG_ROW_BYTES = 4096 };

/* Reads one listing to its end; returns its final code (0 = ended OK). */
static int drain_counts(rpc_client *c, int which, const uint64_t *ids, size_t *found,
                        size_t *scope_rows) {
  rpc_cstream *st;
  int rc;
  *found = *scope_rows = 0;
  if (which == 0) {
    Strata__V1__ListOpsRequest q = STRATA__V1__LIST_OPS_REQUEST__INIT;
    Strata__V1__ListOpsResponse *m;
    if ((rc = rpc_ops_list(c, NULL, &q, &st))) return rc;
    while ((rc = rpc_ops_list_next(st, &m)) == 1) {
      for (size_t i = 0; i < m->n_ops; i++)
        for (size_t j = 0; j < BIG_OPS; j++)
          if (m->ops[i]->op_id == ids[j]) {
            (*found)++;
            *scope_rows += m->ops[i]->n_scope;
          }
      rpc_free(m);
    }
  } else if (which == 1) {
    Strata__V1__ListStuckRequest q = STRATA__V1__LIST_STUCK_REQUEST__INIT;
    Strata__V1__ListStuckResponse *m;
    if ((rc = rpc_ops_list_stuck(c, NULL, &q, &st))) return rc;
    while ((rc = rpc_ops_list_stuck_next(st, &m)) == 1) {
      for (size_t i = 0; i < m->n_ops; i++)
        for (size_t j = 0; j < BIG_OPS; j++)
          if (m->ops[i]->op_id == ids[j]) {
            (*found)++;
            *scope_rows += m->ops[i]->n_scope;
          }
      rpc_free(m);
    }
  } else {
    Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
    Strata__V1__ListLocksResponse *m;
    if ((rc = rpc_locks_list(c, NULL, &q, &st))) return rc;
    while ((rc = rpc_locks_list_next(st, &m)) == 1) {
      for (size_t i = 0; i < m->n_locks; i++) {
        (*found)++;
        *scope_rows += m->locks[i]->row.len == BIG_ROW_BYTES;
      }
      rpc_free(m);
    }
  }
  if (rc) fprintf(stderr, "stream %d: %s\n", which, strata_errmsg());
  rpc_cstream_close(st);
  return rc;
}

static void test_streams_of_large_rows_fit_a_small_message_limit(void **state) {
  (void)state;
  if (!server_bin) skip();
  const char *extra[] = {"--max-message-bytes", "1048576", NULL};
  assert_int_equal(harness_start(&X, server_bin, NULL, extra), 0);
  rpc_client *c;
  rpc_client_opts o = {.addr = X.addr, .timeout_ms = 30000, .wait_for_ready = 1};
  assert_int_equal(rpc_client_open(&o, &c), 0);
  uint8_t *rowbuf = malloc((size_t)BIG_ROWS * BIG_ROW_BYTES);
  ProtobufCBinaryData rows[BIG_ROWS];
  uint64_t ids[BIG_OPS];
  for (size_t j = 0; j < BIG_OPS; j++) {
    Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
    cq.user = "big";
    cq.kind = "rows";
    Strata__V1__CreateOpResponse *cr;
    assert_int_equal(rpc_ops_create(c, NULL, &cq, &cr), 0);
    ids[j] = cr->op->op_id;
    rpc_free(cr);
    for (size_t i = 0; i < BIG_ROWS; i++) {
      uint8_t *r = rowbuf + i * BIG_ROW_BYTES;
      memset(r, 'a' + (int)(i % 26), BIG_ROW_BYTES);
      snprintf((char *)r, 32, "big/%zu/%zu/", j, i);
      rows[i] = (ProtobufCBinaryData){BIG_ROW_BYTES, r};
    }
    Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
    aq.op_id = ids[j];
    aq.n_rows = BIG_ROWS;
    aq.rows = rows;
    aq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
    Strata__V1__AcquireResponse *ar;
    assert_int_equal(rpc_locks_acquire(c, NULL, &aq, &ar), 0);
    assert_true(ar->acquired);
    rpc_free(ar);
  }
  /* Ops.List, Ops.ListStuck, Locks.List, then the server is stopped (the
   * teardown stops it too when an assertion above failed). */
  int rc[3];
  size_t found[3], nrows[3];
  for (int which = 0; which < 3; which++)
    rc[which] = drain_counts(c, which, ids, &found[which], &nrows[which]);
  free(rowbuf);
  rpc_client_close(c);
  assert_int_equal(harness_stop(&X), 0);
  for (int which = 0; which < 3; which++) {
    assert_int_equal(rc[which], 0);
    assert_int_equal(found[which], which < 2 ? BIG_OPS : BIG_OPS * BIG_ROWS);
    assert_int_equal(nrows[which], BIG_OPS * BIG_ROWS);
  }
}

/* --grace-ms 0 means no drain time, not the 5000 ms default. */
static void test_grace_ms_zero_is_honoured(void **state) {
  (void)state;
  if (!server_bin) skip();
  const char *extra[] = {"--grace-ms", "0", NULL};
  assert_int_equal(harness_start(&X, server_bin, NULL, extra), 0);
  assert_int_equal(harness_stop(&X), 0);
  char buf[16384];
  FILE *f = fopen(X.log, "r");
  assert_non_null(f);
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  assert_non_null(strstr(buf, "event=rpc_draining"));
  assert_non_null(strstr(buf, "grace_ms=0\n"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_health_serving_and_unknown_service),
      cmocka_unit_test(test_admin_stats),
      cmocka_unit_test(test_unknown_method_unimplemented_at_once),
      cmocka_unit_test(test_oversize_message_resource_exhausted_then_serving),
      cmocka_unit_test(test_second_server_on_same_dir_refuses),
      cmocka_unit_test(test_bad_flags_exit_2),
      cmocka_unit_test(test_listen_address_in_use_fails_clearly),
      cmocka_unit_test_teardown(test_max_message_bytes_flag, stop_extra),
      cmocka_unit_test_teardown(test_no_commit_log_flag_and_switching_modes, stop_extra),
      cmocka_unit_test_teardown(test_sigint_drains_and_exits_0, stop_extra),
      cmocka_unit_test_teardown(test_grace_ms_zero_is_honoured, stop_extra),
      cmocka_unit_test_teardown(test_streams_of_large_rows_fit_a_small_message_limit, stop_extra),
      T_VALIDATION_TESTS T_LOCKS_TESTS T_OPS_TESTS T_KV_TESTS T_WATCH_TESTS};
  int failed = cmocka_run_group_tests_name("embedded", tests, group_setup, group_teardown);
  server_bin = getenv("STRATA_SERVER_BIN");
  if (server_bin && *server_bin)
    failed += cmocka_run_group_tests_name("process", tests, group_setup, group_teardown);
  else
    fprintf(stderr, "STRATA_SERVER_BIN not set: the process group did not run\n");
  return failed ? 1 : 0;
}
