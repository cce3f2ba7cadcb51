/*
 * Helpers shared by the locks tests: a scratch directory removed at the end,
 * a controllable clock, and short-hands for row keys.
 */
#ifndef STRATA_TESTS_LOCKS_LK_TEST_H
#define STRATA_TESTS_LOCKS_LK_TEST_H

#include <ftw.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "locks/lock.h"

static int lkt__rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb; (void)flag; (void)ftw;
  return remove(p);
}

/* Makes a fresh directory under $TMPDIR (or /tmp); returns malloc'd path. */
static inline char *lkt_tmpdir(const char *tag) {
  const char *base = getenv("TMPDIR");
  char *p = malloc(4096);
  snprintf(p, 4096, "%s/strata-%s-XXXXXX", base && base[0] ? base : "/tmp", tag);
  if (!mkdtemp(p)) {
    perror("mkdtemp");
    abort();
  }
  return p;
}

static inline void lkt_rmdir(char *p) {
  if (p) nftw(p, lkt__rm, 16, FTW_DEPTH | FTW_PHYS);
  free(p);
}

/* A clock the test moves by hand. */
static _Atomic int64_t lkt_clock_now = 1000000000000;
static inline int64_t lkt_clock(void *ctx) { (void)ctx; return atomic_load(&lkt_clock_now); }
static inline void lkt_advance(int64_t ns) { atomic_fetch_add(&lkt_clock_now, ns); }

static inline lk_row lkt_row(const char *s) {
  lk_row r = {(const uint8_t *)s, strlen(s)};
  return r;
}

#define LKT_MS 1000000LL
#define LKT_S 1000000000LL

#endif
