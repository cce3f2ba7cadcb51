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
  const char *const extra[] = {"--gc-interval", "0", NULL};
  assert_int_equal(harness_start(&H, bin, dir, extra), 0);
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

static int file_exists(const writer *w, const char *name) {
  char p[800];
  snprintf(p, sizeof p, "%s/%s%s", w->store_dir, w->prefix, name);
  struct stat st;
  return stat(p, &st) == 0;
}

static Strata__V1__GcResponse *gc(int dry_run) {
  Strata__V1__GcRequest q = STRATA__V1__GC_REQUEST__INIT;
  q.dry_run = dry_run;
  Strata__V1__GcResponse *r;
  int rc = rpc_admin_gc(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "Gc: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return r;
}

static Strata__V1__CheckStoreResponse *check(void) {
  Strata__V1__CheckStoreRequest q = STRATA__V1__CHECK_STORE_REQUEST__INIT;
  Strata__V1__CheckStoreResponse *r;
  int rc = rpc_admin_check(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "Check: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  for (size_t i = 0; i < r->n_errors; i++) fprintf(stderr, "check: %s\n", r->errors[i]);
  return r;
}

static int has_error_naming(const Strata__V1__CheckStoreResponse *r, const char *what) {
  for (size_t i = 0; i < r->n_errors; i++)
    if (strstr(r->errors[i], what)) return 1;
  return 0;
}

static uint32_t crc(const void *p, size_t n) { return ocdbt_crc32c(0, p, n); }

static void unregister(const writer *w) {
  Strata__V1__UnregisterWriterRequest q = STRATA__V1__UNREGISTER_WRITER_REQUEST__INIT;
  q.writer_id = w->id;
  Strata__V1__UnregisterWriterResponse *r;
  assert_int_equal(rpc_coord_unregister_writer(C, NULL, &q, &r), 0);
  rpc_free(r);
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


/* --- references ---------------------------------------------------------------------- */

/* Each bad reference is refused with its status and a message naming the
 * file; the good puts of the same commit stay invisible. */
static void test_bad_references_refused_nothing_visible(void **state) {
  (void)state;
  writer w = reg("bad-refs", 60000), other = reg("other", 60000);
  char data[100];
  for (int i = 0; i < 100; i++) data[i] = (char)('a' + i % 26);
  write_file(&w, "good", data, sizeof data, 1);
  write_file(&w, "unreg", data, sizeof data, 0);
  write_file(&other, "theirs", data, sizeof data, 1);
  struct {
    const char *name;
    put bad;
    const writer *as;
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
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    put ps[3] = {{.key = "bad/visible", .value = "v"},
                 {.key = "bad/good-ref", .ref_name = "good", .len = 10, .has_crc = 1,
                  .crc = crc(data, 10)},
                 cases[i].bad};
    int rc;
    if (i == 0) {
      /* w commits a reference into other's prefix: the path is built with
       * other's prefix, the writer_id is w's. */
      Strata__V1__Put pv[1], *pp[1] = {&pv[0]};
      Strata__V1__DataRef d = STRATA__V1__DATA_REF__INIT;
      char path[200];
      snprintf(path, sizeof path, "%stheirs", other.prefix);
      d.path = path;
      d.length = 10;
      strata__v1__put__init(&pv[0]);
      pv[0].key = (ProtobufCBinaryData){7, (uint8_t *)"bad/ref"};
      pv[0].ref = &d;
      Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
      q.n_puts = 1;
      q.puts = pp;
      q.writer_id = w.id;
      Strata__V1__CommitResponse *r;
      rc = rpc_kv_commit(C, NULL, &q, &r);
      cases[i].want = STRATA_EINVALID;
      cases[i].status = GRPC_STATUS_INVALID_ARGUMENT;
      cases[i].msg = path;
    } else {
      rc = commit(cases[i].as, ps, 3, NULL, 0, NULL, 0, NULL, NULL);
    }
    if (rc != cases[i].want || !strstr(strata_errmsg(), cases[i].msg))
      fprintf(stderr, "%s: rc %d, %s\n", cases[i].name, rc, strata_errmsg());
    assert_int_equal(rc, cases[i].want);
    assert_int_equal(rpc_client_last_status(), cases[i].status);
    assert_non_null(strstr(strata_errmsg(), cases[i].msg));
    want_absent("bad/visible");
    want_absent("bad/good-ref");
    want_absent("bad/ref");
  }
  /* A reference without writer_id. */
  put p = {.key = "bad/ref", .ref_name = "good", .len = 10};
  writer none = w;
  none.id = 0;
  assert_int_equal(commit(&none, &p, 1, NULL, 0, NULL, 0, NULL, NULL), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "writer_id"));
  /* The good reference alone lands, with the right bytes. */
  put ok = {.key = "bad/good-ref", .ref_name = "good", .off = 3, .len = 10, .has_crc = 1,
            .crc = crc(data + 3, 10)};
  assert_int_equal(commit(&w, &ok, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  want_value("bad/good-ref", data + 3, 10);
}

/* Value puts, reference puts, a delete, conditions and a lock fence in one
 * commit: all at one generation, or (a condition or the fence fails) none. */
static void test_mixed_commit_is_atomic(void **state) {
  (void)state;
  writer w = reg("mixed", 60000);
  const char *bytes = "0123456789abcdefghij";
  write_file(&w, "m1", bytes, 20, 1);
  put seed = {.key = "mix/old", .value = "old"};
  assert_int_equal(commit(NULL, &seed, 1, NULL, 0, NULL, 0, NULL, NULL), 0);

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

  put ps[3] = {{.key = "mix/v", .value = "by value"},
               {.key = "mix/r1", .ref_name = "m1", .off = 0, .len = 10, .has_crc = 1,
                .crc = crc(bytes, 10)},
               {.key = "mix/r2", .ref_name = "m1", .off = 10, .len = 10}};
  const char *dels[1] = {"mix/old"};
  Strata__V1__Condition absent = STRATA__V1__CONDITION__INIT;
  absent.key = (ProtobufCBinaryData){5, (uint8_t *)"mix/v"};
  absent.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
  Strata__V1__Condition present = absent;
  present.key = (ProtobufCBinaryData){7, (uint8_t *)"mix/old"};
  Strata__V1__Condition *ok_conds[1] = {&absent}, *bad_conds[2] = {&absent, &present};

  /* The fence of another op: refused, nothing visible. */
  assert_int_equal(commit(&w, ps, 3, dels, 1, ok_conds, 1, &wrong, NULL), STRATA_EFENCED);
  /* A failing condition: refused, nothing visible. */
  assert_int_equal(commit(&w, ps, 3, dels, 1, bad_conds, 2, &fence, NULL), STRATA_ECONDITION);
  want_absent("mix/v");
  want_absent("mix/r1");
  want_absent("mix/r2");
  want_value("mix/old", "old", 3);
  /* Everything holds: one generation with all of it. */
  uint64_t g = 0;
  assert_int_equal(commit(&w, ps, 3, dels, 1, ok_conds, 1, &fence, &g), 0);
  assert_true(g > 0);
  want_value("mix/v", "by value", 8);
  want_value("mix/r1", bytes, 10);
  want_value("mix/r2", bytes + 10, 10);
  want_absent("mix/old");
  uint64_t bytes_committed = 0, last = 0;
  assert_true(listed(w.id, NULL, &bytes_committed, &last, NULL));
  assert_int_equal(bytes_committed, 20);
  assert_int_equal(last, g);
}

/* --- GC and check --------------------------------------------------------------------- */

static void test_gc_spares_live_and_referenced_removes_dead(void **state) {
  (void)state;
  writer live = reg("live", 3600000), dead = reg("dead", 1000);
  write_file(&live, "l1", "live bytes", 10, 1);
  write_file(&dead, "ref", "referenced", 10, 1);
  write_file(&dead, "unref", "not referenced", 14, 1);
  write_file(&dead, "unreg", "never registered", 16, 0);
  put p = {.key = "gc/ref", .ref_name = "ref", .len = 10};
  assert_int_equal(commit(&dead, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);

  /* While both live, GC removes nothing. */
  Strata__V1__GcResponse *r = gc(0);
  assert_int_equal(r->files_removed, 0);
  rpc_free(r);
  wait_ended(&dead);
  /* Dry run: says what would go, removes nothing. */
  r = gc(1);
  assert_int_equal(r->files_removed, 2);
  assert_int_equal(r->bytes_removed, 30);
  assert_int_equal(r->n_paths, 2);
  rpc_free(r);
  assert_true(file_exists(&dead, "unref") && file_exists(&dead, "unreg"));
  r = gc(0);
  assert_int_equal(r->files_removed, 2);
  assert_int_equal(r->files_kept, 1);
  assert_int_equal(r->writers_collected, 1);
  rpc_free(r);
  assert_false(file_exists(&dead, "unref"));
  assert_false(file_exists(&dead, "unreg"));
  assert_true(file_exists(&dead, "ref"));
  assert_true(file_exists(&live, "l1"));
  want_value("gc/ref", "referenced", 10);
  assert_false(listed(dead.id, NULL, NULL, NULL, NULL));
  assert_true(listed(live.id, NULL, NULL, NULL, NULL));

  /* The check: the live writer's file is unreferenced but not an orphan. */
  Strata__V1__CheckStoreResponse *c = check();
  assert_int_equal(c->errors_total, 0);
  assert_int_equal(c->unreferenced_files, 1);
  assert_int_equal(c->unreferenced_live_writer_files, 1);
  assert_true(c->values_checked >= 1);
  rpc_free(c);
  /* Once the live writer unregisters, its unreferenced file goes too, and the
   * check finds no orphans. */
  unregister(&live);
  r = gc(0);
  assert_int_equal(r->files_removed, 1);
  rpc_free(r);
  assert_false(file_exists(&live, "l1"));
  c = check();
  assert_int_equal(c->errors_total, 0);
  assert_int_equal(c->unreferenced_files, 0);
  assert_int_equal(c->missing_files, 0);
  rpc_free(c);
  want_value("gc/ref", "referenced", 10);
}

/* Finds the Strata data file under dir/kv/d holding `pat`; its path and the
 * offset of pat. */
static int find_in_data_files(const char *dir, const char *pat, size_t plen, char *path, size_t cap,
                              long *off) {
  char d[700];
  snprintf(d, sizeof d, "%s/kv/d", dir);
  char cmd[900];
  snprintf(cmd, sizeof cmd, "grep -l -F '%s' %s/* 2>/dev/null", pat, d);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  int found = fgets(path, (int)cap, f) != NULL;
  pclose(f);
  if (!found) return 0;
  path[strcspn(path, "\n")] = 0;
  FILE *g = fopen(path, "rb");
  if (!g) return 0;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, g);
  fclose(g);
  for (size_t i = 0; i + plen <= n; i++)
    if (!memcmp(buf + i, pat, plen)) {
      *off = (long)i;
      return 1;
    }
  return 0;
}

static void test_check_reports_damaged_values_naming_the_file(void **state) {
  (void)state;
  writer w = reg("damage", 60000);
  write_file(&w, "short", "0123456789", 10, 1);
  put p = {.key = "dmg/ref", .ref_name = "short", .len = 10};
  assert_int_equal(commit(&w, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  char big[501];
  memset(big, 'Q', 500);
  memcpy(big, "UNIQUE-PATTERN-", 15);
  big[500] = 0;
  put b = {.key = "dmg/big", .value = big};
  assert_int_equal(commit(NULL, &b, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  Strata__V1__CheckStoreResponse *c = check();
  assert_int_equal(c->errors_total, 0);
  rpc_free(c);

  char dir[512];
  snprintf(dir, sizeof dir, "%s", H.dir);
  stop();
  /* Flip a byte inside the out-of-line value in Strata's data file, and cut
   * the writer's file short. */
  char path[1024];
  long off = 0;
  assert_true(find_in_data_files(dir, "UNIQUE-PATTERN-", 15, path, sizeof path, &off));
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, off + 100, SEEK_SET);
  fputc('R', f);
  fclose(f);
  char wf[900];
  snprintf(wf, sizeof wf, "%s/kv/%sshort", dir, w.prefix);
  assert_int_equal(truncate(wf, 5), 0);
  start(dir);
  c = check();
  assert_true(c->errors_total >= 2);
  const char *base = strrchr(path, '/') + 1;
  assert_true(has_error_naming(c, base));
  assert_true(has_error_naming(c, "short"));
  assert_true(has_error_naming(c, "dmg/big"));
  rpc_free(c);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_register_renew_unregister_list, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lease_expiry_restart_and_refused_commit, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bad_references_refused_nothing_visible, setup, teardown),
      cmocka_unit_test_setup_teardown(test_mixed_commit_is_atomic, setup, teardown),
      cmocka_unit_test_setup_teardown(test_gc_spares_live_and_referenced_removes_dead, setup, teardown),
      cmocka_unit_test_setup_teardown(test_check_reports_damaged_values_naming_the_file, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
