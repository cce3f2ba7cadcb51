/*
 * The store engine's transactions through its public API: conditions and
 * fences, "unchanged since 0", group commit isolation (one member's failure
 * touches no other), data references, and a reference put out of memory.
 */
#include <errno.h>
#include <pthread.h>
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
#include "storage/ocdbt.h"
#include "storage/store.h"
#include "tests/unit/alloc_fail.h"
#include "tests/unit/store_fixture.h"

static int fence_ok(void *ctx) { return 0; }
static int fence_no(void *ctx) {
  (*(int *)ctx)++;
  return strata_err(STRATA_EFENCED, "op 7 no longer holds row 'r1' (expired)");
}

static void test_conditions_and_fence(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  put1(db, "a", "1");
  st_txn *t;
  st_result r;
  /* absent fails on an existing key and names it */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "z", 1, "9", 1), 0);
  assert_int_equal(st_txn_require_absent(t, "a", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition, ST_COND_ABSENT);
  assert_int_equal(r.failed_key_len, 1);
  assert_memory_equal(r.failed_key, "a", 1);
  assert_non_null(strstr(r.message, "condition 'absent' failed on key \"a\""));
  st_result_free(&r);
  /* nothing of it is visible */
  st_snap *s;
  char buf[16];
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 1);
  assert_int_equal(get_str(s, "z", buf, sizeof buf), STRATA_ENOTFOUND);
  st_snap_release(s);
  /* unchanged since 1: holds, then fails after a change */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 1), 0);
  assert_int_equal(st_txn_put(t, "b", 1, "2", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  put1(db, "a", "5");
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 2), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition, ST_COND_UNCHANGED_SINCE);
  assert_int_equal(r.failed_condition_index, 0);
  assert_non_null(strstr(r.message, "'unchanged since generation 2'"));
  st_result_free(&r);
  /* the result names which condition failed, also among conditions of the
   * same kind on the same key: since 3 holds, since 2 does not */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "q", 1, "1", 1), 0);
  assert_int_equal(st_txn_require_absent(t, "never", 5), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 3), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 2), 0);
  assert_int_equal(st_txn_require_absent(t, "b", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition_index, 2);
  st_result_free(&r);
  /* hash */
  uint8_t h[ST_HASH_BYTES];
  st_value_hash("5", 1, h);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_hash(t, "a", 1, h), 0);
  assert_int_equal(st_txn_put(t, "a", 1, "6", 1), 0);
  st_txn_set_fence(t, fence_ok, NULL);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_hash(t, "a", 1, h), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition, ST_COND_HASH);
  st_result_free(&r);
  /* fence refusal */
  int calls = 0;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "f", 1, "1", 1), 0);
  st_txn_set_fence(t, fence_no, &calls);
  assert_int_equal(st_txn_commit(t, &r), STRATA_EFENCED);
  assert_int_equal(calls, 1);
  /* The fence's detail reaches the caller. */
  assert_non_null(strstr(r.message, "op 7 no longer holds row 'r1' (expired)"));
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(get_str(s, "f", buf, sizeof buf), STRATA_ENOTFOUND);
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
}

/* Generation 0 is the empty database: "unchanged since 0" holds exactly
 * while the key is absent (before the first commit too). */
static void test_unchanged_since_zero(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 0), 0);
  assert_int_equal(st_txn_put(t, "a", 1, "1", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(r.generation, 1);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "never", 5, 0), 0);
  assert_int_equal(st_txn_put(t, "b", 1, "2", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(r.generation, 2);
  /* fails once the key exists */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 0), 0);
  assert_int_equal(st_txn_put(t, "c", 1, "3", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition, ST_COND_UNCHANGED_SINCE);
  assert_int_equal(r.failed_key_len, 1);
  assert_memory_equal(r.failed_key, "a", 1);
  assert_non_null(strstr(r.message, "'unchanged since generation 0' failed on key \"a\""));
  st_result_free(&r);
  /* and holds again after the key is deleted */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_delete(t, "a", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 0), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *s;
  char buf[16];
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(get_str(s, "c", buf, sizeof buf), STRATA_ENOTFOUND);
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
}

typedef struct grp {
  int done, rc[5];
  uint64_t gen[5];
  char msg[5][512];
} grp;
static grp G;
static void on_done(void *ctx, const st_result *r) {
  int i = (int)(intptr_t)ctx;
  G.rc[i] = r->rc;
  G.gen[i] = r->generation;
  snprintf(G.msg[i], sizeof G.msg[i], "%s", r->message);
  __atomic_add_fetch(&G.done, 1, __ATOMIC_SEQ_CST);
}

/* The fence of a transaction submitted alone: it holds the committer (in
 * the commit step of its own group) until the test has queued the others,
 * so that those form the next group together. */
static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_entered, gate_open;
static int fence_gate(void *ctx) {
  pthread_mutex_lock(&gate_mu);
  gate_entered = 1;
  pthread_cond_broadcast(&gate_cv);
  while (!gate_open) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  return 0;
}

/* Transactions in one group see each other: the second absent-put of the same
 * key fails, "unchanged since 0" of a key an earlier member wrote fails, the
 * others commit in one generation. The group is forced: everything is queued
 * while the committer is held inside the previous group's fence. */
static void test_group_commit_isolation(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  memset(&G, 0, sizeof G);
  gate_entered = gate_open = 0;
  st_txn *blocker, *t[4];
  assert_int_equal(st_txn_begin(db, &blocker), 0);
  assert_int_equal(st_txn_put(blocker, "first", 5, "v", 1), 0);
  st_txn_set_fence(blocker, fence_gate, NULL);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(st_txn_begin(db, &t[i]), 0);
    const char *k = i >= 2 ? "other" : "same";
    if (i < 3) {
      assert_int_equal(st_txn_require_absent(t[i], k, strlen(k)), 0);
      assert_int_equal(st_txn_put(t[i], k, strlen(k), "v", 1), 0);
    } else { /* "other" is absent in the tree, but t[2] wrote it */
      assert_int_equal(st_txn_require_unchanged(t[i], k, strlen(k), 0), 0);
      assert_int_equal(st_txn_put(t[i], "x", 1, "v", 1), 0);
    }
  }
  assert_int_equal(st_txn_submit(blocker, on_done, (void *)(intptr_t)4), 0);
  pthread_mutex_lock(&gate_mu);
  while (!gate_entered) pthread_cond_wait(&gate_cv, &gate_mu);
  pthread_mutex_unlock(&gate_mu);
  for (int i = 0; i < 4; i++) assert_int_equal(st_txn_submit(t[i], on_done, (void *)(intptr_t)i), 0);
  pthread_mutex_lock(&gate_mu);
  gate_open = 1;
  pthread_cond_broadcast(&gate_cv);
  pthread_mutex_unlock(&gate_mu);
  while (__atomic_load_n(&G.done, __ATOMIC_SEQ_CST) < 5) usleep(1000);
  assert_int_equal(G.rc[4], 0);
  assert_int_equal(G.gen[4], 1);
  assert_int_equal(G.rc[0], 0);
  assert_int_equal(G.rc[2], 0);
  assert_int_equal(G.gen[0], 2);
  assert_int_equal(G.gen[2], 2); /* one generation: they shared the group */
  assert_int_equal(G.rc[1], STRATA_ECONDITION);
  assert_non_null(strstr(G.msg[1], "condition 'absent' failed on key \"same\""));
  assert_int_equal(G.rc[3], STRATA_ECONDITION);
  assert_non_null(strstr(G.msg[3], "changed by an earlier transaction in this commit"));
  st_stats st;
  st_get_stats(db, &st);
  assert_int_equal(st.groups, 2);  /* the blocker's, then all four together */
  assert_int_equal(st.commits, 3); /* blocker, t[0], t[2] */
  st_close(db);
  bs_destroy(base);
}

static void test_data_reference_put(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  bs_file *f;
  assert_int_equal(bs_create(base, "d/writer-1", &f), 0);
  assert_int_equal(bs_append(f, "hello world", 11), 0);
  bs_close(f);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put_ref(t, "k", 1, "d/writer-1", 6, 5), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *s;
  char buf[16];
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(get_str(s, "k", buf, sizeof buf), 0);
  assert_string_equal(buf, "world");
  st_snap_release(s);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put_ref(t, "k2", 2, "d/writer-1", 6, 6), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ERANGE);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put_ref(t, "k2", 2, "d/nope", 0, 1), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ENOTFOUND);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_not_equal(st_txn_put_ref(t, "k2", 2, "../etc/passwd", 0, 1), 0);
  st_txn_abort(t); /* the refusal poisoned t */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_not_equal(st_txn_put_ref(t, "k2", 2, "manifest.ocdbt", 0, 1), 0);
  st_txn_abort(t);
  assert_int_equal(st_txn_begin(db, &t), 0);
  /* A name of the form of Strata's own data files (32 lower-case hex
   * digits) is refused: open treats such a file past the latest generation
   * as a commit's (a stray, or data of lost manifests), and values in
   * Strata's own files must carry checksums. */
  const char *own = "d/00000000000000ff0123456789abcdef";
  assert_int_equal(bs_create(base, own, &f), 0);
  assert_int_equal(bs_append(f, "hello world", 11), 0);
  bs_close(f);
  assert_int_equal(st_txn_put_ref(t, "k3", 2, own, 0, 5), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), own));
  assert_non_null(strstr(strata_errmsg(), "Strata's own data files"));
  st_txn_abort(t);
  /* (a non-empty file of that form past the latest generation + 1 would now
   * make a writable open refuse: it looks like data of lost manifests) */
  assert_int_equal(bs_remove(base, own), 0);
  /* A reference under another name survives close and reopen (cleanup runs
   * at open) and reads back. */
  st_close(db);
  db = reopen_mem(base);
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(get_str(s, "k", buf, sizeof buf), 0);
  assert_string_equal(buf, "world");
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
}

/* st_txn_put_ref with each of its allocations failing in turn: either it
 * fails with STRATA_ENOMEM, and the transaction is refused whole (nothing of
 * it commits), or it succeeds and the transaction commits normally (a
 * half-added reference without its path crashed the committer). */
static void test_put_ref_out_of_memory(void **state) {
#ifdef __SANITIZE_ADDRESS__
  skip();
#else
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  bs_file *f;
  assert_int_equal(bs_create(base, "d/writer-1", &f), 0);
  assert_int_equal(bs_append(f, "hello world", 11), 0);
  bs_close(f);
  int refused = 0;
  for (long n = 1; n <= 4; n++) {
    st_txn *t;
    st_result r;
    assert_int_equal(st_txn_begin(db, &t), 0);
    assert_int_equal(st_txn_put(t, "p", 1, "v", 1), 0);
    af_arm(AF_MALLOC, "", n);
    int rc = st_txn_put_ref(t, "k", 1, "d/writer-1", 6, 5);
    af_disarm();
    if (rc) {
      assert_int_equal(rc, STRATA_ENOMEM);
      refused++;
    }
    st_snap *s;
    char buf[16];
    if (rc) {
      assert_int_equal(st_snap_latest(db, &s), 0);
      uint64_t before = st_snap_info(s).generation;
      st_snap_release(s);
      assert_int_equal(st_txn_commit(t, &r), STRATA_ENOMEM);
      assert_int_equal(st_snap_latest(db, &s), 0);
      assert_int_equal(st_snap_info(s).generation, before);
      st_snap_release(s);
      continue;
    }
    assert_int_equal(st_txn_commit(t, &r), 0);
    assert_int_equal(st_snap_latest(db, &s), 0);
    assert_int_equal(get_str(s, "p", buf, sizeof buf), 0);
    if (!rc) {
      assert_int_equal(get_str(s, "k", buf, sizeof buf), 0);
      assert_string_equal(buf, "world");
    }
    st_snap_release(s);
    st_txn_begin(db, &t);
    st_txn_delete(t, "k", 1);
    assert_int_equal(st_txn_commit(t, &r), 0);
  }
  assert_true(refused >= 2); /* the path copy and the key allocation */
  st_close(db);
  bs_destroy(base);
#endif
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_conditions_and_fence),
      cmocka_unit_test(test_unchanged_since_zero),
      cmocka_unit_test(test_group_commit_isolation),
      cmocka_unit_test(test_data_reference_put),
      cmocka_unit_test(test_put_ref_out_of_memory),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
