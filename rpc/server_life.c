/*
 * The rpc server's life: creating a server (networked, or local for in-process
 * calls), the stats, and the ordered stop (rpc/README.md "Shutdown").
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
#include "rpc/client.h"
#include "rpc/status.h"
#include "rpc/tls.h"
#include "rpc/wire.h"

/* --- lifecycle -------------------------------------------------------------- */

/* The part of a server that local and networked ones share. */
static rpc_server *server_new(const rpc_server_opts *o) {
  rpc_server *s = calloc(1, sizeof *s);
  if (!s) return NULL;
  s->max_msg = o->max_message_bytes ? o->max_message_bytes : RPC_DEFAULT_MAX_MESSAGE_BYTES;
  if (s->max_msg > INT32_MAX) s->max_msg = INT32_MAX;
  s->log = o->log;
  s->log_level = o->log_level;
  memcpy(s->handlers, o->handlers, sizeof s->handlers);
  s->gate = o->gate;
  s->gate_ctx = o->gate_ctx;
  s->nw = o->threads > 0 ? o->threads : 2;
  s->nx = o->exec_threads > 0 ? o->exec_threads : 2;
  s->t_shutdown = (rpc_tag){T_SHUTDOWN, NULL};
  s->streams.lnext = s->streams.lprev = &s->streams;
  s->started_ns = rpc__now_ns(CLOCK_REALTIME);
  strata_mutex_init(&s->mu);
  pthread_cond_init(&s->cv, NULL);
  strata_mutex_init(&s->xmu);
  pthread_cond_init(&s->xcv, NULL);
  s->xthreads = calloc((size_t)s->nx, sizeof *s->xthreads);
  if (!s->xthreads) abort();
  return s;
}

static void server_free(rpc_server *s) {
  strata_mutex_destroy(&s->mu);
  pthread_cond_destroy(&s->cv);
  strata_mutex_destroy(&s->xmu);
  pthread_cond_destroy(&s->xcv);
  free(s->ws);
  free(s->xthreads);
  free(s);
}

int rpc_server_start_local(const rpc_server_opts *o, rpc_server **out) {
  *out = NULL;
  rpc_server *s = server_new(o);
  if (!s) return strata_err(STRATA_ENOMEM, "rpc server: out of memory");
  for (int i = 0; i < s->nx; i++) pthread_create(&s->xthreads[i], NULL, rpc__exec_main, s);
  *out = s;
  return 0;
}

void rpc_server_call_local(rpc_server *s, rpc_method_id m, const void *req, size_t n,
                           int64_t timeout_ms, rpc_local_result *res) {
  assert(!s->server && m >= 0 && m < RPC_M__COUNT);
  res->rc = 0;
  res->status = 0;
  res->trailer = NULL;
  res->msg[0] = 0;
  res->messages = res->bytes = 0;
  rpc_call *c = calloc(1, sizeof *c);
  if (!c) abort();
  c->srv = s;
  c->mid = (int)m;
  c->local = res;
  atomic_init(&c->refs, 2); /* the handler's and ours */
  strata_mutex_init(&c->mu);
  pthread_cond_init(&c->lcv, NULL);
  grpc_metadata_array_init(&c->req_md);
  c->deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                             gpr_time_from_millis(timeout_ms, GPR_TIMESPAN));
  strata_mutex_lock(&s->mu);
  s->active++;
  c->active = 1;
  strata_mutex_unlock(&s->mu);
  atomic_fetch_add(&s->calls_total, 1);
  c->start_ns = rpc__now_ns(CLOCK_MONOTONIC);
  if (n > s->max_msg)
    rpc_call_fail(c, STRATA_ETOOBIG,
                  "%s: request of %zu bytes exceeds the server's --max-message-bytes %zu",
                  rpc_methods[m].path, n, s->max_msg);
  else
    rpc__dispatch(c, req, n, NULL);
  strata_mutex_lock(&c->mu);
  while (!c->finished) strata_cond_wait(&c->lcv, &c->mu);
  strata_mutex_unlock(&c->mu);
  rpc__call_unref(c);
}

int rpc_server_start(const rpc_server_opts *o, rpc_server **out) {
  *out = NULL;
  rpc_server *s = server_new(o);
  if (!s) return strata_err(STRATA_ENOMEM, "rpc server: out of memory");
  rpc_tls tls;
  int rc = rpc_tls_load(&tls, o->tls_client_ca, "--tls-client-ca", o->tls_cert, "--tls-cert",
                        o->tls_key, "--tls-key");
  if (!rc && o->tls_client_ca && !o->tls_cert)
    rc = strata_err(STRATA_EINVALID, "--tls-client-ca needs --tls-cert and --tls-key");
  if (rc) {
    rpc_tls_free(&tls);
    server_free(s);
    return rc;
  }
  s->tls = tls.cert != NULL;
  rpc_grpc_init();

  grpc_arg args[3] = {
      rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, -1), /* on_request enforces max_msg, with the trailer */
      rpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)s->max_msg),
      rpc_int_arg(GRPC_ARG_ALLOW_REUSEPORT, 0), /* a second server must not share our port */
  };
  grpc_channel_args cargs = {3, args};
  s->server = grpc_server_create(&cargs, NULL);
  for (int m = 0; m < RPC_M__COUNT; m++)
    s->method_handles[m] = grpc_server_register_method(
        s->server, rpc_methods[m].path, NULL, GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER, 0);
  s->ws = calloc((size_t)s->nw, sizeof *s->ws);
  if (!s->ws) abort();
  for (int i = 0; i < s->nw; i++) {
    s->ws[i].srv = s;
    s->ws[i].cq = grpc_completion_queue_create_for_next(NULL);
    grpc_server_register_completion_queue(s->server, s->ws[i].cq, NULL);
  }
  const char *listen = o->listen ? o->listen : "127.0.0.1:0";
  grpc_server_credentials *creds;
  if (s->tls) {
    grpc_ssl_pem_key_cert_pair pair = {tls.key, tls.cert};
    creds = grpc_ssl_server_credentials_create_ex(
        tls.ca, &pair, 1,
        tls.ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
        NULL);
  } else {
    creds = grpc_insecure_server_credentials_create();
  }
  s->port = creds ? grpc_server_add_http2_port(s->server, listen, creds) : 0;
  if (creds) grpc_server_credentials_release(creds);
  rpc_tls_free(&tls); /* core keeps its own copies */
  if (s->port == 0) {
    rc = strata_err(STRATA_EBUSY,
                        "cannot listen on %s: the address is in use or invalid "
                        "(is another strata-server running? choose another --listen)",
                        listen);
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->nw; i++) grpc_completion_queue_destroy(s->ws[i].cq);
    grpc_shutdown();
    server_free(s);
    return rc;
  }
  grpc_server_start(s->server);
  for (int i = 0; i < s->nw; i++) {
    for (int m = 0; m < RPC_M__COUNT; m++) rpc__request_call(&s->ws[i], m);
    rpc__request_call(&s->ws[i], -1); /* pitfall 2: unknown methods get UNIMPLEMENTED */
    pthread_create(&s->ws[i].thread, NULL, rpc__poller_main, &s->ws[i]);
  }
  for (int i = 0; i < s->nx; i++) pthread_create(&s->xthreads[i], NULL, rpc__exec_main, s);
  rpc__slog(s, 2, "event=rpc_listening port=%d threads=%d max_message_bytes=%zu", s->port, s->nw,
       s->max_msg);
  *out = s;
  return 0;
}

int rpc_server_port(const rpc_server *s) { return s->port; }
size_t rpc_server_max_message_bytes(const rpc_server *s) { return s->max_msg; }

int rpc_server_draining(const rpc_server *s) {
  rpc_server *m = (rpc_server *)s;
  strata_mutex_lock(&m->mu);
  int d = m->draining;
  strata_mutex_unlock(&m->mu);
  return d;
}

void rpc_server_get_stats(const rpc_server *s, rpc_server_stats *st) {
  rpc_server *m = (rpc_server *)s;
  st->calls_total = atomic_load(&m->calls_total);
  st->calls_failed = atomic_load(&m->calls_failed);
  strata_mutex_lock(&m->mu);
  st->calls_active = m->active;
  strata_mutex_unlock(&m->mu);
  st->started_ns = m->started_ns;
}

/* Wakes every live stream so its next() sees rpc_call_stopping(). */
static void wake_streams(rpc_server *s) {
  strata_mutex_lock(&s->mu);
  /* stream_kick takes c->mu, then xmu, under s->mu: the documented order. */
  for (rpc_call *c = s->streams.lnext; c != &s->streams; c = c->lnext) rpc__stream_kick(c);
  strata_mutex_unlock(&s->mu);
}

/* One wait on s->cv with s->mu held: until a broadcast, or at most 50 ms and
 * never past deadline_ns (monotonic; 0 = no deadline). Returns 0 once the
 * deadline has passed. The 50 ms steps also bound a missed broadcast. */
static int cv_wait_step(rpc_server *s, int64_t deadline_ns) {
  strata_mutex_assert_held(&s->mu);
  if (!deadline_ns) {
    strata_cond_wait(&s->cv, &s->mu);
    return 1;
  }
  int64_t left = deadline_ns - rpc__now_ns(CLOCK_MONOTONIC);
  if (left <= 0) return 0;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_nsec += left < 50000000 ? left : 50000000;
  ts.tv_sec += ts.tv_nsec / 1000000000;
  ts.tv_nsec %= 1000000000;
  strata_cond_timedwait(&s->cv, &s->mu, &ts);
  return 1;
}

/* Waits until no handler holds a call, or until `deadline_ns` (monotonic; 0 = forever). */
static int wait_idle(rpc_server *s, int64_t deadline_ns) {
  strata_mutex_lock(&s->mu);
  while (s->active > 0)
    if (!cv_wait_step(s, deadline_ns)) break;
  int idle = s->active == 0;
  strata_mutex_unlock(&s->mu);
  return idle;
}

/* Waits until every status batch started has completed (sent, or failed on a
 * dead connection), or until `deadline_ns` (monotonic). */
static void wait_sent(rpc_server *s, int64_t deadline_ns) {
  strata_mutex_lock(&s->mu);
  while (atomic_load(&s->sending) > 0)
    if (!cv_wait_step(s, deadline_ns)) break;
  strata_mutex_unlock(&s->mu);
}

/* Stops the executor (no stream can be queued: every call has ended). */
static void exec_stop(rpc_server *s) {
  strata_mutex_lock(&s->xmu);
  s->xstop = 1;
  pthread_cond_broadcast(&s->xcv);
  strata_mutex_unlock(&s->xmu);
  for (int i = 0; i < s->nx; i++) pthread_join(s->xthreads[i], NULL);
}

void rpc_server_stop(rpc_server *s, int grace_ms) {
  if (!s->server) { /* local: no network; calls in flight are on their callers' threads */
    strata_mutex_lock(&s->mu);
    s->draining = 1;
    strata_mutex_unlock(&s->mu);
    wake_streams(s);
    wait_idle(s, 0);
    exec_stop(s);
    server_free(s);
    return;
  }
  /* 1. Stop re-requesting calls; a call matched from now on is dropped. */
  strata_mutex_lock(&s->mu);
  s->draining = 1;
  uint64_t inflight = s->active;
  strata_mutex_unlock(&s->mu);
  rpc__slog(s, 2, "event=rpc_draining in_flight=%llu grace_ms=%d", (unsigned long long)inflight,
       grace_ms);
  /* 2. No new calls; pending requests complete with ok=0 and free themselves. */
  grpc_server_shutdown_and_notify(s->server, s->ws[0].cq, &s->t_shutdown);
  /* 3. Streams (Watch) end with UNAVAILABLE instead of waiting out the grace. */
  wake_streams(s);
  /* 4. Let in-flight calls finish, then cancel the rest and wait for their handlers.
   * Cancel even when every handler finished in time: a call whose stream reached
   * the server after the GOAWAY is never matched to a request and would otherwise
   * hold the shutdown tag until the client's deadline. */
  int64_t deadline = rpc__now_ns(CLOCK_MONOTONIC) + (int64_t)grace_ms * 1000000;
  if (!wait_idle(s, deadline)) rpc__slog(s, 1, "event=rpc_cancel_all reason=grace_expired");
  /* Statuses already queued (the streams' UNAVAILABLE with the shutdown code,
   * replies just handed over) go out before the cancel, which would replace
   * any still unsent with a bare UNAVAILABLE. */
  wait_sent(s, deadline);
  grpc_server_cancel_all_calls(s->server);
  wake_streams(s);
  wait_idle(s, 0);
  rpc__slog(s, 3, "event=rpc_handlers_done");
  /* 5. Every call is released: the shutdown tag arrives while the pollers run. */
  strata_mutex_lock(&s->mu);
  while (!s->shutdown_seen) strata_cond_wait(&s->cv, &s->mu);
  strata_mutex_unlock(&s->mu);
  rpc__slog(s, 3, "event=rpc_shutdown_tag");
  /* 6. Stop the executor (no stream can be queued: every call has ended). */
  exec_stop(s);
  /* 7. Shut every queue down and let its poller drain it to GRPC_QUEUE_SHUTDOWN. */
  for (int i = 0; i < s->nw; i++) grpc_completion_queue_shutdown(s->ws[i].cq);
  for (int i = 0; i < s->nw; i++) pthread_join(s->ws[i].thread, NULL);
  for (int i = 0; i < s->nw; i++) grpc_completion_queue_destroy(s->ws[i].cq);
  grpc_server_destroy(s->server);
  grpc_shutdown();
  rpc__slog(s, 2, "event=rpc_stopped calls_total=%llu",
       (unsigned long long)atomic_load(&s->calls_total));
  server_free(s);
}
