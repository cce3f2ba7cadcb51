/*
 * The lock manager unit tests' common fixture: a manager on a fresh directory
 * and the hand-moved clock (tests/locks/lk_test.h), checked by lk_selfcheck at
 * teardown; one-line acquire, check and op creation. Included by one file per
 * test binary (test_lk_lock.c, test_lk_wait.c).
 */
#ifndef STRATA_TESTS_UNIT_LK_FIXTURE_H
#define STRATA_TESTS_UNIT_LK_FIXTURE_H

#include "common/err.h"
#include "locks/lock.h"
#include "locks/oplog.h"
#include "tests/locks/lk_test.h"

typedef struct fx {
  char *dir;
  lk_manager *lk;
} fx;

static inline void open_lk(fx *f) {
  lk_options o;
  lk_options_init(&o);
  o.path = f->dir;
  o.clock = lkt_clock;
  o.partitions = 16;
  int rc = lk_open(&o, &f->lk);
  if (rc) fprintf(stderr, "lk_open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
}

static inline int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = lkt_tmpdir("lkunit");
  open_lk(f);
  *state = f;
  return 0;
}

static inline int teardown(void **state) {
  fx *f = *state;
  /* Whatever the test did, the table's invariants hold (one holder per row). */
  int rc = lk_selfcheck(f->lk, 1, NULL);
  if (rc) fprintf(stderr, "lk_selfcheck: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  lk_close(f->lk);
  lkt_rmdir(f->dir);
  free(f);
  return 0;
}

static inline void reopen(fx *f) {
  lk_close(f->lk);
  open_lk(f);
}

/* Closes f's manager and opens it again on `clock` (default partitions), with
 * wait_poll_ns when nonzero. */
static inline void reopen_on_clock(fx *f, lk_clock_fn clock, int64_t wait_poll_ns) {
  lk_close(f->lk);
  lk_options o;
  lk_options_init(&o);
  o.path = f->dir;
  o.clock = clock;
  if (wait_poll_ns) o.wait_poll_ns = wait_poll_ns;
  assert_int_equal(lk_open(&o, &f->lk), 0);
}

static inline uint64_t new_op(fx *f) {
  uint64_t id;
  assert_int_equal(oplog_create(lk_oplog(f->lk), "tester", "split", "p", 1, 7, &id, NULL), 0);
  return id;
}

/* Acquires without waiting; returns status, fills *res (caller frees). */
static inline lk_status acq(fx *f, uint64_t op, const char *const *keys, size_t n, lk_kind kind,
                     int64_t ttl, lk_result *res) {
  lk_row rows[16];
  for (size_t i = 0; i < n; i++) rows[i] = lkt_row(keys[i]);
  lk_acquire_req q = {.op = op, .rows = rows, .nrows = n, .kind = kind, .ttl_ns = ttl};
  int rc = lk_acquire(f->lk, &q, res);
  if (rc) fprintf(stderr, "lk_acquire: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return res->status;
}

static inline int held(fx *f, uint64_t op, const char *key) {
  lk_row r = lkt_row(key);
  int h = -1;
  assert_int_equal(lk_check(f->lk, op, &r, 1, &h, NULL), 0);
  return h;
}

#endif
