/*
 * gRPC C core server glue: one completion queue per poller thread, every
 * registered method requested on every queue, one catch-all request per queue
 * that answers UNIMPLEMENTED, and a small executor for stream continuations.
 * rpc/README.md describes the call lifecycle, the reference counts and the
 * shutdown order; grpc-core-notes.md lists the pitfalls this file avoids.
 *
 * Lock order: rpc_server.mu before rpc_call.mu; the executor's xmu is innermost
 * (exec_push takes it under rpc_server.mu in wake_streams, never under
 * rpc_call.mu) and nothing is locked while it is held.
 */
#include "rpc/server_int.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "common/err.h"
#include "rpc/status.h"
#include "rpc/tls.h"
#include "rpc/wire.h"

int64_t rpc__now_ns(int clock) {
  struct timespec ts;
  clock_gettime(clock, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void rpc__slog(rpc_server *s, int level, const char *fmt, ...) {
  if (!s->log || level > s->log_level) return;
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  s->log(level, line);
}

/* --- reference counting ---------------------------------------------------- */

static void call_ref(rpc_call *c) { atomic_fetch_add(&c->refs, 1); }

static void call_free(rpc_call *c) {
  if (c->free_state) c->free_state(c->state);
  if (c->gfree) c->gfree(c->gstate);
  if (c->req) protobuf_c_message_free_unpacked(c->req, NULL);
  if (c->payload) grpc_byte_buffer_destroy(c->payload);
  if (c->send_buf) grpc_byte_buffer_destroy(c->send_buf);
  if (c->status_buf) grpc_byte_buffer_destroy(c->status_buf);
  grpc_metadata_array_destroy(&c->req_md);
  if (c->mid < 0) grpc_call_details_destroy(&c->details);
  if (c->call) grpc_call_unref(c->call);
  if (c->local) pthread_cond_destroy(&c->lcv);
  strata_mutex_destroy(&c->mu);
  free(c);
}

void rpc__call_unref(rpc_call *c) {
  if (atomic_fetch_sub(&c->refs, 1) == 1) call_free(c);
}

/* --- requesting calls ------------------------------------------------------ */

void rpc__request_call(cqw *w, int mid) {
  rpc_server *s = w->srv;
  rpc_call *c = calloc(1, sizeof *c);
  if (!c) abort(); /* cannot keep serving this method without a request outstanding */
  c->srv = s;
  c->w = w;
  c->mid = mid;
  atomic_init(&c->refs, 1);
  strata_mutex_init(&c->mu);
  grpc_metadata_array_init(&c->req_md);
  c->t_request = (rpc_tag){T_REQUEST, c};
  c->t_close = (rpc_tag){T_CLOSE, c};
  c->t_send = (rpc_tag){T_SEND, c};
  c->t_status = (rpc_tag){T_STATUS, c};
  grpc_call_error e;
  if (mid < 0) {
    grpc_call_details_init(&c->details);
    e = grpc_server_request_call(s->server, &c->call, &c->details, &c->req_md, w->cq, w->cq,
                                 &c->t_request);
  } else {
    e = grpc_server_request_registered_call(s->server, s->method_handles[mid], &c->call,
                                            &c->deadline, &c->req_md, &c->payload, w->cq, w->cq,
                                            &c->t_request);
  }
  if (e != GRPC_CALL_OK) {
    rpc__slog(s, 0, "event=request_call_failed method=%s error=%d",
         mid < 0 ? "*" : rpc_methods[mid].path, (int)e);
    rpc__call_unref(c);
  }
}

/* --- ending a call ---------------------------------------------------------- */

/* Drops the call out of the active count (the handler's reference). */
static void call_deactivate(rpc_call *c) {
  rpc_server *s = c->srv;
  strata_mutex_lock(&s->mu);
  if (c->lprev) { /* unlink from the stream list */
    c->lprev->lnext = c->lnext;
    c->lnext->lprev = c->lprev;
    c->lprev = c->lnext = NULL;
  }
  assert(s->active > 0);
  if (--s->active == 0) pthread_cond_broadcast(&s->cv);
  strata_mutex_unlock(&s->mu);
}

/* Starts the status batch. `body` (may be NULL) is a serialized unary reply. */
/* A local call ends: the status goes to the caller's result, not to a socket. */
static void local_end(rpc_call *c, int rc, grpc_status_code st, const char *msg) {
  strata_mutex_lock(&c->mu);
  assert(!c->finished);
  c->finished = 1;
  c->local->rc = rc;
  c->local->status = (int)st;
  snprintf(c->local->msg, sizeof c->local->msg, "%s", msg ? msg : "");
  c->local->trailer = rc ? strata_errname(rc) : NULL;
  pthread_cond_broadcast(&c->lcv);
  strata_mutex_unlock(&c->mu);
}

/* Starts the status batch (or, for a local call, records the status). `body`
 * (may be NULL) is a serialized unary reply. Every non-OK status carries the
 * strata-error trailer. */
static void call_end(rpc_call *c, int rc, const char *msg, grpc_byte_buffer *body) {
  grpc_status_code st = rpc_status_of(rc);
  rpc_server *s = c->srv;
  if (c->held && c->held != body) grpc_byte_buffer_destroy(c->held); /* a held answer dropped */
  c->held = NULL;
  if (c->gend) { /* the audit's outcome record: before the client can see the answer */
    void (*end)(void *, rpc_call *, int, const char *) = c->gend;
    c->gend = NULL;
    end(c->gstate, c, rc, msg ? msg : "");
  }
  if (c->local) {
    assert(!body);
    local_end(c, rc, st, msg);
    goto done;
  }
  grpc_op ops[4];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  grpc_metadata trailer;
  grpc_slice details = grpc_slice_from_copied_string(msg ? msg : "");

  strata_mutex_lock(&c->mu);
  assert(!c->finished);
  c->finished = 1;
  if (!c->md_sent) {
    ops[n].op = GRPC_OP_SEND_INITIAL_METADATA; /* pitfall 1: a status alone is never sent */
    ops[n].data.send_initial_metadata.count = 0;
    n++;
    c->md_sent = 1;
  }
  if (body) {
    c->status_buf = body;
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n].data.send_message.send_message = body;
    n++;
  }
  ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
  ops[n].data.send_status_from_server.status = st;
  ops[n].data.send_status_from_server.status_details = &details;
  if (rc != 0) {
    trailer.key = grpc_slice_from_static_string(RPC_ERR_TRAILER);
    trailer.value = grpc_slice_from_static_string(strata_errname(rc));
    ops[n].data.send_status_from_server.trailing_metadata_count = 1;
    ops[n].data.send_status_from_server.trailing_metadata = &trailer;
  }
  n++;
  if (c->late_close) {
    ops[n].op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    ops[n].data.recv_close_on_server.cancelled = &c->close_cancelled;
    n++;
  }
  call_ref(c); /* pitfall 3: the reference before the batch */
  atomic_fetch_add(&s->sending, 1);
  grpc_call_error e = grpc_call_start_batch(c->call, ops, n, &c->t_status, NULL);
  strata_mutex_unlock(&c->mu);
  grpc_slice_unref(details); /* pitfall 5: core took its own reference */
  if (e != GRPC_CALL_OK) {
    rpc__slog(c->srv, 0, "event=start_batch_failed op=status error=%d", (int)e);
    atomic_fetch_sub(&s->sending, 1);
    rpc__call_unref(c);
  }

done:
  if (rc != 0) atomic_fetch_add(&s->calls_failed, 1);
  if (s->log && (rc ? 2 : 3) <= s->log_level) {
    char q[600];
    size_t k = 0;
    for (const char *p = msg ? msg : ""; *p && k < sizeof q - 1; p++)
      q[k++] = *p == '"' ? '\'' : (*p == '\n' ? ' ' : *p);
    q[k] = 0;
    rpc__slog(s, rc ? 2 : 3, "event=call method=%s status=%s us=%lld%s%s%s",
         c->mid < 0 ? "unknown" : rpc_methods[c->mid].path, rpc_status_name(st),
         (long long)((rpc__now_ns(CLOCK_MONOTONIC) - c->start_ns) / 1000), rc ? " msg=\"" : "",
         rc ? q : "", rc ? "\"" : "");
  }
  if (c->active) call_deactivate(c);
  rpc__call_unref(c); /* the handler's reference */
}

/* Serializes m into a new byte buffer. NULL with *too_big set when m exceeds
 * the message limit. */
static grpc_byte_buffer *pack(rpc_server *s, const ProtobufCMessage *m, size_t *size) {
  size_t n = protobuf_c_message_get_packed_size(m);
  *size = n;
  return n > s->max_msg ? NULL : rpc_pack(m);
}

/* A local call's message: serialized, handed to the caller's callback, counted. */
static int local_message(rpc_call *c, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  if (n > c->srv->max_msg)
    return strata_err(STRATA_ETOOBIG, "message of %zu bytes exceeds --max-message-bytes %zu", n,
                      c->srv->max_msg);
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return strata_err(STRATA_ENOMEM, "message of %zu bytes: out of memory", n);
  protobuf_c_message_pack(m, p);
  rpc_local_result *r = c->local;
  if (r->on_message) r->on_message(r->arg, c->mid, p, n);
  r->messages++;
  r->bytes += n;
  free(p);
  if (r->max_messages && r->messages >= r->max_messages) atomic_store(&c->cancelled, 1);
  return 0;
}

/* A unary response packed, or NULL after the call ended with RESOURCE_EXHAUSTED. */
static grpc_byte_buffer *pack_reply(rpc_call *c, const ProtobufCMessage *resp) {
  size_t n;
  grpc_byte_buffer *bb = pack(c->srv, resp, &n);
  if (!bb)
    rpc_call_fail(c, STRATA_ETOOBIG,
                  "response of %zu bytes exceeds the server's --max-message-bytes %zu", n,
                  c->srv->max_msg);
  return bb;
}

void rpc_call_reply(rpc_call *c, const ProtobufCMessage *resp) {
  if (c->local) {
    int rc = local_message(c, resp);
    if (rc) rpc_call_fail(c, rc, "response: %s", strata_errmsg());
    else call_end(c, 0, NULL, NULL);
    return;
  }
  grpc_byte_buffer *bb = pack_reply(c, resp);
  if (bb) call_end(c, 0, NULL, bb);
}

int rpc_call_hold_reply(rpc_call *c, const ProtobufCMessage *resp) {
  if (c->local) return 1;
  assert(!c->held);
  if (!(c->held = pack_reply(c, resp))) return STRATA_ETOOBIG;
  return 0;
}

void rpc_call_send_held(rpc_call *c) {
  assert(c->held);
  call_end(c, 0, NULL, c->held);
}

void rpc_call_fail(rpc_call *c, int rc, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  call_end(c, rc, msg, NULL);
}

void rpc_stream_end(rpc_call *c) { call_end(c, 0, NULL, NULL); }

/* --- streams ---------------------------------------------------------------- */

static void exec_push(rpc_call *c) {
  rpc_server *s = c->srv;
  strata_mutex_assert_not_held(&c->mu); /* the lock order above */
  call_ref(c); /* the queue's reference */
  strata_mutex_lock(&s->xmu);
  c->qnext = NULL;
  if (s->xtail)
    s->xtail->qnext = c;
  else
    s->xhead = c;
  s->xtail = c;
  pthread_cond_signal(&s->xcv);
  strata_mutex_unlock(&s->xmu);
}

/* Schedules next() unless it is queued, running (then once more) or sending. */
void rpc__stream_kick(rpc_call *c) {
  int push = 0;
  strata_mutex_lock(&c->mu);
  if (!c->finished) {
    if (c->ss == S_WAITING) {
      c->ss = S_QUEUED;
      push = 1;
    } else if (c->ss == S_RUNNING) {
      c->wake_pending = 1;
    }
  }
  strata_mutex_unlock(&c->mu);
  if (push) exec_push(c);
}

void rpc_call_wake(rpc_call *c) { rpc__stream_kick(c); }

static void stream_run(rpc_call *c) {
  strata_mutex_lock(&c->mu);
  if (c->finished) {
    strata_mutex_unlock(&c->mu);
    return;
  }
  c->ss = S_RUNNING;
  c->wake_pending = 0;
  strata_mutex_unlock(&c->mu);

  c->next(c, c->state);

  int push = 0;
  strata_mutex_lock(&c->mu);
  if (c->finished) {
    c->ss = S_NONE;
  } else if (c->send_in_flight) {
    c->ss = S_SENDING;
  } else if (c->wake_pending) {
    c->ss = S_QUEUED;
    push = 1;
  } else if (c->local) {
    /* Nobody can wake a local stream later (no commit follows a Watch that
     * caught up): it is cancelled, and the next run ends it. */
    atomic_store(&c->cancelled, 1);
    c->ss = S_QUEUED;
    push = 1;
  } else {
    c->ss = S_WAITING;
  }
  strata_mutex_unlock(&c->mu);
  if (push) exec_push(c);
}

void *rpc__exec_main(void *arg) {
  rpc_server *s = arg;
  for (;;) {
    strata_mutex_lock(&s->xmu);
    while (!s->xhead && !s->xstop) strata_cond_wait(&s->xcv, &s->xmu);
    rpc_call *c = s->xhead;
    if (!c) {
      strata_mutex_unlock(&s->xmu);
      return NULL;
    }
    s->xhead = c->qnext;
    if (!s->xhead) s->xtail = NULL;
    strata_mutex_unlock(&s->xmu);
    stream_run(c);
    rpc__call_unref(c);
  }
}

void rpc_stream_begin(rpc_call *c, rpc_next_fn next, void *state, void (*free_state)(void *)) {
  rpc_server *s = c->srv;
  assert(c->mid >= 0 && rpc_methods[c->mid].kind == RPC_STREAM);
  c->next = next;
  c->state = state;
  c->free_state = free_state;
  strata_mutex_lock(&s->mu);
  c->lnext = s->streams.lnext;
  c->lprev = &s->streams;
  s->streams.lnext->lprev = c;
  s->streams.lnext = c;
  strata_mutex_unlock(&s->mu);
  strata_mutex_lock(&c->mu);
  c->ss = S_WAITING;
  strata_mutex_unlock(&c->mu);
  rpc__stream_kick(c);
}

int rpc_stream_send(rpc_call *c, const ProtobufCMessage *msg) {
  size_t n;
  if (c->local) { /* delivered at once: next() runs again as after a send */
    int rc = local_message(c, msg);
    strata_mutex_lock(&c->mu);
    assert(c->ss == S_RUNNING && !c->finished);
    if (!rc) c->wake_pending = 1;
    strata_mutex_unlock(&c->mu);
    return rc;
  }
  grpc_byte_buffer *bb = pack(c->srv, msg, &n);
  if (!bb)
    return strata_err(STRATA_ETOOBIG, "stream message of %zu bytes exceeds --max-message-bytes %zu",
                      n, c->srv->max_msg);
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t k = 0;
  strata_mutex_lock(&c->mu);
  assert(c->ss == S_RUNNING && !c->send_in_flight && !c->finished);
  if (!c->md_sent) {
    ops[k].op = GRPC_OP_SEND_INITIAL_METADATA;
    k++;
    c->md_sent = 1;
  }
  ops[k].op = GRPC_OP_SEND_MESSAGE;
  ops[k].data.send_message.send_message = bb;
  k++;
  c->send_buf = bb;
  c->send_in_flight = 1;
  call_ref(c);
  grpc_call_error e = grpc_call_start_batch(c->call, ops, k, &c->t_send, NULL);
  if (e != GRPC_CALL_OK) {
    c->send_in_flight = 0;
    c->send_buf = NULL;
    strata_mutex_unlock(&c->mu);
    grpc_byte_buffer_destroy(bb);
    rpc__call_unref(c);
    return strata_err(STRATA_EINTERNAL, "grpc_call_start_batch(send) failed: %d", (int)e);
  }
  strata_mutex_unlock(&c->mu);
  return 0;
}

/* --- call accessors -------------------------------------------------------- */

int rpc_call_stop_reason(const rpc_call *c) {
  if (atomic_load(&c->cancelled)) return STRATA_ECANCELLED;
  if (rpc_server_draining(c->srv)) return STRATA_ESHUTDOWN;
  if (c->mid >= 0 && rpc_call_remaining_ms(c) <= 0) return STRATA_EDEADLINE;
  return 0;
}

int rpc_call_stopping(const rpc_call *c) { return rpc_call_stop_reason(c) != 0; }

int64_t rpc_call_remaining_ms(const rpc_call *c) {
  gpr_timespec d = gpr_convert_clock_type(c->deadline, GPR_CLOCK_MONOTONIC);
  if (gpr_time_cmp(d, gpr_inf_future(GPR_CLOCK_MONOTONIC)) == 0) return INT64_MAX;
  gpr_timespec left = gpr_time_sub(d, gpr_now(GPR_CLOCK_MONOTONIC));
  return (int64_t)left.tv_sec * 1000 + left.tv_nsec / 1000000;
}

rpc_method_id rpc_call_method(const rpc_call *c) { return (rpc_method_id)c->mid; }

long rpc_call_metadata(const rpc_call *c, const char *key, const char **val) {
  for (size_t i = 0; i < c->req_md.count; i++)
    if (grpc_slice_str_cmp(c->req_md.metadata[i].key, key) == 0) {
      *val = (const char *)GRPC_SLICE_START_PTR(c->req_md.metadata[i].value);
      return (long)GRPC_SLICE_LENGTH(c->req_md.metadata[i].value);
    }
  *val = NULL;
  return -1;
}

void rpc_call_peer(const rpc_call *c, char *buf, size_t n) {
  if (!c->call) {
    snprintf(buf, n, "local");
    return;
  }
  char *p = grpc_call_get_peer(c->call);
  snprintf(buf, n, "%s", p ? p : "unknown");
  gpr_free(p);
}

int rpc_call_peer_subject(const rpc_call *c, char *buf, size_t n) {
  buf[0] = 0;
  if (!c->call || !c->srv->tls) return 0;
  grpc_auth_context *ac = grpc_call_auth_context(c->call);
  if (!ac) return 0;
  grpc_auth_property_iterator it =
      grpc_auth_context_find_properties_by_name(ac, GRPC_X509_SUBJECT_PROPERTY_NAME);
  const grpc_auth_property *p = grpc_auth_property_iterator_next(&it);
  int found = 0;
  if (p && p->value_length > 0) {
    snprintf(buf, n, "%.*s", (int)p->value_length, p->value);
    found = 1;
  }
  grpc_auth_context_release(ac);
  return found;
}

int rpc_call_is_tls(const rpc_call *c) { return c->call && c->srv->tls; }

void rpc_call_attach(rpc_call *c, void *state,
                     void (*on_end)(void *state, rpc_call *call, int rc, const char *msg),
                     void (*free_state)(void *state)) {
  assert(!c->gstate && !c->gend && !c->gfree);
  c->gstate = state;
  c->gend = on_end;
  c->gfree = free_state;
}

void *rpc_call_attached(const rpc_call *c) { return c->gstate; }
rpc_server *rpc_call_server(const rpc_call *c) { return c->srv; }

/* --- events ----------------------------------------------------------------- */

/* Decodes the request bytes (text fields checked first) and starts the
 * handler, or ends the call with the decoding error. Shared by gRPC calls and
 * local ones. `slice` (may be NULL) owns p and is unref'd once decoded. */
void rpc__dispatch(rpc_call *c, const uint8_t *p, size_t n, grpc_slice *slice) {
  rpc_server *s = c->srv;
  const rpc_method_desc *md = &rpc_methods[c->mid];
  const rpc_handler *h = &s->handlers[c->mid];
  int rc = s->gate ? s->gate(s->gate_ctx, c, NULL) : 0;
  if (rc) { /* refused before the request is even decoded */
    if (slice) grpc_slice_unref(*slice);
    rpc_call_fail(c, rc, "%s", strata_errmsg());
    return;
  }
  rc = rpc_check_text(md->req, p, n);
  if (!rc) c->req = protobuf_c_message_unpack(md->req, NULL, n, p);
  if (slice) grpc_slice_unref(*slice);
  if (rc) {
    rpc_call_fail(c, rc, "%s", strata_errmsg());
    return;
  }
  if (!c->req) {
    rpc_call_fail(c, STRATA_EINVALID, "%s: the request is not a valid %s message", md->path,
                  md->req->name);
    return;
  }
  if (s->gate && (rc = s->gate(s->gate_ctx, c, c->req))) {
    rpc_call_fail(c, rc, "%s", strata_errmsg());
    return;
  }
  if (!h->start) {
    rpc_call_fail(c, STRATA_EUNSUPPORTED, "%s is not implemented by this server%s%s", md->path,
                  h->unimplemented_msg ? ": " : "",
                  h->unimplemented_msg ? h->unimplemented_msg : "");
    return;
  }
  h->start(c, c->req, h->ctx);
}

static void on_request(rpc_call *c, int ok) {
  rpc_server *s = c->srv;
  if (!ok) { /* the server is shutting down: this request was cancelled */
    rpc__call_unref(c);
    return;
  }
  strata_mutex_lock(&s->mu);
  int draining = s->draining;
  if (!draining) {
    s->active++;
    c->active = 1;
  }
  strata_mutex_unlock(&s->mu);
  if (draining) {
    /* Pitfall 4: no batch on a call matched during shutdown. Cancel it rather than
     * only dropping it: a server call unref'd before any op was sent is not
     * cancelled by core and would hold the shutdown until the client's deadline. */
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE, "server is shutting down", NULL);
    rpc__call_unref(c);
    return;
  }
  rpc__request_call(c->w, c->mid); /* keep one request outstanding per method and queue */
  atomic_fetch_add(&s->calls_total, 1);
  c->start_ns = rpc__now_ns(CLOCK_MONOTONIC);

  /* RECV_CLOSE_ON_SERVER in its own batch, so a cancel is seen while we work
   * (pitfall 7), unless the handler never asks (rpc_handler.late_close): then
   * it goes with the status (call_end). */
  c->late_close = c->mid >= 0 && s->handlers[c->mid].late_close && rpc_methods[c->mid].kind == RPC_UNARY;
  if (!c->late_close) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->close_cancelled;
    call_ref(c);
    if (grpc_call_start_batch(c->call, &op, 1, &c->t_close, NULL) != GRPC_CALL_OK) rpc__call_unref(c);
  }

  /* From here the request's reference is the handler's; call_end drops it. */
  if (c->mid < 0) {
    char *path = grpc_slice_to_c_string(c->details.method);
    rpc_call_fail(c, STRATA_EUNSUPPORTED, "unknown method %s", path);
    gpr_free(path);
    return;
  }
  if (!c->payload) {
    rpc_call_fail(c, STRATA_EINVALID, "%s: the request message is missing", rpc_methods[c->mid].path);
    return;
  }
  /* gRPC core's own receive limit is lifted (rpc_server_start), so an oversize
   * request arrives here and is refused like every other error: with our
   * message and the strata-error trailer. */
  size_t len = grpc_byte_buffer_length(c->payload);
  if (len > s->max_msg) {
    grpc_byte_buffer_destroy(c->payload);
    c->payload = NULL;
    rpc_call_fail(c, STRATA_ETOOBIG,
                  "%s: request of %zu bytes exceeds the server's --max-message-bytes %zu",
                  rpc_methods[c->mid].path, len, s->max_msg);
    return;
  }
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, c->payload)) {
    rpc_call_fail(c, STRATA_EINVALID, "%s: cannot read the request message", rpc_methods[c->mid].path);
    return;
  }
  grpc_slice all = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  grpc_byte_buffer_destroy(c->payload);
  c->payload = NULL;
  rpc__dispatch(c, GRPC_SLICE_START_PTR(all), GRPC_SLICE_LENGTH(all), &all);
}

static void on_close(rpc_call *c) {
  if (c->close_cancelled) atomic_store(&c->cancelled, 1);
  if (c->next) rpc__stream_kick(c); /* a waiting stream must see the cancel */
  rpc__call_unref(c);
}

static void on_send(rpc_call *c, int ok) {
  int push = 0;
  strata_mutex_lock(&c->mu);
  grpc_byte_buffer_destroy(c->send_buf); /* pitfall 5: ours after the batch completes */
  c->send_buf = NULL;
  c->send_in_flight = 0;
  if (!ok) atomic_store(&c->cancelled, 1);
  if (c->ss == S_SENDING) {
    c->ss = S_QUEUED;
    push = 1;
  } else if (c->ss == S_RUNNING) {
    c->wake_pending = 1;
  }
  strata_mutex_unlock(&c->mu);
  if (push) exec_push(c);
  rpc__call_unref(c);
}

void *rpc__poller_main(void *arg) {
  cqw *w = arg;
  rpc_server *s = w->srv;
  for (;;) {
    grpc_event ev = grpc_completion_queue_next(w->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type == GRPC_QUEUE_SHUTDOWN) return NULL;
    if (ev.type != GRPC_OP_COMPLETE) continue;
    rpc_tag *t = ev.tag;
    switch (t->kind) {
    case T_REQUEST: on_request(t->call, ev.success); break;
    case T_CLOSE: on_close(t->call); break;
    case T_SEND: on_send(t->call, ev.success); break;
    case T_STATUS:
      if (atomic_fetch_sub(&s->sending, 1) == 1) {
        strata_mutex_lock(&s->mu);
        pthread_cond_broadcast(&s->cv);
        strata_mutex_unlock(&s->mu);
      }
      rpc__call_unref(t->call);
      break;
    case T_SHUTDOWN:
      strata_mutex_lock(&s->mu);
      s->shutdown_seen = 1;
      pthread_cond_broadcast(&s->cv);
      strata_mutex_unlock(&s->mu);
      break;
    }
  }
}
