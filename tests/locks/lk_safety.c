/*
 * Randomized safety checker for the lock manager (tier locks-stress).
 * Threads acquire, renew and release random overlapping row sets with short
 * TTLs (a few ms, real clock) and random pauses; one acquire in eight is
 * indefinite, and every acquire is a plain one: rows are exclusive whatever
 * the kinds. A holder uses its rows like a fenced commit: under the rows'
 * shadow mutexes it calls lk_fence_check, which pins the rows; it marks them
 * in_use, releases the shadow mutexes, "writes" for a random pause (often
 * longer than its TTL: the commit's fsync on a slow disk), clears in_use and
 * only then calls lk_fence_done (the commit is visible, then the rows are
 * unpinned). Another op passing its fence check on a row in_use is two live
 * holders at once: the lost update of issue 9. A use must also never come
 * from a holder older (smaller token) than one that already used the row.
 * Some releases run while the same op's "commit" is in flight on another
 * thread; they must return only after it is done. An auditor lists live
 * locks (no row with two holders) and runs the lock table's self-check
 * (lk_selfcheck: one holder per row, indefinite included; queues, pins,
 * tokens; records equal memory). Tokens strictly increase per thread and are
 * unique overall. Seed from STRATA_SEED, printed on failure.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "locks/lock.h"
#include "locks/oplog.h"
#include "tests/locks/lk_test.h"

#define NTHREADS 8
#define NROWS 40
#define MAXSET 4

static lk_manager *lk;
static uint64_t seed;
static uint64_t target_ops;
static atomic_ulong ops_done;
static atomic_int failed;
static atomic_int stop;
static atomic_ulong expired_in_flight, releases_waited;
static uint8_t keys[NROWS][LK_L2_KEY_LEN];

/* The shadow table: per row, who used it last and whether a fenced use is
 * in flight on it right now (with mu released), guarded by mu. */
static struct {
  pthread_mutex_t mu;
  uint64_t op, token;
  int in_use;
} shadow[NROWS];

#define FAILF(...) do { \
    fprintf(stderr, "lk_safety FAILED (STRATA_SEED=%" PRIu64 "): ", seed); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); \
    atomic_store(&failed, 1); atomic_store(&stop, 1); } while (0)

static uint64_t rnd(uint64_t *s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static void pause_us(uint64_t *r, unsigned max_us) {
  unsigned us = (unsigned)(rnd(r) % (max_us + 1));
  if (us) {
    struct timespec ts = {0, (long)us * 1000};
    nanosleep(&ts, NULL);
  }
}

typedef struct thr {
  int id;
  uint64_t ind_op;      /* op-log op for indefinite locks */
  uint64_t next_op;
  uint64_t last_token;
  uint64_t *tokens;
  size_t ntokens, cap;
  unsigned long grants, conflicts, timeouts, lost;
} thr;

static int cmp_int(const void *a, const void *b) {
  int x = *(const int *)a, y = *(const int *)b;
  return (x > y) - (x < y);
}

static void lock_shadow(const int *idx, int n) {
  for (int i = 0; i < n; i++) pthread_mutex_lock(&shadow[idx[i]].mu); /* ascending */
}

static void unlock_shadow(const int *idx, int n) {
  for (int i = n - 1; i >= 0; i--) pthread_mutex_unlock(&shadow[idx[i]].mu);
}

/* One fenced use of the rows (see the header). Returns whether the fence
 * passed. passed / done (may be NULL) are set once the fence is decided (1
 * passed, -1 refused) and once the "commit" is visible, before the unpin. */
static int use_rows(uint64_t *r, uint64_t op, uint64_t token, const int *idx, const lk_row *rows,
                    int n, atomic_int *passed, atomic_int *done) {
  lock_shadow(idx, n);
  lk_fence fence = {.lk = lk, .op = op, .rows = rows, .nrows = (size_t)n};
  int rc = lk_fence_check(&fence);
  atomic_fetch_add(&ops_done, 1);
  int held = rc == 0;
  if (rc && rc != STRATA_EFENCED) FAILF("lk_fence_check: %s", strata_errmsg());
  if (held) {
    for (int i = 0; i < n; i++) {
      __typeof__(shadow[0]) *s = &shadow[idx[i]];
      if (s->in_use)
        FAILF("row %d: op %" PRIu64 " passed its fence while op %" PRIu64
              " is writing the row under its fence: two live holders", idx[i], op, s->op);
      if (!(s->op == op && s->token == token) && token <= s->token)
        FAILF("row %d: op %" PRIu64 " (token %" PRIu64 ") passed its fence after op %" PRIu64
              " (token %" PRIu64 ") used the row: two live holders", idx[i], op, token, s->op, s->token);
      s->in_use = 1;
      s->op = op;
      s->token = token;
    }
  }
  unlock_shadow(idx, n);
  if (passed) atomic_store(passed, held ? 1 : -1);
  if (held) {
    pause_us(r, rnd(r) % 4 ? 1000 : 8000); /* the commit's write; often past the TTL */
    lock_shadow(idx, n);
    for (int i = 0; i < n; i++) shadow[idx[i]].in_use = 0;
    unlock_shadow(idx, n);
    if (done) atomic_store(done, 1);
    lk_fence_done(&fence, 1); /* visible first, then the rows go */
    if (fence.expired_in_flight) atomic_fetch_add(&expired_in_flight, 1);
  }
  return held;
}

/* A fenced use on a helper thread while the worker releases the same rows:
 * the release must return only after the use (its "commit") is done. */
typedef struct bg_use {
  uint64_t r, op, token;
  const int *idx;
  const lk_row *rows;
  int n;
  atomic_int passed, done;
} bg_use;

static void *bg_use_main(void *arg) {
  bg_use *u = arg;
  use_rows(&u->r, u->op, u->token, u->idx, u->rows, u->n, &u->passed, &u->done);
  return NULL;
}

/* 1..MAXSET distinct rows in ascending order (the one lock order); returns n. */
static int pick_rows(uint64_t *r, int *idx, lk_row *rows) {
  int n = 1 + (int)(rnd(r) % MAXSET);
  for (int i = 0; i < n; i++) {
    idx[i] = (int)(rnd(r) % NROWS);
    for (int j = 0; j < i; j++)
      if (idx[j] == idx[i]) { i--; break; }
  }
  qsort(idx, (size_t)n, sizeof idx[0], cmp_int);
  for (int i = 0; i < n; i++) rows[i] = (lk_row){keys[idx[i]], LK_L2_KEY_LEN};
  return n;
}

/* Records a granted token: above the thread's previous one. */
static void note_token(thr *t, uint64_t token) {
  t->grants++;
  if (token <= t->last_token)
    FAILF("thread %d: token %" PRIu64 " after %" PRIu64, t->id, token, t->last_token);
  t->last_token = token;
  if (t->ntokens == t->cap) {
    t->cap = t->cap ? 2 * t->cap : 1024;
    t->tokens = realloc(t->tokens, t->cap * sizeof *t->tokens);
  }
  t->tokens[t->ntokens++] = token;
}

/* Uses the held rows 1..4 times, renewing a temporal lock now and then; stops
 * at the first use or renew that finds the lock lost. */
static void use_held(thr *t, uint64_t *r, uint64_t op, uint64_t token, const int *idx,
                     const lk_row *rows, int n, int indefinite) {
  int uses = 1 + (int)(rnd(r) % 4);
  for (int u = 0; u < uses && !atomic_load(&stop); u++) {
    if (!use_rows(r, op, token, idx, rows, n, NULL, NULL)) { t->lost++; break; }
    pause_us(r, 1500);
    if (!indefinite && rnd(r) % 3 == 0) {
      lk_result res;
      int rc = lk_renew(lk, op, rows, (size_t)n, (int64_t)(1 + rnd(r) % 6) * LKT_MS, &res);
      atomic_fetch_add(&ops_done, 1);
      if (rc) { FAILF("lk_renew: %s", strata_errmsg()); break; }
      int lost = res.status == LK_NOT_HELD;
      lk_result_free(&res);
      if (lost) {
        /* A lost lock never comes back without a new acquire. */
        int held = 1;
        lk_check(lk, op, rows, (size_t)n, &held, NULL);
        atomic_fetch_add(&ops_done, 1);
        if (held) FAILF("op %" PRIu64 ": Check holds after a refused renew", op);
        t->lost++;
        break;
      }
    }
  }
}

/* Releases the rows (or all of the op's), sometimes while a background thread's
 * fenced use is in flight: the release must wait for it. */
static void release_held(uint64_t *r, uint64_t op, uint64_t token, const int *idx,
                         const lk_row *rows, int n, int indefinite) {
  size_t released = 0;
  bg_use u = {.r = rnd(r) | 1, .op = op, .token = token, .idx = idx, .rows = rows, .n = n};
  pthread_t bth;
  int bg = rnd(r) % 8 == 0 && pthread_create(&bth, NULL, bg_use_main, &u) == 0;
  while (bg && atomic_load(&u.passed) == 0) sched_yield(); /* its fence decided first */
  int rc = rnd(r) % 5 ? lk_release(lk, op, rows, (size_t)n, 0, &released)
                      : lk_release(lk, op, NULL, 0, 0, &released);
  if (bg && atomic_load(&u.passed) == 1) {
    if (!atomic_load(&u.done))
      FAILF("op %" PRIu64 ": release returned while its fenced commit was in flight", op);
    atomic_fetch_add(&releases_waited, 1);
  }
  if (bg) pthread_join(bth, NULL);
  atomic_fetch_add(&ops_done, 1);
  if (rc) FAILF("lk_release: %s", strata_errmsg());
  if (indefinite && released != (size_t)n)
    FAILF("indefinite lock of op %" PRIu64 ": released %zu of %d rows", op, released, n);
}

static void *worker(void *arg) {
  thr *t = arg;
  uint64_t r = seed * 0x9e3779b97f4a7c15ull + (uint64_t)t->id * 7919 + 1;
  while (!atomic_load(&stop) && atomic_load(&ops_done) < target_ops) {
    int idx[MAXSET];
    lk_row rows[MAXSET];
    int n = pick_rows(&r, idx, rows);
    int indefinite = rnd(&r) % 8 == 0;
    uint64_t op = indefinite ? t->ind_op : t->next_op++;
    int64_t now = lk_now(lk);
    lk_acquire_req q = {.op = op, .rows = rows, .nrows = (size_t)n,
                        .kind = indefinite ? LK_INDEFINITE : LK_TEMPORAL,
                        .ttl_ns = (int64_t)(1 + rnd(&r) % 6) * LKT_MS,
                        .wait_deadline = rnd(&r) % 2 ? now + (int64_t)(rnd(&r) % 10) * LKT_MS : 0};
    lk_result res;
    int rc = lk_acquire(lk, &q, &res);
    atomic_fetch_add(&ops_done, 1);
    if (rc) { FAILF("lk_acquire: %s", strata_errmsg()); break; }
    if (res.status != LK_GRANTED) {
      if (res.nconflicts == 0) FAILF("refused acquire without a conflict");
      if (res.status == LK_TIMEDOUT) t->timeouts++; else t->conflicts++;
      lk_result_free(&res);
      pause_us(&r, 300);
      continue;
    }
    uint64_t token = res.token;
    lk_result_free(&res);
    note_token(t, token);
    use_held(t, &r, op, token, idx, rows, n, indefinite);
    release_held(&r, op, token, idx, rows, n, indefinite);
    pause_us(&r, 200);
  }
  return NULL;
}

/* Lists live locks and asserts that no row has two live holders. */
static void *auditor(void *arg) {
  (void)arg;
  unsigned long audits = 0;
  while (!atomic_load(&stop) && atomic_load(&ops_done) < target_ops) {
    lk_list_page pg;
    if (lk_list(lk, NULL, NULL, 0, 1000, &pg)) { FAILF("lk_list: %s", strata_errmsg()); break; }
    for (size_t i = 1; i < pg.n; i++) {
      const lk_lock_info *a = &pg.items[i - 1], *b = &pg.items[i];
      if (a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0 && a->op != b->op)
        FAILF("list: a row has live holders op %" PRIu64 " and op %" PRIu64, a->op, b->op);
    }
    lk_list_page_free(&pg);
    lk_selfcheck_info info;
    if (lk_selfcheck(lk, 1, &info)) { FAILF("%s", strata_errmsg()); break; }
    audits++;
    struct timespec ts = {0, 5 * 1000000};
    nanosleep(&ts, NULL);
  }
  fprintf(stderr, "auditor: %lu listings\n", audits);
  return NULL;
}

int main(void) {
  alarm(600); /* a hang fails the tier instead of CI */
  const char *s = getenv("STRATA_SEED");
  seed = s && *s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  const char *o = getenv("STRATA_LK_SAFETY_OPS");
  target_ops = o && *o ? strtoull(o, NULL, 10) : 120000;
  printf("lk_safety: STRATA_SEED=%" PRIu64 " target %" PRIu64 " operations\n", seed, target_ops);
  char *dir = lkt_tmpdir("lksafety");
  lk_options opt;
  lk_options_init(&opt);
  opt.path = dir;
  opt.partitions = 16;
  opt.wait_poll_ns = 2 * LKT_MS;
  if (lk_open(&opt, &lk)) { fprintf(stderr, "lk_open: %s\n", strata_errmsg()); return 1; }
  for (int i = 0; i < NROWS; i++) {
    lk_l2_chunk_key((uint64_t)i * 1000003, keys[i]);
    pthread_mutex_init(&shadow[i].mu, NULL);
  }
  thr t[NTHREADS] = {0};
  pthread_t th[NTHREADS + 1];
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < NTHREADS; i++) {
    t[i].id = i;
    t[i].next_op = ((uint64_t)(i + 1) << 40);
    if (oplog_create(lk_oplog(lk), "safety", "indefinite", NULL, 0, 0, &t[i].ind_op, NULL)) return 1;
    pthread_create(&th[i], NULL, worker, &t[i]);
  }
  pthread_create(&th[NTHREADS], NULL, auditor, NULL);
  for (int i = 0; i <= NTHREADS; i++) pthread_join(th[i], NULL);
  clock_gettime(CLOCK_MONOTONIC, &t1);

  /* Tokens are unique across threads; after a reopen new ones are larger. */
  size_t total = 0;
  uint64_t maxtok = 0;
  unsigned long grants = 0, conflicts = 0, timeouts = 0, lost = 0;
  for (int i = 0; i < NTHREADS; i++) total += t[i].ntokens;
  uint64_t *all = malloc((total ? total : 1) * sizeof *all);
  size_t k = 0;
  for (int i = 0; i < NTHREADS; i++) {
    memcpy(all + k, t[i].tokens, t[i].ntokens * sizeof *all);
    k += t[i].ntokens;
    grants += t[i].grants, conflicts += t[i].conflicts, timeouts += t[i].timeouts, lost += t[i].lost;
    free(t[i].tokens);
  }
  int cmp64(const void *a, const void *b);
  qsort(all, total, sizeof *all, cmp64);
  for (size_t i = 1; i < total; i++)
    if (all[i] == all[i - 1]) FAILF("token %" PRIu64 " handed out twice", all[i]);
  if (total) maxtok = all[total - 1];
  free(all);
  lk_close(lk);
  if (lk_open(&opt, &lk)) { fprintf(stderr, "reopen: %s\n", strata_errmsg()); return 1; }
  lk_row row = {keys[0], LK_L2_KEY_LEN};
  lk_acquire_req q = {.op = 1, .rows = &row, .nrows = 1, .kind = LK_TEMPORAL, .ttl_ns = LKT_S};
  lk_result res;
  if (lk_acquire(lk, &q, &res) || res.status != LK_GRANTED || res.token <= maxtok)
    FAILF("after reopen: token %" PRIu64 " not above %" PRIu64, res.token, maxtok);
  lk_result_free(&res);
  lk_close(lk);
  lkt_rmdir(dir);
  double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("lk_safety: %lu operations in %.1f s: %lu grants, %lu conflicts, %lu timeouts, "
         "%lu lost to expiry, %lu fenced uses outlived their lock, %lu releases waited for a "
         "fenced use\n", (unsigned long)atomic_load(&ops_done), secs, grants, conflicts, timeouts,
         lost, (unsigned long)atomic_load(&expired_in_flight),
         (unsigned long)atomic_load(&releases_waited));
  if (atomic_load(&ops_done) < target_ops) FAILF("only %lu operations", (unsigned long)atomic_load(&ops_done));
  if (grants == 0 || lost == 0 || conflicts + timeouts == 0 || atomic_load(&expired_in_flight) == 0 ||
      atomic_load(&releases_waited) == 0)
    FAILF("the run did not exercise grants, losses, conflicts, expiries in flight and releases "
          "during a fenced use");
  return atomic_load(&failed) ? 1 : 0;
}

int cmp64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}
