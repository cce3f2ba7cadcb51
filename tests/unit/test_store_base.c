/* Base stores (files, memory, fault wrapper) and the node cache bound. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"
#include "tests/unit/base_contract.h"

/* The memory store's power-cut model of a room: what was appended into it
 * since the last fsync comes back as the zeros it replaced. */
static void test_memory_store_room_after_a_power_cut(void **state) {
  bs_store *s;
  bs_file *f;
  assert_int_equal(bs_mem_create(&s), 0);
  assert_int_equal(bs_create(s, "r", &f), 0);
  assert_int_equal(bs_sync_dir(s, ""), 0);
  assert_int_equal(bs_append(f, "abc", 3), 0);
  assert_int_equal(bs_reserve(f, 10), 0); /* abc and the room durable */
  assert_int_equal(bs_append(f, "de", 2), 0);
  assert_int_equal(bs_fsync(f), 0);
  assert_int_equal(bs_append(f, "fg", 2), 0); /* never synced */
  bs_mem_cut_power_after(s, 0);
  bs_close(f);
  assert_int_equal(bs_mem_power_on(s), 0);
  expect_file(s, "r", "abcde", 5, 13);
  bs_destroy(s);
}

static void test_memory_store_contract(void **state) {
  bs_store *s;
  assert_int_equal(bs_mem_create(&s), 0);
  check_contract(s, 1);
  bs_destroy(s);
}

static void test_file_store_contract_and_writer_lock(void **state) {
  char dir[128], cmd[200];
  snprintf(dir, sizeof dir, "/tmp/strata-base-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  bs_store *s, *t;
  assert_int_equal(bs_file_open(dir, &s), 0);
  check_contract(s, 1);
  assert_int_equal(bs_lock(s), 0);
  assert_int_equal(bs_file_open(dir, &t), 0);
  assert_int_equal(bs_lock(t), STRATA_EBUSY);
  bs_destroy(t);
  bs_destroy(s);
  assert_int_equal(system(cmd), 0);
}

typedef struct churn {
  const char *dir;
  volatile int stop;
} churn;

/* Creates and removes files with long names in the top of dir, over and over. */
static void *churn_names(void *arg) {
  churn *c = arg;
  char p[512], name[201];
  memset(name, 'n', 200);
  name[200] = 0;
  for (unsigned i = 0; !c->stop; i++) {
    name[0] = (char)('a' + i % 26);
    snprintf(p, sizeof p, "%s/%s", c->dir, name);
    int fd = open(p, O_CREAT | O_WRONLY, 0644);
    if (fd >= 0) close(fd);
    unlink(p);
  }
  return NULL;
}

/* A listing while files come and go (GC lists the top while the publisher
 * creates manifests): every name is whole, and nothing is written past the
 * result (the unit-asan tier catches that). The old two-pass listing sized
 * its buffer from the first pass and overflowed when a longer name appeared. */
static void test_file_store_list_while_the_directory_changes(void **state) {
  char dir[128], cmd[200];
  snprintf(dir, sizeof dir, "/tmp/strata-base-list-%d", (int)getpid());
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  bs_store *s;
  assert_int_equal(bs_file_open(dir, &s), 0);
  bs_file *f;
  assert_int_equal(bs_create(s, "x", &f), 0);
  bs_close(f);
  churn c = {dir, 0};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, churn_names, &c), 0);
  int bad = 0;
  for (int k = 0; k < 3000; k++) {
    char **names;
    size_t n;
    if (bs_list(s, "", &names, &n)) {
      bad = -1;
      break;
    }
    for (size_t i = 0; i < n; i++)
      bad += strcmp(names[i], "x") != 0 && strlen(names[i]) != 200;
    free(names);
  }
  c.stop = 1;
  pthread_join(t, NULL);
  assert_int_equal(bad, 0);
  bs_destroy(s);
  assert_int_equal(system(cmd), 0);
}

static void test_fault_store_fails_the_nth_operation(void **state) {
  bs_store *m, *x;
  assert_int_equal(bs_mem_create(&m), 0);
  assert_int_equal(bs_fault_wrap(m, &x), 0);
  check_contract(x, 1); /* transparent while disarmed */
  bs_file *f;
  assert_int_equal(bs_create(x, "f", &f), 0);
  bs_fault_arm(x, BS_FAULT_WRITE, 2, ENOSPC);
  assert_int_equal(bs_append(f, "a", 1), 0);
  assert_int_equal(bs_append(f, "b", 1), ENOSPC);
  assert_non_null(strstr(strata_errmsg(), "injected write failure"));
  assert_int_equal(bs_append(f, "c", 1), 0); /* one shot */
  bs_fault_arm(x, BS_FAULT_FSYNC, 1, EIO);
  assert_int_equal(bs_fsync(f), EIO);
  bs_close(f);
  bs_fault_arm(x, BS_FAULT_RENAME, 1, EIO);
  assert_int_equal(bs_put_atomic(x, "", "tmp.y", "y", "v", 1), EIO);
  bs_file *g;
  assert_int_equal(bs_open_read(m, "y", &g), STRATA_ENOTFOUND);
  assert_int_equal(bs_open_read(m, "tmp.y", &g), STRATA_ENOTFOUND); /* cleaned up */
  uint8_t *p;
  size_t n;
  assert_int_equal(bs_read_all(m, "f", &p, &n), 0);
  assert_int_equal(n, 2); /* the failed write wrote nothing */
  assert_memory_equal(p, "ac", 2);
  free(p);
  /* The directory fsync after the rename fails: a new file is taken back,
   * a replaced one keeps the new content (removing it would lose both). */
  bs_fault_arm(x, BS_FAULT_FSYNC, 2, EIO); /* 1: the temp file, 2: the directory */
  assert_int_equal(bs_put_atomic(x, "", "tmp.y", "y", "v", 1), EIO);
  assert_int_equal(bs_open_read(m, "y", &g), STRATA_ENOTFOUND);
  assert_int_equal(bs_put_atomic(x, "", "tmp.y", "y", "v1", 2), 0);
  bs_fault_arm(x, BS_FAULT_FSYNC, 2, EIO);
  assert_int_equal(bs_put_atomic(x, "", "tmp.y", "y", "v2", 2), EIO);
  assert_int_equal(bs_read_all(m, "y", &p, &n), 0);
  assert_int_equal(n, 2);
  assert_memory_equal(p, "v2", 2);
  free(p);
  assert_int_equal(bs_open_read(m, "tmp.y", &g), STRATA_ENOTFOUND);
  assert_int_equal(bs_fault_fired(x), 5);
  bs_destroy(x);
  bs_destroy(m);
}

/* Reading many keys through a small cache keeps it near its cap, and
 * repeated reads of one key hit the cache. */
static void test_node_cache_is_bounded(void **state) {
  bs_store *m;
  assert_int_equal(bs_mem_create(&m), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = m;
  o.create = 1;
  o.cache_bytes = 64 << 10;
  o.config.max_decoded_node_bytes = 4096;
  st_db *db;
  assert_int_equal(st_open("mem", &o, &db), 0);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  for (int i = 0; i < 20000; i++) {
    char k[32];
    snprintf(k, sizeof k, "key%08d", i);
    assert_int_equal(st_txn_put(t, k, strlen(k), k, strlen(k)), 0);
  }
  assert_int_equal(st_txn_commit(t, &r), 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  strata_buf b = STRATA_BUF_INIT;
  st_stats st;
  for (int i = 0; i < 20000; i += 3) {
    char k[32];
    snprintf(k, sizeof k, "key%08d", i);
    b.len = 0;
    assert_int_equal(st_get(s, k, strlen(k), &b), 0);
    assert_memory_equal(b.p, k, strlen(k));
    st_get_stats(db, &st);
    assert_true(st.cache_bytes <= (64 << 10) + (64 << 10)); /* cap + the pinned path */
  }
  st_stats a0, a1;
  st_get_stats(db, &a0);
  for (int i = 0; i < 100; i++) {
    b.len = 0;
    assert_int_equal(st_get(s, "key00000042", 11, &b), 0);
  }
  st_get_stats(db, &a1);
  assert_true(a1.cache_misses - a0.cache_misses <= 4);
  assert_true(a1.cache_hits - a0.cache_hits >= 200);
  strata_buf_free(&b);
  st_snap_release(s);
  st_close(db);
  bs_destroy(m);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_memory_store_contract),
    cmocka_unit_test(test_memory_store_room_after_a_power_cut),
    cmocka_unit_test(test_file_store_contract_and_writer_lock),
    cmocka_unit_test(test_file_store_list_while_the_directory_changes),
    cmocka_unit_test(test_fault_store_fails_the_nth_operation),
    cmocka_unit_test(test_node_cache_is_bounded),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
