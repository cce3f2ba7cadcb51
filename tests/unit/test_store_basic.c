/* The store engine's behaviour through its public API (storage/store.h):
 * commits and reads, node split and merge, listing pagination, time
 * travel, conditions, fences, data references, open/create errors. Uses the
 * in-memory base store unless a test needs real files. */
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

/* Write-through: the nodes a commit writes are cached as it writes them, so
 * reading the new generation needs no read of what was just written; and the
 * cached copies equal what is in the files (the same answers after a reopen). */
static void test_committed_nodes_are_cached_as_written(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 4096); /* several leaves and an interior level */
  st_txn *t;
  st_result r;
  char k[16], v[150];
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 2000; i++) {
    snprintf(k, sizeof k, "k%05d", i);
    memset(v, 'a' + i % 26, sizeof v); /* out of line (above 100 bytes) */
    assert_int_equal(st_txn_put(t, k, strlen(k), v, (size_t)(i % 2 ? 150 : 20)), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_result_free(&r);
  put1(db, "k01234", "new");
  st_stats before, after;
  st_get_stats(db, &before);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  char buf[256];
  assert_int_equal(get_str(s, "k01234", buf, sizeof buf), 0);
  assert_string_equal(buf, "new");
  st_get_stats(db, &after);
  assert_int_equal(after.cache_misses, before.cache_misses); /* root to leaf: all cached */
  assert_true(after.cache_hits >= before.cache_hits + 2);   /* at least root and leaf */
  /* The same answers from the files alone. */
  st_snap_release(s);
  st_close(db);
  db = reopen_mem(base);
  assert_int_equal(st_snap_latest(db, &s), 0);
  for (int i = 0; i < 2000; i++) {
    snprintf(k, sizeof k, "k%05d", i);
    assert_int_equal(get_str(s, k, buf, sizeof buf), 0);
    if (i == 1234) {
      assert_string_equal(buf, "new");
      continue;
    }
    assert_int_equal(strlen(buf), i % 2 ? 150 : 20);
    for (size_t j = 0; j < strlen(buf); j++) assert_int_equal(buf[j], 'a' + i % 26);
  }
  st_get_stats(db, &after);
  assert_true(after.cache_misses > 0); /* these came from the files */
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
}

static void test_put_get_and_generations(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  st_snap *s0;
  assert_int_equal(st_snap_latest(db, &s0), 0);
  assert_int_equal(st_snap_info(s0).generation, 0);
  char buf[64];
  assert_int_equal(get_str(s0, "a", buf, sizeof buf), STRATA_ENOTFOUND);
  put1(db, "a", "1");
  put1(db, "b", "2");
  put1(db, "a", "3");
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 3);
  assert_int_equal(get_str(s, "a", buf, sizeof buf), 0);
  assert_string_equal(buf, "3");
  st_snap *g1;
  assert_int_equal(st_snap_at_generation(db, 1, &g1), 0);
  assert_int_equal(get_str(g1, "a", buf, sizeof buf), 0);
  assert_string_equal(buf, "1");
  assert_int_equal(get_str(g1, "b", buf, sizeof buf), STRATA_ENOTFOUND);
  st_snap *bad;
  assert_int_equal(st_snap_at_generation(db, 4, &bad), STRATA_ENOTFOUND);
  assert_int_equal(st_snap_at_generation(db, 0, &bad), STRATA_ENOTFOUND);
  assert_int_equal(st_snap_at_time(db, 1, &bad), STRATA_ENOTFOUND);
  st_snap *t2;
  assert_int_equal(st_snap_at_time(db, st_snap_info(s).commit_time - 1, &t2), 0);
  assert_int_equal(st_snap_info(t2).generation, 2);
  /* the pinned snapshot still reads generation 0 */
  assert_int_equal(get_str(s0, "a", buf, sizeof buf), STRATA_ENOTFOUND);
  st_snap_release(t2);
  st_snap_release(g1);
  st_snap_release(s);
  st_snap_release(s0);
  st_close(db);
  bs_destroy(base);
}

/* Many keys in small nodes: splits several levels deep, then deletes that
 * empty most nodes: the tree merges them and stays correct. */
static void test_split_and_merge(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 1024);
  const int N = 5000;
  for (int round = 0; round < 5; round++) {
    st_txn *t;
    st_result r;
    assert_int_equal(st_txn_begin(db, &t), 0);
    for (int i = round; i < N; i += 5) {
      char k[32], v[32];
      snprintf(k, sizeof k, "key/%06d", i);
      snprintf(v, sizeof v, "v%d", i);
      assert_int_equal(st_txn_put(t, k, strlen(k), v, strlen(v)), 0);
    }
    assert_int_equal(st_txn_commit(t, &r), 0);
  }
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).num_keys, N);
  char buf[64];
  for (int i = 0; i < N; i += 7) {
    char k[32], v[32];
    snprintf(k, sizeof k, "key/%06d", i);
    snprintf(v, sizeof v, "v%d", i);
    assert_int_equal(get_str(s, k, buf, sizeof buf), 0);
    assert_string_equal(buf, v);
  }
  st_snap_release(s);
  /* delete all but every 100th */
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < N; i++) {
    if (i % 100 == 0) continue;
    char k[32];
    snprintf(k, sizeof k, "key/%06d", i);
    assert_int_equal(st_txn_delete(t, k, strlen(k)), 0);
  }
  if (st_txn_commit(t, &r)) fail_msg("commit: %s", r.message);
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).num_keys, N / 100);
  st_range rg;
  memset(&rg, 0, sizeof rg);
  st_list_result lr;
  assert_int_equal(st_list(s, &rg, 0, &lr), 0);
  assert_int_equal(lr.n, N / 100);
  for (size_t i = 0; i < lr.n; i++) {
    char k[32];
    snprintf(k, sizeof k, "key/%06d", (int)i * 100);
    assert_int_equal(lr.items[i].klen, strlen(k));
    assert_memory_equal(lr.items[i].key, k, strlen(k));
  }
  st_list_result_free(&lr);
  st_snap_release(s);
  /* the old generation is intact */
  assert_int_equal(st_snap_at_generation(db, 5, &s), 0);
  assert_int_equal(get_str(s, "key/000001", buf, sizeof buf), 0);
  assert_string_equal(buf, "v1");
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
}

/* Allocation failures in a commit that merges a thin leaf with a full
 * neighbour and splits the result: every realloc of the commit is failed in
 * turn; the commit must fail cleanly (no double free, no crash) and a retry
 * succeed. realloc is interposed (glibc's __libc_realloc underneath), so
 * not under ASan, which owns the allocator. */
static void test_merge_split_out_of_memory(void **state) {
#ifdef __SANITIZE_ADDRESS__
  skip();
#else
  int failed = 0;
  for (int off = 0; off < 24; off++) {
    bs_store *base;
    assert_int_equal(bs_mem_create(&base), 0);
    st_options o;
    memset(&o, 0, sizeof o);
    o.base = base;
    o.create = 1;
    o.no_prepare = 1; /* only the committer and its helper allocate during the commit */
    o.config.max_decoded_node_bytes = 1024;
    st_db *db;
    assert_int_equal(st_open("mem", &o, &db), 0);
    st_txn *t;
    st_result r;
    char k[32], v[32];
    assert_int_equal(st_txn_begin(db, &t), 0);
    for (int i = 0; i < 400; i++) {
      snprintf(k, sizeof k, "key/%06d", i);
      snprintf(v, sizeof v, "value-%014d", i);
      assert_int_equal(st_txn_put(t, k, strlen(k), v, strlen(v)), 0);
    }
    assert_int_equal(st_txn_commit(t, &r), 0);
    for (long n = 1;; n++) {
      assert_int_equal(st_txn_begin(db, &t), 0);
      for (int i = 100 + off; i < 130 + off; i++) {
        snprintf(k, sizeof k, "key/%06d", i);
        assert_int_equal(st_txn_delete(t, k, strlen(k)), 0);
      }
      af_arm(AF_REALLOC, "st-commit,st-sync", n); /* the helper builds the tree */
      int rc = st_txn_commit(t, &r);
      long left = af_disarm();
      if (rc == 0) {
        assert_true(left > 0); /* succeeded only once no failure was injected */
        break;
      }
      assert_int_equal(rc, STRATA_ENOMEM);
      failed++;
    }
    st_snap *s;
    assert_int_equal(st_snap_latest(db, &s), 0);
    assert_int_equal(st_snap_info(s).generation, 2);
    assert_int_equal(st_snap_info(s).num_keys, 370);
    st_snap_release(s);
    st_close(db);
    bs_destroy(base);
  }
  assert_true(failed > 0);
#endif
}

static void test_list_pagination_and_prefix(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 1024);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 1000; i++) {
    char k[32];
    snprintf(k, sizeof k, "%s/%04d", i % 2 ? "odd" : "even", i);
    assert_int_equal(st_txn_put(t, k, strlen(k), k, strlen(k)), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  strata_buf end = STRATA_BUF_INIT, next = STRATA_BUF_INIT;
  st_range rg;
  assert_int_equal(st_prefix_range("odd/", 4, &rg, &end), 0);
  int seen = 0, pages = 0;
  for (;;) {
    st_list_result lr;
    assert_int_equal(st_list(s, &rg, 37, &lr), 0);
    pages++;
    for (size_t i = 0; i < lr.n; i++) {
      char k[32];
      snprintf(k, sizeof k, "odd/%04d", 2 * seen + 1);
      assert_int_equal(lr.items[i].klen, strlen(k));
      assert_memory_equal(lr.items[i].key, k, strlen(k));
      assert_int_equal(lr.items[i].vlen, strlen(k));
      assert_memory_equal(lr.items[i].value, k, strlen(k));
      seen++;
    }
    int more = lr.more;
    if (more) {
      next.len = 0;
      assert_int_equal(strata_buf_append(&next, lr.next.p, lr.next.len), 0);
      rg.start = next.p;
      rg.start_len = next.len;
    }
    st_list_result_free(&lr);
    if (!more) break;
  }
  assert_int_equal(seen, 500);
  assert_int_equal(pages, 14);
  strata_buf_free(&end);
  strata_buf_free(&next);
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
}

static void test_reopen_mismatch_and_not_a_db(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  put1(db, "a", "1");
  put1(db, "big", "0123456789012345678901234567890123456789012345678901234567890123456789"
                  "0123456789012345678901234567890123456789");
  st_close(db);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_snap *s;
  char buf[256];
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 2);
  assert_int_equal(get_str(s, "a", buf, sizeof buf), 0);
  assert_string_equal(buf, "1");
  assert_int_equal(get_str(s, "big", buf, sizeof buf), 0);
  assert_int_equal(strlen(buf), 110);
  st_snap_release(s);
  st_close(db);
  o.config.max_inline_value_bytes = 7;
  assert_int_equal(st_open("mem", &o, &db), STRATA_EMISMATCH);
  assert_non_null(strstr(strata_errmsg(), "max_inline_value_bytes"));
  bs_destroy(base);

  /* an empty store without create, and a directory holding something else */
  assert_int_equal(bs_mem_create(&base), 0);
  memset(&o, 0, sizeof o);
  o.base = base;
  assert_int_equal(st_open("mem", &o, &db), STRATA_ENOTFOUND);
  assert_non_null(strstr(strata_errmsg(), "manifest.ocdbt"));
  bs_file *f;
  assert_int_equal(bs_create(base, "notes.txt", &f), 0);
  bs_close(f);
  o.create = 1;
  assert_int_equal(st_open("mem", &o, &db), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "not a database"));
  bs_destroy(base);
}

/* The single manifest kind: manifest.ocdbt is replaced atomically each
 * commit; creation writes an empty generation 1 as tensorstore does. */
static void test_single_manifest_kind(void **state) {
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.create = 1;
  o.config.manifest = ST_MANIFEST_SINGLE;
  st_db *db;
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 1);
  assert_int_equal(st_snap_info(s).num_keys, 0);
  st_snap_release(s);
  for (int i = 0; i < 40; i++) {
    char k[16];
    snprintf(k, sizeof k, "k%02d", i);
    put1(db, k, "v");
  }
  st_close(db);
  memset(&o.config, 0, sizeof o.config);
  assert_int_equal(st_open("mem", &o, &db), 0);
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 41);
  assert_int_equal(st_snap_info(s).num_keys, 40);
  st_snap_release(s);
  assert_int_equal(st_snap_at_generation(db, 20, &s), 0);
  assert_int_equal(st_snap_info(s).num_keys, 19);
  char buf[8];
  assert_int_equal(get_str(s, "k18", buf, sizeof buf), 0);
  assert_int_equal(get_str(s, "k19", buf, sizeof buf), STRATA_ENOTFOUND);
  st_snap_release(s);
  st_close(db);
  o.config.manifest = ST_MANIFEST_NUMBERED;
  assert_int_equal(st_open("mem", &o, &db), STRATA_EMISMATCH);
  bs_destroy(base);
}

/* Bad input is refused with a clear error and changes nothing. */
static void test_bad_input(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  st_txn *t;
  assert_int_equal(st_txn_begin(db, &t), 0);
  size_t big = OCDBT_MAX_KEY_LENGTH + 1;
  char *k = calloc(1, big);
  assert_int_equal(st_txn_put(t, k, big, "v", 1), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "key of"));
  assert_int_equal(st_txn_delete(t, k, big), STRATA_EINVALID);
  assert_int_equal(st_txn_put_ref(t, "k", 1, "d/x", UINT64_MAX - 4, 8), STRATA_EINVALID);
  assert_int_equal(st_txn_put_ref(t, "k", 1, "d/../manifest.ocdbt", 0, 1), STRATA_EINVALID);
  st_txn_abort(t);
  free(k);
  /* an unchanged-since condition naming a future generation fails cleanly */
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "a", 1, 99), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_non_null(strstr(r.message, "does not exist"));
  st_result_free(&r);
  st_snap *s;
  assert_int_equal(st_snap_at_generation(db, 7, &s), STRATA_ENOTFOUND);
  assert_non_null(strstr(strata_errmsg(), "generation 7 does not exist"));
  st_close(db);
  bs_destroy(base);
  /* invalid configs are refused at creation */
  assert_int_equal(bs_mem_create(&base), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.create = 1;
  o.config.max_inline_value_bytes = (1u << 20) + 1;
  assert_int_equal(st_open("mem", &o, &db), STRATA_EINVALID);
  o.config.max_inline_value_bytes = 0;
  o.config.version_tree_arity_log2 = 17;
  assert_int_equal(st_open("mem", &o, &db), STRATA_EINVALID);
  bs_destroy(base);
}

/* Readers on pinned snapshots run while commits land: every read of a
 * snapshot sees exactly its generation's value. */
typedef struct rdr {
  st_db *db;
  int errors, reads;
  int stop;
  int started; /* readers that are running */
} rdr;

static void *reader(void *p) {
  rdr *r = p;
  __atomic_fetch_add(&r->started, 1, __ATOMIC_RELEASE);
  while (!__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE)) {
    st_snap *s;
    if (st_snap_latest(r->db, &s)) {
      __atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED);
      continue;
    }
    uint64_t g = st_snap_info(s).generation;
    for (int i = 0; i < 50 && g; i++) {
      char k[16], want[48];
      snprintf(k, sizeof k, "c%03d", i);
      snprintf(want, sizeof want, "%llu-%d", (unsigned long long)g, i);
      strata_buf b = STRATA_BUF_INIT;
      if (st_get(s, k, strlen(k), &b) || b.len != strlen(want) || memcmp(b.p, want, b.len))
        __atomic_fetch_add(&r->errors, 1, __ATOMIC_RELAXED);
      strata_buf_free(&b);
      __atomic_fetch_add(&r->reads, 1, __ATOMIC_RELAXED);
    }
    st_snap_release(s);
  }
  return NULL;
}

static void test_readers_during_commits(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 1024);
  rdr r = {db, 0, 0, 0, 0};
  pthread_t th[2];
  for (int i = 0; i < 2; i++) pthread_create(&th[i], NULL, reader, &r);
  /* The readers are running before the commits start, however loaded the
   * machine (polled; 30 s at most). */
  for (int ms = 0; ms < 30000 && __atomic_load_n(&r.started, __ATOMIC_ACQUIRE) < 2; ms++) usleep(1000);
  /* Nothing is asserted while the readers run: a failure stops the commits,
   * the readers are joined, then the test fails. */
  int bad_gen = 0, bad_rc = 0;
  for (int g = 1; g <= 200 && !bad_gen; g++) {
    st_txn *t;
    st_result res;
    if ((bad_rc = st_txn_begin(db, &t))) {
      bad_gen = g;
      break;
    }
    for (int i = 0; i < 50; i++) {
      char k[16], v[48];
      snprintf(k, sizeof k, "c%03d", i);
      snprintf(v, sizeof v, "%d-%d", g, i);
      if (!bad_rc) bad_rc = st_txn_put(t, k, strlen(k), v, strlen(v));
    }
    if (bad_rc) st_txn_abort(t);
    else bad_rc = st_txn_commit(t, &res);
    if (bad_rc || res.generation != (uint64_t)g) bad_gen = g;
  }
  /* Some snapshot reads happened (polled: a loaded machine may run the
   * readers late; with them running during the commits this is at once). */
  for (int ms = 0; ms < 30000 && __atomic_load_n(&r.reads, __ATOMIC_RELAXED) == 0; ms++) usleep(1000);
  __atomic_store_n(&r.stop, 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 2; i++) pthread_join(th[i], NULL);
  if (bad_gen)
    fail_msg("commit of generation %d: %s", bad_gen, bad_rc ? strata_errname(bad_rc) : "wrong generation");
  assert_int_equal(r.errors, 0);
  assert_true(r.reads > 0);
  st_close(db);
  bs_destroy(base);
}

/* A read-only handle reads but refuses commits. */
static void test_read_only(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  put1(db, "a", "1");
  st_close(db);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.read_only = 1;
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_snap *s;
  char buf[8];
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(get_str(s, "a", buf, sizeof buf), 0);
  st_snap_release(s);
  st_txn *t;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "b", 1, "2", 1), 0);
  st_result r;
  assert_int_equal(st_txn_commit(t, &r), STRATA_EINVALID);
  assert_non_null(strstr(r.message, "read-only"));
  st_close(db);
  bs_destroy(base);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_put_get_and_generations),
    cmocka_unit_test(test_committed_nodes_are_cached_as_written),
    cmocka_unit_test(test_split_and_merge),
    cmocka_unit_test(test_merge_split_out_of_memory),
    cmocka_unit_test(test_list_pagination_and_prefix),
    cmocka_unit_test(test_reopen_mismatch_and_not_a_db),
    cmocka_unit_test(test_single_manifest_kind),
    cmocka_unit_test(test_bad_input),
    cmocka_unit_test(test_readers_during_commits),
    cmocka_unit_test(test_read_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
