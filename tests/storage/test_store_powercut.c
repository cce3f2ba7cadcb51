/* Power cuts, simulated exactly: the memory store keeps only what a strict
 * filesystem must keep (file bytes up to their last fsync, directory entries
 * as of their directory's last fsync), and a run of commits is cut after
 * every single operation in turn. After each cut the database must open,
 * every acknowledged commit must be there at its generation, the newest
 * generation may be the one unacknowledged commit but then whole, and a new
 * commit must succeed. This checks the durability order of storage/README.md
 * (data and temp manifest fsynced, then renamed, then the directory fsynced,
 * then acknowledged) in a way a SIGKILL cannot: a killed process loses no
 * written byte. */
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

/* --- the model itself ------------------------------------------------------ */

static int exists(bs_store *s, const char *path) {
  bs_file *f = NULL;
  int rc = bs_open_read(s, path, &f);
  if (!rc) bs_close(f);
  return rc == 0;
}

static uint64_t size_of(bs_store *s, const char *path) {
  bs_file *f = NULL;
  uint64_t n = 0;
  assert_int_equal(bs_open_read(s, path, &f), 0);
  assert_int_equal(bs_size(f, &n), 0);
  bs_close(f);
  return n;
}

static void test_model_keeps_only_what_was_synced(void **state) {
  (void)state;
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  bs_file *f;
  /* a: written, fsynced, directory fsynced, then more bytes without fsync */
  assert_int_equal(bs_create(s, "a", &f), 0);
  assert_int_equal(bs_append(f, "12345", 5), 0);
  assert_int_equal(bs_fsync(f), 0);
  assert_int_equal(bs_sync_dir(s, ""), 0);
  assert_int_equal(bs_append(f, "678", 3), 0);
  bs_close(f);
  /* b: fsynced, but its directory entry never was */
  assert_int_equal(bs_create(s, "b", &f), 0);
  assert_int_equal(bs_append(f, "x", 1), 0);
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
  /* d/c: durable; then renamed and removed without a directory fsync */
  assert_int_equal(bs_create(s, "d/c", &f), 0);
  assert_int_equal(bs_append(f, "cc", 2), 0);
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
  assert_int_equal(bs_sync_dir(s, "d"), 0);
  assert_int_equal(bs_rename(s, "d/c", "d/c2"), 0);
  assert_int_equal(bs_remove(s, "d/c2"), 0);
  /* Two more operations complete, then the power is off. */
  bs_mem_cut_power_after(s, 2);
  assert_int_equal(bs_create(s, "e", &f), 0);
  assert_int_equal(bs_append(f, "e", 1), 0);
  assert_int_equal(bs_fsync(f), STRATA_EIO);
  assert_int_equal(bs_sync_dir(s, ""), STRATA_EIO);
  bs_close(f);
  assert_int_equal(bs_mem_power_on(s), 0);
  assert_true(exists(s, "a"));
  assert_int_equal(size_of(s, "a"), 5);
  assert_false(exists(s, "b"));
  assert_true(exists(s, "d/c"));
  assert_int_equal(size_of(s, "d/c"), 2);
  assert_false(exists(s, "d/c2"));
  assert_false(exists(s, "e"));
  bs_destroy(s);
}

/* --- commits cut at every operation ------------------------------------------ */

#define MAXC 150 /* commits in the longest run */
#define NKEYS (MAXC + 4)

/* Commit i (1-based) puts "a<i>" (out of line every third time) and "s<i%4>",
 * and deletes "a<i-3>". expect() replays commits 1..g. */
static void key_name(int k, char *out) {
  if (k < MAXC) snprintf(out, 16, "a%03d", k + 1);
  else snprintf(out, 16, "s%d", k - MAXC);
}

static void value_of(int i, int k, char *out, size_t *n) {
  *n = k < MAXC && i % 3 == 0 ? 300 : 20;
  memset(out, 'A' + (i + k) % 26, *n);
}

static void expect(int g, int present[NKEYS], int writer[NKEYS]) {
  for (int k = 0; k < NKEYS; k++) present[k] = writer[k] = 0;
  for (int i = 1; i <= g; i++) {
    present[i - 1] = 1, writer[i - 1] = i;
    present[MAXC + i % 4] = 1, writer[MAXC + i % 4] = i;
    if (i > 3) present[i - 4] = 0;
  }
}

static int commit(st_db *db, int i) {
  st_txn *t;
  st_result r;
  char k[16], v[300];
  size_t n;
  assert_int_equal(st_txn_begin(db, &t), 0);
  key_name(i - 1, k);
  value_of(i, i - 1, v, &n);
  assert_int_equal(st_txn_put(t, k, strlen(k), v, n), 0);
  key_name(MAXC + i % 4, k);
  value_of(i, MAXC + i % 4, v, &n);
  assert_int_equal(st_txn_put(t, k, strlen(k), v, n), 0);
  if (i > 3) {
    key_name(i - 4, k);
    assert_int_equal(st_txn_delete(t, k, strlen(k)), 0);
  }
  int rc = st_txn_commit(t, &r);
  if (!rc) assert_int_equal(r.generation, (uint64_t)i);
  st_result_free(&r);
  return rc;
}

/* The database at generation g holds exactly commits 1..g. */
static void check_generation(st_db *db, int g, long cut) {
  st_snap *s;
  if (st_snap_at_generation(db, (uint64_t)g, &s))
    fail_msg("cut after %ld: generation %d: %s", cut, g, strata_errmsg());
  int present[NKEYS], writer[NKEYS];
  expect(g, present, writer);
  for (int k = 0; k < NKEYS; k++) {
    char name[16], want[300];
    size_t n;
    key_name(k, name);
    strata_buf b = STRATA_BUF_INIT;
    int rc = st_get(s, name, strlen(name), &b);
    if (!present[k]) {
      if (rc != STRATA_ENOTFOUND)
        fail_msg("cut after %ld: generation %d: key %s should be absent, got rc %d", cut, g, name, rc);
    } else {
      if (rc) fail_msg("cut after %ld: generation %d: key %s: %s", cut, g, name, strata_errmsg());
      value_of(writer[k], k, want, &n);
      if (b.len != n || memcmp(b.p, want, n))
        fail_msg("cut after %ld: generation %d: key %s has the wrong value", cut, g, name);
    }
    strata_buf_free(&b);
  }
  st_snap_release(s);
}

static st_db *open_db_with(bs_store *base, int create, int prepare) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.base = base;
  o.create = create;
  /* Without the preparer, the same operations in the same order every run. */
  o.no_prepare = !prepare;
  o.config.max_decoded_node_bytes = 1024;
  st_db *db = NULL;
  return st_open("mem", &o, &db) ? NULL : db;
}

static st_db *open_db(bs_store *base, int create) { return open_db_with(base, create, 0); }

/* Runs `commits` commits, cutting the power after operation `cut` for every
 * cut that is a multiple of `stride` or among the last `tail` operations. */
static void run_cuts(int commits, int prepare, long stride, long tail) {
  /* How many operations the commits take when nothing fails. */
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_db_with(base, 1, prepare);
  assert_non_null(db);
  long before = bs_mem_ops(base);
  for (int i = 1; i <= commits; i++) assert_int_equal(commit(db, i), 0);
  long total = bs_mem_ops(base) - before;
  st_close(db);
  bs_destroy(base);
  assert_true(total > commits * 4);

  int unacked_seen = 0, runs = 0;
  for (long cut = 1; cut <= total; cut++) {
    if (cut % stride && cut <= total - tail) continue;
    runs++;
    assert_int_equal(bs_mem_create(&base), 0);
    db = open_db_with(base, 1, prepare);
    assert_non_null(db);
    bs_mem_cut_power_after(base, cut);
    int acked = 0;
    for (int i = 1; i <= commits; i++) {
      if (commit(db, i) == 0) {
        if (acked != i - 1) fail_msg("cut after %ld: commit %d acknowledged after a failure", cut, i);
        acked = i;
      }
    }
    st_close(db);
    assert_int_equal(bs_mem_power_on(base), 0);
    db = open_db_with(base, 0, prepare);
    if (!db) fail_msg("cut after %ld operations: reopen failed: %s", cut, strata_errmsg());
    st_snap *s;
    assert_int_equal(st_snap_latest(db, &s), 0);
    int latest = (int)st_snap_info(s).generation;
    st_snap_release(s);
    if (latest < acked)
      fail_msg("cut after %ld operations: commit %d was acknowledged, the database is at %d", cut,
               acked, latest);
    if (latest > acked + 1)
      fail_msg("cut after %ld operations: at generation %d, only %d commits were tried past %d", cut,
               latest, acked + 1, acked);
    unacked_seen += latest == acked + 1;
    for (int g = 1; g <= latest; g++) check_generation(db, g, cut);
    /* And it takes new commits. */
    if (latest < MAXC) assert_int_equal(commit(db, latest + 1), 0);
    st_close(db);
    bs_destroy(base);
  }
  fprintf(stderr, "%d commits%s: power cut after %d of their %ld operations; %d times the "
          "unacknowledged commit survived whole\n", commits, prepare ? " (preparer on)" : "", runs,
          total, unacked_seen);
}

static void test_commits_survive_a_power_cut_at_every_operation(void **state) {
  (void)state;
  run_cuts(12, 0, 1, 0);
}

/* Past the 128 numbered manifests kept (old ones are removed after each commit)
 * and with the preparer creating each next commit's files ahead: a cut at
 * every 7th operation and at each of the last 150. */
static void test_long_run_with_preparer_survives_power_cuts(void **state) {
  (void)state;
  run_cuts(140, 1, 7, 150);
}

/* Creating a database is cut at every operation too: afterwards, opening with
 * create either finds the database or makes it, and it takes a commit. */
static void test_creation_survives_a_power_cut_at_every_operation(void **state) {
  (void)state;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_db(base, 1);
  assert_non_null(db);
  long total = bs_mem_ops(base);
  st_close(db);
  bs_destroy(base);
  assert_true(total > 0);
  for (long cut = 1; cut <= total; cut++) {
    assert_int_equal(bs_mem_create(&base), 0);
    bs_mem_cut_power_after(base, cut);
    db = open_db(base, 1);
    if (db) st_close(db);
    assert_int_equal(bs_mem_power_on(base), 0);
    db = open_db(base, 1);
    if (!db) fail_msg("creation cut after %ld of %ld operations: reopen failed: %s", cut, total, strata_errmsg());
    if (commit(db, 1)) fail_msg("creation cut after %ld operations: first commit failed", cut);
    check_generation(db, 1, cut);
    st_close(db);
    bs_destroy(base);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_keeps_only_what_was_synced),
      cmocka_unit_test(test_commits_survive_a_power_cut_at_every_operation),
      cmocka_unit_test(test_long_run_with_preparer_survives_power_cuts),
      cmocka_unit_test(test_creation_survives_a_power_cut_at_every_operation),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
