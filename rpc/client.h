/*
 * Strata's C client library: one channel per rpc_client, one typed function
 * per RPC (generated from RPC_METHOD_MAP), deadlines, and errors returned as
 * Strata codes with the server's message in strata_errmsg(). stratactl, the
 * tools and the tests use it. A client is safe to use from many threads at
 * once; each call is synchronous and runs on the calling thread.
 *
 * Unary:   int rpc_kv_get(c, opts, &req, &resp);  rpc_free(resp);
 * Streams: int rpc_kv_list(c, opts, &req, &st);
 *          while ((rc = rpc_kv_list_next(st, &msg)) == 1) { ...; rpc_free(msg); }
 *          rpc_cstream_close(st);     (rc == 0: the stream ended with OK)
 */
#ifndef STRATA_RPC_CLIENT_H
#define STRATA_RPC_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>
#include <protobuf-c/protobuf-c.h>

#include "rpc/methods.h"

typedef struct rpc_client rpc_client;
typedef struct rpc_cstream rpc_cstream;

#define RPC_DEFAULT_ADDR "127.0.0.1:7420"

typedef struct rpc_client_opts {
  /* "host:port". NULL: $STRATA_ADDR, then RPC_DEFAULT_ADDR. */
  const char *addr;
  /* Deadline of each call in ms when the call's rpc_callopts does not say;
   * 0 = the default 30000; < 0 = no deadline. */
  int64_t timeout_ms;
  /* Largest message sent or received; 0 = 64 MiB (the server's default). */
  size_t max_message_bytes;
  /* 0 (default): a call fails at once with ENOTCONN when the server cannot be
   * reached. 1: wait for the connection until the call's deadline. */
  int wait_for_ready;
  /* TLS (docs/security.md). tls_ca: PEM file of the CA that signed the
   * server's certificate; giving it turns TLS on. tls_cert + tls_key: this
   * client's certificate and key, for servers that require mutual TLS. Each
   * NULL falls back to $STRATA_TLS_CA, $STRATA_TLS_CERT, $STRATA_TLS_KEY. */
  const char *tls_ca, *tls_cert, *tls_key;
  /* Bearer token sent with every call as "authorization: Bearer TOKEN".
   * NULL: $STRATA_TOKEN; "" or unset: none. */
  const char *token;
} rpc_client_opts;

/* Per-call options; NULL means the client's defaults. */
typedef struct rpc_callopts {
  int64_t timeout_ms; /* 0 = the client's default; < 0 = no deadline */
} rpc_callopts;

/* Creates a client for o->addr (NULL opts: all defaults). Connects lazily: an
 * unreachable server shows up as ENOTCONN on the first call. Free with
 * rpc_client_close. Returns 0, STRATA_ENOMEM, or (a TLS file missing,
 * unreadable or not matching) STRATA_EINVALID / an errno with a message naming
 * the file. */
/* grpc_init() with the process-wide settings Strata runs gRPC core with
 * (rpc/README.md, "Process-wide settings"). Every process that uses gRPC
 * through rpc/ (server, clients, tools) calls this instead of grpc_init();
 * pair it with grpc_shutdown() as usual. */
void rpc_grpc_init(void);

int rpc_client_open(const rpc_client_opts *o, rpc_client **out);
/* Closes the channel. No call on `c` may be in progress. */
void rpc_client_close(rpc_client *c);
/* The address the client talks to. Valid until rpc_client_close. */
const char *rpc_client_addr(const rpc_client *c);

/* Return codes of every call: 0, or
 *  - the server's code (STRATA_EINVALID, STRATA_ENOTFOUND, STRATA_ECONDITION,
 *    STRATA_EFENCED, ..., or an errno such as ENOSPC), restored exactly from the
 *    strata-error trailer;
 *  - STRATA_EDEADLINE when the deadline passed, STRATA_ECANCELLED when cancelled,
 *    STRATA_EUNSUPPORTED for UNIMPLEMENTED, STRATA_ETOOBIG for a message above a
 *    size limit, ENOTCONN when the server could not be reached.
 * strata_errmsg() then holds "STATUS_NAME: the server's message" on this thread and
 * rpc_client_last_status() the raw gRPC status. */
grpc_status_code rpc_client_last_status(void);
/* The strata-error trailer of this thread's last failed call ("STRATA_EINVALID",
 * "ENOSPC"), "" when it had none or succeeded. Valid until the next call. */
const char *rpc_client_last_trailer(void);

/* Generic forms (the typed functions below call these). *resp is the caller's
 * to free with rpc_free; on error it is NULL. */
int rpc_client_unary(rpc_client *c, rpc_method_id m, const rpc_callopts *co,
                     const ProtobufCMessage *req, ProtobufCMessage **resp);
int rpc_client_stream(rpc_client *c, rpc_method_id m, const rpc_callopts *co,
                      const ProtobufCMessage *req, rpc_cstream **out);
/* Reads the next stream message: returns 1 with *msg (caller frees with
 * rpc_free), 0 when the stream ended with OK, or an error code as above. */
int rpc_cstream_next(rpc_cstream *s, ProtobufCMessage **msg);
/* Cancels the stream if it has not ended; any thread, while another thread
 * waits in rpc_cstream_next (which then returns STRATA_ECANCELLED). */
void rpc_cstream_cancel(rpc_cstream *s);
/* Cancels if needed and frees the stream. */
void rpc_cstream_close(rpc_cstream *s);

/* Raw form for tests and probes: sends `len` bytes to any method path, returns
 * the status code as rc (as above) and the raw response bytes (malloc'd, caller
 * frees) when resp is non-NULL. */
int rpc_client_raw(rpc_client *c, const char *path, const rpc_callopts *co, const void *req,
                   size_t len, void **resp, size_t *resp_len);

/* Kv.BatchGet without decoding the response into one message (large reads: no
 * flattening of the received message, no copy of each value): fn(ctx, i, found,
 * value, len) for entry i of req->n_keys, in request order. value is valid only
 * during the call, at any alignment (in place in the received message when it
 * lies in one piece, else in a scratch buffer); "" with len 0 when not found. A
 * non-zero result of fn stops the walk and is returned as is (choose values that
 * are not Strata codes to tell them apart). *generation (may be NULL) is the
 * version read. Other returns as above; a response that is not a BatchGetResponse
 * with exactly one entry per key is STRATA_EINTERNAL. */
typedef int (*rpc_kv_value_fn)(void *ctx, size_t i, int found, const uint8_t *value, size_t len);
int rpc_kv_batch_get_each(rpc_client *c, const rpc_callopts *co,
                          const Strata__V1__BatchGetRequest *req, rpc_kv_value_fn fn, void *ctx,
                          uint64_t *generation);

/* Frees a message returned by the library. NULL is fine. */
void rpc_free(void *msg);

/* The typed functions, one per RPC:
 *   int rpc_<name>(rpc_client *, const rpc_callopts *, const Req *, Resp **)   (unary)
 *   int rpc_<name>(rpc_client *, const rpc_callopts *, const Req *, rpc_cstream **)
 *   int rpc_<name>_next(rpc_cstream *, Resp **)                               (streams) */
#define RPC__DECL_UNARY(name, Req, Resp) \
  int rpc_##name(rpc_client *c, const rpc_callopts *co, const Req *req, Resp **resp);
#define RPC__DECL_STREAM(name, Req, Resp)                                                   \
  int rpc_##name(rpc_client *c, const rpc_callopts *co, const Req *req, rpc_cstream **out); \
  int rpc_##name##_next(rpc_cstream *s, Resp **msg);
#define XX(name, path, kind, Req, req, Resp, resp) RPC__DECL_##kind(name, Req, Resp)
RPC_METHOD_MAP(XX)
#undef XX

#endif
