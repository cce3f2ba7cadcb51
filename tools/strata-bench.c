/*
 * strata-bench: a C load driver over gRPC core (one completion queue, N calls
 * in flight). It measures durable 1 KiB puts (Kv.Commit) and point gets at 1
 * and 64 in flight, and lock acquire+release pairs at 16 in flight, each next
 * to an anchor measured in the same run at the same concurrency:
 * grpc.health.v1.Health/Check round trips, the transport's own ceiling.
 *
 *   BENCH <name> <value> <unit> [vs <anchor> <ratio>]
 *
 * Without --addr it starts an in-process server (server/embedded.h) on a
 * temporary directory. --seconds (or $STRATA_BENCH_SECONDS) sets each
 * measurement's length (default 1.5). --inflight N measures only puts and gets
 * at N in flight (the Python client's benchmark compares itself to that).
 *
 * The cost of security (docs/security.md): two more in-process servers on
 * fresh directories, one plaintext and one with TLS and an auth file, and the
 * put and get rates at 16 in flight against each, alternating, with a bearer
 * token on every TLS call: BENCH tls_put_rate ... vs plaintext <ratio>. The
 * certificates come from tests/rpc/mkcerts.sh (run from the source tree).
 */
#include <getopt.h>
#include <unistd.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <grpc/byte_buffer.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/alloc.h>
#include <grpc/support/time.h>

#include "common/err.h"
#include "rpc/client.h"
#include "rpc/methods.h"
#include "rpc/tls.h"
#include "server/embedded.h"
#include "server/srv.h"
/* --etcd HOST:PORT (with --addr): Strata against etcd instead, each figure --runs
 * times on both (`make bench-etcd`). */
#include "tools/strata-bench-etcd.h"

#define MAX_INFLIGHT 64
#define VALUE_BYTES 1024

typedef enum kind { K_HEALTH, K_PUT, K_GET, K_LOCK } kind;

typedef struct slot {
  int idx;
  int phase; /* lock pairs: 0 acquire, 1 release */
  int64_t t0; /* start of the operation (a pair counts as one) */
  uint64_t seq;
  grpc_call *call;
  grpc_byte_buffer *send, *recv;
  grpc_metadata_array md, tr;
  grpc_status_code st;
  grpc_slice details;
} slot;

typedef struct bench {
  grpc_channel *ch;
  grpc_completion_queue *cq;
  void *handles[RPC_M__COUNT];
  uint8_t value[VALUE_BYTES];
  uint64_t keys_written; /* keys bench/put/<i> for i < keys_written exist */
  uint64_t rng;
  grpc_metadata auth; /* "authorization: Bearer ..." when nauth == 1 */
  size_t nauth;
} bench;

typedef struct result {
  double qps;
  double p50_us, p99_us;
  uint64_t n, errors;
} result;

static int64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t rnd(bench *b) {
  b->rng ^= b->rng << 13;
  b->rng ^= b->rng >> 7;
  b->rng ^= b->rng << 17;
  return b->rng;
}

static grpc_byte_buffer *pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl);
  return bb;
}

/* Builds the request of slot s's next call. */
static grpc_byte_buffer *request(bench *b, kind k, slot *s, int *mid) {
  char key[64], row[32];
  switch (k) {
  case K_HEALTH: {
    Grpc__Health__V1__HealthCheckRequest r = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    *mid = RPC_M_health_check;
    return pack(&r.base);
  }
  case K_PUT: {
    snprintf(key, sizeof key, "bench/put/%08llu", (unsigned long long)s->seq);
    Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
    p.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    p.value = (ProtobufCBinaryData){VALUE_BYTES, b->value};
    Strata__V1__CommitRequest r = STRATA__V1__COMMIT_REQUEST__INIT;
    r.n_puts = 1;
    r.puts = &pp;
    *mid = RPC_M_kv_commit;
    return pack(&r.base);
  }
  case K_GET: {
    uint64_t i = b->keys_written ? rnd(b) % b->keys_written : 0;
    snprintf(key, sizeof key, "bench/put/%08llu", (unsigned long long)i);
    Strata__V1__GetRequest r = STRATA__V1__GET_REQUEST__INIT;
    r.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    *mid = RPC_M_kv_get;
    return pack(&r.base);
  }
  case K_LOCK: {
    snprintf(row, sizeof row, "bench/lock/%02d", s->idx);
    ProtobufCBinaryData rows = {strlen(row), (uint8_t *)row};
    if (s->phase == 0) {
      Strata__V1__AcquireRequest r = STRATA__V1__ACQUIRE_REQUEST__INIT;
      r.op_id = (uint64_t)s->idx + 1;
      r.n_rows = 1;
      r.rows = &rows;
      r.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
      r.ttl_ms = 10000;
      *mid = RPC_M_locks_acquire;
      return pack(&r.base);
    }
    Strata__V1__ReleaseRequest r = STRATA__V1__RELEASE_REQUEST__INIT;
    r.op_id = (uint64_t)s->idx + 1;
    r.n_rows = 1;
    r.rows = &rows;
    *mid = RPC_M_locks_release;
    return pack(&r.base);
  }
  }
  return NULL;
}

static void start(bench *b, kind k, slot *s) {
  int mid;
  s->send = request(b, k, s, &mid);
  s->recv = NULL;
  grpc_metadata_array_init(&s->md);
  grpc_metadata_array_init(&s->tr);
  s->details = grpc_empty_slice();
  gpr_timespec dl =
      gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC), gpr_time_from_seconds(30, GPR_TIMESPAN));
  s->call = grpc_channel_create_registered_call(b->ch, NULL, GRPC_PROPAGATE_DEFAULTS, b->cq,
                                                b->handles[mid], dl, NULL);
  grpc_op ops[6];
  memset(ops, 0, sizeof ops);
  ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
  ops[0].flags = GRPC_INITIAL_METADATA_WAIT_FOR_READY;
  ops[0].data.send_initial_metadata.count = b->nauth;
  ops[0].data.send_initial_metadata.metadata = &b->auth;
  ops[1].op = GRPC_OP_SEND_MESSAGE;
  ops[1].data.send_message.send_message = s->send;
  ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
  ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
  ops[3].data.recv_initial_metadata.recv_initial_metadata = &s->md;
  ops[4].op = GRPC_OP_RECV_MESSAGE;
  ops[4].data.recv_message.recv_message = &s->recv;
  ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
  ops[5].data.recv_status_on_client.status = &s->st;
  ops[5].data.recv_status_on_client.status_details = &s->details;
  ops[5].data.recv_status_on_client.trailing_metadata = &s->tr;
  if (grpc_call_start_batch(s->call, ops, 6, s, NULL) != GRPC_CALL_OK) {
    fprintf(stderr, "strata-bench: grpc_call_start_batch failed\n");
    exit(1);
  }
}

/* Frees what one call used; returns its status. */
static grpc_status_code finish(slot *s) {
  grpc_status_code st = s->st;
  if (st != GRPC_STATUS_OK) {
    char *d = grpc_slice_to_c_string(s->details);
    fprintf(stderr, "strata-bench: call failed: status %d: %s\n", (int)st, d);
    gpr_free(d);
  }
  grpc_byte_buffer_destroy(s->send);
  if (s->recv) grpc_byte_buffer_destroy(s->recv);
  grpc_slice_unref(s->details);
  grpc_metadata_array_destroy(&s->md);
  grpc_metadata_array_destroy(&s->tr);
  grpc_call_unref(s->call);
  return st;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Runs kind k with `inflight` calls for `seconds`; latencies in microseconds. */
static result run(bench *b, kind k, int inflight, double seconds) {
  static slot slots[MAX_INFLIGHT];
  size_t cap = 1 << 20, n = 0;
  int64_t *lat = malloc(cap * sizeof *lat);
  result res = {0};
  int64_t t_start = now_ns(), t_end = t_start + (int64_t)(seconds * 1e9);
  uint64_t seq = k == K_PUT ? b->keys_written : 0;
  int active = 0;
  for (int i = 0; i < inflight; i++) {
    slots[i] = (slot){.idx = i, .t0 = now_ns(), .seq = seq++};
    start(b, k, &slots[i]);
    active++;
  }
  while (active) {
    grpc_event ev = grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL);
    if (ev.type != GRPC_OP_COMPLETE) continue;
    slot *s = ev.tag;
    if (finish(s) != GRPC_STATUS_OK) res.errors++;
    int64_t t = now_ns();
    if (k == K_LOCK && s->phase == 0) { /* the pair's second half */
      s->phase = 1;
      start(b, k, s);
      continue;
    }
    if (n < cap) lat[n++] = (t - s->t0) / 1000;
    if (k == K_PUT && s->seq + 1 > b->keys_written) b->keys_written = s->seq + 1;
    if (t >= t_end) {
      active--;
      continue;
    }
    s->phase = 0;
    s->t0 = t;
    s->seq = seq++;
    start(b, k, s);
  }
  double el = (double)(now_ns() - t_start) / 1e9;
  qsort(lat, n, sizeof *lat, cmp_i64);
  res.n = n;
  res.qps = (double)n / el;
  res.p50_us = n ? (double)lat[n / 2] : 0;
  res.p99_us = n ? (double)lat[(size_t)((double)n * 0.99)] : 0;
  free(lat);
  return res;
}

static void line(const char *name, double v, const char *unit, const char *anchor, double av) {
  if (anchor)
    printf("BENCH %s %.1f %s vs %s %.3f\n", name, v, unit, anchor, av > 0 ? v / av : 0.0);
  else
    printf("BENCH %s %.1f %s\n", name, v, unit);
  fflush(stdout);
}

/* Prints qps, p50 and p99 of r against the anchor a measured at the same concurrency. */
static void report(const char *what, int c, const result *r, const result *a) {
  char name[96], an[96];
  snprintf(name, sizeof name, "rpc_%s_c%d_qps", what, c);
  snprintf(an, sizeof an, "rpc_health_c%d_qps", c);
  line(name, r->qps, "ops/s", an, a->qps);
  snprintf(name, sizeof name, "rpc_%s_c%d_p50", what, c);
  snprintf(an, sizeof an, "rpc_health_c%d_p50", c);
  line(name, r->p50_us, "us", an, a->p50_us);
  snprintf(name, sizeof name, "rpc_%s_c%d_p99", what, c);
  snprintf(an, sizeof an, "rpc_health_c%d_p99", c);
  line(name, r->p99_us, "us", an, a->p99_us);
}

static void anchor_lines(int c, const result *a) {
  char name[64];
  snprintf(name, sizeof name, "rpc_health_c%d_qps", c);
  line(name, a->qps, "calls/s", NULL, 0);
  snprintf(name, sizeof name, "rpc_health_c%d_p50", c);
  line(name, a->p50_us, "us", NULL, 0);
  snprintf(name, sizeof name, "rpc_health_c%d_p99", c);
  line(name, a->p99_us, "us", NULL, 0);
}

/* --- the cost of security ---------------------------------------------------------- */

#define SEC_TOKEN "strata-bench-token"
#define SEC_INFLIGHT 16

/* Opens b's channel to addr: plaintext when ca is NULL, else TLS trusting ca
 * (PEM text) with SEC_TOKEN on every call. */
static void bench_open(bench *b, const char *addr, const char *ca) {
  b->rng = 0x9e3779b97f4a7c15ull;
  memset(b->value, 'v', sizeof b->value);
  grpc_channel_credentials *creds =
      ca ? grpc_ssl_credentials_create(ca, NULL, NULL, NULL) : grpc_insecure_credentials_create();
  b->ch = grpc_channel_create(addr, creds, NULL);
  grpc_channel_credentials_release(creds);
  b->cq = grpc_completion_queue_create_for_next(NULL);
  for (int m = 0; m < RPC_M__COUNT; m++)
    b->handles[m] = grpc_channel_register_call(b->ch, rpc_methods[m].path, NULL, NULL);
  if (ca) {
    b->auth.key = grpc_slice_from_static_string("authorization");
    b->auth.value = grpc_slice_from_static_string("Bearer " SEC_TOKEN);
    b->nauth = 1;
  }
}

static void bench_close(bench *b) {
  grpc_channel_destroy(b->ch);
  grpc_completion_queue_shutdown(b->cq);
  while (grpc_completion_queue_next(b->cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(b->cq);
}

/* Starts a server on dir/name; with pki != NULL, TLS and an auth file. */
static srv *sec_server(const char *dir, const char *name, const char *pki) {
  char data[700], cert[700], key[700], auth[700];
  snprintf(data, sizeof data, "%s/%s", dir, name);
  srv_opts o = {.listen = "127.0.0.1:0", .data_dir = data, .threads = 2, .grace_ms = 0};
  if (pki) {
    snprintf(cert, sizeof cert, "%s/server.pem", pki);
    snprintf(key, sizeof key, "%s/server.key", pki);
    snprintf(auth, sizeof auth, "%s/auth", pki);
    unsigned char d[32];
    rpc_sha256(SEC_TOKEN, strlen(SEC_TOKEN), d);
    FILE *f = fopen(auth, "w");
    if (!f) return NULL;
    fprintf(f, "bench writer ");
    for (int i = 0; i < 32; i++) fprintf(f, "%02x", d[i]);
    fprintf(f, "\n");
    fclose(f);
    o.tls_cert = cert;
    o.tls_key = key;
    o.auth_file = auth;
  }
  srv *s = NULL;
  if (srv_open(&o, &s)) {
    fprintf(stderr, "strata-bench: cannot start the %s server: %s\n", name, strata_errmsg());
    return NULL;
  }
  return s;
}

/* Put and get rates with TLS + token against plaintext, same run. Returns the
 * failed calls, or 0 with a note when it cannot run (no openssl, not in the
 * source tree). */
static uint64_t bench_security(double seconds) {
  /* Under $TMPDIR, as the in-process server's: make bench points it at BENCH_DIR. */
  const char *tmp = getenv("TMPDIR");
  char dir[512], pki[600], cmd[1400], ca_path[640];
  snprintf(dir, sizeof dir, "%s/strata-bench-sec-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) return 0;
  snprintf(pki, sizeof pki, "%s/pki", dir);
  snprintf(cmd, sizeof cmd, "sh tests/rpc/mkcerts.sh %s", pki);
  uint64_t errors = 0;
  srv *plain = NULL, *tls = NULL;
  rpc_tls t = {0};
  snprintf(ca_path, sizeof ca_path, "%s/ca.pem", pki);
  if (access("tests/rpc/mkcerts.sh", R_OK) != 0 || system(cmd) != 0 ||
      rpc_tls_load(&t, ca_path, "ca", NULL, NULL, NULL, NULL)) {
    fprintf(stderr, "strata-bench: no test certificates (run from the source tree, with openssl): "
                    "the TLS figures are left out\n");
    goto out;
  }
  if (!(plain = sec_server(dir, "plain", NULL)) || !(tls = sec_server(dir, "tls", pki))) {
    errors = 1;
    goto out;
  }
  char pa[64], ta[64];
  snprintf(pa, sizeof pa, "127.0.0.1:%d", srv_port(plain));
  snprintf(ta, sizeof ta, "127.0.0.1:%d", srv_port(tls));
  static bench bp, bt;
  bench_open(&bp, pa, NULL);
  bench_open(&bt, ta, t.ca);
  run(&bp, K_HEALTH, SEC_INFLIGHT, seconds / 3); /* connections and handshakes */
  run(&bt, K_HEALTH, SEC_INFLIGHT, seconds / 3);
  /* Halves in the order plain, TLS, TLS, plain (ABBA), so that neither side
   * always runs right after the other's puts (whose dirty pages and
   * publications are still being written back) and a drift in the machine's
   * load hits both alike. */
  double pput = 0, tput = 0, pget = 0, tget = 0;
  for (int half = 0; half < 4; half++) {
    int on_tls = half == 1 || half == 2;
    result r = run(on_tls ? &bt : &bp, K_PUT, SEC_INFLIGHT, seconds / 2);
    *(on_tls ? &tput : &pput) += r.qps / 2;
    errors += r.errors;
  }
  for (int half = 0; half < 4; half++) {
    int on_tls = half == 1 || half == 2;
    result r = run(on_tls ? &bt : &bp, K_GET, SEC_INFLIGHT, seconds / 2);
    *(on_tls ? &tget : &pget) += r.qps / 2;
    errors += r.errors;
  }
  line("plaintext_put_rate", pput, "ops/s", NULL, 0);
  line("tls_put_rate", tput, "ops/s", "plaintext", pput);
  line("plaintext_get_rate", pget, "ops/s", NULL, 0);
  line("tls_get_rate", tget, "ops/s", "plaintext", pget);
  bench_close(&bp);
  bench_close(&bt);
out:
  rpc_tls_free(&t);
  if (tls) srv_close(tls);
  if (plain) srv_close(plain);
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  if (system(cmd) != 0) fprintf(stderr, "strata-bench: could not remove %s\n", dir);
  return errors;
}

/* The command line: a server's address (none: in-process), seconds per figure,
 * which figures, and the etcd comparison's options. */
typedef struct bench_args {
  const char *addr;
  double seconds;
  int only;       /* --inflight: just puts and gets at this concurrency */
  int locks_only; /* --locks: just the lock pairs */
  bench_etcd_opts eo;
} bench_args;

static void usage(int ch) {
  if (ch == 'h')
    printf("usage: strata-bench --addr HOST:PORT --etcd HOST:PORT [--seconds S] [--runs N]\n"
           "  Strata against etcd: each figure N times (1..%d) on both, medians\n",
           BENCH_ETCD_MAX_RUNS);
  fprintf(ch == 'h' ? stdout : stderr,
          "usage: strata-bench [--addr HOST:PORT] [--seconds S] [--inflight N]\n"
          "  without --addr, an in-process server on a temporary directory is used\n"
          "  --inflight N: only puts and gets, at N calls in flight (1..%d)\n"
          "  --locks: only the lock pairs\n",
          MAX_INFLIGHT);
}

/* Parses the command line into *a; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, bench_args *a) {
  static const struct option longopts[] = {{"addr", required_argument, 0, 'a'},
                                           {"seconds", required_argument, 0, 's'},
                                           {"inflight", required_argument, 0, 'i'},
                                           {"help", no_argument, 0, 'h'},
                                           {"etcd", required_argument, 0, 'e'},
                                           {"runs", required_argument, 0, 'r'},
                                           {"locks", no_argument, 0, 'l'},
                                           {0, 0, 0, 0}};
  const char *env = getenv("STRATA_BENCH_SECONDS");
  a->seconds = env ? atof(env) : 1.5;
  a->eo.runs = 3;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'e': a->eo.etcd_addr = optarg; break;
    case 'r':
      a->eo.runs = atoi(optarg);
      if (a->eo.runs < 1 || a->eo.runs > BENCH_ETCD_MAX_RUNS) {
        fprintf(stderr, "strata-bench: --runs: expected 1..%d, got \"%s\"\n", BENCH_ETCD_MAX_RUNS,
                optarg);
        return 2;
      }
      break;
    case 'a': a->addr = optarg; break;
    case 'l': a->locks_only = 1; break;
    case 's': a->seconds = atof(optarg); break;
    case 'i':
      a->only = atoi(optarg);
      if (a->only < 1 || a->only > MAX_INFLIGHT) {
        fprintf(stderr, "strata-bench: --inflight: expected 1..%d, got \"%s\"\n", MAX_INFLIGHT,
                optarg);
        return 2;
      }
      break;
    default:
      usage(ch);
      return ch == 'h' ? 0 : 2;
    }
  }
  if (a->seconds <= 0) a->seconds = 1.5;
  return -1;
}

/* The figures over b's channel: puts and gets at 1 and 64 calls in flight (or
 * --inflight's), the lock pairs at 16, each with its health anchor; the security
 * figures when the server is in-process. Returns the failed calls. */
static uint64_t run_figures(bench *b, const bench_args *a, int in_process) {
  double seconds = a->seconds;
  run(b, K_HEALTH, 16, seconds / 3); /* warm up the connection and the threads */
  uint64_t errors = 0;
  int conc[2] = {1, 64}, nconc = 2;
  if (a->only) conc[0] = a->only, nconc = 1;
  if (a->locks_only) nconc = 0;
  for (int i = 0; i < nconc; i++) {
    int c = conc[i];
    result h = run(b, K_HEALTH, c, seconds);
    anchor_lines(c, &h);
    result put = run(b, K_PUT, c, seconds);
    report("put_1k", c, &put, &h);
    result get = run(b, K_GET, c, seconds);
    report("get_1k", c, &get, &h);
    errors += h.errors + put.errors + get.errors;
  }
  if (!a->only) {
    result a16 = run(b, K_HEALTH, 16, seconds);
    anchor_lines(16, &a16);
    result lk = run(b, K_LOCK, 16, seconds);
    line("rpc_lock_pairs_c16", lk.qps, "pairs/s", "rpc_health_c16_qps", a16.qps);
    errors += a16.errors + lk.errors;
  }
  if (!a->only && !a->locks_only && in_process) errors += bench_security(seconds);
  return errors;
}

int main(int argc, char **argv) {
  bench_args a = {0};
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  if (a.eo.etcd_addr) {
    if (!a.addr) {
      fprintf(stderr, "strata-bench: --etcd needs --addr (a running strata-server)\n");
      return 2;
    }
    a.eo.strata_addr = a.addr;
    a.eo.seconds = a.seconds;
    return bench_etcd_run(&a.eo);
  }
  srv_embedded *emb = NULL;
  if (!a.addr) {
    if (srv_embedded_start(NULL, &emb)) {
      fprintf(stderr, "strata-bench: cannot start the in-process server: %s\n", strata_errmsg());
      return 1;
    }
    a.addr = srv_embedded_addr(emb);
  }
  rpc_grpc_init();
  static bench b;
  b.rng = 0x9e3779b97f4a7c15ull;
  memset(b.value, 'v', sizeof b.value);
  grpc_channel_credentials *creds = grpc_insecure_credentials_create();
  b.ch = grpc_channel_create(a.addr, creds, NULL);
  grpc_channel_credentials_release(creds);
  b.cq = grpc_completion_queue_create_for_next(NULL);
  for (int m = 0; m < RPC_M__COUNT; m++)
    b.handles[m] = grpc_channel_register_call(b.ch, rpc_methods[m].path, NULL, NULL);

  uint64_t errors = run_figures(&b, &a, emb != NULL);

  grpc_channel_destroy(b.ch);
  grpc_completion_queue_shutdown(b.cq);
  while (grpc_completion_queue_next(b.cq, gpr_inf_future(GPR_CLOCK_MONOTONIC), NULL).type !=
         GRPC_QUEUE_SHUTDOWN) {}
  grpc_completion_queue_destroy(b.cq);
  grpc_shutdown();
  if (emb) srv_embedded_stop(emb);
  if (errors) {
    fprintf(stderr, "strata-bench: %llu calls failed\n", (unsigned long long)errors);
    return 1;
  }
  return 0;
}
