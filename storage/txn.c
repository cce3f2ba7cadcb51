/*
 * Building and submitting transactions: the st_txn_* calls, and the blocking
 * st_txn_commit wrapper. The committer (commit.c) takes them from the queue.
 */
#include <assert.h>
#include <blake2.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/mutex.h"
#include "common/err.h"
#include "storage/commit_int.h"

void st_value_hash(const void *p, size_t n, uint8_t out[ST_HASH_BYTES]) {
  blake2b(out, p, NULL, ST_HASH_BYTES, n, 0);
}

/* --- building ----------------------------------------------------------------- */

int st_txn_begin(st_db *db, st_txn **out) {
  assert(db && out);
  st_txn *t = calloc(1, sizeof *t);
  if (!t) return strata_err(STRATA_ENOMEM, "transaction");
  t->db = db;
  *out = t;
  return 0;
}

/* A failed call poisons its transaction (LMDB's MDB_BAD_TXN): every later
 * call and the submit return the first error, so nothing of a transaction
 * that lost an operation becomes visible. */
static int latch(st_txn *t, int rc) {
  if (rc && !t->err) {
    t->err = rc;
    t->errmsg = strdup(strata_errmsg());
  }
  return rc;
}

static int latched(const st_txn *t) {
  return strata_err(t->err, "the transaction failed earlier and is refused whole: %s",
                    t->errmsg ? t->errmsg : "(message lost)");
}

static int add_op_(st_txn *t, int kind, const void *key, size_t klen, const void *val, size_t vlen,
                  int copy, top **out) {
  if (klen > OCDBT_MAX_KEY_LENGTH)
    return strata_err(STRATA_EINVALID, "key of %zu bytes exceeds the limit of %u", klen,
                      OCDBT_MAX_KEY_LENGTH);
  if (strata_grow(&t->ops, &t->cap, t->n + 1, sizeof *t->ops, 8)) return strata_err(STRATA_ENOMEM, "transaction");
  size_t extra = copy ? vlen : 0;
  uint8_t *k = malloc(klen + extra + 1);
  if (!k) return strata_err(STRATA_ENOMEM, "transaction: %zu bytes", klen + extra);
  top *o = &t->ops[t->n++];
  memset(o, 0, sizeof *o);
  o->kind = kind;
  if (klen) memcpy(k, key, klen);
  o->key = k;
  o->klen = klen;
  if (copy) {
    if (vlen) memcpy(k + klen, val, vlen);
    o->val = k + klen;
  } else {
    o->val = val;
  }
  o->vlen = vlen;
  if (out) *out = o;
  return 0;
}

static int add_op(st_txn *t, int kind, const void *key, size_t klen, const void *val, size_t vlen,
                  int copy, top **out) {
  assert(t);
  assert(key || klen == 0);
  assert(val || vlen == 0);
  if (t->err) return latched(t);
  return latch(t, add_op_(t, kind, key, klen, val, vlen, copy, out));
}

int st_txn_put(st_txn *t, const void *key, size_t klen, const void *val, size_t vlen) {
  return add_op(t, OP_PUT, key, klen, val, vlen, 1, NULL);
}

int st_txn_put_borrowed(st_txn *t, const void *key, size_t klen, const void *val, size_t vlen) {
  return add_op(t, OP_PUT, key, klen, val, vlen, 0, NULL);
}

static int put_ref(st_txn *t, const void *key, size_t klen, const char *path, uint64_t offset,
                   uint64_t length);

int st_txn_put_ref(st_txn *t, const void *key, size_t klen, const char *path, uint64_t offset,
                   uint64_t length) {
  assert(t && path);
  assert(key || klen == 0);
  if (t->err) return latched(t);
  return latch(t, put_ref(t, key, klen, path, offset, length));
}

static int put_ref(st_txn *t, const void *key, size_t klen, const char *path, uint64_t offset,
                   uint64_t length) {
  size_t pl = strlen(path);
  if (pl < 3 || strncmp(path, ST_DATA_DIR "/", 2) || strstr(path, "..") || strstr(path, "//"))
    return strata_err(STRATA_EINVALID, "data reference %s: must name a file inside " ST_DATA_DIR "/", path);
  if (st__is_data_file_name(path + 2))
    return strata_err(STRATA_EINVALID,
                      "data reference %s: 32 hex digits is the name of Strata's own data files "
                      "(open removes such a file of an uncommitted generation); use another name",
                      path);
  if (offset > (UINT64_MAX >> 1) || length > (UINT64_MAX >> 1) - offset)
    return strata_err(STRATA_EINVALID, "data reference %s: range out of bounds", path);
  /* Copy the path before adding the op: a failed copy must not leave an op
   * without a path behind. */
  char *pcopy = strdup(path);
  if (!pcopy) return strata_err(STRATA_ENOMEM, "transaction");
  top *o;
  int rc = add_op(t, OP_PUT_REF, key, klen, NULL, 0, 0, &o);
  if (rc) {
    free(pcopy);
    return rc;
  }
  o->path = pcopy;
  o->off = offset;
  o->len = length;
  return 0;
}

int st_txn_delete(st_txn *t, const void *key, size_t klen) {
  return add_op(t, OP_DELETE, key, klen, NULL, 0, 0, NULL);
}

int st_txn_require_absent(st_txn *t, const void *key, size_t klen) {
  top *o;
  int rc = add_op(t, OP_COND, key, klen, NULL, 0, 0, &o);
  if (!rc) {
    o->cond = ST_COND_ABSENT;
    o->cond_index = t->nconds++;
  }
  return rc;
}

int st_txn_require_unchanged(st_txn *t, const void *key, size_t klen, uint64_t since) {
  top *o;
  int rc = add_op(t, OP_COND, key, klen, NULL, 0, 0, &o);
  if (!rc) {
    o->cond = ST_COND_UNCHANGED_SINCE;
    o->cond_index = t->nconds++;
    o->since = since;
  }
  return rc;
}

int st_txn_require_hash(st_txn *t, const void *key, size_t klen, const uint8_t hash[ST_HASH_BYTES]) {
  assert(hash);
  top *o;
  int rc = add_op(t, OP_COND, key, klen, NULL, 0, 0, &o);
  if (!rc) {
    o->cond = ST_COND_HASH;
    o->cond_index = t->nconds++;
    memcpy(o->hash, hash, ST_HASH_BYTES);
  }
  return rc;
}

void st_txn_set_fence(st_txn *t, st_fence_fn fn, void *ctx) {
  assert(t);
  t->fence = fn;
  t->fence_ctx = ctx;
}

void st_txn_set_fence_done(st_txn *t, st_fence_done_fn done) { t->fence_done = done; }

void st_txn_abort(st_txn *t) {
  if (!t) return;
  for (size_t i = 0; i < t->n; i++) {
    free(t->ops[i].key);
    free(t->ops[i].path);
  }
  free(t->ops);
  free(t->errmsg);
  free(t);
}

int st_txn_submit(st_txn *t, st_done_fn done, void *ctx) {
  assert(t && t->db /* done may be NULL */);
  st_db *db = t->db;
  int rc = 0;
  t->done = done;
  t->done_ctx = ctx;
  t->next = NULL;
  if (t->err) {
    rc = latched(t);
    st_txn_abort(t);
    return rc;
  }
  strata_mutex_lock(&db->mu);
  if (db->read_only) rc = strata_err(STRATA_EINVALID, "%s: database is open read-only", db->path);
  else if (db->closing) rc = strata_err(STRATA_ESHUTDOWN, "%s: database is closing", db->path);
  if (!rc) {
    if (db->q_tail) db->q_tail->next = t;
    else db->q_head = t;
    db->q_tail = t;
    db->q_len++;
    /* A lingering committer wants the whole group, not a wake-up per member. */
    if (!db->linger_for || db->q_len >= db->linger_for) pthread_cond_signal(&db->cv);
  }
  strata_mutex_unlock(&db->mu);
  if (rc) st_txn_abort(t);
  return rc;
}

/* A blocking commit's wait: a futex word, not a mutex and condition
 * variable. The completion (on the committer thread) stores 1 and wakes; the
 * caller re-checks the word after every return from the wait. So a wake costs
 * one system call and the woken caller runs at once instead of
 * first blocking on a mutex the waker still holds (16 such wakes took a sixth
 * of a group's time). The wake may come after the caller has returned and its
 * frame is reused: a futex wake of an address nobody waits on does nothing,
 * and a waiter that later waits there takes it as a spurious wake-up. */
typedef struct waiter {
  _Atomic uint32_t done;
  st_result *res;
} waiter;

static void wake(void *ctx, const st_result *res) {
  waiter *w = ctx;
  *w->res = *res;
  w->res->failed_key = NULL;
  if (res->failed_key) {
    uint8_t *k = malloc(res->failed_key_len + 1);
    if (k) {
      memcpy(k, res->failed_key, res->failed_key_len);
      w->res->failed_key = k;
    }
  }
  atomic_store_explicit(&w->done, 1, memory_order_release);
  syscall(SYS_futex, &w->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

int st_txn_commit(st_txn *t, st_result *res) {
  assert(t && res);
  waiter w;
  memset(res, 0, sizeof *res);
  atomic_init(&w.done, 0);
  w.res = res;
  int rc = st_txn_submit(t, wake, &w);
  if (rc) {
    res->rc = rc;
    snprintf(res->message, sizeof res->message, "%s", strata_errmsg());
  } else {
    while (!atomic_load_explicit(&w.done, memory_order_acquire))
      syscall(SYS_futex, &w.done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0); /* EAGAIN, EINTR: re-check */
  }
  return res->rc;
}

void st_result_free(st_result *res) {
  assert(res);
  free((void *)res->failed_key);
  res->failed_key = NULL;
}
