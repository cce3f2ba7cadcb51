/*
 * History retention and GC of Strata's own files (storage/retain.c), on real files under
 * $STRATA_BENCH_DIR. Prints BENCH lines:
 *   retain_disk_bytes_keepall / _keep1000: disk bytes (du) of the store after N small
 *     commits (one 16-byte put each, 8 committer threads, commit log mode) with keep-all
 *     and with keep-versions 1000 (floor moved every 100 commits, GC every 2000 with no
 *     grace, one final GC);
 *   gc_MBps: bytes GC removed per second of GC passes back to back (walk + removals +
 *     fsyncs, and the pacing's pauses);
 *   commit_rate_during_gc_back_to_back / _every_1s: commits/s of the same 8 threads while a
 *     thread runs GC passes back to back / one pass a second, against commits/s without
 *     GC in the same run (the ratio is the figure): 3 rounds of four 2 s windows (none,
 *     back to back, none, every second), so a change of load on the shared machine hits
 *     both sides.
 * STRATA_BENCH_SCALE scales N (default 100000 at 1.0); STRATA_BENCH_RETAIN=gc measures only
 * the GC figures; STRATA_BENCH_GC_DUTY sets the passes' duty_pct (default ST_GC_DUTY_DEFAULT).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/store.h"
#include "tools/bench/bench_util.h"

#define THREADS 8

static const char *dir;
static double scale = 1.0;


static void die(const char *what) {
  fprintf(stderr, "bench_retain: %s: %s\n", what, strata_errmsg());
  exit(1);
}


static void rm_rf(const char *p) {
  if (bench_rm_rf(p)) fprintf(stderr, "bench_retain: rm -rf %s failed\n", p);
}

typedef struct load {
  st_db *db;
  int id;
  volatile int *stop;
  uint64_t left; /* commits to make, or 0: until *stop */
  uint64_t done;
} load;

static void *committer(void *arg) {
  load *l = arg;
  char k[32], v[16];
  memset(v, 'v', sizeof v);
  for (uint64_t i = 0; (l->left ? i < l->left : !*l->stop); i++) {
    st_txn *t;
    st_result r;
    snprintf(k, sizeof k, "t%d/k%05llu", l->id, (unsigned long long)(i % 5000));
    if (st_txn_begin(l->db, &t) || st_txn_put(t, k, strlen(k), v, sizeof v)) die("txn");
    if (st_txn_commit(t, &r)) die("commit");
    st_result_free(&r);
    l->done++;
  }
  return NULL;
}

static uint64_t run_load(st_db *db, uint64_t total, volatile int *stop) {
  pthread_t th[THREADS];
  load l[THREADS];
  for (int i = 0; i < THREADS; i++) {
    l[i] = (load){db, i, stop, total / THREADS, 0};
    pthread_create(&th[i], NULL, committer, &l[i]);
  }
  uint64_t n = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    n += l[i].done;
  }
  return n;
}

static st_db *open_db(const char *path) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  st_db *db;
  if (st_open(path, &o, &db)) die(path);
  return db;
}

static uint64_t gc_bytes, gc_passes;
static double gc_secs;

static unsigned gc_duty; /* STRATA_BENCH_GC_DUTY: st_gc_own_opts.duty_pct (0: the default) */

static void gc_pass(st_db *db) {
  st_gc_own_opts go = {.grace_ns = 0, .duty_pct = gc_duty};
  st_gc_own_result gr;
  double t = bench_now();
  if (st_gc_own(db, &go, &gr)) die("gc");
  gc_secs += bench_now() - t;
  gc_bytes += gr.bytes_removed;
  gc_passes++;
}

/* N commits; keep = 0: keep-all. */
static uint64_t disk_after(uint64_t n, uint64_t keep) {
  char path[1024];
  snprintf(path, sizeof path, "%s/retain-%llu", dir, (unsigned long long)keep);
  rm_rf(path);
  st_db *db = open_db(path);
  volatile int stop = 0;
  uint64_t chunk = 2000, done = 0;
  while (done < n) {
    uint64_t c = n - done < chunk ? n - done : chunk;
    for (uint64_t s = 0; s < c; s += 100) {
      done += run_load(db, 100 < c - s ? 100 : c - s, &stop);
      if (keep) {
        st_retained rr;
        st_retained_range(db, &rr);
        st_set_retain_floor(db, rr.latest_generation > keep ? rr.latest_generation - keep + 1 : 0);
      }
    }
    if (keep) gc_pass(db);
  }
  st_close(db); /* publishes the last batch */
  db = open_db(path);
  if (keep) {
    st_retained rr;
    st_retained_range(db, &rr);
    st_set_retain_floor(db, rr.latest_generation > keep ? rr.latest_generation - keep + 1 : 0);
    run_load(db, THREADS, &stop); /* the floor applies at the next commit */
    st_close(db);
    db = open_db(path);
    gc_pass(db);
  }
  st_close(db);
  uint64_t b = bench_du(path);
  if (!getenv("STRATA_BENCH_KEEP")) rm_rf(path);
  return b;
}

static volatile int gc_stop;
static long gc_pause_ms; /* between passes: 0 = back to back */
static void *gc_loop(void *arg) {
  st_db *db = arg;
  pthread_setname_np(pthread_self(), "bench-gc");
  while (!gc_stop) {
    st_retained rr;
    st_retained_range(db, &rr);
    st_set_retain_floor(db, rr.latest_generation > 1000 ? rr.latest_generation - 999 : 0);
    gc_pass(db);
    for (long w = 0; w < gc_pause_ms && !gc_stop; w += 10) { /* pacing, not synchronisation */
      struct timespec ts = {0, 10000000};
      nanosleep(&ts, NULL);
    }
  }
  return NULL;
}

/* Commits of THREADS committers for w seconds (*secs: the time measured),
 * with a GC thread when gc. */
static uint64_t window(st_db *db, double w, int gc, double *secs) {
  pthread_t g, th[THREADS];
  load l[THREADS];
  volatile int stop = 0;
  gc_stop = 0;
  if (gc) pthread_create(&g, NULL, gc_loop, db);
  for (int i = 0; i < THREADS; i++) {
    l[i] = (load){db, i, &stop, 0, 0};
    pthread_create(&th[i], NULL, committer, &l[i]);
  }
  double a = bench_now();
  while (bench_now() - a < w) {
    struct timespec ts = {0, 10000000};
    nanosleep(&ts, NULL);
  }
  stop = 1;
  uint64_t c = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    c += l[i].done;
  }
  *secs = bench_now() - a;
  gc_stop = 1;
  if (gc) pthread_join(g, NULL); /* the pass under way finishes first */
  return c;
}

int main(void) {
  dir = getenv("STRATA_BENCH_DIR");
  if (!dir) dir = "/tmp";
  const char *s = getenv("STRATA_BENCH_SCALE");
  if (s) scale = atof(s);
  if ((s = getenv("STRATA_BENCH_GC_DUTY"))) gc_duty = (unsigned)atoi(s);
  uint64_t n = (uint64_t)(100000 * scale);
  if (n < 5000) n = 5000;

  /* STRATA_BENCH_RETAIN=gc: only the GC figures (the disk figures take most of the time) */
  const char *only = getenv("STRATA_BENCH_RETAIN");
  if (!only || strcmp(only, "gc") != 0) {
    double t0 = bench_now();
    uint64_t all = disk_after(n, 0);
    double t1 = bench_now();
    uint64_t k1000 = disk_after(n, 1000);
    double t2 = bench_now();
    printf("BENCH retain_disk_bytes_keepall %llu bytes (%llu commits, %.1f s)\n", (unsigned long long)all,
           (unsigned long long)n, t1 - t0);
    printf("BENCH retain_disk_bytes_keep1000 %llu bytes (%llu commits, %.1f s) vs keepall %.3f\n",
           (unsigned long long)k1000, (unsigned long long)n, t2 - t1, all ? (double)k1000 / (double)all : 0);
  }

  /* Commits with and without GC running, same database, same run. */
  char path[1024];
  snprintf(path, sizeof path, "%s/retain-gc", dir);
  rm_rf(path);
  st_db *db = open_db(path);
  volatile int stop = 0;
  run_load(db, n / 4, &stop); /* history to collect */
  /* Rounds of four windows: without GC, GC passes back to back, without GC, a
   * GC pass every second. The baseline is every window without GC of the
   * run, so a change of load on the shared machine hits both sides. */
  const int rounds = 3;
  const double w = 2.0;
  double t_no = 0, t_b2b = 0, t_1s = 0, t;
  uint64_t c_no = 0, c_b2b = 0, c_1s = 0, b2b_passes = 0;
  double b2b_secs = 0;
  uint64_t b2b_bytes = 0;
  for (int r = 0; r < rounds; r++) {
    c_no += window(db, w, 0, &t);
    t_no += t;
    gc_bytes = gc_passes = 0;
    gc_secs = 0;
    gc_pause_ms = 0;
    c_b2b += window(db, w, 1, &t);
    t_b2b += t;
    b2b_bytes += gc_bytes;
    b2b_secs += gc_secs;
    b2b_passes += gc_passes;
    c_no += window(db, w, 0, &t);
    t_no += t;
    gc_pause_ms = 1000;
    c_1s += window(db, w, 1, &t);
    t_1s += t;
  }
  double base = (double)c_no / t_no, r1 = (double)c_b2b / t_b2b, r2 = (double)c_1s / t_1s;
  gc_bytes = b2b_bytes;
  gc_secs = b2b_secs;
  st_close(db);
  rm_rf(path);
  printf("BENCH gc_MBps %.1f MB/s (%.1f MB removed in %.2f s of %llu GC passes)\n",
         gc_secs > 0 ? (double)gc_bytes / 1e6 / gc_secs : 0, (double)gc_bytes / 1e6, gc_secs,
         (unsigned long long)b2b_passes);
  printf("BENCH commit_rate_during_gc_back_to_back %.0f commits/s vs without_gc %.0f commits/s ratio %.3f\n",
         r1, base, base > 0 ? r1 / base : 0);
  printf("BENCH commit_rate_during_gc_every_1s %.0f commits/s vs without_gc %.0f commits/s ratio %.3f\n",
         r2, base, base > 0 ? r2 / base : 0);
  return 0;
}
