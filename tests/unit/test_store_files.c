/* Open data files are bounded: every commit makes a data file, and a reader
 * of many generations used to keep one descriptor per file for ever (with a
 * limit of 1,024, the 1,002nd get failed "Too many open files"). Here the
 * process's RLIMIT_NOFILE is lowered to 128 and values are read from more
 * generations than that, alone and from concurrent threads while handles
 * are evicted under them. Real files in /tmp. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"

#define GENS 400        /* > the descriptor limit below */
#define VLEN 600        /* out of line: each value lives in its commit's data file */

static char dir[256];

static void rm_rf(const char *d) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd)) fprintf(stderr, "cleanup failed\n");
}

static st_db *open_db(int create, size_t max_open) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.create = create;
  o.max_open_files = max_open;
  o.cache_bytes = 1 << 20; /* small: nodes are read back from their files too */
  st_db *db = NULL;
  int rc = st_open(dir, &o, &db);
  if (rc) fprintf(stderr, "open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

static void value_of(unsigned i, uint8_t *v) {
  for (size_t j = 0; j < VLEN; j++) v[j] = (uint8_t)(i * 131 + j * 7 + (j >> 8));
}

/* Key k<i> was written by generation i+1, in its own data file. */
static void check_key(st_db *db, st_snap *s, unsigned i) {
  char k[32];
  uint8_t v[VLEN];
  snprintf(k, sizeof k, "k%05u", i);
  strata_buf b = STRATA_BUF_INIT;
  int rc = st_get(s, k, strlen(k), &b);
  if (rc) fprintf(stderr, "get %s: %s\n", k, strata_errmsg());
  assert_int_equal(rc, 0);
  value_of(i, v);
  assert_int_equal(b.len, VLEN);
  assert_memory_equal(b.p, v, VLEN);
  strata_buf_free(&b);
  (void)db;
}

static void fill(st_db *db) {
  uint8_t v[VLEN];
  for (unsigned i = 0; i < GENS; i++) {
    char k[32];
    snprintf(k, sizeof k, "k%05u", i);
    value_of(i, v);
    st_txn *t;
    st_result r;
    assert_int_equal(st_txn_begin(db, &t), 0);
    assert_int_equal(st_txn_put(t, k, strlen(k), v, VLEN), 0);
    int rc = st_txn_commit(t, &r);
    if (rc) fprintf(stderr, "commit %u: %s\n", i, r.message);
    assert_int_equal(rc, 0);
    assert_int_equal(r.generation, i + 1);
    st_result_free(&r);
  }
}

/* Every generation's value, at latest and at its own generation, with the
 * default bound (a quarter of the lowered limit). */
static void test_reads_across_more_generations_than_descriptors(void **state) {
  (void)state;
  st_db *db = open_db(1, 0);
  fill(db);
  st_close(db);
  db = open_db(0, 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  for (int round = 0; round < 2; round++)
    for (unsigned i = 0; i < GENS; i++) check_key(db, s, i);
  st_snap_release(s);
  for (unsigned i = 0; i < GENS; i += 3) {
    assert_int_equal(st_snap_at_generation(db, i + 1, &s), 0);
    check_key(db, s, i);
    st_snap_release(s);
  }
  st_stats st;
  st_get_stats(db, &st);
  assert_true(st.open_files <= 32); /* min(256, 128 / 4) */
  assert_true(st.file_opens >= GENS);
  st_close(db);
}

typedef struct reader {
  st_db *db;
  unsigned start;
  int failures;
} reader;

static void *read_all(void *arg) {
  reader *r = arg;
  st_snap *s;
  if (st_snap_latest(r->db, &s)) {
    r->failures++;
    return NULL;
  }
  uint8_t v[VLEN];
  for (unsigned n = 0; n < 3 * GENS; n++) {
    unsigned i = (r->start + n * 7) % GENS;
    char k[32];
    snprintf(k, sizeof k, "k%05u", i);
    strata_buf b = STRATA_BUF_INIT;
    value_of(i, v);
    if (st_get(s, k, strlen(k), &b) || b.len != VLEN || memcmp(b.p, v, VLEN)) r->failures++;
    strata_buf_free(&b);
  }
  st_snap_release(s);
  return NULL;
}

/* Four readers over 400 files with at most 3 handles open: handles are
 * evicted and reopened constantly, never closed under a reader in pread. */
static void test_concurrent_readers_with_evictions(void **state) {
  (void)state;
  st_db *db = open_db(0, 3);
  reader r[4];
  pthread_t th[4];
  for (int i = 0; i < 4; i++) {
    r[i] = (reader){db, (unsigned)i * 101, 0};
    assert_int_equal(pthread_create(&th[i], NULL, read_all, &r[i]), 0);
  }
  for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
  for (int i = 0; i < 4; i++) assert_int_equal(r[i].failures, 0);
  st_stats st;
  st_get_stats(db, &st);
  assert_true(st.file_closes > 0);
  st_close(db);
}

static int setup(void **state) {
  (void)state;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl)) return -1;
  rl.rlim_cur = 128;
  if (setrlimit(RLIMIT_NOFILE, &rl)) return -1;
  snprintf(dir, sizeof dir, "/tmp/strata-files-%d", (int)getpid());
  rm_rf(dir);
  return 0;
}

static int teardown(void **state) {
  (void)state;
  rm_rf(dir);
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reads_across_more_generations_than_descriptors),
      cmocka_unit_test(test_concurrent_readers_with_evictions),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
