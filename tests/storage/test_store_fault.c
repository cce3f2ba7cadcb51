/* Fault injection: every write, fsync and rename a commit performs is failed
 * in turn (EIO and ENOSPC, through the fault-injecting base store over real
 * files). Each time the commit must fail with that error and a message, the
 * database must reopen at the previous generation with no data file left
 * behind, and a retry must succeed. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"

static char dir[256];

static void rm_rf(const char *d) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd)) fprintf(stderr, "cleanup of %s failed\n", d);
}

static st_db *open_with(bs_store *base) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.base = base;
  o.create = 1;
  o.no_prepare = 1; /* every counted operation belongs to the commit */
  o.config.max_decoded_node_bytes = 2048;
  st_db *db = NULL;
  int rc = st_open(dir, &o, &db);
  if (rc) fail_msg("open: %s", strata_errmsg());
  return db;
}

/* A transaction that touches inline, out-of-line and large (direct write) values. */
static st_txn *make_txn(st_db *db, int round, uint8_t *big, size_t bign) {
  st_txn *t;
  assert_int_equal(st_txn_begin(db, &t), 0);
  char k[64], v[300];
  for (int i = 0; i < 40; i++) {
    snprintf(k, sizeof k, "round%03d/key%03d", round, i);
    memset(v, 'a' + i % 26, sizeof v);
    assert_int_equal(st_txn_put(t, k, strlen(k), v, i % 2 ? 10 : sizeof v), 0);
  }
  snprintf(k, sizeof k, "big%03d", round);
  big[0] = (uint8_t)round;
  assert_int_equal(st_txn_put_borrowed(t, k, strlen(k), big, bign), 0);
  return t;
}

static uint64_t latest_gen(st_db *db) {
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  uint64_t g = st_snap_info(s).generation;
  st_snap_release(s);
  return g;
}

/* No data file of a generation after g, and no temp file. */
static void assert_no_orphans(bs_store *files, uint64_t g) {
  char **names;
  size_t n;
  assert_int_equal(bs_list(files, "d", &names, &n), 0);
  for (size_t i = 0; i < n; i++) {
    char gen[17];
    memcpy(gen, names[i], 16);
    gen[16] = 0;
    if (strtoull(gen, NULL, 16) > g) fail_msg("orphan data file d/%s after generation %llu", names[i],
                                              (unsigned long long)g);
  }
  free(names);
  assert_int_equal(bs_list(files, "", &names, &n), 0);
  for (size_t i = 0; i < n; i++)
    if (!strncmp(names[i], "tmp.", 4)) fail_msg("temp file %s left", names[i]);
  free(names);
}

static void test_every_site_fails_cleanly(void **state) {
  snprintf(dir, sizeof dir, "/tmp/strata-fault-%d", (int)getpid());
  rm_rf(dir);
  bs_store *files, *fault;
  assert_int_equal(bs_file_open(dir, &files), 0);
  assert_int_equal(bs_fault_wrap(files, &fault), 0);
  size_t bign = (2u << 20) + 123;
  uint8_t *big = malloc(bign);
  for (size_t i = 0; i < bign; i++) big[i] = (uint8_t)(i * 31);
  st_db *db = open_with(fault);
  int round = 0;
  st_result r;
  /* Grow the tree and cross a version-tree leaf boundary so commits write
   * version nodes too, then count one commit's operations per site. */
  for (; round < 20; round++) assert_int_equal(st_txn_commit(make_txn(db, round, big, 10), &r), 0);
  uint64_t before[BS_FAULT_NSITES], per_commit[BS_FAULT_NSITES];
  for (int s = 0; s < BS_FAULT_NSITES; s++) before[s] = bs_fault_count(fault, s);
  assert_int_equal(st_txn_commit(make_txn(db, round++, big, bign), &r), 0);
  for (int s = 0; s < BS_FAULT_NSITES; s++) per_commit[s] = bs_fault_count(fault, s) - before[s];
  assert_true(per_commit[BS_FAULT_WRITE] >= 3);  /* data buffer, big value, manifest */
  assert_true(per_commit[BS_FAULT_FSYNC] >= 4);  /* data, d/, manifest temp, directory */
  assert_true(per_commit[BS_FAULT_RENAME] >= 1);
  int injected = 0;
  for (int s = 0; s < BS_FAULT_NSITES; s++) {
    for (uint64_t nth = 1; nth <= per_commit[s]; nth++) {
      int err = (nth + (uint64_t)s) % 2 ? EIO : ENOSPC;
      uint64_t g = latest_gen(db);
      uint64_t fired = bs_fault_fired(fault);
      bs_fault_arm(fault, s, nth, err);
      int rc = st_txn_commit(make_txn(db, round, big, bign), &r);
      bs_fault_arm(fault, s, 0, 0);
      assert_int_equal(bs_fault_fired(fault), fired + 1);
      if (rc != err) fail_msg("site %d #%llu: commit returned %d (%s), want %d", s, (unsigned long long)nth,
                              rc, r.message, err);
      if (!strstr(r.message, "injected")) fail_msg("site %d #%llu: message: %s", s, (unsigned long long)nth, r.message);
      assert_non_null(strstr(r.message, "commit of generation"));
      assert_int_equal(latest_gen(db), g);
      st_close(db);
      /* reopen straight on the files: still generation g, nothing left over */
      db = open_with(files);
      assert_int_equal(latest_gen(db), g);
      assert_no_orphans(files, g);
      st_snap *sn;
      strata_buf v = STRATA_BUF_INIT;
      char k[32];
      snprintf(k, sizeof k, "big%03d", round);
      assert_int_equal(st_snap_latest(db, &sn), 0);
      assert_int_equal(st_get(sn, k, strlen(k), &v), STRATA_ENOTFOUND);
      st_snap_release(sn);
      st_close(db);
      /* the retry succeeds */
      db = open_with(fault);
      assert_int_equal(st_txn_commit(make_txn(db, round, big, bign), &r), 0);
      assert_int_equal(r.generation, g + 1);
      assert_int_equal(st_snap_latest(db, &sn), 0);
      assert_int_equal(st_get(sn, k, strlen(k), &v), 0);
      assert_int_equal(v.len, bign);
      assert_int_equal(v.p[0], (uint8_t)round);
      assert_memory_equal(v.p + 1, big + 1, bign - 1);
      strata_buf_free(&v);
      st_snap_release(sn);
      round++;
      injected++;
    }
  }
  fprintf(stderr, "injected %d faults (%llu writes, %llu fsyncs, %llu renames per commit)\n", injected,
          (unsigned long long)per_commit[0], (unsigned long long)per_commit[1],
          (unsigned long long)per_commit[2]);
  st_close(db);
  bs_destroy(fault);
  bs_destroy(files);
  free(big);
  rm_rf(dir);
}

/* With the preparer on, a fault may hit its work instead of a commit's: a
 * commit then either succeeds (the committer creates its own files) or fails
 * with the injected error, and the database stays consistent throughout. */
static void test_faults_with_preparer(void **state) {
  snprintf(dir, sizeof dir, "/tmp/strata-fault-p-%d", (int)getpid());
  rm_rf(dir);
  bs_store *files, *fault;
  assert_int_equal(bs_file_open(dir, &files), 0);
  assert_int_equal(bs_fault_wrap(files, &fault), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.base = fault;
  o.create = 1;
  st_db *db;
  assert_int_equal(st_open(dir, &o, &db), 0);
  uint8_t big[5000];
  memset(big, 'p', sizeof big);
  int committed = 0, failed = 0;
  uint64_t x = 12345;
  for (int round = 0; round < 60; round++) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    int site = (int)((x >> 33) % BS_FAULT_NSITES);
    bs_fault_arm(fault, site, 1 + (x >> 40) % 5, (x >> 50) % 2 ? EIO : ENOSPC);
    st_result r;
    int rc = st_txn_commit(make_txn(db, round, big, sizeof big), &r);
    if (rc) {
      assert_true(rc == EIO || rc == ENOSPC);
      failed++;
    } else {
      committed++;
    }
    bs_fault_arm(fault, site, 0, 0);
    if (rc) { /* the retry succeeds */
      assert_int_equal(st_txn_commit(make_txn(db, round, big, sizeof big), &r), 0);
      committed++;
    }
  }
  uint64_t g = latest_gen(db);
  assert_int_equal(g, (uint64_t)committed);
  st_close(db);
  o.base = files;
  assert_int_equal(st_open(dir, &o, &db), 0);
  assert_int_equal(latest_gen(db), g);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  for (int round = 0; round < 60; round++) {
    char k[32];
    strata_buf v = STRATA_BUF_INIT;
    snprintf(k, sizeof k, "big%03d", round);
    assert_int_equal(st_get(s, k, strlen(k), &v), 0);
    assert_int_equal(v.len, sizeof big);
    strata_buf_free(&v);
  }
  st_snap_release(s);
  fprintf(stderr, "preparer faults: %d commits, %d failed and retried\n", committed, failed);
  st_close(db);
  /* after close: while open, the preparer's files for g + 1 are expected */
  assert_no_orphans(files, g);
  bs_destroy(fault);
  bs_destroy(files);
  rm_rf(dir);
}

/* A full disk at the first write of a database's creation: a clear error, and
 * creating again afterwards works. */
static void test_create_on_full_disk(void **state) {
  bs_store *mem, *fault;
  assert_int_equal(bs_mem_create(&mem), 0);
  assert_int_equal(bs_fault_wrap(mem, &fault), 0);
  bs_fault_arm(fault, BS_FAULT_WRITE, 1, ENOSPC);
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.base = fault;
  o.create = 1;
  st_db *db;
  assert_int_equal(st_open("mem", &o, &db), ENOSPC);
  assert_non_null(strstr(strata_errmsg(), "injected write failure"));
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_close(db);
  bs_destroy(fault);
  bs_destroy(mem);
}

/* A pass-through store whose next `fail_root_syncs` fsyncs of the database
 * directory fail with EIO (files are the inner store's own). */
typedef struct rootfail {
  bs_store base;
  bs_store *inner;
  int fail_root_syncs;
} rootfail;
static rootfail *RF(bs_store *s) { return (rootfail *)s; }
static int rf_open_read(bs_store *s, const char *p, bs_file **o) { return bs_open_read(RF(s)->inner, p, o); }
static int rf_create(bs_store *s, const char *p, bs_file **o) { return bs_create(RF(s)->inner, p, o); }
static int rf_rename(bs_store *s, const char *a, const char *b) { return bs_rename(RF(s)->inner, a, b); }
static int rf_sync_dir(bs_store *s, const char *d) {
  if (!d[0] && RF(s)->fail_root_syncs > 0) {
    RF(s)->fail_root_syncs--;
    return strata_err(EIO, "injected directory fsync failure");
  }
  return bs_sync_dir(RF(s)->inner, d);
}
static int rf_remove(bs_store *s, const char *p) { return bs_remove(RF(s)->inner, p); }
static int rf_mkdir(bs_store *s, const char *d) { return bs_mkdir(RF(s)->inner, d); }
static int rf_list(bs_store *s, const char *d, char ***n, size_t *c) { return bs_list(RF(s)->inner, d, n, c); }
static int rf_lock(bs_store *s) { return bs_lock(RF(s)->inner); }
static void rf_destroy(bs_store *s) { (void)s; }
static const bs_ops rf_ops = {rf_open_read, NULL, NULL, rf_create, NULL, NULL, NULL, NULL, rf_rename,
                              rf_sync_dir, rf_remove, rf_mkdir, rf_list, rf_lock, rf_destroy, NULL, NULL};

static size_t count_data_files(bs_store *s) {
  char **names;
  size_t n;
  assert_int_equal(bs_list(s, "d", &names, &n), 0);
  free(names);
  return n;
}

/* The directory fsync after the rename fails, and so does the one after the
 * numbered manifest is taken back: the removal may not be durable, so the
 * manifest may come back after a crash. Its data file must stay, and the
 * database must refuse commits until reopened. */
static void test_undo_not_durable_keeps_data_file(void **state) {
  rootfail rf = {{&rf_ops}, NULL, 0};
  assert_int_equal(bs_mem_create(&rf.inner), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.base = &rf.base;
  o.create = 1;
  o.no_prepare = 1;
  st_db *db = NULL;
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "a", 1, "1", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  size_t before = count_data_files(rf.inner);
  rf.fail_root_syncs = 2;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "b", 1, "2", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), EIO);
  assert_non_null(strstr(r.message, "injected directory fsync failure"));
  assert_int_equal(rf.fail_root_syncs, 0);
  assert_int_equal(count_data_files(rf.inner), before + 1); /* kept */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "c", 1, "3", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), EIO);
  assert_non_null(strstr(r.message, "reopen the database"));
  st_close(db);
  /* Reopened: the taken-back manifest is gone in this store, so generation
   * 1 is the latest, and commits work again. */
  o.create = 0;
  assert_int_equal(st_open("mem", &o, &db), 0);
  assert_int_equal(latest_gen(db), 1);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "c", 1, "3", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(r.generation, 2);
  st_close(db);
  bs_destroy(rf.inner);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_every_site_fails_cleanly),
    cmocka_unit_test(test_create_on_full_disk),
    cmocka_unit_test(test_faults_with_preparer),
    cmocka_unit_test(test_undo_not_durable_keeps_data_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
