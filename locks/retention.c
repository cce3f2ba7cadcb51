/*
 * Retention policy and holds in the lock database (retention.h). Read from
 * RocksDB on every call: the server reads them about once a second.
 */
#include "locks/retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "locks/lk_int.h"

#define TAG_RET 'R'
#define SUB_POLICY 'P'
#define SUB_HOLD 'H'

int ret_policy_get(lk_manager *lk, ret_policy *out) {
  memset(out, 0, sizeof *out);
  int rc = lk__db_enter(lk, "reading the retention policy");
  if (rc) return rc;
  const char k[2] = {TAG_RET, SUB_POLICY};
  char *err = NULL;
  size_t vl = 0;
  char *v = rocksdb_get(lk->db, lk->ro, k, 2, &vl, &err);
  lk__db_leave(lk);
  if (err) return lk__dberr(err, "reading the retention policy");
  if (v && vl == 17) {
    out->kind = (ret_kind)(uint8_t)v[0];
    out->value = lk__get64((const uint8_t *)v + 1);
    out->set_at_ns = (int64_t)lk__get64((const uint8_t *)v + 9);
  } else if (v) {
    rc = strata_err(STRATA_ECORRUPT, "the retention policy record has %zu bytes", vl);
  }
  rocksdb_free(v);
  return rc;
}

int ret_policy_set(lk_manager *lk, const ret_policy *p) {
  if (p->kind != RET_KEEP_ALL && p->kind != RET_KEEP_VERSIONS && p->kind != RET_KEEP_FOR)
    return strata_err(STRATA_EINVALID, "retention: unknown policy kind %d", (int)p->kind);
  if (p->kind != RET_KEEP_ALL && p->value == 0)
    return strata_err(STRATA_EINVALID, "retention: %s must be at least 1",
                      p->kind == RET_KEEP_VERSIONS ? "keep_versions" : "keep_for");
  uint8_t v[17];
  v[0] = (uint8_t)p->kind;
  lk__put64(v + 1, p->kind == RET_KEEP_ALL ? 0 : p->value);
  lk__put64(v + 9, (uint64_t)lk_now(lk));
  const char k[2] = {TAG_RET, SUB_POLICY};
  return lk__put_sync(lk, k, 2, v, sizeof v, "setting the retention policy");
}

static void hold_key(uint64_t gen, uint8_t k[10]) {
  k[0] = TAG_RET;
  k[1] = SUB_HOLD;
  lk__put64(k + 2, gen);
}

int ret_hold_add(lk_manager *lk, uint64_t generation, const char *reason) {
  size_t n = reason ? strlen(reason) : 0;
  if (generation == 0) return strata_err(STRATA_EINVALID, "retention hold: generation must be at least 1");
  if (n > RET_REASON_MAX)
    return strata_err(STRATA_EINVALID, "retention hold: reason of %zu bytes (at most %u)", n, RET_REASON_MAX);
  uint8_t k[10], v[8 + RET_REASON_MAX];
  hold_key(generation, k);
  lk__put64(v, (uint64_t)lk_now(lk));
  if (n) memcpy(v + 8, reason, n);
  return lk__put_sync(lk, k, sizeof k, v, 8 + n, "adding a retention hold");
}

int ret_hold_release(lk_manager *lk, uint64_t generation) {
  uint8_t k[10];
  hold_key(generation, k);
  int rc = lk__db_enter(lk, "releasing a retention hold");
  if (rc) return rc;
  char *err = NULL;
  size_t vl = 0;
  char *v = rocksdb_get(lk->db, lk->ro, (const char *)k, sizeof k, &vl, &err);
  lk__db_leave(lk);
  if (err) return lk__dberr(err, "releasing a retention hold");
  rocksdb_free(v);
  if (!v) return strata_err(STRATA_ENOTFOUND, "retention: no hold on generation %llu",
                            (unsigned long long)generation);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  rocksdb_writebatch_delete(b, (const char *)k, sizeof k);
  uint64_t seq;
  rc = lk__write(lk, b, "releasing a retention hold", &seq);
  if (!rc) rc = lk__durable(lk, seq);
  rocksdb_writebatch_destroy(b);
  return rc;
}

int ret_hold_list(lk_manager *lk, ret_hold **out, size_t *n) {
  *out = NULL;
  *n = 0;
  int rc = lk__db_enter(lk, "listing retention holds");
  if (rc) return rc;
  size_t cap = 0;
  const char pre[2] = {TAG_RET, SUB_HOLD};
  rocksdb_iterator_t *it = rocksdb_create_iterator(lk->db, lk->ro);
  for (rocksdb_iter_seek(it, pre, 2); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl != 10 || k[0] != TAG_RET || k[1] != SUB_HOLD) break;
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
    if (vl < 8) continue;
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      ret_hold *h = realloc(*out, cap * sizeof *h);
      if (!h) {
        rc = strata_err(STRATA_ENOMEM, "listing retention holds");
        break;
      }
      *out = h;
    }
    ret_hold *h = &(*out)[(*n)++];
    h->generation = lk__get64(k + 2);
    h->created_ns = (int64_t)lk__get64(v);
    size_t rl = vl - 8 > RET_REASON_MAX ? RET_REASON_MAX : vl - 8;
    memcpy(h->reason, v + 8, rl);
    h->reason[rl] = 0;
  }
  rocksdb_iter_destroy(it);
  lk__db_leave(lk);
  if (rc) {
    free(*out);
    *out = NULL;
    *n = 0;
  }
  return rc;
}
