/*
 * lk_selfcheck: the lock table's invariants, checked over the whole table
 * with every partition mutex held (README "Self-check").
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/keyshow.h"
#include "locks/lk_int.h"

static int bad(const lk__rowent *e, const char *what) {
  char kb[STRATA_KEY_SHOW_BUF];
  strata_key_show(e->key, e->len, kb, sizeof kb);
  return strata_err(STRATA_ECORRUPT, "lock table self-check: row %s: %s", kb, what);
}

static int slot_ok(const lk__slot *s, uint64_t hwm) {
  return !s->op || (s->token != 0 && s->token <= hwm && s->acquired_at <= s->expires_at);
}

/* One entry's own invariants; counts into info. */
static int check_entry(lk_manager *lk, unsigned part, size_t bucket, const lk__rowent *e,
                       int64_t now, uint64_t hwm, lk_selfcheck_info *info) {
  lk__part *p = &lk->parts[part];
  if (e->hash != lk__hash(e->key, e->len) || (e->hash & (p->nbuckets - 1)) != bucket ||
      lk__part_of(lk, e->key, e->len) != part)
    return bad(e, "in the wrong partition or bucket");
  if (!e->tmp.op && !e->ind.op && !e->qhead && !e->pins)
    return bad(e, "entry neither held, waited for nor pinned (should have been freed)");
  if (!slot_ok(&e->tmp, hwm) || !slot_ok(&e->ind, hwm))
    return bad(e, "slot with token 0, a token above the high-water mark, or acquired after expiry");
  if (e->ind.op && e->ind.expires_at != LK_NEVER) return bad(e, "indefinite slot with an expiry");
  if (e->tmp.op && e->tmp.expires_at == LK_NEVER) return bad(e, "temporal slot that never expires");
  /* Rows are exclusive: at most one op holds a row, whatever the kinds. */
  int tmp_holds = lk__tmp_blocks(e, now);
  if (e->ind.op && tmp_holds && e->tmp.op != e->ind.op) {
    char msg[160];
    snprintf(msg, sizeof msg, "two holders: op %" PRIu64 " (temporal) and op %" PRIu64 " (indefinite)",
             e->tmp.op, e->ind.op);
    return bad(e, msg);
  }
  if (e->ind.op && e->tmp.op == e->ind.op)
    return bad(e, "one op holds both slots (an upgrade leaves only the indefinite one)");
  if (e->pins && !(tmp_holds || e->ind.op)) return bad(e, "pinned but not held");
  info->rows++;
  info->held_rows += tmp_holds || e->ind.op;
  info->pinned_rows += e->pins != 0;
  const lk__wnode *prev = NULL;
  for (const lk__wnode *n = e->qhead; n; prev = n, n = n->next) {
    if (n->prev != prev || !n->w || !n->w->op) return bad(e, "wait queue badly linked");
    info->queued++;
  }
  if (e->qtail != prev) return bad(e, "wait queue tail is not its last node");
  return 0;
}

static int same_slot(const lk__slot *a, const lk__slot *b) {
  return a->op == b->op && (!a->op || (a->token == b->token && a->acquired_at == b->acquired_at &&
                                       a->expires_at == b->expires_at));
}

/* The durable records equal the table; every indefinite slot has its scope key. */
static int check_disk(lk_manager *lk, uint64_t mem_records, lk_selfcheck_info *info) {
  char *err = NULL;
  int rc = lk__db_enter(lk, "self-check"); /* the handle may be reopened after a full disk */
  if (rc) return rc;
  rocksdb_iterator_t *it = rocksdb_create_iterator(lk->db, lk->ro);
  const char tag = LK__TAG_LOCK;
  for (rocksdb_iter_seek(it, &tag, 1); !rc && rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl < 2 || k[0] != LK__TAG_LOCK) break;
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
    lk__slot tmp, ind;
    if ((rc = lk__rec_decode(v, vl, &tmp, &ind))) break;
    info->records++;
    const uint8_t *key = k + 1;
    size_t len = kl - 1;
    const lk__rowent *e = lk__row_find(&lk->parts[lk__part_of(lk, key, len)], key, len, lk__hash(key, len));
    char kb[STRATA_KEY_SHOW_BUF];
    if (!e || !same_slot(&e->tmp, &tmp) || !same_slot(&e->ind, &ind)) {
      strata_key_show(key, len, kb, sizeof kb);
      rc = strata_err(STRATA_ECORRUPT, "lock table self-check: row %s: the durable record differs from memory", kb);
      break;
    }
    if (ind.op) {
      uint8_t sk[9 + LK_KEY_MAX];
      sk[0] = LK__TAG_SCOPE;
      lk__put64(sk + 1, ind.op);
      memcpy(sk + 9, key, len);
      size_t n = 0;
      char *val = rocksdb_get(lk->db, lk->ro, (const char *)sk, 9 + len, &n, &err);
      free(val);
      if (err) {
        rc = lk__dberr(err, "self-check: reading a scope key");
        break;
      }
      if (!val) {
        strata_key_show(key, len, kb, sizeof kb);
        rc = strata_err(STRATA_ECORRUPT, "lock table self-check: row %s: held indefinitely by op %" PRIu64
                        " but not in its scope", kb, ind.op);
      }
    }
  }
  if (!rc) {
    rocksdb_iter_get_error(it, &err);
    if (err) rc = lk__dberr(err, "self-check: scanning lock records");
  }
  rocksdb_iter_destroy(it);
  lk__db_leave(lk);
  if (!rc && info->records != mem_records)
    rc = strata_err(STRATA_ECORRUPT, "lock table self-check: %" PRIu64 " held rows in memory, %" PRIu64
                    " lock records on disk", mem_records, info->records);
  return rc;
}

int lk_selfcheck(lk_manager *lk, int disk, lk_selfcheck_info *out) {
  assert(lk /* out may be NULL */);
  lk_selfcheck_info info;
  memset(&info, 0, sizeof info);
  int rc = 0;
  lk__prep all = {.all = 1};
  lk__lock_parts(lk, &all);
  int64_t now = lk_now(lk);
  uint64_t hwm = atomic_load(&lk->token_hwm), mem_records = 0;
  for (unsigned p = 0; !rc && p < lk->nparts; p++) {
    size_t count = 0;
    for (size_t b = 0; !rc && b < lk->parts[p].nbuckets; b++)
      for (const lk__rowent *e = lk->parts[p].buckets[b]; !rc && e; e = e->next) {
        count++;
        mem_records += e->tmp.op || e->ind.op;
        rc = check_entry(lk, p, b, e, now, hwm, &info);
      }
    if (!rc && count != lk->parts[p].count)
      rc = strata_err(STRATA_ECORRUPT, "lock table self-check: partition %u counts %zu rows, holds %zu", p,
                      lk->parts[p].count, count);
  }
  if (!rc && disk) rc = check_disk(lk, mem_records, &info);
  strata_mutex_lock(&lk->pin_mu);
  info.pin_waiters = lk->pin_waiters;
  strata_mutex_unlock(&lk->pin_mu);
  lk__unlock_parts(lk, &all);
  if (out) *out = info;
  return rc;
}
