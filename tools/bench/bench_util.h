/*
 * What the engine benchmarks (bench_store, bench_retain, bench_locks) share:
 * a monotonic clock in seconds, a directory's size on disk, and removing a
 * directory tree. Header-only: each benchmark is one file linked alone.
 */
#ifndef STRATA_TOOLS_BENCH_UTIL_H
#define STRATA_TOOLS_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes the tree at p takes on disk (`du -sb`); 0 when it cannot be read. */
static inline uint64_t bench_du(const char *p) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "du -sb '%s' | cut -f1", p);
  FILE *f = popen(cmd, "r");
  unsigned long long v = 0;
  if (!f || fscanf(f, "%llu", &v) != 1) v = 0;
  if (f) pclose(f);
  return v;
}

/* rm -rf p; 0, or -1 when it failed. */
static inline int bench_rm_rf(const char *p) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", p);
  return system(cmd) ? -1 : 0;
}

#endif
