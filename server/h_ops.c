/*
 * strata.v1.Ops handlers: validate every request, then the op log and id
 * counters. Until locks/oplog.h and locks/counter.h land in the build the
 * engine calls answer UNIMPLEMENTED after validation (server/README.md).
 */
#include <string.h>

#include "common/err.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define NO_OPLOG "the op log (locks/oplog.h, locks/counter.h) is not part of this build yet"

static int check_create(const Strata__V1__CreateOpRequest *r) {
  int rc;
  if ((rc = v_text("user", r->user, V_MAX_OP_TEXT)) || (rc = v_text("kind", r->kind, V_MAX_OP_TEXT)))
    return rc;
  if (r->payload.len > V_MAX_OP_PAYLOAD)
    return strata_err(STRATA_EINVALID, "payload: %zu bytes exceeds the %u-byte limit",
                      r->payload.len, V_MAX_OP_PAYLOAD);
  return 0;
}

static int check_get(const Strata__V1__GetOpRequest *r) { return v_op_id("op_id", r->op_id); }

static int check_set_status(const Strata__V1__SetStatusRequest *r) {
  int rc = v_op_id("op_id", r->op_id);
  return rc ? rc : v_enum("status", r->status, 1, 5, &strata__v1__op_status__descriptor);
}

static int check_list_stuck(const Strata__V1__ListStuckRequest *r) {
  (void)r;
  return 0;
}

static int check_allocate(const Strata__V1__AllocateIdsRequest *r) {
  size_t n = r->counter ? strlen(r->counter) : 0;
  int rc = v_count("counter (bytes)", n, 1, V_MAX_COUNTER_NAME);
  if (rc) return rc;
  if (r->count == 0 || r->count > V_MAX_ID_COUNT)
    return strata_err(STRATA_EINVALID, "count: must be 1..%llu, got %llu",
                      (unsigned long long)V_MAX_ID_COUNT, (unsigned long long)r->count);
  return 0;
}

#define OPS_HANDLER(name, Req, check)                                        \
  static void h_##name(rpc_call *call, const ProtobufCMessage *m, void *ctx) { \
    srv *s = ctx;                                                            \
    int rc = check((const Req *)m);                                          \
    if (rc) {                                                                \
      srv__fail(call, rc);                                                   \
      return;                                                                \
    }                                                                        \
    if (!s->locks) {                                                         \
      rpc_call_fail(call, STRATA_EUNSUPPORTED, "%s: " NO_OPLOG,              \
                    rpc_methods[rpc_call_method(call)].path);                \
      return;                                                                \
    }                                                                        \
  }

OPS_HANDLER(create, Strata__V1__CreateOpRequest, check_create)
OPS_HANDLER(get, Strata__V1__GetOpRequest, check_get)
OPS_HANDLER(set_status, Strata__V1__SetStatusRequest, check_set_status)
OPS_HANDLER(list_stuck, Strata__V1__ListStuckRequest, check_list_stuck)
OPS_HANDLER(allocate, Strata__V1__AllocateIdsRequest, check_allocate)

void srv__ops_bind(srv *s, rpc_handler *h) {
  h[RPC_M_ops_create] = (rpc_handler){h_create, s, NULL};
  h[RPC_M_ops_get] = (rpc_handler){h_get, s, NULL};
  h[RPC_M_ops_set_status] = (rpc_handler){h_set_status, s, NULL};
  h[RPC_M_ops_list_stuck] = (rpc_handler){h_list_stuck, s, NULL};
  h[RPC_M_ops_allocate_ids] = (rpc_handler){h_allocate, s, NULL};
}
