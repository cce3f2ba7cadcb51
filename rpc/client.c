/*
 * The C client library over gRPC core: each call creates its own pluck
 * completion queue, runs one batch (unary) or a batch per message (streams)
 * and maps the final status to a Strata code with rpc_err_of(). See client.h.
 */
#include "rpc/client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

struct rpc_client {
  grpc_channel *ch;
  char *addr;
  int64_t timeout_ms;
  size_t max_msg;
  int wait_for_ready;
  int tls;
  grpc_metadata auth; /* "authorization: Bearer ..."; sent when nauth == 1 */
  size_t nauth;
  void *handles[RPC_M__COUNT];
};

struct rpc_cstream {
  rpc_client *c;
  rpc_method_id m;
  grpc_completion_queue *cq;
  grpc_call *call;
  grpc_metadata_array md, trailers;
  grpc_status_code status;
  grpc_slice details;
  int have_status;
  int ended;
  int md_requested; /* RECV_INITIAL_METADATA may be requested once per call */
};

static _Thread_local grpc_status_code last_status;
static _Thread_local char last_trailer[64];

grpc_status_code rpc_client_last_status(void) { return last_status; }
const char *rpc_client_last_trailer(void) { return last_trailer; }

static const char *opt_or_env(const char *v, const char *env) {
  if (!v) v = getenv(env);
  return v && *v ? v : NULL;
}

int rpc_client_open(const rpc_client_opts *o, rpc_client **out) {
  static const rpc_client_opts defaults;
  if (!o) o = &defaults;
  *out = NULL;
  rpc_tls tls;
  const char *ca = opt_or_env(o->tls_ca, "STRATA_TLS_CA");
  const char *cert = opt_or_env(o->tls_cert, "STRATA_TLS_CERT");
  const char *key = opt_or_env(o->tls_key, "STRATA_TLS_KEY");
  int rc = rpc_tls_load(&tls, ca, "--tls-ca", cert, "--tls-cert", key, "--tls-key");
  if (!rc && cert && !ca)
    rc = strata_err(STRATA_EINVALID, "--tls-cert without --tls-ca: give the CA that signed the "
                                     "server's certificate ($STRATA_TLS_CA)");
  if (rc) return rc;
  const char *token = opt_or_env(o->token, "STRATA_TOKEN");
  rpc_client *c = calloc(1, sizeof *c);
  const char *addr = o->addr;
  if (!addr || !*addr) addr = getenv("STRATA_ADDR");
  if (!addr || !*addr) addr = RPC_DEFAULT_ADDR;
  if (!c || !(c->addr = strdup(addr))) {
    free(c);
    rpc_tls_free(&tls);
    return strata_err(STRATA_ENOMEM, "rpc client: out of memory");
  }
  c->timeout_ms = o->timeout_ms ? o->timeout_ms : 30000;
  c->max_msg = o->max_message_bytes ? o->max_message_bytes : RPC_DEFAULT_MAX_MESSAGE_BYTES;
  if (c->max_msg > INT32_MAX) c->max_msg = INT32_MAX;
  c->wait_for_ready = o->wait_for_ready;
  rpc_grpc_init();
  grpc_arg args[2] = {rpc_int_arg(GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH, (int)c->max_msg),
                      rpc_int_arg(GRPC_ARG_MAX_SEND_MESSAGE_LENGTH, (int)c->max_msg)};
  grpc_channel_args cargs = {2, args};
  grpc_channel_credentials *creds;
  if (tls.ca) {
    grpc_ssl_pem_key_cert_pair pair = {tls.key, tls.cert};
    creds = grpc_ssl_credentials_create(tls.ca, tls.cert ? &pair : NULL, NULL, NULL);
    c->tls = 1;
  } else {
    creds = grpc_insecure_credentials_create();
  }
  rpc_tls_free(&tls); /* core keeps its own copies */
  c->ch = grpc_channel_create(c->addr, creds, &cargs);
  grpc_channel_credentials_release(creds);
  if (token) {
    size_t n = strlen(token);
    char *v = malloc(n + 8);
    if (!v) abort();
    memcpy(v, "Bearer ", 7);
    memcpy(v + 7, token, n + 1);
    c->auth.key = grpc_slice_from_static_string("authorization");
    c->auth.value = grpc_slice_from_copied_string(v);
    free(v);
    c->nauth = 1;
  }
  for (int m = 0; m < RPC_M__COUNT; m++)
    c->handles[m] = grpc_channel_register_call(c->ch, rpc_methods[m].path, NULL, NULL);
  *out = c;
  return 0;
}

void rpc_client_close(rpc_client *c) {
  if (!c) return;
  grpc_channel_destroy(c->ch);
  if (c->nauth) grpc_slice_unref(c->auth.value);
  free(c->addr);
  free(c);
  grpc_shutdown();
}

const char *rpc_client_addr(const rpc_client *c) { return c->addr; }

void rpc_free(void *msg) {
  if (msg) protobuf_c_message_free_unpacked(msg, NULL);
}

static gpr_timespec deadline_of(const rpc_client *c, const rpc_callopts *co) {
  int64_t ms = co && co->timeout_ms ? co->timeout_ms : c->timeout_ms;
  if (ms < 0) return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  return gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_millis(ms, GPR_TIMESPAN));
}

/* Maps a finished call's status to a Strata code and records the message. */
static int finish_status(const rpc_client *c, grpc_status_code st, grpc_slice details,
                         const grpc_metadata_array *trailers) {
  last_status = st;
  last_trailer[0] = 0;
  if (st == GRPC_STATUS_OK) return 0;
  const char *tv = NULL;
  size_t tl = 0;
  for (size_t i = 0; i < trailers->count; i++) {
    if (grpc_slice_str_cmp(trailers->metadata[i].key, RPC_ERR_TRAILER) == 0) {
      tv = (const char *)GRPC_SLICE_START_PTR(trailers->metadata[i].value);
      tl = GRPC_SLICE_LENGTH(trailers->metadata[i].value);
      snprintf(last_trailer, sizeof last_trailer, "%.*s", (int)tl, tv);
    }
  }
  int rc = rpc_err_of(st, tv, tl);
  char *msg = grpc_slice_to_c_string(details);
  if (rc == ENOTCONN && !tl)
    strata_err(rc, "%s: cannot reach strata-server at %s: %s", rpc_status_name(st), c->addr, msg);
  else
    strata_err(rc, "%s: %s", rpc_status_name(st), msg);
  gpr_free(msg);
  return rc;
}

static grpc_slice read_all(grpc_byte_buffer *bb) {
  grpc_byte_buffer_reader rd;
  grpc_byte_buffer_reader_init(&rd, bb);
  grpc_slice s = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  return s;
}

/* Waits for `tag` on a pluck queue. */
static int pluck(grpc_completion_queue *cq, void *tag) {
  grpc_event ev = grpc_completion_queue_pluck(cq, tag, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
  return ev.type == GRPC_OP_COMPLETE && ev.success;
}

static void cq_free(grpc_completion_queue *cq) {
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_pluck(cq, NULL, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(cq);
}

/* One unary round trip of raw bytes. handle != NULL uses a registered call. The
 * response is flattened into *resp, or with keep_bb handed over as received in
 * *keep_bb (the caller destroys it). */
static int unary_raw(rpc_client *c, void *handle, const char *path, const rpc_callopts *co,
                     grpc_byte_buffer *req, grpc_slice *resp, int *have_resp,
                     grpc_byte_buffer **keep_bb) {
  *have_resp = 0;
  grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
  gpr_timespec dl = deadline_of(c, co);
  grpc_call *call;
  if (handle) {
    call = grpc_channel_create_registered_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, handle, dl,
                                               NULL);
  } else {
    grpc_slice method = grpc_slice_from_copied_string(path);
    call =
        grpc_channel_create_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq, method, NULL, dl, NULL);
    grpc_slice_unref(method);
  }
  grpc_metadata_array md, trailers;
  grpc_metadata_array_init(&md);
  grpc_metadata_array_init(&trailers);
  grpc_byte_buffer *rbuf = NULL;
  grpc_status_code st = GRPC_STATUS_UNKNOWN;
  grpc_slice details = grpc_empty_slice();
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = c->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
  ops[0].data.send_initial_metadata.count = c->nauth;
  ops[0].data.send_initial_metadata.metadata = &c->auth;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = req;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &rbuf;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = &st;
  ops[5].data.recv_status_on_client.status_details = &details;
  ops[5].data.recv_status_on_client.trailing_metadata = &trailers;
  int rc;
  if (grpc_call_start_batch(call, ops, 6, call, NULL) != GRPC_CALL_OK) {
    rc = strata_err(STRATA_EINTERNAL, "grpc_call_start_batch failed");
  } else {
    pluck(cq, call);
    rc = finish_status(c, st, details, &trailers);
    if (rc == 0 && rbuf && keep_bb) {
      *keep_bb = rbuf;
      rbuf = NULL;
      *have_resp = 1;
    } else if (rc == 0 && rbuf) {
      *resp = read_all(rbuf);
      *have_resp = 1;
    } else if (rc == 0) {
      rc = strata_err(STRATA_EINTERNAL, "%s: the server sent OK without a response message", path);
    }
  }
  if (rbuf) grpc_byte_buffer_destroy(rbuf);
  grpc_slice_unref(details);
  grpc_metadata_array_destroy(&md);
  grpc_metadata_array_destroy(&trailers);
  grpc_call_unref(call);
  cq_free(cq);
  return rc;
}

int rpc_client_unary(rpc_client *c, rpc_method_id m, const rpc_callopts *co,
                     const ProtobufCMessage *req, ProtobufCMessage **resp) {
  *resp = NULL;
  const rpc_method_desc *d = &rpc_methods[m];
  if (req->descriptor != d->req)
    return strata_err(STRATA_EINVALID, "%s takes a %s, not a %s", d->path, d->req->name,
                      req->descriptor->name);
  grpc_byte_buffer *bb = rpc_pack(req);
  grpc_slice out;
  int have;
  int rc = unary_raw(c, c->handles[m], d->path, co, bb, &out, &have, NULL);
  grpc_byte_buffer_destroy(bb);
  if (rc) return rc;
  *resp =
      protobuf_c_message_unpack(d->resp, NULL, GRPC_SLICE_LENGTH(out), GRPC_SLICE_START_PTR(out));
  grpc_slice_unref(out);
  if (!*resp)
    return strata_err(STRATA_EINTERNAL, "%s: the response is not a valid %s", d->path,
                      d->resp->name);
  return 0;
}

int rpc_client_raw(rpc_client *c, const char *path, const rpc_callopts *co, const void *req,
                   size_t len, void **resp, size_t *resp_len) {
  grpc_slice sl = grpc_slice_from_copied_buffer(req, len);
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  grpc_slice out;
  int have;
  int rc = unary_raw(c, NULL, path, co, bb, &out, &have, NULL);
  grpc_byte_buffer_destroy(bb);
  if (resp) *resp = NULL;
  if (have) {
    if (resp) {
      *resp_len = GRPC_SLICE_LENGTH(out);
      *resp = malloc(*resp_len ? *resp_len : 1);
      if (*resp) memcpy(*resp, GRPC_SLICE_START_PTR(out), *resp_len);
    }
    grpc_slice_unref(out);
  }
  return rc;
}

/* --- Kv.BatchGet, values in place ------------------------------------------------ */

/* A cursor over a received message's slices (the message is never flattened). */
typedef struct bcur {
  grpc_byte_buffer_reader rd;
  const uint8_t *p, *e; /* the current slice's unread bytes */
  size_t left;          /* the message's unread bytes */
} bcur;

static int bc_fill(bcur *b) {
  grpc_slice *s;
  while (b->p == b->e) {
    if (!grpc_byte_buffer_reader_peek(&b->rd, &s)) return -1;
    b->p = GRPC_SLICE_START_PTR(*s);
    b->e = b->p + GRPC_SLICE_LENGTH(*s);
  }
  return 0;
}

static int bc_varint(bcur *b, uint64_t *v) {
  *v = 0;
  for (int sh = 0; sh < 64; sh += 7) {
    if (!b->left || bc_fill(b)) return -1;
    uint8_t x = *b->p++;
    b->left--;
    *v |= (uint64_t)(x & 0x7f) << sh;
    if (!(x & 0x80)) return 0;
  }
  return -1;
}

/* Passes n bytes; with out, *out points at them: in place when they lie in one
 * slice, else copied into *scratch (grown as needed). -1 malformed, -2 no memory. */
static int bc_take(bcur *b, size_t n, const uint8_t **out, uint8_t **scratch, size_t *cap) {
  if (n > b->left) return -1;
  b->left -= n;
  if (out) *out = (const uint8_t *)"";
  if (!n) return 0;
  if (bc_fill(b)) return -1;
  if ((size_t)(b->e - b->p) >= n) {
    if (out) *out = b->p;
    b->p += n;
    return 0;
  }
  if (out && n > *cap) {
    uint8_t *t = realloc(*scratch, n);
    if (!t) return -2;
    *scratch = t;
    *cap = n;
  }
  for (size_t got = 0; got < n;) {
    if (bc_fill(b)) return -1;
    size_t k = (size_t)(b->e - b->p) < n - got ? (size_t)(b->e - b->p) : n - got;
    if (out) memcpy(*scratch + got, b->p, k);
    b->p += k;
    got += k;
  }
  if (out) *out = *scratch;
  return 0;
}

/* Passes one field of wire type wt (its tag read). */
static int bc_skip(bcur *b, unsigned wt) {
  uint64_t v;
  switch (wt) {
    case 0: return bc_varint(b, &v);
    case 1: return bc_take(b, 8, NULL, NULL, NULL);
    case 2: return bc_varint(b, &v) || v > b->left ? -1 : bc_take(b, (size_t)v, NULL, NULL, NULL);
    case 5: return bc_take(b, 4, NULL, NULL, NULL);
    default: return -1;
  }
}

/* A length-delimited field's length, bounded by what is left; *stop = b->left after it. */
static int bc_len(bcur *b, size_t *stop) {
  uint64_t n;
  if (bc_varint(b, &n) || n > b->left) return -1;
  *stop = b->left - (size_t)n;
  return 0;
}

/* Walks a BatchGetResponse (entries = 1: KeyValue {key = 1, found = 2, value = 3};
 * version = 2: Version {generation = 1}) calling fn per entry. Returns 0, fn's
 * result, -1 malformed, -2 no memory. */
static int walk_batch_get(bcur *b, size_t n_keys, rpc_kv_value_fn fn, void *ctx, uint64_t *gen,
                          size_t *entries) {
  uint8_t *scratch = NULL;
  size_t cap = 0, i = 0;
  int rc = 0;
  while (!rc && b->left) {
    uint64_t tag;
    size_t stop;
    if (bc_varint(b, &tag)) rc = -1;
    else if (tag == (1 << 3 | 2)) { /* entries */
      int found = 0;
      const uint8_t *v = (const uint8_t *)"";
      uint64_t vn = 0, t, x;
      if (bc_len(b, &stop)) rc = -1;
      while (!rc && b->left > stop) {
        if (bc_varint(b, &t)) rc = -1;
        else if (t == (2 << 3 | 0)) { /* found */
          rc = bc_varint(b, &x);
          found = x != 0;
        } else if (t == (3 << 3 | 2)) { /* value */
          if (bc_varint(b, &vn) || vn > b->left - stop) rc = -1;
          else rc = bc_take(b, (size_t)vn, &v, &scratch, &cap);
        } else {
          rc = bc_skip(b, (unsigned)(t & 7));
        }
      }
      if (!rc && (b->left != stop || i >= n_keys)) rc = -1;
      if (!rc) rc = fn(ctx, i++, found, v, (size_t)vn);
    } else if (tag == (2 << 3 | 2)) { /* version */
      uint64_t t;
      if (bc_len(b, &stop)) rc = -1;
      while (!rc && b->left > stop) {
        if (bc_varint(b, &t)) rc = -1;
        else if (t == (1 << 3 | 0)) rc = bc_varint(b, gen);
        else rc = bc_skip(b, (unsigned)(t & 7));
      }
      if (!rc && b->left != stop) rc = -1;
    } else {
      rc = bc_skip(b, (unsigned)(tag & 7));
    }
  }
  free(scratch);
  *entries = i;
  return rc;
}

int rpc_kv_batch_get_each(rpc_client *c, const rpc_callopts *co,
                          const Strata__V1__BatchGetRequest *req, rpc_kv_value_fn fn, void *ctx,
                          uint64_t *generation) {
  const rpc_method_desc *d = &rpc_methods[RPC_M_kv_batch_get];
  grpc_byte_buffer *bb = rpc_pack(&req->base), *rb = NULL;
  grpc_slice unused;
  int have;
  int rc = unary_raw(c, c->handles[RPC_M_kv_batch_get], d->path, co, bb, &unused, &have, &rb);
  grpc_byte_buffer_destroy(bb);
  if (rc) return rc;
  bcur b = {.left = grpc_byte_buffer_length(rb)};
  uint64_t gen = 0;
  size_t entries = 0;
  if (!grpc_byte_buffer_reader_init(&b.rd, rb)) {
    grpc_byte_buffer_destroy(rb);
    return strata_err(STRATA_EINTERNAL, "%s: cannot read the response", d->path);
  }
  rc = walk_batch_get(&b, req->n_keys, fn, ctx, &gen, &entries);
  grpc_byte_buffer_reader_destroy(&b.rd);
  grpc_byte_buffer_destroy(rb);
  if (rc == -1)
    return strata_err(STRATA_EINTERNAL, "%s: the response is not a valid %s", d->path,
                      d->resp->name);
  if (rc == -2) return strata_err(STRATA_ENOMEM, "%s: out of memory", d->path);
  if (rc) return rc;
  if (entries != req->n_keys)
    return strata_err(STRATA_EINTERNAL, "%s: %zu entries for %zu keys", d->path, entries,
                      req->n_keys);
  if (generation) *generation = gen;
  return 0;
}

/* --- streams ------------------------------------------------------------------ */

int rpc_client_stream(rpc_client *c, rpc_method_id m, const rpc_callopts *co,
                      const ProtobufCMessage *req, rpc_cstream **out) {
  *out = NULL;
  const rpc_method_desc *d = &rpc_methods[m];
  if (req->descriptor != d->req || d->kind != RPC_STREAM)
    return strata_err(STRATA_EINVALID, "%s is not a stream taking a %s", d->path,
                      req->descriptor->name);
  rpc_cstream *s = calloc(1, sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "rpc client: out of memory");
  s->c = c;
  s->m = m;
  s->details = grpc_empty_slice();
  grpc_metadata_array_init(&s->md);
  grpc_metadata_array_init(&s->trailers);
  s->cq = grpc_completion_queue_create_for_pluck(NULL);
  s->call = grpc_channel_create_registered_call(c->ch, NULL, GRPC_PROPAGATE_DEFAULTS, s->cq,
                                                c->handles[m], deadline_of(c, co), NULL);
  grpc_byte_buffer *bb = rpc_pack(req);
  grpc_op ops[3];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = c->wait_for_ready ? GRPC_INITIAL_METADATA_WAIT_FOR_READY : 0;
  ops[0].data.send_initial_metadata.count = c->nauth;
  ops[0].data.send_initial_metadata.metadata = &s->c->auth;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = bb;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  grpc_call_error e = grpc_call_start_batch(s->call, ops, 3, s, NULL);
  if (e == GRPC_CALL_OK) pluck(s->cq, s); /* a failed send shows in the final status */
  grpc_byte_buffer_destroy(bb);
  *out = s;
  return 0;
}

/* Receives the final status (once). */
static int stream_status(rpc_cstream *s) {
  if (!s->have_status) {
    grpc_op op;
    memset(&op, 0, sizeof op);
    op.op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    op.data.recv_status_on_client.status = &s->status;
    op.data.recv_status_on_client.status_details = &s->details;
    op.data.recv_status_on_client.trailing_metadata = &s->trailers;
    if (grpc_call_start_batch(s->call, &op, 1, &s->status, NULL) == GRPC_CALL_OK)
      pluck(s->cq, &s->status);
    else
      s->status = GRPC_STATUS_INTERNAL;
    s->have_status = 1;
  }
  s->ended = 1;
  return finish_status(s->c, s->status, s->details, &s->trailers);
}

int rpc_cstream_next(rpc_cstream *s, ProtobufCMessage **msg) {
  *msg = NULL;
  if (s->ended) return stream_status(s);
  grpc_byte_buffer *rbuf = NULL;
  grpc_op ops[2];
  memset(ops, 0, sizeof ops);
  size_t n = 0;
  if (!s->md_requested) {
    s->md_requested = 1;
    ops[n].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[n].data.recv_initial_metadata.recv_initial_metadata = &s->md;
    n++;
  }
  ops[n].op = GRPC_OP_RECV_MESSAGE;
  ops[n].data.recv_message.recv_message = &rbuf;
  n++;
  int ok =
      grpc_call_start_batch(s->call, ops, n, &s->md, NULL) == GRPC_CALL_OK && pluck(s->cq, &s->md);
  if (!ok || !rbuf) return stream_status(s);
  grpc_slice all = read_all(rbuf);
  grpc_byte_buffer_destroy(rbuf);
  const rpc_method_desc *d = &rpc_methods[s->m];
  *msg =
      protobuf_c_message_unpack(d->resp, NULL, GRPC_SLICE_LENGTH(all), GRPC_SLICE_START_PTR(all));
  grpc_slice_unref(all);
  if (!*msg) {
    grpc_call_cancel(s->call, NULL);
    stream_status(s);
    return strata_err(STRATA_EINTERNAL, "%s: a stream message is not a valid %s", d->path,
                      d->resp->name);
  }
  return 1;
}

void rpc_cstream_cancel(rpc_cstream *s) { grpc_call_cancel(s->call, NULL); }

void rpc_cstream_close(rpc_cstream *s) {
  if (!s) return;
  if (!s->have_status) {
    grpc_call_cancel(s->call, NULL);
    stream_status(s);
  }
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->md);
  grpc_metadata_array_destroy(&s->trailers);
  grpc_call_unref(s->call);
  cq_free(s->cq);
  free(s);
}

/* --- typed functions ------------------------------------------------------------ */

#define RPC__DEF_UNARY(name, Req, Resp)                                                  \
  int rpc_##name(rpc_client *c, const rpc_callopts *co, const Req *req, Resp **resp) {   \
    return rpc_client_unary(c, RPC_M_##name, co, &req->base, (ProtobufCMessage **)resp); \
  }
#define RPC__DEF_STREAM(name, Req, Resp)                                                     \
  int rpc_##name(rpc_client *c, const rpc_callopts *co, const Req *req, rpc_cstream **out) { \
    return rpc_client_stream(c, RPC_M_##name, co, &req->base, out);                          \
  }                                                                                          \
  int rpc_##name##_next(rpc_cstream *s, Resp **msg) {                                        \
    return rpc_cstream_next(s, (ProtobufCMessage **)msg);                                    \
  }
#define XX(name, path, kind, Req, req, Resp, resp) RPC__DEF_##kind(name, Req, Resp)
RPC_METHOD_MAP(XX)
#undef XX
