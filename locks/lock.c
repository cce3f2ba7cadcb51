/*
 * Acquire, renew and release over the partitioned lock table (check and the
 * fence hooks are in fence.c, the self-check in selfcheck.c). Every
 * operation sorts its rows by (partition, key), takes the partition mutexes
 * in ascending partition order, decides against the in-memory table, writes
 * one RocksDB batch without syncing it while still holding the mutexes,
 * applies it to memory, releases the mutexes, and only then waits for a WAL
 * sync covering the batch before answering (README "Durability order").
 * Waiting acquires queue on every row they need, FIFO per row (README
 * "Waiting"). A release that would free a row pinned by a fenced commit in
 * flight waits for the pin to go (README "Fences hold").
 */
#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "locks/lk_int.h"

/* --- the request's entries (its rows are prepared in prep.c) ------------ */

/* Creates missing entries so the batch can be applied without allocating
 * after the durable write. On failure frees what it created. */
static int make_ents(lk_manager *lk, lk__prep *pr) {
  for (size_t i = 0; i < pr->n; i++) {
    lk__req_row *r = &pr->rows[i];
    if (r->ent) continue;
    int rc = lk__row_insert(&lk->parts[r->part], r->key, r->len, r->hash, &r->ent);
    if (rc) {
      for (size_t j = 0; j < i; j++) lk__row_maybe_free(&lk->parts[pr->rows[j].part], pr->rows[j].ent);
      return rc;
    }
  }
  return 0;
}

/* Frees the entries nobody holds or waits for (those make_ents created for
 * a grant that failed); the others stay found. */
static void free_unused_ents(lk_manager *lk, lk__prep *pr) {
  for (size_t i = 0; i < pr->n; i++)
    if (pr->rows[i].ent && lk__row_maybe_free(&lk->parts[pr->rows[i].part], pr->rows[i].ent))
      pr->rows[i].ent = NULL;
}

/* --- conflicts ----------------------------------------------------------- */

typedef struct clist {
  lk_conflict *v;
  size_t n, cap;
} clist;

static int clist_add(clist *c, size_t row, const lk__slot *s, lk_kind kind, int queued) {
  if (strata_grow(&c->v, &c->cap, c->n + 1, sizeof *c->v, 8))
    return strata_err(STRATA_ENOMEM, "conflict list of %zu entries", c->n + 1);
  lk_conflict *x = &c->v[c->n++];
  x->row = row;
  x->holder_op = s ? s->op : 0;
  x->kind = kind;
  x->acquired_at = s ? s->acquired_at : 0;
  x->expires_at = s ? s->expires_at : 0;
  x->queued = queued;
  return 0;
}

/* The conflict rule (README "Rows are exclusive"): does slot s (of kind
 * s_kind) keep a request by another op than its holder out of e? Every held
 * slot does, whatever the kinds, except a temporal slot that has expired and
 * is not pinned by a fenced commit in flight. */
static int slot_blocks(const lk__rowent *e, const lk__slot *s, lk_kind s_kind, uint64_t op,
                       int64_t now) {
  if (!s->op || s->op == op) return 0;
  return s_kind == LK_TEMPORAL ? lk__tmp_blocks(e, now) : 1;
}

typedef struct verdict {
  int blocked;          /* some row conflicts */
  int all_held;         /* op already holds every row in the requested kind */
  int64_t wake_at;      /* earliest expiry of a blocking temporal slot */
} verdict;

/* Decides a request against the table; self is the request's own waiter
 * when it is queued (only waiters ahead of it count), else NULL. Fills c
 * when given. Partition mutexes held, find_ents done. */
static int evaluate(const lk_acquire_req *q, lk__prep *pr, const lk__waiter *self, int64_t now,
                    verdict *v, clist *c) {
  int rc = 0;
  v->blocked = 0;
  v->all_held = 1;
  v->wake_at = INT64_MAX;
  for (size_t i = 0; i < pr->n; i++) {
    const lk__rowent *e = pr->rows[i].ent;
    size_t idx = pr->rows[i].idx;
    int held = e && (q->kind == LK_TEMPORAL ? lk__holds(e, q->op, now) : e->ind.op == q->op);
    if (!held) v->all_held = 0;
    if (!e) continue;
    int row_blocked = 0;
    if (slot_blocks(e, &e->tmp, LK_TEMPORAL, q->op, now)) {
      row_blocked = 1;
      /* A pinned slot past its expiry frees up when its commit is decided,
       * which kicks the row's waiters: no wake-up time for it. */
      if (lk__live(&e->tmp, now) && e->tmp.expires_at < v->wake_at) v->wake_at = e->tmp.expires_at;
      if (c && (rc = clist_add(c, idx, &e->tmp, LK_TEMPORAL, 0))) return rc;
    }
    if (slot_blocks(e, &e->ind, LK_INDEFINITE, q->op, now)) {
      row_blocked = 1;
      if (c && (rc = clist_add(c, idx, &e->ind, LK_INDEFINITE, 0))) return rc;
    }
    /* FIFO: an earlier waiter of another op keeps the row for itself, unless
     * this op already holds the row (an upgrade or an extension of a set). */
    if (!row_blocked && !lk__holds(e, q->op, now)) {
      for (const lk__wnode *n = e->qhead; n && n->w != self; n = n->next) {
        if (n->w->op == q->op) continue;
        row_blocked = 1;
        lk__slot s = {.op = n->w->op};
        if (c && (rc = clist_add(c, idx, &s, LK_TEMPORAL, 1))) return rc;
        break;
      }
    }
    if (row_blocked) v->blocked = 1;
  }
  if (v->all_held) v->blocked = 0;
  return 0;
}

/* --- durable changes ----------------------------------------------------- */

static void key_with_tag(uint8_t *buf, char tag, const uint8_t *key, size_t len) {
  buf[0] = (uint8_t)tag;
  memcpy(buf + 1, key, len);
}

static void put_record(rocksdb_writebatch_t *b, const uint8_t *key, size_t len,
                       const lk__slot *tmp, const lk__slot *ind) {
  uint8_t k[1 + LK_KEY_MAX];
  key_with_tag(k, LK__TAG_LOCK, key, len);
  if (!tmp->op && !ind->op) {
    rocksdb_writebatch_delete(b, (const char *)k, 1 + len);
    return;
  }
  uint8_t v[LK__REC_LEN];
  lk__rec_encode(tmp, ind, v);
  rocksdb_writebatch_put(b, (const char *)k, 1 + len, (const char *)v, sizeof v);
}

static void scope_key(uint8_t *k, uint64_t op, const uint8_t *key, size_t len) {
  k[0] = LK__TAG_SCOPE;
  lk__put64(k + 1, op);
  memcpy(k + 9, key, len);
}

/* Expiry of a temporal lock taken at now for ttl_ns > 0. Callers validate
 * ttl_ns against a clock reading taken earlier, so a later now could push
 * the sum past INT64_MAX: saturate instead. The ceiling is LK_NEVER - 1
 * because LK_NEVER means "indefinite" in results and on the wire. */
static int64_t temporal_expiry(int64_t now, int64_t ttl_ns) {
  assert(ttl_ns > 0);
  if (now >= 0 && ttl_ns > LK_NEVER - 1 - now) return LK_NEVER - 1;
  return now + ttl_ns;
}

/* Does now + ttl_ns overflow the clock? (now may be any clock value.) */
static int ttl_overflows(int64_t now, int64_t ttl_ns) {
  return now > 0 && ttl_ns > LK_NEVER - now;
}

/* Grants q (not blocked, not all held) in one durable batch, then applies
 * it to memory. Partition mutexes held, find_ents done. */
static int grant(lk_manager *lk, const lk_acquire_req *q, lk__prep *pr, int64_t now, lk_result *res) {
  lk__assert_parts_held(lk, pr);
  int rc = make_ents(lk, pr);
  if (rc) return rc;
  lk__slot *nt = malloc(pr->n * 2 * sizeof *nt);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  if (!nt) {
    rc = strata_err(STRATA_ENOMEM, "acquire of %zu rows", pr->n);
    goto out;
  }
  uint64_t token = atomic_fetch_add(&lk->token_hwm, 1) + 1;
  int64_t exp = q->kind == LK_TEMPORAL ? temporal_expiry(now, q->ttl_ns) : LK_NEVER;
  res->expires_at = LK_NEVER;
  for (size_t i = 0; i < pr->n; i++) {
    const lk__rowent *e = pr->rows[i].ent;
    lk__slot tmp = e->tmp, ind = e->ind;
    lk__slot mine = {q->op, token, now, exp};
    if (tmp.op && !lk__live(&tmp, now)) memset(&tmp, 0, sizeof tmp); /* expired: tidy up */
    if (q->kind == LK_INDEFINITE) {
      ind = mine;
      if (tmp.op == q->op) memset(&tmp, 0, sizeof tmp); /* upgrade */
      uint8_t k[9 + LK_KEY_MAX];
      scope_key(k, q->op, e->key, e->len);
      rocksdb_writebatch_put(b, (const char *)k, 9 + e->len, "", 0);
    } else if (ind.op != q->op) {
      tmp = mine; /* rows held indefinitely by the same op stay indefinite */
    }
    if (tmp.op == q->op && tmp.expires_at < res->expires_at) res->expires_at = tmp.expires_at;
    nt[2 * i] = tmp;
    nt[2 * i + 1] = ind;
    put_record(b, e->key, e->len, &tmp, &ind);
  }
  /* Token high-water, on the lowest partition: that partition's mutex orders
   * these writes, so its value only grows (README "Fencing tokens"). */
  uint8_t tk[3], tv[8];
  tk[0] = LK__TAG_TOKEN;
  tk[1] = (uint8_t)(pr->parts[0] >> 8);
  tk[2] = (uint8_t)pr->parts[0];
  lk__put64(tv, token);
  rocksdb_writebatch_put(b, (const char *)tk, 3, (const char *)tv, 8);
  uint64_t seq;
  if ((rc = lk__write(lk, b, "acquire", &seq))) goto out;
  for (size_t i = 0; i < pr->n; i++) {
    pr->rows[i].ent->tmp = nt[2 * i];
    pr->rows[i].ent->ind = nt[2 * i + 1];
    pr->rows[i].ent->wseq = seq;
  }
  pr->need = seq;
  res->status = LK_GRANTED;
  res->token = token;
out:
  if (rc) free_unused_ents(lk, pr);
  rocksdb_writebatch_destroy(b);
  free(nt);
  return rc;
}

/* The grant already in place: token and earliest expiry over the rows. */
static void fill_already_held(const lk_acquire_req *q, lk__prep *pr, lk_result *res) {
  res->status = LK_GRANTED;
  res->already_held = 1;
  res->token = 0;
  res->expires_at = LK_NEVER;
  for (size_t i = 0; i < pr->n; i++) {
    const lk__rowent *e = pr->rows[i].ent;
    const lk__slot *s = e->ind.op == q->op ? &e->ind : &e->tmp;
    if (s->token > res->token) res->token = s->token;
    if (s->expires_at < res->expires_at) res->expires_at = s->expires_at;
  }
}

/* --- waiting ------------------------------------------------------------- */

void lk__waiter_kick(lk__waiter *w) {
  strata_mutex_lock(&w->mu);
  w->kicked = 1;
  pthread_cond_signal(&w->cv);
  strata_mutex_unlock(&w->mu);
}

void lk__kick_row(lk__rowent *e, const lk__waiter *self) {
  for (lk__wnode *n = e->qhead; n; n = n->next)
    if (n->w != self) lk__waiter_kick(n->w);
}

static int enqueue(lk_manager *lk, lk__prep *pr, lk__waiter *w) {
  int rc = make_ents(lk, pr);
  if (rc) return rc;
  for (size_t i = 0; i < pr->n; i++) {
    lk__rowent *e = pr->rows[i].ent;
    lk__wnode *n = &w->nodes[i];
    n->w = w;
    n->next = NULL;
    n->prev = e->qtail;
    if (e->qtail) e->qtail->next = n; else e->qhead = n;
    e->qtail = n;
  }
  return 0;
}

/* Leaves every queue, wakes those behind (they may now go first) and frees
 * entries nobody needs. Partition mutexes held. */
static void dequeue(lk_manager *lk, lk__prep *pr, lk__waiter *w) {
  lk__assert_parts_held(lk, pr);
  for (size_t i = 0; i < pr->n; i++) {
    lk__rowent *e = pr->rows[i].ent;
    lk__wnode *n = &w->nodes[i];
    if (n->prev) n->prev->next = n->next; else e->qhead = n->next;
    if (n->next) n->next->prev = n->prev; else e->qtail = n->prev;
    lk__kick_row(e, w);
    lk__row_maybe_free(&lk->parts[pr->rows[i].part], e);
    pr->rows[i].ent = NULL;
  }
}

/* Sleeps until kicked or for at most ns nanoseconds. */
static void wait_kick(lk__waiter *w, int64_t ns) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  int64_t t = (int64_t)ts.tv_nsec + (ns > 0 ? ns : 0);
  ts.tv_sec += t / 1000000000;
  ts.tv_nsec = t % 1000000000;
  strata_mutex_lock(&w->mu);
  while (!w->kicked) {
    if (strata_cond_timedwait(&w->cv, &w->mu, &ts) != 0) break;
  }
  w->kicked = 0;
  strata_mutex_unlock(&w->mu);
}

/* The waiting part of lk_acquire: called with the partition mutexes held
 * and the request blocked; returns with them released. */
static int acquire_wait(lk_manager *lk, const lk_acquire_req *q, lk__prep *pr, lk_result *res) {
  lk__assert_parts_held(lk, pr);
  int rc = 0;
  lk__waiter w = {.op = q->op};
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  strata_mutex_init(&w.mu);
  pthread_cond_init(&w.cv, &ca);
  pthread_condattr_destroy(&ca);
  w.nodes = calloc(pr->n, sizeof *w.nodes);
  if (!w.nodes) {
    rc = strata_err(STRATA_ENOMEM, "waiting acquire of %zu rows", pr->n);
    lk__unlock_parts(lk, pr);
    goto done;
  }
  if ((rc = enqueue(lk, pr, &w))) {
    lk__unlock_parts(lk, pr);
    goto done;
  }
  for (;;) {
    int64_t now = lk_now(lk);
    verdict v;
    if (atomic_load(&lk->shutting_down)) {
      rc = strata_err(STRATA_ESHUTDOWN, "acquire by op %" PRIu64 ": lock manager shutting down", q->op);
      break;
    }
    int gone = q->abandoned ? q->abandoned(q->abandoned_ctx) : 0;
    if (gone) {
      rc = strata_err(gone, "acquire by op %" PRIu64 ": the caller stopped waiting", q->op);
      break;
    }
    lk__find_ents(lk, pr);
    int timed_out = now >= q->wait_deadline;
    clist c = {0};
    if ((rc = evaluate(q, pr, &w, now, &v, timed_out ? &c : NULL))) {
      free(c.v);
      break;
    }
    if (!v.blocked) {
      free(c.v);
      if (v.all_held) fill_already_held(q, pr, res);
      else rc = grant(lk, q, pr, now, res);
      break;
    }
    if (timed_out) {
      res->status = LK_TIMEDOUT;
      res->conflicts = c.v;
      res->nconflicts = c.n;
      break;
    }
    lk__unlock_parts(lk, pr);
    int64_t until = q->wait_deadline < v.wake_at ? q->wait_deadline : v.wake_at;
    int64_t ns = until - now;
    if (ns > lk->wait_poll_ns) ns = lk->wait_poll_ns;
    wait_kick(&w, ns);
    lk__lock_parts(lk, pr);
  }
  /* Our queue nodes keep every entry alive; this refreshes pr->need (the
   * rows' last writes) for every way out of the loop. */
  lk__find_ents(lk, pr);
  dequeue(lk, pr, &w);
  lk__unlock_parts(lk, pr);
done:
  free(w.nodes);
  pthread_cond_destroy(&w.cv);
  strata_mutex_destroy(&w.mu);
  return rc;
}

/* --- public entry points ------------------------------------------------- */

int lk__check_op(uint64_t op, const char *fn) {
  return op ? 0 : strata_err(STRATA_EINVALID, "%s: op id 0 is not an operation", fn);
}

int lk_acquire(lk_manager *lk, const lk_acquire_req *q, lk_result *res) {
  int rc;
  lk__prep pr;
  assert(lk && q && res);
  memset(res, 0, sizeof *res);
  if ((rc = lk__check_op(q->op, "lk_acquire"))) return rc;
  if ((rc = lk__check_rows(q->rows, q->nrows, "lk_acquire rows"))) return rc;
  if (q->kind != LK_TEMPORAL && q->kind != LK_INDEFINITE)
    return strata_err(STRATA_EINVALID, "lk_acquire: kind %d is neither temporal nor indefinite",
                      (int)q->kind);
  if (q->kind == LK_TEMPORAL && q->ttl_ns <= 0)
    return strata_err(STRATA_EINVALID, "lk_acquire: ttl_ns must be > 0 for a temporal lock (got %" PRId64 ")",
                      q->ttl_ns);
  int64_t now = lk_now(lk);
  if (q->kind == LK_TEMPORAL && ttl_overflows(now, q->ttl_ns))
    return strata_err(STRATA_EINVALID, "lock TTL of %" PRId64 " ns overflows the clock", q->ttl_ns);
  if (q->kind == LK_INDEFINITE && q->op > oplog_last_id(&lk->oplog))
    return strata_err(STRATA_ENOTFOUND,
                      "op %" PRIu64 " is not in the op log; an indefinite lock records "
                      "its rows as the op's scope, so create the op first (Ops.Create)", q->op);
  if ((rc = lk__prep_rows(lk, q->rows, q->nrows, &pr))) return rc;
  lk__lock_parts(lk, &pr);
  now = lk_now(lk);
  lk__find_ents(lk, &pr);
  verdict v;
  int waits = q->wait_deadline > now;
  clist c = {0};
  if ((rc = evaluate(q, &pr, NULL, now, &v, waits ? NULL : &c))) goto unlock;
  if (!v.blocked) {
    if (v.all_held) fill_already_held(q, &pr, res);
    else rc = grant(lk, q, &pr, now, res);
    goto unlock;
  }
  if (!waits) {
    res->status = LK_CONFLICT;
    res->conflicts = c.v;
    res->nconflicts = c.n;
    c.v = NULL;
    goto unlock;
  }
  if (atomic_load(&lk->shutting_down)) {
    rc = strata_err(STRATA_ESHUTDOWN, "acquire by op %" PRIu64 ": lock manager shutting down", q->op);
    goto unlock;
  }
  rc = acquire_wait(lk, q, &pr, res); /* releases the mutexes */
  goto out;
unlock:
  lk__unlock_parts(lk, &pr);
out:
  /* Answer only from durable state: our own batch, or rows we looked at. */
  if (!rc) rc = lk__durable(lk, pr.need);
  free(c.v);
  lk__prep_free(&pr);
  if (rc) lk_result_free(res);
  return rc;
}

void lk_result_free(lk_result *res) {
  assert(res);
  free(res->conflicts);
  res->conflicts = NULL;
  res->nconflicts = 0;
}

int lk_renew(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows, int64_t ttl_ns,
             lk_result *res) {
  int rc;
  lk__prep pr;
  clist c = {0};
  rocksdb_writebatch_t *b = NULL;
  assert(lk && res);
  memset(res, 0, sizeof *res);
  if ((rc = lk__check_op(op, "lk_renew"))) return rc;
  if ((rc = lk__check_rows(rows, nrows, "lk_renew rows"))) return rc;
  if (ttl_ns <= 0)
    return strata_err(STRATA_EINVALID, "lk_renew: ttl_ns must be > 0 (got %" PRId64 ")", ttl_ns);
  if ((rc = lk__prep_rows(lk, rows, nrows, &pr))) return rc;
  lk__lock_parts(lk, &pr);
  int64_t now = lk_now(lk);
  if (ttl_overflows(now, ttl_ns)) {
    rc = strata_err(STRATA_EINVALID, "lock TTL of %" PRId64 " ns overflows the clock", ttl_ns);
    goto out;
  }
  lk__find_ents(lk, &pr);
  int writes = 0;
  for (size_t i = 0; i < pr.n; i++) {
    const lk__rowent *e = pr.rows[i].ent;
    if (lk__holds(e, op, now)) {
      writes += e->tmp.op == op && lk__live(&e->tmp, now);
      continue;
    }
    /* Not held: report who holds the row now, if anyone. */
    const lk__slot *s = NULL;
    lk_kind k = LK_TEMPORAL;
    if (e && e->tmp.op != op && lk__tmp_blocks(e, now)) s = &e->tmp;
    else if (e && e->ind.op) s = &e->ind, k = LK_INDEFINITE;
    if ((rc = clist_add(&c, pr.rows[i].idx, s, k, 0))) goto out;
  }
  if (c.n) {
    res->status = LK_NOT_HELD;
    res->conflicts = c.v;
    res->nconflicts = c.n;
    c.v = NULL;
    goto out;
  }
  int64_t exp = temporal_expiry(now, ttl_ns);
  if (writes) {
    b = rocksdb_writebatch_create();
    for (size_t i = 0; i < pr.n; i++) {
      const lk__rowent *e = pr.rows[i].ent;
      if (e->tmp.op != op || !lk__live(&e->tmp, now)) continue; /* an expired slot stays lost */
      lk__slot tmp = e->tmp;
      tmp.expires_at = exp;
      put_record(b, e->key, e->len, &tmp, &e->ind);
    }
    uint64_t seq;
    if ((rc = lk__write(lk, b, "renew", &seq))) goto out;
    pr.need = seq;
  }
  res->status = LK_GRANTED;
  res->expires_at = LK_NEVER;
  for (size_t i = 0; i < pr.n; i++) {
    lk__rowent *e = pr.rows[i].ent;
    int renewed = e->tmp.op == op && lk__live(&e->tmp, now);
    if (renewed) {
      e->tmp.expires_at = exp;
      e->wseq = pr.need;
    }
    const lk__slot *s = renewed || e->ind.op != op ? &e->tmp : &e->ind;
    if (s->token > res->token) res->token = s->token;
    if (s->expires_at < res->expires_at) res->expires_at = s->expires_at;
  }
out:
  lk__unlock_parts(lk, &pr);
  if (!rc) rc = lk__durable(lk, pr.need);
  if (b) rocksdb_writebatch_destroy(b);
  free(c.v);
  lk__prep_free(&pr);
  if (rc) lk_result_free(res);
  return rc;
}

/* --- release ------------------------------------------------------------- */

typedef struct change {
  lk__rowent *e;
  unsigned part;
  lk__slot tmp, ind;
} change;

/* Computes the release of e's matching slots into ch (returns slots freed)
 * and adds the record and scope deletions to b. */
static size_t release_row(lk__rowent *e, uint64_t op, unsigned kinds, rocksdb_writebatch_t *b,
                          change *ch) {
  size_t freed = 0;
  ch->e = e;
  ch->tmp = e->tmp;
  ch->ind = e->ind;
  if ((kinds & LK_KIND_BIT(LK_TEMPORAL)) && e->tmp.op && (op == 0 || e->tmp.op == op)) {
    memset(&ch->tmp, 0, sizeof ch->tmp);
    freed++;
  }
  if ((kinds & LK_KIND_BIT(LK_INDEFINITE)) && e->ind.op && (op == 0 || e->ind.op == op)) {
    uint8_t k[9 + LK_KEY_MAX];
    scope_key(k, e->ind.op, e->key, e->len);
    rocksdb_writebatch_delete(b, (const char *)k, 9 + e->len);
    memset(&ch->ind, 0, sizeof ch->ind);
    freed++;
  }
  if (freed) put_record(b, e->key, e->len, &ch->tmp, &ch->ind);
  return freed;
}

/* With the partition mutexes held: how many rows release may change, an upper
 * bound to size its change array (the named rows, or every row of the table). */
static size_t release_capacity(lk_manager *lk, lk__prep *pr) {
  size_t cap = 0;
  if (!pr->all) {
    lk__find_ents(lk, pr);
    cap = pr->n;
  } else {
    for (unsigned i = 0; i < lk->nparts; i++) cap += lk->parts[i].count;
  }
  return cap;
}

/* With the partition mutexes held: computes the release of every row pr covers
 * into chs[*nch..] and b, counting the slots freed in *freed. Returns 1 if a row
 * it would free is pinned by a fenced commit in flight. */
static int release_collect(lk_manager *lk, lk__prep *pr, uint64_t op, unsigned kinds,
                           rocksdb_writebatch_t *b, change *chs, size_t *nch, size_t *freed) {
  int pinned = 0;
  if (!pr->all) {
    for (size_t i = 0; i < pr->n; i++) {
      if (!pr->rows[i].ent) continue;
      size_t f = release_row(pr->rows[i].ent, op, kinds, b, &chs[*nch]);
      chs[*nch].part = pr->rows[i].part;
      if (f) *freed += f, pinned |= chs[*nch].e->pins != 0, (*nch)++;
    }
  } else {
    for (unsigned p = 0; p < lk->nparts; p++)
      for (size_t j = 0; j < lk->parts[p].nbuckets; j++)
        for (lk__rowent *e = lk->parts[p].buckets[j]; e; e = e->next) {
          size_t f = release_row(e, op, kinds, b, &chs[*nch]);
          chs[*nch].part = p;
          if (f) *freed += f, pinned |= e->pins != 0, (*nch)++;
        }
  }
  return pinned;
}

/* With the partition mutexes held, after the batch is written at seq: the
 * changes take effect in memory; waiters are woken and emptied rows freed. */
static void release_apply(lk_manager *lk, const change *chs, size_t nch, uint64_t seq) {
  for (size_t i = 0; i < nch; i++) {
    chs[i].e->tmp = chs[i].tmp;
    chs[i].e->ind = chs[i].ind;
    chs[i].e->wseq = seq;
    lk__kick_row(chs[i].e, NULL);
    lk__row_maybe_free(&lk->parts[chs[i].part], chs[i].e);
  }
}

/* Releases op's slots of the given kinds on rows (all rows if rows is NULL; any
 * op's if op is 0). Order: partition mutexes, wait out pinned rows, write the
 * batch, apply in memory, unlock, then wait for durability. */
static int release(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows,
                   unsigned kinds, size_t *released, const char *fn) {
  int rc = 0;
  lk__prep pr = {0};
  change *chs = NULL;
  size_t nch = 0, freed = 0;
  assert(lk);
  if (released) *released = 0;
  if (kinds == 0) kinds = LK_KINDS_ALL;
  if (kinds & ~LK_KINDS_ALL)
    return strata_err(STRATA_EINVALID, "%s: kinds mask 0x%x has unknown bits", fn, kinds);
  if (rows && (rc = lk__check_rows(rows, nrows, fn))) return rc;
  if (rows) {
    if ((rc = lk__prep_rows(lk, rows, nrows, &pr))) return rc;
  } else {
    pr.all = 1;
  }
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  int locked = 0;
  for (;;) {
    /* 1. lock the partitions and compute every row's release */
    lk__lock_parts(lk, &pr);
    locked = 1;
    size_t cap = release_capacity(lk, &pr);
    chs = malloc((cap ? cap : 1) * sizeof *chs);
    if (!chs) {
      rc = strata_err(STRATA_ENOMEM, "%s: %zu rows", fn, cap);
      goto out;
    }
    if (!release_collect(lk, &pr, op, kinds, b, chs, &nch, &freed)) break;
    /* 2. a fenced commit is in flight on a row this would free: wait until it
     * is decided, then decide again (README "Fences hold") */
    rocksdb_writebatch_clear(b);
    free(chs);
    chs = NULL;
    nch = freed = 0;
    locked = 0;
    if ((rc = lk__wait_unpinned(lk, &pr, fn))) goto out; /* drops the mutexes */
  }
  if (nch == 0) goto out;
  /* 3. write the batch, then apply it in memory */
  uint64_t seq;
  if ((rc = lk__write(lk, b, fn, &seq))) goto out;
  pr.need = seq;
  release_apply(lk, chs, nch, seq);
  if (released) *released = freed;
out:
  /* 4. unlock, then wait for the write to be durable */
  if (locked) lk__unlock_parts(lk, &pr);
  if (!rc) rc = lk__durable(lk, pr.need);
  if (rc && released) *released = 0;
  rocksdb_writebatch_destroy(b);
  free(chs);
  lk__prep_free(&pr);
  return rc;
}

int lk_release(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows, unsigned kinds,
               size_t *released) {
  assert(lk /* rows == NULL: everywhere; released may be NULL */);
  int rc = lk__check_op(op, "lk_release");
  return rc ? rc : release(lk, op, rows, nrows, kinds, released, "Locks.Release");
}

int lk_privileged_release(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows,
                          unsigned kinds, size_t *released) {
  assert(lk);
  if (op == 0 && rows == NULL)
    return strata_err(STRATA_EINVALID,
                      "lk_privileged_release: op 0 (any holder) needs explicit rows; "
                      "releasing every lock of every op is not supported");
  return release(lk, op, rows, nrows, kinds, released, "Locks.Release (privileged)");
}
