/*
 * strata.v1.Ops handlers over the op log and id counters (locks/oplog.h,
 * locks/counter.h). Ops.Create also needs the store (the op's start
 * generation).
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "locks/counter.h"
#include "locks/oplog.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define OPS_BATCH_BYTES (1u << 20) /* Ops.List, Ops.ListStuck: bytes per message, about */
#define OP_FIXED_BYTES 64 /* an Op's ids, times, status and framing on the wire, at most */

static int check_create(const ProtobufCMessage *m) {
  const Strata__V1__CreateOpRequest *r = (const void *)m;
  int rc;
  size_t nu = r->user ? strlen(r->user) : 0, nk = r->kind ? strlen(r->kind) : 0;
  if ((rc = v_count("user (bytes)", nu, 1, OPLOG_NAME_MAX)) ||
      (rc = v_count("kind (bytes)", nk, 1, OPLOG_NAME_MAX)))
    return rc;
  if (r->payload.len > OPLOG_PAYLOAD_MAX)
    return strata_err(STRATA_EINVALID, "payload: %zu bytes exceeds the %u-byte limit",
                      r->payload.len, OPLOG_PAYLOAD_MAX);
  return 0;
}

static int check_set_status(const ProtobufCMessage *m) {
  const Strata__V1__SetStatusRequest *r = (const void *)m;
  int rc = v_op_id("op_id", r->op_id);
  if (!rc) rc = v_enum("status", r->status, V_ENUM_SET, &strata__v1__op_status__descriptor);
  size_t n = r->reason ? strlen(r->reason) : 0;
  return rc ? rc : v_count("reason (bytes)", n, 0, OPLOG_EXCEPTION_MAX);
}

static int check_get(const ProtobufCMessage *m) {
  const Strata__V1__GetOpRequest *r = (const void *)m;
  return v_op_id("op_id", r->op_id);
}

static int check_list(const ProtobufCMessage *m) {
  const Strata__V1__ListOpsRequest *r = (const void *)m;
  return v_enum("status", r->status, V_ENUM_OR_UNSET, &strata__v1__op_status__descriptor);
}

static int check_allocate(const ProtobufCMessage *m) {
  const Strata__V1__AllocateIdsRequest *r = (const void *)m;
  size_t n = r->counter ? strlen(r->counter) : 0;
  int rc = v_count("counter (bytes)", n, 1, CTR_NAME_MAX);
  if (rc) return rc;
  if (r->count == 0 || r->count > V_MAX_ID_COUNT)
    return strata_err(STRATA_EINVALID, "count: must be 1..%llu, got %llu",
                      (unsigned long long)V_MAX_ID_COUNT, (unsigned long long)r->count);
  return 0;
}

/* The wire status is the op log's plus one (0 is UNSPECIFIED on the wire). */
static Strata__V1__OpStatus wire_status(oplog_status s) { return (Strata__V1__OpStatus)(s + 1); }

/* The op log's status of a wire status (check_set_status refuses UNSPECIFIED;
 * Ops.List takes it as "any"). No default: the checks take every status
 * ops.proto names, and -Wswitch fails the build until a new one is mapped. */
static oplog_status engine_status(Strata__V1__OpStatus s) {
  switch (s) {
  case STRATA__V1__OP_STATUS__OP_STATUS_CREATED: return OPLOG_CREATED;
  case STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED: return OPLOG_WRITE_STARTED;
  case STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS: return OPLOG_SUCCESS;
  case STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION: return OPLOG_EXCEPTION;
  case STRATA__V1__OP_STATUS__OP_STATUS_WRITE_FAILED: return OPLOG_WRITE_FAILED;
  case STRATA__V1__OP_STATUS__OP_STATUS_UNSPECIFIED:
  case _STRATA__V1__OP_STATUS_IS_INT_SIZE: break;
  }
  return OPLOG_CREATED;
}

/* Fills m from op; m borrows op's memory (and allocates the scope array, freed
 * by op_msg_free). */
static int op_msg(Strata__V1__Op *m, const oplog_op *op) {
  strata__v1__op__init(m);
  m->op_id = op->id;
  m->created_at_ns = op->created_at;
  m->updated_at_ns = op->status_at;
  m->start_generation = op->base_generation;
  m->user = op->user;
  m->kind = op->kind;
  m->payload = (ProtobufCBinaryData){op->payload_len, op->payload};
  m->status = wire_status(op->status);
  if (op->exception) m->reason = op->exception;
  if (op->nscope) {
    m->scope = calloc(op->nscope, sizeof *m->scope);
    if (!m->scope)
      return strata_err(STRATA_ENOMEM, "op %llu: out of memory", (unsigned long long)op->id);
    for (size_t i = 0; i < op->nscope; i++)
      m->scope[i] = (ProtobufCBinaryData){op->scope[i].len, (uint8_t *)op->scope[i].key};
    m->n_scope = op->nscope;
  }
  return 0;
}

static void op_msg_free(Strata__V1__Op *m) { free(m->scope); }

/* About what op takes on the wire: payload, user, kind, every scope row (+8 for
 * its tag and length) and the fixed fields. Errs high, never low. */
static size_t op_wire_bytes(const oplog_op *op) {
  size_t n = OP_FIXED_BYTES + op->payload_len + (op->user ? strlen(op->user) : 0) +
             (op->kind ? strlen(op->kind) : 0) + (op->exception ? strlen(op->exception) : 0);
  for (size_t i = 0; i < op->nscope; i++) n += op->scope[i].len + 8;
  return n;
}

/* One stream message's worth of Op messages, borrowing the oplog_ops. */
typedef struct op_batch {
  Strata__V1__Op *ms;
  Strata__V1__Op **ptrs;
  size_t n; /* built (each freed by op_batch_free) */
} op_batch;

static void op_batch_free(op_batch *b) {
  for (size_t i = 0; b->ms && i < b->n; i++) op_msg_free(&b->ms[i]);
  free(b->ms);
  free(b->ptrs);
  memset(b, 0, sizeof *b);
}

/* Builds the messages of ops[next..*end): as many as fit in `cap` bytes, and at
 * least one while any is left (none when next == n). On failure the caller
 * still frees b. `what` names the method in the out-of-memory message. */
static int op_batch_build(op_batch *b, const oplog_op *ops, size_t n, size_t next, size_t cap,
                          size_t *end, const char *what) {
  memset(b, 0, sizeof *b);
  size_t e = next, bytes = 0;
  for (; e < n; e++) {
    size_t sz = op_wire_bytes(&ops[e]);
    if (e > next && bytes + sz > cap) break;
    bytes += sz;
  }
  *end = e;
  size_t k = e - next;
  if (!k) return 0;
  b->ms = calloc(k, sizeof *b->ms);
  b->ptrs = calloc(k, sizeof *b->ptrs);
  if (!b->ms || !b->ptrs) return strata_err(STRATA_ENOMEM, "%s: out of memory", what);
  for (; b->n < k; b->n++) {
    int rc = op_msg(&b->ms[b->n], &ops[next + b->n]);
    if (rc) return rc;
    b->ptrs[b->n] = &b->ms[b->n];
  }
  return 0;
}

/* Ends the call with rc; NOT_FOUND names the op that does not exist. */
static void fail_op(rpc_call *call, int rc, uint64_t id) {
  if (rc == STRATA_ENOTFOUND)
    rpc_call_fail(call, rc, "op_id: no op %llu", (unsigned long long)id);
  else
    srv__fail(call, rc);
}

/* Replies with the op `id` as read back from the log. */
static void reply_op(rpc_call *call, srv *s, uint64_t id, int create) {
  oplog_op op;
  memset(&op, 0, sizeof op);
  int rc = oplog_get(lk_oplog(s->lk), id, &op);
  if (rc) {
    fail_op(call, rc, id);
    return;
  }
  Strata__V1__Op m;
  if ((rc = op_msg(&m, &op))) {
    oplog_op_free(&op);
    srv__fail(call, rc);
    return;
  }
  if (create) {
    Strata__V1__CreateOpResponse resp = STRATA__V1__CREATE_OP_RESPONSE__INIT;
    resp.op = &m;
    rpc_call_reply(call, &resp.base);
  } else if (rpc_call_method(call) == RPC_M_ops_get) {
    Strata__V1__GetOpResponse resp = STRATA__V1__GET_OP_RESPONSE__INIT;
    resp.op = &m;
    rpc_call_reply(call, &resp.base);
  } else {
    Strata__V1__SetStatusResponse resp = STRATA__V1__SET_STATUS_RESPONSE__INIT;
    resp.op = &m;
    rpc_call_reply(call, &resp.base);
  }
  op_msg_free(&m);
  oplog_op_free(&op);
}

static void h_create(rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  srv *s = ctx;
  const Strata__V1__CreateOpRequest *r = (const void *)msg;
  uint64_t gen;
  int rc = srv__latest_generation(s, &gen);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  uint64_t id;
  int64_t created;
  rc = oplog_create(lk_oplog(s->lk), r->user, r->kind, r->payload.data, r->payload.len, gen, &id,
                    &created);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  reply_op(call, s, id, 1);
}

static void h_get(rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  const Strata__V1__GetOpRequest *r = (const void *)msg;
  reply_op(call, ctx, r->op_id, 0);
}

static void h_set_status(rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  srv *s = ctx;
  const Strata__V1__SetStatusRequest *r = (const void *)msg;
  int rc = oplog_set_status(lk_oplog(s->lk), r->op_id, engine_status(r->status),
                        r->reason && r->reason[0] ? r->reason : NULL);
  if (rc) {
    fail_op(call, rc, r->op_id);
    return;
  }
  reply_op(call, s, r->op_id, 0);
}

static void h_allocate(rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  srv *s = ctx;
  const Strata__V1__AllocateIdsRequest *r = (const void *)msg;
  uint64_t first;
  int rc = ctr_allocate(lk_counters(s->lk), r->counter, r->count, &first);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__AllocateIdsResponse resp = STRATA__V1__ALLOCATE_IDS_RESPONSE__INIT;
  resp.first = first;
  resp.count = r->count;
  rpc_call_reply(call, &resp.base);
}

/* --- ListStuck (stream) ----------------------------------------------------------
 * The stuck ops are read on the stream's first turn (on the executor, never on
 * the poller that started the call), then sent in messages of about
 * OPS_BATCH_BYTES. */

typedef struct stuck_state {
  srv *s;
  int64_t min_age_ns;
  int loaded;
  oplog_op *ops;
  size_t n, next;
} stuck_state;

static void stuck_free(void *p) {
  stuck_state *st = p;
  oplog_ops_free(st->ops, st->n);
  free(st);
}

static void stuck_next(rpc_call *call, void *p) {
  stuck_state *st = p;
  if (rpc_call_stopping(call)) {
    rpc_call_fail(call, rpc_call_stop_reason(call), "Ops.ListStuck stopped");
    return;
  }
  int rc;
  if (!st->loaded) {
    st->loaded = 1;
    if ((rc = oplog_list_stuck(lk_oplog(st->s->lk), st->min_age_ns, &st->ops, &st->n))) {
      srv__fail(call, rc);
      return;
    }
  }
  if (st->next >= st->n) {
    rpc_stream_end(call);
    return;
  }
  op_batch b;
  size_t end;
  rc = op_batch_build(&b, st->ops, st->n, st->next, srv__batch_bytes(st->s, OPS_BATCH_BYTES), &end,
                      "Ops.ListStuck");
  if (!rc) {
    Strata__V1__ListStuckResponse resp = STRATA__V1__LIST_STUCK_RESPONSE__INIT;
    resp.n_ops = b.n;
    resp.ops = b.ptrs;
    rc = rpc_stream_send(call, &resp.base);
  }
  op_batch_free(&b);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  st->next = end;
}

static void h_list_stuck(rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  srv *s = ctx;
  const Strata__V1__ListStuckRequest *r = (const void *)msg;
  stuck_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Ops.ListStuck: out of memory");
    return;
  }
  st->s = s;
  st->min_age_ns = srv__ms_to_ns(r->min_age_ms);
  rpc_stream_begin(call, stuck_next, st, stuck_free);
}

/* --- List (stream) ---------------------------------------------------------------
 * Reads the op log a page at a time (so a long log is never held whole) and
 * sends messages of about OPS_BATCH_BYTES; the first message always goes,
 * empty if nothing matches, so the client learns last_op_id. */

#define LIST_PAGE 256

typedef struct list_state {
  srv *s;
  oplog_list_filter f;   /* its cursor moves past each page read */
  int limited;
  uint64_t remaining;    /* ops still to send when limited */
  uint64_t last_id;
  oplog_op *ops;         /* the current page */
  size_t n, next;
  int exhausted, sent;
} list_state;

static void list_free(void *p) {
  list_state *st = p;
  oplog_ops_free(st->ops, st->n);
  free(st);
}

static int list_fill(list_state *st) {
  oplog_ops_free(st->ops, st->n);
  st->ops = NULL;
  st->n = st->next = 0;
  oplog_list_filter f = st->f;
  f.limit = st->limited && st->remaining < LIST_PAGE ? st->remaining : LIST_PAGE;
  int rc = oplog_list(lk_oplog(st->s->lk), &f, &st->ops, &st->n);
  if (rc) return rc;
  if (st->n < f.limit) st->exhausted = 1;
  if (st->limited && (st->remaining -= st->n) == 0) st->exhausted = 1;
  if (st->n) {
    if (st->f.newest_first) st->f.before_id = st->ops[st->n - 1].id;
    else st->f.after_id = st->ops[st->n - 1].id;
  }
  return 0;
}

static void list_next(rpc_call *call, void *p) {
  list_state *st = p;
  if (rpc_call_stopping(call)) {
    rpc_call_fail(call, rpc_call_stop_reason(call), "Ops.List stopped");
    return;
  }
  int rc = 0;
  if (st->next >= st->n && !st->exhausted) rc = list_fill(st);
  if (!rc && st->next >= st->n && st->sent) {
    rpc_stream_end(call);
    return;
  }
  op_batch b;
  size_t end = st->next;
  memset(&b, 0, sizeof b);
  if (!rc)
    rc = op_batch_build(&b, st->ops, st->n, st->next, srv__batch_bytes(st->s, OPS_BATCH_BYTES),
                        &end, "Ops.List");
  if (!rc) {
    Strata__V1__ListOpsResponse resp = STRATA__V1__LIST_OPS_RESPONSE__INIT;
    resp.n_ops = b.n;
    resp.ops = b.ptrs;
    resp.last_op_id = st->last_id;
    rc = rpc_stream_send(call, &resp.base);
  }
  op_batch_free(&b);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  st->sent = 1;
  st->next = end;
}

static void h_list(rpc_call *call, const ProtobufCMessage *msg, void *ctx) {
  srv *s = ctx;
  const Strata__V1__ListOpsRequest *r = (const void *)msg;
  list_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Ops.List: out of memory");
    return;
  }
  st->s = s;
  st->f.any_status = r->status == 0;
  st->f.status = engine_status(r->status);
  st->f.newest_first = r->newest_first;
  st->f.after_id = r->after_op_id;
  st->f.before_id = r->before_op_id;
  st->limited = r->limit > 0;
  st->remaining = r->limit;
  st->last_id = oplog_last_id(lk_oplog(s->lk));
  rpc_stream_begin(call, list_next, st, list_free);
}

void srv__ops_bind(srv *s, rpc_handler *h) {
  static const srv_route routes[] = {
      /* Op log and counter writes are durable RocksDB writes: the io pool. */
      {RPC_M_ops_create, check_create, h_create, SRV_IO},
      {RPC_M_ops_get, check_get, h_get, 0},
      {RPC_M_ops_set_status, check_set_status, h_set_status, SRV_IO},
      {RPC_M_ops_list_stuck, NULL, h_list_stuck, 0},
      {RPC_M_ops_list, check_list, h_list, 0},
      {RPC_M_ops_allocate_ids, check_allocate, h_allocate, SRV_IO},
  };
  srv__bind(s, h, routes, sizeof routes / sizeof routes[0]);
}
