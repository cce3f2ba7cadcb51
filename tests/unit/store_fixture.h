/*
 * The store tests' common fixture: a database in the memory base store, and
 * one-line put and get. Included by one file per test binary.
 */
#ifndef STRATA_TESTS_STORE_FIXTURE_H
#define STRATA_TESTS_STORE_FIXTURE_H

#include <string.h>

#include "common/err.h"
#include "storage/base.h"
#include "storage/store.h"

/* A new database in a new memory store; node_bytes 0 = the default. */
static inline st_db *open_mem(bs_store **base, uint32_t node_bytes) {
  assert_int_equal(bs_mem_create(base), 0);
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = *base;
  o.create = 1;
  o.config.max_decoded_node_bytes = node_bytes;
  o.cache_bytes = 1 << 20;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  if (rc) fprintf(stderr, "open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

/* Opens the database already in base (no create, default options). */
static inline st_db *reopen_mem(bs_store *base) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = base;
  st_db *db = NULL;
  int rc = st_open("mem", &o, &db);
  if (rc) fprintf(stderr, "reopen: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

static inline void put1(st_db *db, const char *k, const char *v) {
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, k, strlen(k), v, strlen(v)), 0);
  int rc = st_txn_commit(t, &r);
  if (rc) fprintf(stderr, "commit: %s\n", r.message);
  assert_int_equal(rc, 0);
  st_result_free(&r);
}

static inline int get_str(st_snap *s, const char *k, char *out, size_t cap) {
  strata_buf b = STRATA_BUF_INIT;
  int rc = st_get(s, k, strlen(k), &b);
  if (!rc) {
    assert_true(b.len < cap);
    memcpy(out, b.p, b.len);
    out[b.len] = 0;
  }
  strata_buf_free(&b);
  return rc;
}

#endif
