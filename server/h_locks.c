/*
 * strata.v1.Locks handlers over the lock manager (locks/lock.h). Requests are
 * validated first; refusals (a row held by another op) are results with data,
 * not errors. Lock writes are RocksDB writes, so they run on the io pool; an
 * Acquire that may wait runs on the waiters' pool, bounded by both wait_ms and
 * the call's deadline. Pollers never park. Acquire, Renew and Release are
 * answered by the lock answerer (lkanswer.c) once their change is durable, so
 * a pool thread never sleeps through the group sync.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/keyshow.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define LIST_PAGE 1000 /* locks read from the lock manager at a time */
#define LIST_BATCH_BYTES (1u << 20) /* List: bytes per message, about */
#define LOCK_FIXED_BYTES 64 /* a LockInfo's kind, ids, times, token and framing, at most */

static int check_acquire(const ProtobufCMessage *m) {
  const Strata__V1__AcquireRequest *r = (const void *)m;
  int rc;
  if ((rc = v_op_id("op_id", r->op_id)) || (rc = v_rows("rows", r->n_rows, r->rows)) ||
      (rc = v_enum("kind", r->kind, V_ENUM_SET, &strata__v1__lock_kind__descriptor)))
    return rc;
  if (r->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL && r->ttl_ms == 0)
    return strata_err(STRATA_EINVALID, "ttl_ms: must be > 0 for a temporal lock");
  if (r->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE && r->ttl_ms != 0)
    return strata_err(STRATA_EINVALID,
                      "ttl_ms: must be 0 for an indefinite lock (it never "
                      "expires)");
  return 0;
}

static int check_renew(const ProtobufCMessage *m) {
  const Strata__V1__RenewRequest *r = (const void *)m;
  int rc;
  if ((rc = v_op_id("op_id", r->op_id)) || (rc = v_rows("rows", r->n_rows, r->rows))) return rc;
  if (r->ttl_ms == 0) return strata_err(STRATA_EINVALID, "ttl_ms: must be > 0");
  return 0;
}

static int check_release(const ProtobufCMessage *m) {
  const Strata__V1__ReleaseRequest *r = (const void *)m;
  int rc;
  if (!r->privileged && (rc = v_op_id("op_id", r->op_id))) return rc;
  if (r->all) {
    if (r->n_rows) return strata_err(STRATA_EINVALID, "rows: must be empty when all is set");
    if (r->op_id == 0)
      return strata_err(STRATA_EINVALID, "op_id: must be set with all (whose locks?)");
    return 0;
  }
  return v_rows("rows", r->n_rows, r->rows);
}

static int check_list(const ProtobufCMessage *m) {
  const Strata__V1__ListLocksRequest *r = (const void *)m;
  int rc = v_enum("kind", r->kind, V_ENUM_OR_UNSET, &strata__v1__lock_kind__descriptor);
  return rc ? rc : v_bound("prefix", &r->prefix);
}

static int check_check(const ProtobufCMessage *m) {
  const Strata__V1__CheckRequest *r = (const void *)m;
  int rc = v_op_id("op_id", r->op_id);
  return rc ? rc : v_rows("rows", r->n_rows, r->rows);
}

/* Borrows the request's rows as lk_rows; caller frees the array. */
static lk_row *rows_of(size_t n, const ProtobufCBinaryData *rows) {
  lk_row *r = malloc((n ? n : 1) * sizeof *r);
  if (!r) return NULL;
  for (size_t i = 0; i < n; i++) r[i] = (lk_row){rows[i].data, rows[i].len};
  return r;
}

/* The lock manager's kind of a wire kind. No default: check_acquire takes
 * every kind locks.proto names, and -Wswitch fails the build until a new one
 * is mapped here. */
static lk_kind engine_kind(Strata__V1__LockKind k) {
  switch (k) {
  case STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE: return LK_INDEFINITE;
  case STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL: return LK_TEMPORAL;
  case STRATA__V1__LOCK_KIND__LOCK_KIND_UNSPECIFIED: /* refused, or "any" in List */
  case _STRATA__V1__LOCK_KIND_IS_INT_SIZE: break;
  }
  return LK_TEMPORAL;
}

static int64_t wire_expiry(int64_t t) { return t == LK_NEVER ? 0 : t; }

static Strata__V1__LockKind wire_kind(lk_kind k) {
  return k == LK_INDEFINITE ? STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE
                            : STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
}

/* --- Acquire ----------------------------------------------------------------- */

typedef struct acq_job {
  srv *s;
  rpc_call *call;
  const Strata__V1__AcquireRequest *req; /* owned by the call */
  lk_row *rows;
  lk_acquire_req q;
} acq_job;

/* A waiting acquire whose call was cancelled (or whose deadline passed, or the
 * server drains) stops waiting and takes nothing. */
static int acquire_abandoned(void *call) { return rpc_call_stop_reason(call); }

static void acquire_run(void *arg) {
  acq_job *j = arg;
  const Strata__V1__AcquireRequest *r = j->req;
  lk_result res;
  memset(&res, 0, sizeof res);
  int waits = j->req->wait_ms > 0;
  struct timespec t0, t1;
  if (waits) {
    __atomic_add_fetch(&j->s->m_waiters, 1, __ATOMIC_RELAXED);
    clock_gettime(CLOCK_MONOTONIC, &t0);
  }
  lk_defer_begin(); /* answered by the lock answerer once durable */
  int rc = lk_acquire(j->s->lk, &j->q, &res);
  uint64_t need = lk_defer_end();
  if (waits) {
    clock_gettime(CLOCK_MONOTONIC, &t1);
    __atomic_sub_fetch(&j->s->m_waiters, 1, __ATOMIC_RELAXED);
    srv__hist_add(&j->s->m_lockwait,
                  (int64_t)(t1.tv_sec - t0.tv_sec) * 1000000000 + (t1.tv_nsec - t0.tv_nsec));
  }
  if (rc) {
    srv__fail(j->call, rc);
    goto out;
  }
  Strata__V1__AcquireResponse resp = STRATA__V1__ACQUIRE_RESPONSE__INIT;
  Strata__V1__LockInfo *infos = NULL, **ptrs = NULL;
  if (res.status == LK_GRANTED) {
    resp.acquired = 1;
    resp.fencing_token = res.token;
    resp.expires_at_ns = wire_expiry(res.expires_at);
  } else {
    infos = calloc(res.nconflicts ? res.nconflicts : 1, sizeof *infos);
    ptrs = calloc(res.nconflicts ? res.nconflicts : 1, sizeof *ptrs);
    if (!infos || !ptrs) {
      free(infos);
      free(ptrs);
      rpc_call_fail(j->call, STRATA_ENOMEM, "acquire: out of memory for %zu conflicts",
                    res.nconflicts);
      lk_result_free(&res);
      goto out;
    }
    for (size_t i = 0; i < res.nconflicts; i++) {
      const lk_conflict *c = &res.conflicts[i];
      strata__v1__lock_info__init(&infos[i]);
      infos[i].row = r->rows[c->row];
      infos[i].kind = wire_kind(c->kind);
      infos[i].op_id = c->holder_op;
      infos[i].acquired_at_ns = c->acquired_at;
      infos[i].expires_at_ns = wire_expiry(c->expires_at);
      ptrs[i] = &infos[i];
    }
    resp.n_conflicts = res.nconflicts;
    resp.conflicts = ptrs;
  }
  srv__lk_answer(j->s, j->call, need, &resp.base);
  free(infos);
  free(ptrs);
  lk_result_free(&res);
out:
  free(j->rows);
  free(j);
}

static void h_acquire(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__AcquireRequest *r = (const void *)m;
  acq_job *j = calloc(1, sizeof *j);
  lk_row *rows = rows_of(r->n_rows, r->rows);
  if (!j || !rows) {
    free(j);
    free(rows);
    rpc_call_fail(call, STRATA_ENOMEM, "acquire: out of memory");
    return;
  }
  int64_t now = lk_now(s->lk);
  uint64_t wait_ms = r->wait_ms;
  int64_t left = rpc_call_remaining_ms(call);
  if (left < 0) left = 0;
  if ((uint64_t)left < wait_ms) wait_ms = (uint64_t)left; /* the deadline bounds the wait */
  /* Saturates: without a deadline, wait_ms up to UINT64_MAX means "wait forever". */
  int64_t wait_ns = srv__ms_to_ns(wait_ms);
  int64_t wait_deadline = wait_ns > INT64_MAX - now ? INT64_MAX : now + wait_ns;
  *j = (acq_job){.s = s, .call = call, .req = r, .rows = rows};
  j->q = (lk_acquire_req){
      .op = r->op_id,
      .rows = rows,
      .nrows = r->n_rows,
      .kind = engine_kind(r->kind),
      .ttl_ns = engine_kind(r->kind) == LK_TEMPORAL ? srv__ms_to_ns(r->ttl_ms) : 0,
      .wait_deadline = wait_deadline,
      .abandoned = acquire_abandoned,
      .abandoned_ctx = call,
  };
  /* A waiting acquire may block for wait_ms: it gets the waiters' pool, so it never
   * holds up the io pool that every other lock write uses. */
  int rc = srv_pool_run(wait_ms ? s->pool : s->io, acquire_run, j);
  if (rc) {
    free(rows);
    free(j);
    srv__fail(call, rc);
  }
}

/* --- Renew, Release, Check ---------------------------------------------------- */

static void h_renew(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__RenewRequest *r = (const void *)m;
  lk_row *rows = rows_of(r->n_rows, r->rows);
  if (!rows) {
    rpc_call_fail(call, STRATA_ENOMEM, "renew: out of memory");
    return;
  }
  lk_result res;
  memset(&res, 0, sizeof res);
  lk_defer_begin();
  int rc = lk_renew(s->lk, r->op_id, rows, r->n_rows, srv__ms_to_ns(r->ttl_ms), &res);
  uint64_t need = lk_defer_end();
  free(rows);
  /* A refusal names the holder: it waits here until that is durable. */
  if (!rc && res.status != LK_GRANTED) rc = lk_durable_wait(s->lk, need);
  if (rc) {
    lk_result_free(&res);
    srv__fail(call, rc);
    return;
  }
  if (res.status != LK_GRANTED) {
    char show[STRATA_KEY_SHOW_BUF];
    const lk_conflict *c = res.nconflicts ? &res.conflicts[0] : NULL;
    size_t row = c ? c->row : 0;
    strata_key_show(r->rows[row].data, r->rows[row].len, show, sizeof show);
    if (c && c->holder_op)
      rpc_call_fail(call, STRATA_ELOCKED,
                    "rows[%zu]: row %s is held by op %llu, not op %llu; nothing was renewed", row,
                    show, (unsigned long long)c->holder_op, (unsigned long long)r->op_id);
    else
      rpc_call_fail(call, STRATA_EEXPIRED,
                    "rows[%zu]: op %llu no longer holds row %s (released or expired); nothing "
                    "was renewed: acquire it again",
                    row, (unsigned long long)r->op_id, show);
  } else {
    Strata__V1__RenewResponse resp = STRATA__V1__RENEW_RESPONSE__INIT;
    resp.expires_at_ns = wire_expiry(res.expires_at);
    srv__lk_answer(s, call, need, &resp.base);
  }
  lk_result_free(&res);
}

static void h_release(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__ReleaseRequest *r = (const void *)m;
  lk_row *rows = r->all ? NULL : rows_of(r->n_rows, r->rows);
  if (!r->all && !rows) {
    rpc_call_fail(call, STRATA_ENOMEM, "release: out of memory");
    return;
  }
  size_t released = 0;
  size_t n = r->all ? 0 : r->n_rows;
  lk_defer_begin();
  int rc = r->privileged ? lk_privileged_release(s->lk, r->op_id, rows, n, 0, &released)
                     : lk_release(s->lk, r->op_id, rows, n, 0, &released);
  uint64_t need = lk_defer_end();
  free(rows);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__ReleaseResponse resp = STRATA__V1__RELEASE_RESPONSE__INIT;
  resp.released = released;
  srv__lk_answer(s, call, need, &resp.base);
}

static void h_check(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__CheckRequest *r = (const void *)m;
  ProtobufCBinaryData *missing = calloc(r->n_rows, sizeof *missing);
  if (!missing) {
    rpc_call_fail(call, STRATA_ENOMEM, "check: out of memory");
    return;
  }
  size_t nmissing = 0;
  int rc = 0;
  for (size_t i = 0; i < r->n_rows && !rc; i++) { /* every row, so the answer lists them all */
    lk_row row = {r->rows[i].data, r->rows[i].len};
    int holds = 0;
    rc = lk_check(s->lk, r->op_id, &row, 1, &holds, NULL);
    if (!rc && !holds) missing[nmissing++] = r->rows[i];
  }
  if (rc) {
    free(missing);
    srv__fail(call, rc);
    return;
  }
  Strata__V1__CheckResponse resp = STRATA__V1__CHECK_RESPONSE__INIT;
  resp.all_held = nmissing == 0;
  resp.n_missing = nmissing;
  resp.missing = missing;
  rpc_call_reply(call, &resp.base);
  free(missing);
}

/* --- List (stream) ------------------------------------------------------------- */

/* Reads the lock manager LIST_PAGE locks at a time and sends each page in
 * messages of about LIST_BATCH_BYTES (rows may be 4 KiB each). */
typedef struct list_state {
  srv *s;
  lk_list_filter f;
  int expired_only;
  uint8_t *cursor; /* where the next page starts; NULL with done */
  size_t cursor_len;
  lk_list_page page; /* the current page */
  size_t next; /* its first lock not yet sent */
  int done; /* no page after the current one */
  int64_t now; /* server clock at the start, sent with every message */
} list_state;

static void list_free(void *p) {
  list_state *st = p;
  lk_list_page_free(&st->page);
  free(st->cursor);
  free(st);
}

/* Replaces the current page with the next one and moves the cursor past it. */
static int list_fill(list_state *st) {
  lk_list_page_free(&st->page);
  memset(&st->page, 0, sizeof st->page);
  st->next = 0;
  int rc = lk_list(st->s->lk, &st->f, st->cursor, st->cursor_len, LIST_PAGE, &st->page);
  if (rc) return rc;
  free(st->cursor);
  st->cursor = NULL;
  st->cursor_len = 0;
  if (!st->page.cursor) {
    st->done = 1;
    return 0;
  }
  st->cursor = malloc(st->page.cursor_len ? st->page.cursor_len : 1);
  if (!st->cursor) return strata_err(STRATA_ENOMEM, "Locks.List: out of memory");
  memcpy(st->cursor, st->page.cursor, st->page.cursor_len);
  st->cursor_len = st->page.cursor_len;
  return 0;
}

static void list_next(rpc_call *call, void *p) {
  list_state *st = p;
  if (rpc_call_stopping(call)) {
    rpc_call_fail(call, rpc_call_stop_reason(call), "Locks.List stopped");
    return;
  }
  int rc;
  if (st->next >= st->page.n) {
    if (st->done) {
      rpc_stream_end(call);
      return;
    }
    if ((rc = list_fill(st))) {
      srv__fail(call, rc);
      return;
    }
  }
  size_t left = st->page.n - st->next;
  Strata__V1__LockInfo *infos = calloc(left ? left : 1, sizeof *infos);
  Strata__V1__LockInfo **ptrs = calloc(left ? left : 1, sizeof *ptrs);
  size_t k = 0, bytes = 0, cap = srv__batch_bytes(st->s, LIST_BATCH_BYTES);
  rc = 0;
  if (!infos || !ptrs) {
    rc = strata_err(STRATA_ENOMEM, "Locks.List: out of memory");
  } else {
    for (; st->next < st->page.n; st->next++) {
      const lk_lock_info *li = &st->page.items[st->next];
      if (st->expired_only && !li->expired) continue;
      size_t sz = LOCK_FIXED_BYTES + li->key_len;
      if (k && bytes + sz > cap) break;
      bytes += sz;
      strata__v1__lock_info__init(&infos[k]);
      infos[k].row = (ProtobufCBinaryData){li->key_len, li->key};
      infos[k].kind = wire_kind(li->kind);
      infos[k].op_id = li->op;
      infos[k].acquired_at_ns = li->acquired_at;
      infos[k].expires_at_ns = wire_expiry(li->expires_at);
      infos[k].fencing_token = li->token;
      ptrs[k] = &infos[k];
      k++;
    }
    /* Nothing to send from this page sends nothing (so an empty listing ends
     * with no message). */
    if (k) {
      Strata__V1__ListLocksResponse resp = STRATA__V1__LIST_LOCKS_RESPONSE__INIT;
      resp.n_locks = k;
      resp.locks = ptrs;
      resp.server_time_ns = st->now;
      rc = rpc_stream_send(call, &resp.base);
    }
  }
  free(infos);
  free(ptrs);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  if (!k) rpc_call_wake(call); /* nothing sent: run again for the next page or the end */
}

static void h_list(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__ListLocksRequest *r = (const void *)m;
  list_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Locks.List: out of memory");
    return;
  }
  st->s = s;
  st->f.op = r->op_id;
  st->f.kinds = r->kind ? LK_KIND_BIT(engine_kind(r->kind)) : 0;
  /* The request outlives the stream. Never NULL: locks/list.c memcpy's it even when empty. */
  static const uint8_t no_prefix[1];
  st->f.prefix = r->prefix.len ? r->prefix.data : no_prefix;
  st->f.prefix_len = r->prefix.len;
  st->f.include_expired = r->expired_only;
  st->expired_only = r->expired_only;
  st->now = lk_now(s->lk);
  st->f.now = st->now; /* expiry judged at the time every message reports */
  rpc_stream_begin(call, list_next, st, list_free);
}

void srv__locks_bind(srv *s, rpc_handler *h) {
  static const srv_route routes[] = {
      /* Acquire picks its pool itself: the waiters' pool when it may wait. */
      {RPC_M_locks_acquire, check_acquire, h_acquire, SRV_WATCHES_CANCEL}, /* a waiting acquire */
      /* Durable writes (RocksDB fsync) run on the io pool, never on a poller. */
      {RPC_M_locks_renew, check_renew, h_renew, SRV_IO},
      {RPC_M_locks_release, check_release, h_release, SRV_IO},
      {RPC_M_locks_list, check_list, h_list, 0},
      {RPC_M_locks_check, check_check, h_check, 0},
  };
  srv__bind(s, h, routes, sizeof routes / sizeof routes[0]);
}
