/*
 * A store whose newest acknowledged generation is missing from disk is refused
 * at start (issue 9, point 4). A real strata-server commits, stops; the newest
 * numbered manifest is deleted (an operator's slip, a bad restore); the next
 * start must exit non-zero with a message naming the acknowledged generation
 * and the missing manifest, and delete nothing in the store. With the manifest
 * put back it starts and serves every acknowledged commit. The last
 * acknowledged generation comes from the lock store ('G', locks/README.md).
 * Run on the per-group files path (--no-commit-log) and with the commit log
 * (the default), where the commit log is removed too (a restore of kv/
 * without it): while the log still holds a generation, replay brings it back.
 * Needs $STRATA_SERVER_BIN.
 */
#include <dirent.h>
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
#include "rpc/client.h"
#include "srv_harness.h"

#define NCOMMITS 5

static harness H;
static char dir[512];

static int commit_key(rpc_client *c, int i) {
  char k[32], v[32];
  snprintf(k, sizeof k, "rb/%03d", i);
  snprintf(v, sizeof v, "value-%d", i);
  return harness_put(c, k, strlen(k), v, strlen(v));
}

/* "name size\n" for every file of the store directory, sorted, into out. */
static void list_store(char *out, size_t n) {
  char kv[600];
  snprintf(kv, sizeof kv, "%s/kv", dir);
  struct dirent **e;
  int k = scandir(kv, &e, NULL, alphasort);
  assert_true(k > 0);
  size_t o = 0;
  out[0] = 0;
  for (int i = 0; i < k; i++) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", kv, e[i]->d_name);
    struct stat st;
    if (e[i]->d_name[0] != '.' && stat(p, &st) == 0 && S_ISREG(st.st_mode) && o < n)
      o += (size_t)snprintf(out + o, n - o, "%s %lld\n", e[i]->d_name, (long long)st.st_size);
    free(e[i]);
  }
  free(e);
  /* data files under d/ too */
  snprintf(kv, sizeof kv, "%s/kv/d", dir);
  k = scandir(kv, &e, NULL, alphasort);
  for (int i = 0; i < k; i++) {
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", kv, e[i]->d_name);
    struct stat st;
    if (e[i]->d_name[0] != '.' && stat(p, &st) == 0 && o < n)
      o += (size_t)snprintf(out + o, n - o, "d/%s %lld\n", e[i]->d_name, (long long)st.st_size);
    free(e[i]);
  }
  if (k > 0) free(e);
}

static void rm_log(void) {
  char p[700];
  snprintf(p, sizeof p, "%s/kv/log", dir);
  harness_rmdir(p);
}

static void missing_newest_manifest(int per_group) {
  const char *bin = getenv("STRATA_SERVER_BIN");
  assert_non_null(bin);
  const char *const pg[] = {"--no-commit-log", NULL};
  const char *const *extra = per_group ? pg : NULL;
  dir[0] = 0;
  assert_int_equal(harness_start(&H, bin, NULL, extra), 0);
  snprintf(dir, sizeof dir, "%s", H.dir);
  rpc_client *c;
  rpc_client_opts o = {.addr = H.addr};
  assert_int_equal(rpc_client_open(&o, &c), 0);
  for (int i = 1; i <= NCOMMITS; i++) assert_int_equal(commit_key(c, i), 0);
  rpc_client_close(c);
  assert_int_equal(harness_stop(&H), 0);

  /* Delete the newest numbered manifest (generation NCOMMITS), keep its bytes. */
  char man[700];
  snprintf(man, sizeof man, "%s/kv/manifest.%016x", dir, NCOMMITS);
  FILE *f = fopen(man, "rb");
  assert_non_null(f);
  static uint8_t saved[1 << 20];
  size_t saved_len = fread(saved, 1, sizeof saved, f);
  fclose(f);
  assert_true(saved_len > 0);
  assert_int_equal(unlink(man), 0);
  if (!per_group) rm_log();
  static char before[1 << 16], after[1 << 16];
  list_store(before, sizeof before);

  /* The start is refused, names what is missing, and deletes nothing. */
  const char *args[] = {bin, "--listen", "127.0.0.1:0", "--data-dir", dir, per_group ? pg[0] : NULL, NULL};
  static char err[1 << 16];
  int st = harness_run(bin, args, err, sizeof err);
  if (st != 1) fprintf(stderr, "exit %d, stderr:\n%s\n", st, err);
  assert_int_equal(st, 1);
  char want[64];
  snprintf(want, sizeof want, "generation %d was acknowledged", NCOMMITS);
  if (!strstr(err, want) || !strstr(err, "manifest.")) fprintf(stderr, "stderr:\n%s\n", err);
  assert_non_null(strstr(err, want));
  assert_non_null(strstr(err, "manifest."));
  list_store(after, sizeof after);
  if (strcmp(before, after)) fprintf(stderr, "before:\n%s\nafter:\n%s\n", before, after);
  assert_string_equal(before, after);

  /* With the manifest restored it starts and serves every commit. */
  f = fopen(man, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(saved, 1, saved_len, f), saved_len);
  fclose(f);
  assert_int_equal(harness_start(&H, bin, dir, extra), 0);
  o.addr = H.addr;
  assert_int_equal(rpc_client_open(&o, &c), 0);
  for (int i = 1; i <= NCOMMITS; i++) {
    char k[32], v[32];
    snprintf(k, sizeof k, "rb/%03d", i);
    snprintf(v, sizeof v, "value-%d", i);
    assert_int_equal(harness_check(c, k, strlen(k), v, strlen(v)), 0);
  }
  rpc_client_close(c);
  assert_int_equal(harness_stop(&H), 0);
}

static void test_missing_newest_manifest_is_refused_and_nothing_deleted(void **state) {
  (void)state;
  missing_newest_manifest(1);
}

static void test_missing_newest_manifest_and_log_are_refused_and_nothing_deleted(void **state) {
  (void)state;
  missing_newest_manifest(0);
}

static int teardown(void **state) {
  (void)state;
  harness_stop(&H);
  if (dir[0]) harness_rmdir(dir);
  dir[0] = 0;
  return 0;
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_teardown(test_missing_newest_manifest_is_refused_and_nothing_deleted, teardown),
      cmocka_unit_test_teardown(test_missing_newest_manifest_and_log_are_refused_and_nothing_deleted,
                                teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
