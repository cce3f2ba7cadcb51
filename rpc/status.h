/*
 * The one mapping between Strata error codes (common/err.h) and gRPC status
 * codes. The server turns a handler's rc into a status with rpc_status_of();
 * it also sends the exact Strata code in the trailing metadata key
 * RPC_ERR_TRAILER ("strata-error", value strata_errname(rc), e.g.
 * "STRATA_EFENCED" or, for an errno, "ENOSPC"), so the client library restores
 * the precise code with rpc_err_of(). docs/protocol.md has the table.
 */
#ifndef STRATA_RPC_STATUS_H
#define STRATA_RPC_STATUS_H

#include <stddef.h>

#include <grpc/status.h>

#define RPC_ERR_TRAILER "strata-error"

/* The gRPC status for a Strata return code (0, STRATA_E*, or errno). */
grpc_status_code rpc_status_of(int rc);

/* The Strata code for a status received by a client. `trailer` is the value of
 * the strata-error trailing metadata (NULL or empty when absent): when it names
 * a Strata code or an errno (strata_errname's spelling: "ENOSPC"), that code is
 * returned. Otherwise the status alone decides;
 * UNAVAILABLE without a trailer (the server could not be reached) is ENOTCONN. */
int rpc_err_of(grpc_status_code status, const char *trailer, size_t trailer_len);

/* "INVALID_ARGUMENT" etc. Static string. */
const char *rpc_status_name(grpc_status_code status);

#endif
