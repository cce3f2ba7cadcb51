/*
 * Coordinator mode through a real strata-server (issue 12, points 1-3): the
 * writer registry (leases on the server's clock, surviving a restart, ids
 * never reused), commits of references to writers' own files and every bad
 * reference (right status, naming the file, nothing visible), a mixed commit
 * with conditions and a lock fence, GC (never a live writer's file, a dead
 * writer's unreferenced files removed, referenced ones kept) and the check
 * (0 orphans after GC; a flipped byte in a referenced range is an error naming
 * the file). Needs $STRATA_SERVER_BIN. Leases use the shortest TTL (1 s) and
 * the tests poll ListWriters until the server says the lease ended: no fixed
 * sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "rpc/client.h"
#include "srv_harness.h"
#include "storage/ocdbt.h"

static harness H;
static rpc_client *C;

static void start(const char *dir) {
  const char *bin = getenv("STRATA_SERVER_BIN");
  assert_non_null(bin);
  assert_int_equal(harness_start(&H, bin, dir, NULL), 0);
  rpc_client_opts o = {.addr = H.addr};
  assert_int_equal(rpc_client_open(&o, &C), 0);
}

static void stop(void) {
  rpc_client_close(C);
  C = NULL;
  assert_int_equal(harness_stop(&H), 0);
}

static int setup(void **state) {
  (void)state;
  start(NULL);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  if (C) stop();
  harness_rmdir(H.dir);
  return 0;
}

/* --- helpers ---------------------------------------------------------------------- */

typedef struct writer {
  uint64_t id;
  char prefix[64];
  char store_dir[600];
} writer;

static writer reg(const char *name, uint64_t ttl_ms) {
  Strata__V1__RegisterWriterRequest q = STRATA__V1__REGISTER_WRITER_REQUEST__INIT;
  q.name = (char *)name;
  q.lease_ttl_ms = ttl_ms;
  Strata__V1__RegisterWriterResponse *r;
  int rc = rpc_coord_register_writer(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "RegisterWriter: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  writer w = {.id = r->writer_id};
  snprintf(w.prefix, sizeof w.prefix, "%s", r->prefix);
  snprintf(w.store_dir, sizeof w.store_dir, "%s", r->store_dir);
  rpc_free(r);
  return w;
}

/* Writes `data` to the writer's file `name` (create-new, fsync) and registers it. */
static void write_file(const writer *w, const char *name, const void *data, size_t n, int do_reg) {
  char p[800];
  snprintf(p, sizeof p, "%s/%s%s", w->store_dir, w->prefix, name);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) fprintf(stderr, "%s: %s\n", p, strerror(errno));
  assert_true(fd >= 0);
  assert_int_equal(write(fd, data, n), (ssize_t)n);
  assert_int_equal(fsync(fd), 0);
  close(fd);
  if (!do_reg) return;
  Strata__V1__RegisterFileRequest q = STRATA__V1__REGISTER_FILE_REQUEST__INIT;
  char rel[200];
  snprintf(rel, sizeof rel, "%s%s", w->prefix, name);
  q.writer_id = w->id;
  q.path = rel;
  Strata__V1__RegisterFileResponse *r;
  int rc = rpc_coord_register_file(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "RegisterFile: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  assert_int_equal(r->size, n);
  rpc_free(r);
}

/* One put: by value (ref_name NULL) or by reference. */
typedef struct put {
  const char *key;
  const char *value;
  const char *ref_name;
  uint64_t off, len;
  int has_crc;
  uint32_t crc;
} put;

/* Commits puts (and deletes) as writer w; returns the call's code. */
static int commit(const writer *w, const put *ps, size_t n, const char *const *dels, size_t nd,
                  Strata__V1__Condition **conds, size_t nc, Strata__V1__LockFence *fence,
                  uint64_t *gen) {
  Strata__V1__Put pv[16], *pp[16];
  Strata__V1__DataRef rv[16];
  char paths[16][200];
  ProtobufCBinaryData dv[16];
  assert_true(n <= 16 && nd <= 16);
  for (size_t i = 0; i < n; i++) {
    strata__v1__put__init(&pv[i]);
    pv[i].key = (ProtobufCBinaryData){strlen(ps[i].key), (uint8_t *)ps[i].key};
    if (ps[i].value) pv[i].value = (ProtobufCBinaryData){strlen(ps[i].value), (uint8_t *)ps[i].value};
    if (ps[i].ref_name) {
      strata__v1__data_ref__init(&rv[i]);
      snprintf(paths[i], sizeof paths[i], "%s%s", w ? w->prefix : "d/", ps[i].ref_name);
      rv[i].path = paths[i];
      rv[i].offset = ps[i].off;
      rv[i].length = ps[i].len;
      rv[i].has_crc32c = ps[i].has_crc;
      rv[i].crc32c = ps[i].crc;
      pv[i].ref = &rv[i];
    }
    pp[i] = &pv[i];
  }
  for (size_t i = 0; i < nd; i++) dv[i] = (ProtobufCBinaryData){strlen(dels[i]), (uint8_t *)dels[i]};
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = n;
  q.puts = pp;
  q.n_deletes = nd;
  q.deletes = dv;
  q.n_conditions = nc;
  q.conditions = conds;
  q.fence = fence;
  q.writer_id = w ? w->id : 0;
  Strata__V1__CommitResponse *r;
  int rc = rpc_kv_commit(C, NULL, &q, &r);
  if (!rc && gen) *gen = r->version->generation;
  rpc_free(r);
  return rc;
}

static int get(const char *key, char *out, size_t cap, size_t *n) {
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  q.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
  Strata__V1__GetResponse *r;
  int rc = rpc_kv_get(C, NULL, &q, &r);
  assert_int_equal(rc, 0);
  int found = r->found;
  if (found) {
    assert_true(r->value.len <= cap);
    memcpy(out, r->value.data, r->value.len);
    *n = r->value.len;
  }
  rpc_free(r);
  return found;
}

static void want_value(const char *key, const void *want, size_t n) {
  char buf[4096];
  size_t got = 0;
  assert_true(get(key, buf, sizeof buf, &got));
  assert_int_equal(got, n);
  assert_memory_equal(buf, want, n);
}

static void want_absent(const char *key) {
  char buf[4096];
  size_t got;
  assert_false(get(key, buf, sizeof buf, &got));
}

/* A writer as ListWriters shows it (include_expired); 0 when not listed. */
static int listed(uint64_t id, int *live, uint64_t *bytes, uint64_t *last_gen, uint64_t *files) {
  Strata__V1__ListWritersRequest q = STRATA__V1__LIST_WRITERS_REQUEST__INIT;
  q.include_expired = 1;
  Strata__V1__ListWritersResponse *r;
  assert_int_equal(rpc_coord_list_writers(C, NULL, &q, &r), 0);
  int found = 0;
  for (size_t i = 0; i < r->n_writers; i++) {
    if (r->writers[i]->writer_id != id) continue;
    found = 1;
    if (live) *live = r->writers[i]->live;
    if (bytes) *bytes = r->writers[i]->bytes_committed;
    if (last_gen) *last_gen = r->writers[i]->last_commit_generation;
    if (files) *files = r->writers[i]->files_registered;
  }
  rpc_free(r);
  return found;
}

/* Polls (yielding, no fixed sleep as synchronisation) until the server
 * reports w's lease ended. */
static void wait_ended(const writer *w) {
  for (;;) {
    int live = 1;
    assert_true(listed(w->id, &live, NULL, NULL, NULL));
    if (!live) return;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
}

/* --- registry ---------------------------------------------------------------------- */

static void test_register_renew_unregister_list(void **state) {
  (void)state;
  writer a = reg("host-a/1", 60000), b = reg("host-b/2", 60000);
  assert_true(a.id != 0 && b.id > a.id);
  char want[64];
  snprintf(want, sizeof want, "d/w%014llx-", (unsigned long long)a.id);
  assert_string_equal(a.prefix, want);
  assert_true(a.store_dir[0] == '/');
  int live = 0;
  assert_true(listed(a.id, &live, NULL, NULL, NULL));
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
  assert_true(listed(b.id, &live, NULL, NULL, NULL));
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
  writer w = reg("short", 1000), keep = reg("long", 3600000);
  write_file(&w, "f1", "hello world", 11, 1);
  put p = {.key = "exp/k1", .ref_name = "f1", .off = 0, .len = 5};
  assert_int_equal(commit(&w, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  want_value("exp/k1", "hello", 5);
  wait_ended(&w);
  put p2 = {.key = "exp/k2", .ref_name = "f1", .off = 6, .len = 5};
  assert_int_equal(commit(&w, &p2, 1, NULL, 0, NULL, 0, NULL, NULL), STRATA_EEXPIRED);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_FAILED_PRECONDITION);
  assert_non_null(strstr(strata_errmsg(), "lease ended"));
  want_absent("exp/k2");

  /* Restart: the registry is as it was, and ids continue after the last. */
  char dir[512];
  snprintf(dir, sizeof dir, "%s", H.dir);
  stop();
  start(dir);
  int live = 1;
  uint64_t bytes = 0, last_gen = 0, files = 0;
  assert_true(listed(w.id, &live, &bytes, &last_gen, &files));
  assert_false(live);
  assert_int_equal(bytes, 5);
  assert_true(last_gen >= 1);
  assert_int_equal(files, 1);
  assert_true(listed(keep.id, &live, NULL, NULL, NULL));
  assert_true(live);
  writer n = reg("after-restart", 60000);
  assert_true(n.id > keep.id);
  assert_int_equal(commit(&w, &p2, 1, NULL, 0, NULL, 0, NULL, NULL), STRATA_EEXPIRED);
  want_absent("exp/k2");
  want_value("exp/k1", "hello", 5);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_renew_unregister_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_expiry_restart_and_refused_commit, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
