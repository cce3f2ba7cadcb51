/* Lock manager benchmarks for `make bench`: durable single-row and 32-row
 * acquire+release pairs from 16 threads, against raw synced RocksDB puts of
 * the same byte volume from 16 threads measured in the same run, and the
 * time to stream a listing of 1M held locks. Prints BENCH lines. Data goes
 * to a directory under $TMPDIR (default /tmp) that is removed at the end. */
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <rocksdb/c.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "locks/lock.h"
#include "tools/bench/bench_util.h"

#define THREADS 16
#define SECONDS 3.0


static int rm_cb(const char *p, const struct stat *sb, int f, struct FTW *ftw) {
  (void)sb, (void)f, (void)ftw;
  return remove(p);
}

static char base[512];
static atomic_int go, halt;

/* --- anchor: raw synced puts --------------------------------------------- */

/* Bytes one single-row pair writes: acquire = lock record (1+10 key, 58
 * value) + token high-water (3 key, 8 value); release = a delete of the
 * 11-byte key. The anchor's puts carry half of that each (a pair is two
 * durable writes), with an 11-byte key. */
#define PAIR_BYTES (11 + 58 + 3 + 8 + 11)
#define PUT_KEY 11
#define PUT_VALUE (PAIR_BYTES / 2 - PUT_KEY)

/* Starts THREADS threads of fn, thread i on the context at ctxs + i * ctx_size,
 * lets them run SECONDS, and returns operations per second. Every context
 * starts with an `unsigned long` that its thread counts operations in. */
static double run_timed(void *(*fn)(void *), void *ctxs, size_t ctx_size) {
  pthread_t th[THREADS];
  atomic_store(&go, 0);
  atomic_store(&halt, 0);
  for (int i = 0; i < THREADS; i++) pthread_create(&th[i], NULL, fn, (char *)ctxs + i * ctx_size);
  double t0 = bench_now();
  atomic_store(&go, 1);
  usleep((useconds_t)(SECONDS * 1e6));
  atomic_store(&halt, 1);
  unsigned long n = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    n += *(unsigned long *)((char *)ctxs + i * ctx_size);
  }
  return (double)n / (bench_now() - t0);
}

/* Each thread context starts with its operation count (see run_timed). */
typedef struct {
  unsigned long n;
  rocksdb_t *db;
  rocksdb_writeoptions_t *wo;
  int id;
} put_ctx;

static void *put_thread(void *p) {
  put_ctx *c = p;
  char key[PUT_KEY], val[PUT_VALUE];
  memset(val, 'v', sizeof val);
  while (!atomic_load(&go)) {}
  while (!atomic_load(&halt)) {
    snprintf(key, sizeof key, "%02d%08lu", c->id, c->n % 100000000);
    char *err = NULL;
    rocksdb_put(c->db, c->wo, key, sizeof key, val, sizeof val, &err);
    if (err) {
      fprintf(stderr, "rocksdb_put: %s\n", err);
      exit(1);
    }
    c->n++;
  }
  return NULL;
}

static double bench_raw_puts(void) {
  char path[600];
  snprintf(path, sizeof path, "%s/raw", base);
  rocksdb_options_t *o = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(o, 1);
  rocksdb_options_set_max_background_jobs(o, 2);
  char *err = NULL;
  rocksdb_t *db = rocksdb_open(o, path, &err);
  if (err) {
    fprintf(stderr, "open %s: %s\n", path, err);
    exit(1);
  }
  rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(wo, 1);
  put_ctx c[THREADS];
  for (int i = 0; i < THREADS; i++) c[i] = (put_ctx){0, db, wo, i};
  double rate = run_timed(put_thread, c, sizeof c[0]);
  rocksdb_writeoptions_destroy(wo);
  rocksdb_close(db);
  rocksdb_options_destroy(o);
  return rate;
}

/* --- lock pairs ---------------------------------------------------------- */

typedef struct {
  unsigned long n;
  lk_manager *lk;
  int id, set;
} pair_ctx;

static void *pair_thread(void *p) {
  pair_ctx *c = p;
  enum { POOL = 4096 };
  uint8_t (*keys)[LK_L2_KEY_LEN] = malloc(POOL * sizeof *keys);
  lk_row rows[32];
  for (int i = 0; i < POOL; i++) lk_l2_chunk_key((uint64_t)c->id << 32 | (uint64_t)i, keys[i]);
  uint64_t op = (uint64_t)c->id + 1, r = 88172645463325252ull ^ (uint64_t)c->id;
  while (!atomic_load(&go)) {}
  while (!atomic_load(&halt)) {
    for (int i = 0; i < c->set; i++) {
      r ^= r << 13, r ^= r >> 7, r ^= r << 17;
      rows[i] = (lk_row){keys[(c->set == 1 ? r : (r % (POOL / 32)) * 32 + (uint64_t)i) % POOL],
                         LK_L2_KEY_LEN};
    }
    lk_acquire_req q = {.op = op, .rows = rows, .nrows = (size_t)c->set, .kind = LK_TEMPORAL,
                        .ttl_ns = 60 * 1000000000LL};
    lk_result res;
    size_t rel;
    if (lk_acquire(c->lk, &q, &res) || res.status != LK_GRANTED) {
      fprintf(stderr, "acquire: %s\n", strata_errmsg());
      exit(1);
    }
    lk_result_free(&res);
    if (lk_release(c->lk, op, rows, (size_t)c->set, 0, &rel) || rel != (size_t)c->set) {
      fprintf(stderr, "release: %s\n", strata_errmsg());
      exit(1);
    }
    c->n++;
  }
  free(keys);
  return NULL;
}

static lk_manager *open_lk(const char *name, unsigned partitions) {
  char path[600];
  snprintf(path, sizeof path, "%s/%s", base, name);
  lk_options o;
  lk_options_init(&o);
  o.path = path;
  o.partitions = partitions;
  lk_manager *lk;
  if (lk_open(&o, &lk)) {
    fprintf(stderr, "lk_open: %s\n", strata_errmsg());
    exit(1);
  }
  return lk;
}

static double bench_pairs(const char *name, int set) {
  lk_manager *lk = open_lk(name, 64); /* the default */
  pair_ctx c[THREADS];
  for (int i = 0; i < THREADS; i++) c[i] = (pair_ctx){0, lk, i, set};
  double rate = run_timed(pair_thread, c, sizeof c[0]);
  lk_close(lk);
  return rate;
}

/* --- listing 1M held locks ----------------------------------------------- */

static void bench_list(void) {
  enum { TOTAL = 1000000, BATCH = 10000, PAGE = 10000 };
  lk_manager *lk = open_lk("list", 256);
  uint8_t (*keys)[LK_L2_KEY_LEN] = malloc(BATCH * sizeof *keys);
  lk_row *rows = malloc(BATCH * sizeof *rows);
  double t0 = bench_now();
  for (int b = 0; b < TOTAL / BATCH; b++) {
    for (int i = 0; i < BATCH; i++) {
      lk_l2_chunk_key((uint64_t)b * BATCH + (uint64_t)i, keys[i]);
      rows[i] = (lk_row){keys[i], LK_L2_KEY_LEN};
    }
    lk_acquire_req q = {.op = 1 + (uint64_t)(b % 7), .rows = rows, .nrows = BATCH,
                        .kind = LK_TEMPORAL, .ttl_ns = 3600 * 1000000000LL};
    lk_result res;
    if (lk_acquire(lk, &q, &res) || res.status != LK_GRANTED) {
      fprintf(stderr, "acquire: %s\n", strata_errmsg());
      exit(1);
    }
    lk_result_free(&res);
  }
  double fill = bench_now() - t0;
  t0 = bench_now();
  size_t seen = 0;
  uint8_t cur[LK_KEY_MAX + 1];
  size_t curlen = 0;
  int more = 1;
  while (more) {
    lk_list_page pg;
    if (lk_list(lk, NULL, curlen ? cur : NULL, curlen, PAGE, &pg)) {
      fprintf(stderr, "list: %s\n", strata_errmsg());
      exit(1);
    }
    seen += pg.n;
    more = pg.cursor != NULL;
    if (more) memcpy(cur, pg.cursor, curlen = pg.cursor_len);
    lk_list_page_free(&pg);
  }
  double stream = bench_now() - t0;
  if (seen != TOTAL) {
    fprintf(stderr, "listed %zu of %d locks\n", seen, TOTAL);
    exit(1);
  }
  lk_close(lk);
  t0 = bench_now();
  lk = open_lk("list", 256);
  double reload = bench_now() - t0;
  lk_counts cnt;
  t0 = bench_now();
  if (lk_count(lk, NULL, &cnt) || cnt.temporal != TOTAL) exit(1);
  double count = bench_now() - t0;
  lk_close(lk);
  free(keys);
  free(rows);
  printf("BENCH lock_list_1m_stream %.3f s\n", stream);
  printf("BENCH lock_list_1m_rate %.0f locks/s\n", TOTAL / stream);
  printf("BENCH lock_count_1m %.3f s\n", count);
  printf("BENCH lock_reload_1m_open %.3f s\n", reload);
  printf("BENCH lock_fill_1m_by_10k_sets %.3f s\n", fill);
}

int main(void) {
  const char *t = getenv("TMPDIR");
  snprintf(base, sizeof base, "%s/strata-bench-locks-XXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(base)) {
    perror("mkdtemp");
    return 1;
  }
  double raw = bench_raw_puts();
  double one = bench_pairs("one", 1);
  double set32 = bench_pairs("set32", 32);
  printf("BENCH rocksdb_sync_put_16t %.0f puts/s\n", raw);
  printf("BENCH lock_acquire_release_1row_16t %.0f pairs/s vs rocksdb_sync_put_16t %.2f\n", one, one / raw);
  printf("BENCH lock_acquire_release_32row_16t %.0f pairs/s vs rocksdb_sync_put_16t %.2f\n", set32,
         set32 / raw);
  fflush(stdout);
  const char *q = getenv("STRATA_BENCH_LOCKS_NO_LIST"); /* for quick runs while tuning */
  if (!q || !*q) bench_list();
  nftw(base, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
