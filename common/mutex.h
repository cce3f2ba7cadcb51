/*
 * strata_mutex: a pthread mutex that, in the ASan and debug builds, records
 * which thread holds it, so a function whose comment says "mu held" can
 * assert it (strata_mutex_assert_held) instead of trusting its callers. In the
 * release build the owner is not tracked and the asserts compile to nothing.
 *
 * Checked when the compiler sanitizes addresses or STRATA_MUTEX_CHECKS is
 * defined (-DSTRATA_MUTEX_CHECKS=1 in CFLAGS turns it on for any build).
 */
#ifndef STRATA_COMMON_MUTEX_H
#define STRATA_COMMON_MUTEX_H

#include <assert.h>
#include <pthread.h>
#include <time.h>

#ifndef STRATA_MUTEX_CHECKS
#if defined(__SANITIZE_ADDRESS__)
#define STRATA_MUTEX_CHECKS 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA_MUTEX_CHECKS 1
#endif
#endif
#endif
#ifndef STRATA_MUTEX_CHECKS
#define STRATA_MUTEX_CHECKS 0
#endif

#if STRATA_MUTEX_CHECKS
#include <stdatomic.h>
#include <stdint.h>
/* A per-thread address names the calling thread (never 0). */
extern _Thread_local char strata__mutex_self;
#define STRATA__SELF ((uintptr_t)&strata__mutex_self)
#endif

typedef struct strata_mutex {
  pthread_mutex_t m;
#if STRATA_MUTEX_CHECKS
  _Atomic uintptr_t owner; /* STRATA__SELF of the holder, 0 when free */
#endif
} strata_mutex;

#if STRATA_MUTEX_CHECKS
#define STRATA_MUTEX_INITIALIZER {PTHREAD_MUTEX_INITIALIZER, 0}
#else
#define STRATA_MUTEX_INITIALIZER {PTHREAD_MUTEX_INITIALIZER}
#endif

static inline void strata_mutex_init(strata_mutex *mu) {
  pthread_mutex_init(&mu->m, NULL);
#if STRATA_MUTEX_CHECKS
  atomic_init(&mu->owner, 0);
#endif
}

static inline void strata_mutex_destroy(strata_mutex *mu) {
#if STRATA_MUTEX_CHECKS
  assert(atomic_load_explicit(&mu->owner, memory_order_relaxed) == 0);
#endif
  pthread_mutex_destroy(&mu->m);
}

/* Records the calling thread as the holder (checked builds). */
static inline void strata__mutex_took(strata_mutex *mu) {
#if STRATA_MUTEX_CHECKS
  assert(atomic_load_explicit(&mu->owner, memory_order_relaxed) == 0);
  atomic_store_explicit(&mu->owner, STRATA__SELF, memory_order_relaxed);
#else
  (void)mu;
#endif
}

/* Forgets the holder; the calling thread must be it (checked builds). */
static inline void strata__mutex_leaving(strata_mutex *mu) {
#if STRATA_MUTEX_CHECKS
  assert(atomic_load_explicit(&mu->owner, memory_order_relaxed) == STRATA__SELF);
  atomic_store_explicit(&mu->owner, 0, memory_order_relaxed);
#else
  (void)mu;
#endif
}

static inline void strata_mutex_lock(strata_mutex *mu) {
  pthread_mutex_lock(&mu->m);
  strata__mutex_took(mu);
}

static inline void strata_mutex_unlock(strata_mutex *mu) {
  strata__mutex_leaving(mu);
  pthread_mutex_unlock(&mu->m);
}

/* 1 if the calling thread holds mu, 0 if not; -1 when the build does not
 * track owners. */
static inline int strata_mutex_held(const strata_mutex *mu) {
#if STRATA_MUTEX_CHECKS
  return atomic_load_explicit(&mu->owner, memory_order_relaxed) == STRATA__SELF;
#else
  (void)mu;
  return -1;
#endif
}

/* The precondition of every function whose comment says "mu held", and of
 * callbacks that must run with it free. */
#if STRATA_MUTEX_CHECKS
#define strata_mutex_assert_held(mu) assert(strata_mutex_held(mu) == 1)
#define strata_mutex_assert_not_held(mu) assert(strata_mutex_held(mu) == 0)
#else
#define strata_mutex_assert_held(mu) ((void)(mu))
#define strata_mutex_assert_not_held(mu) ((void)(mu))
#endif

/* pthread_cond_wait and _timedwait on a strata_mutex: the owner is cleared
 * while the thread sleeps and set again when it wakes holding mu. */
static inline int strata_cond_wait(pthread_cond_t *cv, strata_mutex *mu) {
  strata__mutex_leaving(mu);
  int rc = pthread_cond_wait(cv, &mu->m);
  strata__mutex_took(mu);
  return rc;
}

static inline int strata_cond_timedwait(pthread_cond_t *cv, strata_mutex *mu,
                                        const struct timespec *until) {
  strata__mutex_leaving(mu);
  int rc = pthread_cond_timedwait(cv, &mu->m, until);
  strata__mutex_took(mu);
  return rc;
}

#endif
