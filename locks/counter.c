/*
 * Id counters: 'C' name -> next id (8 bytes, big-endian). One mutex orders
 * allocations; each one is a synced read-modify-write, so a range is
 * durable before it is returned and is never handed out twice.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/err.h"
#include "locks/lk_int.h"

ctr_table *lk_counters(lk_manager *lk) { return &lk->ctrs; }

static int ctr_key(const char *name, uint8_t *k, size_t *kl, const char *fn) {
  size_t n = name ? strlen(name) : 0;
  if (n == 0) return strata_err(STRATA_EINVALID, "%s: counter name is empty", fn);
  if (n > CTR_NAME_MAX)
    return strata_err(STRATA_EINVALID, "%s: counter name is %zu bytes, at most %u", fn, n, CTR_NAME_MAX);
  k[0] = LK__TAG_CTR;
  memcpy(k + 1, name, n);
  *kl = n + 1;
  return 0;
}

/* Reads the next id of the counter; ct->mu held. */
static int read_next(ctr_table *ct, const uint8_t *k, size_t kl, uint64_t *next, const char *fn) {
  strata_mutex_assert_held(&ct->mu);
  char *err = NULL;
  size_t vl = 0;
  int rc = lk__db_enter(ct->lk, fn);
  if (rc) return rc;
  char *v = rocksdb_get(ct->lk->db, ct->lk->ro, (const char *)k, kl, &vl, &err);
  lk__db_leave(ct->lk);
  if (err) return lk__dberr(err, fn);
  *next = 1;
  if (!v) return 0;
  if (vl != 8) rc = strata_err(STRATA_ECORRUPT, "%s: counter record of %zu bytes", fn, vl);
  else *next = lk__get64((const uint8_t *)v);
  rocksdb_free(v);
  return rc;
}

int ctr_allocate(ctr_table *ct, const char *name, uint64_t count, uint64_t *first) {
  assert(ct && first /* a bad name or count is STRATA_EINVALID */);
  uint8_t k[1 + CTR_NAME_MAX];
  size_t kl;
  int rc = ctr_key(name, k, &kl, "Ops.AllocateIds");
  if (rc) return rc;
  if (count == 0) return strata_err(STRATA_EINVALID, "counter %s: count must be >= 1", name);
  strata_mutex_lock(&ct->mu);
  uint64_t next;
  if ((rc = read_next(ct, k, kl, &next, "Ops.AllocateIds"))) goto out;
  if (count > UINT64_MAX - next) {
    rc = strata_err(STRATA_ERANGE, "counter %s: %" PRIu64 " ids from %" PRIu64 " pass 2^64-1",
                    name, count, next);
    goto out;
  }
  uint8_t v[8];
  lk__put64(v, next + count);
  if ((rc = lk__put_sync(ct->lk, k, kl, v, 8, "allocating ids"))) goto out;
  *first = next;
out:
  strata_mutex_unlock(&ct->mu);
  return rc;
}

int ctr_peek(ctr_table *ct, const char *name, uint64_t *next) {
  assert(ct && next);
  uint8_t k[1 + CTR_NAME_MAX];
  size_t kl;
  int rc = ctr_key(name, k, &kl, "reading an id counter");
  if (rc) return rc;
  strata_mutex_lock(&ct->mu);
  rc = read_next(ct, k, kl, next, "reading an id counter");
  strata_mutex_unlock(&ct->mu);
  return rc;
}
