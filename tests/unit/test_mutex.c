/* strata_mutex: in the checked builds (ASan) it knows which thread holds it,
 * across condition waits, so strata_mutex_assert_held means something. */
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "common/mutex.h"

static strata_mutex mu = STRATA_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int stage;

static void *other_thread(void *arg) {
  (void)arg;
  strata_mutex_lock(&mu);
  int *seen = malloc(sizeof *seen);
  *seen = strata_mutex_held(&mu);
  stage = 1;
  pthread_cond_signal(&cv);
  strata_mutex_unlock(&mu);
  return seen;
}

static void test_owner_follows_lock_unlock_and_waits(void **state) {
  (void)state;
  if (strata_mutex_held(&mu) == -1) skip(); /* release build: owners not tracked */
  assert_int_equal(strata_mutex_held(&mu), 0);
  strata_mutex_assert_not_held(&mu);
  strata_mutex_lock(&mu);
  assert_int_equal(strata_mutex_held(&mu), 1);
  strata_mutex_assert_held(&mu);
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, other_thread, NULL), 0);
  /* While this thread waits, the other one holds mu and sees itself as the holder. */
  while (stage == 0) strata_cond_wait(&cv, &mu);
  assert_int_equal(strata_mutex_held(&mu), 1);
  strata_mutex_unlock(&mu);
  assert_int_equal(strata_mutex_held(&mu), 0);
  void *seen;
  assert_int_equal(pthread_join(t, &seen), 0);
  assert_int_equal(*(int *)seen, 1);
  free(seen);
}

static void test_a_mutex_held_by_another_thread_is_not_held_by_me(void **state) {
  (void)state;
  if (strata_mutex_held(&mu) == -1) skip();
  strata_mutex m2;
  strata_mutex_init(&m2);
  strata_mutex_lock(&m2);
  assert_int_equal(strata_mutex_held(&mu), 0);
  assert_int_equal(strata_mutex_held(&m2), 1);
  strata_mutex_unlock(&m2);
  strata_mutex_destroy(&m2);
}

/* The assert fires in a thread that does not hold the mutex (in a child
 * process, so the abort is observed rather than suffered). */
static void test_assert_held_aborts_when_not_held(void **state) {
  (void)state;
  if (strata_mutex_held(&mu) == -1) skip();
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGABRT, SIG_DFL);
    strata_mutex_assert_held(&mu);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(WTERMSIG(status), SIGABRT);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_owner_follows_lock_unlock_and_waits),
      cmocka_unit_test(test_a_mutex_held_by_another_thread_is_not_held_by_me),
      cmocka_unit_test(test_assert_held_aborts_when_not_held),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
