/* Lock manager unit tests of waiting: a queued acquire woken by a release (with
 * polling effectively off), by a privileged release past an indefinite lock, by
 * its caller giving up, and by shutdown. Real threads, the hand-moved clock. */
#include <pthread.h>
#include <stdatomic.h>
#include <setjmp.h>
#include <time.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/lock.h"
#include "tests/unit/lk_fixture.h"

typedef struct waiter_arg {
  lk_manager *lk;
  uint64_t op;
  int rc;
  lk_status status;
  atomic_int give_up; /* what the request's abandoned() answers */
} waiter_arg;

static int waiter_gave_up(void *p) { return atomic_load(&((waiter_arg *)p)->give_up); }

static void *wait_for_a(void *p) {
  waiter_arg *w = p;
  lk_row r = lkt_row("a");
  lk_acquire_req q = {.op = w->op, .rows = &r, .nrows = 1, .kind = LK_TEMPORAL, .ttl_ns = LKT_S,
                      .wait_deadline = lk_now(w->lk) + 3600 * LKT_S,
                      .abandoned = waiter_gave_up, .abandoned_ctx = w};
  lk_result res;
  w->rc = lk_acquire(w->lk, &q, &res);
  w->status = res.status;
  if (!w->rc) lk_result_free(&res);
  return NULL;
}

/* Joins within ms of real time; otherwise wakes the waiter with
 * lk_shutdown so teardown can close safely, and fails. */
static void join_within(lk_manager *lk, pthread_t th, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
  if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
    lk_shutdown(lk);
    pthread_join(th, NULL);
    fail_msg("the waiter was not woken within %d ms", ms);
  }
}

#define WAITER_OP 1000

static int64_t real_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A fresh op holds "a" indefinitely (returned); a thread *th then waits for
 * "a" as w->op, a plain temporal acquire. Before that, the same acquire
 * without waiting is refused, naming the indefinite holder. Returns once the
 * waiter is in the row's queue (the lock table's self-check counts it);
 * fails after 30 s of real time (a loaded machine may be slow to run the
 * thread). Never fails with the waiter still running: it is woken with
 * lk_shutdown and joined first. */
static uint64_t hold_a_and_queue_a_waiter(fx *f, waiter_arg *w, pthread_t *th) {
  lk_result r;
  uint64_t holder = new_op(f);
  assert_int_equal(acq(f, holder, (const char *[]){"a"}, 1, LK_INDEFINITE, 0, &r), LK_GRANTED);
  lk_result_free(&r);
  assert_int_equal(acq(f, WAITER_OP, (const char *[]){"a"}, 1, LK_TEMPORAL, LKT_S, &r), LK_CONFLICT);
  assert_int_equal(r.nconflicts, 1);
  assert_int_equal(r.conflicts[0].holder_op, holder);
  assert_int_equal(r.conflicts[0].kind, LK_INDEFINITE);
  lk_result_free(&r);
  *w = (waiter_arg){.lk = f->lk, .op = WAITER_OP};
  pthread_create(th, NULL, wait_for_a, w);
  const char *why = "the waiter did not queue on \"a\" within 30 s";
  for (int64_t t0 = real_ms(); real_ms() - t0 < 30000;) {
    lk_selfcheck_info info;
    if (lk_selfcheck(f->lk, 0, &info)) {
      why = strata_errmsg();
      break;
    }
    if (info.queued == 1) return holder;
    struct timespec pause = {0, 1000000L};
    nanosleep(&pause, NULL);
  }
  lk_shutdown(f->lk);
  pthread_join(*th, NULL);
  fail_msg("%s", why);
  return 0;
}

/* The holder (or, privileged, an operator naming no op) releases "a"; the
 * queued waiter gets it. */
static void release_lets_the_waiter_in(fx *f, int privileged) {
  waiter_arg w;
  pthread_t th;
  uint64_t holder = hold_a_and_queue_a_waiter(f, &w, &th);
  lk_row a = lkt_row("a");
  size_t n;
  int rc = privileged ? lk_privileged_release(f->lk, 0, &a, 1, 0, &n)
                      : lk_release(f->lk, holder, &a, 1, 0, &n);
  /* 30 s for a loaded machine; without the kick the waiter sleeps as long as
   * the poll interval. */
  join_within(f->lk, th, 30000);
  assert_int_equal(rc, 0);
  assert_int_equal(n, 1);
  assert_int_equal(w.rc, 0);
  assert_int_equal(w.status, LK_GRANTED);
  assert_int_equal(held(f, WAITER_OP, "a"), 1);
  assert_int_equal(held(f, holder, "a"), 0);
}

/* With polling effectively off (1 h), only the kick can wake the waiter. */
static void test_release_wakes_a_waiter_without_polling(void **state) {
  fx *f = *state;
  reopen_on_clock(f, lkt_clock, 3600 * LKT_S);
  release_lets_the_waiter_in(f, 0);
}

/* A temporal acquire waiting behind another op's indefinite lock gets the
 * row once an operator releases it (privileged, any holder). */
static void test_privileged_release_lets_a_waiter_past_an_indefinite_lock(void **state) {
  release_lets_the_waiter_in(*state, 1);
}

/* A waiter whose caller gives up (a cancelled gRPC call) leaves within a poll
 * interval with the caller's code and takes nothing, even when the row frees
 * up right after. */
static void test_abandoned_waiter_leaves_and_takes_nothing(void **state) {
  fx *f = *state;
  waiter_arg w;
  pthread_t th;
  uint64_t holder = hold_a_and_queue_a_waiter(f, &w, &th);
  atomic_store(&w.give_up, STRATA_ECANCELLED);
  join_within(f->lk, th, 30000);
  assert_int_equal(w.rc, STRATA_ECANCELLED);
  lk_row a = lkt_row("a");
  size_t n;
  assert_int_equal(lk_release(f->lk, holder, &a, 1, 0, &n), 0);
  assert_int_equal(n, 1);
  assert_int_equal(held(f, WAITER_OP, "a"), 0);
}

static void test_shutdown_wakes_waiters_with_an_error(void **state) {
  fx *f = *state;
  waiter_arg w;
  pthread_t th;
  uint64_t holder = hold_a_and_queue_a_waiter(f, &w, &th);
  lk_shutdown(f->lk);
  join_within(f->lk, th, 30000);
  assert_int_equal(w.rc, STRATA_ESHUTDOWN);
  assert_int_equal(held(f, holder, "a"), 1); /* the holder is untouched */
  assert_int_equal(held(f, WAITER_OP, "a"), 0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    T(test_release_wakes_a_waiter_without_polling),
    T(test_privileged_release_lets_a_waiter_past_an_indefinite_lock),
    T(test_shutdown_wakes_waiters_with_an_error),
    T(test_abandoned_waiter_leaves_and_takes_nothing),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
