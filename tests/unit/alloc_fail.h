/*
 * Allocation failure injection for a unit test binary: interposes realloc
 * and malloc. Include it in one file of the binary, and not under ASan (which
 * owns the allocator; tests skip themselves there).
 *
 * An injected failure is aimed at one thread, so that the engine's other
 * threads (which allocate at their own pace, and whose failures are retried
 * rather than reported) cannot take it: af_arm(AF_REALLOC, name, n) makes
 * the nth realloc from now in a thread named `name` fail (the engine names
 * its threads st-commit, st-publish, st-sync, st-prepare; several may be
 * given, separated by commas, and are counted together; "" is the thread
 * that calls af_arm); AF_MALLOC counts mallocs (some of which the engine
 * may survive by design, e.g. a node left out of the cache), both may be
 * given. af_disarm() returns how many were still to go (> 0: none failed).
 */
#ifndef STRATA_TESTS_ALLOC_FAIL_H
#define STRATA_TESTS_ALLOC_FAIL_H

#ifndef __SANITIZE_ADDRESS__
#include <string.h>
#include <sys/prctl.h>

enum { AF_REALLOC = 1, AF_MALLOC = 2 };
static volatile long af_countdown;
static int af_which;
static char af_thread[64];
static _Thread_local int af_here;

static int af_aimed_here(void) {
  if (!af_thread[0]) return af_here;
  char name[16] = "";
  prctl(PR_GET_NAME, name, 0, 0, 0);
  size_t n = strlen(name);
  for (const char *p = af_thread; *p;) {
    const char *end = strchr(p, ',');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == n && !strncmp(p, name, n)) return 1;
    p += len + (end != NULL);
  }
  return 0;
}

static int af_fire(int which) {
  return af_countdown > 0 && (af_which & which) && af_aimed_here() && __atomic_sub_fetch(&af_countdown, 1, __ATOMIC_SEQ_CST) == 0;
}

static void af_arm(int which, const char *thread, long n) {
  af_which = which;
  snprintf(af_thread, sizeof af_thread, "%s", thread);
  af_here = 1;
  __atomic_store_n(&af_countdown, n, __ATOMIC_SEQ_CST);
}

static long af_disarm(void) {
  af_here = 0;
  return __atomic_exchange_n(&af_countdown, 0, __ATOMIC_SEQ_CST);
}

extern void *__libc_realloc(void *p, size_t n);
extern void *__libc_malloc(size_t n);
void *realloc(void *p, size_t n) { return af_fire(AF_REALLOC) ? NULL : __libc_realloc(p, n); }
void *malloc(size_t n) { return af_fire(AF_MALLOC) ? NULL : __libc_malloc(n); }
#endif

#endif
