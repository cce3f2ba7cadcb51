/* Commit log mode (the default; st_options.no_commit_log turns it off):
 * commits are durable once logged and visible at once; the publisher writes
 * the OCDBT files in batches; a reopen on the per-group path (no_commit_log)
 * sees every generation with its commit time; a
 * fence's done callback runs with its group logged and visible; a power cut
 * after every operation of a run that commits while the publisher publishes
 * keeps every acknowledged generation with its commit time; a log that skips
 * generations is refused; min_generation is met from the log. STRATA_SEED. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/base.h"
#include "storage/clog.h"
#include "storage/store.h"
#include "tests/unit/alloc_fail.h"

static unsigned seed;

/* Set by a test that counts one commit's I/O: no log segment is made ready
 * ahead by the publisher, whose syncs would otherwise race into the count. */
static int open_no_prepare;

static st_db *open_log(bs_store *s, int log, uint32_t publish_ms, uint64_t min_gen, int *rc_out) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_prepare = open_no_prepare;
  o.log_segment_bytes = 1; /* a new segment per batch: trims happen (and are cut) */
  o.base = s;
  o.create = 1;
  o.no_commit_log = !log;
  o.publish_interval_ms = publish_ms;
  o.min_generation = min_gen;
  o.config.max_decoded_node_bytes = 2048;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  if (rc_out) *rc_out = rc;
  else if (rc) fail_msg("open: %s", strata_errmsg());
  return db;
}

/* The value generation g writes under key "k<g % 50>": sizes cross the
 * inline limit (100) and, every 16th, the log's value limit (64 KiB). */
static size_t value_of(uint64_t g, uint8_t *buf) {
  size_t n = g % 16 == 0 ? 70000 + g : g % 3 ? 20 + g % 60 : 300 + g;
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)(g * 7 + i);
  return n;
}

static int commit_gen(st_db *db, uint64_t g, st_result *r) {
  static uint8_t buf[80000];
  char k[16], d[16];
  st_txn *t;
  assert_int_equal(st_txn_begin(db, &t), 0);
  snprintf(k, sizeof k, "k%02llu", (unsigned long long)(g % 50));
  size_t n = value_of(g, buf);
  assert_int_equal(st_txn_put(t, k, strlen(k), buf, n), 0);
  snprintf(d, sizeof d, "k%02llu", (unsigned long long)((g + 25) % 50));
  if (g % 5 == 0) assert_int_equal(st_txn_delete(t, d, strlen(d)), 0);
  return st_txn_commit(t, r);
}

/* Generation g's own key holds its value there. */
static void check_gen(st_db *db, uint64_t g, uint64_t commit_time) {
  static uint8_t want[80000];
  st_snap *s;
  if (st_snap_at_generation(db, g, &s)) fail_msg("generation %llu: %s", (unsigned long long)g, strata_errmsg());
  if (commit_time && st_snap_info(s).commit_time != commit_time)
    fail_msg("generation %llu: commit time %llu, acknowledged %llu", (unsigned long long)g,
             (unsigned long long)st_snap_info(s).commit_time, (unsigned long long)commit_time);
  char k[16];
  snprintf(k, sizeof k, "k%02llu", (unsigned long long)(g % 50));
  strata_buf v = STRATA_BUF_INIT;
  if (st_get(s, k, strlen(k), &v)) fail_msg("generation %llu, %s: %s", (unsigned long long)g, k, strata_errmsg());
  size_t n = value_of(g, want);
  if (v.len != n || memcmp(v.p, want, n)) fail_msg("generation %llu: wrong value", (unsigned long long)g);
  strata_buf_free(&v);
  st_snap_release(s);
}

typedef struct fence_probe {
  bs_store *s;
  st_db *db;
  int calls, bad;
} fence_probe;

static int fence_ok(void *ctx) {
  (void)ctx;
  return 0;
}

/* At fence_done(1) the group is in the synced log and visible: the newest
 * log record is the latest generation. */
static void fence_done_probe(void *ctx, int committed) {
  fence_probe *p = ctx;
  p->calls++;
  st_snap *s;
  if (!committed || st_snap_latest(p->db, &s)) {
    p->bad++;
    return;
  }
  uint64_t g = st_snap_info(s).generation;
  st_snap_release(s);
  clog_contents c;
  if (clog_read(p->s, CLOG_DIR, g - 1, &c) || c.n != 1 || c.recs[0].generation != g) p->bad++;
  clog_contents_free(&c);
}

static void test_commits_publish_and_reopen(void **state) {
  (void)state;
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  st_db *db = open_log(s, 1, 2, 0, NULL);
  enum { N = 300, G = N + N / 10 };
  uint64_t times[G + 1], gen = 0;
  memset(times, 0, sizeof times);
  st_result r;
  fence_probe fp = {s, db, 0, 0};
  for (int i = 1; i <= N; i++) {
    if (i % 10 == 0) { /* a fenced commit of its own generation */
      st_txn *t;
      assert_int_equal(st_txn_begin(db, &t), 0);
      assert_int_equal(st_txn_put(t, "fenced", 6, "x", 1), 0);
      st_txn_set_fence(t, fence_ok, &fp);
      st_txn_set_fence_done(t, fence_done_probe);
      assert_int_equal(st_txn_commit(t, &r), 0);
      st_result_free(&r);
      assert_int_equal(r.generation, ++gen);
    }
    assert_int_equal(commit_gen(db, gen + 1, &r), 0);
    st_result_free(&r);
    assert_int_equal(r.generation, ++gen);
    times[gen] = r.commit_time;
    check_gen(db, gen, r.commit_time); /* visible at once */
  }
  assert_int_equal(fp.calls, N / 10);
  assert_int_equal(fp.bad, 0);
  st_stats st;
  st_get_stats(db, &st);
  assert_int_equal(st.committed_generation, G);
  assert_true(st.published_generation <= st.committed_generation);
  st_close(db);
  /* Reopened without the log: everything published, same times. */
  db = open_log(s, 0, 0, G, NULL);
  st_get_stats(db, &st);
  assert_int_equal(st.committed_generation, G);
  assert_int_equal(st.published_generation, G);
  for (uint64_t g = 1; g <= G; g++)
    if (times[g]) check_gen(db, g, times[g]);
  st_close(db);
  bs_destroy(s);
}

/* The run cut by the power: 30 commits with a 1 ms batch, so the publisher
 * works between them. acked[g] = commit time once acknowledged. */
static uint64_t run_batches, run_segments;
static long run(bs_store *s, uint64_t *acked, uint64_t *last_acked) {
  int rc;
  *last_acked = 0;
  st_db *db = open_log(s, 1, 1, 0, &rc);
  if (rc) return bs_mem_ops(s);
  for (uint64_t g = 1; g <= 30; g++) {
    st_result r;
    if (commit_gen(db, g, &r)) {
      st_result_free(&r);
      break;
    }
    if (r.generation != g) fail_msg("commit %llu got generation %llu", (unsigned long long)g,
                                    (unsigned long long)r.generation);
    acked[g] = r.commit_time;
    *last_acked = g;
    st_result_free(&r);
    if (g % 7 == 0) { /* not a synchronisation: time for a batch to close and publish mid-run */
      struct timespec ts = {0, 1500000};
      nanosleep(&ts, NULL);
    }
  }
  st_stats st;
  st_get_stats(db, &st);
  run_batches = st.publish_batches;
  st_close(db);
  char **names;
  size_t n;
  if (bs_list(s, CLOG_DIR, &names, &n) == 0) {
    run_segments = n;
    free(names);
  }
  return bs_mem_ops(s);
}

static void test_power_cut_while_publishing(void **state) {
  (void)state;
  uint64_t acked[31], last;
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  long total = run(s, acked, &last);
  assert_int_equal(last, 30);
  assert_true(run_batches >= 2); /* published while committing, not only at close */
  assert_true(run_segments <= 2); /* and the log trimmed behind it */
  bs_destroy(s);
  long step = getenv("STRATA_LOGMODE_STEP") ? atol(getenv("STRATA_LOGMODE_STEP")) : 1;
  long cuts = 0;
  for (long cut = 0; cut <= total + 20; cut += step, cuts++) {
    assert_int_equal(bs_mem_create(&s), 0);
    bs_mem_cut_power_after(s, cut);
    memset(acked, 0, sizeof acked);
    run(s, acked, &last);
    assert_int_equal(bs_mem_power_on(s), 0);
    int rc;
    st_db *db = open_log(s, 1, 1, last, &rc);
    if (rc) fail_msg("cut after %ld ops (%llu acknowledged): open: %s", cut, (unsigned long long)last,
                     strata_errmsg());
    for (uint64_t g = 1; g <= last; g++) check_gen(db, g, acked[g]);
    st_snap *sn;
    assert_int_equal(st_snap_latest(db, &sn), 0);
    uint64_t latest = st_snap_info(sn).generation;
    st_snap_release(sn);
    if (latest < last || latest > last + 1)
      fail_msg("cut after %ld ops: latest %llu, acknowledged %llu", cut, (unsigned long long)latest,
               (unsigned long long)last);
    if (latest > last) check_gen(db, latest, 0); /* the unacknowledged one, whole */
    st_result r;
    assert_int_equal(commit_gen(db, latest + 1, &r), 0);
    assert_int_equal(r.generation, latest + 1);
    st_result_free(&r);
    st_close(db);
    bs_destroy(s);
  }
  fprintf(stderr, "power cut at %ld points of ~%ld operations, %llu batches published mid-run (seed %u): "
          "every acknowledged generation kept\n", cuts, total, (unsigned long long)run_batches, seed);
}

static void test_log_gap_refused_and_min_generation(void **state) {
  (void)state;
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  /* nothing published before the power goes: generations 1-5 only in the log */
  st_db *db = open_log(s, 1, 60000, 0, NULL);
  st_result r;
  for (uint64_t g = 1; g <= 5; g++) {
    assert_int_equal(commit_gen(db, g, &r), 0);
    st_result_free(&r);
  }
  bs_mem_cut_power_after(s, 0);
  st_close(db);
  assert_int_equal(bs_mem_power_on(s), 0);
  int rc;
  db = open_log(s, 1, 0, 5, &rc); /* replayed: generation 5 is there */
  assert_int_equal(rc, 0);
  for (uint64_t g = 1; g <= 5; g++) check_gen(db, g, 0);
  st_close(db);
  /* a hand-made segment holding generations 7-8: 6 is nowhere */
  clog_writer *w;
  int unknown;
  assert_int_equal(clog_writer_open(s, CLOG_DIR, 1000, NULL, 0, &w), 0);
  assert_int_equal(clog_append(w, CLOG_GROUP, 7, 1, "\0", 1), 0);
  assert_int_equal(clog_sync(w, &unknown), 0);
  clog_writer_close(w);
  db = open_log(s, 1, 0, 0, &rc);
  assert_int_equal(rc, STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "generations 6..6"));
  assert_null(db);
  bs_destroy(s);
}

/* Every write and fsync of one log-mode commit (a value above the log's limit,
 * so the batch file is fsynced too) failed in turn: the commit fails with
 * the error, the database reopens at the previous generation without the
 * failed commit (its log record, if it reached the file, is voided), and a
 * retry succeeds. */
static void test_every_commit_site_fails_cleanly(void **state) {
  (void)state;
  char dir[128];
  snprintf(dir, sizeof dir, "/tmp/strata-logfault-%d", (int)getpid());
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  bs_store *files, *fault;
  assert_int_equal(bs_file_open(dir, &files), 0);
  assert_int_equal(bs_fault_wrap(files, &fault), 0);
  int rc;
  open_no_prepare = 1; /* the nth fsync counted is the commit's own, whatever the timing */
  st_db *db = open_log(fault, 1, 60000, 0, &rc);
  assert_int_equal(rc, 0);
  st_result r;
  uint64_t g = 0;
  for (; g < 15; g++) {
    assert_int_equal(commit_gen(db, g + 1, &r), 0);
    st_result_free(&r);
  }
  uint64_t before[BS_FAULT_NSITES], per[BS_FAULT_NSITES];
  for (int s = 0; s < BS_FAULT_NSITES; s++) before[s] = bs_fault_count(fault, s);
  assert_int_equal(commit_gen(db, ++g, &r), 0); /* generation 16: a 70 KB value */
  st_result_free(&r);
  for (int s = 0; s < BS_FAULT_NSITES; s++) per[s] = bs_fault_count(fault, s) - before[s];
  assert_true(per[BS_FAULT_WRITE] >= 2); /* the batch file, the log */
  assert_true(per[BS_FAULT_FSYNC] >= 3); /* the batch file, d/, the log */
  assert_int_equal(per[BS_FAULT_RENAME], 0); /* nothing is renamed on the commit path */
  st_close(db);
  int injected = 0;
  for (int s = 0; s < BS_FAULT_NSITES; s++) {
    for (uint64_t nth = 1; nth <= per[s]; nth++) {
      int err = (nth + (uint64_t)s) % 2 ? 5 /* EIO */ : 28 /* ENOSPC */;
      db = open_log(fault, 1, 60000, 0, NULL);
      /* the next one is a multiple of 16 again: the same path as measured */
      while ((g + 1) % 16) {
        assert_int_equal(commit_gen(db, ++g, &r), 0);
        st_result_free(&r);
      }
      bs_fault_arm(fault, s, nth, err);
      rc = commit_gen(db, g + 1, &r);
      bs_fault_arm(fault, s, 0, 0);
      if (rc != err) fail_msg("site %d #%llu: commit returned %d (%s)", s, (unsigned long long)nth, rc, r.message);
      assert_non_null(strstr(r.message, "injected"));
      assert_non_null(strstr(r.message, "commit of generation"));
      st_result_free(&r);
      st_close(db);
      db = open_log(files, 1, 60000, g, NULL); /* straight on the files */
      st_snap *sn;
      assert_int_equal(st_snap_latest(db, &sn), 0);
      assert_int_equal(st_snap_info(sn).generation, g);
      st_snap_release(sn);
      assert_int_equal(commit_gen(db, ++g, &r), 0); /* the retry */
      assert_int_equal(r.generation, g);
      st_result_free(&r);
      check_gen(db, g, 0);
      st_close(db);
      injected++;
    }
  }
  fprintf(stderr, "injected %d faults (%llu writes, %llu fsyncs per commit)\n", injected,
          (unsigned long long)per[0], (unsigned long long)per[1]);
  open_no_prepare = 0;
  bs_destroy(fault);
  bs_destroy(files);
  assert_int_equal(system(cmd), 0);
}

/* A child process opens db_dir with o, commits generations 1..5 and dies
 * as kill -9 would (no close: what it acknowledged is in its log only when
 * the publish interval is long). */
static void commit_5_and_die(const char *db_dir, const st_options *o) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    st_db *db;
    st_result r;
    if (st_open(db_dir, o, &db)) _exit(2);
    for (uint64_t g = 1; g <= 5; g++)
      if (commit_gen(db, g, &r) || r.generation != g) _exit(3);
    _exit(0);
  }
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* st_options.log_dir puts the log in another directory (the server's local
 * disk): the database directory gets no log/; a process that dies after its
 * acknowledgements, before publishing, leaves them in that log only, and a
 * reopen with the same log_dir replays them (without it, min_generation
 * refuses the rolled-back files). */
static void test_log_elsewhere(void **state) {
  (void)state;
  char db_dir[128], log_dir[128], cmd[400];
  snprintf(db_dir, sizeof db_dir, "/tmp/strata-logdb-%d", (int)getpid());
  snprintf(log_dir, sizeof log_dir, "/tmp/strata-logdir-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", db_dir, log_dir);
  assert_int_equal(system(cmd), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  o.log_dir = log_dir;
  o.publish_interval_ms = 600000;
  commit_5_and_die(db_dir, &o);
  bs_store *files, *logs;
  assert_int_equal(bs_file_open(db_dir, &files), 0);
  assert_int_equal(bs_file_open(log_dir, &logs), 0);
  clog_contents c;
  assert_int_equal(clog_read(logs, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 5);
  clog_contents_free(&c);
  char **names;
  size_t n;
  st_db *db;
  o.min_generation = 5;
  o.log_dir = NULL;
  assert_int_equal(st_open(db_dir, &o, &db), STRATA_ECORRUPT); /* the log is elsewhere */
  assert_non_null(strstr(strata_errmsg(), "generation 5 was acknowledged"));
  /* ... and that refused open created no log/ in the database directory */
  assert_int_equal(bs_list(files, "", &names, &n), 0);
  for (size_t i = 0; i < n; i++) assert_string_not_equal(names[i], CLOG_DIR);
  free(names);
  o.log_dir = log_dir;
  assert_int_equal(st_open(db_dir, &o, &db), 0);
  for (uint64_t g = 1; g <= 5; g++) check_gen(db, g, 0);
  st_stats st;
  st_get_stats(db, &st);
  assert_int_equal(st.published_generation, 5); /* replayed and published before serving */
  st_close(db);
  bs_destroy(logs);
  bs_destroy(files);
  assert_int_equal(system(cmd), 0);
}

/* Two writers on one store, each with its own log (two servers on one shared
 * directory or bucket): A acknowledges 5 commits into its log and dies before
 * publishing them; B, on the same files, commits and publishes 3 of its own.
 * A's reopen finds generations 1..3 in the store that are not the ones its
 * log acknowledged: refused, naming the generation, and nothing is changed
 * (replaying 4..5 on B's history would lose A's 1..3 without a word). */
static void test_second_writer_refused_at_replay(void **state) {
  (void)state;
  char db_dir[128], log_a[128], log_b[128], cmd[500];
  snprintf(db_dir, sizeof db_dir, "/tmp/strata-2wdb-%d", (int)getpid());
  snprintf(log_a, sizeof log_a, "/tmp/strata-2wlogA-%d", (int)getpid());
  snprintf(log_b, sizeof log_b, "/tmp/strata-2wlogB-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s' '%s'", db_dir, log_a, log_b);
  assert_int_equal(system(cmd), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  o.log_dir = log_a;
  o.publish_interval_ms = 600000;
  commit_5_and_die(db_dir, &o); /* A: 5 acknowledged, never published */
  st_db *db;
  st_result r;
  o.log_dir = log_b; /* B: its own log, the same files */
  assert_int_equal(st_open(db_dir, &o, &db), 0);
  for (uint64_t g = 1; g <= 3; g++) {
    assert_int_equal(commit_gen(db, g + 100, &r), 0);
    assert_int_equal(r.generation, g);
  }
  st_close(db); /* publishes B's 1..3 */
  o.log_dir = log_a;
  assert_int_equal(st_open(db_dir, &o, &db), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "another server has published into this store"));
  assert_non_null(strstr(strata_errmsg(), "generation 1 in the store"));
  /* nothing changed: B's history is what the files hold, and A's log is intact */
  o.log_dir = log_b;
  assert_int_equal(st_open(db_dir, &o, &db), 0);
  st_stats st;
  st_get_stats(db, &st);
  assert_int_equal(st.published_generation, 3);
  st_close(db);
  bs_store *logs;
  clog_contents c;
  assert_int_equal(bs_file_open(log_a, &logs), 0);
  assert_int_equal(clog_read(logs, CLOG_DIR, 0, &c), 0);
  assert_int_equal(c.n, 5);
  clog_contents_free(&c);
  bs_destroy(logs);
  assert_int_equal(system(cmd), 0);
}

/* A reader beside a live server (read_only + published_only) opens the published
 * generations without reading the commit log, which is the server's and changes
 * under it: here log/ is not even a directory, which a plain read-only open, which
 * reads the log, refuses. */
static void test_published_only_reader_skips_the_log(void **state) {
  (void)state;
  char db_dir[128], cmd[600], path[200];
  snprintf(db_dir, sizeof db_dir, "/tmp/strata-pubonly-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", db_dir);
  assert_int_equal(system(cmd), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  st_db *db;
  st_result r;
  assert_int_equal(st_open(db_dir, &o, &db), 0);
  for (uint64_t g = 1; g <= 3; g++) assert_int_equal(commit_gen(db, g, &r), 0);
  st_close(db); /* publishes 1..3 */
  snprintf(path, sizeof path, "%s/" CLOG_DIR, db_dir);
  snprintf(cmd, sizeof cmd, "rm -rf '%s' && echo not-a-log > '%s'", path, path);
  assert_int_equal(system(cmd), 0);
  memset(&o, 0, sizeof o);
  o.read_only = 1;
  assert_int_not_equal(st_open(db_dir, &o, &db), 0);
  o.published_only = 1;
  assert_int_equal(st_open(db_dir, &o, &db), 0);
  for (uint64_t g = 1; g <= 3; g++) check_gen(db, g, 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).generation, 3);
  st_snap_release(s);
  st_close(db);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", db_dir);
  assert_int_equal(system(cmd), 0);
}

/* The log record is synced on the helper thread while the committer builds
 * the tree; when the build fails (here: each allocation of a merge+split
 * commit in turn, in the committer) after the record is durable, the record
 * must be taken back (the segment cut and fsynced) before the caller hears
 * of the failure: a reopen (replay) shows the database without it. */
static void test_failed_build_after_log_sync_is_taken_back(void **state) {
  (void)state;
#ifdef __SANITIZE_ADDRESS__
  skip();
#else
  bs_store *mem, *base;
  assert_int_equal(bs_mem_create(&mem), 0);
  assert_int_equal(bs_fault_wrap(mem, &base), 0);
  st_db *db = open_log(base, 1, 600000, 0, NULL);
  st_txn *t;
  st_result r;
  char k[32], v[32];
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 400; i++) {
    snprintf(k, sizeof k, "key/%06d", i);
    snprintf(v, sizeof v, "value-%014d", i);
    assert_int_equal(st_txn_put(t, k, strlen(k), v, strlen(v)), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  int failed = 0;
  for (long n = 1;; n++) {
    assert_int_equal(st_txn_begin(db, &t), 0);
    for (int i = 100; i < 130; i++) {
      snprintf(k, sizeof k, "key/%06d", i);
      assert_int_equal(st_txn_delete(t, k, strlen(k)), 0);
    }
    /* The committer and the helper that builds the tree while it syncs. */
    af_arm(AF_REALLOC, "st-commit,st-sync", n);
    int rc = st_txn_commit(t, &r);
    long left = af_disarm();
    if (rc == 0) {
      assert_true(left > 0);
      break;
    }
    assert_int_equal(rc, STRATA_ENOMEM);
    failed++;
    st_close(db); /* publishes generation 1 */
    db = open_log(base, 1, 600000, 0, NULL); /* replays: the failed record must not come back */
    st_snap *s;
    assert_int_equal(st_snap_latest(db, &s), 0);
    if (st_snap_info(s).generation != 1 || st_snap_info(s).num_keys != 400)
      fail_msg("allocation #%ld failed: reopened at generation %llu with %llu keys", n,
               (unsigned long long)st_snap_info(s).generation, (unsigned long long)st_snap_info(s).num_keys);
    st_snap_release(s);
  }
  uint64_t cuts = bs_fault_count(base, BS_FAULT_TRUNCATE);
  assert_true(failed > 0);
  assert_true(cuts > 0); /* some failures came after the record was synced */
  clog_contents c;
  if (clog_read(base, CLOG_DIR, 1, &c)) fail_msg("%s", strata_errmsg());
  assert_int_equal(c.nvoids, 0); /* cut off, never voided */
  clog_contents_free(&c);
  st_close(db);
  db = open_log(base, 0, 0, 2, NULL);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  assert_int_equal(st_snap_info(s).num_keys, 370);
  st_snap_release(s);
  st_close(db);
  bs_destroy(base);
  bs_destroy(mem);
  fprintf(stderr, "%d allocations of a commit failed in turn; %llu records were cut off the log\n", failed,
          (unsigned long long)cuts);
#endif
}

/* The publisher out of memory: it retries instead of giving up, commits go
 * on meanwhile, the stall shows in the statistics, and every generation is
 * published in the end (no reopen needed). Each allocation of the
 * publisher's batch is failed in turn. */
static void test_publisher_retries_out_of_memory(void **state) {
  (void)state;
#ifdef __SANITIZE_ADDRESS__
  skip();
#else
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_db *db = open_log(base, 1, 1, 0, NULL);
  st_result r;
  uint64_t g = 0, stalls = 0;
  for (long n = 1; n <= 12; n++) {
    af_arm(AF_REALLOC | AF_MALLOC, "st-publish", n);
    for (int i = 0; i < 3; i++) {
      assert_int_equal(commit_gen(db, ++g, &r), 0);
      assert_int_equal(r.generation, g);
    }
    st_stats st;
    for (;;) { /* the publisher catches up by itself */
      st_get_stats(db, &st);
      if (st.published_generation == g) break;
      usleep(1000);
    }
    if (af_disarm() <= 0) stalls++;
    assert_int_equal(st.publish_stalled, 0);
  }
  st_stats st;
  st_get_stats(db, &st);
  assert_true(stalls > 0);
  /* Every failed allocation of the publisher's stalled a publication or
   * made the log's next segment be created by the committer instead. */
  assert_true(st.publish_stalls > 0);
  assert_int_equal(st.publish_stalls + st.log_prepare_failures, stalls);
  st_close(db);
  db = open_log(base, 0, 0, g, NULL);
  for (uint64_t i = 1; i <= g; i++) check_gen(db, i, 0);
  st_close(db);
  bs_destroy(base);
  fprintf(stderr, "the publisher failed %llu times out of memory and caught up each time\n",
          (unsigned long long)stalls);
#endif
}

/* A full disk in commit log mode, on the memory store's quota: a commit
 * whose record does not fit fails with ENOSPC and is cut off; the batch the
 * failure closed cannot be published (no room for its manifest), so the
 * publisher retries and, the backlog being over its bound, commits are
 * refused with the publisher's error; with space back, publication and
 * commits resume with no reopen, and every acknowledged generation is there,
 * on the per-group path too. Release and ASan alike. */
static void test_full_disk_stalls_then_resumes(void **state) {
  (void)state;
  bs_store *base;
  assert_int_equal(bs_mem_create(&base), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  o.create = 1;
  o.publish_interval_ms = 600000; /* batches close on failure or backpressure only */
  o.max_unpublished_bytes = 1;    /* every commit hands the batch before it over */
  o.config.max_decoded_node_bytes = 2048; /* as open_log */
  st_db *db;
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_result r;
  uint64_t g = 0;
  while (g < 6) {
    assert_int_equal(commit_gen(db, ++g, &r), 0);
    assert_int_equal(r.generation, g);
  }
  bs_mem_set_quota(base, bs_mem_used(base)); /* not one more byte */
  int rc = commit_gen(db, g + 1, &r);
  assert_true(rc == ENOSPC || rc == STRATA_ENOSPC);
  st_stats st;
  int refused = 0;
  for (int i = 0; i < 3; i++) {
    rc = commit_gen(db, g + 1, &r);
    assert_true(rc == ENOSPC || rc == STRATA_ENOSPC);
    if (strstr(r.message, "wait to be published")) refused++;
  }
  st_get_stats(db, &st);
  if (!refused) fail_msg("no refusal for the stalled publication: %s", r.message);
  assert_int_equal(st.publish_stalled, 1);
  assert_non_null(strstr(st.publish_error, "no space left"));
  assert_true(st.published_generation < g);
  assert_int_equal(st.committed_generation, g);
  bs_mem_set_quota(base, 0);
  for (;;) {
    st_get_stats(db, &st);
    if (!st.publish_stalled && st.published_generation == g) break;
    usleep(1000);
  }
  for (int i = 0; i < 4; i++) {
    assert_int_equal(commit_gen(db, ++g, &r), 0);
    assert_int_equal(r.generation, g);
  }
  st_get_stats(db, &st);
  assert_true(st.publish_stalls >= 1);
  st_close(db);
  db = open_log(base, 0, 0, g, NULL);
  for (uint64_t i = 1; i <= g; i++) check_gen(db, i, 0);
  st_close(db);
  bs_destroy(base);
}

/* Bytes of file path in the OS page cache (mincore over a mapping), and its size. */
static size_t resident_bytes(const char *path, size_t *size) {
  int fd = open(path, O_RDONLY);
  assert_true(fd >= 0);
  struct stat st;
  assert_int_equal(fstat(fd, &st), 0);
  *size = (size_t)st.st_size;
  size_t pages = (*size + 4095) / 4096, in = 0;
  void *m = mmap(NULL, *size, PROT_READ, MAP_SHARED, fd, 0);
  assert_true(m != MAP_FAILED);
  unsigned char *vec = malloc(pages);
  assert_non_null(vec);
  assert_int_equal(mincore(m, *size, vec), 0);
  for (size_t i = 0; i < pages; i++) in += vec[i] & 1;
  free(vec);
  munmap(m, *size);
  close(fd);
  return in * 4096;
}

/* Value i of large_values_resident. */
static void big_value(int i, uint8_t *v, size_t len) {
  for (size_t j = 0; j < len; j++) v[j] = (uint8_t)(i * 31 + j * 7 + (j >> 12));
}

/* Commits 8 values of 1 MiB (above log_value_max: written to the batch's data
 * file and synced before the record) into a new store in dir; returns how much
 * of that data file is in the page cache, after checking every value reads
 * back intact. */
static size_t large_values_resident(const char *dir, int keep) {
  enum { N = 8, LEN = 1 << 20 };
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  o.publish_interval_ms = 600000; /* the batch stays open: its one data file */
  o.keep_value_pages = keep;
  st_db *db;
  assert_int_equal(st_open(dir, &o, &db), 0);
  uint8_t *v = malloc(LEN);
  assert_non_null(v);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < N; i++) {
    char k[16];
    snprintf(k, sizeof k, "v%d", i);
    big_value(i, v, LEN);
    assert_int_equal(st_txn_put(t, k, 2, v, LEN), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  char d[300], path[400];
  snprintf(d, sizeof d, "%s/d", dir);
  bs_store *files;
  assert_int_equal(bs_file_open(d, &files), 0);
  char **names;
  size_t n, found = 0, size = 0, in = 0;
  assert_int_equal(bs_list(files, "", &names, &n), 0);
  for (size_t i = 0; i < n; i++)
    if (strlen(names[i]) == 32) { /* a data file (docs/format.md): the batch's */
      snprintf(path, sizeof path, "%s/%s", d, names[i]);
      in = resident_bytes(path, &size);
      found++;
    }
  free(names);
  bs_destroy(files);
  assert_int_equal(found, 1);
  assert_true(size >= (size_t)N * LEN);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  strata_buf b = STRATA_BUF_INIT;
  for (int i = 0; i < N; i++) {
    char k[16];
    snprintf(k, sizeof k, "v%d", i);
    big_value(i, v, LEN);
    b.len = 0;
    assert_int_equal(st_get(s, k, 2, &b), 0);
    assert_int_equal(b.len, LEN);
    assert_memory_equal(b.p, v, LEN);
  }
  strata_buf_free(&b);
  st_snap_release(s);
  st_close(db);
  free(v);
  assert_int_equal(system(cmd), 0);
  return in;
}

/* Values logged by reference leave the page cache once durable (a page-cache
 * folio may be up to 2 MiB, and one that reaches past the values stays), and
 * read back intact from the disk; keep_value_pages keeps them. Real files. */
static void test_large_values_leave_the_page_cache(void **state) {
  (void)state;
  char dir[128];
  snprintf(dir, sizeof dir, "/tmp/strata-pgcache-%d", (int)getpid());
  size_t dropped = large_values_resident(dir, 0), kept = large_values_resident(dir, 1);
  if (dropped > (2u << 20) + (64u << 10))
    fail_msg("%zu bytes of 8 MiB of large values still in the page cache", dropped);
  if (kept < (8u << 20)) fail_msg("keep_value_pages: only %zu bytes of 8 MiB in the page cache", kept);
}

int main(void) {
  seed = getenv("STRATA_SEED") ? (unsigned)atoi(getenv("STRATA_SEED")) : (unsigned)time(NULL);
  srand(seed);
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_commits_publish_and_reopen),
    cmocka_unit_test(test_power_cut_while_publishing),
    cmocka_unit_test(test_log_gap_refused_and_min_generation),
    cmocka_unit_test(test_every_commit_site_fails_cleanly),
    cmocka_unit_test(test_log_elsewhere),
    cmocka_unit_test(test_second_writer_refused_at_replay),
    cmocka_unit_test(test_published_only_reader_skips_the_log),
    cmocka_unit_test(test_failed_build_after_log_sync_is_taken_back),
    cmocka_unit_test(test_large_values_leave_the_page_cache),
      cmocka_unit_test(test_publisher_retries_out_of_memory),
      cmocka_unit_test(test_full_disk_stalls_then_resumes),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
