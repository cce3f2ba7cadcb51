/*
 * st_diff: the changes between two versions, shared subtrees skipped, entries
 * compared as stored (as "unchanged since" conditions compare them); and the
 * same walk a piece at a time (st_diff_open/step/close), which Kv.Watch uses
 * to send a generation's changes as it finds them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/base.h"
#include "storage/store.h"
#include "tests/unit/store_fixture.h"

typedef struct dlog {
  char keys[64][32];
  int put[64];
  int n;
} dlog;

static int on_diff(void *ctx, const uint8_t *k, size_t kn, int put) {
  dlog *d = ctx;
  assert_true(d->n < 64);
  memcpy(d->keys[d->n], k, kn);
  d->keys[d->n][kn] = 0;
  d->put[d->n++] = put;
  return 0;
}

static void test_diff_between_versions(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 1024);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 3000; i++) {
    char k[32];
    snprintf(k, sizeof k, "k%05d", i);
    assert_int_equal(st_txn_put(t, k, strlen(k), "x", 1), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "k00010", 6, "y", 1), 0);   /* changed */
  assert_int_equal(st_txn_put(t, "k01500", 6, "x", 1), 0);   /* same value: not a change */
  assert_int_equal(st_txn_delete(t, "k02000", 6), 0);
  assert_int_equal(st_txn_put(t, "k02000a", 7, "n", 1), 0); /* new */
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *a, *b;
  assert_int_equal(st_snap_at_generation(db, 1, &a), 0);
  assert_int_equal(st_snap_at_generation(db, 2, &b), 0);
  dlog d;
  memset(&d, 0, sizeof d);
  st_stats before, after;
  st_get_stats(db, &before);
  assert_int_equal(st_diff(a, b, on_diff, &d), 0);
  st_get_stats(db, &after);
  assert_int_equal(d.n, 3);
  assert_string_equal(d.keys[0], "k00010");
  assert_int_equal(d.put[0], 1);
  assert_string_equal(d.keys[1], "k02000");
  assert_int_equal(d.put[1], 0);
  assert_string_equal(d.keys[2], "k02000a");
  assert_int_equal(d.put[2], 1);
  /* shared subtrees were skipped: far fewer node visits than the ~100 leaves */
  assert_true(after.cache_hits + after.cache_misses - before.cache_hits - before.cache_misses < 40);
  memset(&d, 0, sizeof d);
  assert_int_equal(st_diff(b, a, on_diff, &d), 0);
  assert_int_equal(d.n, 3);
  assert_int_equal(d.put[1], 1);
  assert_int_equal(d.put[2], 0);
  st_snap_release(a);
  st_snap_release(b);
  st_close(db);
  bs_destroy(base);
}

static int diff_stop(void *ctx, const uint8_t *k, size_t kn, int put) { return 7; }

/* The diff a piece at a time: pausing after every k-th change (k = 1, 2, 7,
 * 1000) and resuming gives exactly the changes of one st_diff, in order; the
 * diff from the empty version (NULL) lists every key as a put. */
typedef struct piece {
  uint32_t *keys; /* the key number of each change, +1000000 for a delete */
  size_t n, every;
} piece;

static int on_piece(void *ctx, const uint8_t *k, size_t kn, int put) {
  piece *p = ctx;
  char s[16];
  assert_true(kn < sizeof s);
  memcpy(s, k, kn);
  s[kn] = 0;
  p->keys[p->n++] = (uint32_t)atoi(s + 1) + (put ? 0 : 1000000u);
  return p->n % p->every == 0 ? ST_DIFF_PAUSE : 0;
}

static void test_diff_in_pieces(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 1024);
  st_txn *t;
  st_result r;
  char k[32];
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 3000; i++) {
    snprintf(k, sizeof k, "k%05d", i);
    assert_int_equal(st_txn_put(t, k, strlen(k), "x", 1), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 3000; i += 7) {
    snprintf(k, sizeof k, "k%05d", i);
    if (i % 3) assert_int_equal(st_txn_put(t, k, strlen(k), "y", 1), 0);
    else assert_int_equal(st_txn_delete(t, k, strlen(k)), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *a, *b;
  assert_int_equal(st_snap_at_generation(db, 1, &a), 0);
  assert_int_equal(st_snap_at_generation(db, 2, &b), 0);
  static uint32_t whole[4000], parts[4000];
  piece w = {whole, 0, (size_t)-1};
  assert_int_equal(st_diff(a, b, on_piece, &w), 0);
  assert_int_equal(w.n, 429); /* 0, 7, ..., 2996 */
  size_t everies[] = {1, 2, 7, 1000};
  for (size_t e = 0; e < 4; e++) {
    piece p = {parts, 0, everies[e]};
    st_diff_iter *it;
    assert_int_equal(st_diff_open(a, b, &it), 0);
    int done = 0, steps = 0;
    while (!done) {
      int rc = st_diff_step(it, on_piece, &p, &done);
      assert_true(rc == 0 || rc == ST_DIFF_PAUSE);
      steps++;
    }
    st_diff_close(it);
    assert_int_equal(p.n, w.n);
    assert_memory_equal(parts, whole, w.n * sizeof *whole);
    assert_true(steps >= (int)(w.n / everies[e]));
  }
  /* from the empty version: every key of generation 1 is a put */
  piece f = {parts, 0, 100};
  st_diff_iter *it;
  assert_int_equal(st_diff_open(NULL, a, &it), 0);
  for (int done = 0; !done;) assert_true(st_diff_step(it, on_piece, &f, &done) >= 0);
  st_diff_close(it);
  assert_int_equal(f.n, 3000);
  for (uint32_t i = 0; i < 3000; i++) assert_int_equal(parts[i], i);
  /* a stop (any other non-zero) ends the walk and is returned */
  assert_int_equal(st_diff_open(a, b, &it), 0);
  int done;
  assert_int_equal(st_diff_step(it, diff_stop, NULL, &done), 7);
  assert_int_equal(done, 1);
  st_diff_close(it);
  st_snap_release(a);
  st_snap_release(b);
  st_close(db);
  bs_destroy(base);
}

/* What "changed" means for "unchanged since G" and st_diff: inline values
 * (<= max_inline_value_bytes) are compared by their bytes, out-of-line values
 * by their reference (file, offset, length). So deleting and rewriting a
 * small value with the same bytes is no change, while rewriting a large
 * value with the same bytes is one. */
static void test_change_means_bytes_inline_reference_out_of_line(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  uint8_t big[300];
  memset(big, 'B', sizeof big); /* above the default 100-byte inline limit */
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "small", 5, "x", 1), 0);
  assert_int_equal(st_txn_put(t, "big", 3, big, sizeof big), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* generation 1 */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_delete(t, "small", 5), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* 2 */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "small", 5, "x", 1), 0);
  assert_int_equal(st_txn_put(t, "big", 3, big, sizeof big), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* 3 */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "small", 5, 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "big", 3, 1), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition, ST_COND_UNCHANGED_SINCE);
  st_result_free(&r);
  st_snap *a, *b;
  assert_int_equal(st_snap_at_generation(db, 1, &a), 0);
  assert_int_equal(st_snap_at_generation(db, 3, &b), 0);
  dlog d;
  memset(&d, 0, sizeof d);
  assert_int_equal(st_diff(a, b, on_diff, &d), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.keys[0], "big");
  assert_int_equal(d.put[0], 1);
  st_snap_release(a);
  st_snap_release(b);
  st_close(db);
  bs_destroy(base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_diff_between_versions),
      cmocka_unit_test(test_diff_in_pieces),
      cmocka_unit_test(test_change_means_bytes_inline_reference_out_of_line),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
