/* Lock manager unit tests on a hand-moved clock: conflicts as data, tokens,
 * idempotence, expiry, renew, release, list filters and pagination, the
 * fence hook, persistence of deadlines, and bad input. Waiting is in
 * test_lk_wait.c; the fixture in lk_fixture.h. */
#include <stdatomic.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <rocksdb/c.h>

#include "common/err.h"
#include "locks/lock.h"
#include "locks/oplog.h"
#include "tests/unit/lk_fixture.h"

static void test_overlapping_sets_conflict_as_data_and_take_nothing(void **state) {
  fx *f = *state;
  lk_result r;
  const char *s1[] = {"a", "b"}, *s2[] = {"c", "b"};
  assert_int_equal(acq(f, 1, s1, 2, LK_TEMPORAL, 10 * LKT_S, &r), LK_GRANTED);
  int64_t t0 = lkt_clock(NULL);
  assert_true(r.token > 0);
  assert_int_equal(r.expires_at, t0 + 10 * LKT_S);
  lk_result_free(&r);
  assert_int_equal(acq(f, 2, s2, 2, LK_TEMPORAL, 10 * LKT_S, &r), LK_CONFLICT);
  assert_int_equal(r.nconflicts, 1);
  assert_int_equal(r.conflicts[0].row, 1); /* "b" is the second row asked for */
  assert_int_equal(r.conflicts[0].holder_op, 1);
  assert_int_equal(r.conflicts[0].kind, LK_TEMPORAL);
  assert_int_equal(r.conflicts[0].acquired_at, t0);
  assert_int_equal(r.conflicts[0].expires_at, t0 + 10 * LKT_S);
  assert_int_equal(r.conflicts[0].queued, 0);
  lk_result_free(&r);
  assert_int_equal(held(f, 2, "c"), 0); /* all or nothing */
  assert_int_equal(held(f, 1, "a"), 1);
}

static void test_tokens_strictly_increase_across_restarts(void **state) {
  fx *f = *state;
  uint64_t last = 0;
  lk_result r;
  char key[32];
  for (int round = 0; round < 3; round++) {
    for (int i = 0; i < 20; i++) {
      snprintf(key, sizeof key, "row-%d", i % 5);
      const char *k[] = {key};
      assert_int_equal(acq(f, 100 + (uint64_t)i, k, 1, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
      assert_true(r.token > last);
      last = r.token;
      lk_result_free(&r);
      lk_row row = lkt_row(key);
      size_t n = 0;
      assert_int_equal(lk_release(f->lk, 100 + (uint64_t)i, &row, 1, 0, &n), 0);
      assert_int_equal(n, 1);
    }
    reopen(f); /* every lock is released: the high-water mark alone must survive */
  }
}

static void test_reacquire_by_same_op_is_idempotent(void **state) {
  fx *f = *state;
  lk_result r;
  const char *s[] = {"x", "y"};
  assert_int_equal(acq(f, 5, s, 2, LK_TEMPORAL, 5 * LKT_S, &r), LK_GRANTED);
  uint64_t tok = r.token;
  int64_t exp = r.expires_at;
  lk_result_free(&r);
  lkt_advance(LKT_S);
  assert_int_equal(acq(f, 5, s, 2, LK_TEMPORAL, 5 * LKT_S, &r), LK_GRANTED);
  assert_int_equal(r.already_held, 1);
  assert_int_equal(r.token, tok);
  assert_int_equal(r.expires_at, exp);
  lk_result_free(&r);
  const char *dup[] = {"x", "x", "y"}; /* duplicates in one request are one row */
  assert_int_equal(acq(f, 5, dup, 3, LK_TEMPORAL, 5 * LKT_S, &r), LK_GRANTED);
  assert_int_equal(r.already_held, 1);
  lk_result_free(&r);
}

static void test_expired_lock_blocks_nobody_and_cannot_be_renewed(void **state) {
  fx *f = *state;
  lk_result r;
  const char *s[] = {"e"};
  lk_row row = lkt_row("e");
  assert_int_equal(acq(f, 1, s, 1, LK_TEMPORAL, 100 * LKT_MS, &r), LK_GRANTED);
  lk_result_free(&r);
  lkt_advance(50 * LKT_MS);
  assert_int_equal(lk_renew(f->lk, 1, &row, 1, 100 * LKT_MS, &r), 0);
  assert_int_equal(r.status, LK_GRANTED);
  assert_int_equal(r.expires_at, lkt_clock(NULL) + 100 * LKT_MS);
  lk_result_free(&r);
  lkt_advance(100 * LKT_MS); /* exactly at expires_at: expired */
  assert_int_equal(held(f, 1, "e"), 0);
  /* Nobody took it, yet the lost lock stays lost. */
  assert_int_equal(lk_renew(f->lk, 1, &row, 1, 100 * LKT_MS, &r), 0);
  assert_int_equal(r.status, LK_NOT_HELD);
  assert_int_equal(r.nconflicts, 1);
  assert_int_equal(r.conflicts[0].holder_op, 0);
  lk_result_free(&r);
  assert_int_equal(acq(f, 2, s, 1, LK_TEMPORAL, 100 * LKT_MS, &r), LK_GRANTED);
  lk_result_free(&r);
  assert_int_equal(lk_renew(f->lk, 1, &row, 1, 100 * LKT_MS, &r), 0);
  assert_int_equal(r.status, LK_NOT_HELD);
  assert_int_equal(r.conflicts[0].holder_op, 2);
  lk_result_free(&r);
}

/* A clock that moves 1 ns on every reading, so the ttl check and the grant
 * see different times (as they do on a real clock). */
static int64_t ticking_clock(void *ctx) {
  (void)ctx;
  return atomic_fetch_add(&lkt_clock_now, 1) + 1;
}

/* rc/res of an acquire or renew whose ttl reaches the clock's end: either
 * refused as invalid or granted with a finite expiry still in the future. */
static void assert_no_wrap(fx *f, int rc, lk_result *r) {
  if (rc) {
    assert_int_equal(rc, STRATA_EINVALID);
    return;
  }
  assert_int_equal(r->status, LK_GRANTED);
  assert_true(r->expires_at > lk_now(f->lk));
  assert_true(r->expires_at < LK_NEVER); /* LK_NEVER would read as indefinite */
  lk_result_free(r);
}

/* The ttl check reads the clock before the partition mutexes, the grant after
 * them; a ttl at the limit of the first reading used to overflow in the
 * second (UBSan in the asan variant; a lock granted already expired in a
 * release build). A temporal expiry must also never equal LK_NEVER. */
static void test_ttl_at_the_clock_limit_never_wraps(void **state) {
  fx *f = *state;
  reopen_on_clock(f, ticking_clock, 0);
  lk_row row = lkt_row("t");
  lk_result r;
  /* lk_acquire's first reading is the next tick. */
  int64_t t = lk_now(f->lk) + 1;
  lk_acquire_req q = {.op = 1, .rows = &row, .nrows = 1, .kind = LK_TEMPORAL,
                      .ttl_ns = LK_NEVER - t};
  assert_no_wrap(f, lk_acquire(f->lk, &q, &r), &r);
  assert_int_equal(held(f, 1, "t"), 1);
  /* Renew reads the clock once, under the mutexes. */
  t = lk_now(f->lk) + 1;
  assert_no_wrap(f, lk_renew(f->lk, 1, &row, 1, LK_NEVER - t, &r), &r);
  assert_int_equal(held(f, 1, "t"), 1);
  /* The same on a clock that stands still: the expiry would be LK_NEVER. */
  lk_close(f->lk);
  open_lk(f);
  assert_int_equal(lk_release(f->lk, 1, &row, 1, 0, NULL), 0);
  q.ttl_ns = LK_NEVER - lk_now(f->lk);
  assert_no_wrap(f, lk_acquire(f->lk, &q, &r), &r);
  assert_no_wrap(f, lk_renew(f->lk, 1, &row, 1, LK_NEVER - lk_now(f->lk), &r), &r);
  assert_int_equal(held(f, 1, "t"), 1);
}

/* Rows are exclusive whatever the kinds: with no flag to ask for it, a
 * temporal acquire by another op is refused on a row held indefinitely (it
 * used to be granted beside it, and Check then vouched for both ops). */
static void test_indefinite_excludes_temporal_and_upgrade(void **state) {
  fx *f = *state;
  uint64_t x = new_op(f), y = new_op(f);
  lk_result r;
  const char *s[] = {"root"};
  assert_int_equal(acq(f, x, s, 1, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
  uint64_t t1 = r.token;
  lk_result_free(&r);
  assert_int_equal(acq(f, x, s, 1, LK_INDEFINITE, 0, &r), LK_GRANTED); /* upgrade */
  assert_false(r.already_held);
  assert_true(r.token > t1);
  assert_int_equal(r.expires_at, LK_NEVER);
  lk_result_free(&r);
  lkt_advance(10 * LKT_S); /* the temporal TTL is long gone; indefinite stays */
  assert_int_equal(held(f, x, "root"), 1);
  assert_int_equal(acq(f, y, s, 1, LK_TEMPORAL, LKT_S, &r), LK_CONFLICT);
  assert_int_equal(r.nconflicts, 1);
  assert_int_equal(r.conflicts[0].kind, LK_INDEFINITE);
  assert_int_equal(r.conflicts[0].holder_op, x);
  assert_int_equal(r.conflicts[0].expires_at, LK_NEVER);
  assert_int_equal(r.conflicts[0].queued, 0);
  lk_result_free(&r);
  assert_int_equal(acq(f, y, s, 1, LK_INDEFINITE, 0, &r), LK_CONFLICT);
  assert_int_equal(r.conflicts[0].holder_op, x);
  lk_result_free(&r);
  assert_int_equal(held(f, y, "root"), 0);
  assert_int_equal(held(f, x, "root"), 1);
  lk_counts c;
  assert_int_equal(lk_count(f->lk, NULL, &c), 0);
  assert_int_equal(c.indefinite, 1);
  assert_int_equal(c.temporal, 0);
  /* The upgrade left no temporal slot of x behind. */
  lk_list_filter lf = {.op = x, .include_expired = 1};
  lk_list_page pg;
  assert_int_equal(lk_list(f->lk, &lf, NULL, 0, 10, &pg), 0);
  assert_int_equal(pg.n, 1);
  assert_int_equal(pg.items[0].kind, LK_INDEFINITE);
  assert_null(pg.cursor);
  lk_list_page_free(&pg);
  assert_int_equal(lk_selfcheck(f->lk, 1, NULL), 0);
}

/* A listing judges expiry at the time its filter names (a stream of pages that
 * reports one server time): a lock that expired after that time is listed as
 * live, one that expired before is not, and without a time the clock decides. */
static void test_list_judges_expiry_at_the_filter_time(void **state) {
  fx *f = *state;
  uint64_t x = new_op(f);
  lk_result r;
  const char *a[] = {"short"}, *b[] = {"long"};
  int64_t t0 = lk_now(f->lk);
  assert_int_equal(acq(f, x, a, 1, LK_TEMPORAL, 1000000000, &r), LK_GRANTED); /* 1 s */
  lk_result_free(&r);
  assert_int_equal(acq(f, x, b, 1, LK_TEMPORAL, 60000000000, &r), LK_GRANTED); /* 60 s */
  lk_result_free(&r);
  lkt_advance(2000000000); /* "short" has expired by the clock */
  lk_list_page pg;
  lk_list_filter now = {.op = x};
  assert_int_equal(lk_list(f->lk, &now, NULL, 0, 10, &pg), 0);
  assert_int_equal(pg.n, 1);
  lk_list_page_free(&pg);
  lk_list_filter then = {.op = x, .now = t0 + 500000000}; /* half a second in */
  assert_int_equal(lk_list(f->lk, &then, NULL, 0, 10, &pg), 0);
  assert_int_equal(pg.n, 2);
  lk_list_page_free(&pg);
}

static void test_release_only_own_and_privileged_release(void **state) {
  fx *f = *state;
  uint64_t x = new_op(f);
  lk_result r;
  const char *s[] = {"p", "q"};
  lk_row rows[2] = {lkt_row("p"), lkt_row("q")};
  assert_int_equal(acq(f, x, s, 2, LK_INDEFINITE, 0, &r), LK_GRANTED);
  lk_result_free(&r);
  size_t n = 99;
  assert_int_equal(lk_release(f->lk, x + 1, rows, 2, 0, &n), 0);
  assert_int_equal(n, 0);
  assert_int_equal(lk_release(f->lk, x, rows, 2, LK_KIND_BIT(LK_TEMPORAL), &n), 0);
  assert_int_equal(n, 0); /* kind filter: the indefinite locks stay */
  assert_int_equal(held(f, x, "p"), 1);
  assert_int_equal(lk_privileged_release(f->lk, 0, rows, 1, 0, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(held(f, x, "p"), 0);
  assert_int_equal(held(f, x, "q"), 1);
  assert_int_equal(lk_privileged_release(f->lk, x, NULL, 0, 0, &n), 0); /* all of x */
  assert_int_equal(n, 1);
  assert_int_equal(held(f, x, "q"), 0);
  oplog_op op;
  assert_int_equal(oplog_get(lk_oplog(f->lk), x, &op), 0);
  assert_int_equal(op.nscope, 0);
  oplog_op_free(&op);
}

static void test_release_all_of_an_op(void **state) {
  fx *f = *state;
  lk_result r;
  char keys[40][16];
  const char *ks[40];
  for (int i = 0; i < 40; i++) {
    snprintf(keys[i], sizeof keys[i], "%c%c-%d", 'A' + i % 26, 'a' + i % 7, i);
    ks[i] = keys[i];
  }
  for (int i = 0; i < 40; i += 10) {
    assert_int_equal(acq(f, 3, ks + i, 10, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
    lk_result_free(&r);
  }
  assert_int_equal(acq(f, 4, (const char *[]){"other"}, 1, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
  lk_result_free(&r);
  size_t n = 0;
  assert_int_equal(lk_release(f->lk, 3, NULL, 0, 0, &n), 0);
  assert_int_equal(n, 40);
  lk_counts c;
  assert_int_equal(lk_count(f->lk, NULL, &c), 0);
  assert_int_equal(c.temporal, 1);
  reopen(f);
  assert_int_equal(lk_count(f->lk, NULL, &c), 0);
  assert_int_equal(c.temporal, 1);
  assert_int_equal(held(f, 4, "other"), 1);
}

/* How many locks of each sort fill_locks took. */
typedef struct list_want {
  size_t temporal, ind, expired, pfx;
} list_want;

/* 230 rows under "blk/" and "l2/": every 5th indefinite for one op (returned),
 * the rest temporal for four ops, every 7th of those with a 1 ms ttl. */
static uint64_t fill_locks(fx *f, list_want *w) {
  uint64_t ind_op = new_op(f);
  lk_result r;
  char key[32];
  for (int i = 0; i < 230; i++) {
    snprintf(key, sizeof key, "%s%03d", i % 3 == 0 ? "blk/" : "l2/", i);
    const char *k[] = {key};
    if (i % 5 == 0) {
      assert_int_equal(acq(f, ind_op, k, 1, LK_INDEFINITE, 0, &r), LK_GRANTED);
      w->ind++;
    } else {
      int shortttl = i % 7 == 0;
      assert_int_equal(acq(f, 1000 + (uint64_t)(i % 4), k, 1, LK_TEMPORAL,
                           shortttl ? LKT_MS : 100 * LKT_S, &r), LK_GRANTED);
      if (shortttl) w->expired++; else w->temporal++;
    }
    if (i % 3 == 0) w->pfx++;
    lk_result_free(&r);
  }
  return ind_op;
}

/* All live locks in pages of 7: each exactly once, in key order. */
static void list_in_pages_of_7(fx *f, size_t want) {
  lk_list_filter lf = {0};
  uint8_t *cur = NULL;
  size_t curlen = 0, total = 0;
  char prev[64] = "";
  int pages = 0;
  do {
    lk_list_page pg;
    assert_int_equal(lk_list(f->lk, &lf, cur, curlen, 7, &pg), 0);
    free(cur);
    cur = NULL;
    assert_true(pg.n <= 7);
    for (size_t i = 0; i < pg.n; i++) {
      char k[64];
      snprintf(k, sizeof k, "%.*s", (int)pg.items[i].key_len, (const char *)pg.items[i].key);
      assert_true(strcmp(prev, k) < 0);
      snprintf(prev, sizeof prev, "%s", k);
      assert_false(pg.items[i].expired);
    }
    total += pg.n;
    if (pg.cursor) {
      cur = malloc(pg.cursor_len);
      memcpy(cur, pg.cursor, pg.cursor_len);
      curlen = pg.cursor_len;
    }
    lk_list_page_free(&pg);
    pages++;
  } while (cur);
  assert_int_equal(total, want);
  assert_int_equal(pages, (int)((total + 6) / 7));
}

static void test_list_filters_pagination_and_counts(void **state) {
  fx *f = *state;
  list_want w = {0};
  uint64_t ind_op = fill_locks(f, &w);
  lkt_advance(2 * LKT_MS);
  lk_counts c;
  assert_int_equal(lk_count(f->lk, NULL, &c), 0);
  assert_int_equal(c.temporal, w.temporal);
  assert_int_equal(c.temporal_expired, w.expired);
  assert_int_equal(c.indefinite, w.ind);

  list_in_pages_of_7(f, w.temporal + w.ind);

  lk_list_page pg;
  lk_list_filter lf = {.include_expired = 1};
  assert_int_equal(lk_list(f->lk, &lf, NULL, 0, 1000, &pg), 0);
  assert_int_equal(pg.n, w.temporal + w.ind + w.expired);
  lk_list_page_free(&pg);

  lk_list_filter byop = {.op = ind_op};
  assert_int_equal(lk_list(f->lk, &byop, NULL, 0, 1000, &pg), 0);
  assert_int_equal(pg.n, w.ind);
  for (size_t i = 0; i < pg.n; i++) assert_int_equal(pg.items[i].op, ind_op);
  lk_list_page_free(&pg);

  lk_list_filter bykind = {.kinds = LK_KIND_BIT(LK_TEMPORAL)};
  assert_int_equal(lk_list(f->lk, &bykind, NULL, 0, 1000, &pg), 0);
  assert_int_equal(pg.n, w.temporal);
  lk_list_page_free(&pg);

  lk_list_filter bypfx = {.prefix = (const uint8_t *)"blk/", .prefix_len = 4, .include_expired = 1};
  assert_int_equal(lk_list(f->lk, &bypfx, NULL, 0, 1000, &pg), 0);
  assert_int_equal(pg.n, w.pfx);
  for (size_t i = 0; i < pg.n; i++) assert_memory_equal(pg.items[i].key, "blk/", 4);
  lk_list_page_free(&pg);
  assert_int_equal(lk_count(f->lk, &bypfx, &c), 0);
  assert_int_equal(c.temporal + c.temporal_expired + c.indefinite, w.pfx);
}

static void test_fence_refuses_a_holder_that_lost_a_row(void **state) {
  fx *f = *state;
  lk_result r;
  const char *s[] = {"chunk-1", "chunk-2"};
  lk_row rows[2] = {lkt_row("chunk-1"), lkt_row("chunk-2")};
  assert_int_equal(acq(f, 9, s, 2, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
  lk_result_free(&r);
  lk_fence fence = {.lk = f->lk, .op = 9, .rows = rows, .nrows = 2};
  int (*as_store_sees_it)(void *) = lk_fence_check; /* storage's st_fence_fn */
  void (*done_as_store_sees_it)(void *, int) = lk_fence_done; /* st_fence_done_fn */
  assert_int_equal(as_store_sees_it(&fence), 0);
  /* Checked again before the store reported the commit decided: refused. */
  assert_int_equal(lk_fence_check(&fence), STRATA_EINVALID);
  done_as_store_sees_it(&fence, 1);
  assert_int_equal(fence.expired_in_flight, 0);
  lkt_advance(2 * LKT_S);
  assert_int_equal(lk_fence_check(&fence), STRATA_EFENCED);
  assert_non_null(strstr(strata_errmsg(), "chunk-1"));
  assert_non_null(strstr(strata_errmsg(), "op 9"));
  const char *s2[] = {"chunk-1"};
  assert_int_equal(acq(f, 10, s2, 1, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
  lk_result_free(&r);
  assert_int_equal(lk_fence_check(&fence), STRATA_EFENCED);
  assert_non_null(strstr(strata_errmsg(), "op 10 holds it"));
}

/* *missing follows the caller's order, not the table's (partition, key) order. */
static void test_check_names_the_first_missing_row_in_request_order(void **state) {
  fx *f = *state;
  lk_result r;
  assert_int_equal(acq(f, 1, (const char *[]){"m"}, 1, LK_TEMPORAL, LKT_S, &r), LK_GRANTED);
  lk_result_free(&r);
  lk_row rows[] = {lkt_row("m"), lkt_row("z-free"), lkt_row("a-free")};
  int h = -1;
  size_t missing = 99;
  assert_int_equal(lk_check(f->lk, 1, rows, 3, &h, &missing), 0);
  assert_int_equal(h, 0);
  assert_int_equal(missing, 1);
  lk_fence fence = {.lk = f->lk, .op = 1, .rows = rows, .nrows = 3};
  assert_int_equal(lk_fence_check(&fence), STRATA_EFENCED);
  assert_non_null(strstr(strata_errmsg(), "z-free"));
}

static void test_deadlines_are_absolute_across_reopen(void **state) {
  fx *f = *state;
  lk_result r;
  uint64_t x = new_op(f);
  assert_int_equal(acq(f, 500, (const char *[]){"d"}, 1, LK_TEMPORAL, 10 * LKT_S, &r), LK_GRANTED);
  int64_t exp = r.expires_at;
  lk_result_free(&r);
  assert_int_equal(acq(f, x, (const char *[]){"i"}, 1, LK_INDEFINITE, 0, &r), LK_GRANTED);
  lk_result_free(&r);
  reopen(f);
  lkt_advance(10 * LKT_S - 1);
  assert_int_equal(held(f, 500, "d"), 1);
  lk_list_page pg;
  assert_int_equal(lk_list(f->lk, &(lk_list_filter){.op = 500}, NULL, 0, 10, &pg), 0);
  assert_int_equal(pg.n, 1);
  assert_int_equal(pg.items[0].expires_at, exp);
  lk_list_page_free(&pg);
  lkt_advance(1);
  reopen(f);
  assert_int_equal(held(f, 500, "d"), 0);
  assert_int_equal(held(f, x, "i"), 1);
}

static void test_bad_input_is_refused_with_a_named_field(void **state) {
  fx *f = *state;
  lk_result r;
  uint8_t big[LK_KEY_MAX + 1];
  memset(big, 'k', sizeof big);
  lk_row empty = {(const uint8_t *)"", 0}, huge = {big, sizeof big}, max = {big, LK_KEY_MAX};
  lk_row ok = lkt_row("ok");
  lk_acquire_req q = {.op = 1, .rows = &empty, .nrows = 1, .kind = LK_TEMPORAL, .ttl_ns = LKT_S};
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "empty row key"));
  q.rows = &huge;
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "4097 bytes"));
  q.rows = &max; /* the longest key is fine */
  assert_int_equal(lk_acquire(f->lk, &q, &r), 0);
  assert_int_equal(r.status, LK_GRANTED);
  lk_result_free(&r);
  q.rows = &ok;
  q.ttl_ns = 0;
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "ttl_ns"));
  q.ttl_ns = LKT_S;
  q.nrows = 0;
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_EINVALID);
  q.nrows = 1;
  q.op = 0;
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "op id 0"));
  q.op = 424242;
  q.kind = LK_INDEFINITE;
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_ENOTFOUND);
  assert_non_null(strstr(strata_errmsg(), "op 424242"));
  q.kind = 7;
  assert_int_equal(lk_acquire(f->lk, &q, &r), STRATA_EINVALID);
  assert_int_equal(lk_renew(f->lk, 1, &ok, 1, 0, &r), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "ttl_ns"));
  assert_int_equal(lk_release(f->lk, 1, &ok, 1, 0x80, NULL), STRATA_EINVALID);
  assert_int_equal(lk_privileged_release(f->lk, 0, NULL, 0, 0, NULL), STRATA_EINVALID);
  lk_list_page pg;
  assert_int_equal(lk_list(f->lk, NULL, NULL, 0, 0, &pg), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "limit"));
  assert_int_equal(lk_list(f->lk, NULL, (const uint8_t *)"x", 1, 10, &pg), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "cursor"));
  int h;
  assert_int_equal(lk_check(f->lk, 1, &empty, 1, &h, NULL), STRATA_EINVALID);
  lk_options o;
  lk_options_init(&o);
  lk_manager *lk2;
  assert_int_equal(lk_open(&o, &lk2), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "path"));
  o.path = "/nonexistent-dir/x/y";
  o.partitions = 3;
  assert_int_equal(lk_open(&o, &lk2), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "partitions"));
}

/* Writes key=value straight into the RocksDB directory behind lk's back. */
static void raw_put(const char *dir, const char *k, size_t kl, const char *v, size_t vl) {
  char *err = NULL;
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_t *db = rocksdb_open(o, dir, &err);
  assert_null(err);
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_put(db, wo, k, kl, v, vl, &err);
  assert_null(err);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(db);
  rocksdb_options_destroy(o);
}

static void test_open_refuses_foreign_and_corrupt_data(void **state) {
  fx *f = *state;
  lk_close(f->lk);
  f->lk = NULL;
  lk_options o;
  lk_options_init(&o);
  o.path = f->dir;
  raw_put(f->dir, "Lrow", 4, "garbage", 7);
  assert_int_equal(lk_open(&o, &f->lk), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "lock record"));
  raw_put(f->dir, "V", 1, "something-else", 14);
  assert_int_equal(lk_open(&o, &f->lk), STRATA_EMISMATCH);
  assert_non_null(strstr(strata_errmsg(), "format marker"));
  assert_null(f->lk);
  lkt_rmdir(f->dir); /* teardown needs an open manager: start a fresh directory */
  f->dir = lkt_tmpdir("lkunit");
  open_lk(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    T(test_overlapping_sets_conflict_as_data_and_take_nothing),
    T(test_tokens_strictly_increase_across_restarts),
    T(test_reacquire_by_same_op_is_idempotent),
    T(test_expired_lock_blocks_nobody_and_cannot_be_renewed),
    T(test_ttl_at_the_clock_limit_never_wraps),
    T(test_indefinite_excludes_temporal_and_upgrade),
    T(test_release_only_own_and_privileged_release),
    T(test_release_all_of_an_op),
    T(test_list_filters_pagination_and_counts),
    T(test_list_judges_expiry_at_the_filter_time),
    T(test_fence_refuses_a_holder_that_lost_a_row),
    T(test_check_names_the_first_missing_row_in_request_order),
    T(test_deadlines_are_absolute_across_reopen),
    T(test_bad_input_is_refused_with_a_named_field),
    T(test_open_refuses_foreign_and_corrupt_data),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
