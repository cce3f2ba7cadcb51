/*
 * Benchmarks of the store engine, each against an anchor measured in the same
 * run on the same filesystem (RocksDB through its C API where one applies).
 * Prints one line per figure: BENCH <name> <value> <unit> [vs <anchor> <ratio>].
 * Data lives under $STRATA_BENCH_DIR (default /tmp; make bench passes build/bench-data)
 * and is deleted at the end unless STRATA_BENCH_KEEP is set.
 * STRATA_BENCH_SCALE (default 1.0) scales the sizes for a quick run;
 * STRATA_BENCH_NODE_BYTES / STRATA_BENCH_MAX_INLINE / STRATA_BENCH_ZSTD (a level or
 * "none") / STRATA_BENCH_PUBLISH_MS override max_decoded_node_bytes /
 * max_inline_value_bytes / compression / publish_interval_ms. STRATA_BENCH_ONLY=commit|fs|floor|log|commit1|commit16|commit16log|smallcommit|get|oldgen|writeamp|bulk
 * runs one (commit = fs, floor, log, commit1, commit16; commit16log = commit16's log mode half).
 */
#include <fcntl.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "storage/clog.h"
#include "storage/store.h"
#include "tools/bench/bench_util.h"

static char root[512];
static double scale = 1.0;


static void die(const char *what, const char *msg) {
  fprintf(stderr, "bench_store: %s: %s\n", what, msg);
  exit(1);
}

static void rm_rf(const char *p) {
  if (bench_rm_rf(p)) die("rm", p);
}


/* 1: open with the defaults (commit log mode); 0: the per-group files path
 * (no_commit_log). The commit figures measure both (the per-group ones are
 * named _per_group); get, oldgen, writeamp and bulk keep the per-group path
 * their recorded figures were measured on. */
static int log_mode;

static st_db *sopen(const char *name, size_t cache) {
  char p[1024];
  snprintf(p, sizeof p, "%s/%s", root, name);
  rm_rf(p);
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  o.cache_bytes = cache;
  o.no_commit_log = !log_mode;
  const char *nb = getenv("STRATA_BENCH_NODE_BYTES"); /* to compare node sizes */
  if (nb) o.config.max_decoded_node_bytes = (uint32_t)atoi(nb);
  const char *zc = getenv("STRATA_BENCH_ZSTD"); /* "none" or a zstd level */
  if (zc && strcmp(zc, "none") == 0) o.config.compression = ST_COMPRESSION_NONE;
  else if (zc) o.config.zstd_level = atoi(zc);
  const char *mi = getenv("STRATA_BENCH_MAX_INLINE");
  if (mi) o.config.max_inline_value_bytes = (uint32_t)atoi(mi);
  const char *pi = getenv("STRATA_BENCH_PUBLISH_MS"); /* to compare publish intervals */
  if (pi) o.publish_interval_ms = (uint32_t)atoi(pi);
  st_db *db;
  if (st_open(p, &o, &db)) die("st_open", strata_errmsg());
  return db;
}

static rocksdb_t *ropen(const char *name, size_t cache, rocksdb_options_t **optp) {
  char p[1024], *err = NULL;
  snprintf(p, sizeof p, "%s/%s", root, name);
  rm_rf(p);
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(o, 1);
  rocksdb_options_increase_parallelism(o, 2);
  rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
  rocksdb_cache_t *c = rocksdb_cache_create_lru(cache);
  rocksdb_block_based_options_set_block_cache(t, c);
  rocksdb_options_set_block_based_table_factory(o, t);
  rocksdb_t *db = rocksdb_open(o, p, &err);
  if (err) die("rocksdb_open", err);
  *optp = o;
  return db;
}

static void key_of(char *k, uint64_t i) { snprintf(k, 24, "key%016llx", (unsigned long long)(i * 0x9e3779b97f4a7c15ull)); }

/* --- the filesystem's own costs -------------------------------------------------------
 * Every durable commit creates two files and makes two rounds of fsyncs. How
 * much a file creation costs here depends on the filesystem's state: ext4
 * without a journal scans past every inode freed in the last minutes on each
 * creation. Printed first so that the commit figures can be read against it. */
static void bench_fs(void) {
  char d[1100], p[1200];
  snprintf(d, sizeof d, "%s/fs", root);
  if (mkdir(d, 0755)) die("mkdir", d);
  enum { N = 200 };
  double t0 = bench_now();
  for (int i = 0; i < N; i++) {
    snprintf(p, sizeof p, "%s/f%d", d, i);
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) die("create", p);
    close(fd);
  }
  double create = (bench_now() - t0) / N;
  char buf[16384];
  memset(buf, 'x', sizeof buf);
  t0 = bench_now();
  for (int i = 0; i < N / 4; i++) {
    snprintf(p, sizeof p, "%s/f%d", d, i);
    int fd = open(p, O_WRONLY);
    if (fd < 0 || write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fsync(fd)) die("write+fsync", p);
    close(fd);
  }
  double wsync = (bench_now() - t0) / (N / 4);
  printf("BENCH fs_create_file %.0f us\n", create * 1e6);
  printf("BENCH fs_write16k_fsync_new_file %.0f us\n", wsync * 1e6);
  rm_rf(d);
}

/* --- the physical floor and the commit log ------------------------------------------ */

/* What one durable small write costs on this disk: 4 KiB appended to a file
 * and fdatasync, and 4 KiB overwritten in a preallocated file and fdatasync
 * (no size change, so no inode write). A commit log can at best reach these. */
static void bench_floor(int n) {
  char p[1100];
  char buf[4096];
  memset(buf, 'f', sizeof buf);
  snprintf(p, sizeof p, "%s/floor-append", root);
  int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) die("create", p);
  double t0 = bench_now();
  for (int i = 0; i < n; i++)
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf || fdatasync(fd)) die("append+fdatasync", p);
  double append = (bench_now() - t0) / n;
  close(fd);
  snprintf(p, sizeof p, "%s/floor-overwrite", root);
  fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) die("create", p);
  for (int i = 0; i < n; i++)
    if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) die("preallocate", p);
  if (fsync(fd)) die("fsync", p);
  t0 = bench_now();
  for (int i = 0; i < n; i++)
    if (pwrite(fd, buf, sizeof buf, (off_t)i * 4096) != (ssize_t)sizeof buf || fdatasync(fd))
      die("overwrite+fdatasync", p);
  double over = (bench_now() - t0) / n;
  close(fd);
  printf("BENCH floor_append4k_fdatasync %.0f us\n", append * 1e6);
  printf("BENCH floor_overwrite4k_fdatasync %.0f us vs append %.2f\n", over * 1e6, over / append);
}

/* The commit log's cost for one group of 3 puts (16-byte keys, 256-byte
 * values, as the etcd comparison uses): encode, append, sync, one group per
 * sync; against RocksDB writing the same 3 puts in one sync WriteBatch (the
 * other place the log could live, the lock table's RocksDB). */
static void bench_log(int n) {
  char p[1100], keys[3][17], val[256], *err = NULL;
  memset(val, 'l', sizeof val);
  snprintf(p, sizeof p, "%s/log-strata", root);
  bs_store *s;
  clog_writer *w;
  if (bs_file_open(p, &s) || clog_writer_open(s, CLOG_DIR, 1, NULL, 0, &w)) die("clog", strata_errmsg());
  strata_buf b = STRATA_BUF_INIT;
  double t0 = bench_now();
  for (int i = 0; i < n; i++) {
    clog_op ops[3];
    for (int j = 0; j < 3; j++) {
      snprintf(keys[j], sizeof keys[j], "%016llx", (unsigned long long)((uint64_t)(i * 3 + j) * 0x9e3779b97f4a7c15ull));
      ops[j] = (clog_op){CLOG_OP_VALUE, (const uint8_t *)keys[j], 16, (const uint8_t *)val, sizeof val, NULL, 0, 0, 0};
    }
    int unknown;
    b.len = 0;
    if (clog_encode_ops(&b, ops, 3) || clog_append(w, CLOG_GROUP, (uint64_t)i + 1, (uint64_t)i + 1, b.p, b.len) ||
        clog_sync(w, &unknown))
      die("clog", strata_errmsg());
  }
  double tl = (bench_now() - t0) / n;
  clog_stats cs;
  clog_writer_stats(w, &cs);
  clog_writer_close(w);
  bs_destroy(s);
  strata_buf_free(&b);
  rocksdb_options_t *o;
  rocksdb_t *r = ropen("log-rocks", 8 << 20, &o);
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(wo, 1);
  t0 = bench_now();
  for (int i = 0; i < n; i++) {
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (int j = 0; j < 3; j++) {
      snprintf(keys[j], sizeof keys[j], "%016llx", (unsigned long long)((uint64_t)(i * 3 + j) * 0x9e3779b97f4a7c15ull));
      rocksdb_writebatch_put(wb, keys[j], 16, val, sizeof val);
    }
    rocksdb_write(r, wo, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err) die("rocksdb_write", err);
  }
  double tr = (bench_now() - t0) / n;
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(r);
  rocksdb_options_destroy(o);
  printf("BENCH clog_group_sync %.0f us vs rocksdb_sync_batch %.2f\n", tl * 1e6, tr / tl);
  fprintf(stderr, "  (clog: %llu bytes per group record; rocksdb sync WriteBatch of the same 3 puts %.0f us)\n",
          (unsigned long long)(cs.bytes_written / (uint64_t)n), tr * 1e6);
}

/* Bytes a small commit writes into a large store: 3 puts of hash-spread
 * 16-byte keys with 256-byte values into a store of nkeys such keys. */
static void bench_small_commit_bytes(uint64_t nkeys, int commits, int log) {
  char k[17], val[256];
  memset(val, 's', sizeof val);
  log_mode = log;
  st_db *s = sopen(log ? "smallc-strata-log" : "smallc-strata", 256 << 20);
  log_mode = 0;
  for (uint64_t i = 0; i < nkeys;) {
    st_txn *t;
    st_result r;
    st_txn_begin(s, &t);
    for (int j = 0; j < 10000 && i < nkeys; j++, i++) {
      snprintf(k, sizeof k, "%016llx", (unsigned long long)(i * 0x9e3779b97f4a7c15ull));
      st_txn_put(t, k, 16, val, sizeof val);
    }
    if (st_txn_commit(t, &r)) die("commit", r.message);
  }
  st_stats a, b;
  st_get_stats(s, &a);
  for (int c = 0; c < commits; c++) {
    st_txn *t;
    st_result r;
    st_txn_begin(s, &t);
    for (uint64_t j = 0; j < 3; j++) {
      uint64_t i = nkeys + (uint64_t)c * 3 + j;
      snprintf(k, sizeof k, "%016llx", (unsigned long long)(i * 0x9e3779b97f4a7c15ull));
      st_txn_put(t, k, 16, val, sizeof val);
    }
    if (st_txn_commit(t, &r)) die("commit", r.message);
  }
  st_get_stats(s, &b);
  st_close(s);
  double per = (double)(b.bytes_written - a.bytes_written) / commits;
  printf("BENCH bytes_written_per_small_commit%s %.0f bytes vs target_24KiB %.2f\n", log ? "" : "_per_group", per,
         per / 24576.0);
  fprintf(stderr, "  (3 puts of 16+256 bytes into %llu keys, %d commits)\n", (unsigned long long)nkeys, commits);
}

/* --- durable commit throughput ---------------------------------------------------- */

typedef struct cargs {
  st_db *sdb;
  rocksdb_t *rdb;
  rocksdb_writeoptions_t *wo;
  int tid, n;
  const char *val;
} cargs;

static void *strata_committer(void *p) {
  cargs *a = p;
  char k[24];
  for (int i = 0; i < a->n; i++) {
    st_txn *t;
    st_result r;
    key_of(k, (uint64_t)a->tid * 1000000 + (uint64_t)i);
    st_txn_begin(a->sdb, &t);
    st_txn_put_borrowed(t, k, strlen(k), a->val, 1024);
    if (st_txn_commit(t, &r)) die("commit", r.message);
  }
  return NULL;
}

static void *rocks_committer(void *p) {
  cargs *a = p;
  char k[24], *err = NULL;
  for (int i = 0; i < a->n; i++) {
    key_of(k, (uint64_t)a->tid * 1000000 + (uint64_t)i);
    rocksdb_put(a->rdb, a->wo, k, strlen(k), a->val, 1024, &err);
    if (err) die("rocksdb_put", err);
  }
  return NULL;
}

/* The process's CPU time (user + system), in seconds. */
static double cpu_now(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double run_threads(void *(*fn)(void *), cargs *base, int threads) {
  pthread_t th[64];
  cargs a[64];
  double t0 = bench_now();
  for (int i = 0; i < threads; i++) {
    a[i] = *base;
    a[i].tid = i;
    pthread_create(&th[i], NULL, fn, &a[i]);
  }
  for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
  return bench_now() - t0;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Durable 1 KiB commits from `threads` blocking committers, per-commit files
 * and (log = 1) commit log mode, against RocksDB sync puts in the same run;
 * in log mode also the publication lag of the batches under that load. */
static void bench_commit(int threads, int per_thread, int log) {
  char val[1024];
  memset(val, 'v', sizeof val);
  /* A fresh directory per run, nothing deleted before measuring: on ext4
   * without a journal, every inode freed in the last minutes makes each file
   * creation scan past it (docs/benchmarks.md). */
  char name[64];
  snprintf(name, sizeof name, "commit-strata%s-x%d", log ? "-log" : "", threads);
  log_mode = log;
  st_db *s = sopen(name, 64 << 20);
  log_mode = 0;
  cargs a = {s, NULL, NULL, 0, per_thread, val};
  double cs0 = cpu_now();
  double ts = run_threads(strata_committer, &a, threads);
  double cs = cpu_now() - cs0; /* the publisher's work after the run is left out */
  st_stats st;
  st_get_stats(s, &st);
  static uint64_t lags[1024];
  size_t nl = log ? st_publish_lags(s, lags, 1024) : 0;
  st_close(s);
  rocksdb_options_t *o;
  snprintf(name, sizeof name, "commit-rocks%s-x%d", log ? "-log" : "", threads);
  rocksdb_t *r = ropen(name, 64 << 20, &o);
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(wo, 1);
  cargs b = {NULL, r, wo, 0, per_thread, val};
  double cr0 = cpu_now();
  double tr = run_threads(rocks_committer, &b, threads);
  double cr = cpu_now() - cr0;
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(r);
  rocksdb_options_destroy(o);
  double n = (double)threads * per_thread;
  printf("BENCH commit_durable_1k_x%d%s %.0f commits/s vs rocksdb_sync_put %.2f\n", threads, log ? "" : "_per_group",
         n / ts, (n / ts) / (n / tr));
  fprintf(stderr, "  (%d threads%s: strata %.0f/s in %llu groups [per group: build %.0f us, %s %.0f us, "
          "%s %.0f us], rocksdb %.0f/s)\n", threads, log ? ", commit log" : "", n / ts,
          (unsigned long long)st.groups, st.ns_build / 1e3 / st.groups, log ? "log write+sync" : "fsyncs",
          st.ns_sync / 1e3 / st.groups, log ? "then waiting for the tree build" : "rename+dir fsync",
          (log ? st.ns_tree_wait : st.ns_publish) / 1e3 / st.groups, n / tr);
  if (log) /* at 16 committers on two CPUs this, not the disk, sets the pace */
    printf("BENCH commit_cpu_1k_x%d %.1f us/commit vs rocksdb_sync_put %.2f\n", threads, cs * 1e6 / n, cs / cr);
  if (nl) {
    qsort(lags, nl, sizeof lags[0], cmp_u64);
    printf("BENCH publish_lag_ms_x%d p50 %.1f p99 %.1f\n", threads, lags[nl / 2] / 1e6,
           lags[(nl * 99) / 100 < nl ? (nl * 99) / 100 : nl - 1] / 1e6);
    fprintf(stderr, "  (%zu batches; lag = first commit of a batch to its manifest durable)\n", nl);
  }
}

/* --- warm point gets ---------------------------------------------------------------- */

static void bench_get(uint64_t nkeys) {
  char k[24], val[100];
  memset(val, 'g', sizeof val);
  st_db *s = sopen("get-strata", (size_t)1 << 30);
  for (uint64_t i = 0; i < nkeys;) {
    st_txn *t;
    st_result r;
    st_txn_begin(s, &t);
    for (uint64_t j = 0; j < 100000 && i < nkeys; j++, i++) {
      key_of(k, i);
      st_txn_put(t, k, strlen(k), val, sizeof val);
    }
    if (st_txn_commit(t, &r)) die("load", r.message);
  }
  rocksdb_options_t *o;
  rocksdb_t *r = ropen("get-rocks", (size_t)1 << 30, &o);
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  char *err = NULL;
  for (uint64_t i = 0; i < nkeys;) {
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (uint64_t j = 0; j < 100000 && i < nkeys; j++, i++) {
      key_of(k, i);
      rocksdb_writebatch_put(b, k, strlen(k), val, sizeof val);
    }
    rocksdb_write(r, wo, b, &err);
    if (err) die("rocksdb_write", err);
    rocksdb_writebatch_destroy(b);
  }
  rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
  rocksdb_flush(r, fo, &err);
  rocksdb_compact_range(r, NULL, 0, NULL, 0);
  rocksdb_flushoptions_destroy(fo);
  rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
  st_snap *sn;
  st_snap_latest(s, &sn);
  strata_buf v = STRATA_BUF_INIT;
  uint64_t *order = malloc(nkeys * sizeof *order);
  uint64_t x = 88172645463325252ull;
  for (uint64_t i = 0; i < nkeys; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    order[i] = x % nkeys;
  }
  double best_s = 1e9, best_r = 1e9;
  for (int pass = 0; pass < 3; pass++) { /* pass 0 warms both */
    double t0 = bench_now();
    for (uint64_t i = 0; i < nkeys; i++) {
      key_of(k, order[i]);
      v.len = 0;
      if (st_get(sn, k, strlen(k), &v) || v.len != sizeof val) die("st_get", strata_errmsg());
    }
    double t1 = bench_now();
    for (uint64_t i = 0; i < nkeys; i++) {
      key_of(k, order[i]);
      size_t vl;
      char *rv = rocksdb_get(r, ro, k, strlen(k), &vl, &err);
      if (err || !rv || vl != sizeof val) die("rocksdb_get", err ? err : "missing");
      rocksdb_free(rv);
    }
    double t2 = bench_now();
    if (pass && t1 - t0 < best_s) best_s = t1 - t0;
    if (pass && t2 - t1 < best_r) best_r = t2 - t1;
  }
  printf("BENCH get_warm_1M %.0f gets/s vs rocksdb_get %.2f\n", nkeys / best_s, best_r / best_s);
  free(order);
  strata_buf_free(&v);
  st_snap_release(sn);
  st_close(s);
  rocksdb_readoptions_destroy(ro);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(r);
  rocksdb_options_destroy(o);
}

/* --- get at an old generation --------------------------------------------------------- */

static void bench_old_generation(int commits) {
  char k[24], val[64];
  memset(val, 'o', sizeof val);
  st_db *s = sopen("old-strata", 256 << 20);
  const uint64_t nkeys = 100000;
  st_txn *t;
  st_result r;
  st_txn_begin(s, &t);
  for (uint64_t i = 0; i < nkeys; i++) {
    key_of(k, i);
    st_txn_put(t, k, strlen(k), val, sizeof val);
  }
  if (st_txn_commit(t, &r)) die("load", r.message);
  uint64_t old_gen = r.generation;
  for (int c = 0; c < commits; c++) {
    st_txn_begin(s, &t);
    key_of(k, (uint64_t)c % nkeys);
    snprintf(val, sizeof val, "%d", c);
    st_txn_put(t, k, strlen(k), val, strlen(val));
    if (st_txn_commit(t, &r)) die("commit", r.message);
  }
  strata_buf v = STRATA_BUF_INIT;
  const int N = 200000;
  double best[2] = {1e9, 1e9};
  for (int pass = 0; pass < 3; pass++) {
    for (int which = 0; which < 2; which++) {
      double t0 = bench_now();
      for (int i = 0; i < N; i++) {
        st_snap *sn;
        int rc = which ? st_snap_at_generation(s, old_gen, &sn) : st_snap_latest(s, &sn);
        if (rc) die("snapshot", strata_errmsg());
        key_of(k, ((uint64_t)i * 7919) % nkeys);
        v.len = 0;
        if (st_get(sn, k, strlen(k), &v)) die("get", strata_errmsg());
        st_snap_release(sn);
      }
      double dt = bench_now() - t0;
      if (pass && dt < best[which]) best[which] = dt;
    }
  }
  printf("BENCH get_at_generation_%d_old %.0f gets/s vs get_at_latest %.2f\n", commits, N / best[1],
         best[1] / best[0]);
  strata_buf_free(&v);
  st_close(s);
}

/* --- write amplification ------------------------------------------------------------- */

static void bench_write_amp(int n) {
  size_t vl = 1 << 20;
  char *val = malloc(vl), k[24];
  memset(val, 'w', vl);
  st_db *s = sopen("wamp-strata", 64 << 20);
  uint64_t user = 0;
  for (int i = 0; i < n; i++) {
    st_txn *t;
    st_result r;
    st_txn_begin(s, &t);
    key_of(k, (uint64_t)i);
    val[0] = (char)i;
    st_txn_put_borrowed(t, k, strlen(k), val, vl);
    if (st_txn_commit(t, &r)) die("commit", r.message);
    user += vl + strlen(k);
  }
  st_stats st;
  st_get_stats(s, &st);
  st_close(s);
  char p[1024];
  snprintf(p, sizeof p, "%s/wamp-strata", root);
  uint64_t disk = bench_du(p);
  printf("BENCH write_amp_1MiB_values %.4f bytes_written/user_bytes vs on_disk %.4f\n",
         (double)st.bytes_written / (double)user, (double)disk / (double)user);
  free(val);
}

/* --- bulk load ---------------------------------------------------------------------- */

static void bench_bulk(uint64_t nkeys, uint64_t per_commit) {
  char k[24], val[16];
  uint64_t x = 0x2545F4914F6CDD1Dull;
  st_db *s = sopen("bulk-strata", 256 << 20);
  double t0 = bench_now();
  for (uint64_t i = 0; i < nkeys;) {
    st_txn *t;
    st_result r;
    st_txn_begin(s, &t);
    for (uint64_t j = 0; j < per_commit && i < nkeys; j++, i++) {
      snprintf(k, sizeof k, "k%015llu", (unsigned long long)i); /* ascending: an ingest in key order */
      for (int b = 0; b < 16; b += 8) { /* incompressible values */
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(val + b, &x, 8);
      }
      st_txn_put(t, k, 16, val, sizeof val);
    }
    if (st_txn_commit(t, &r)) die("commit", r.message);
  }
  double dt = bench_now() - t0;
  st_close(s);
  char p[1024];
  snprintf(p, sizeof p, "%s/bulk-strata", root);
  uint64_t disk = bench_du(p);
  printf("BENCH bulk_load_%lluM_keys %.0f keys/s\n", (unsigned long long)(nkeys / 1000000), nkeys / dt);
  printf("BENCH bulk_load_bytes_on_disk %llu bytes vs user_bytes %.2f\n", (unsigned long long)disk,
         (double)disk / (double)(nkeys * 32));
}

int main(void) {
  const char *d = getenv("STRATA_BENCH_DIR");
  const char *sc = getenv("STRATA_BENCH_SCALE");
  if (sc) scale = atof(sc);
  snprintf(root, sizeof root, "%s/strata-bench-%d", d ? d : "/tmp", (int)getpid());
  rm_rf(root);
  if (mkdir(root, 0755)) die("mkdir", root);
  const char *only = getenv("STRATA_BENCH_ONLY");
#define RUN(name) (!only || strcmp(only, name) == 0)
  if (RUN("commit") || RUN("fs")) bench_fs();
  if (RUN("commit") || RUN("floor")) bench_floor((int)(500 * scale) + 10);
  if (RUN("commit") || RUN("log")) bench_log((int)(2000 * scale) + 10);
  if (RUN("commit") || RUN("commit1")) bench_commit(1, (int)(2000 * scale), 0);
  if (RUN("commit") || RUN("commit1")) bench_commit(1, (int)(2000 * scale), 1);
  if (RUN("commit") || RUN("commit16")) bench_commit(16, (int)(500 * scale), 0);
  if (RUN("commit") || RUN("commit16") || RUN("commit16log")) bench_commit(16, (int)(500 * scale), 1);
  if (RUN("smallcommit")) bench_small_commit_bytes((uint64_t)(400000 * scale), 200, 0);
  if (RUN("smallcommit")) bench_small_commit_bytes((uint64_t)(400000 * scale), 200, 1);
  if (RUN("get")) bench_get((uint64_t)(1000000 * scale));
  if (RUN("oldgen")) bench_old_generation((int)(10000 * scale));
  if (RUN("writeamp")) bench_write_amp((int)(200 * scale));
  if (RUN("bulk")) bench_bulk((uint64_t)(10000000 * scale), 10000);
#undef RUN
  /* STRATA_BENCH_KEEP: leave the data (deleting it makes the next run's file
   * creations slower for minutes, see bench_fs). */
  if (!getenv("STRATA_BENCH_KEEP")) rm_rf(root);
  return 0;
}
