/*
 * GC and the store check in coordinator mode through a real strata-server
 * (issue 12, point 3): GC never removes a live writer's file, removes a dead
 * writer's unreferenced files and keeps its referenced ones, on demand and in
 * the background; the check finds 0 orphans after GC, and a flipped byte in a
 * value or a writer's file cut short is an error naming the file. The fixture
 * is coord_fixture.h (shared with test_coord.c). Needs $STRATA_SERVER_BIN.
 * Leases use the shortest TTL (1 s) and the tests poll until the server says
 * the lease ended or the file went: no fixed sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "coord_fixture.h"

static int file_exists(const tc_writer *w, const char *name) {
  char p[800];
  snprintf(p, sizeof p, "%s/%s%s", w->store_dir, w->prefix, name);
  struct stat st;
  return stat(p, &st) == 0;
}

static Strata__V1__GcResponse *gc(int dry_run) {
  Strata__V1__GcRequest q = STRATA__V1__GC_REQUEST__INIT;
  q.dry_run = dry_run;
  Strata__V1__GcResponse *r;
  int rc = rpc_admin_gc(C, NULL, &q, &r);
  if (rc) fprintf(stderr, "Gc: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return r;
}

static int has_error_naming(const Strata__V1__CheckStoreResponse *r, const char *what) {
  for (size_t i = 0; i < r->n_errors; i++)
    if (strstr(r->errors[i], what)) return 1;
  return 0;
}

static void unregister(const tc_writer *w) {
  Strata__V1__UnregisterWriterRequest q = STRATA__V1__UNREGISTER_WRITER_REQUEST__INIT;
  q.writer_id = w->id;
  Strata__V1__UnregisterWriterResponse *r;
  assert_int_equal(rpc_coord_unregister_writer(C, NULL, &q, &r), 0);
  rpc_free(r);
}

/* --- GC and check --------------------------------------------------------------------- */

static void test_gc_spares_live_and_referenced_removes_dead(void **state) {
  (void)state;
  tc_writer live = tc_reg("live", 3600000), dead = tc_reg("dead", 1000);
  tc_write_file(&live, "l1", "live bytes", 10, 1);
  tc_write_file(&dead, "ref", "referenced", 10, 1);
  tc_write_file(&dead, "unref", "not referenced", 14, 1);
  tc_write_file(&dead, "unreg", "never registered", 16, 0);
  tc_put p = {.key = "gc/ref", .ref_name = "ref", .len = 10};
  assert_int_equal(tc_commit(&dead, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);

  /* While both live, GC removes nothing. */
  Strata__V1__GcResponse *r = gc(0);
  assert_int_equal(r->files_removed, 0);
  rpc_free(r);
  tc_wait_ended(&dead);
  /* Dry run: says what would go, removes nothing. */
  r = gc(1);
  assert_int_equal(r->files_removed, 2);
  assert_int_equal(r->bytes_removed, 30);
  assert_int_equal(r->n_paths, 2);
  rpc_free(r);
  assert_true(file_exists(&dead, "unref") && file_exists(&dead, "unreg"));
  r = gc(0);
  assert_int_equal(r->files_removed, 2);
  assert_int_equal(r->files_kept, 1);
  assert_int_equal(r->writers_collected, 1);
  rpc_free(r);
  assert_false(file_exists(&dead, "unref"));
  assert_false(file_exists(&dead, "unreg"));
  assert_true(file_exists(&dead, "ref"));
  assert_true(file_exists(&live, "l1"));
  tc_want_value("gc/ref", "referenced", 10);
  assert_false(tc_listed(dead.id, NULL, NULL, NULL, NULL));
  assert_true(tc_listed(live.id, NULL, NULL, NULL, NULL));

  /* The check: the live writer's file is unreferenced but not an orphan. */
  Strata__V1__CheckStoreResponse *c = tc_check();
  assert_int_equal(c->errors_total, 0);
  assert_int_equal(c->unreferenced_files, 1);
  assert_int_equal(c->unreferenced_live_writer_files, 1);
  assert_true(c->values_checked >= 1);
  rpc_free(c);
  /* Once the live writer unregisters, its unreferenced file goes too, and the
   * check finds no orphans. */
  unregister(&live);
  r = gc(0);
  assert_int_equal(r->files_removed, 1);
  rpc_free(r);
  assert_false(file_exists(&live, "l1"));
  c = tc_check();
  assert_int_equal(c->errors_total, 0);
  assert_int_equal(c->unreferenced_files, 0);
  assert_int_equal(c->missing_files, 0);
  rpc_free(c);
  tc_want_value("gc/ref", "referenced", 10);
}

/* Finds the Strata data file under dir/kv/d holding `pat`; its path and the
 * offset of pat. */
static int find_in_data_files(const char *dir, const char *pat, size_t plen, char *path, size_t cap,
                              long *off) {
  char d[700];
  snprintf(d, sizeof d, "%s/kv/d", dir);
  char cmd[900];
  snprintf(cmd, sizeof cmd, "grep -l -F '%s' %s/* 2>/dev/null", pat, d);
  FILE *f = popen(cmd, "r");
  if (!f) return 0;
  int found = fgets(path, (int)cap, f) != NULL;
  pclose(f);
  if (!found) return 0;
  path[strcspn(path, "\n")] = 0;
  FILE *g = fopen(path, "rb");
  if (!g) return 0;
  static char buf[1 << 20];
  size_t n = fread(buf, 1, sizeof buf, g);
  fclose(g);
  for (size_t i = 0; i + plen <= n; i++)
    if (!memcmp(buf + i, pat, plen)) {
      *off = (long)i;
      return 1;
    }
  return 0;
}

static void test_check_reports_damaged_values_naming_the_file(void **state) {
  (void)state;
  tc_writer w = tc_reg("damage", 60000);
  tc_write_file(&w, "short", "0123456789", 10, 1);
  tc_put p = {.key = "dmg/ref", .ref_name = "short", .len = 10};
  assert_int_equal(tc_commit(&w, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  char big[501];
  memset(big, 'Q', 500);
  memcpy(big, "UNIQUE-PATTERN-", 15);
  big[500] = 0;
  tc_put b = {.key = "dmg/big", .value = big};
  assert_int_equal(tc_commit(NULL, &b, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  Strata__V1__CheckStoreResponse *c = tc_check();
  assert_int_equal(c->errors_total, 0);
  rpc_free(c);

  char dir[512];
  snprintf(dir, sizeof dir, "%s", H.dir);
  tc_stop();
  /* Flip a byte inside the out-of-line value in Strata's data file, and cut
   * the writer's file short. */
  char path[1024];
  long off = 0;
  assert_true(find_in_data_files(dir, "UNIQUE-PATTERN-", 15, path, sizeof path, &off));
  FILE *f = fopen(path, "r+b");
  assert_non_null(f);
  fseek(f, off + 100, SEEK_SET);
  fputc('R', f);
  fclose(f);
  char wf[900];
  snprintf(wf, sizeof wf, "%s/kv/%sshort", dir, w.prefix);
  assert_int_equal(truncate(wf, 5), 0);
  tc_start(dir);
  c = tc_check();
  assert_true(c->errors_total >= 2);
  const char *base = strrchr(path, '/') + 1;
  assert_true(has_error_naming(c, base));
  assert_true(has_error_naming(c, "short"));
  assert_true(has_error_naming(c, "dmg/big"));
  rpc_free(c);
}

/* The background GC (--gc-interval 1) removes a dead writer's unreferenced
 * file without being asked, and keeps its referenced one. Polled; the cap only
 * turns a broken GC into a failure instead of a hang. */
static void test_background_gc(void **state) {
  (void)state;
  char dir[512];
  snprintf(dir, sizeof dir, "%s", H.dir);
  tc_stop();
  tc_gc_interval = "1";
  tc_start(dir);
  tc_gc_interval = "0";
  tc_writer w = tc_reg("background", 1000);
  tc_write_file(&w, "keep", "kept", 4, 1);
  tc_write_file(&w, "drop", "dropped", 7, 1);
  tc_put p = {.key = "bg/keep", .ref_name = "keep", .len = 4};
  assert_int_equal(tc_commit(&w, &p, 1, NULL, 0, NULL, 0, NULL, NULL), 0);
  for (int i = 0; file_exists(&w, "drop"); i++) {
    assert_true(i < 6000);
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
  }
  assert_true(file_exists(&w, "keep"));
  tc_want_value("bg/keep", "kept", 4);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_gc_spares_live_and_referenced_removes_dead, tc_setup,
                                      tc_teardown),
      cmocka_unit_test_setup_teardown(test_check_reports_damaged_values_naming_the_file, tc_setup,
                                      tc_teardown),
      cmocka_unit_test_setup_teardown(test_background_gc, tc_setup, tc_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
