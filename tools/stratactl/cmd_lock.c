/*
 * lock list / acquire / renew / release / key: the Locks service, with row
 * keys shown in hex plus their decoded PyChunkedGraph form.
 */
#include <stdlib.h>
#include <string.h>

#include "locks/lock.h"
#include "tools/stratactl/ctl.h"

#define KIND_TEMPORAL STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL
#define KIND_INDEFINITE STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE

static const char *kind_name(Strata__V1__LockKind k) {
  return k == KIND_TEMPORAL ? "temporal" : k == KIND_INDEFINITE ? "indefinite" : "unknown";
}

static int parse_kind(const ctl_args *a, Strata__V1__LockKind *k) {
  const char *s = ctl_val(a, "kind", 0);
  if (!s) return 0;
  if (strcmp(s, "temporal") == 0) *k = KIND_TEMPORAL;
  else if (strcmp(s, "indefinite") == 0) *k = KIND_INDEFINITE;
  else return ctl_usage(a->cmd, "--kind: expected temporal or indefinite, got \"%s\"", s);
  return 0;
}

/* --op N when given (*op stays 0 otherwise); required: usage error if absent. */
static int parse_op(const ctl_args *a, int required, uint64_t *op) {
  const char *s = ctl_val(a, "op", 0);
  if (!s) return required ? ctl_usage(a->cmd, "--op N is required") : 0;
  if (ctl_u64_parse(s, 1, UINT64_MAX, op))
    return ctl_usage(a->cmd, "--op: expected an operation id >= 1, got \"%s\"", s);
  return 0;
}

static int parse_dur(const ctl_args *a, const char *name, int64_t dflt, int64_t *ms) {
  const char *s = ctl_val(a, name, 0);
  *ms = dflt;
  if (s && ctl_dur_parse(s, ms))
    return ctl_usage(a->cmd, "--%s: expected a duration such as 500ms, 30s or 2m, got \"%s\"", name, s);
  return 0;
}

static void free_rows(ProtobufCBinaryData *rows, size_t n) {
  for (size_t i = 0; rows && i < n; i++) free(rows[i].data);
  free(rows);
}

/* The positional KEYs as protobuf bytes, for a request's rows / n_rows; the
 * caller frees them with free_rows(*rows, *n_rows). On error nothing is left
 * allocated (*rows NULL, *n_rows 0) and the exit code is returned. */
static int parse_rows(ctl_ctx *x, const ctl_args *a, ProtobufCBinaryData **rows, size_t *n_rows) {
  ProtobufCBinaryData *r = calloc((size_t)a->npos + 1, sizeof *r);
  *rows = NULL;
  *n_rows = 0;
  if (!r) return ctl_oom(x);
  for (int i = 0; i < a->npos; i++) {
    int rc = ctl_key_arg(x, a, "KEY", a->pos[i], &r[i].data, &r[i].len);
    if (rc) {
      free_rows(r, (size_t)a->npos);
      return rc;
    }
  }
  *rows = r;
  *n_rows = (size_t)a->npos;
  return 0;
}

/* --- one lock, as table cells and as JSON -------------------------------------------------- */

enum { LK_COLS = 7 };
static const char *const lock_header[LK_COLS] = {"ROW", "DECODED", "KIND", "OP", "ACQUIRED",
                                                 "LEFT", "TOKEN"};

static int lock_expired(const Strata__V1__LockInfo *l, int64_t now) {
  return l->kind == KIND_TEMPORAL && l->expires_at_ns <= now;
}

static void lock_add_row(ctl_table *t, const Strata__V1__LockInfo *l, int64_t now) {
  char dec[96], acq[48], left[32], op[24], tok[24];
  const char *type;
  uint64_t ids[3];
  char *hex = ctl_hex_str(l->row.data, l->row.len), *text = ctl_key_str(l->row.data, l->row.len);
  const char *d = ctl_row_decode(l->row.data, l->row.len, dec, sizeof dec, &type, ids);
  /* Not a chunk or block key: show a text key as text, since ROW is hex. */
  if (!d && text && strncmp(text, "0x", 2) != 0) d = text;
  if (l->kind != KIND_TEMPORAL) snprintf(left, sizeof left, "-");
  else if (lock_expired(l, now)) snprintf(left, sizeof left, "expired");
  else ctl_dur_str((l->expires_at_ns - now) / 1000000, left, sizeof left);
  snprintf(op, sizeof op, "%llu", (unsigned long long)l->op_id);
  /* Tokens start at 1; conflicts in an Acquire answer carry none (0). */
  if (l->fencing_token) snprintf(tok, sizeof tok, "%llu", (unsigned long long)l->fencing_token);
  else snprintf(tok, sizeof tok, "-");
  const char *cells[LK_COLS] = {hex, d ? d : "-", kind_name(l->kind), op,
                                ctl_time_str(l->acquired_at_ns, 3, acq, sizeof acq), left, tok};
  ctl_table_add(t, cells);
  free(hex);
  free(text);
}

static json_t *lock_json(const Strata__V1__LockInfo *l, int64_t now) {
  json_t *o = json_object();
  ctl_json_set_key(o, "row", l->row.data, l->row.len);
  json_object_set_new(o, "decoded", ctl_json_decoded(l->row.data, l->row.len));
  json_object_set_new(o, "kind", json_string(kind_name(l->kind)));
  json_object_set_new(o, "op", ctl_json_u64(l->op_id));
  ctl_json_set_time(o, "acquired_at", l->acquired_at_ns);
  ctl_json_set_time(o, "expires_at", l->kind == KIND_TEMPORAL ? l->expires_at_ns : 0);
  json_object_set_new(o, "time_left_ms", l->kind == KIND_TEMPORAL && !lock_expired(l, now)
                                             ? json_integer((l->expires_at_ns - now) / 1000000)
                                             : json_null());
  json_object_set_new(o, "expired", json_boolean(lock_expired(l, now)));
  json_object_set_new(o, "fencing_token", l->fencing_token ? ctl_json_u64(l->fencing_token) : json_null());
  return o;
}

/* --- lock list ---------------------------------------------------------------------------------- */

/* The listing being built: table rows or JSON objects, and the counts. */
typedef struct lock_listing {
  ctl_table t;
  json_t *locks;
  int64_t now;
  json_int_t n, temporal, expired, indefinite;
} lock_listing;

static void listing_add(lock_listing *ll, int json, const Strata__V1__LockInfo *l) {
  ll->n++;
  if (l->kind == KIND_TEMPORAL) ll->temporal++;
  else ll->indefinite++;
  if (lock_expired(l, ll->now)) ll->expired++;
  if (json) json_array_append_new(ll->locks, lock_json(l, ll->now));
  else lock_add_row(&ll->t, l, ll->now);
}

static void listing_print(lock_listing *ll, int json) {
  if (json) {
    json_t *counts = json_pack("{s:I, s:I, s:I, s:I}", "total", ll->n, "temporal", ll->temporal,
                               "expired", ll->expired, "indefinite", ll->indefinite);
    ctl_json_print(json_pack("{s:O, s:o}", "locks", ll->locks, "counts", counts));
    return;
  }
  ctl_table_print(&ll->t, stdout);
  printf("%lld lock%s: %lld temporal (%lld expired), %lld indefinite\n", (long long)ll->n,
         ll->n == 1 ? "" : "s", (long long)ll->temporal, (long long)ll->expired,
         (long long)ll->indefinite);
}

int ctl_lock_list(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  uint8_t *prefix = NULL;
  int rc;
  if ((rc = parse_op(a, 0, &q.op_id)) || (rc = parse_kind(a, &q.kind))) return rc;
  if (ctl_val(a, "prefix", 0)) {
    if ((rc = ctl_key_arg(x, a, "--prefix", ctl_val(a, "prefix", 0), &prefix, &q.prefix.len)))
      return rc;
    q.prefix.data = prefix;
  }
  q.expired_only = ctl_has(a, "expired");

  lock_listing ll = {.locks = json_array(), .now = ctl_now_ns()};
  ctl_table_init(&ll.t, LK_COLS, lock_header);
  rpc_cstream *st = NULL;
  rpc_callopts co;
  rc = ctl_stream_begin(x, &co);
  if (!rc) rc = rpc_locks_list(ctl_client(x), &co, &q, &st);
  ctl_idle *idle = ctl_idle_start(x, rc ? NULL : st, "Locks.List");
  Strata__V1__ListLocksResponse *m;
  while (!rc && (rc = rpc_locks_list_next(st, &m)) == 1) {
    ctl_idle_tick(idle);
    /* Time left is measured on the server's clock, not this machine's. */
    if (m->server_time_ns) ll.now = m->server_time_ns;
    for (size_t i = 0; i < m->n_locks; i++) listing_add(&ll, x->json, m->locks[i]);
    rpc_free(m);
    rc = 0;
  }
  rc = ctl_idle_stop(idle, rc);
  rpc_cstream_close(st);
  free(prefix);
  if (rc) rc = ctl_rpc_fail(x, rc, "Locks.List");
  else listing_print(&ll, x->json);
  ctl_table_free(&ll.t);
  json_decref(ll.locks);
  return rc;
}

/* --- lock acquire --------------------------------------------------------------------------------- */

static void print_acquired(const ctl_ctx *x, const Strata__V1__AcquireRequest *q,
                           const Strata__V1__AcquireResponse *r) {
  char tb[48], lb[32];
  if (x->json) {
    json_t *o = json_pack("{s:b, s:o, s:s, s:I, s:o}", "acquired", 1, "op", ctl_json_u64(q->op_id),
                          "kind", kind_name(q->kind), "rows", (json_int_t)q->n_rows,
                          "fencing_token", ctl_json_u64(r->fencing_token));
    ctl_json_set_time(o, "expires_at", q->kind == KIND_TEMPORAL ? r->expires_at_ns : 0);
    json_object_set_new(o, "conflicts", json_array());
    ctl_json_print(o);
    return;
  }
  printf("acquired %zu row%s for op %llu: %s, fencing token %llu", q->n_rows,
         q->n_rows == 1 ? "" : "s", (unsigned long long)q->op_id, kind_name(q->kind),
         (unsigned long long)r->fencing_token);
  if (q->kind == KIND_TEMPORAL)
    printf(", expires %s (in %s)", ctl_time_str(r->expires_at_ns, 3, tb, sizeof tb),
           ctl_dur_str((r->expires_at_ns - ctl_now_ns()) / 1000000, lb, sizeof lb));
  printf("\n");
}

static void print_conflicts(const ctl_ctx *x, const Strata__V1__AcquireRequest *q,
                            const Strata__V1__AcquireResponse *r) {
  int64_t now = ctl_now_ns();
  fprintf(stderr, "stratactl: lock acquire: refused, %zu row%s held by other ops (nothing was "
                  "locked); retry with --wait DURATION, or see 'stratactl lock list'\n",
          r->n_conflicts, r->n_conflicts == 1 ? "" : "s");
  /* Rows are exclusive whatever the kinds: say what frees the rows that no wait will. */
  for (size_t i = 0; i < r->n_conflicts; i++)
    if (r->conflicts[i]->kind == KIND_INDEFINITE) {
      fprintf(stderr, "stratactl: lock acquire: op %llu holds a row indefinitely: only its own "
                      "release or an operator's 'stratactl lock release --privileged KEY' frees it\n",
              (unsigned long long)r->conflicts[i]->op_id);
      break;
    }
  for (size_t i = 0; i < r->n_conflicts; i++)
    if (lock_expired(r->conflicts[i], now)) {
      fprintf(stderr, "stratactl: lock acquire: op %llu's lock has expired but its fenced commit "
                      "is still in flight; the row frees when that commit is decided\n",
              (unsigned long long)r->conflicts[i]->op_id);
      break;
    }
  if (x->json) {
    json_t *c = json_array();
    for (size_t i = 0; i < r->n_conflicts; i++) json_array_append_new(c, lock_json(r->conflicts[i], now));
    ctl_json_print(json_pack("{s:b, s:o, s:s, s:I, s:o}", "acquired", 0, "op",
                             ctl_json_u64(q->op_id), "kind", kind_name(q->kind), "rows",
                             (json_int_t)q->n_rows, "conflicts", c));
    return;
  }
  ctl_table t;
  ctl_table_init(&t, LK_COLS, lock_header);
  for (size_t i = 0; i < r->n_conflicts; i++) lock_add_row(&t, r->conflicts[i], now);
  ctl_table_print(&t, stdout);
  ctl_table_free(&t);
}

int ctl_lock_acquire(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
  q.kind = KIND_TEMPORAL;
  int64_t ttl, wait;
  int rc;
  if ((rc = parse_op(a, 1, &q.op_id)) || (rc = parse_kind(a, &q.kind)) ||
      (rc = parse_dur(a, "ttl", 30000, &ttl)) || (rc = parse_dur(a, "wait", 0, &wait)))
    return rc;
  if (q.kind == KIND_INDEFINITE && ctl_has(a, "ttl"))
    return ctl_usage(a->cmd, "--ttl applies to temporal locks only (an indefinite lock is held "
                             "until released)");
  if (q.kind == KIND_TEMPORAL && ttl <= 0)
    return ctl_usage(a->cmd, "--ttl: must be greater than 0");
  q.ttl_ms = q.kind == KIND_TEMPORAL ? (uint64_t)ttl : 0;
  q.wait_ms = (uint64_t)wait;
  if ((rc = parse_rows(x, a, &q.rows, &q.n_rows))) return rc;
  rpc_callopts co = ctl_callopts(x, wait);
  Strata__V1__AcquireResponse *r = NULL;
  rc = rpc_locks_acquire(ctl_client(x), &co, &q, &r);
  if (rc) rc = ctl_rpc_fail(x, rc, "Locks.Acquire");
  else if (r->acquired) print_acquired(x, &q, r);
  else {
    print_conflicts(x, &q, r);
    rc = CTL_REFUSED;
  }
  rpc_free(r);
  free_rows(q.rows, q.n_rows);
  return rc;
}

/* --- lock renew ----------------------------------------------------------------------------------- */

int ctl_lock_renew(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__RenewRequest q = STRATA__V1__RENEW_REQUEST__INIT;
  int64_t ttl;
  int rc;
  if ((rc = parse_op(a, 1, &q.op_id)) || (rc = parse_dur(a, "ttl", 30000, &ttl))) return rc;
  if (ttl <= 0) return ctl_usage(a->cmd, "--ttl: must be greater than 0");
  q.ttl_ms = (uint64_t)ttl;
  if ((rc = parse_rows(x, a, &q.rows, &q.n_rows))) return rc;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__RenewResponse *r = NULL;
  rc = rpc_locks_renew(ctl_client(x), &co, &q, &r);
  if (rc) {
    rc = ctl_rpc_fail(x, rc, "Locks.Renew");
  } else if (x->json) {
    json_t *o = json_pack("{s:b, s:o, s:I}", "renewed", 1, "op", ctl_json_u64(q.op_id), "rows",
                          (json_int_t)q.n_rows);
    ctl_json_set_time(o, "expires_at", r->expires_at_ns);
    ctl_json_print(o);
  } else {
    char tb[48], lb[32];
    printf("renewed %zu row%s for op %llu until %s (in %s)\n", q.n_rows, q.n_rows == 1 ? "" : "s",
           (unsigned long long)q.op_id, ctl_time_str(r->expires_at_ns, 3, tb, sizeof tb),
           ctl_dur_str((r->expires_at_ns - ctl_now_ns()) / 1000000, lb, sizeof lb));
  }
  rpc_free(r);
  free_rows(q.rows, q.n_rows);
  return rc;
}

/* --- lock release --------------------------------------------------------------------------------- */

int ctl_lock_release(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  q.privileged = ctl_has(a, "privileged");
  q.all = ctl_has(a, "all");
  int rc;
  if ((rc = parse_op(a, !q.privileged || q.all, &q.op_id))) return rc;
  if (q.all && a->npos) return ctl_usage(a->cmd, "give KEY... or --all, not both");
  if (!q.all && !a->npos) return ctl_usage(a->cmd, "give the KEYs to release, or --all");
  if ((rc = parse_rows(x, a, &q.rows, &q.n_rows))) return rc;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__ReleaseResponse *r = NULL;
  rc = rpc_locks_release(ctl_client(x), &co, &q, &r);
  if (rc) {
    rc = ctl_rpc_fail(x, rc, "Locks.Release");
    goto out;
  }
  if (x->json)
    ctl_json_print(json_pack("{s:I, s:o, s:b, s:b}", "released", (json_int_t)r->released, "op",
                             ctl_json_u64(q.op_id), "privileged", q.privileged, "all", q.all));
  else
    printf("released %llu lock%s\n", (unsigned long long)r->released, r->released == 1 ? "" : "s");
  if (r->released == 0) {
    char who[48] = "any op";
    if (q.op_id) snprintf(who, sizeof who, "op %llu", (unsigned long long)q.op_id);
    fprintf(stderr, "stratactl: lock release: nothing released: %s holds %s; see 'stratactl "
                    "lock list'%s\n", who, q.all ? "no locks" : "none of these rows",
            q.privileged ? "" : " (an operator frees another op's rows with --privileged)");
    rc = CTL_REFUSED;
  }
out:
  rpc_free(r);
  free_rows(q.rows, q.n_rows);
  return rc;
}

/* --- lock key ------------------------------------------------------------------------------------- */

int ctl_lock_key(ctl_ctx *x, const ctl_args *a) {
  uint8_t key[LK_BLOCK_KEY_LEN];
  size_t len;
  uint64_t v[3];
  int chunk = ctl_has(a, "chunk"), block = ctl_has(a, "block");
  if (chunk == block) return ctl_usage(a->cmd, "give exactly one of --chunk ID or --block X Y Z");
  for (int i = 0; i < (chunk ? 1 : 3); i++) {
    const char *s = ctl_val(a, chunk ? "chunk" : "block", i);
    if (ctl_id_parse(s, &v[i]))
      return ctl_usage(a->cmd,
                       "--%s: expected an unsigned 64-bit integer, decimal (72057594037927937) or "
                       "0x-hex (0x100000000000001), got \"%s\"",
                       chunk ? "chunk" : "block", s);
  }
  if (chunk) {
    lk_l2_chunk_key(v[0], key);
    len = LK_L2_KEY_LEN;
  } else {
    lk_block_key(v[0], v[1], v[2], key);
    len = LK_BLOCK_KEY_LEN;
  }
  if (x->json) {
    json_t *o = json_object();
    ctl_json_set_key(o, "row", key, len);
    json_object_set_new(o, "decoded", ctl_json_decoded(key, len));
    ctl_json_print(o);
  } else {
    char *hex = ctl_hex_str(key, len);
    printf("%s\n", hex ? hex : "");
    free(hex);
  }
  return CTL_OK;
}
