/*
 * Retention and the GC of Strata's own files (storage/retain.c), against a
 * model: random commits of small and out-of-line values, random retention
 * floors, GC passes with and without a grace period, reopens; in both commit
 * modes and with a small version tree arity (deep trees, many trims).
 * After each GC: every retained version reads exactly as the model says, every
 * dropped one is STRATA_ERANGE naming the oldest retained generation, the walk
 * finds no missing file and no damage. At the end: every Strata data file
 * that remains is needed (hiding it breaks a read or the walk), none past the
 * grace is left, and removing the GC's files one at a time (a kill after any
 * of them) leaves a database that opens and verifies.
 * STRATA_SEED picks the run (printed); STRATA_RETAIN_COMMITS its length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "storage/engine_int.h"
#include "tests/unit/store_fixture.h"

#define NKEYS 40

static uint64_t seed, rng;
static uint64_t ever; /* the highest floor set so far: versions below it may be gone */
static uint64_t rnd(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

#define CHECK(cond, ...)                                                                 \
  do {                                                                                   \
    if (!(cond)) {                                                                       \
      fprintf(stderr, "FAILED (STRATA_SEED=%llu): ", (unsigned long long)seed);         \
      fprintf(stderr, __VA_ARGS__);                                                      \
      fprintf(stderr, " [%s]\n", strata_errmsg());                                       \
      fail();                                                                            \
    }                                                                                    \
  } while (0)

/* model[g * NKEYS + k]: the generation that wrote key k as of generation g
 * (0: absent). A value is a pure function of (writer generation, key). */
static uint32_t *model;
static size_t model_cap;

static size_t value_of(uint32_t wg, int k, char *buf) {
  size_t len = (wg * 7u + (unsigned)k) % 5 == 0 ? 150 + (wg * 31u + (unsigned)k) % 900 : 8;
  for (size_t i = 0; i < len; i++) buf[i] = (char)('a' + (wg * 13u + (unsigned)k * 3u + i) % 26);
  return len;
}

static void model_grow(uint64_t g) {
  if ((g + 1) * NKEYS <= model_cap) return;
  size_t cap = model_cap ? model_cap * 2 : 4096 * NKEYS;
  while (cap < (g + 1) * NKEYS) cap *= 2;
  model = realloc(model, cap * sizeof *model);
  assert_non_null(model);
  memset(model + model_cap, 0, (cap - model_cap) * sizeof *model);
  model_cap = cap;
}

static void commit_random(st_db *db, uint64_t *latest) {
  uint64_t g = *latest + 1;
  model_grow(g);
  memcpy(model + g * NKEYS, model + *latest * NKEYS, NKEYS * sizeof *model);
  st_txn *t;
  assert_int_equal(st_txn_begin(db, &t), 0);
  int n = 1 + (int)(rnd() % 4);
  char key[16], val[2048];
  for (int i = 0; i < n; i++) {
    int k = (int)(rnd() % NKEYS);
    snprintf(key, sizeof key, "k%02d", k);
    if (rnd() % 6 == 0) {
      assert_int_equal(st_txn_delete(t, key, strlen(key)), 0);
      model[g * NKEYS + k] = 0;
    } else {
      size_t len = value_of((uint32_t)g, k, val);
      assert_int_equal(st_txn_put(t, key, strlen(key), val, len), 0);
      model[g * NKEYS + k] = (uint32_t)g;
    }
  }
  st_result r;
  int rc = st_txn_commit(t, &r);
  CHECK(rc == 0, "commit of generation %llu: %s", (unsigned long long)g, r.message);
  CHECK(r.generation == g, "commit got generation %llu, expected %llu",
        (unsigned long long)r.generation, (unsigned long long)g);
  st_result_free(&r);
  *latest = g;
}

/* 0 when generation g reads as the model says; -1 on any failure. */
static int read_gen(st_db *db, uint64_t g, int strict) {
  st_snap *s;
  int rc = st_snap_at_generation(db, g, &s);
  if (strict) CHECK(rc == 0, "generation %llu is retained but does not open", (unsigned long long)g);
  if (rc) return -1;
  char key[16], want[2048];
  int bad = 0;
  for (int k = 0; k < NKEYS && !bad; k++) {
    snprintf(key, sizeof key, "k%02d", k);
    strata_buf b = STRATA_BUF_INIT;
    rc = st_get(s, key, strlen(key), &b);
    uint32_t wg = model[g * NKEYS + k];
    if (!wg) {
      if (strict) CHECK(rc == STRATA_ENOTFOUND, "generation %llu key %s: rc %d, expected absent",
                        (unsigned long long)g, key, rc);
      bad |= rc != STRATA_ENOTFOUND;
    } else {
      size_t len = value_of(wg, k, want);
      if (strict)
        CHECK(rc == 0 && b.len == len && !memcmp(b.p, want, len),
              "generation %llu key %s: rc %d len %zu, expected the value of generation %u",
              (unsigned long long)g, key, rc, b.len, wg);
      bad |= rc != 0 || b.len != len || memcmp(b.p, want, len);
    }
    strata_buf_free(&b);
  }
  st_snap_release(s);
  return bad ? -1 : 0;
}

static void check_db(st_db *db, uint64_t latest, int all) {
  st_retained rr;
  st_retained_range(db, &rr);
  CHECK(rr.latest_generation == latest, "latest %llu, expected %llu",
        (unsigned long long)rr.latest_generation, (unsigned long long)latest);
  uint64_t O = rr.oldest_generation;
  /* The committer drops only versions below a floor it was given (never the latest). */
  uint64_t want_o = ever > latest ? latest : ever > 1 ? ever : 1;
  CHECK(O <= want_o, "oldest retained %llu above the floor %llu", (unsigned long long)O,
        (unsigned long long)ever);
  for (uint64_t g = 1; g <= latest; g++) {
    if (!all && g != O && g != latest && g + 1 != O && rnd() % 16) continue;
    if (g < O) {
      st_snap *s = NULL;
      int rc = st_snap_at_generation(db, g, &s);
      CHECK(rc == STRATA_ERANGE, "dropped generation %llu: rc %d, expected STRATA_ERANGE",
            (unsigned long long)g, rc);
      char want[64];
      snprintf(want, sizeof want, "oldest retained version is generation %llu ", (unsigned long long)O);
      CHECK(strstr(strata_errmsg(), want) != NULL, "message does not name generation %llu",
            (unsigned long long)O);
    } else {
      read_gen(db, g, 1);
    }
  }
  st_version_info *vs;
  size_t nv;
  assert_int_equal(st_versions(db, 0, 0, &vs, &nv), 0);
  CHECK(nv == latest - O + 1 && vs[0].generation == O, "st_versions lists %zu from %llu, expected %llu..%llu",
        nv, nv ? (unsigned long long)vs[0].generation : 0ull, (unsigned long long)O,
        (unsigned long long)latest);
  free(vs);
  st_fileset *refs;
  st_check_result res;
  int rc = st_walk(db, 1, &refs, &res);
  CHECK(rc == 0 && res.nerrors == 0 && res.nmissing == 0, "walk: %llu errors, %llu missing%s%s",
        (unsigned long long)res.nerrors, (unsigned long long)res.nmissing, res.n_errors ? ": " : "",
        res.n_errors ? res.errors[0] : "");
  st_check_result_free(&res);
  st_fileset_free(refs);
}

static st_db *open_db(bs_store *base, int create, int log) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.create = create;
  o.no_commit_log = !log;
  o.config.version_tree_arity_log2 = 2; /* 4 versions a node: deep trees, many trims */
  o.config.max_decoded_node_bytes = 1024;
  o.cache_bytes = 1 << 20;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  CHECK(rc == 0, "open");
  return db;
}

static int is_data(const char *s) {
  if (strlen(s) != 32) return 0;
  for (int i = 0; i < 32; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* Every version from the oldest retained on reads as the model says, and the
 * walk is clean; -1 otherwise (no assertion: the caller expects either). */
static int verifies(bs_store *base, int log, uint64_t latest, uint64_t floor) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.read_only = 1;
  o.no_commit_log = !log;
  st_db *db = NULL;
  if (st_open("mem", &o, &db)) return -1;
  st_retained rr;
  st_retained_range(db, &rr);
  int bad = rr.latest_generation != latest || rr.oldest_generation > floor;
  for (uint64_t g = rr.oldest_generation; !bad && g <= latest; g++) bad |= read_gen(db, g, 0) != 0;
  st_fileset *refs;
  st_check_result res;
  if (!bad) {
    int rc = st_walk(db, 1, &refs, &res);
    bad |= rc != 0 || res.nerrors || res.nmissing;
    if (!rc) {
      st_check_result_free(&res);
      st_fileset_free(refs);
    }
  }
  st_close(db);
  return bad ? -1 : 0;
}

static void run(int log) {
  rng = seed * 2 + (uint64_t)log + 1;
  const char *e = getenv("STRATA_RETAIN_COMMITS");
  int commits = e ? atoi(e) : 1500;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_db(base, 1, log);
  uint64_t latest = 0, floor = 0, removed = 0;
  ever = 0;
  model_grow(0);
  memset(model, 0, NKEYS * sizeof *model);
  for (int i = 0; i < commits; i++) {
    commit_random(db, &latest);
    uint64_t x = rnd() % 100;
    if (x < 4) { /* a new policy: keep the last few, or many, or all */
      uint64_t keep = rnd() % 3 == 0 ? 0 : 1 + rnd() % (rnd() % 2 ? 8 : 200);
      uint64_t f = keep == 0 ? 0 : latest > keep ? latest - keep + 1 : 1;
      floor = f;
      if (f > ever) ever = f;
      st_set_retain_floor(db, floor);
    } else if (x < 7) {
      st_gc_own_opts go = {.grace_ns = rnd() % 3 ? 0 : 3600ull * 1000000000ull, .max_remove = rnd() % 2 ? 0 : 3};
      st_gc_own_result gr;
      int rc = st_gc_own(db, &go, &gr);
      CHECK(rc == 0, "GC");
      if (go.grace_ns) CHECK(gr.files_removed == 0, "GC removed files inside the grace period");
      removed += gr.files_removed;
      check_db(db, latest, 0);
    } else if (x < 8) {
      st_close(db);
      db = open_db(base, 0, log);
      st_set_retain_floor(db, floor);
      check_db(db, latest, 0);
    }
  }
  /* The end: everything published, one last GC with no grace. */
  if (!floor) floor = latest > 50 ? latest - 50 : 1;
  if (floor < ever) floor = ever;
  ever = floor;
  st_set_retain_floor(db, floor);
  commit_random(db, &latest);
  st_close(db);
  db = open_db(base, 0, log);
  st_set_retain_floor(db, floor);
  st_gc_own_opts go = {.grace_ns = 0};
  st_gc_own_result gr;
  CHECK(st_gc_own(db, &go, &gr) == 0, "GC");
  removed += gr.files_removed;
  check_db(db, latest, 1);
  CHECK(st_gc_own(db, &go, &gr) == 0 && gr.files_scanned == 0,
        "a second GC with no grace still finds %llu unreferenced files",
        (unsigned long long)gr.files_scanned);
  st_close(db);
  CHECK(removed > 0, "the run removed no file");
  CHECK(verifies(base, log, latest, floor) == 0, "the database does not verify after GC");
  /* Every Strata data file left is needed: hiding it breaks a read or the walk. */
  char **names;
  size_t n;
  assert_int_equal(bs_list(base, "d", &names, &n), 0);
  size_t checked = 0;
  for (size_t i = 0; i < n && checked < 24; i++) {
    if (!is_data(names[i]) || rnd() % 2) continue;
    char from[64];
    snprintf(from, sizeof from, "d/%s", names[i]);
    assert_int_equal(bs_rename(base, from, "hidden"), 0);
    int v = verifies(base, log, latest, floor);
    assert_int_equal(bs_rename(base, "hidden", from), 0);
    CHECK(v != 0, "%s is left after GC but nothing needs it", from);
    checked++;
  }
  free(names);
  fprintf(stderr, "log=%d: %llu commits, oldest retained %llu, %llu files removed, %zu files probed\n",
          log, (unsigned long long)latest, (unsigned long long)floor, (unsigned long long)removed, checked);
  bs_destroy(base);
}

/* A kill after any single removal of a GC pass: with max_remove 1, each pass
 * is one removal; after each, a fresh open verifies every retained version. */
static void gc_steps(int log) {
  rng = seed * 5 + (uint64_t)log + 7;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_db(base, 1, log);
  uint64_t latest = 0;
  model_grow(0);
  memset(model, 0, NKEYS * sizeof *model);
  for (int i = 0; i < 300; i++) {
    commit_random(db, &latest);
    if (i % 25 == 24) { /* a reopen publishes: log mode gets a batch file per 25 */
      st_close(db);
      db = open_db(base, 0, log);
    }
  }
  uint64_t floor = latest - 20;
  ever = floor;
  st_set_retain_floor(db, floor);
  commit_random(db, &latest);
  st_close(db); /* publish everything */
  db = open_db(base, 0, log);
  st_set_retain_floor(db, floor);
  st_gc_own_opts go = {.grace_ns = 0, .max_remove = 1};
  st_gc_own_result gr;
  int steps = 0;
  do {
    CHECK(st_gc_own(db, &go, &gr) == 0, "GC step");
    steps += (int)gr.files_removed;
    CHECK(verifies(base, log, latest, floor) == 0, "the database does not verify after %d removals",
          steps);
  } while (gr.files_removed);
  CHECK(steps > 10, "only %d removals", steps);
  check_db(db, latest, 1);
  st_close(db);
  bs_destroy(base);
}

/* A pass told to stop (a stopping server) gives up with STRATA_ESHUTDOWN at
 * its first unit of work, removes nothing and leaves a database that verifies;
 * the next pass, not stopped, does the work. */
static void test_stop_gives_up_the_pass(void **st) {
  rng = seed * 7 + 3;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_db(base, 1, 1);
  uint64_t latest = 0;
  model_grow(0);
  memset(model, 0, NKEYS * sizeof *model);
  for (int i = 0; i < 100; i++) {
    commit_random(db, &latest);
    if (i % 25 == 24) { /* a reopen publishes: a batch file per 25 commits */
      st_close(db);
      db = open_db(base, 0, 1);
    }
  }
  uint64_t floor = latest - 10;
  ever = floor;
  st_set_retain_floor(db, floor);
  commit_random(db, &latest);
  st_close(db); /* publish everything */
  db = open_db(base, 0, 1);
  st_set_retain_floor(db, floor);
  int stop = 1;
  st_gc_own_opts go = {.grace_ns = 0, .stop = &stop};
  st_gc_own_result gr;
  assert_int_equal(st_gc_own(db, &go, &gr), STRATA_ESHUTDOWN);
  assert_int_equal(gr.files_removed, 0);
  CHECK(verifies(base, 1, latest, floor) == 0, "the database does not verify after a stopped pass");
  stop = 0;
  assert_int_equal(st_gc_own(db, &go, &gr), 0);
  CHECK(gr.files_removed > 0, "the pass after the stopped one removed nothing");
  check_db(db, latest, 1);
  st_close(db);
  bs_destroy(base);
}

/* GC's cap follows the committer: the busy cap from the moment a group is
 * installed until ST_GC_IDLE_AFTER_MS without one, the idle cap before the
 * first commit and after that. */
static void test_pace_yields_more_while_commits_run(void **st) {
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_db(base, 1, 1);
  gc_pace p = {.duty_pct = 4, .idle_duty_pct = 25, .last_group_ns = &db->last_group_ns};
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  uint64_t before = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
  assert_int_equal(gc__duty(&p, before), 25);
  uint64_t latest = 0;
  model_grow(0);
  memset(model, 0, NKEYS * sizeof *model);
  commit_random(db, &latest);
  clock_gettime(CLOCK_MONOTONIC, &t);
  uint64_t after = (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
  assert_int_equal(gc__duty(&p, after), 4);
  assert_int_equal(gc__duty(&p, after + ST_GC_IDLE_AFTER_MS * 1000000ull), 25);
  gc_pace fixed = {.duty_pct = 10};
  assert_int_equal(gc__duty(&fixed, after), 10);
  st_close(db);
  bs_destroy(base);
}

static void test_model_log(void **st) { run(1); }
static void test_model_files(void **st) { run(0); }
static void test_steps_log(void **st) { gc_steps(1); }
static void test_steps_files(void **st) { gc_steps(0); }

int main(void) {
  const char *s = getenv("STRATA_SEED");
  seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  fprintf(stderr, "STRATA_SEED=%llu\n", (unsigned long long)seed);
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_model_files),
      cmocka_unit_test(test_model_log),
      cmocka_unit_test(test_steps_files),
      cmocka_unit_test(test_steps_log),
      cmocka_unit_test(test_stop_gives_up_the_pass),
      cmocka_unit_test(test_pace_yields_more_while_commits_run),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  free(model);
  return rc;
}
