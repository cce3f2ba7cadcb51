/*
 * strata-bench --etcd: Strata against etcd with one load driver. Each figure is
 * measured `runs` times on both servers, alternating which goes first, with the
 * same keys, values, key space, concurrency and duration; the medians are
 * printed, Strata's as a ratio to etcd's:
 *
 *   BENCH etcd_<figure> <value> <unit>
 *   BENCH strata_<figure> <value> <unit> vs etcd <strata/etcd>
 *
 * Both servers get the same calls a user of each would make: a durable put
 * (Kv.Commit of one put / KV.Put), a read of the latest value (Kv.Get /
 * linearizable KV.Range), and a lock taken and given back (Locks.Acquire with a
 * wait + Release / v3lock Lock + Unlock, one etcd lease per worker). etcd's
 * messages come from rpc/proto/etcd/.
 */
#include <stdint.h>
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
#include "etcd/etcdserverpb/rpc.pb-c.h"
#include "etcd/v3lockpb/v3lock.pb-c.h"
#include "rpc/client.h"
#include "rpc/methods.h"
#include "tools/strata-bench-etcd.h"

#define KEY_BYTES 16
#define VALUE_BYTES 256
/* Keys bench/0000000000 .. bench/0000009999: the warm-up writes each once. */
#define KEYSPACE 10000
#define MAX_INFLIGHT 64
/* A lock's lifetime, and how long an acquire may wait for it (both servers). */
#define LOCK_TTL_MS 10000
#define LOCK_WAIT_MS 20000
/* etcd leases outlive the run: this much beyond the figures' total length. */
#define LEASE_SPARE_S 300
#define CALL_DEADLINE_S 30
#define MAX_OWNER_KEY 256

typedef enum op { OP_PUT, OP_GET, OP_LOCK_DISTINCT, OP_LOCK_ONE_ROW } op;
/* The calls each server is sent; a target's handles are registered in this order. */
typedef enum call_id { C_PUT, C_GET, C_LOCK, C_UNLOCK, C__COUNT } call_id;

static const char *const etcd_paths[C__COUNT] = {"/etcdserverpb.KV/Put", "/etcdserverpb.KV/Range",
                                                 "/v3lockpb.Lock/Lock", "/v3lockpb.Lock/Unlock"};
static const rpc_method_id strata_methods[C__COUNT] = {RPC_M_kv_commit, RPC_M_kv_get,
                                                       RPC_M_locks_acquire, RPC_M_locks_release};

typedef struct target {
  const char *name; /* "strata" or "etcd" */
  int is_etcd;
  const char *addr;
  grpc_channel *ch;
  void *calls[C__COUNT];
  uint64_t put_seq; /* the next put writes key put_seq % KEYSPACE */
  uint64_t rng;
  int64_t lease[MAX_INFLIGHT]; /* etcd: worker i's lease, granted once */
} target;

/* One worker: one call in flight at a time; a lock pair is two calls. */
typedef struct worker {
  int idx;
  int phase; /* lock pairs: 0 acquire, 1 release */
  int64_t t0;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md, tr;
  grpc_status_code st;
  grpc_slice details;
  uint8_t owner[MAX_OWNER_KEY]; /* etcd: the ownership key Lock returned */
  size_t owner_len;
} worker;

typedef struct sample {
  double qps, p50_us, p99_us;
  uint64_t errors;
} sample;

static uint8_t value[VALUE_BYTES]; /* every put's value: 'v' repeated */
static uint64_t n_reported;        /* failures printed so far (the first few only) */

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t next_rand(target *t) {
  t->rng ^= t->rng << 13;
  t->rng ^= t->rng >> 7;
  t->rng ^= t->rng << 17;
  return t->rng;
}

/* Writes key number i, exactly KEY_BYTES bytes (plus a NUL), into buf. */
static ProtobufCBinaryData key_of(uint64_t i, char buf[KEY_BYTES + 1]) {
  snprintf(buf, KEY_BYTES + 1, "bench/%010llu", (unsigned long long)(i % KEYSPACE));
  return (ProtobufCBinaryData){KEY_BYTES, (uint8_t *)buf};
}

static grpc_byte_buffer *to_buffer(const ProtobufCMessage *m) {
  grpc_slice sl = grpc_slice_malloc(protobuf_c_message_get_packed_size(m));
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

/* Decodes a response; NULL when it is missing or malformed. Free with
 * protobuf_c_message_free_unpacked. */
static ProtobufCMessage *from_buffer(grpc_byte_buffer *bb, const ProtobufCMessageDescriptor *d) {
  if (!bb) return NULL;
  grpc_byte_buffer_reader rd;
  if (!grpc_byte_buffer_reader_init(&rd, bb)) return NULL;
  grpc_slice sl = grpc_byte_buffer_reader_readall(&rd);
  grpc_byte_buffer_reader_destroy(&rd);
  ProtobufCMessage *m =
      protobuf_c_message_unpack(d, NULL, GRPC_SLICE_LENGTH(sl), GRPC_SLICE_START_PTR(sl));
  grpc_slice_unref(sl);
  return m;
}

/* The row (Strata) or lock name (etcd) worker w locks. */
static ProtobufCBinaryData lock_name(op o, const worker *w, char buf[32]) {
  if (o == OP_LOCK_ONE_ROW)
    snprintf(buf, 32, "bench/lock/one");
  else
    snprintf(buf, 32, "bench/lock/%02d", w->idx);
  return (ProtobufCBinaryData){strlen(buf), (uint8_t *)buf};
}

/* Strata's request for w's next call. */
static grpc_byte_buffer *strata_request(target *t, op o, worker *w, call_id *c) {
  char key[KEY_BYTES + 1], row[32];
  if (o == OP_PUT) {
    Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
    p.key = key_of(t->put_seq++, key);
    p.value = (ProtobufCBinaryData){VALUE_BYTES, value};
    Strata__V1__CommitRequest r = STRATA__V1__COMMIT_REQUEST__INIT;
    r.n_puts = 1;
    r.puts = &pp;
    *c = C_PUT;
    return to_buffer(&r.base);
  }
  if (o == OP_GET) {
    Strata__V1__GetRequest r = STRATA__V1__GET_REQUEST__INIT; /* no pin: the latest */
    r.key = key_of(next_rand(t), key);
    *c = C_GET;
    return to_buffer(&r.base);
  }
  ProtobufCBinaryData rows = lock_name(o, w, row);
  if (w->phase == 0) {
    Strata__V1__AcquireRequest r = STRATA__V1__ACQUIRE_REQUEST__INIT;
    r.op_id = (uint64_t)w->idx + 1;
    r.n_rows = 1;
    r.rows = &rows;
    r.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
    r.ttl_ms = LOCK_TTL_MS;
    r.wait_ms = LOCK_WAIT_MS;
    *c = C_LOCK;
    return to_buffer(&r.base);
  }
  Strata__V1__ReleaseRequest r = STRATA__V1__RELEASE_REQUEST__INIT;
  r.op_id = (uint64_t)w->idx + 1;
  r.n_rows = 1;
  r.rows = &rows;
  *c = C_UNLOCK;
  return to_buffer(&r.base);
}

/* etcd's request for w's next call. */
static grpc_byte_buffer *etcd_request(target *t, op o, worker *w, call_id *c) {
  char key[KEY_BYTES + 1], name[32];
  if (o == OP_PUT) {
    Etcdserverpb__PutRequest r = ETCDSERVERPB__PUT_REQUEST__INIT;
    r.key = key_of(t->put_seq++, key);
    r.value = (ProtobufCBinaryData){VALUE_BYTES, value};
    *c = C_PUT;
    return to_buffer(&r.base);
  }
  if (o == OP_GET) {
    Etcdserverpb__RangeRequest r = ETCDSERVERPB__RANGE_REQUEST__INIT; /* linearizable */
    r.key = key_of(next_rand(t), key);
    *c = C_GET;
    return to_buffer(&r.base);
  }
  if (w->phase == 0) {
    V3lockpb__LockRequest r = V3LOCKPB__LOCK_REQUEST__INIT;
    r.name = lock_name(o, w, name);
    r.lease = t->lease[w->idx];
    *c = C_LOCK;
    return to_buffer(&r.base);
  }
  V3lockpb__UnlockRequest r = V3LOCKPB__UNLOCK_REQUEST__INIT;
  r.key = (ProtobufCBinaryData){w->owner_len, w->owner};
  *c = C_UNLOCK;
  return to_buffer(&r.base);
}

static void fail_once(const target *t, const char *what) {
  if (n_reported++ < 5) fprintf(stderr, "strata-bench: %s: %s\n", t->name, what);
}

/* Checks what came back for a get or a lock; returns 0 when it is what a
 * user would rely on (the value read, the lock held). */
static int check_response(target *t, op o, worker *w) {
  int ok = 1;
  ProtobufCMessage *m = NULL;
  if (o == OP_PUT || w->phase == 1) return 0; /* status OK is the answer */
  if (o == OP_GET && !t->is_etcd) {
    Strata__V1__GetResponse *r =
        (void *)(m = from_buffer(w->recv, &strata__v1__get_response__descriptor));
    ok = r && r->found && r->value.len == VALUE_BYTES;
  } else if (o == OP_GET) {
    Etcdserverpb__RangeResponse *r =
        (void *)(m = from_buffer(w->recv, &etcdserverpb__range_response__descriptor));
    ok = r && r->n_kvs == 1 && r->kvs[0]->value.len == VALUE_BYTES;
  } else if (!t->is_etcd) {
    Strata__V1__AcquireResponse *r =
        (void *)(m = from_buffer(w->recv, &strata__v1__acquire_response__descriptor));
    ok = r && r->acquired;
  } else {
    V3lockpb__LockResponse *r =
        (void *)(m = from_buffer(w->recv, &v3lockpb__lock_response__descriptor));
    ok = r && r->key.len > 0 && r->key.len <= MAX_OWNER_KEY;
    if (ok) memcpy(w->owner, r->key.data, w->owner_len = r->key.len);
  }
  if (m) protobuf_c_message_free_unpacked(m, NULL);
  if (!ok)
    fail_once(t,
              o == OP_GET ? "a get did not return the value written" : "a lock was not acquired");
  return ok ? 0 : -1;
}

static void begin_call(target *t, grpc_completion_queue *cq, op o, worker *w) {
  call_id c;
  w->send = t->is_etcd ? etcd_request(t, o, w, &c) : strata_request(t, o, w, &c);
  w->recv = NULL;
  grpc_metadata_array_init(&w->md);
  grpc_metadata_array_init(&w->tr);
  w->details = grpc_empty_slice();
  gpr_timespec deadline = gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                       gpr_time_from_seconds(CALL_DEADLINE_S, GPR_TIMESPAN));
  w->call = grpc_channel_create_registered_call(t->ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                                t->calls[c], deadline, NULL);
  grpc_op ops[6] = {
      {.op = GRPC_OP_SEND_INITIAL_METADATA, .flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY},
      {.op = GRPC_OP_SEND_MESSAGE},
      {.op = GRPC_OP_SEND_CLOSE_FROM_CLIENT},
      {.op = GRPC_OP_RECV_INITIAL_METADATA},
      {.op = GRPC_OP_RECV_MESSAGE},
      {.op = GRPC_OP_RECV_STATUS_ON_CLIENT}};
  ops[1].data.send_message.send_message = w->send;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &w->md;
  ops[4].data.recv_message.recv_message = &w->recv;
  ops[5].data.recv_status_on_client.status = &w->st;
  ops[5].data.recv_status_on_client.status_details = &w->details;
  ops[5].data.recv_status_on_client.trailing_metadata = &w->tr;
  if (grpc_call_start_batch(w->call, ops, 6, w, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "strata-bench: %s: cannot start a call\n", t->name);
    exit(1);
  }
}

/* Checks and frees w's finished call; returns 0 when it succeeded. */
static int end_call(target *t, op o, worker *w) {
  int rc = 0;
  if (w->st != GRPC_STATUS_OK) {
    char *d = grpc_slice_to_c_string(w->details);
    char msg[512];
    snprintf(msg, sizeof msg, "a call failed with status %d: %s", (int)w->st, d);
    fail_once(t, msg);
    gpr_free(d);
    rc = -1;
  } else {
    rc = check_response(t, o, w);
  }
  grpc_byte_buffer_destroy(w->send);
  if (w->recv) grpc_byte_buffer_destroy(w->recv);
  grpc_slice_unref(w->details);
  grpc_metadata_array_destroy(&w->md);
  grpc_metadata_array_destroy(&w->tr);
  grpc_call_unref(w->call);
  return rc;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Keeps `inflight` workers busy with o on t for `seconds`, or, when count > 0,
 * until count operations have been started. A lock pair is one operation; one
 * that is under way when time is up is finished and counted. */
static sample measure(target *t, grpc_completion_queue *cq, op o, int inflight, double seconds,
                      uint64_t count) {
  static worker ws[MAX_INFLIGHT];
  size_t cap = 1 << 21, n = 0;
  int64_t *lat = malloc(cap * sizeof *lat);
  if (!lat) {
    fprintf(stderr, "strata-bench: out of memory for %zu latencies\n", cap);
    exit(1);
  }
  sample s = {0};
  int64_t t_start = mono_ns(), t_end = t_start + (int64_t)(seconds * 1e9);
  uint64_t started = 0;
  int active = 0;
  for (int i = 0; i < inflight && (!count || started < count); i++, started++, active++) {
    ws[i] = (worker){.idx = i, .t0 = mono_ns()};
    begin_call(t, cq, o, &ws[i]);
  }
  while (active) {
    grpc_event ev = grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    worker *w = ev.tag;
    int failed = end_call(t, o, w) != 0;
    s.errors += failed;
    int64_t now = mono_ns();
    if ((o == OP_LOCK_DISTINCT || o == OP_LOCK_ONE_ROW) && w->phase == 0 && !failed) {
      w->phase = 1; /* the pair's second half */
      begin_call(t, cq, o, w);
      continue;
    }
    if (n < cap) lat[n++] = (now - w->t0) / 1000;
    if (count ? started >= count : now >= t_end) {
      active--;
      continue;
    }
    started++;
    w->phase = 0;
    w->t0 = now;
    begin_call(t, cq, o, w);
  }
  double elapsed = (double)(mono_ns() - t_start) / 1e9;
  qsort(lat, n, sizeof *lat, cmp_i64);
  s.qps = (double)n / elapsed;
  s.p50_us = n ? (double)lat[n / 2] : 0;
  s.p99_us = n ? (double)lat[(size_t)((double)n * 0.99)] : 0;
  free(lat);
  return s;
}

/* Grants etcd worker i its lease, for ttl_s seconds. */
static int grant_leases(target *t, int workers, int64_t ttl_s) {
  rpc_client_opts co = {.addr = t->addr, .wait_for_ready = 1};
  rpc_client *c;
  if (rpc_client_open(&co, &c)) return -1;
  int rc = 0;
  for (int i = 0; i < workers && !rc; i++) {
    Etcdserverpb__LeaseGrantRequest req = ETCDSERVERPB__LEASE_GRANT_REQUEST__INIT;
    req.ttl = ttl_s;
    uint8_t buf[32];
    size_t len = etcdserverpb__lease_grant_request__pack(&req, buf), rlen = 0;
    void *resp = NULL;
    rc = rpc_client_raw(c, "/etcdserverpb.Lease/LeaseGrant", NULL, buf, len, &resp, &rlen);
    Etcdserverpb__LeaseGrantResponse *r =
        rc ? NULL : etcdserverpb__lease_grant_response__unpack(NULL, rlen, resp);
    if (!r || r->id == 0 || r->error[0]) {
      const char *why = rc ? strata_errmsg() : "malformed response";
      if (r) why = r->error[0] ? r->error : "no lease ID in the answer";
      fprintf(stderr, "strata-bench: etcd: LeaseGrant failed: %s\n", why);
      rc = -1;
    } else {
      t->lease[i] = r->id;
    }
    if (r) etcdserverpb__lease_grant_response__free_unpacked(r, NULL);
    free(resp);
  }
  rpc_client_close(c);
  return rc;
}

static void target_open(target *t, const char *name, const char *addr, int is_etcd) {
  *t = (target){.name = name, .addr = addr, .is_etcd = is_etcd, .rng = 0x9e3779b97f4a7c15ull};
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  t->ch = grpc_channel_create(addr, creds, NULL);
  grpc_channel_credentials_release(creds);
  for (int c = 0; c < C__COUNT; c++)
    t->calls[c] = grpc_channel_register_call(
        t->ch, is_etcd ? etcd_paths[c] : rpc_methods[strata_methods[c]].path, NULL, NULL);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Prints etcd's line and Strata's with its ratio to etcd's. */
static void print_pair(const char *figure, const char *unit, double strata, double etcd) {
  printf("BENCH etcd_%s %.1f %s\n", figure, etcd, unit);
  printf("BENCH strata_%s %.1f %s vs etcd %.3f\n", figure, strata, unit,
         etcd > 0 ? strata / etcd : 0.0);
  fflush(stdout);
}

typedef struct figure {
  const char *name; /* without the server prefix; _qps/_p50/_p99 follow */
  op o;
  int inflight;
  const char *unit;
} figure;

static const figure figures[] = {
    {"put_c1", OP_PUT, 1, "ops/s"},
    {"put_c16", OP_PUT, 16, "ops/s"},
    {"put_c64", OP_PUT, 64, "ops/s"},
    {"get_c16", OP_GET, 16, "ops/s"},
    {"get_c64", OP_GET, 64, "ops/s"},
    {"lock_pairs_c16", OP_LOCK_DISTINCT, 16, "pairs/s"},
    {"lock_pairs_one_row_c16", OP_LOCK_ONE_ROW, 16, "pairs/s"},
};

/* Measures figure fg o->runs times on each server, who goes first alternating,
 * and prints the medians; returns the number of calls that failed (then prints
 * nothing: a figure with failed calls is not one). */
static uint64_t run_figure(target ts[2], grpc_completion_queue *cq, const figure *fg,
                           const bench_etcd_opts *o) {
  double qps[2][BENCH_ETCD_MAX_RUNS], p50[2][BENCH_ETCD_MAX_RUNS], p99[2][BENCH_ETCD_MAX_RUNS];
  uint64_t errors = 0;
  for (int r = 0; r < o->runs; r++) {
    for (int k = 0; k < 2; k++) {
      int i = (r + k) % 2;
      sample s = measure(&ts[i], cq, fg->o, fg->inflight, o->seconds, 0);
      qps[i][r] = s.qps, p50[i][r] = s.p50_us, p99[i][r] = s.p99_us;
      errors += s.errors;
    }
  }
  if (errors) {
    fprintf(stderr, "strata-bench: %s: calls failed; stopping\n", fg->name);
    return errors;
  }
  char name[96];
  snprintf(name, sizeof name, "%s_qps", fg->name);
  print_pair(name, fg->unit, median(qps[0], o->runs), median(qps[1], o->runs));
  snprintf(name, sizeof name, "%s_p50", fg->name);
  print_pair(name, "us", median(p50[0], o->runs), median(p50[1], o->runs));
  snprintf(name, sizeof name, "%s_p99", fg->name);
  print_pair(name, "us", median(p99[0], o->runs), median(p99[1], o->runs));
  return 0;
}

int bench_etcd_run(const bench_etcd_opts *o) {
  static target ts[2];
  size_t n_figures = sizeof figures / sizeof *figures;
  uint64_t errors = 0;
  memset(value, 'v', sizeof value);
  fprintf(stderr,
          "strata-bench: strata %s vs etcd %s: %d-byte keys, %d-byte values, %d keys, "
          "%d run(s) of %.1f s per figure and server, medians\n",
          o->strata_addr, o->etcd_addr, KEY_BYTES, VALUE_BYTES, KEYSPACE, o->runs, o->seconds);
  rpc_grpc_init();
  grpc_completion_queue *cq = grpc_completion_queue_create_for_next(NULL);
  target_open(&ts[0], "strata", o->strata_addr, 0);
  target_open(&ts[1], "etcd", o->etcd_addr, 1);

  /* Warm-up, the same for both: every key of the key space written once, 64 in flight. */
  for (int i = 0; i < 2; i++)
    errors += measure(&ts[i], cq, OP_PUT, MAX_INFLIGHT, 0, KEYSPACE).errors;
  /* etcd's lock workers' leases, long enough for every figure. */
  double total_s = 2.0 * o->runs * o->seconds * (double)n_figures;
  if (!errors && grant_leases(&ts[1], MAX_INFLIGHT, LEASE_SPARE_S + (int64_t)total_s)) errors++;
  for (size_t f = 0; f < n_figures && !errors; f++) errors += run_figure(ts, cq, &figures[f], o);

  for (int i = 0; i < 2; i++) grpc_channel_destroy(ts[i].ch);
  grpc_completion_queue_shutdown(cq);
  while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(cq);
  grpc_shutdown();
  if (errors) {
    fprintf(stderr, "strata-bench: %llu calls failed or came back wrong\n",
            (unsigned long long)errors);
    return 1;
  }
  return 0;
}
