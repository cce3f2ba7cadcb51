/*
 * The server side of Strata's gRPC glue: completion queues, poller threads, the
 * method table (methods.h) bound to handlers, unary and server-streaming calls,
 * cancellation, deadlines, and the safe shutdown order. It knows nothing about
 * the store or the locks: server/ supplies one handler per method.
 *
 * Handler contract. start(call, req, ctx) runs on a poller thread with the
 * decoded request (owned by the call, valid until the call ends). It must end
 * the call exactly once, now or later and from any thread, with
 * rpc_call_reply() / rpc_call_fail() (unary), or hand a unary-stream call to
 * rpc_stream_begin(), after which the next() continuation ends it. The call
 * object stays valid until then. Nothing blocks a thread per call: a commit
 * handler passes `call` to the store and replies from its completion callback.
 */
#ifndef STRATA_RPC_SERVER_H
#define STRATA_RPC_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/methods.h"

typedef struct rpc_server rpc_server;
typedef struct rpc_call rpc_call;

typedef void (*rpc_start_fn)(rpc_call *call, const ProtobufCMessage *req, void *ctx);
/* A stream continuation: called on an executor thread whenever the stream can
 * take another message (after rpc_stream_begin, after each send completes,
 * after rpc_call_wake, and on cancellation or server drain). Each run does at
 * most one of: rpc_stream_send() once, rpc_call_fail()/rpc_stream_end(), or
 * nothing (the stream waits until rpc_call_wake). Runs never overlap. */
typedef void (*rpc_next_fn)(rpc_call *call, void *state);

typedef struct rpc_handler {
  rpc_start_fn start; /* NULL: the method answers UNIMPLEMENTED */
  void *ctx; /* passed to start */
  const char *unimplemented_msg; /* with start == NULL, the message to send (optional) */
  /* A unary method whose handler never asks whether the client went away
   * (rpc_call_stop_reason's STRATA_ECANCELLED): the server learns of a
   * cancel only with the answer (RECV_CLOSE_ON_SERVER rides in the final
   * batch), which saves a completion and a poller wake-up per call. Ignored
   * for streams, which always see a cancel as it comes. */
  int late_close;
} rpc_handler;

/* The gate (rpc_server_opts.gate): decides whether a call may run. It is
 * called twice per call on a method of the table, on the poller thread: first
 * with req == NULL before the request is decoded (authenticate; refuse by
 * method), then with the decoded request just before the handler (refuse by
 * what the request asks). A nonzero return ends the call with that code and
 * this thread's strata_errmsg(); the handler never runs. Calls to unknown
 * methods are not gated (they are answered UNIMPLEMENTED and touch nothing). */
typedef int (*rpc_gate_fn)(void *ctx, rpc_call *call, const ProtobufCMessage *req);

/* Log hook: level 0=error 1=warn 2=info 3=debug; `line` is "event=... k=v ...". */
typedef void (*rpc_log_fn)(int level, const char *line);

typedef struct rpc_server_opts {
  const char *listen; /* "host:port"; port 0 picks a free one. Default "127.0.0.1:0" */
  int threads; /* poller threads, one completion queue each; 0 = 2 (strata-server picks its own) */
  int exec_threads; /* stream continuation threads; default 2 */
  size_t max_message_bytes; /* largest message received or sent; default 64 MiB */
  rpc_log_fn log; /* default: none */
  int log_level; /* lines above this level are not even formatted; 0 = errors only */
  rpc_handler handlers[RPC_M__COUNT];
  /* TLS (rpc/tls.h): PEM file paths. tls_cert and tls_key together turn TLS on;
   * tls_client_ca then also requires every client to present a certificate
   * signed by that CA (mutual TLS). All NULL: plaintext. */
  const char *tls_cert, *tls_key, *tls_client_ca;
  rpc_gate_fn gate; /* NULL: every call runs */
  void *gate_ctx;
} rpc_server_opts;

/* Binds, starts the threads and begins serving. On failure returns a Strata
 * code with detail in strata_errmsg() (e.g. the address could not be bound)
 * and *out is NULL. */
int rpc_server_start(const rpc_server_opts *o, rpc_server **out);

/* The bound port (useful when listen asked for port 0). */
int rpc_server_port(const rpc_server *s);

/* Stops accepting calls (a call arriving from now on, Health.Check included, is
 * answered UNAVAILABLE; only a check accepted just before may report
 * NOT_SERVING), wakes every stream so it can end with UNAVAILABLE, waits up to
 * grace_ms for in-flight calls to end (0: none), cancels the rest, waits for every handler to end its call, then shuts the
 * queues down, joins the threads and frees everything. Call it once, from a
 * thread that is not one of the server's. */
void rpc_server_stop(rpc_server *s, int grace_ms);

/* True once rpc_server_stop has begun. */
int rpc_server_draining(const rpc_server *s);

/* Counters for Admin.Stats. */
typedef struct rpc_server_stats {
  uint64_t calls_total, calls_active, calls_failed;
  int64_t started_ns; /* CLOCK_REALTIME */
} rpc_server_stats;
void rpc_server_get_stats(const rpc_server *s, rpc_server_stats *st);
size_t rpc_server_max_message_bytes(const rpc_server *s);

/* Checks every `string` field of the encoded message p[0..n) of type d
 * (nested and repeated ones too) with strata_text_check (common/utf8.h): 0, or
 * STRATA_EINVALID with a message naming the field as a path ("ops[2].user: is
 * not valid UTF-8 (byte 3 of 5)"). Bytes that do not parse are left to the
 * decoder. The server runs it on every request before decoding. */
int rpc_check_text(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);

/* --- in-process calls (fuzzing, tests) -------------------------------------- */

/* What a local call answered. The caller sets on_message/arg (may be NULL);
 * rpc_server_call_local fills in the rest. */
typedef struct rpc_local_result {
  /* Each response message, serialized (a unary reply, or one stream message);
   * p is valid during the call only. Runs on the handler's thread. */
  void (*on_message)(void *arg, rpc_method_id m, const uint8_t *p, size_t n);
  void *arg;
  size_t max_messages; /* > 0: after this many response messages the call is cancelled,
                          as a client that stops reading would */
  int rc; /* the Strata code the call ended with; 0 = OK */
  int status; /* the gRPC status rpc_status_of(rc) */
  const char *trailer; /* the strata-error trailer value a client would get; NULL when OK */
  char msg[1024]; /* the status message */
  size_t messages, bytes; /* response messages and their total size */
} rpc_local_result;

/* A server with the handlers of `o` and no network: only
 * rpc_server_call_local reaches it (listen and threads are ignored). Stop it
 * with rpc_server_stop. */
int rpc_server_start_local(const rpc_server_opts *o, rpc_server **out);

/* Runs one call of method m on a local server with the encoded request
 * req[0..n): the same size limit, text check, decoding, handler and status
 * mapping as a gRPC call, and returns when the call has ended (a stream that
 * would wait for more, such as a Watch that caught up, is cancelled). The
 * call's deadline is timeout_ms from now. */
void rpc_server_call_local(rpc_server *s, rpc_method_id m, const void *req, size_t n,
                           int64_t timeout_ms, rpc_local_result *res);

/* --- one call ------------------------------------------------------------- */

/* Ends a unary call with OK and `resp` (still owned by the caller: it is
 * serialized before this returns). A response above the message limit ends the
 * call with RESOURCE_EXHAUSTED instead. */
void rpc_call_reply(rpc_call *call, const ProtobufCMessage *resp);

/* A unary answer that must wait (the lock service answers once its change is
 * durable): serializes `resp` now (still the caller's) and keeps it in the
 * call, which ends when rpc_call_send_held sends it or rpc_call_fail drops it,
 * from any thread. Returns 0 when held; 1 for an in-process call, where nothing
 * is held (answer it later with rpc_call_reply); or the failure code when the
 * response is above the message limit, after ending the call with
 * RESOURCE_EXHAUSTED. */
int rpc_call_hold_reply(rpc_call *call, const ProtobufCMessage *resp);
void rpc_call_send_held(rpc_call *call);

/* Ends a call (unary or stream) with the status rpc_status_of(rc) and a message
 * (printf format) that names the field, key or row at fault. rc == 0 ends a
 * stream with OK. */
void rpc_call_fail(rpc_call *call, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Turns `call` into a server stream driven by next(call, state). free_state
 * (may be NULL) runs once when the call is freed. Call it from start only. */
void rpc_stream_begin(rpc_call *call, rpc_next_fn next, void *state, void (*free_state)(void *));

/* Sends one stream message (serialized before return; `msg` stays the
 * caller's). Only from next(). Returns 0, or STRATA_ETOOBIG when the message is
 * above the limit (the caller should then end the stream). */
int rpc_stream_send(rpc_call *call, const ProtobufCMessage *msg);

/* Ends a stream with OK. Only from next(). */
void rpc_stream_end(rpc_call *call);

/* Schedules next() again for a waiting stream; any thread, any time (a no-op
 * when the call has ended or is already scheduled). */
void rpc_call_wake(rpc_call *call);

/* True when the client cancelled, the deadline passed, or the server drains:
 * the handler should stop working and end the call. */
int rpc_call_stopping(const rpc_call *call);
/* Why rpc_call_stopping is true: STRATA_ECANCELLED (client cancel),
 * STRATA_EDEADLINE (deadline passed) or STRATA_ESHUTDOWN (server drain); 0
 * otherwise. */
int rpc_call_stop_reason(const rpc_call *call);

/* Milliseconds left before the call's deadline (INT64_MAX when none). */
int64_t rpc_call_remaining_ms(const rpc_call *call);

/* The value of request metadata `key` (lower case, e.g. "authorization"):
 * its length with *val pointing into the call's metadata (not NUL-terminated,
 * valid until the call ends), or -1 when the client sent none. */
long rpc_call_metadata(const rpc_call *call, const char *key, const char **val);

/* The client's address as gRPC names it ("ipv4:127.0.0.1:53012"), or "local"
 * for an in-process call, into buf (always terminated). */
void rpc_call_peer(const rpc_call *call, char *buf, size_t n);

/* The subject of the client's verified TLS certificate ("CN=alice,O=ops"),
 * into buf; returns 1, or 0 (buf "") when the call came without one. */
int rpc_call_peer_subject(const rpc_call *call, char *buf, size_t n);

/* 1 when the call arrived over TLS. */
int rpc_call_is_tls(const rpc_call *call);

/* Attaches the gate's per-call state: on_end(state, call, rc, msg) runs once
 * when the call ends (on the thread that ends it, before the status is sent;
 * rc and msg are the status about to go out), then free_state(state). Only one
 * attachment per call. */
void rpc_call_attach(rpc_call *call, void *state,
                     void (*on_end)(void *state, rpc_call *call, int rc, const char *msg),
                     void (*free_state)(void *state));
/* The state attached with rpc_call_attach, or NULL. */
void *rpc_call_attached(const rpc_call *call);

/* The method being served. */
rpc_method_id rpc_call_method(const rpc_call *call);
rpc_server *rpc_call_server(const rpc_call *call);

#endif
