/*
 * The op log: 'O' op(8) records with ids handed out in order under one
 * mutex, and the op's scope read from the 'S' op(8) row keys that lk_acquire
 * and lk_release maintain in their own batches.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/buf.h"
#include "common/err.h"
#include "locks/lk_int.h"

/* Op record: version(1) created_at(8) status_at(8) base_generation(8)
 * status(1) user_len(2) user kind_len(2) kind payload_len(4) payload
 * exception_len(4) exception. */
#define OP_REC_VERSION 1

oplog *lk_oplog(lk_manager *lk) { return &lk->oplog; }

const char *oplog_status_name(oplog_status s) {
  switch (s) {
  case OPLOG_CREATED: return "CREATED";
  case OPLOG_WRITE_STARTED: return "WRITE_STARTED";
  case OPLOG_SUCCESS: return "SUCCESS";
  case OPLOG_EXCEPTION: return "EXCEPTION";
  case OPLOG_WRITE_FAILED: return "WRITE_FAILED";
  }
  return "UNKNOWN";
}

uint64_t oplog_last_id(oplog *ol) { return atomic_load(&ol->last_id); }

static void op_key(uint8_t k[9], uint64_t id) {
  k[0] = LK__TAG_OP;
  lk__put64(k + 1, id);
}

int lk__oplog_load(lk_manager *lk) {
  uint8_t k[9];
  op_key(k, UINT64_MAX);
  rocksdb_iterator_t *it = rocksdb_create_iterator(lk->db, lk->ro);
  rocksdb_iter_seek_for_prev(it, (const char *)k, sizeof k);
  uint64_t last = 0;
  if (rocksdb_iter_valid(it)) {
    size_t kl;
    const uint8_t *ik = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl == 9 && ik[0] == LK__TAG_OP) last = lk__get64(ik + 1);
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  rocksdb_iter_destroy(it);
  if (err) return lk__dberr(err, "loading the op log");
  atomic_store(&lk->oplog.last_id, last);
  return 0;
}

static int encode(const oplog_op *op, strata_buf *b) {
  size_t ul = strlen(op->user), kl = strlen(op->kind), el = strlen(op->exception);
  int rc = strata_buf_reserve(b, 1 + 24 + 1 + 2 + ul + 2 + kl + 4 + op->payload_len + 4 + el);
  if (rc) return rc;
  uint8_t h[26];
  h[0] = OP_REC_VERSION;
  lk__put64(h + 1, (uint64_t)op->created_at);
  lk__put64(h + 9, (uint64_t)op->status_at);
  lk__put64(h + 17, op->base_generation);
  h[25] = (uint8_t)op->status;
  strata_buf_put(b, h, sizeof h);
  uint8_t n[4] = {(uint8_t)(ul >> 8), (uint8_t)ul};
  strata_buf_put(b, n, 2);
  strata_buf_put(b, op->user, ul);
  n[0] = (uint8_t)(kl >> 8), n[1] = (uint8_t)kl;
  strata_buf_put(b, n, 2);
  strata_buf_put(b, op->kind, kl);
  n[0] = (uint8_t)(op->payload_len >> 24), n[1] = (uint8_t)(op->payload_len >> 16);
  n[2] = (uint8_t)(op->payload_len >> 8), n[3] = (uint8_t)op->payload_len;
  strata_buf_put(b, n, 4);
  strata_buf_put(b, op->payload, op->payload_len);
  n[0] = (uint8_t)(el >> 24), n[1] = (uint8_t)(el >> 16), n[2] = (uint8_t)(el >> 8), n[3] = (uint8_t)el;
  strata_buf_put(b, n, 4);
  strata_buf_put(b, op->exception, el);
  return 0;
}

/* Reads a length-prefixed field of w bytes' length into a fresh NUL-ended
 * copy, or with out NULL only steps over it. */
static int take(const uint8_t **p, const uint8_t *end, int w, uint8_t **out, size_t *len) {
  if (end - *p < w) return -1;
  size_t n = 0;
  for (int i = 0; i < w; i++) n = n << 8 | (*p)[i];
  *p += w;
  if ((size_t)(end - *p) < n) return -1;
  if (!out) {
    *p += n;
    return 0;
  }
  *out = malloc(n + 1);
  if (!*out) return -2;
  if (n) memcpy(*out, *p, n);
  (*out)[n] = 0;
  *p += n;
  *len = n;
  return 0;
}

#define OP_HEAD_LEN 26   /* version .. status: the fixed part of an op record */

static int head_ok(const uint8_t *v, size_t vl) {
  return vl >= OP_HEAD_LEN && v[0] == OP_REC_VERSION && v[25] <= OPLOG_WRITE_FAILED;
}

static int malformed(uint64_t id, size_t vl) {
  return strata_err(STRATA_ECORRUPT, "op log record of op %" PRIu64 " (%zu bytes) is malformed", id, vl);
}

/* Checks a record's layout without copying anything: 0 or STRATA_ECORRUPT. */
static int check_record(uint64_t id, const uint8_t *v, size_t vl) {
  const uint8_t *p = v + OP_HEAD_LEN, *end = v + vl;
  size_t len;
  if (!head_ok(v, vl) || take(&p, end, 2, NULL, &len) || take(&p, end, 2, NULL, &len) ||
      take(&p, end, 4, NULL, &len) || take(&p, end, 4, NULL, &len) || p != end)
    return malformed(id, vl);
  return 0;
}

static int decode(uint64_t id, const uint8_t *v, size_t vl, oplog_op *op) {
  memset(op, 0, sizeof *op);
  op->id = id;
  const uint8_t *p = v, *end = v + vl;
  size_t len;
  int r = -1;
  if (!head_ok(v, vl)) goto bad;
  op->created_at = (int64_t)lk__get64(v + 1);
  op->status_at = (int64_t)lk__get64(v + 9);
  op->base_generation = lk__get64(v + 17);
  op->status = (oplog_status)v[25];
  p += OP_HEAD_LEN;
  if ((r = take(&p, end, 2, (uint8_t **)&op->user, &len))) goto bad;
  if ((r = take(&p, end, 2, (uint8_t **)&op->kind, &len))) goto bad;
  if ((r = take(&p, end, 4, &op->payload, &op->payload_len))) goto bad;
  if ((r = take(&p, end, 4, (uint8_t **)&op->exception, &len))) goto bad;
  if (p != end) { r = -1; goto bad; }
  return 0;
bad:
  oplog_op_free(op);
  if (r == -2) return strata_err(STRATA_ENOMEM, "op %" PRIu64 ": decoding", id);
  return malformed(id, vl);
}

static int check_name(const char *s, const char *field) {
  if (!s || !s[0]) return strata_err(STRATA_EINVALID, "oplog_create: %s is empty", field);
  if (strlen(s) > OPLOG_NAME_MAX)
    return strata_err(STRATA_EINVALID, "oplog_create: %s is %zu bytes, at most %u", field,
                      strlen(s), OPLOG_NAME_MAX);
  return 0;
}

int oplog_create(oplog *ol, const char *user, const char *kind, const void *payload,
                 size_t payload_len, uint64_t base_generation, uint64_t *id, int64_t *created_at) {
  assert(ol && id /* created_at may be NULL */);
  int rc;
  if ((rc = check_name(user, "user")) || (rc = check_name(kind, "kind"))) return rc;
  if (payload_len > OPLOG_PAYLOAD_MAX)
    return strata_err(STRATA_EINVALID, "oplog_create: payload is %zu bytes, at most %u", payload_len,
                      OPLOG_PAYLOAD_MAX);
  if (payload_len && !payload)
    return strata_err(STRATA_EINVALID, "oplog_create: payload is NULL with payload_len %zu", payload_len);
  strata_buf b = STRATA_BUF_INIT;
  strata_mutex_lock(&ol->mu);
  uint64_t next = atomic_load(&ol->last_id) + 1;
  int64_t now = lk_now(ol->lk);
  oplog_op op = {.id = next, .created_at = now, .status_at = now, .base_generation = base_generation,
                 .status = OPLOG_CREATED, .user = (char *)user, .kind = (char *)kind,
                 .payload = (uint8_t *)payload, .payload_len = payload_len, .exception = ""};
  if ((rc = encode(&op, &b))) goto out;
  uint8_t k[9];
  op_key(k, next);
  if ((rc = lk__put_sync(ol->lk, k, 9, b.p, b.len, "creating an op"))) goto out;
  /* Published only after the durable write: ids stay dense, so "op exists"
   * is id <= last_id (lk_acquire relies on it). */
  atomic_store(&ol->last_id, next);
  *id = next;
  if (created_at) *created_at = now;
out:
  strata_mutex_unlock(&ol->mu);
  strata_buf_free(&b);
  return rc;
}

static int get_record(oplog *ol, uint64_t id, oplog_op *out, const char *fn) {
  uint8_t k[9];
  op_key(k, id);
  char *err = NULL;
  size_t vl = 0;
  int rc = lk__db_enter(ol->lk, fn);
  if (rc) return rc;
  char *v = rocksdb_get(ol->lk->db, ol->lk->ro, (const char *)k, 9, &vl, &err);
  lk__db_leave(ol->lk);
  if (err) return lk__dberr(err, fn);
  if (!v) return strata_err(STRATA_ENOTFOUND, "%s: op %" PRIu64 " does not exist (last op id is %" PRIu64 ")",
                            fn, id, oplog_last_id(ol));
  rc = decode(id, (const uint8_t *)v, vl, out);
  rocksdb_free(v);
  return rc;
}

int oplog_set_status(oplog *ol, uint64_t id, oplog_status status, const char *exception) {
  assert(ol /* exception may be NULL: none */);
  int rc;
  if ((unsigned)status > OPLOG_WRITE_FAILED)
    return strata_err(STRATA_EINVALID, "oplog_set_status: status %d is not a known status", (int)status);
  if (exception && strlen(exception) > OPLOG_EXCEPTION_MAX)
    return strata_err(STRATA_EINVALID, "oplog_set_status: exception text is %zu bytes, at most %u",
                      strlen(exception), OPLOG_EXCEPTION_MAX);
  oplog_op op;
  strata_buf b = STRATA_BUF_INIT;
  strata_mutex_lock(&ol->mu);
  if ((rc = get_record(ol, id, &op, "Ops.SetStatus"))) goto out;
  free(op.exception);
  op.exception = strdup(exception ? exception : "");
  op.status = status;
  op.status_at = lk_now(ol->lk);
  if (!op.exception) rc = strata_err(STRATA_ENOMEM, "Ops.SetStatus: out of memory");
  if (!rc) rc = encode(&op, &b);
  if (!rc) {
    uint8_t k[9];
    op_key(k, id);
    rc = lk__put_sync(ol->lk, k, 9, b.p, b.len, "setting an op's status");
  }
  oplog_op_free(&op);
out:
  strata_mutex_unlock(&ol->mu);
  strata_buf_free(&b);
  return rc;
}

/* Appends the op's scope rows ('S' op(8) row keys) to op->scope. */
static int read_scope(oplog *ol, oplog_op *op) {
  int rc = 0;
  uint8_t k[9];
  k[0] = LK__TAG_SCOPE;
  lk__put64(k + 1, op->id);
  size_t cap = 0;
  if ((rc = lk__db_enter(ol->lk, "reading op scope"))) return rc;
  rocksdb_iterator_t *it = rocksdb_create_iterator(ol->lk->db, ol->lk->ro);
  for (rocksdb_iter_seek(it, (const char *)k, 9); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl;
    const uint8_t *ik = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl <= 9 || memcmp(ik, k, 9) != 0) break;
    if (strata_grow(&op->scope, &cap, op->nscope + 1, sizeof *op->scope, 8)) {
      rc = strata_err(STRATA_ENOMEM, "op scope");
      goto out;
    }
    uint8_t *key = malloc(kl - 9);
    if (!key) { rc = strata_err(STRATA_ENOMEM, "op scope"); goto out; }
    memcpy(key, ik + 9, kl - 9);
    op->scope[op->nscope].key = key;
    op->scope[op->nscope++].len = kl - 9;
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err) rc = lk__dberr(err, "reading op scope");
out:
  rocksdb_iter_destroy(it);
  lk__db_leave(ol->lk);
  return rc;
}

int oplog_get(oplog *ol, uint64_t id, oplog_op *out) {
  assert(ol && out);
  int rc = get_record(ol, id, out, "Ops.Get");
  if (rc) return rc;
  if ((rc = read_scope(ol, out))) oplog_op_free(out);
  return rc;
}

void oplog_op_free(oplog_op *op) {
  free(op->user);
  free(op->kind);
  free(op->payload);
  free(op->exception);
  for (size_t i = 0; i < op->nscope; i++) free((void *)op->scope[i].key);
  free(op->scope);
  memset(op, 0, sizeof *op);
}

void oplog_ops_free(oplog_op *ops, size_t n) {
  for (size_t i = 0; i < n; i++) oplog_op_free(&ops[i]);
  free(ops);
}

/* The fixed header fields a listing filters on, read without decoding the
 * rest of the record (its payload may be 16 MiB). */
typedef struct op_head {
  int64_t created_at;
  oplog_status status;
} op_head;

/* Decides from its header whether a scanned op may be listed. */
int oplog_oldest_open_base(oplog *ol, uint64_t *gen) {
  assert(ol && gen);
  *gen = 0;
  int rc = lk__db_enter(ol->lk, "finding the oldest unfinished op's base");
  if (rc) return rc;
  rocksdb_iterator_t *it = rocksdb_create_iterator(ol->lk->db, ol->lk->ro);
  uint8_t k0[9];
  op_key(k0, 1);
  for (rocksdb_iter_seek(it, (const char *)k0, sizeof k0); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl != 9 || k[0] != LK__TAG_OP) break;
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
    if ((rc = check_record(lk__get64(k + 1), v, vl))) break;
    uint64_t base = lk__get64(v + 17);
    if ((oplog_status)v[25] != OPLOG_SUCCESS && base && (!*gen || base < *gen)) *gen = base;
  }
  char *err = NULL;
  if (!rc) rocksdb_iter_get_error(it, &err);
  if (err) rc = lk__dberr(err, "finding the oldest unfinished op's base");
  rocksdb_iter_destroy(it);
  lk__db_leave(ol->lk);
  return rc;
}

typedef int (*keep_fn)(const op_head *h, void *ctx);

/* Walks the op records in id order (from after_id up, or with newest_first
 * from below before_id down; before_id 0 = from the newest) and lists, with
 * their scopes, the ops whose header keep() accepts (and, with
 * need_scope, whose scope is not empty) until limit (0 = no limit). Every
 * record's layout is checked in place, but an op is decoded (its payload
 * copied) only once it is listed: a skipped record costs a header check
 * (and, with need_scope, a scope seek), never a copy. */
static int scan(oplog *ol, int newest_first, uint64_t after_id, uint64_t before_id, size_t limit,
                keep_fn keep, void *ctx, int need_scope, oplog_op **ops, size_t *n,
                const char *what) {
  int rc = 0;
  size_t cap = 0;
  *ops = NULL;
  *n = 0;
  uint8_t k0[9];
  if ((rc = lk__db_enter(ol->lk, what))) return rc;
  rocksdb_iterator_t *it = rocksdb_create_iterator(ol->lk->db, ol->lk->ro);
  if (newest_first) {
    op_key(k0, before_id ? before_id - 1 : UINT64_MAX);
    rocksdb_iter_seek_for_prev(it, (const char *)k0, sizeof k0);
  } else {
    op_key(k0, after_id == UINT64_MAX ? after_id : after_id + 1);
    rocksdb_iter_seek(it, (const char *)k0, sizeof k0);
  }
  for (; rocksdb_iter_valid(it) && (!limit || *n < limit);
       newest_first ? rocksdb_iter_prev(it) : rocksdb_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl != 9 || k[0] != LK__TAG_OP) break;
    uint64_t id = lk__get64(k + 1);
    if (newest_first ? (before_id && id >= before_id) : id <= after_id) break;
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
    if ((rc = check_record(id, v, vl))) goto out;
    op_head h = {(int64_t)lk__get64(v + 1), (oplog_status)v[25]};
    if (!keep(&h, ctx)) continue;
    oplog_op sc = {.id = id}; /* the scope, read before the full decode */
    if ((rc = read_scope(ol, &sc))) {
      oplog_op_free(&sc);
      goto out;
    }
    if (need_scope && sc.nscope == 0) {
      oplog_op_free(&sc);
      continue;
    }
    oplog_op op;
    if ((rc = decode(id, v, vl, &op))) {
      oplog_op_free(&sc);
      goto out;
    }
    op.scope = sc.scope;
    op.nscope = sc.nscope;
    if (strata_grow(ops, &cap, *n + 1, sizeof **ops, 8)) {
      oplog_op_free(&op);
      rc = strata_err(STRATA_ENOMEM, "%s: out of memory", what);
      goto out;
    }
    (*ops)[(*n)++] = op;
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err) rc = lk__dberr(err, what);
out:
  rocksdb_iter_destroy(it);
  lk__db_leave(ol->lk);
  if (rc) {
    oplog_ops_free(*ops, *n);
    *ops = NULL;
    *n = 0;
  }
  return rc;
}

typedef struct {
  int64_t now, min_age_ns;
} stuck_ctx;

static int keep_stuck(const op_head *h, void *ctx) {
  const stuck_ctx *c = ctx;
  return h->status != OPLOG_SUCCESS && c->now - h->created_at >= c->min_age_ns;
}

int oplog_list_stuck(oplog *ol, int64_t min_age_ns, oplog_op **ops, size_t *n) {
  assert(ol && ops && n);
  *ops = NULL;
  *n = 0;
  if (min_age_ns < 0)
    return strata_err(STRATA_EINVALID, "oplog_list_stuck: min_age_ns %" PRId64 " is negative", min_age_ns);
  stuck_ctx c = {lk_now(ol->lk), min_age_ns};
  return scan(ol, 0, 0, 0, 0, keep_stuck, &c, 1, ops, n, "Ops.ListStuck");
}

static int keep_status(const op_head *h, void *ctx) {
  const oplog_list_filter *f = ctx;
  return f->any_status || h->status == f->status;
}

int oplog_list(oplog *ol, const oplog_list_filter *f, oplog_op **ops, size_t *n) {
  assert(ol && f && ops && n);
  *ops = NULL;
  *n = 0;
  if (!f->any_status && (f->status < OPLOG_CREATED || f->status > OPLOG_WRITE_FAILED))
    return strata_err(STRATA_EINVALID, "oplog_list: unknown status %d", (int)f->status);
  return scan(ol, f->newest_first, f->after_id, f->before_id, f->limit, keep_status, (void *)f, 0,
              ops, n, "Ops.List");
}
