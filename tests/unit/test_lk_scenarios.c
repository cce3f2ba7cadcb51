/*
 * Scripted lock scenarios in the style of PostgreSQL's isolation specs:
 * sessions (one thread and one op each) run steps in the order written, and
 * each step states its expected outcome. A step expected to BLOCK must be
 * seen waiting in the lock manager, and still be running after a pause; a
 * later AWAIT step checks how it finished. Time is a hand-moved clock, so
 * expiries and deadlines are exact.
 */
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/counter.h"
#include "locks/lock.h"
#include "locks/oplog.h"
#include "tests/locks/lk_test.h"

enum act { ACQ, RENEW, REL, PREL, CHECK, ADVANCE, REOPEN, AWAIT, STILL, CTR, SCOPE, END };
enum expect { GRANTED = 1, CONFLICT, TIMEDOUT, NOT_HELD, BLOCKS, HELD, NOT, COUNT };
#define NSESS 4
#define ANY 0            /* who: do not check (PREL: any holder, op 0) */
#define WHO(S) ((S) + 1) /* who: session S */
#define NOBODY (-1)      /* who: the row is free */

typedef struct step {
  int s;              /* session */
  enum act a;
  const char *rows;   /* "a,b,c"; NULL for all rows (release) */
  char kind;          /* 'T' or 'I' */
  int64_t ms;         /* ACQ/RENEW: ttl; ADVANCE: clock step; CTR: count */
  int64_t wait_ms;    /* ACQ: wait this long (0: no wait) */
  enum expect e;
  int who;            /* CONFLICT/NOT_HELD: first reported holder; PREL: target */
  int64_t n;          /* REL/PREL: slots released; CTR: first id; SCOPE: rows */
} step;

/* Step constructors, so a scenario reads like a spec. */
#define ACQ_T(S, R, TTL, E, ...) {.s = S, .a = ACQ, .rows = R, .kind = 'T', .ms = TTL, .e = E, __VA_ARGS__}
#define ACQ_I(S, R, E, ...) {.s = S, .a = ACQ, .rows = R, .kind = 'I', .e = E, __VA_ARGS__}
#define RENEW_(S, R, TTL, E, ...) {.s = S, .a = RENEW, .rows = R, .ms = TTL, .e = E, __VA_ARGS__}
#define REL_(S, R, N) {.s = S, .a = REL, .rows = R, .e = COUNT, .n = N}
#define PREL_(TARGET, R, N) {.s = 3, .a = PREL, .rows = R, .e = COUNT, .who = TARGET, .n = N}
#define CHECK_(S, R, E) {.s = S, .a = CHECK, .rows = R, .e = E}
#define ADVANCE_(MS) {.a = ADVANCE, .ms = MS}
#define REOPEN_() {.a = REOPEN}
#define AWAIT_(S, E, ...) {.s = S, .a = AWAIT, .e = E, __VA_ARGS__}
#define STILL_(S) {.s = S, .a = STILL}
#define CTR_(COUNT_, FIRST) {.a = CTR, .ms = COUNT_, .n = FIRST}
#define SCOPE_(S, N) {.s = S, .a = SCOPE, .n = N}
#define END_() {.a = END}

typedef struct scenario {
  const char *name;
  step steps[32];
} scenario;

static const scenario scenarios[] = {
  {"overlapping multi-row sets from two ops", {
    ACQ_T(0, "a,b", 1000, GRANTED),
    ACQ_T(1, "b,c", 1000, CONFLICT, .who = WHO(0)),
    CHECK_(1, "c", NOT),
    REL_(0, "a,b", 2),
    ACQ_T(1, "b,c", 1000, GRANTED),
    ACQ_T(0, "a,b", 1000, CONFLICT, .who = WHO(1)),
    END_()}},
  {"expiry then a refused stale renew", {
    ACQ_T(0, "a", 100, GRANTED),
    RENEW_(0, "a", 100, GRANTED),
    ADVANCE_(100),
    RENEW_(0, "a", 100, NOT_HELD, .who = NOBODY),
    ACQ_T(1, "a", 100, GRANTED),
    RENEW_(0, "a", 100, NOT_HELD, .who = WHO(1)),
    CHECK_(0, "a", NOT),
    CHECK_(1, "a", HELD),
    END_()}},
  {"an indefinite lock excludes every other op, temporal acquires too", {
    ACQ_I(0, "r", GRANTED),
    ACQ_T(1, "r", 1000, CONFLICT, .who = WHO(0)),
    ACQ_I(1, "r", CONFLICT, .who = WHO(0)),
    ADVANCE_(100000),
    ACQ_T(2, "r", 1000, CONFLICT, .who = WHO(0)),
    CHECK_(0, "r", HELD),
    CHECK_(1, "r", NOT),
    CHECK_(2, "r", NOT),
    ACQ_I(2, "s", GRANTED),
    ACQ_I(0, "s,t", CONFLICT, .who = WHO(2)),
    CHECK_(0, "t", NOT),
    /* Only the operator's privileged release lets a waiting temporal acquire in. */
    ACQ_T(1, "r", 1000, BLOCKS, .wait_ms = 10000),
    PREL_(ANY, "r", 1),
    AWAIT_(1, GRANTED),
    CHECK_(1, "r", HELD),
    CHECK_(0, "r", NOT),
    SCOPE_(0, 0),
    END_()}},
  {"temporal to indefinite upgrade by the same op", {
    ACQ_T(0, "r1,r2", 100, GRANTED),
    ACQ_I(0, "r1,r2", GRANTED),
    SCOPE_(0, 2),
    ADVANCE_(100000),
    CHECK_(0, "r1,r2", HELD),
    ACQ_T(1, "r2", 100, CONFLICT, .who = WHO(0)),
    ACQ_T(0, "r2", 100, GRANTED),
    REL_(0, NULL, 2),
    SCOPE_(0, 0),
    END_()}},
  {"privileged release", {
    ACQ_I(0, "a,b", GRANTED),
    REL_(1, "a", 0),
    PREL_(ANY, "a", 1),
    SCOPE_(0, 1),
    ACQ_T(1, "a", 1000, GRANTED),
    ACQ_T(1, "b", 1000, CONFLICT, .who = WHO(0)),
    PREL_(WHO(0), NULL, 1),
    SCOPE_(0, 0),
    ACQ_T(1, "b", 1000, GRANTED),
    CHECK_(1, "a,b", HELD),
    END_()}},
  {"waiters are granted in arrival order", {
    ACQ_T(0, "a", 60000, GRANTED),
    ACQ_T(1, "a", 1000, BLOCKS, .wait_ms = 10000),
    ACQ_T(2, "a", 1000, BLOCKS, .wait_ms = 10000),
    REL_(0, "a", 1),
    AWAIT_(1, GRANTED),
    STILL_(2),
    REL_(1, "a", 1),
    AWAIT_(2, GRANTED),
    END_()}},
  {"a large waiting set does not starve behind later small requests", {
    ACQ_T(0, "a", 60000, GRANTED),
    ACQ_T(1, "a,b,c", 1000, BLOCKS, .wait_ms = 10000),
    ACQ_T(2, "b", 1000, CONFLICT, .who = WHO(1)),
    ACQ_T(3, "c", 1000, BLOCKS, .wait_ms = 10000),
    REL_(0, "a", 1),
    AWAIT_(1, GRANTED),
    STILL_(3),
    REL_(1, NULL, 3),
    AWAIT_(3, GRANTED),
    END_()}},
  {"a waiter fails at its deadline and one is granted at an expiry", {
    ACQ_I(0, "a", GRANTED),
    ACQ_T(1, "a", 1000, BLOCKS, .wait_ms = 500),
    ADVANCE_(499),
    STILL_(1),
    ADVANCE_(1),
    AWAIT_(1, TIMEDOUT, .who = WHO(0)),
    ACQ_T(2, "a", 1000, CONFLICT, .who = WHO(0)),
    ACQ_T(0, "b", 300, GRANTED),
    ACQ_T(1, "b", 1000, BLOCKS, .wait_ms = 1000),
    ADVANCE_(300),
    AWAIT_(1, GRANTED),
    CHECK_(0, "b", NOT),
    END_()}},
  {"re-acquire and upgrade are not blocked by a waiter behind the holder", {
    ACQ_T(0, "a", 60000, GRANTED),
    ACQ_T(1, "a", 1000, BLOCKS, .wait_ms = 10000),
    ACQ_T(0, "a", 60000, GRANTED),
    ACQ_I(0, "a", GRANTED),
    REL_(0, "a", 1),
    AWAIT_(1, GRANTED),
    END_()}},
  {"close and reopen keeps locks, deadlines, scopes and counters", {
    ACQ_T(0, "a", 1000, GRANTED),
    ACQ_I(1, "b,c", GRANTED),
    CTR_(10, 1),
    REOPEN_(),
    ADVANCE_(999),
    CHECK_(0, "a", HELD),
    ACQ_T(2, "a", 1000, CONFLICT, .who = WHO(0)),
    SCOPE_(1, 2),
    CHECK_(1, "b,c", HELD),
    CTR_(5, 11),
    ADVANCE_(1),
    REOPEN_(),
    CHECK_(0, "a", NOT),
    ACQ_T(2, "a", 1000, GRANTED),
    ACQ_T(2, "b", 1000, CONFLICT, .who = WHO(1)),
    REL_(1, "b", 1),
    REOPEN_(),
    SCOPE_(1, 1),
    CTR_(1, 16),
    END_()}},
};

/* --- the runner ---------------------------------------------------------- */

typedef struct runner runner;
typedef struct session {
  runner *rn;
  int idx;
  uint64_t op;
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  const step *job;   /* posted, not yet finished */
  int done, quit;
  int rc;
  lk_result res;
  int held;
  size_t released;
  atomic_int clock_reads; /* of the lock manager's clock, by this session's current job */
} session;

struct runner {
  char err[512];     /* first failure; the scenario stops there */
  char *dir;
  lk_manager *lk;
  session s[NSESS];
  uint64_t max_token;
};

/* The session whose thread is running (NULL in the runner's thread). */
static _Thread_local session *self_session;

/* The hand-moved clock, counting each session's readings: lk_acquire reads
 * the clock twice before it decides to wait, then once at the top of every
 * round of its wait loop, after it has queued. A third reading during a
 * blocked acquire therefore says "queued", which a fixed pause cannot. */
static int64_t scn_clock(void *ctx) {
  if (self_session) atomic_fetch_add(&self_session->clock_reads, 1);
  return lkt_clock(ctx);
}

static void open_lk(runner *rn) {
  lk_options o;
  lk_options_init(&o);
  o.path = rn->dir;
  o.clock = scn_clock;
  o.partitions = 4;
  o.wait_poll_ns = 5 * LKT_MS;
  assert_int_equal(lk_open(&o, &rn->lk), 0);
}

static size_t parse_rows(const char *spec, lk_row *rows, char buf[][16]) {
  size_t n = 0;
  const char *p = spec;
  while (*p) {
    size_t l = strcspn(p, ",");
    snprintf(buf[n], 16, "%.*s", (int)l, p);
    rows[n] = lkt_row(buf[n]);
    n++;
    p += l + (p[l] == ',');
  }
  return n;
}

static void run_job(session *s, const step *st) {
  runner *rn = s->rn;
  lk_row rows[8];
  char buf[8][16];
  size_t n = st->rows ? parse_rows(st->rows, rows, buf) : 0;
  const lk_row *r = st->rows ? rows : NULL;
  memset(&s->res, 0, sizeof s->res);
  switch (st->a) {
  case ACQ: {
    lk_acquire_req q = {.op = s->op, .rows = rows, .nrows = n,
                        .kind = st->kind == 'I' ? LK_INDEFINITE : LK_TEMPORAL,
                        .ttl_ns = st->ms * LKT_MS,
                        .wait_deadline = st->wait_ms ? lk_now(rn->lk) + st->wait_ms * LKT_MS : 0};
    atomic_store(&s->clock_reads, 0);
    s->rc = lk_acquire(rn->lk, &q, &s->res);
    break;
  }
  case RENEW: s->rc = lk_renew(rn->lk, s->op, rows, n, st->ms * LKT_MS, &s->res); break;
  case REL: s->rc = lk_release(rn->lk, s->op, r, n, 0, &s->released); break;
  case PREL:
    s->rc = lk_privileged_release(rn->lk, st->who == ANY ? 0 : rn->s[st->who - 1].op, r, n, 0,
                                  &s->released);
    break;
  case CHECK: s->rc = lk_check(rn->lk, s->op, rows, n, &s->held, NULL); break;
  default: fail_msg("not a session step");
  }
}

static void *session_main(void *arg) {
  session *s = arg;
  self_session = s;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->quit && (!s->job || s->done)) pthread_cond_wait(&s->cv, &s->mu);
    if (s->quit) break;
    const step *st = s->job;
    pthread_mutex_unlock(&s->mu);
    run_job(s, st);
    pthread_mutex_lock(&s->mu);
    s->done = 1;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

/* Waits up to ms of real time for session s's job; returns 1 if it finished. */
static int wait_done(session *s, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t t = ts.tv_nsec + (int64_t)ms * LKT_MS;
  ts.tv_sec += t / LKT_S;
  ts.tv_nsec = t % LKT_S;
  pthread_mutex_lock(&s->mu);
  while (!s->done && pthread_cond_timedwait(&s->cv, &s->mu, &ts) == 0) {}
  int d = s->done;
  pthread_mutex_unlock(&s->mu);
  return d;
}

/* Waits up to ms of real time for session s's blocked acquire to have queued
 * (see scn_clock) or finished. */
static void wait_queued(session *s, int ms) {
  for (int i = 0; i < ms && atomic_load(&s->clock_reads) < 3 && !wait_done(s, 0); i++) {
    struct timespec pause = {0, 1000000L};
    nanosleep(&pause, NULL);
  }
}

/* Records the first failure of the scenario; returns 1 so callers stop. */
static int scn_fail(runner *rn, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int scn_fail(runner *rn, const char *fmt, ...) {
  if (!rn->err[0]) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rn->err, sizeof rn->err, fmt, ap);
    va_end(ap);
  }
  return 1;
}

/* Checks a finished session step against its expectation. */
static int verify(runner *rn, session *s, const step *st, const step *want, const char *where) {
  if (s->rc) return scn_fail(rn, "%s: error %s: %s", where, strata_errname(s->rc), strata_errmsg());
  if (want->e == HELD || want->e == NOT) {
    if (s->held != (want->e == HELD)) return scn_fail(rn, "%s: check says held=%d", where, s->held);
    return 0;
  }
  if (want->e == COUNT) {
    if ((int64_t)s->released != want->n)
      return scn_fail(rn, "%s: released %zu, want %" PRId64, where, s->released, want->n);
    return 0;
  }
  static const lk_status st_of[] = {[GRANTED] = LK_GRANTED, [CONFLICT] = LK_CONFLICT,
                                    [TIMEDOUT] = LK_TIMEDOUT, [NOT_HELD] = LK_NOT_HELD};
  if (s->res.status != st_of[want->e])
    return scn_fail(rn, "%s: status %d, want %d", where, (int)s->res.status, (int)st_of[want->e]);
  if (s->res.status == LK_GRANTED && st->a == ACQ && !s->res.already_held) {
    if (s->res.token <= rn->max_token)
      return scn_fail(rn, "%s: token %" PRIu64 " not above %" PRIu64, where, s->res.token, rn->max_token);
    rn->max_token = s->res.token;
  }
  if (s->res.status != LK_GRANTED) {
    if (s->res.nconflicts == 0) return scn_fail(rn, "%s: refused without a reason", where);
    uint64_t want_op = want->who > 0 ? rn->s[want->who - 1].op : 0;
    if (want->who != ANY && s->res.conflicts[0].holder_op != want_op)
      return scn_fail(rn, "%s: holder op %" PRIu64 ", want %" PRIu64, where, s->res.conflicts[0].holder_op, want_op);
  }
  lk_result_free(&s->res);
  return 0;
}

static void post(session *s, const step *st) {
  pthread_mutex_lock(&s->mu);
  s->job = st;
  s->done = 0;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* A session step: posted to its thread; one expected to block must be queued in
 * the lock manager and still waiting (pending[] then holds it), any other must
 * finish as expected. Nonzero on failure (rn->err says why). */
static int session_step(runner *rn, const step *st, const step **pending, const char *where) {
  session *s = &rn->s[st->s];
  if (pending[st->s]) return scn_fail(rn, "%s: session %d is busy", where, st->s);
  post(s, st);
  if (st->e == BLOCKS) {
    /* Queued before the next step runs (a later waiter, a clock move), however
     * slow the machine: a thread that had not even started could otherwise
     * queue behind a later session, or take its deadline from a later clock. */
    wait_queued(s, 10000);
    if (wait_done(s, 150))
      return scn_fail(rn, "%s: expected to block, finished with status %d", where, (int)s->res.status);
    if (atomic_load(&s->clock_reads) < 3)
      return scn_fail(rn, "%s: not waiting in the lock manager after 10 s", where);
    pending[st->s] = st;
    return 0;
  }
  if (!wait_done(s, 30000)) return scn_fail(rn, "%s: blocked, expected to finish", where);
  return verify(rn, s, st, st, where);
}

/* Step i of the scenario, then the lock table's self-check. Nonzero on failure. */
static int run_step(runner *rn, const scenario *sc, int i, const step **pending) {
  const step *st = &sc->steps[i];
  char where[160];
  snprintf(where, sizeof where, "scenario \"%s\" step %d", sc->name, i + 1);
  session *s = &rn->s[st->s];
#define FAIL(...) return scn_fail(rn, __VA_ARGS__)
  switch (st->a) {
  case ADVANCE: lkt_advance(st->ms * LKT_MS); break;
  case REOPEN:
    for (int j = 0; j < NSESS; j++)
      if (pending[j]) FAIL("%s: session %d still waiting at reopen", where, j);
    lk_close(rn->lk);
    open_lk(rn);
    break;
  case CTR: {
    uint64_t first = 0;
    if (ctr_allocate(lk_counters(rn->lk), "sv", (uint64_t)st->ms, &first)) FAIL("%s: %s", where, strata_errmsg());
    if ((int64_t)first != st->n) FAIL("%s: counter first %" PRIu64 ", want %" PRId64, where, first, st->n);
    break;
  }
  case SCOPE: {
    oplog_op op;
    if (oplog_get(lk_oplog(rn->lk), s->op, &op)) FAIL("%s: %s", where, strata_errmsg());
    if ((int64_t)op.nscope != st->n) FAIL("%s: scope of %zu rows, want %" PRId64, where, op.nscope, st->n);
    oplog_op_free(&op);
    break;
  }
  case STILL:
    if (!pending[st->s] || wait_done(s, 100)) FAIL("%s: session %d is not waiting", where, st->s);
    break;
  case AWAIT:
    if (!pending[st->s]) FAIL("%s: session %d has no blocked step", where, st->s);
    if (!wait_done(s, 30000)) FAIL("%s: session %d still blocked", where, st->s);
    if (verify(rn, s, pending[st->s], st, where)) return 1;
    pending[st->s] = NULL;
    break;
  default:
    if (session_step(rn, st, pending, where)) return 1;
  }
  /* After every step: never two holders of a row, queues and records sane. */
  if (lk_selfcheck(rn->lk, 1, NULL)) FAIL("%s: %s", where, strata_errmsg());
#undef FAIL
  return 0;
}

static void run_scenario(const scenario *sc) {
  runner rn = {0};
  rn.dir = lkt_tmpdir("lkscen");
  open_lk(&rn);
  const step *pending[NSESS] = {0};
  for (int i = 0; i < NSESS; i++) {
    session *s = &rn.s[i];
    s->rn = &rn;
    s->idx = i;
    assert_int_equal(oplog_create(lk_oplog(rn.lk), "scenario", "test", NULL, 0, 0, &s->op, NULL), 0);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    pthread_create(&s->th, NULL, session_main, s);
  }
  int failed = 0;
  for (int i = 0; !failed && sc->steps[i].a != END; i++) failed = run_step(&rn, sc, i, pending);
  for (int i = 0; !failed && i < NSESS; i++)
    if (pending[i]) failed = scn_fail(&rn, "scenario \"%s\": session %d left blocked", sc->name, i);
  /* On failure waiters may still block: shut down wakes them. */
  if (rn.err[0]) lk_shutdown(rn.lk);
  for (int i = 0; i < NSESS; i++) {
    session *s = &rn.s[i];
    if (pending[i]) wait_done(s, 30000); /* woken by lk_shutdown on failure */
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->th, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
  }
  lk_close(rn.lk);
  lkt_rmdir(rn.dir);
  if (rn.err[0]) fail_msg("%s", rn.err);
}

static void test_scenario(void **state) { run_scenario(*state); }

int main(void) {
  alarm(600); /* a scenario that hangs fails the binary instead of CI */
  enum { N = sizeof scenarios / sizeof scenarios[0] };
  struct CMUnitTest tests[N];
  for (size_t i = 0; i < N; i++) {
    tests[i] = (struct CMUnitTest){scenarios[i].name, test_scenario, NULL, NULL, (void *)&scenarios[i]};
  }
  return cmocka_run_group_tests(tests, NULL, NULL);
}
