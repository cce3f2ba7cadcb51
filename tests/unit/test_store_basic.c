/* The store engine's behaviour through its public API (storage/store.h):
 * commits and reads, node split and merge, listing pagination, diff, time
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

static st_db *open_mem(bs_store **base, uint32_t node_bytes) {
  assert_int_equal(bs_mem_create(base), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = *base;
  o.create = 1;
  o.config.max_decoded_node_bytes = node_bytes;
  o.cache_bytes = 1 << 20;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  if (rc) fprintf(stderr, "open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

/* Opens the database already in base (no create, default options). */
static st_db *reopen_mem(bs_store *base) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  if (rc) fprintf(stderr, "reopen: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

static void put1(st_db *db, const char *k, const char *v) {
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, k, strlen(k), v, strlen(v)), 0);
  int rc = st_txn_commit(t, &r);
  if (rc) fprintf(stderr, "commit: %s\n", r.message);
  assert_int_equal(rc, 0);
  st_result_free(&r);
}

static int get_str(st_snap *s, const char *k, char *out, size_t cap) {
  strata_buf b = STRATA_BUF_INIT;
  int rc = st_get(s, k, strlen(k), &b);
  if (!rc) {
    assert_true(b.len < cap);
    memcpy(out, b.p, b.len);
    out[b.len] = 0;
  }
  strata_buf_free(&b);
  return rc;
}

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
    o.no_prepare = 1; /* only the committer allocates during the commit */
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
      af_arm(AF_REALLOC, "st-commit", n);
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

typedef struct dlog {
  char keys[64][32];
  int put[64];
  int n;
} dlog;

static int on_diff(void *ctx, const uint8_t *k, size_t kn, int put) {
  dlog *d = ctx;
  assert_true(d->n < 64);
  memcpy(d->keys[d->n], k, kn);
  d->keys[d->n][kn] = 0;
  d->put[d->n++] = put;
  return 0;
}

static void test_diff_between_versions(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 1024);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 3000; i++) {
    char k[32];
    snprintf(k, sizeof k, "k%05d", i);
    assert_int_equal(st_txn_put(t, k, strlen(k), "x", 1), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "k00010", 6, "y", 1), 0);   /* changed */
  assert_int_equal(st_txn_put(t, "k01500", 6, "x", 1), 0);   /* same value: not a change */
  assert_int_equal(st_txn_delete(t, "k02000", 6), 0);
  assert_int_equal(st_txn_put(t, "k02000a", 7, "n", 1), 0); /* new */
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *a, *b;
  assert_int_equal(st_snap_at_generation(db, 1, &a), 0);
  assert_int_equal(st_snap_at_generation(db, 2, &b), 0);
  dlog d;
  memset(&d, 0, sizeof d);
  st_stats before, after;
  st_get_stats(db, &before);
  assert_int_equal(st_diff(a, b, on_diff, &d), 0);
  st_get_stats(db, &after);
  assert_int_equal(d.n, 3);
  assert_string_equal(d.keys[0], "k00010");
  assert_int_equal(d.put[0], 1);
  assert_string_equal(d.keys[1], "k02000");
  assert_int_equal(d.put[1], 0);
  assert_string_equal(d.keys[2], "k02000a");
  assert_int_equal(d.put[2], 1);
  /* shared subtrees were skipped: far fewer node visits than the ~100 leaves */
  assert_true(after.cache_hits + after.cache_misses - before.cache_hits - before.cache_misses < 40);
  memset(&d, 0, sizeof d);
  assert_int_equal(st_diff(b, a, on_diff, &d), 0);
  assert_int_equal(d.n, 3);
  assert_int_equal(d.put[1], 1);
  assert_int_equal(d.put[2], 0);
  st_snap_release(a);
  st_snap_release(b);
  st_close(db);
  bs_destroy(base);
}

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
  assert_non_null(strstr(r.message, "condition 'absent' failed on key 'a'"));
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
  assert_non_null(strstr(r.message, "'unchanged since generation 0' failed on key 'a'"));
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

/* What "changed" means for "unchanged since G" and st_diff: inline values
 * (<= max_inline_value_bytes) are compared by their bytes, out-of-line values
 * by their reference (file, offset, length). So deleting and rewriting a
 * small value with the same bytes is no change, while rewriting a large
 * value with the same bytes is one. */
static void test_change_means_bytes_inline_reference_out_of_line(void **state) {
  bs_store *base;
  st_db *db = open_mem(&base, 0);
  uint8_t big[300];
  memset(big, 'B', sizeof big); /* above the default 100-byte inline limit */
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "small", 5, "x", 1), 0);
  assert_int_equal(st_txn_put(t, "big", 3, big, sizeof big), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* generation 1 */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_delete(t, "small", 5), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* 2 */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "small", 5, "x", 1), 0);
  assert_int_equal(st_txn_put(t, "big", 3, big, sizeof big), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* 3 */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "small", 5, 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_require_unchanged(t, "big", 3, 1), 0);
  assert_int_equal(st_txn_commit(t, &r), STRATA_ECONDITION);
  assert_int_equal(r.failed_condition, ST_COND_UNCHANGED_SINCE);
  st_result_free(&r);
  st_snap *a, *b;
  assert_int_equal(st_snap_at_generation(db, 1, &a), 0);
  assert_int_equal(st_snap_at_generation(db, 3, &b), 0);
  dlog d;
  memset(&d, 0, sizeof d);
  assert_int_equal(st_diff(a, b, on_diff, &d), 0);
  assert_int_equal(d.n, 1);
  assert_string_equal(d.keys[0], "big");
  assert_int_equal(d.put[0], 1);
  st_snap_release(a);
  st_snap_release(b);
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
  assert_non_null(strstr(G.msg[1], "condition 'absent' failed on key 'same'"));
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
    cmocka_unit_test(test_diff_between_versions),
    cmocka_unit_test(test_conditions_and_fence),
    cmocka_unit_test(test_unchanged_since_zero),
    cmocka_unit_test(test_change_means_bytes_inline_reference_out_of_line),
    cmocka_unit_test(test_group_commit_isolation),
    cmocka_unit_test(test_data_reference_put),
    cmocka_unit_test(test_put_ref_out_of_memory),
    cmocka_unit_test(test_reopen_mismatch_and_not_a_db),
    cmocka_unit_test(test_single_manifest_kind),
    cmocka_unit_test(test_bad_input),
    cmocka_unit_test(test_readers_during_commits),
    cmocka_unit_test(test_read_only),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
