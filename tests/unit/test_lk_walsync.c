/* The lock table's group sync (locks/walsync.c): before a lock change is
 * answered, the WAL file that holds it has been fdatasynced after the change
 * was written, and a WAL file RocksDB created since the last sync has had its
 * directory synced too; deferred calls (lk_defer_begin) leave the sync to
 * lk_durable_wait. The SIGKILL tests cannot see a missing sync (the page
 * cache outlives a killed process); these watch the syncs themselves. */
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "common/err.h"
#include "locks/lock.h"
#include "tests/locks/lk_test.h"

enum { MAX_EVENTS = 4096 };

/* What the hook saw: each WAL file synced with its size at that moment, and
 * directory syncs. */
typedef struct fx {
  char *dir;
  lk_manager *lk;
  pthread_mutex_t mu;
  size_t n;
  uint64_t num[MAX_EVENTS];
  int64_t size[MAX_EVENTS];
} fx;

static int64_t wal_size(const char *dir, uint64_t num) {
  char p[600];
  snprintf(p, sizeof p, "%s/%06llu.log", dir, (unsigned long long)num);
  struct stat st;
  return stat(p, &st) == 0 ? (int64_t)st.st_size : -1;
}

static void hook(void *ctx, uint64_t num) {
  fx *f = ctx;
  pthread_mutex_lock(&f->mu);
  if (f->n < MAX_EVENTS) {
    f->num[f->n] = num;
    f->size[f->n] = num == LK_WAL_DIR_SYNCED ? 0 : wal_size(f->dir, num);
    f->n++;
  }
  pthread_mutex_unlock(&f->mu);
}

static void open_lk(fx *f) {
  lk_options o;
  lk_options_init(&o);
  o.path = f->dir;
  o.clock = lkt_clock;
  o.wal_sync_hook = hook;
  o.wal_sync_ctx = f;
  int rc = lk_open(&o, &f->lk);
  if (rc) fprintf(stderr, "lk_open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
}

static int setup(void **state) {
  fx *f = calloc(1, sizeof *f);
  pthread_mutex_init(&f->mu, NULL);
  f->dir = lkt_tmpdir("lkwal");
  open_lk(f);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fx *f = *state;
  lk_close(f->lk);
  lkt_rmdir(f->dir);
  pthread_mutex_destroy(&f->mu);
  free(f);
  return 0;
}

/* The newest WAL file in the directory. */
static uint64_t newest_wal(const char *dir) {
  DIR *d = opendir(dir);
  assert_non_null(d);
  uint64_t best = 0;
  int found = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    unsigned long long n;
    char tail[8];
    if (sscanf(e->d_name, "%llu%7s", &n, tail) == 2 && strcmp(tail, ".log") == 0 &&
        (!found || n > best))
      best = n, found = 1;
  }
  closedir(d);
  assert_true(found);
  return best;
}

static void forget(fx *f) {
  pthread_mutex_lock(&f->mu);
  f->n = 0;
  pthread_mutex_unlock(&f->mu);
}

/* Index of the last sync of WAL file num in the events, or -1. */
static long last_sync_of(fx *f, uint64_t num) {
  long at = -1;
  for (size_t i = 0; i < f->n; i++)
    if (f->num[i] == num) at = (long)i;
  return at;
}

static int dir_synced(fx *f) {
  for (size_t i = 0; i < f->n; i++)
    if (f->num[i] == LK_WAL_DIR_SYNCED) return 1;
  return 0;
}

static void acquire(fx *f, const char *key) {
  lk_row row = lkt_row(key);
  lk_acquire_req q = {.op = 7, .rows = &row, .nrows = 1, .kind = LK_TEMPORAL, .ttl_ns = 60000000000};
  lk_result res;
  assert_int_equal(lk_acquire(f->lk, &q, &res), 0);
  assert_int_equal(res.status, LK_GRANTED);
  lk_result_free(&res);
}

/* An answered acquire and release: the current WAL file was synced after the
 * change reached it (its size at the sync is its size at the answer), and the
 * file's directory was synced at its first sync only. */
static void test_answer_follows_sync_of_the_change(void **state) {
  fx *f = *state;
  forget(f);
  acquire(f, "row-a");
  uint64_t wal = newest_wal(f->dir);
  int64_t size = wal_size(f->dir, wal);
  long at = last_sync_of(f, wal);
  assert_true(at >= 0);
  assert_int_equal(f->size[at], size);
  assert_true(dir_synced(f)); /* the first sync of a file the database just created */

  forget(f);
  size_t rel = 0;
  lk_row row = lkt_row("row-a");
  assert_int_equal(lk_release(f->lk, 7, &row, 1, 0, &rel), 0);
  assert_int_equal(rel, 1);
  assert_int_equal(newest_wal(f->dir), wal);
  at = last_sync_of(f, wal);
  assert_true(at >= 0);
  assert_true(f->size[at] > size);
  assert_int_equal(f->size[at], wal_size(f->dir, wal));
  assert_false(dir_synced(f)); /* known file: no directory sync */
}

/* A reopen makes RocksDB start a new WAL file: the first change after it is
 * synced in that file, with a directory sync, and a file RocksDB removed is
 * not synced again. */
static void test_new_wal_file_gets_a_directory_sync(void **state) {
  fx *f = *state;
  acquire(f, "row-b");
  uint64_t before = newest_wal(f->dir);
  lk_close(f->lk);
  open_lk(f);
  uint64_t after = newest_wal(f->dir);
  assert_true(after > before);
  forget(f);
  acquire(f, "row-c");
  assert_int_equal(newest_wal(f->dir), after);
  long at = last_sync_of(f, after);
  assert_true(at >= 0);
  assert_int_equal(f->size[at], wal_size(f->dir, after));
  assert_true(dir_synced(f));
  for (size_t i = 0; i < f->n; i++)
    if (f->num[i] != LK_WAL_DIR_SYNCED) assert_true(f->size[i] >= 0); /* it existed */
}

/* Many threads at once: every answer is still covered by a sync of the
 * current file taken after its change (checked through the final size), and
 * the changes are all there after a reopen. */
typedef struct worker {
  fx *f;
  int id;
} worker;

static void *work(void *p) {
  worker *w = p;
  for (int i = 0; i < 50; i++) {
    char key[32];
    snprintf(key, sizeof key, "w%d-%d", w->id, i);
    lk_row row = lkt_row(key);
    lk_acquire_req q = {.op = (uint64_t)w->id + 1, .rows = &row, .nrows = 1, .kind = LK_TEMPORAL,
                        .ttl_ns = 60000000000};
    lk_result res;
    if (lk_acquire(w->f->lk, &q, &res) || res.status != LK_GRANTED) return (void *)1;
    lk_result_free(&res);
  }
  return NULL;
}

static void test_concurrent_changes_all_synced(void **state) {
  fx *f = *state;
  enum { N = 8 };
  pthread_t t[N];
  worker w[N];
  for (int i = 0; i < N; i++) {
    w[i] = (worker){f, i};
    assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
  }
  for (int i = 0; i < N; i++) {
    void *r;
    pthread_join(t[i], &r);
    assert_null(r);
  }
  uint64_t wal = newest_wal(f->dir);
  long at = last_sync_of(f, wal);
  assert_true(at >= 0);
  assert_int_equal(f->size[at], wal_size(f->dir, wal)); /* the last change was synced */
  lk_close(f->lk);
  open_lk(f);
  lk_counts c;
  assert_int_equal(lk_count(f->lk, NULL, &c), 0);
  assert_int_equal(c.temporal, N * 50);
}

/* Deferred durability (the server's lock answerer): a deferred acquire and
 * release return without a sync and name the batch they need; the wait syncs
 * the file after both changes, and a wait for an older batch costs nothing. */
static void test_deferred_calls_sync_at_the_wait(void **state) {
  fx *f = *state;
  acquire(f, "row-warm"); /* the first sync (and directory sync) out of the way */
  forget(f);
  lk_defer_begin();
  acquire(f, "row-d");
  size_t rel = 0;
  lk_row row = lkt_row("row-warm");
  assert_int_equal(lk_release(f->lk, 7, &row, 1, 0, &rel), 0);
  uint64_t need = lk_defer_end();
  assert_int_equal(rel, 1);
  assert_true(need > 0);
  assert_int_equal(f->n, 0); /* nothing synced yet */
  uint64_t wal = newest_wal(f->dir);
  int64_t size = wal_size(f->dir, wal);
  assert_int_equal(lk_durable_wait(f->lk, need), 0);
  long at = last_sync_of(f, wal);
  assert_true(at >= 0);
  assert_int_equal(f->size[at], size); /* both changes were in the file at the sync */
  size_t n = f->n;
  assert_int_equal(lk_durable_wait(f->lk, need), 0);
  assert_int_equal(lk_durable_wait(f->lk, 0), 0);
  assert_int_equal(f->n, n); /* already durable: no sync */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_answer_follows_sync_of_the_change, setup, teardown),
      cmocka_unit_test_setup_teardown(test_new_wal_file_gets_a_directory_sync, setup, teardown),
      cmocka_unit_test_setup_teardown(test_concurrent_changes_all_synced, setup, teardown),
      cmocka_unit_test_setup_teardown(test_deferred_calls_sync_at_the_wait, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
