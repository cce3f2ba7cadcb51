/*
 * The Strata error -> gRPC status table (the only one; see status.h) and its
 * inverse for clients.
 */
#include "rpc/status.h"

#include <errno.h>
#include <string.h>

#include "common/err.h"

/* XX(strata code, gRPC status). The first row naming a status is also the code a
 * client gets for that status when the server sent no strata-error trailer. */
#define RPC_STATUS_MAP(XX)                               \
  XX(STRATA_EINVALID, GRPC_STATUS_INVALID_ARGUMENT)      \
  XX(STRATA_ENOTFOUND, GRPC_STATUS_NOT_FOUND)            \
  XX(STRATA_ECORRUPT, GRPC_STATUS_DATA_LOSS)             \
  XX(STRATA_ETOOBIG, GRPC_STATUS_RESOURCE_EXHAUSTED)     \
  XX(STRATA_ERANGE, GRPC_STATUS_OUT_OF_RANGE)            \
  XX(STRATA_EEXISTS, GRPC_STATUS_ALREADY_EXISTS)         \
  XX(STRATA_ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED)      \
  XX(STRATA_EIO, GRPC_STATUS_INTERNAL)                   \
  XX(STRATA_ENOSPC, GRPC_STATUS_RESOURCE_EXHAUSTED)      \
  XX(STRATA_EBUSY, GRPC_STATUS_ABORTED)                  \
  XX(STRATA_ECONDITION, GRPC_STATUS_FAILED_PRECONDITION) \
  XX(STRATA_EFENCED, GRPC_STATUS_FAILED_PRECONDITION)    \
  XX(STRATA_ELOCKED, GRPC_STATUS_FAILED_PRECONDITION)    \
  XX(STRATA_EEXPIRED, GRPC_STATUS_FAILED_PRECONDITION)   \
  XX(STRATA_EUNSUPPORTED, GRPC_STATUS_UNIMPLEMENTED)     \
  XX(STRATA_EMISMATCH, GRPC_STATUS_FAILED_PRECONDITION)  \
  XX(STRATA_ESHUTDOWN, GRPC_STATUS_UNAVAILABLE)          \
  XX(STRATA_EDEADLINE, GRPC_STATUS_DEADLINE_EXCEEDED)    \
  XX(STRATA_ECANCELLED, GRPC_STATUS_CANCELLED)           \
  XX(STRATA_EINTERNAL, GRPC_STATUS_INTERNAL)            \
  XX(STRATA_EUNAUTHENTICATED, GRPC_STATUS_UNAUTHENTICATED) \
  XX(STRATA_EDENIED, GRPC_STATUS_PERMISSION_DENIED)

/* XX(errno, gRPC status): the errno values with a status of their own. Any
 * other errno is INTERNAL. Every errno travels by its name (strata_errname:
 * "ENOSPC"), so the client restores it exactly, whatever its status. */
#define RPC_ERRNO_MAP(XX)                   \
  XX(ENOMEM, GRPC_STATUS_RESOURCE_EXHAUSTED) \
  XX(ENOSPC, GRPC_STATUS_RESOURCE_EXHAUSTED) \
  XX(EDQUOT, GRPC_STATUS_RESOURCE_EXHAUSTED) \
  XX(EACCES, GRPC_STATUS_PERMISSION_DENIED)  \
  XX(EPERM, GRPC_STATUS_PERMISSION_DENIED)   \
  XX(ENOENT, GRPC_STATUS_NOT_FOUND)

/* Linux errno values are below this; a larger one has no name to match. */
#define RPC_ERRNO_LIMIT 4096

grpc_status_code rpc_status_of(int rc) {
  if (rc == 0) return GRPC_STATUS_OK;
  switch (rc) {
#define XX(code, st) \
  case code: return st;
    RPC_STATUS_MAP(XX)
    RPC_ERRNO_MAP(XX)
#undef XX
  default: return GRPC_STATUS_INTERNAL;
  }
}

static int name_is(const char *name, const char *s, size_t n) {
  return strlen(name) == n && memcmp(name, s, n) == 0;
}

/* The code whose strata_errname() the trailer is (the inverse of what the server
 * sends), or 0 when it names none. */
static int code_of_name(const char *s, size_t n) {
#define XX(code, st) \
  if (name_is(#code, s, n)) return code;
  RPC_STATUS_MAP(XX)
  RPC_ERRNO_MAP(XX)
#undef XX
  if (n < 2 || s[0] != 'E') return 0;
  for (int e = 1; e < RPC_ERRNO_LIMIT; e++)
    if (name_is(strata_errname(e), s, n)) return e;
  return 0;
}

int rpc_err_of(grpc_status_code status, const char *trailer, size_t trailer_len) {
  if (status == GRPC_STATUS_OK) return 0;
  int rc = trailer && trailer_len ? code_of_name(trailer, trailer_len) : 0;
  if (rc) return rc;
  switch (status) {
  case GRPC_STATUS_UNAVAILABLE: return ENOTCONN;
  case GRPC_STATUS_PERMISSION_DENIED:
  case GRPC_STATUS_UNAUTHENTICATED: return EACCES;
  case GRPC_STATUS_UNKNOWN: return STRATA_EINTERNAL;
  default: break;
  }
#define XX(code, st) \
  if (status == st) return code;
  RPC_STATUS_MAP(XX)
#undef XX
  return STRATA_EINTERNAL;
}

const char *rpc_status_name(grpc_status_code s) {
  static const char *const names[] = {"OK",
                                      "CANCELLED",
                                      "UNKNOWN",
                                      "INVALID_ARGUMENT",
                                      "DEADLINE_EXCEEDED",
                                      "NOT_FOUND",
                                      "ALREADY_EXISTS",
                                      "PERMISSION_DENIED",
                                      "RESOURCE_EXHAUSTED",
                                      "FAILED_PRECONDITION",
                                      "ABORTED",
                                      "OUT_OF_RANGE",
                                      "UNIMPLEMENTED",
                                      "INTERNAL",
                                      "UNAVAILABLE",
                                      "DATA_LOSS",
                                      "UNAUTHENTICATED"};
  if ((unsigned)s < sizeof names / sizeof names[0]) return names[s];
  return "UNKNOWN_STATUS";
}
