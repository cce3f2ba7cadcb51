/*
 * strata.v1.Locks handlers: validate every request, then the lock manager.
 * Until locks/lock.h lands in the build the engine calls answer UNIMPLEMENTED
 * after validation (server/README.md, "Engines").
 */
#include "common/err.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define NO_LOCKS "the lock manager (locks/lock.h) is not part of this build yet"

static int check_acquire(const Strata__V1__AcquireRequest *r) {
  int rc;
  if ((rc = v_op_id("op_id", r->op_id)) || (rc = v_rows("rows", r->n_rows, r->rows)) ||
      (rc = v_enum("kind", r->kind, 1, 2, &strata__v1__lock_kind__descriptor)))
    return rc;
  if (r->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL && r->ttl_ms == 0)
    return strata_err(STRATA_EINVALID, "ttl_ms: must be > 0 for a temporal lock");
  if (r->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE && r->ttl_ms != 0)
    return strata_err(STRATA_EINVALID, "ttl_ms: must be 0 for an indefinite lock (it never "
                                       "expires)");
  if (r->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE && r->respect_indefinite)
    return strata_err(STRATA_EINVALID, "respect_indefinite: only meaningful for a temporal lock");
  return 0;
}

static int check_renew(const Strata__V1__RenewRequest *r) {
  int rc;
  if ((rc = v_op_id("op_id", r->op_id)) || (rc = v_rows("rows", r->n_rows, r->rows))) return rc;
  if (r->ttl_ms == 0) return strata_err(STRATA_EINVALID, "ttl_ms: must be > 0");
  return 0;
}

static int check_release(const Strata__V1__ReleaseRequest *r) {
  int rc;
  if (!r->privileged && (rc = v_op_id("op_id", r->op_id))) return rc;
  if (r->all) {
    if (r->n_rows)
      return strata_err(STRATA_EINVALID, "rows: must be empty when all is set");
    if (r->op_id == 0)
      return strata_err(STRATA_EINVALID, "op_id: must be set with all (whose locks?)");
    return 0;
  }
  return v_rows("rows", r->n_rows, r->rows);
}

static int check_list(const Strata__V1__ListLocksRequest *r) {
  int rc = v_enum("kind", r->kind, 0, 2, &strata__v1__lock_kind__descriptor);
  return rc ? rc : v_bound("prefix", &r->prefix);
}

static int check_check(const Strata__V1__CheckRequest *r) {
  int rc = v_op_id("op_id", r->op_id);
  return rc ? rc : v_rows("rows", r->n_rows, r->rows);
}

#define LOCKS_HANDLER(name, Req, check)                                      \
  static void h_##name(rpc_call *call, const ProtobufCMessage *m, void *ctx) { \
    srv *s = ctx;                                                            \
    int rc = check((const Req *)m);                                          \
    if (rc) {                                                                \
      srv__fail(call, rc);                                                   \
      return;                                                                \
    }                                                                        \
    if (!s->locks) {                                                         \
      rpc_call_fail(call, STRATA_EUNSUPPORTED, "%s: " NO_LOCKS,              \
                    rpc_methods[rpc_call_method(call)].path);                \
      return;                                                                \
    }                                                                        \
  }

LOCKS_HANDLER(acquire, Strata__V1__AcquireRequest, check_acquire)
LOCKS_HANDLER(renew, Strata__V1__RenewRequest, check_renew)
LOCKS_HANDLER(release, Strata__V1__ReleaseRequest, check_release)
LOCKS_HANDLER(list, Strata__V1__ListLocksRequest, check_list)
LOCKS_HANDLER(check, Strata__V1__CheckRequest, check_check)

void srv__locks_bind(srv *s, rpc_handler *h) {
  h[RPC_M_locks_acquire] = (rpc_handler){h_acquire, s, NULL};
  h[RPC_M_locks_renew] = (rpc_handler){h_renew, s, NULL};
  h[RPC_M_locks_release] = (rpc_handler){h_release, s, NULL};
  h[RPC_M_locks_list] = (rpc_handler){h_list, s, NULL};
  h[RPC_M_locks_check] = (rpc_handler){h_check, s, NULL};
}
