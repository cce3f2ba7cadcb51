/* Corruption: a flipped byte in a manifest, in a B+tree node or in an
 * out-of-line value gives STRATA_ECORRUPT naming the file on the read that
 * touches it, never wrong data; reads that do not touch it still work. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"

static char dir[256];

static void rm_rf(const char *d) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd)) fprintf(stderr, "cleanup failed\n");
}

static void flip(const char *path, long off) {
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  if (off < 0) off += st.st_size;
  uint8_t b;
  assert_int_equal(pread(fd, &b, 1, off), 1);
  b ^= 0x10;
  assert_int_equal(pwrite(fd, &b, 1, off), 1);
  close(fd);
}

static int last_open_rc;

/* NULL on failure, with the code in last_open_rc. */
static st_db *open_db(int create) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = create;
  st_db *db = NULL;
  last_open_rc = st_open(dir, &o, &db);
  return last_open_rc ? NULL : db;
}

/* One commit: "small" inline, "value" out of line (1000 bytes at offset 16
 * of the data file, right after its header). Returns the data file path. */
static void make_db(char *data_path, size_t cap) {
  rm_rf(dir);
  st_db *db = open_db(1);
  assert_non_null(db);
  st_txn *t;
  st_result r;
  uint8_t v[1000];
  memset(v, 'v', sizeof v);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "value", 5, v, sizeof v), 0);
  assert_int_equal(st_txn_put(t, "small", 5, "s", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_close(db);
  char cmd[600];
  snprintf(cmd, sizeof cmd, "ls %s/d", dir);
  FILE *p = popen(cmd, "r");
  char name[128] = {0};
  assert_non_null(fgets(name, sizeof name, p));
  pclose(p);
  name[strcspn(name, "\n")] = 0;
  snprintf(data_path, cap, "%s/d/%s", dir, name);
}

static void test_flipped_value_byte(void **state) {
  char data[512];
  make_db(data, sizeof data);
  flip(data, 16 + 500);
  st_db *db = open_db(0);
  assert_non_null(db);
  st_snap *s;
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_get(s, "value", 5, &b), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "checksum"));
  assert_non_null(strstr(strata_errmsg(), "d/"));
  assert_int_equal(st_get(s, "small", 5, &b), 0); /* untouched data still reads */
  assert_int_equal(b.len, 1);
  strata_buf_free(&b);
  st_snap_release(s);
  st_close(db);
}

static void test_flipped_node_byte(void **state) {
  char data[512];
  make_db(data, sizeof data);
  flip(data, -6); /* inside the root node, the last thing written */
  st_db *db = open_db(0);
  assert_non_null(db);
  st_snap *s;
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_get(s, "small", 5, &b), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "d/"));
  assert_int_equal(b.len, 0);
  st_list_result lr;
  st_range rg;
  memset(&rg, 0, sizeof rg);
  assert_int_equal(st_list(s, &rg, 0, &lr), STRATA_ECORRUPT);
  st_snap_release(s);
  st_close(db);
}

static void test_flipped_manifest_byte(void **state) {
  char data[512], man[600];
  make_db(data, sizeof data);
  snprintf(man, sizeof man, "%s/manifest.0000000000000001", dir);
  flip(man, 20);
  assert_null(open_db(0));
  assert_int_equal(last_open_rc, STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "manifest.0000000000000001"));
  snprintf(man, sizeof man, "%s/manifest.ocdbt", dir);
  make_db(data, sizeof data);
  flip(man, -2);
  assert_null(open_db(0));
  assert_int_equal(last_open_rc, STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "manifest.ocdbt"));
  rm_rf(dir);
}

/* A value whose data file is gone is damage, not an absent key: the tree
 * still names it. Generation 2's nodes live in another file, so only the
 * value read touches the missing one. */
static void test_missing_value_file(void **state) {
  char data[512];
  make_db(data, sizeof data); /* generation 1: "value" out of line in `data` */
  st_db *db = open_db(0);
  assert_non_null(db);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "other", 5, "o", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_close(db);
  assert_int_equal(unlink(data), 0);
  db = open_db(0);
  assert_non_null(db);
  st_snap *s;
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 2);
  assert_int_equal(st_get(s, "value", 5, &b), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), strrchr(data, '/') + 1));
  assert_non_null(strstr(strata_errmsg(), "missing"));
  assert_int_equal(b.len, 0);
  assert_int_equal(st_get(s, "other", 5, &b), 0); /* the rest still reads */
  strata_buf_free(&b);
  /* A batch returns the first hard error as its own, with the detail. */
  st_key keys[4] = {{"other", 5}, {"nope", 4}, {"value", 5}, {"small", 5}};
  st_getres res[4];
  assert_int_equal(st_get_batch(s, 4, keys, res), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "keys[2]"));
  assert_non_null(strstr(strata_errmsg(), strrchr(data, '/') + 1));
  assert_int_equal(res[0].rc, 0);
  assert_int_equal(res[1].rc, STRATA_ENOTFOUND);
  assert_int_equal(res[2].rc, STRATA_ECORRUPT);
  assert_int_equal(res[3].rc, 0);
  assert_int_equal(res[3].value.len, 1);
  for (int i = 0; i < 4; i++) strata_buf_free(&res[i].value);
  /* without a hard error the call succeeds */
  assert_int_equal(st_get_batch(s, 2, keys, res), 0);
  for (int i = 0; i < 2; i++) strata_buf_free(&res[i].value);
  st_snap_release(s);
  st_close(db);
  rm_rf(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/strata-corrupt-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_flipped_value_byte),
    cmocka_unit_test(test_flipped_node_byte),
    cmocka_unit_test(test_flipped_manifest_byte),
    cmocka_unit_test(test_missing_value_file),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
