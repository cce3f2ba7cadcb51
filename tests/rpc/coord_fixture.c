/*
 * The coordinator-mode tests' fixture (coord_fixture.h): one real strata-server
 * per test and the registry, reference-commit, read and check calls the tests
 * make through it, each asserting its own success unless it returns a code.
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
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "coord_fixture.h"
#include "storage/ocdbt.h"

harness H;
rpc_client *C;
const char *tc_gc_interval = "0";

void tc_start(const char *dir) {
  const char *bin = getenv("STRATA_SERVER_BIN");
  assert_non_null(bin);
  const char *const extra[] = {"--gc-interval", tc_gc_interval, NULL};
  assert_int_equal(harness_start(&H, bin, dir, extra), 0);
  rpc_client_opts o = {.addr = H.addr};
  assert_int_equal(rpc_client_open(&o, &C), 0);
}

void tc_stop(void) {
  rpc_client_close(C);
  C = NULL;
  assert_int_equal(harness_stop(&H), 0);
}

int tc_setup(void **state) {
  (void)state;
  tc_start(NULL);
  return 0;
}

int tc_teardown(void **state) {
  (void)state;
  if (C) tc_stop();
  harness_rmdir(H.dir);
  return 0;
}

tc_writer tc_reg(const char *name, uint64_t ttl_ms) {
  Strata__V1__RegisterWriterRequest q = STRATA__V1__REGISTER_WRITER_REQUEST__INIT;
  q.name = (char *)name;
  q.lease_ttl_ms = ttl_ms;
  Strata__V1__RegisterWriterResponse *r;
  int rc = rpc_coord_register_writer(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "RegisterWriter: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  tc_writer w = {.id = r->writer_id};
  snprintf(w.prefix, sizeof w.prefix, "%s", r->prefix);
  snprintf(w.store_dir, sizeof w.store_dir, "%s", r->store_dir);
  rpc_free(r);
  return w;
}

void tc_write_file(const tc_writer *w, const char *name, const void *data, size_t n, int do_reg) {
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

int tc_commit(const tc_writer *w, const tc_put *ps, size_t n, const char *const *dels, size_t nd,
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

void tc_want_value(const char *key, const void *want, size_t n) {
  char buf[4096];
  size_t got = 0;
  assert_true(get(key, buf, sizeof buf, &got));
  assert_int_equal(got, n);
  assert_memory_equal(buf, want, n);
}

void tc_want_absent(const char *key) {
  char buf[4096];
  size_t got;
  assert_false(get(key, buf, sizeof buf, &got));
}

int tc_listed(uint64_t id, int *live, uint64_t *bytes, uint64_t *last_gen, uint64_t *files) {
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

void tc_wait_ended(const tc_writer *w) {
  for (;;) {
    int live = 1;
    assert_true(tc_listed(w->id, &live, NULL, NULL, NULL));
    if (!live) return;
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
}

Strata__V1__CheckStoreResponse *tc_check(void) {
  Strata__V1__CheckStoreRequest q = STRATA__V1__CHECK_STORE_REQUEST__INIT;
  Strata__V1__CheckStoreResponse *r;
  int rc = rpc_admin_check(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "Check: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  for (size_t i = 0; i < r->n_errors; i++) fprintf(stderr, "check: %s\n", r->errors[i]);
  return r;
}

uint32_t tc_crc(const void *p, size_t n) { return ocdbt_crc32c(0, p, n); }
