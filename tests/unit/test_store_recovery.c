/* Never silently roll back: with the latest numbered manifest gone, open
 * used to load the previous generation, delete the newer data file and reuse
 * its generation number. Now open deletes nothing a restore needs, refuses a
 * database whose newest data is more than one generation past its newest
 * manifest, and refuses one below the caller's last acknowledged generation
 * (st_options.min_generation). In the memory store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"

static int open_opts(bs_store *base, int create, int read_only, uint64_t min_gen, st_db **db) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.base = base;
  o.create = create;
  o.read_only = read_only;
  o.min_generation = min_gen;
  o.no_prepare = 1;
  *db = NULL;
  return st_open("mem", &o, db);
}

static st_db *must_open(bs_store *base, uint64_t min_gen) {
  st_db *db;
  int rc = open_opts(base, 0, 0, min_gen, &db);
  if (rc) fprintf(stderr, "open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

/* Generations 1..n, each putting k<g> = a 300-byte value (out of line, in
 * that generation's data file). */
static void commit_gens(st_db *db, unsigned from, unsigned to) {
  for (unsigned g = from; g <= to; g++) {
    char k[16], v[300];
    snprintf(k, sizeof k, "k%u", g);
    memset(v, 'a' + (int)g, sizeof v);
    st_txn *t;
    st_result r;
    assert_int_equal(st_txn_begin(db, &t), 0);
    assert_int_equal(st_txn_put(t, k, strlen(k), v, sizeof v), 0);
    assert_int_equal(st_txn_commit(t, &r), 0);
    assert_int_equal(r.generation, g);
    st_result_free(&r);
  }
}

static void check_gens(st_db *db, unsigned upto) {
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, upto);
  for (unsigned g = 1; g <= upto; g++) {
    char k[16], v[300];
    snprintf(k, sizeof k, "k%u", g);
    memset(v, 'a' + (int)g, sizeof v);
    strata_buf b = STRATA_BUF_INIT;
    assert_int_equal(st_get(s, k, strlen(k), &b), 0);
    assert_int_equal(b.len, sizeof v);
    assert_memory_equal(b.p, v, sizeof v);
    strata_buf_free(&b);
  }
  st_snap_release(s);
}

/* Names in d/ whose generation (first 16 hex digits) is g. */
static size_t data_files_of(bs_store *base, uint64_t g, char *first, size_t cap) {
  char **names;
  size_t n, found = 0;
  assert_int_equal(bs_list(base, "d", &names, &n), 0);
  for (size_t i = 0; i < n; i++) {
    char gen[17];
    if (strlen(names[i]) != 32) continue;
    memcpy(gen, names[i], 16);
    gen[16] = 0;
    if (strtoull(gen, NULL, 16) != g) continue;
    if (!found && first) snprintf(first, cap, "d/%s", names[i]);
    found++;
  }
  free(names);
  return found;
}

static void save(bs_store *base, const char *path, uint8_t **p, size_t *n) {
  assert_int_equal(bs_read_all(base, path, p, n), 0);
}

static void put_file(bs_store *base, const char *path, const uint8_t *p, size_t n) {
  bs_file *f;
  assert_int_equal(bs_create(base, path, &f), 0);
  if (n) assert_int_equal(bs_append(f, p, n), 0);
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
}

/* A new memory database with generations 1..n. */
static bs_store *db_with_gens(unsigned n) {
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db;
  assert_int_equal(open_opts(base, 1, 0, 0, &db), 0);
  commit_gens(db, 1, n);
  st_close(db);
  return base;
}

static void test_lost_latest_manifest_keeps_its_data_and_min_generation_refuses(void **state) {
  (void)state;
  bs_store *base = db_with_gens(5);
  st_db *db;
  uint8_t *m5;
  size_t m5n;
  save(base, "manifest.0000000000000005", &m5, &m5n);
  char d5[64];
  assert_int_equal(data_files_of(base, 5, d5, sizeof d5), 1);
  assert_int_equal(bs_remove(base, "manifest.0000000000000005"), 0);

  /* The caller knows generation 5 was acknowledged: refused, naming it. */
  assert_int_equal(open_opts(base, 0, 0, 5, &db), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "manifest.0000000000000005 is missing"));
  assert_int_equal(open_opts(base, 0, 1, 5, &db), STRATA_ECORRUPT);

  /* Without that knowledge it opens at 4, but deletes nothing: generation
   * 5's data file stays, reported as a stray. */
  db = must_open(base, 4);
  st_stats st;
  st_get_stats(db, &st);
  assert_int_equal(st.stray_data_files, 1);
  check_gens(db, 4);
  st_close(db);
  assert_int_equal(data_files_of(base, 5, NULL, 0), 1);

  /* A restore of the manifest brings generation 5 back whole. */
  put_file(base, "manifest.0000000000000005", m5, m5n);
  db = must_open(base, 5);
  check_gens(db, 5);
  st_get_stats(db, &st);
  assert_int_equal(st.stray_data_files, 0);
  st_close(db);
  free(m5);
  bs_destroy(base);
}

/* Two manifests gone: the data of generation 5 is two past the newest
 * manifest (3), which no crash can leave; a writable open refuses instead of
 * reusing generations 4 and 5, read-only still opens, and nothing is removed. */
static void test_data_two_generations_past_manifest_refuses_writable_open(void **state) {
  (void)state;
  bs_store *base = db_with_gens(5);
  st_db *db;
  uint8_t *m4, *m5;
  size_t m4n, m5n;
  save(base, "manifest.0000000000000004", &m4, &m4n);
  save(base, "manifest.0000000000000005", &m5, &m5n);
  assert_int_equal(bs_remove(base, "manifest.0000000000000004"), 0);
  assert_int_equal(bs_remove(base, "manifest.0000000000000005"), 0);
  char d5[64];
  assert_int_equal(data_files_of(base, 5, d5, sizeof d5), 1);
  assert_int_equal(open_opts(base, 0, 0, 0, &db), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), d5));
  assert_non_null(strstr(strata_errmsg(), "generations 4..5 are missing"));
  assert_int_equal(data_files_of(base, 4, NULL, 0), 1);
  assert_int_equal(data_files_of(base, 5, NULL, 0), 1);
  assert_int_equal(open_opts(base, 0, 1, 0, &db), 0);
  check_gens(db, 3);
  st_close(db);
  put_file(base, "manifest.0000000000000004", m4, m4n);
  put_file(base, "manifest.0000000000000005", m5, m5n);
  db = must_open(base, 5);
  check_gens(db, 5);
  commit_gens(db, 6, 6);
  st_close(db);
  free(m4);
  free(m5);
  bs_destroy(base);
}

/* What a killed commit leaves: its (non-empty) data file at L+1 is kept and
 * the next commit makes generation L+1 in a new file, overwriting nothing;
 * the preparer's empty files (L+1, L+2) are removed. */
static void test_interrupted_commit_leftovers(void **state) {
  (void)state;
  bs_store *base = db_with_gens(2);
  st_db *db;
  put_file(base, "d/00000000000000030123456789abcdef", (const uint8_t *)"strata-data-v1\n\0partial", 23);
  put_file(base, "d/00000000000000030000000000000001", NULL, 0);
  put_file(base, "d/00000000000000040000000000000002", NULL, 0);
  db = must_open(base, 2);
  st_stats st;
  st_get_stats(db, &st);
  assert_int_equal(st.stray_data_files, 1);
  commit_gens(db, 3, 3);
  check_gens(db, 3);
  st_close(db);
  assert_int_equal(data_files_of(base, 3, NULL, 0), 2); /* the stray and the new one */
  assert_int_equal(data_files_of(base, 4, NULL, 0), 0);
  uint8_t *p;
  size_t n;
  save(base, "d/00000000000000030123456789abcdef", &p, &n);
  assert_int_equal(n, 23);
  free(p);
  db = must_open(base, 3);
  check_gens(db, 3);
  st_close(db);
  bs_destroy(base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lost_latest_manifest_keeps_its_data_and_min_generation_refuses),
      cmocka_unit_test(test_data_two_generations_past_manifest_refuses_writable_open),
      cmocka_unit_test(test_interrupted_commit_leftovers),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
