/*
 * rpc/server.c and rpc/server_life.c share this: the server and call structs
 * and the few internal functions one half calls in the other. Not installed;
 * rpc/server.h is the interface.
 */
#ifndef STRATA_RPC_SERVER_INT_H
#define STRATA_RPC_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "common/mutex.h"
#include "rpc/server.h"

enum tag_kind { T_REQUEST, T_CLOSE, T_SEND, T_STATUS, T_SHUTDOWN };

typedef struct rpc_tag {
  enum tag_kind kind;
  rpc_call *call;
} rpc_tag;

/* Stream states: where the next() continuation is. */
enum sstate { S_NONE, S_WAITING, S_QUEUED, S_RUNNING, S_SENDING };

typedef struct cqw {
  rpc_server *srv;
  grpc_completion_queue *cq;
  pthread_t thread;
} cqw;

struct rpc_call {
  rpc_server *srv;
  cqw *w;
  int mid; /* rpc_method_id, or -1 for the catch-all */
  grpc_call *call;
  gpr_timespec deadline;
  grpc_metadata_array req_md;
  grpc_call_details details; /* catch-all only */
  grpc_byte_buffer *payload;
  ProtobufCMessage *req;
  atomic_int refs;
  int64_t start_ns;

  rpc_tag t_request, t_close, t_send, t_status;
  int close_cancelled; /* RECV_CLOSE_ON_SERVER result */
  int late_close;      /* RECV_CLOSE_ON_SERVER goes with the status (rpc_handler.late_close) */

  strata_mutex mu; /* guards everything below */
  atomic_int cancelled; /* client cancel / deadline seen */
  int md_sent;
  int finished;
  int active; /* counted in srv->active */
  grpc_byte_buffer *send_buf; /* stream message in flight */
  grpc_byte_buffer *status_buf; /* unary response, sent with the status */
  grpc_byte_buffer *held; /* rpc_call_hold_reply's response until it is sent or dropped */
  enum sstate ss;
  int wake_pending, send_in_flight;
  rpc_next_fn next;
  void *state;
  void (*free_state)(void *);
  rpc_call *qnext; /* executor queue */
  rpc_call *lprev, *lnext; /* srv->streams list */
  /* The gate's state (rpc_call_attach). */
  void *gstate;
  void (*gend)(void *, rpc_call *, int, const char *);
  void (*gfree)(void *);
  /* In-process calls (rpc_server_call_local): no grpc_call; results land here. */
  rpc_local_result *local;
  pthread_cond_t lcv; /* with mu: signalled when the call finishes */
};

struct rpc_server {
  grpc_server *server; /* NULL for a local (in-process, no network) server */
  int port;
  size_t max_msg;
  rpc_log_fn log;
  int log_level;
  rpc_handler handlers[RPC_M__COUNT];
  rpc_gate_fn gate;
  void *gate_ctx;
  int tls;
  void *method_handles[RPC_M__COUNT];
  int nw;
  cqw *ws;
  rpc_tag t_shutdown;

  strata_mutex mu;
  pthread_cond_t cv; /* active reaches 0, shutdown tag seen */
  int draining;
  int shutdown_seen;
  uint64_t active;
  atomic_uint_fast64_t sending; /* status batches started whose T_STATUS has not come back */
  rpc_call streams; /* list head of live streams */

  atomic_uint_fast64_t calls_total, calls_failed;
  int64_t started_ns;

  /* Stream continuation executor. */
  strata_mutex xmu;
  pthread_cond_t xcv;
  rpc_call *xhead, *xtail;
  int xstop;
  int nx;
  pthread_t *xthreads;
};

/* server.c */
int64_t rpc__now_ns(int clock);
void rpc__slog(rpc_server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void rpc__call_unref(rpc_call *c);
/* Asks for the next call of method mid (-1: the catch-all) on w's queue. */
void rpc__request_call(cqw *w, int mid);
void *rpc__poller_main(void *arg);
void *rpc__exec_main(void *arg);
/* Decodes a request's bytes and runs the method's handler. */
void rpc__dispatch(rpc_call *c, const uint8_t *p, size_t n, grpc_slice *slice);
void rpc__stream_kick(rpc_call *c);

#endif
