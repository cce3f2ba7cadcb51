/* A value of 1 GiB + 1 byte commits, reads back intact after reopening, and
 * costs at most ~1.0x its size on disk (streamed out of line, no copies in
 * the data file). Runs on real files under /tmp; release builds only. */
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

static void test_one_gib_value(void **state) {
  char dir[256], cmd[300];
  snprintf(dir, sizeof dir, "/tmp/strata-big-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  size_t n = ((size_t)1 << 30) + 1;
  uint8_t *v = malloc(n);
  assert_non_null(v);
  for (size_t i = 0; i < n; i += 4096) v[i] = (uint8_t)(i >> 12);
  v[n - 1] = 0x5a;
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  st_db *db;
  assert_int_equal(st_open(dir, &o, &db), 0);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put_borrowed(t, "huge", 4, v, n), 0);
  assert_int_equal(st_txn_put(t, "small", 5, "x", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_stats st;
  st_get_stats(db, &st);
  assert_true(st.bytes_written >= n && st.bytes_written < n + (1u << 20));
  st_close(db);
  assert_int_equal(st_open(dir, &o, &db), 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(st_get(s, "huge", 4, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, v, n);
  strata_buf_free(&b);
  st_snap_release(s);
  st_close(db);
  free(v);
  assert_int_equal(system(cmd), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_gib_value)};
  return cmocka_run_group_tests(tests, NULL, NULL);
}
