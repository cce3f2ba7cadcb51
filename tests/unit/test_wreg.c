/* The writer registry (locks/writers.h) on a test clock: leases end on the
 * server's clock, survive a reopen, ids are never reused; a pinned writer (a
 * commit between its fence and its decision) is never condemned, a condemned
 * one never pins again (even with the clock stepped back, even after a
 * reopen); forgetting is permanent; file names are checked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/lock.h"
#include "locks/writers.h"
#include "tests/locks/lk_test.h"

typedef struct fx {
  char *dir;
  lk_manager *lk;
  wreg_registry *r;
} fx;

static void open_all(fx *f) {
  lk_options o;
  lk_options_init(&o);
  o.path = f->dir;
  o.clock = lkt_clock;
  assert_int_equal(lk_open(&o, &f->lk), 0);
  assert_int_equal(wreg_open(f->lk, &f->r), 0);
}

static void close_all(fx *f) {
  wreg_close(f->r);
  lk_close(f->lk);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  f->dir = lkt_tmpdir("wreg");
  open_all(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  close_all(f);
  lkt_rmdir(f->dir);
  free(f);
  return 0;
}

static int live(fx *f, uint64_t id) {
  int l = 0;
  return wreg_known(f->r, id, &l) && l;
}

static void test_lease_ends_on_the_server_clock_and_survives_reopen(void **state) {
  fx *f = *state;
  wreg_info a, b;
  assert_int_equal(wreg_register(f->r, "a", 2000, &a), 0);
  assert_int_equal(wreg_register(f->r, "b", 60000, &b), 0);
  assert_true(b.id > a.id && a.id >= 1);
  assert_string_equal(a.prefix, "d/w00000000000001-");
  lkt_advance(1999 * LKT_MS);
  assert_true(live(f, a.id));
  int64_t exp;
  assert_int_equal(wreg_renew(f->r, a.id, 0, &exp), 0); /* the registered TTL again */
  assert_int_equal(exp, lkt_clock(NULL) + 2000 * LKT_MS);
  lkt_advance(2000 * LKT_MS);
  assert_false(live(f, a.id));
  assert_int_equal(wreg_pin(f->r, a.id), STRATA_EEXPIRED);
  assert_int_equal(wreg_renew(f->r, a.id, 5000, &exp), STRATA_EEXPIRED);
  assert_int_equal(wreg_renew(f->r, 4242, 5000, &exp), STRATA_ENOTFOUND);
  /* Reopen: same state, ids continue. */
  close_all(f);
  open_all(f);
  assert_false(live(f, a.id));
  assert_true(live(f, b.id));
  wreg_info *ws;
  size_t n;
  assert_int_equal(wreg_list(f->r, 0, &ws, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ws[0].id, b.id);
  free(ws);
  assert_int_equal(wreg_list(f->r, 1, &ws, &n), 0);
  assert_int_equal(n, 2);
  assert_string_equal(ws[0].name, "a");
  free(ws);
  wreg_info c;
  assert_int_equal(wreg_register(f->r, "c", 1000, &c), 0);
  assert_int_equal(c.id, b.id + 1);
  /* Bad input. */
  assert_int_equal(wreg_register(f->r, "", 1000, &c), STRATA_EINVALID);
  assert_int_equal(wreg_register(f->r, "x", 999, &c), STRATA_EINVALID);
  assert_int_equal(wreg_register(f->r, "x", WREG_TTL_MAX_MS + 1, &c), STRATA_EINVALID);
}

static void test_pinned_writer_is_deferred_condemned_never_pins_again(void **state) {
  fx *f = *state;
  wreg_info a;
  assert_int_equal(wreg_register(f->r, "a", 1000, &a), 0);
  assert_int_equal(wreg_pin(f->r, a.id), 0); /* a commit passed the fence */
  lkt_advance(5000 * LKT_MS);                 /* ... and the lease ends meanwhile */
  uint64_t *ids, deferred;
  size_t n;
  assert_int_equal(wreg_condemn(f->r, 0, &ids, &n, &deferred), 0);
  assert_int_equal(n, 0);
  assert_int_equal(deferred, 1);
  free(ids);
  wreg_unpin(f->r, a.id); /* decided */
  assert_int_equal(wreg_condemn(f->r, 1, &ids, &n, &deferred), 0); /* dry run: nothing changes */
  assert_int_equal(n, 1);
  free(ids);
  assert_int_equal(wreg_condemn(f->r, 0, &ids, &n, &deferred), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ids[0], a.id);
  assert_int_equal(deferred, 0);
  free(ids);
  /* The clock stepped back into the old lease: still refused, also after a reopen. */
  lkt_advance(-5000 * LKT_MS);
  assert_int_equal(wreg_pin(f->r, a.id), STRATA_EEXPIRED);
  close_all(f);
  open_all(f);
  assert_int_equal(wreg_pin(f->r, a.id), STRATA_EEXPIRED);
  lkt_advance(5000 * LKT_MS);
  /* Forgotten: gone for good. */
  assert_int_equal(wreg_forget(f->r, a.id), 0);
  assert_true(wreg_is_gone(f->r, a.id));
  assert_false(wreg_known(f->r, a.id, NULL));
  assert_int_equal(wreg_pin(f->r, a.id), STRATA_EEXPIRED);
  close_all(f);
  open_all(f);
  assert_true(wreg_is_gone(f->r, a.id));
  assert_false(wreg_is_gone(f->r, a.id + 1)); /* never handed out */
  wreg_info b;
  assert_int_equal(wreg_register(f->r, "b", 1000, &b), 0);
  assert_int_equal(b.id, a.id + 1);
}

static void test_unregister_ends_the_lease_at_once(void **state) {
  fx *f = *state;
  wreg_info a;
  assert_int_equal(wreg_register(f->r, "a", 60000, &a), 0);
  assert_int_equal(wreg_unregister(f->r, a.id), 0);
  assert_int_equal(wreg_unregister(f->r, a.id), 0); /* again: a no-op */
  assert_false(live(f, a.id));
  assert_int_equal(wreg_pin(f->r, a.id), STRATA_EEXPIRED);
  assert_int_equal(wreg_unregister(f->r, 999), STRATA_ENOTFOUND);
}

static void test_files_register_under_the_prefix_only(void **state) {
  fx *f = *state;
  wreg_info a, b;
  assert_int_equal(wreg_register(f->r, "a", 60000, &a), 0);
  assert_int_equal(wreg_register(f->r, "b", 60000, &b), 0);
  char p[WREG_PATH_MAX];
  snprintf(p, sizeof p, "%schunk-0.bin", a.prefix);
  assert_int_equal(wreg_register_file(f->r, a.id, p, 4096), 0);
  assert_int_equal(wreg_register_file(f->r, a.id, p, 8192), 0); /* again: new size, one file */
  uint64_t size;
  assert_int_equal(wreg_file_size(f->r, a.id, p, &size), 0);
  assert_int_equal(size, 8192);
  assert_int_equal(wreg_file_size(f->r, b.id, p, &size), STRATA_ENOTFOUND);
  assert_int_equal(wreg_register_file(f->r, b.id, p, 1), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "outside"));
  const char *bad[] = {"d/w00000000000001-", "d/w00000000000001-a/b", "d/w00000000000001-a..b",
                       "d/w00000000000001-sp ace", "d/0000000000000001aaaaaaaaaaaaaaaa"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    assert_int_equal(wreg_check_path(a.id, "path", bad[i]), STRATA_EINVALID);
  wreg_info *ws;
  size_t n;
  assert_int_equal(wreg_list(f->r, 0, &ws, &n), 0);
  assert_int_equal(ws[0].files_registered, 1);
  free(ws);
  uint64_t id;
  assert_true(wreg_parse_name("w0000000000002a-x.y_z-1", &id));
  assert_int_equal(id, 42);
  assert_false(wreg_parse_name("w000000000002a-x", &id));
  assert_false(wreg_parse_name("0000000000000001aaaaaaaaaaaaaaaa", &id));
  /* An ended writer registers nothing. */
  assert_int_equal(wreg_unregister(f->r, a.id), 0);
  snprintf(p, sizeof p, "%slate", a.prefix);
  assert_int_equal(wreg_register_file(f->r, a.id, p, 1), STRATA_EEXPIRED);
}

static void test_commit_statistics_persist(void **state) {
  fx *f = *state;
  wreg_info a;
  assert_int_equal(wreg_register(f->r, "a", 60000, &a), 0);
  wreg_note_commit(f->r, a.id, 7, 100);
  wreg_note_commit(f->r, a.id, 9, 50);
  wreg_note_commit(f->r, 12345, 9, 50); /* unknown: ignored */
  close_all(f);
  open_all(f);
  wreg_info *ws;
  size_t n;
  assert_int_equal(wreg_list(f->r, 1, &ws, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(ws[0].bytes_committed, 150);
  assert_int_equal(ws[0].last_commit_generation, 9);
  free(ws);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_lease_ends_on_the_server_clock_and_survives_reopen,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_pinned_writer_is_deferred_condemned_never_pins_again,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_unregister_ends_the_lease_at_once, setup, teardown),
      cmocka_unit_test_setup_teardown(test_files_register_under_the_prefix_only, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit_statistics_persist, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
