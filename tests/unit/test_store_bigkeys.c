/* Keys up to the documented maximum (OCDBT_MAX_KEY_LENGTH, 65,535 bytes) in
 * any number and mix. Once a leaf held about 28.6 KB of keys the next commit
 * never answered (the root kept growing one level per round); these tests pin
 * down that every size class commits, splits at every level, reads back at
 * latest and at old generations, after a reopen, and lists in order.
 * STRATA_SEED picks the order of the keys (printed on failure). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/ocdbt.h"
#include "storage/store.h"

static uint64_t seed, rng;

static uint64_t next_rand(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "FAILED (STRATA_SEED=%llu): %s\n", (unsigned long long)seed,  \
              #cond);                                                               \
      fail_msg("%s:%d: %s (seed %llu)", __FILE__, __LINE__, #cond,                  \
               (unsigned long long)seed);                                           \
    }                                                                               \
  } while (0)

static st_db *open_mem(bs_store *base, int create) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.create = create;
  o.cache_bytes = 8 << 20;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  if (rc) fprintf(stderr, "open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

/* One key of `len` bytes: a fill byte, with (class, index) either at the
 * front (keys differ early) or at the back (keys share a long prefix). */
typedef struct tkey {
  uint8_t *k;
  size_t n;
  uint64_t gen;      /* generation that wrote it */
  size_t vlen;       /* value: inline when small, out of line otherwise */
} tkey;

static void make_key(tkey *t, size_t len, unsigned cls, unsigned idx) {
  t->n = len;
  t->k = malloc(len);
  assert_non_null(t->k);
  memset(t->k, 'a' + (int)(cls % 20), len);
  uint8_t tag[4] = {(uint8_t)('A' + cls), (uint8_t)(idx >> 8), (uint8_t)idx, (uint8_t)(cls * 7)};
  if (len >= 4) {
    if (idx % 2) memcpy(t->k, tag, 4);
    else memcpy(t->k + len - 4, tag, 4);
    t->k[0] = (uint8_t)('A' + cls); /* the class still orders first */
  } else {
    t->k[0] = (uint8_t)('A' + cls + 30 + idx);
  }
}

static void fill_value(const tkey *t, uint8_t *v) {
  for (size_t i = 0; i < t->vlen; i++) v[i] = (uint8_t)(t->k[t->n / 2] + i * 31 + t->n);
}

static int cmp_key(const void *a, const void *b) {
  const tkey *x = a, *y = b;
  size_t n = x->n < y->n ? x->n : y->n;
  int c = memcmp(x->k, y->k, n);
  return c ? c : (x->n > y->n) - (x->n < y->n);
}

static void commit_keys(st_db *db, tkey *keys, size_t n, uint64_t *gen) {
  st_txn *t;
  st_result r;
  uint8_t *v = malloc(4096);
  assert_non_null(v);
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (size_t i = 0; i < n; i++) {
    fill_value(&keys[i], v);
    assert_int_equal(st_txn_put(t, keys[i].k, keys[i].n, v, keys[i].vlen), 0);
  }
  int rc = st_txn_commit(t, &r);
  if (rc) fprintf(stderr, "commit: %s\n", r.message);
  CHECK(rc == 0);
  for (size_t i = 0; i < n; i++) keys[i].gen = r.generation;
  *gen = r.generation;
  st_result_free(&r);
  free(v);
}

/* Every key written at or before the snapshot's generation reads back its
 * value; the later ones are absent. */
static void check_at(st_db *db, uint64_t gen, tkey *keys, size_t n) {
  st_snap *s;
  assert_int_equal(st_snap_at_generation(db, gen, &s), 0);
  uint8_t *v = malloc(4096);
  size_t present = 0;
  for (size_t i = 0; i < n; i++) {
    strata_buf b = STRATA_BUF_INIT;
    int rc = st_get(s, keys[i].k, keys[i].n, &b);
    if (keys[i].gen && keys[i].gen <= gen) {
      if (rc) fprintf(stderr, "get %zu-byte key at %llu: %s\n", keys[i].n, (unsigned long long)gen, strata_errmsg());
      CHECK(rc == 0);
      fill_value(&keys[i], v);
      CHECK(b.len == keys[i].vlen && (!b.len || !memcmp(b.p, v, b.len)));
      present++;
    } else {
      CHECK(rc == STRATA_ENOTFOUND);
    }
    strata_buf_free(&b);
  }
  CHECK(st_snap_info(s).num_keys == present);
  st_snap_release(s);
  free(v);
}

/* Lists everything at latest in pages of 7 and compares with the sorted keys. */
static void check_list(st_db *db, tkey *keys, size_t n) {
  tkey *sorted = malloc(n * sizeof *sorted);
  memcpy(sorted, keys, n * sizeof *sorted);
  qsort(sorted, n, sizeof *sorted, cmp_key);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  st_range r;
  memset(&r, 0, sizeof r);
  strata_buf start = STRATA_BUF_INIT;
  size_t at = 0;
  for (;;) {
    st_list_result res;
    assert_int_equal(st_list(s, &r, 7, &res), 0);
    for (size_t i = 0; i < res.n; i++, at++) {
      CHECK(at < n);
      CHECK(res.items[i].klen == sorted[at].n && !memcmp(res.items[i].key, sorted[at].k, sorted[at].n));
      CHECK(res.items[i].vlen == sorted[at].vlen);
    }
    int more = res.more;
    if (more) {
      start.len = 0;
      assert_int_equal(strata_buf_append(&start, res.next.p, res.next.len), 0);
      r.start = start.p;
      r.start_len = start.len;
    }
    st_list_result_free(&res);
    if (!more) break;
  }
  CHECK(at == n);
  strata_buf_free(&start);
  st_snap_release(s);
  free(sorted);
}

/* The shapes the issue reported: one 28,700-byte key; two of 15,000; three
 * of 14,300; then a 1-byte key. Each commit must answer. */
static void test_reported_shapes_commit(void **state) {
  (void)state;
  static const size_t shapes[][3] = {{28700, 0, 0}, {15000, 15000, 0}, {14300, 14300, 14300},
                                     {65535, 0, 0}, {65535, 65535, 0}};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    bs_store *base;
    assert_int_equal(bs_mem_create(&base), 0);
    st_db *db = open_mem(base, 1);
    tkey keys[5];
    size_t n = 0;
    uint64_t gen;
    for (size_t j = 0; j < 3 && shapes[s][j]; j++, n++) {
      make_key(&keys[n], shapes[s][j], (unsigned)j, (unsigned)j);
      keys[n].vlen = 10;
    }
    commit_keys(db, keys, n, &gen);
    /* a 1-byte key before and one after the big ones */
    for (int last = 0; last < 2; last++, n++) {
      keys[n].k = malloc(1);
      keys[n].k[0] = last ? 0xff : 0;
      keys[n].n = 1;
      keys[n].vlen = last ? 300 : 5;
      commit_keys(db, &keys[n], 1, &gen);
    }
    for (uint64_t g = 1; g <= gen; g++) check_at(db, g, keys, n);
    check_list(db, keys, n);
    st_close(db);
    db = open_mem(base, 0);
    check_at(db, gen, keys, n);
    st_close(db);
    bs_destroy(base);
    for (size_t i = 0; i < n; i++) free(keys[i].k);
  }
}

/* Every size class up to the maximum, in quantity: leaves of one key,
 * interior nodes whose entries exceed the node size, a tree several levels
 * high; committed in random order over many commits, then read at every
 * generation, after a reopen, and listed. */
static void test_every_key_size_through_splits_at_every_level(void **state) {
  (void)state;
  static const size_t sizes[] = {1, 2, 100, 1024, 4096, 16384, 28672, 28700, 32768, 61440, 65534, 65535};
  const size_t ncls = sizeof sizes / sizeof sizes[0];
  const size_t per = 24;
  size_t n = 0;
  tkey *keys = calloc(ncls * per, sizeof *keys);
  for (size_t c = 0; c < ncls; c++) {
    size_t cnt = sizes[c] == 1 ? 1 : sizes[c] == 2 ? 20 : per;
    for (size_t i = 0; i < cnt; i++, n++) {
      make_key(&keys[n], sizes[c], (unsigned)c, (unsigned)i);
      keys[n].vlen = (next_rand() % 3 == 0) ? 300 + next_rand() % 3000 : next_rand() % 90;
    }
  }
  for (size_t i = n; i > 1; i--) { /* shuffle */
    size_t j = next_rand() % i;
    tkey x = keys[i - 1];
    keys[i - 1] = keys[j];
    keys[j] = x;
  }
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_mem(base, 1);
  uint64_t gen = 0;
  for (size_t at = 0; at < n;) {
    size_t batch = 1 + next_rand() % 24;
    if (batch > n - at) batch = n - at;
    commit_keys(db, keys + at, batch, &gen);
    at += batch;
  }
  for (uint64_t g = 1; g <= gen; g += 1 + gen / 8) check_at(db, g, keys, n);
  check_at(db, gen, keys, n);
  check_list(db, keys, n);
  st_close(db);
  db = open_mem(base, 0);
  check_at(db, gen, keys, n);
  if (gen > 2) check_at(db, gen / 2, keys, n);
  check_list(db, keys, n);
  /* deletes shrink the tree back through merges at every level */
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (size_t i = 0; i < n; i += 2) {
    assert_int_equal(st_txn_delete(t, keys[i].k, keys[i].n), 0);
    keys[i].gen = 0;
  }
  int rc = st_txn_commit(t, &r);
  if (rc) fprintf(stderr, "delete commit: %s\n", r.message);
  CHECK(rc == 0);
  gen = r.generation;
  st_result_free(&r);
  check_at(db, gen, keys, n);
  st_close(db);
  bs_destroy(base);
  for (size_t i = 0; i < n; i++) free(keys[i].k);
  free(keys);
}

/* One past the maximum is refused when the put is made. */
static void test_key_over_maximum_refused(void **state) {
  (void)state;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_mem(base, 1);
  st_txn *t;
  uint8_t *k = calloc(1, OCDBT_MAX_KEY_LENGTH + 1);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, k, OCDBT_MAX_KEY_LENGTH + 1, "v", 1), STRATA_EINVALID);
  st_txn_abort(t);
  free(k);
  st_close(db);
  bs_destroy(base);
}

/* A failed put poisons its transaction: the put of "a" before it does not
 * commit alone (it did: generation 1 held "a"), later calls fail too, and
 * the database stays at generation 0. */
static void test_failed_put_refuses_the_whole_transaction(void **state) {
  (void)state;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_mem(base, 1);
  st_txn *t;
  uint8_t *k = calloc(1, 70000);
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "a", 1, "1", 1), 0);
  assert_int_equal(st_txn_put(t, k, 70000, "v", 1), STRATA_EINVALID);
  assert_int_equal(st_txn_put(t, "b", 1, "2", 1), STRATA_EINVALID);
  CHECK(strstr(strata_errmsg(), "refused whole") && strstr(strata_errmsg(), "exceeds the limit"));
  assert_int_equal(st_txn_require_absent(t, "c", 1), STRATA_EINVALID);
  st_result res;
  assert_int_equal(st_txn_commit(t, &res), STRATA_EINVALID); /* frees t */
  CHECK(strstr(res.message, "exceeds the limit") != NULL);
  st_result_free(&res);
  st_snap *sn;
  assert_int_equal(st_snap_latest(db, &sn), 0);
  assert_int_equal(st_snap_info(sn).generation, 0);
  strata_buf v = {0};
  assert_int_equal(st_get(sn, "a", 1, &v), STRATA_ENOTFOUND);
  strata_buf_free(&v);
  st_snap_release(sn);
  /* A fresh transaction is unaffected. */
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "a", 1, "1", 1), 0);
  assert_int_equal(st_txn_commit(t, &res), 0);
  assert_int_equal(res.generation, 1);
  st_result_free(&res);
  free(k);
  st_close(db);
  bs_destroy(base);
}

int main(void) {
  const char *s = getenv("STRATA_SEED");
  seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  rng = seed * 0x2545F4914F6CDD1Dull + 7;
  fprintf(stderr, "STRATA_SEED=%llu\n", (unsigned long long)seed);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_reported_shapes_commit),
      cmocka_unit_test(test_every_key_size_through_splits_at_every_level),
      cmocka_unit_test(test_key_over_maximum_refused),
      cmocka_unit_test(test_failed_put_refuses_the_whole_transaction),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
