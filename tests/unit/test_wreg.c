/* The writer registry (locks/writers.h) on a test clock: leases end on the
 * server's clock, survive a reopen, ids are never reused; a pinned writer (a
 * commit between its fence and its decision) is never condemned, a condemned
 * one never pins again (even with the clock stepped back, even after a
 * reopen); forgetting is permanent; file names are checked. Through the
 * real store committer: a writer live when its commit was submitted but whose
 * lease ends before the committer validates it is refused by the fence, with
 * nothing visible. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/lock.h"
#include "locks/writers.h"
#include "storage/store.h"
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

/* A first transaction's fence that moves the clock past every lease: the
 * committer runs fences in submission order, so the next transaction is
 * validated after the lease ended, though it was submitted before. */
static int end_leases(void *ctx) {
  (void)ctx;
  lkt_advance(3600 * 1000 * LKT_MS);
  return 0;
}

typedef struct async_done {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int done, rc;
} async_done;

static void on_done(void *ctx, const st_result *res) {
  async_done *d = ctx;
  pthread_mutex_lock(&d->mu);
  d->rc = res->rc;
  d->done = 1;
  pthread_cond_signal(&d->cv);
  pthread_mutex_unlock(&d->mu);
}

static int present(st_db *db, const char *key) {
  st_snap *sn;
  assert_int_equal(st_snap_latest(db, &sn), 0);
  strata_buf v = STRATA_BUF_INIT;
  int rc = st_get(sn, key, strlen(key), &v);
  strata_buf_free(&v);
  st_snap_release(sn);
  return rc == 0;
}

/* A store on memory with one file of a fresh live writer holding `bytes`. */
typedef struct store {
  bs_store *mem;
  st_db *db;
  wreg_info w;
  char path[WREG_PATH_MAX];
} store;

static void open_store(fx *f, const char *bytes, store *st) {
  assert_int_equal(bs_mem_create(&st->mem), 0);
  st_options so = {.create = 1, .base = st->mem};
  assert_int_equal(st_open("mem", &so, &st->db), 0);
  assert_int_equal(wreg_register(f->r, "w", 60000, &st->w), 0);
  snprintf(st->path, sizeof st->path, "%sdata", st->w.prefix);
  bs_file *bf;
  assert_int_equal(bs_mkdir(st->mem, "d"), 0);
  assert_int_equal(bs_create(st->mem, st->path, &bf), 0);
  assert_int_equal(bs_append(bf, bytes, strlen(bytes)), 0);
  assert_int_equal(bs_fsync(bf), 0);
  bs_close(bf);
}

static void close_store(store *st) {
  st_close(st->db);
  bs_destroy(st->mem);
}

static void test_fence_refuses_a_lease_that_ended_after_submit(void **state) {
  fx *f = *state;
  store st;
  open_store(f, "0123456789", &st);
  wreg_info w = st.w;
  st_db *db = st.db;
  const char *path = st.path;

  /* While live: the fence pins, the commit lands, the pin is dropped. */
  wreg_fence wf = {f->r, w.id};
  st_txn *t;
  st_result res;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put_ref(t, "ok", 2, path, 0, 4), 0);
  st_txn_set_fence(t, wreg_fence_check, &wf);
  st_txn_set_fence_done(t, wreg_fence_done);
  assert_int_equal(st_txn_commit(t, &res), 0);
  st_result_free(&res);
  assert_true(present(db, "ok"));

  /* Submitted while live, validated after the lease ended: refused. */
  async_done d = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
  st_txn *first;
  assert_int_equal(st_txn_begin(db, &first), 0);
  assert_int_equal(st_txn_put(first, "first", 5, "v", 1), 0);
  st_txn_set_fence(first, end_leases, NULL);
  assert_int_equal(wreg_check_live(f->r, w.id), 0);
  assert_int_equal(st_txn_submit(first, on_done, &d), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "late-value", 10, "v", 1), 0);
  assert_int_equal(st_txn_put_ref(t, "late", 4, path, 4, 4), 0);
  st_txn_set_fence(t, wreg_fence_check, &wf);
  st_txn_set_fence_done(t, wreg_fence_done);
  assert_int_equal(st_txn_commit(t, &res), STRATA_EEXPIRED);
  assert_non_null(strstr(res.message, "lease ended"));
  st_result_free(&res);
  pthread_mutex_lock(&d.mu);
  while (!d.done) pthread_cond_wait(&d.cv, &d.mu);
  pthread_mutex_unlock(&d.mu);
  assert_int_equal(d.rc, 0);
  assert_true(present(db, "first"));
  assert_false(present(db, "late"));
  assert_false(present(db, "late-value"));
  /* No pin was left behind: GC condemns the writer at once. */
  uint64_t *ids, deferred;
  size_t n;
  assert_int_equal(wreg_condemn(f->r, 0, &ids, &n, &deferred), 0);
  assert_int_equal(n, 1);
  assert_int_equal(deferred, 0);
  free(ids);
  close_store(&st);
}

/* GC running while a commit is between its fence and its decision: the
 * commit's own fence pins the writer, then (still inside the committer) the
 * lease ends and GC condemns: the writer is deferred. Once the commit is
 * visible, GC condemns it and the walk finds the file referenced. */
typedef struct gc_race {
  wreg_fence wf;
  uint64_t deferred;
  size_t condemned;
} gc_race;

static int pin_then_gc(void *ctx) {
  gc_race *g = ctx;
  int rc = wreg_fence_check(&g->wf);
  if (rc) return rc;
  lkt_advance(3600 * 1000 * LKT_MS);
  uint64_t *ids;
  assert_int_equal(wreg_condemn(g->wf.r, 0, &ids, &g->condemned, &g->deferred), 0);
  free(ids);
  return 0;
}

static void unpin(void *ctx, int committed) {
  gc_race *g = ctx;
  wreg_fence_done(&g->wf, committed);
}

static void test_gc_defers_a_writer_with_a_commit_in_flight(void **state) {
  fx *f = *state;
  store st;
  open_store(f, "abcdefgh", &st);
  wreg_info w = st.w;
  st_db *db = st.db;
  const char *path = st.path;
  gc_race g = {{f->r, w.id}, 0, 0};
  st_txn *t;
  st_result res;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put_ref(t, "k", 1, path, 0, 8), 0);
  st_txn_set_fence(t, pin_then_gc, &g);
  st_txn_set_fence_done(t, unpin);
  assert_int_equal(st_txn_commit(t, &res), 0);
  st_result_free(&res);
  assert_int_equal(g.condemned, 0);
  assert_int_equal(g.deferred, 1);
  assert_true(present(db, "k"));
  /* The next GC run: condemned now, and its file is referenced. */
  uint64_t *ids, deferred;
  size_t n;
  assert_int_equal(wreg_condemn(f->r, 0, &ids, &n, &deferred), 0);
  assert_int_equal(n, 1);
  free(ids);
  st_fileset *refs;
  st_check_result cr;
  assert_int_equal(st_walk(db, 1, &refs, &cr), 0);
  assert_true(st_fileset_has(refs, path));
  assert_int_equal(cr.nerrors, 0);
  assert_int_equal(cr.values, 1);
  st_check_result_free(&cr);
  st_fileset_free(refs);
  char **names;
  size_t nn;
  assert_int_equal(st_foreign_files(db, &names, &nn), 0);
  assert_int_equal(nn, 1);
  assert_string_equal(names[0], path + 2);
  free(names);
  close_store(&st);
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
      cmocka_unit_test_setup_teardown(test_fence_refuses_a_lease_that_ended_after_submit, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_gc_defers_a_writer_with_a_commit_in_flight, setup,
                                      teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
