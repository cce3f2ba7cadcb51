/* Model-based randomized test of the store engine: random transactions
 * (puts of small, out-of-line and large values, deletes, absent / unchanged /
 * hash conditions, shared key prefixes), submitted in asynchronous batches so
 * the committer groups them, checked against an in-memory model of every
 * key's history. After each batch, random reads at random old generations and
 * times (get, list with pagination, diff, versions) must match the model.
 * STRATA_SEED picks the seed (printed on failure); STRATA_MODEL_TXNS the
 * number of transactions (default 400; the store-model tier runs thousands).
 * test_model_files does the same on real files in /tmp
 * (STRATA_MODEL_FILES_TXNS, default 150). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"

static uint64_t seed, rng;
static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}
static uint64_t below(uint64_t n) { return rnd() % n; }

#define CHECK(cond, ...)                                                            \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "FAILED (STRATA_SEED=%llu): ", (unsigned long long)seed);     \
      fprintf(stderr, __VA_ARGS__);                                                 \
      fprintf(stderr, "\n");                                                        \
      fail_msg("%s:%d: %s (seed %llu)", __FILE__, __LINE__, #cond,                  \
               (unsigned long long)seed);                                           \
    }                                                                               \
  } while (0)

/* --- the model ----------------------------------------------------------------- */

#define NKEYS 1500
#define MAX_INLINE 100

typedef struct hent {
  uint64_t gen;
  int present;
  uint64_t vseed;
  uint32_t vlen;
} hent;

typedef struct hist {
  hent *e;
  size_t n, cap;
} hist;

static hist H[NKEYS];
static char *keys[NKEYS];
static size_t klens[NKEYS];
static int sorted[NKEYS];      /* key indexes in key order */
static uint64_t ctime_of[200000];
static uint64_t num_keys_at[200000];
static uint64_t latest;

static void make_value(uint64_t vseed, uint32_t n, uint8_t *out) {
  uint64_t x = vseed * 0x9e3779b97f4a7c15ull + 1;
  for (uint32_t i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    out[i] = (uint8_t)x;
  }
}

static const hent *value_at(int k, uint64_t g) {
  const hist *h = &H[k];
  for (size_t i = h->n; i-- > 0;)
    if (h->e[i].gen <= g) return h->e[i].present ? &h->e[i] : NULL;
  return NULL;
}

/* The engine's notion of "same value": equal bytes for inline values, the
 * same write for out-of-line ones. */
static int same_value(const hent *a, const hent *b) {
  if (!a || !b) return a == b;
  if (a->vlen <= MAX_INLINE && b->vlen <= MAX_INLINE) {
    if (a->vlen != b->vlen) return 0;
    uint8_t x[MAX_INLINE], y[MAX_INLINE];
    make_value(a->vseed, a->vlen, x);
    make_value(b->vseed, b->vlen, y);
    return !memcmp(x, y, a->vlen);
  }
  return a == b;
}

static void hist_push(int k, hent e) {
  hist *h = &H[k];
  if (h->n && h->e[h->n - 1].gen == e.gen) {
    h->e[h->n - 1] = e;
    return;
  }
  if (h->n == h->cap) {
    h->cap = h->cap ? h->cap * 2 : 4;
    h->e = realloc(h->e, h->cap * sizeof *h->e);
  }
  h->e[h->n++] = e;
}

static int cmp_key_idx(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  size_t n = klens[x] < klens[y] ? klens[x] : klens[y];
  int c = memcmp(keys[x], keys[y], n);
  return c ? c : (klens[x] < klens[y] ? -1 : klens[x] > klens[y]);
}

static void make_keys(void) {
  static const char *pre[] = {"chunk/", "chunk/0001/", "chunk/0001/sv/", "meta/", "z"};
  for (int i = 0; i < NKEYS; i++) {
    char buf[600];
    int n;
    if (i % 97 == 0) {
      memset(buf, 'L', 400);
      n = 400 + snprintf(buf + 400, 100, "/%05d", i);
    } else {
      n = snprintf(buf, sizeof buf, "%s%05d", pre[i % 5], (i * 7919) % 100000);
    }
    keys[i] = malloc((size_t)n);
    memcpy(keys[i], buf, (size_t)n);
    klens[i] = (size_t)n;
    sorted[i] = i;
  }
  qsort(sorted, NKEYS, sizeof sorted[0], cmp_key_idx);
}

/* --- transactions ----------------------------------------------------------------- */

enum { M_PUT, M_DEL, M_ABSENT, M_UNCHANGED, M_HASH };
typedef struct mop {
  int kind, key;
  uint64_t vseed, since;
  uint32_t vlen;
  int hash_right;
} mop;

typedef struct mtxn {
  mop ops[10];
  int n;
  int done, rc, want;
  uint64_t gen, ct;
} mtxn;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int pending;

static void on_done(void *ctx, const st_result *r) {
  mtxn *t = ctx;
  pthread_mutex_lock(&mu);
  t->rc = r->rc;
  t->gen = r->generation;
  t->ct = r->commit_time;
  t->done = 1;
  pending--;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

static uint32_t pick_len(void) {
  uint64_t r = below(1000);
  if (r < 600) return (uint32_t)below(61);
  if (r < 900) return 101 + (uint32_t)below(4000);
  if (r < 995) return 4000 + (uint32_t)below(40000);
  return 100000 + (uint32_t)below(200000);
}

static int pick_key(void) { return below(4) ? (int)below(NKEYS / 10) : (int)below(NKEYS); }

static uint64_t next_vseed = 1;

/* Builds a random transaction; keys touched by earlier transactions of the
 * batch (touched[]) never get an "unchanged" condition, whose outcome would
 * depend on how the committer groups them. */
static void gen_txn(mtxn *t, uint8_t *touched) {
  memset(t, 0, sizeof *t);
  t->n = 1 + (int)below(8);
  for (int i = 0; i < t->n; i++) {
    mop *o = &t->ops[i];
    o->key = pick_key();
    uint64_t r = below(100);
    if (r < 55) {
      o->kind = M_PUT;
      o->vseed = next_vseed++;
      o->vlen = pick_len();
    } else if (r < 75) {
      o->kind = M_DEL;
    } else if (r < 85) {
      o->kind = M_ABSENT;
    } else if (r < 93 && latest > 0 && !touched[o->key]) {
      o->kind = M_UNCHANGED;
      o->since = 1 + below(latest);
    } else {
      o->kind = M_HASH;
      o->hash_right = below(4) != 0;
    }
  }
  for (int i = 0; i < t->n; i++)
    if (t->ops[i].kind == M_PUT || t->ops[i].kind == M_DEL) touched[t->ops[i].key] = 1;
}

static st_txn *to_engine(st_db *db, mtxn *t) {
  st_txn *x;
  assert_int_equal(st_txn_begin(db, &x), 0);
  for (int i = 0; i < t->n; i++) {
    mop *o = &t->ops[i];
    const char *k = keys[o->key];
    size_t kn = klens[o->key];
    switch (o->kind) {
      case M_PUT: {
        uint8_t *v = malloc(o->vlen ? o->vlen : 1);
        make_value(o->vseed, o->vlen, v);
        assert_int_equal(st_txn_put(x, k, kn, v, o->vlen), 0);
        free(v);
        break;
      }
      case M_DEL:
        assert_int_equal(st_txn_delete(x, k, kn), 0);
        break;
      case M_ABSENT:
        assert_int_equal(st_txn_require_absent(x, k, kn), 0);
        break;
      case M_UNCHANGED:
        assert_int_equal(st_txn_require_unchanged(x, k, kn, o->since), 0);
        break;
      case M_HASH: {
        /* The model's current value decides the hash; computed at submit
         * time against the state including earlier batch members, see below. */
        break;
      }
    }
  }
  return x;
}

/* Current model value of key k including the batch's accepted changes so far. */
typedef struct overlay {
  int set[NKEYS];
  hent v[NKEYS];
  int present[NKEYS];
} overlay;
static overlay OV;

static const hent *cur_value(int k) {
  if (OV.set[k]) return OV.present[k] ? &OV.v[k] : NULL;
  return value_at(k, latest);
}

/* Expected outcome of t against the model state (latest + overlay). */
static int expect_ok(const mtxn *t) {
  for (int i = 0; i < t->n; i++) {
    const mop *o = &t->ops[i];
    const hent *c = cur_value(o->key);
    if (o->kind == M_ABSENT && c) return 0;
    if (o->kind == M_UNCHANGED && !same_value(value_at(o->key, o->since), c)) return 0;
    if (o->kind == M_HASH && (!c || !o->hash_right)) return 0;
  }
  return 1;
}

static void apply_overlay(const mtxn *t) {
  for (int i = 0; i < t->n; i++) {
    const mop *o = &t->ops[i];
    if (o->kind == M_PUT) {
      OV.set[o->key] = 1;
      OV.present[o->key] = 1;
      OV.v[o->key] = (hent){0, 1, o->vseed, o->vlen};
    } else if (o->kind == M_DEL) {
      OV.set[o->key] = 1;
      OV.present[o->key] = 0;
    }
  }
}

/* --- checks ------------------------------------------------------------------------ */

static void check_get(st_db *db, uint64_t g) {
  st_snap *s;
  CHECK(st_snap_at_generation(db, g, &s) == 0, "snapshot at %llu: %s", (unsigned long long)g, strata_errmsg());
  CHECK(st_snap_info(s).num_keys == num_keys_at[g], "num_keys at %llu", (unsigned long long)g);
  for (int j = 0; j < 20; j++) {
    int k = pick_key();
    const hent *m = value_at(k, g);
    strata_buf b = STRATA_BUF_INIT;
    int rc = st_get(s, keys[k], klens[k], &b);
    if (!m) {
      CHECK(rc == STRATA_ENOTFOUND, "key %d at gen %llu: expected absent, rc %d", k, (unsigned long long)g, rc);
    } else {
      CHECK(rc == 0, "key %d at gen %llu: rc %d %s", k, (unsigned long long)g, rc, strata_errmsg());
      uint8_t *want = malloc(m->vlen + 1);
      make_value(m->vseed, m->vlen, want);
      CHECK(b.len == m->vlen && (!m->vlen || !memcmp(b.p, want, m->vlen)), "key %d at gen %llu: wrong value", k,
            (unsigned long long)g);
      free(want);
    }
    strata_buf_free(&b);
  }
  /* a page of listing from a random key */
  int from = (int)below(NKEYS);
  size_t limit = 1 + below(40);
  st_range r;
  memset(&r, 0, sizeof r);
  r.start = keys[sorted[from]];
  r.start_len = klens[sorted[from]];
  r.keys_only = below(2);
  st_list_result lr;
  CHECK(st_list(s, &r, limit, &lr) == 0, "list: %s", strata_errmsg());
  size_t got = 0;
  int more = 0;
  for (int i = from; i < NKEYS; i++) {
    int k = sorted[i];
    const hent *m = value_at(k, g);
    if (!m) continue;
    if (got == limit) {
      more = 1;
      CHECK(lr.more && lr.next.len == klens[k] && !memcmp(lr.next.p, keys[k], klens[k]),
            "list continuation key at gen %llu", (unsigned long long)g);
      break;
    }
    CHECK(got < lr.n, "list too short at gen %llu", (unsigned long long)g);
    CHECK(lr.items[got].klen == klens[k] && !memcmp(lr.items[got].key, keys[k], klens[k]),
          "list key %zu at gen %llu", got, (unsigned long long)g);
    if (!r.keys_only) CHECK(lr.items[got].vlen == m->vlen, "list value length");
    got++;
  }
  CHECK(got == lr.n && more == lr.more, "list count %zu vs %zu, more %d vs %d", got, lr.n, more, lr.more);
  st_list_result_free(&lr);
  st_snap_release(s);
}

typedef struct dstate {
  int idx;
  uint64_t g1, g2;
} dstate;

static int find_key(const uint8_t *k, size_t kn) {
  int lo = 0, hi = NKEYS - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, x = sorted[mid];
    size_t n = klens[x] < kn ? klens[x] : kn;
    int c = memcmp(keys[x], k, n);
    if (!c) c = klens[x] < kn ? -1 : klens[x] > kn;
    if (!c) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

static int on_diff(void *ctx, const uint8_t *k, size_t kn, int put) {
  dstate *d = ctx;
  int pos = find_key(k, kn);
  CHECK(pos >= 0, "diff reported an unknown key");
  /* every model change between the previous reported key and this one is missing */
  for (int i = d->idx; i < pos; i++) {
    int x = sorted[i];
    CHECK(same_value(value_at(x, d->g1), value_at(x, d->g2)), "diff missed key %d", x);
  }
  int x = sorted[pos];
  const hent *a = value_at(x, d->g1), *b = value_at(x, d->g2);
  CHECK(!same_value(a, b), "diff reported unchanged key %d", x);
  CHECK(put == (b != NULL), "diff put/delete wrong for key %d", x);
  d->idx = pos + 1;
  return 0;
}

static void check_diff(st_db *db) {
  if (latest < 2) return;
  uint64_t g1 = 1 + below(latest), g2 = 1 + below(latest);
  st_snap *a, *b;
  assert_int_equal(st_snap_at_generation(db, g1, &a), 0);
  assert_int_equal(st_snap_at_generation(db, g2, &b), 0);
  dstate d = {0, g1, g2};
  CHECK(st_diff(a, b, on_diff, &d) == 0, "diff: %s", strata_errmsg());
  for (int i = d.idx; i < NKEYS; i++)
    CHECK(same_value(value_at(sorted[i], g1), value_at(sorted[i], g2)), "diff missed key %d at end",
          sorted[i]);
  st_snap_release(a);
  st_snap_release(b);
}

static void check_time(st_db *db) {
  uint64_t g = 1 + below(latest);
  uint64_t lo = ctime_of[g], hi = g < latest ? ctime_of[g + 1] - 1 : lo + 1000000;
  uint64_t t = lo + below(hi - lo + 1);
  st_snap *s;
  CHECK(st_snap_at_time(db, t, &s) == 0, "snapshot at time: %s", strata_errmsg());
  CHECK(st_snap_info(s).generation == g, "time %llu gave generation %llu, want %llu", (unsigned long long)t,
        (unsigned long long)st_snap_info(s).generation, (unsigned long long)g);
  st_snap_release(s);
  CHECK(st_snap_at_time(db, ctime_of[1] - 1, &s) == STRATA_ENOTFOUND, "time before the first commit");
}

static void check_versions(st_db *db) {
  st_version_info *v;
  size_t n;
  CHECK(st_versions(db, 1, 0, &v, &n) == 0, "versions: %s", strata_errmsg());
  CHECK(n == latest, "versions: %zu, want %llu", n, (unsigned long long)latest);
  for (size_t i = 0; i < n; i++) {
    CHECK(v[i].generation == i + 1 && v[i].commit_time == ctime_of[i + 1] && v[i].num_keys == num_keys_at[i + 1],
          "version %zu", i);
  }
  free(v);
}

/* Plain runs open with the default options (commit log mode). Mixed runs
 * open in commit log mode with varied publication settings three times out
 * of four and on the per-group files path otherwise, so reopens cross
 * between the two modes. Per-group runs always ask for the per-group path. */
enum { RUN_DEFAULT, RUN_MIXED, RUN_PER_GROUP };
static int run_kind;
static const char *const run_names[] = {"", ", modes mixed", ", per-group files"};

static st_db *reopen(st_db *db, bs_store *base, const char *dir) {
  if (db) st_close(db);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.create = 1;
  if (run_kind == RUN_PER_GROUP) o.no_commit_log = 1;
  if (run_kind == RUN_MIXED) {
    o.no_commit_log = below(4) == 0;
    o.publish_interval_ms = (uint32_t)(1 + below(5));
    o.max_unpublished_bytes = below(2) ? 0 : 64 << 10; /* backpressure often */
    o.log_segment_bytes = below(2) ? 0 : 1;               /* or a segment per batch */
  }
  o.cache_bytes = (size_t)(1 + below(8)) << 20;
  o.config.max_decoded_node_bytes = 4096;
  int rc = st_open(dir ? dir : "mem", &o, &db);
  CHECK(rc == 0, "open: %s", strata_errmsg());
  return db;
}

/* Hands each transaction of the batch to the engine with its hash conditions and
 * the outcome the model expects, then waits for every callback. Expected outcomes
 * are decided in submission order, as the committer validates: against the
 * latest generation plus earlier survivors. */
static void submit_batch(st_db *db, mtxn *batch, int nb) {
  for (int i = 0; i < nb; i++) {
    st_txn *x = to_engine(db, &batch[i]);
    for (int j = 0; j < batch[i].n; j++) {
      mop *o = &batch[i].ops[j];
      if (o->kind != M_HASH) continue;
      const hent *c = cur_value(o->key);
      uint8_t h[ST_HASH_BYTES];
      memset(h, 0xee, sizeof h);
      if (c && o->hash_right) {
        uint8_t *v = malloc(c->vlen + 1);
        make_value(c->vseed, c->vlen, v);
        st_value_hash(v, c->vlen, h);
        free(v);
      }
      assert_int_equal(st_txn_require_hash(x, keys[o->key], klens[o->key], h), 0);
    }
    batch[i].want = expect_ok(&batch[i]) ? 0 : STRATA_ECONDITION;
    if (batch[i].want == 0) apply_overlay(&batch[i]);
    pthread_mutex_lock(&mu);
    pending++;
    pthread_mutex_unlock(&mu);
    assert_int_equal(st_txn_submit(x, on_done, &batch[i]), 0);
  }
  pthread_mutex_lock(&mu);
  while (pending) pthread_cond_wait(&cv, &mu);
  pthread_mutex_unlock(&mu);
}

/* Which keys exist at latest, and how many. */
static uint8_t key_present[NKEYS];
static uint64_t live_keys;

/* Each outcome as the model expected; the accepted ones at latest or the next
 * generation, with increasing commit times, go into the history. Returns how
 * many were rejected. */
static long record_batch(const mtxn *batch, int nb, long done) {
  long rejected = 0;
  for (int i = 0; i < nb; i++) {
    const mtxn *t = &batch[i];
    CHECK(t->rc == t->want, "transaction %ld: rc %d (%s), model expects %d", done + i, t->rc,
          strata_errname(t->rc), t->want);
    if (t->rc) {
      rejected++;
      continue;
    }
    CHECK(t->gen == latest || t->gen == latest + 1, "generation %llu after %llu",
          (unsigned long long)t->gen, (unsigned long long)latest);
    if (t->gen == latest + 1) {
      CHECK(t->ct > ctime_of[latest], "commit_time not increasing");
      latest = t->gen;
      ctime_of[latest] = t->ct;
    }
    for (int j = 0; j < t->n; j++) {
      const mop *o = &t->ops[j];
      if (o->kind != M_PUT && o->kind != M_DEL) continue;
      int now = o->kind == M_PUT;
      live_keys += now - key_present[o->key];
      key_present[o->key] = (uint8_t)now;
      hist_push(o->key, (hent){latest, now, o->vseed, o->vlen});
    }
    num_keys_at[latest] = live_keys;
  }
  return rejected;
}

static void run_model(long total, const char *dir) {
  const char *s = getenv("STRATA_SEED");
  seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  rng = seed * 0x2545F4914F6CDD1Dull + 7;
  memset(H, 0, sizeof H);
  latest = 0;
  next_vseed = 1;
  char cmd[300];
  if (dir) {
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
  }
  fprintf(stderr, "model test: STRATA_SEED=%llu, %ld transactions%s%s%s\n", (unsigned long long)seed, total,
          dir ? " in " : "", dir ? dir : "", run_names[run_kind]);
  make_keys();
  bs_store *base = NULL;
  if (!dir) assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = reopen(NULL, base, dir);
  long done = 0, rejected = 0;
  static uint8_t touched[NKEYS];
  memset(key_present, 0, sizeof key_present);
  live_keys = 0;
  while (done < total) {
    int nb = 1 + (int)below(8);
    mtxn batch[8];
    memset(touched, 0, sizeof touched);
    memset(OV.set, 0, sizeof OV.set);
    for (int i = 0; i < nb; i++) gen_txn(&batch[i], touched);
    submit_batch(db, batch, nb);
    rejected += record_batch(batch, nb, done);
    done += nb;
    if (latest) {
      for (int j = 0; j < 3; j++) check_get(db, 1 + below(latest));
      check_get(db, latest);
      check_time(db);
      if (below(4) == 0) check_diff(db);
    }
    if (below(40) == 0) db = reopen(db, base, dir);
  }
  check_versions(db);
  db = reopen(db, base, dir);
  check_versions(db);
  for (int j = 0; j < 20 && latest; j++) check_get(db, 1 + below(latest));
  fprintf(stderr, "model test: %ld transactions, %ld rejected, %llu generations\n", done, rejected,
          (unsigned long long)latest);
  CHECK(rejected > 0 && rejected < done, "the mix should both accept and reject");
  st_close(db);
  bs_destroy(base);
  for (int i = 0; i < NKEYS; i++) {
    free(keys[i]);
    free(H[i].e);
  }
  if (dir) assert_int_equal(system(cmd), 0);
}

static void test_model_memory(void **state) {
  const char *nt = getenv("STRATA_MODEL_TXNS");
  run_model(nt ? atol(nt) : 400, NULL);
}

static void test_model_files(void **state) {
  const char *nt = getenv("STRATA_MODEL_FILES_TXNS");
  char dir[256];
  snprintf(dir, sizeof dir, "/tmp/strata-model-%d", (int)getpid());
  run_model(nt ? atol(nt) : 150, dir);
}

static void run_as(int kind, void (*test)(void **), void **state) {
  run_kind = kind;
  test(state);
  run_kind = RUN_DEFAULT;
}

static void test_model_memory_mixed(void **state) { run_as(RUN_MIXED, test_model_memory, state); }
static void test_model_files_mixed(void **state) { run_as(RUN_MIXED, test_model_files, state); }
static void test_model_memory_per_group(void **state) { run_as(RUN_PER_GROUP, test_model_memory, state); }
static void test_model_files_per_group(void **state) { run_as(RUN_PER_GROUP, test_model_files, state); }

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_model_memory),
    cmocka_unit_test(test_model_files),
    cmocka_unit_test(test_model_memory_mixed),
    cmocka_unit_test(test_model_files_mixed),
    cmocka_unit_test(test_model_memory_per_group),
    cmocka_unit_test(test_model_files_per_group),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
