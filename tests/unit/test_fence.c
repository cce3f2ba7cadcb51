/* The store and the lock manager joined by the fence, with no server between:
 * a commit fenced on an op's lock rows lands only while the op holds every
 * row. A worker whose temporal lock expired, or whose row another op took
 * over, cannot write; nothing of the refused transaction is visible, and the
 * refusal names the row. Once a commit passed its fence, its rows stay its
 * op's until the commit is decided: a commit held in its fsync by a gate in
 * the base store outlives the op's TTL, and another op can neither acquire
 * the rows nor see a release of them before the commit is durable and
 * visible (or has failed). The lock manager runs on a hand-moved clock.
 * Every test runs twice: with a data file and manifest per group, then in
 * commit log mode, where the gated fsync is the log's (the publisher only
 * runs at close, so no fsync of its reaches the gate first). */
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/lock.h"
#include "locks/oplog.h"
#include "storage/base.h"
#include "storage/store.h"

#define SEC 1000000000LL

static _Atomic int64_t now_ns = 1000 * SEC;
static int64_t hand_clock(void *ctx) { return atomic_load(&now_ns); }

/* --- a base store whose next fsync waits at a gate --------------------------- */

/* Forwards to the memory store. Once armed, the next file fsync (the commit's
 * data file or temp manifest: before the manifest is published) says it
 * arrived and waits until the test opens the gate; then it fsyncs, or fails
 * with EIO when armed to fail. */
static struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int armed, entered, open, fail;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0};

typedef struct gstore {
  bs_store base;
  bs_store *inner;
} gstore;
typedef struct gfile {
  bs_file base;
  bs_file *inner;
} gfile;

static int g_wrap(bs_store *s, bs_file *in, bs_file **out) {
  gfile *f = calloc(1, sizeof *f);
  if (!f) {
    bs_close(in);
    return STRATA_ENOMEM;
  }
  f->base.store = s;
  f->inner = in;
  *out = &f->base;
  return 0;
}
#define INNER(bs) (((gstore *)(bs))->inner)
#define FIN(f) (((gfile *)(f))->inner)
static int g_open_read(bs_store *s, const char *p, bs_file **out) {
  bs_file *in;
  int rc = bs_open_read(INNER(s), p, &in);
  return rc ? rc : g_wrap(s, in, out);
}
static int g_create(bs_store *s, const char *p, bs_file **out) {
  bs_file *in;
  int rc = bs_create(INNER(s), p, &in);
  return rc ? rc : g_wrap(s, in, out);
}
static int g_pread(bs_file *f, uint64_t off, void *dst, size_t n) { return bs_pread(FIN(f), off, dst, n); }
static int g_size(bs_file *f, uint64_t *out) { return bs_size(FIN(f), out); }
static int g_append(bs_file *f, const void *p, size_t n) { return bs_append(FIN(f), p, n); }
static int g_fsync(bs_file *f) {
  int fail = 0;
  pthread_mutex_lock(&gate.mu);
  if (gate.armed) {
    gate.armed = 0;
    gate.entered = 1;
    pthread_cond_broadcast(&gate.cv);
    while (!gate.open) pthread_cond_wait(&gate.cv, &gate.mu);
    fail = gate.fail;
  }
  pthread_mutex_unlock(&gate.mu);
  if (fail) return strata_err(STRATA_EIO, "injected fsync failure (test gate)");
  return bs_fsync(FIN(f));
}
static int g_truncate(bs_file *f, uint64_t len) { return bs_truncate(FIN(f), len); }
static void g_close(bs_file *f) {
  bs_close(FIN(f));
  free(f);
}
static int g_rename(bs_store *s, const char *a, const char *b) { return bs_rename(INNER(s), a, b); }
static int g_sync_dir(bs_store *s, const char *d) { return bs_sync_dir(INNER(s), d); }
static int g_remove(bs_store *s, const char *p) { return bs_remove(INNER(s), p); }
static int g_mkdir(bs_store *s, const char *d) { return bs_mkdir(INNER(s), d); }
static int g_list(bs_store *s, const char *d, char ***names, size_t *n) { return bs_list(INNER(s), d, names, n); }
static int g_lock(bs_store *s) { return bs_lock(INNER(s)); }
static void g_destroy(bs_store *s) { free(s); }
static const bs_ops gate_ops = {g_open_read, g_pread, g_size, g_create, g_append, g_fsync, g_truncate, g_close,
                                g_rename, g_sync_dir, g_remove, g_mkdir, g_list, g_lock, g_destroy, NULL, NULL};

static void gate_arm(int fail) {
  pthread_mutex_lock(&gate.mu);
  gate.armed = 1;
  gate.entered = gate.open = 0;
  gate.fail = fail;
  pthread_mutex_unlock(&gate.mu);
}

static void gate_wait_entered(void) {
  pthread_mutex_lock(&gate.mu);
  while (!gate.entered) pthread_cond_wait(&gate.cv, &gate.mu);
  pthread_mutex_unlock(&gate.mu);
}

static void gate_open(void) {
  pthread_mutex_lock(&gate.mu);
  gate.armed = 0;
  gate.open = 1;
  pthread_cond_broadcast(&gate.cv);
  pthread_mutex_unlock(&gate.mu);
}

typedef struct {
  char dir[64];
  lk_manager *lk;
  bs_store *mem, *base;
  st_db *db;
} fx;

static int log_mode; /* the store commits through its commit log; else the per-group path */

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  snprintf(f->dir, sizeof f->dir, "/tmp/strata-fence-XXXXXX");
  assert_non_null(mkdtemp(f->dir));
  lk_options lo;
  lk_options_init(&lo);
  lo.path = f->dir;
  lo.clock = hand_clock;
  assert_int_equal(lk_open(&lo, &f->lk), 0);
  assert_int_equal(bs_mem_create(&f->mem), 0);
  gstore *g = calloc(1, sizeof *g);
  g->base.ops = &gate_ops;
  g->inner = f->mem;
  f->base = &g->base;
  st_options so;
  memset(&so, 0, sizeof so);
  so.base = f->base;
  so.create = 1;
  so.no_commit_log = !log_mode;
  so.publish_interval_ms = 600000;
  /* the gate must catch the commit's own fsync, not the publisher making the commit
   * log's next segment ready ahead (it did, under ASan in CI: the commit then went
   * through and B was granted the row) */
  so.no_prepare = 1;
  assert_int_equal(st_open("mem", &so, &f->db), 0);
  *state = f;
  return 0;
}

static void join_all(void);

static int teardown(void **state) {
  fx *f = *state;
  /* After a failed assertion threads may still run: let the commit finish
   * and wake the waiters before closing. */
  gate_open();
  lk_shutdown(f->lk);
  join_all();
  st_close(f->db);
  bs_destroy(f->base);
  bs_destroy(f->mem);
  lk_close(f->lk);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
  assert_int_equal(system(cmd), 0);
  free(f);
  return 0;
}

static const lk_row rows[2] = {{(const uint8_t *)"chunk-1", 7}, {(const uint8_t *)"chunk-2", 7}};

static void acquire(fx *f, uint64_t op, const lk_row *r, size_t n, int64_t ttl, lk_status want) {
  lk_acquire_req req = {.op = op, .rows = r, .nrows = n, .kind = LK_TEMPORAL, .ttl_ns = ttl};
  lk_result res;
  assert_int_equal(lk_acquire(f->lk, &req, &res), 0);
  assert_int_equal(res.status, want);
  lk_result_free(&res);
}

/* Commits key=value fenced on (op, rows); returns the commit's code and
 * copies its message. */
static int fenced_put(fx *f, uint64_t op, const lk_row *r, size_t n, const char *key,
                      const char *value, char *msg, size_t msglen) {
  st_txn *t;
  assert_int_equal(st_txn_begin(f->db, &t), 0);
  assert_int_equal(st_txn_put(t, key, strlen(key), value, strlen(value)), 0);
  lk_fence fence = {.lk = f->lk, .op = op, .rows = r, .nrows = n};
  st_txn_set_fence(t, lk_fence_check, &fence);
  st_txn_set_fence_done(t, lk_fence_done);
  st_result res;
  int rc = st_txn_commit(t, &res);
  if (msg) snprintf(msg, msglen, "%s", res.message);
  st_result_free(&res);
  return rc;
}

static int visible(fx *f, const char *key) {
  st_snap *s;
  assert_int_equal(st_snap_latest(f->db, &s), 0);
  strata_buf v = STRATA_BUF_INIT;
  int rc = st_get(s, key, strlen(key), &v);
  strata_buf_free(&v);
  st_snap_release(s);
  assert_true(rc == 0 || rc == STRATA_ENOTFOUND);
  return rc == 0;
}

static void test_holder_commits_others_are_fenced(void **state) {
  fx *f = *state;
  char msg[512];
  acquire(f, 41, rows, 2, 30 * SEC, LK_GRANTED);
  assert_int_equal(fenced_put(f, 41, rows, 2, "sv/1", "split", msg, sizeof msg), 0);
  assert_true(visible(f, "sv/1"));
  /* Op 42 holds nothing: refused, and the message names the row. */
  assert_int_equal(fenced_put(f, 42, rows + 1, 1, "sv/2", "x", msg, sizeof msg), STRATA_EFENCED);
  assert_non_null(strstr(msg, "chunk-2"));
  assert_false(visible(f, "sv/2"));
}

static void test_expired_lock_cannot_write(void **state) {
  fx *f = *state;
  char msg[512];
  acquire(f, 7, rows, 2, 10 * SEC, LK_GRANTED);
  assert_int_equal(fenced_put(f, 7, rows, 2, "a", "1", msg, sizeof msg), 0);
  /* The worker stalls past its TTL: its next write is refused... */
  now_ns += 11 * SEC;
  assert_int_equal(fenced_put(f, 7, rows, 2, "a", "2", msg, sizeof msg), STRATA_EFENCED);
  assert_non_null(strstr(msg, "chunk-1"));
  /* ...and the value it wrote before is the one that stays. */
  st_snap *s;
  assert_int_equal(st_snap_latest(f->db, &s), 0);
  strata_buf v = STRATA_BUF_INIT;
  assert_int_equal(st_get(s, "a", 1, &v), 0);
  assert_int_equal(v.len, 1);
  assert_memory_equal(v.p, "1", 1);
  strata_buf_free(&v);
  st_snap_release(s);
  /* Another op takes one row over; the old holder stays fenced even on the
   * row it might still think it has, and the new holder writes. */
  acquire(f, 8, rows, 1, 10 * SEC, LK_GRANTED);
  assert_int_equal(fenced_put(f, 7, rows + 1, 1, "b", "old", msg, sizeof msg), STRATA_EFENCED);
  assert_int_equal(fenced_put(f, 8, rows, 1, "b", "new", msg, sizeof msg), 0);
  assert_true(visible(f, "b"));
}

static void test_release_then_commit_is_fenced(void **state) {
  fx *f = *state;
  acquire(f, 9, rows, 2, 30 * SEC, LK_GRANTED);
  size_t released = 0;
  assert_int_equal(lk_release(f->lk, 9, rows, 1, 0, &released), 0);
  assert_int_equal(released, 1);
  /* Holding one of two rows is not enough. */
  assert_int_equal(fenced_put(f, 9, rows, 2, "c", "1", NULL, 0), STRATA_EFENCED);
  assert_false(visible(f, "c"));
  assert_int_equal(fenced_put(f, 9, rows + 1, 1, "c", "1", NULL, 0), 0);
  assert_true(visible(f, "c"));
}

/* --- fences hold until the commit is decided ------------------------------- */

#define OP_A 21
#define OP_B 22

/* Threads of one test, file-scope so that they outlive a failed assertion
 * (teardown joins them). */
static struct bg {
  pthread_t th;
  int started;
} bgs[4];

static void start(int i, void *(*fn)(void *), void *arg) {
  assert_int_equal(pthread_create(&bgs[i].th, NULL, fn, arg), 0);
  bgs[i].started = 1;
}

static void join(int i) {
  if (bgs[i].started) pthread_join(bgs[i].th, NULL);
  bgs[i].started = 0;
}

static void join_all(void) {
  for (int i = 0; i < 4; i++) join(i);
}

/* A fenced commit of key = value by op on one row, run on a thread. The
 * commit's fence_done is spied on: `decided` is set before the lock manager
 * unpins, so whatever the unpin lets through happens after it. */
static struct committer {
  fx *f;
  uint64_t op;
  const lk_row *row;
  const char *key, *value;
  lk_fence fence;
  int rc;
  char msg[512];
} cm;
static atomic_int decided, decided_committed;

static void spy_done(void *ctx, int committed) {
  atomic_store(&decided_committed, committed);
  atomic_store(&decided, 1);
  lk_fence_done(ctx, committed);
}

static void *commit_main(void *arg) {
  struct committer *c = arg;
  st_txn *t;
  if ((c->rc = st_txn_begin(c->f->db, &t))) return NULL;
  if ((c->rc = st_txn_put(t, c->key, strlen(c->key), c->value, strlen(c->value)))) {
    st_txn_abort(t);
    return NULL;
  }
  c->fence = (lk_fence){.lk = c->f->lk, .op = c->op, .rows = c->row, .nrows = 1};
  st_txn_set_fence(t, lk_fence_check, &c->fence);
  st_txn_set_fence_done(t, spy_done);
  st_result res;
  c->rc = st_txn_commit(t, &res);
  snprintf(c->msg, sizeof c->msg, "%s", res.message);
  st_result_free(&res);
  return NULL;
}

/* Starts the commit with the gate armed and returns once it waits in its
 * fsync: its fence check has passed, nothing of it is visible yet. */
static void commit_blocked(fx *f, uint64_t op, const lk_row *row, const char *key,
                           const char *value, int fail) {
  atomic_store(&decided, 0);
  cm = (struct committer){.f = f, .op = op, .row = row, .key = key, .value = value};
  gate_arm(fail);
  start(0, commit_main, &cm);
  gate_wait_entered();
  assert_false(visible(f, key));
  assert_int_equal(atomic_load(&decided), 0);
}

/* A waiting acquire by op B of one row, then (when granted) a read of `key`
 * at the latest generation, as an edit worker does right after its grant. */
static struct waiter {
  fx *f;
  const lk_row *row;
  const char *key;
  int rc, read_rc;
  lk_status status;
  int decided_at_grant;
  char value[64];
} wt;

static void *wait_main(void *arg) {
  struct waiter *w = arg;
  lk_acquire_req q = {.op = OP_B, .rows = w->row, .nrows = 1, .kind = LK_TEMPORAL,
                      .ttl_ns = 30 * SEC, .wait_deadline = hand_clock(NULL) + 3600 * SEC};
  lk_result res;
  w->rc = lk_acquire(w->f->lk, &q, &res);
  if (w->rc) return NULL;
  w->status = res.status;
  lk_result_free(&res);
  if (w->status != LK_GRANTED) return NULL;
  w->decided_at_grant = atomic_load(&decided);
  st_snap *s;
  if ((w->read_rc = st_snap_latest(w->f->db, &s))) return NULL;
  strata_buf v = STRATA_BUF_INIT;
  w->read_rc = st_get(s, w->key, strlen(w->key), &v);
  if (!w->read_rc) snprintf(w->value, sizeof w->value, "%.*s", (int)v.len, (const char *)v.p);
  strata_buf_free(&v);
  st_snap_release(s);
  return NULL;
}

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Polls the lock table's self-check until want(info) holds or done is set
 * (a thread that should have blocked returned instead); fails after 60 s of
 * real time (a loaded machine may be slow to run the thread). */
static void until(fx *f, int (*want)(const lk_selfcheck_info *), atomic_int *done) {
  for (int64_t t0 = real_ms(); real_ms() - t0 < 60000;) {
    lk_selfcheck_info info;
    assert_int_equal(lk_selfcheck(f->lk, 0, &info), 0);
    if (want(&info) || (done && atomic_load(done))) return;
    struct timespec pause = {0, 1000000L};
    nanosleep(&pause, NULL);
  }
  fail_msg("the thread did not reach its wait within 60 s");
}
static int one_queued(const lk_selfcheck_info *i) { return i->queued == 1; }
static int one_pin_waiter(const lk_selfcheck_info *i) { return i->pin_waiters == 1; }

static void assert_table_sane(fx *f) {
  lk_selfcheck_info info;
  int rc = lk_selfcheck(f->lk, 1, &info);
  if (rc) fail_msg("lk_selfcheck: %s", strata_errmsg());
  assert_int_equal(info.pinned_rows, 0);
  assert_int_equal(info.pin_waiters, 0);
}

static void refused_naming(fx *f, uint64_t op, const lk_row *row, uint64_t holder) {
  lk_acquire_req q = {.op = op, .rows = row, .nrows = 1, .kind = LK_TEMPORAL, .ttl_ns = 30 * SEC};
  lk_result res;
  assert_int_equal(lk_acquire(f->lk, &q, &res), 0);
  assert_int_equal(res.status, LK_CONFLICT);
  assert_int_equal(res.nconflicts, 1);
  assert_int_equal(res.conflicts[0].holder_op, holder);
  lk_result_free(&res);
}

/* B waits for the row (queued: the self-check counts it) while the commit
 * is held; then the commit goes on, and both threads are joined. */
static void b_waits_while_the_commit_decides(fx *f) {
  wt = (struct waiter){.f = f, .row = rows, .key = "k"};
  start(1, wait_main, &wt);
  until(f, one_queued, NULL);
  gate_open();
  join(0);
  join(1);
}

/* The lost update of issue 9: A's fenced commit passes its check, A's TTL
 * runs out while the commit waits in its fsync. B may not take the row
 * until the commit is durable and visible; B's read after its grant then
 * sees A's value, and A's answer says its lock expired in flight. */
static void test_expiry_waits_for_the_commit_in_flight(void **state) {
  fx *f = *state;
  acquire(f, OP_A, rows, 1, 10 * SEC, LK_GRANTED);
  commit_blocked(f, OP_A, rows, "k", "from A", 0);
  now_ns += 11 * SEC; /* A's lock is past its expiry */
  refused_naming(f, OP_B, rows, OP_A);
  int held = 1;
  assert_int_equal(lk_check(f->lk, OP_A, rows, 1, &held, NULL), 0);
  assert_int_equal(held, 0); /* A itself does not hold it any more */
  lk_result rn;
  assert_int_equal(lk_renew(f->lk, OP_A, rows, 1, 10 * SEC, &rn), 0);
  assert_int_equal(rn.status, LK_NOT_HELD); /* a pin never extends the lock */
  assert_int_equal(rn.conflicts[0].holder_op, 0);
  lk_result_free(&rn);
  b_waits_while_the_commit_decides(f);
  assert_int_equal(cm.rc, 0);
  assert_int_equal(cm.fence.expired_in_flight, 1);
  assert_int_equal(atomic_load(&decided_committed), 1);
  assert_int_equal(wt.rc, 0);
  assert_int_equal(wt.status, LK_GRANTED);
  assert_int_equal(wt.decided_at_grant, 1);
  assert_int_equal(wt.read_rc, 0);
  assert_string_equal(wt.value, "from A");
  assert_table_sane(f);
}

/* A commit that stays within its TTL reports no expiry. */
static void test_commit_within_ttl_reports_no_expiry(void **state) {
  fx *f = *state;
  acquire(f, OP_A, rows, 1, 10 * SEC, LK_GRANTED);
  commit_blocked(f, OP_A, rows, "k", "v", 0);
  gate_open();
  join(0);
  assert_int_equal(cm.rc, 0);
  assert_int_equal(cm.fence.expired_in_flight, 0);
  assert_table_sane(f);
}

static struct releaser {
  fx *f;
  uint64_t op;          /* 0 with privileged: whoever holds the row */
  int privileged;
  const lk_row *row;
  int rc;
  size_t released;
  int decided_at_return;
  atomic_int done;
} rl;

static void *release_main(void *arg) {
  struct releaser *r = arg;
  r->rc = r->privileged ? lk_privileged_release(r->f->lk, r->op, r->row, 1, 0, &r->released)
                        : lk_release(r->f->lk, r->op, r->row, 1, 0, &r->released);
  r->decided_at_return = atomic_load(&decided);
  atomic_store(&r->done, 1);
  return NULL;
}

static void release_during_commit(fx *f, uint64_t holder, uint64_t op, int privileged) {
  commit_blocked(f, holder, rows, "k", "held", 0);
  rl = (struct releaser){.f = f, .op = op, .privileged = privileged, .row = rows};
  start(1, release_main, &rl);
  until(f, one_pin_waiter, &rl.done);
  gate_open();
  join(0);
  join(1);
  assert_int_equal(cm.rc, 0);
  assert_int_equal(rl.rc, 0);
  assert_int_equal(rl.released, 1);
  assert_int_equal(rl.decided_at_return, 1); /* returned only after the commit was decided */
  assert_true(visible(f, "k"));
  int held = 1;
  assert_int_equal(lk_check(f->lk, holder, rows, 1, &held, NULL), 0);
  assert_int_equal(held, 0);
  assert_table_sane(f);
}

/* A's release of a row its commit is writing returns once the commit is
 * decided, not before. */
static void test_release_waits_for_the_commit_in_flight(void **state) {
  fx *f = *state;
  acquire(f, OP_A, rows, 1, 30 * SEC, LK_GRANTED);
  release_during_commit(f, OP_A, OP_A, 0);
}

/* So does an operator's privileged release of an indefinite lock. */
static void test_privileged_release_waits_for_the_commit_in_flight(void **state) {
  fx *f = *state;
  uint64_t op;
  assert_int_equal(oplog_create(lk_oplog(f->lk), "t", "edit", NULL, 0, 0, &op, NULL), 0);
  lk_acquire_req q = {.op = op, .rows = rows, .nrows = 1, .kind = LK_INDEFINITE};
  lk_result res;
  assert_int_equal(lk_acquire(f->lk, &q, &res), 0);
  assert_int_equal(res.status, LK_GRANTED);
  lk_result_free(&res);
  release_during_commit(f, op, 0, 1);
}

/* A fenced commit that fails after its check (fsync error) unpins: B then
 * gets the row and does not see the failed write. */
static void test_failed_commit_unpins(void **state) {
  fx *f = *state;
  acquire(f, OP_A, rows, 1, 10 * SEC, LK_GRANTED);
  commit_blocked(f, OP_A, rows, "k", "lost", 1);
  now_ns += 11 * SEC;
  refused_naming(f, OP_B, rows, OP_A);
  b_waits_while_the_commit_decides(f);
  assert_int_equal(cm.rc, STRATA_EIO);
  assert_non_null(strstr(cm.msg, "injected fsync failure"));
  assert_int_equal(atomic_load(&decided), 1);
  assert_int_equal(atomic_load(&decided_committed), 0);
  assert_int_equal(wt.rc, 0);
  assert_int_equal(wt.status, LK_GRANTED);
  assert_int_equal(wt.read_rc, STRATA_ENOTFOUND);
  assert_false(visible(f, "k"));
  assert_table_sane(f);
}

/* A refused fence pins nothing and owes no fence_done. */
static void test_refused_fence_pins_nothing(void **state) {
  fx *f = *state;
  acquire(f, OP_A, rows, 1, 10 * SEC, LK_GRANTED);
  atomic_store(&decided, 0);
  assert_int_equal(fenced_put(f, OP_B, rows, 1, "k", "x", NULL, 0), STRATA_EFENCED);
  assert_table_sane(f);
  size_t n = 0;
  assert_int_equal(lk_release(f->lk, OP_A, rows, 1, 0, &n), 0); /* does not wait */
  assert_int_equal(n, 1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_holder_commits_others_are_fenced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expired_lock_cannot_write, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_then_commit_is_fenced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_expiry_waits_for_the_commit_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_commit_within_ttl_reports_no_expiry, setup, teardown),
      cmocka_unit_test_setup_teardown(test_release_waits_for_the_commit_in_flight, setup, teardown),
      cmocka_unit_test_setup_teardown(test_privileged_release_waits_for_the_commit_in_flight, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_failed_commit_unpins, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refused_fence_pins_nothing, setup, teardown),
  };
  int failed = cmocka_run_group_tests_name("per-group files", tests, NULL, NULL);
  log_mode = 1;
  return failed + cmocka_run_group_tests_name("commit log mode", tests, NULL, NULL);
}
