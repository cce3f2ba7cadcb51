/* Op log and id counters: ids and ranges are durable and never repeat,
 * statuses and scopes persist, ListStuck picks exactly the stuck ops, and
 * bad input names the field. */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/counter.h"
#include "locks/lock.h"
#include "locks/oplog.h"
#include "tests/locks/lk_test.h"

typedef struct fx {
  char *dir;
  lk_manager *lk;
} fx;

static void open_lk(fx *f) {
  lk_options o;
  lk_options_init(&o);
  o.path = f->dir;
  o.clock = lkt_clock;
  assert_int_equal(lk_open(&o, &f->lk), 0);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = lkt_tmpdir("lkoplog");
  open_lk(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  lk_close(f->lk);
  lkt_rmdir(f->dir);
  free(f);
  return 0;
}

static void reopen(fx *f) {
  lk_close(f->lk);
  open_lk(f);
}

static void test_create_get_and_ids_increase_across_reopen(void **state) {
  fx *f = *state;
  uint64_t last = 0, id;
  int64_t ts;
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 5; i++) {
      lkt_advance(LKT_MS);
      assert_int_equal(oplog_create(lk_oplog(f->lk), "alice", "merge", "\x01\x00\x02", 3,
                                    40 + (uint64_t)i, &id, &ts), 0);
      assert_true(id > last);
      assert_int_equal(ts, lkt_clock(NULL));
      last = id;
    }
    reopen(f);
  }
  assert_int_equal(oplog_last_id(lk_oplog(f->lk)), last);
  oplog_op op;
  assert_int_equal(oplog_get(lk_oplog(f->lk), last, &op), 0);
  assert_int_equal(op.id, last);
  assert_string_equal(op.user, "alice");
  assert_string_equal(op.kind, "merge");
  assert_int_equal(op.payload_len, 3);
  assert_memory_equal(op.payload, "\x01\x00\x02", 3);
  assert_int_equal(op.base_generation, 44);
  assert_int_equal(op.status, OPLOG_CREATED);
  assert_string_equal(op.exception, "");
  assert_int_equal(op.nscope, 0);
  oplog_op_free(&op);
  assert_int_equal(oplog_get(lk_oplog(f->lk), last + 1, &op), STRATA_ENOTFOUND);
  assert_non_null(strstr(strata_errmsg(), "does not exist"));
}

static void test_set_status_persists_with_exception_text(void **state) {
  fx *f = *state;
  uint64_t id;
  assert_int_equal(oplog_create(lk_oplog(f->lk), "bob", "split", NULL, 0, 1, &id, NULL), 0);
  assert_int_equal(oplog_set_status(lk_oplog(f->lk), id, OPLOG_WRITE_STARTED, NULL), 0);
  lkt_advance(5 * LKT_MS);
  assert_int_equal(oplog_set_status(lk_oplog(f->lk), id, OPLOG_EXCEPTION, "ValueError: bad sv"), 0);
  reopen(f);
  oplog_op op;
  assert_int_equal(oplog_get(lk_oplog(f->lk), id, &op), 0);
  assert_int_equal(op.status, OPLOG_EXCEPTION);
  assert_string_equal(op.exception, "ValueError: bad sv");
  assert_int_equal(op.status_at, lkt_clock(NULL));
  assert_int_equal(op.payload_len, 0);
  oplog_op_free(&op);
  assert_string_equal(oplog_status_name(OPLOG_WRITE_FAILED), "WRITE_FAILED");
  assert_int_equal(oplog_set_status(lk_oplog(f->lk), id + 7, OPLOG_SUCCESS, NULL), STRATA_ENOTFOUND);
  assert_int_equal(oplog_set_status(lk_oplog(f->lk), id, 9, NULL), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "status"));
}

static int indefinite(fx *f, uint64_t op, const char *key) {
  lk_row r = lkt_row(key);
  lk_acquire_req q = {.op = op, .rows = &r, .nrows = 1, .kind = LK_INDEFINITE};
  lk_result res;
  assert_int_equal(lk_acquire(f->lk, &q, &res), 0);
  int granted = res.status == LK_GRANTED;
  lk_result_free(&res);
  return granted;
}

static void test_scope_follows_indefinite_locks_and_list_stuck(void **state) {
  fx *f = *state;
  oplog *ol = lk_oplog(f->lk);
  uint64_t a, b, c, d;
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 0, &a, NULL), 0);
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 0, &b, NULL), 0);
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 0, &c, NULL), 0);
  lkt_advance(60 * LKT_S);
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 0, &d, NULL), 0); /* young */
  assert_true(indefinite(f, a, "chunk-a1"));
  assert_true(indefinite(f, a, "chunk-a2"));
  assert_true(indefinite(f, b, "chunk-b"));
  assert_true(indefinite(f, d, "chunk-d"));
  /* c has no scope; b succeeded. */
  assert_int_equal(oplog_set_status(ol, b, OPLOG_SUCCESS, NULL), 0);
  assert_int_equal(oplog_set_status(ol, a, OPLOG_WRITE_FAILED, "disk full"), 0);
  reopen(f);
  ol = lk_oplog(f->lk);
  oplog_op op;
  assert_int_equal(oplog_get(ol, a, &op), 0);
  assert_int_equal(op.nscope, 2);
  assert_memory_equal(op.scope[0].key, "chunk-a1", 8);
  assert_memory_equal(op.scope[1].key, "chunk-a2", 8);
  oplog_op_free(&op);
  oplog_op *ops;
  size_t n;
  assert_int_equal(oplog_list_stuck(ol, 30 * LKT_S, &ops, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ops[0].id, a);
  assert_int_equal(ops[0].status, OPLOG_WRITE_FAILED);
  oplog_ops_free(ops, n);
  assert_int_equal(oplog_list_stuck(ol, 0, &ops, &n), 0);
  assert_int_equal(n, 2); /* a and the young d */
  assert_int_equal(ops[1].id, d);
  oplog_ops_free(ops, n);
  /* Releasing clears the scope in the same batch. */
  lk_row r = lkt_row("chunk-a1");
  size_t rel;
  assert_int_equal(lk_release(f->lk, a, &r, 1, 0, &rel), 0);
  assert_int_equal(rel, 1);
  assert_int_equal(oplog_get(ol, a, &op), 0);
  assert_int_equal(op.nscope, 1);
  oplog_op_free(&op);
  assert_int_equal(lk_release(f->lk, a, NULL, 0, LK_KIND_BIT(LK_INDEFINITE), &rel), 0);
  assert_int_equal(oplog_list_stuck(ol, 30 * LKT_S, &ops, &n), 0);
  assert_int_equal(n, 0);
  oplog_ops_free(ops, n);
}

static void test_create_refuses_bad_fields(void **state) {
  fx *f = *state;
  oplog *ol = lk_oplog(f->lk);
  uint64_t id;
  char longname[OPLOG_NAME_MAX + 2];
  memset(longname, 'n', sizeof longname - 1);
  longname[sizeof longname - 1] = 0;
  assert_int_equal(oplog_create(ol, "", "k", NULL, 0, 0, &id, NULL), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "user"));
  assert_int_equal(oplog_create(ol, "u", longname, NULL, 0, 0, &id, NULL), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "kind"));
  assert_int_equal(oplog_create(ol, "u", "k", NULL, 5, 0, &id, NULL), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "payload"));
  assert_int_equal(oplog_list_stuck(ol, -1, &(oplog_op *){0}, &(size_t){0}), STRATA_EINVALID);
  assert_int_equal(oplog_last_id(ol), 0);
}

static void test_counter_ranges_never_repeat_across_reopen(void **state) {
  fx *f = *state;
  uint64_t first, next = 1;
  assert_int_equal(ctr_peek(lk_counters(f->lk), "sv", &first), 0);
  assert_int_equal(first, 1);
  for (int round = 0; round < 3; round++) {
    for (uint64_t count = 1; count < 2000; count *= 7) {
      assert_int_equal(ctr_allocate(lk_counters(f->lk), "sv", count, &first), 0);
      assert_int_equal(first, next);
      next += count;
    }
    assert_int_equal(ctr_allocate(lk_counters(f->lk), "other", 3, &first), 0);
    assert_int_equal(first, 1 + 3 * (uint64_t)round); /* counters are independent */
    reopen(f);
  }
  assert_int_equal(ctr_peek(lk_counters(f->lk), "sv", &first), 0);
  assert_int_equal(first, next);
}

static void test_counter_bad_input_and_overflow(void **state) {
  fx *f = *state;
  ctr_table *ct = lk_counters(f->lk);
  uint64_t first;
  assert_int_equal(ctr_allocate(ct, "sv", 0, &first), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "count"));
  assert_int_equal(ctr_allocate(ct, "", 1, &first), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "name"));
  assert_int_equal(ctr_allocate(ct, "big", UINT64_MAX - 10, &first), 0);
  assert_int_equal(first, 1);
  assert_int_equal(ctr_allocate(ct, "big", 10, &first), STRATA_ERANGE);
  assert_int_equal(ctr_allocate(ct, "big", 9, &first), 0);
  assert_int_equal(first, UINT64_MAX - 9);
}

/* Lists ids of the ops f selects into ids[]; returns how many. */
static size_t list_ids(fx *f, const oplog_list_filter *flt, uint64_t *ids) {
  oplog_op *ops;
  size_t n;
  assert_int_equal(oplog_list(lk_oplog(f->lk), flt, &ops, &n), 0);
  for (size_t i = 0; i < n; i++) ids[i] = ops[i].id;
  oplog_ops_free(ops, n);
  return n;
}

static void test_list_filters_pages_and_orders(void **state) {
  fx *f = *state;
  oplog *ol = lk_oplog(f->lk);
  uint64_t id[10], got[16];
  /* ops 1..10; every third one SUCCESS, op 5 EXCEPTION */
  for (int i = 0; i < 10; i++) {
    assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 0, &id[i], NULL), 0);
    if (i % 3 == 2) assert_int_equal(oplog_set_status(ol, id[i], OPLOG_SUCCESS, NULL), 0);
  }
  assert_int_equal(oplog_set_status(ol, id[4], OPLOG_EXCEPTION, "boom"), 0);
  oplog_list_filter all = {.any_status = 1};
  assert_int_equal(list_ids(f, &all, got), 10);
  for (int i = 0; i < 10; i++) assert_int_equal(got[i], id[i]);
  /* by status */
  oplog_list_filter ok = {.status = OPLOG_SUCCESS};
  assert_int_equal(list_ids(f, &ok, got), 3);
  assert_int_equal(got[0], id[2]);
  assert_int_equal(got[2], id[8]);
  oplog_list_filter ex = {.status = OPLOG_EXCEPTION};
  assert_int_equal(list_ids(f, &ex, got), 1);
  assert_int_equal(got[0], id[4]);
  /* ascending pages of 4 after a cursor cover everything once */
  oplog_list_filter page = {.any_status = 1, .limit = 4};
  size_t total = 0;
  for (;;) {
    size_t n = list_ids(f, &page, got);
    for (size_t i = 0; i < n; i++) assert_int_equal(got[i], id[total + i]);
    total += n;
    if (n < 4) break;
    page.after_id = got[n - 1];
  }
  assert_int_equal(total, 10);
  /* newest first, below a cursor, with a status filter */
  oplog_list_filter newest = {.any_status = 1, .newest_first = 1, .limit = 3};
  assert_int_equal(list_ids(f, &newest, got), 3);
  assert_int_equal(got[0], id[9]);
  assert_int_equal(got[2], id[7]);
  newest.before_id = id[7];
  assert_int_equal(list_ids(f, &newest, got), 3);
  assert_int_equal(got[0], id[6]);
  oplog_list_filter newest_ok = {.status = OPLOG_SUCCESS, .newest_first = 1, .before_id = id[8]};
  assert_int_equal(list_ids(f, &newest_ok, got), 2);
  assert_int_equal(got[0], id[5]);
  assert_int_equal(got[1], id[2]);
  /* past the end, and a bad status */
  oplog_list_filter after_end = {.any_status = 1, .after_id = id[9]};
  assert_int_equal(list_ids(f, &after_end, got), 0);
  oplog_list_filter bad = {.status = (oplog_status)9};
  oplog_op *ops;
  size_t n;
  assert_int_equal(oplog_list(ol, &bad, &ops, &n), STRATA_EINVALID);
  /* listed ops carry their scopes: op 4 holds one row indefinitely */
  lk_row row = lkt_row("scoped-row");
  lk_acquire_req q = {.op = id[3], .rows = &row, .nrows = 1, .kind = LK_INDEFINITE};
  lk_result r;
  assert_int_equal(lk_acquire(f->lk, &q, &r), 0);
  assert_int_equal(r.status, LK_GRANTED);
  lk_result_free(&r);
  oplog_list_filter around = {.any_status = 1, .after_id = id[2], .limit = 2};
  assert_int_equal(oplog_list(ol, &around, &ops, &n), 0);
  assert_int_equal(n, 2);
  assert_int_equal(ops[0].id, id[3]);
  assert_int_equal(ops[0].nscope, 1);
  assert_int_equal(ops[0].scope[0].len, row.len);
  assert_memory_equal(ops[0].scope[0].key, row.key, row.len);
  assert_int_equal(ops[1].id, id[4]);
  assert_int_equal(ops[1].nscope, 0);
  oplog_ops_free(ops, n);
}

/* Retention's pin: the oldest base generation of an op not SUCCESS, read from
 * the headers; 0 when every op succeeded or none has a base. */
static void test_oldest_open_base(void **state) {
  fx *f = *state;
  oplog *ol = lk_oplog(f->lk);
  uint64_t g = 99, a, b, c, d;
  assert_int_equal(oplog_oldest_open_base(ol, &g), 0);
  assert_int_equal(g, 0);
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 40, &a, NULL), 0);
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 12, &b, NULL), 0);
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 0, &c, NULL), 0); /* no base */
  assert_int_equal(oplog_create(ol, "u", "split", NULL, 0, 25, &d, NULL), 0);
  assert_int_equal(oplog_oldest_open_base(ol, &g), 0);
  assert_int_equal(g, 12);
  assert_int_equal(oplog_set_status(ol, b, OPLOG_SUCCESS, NULL), 0);
  assert_int_equal(oplog_oldest_open_base(ol, &g), 0);
  assert_int_equal(g, 25);
  assert_int_equal(oplog_set_status(ol, d, OPLOG_EXCEPTION, "boom"), 0); /* still open */
  assert_int_equal(oplog_oldest_open_base(ol, &g), 0);
  assert_int_equal(g, 25);
  assert_int_equal(oplog_set_status(ol, d, OPLOG_SUCCESS, NULL), 0);
  assert_int_equal(oplog_set_status(ol, a, OPLOG_SUCCESS, NULL), 0);
  assert_int_equal(oplog_oldest_open_base(ol, &g), 0);
  assert_int_equal(g, 0);
  (void)c;
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    T(test_oldest_open_base),
    T(test_create_get_and_ids_increase_across_reopen),
    T(test_set_status_persists_with_exception_text),
    T(test_scope_follows_indefinite_locks_and_list_stuck),
    T(test_create_refuses_bad_fields),
    T(test_list_filters_pages_and_orders),
    T(test_counter_ranges_never_repeat_across_reopen),
    T(test_counter_bad_input_and_overflow),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
