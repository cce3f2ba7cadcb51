/*
 * strata.v1.Kv handlers: validate every request, then serve it from the store
 * engine. Until storage/store.h lands in the build the engine calls answer
 * UNIMPLEMENTED after validation (server/README.md, "Engines").
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define NO_STORE "the store engine (storage/store.h) is not part of this build yet"

static int check_get(const Strata__V1__GetRequest *r) {
  int rc = v_key("key", &r->key);
  return rc ? rc : v_pin("pin", r->pin);
}

static int check_batch_get(const Strata__V1__BatchGetRequest *r) {
  int rc = v_count("keys", r->n_keys, 1, V_MAX_BATCH);
  for (size_t i = 0; !rc && i < r->n_keys; i++) rc = v_key_at("keys", i, "", &r->keys[i]);
  return rc ? rc : v_pin("pin", r->pin);
}

static int cmp_bytes(const ProtobufCBinaryData *a, const ProtobufCBinaryData *b) {
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->data, b->data, n) : 0;
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int check_list(const Strata__V1__ListRequest *r) {
  int rc;
  if ((rc = v_bound("start", &r->start)) || (rc = v_bound("end", &r->end)) ||
      (rc = v_bound("prefix", &r->prefix)))
    return rc;
  if (r->start.len && r->end.len && cmp_bytes(&r->end, &r->start) <= 0)
    return strata_err(STRATA_EINVALID, "end: must be greater than start (the range [start, end) "
                                       "is empty or inverted)");
  return v_pin("pin", r->pin);
}

static int check_commit(const Strata__V1__CommitRequest *r) {
  int rc = 0;
  size_t nw = r->n_puts + r->n_deletes;
  if (nw == 0) return strata_err(STRATA_EINVALID, "puts, deletes: a commit must write or delete "
                                                  "at least one key");
  for (size_t i = 0; !rc && i < r->n_puts; i++) rc = v_key_at("puts", i, ".key", &r->puts[i]->key);
  for (size_t i = 0; !rc && i < r->n_deletes; i++) rc = v_key_at("deletes", i, "", &r->deletes[i]);
  for (size_t i = 0; !rc && i < r->n_conditions; i++) {
    const Strata__V1__Condition *c = r->conditions[i];
    char f[64];
    if ((rc = v_key_at("conditions", i, ".key", &c->key))) break;
    snprintf(f, sizeof f, "conditions[%zu].kind", i);
    if ((rc = v_enum(f, c->kind, 1, 3, &strata__v1__condition__kind__descriptor))) break;
    if (c->kind == STRATA__V1__CONDITION__KIND__KIND_VALUE_HASH &&
        (c->value_hash.len == 0 || c->value_hash.len > V_HASH_MAX))
      rc = strata_err(STRATA_EINVALID, "conditions[%zu].value_hash: must be 1..%u bytes, got %zu",
                      i, V_HASH_MAX, c->value_hash.len);
  }
  if (!rc && r->fence) {
    if (!(rc = v_op_id("fence.op_id", r->fence->op_id)))
      rc = v_rows("fence.rows", r->fence->n_rows, r->fence->rows);
  }
  if (rc) return rc;
  const ProtobufCBinaryData **keys = malloc((nw ? nw : 1) * sizeof *keys);
  if (!keys) return strata_err(STRATA_ENOMEM, "out of memory");
  for (size_t i = 0; i < r->n_puts; i++) keys[i] = &r->puts[i]->key;
  for (size_t i = 0; i < r->n_deletes; i++) keys[r->n_puts + i] = &r->deletes[i];
  rc = v_distinct("puts, deletes", nw, keys);
  free(keys);
  return rc;
}

static int check_versions(const Strata__V1__VersionsRequest *r) {
  if (r->start_generation && r->end_generation && r->end_generation < r->start_generation)
    return strata_err(STRATA_EINVALID, "end_generation: %llu is before start_generation %llu",
                      (unsigned long long)r->end_generation,
                      (unsigned long long)r->start_generation);
  return 0;
}

static int check_watch(const Strata__V1__WatchRequest *r) { return v_bound("prefix", &r->prefix); }

/* One handler per method: validate, then the engine. */
#define KV_HANDLER(name, Req, check)                                         \
  static void h_##name(rpc_call *call, const ProtobufCMessage *m, void *ctx) { \
    srv *s = ctx;                                                            \
    int rc = check((const Req *)m);                                          \
    if (rc) {                                                                \
      srv__fail(call, rc);                                                   \
      return;                                                                \
    }                                                                        \
    if (!s->store) {                                                         \
      rpc_call_fail(call, STRATA_EUNSUPPORTED, "%s: " NO_STORE,              \
                    rpc_methods[rpc_call_method(call)].path);                \
      return;                                                                \
    }                                                                        \
  }

KV_HANDLER(get, Strata__V1__GetRequest, check_get)
KV_HANDLER(batch_get, Strata__V1__BatchGetRequest, check_batch_get)
KV_HANDLER(list, Strata__V1__ListRequest, check_list)
KV_HANDLER(commit, Strata__V1__CommitRequest, check_commit)
KV_HANDLER(versions, Strata__V1__VersionsRequest, check_versions)
KV_HANDLER(watch, Strata__V1__WatchRequest, check_watch)

int srv__latest_generation(srv *s, uint64_t *gen) {
  *gen = 0;
  if (!s->store) return strata_err(STRATA_EUNSUPPORTED, "the op's start generation comes from "
                                   "the store: " NO_STORE);
  return 0;
}

void srv__kv_bind(srv *s, rpc_handler *h) {
  h[RPC_M_kv_get] = (rpc_handler){h_get, s, NULL};
  h[RPC_M_kv_batch_get] = (rpc_handler){h_batch_get, s, NULL};
  h[RPC_M_kv_list] = (rpc_handler){h_list, s, NULL};
  h[RPC_M_kv_commit] = (rpc_handler){h_commit, s, NULL};
  h[RPC_M_kv_versions] = (rpc_handler){h_versions, s, NULL};
  h[RPC_M_kv_watch] = (rpc_handler){h_watch, s, NULL};
}
