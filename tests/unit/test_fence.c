/* The store and the lock manager joined by the fence, with no server between:
 * a commit fenced on an op's lock rows lands only while the op holds every
 * row. A worker whose temporal lock expired, or whose row another op took
 * over, cannot write; nothing of the refused transaction is visible, and the
 * refusal names the row. The lock manager runs on a hand-moved clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/lock.h"
#include "storage/store.h"

#define SEC 1000000000LL

static int64_t now_ns = 1000 * SEC;
static int64_t hand_clock(void *ctx) { return now_ns; }

typedef struct {
  char dir[64];
  lk_manager *lk;
  bs_store *base;
  st_db *db;
} fx;

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/strata-fence-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  lk_options lo;
  lk_options_init(&lo);
  lo.path = f->dir;
  lo.clock = hand_clock;
  assert_int_equal(lk_open(&lo, &f->lk), 0);
  assert_int_equal(bs_mem_create(&f->base), 0);
  st_options so;
  memset(&so, 0, sizeof so);
  so.base = f->base;
  so.create = 1;
  assert_int_equal(st_open("mem", &so, &f->db), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  st_close(f->db);
  bs_destroy(f->base);
  lk_close(f->lk);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static const lk_row rows[2] = {{(const uint8_t *)"chunk-1", 7}, {(const uint8_t *)"chunk-2", 7}};

static void acquire(fx *f, uint64_t op, const lk_row *r, size_t n, int64_t ttl, lk_status want) {
  lk_acquire_req req = {.op = op, .rows = r, .nrows = n, .kind = LK_TEMPORAL, .ttl_ns = ttl};
  lk_result res;
  assert_int_equal(lk_acquire(f->lk, &req, &res), 0);
  assert_int_equal(res.status, want);
  lk_result_free(&res);
}

/* Commits key=value fenced on (op, rows); returns the commit's code and
 * copies its message. */
static int fenced_put(fx *f, uint64_t op, const lk_row *r, size_t n, const char *key,
                      const char *value, char *msg, size_t msglen) {
  st_txn *t;
  assert_int_equal(st_txn_begin(f->db, &t), 0);
  assert_int_equal(st_txn_put(t, key, strlen(key), value, strlen(value)), 0);
  lk_fence fence = {f->lk, op, r, n};
  st_txn_set_fence(t, lk_fence_check, &fence);
  st_result res;
  int rc = st_txn_commit(t, &res);
  if (msg) snprintf(msg, msglen, "%s", res.message);
  st_result_free(&res);
  return rc;
}

static int visible(fx *f, const char *key) {
  st_snap *s;
  assert_int_equal(st_snap_latest(f->db, &s), 0);
  strata_buf v = STRATA_BUF_INIT;
  int rc = st_get(s, key, strlen(key), &v);
  strata_buf_free(&v);
  st_snap_release(s);
  assert_true(rc == 0 || rc == STRATA_ENOTFOUND);
  return rc == 0;
}

static void test_holder_commits_others_are_fenced(void **state) {
  fx *f = *state;
  char msg[512];
  acquire(f, 41, rows, 2, 30 * SEC, LK_GRANTED);
  assert_int_equal(fenced_put(f, 41, rows, 2, "sv/1", "split", msg, sizeof msg), 0);
  assert_true(visible(f, "sv/1"));
  /* Op 42 holds nothing: refused, and the message names the row. */
  assert_int_equal(fenced_put(f, 42, rows + 1, 1, "sv/2", "x", msg, sizeof msg), STRATA_EFENCED);
  assert_non_null(strstr(msg, "chunk-2"));
  assert_false(visible(f, "sv/2"));
}

static void test_expired_lock_cannot_write(void **state) {
  fx *f = *state;
  char msg[512];
  acquire(f, 7, rows, 2, 10 * SEC, LK_GRANTED);
  assert_int_equal(fenced_put(f, 7, rows, 2, "a", "1", msg, sizeof msg), 0);
  /* The worker stalls past its TTL: its next write is refused... */
  now_ns += 11 * SEC;
  assert_int_equal(fenced_put(f, 7, rows, 2, "a", "2", msg, sizeof msg), STRATA_EFENCED);
  assert_non_null(strstr(msg, "chunk-1"));
  /* ...and the value it wrote before is the one that stays. */
  st_snap *s;
  assert_int_equal(st_snap_latest(f->db, &s), 0);
  strata_buf v = STRATA_BUF_INIT;
  assert_int_equal(st_get(s, "a", 1, &v), 0);
  assert_int_equal(v.len, 1);
  assert_memory_equal(v.p, "1", 1);
  strata_buf_free(&v);
  st_snap_release(s);
  /* Another op takes one row over; the old holder stays fenced even on the
   * row it might still think it has, and the new holder writes. */
  acquire(f, 8, rows, 1, 10 * SEC, LK_GRANTED);
  assert_int_equal(fenced_put(f, 7, rows + 1, 1, "b", "old", msg, sizeof msg), STRATA_EFENCED);
  assert_int_equal(fenced_put(f, 8, rows, 1, "b", "new", msg, sizeof msg), 0);
  assert_true(visible(f, "b"));
}

static void test_release_then_commit_is_fenced(void **state) {
  fx *f = *state;
  acquire(f, 9, rows, 2, 30 * SEC, LK_GRANTED);
  size_t released = 0;
  assert_int_equal(lk_release(f->lk, 9, rows, 1, 0, &released), 0);
  assert_int_equal(released, 1);
  /* Holding one of two rows is not enough. */
  assert_int_equal(fenced_put(f, 9, rows, 2, "c", "1", NULL, 0), STRATA_EFENCED);
  assert_false(visible(f, "c"));
  assert_int_equal(fenced_put(f, 9, rows + 1, 1, "c", "1", NULL, 0), 0);
  assert_true(visible(f, "c"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_holder_commits_others_are_fenced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_lock_cannot_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_then_commit_is_fenced, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
