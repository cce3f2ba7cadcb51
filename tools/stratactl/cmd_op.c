/*
 * op show / list / stuck / set-status: the operation log (Ops service: Get,
 * List, ListStuck, SetStatus).
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"
#include "tools/stratactl/ctl.h"

#define OP_LIST_DEFAULT_LIMIT 100

static const char *const status_names[] = {"UNSPECIFIED", "CREATED", "WRITE_STARTED", "SUCCESS",
                                           "EXCEPTION", "WRITE_FAILED"};
#define NSTATUS (sizeof status_names / sizeof status_names[0])
#define STATUS_FORMS "created, write_started, success, exception or write_failed"

static const char *status_name(Strata__V1__OpStatus s) {
  return (unsigned)s < NSTATUS ? status_names[s] : "UNKNOWN";
}

/* "write_failed", "WRITE_FAILED" or "OP_STATUS_WRITE_FAILED"; 0 when unknown. */
static Strata__V1__OpStatus status_parse(const char *s) {
  if (strncasecmp(s, "OP_STATUS_", 10) == 0) s += 10;
  for (unsigned i = 1; i < NSTATUS; i++)
    if (strcasecmp(s, status_names[i]) == 0) return (Strata__V1__OpStatus)i;
  return 0;
}

static json_t *op_json(const Strata__V1__Op *op, int64_t now, int with_payload) {
  json_t *o = json_object();
  json_object_set_new(o, "op", ctl_json_u64(op->op_id));
  json_object_set_new(o, "status", json_string(status_name(op->status)));
  json_object_set_new(o, "user", json_string(op->user ? op->user : ""));
  json_object_set_new(o, "kind", json_string(op->kind ? op->kind : ""));
  ctl_json_set_time(o, "created_at", op->created_at_ns);
  json_object_set_new(o, "age_ms", json_integer((now - op->created_at_ns) / 1000000));
  ctl_json_set_time(o, "updated_at", op->updated_at_ns);
  json_object_set_new(o, "start_generation", ctl_json_u64(op->start_generation));
  json_object_set_new(o, "reason", json_string(op->reason ? op->reason : ""));
  json_object_set_new(o, "payload_bytes", json_integer((json_int_t)op->payload.len));
  if (with_payload) {
    char *b = ctl_base64(op->payload.data, op->payload.len);
    json_object_set_new(o, "payload_base64", json_string(b ? b : ""));
    free(b);
  }
  json_t *scope = json_array();
  for (size_t i = 0; i < op->n_scope; i++) {
    json_t *r = json_object();
    ctl_json_set_key(r, "row", op->scope[i].data, op->scope[i].len);
    json_object_set_new(r, "decoded", ctl_json_decoded(op->scope[i].data, op->scope[i].len));
    json_array_append_new(scope, r);
  }
  json_object_set_new(o, "scope", scope);
  return o;
}

/* --- tables of ops ------------------------------------------------------------------------------ */

enum { OP_COLS = 7 };
static const char *const op_header[OP_COLS] = {"OP", "CREATED", "AGE", "USER", "KIND", "STATUS", "SCOPE"};

/* The step a stuck op reached, from what its worker recorded (docs/edit-workers.md):
 * the scope is written with the chunk locks, WRITE_STARTED just before the commit. */
static const char *op_step(const Strata__V1__Op *op) {
  switch (op->status) {
    case STRATA__V1__OP_STATUS__OP_STATUS_CREATED: return op->n_scope ? "locked, before commit" : "created";
    case STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED: return "committing (commit may have landed)";
    case STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS: return "succeeded, locks not released";
    default: return "failed, locks held";
  }
}

static void op_add_row(ctl_table *t, const Strata__V1__Op *op, int64_t now) {
  char id[24], cr[48], age[32], sc[24];
  snprintf(id, sizeof id, "%llu", (unsigned long long)op->op_id);
  snprintf(sc, sizeof sc, "%zu", op->n_scope);
  const char *cells[OP_COLS] = {id, ctl_time_str(op->created_at_ns, 0, cr, sizeof cr),
                                ctl_dur_str((now - op->created_at_ns) / 1000000, age, sizeof age),
                                op->user, op->kind, status_name(op->status), sc};
  ctl_table_add(t, cells);
}

/* Prints ops (table or {"ops": [...], "count": n} merged into extra). */
static void print_ops(const ctl_ctx *x, Strata__V1__Op *const *ops, size_t n, json_t *extra,
                      const char *footer, int with_step) {
  int64_t now = ctl_now_ns();
  if (x->json) {
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
      json_t *o = op_json(ops[i], now, 0);
      if (with_step) json_object_set_new(o, "step", json_string(op_step(ops[i])));
      json_array_append_new(arr, o);
    }
    json_t *doc = json_pack("{s:o, s:I}", "ops", arr, "count", (json_int_t)n);
    if (extra) json_object_update(doc, extra);
    json_decref(extra);
    ctl_json_print(doc);
    return;
  }
  json_decref(extra);
  ctl_table t;
  ctl_table_init(&t, OP_COLS, op_header);
  for (size_t i = 0; i < n; i++) op_add_row(&t, ops[i], now);
  ctl_table_print(&t, stdout);
  ctl_table_free(&t);
  if (with_step)
    for (size_t i = 0; i < n; i++)
      printf("op %llu step: %s\n", (unsigned long long)ops[i]->op_id, op_step(ops[i]));
  printf("%s\n", footer);
}

/* --- op show ------------------------------------------------------------------------------------- */

static void print_op(const Strata__V1__Op *op) {
  int64_t now = ctl_now_ns();
  char cr[48], up[48], age[32];
  printf("op:               %llu\n", (unsigned long long)op->op_id);
  printf("status:           %s\n", status_name(op->status));
  printf("user:             %s\n", op->user);
  printf("kind:             %s\n", op->kind);
  printf("created:          %s (%s ago)\n", ctl_time_str(op->created_at_ns, 3, cr, sizeof cr),
         ctl_dur_str((now - op->created_at_ns) / 1000000, age, sizeof age));
  printf("updated:          %s\n", ctl_time_str(op->updated_at_ns, 3, up, sizeof up));
  if (op->reason && op->reason[0]) printf("reason:           %s\n", op->reason);
  printf("start generation: %llu\n", (unsigned long long)op->start_generation);
  printf("payload:          %zu bytes\n", op->payload.len);
  printf("scope:            %zu row%s\n", op->n_scope, op->n_scope == 1 ? "" : "s");
  for (size_t i = 0; i < op->n_scope; i++) {
    char dec[96];
    const char *type;
    uint64_t ids[3];
    char *hex = ctl_hex_str(op->scope[i].data, op->scope[i].len);
    const char *d = ctl_row_decode(op->scope[i].data, op->scope[i].len, dec, sizeof dec, &type, ids);
    printf("  %s%s%s\n", hex ? hex : "", d ? "  " : "", d ? d : "");
    free(hex);
  }
}

static int parse_op_id(const ctl_args *a, const char *s, uint64_t *id) {
  if (ctl_u64_parse(s, 1, UINT64_MAX, id))
    return ctl_usage(a->cmd, "expected an operation id >= 1, got \"%s\"", s);
  return 0;
}

/* Prints the op of an answer (r, freed here) of the call `what` that returned rc. */
static int op_answer(ctl_ctx *x, int rc, const char *what, void *r, const Strata__V1__Op *op,
                     int with_payload) {
  if (rc) return ctl_rpc_fail(x, rc, what);
  if (x->json) ctl_json_print(op_json(op, ctl_now_ns(), with_payload));
  else print_op(op);
  rpc_free(r);
  return CTL_OK;
}

int ctl_op_show(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__GetOpRequest q = STRATA__V1__GET_OP_REQUEST__INIT;
  int rc = parse_op_id(a, a->pos[0], &q.op_id);
  if (rc) return rc;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__GetOpResponse *r = NULL;
  rc = rpc_ops_get(ctl_client(x), &co, &q, &r);
  return op_answer(x, rc, "Ops.Get", r, rc ? NULL : r->op, 1);
}

/* --- op set-status -------------------------------------------------------------------------------- */

int ctl_op_set_status(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
  int rc = parse_op_id(a, a->pos[0], &q.op_id);
  if (rc) return rc;
  if (!(q.status = status_parse(a->pos[1])))
    return ctl_usage(a->cmd, "STATUS: expected " STATUS_FORMS ", got \"%s\"", a->pos[1]);
  const char *reason = ctl_val(a, "reason", 0);
  q.reason = (char *)(reason ? reason : "");
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__SetStatusResponse *r = NULL;
  rc = rpc_ops_set_status(ctl_client(x), &co, &q, &r);
  return op_answer(x, rc, "Ops.SetStatus", r, rc ? NULL : r->op, 0);
}

/* --- collecting a stream of ops ------------------------------------------------------------------ */

/* The ops of an Ops.List or Ops.ListStuck stream, in stream order. They point
 * into the kept messages; ops_free frees both. */
typedef struct op_list {
  ProtobufCMessage **msgs;
  Strata__V1__Op **ops;
  size_t nmsgs, n, cap;
  uint64_t last_op_id; /* Ops.List only: the newest op id in the log */
} op_list;

static void ops_free(op_list *l) {
  for (size_t i = 0; i < l->nmsgs; i++) rpc_free(l->msgs[i]);
  free(l->msgs);
  free(l->ops);
}

/* Reads the stream opened by the call that returned rc (then closes it) into l.
 * Returns 0, STRATA_ENOMEM (nothing recorded in strata_errmsg), or the call's
 * error code. */
static int collect_ops(ctl_ctx *x, const char *what, int rc, rpc_cstream *st, op_list *l) {
  ProtobufCMessage *m;
  ctl_idle *idle = ctl_idle_start(x, rc ? NULL : st, what);
  while (!rc && (rc = rpc_cstream_next(st, &m)) == 1) {
    ctl_idle_tick(idle);
    Strata__V1__Op **ops;
    size_t n;
    if (m->descriptor == &strata__v1__list_ops_response__descriptor) {
      Strata__V1__ListOpsResponse *r = (Strata__V1__ListOpsResponse *)m;
      ops = r->ops;
      n = r->n_ops;
      l->last_op_id = r->last_op_id;
    } else {
      Strata__V1__ListStuckResponse *r = (Strata__V1__ListStuckResponse *)m;
      ops = r->ops;
      n = r->n_ops;
    }
    ProtobufCMessage **mm = realloc(l->msgs, (l->nmsgs + 1) * sizeof *mm);
    if (mm) l->msgs = mm;
    if (mm && l->n + n > l->cap) {
      size_t cap = l->cap ? l->cap : 64;
      while (cap < l->n + n) cap *= 2;
      Strata__V1__Op **o = realloc(l->ops, cap * sizeof *o);
      if (o) {
        l->ops = o;
        l->cap = cap;
      }
    }
    if (!mm || l->n + n > l->cap) {
      rpc_free(m);
      rc = STRATA_ENOMEM;
      break;
    }
    l->msgs[l->nmsgs++] = m;
    if (n) memcpy(l->ops + l->n, ops, n * sizeof *ops); /* ops and l->ops may be NULL when empty */
    l->n += n;
    rc = 0;
    ctl_progress(x, "%s: %zu ops received", what, l->n);
  }
  rc = ctl_idle_stop(idle, rc);
  ctl_progress_done(x);
  rpc_cstream_close(st);
  return rc;
}

/* Reports a collect_ops failure; returns the exit code. */
static int ops_fail(ctl_ctx *x, int rc, const char *what) {
  return rc == STRATA_ENOMEM ? ctl_oom(x) : ctl_rpc_fail(x, rc, what);
}

/* --- op list -------------------------------------------------------------------------------------- */

int ctl_op_list(ctl_ctx *x, const ctl_args *a) {
  uint64_t limit = OP_LIST_DEFAULT_LIMIT;
  Strata__V1__ListOpsRequest q = STRATA__V1__LIST_OPS_REQUEST__INIT;
  const char *s = ctl_val(a, "status", 0);
  if (s && !(q.status = status_parse(s)))
    return ctl_usage(a->cmd, "--status: expected " STATUS_FORMS ", got \"%s\"", s);
  if ((s = ctl_val(a, "limit", 0)) && ctl_u64_parse(s, 1, 1000000, &limit))
    return ctl_usage(a->cmd, "--limit: expected a number in 1..1000000, got \"%s\"", s);
  /* The newest `limit` matches, newest first; one more tells whether older
   * ones were left out. */
  q.newest_first = 1;
  q.limit = limit + 1;
  rpc_cstream *st = NULL;
  rpc_callopts co;
  op_list l = {0};
  int rc = ctl_stream_begin(x, &co);
  if (!rc) rc = rpc_ops_list(ctl_client(x), &co, &q, &st);
  rc = collect_ops(x, "Ops.List", rc, st, &l);
  if (rc) {
    rc = ops_fail(x, rc, "Ops.List");
    goto out;
  }
  size_t n = l.n;
  int truncated = n > limit;
  if (truncated) n = (size_t)limit;
  /* Oldest first among the newest `limit` matches. */
  for (size_t i = 0; i < n / 2; i++) {
    Strata__V1__Op *t = l.ops[i];
    l.ops[i] = l.ops[n - 1 - i];
    l.ops[n - 1 - i] = t;
  }
  char footer[160];
  snprintf(footer, sizeof footer, "%zu op%s%s%s", n, n == 1 ? "" : "s",
           truncated ? " (limit reached; older ops were not shown, raise --limit)" : "",
           n == 0 && l.last_op_id == 0 ? " (the op log is empty)" : "");
  print_ops(x, l.ops, n,
            json_pack("{s:o, s:b}", "last_op_id", ctl_json_u64(l.last_op_id), "truncated", truncated),
            footer, 0);
out:
  ops_free(&l);
  return rc;
}

/* --- op stuck ------------------------------------------------------------------------------------- */

int ctl_op_stuck(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__ListStuckRequest q = STRATA__V1__LIST_STUCK_REQUEST__INIT;
  int64_t min_age = 0;
  const char *s = ctl_val(a, "min-age", 0);
  if (s && ctl_dur_parse(s, &min_age))
    return ctl_usage(a->cmd, "--min-age: expected a duration such as 10m or 1h, got \"%s\"", s);
  q.min_age_ms = (uint64_t)min_age;
  rpc_cstream *st = NULL;
  rpc_callopts co;
  op_list l = {0};
  int rc = ctl_stream_begin(x, &co);
  if (!rc) rc = rpc_ops_list_stuck(ctl_client(x), &co, &q, &st);
  rc = collect_ops(x, "Ops.ListStuck", rc, st, &l);
  if (rc) {
    rc = ops_fail(x, rc, "Ops.ListStuck");
  } else {
    char footer[64];
    snprintf(footer, sizeof footer, "%zu stuck op%s", l.n, l.n == 1 ? "" : "s");
    print_ops(x, l.ops, l.n, json_pack("{s:I}", "min_age_ms", (json_int_t)min_age), footer, 1);
  }
  ops_free(&l);
  return rc;
}
