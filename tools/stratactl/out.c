/*
 * How stratactl talks to the server and to its user: the lazily opened
 * client, the one mapping from a call's Strata code to an exit code, JSON
 * documents (through jansson) and aligned text tables.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "rpc/status.h"
#include "tools/stratactl/ctl.h"

static void json_error(const char *code, const char *status, const char *msg, int exit_code);

rpc_client *ctl_client(ctl_ctx *x) {
  if (x->client) return x->client;
  /* addr NULL (no --addr): rpc_client_open falls back to $STRATA_ADDR, then
   * RPC_DEFAULT_ADDR; the messages name the address it chose. */
  rpc_client_opts o = {.addr = x->addr, .timeout_ms = x->timeout_ms, .tls_ca = x->tls_ca,
                       .tls_cert = x->tls_cert, .tls_key = x->tls_key, .token = x->token};
  int rc = rpc_client_open(&o, &x->client);
  if (rc == STRATA_ENOMEM) exit(ctl_oom(x));
  if (rc) { /* a TLS file: the message names it */
    fprintf(stderr, "stratactl: %s\n", strata_errmsg());
    if (x->json) json_error(strata_errname(rc), "UNKNOWN", strata_errmsg(), CTL_USAGE);
    exit(CTL_USAGE);
  }
  x->addr = rpc_client_addr(x->client);
  return x->client;
}

rpc_callopts ctl_callopts(const ctl_ctx *x, int64_t extra_ms) {
  rpc_callopts co = {.timeout_ms = x->timeout_ms + extra_ms};
  return co;
}

/* --- streams: a deadline on silence, and progress ---------------------------------------- */

struct ctl_idle {
  pthread_t th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  rpc_cstream *st;
  int64_t idle_ms, last_ms;
  int stop, fired;
  const char *what;
};

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int ctl_stream_begin(ctl_ctx *x, rpc_callopts *co) {
  /* Opening a stream waits for the connection with the call's deadline, and
   * the stream has none: so first a Health check within --timeout, after which
   * the channel is connected (or we know it cannot be). */
  Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *r = NULL;
  rpc_callopts hc = ctl_callopts(x, 0);
  int rc = rpc_health_check(ctl_client(x), &hc, &q, &r);
  rpc_free(r);
  co->timeout_ms = -1; /* no overall deadline: ctl_idle bounds the silences */
  return rc;
}

static void *idle_main(void *p) {
  ctl_idle *w = p;
  pthread_mutex_lock(&w->mu);
  while (!w->stop) {
    int64_t due = w->last_ms + w->idle_ms, now = mono_ms();
    if (now >= due) {
      w->fired = 1;
      rpc_cstream_cancel(w->st);
      break;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (due - now) * 1000000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&w->cv, &w->mu, &ts);
  }
  pthread_mutex_unlock(&w->mu);
  return NULL;
}

ctl_idle *ctl_idle_start(ctl_ctx *x, rpc_cstream *st, const char *what) {
  ctl_idle *w = calloc(1, sizeof *w);
  if (!w) exit(ctl_oom(x));
  w->st = st;
  w->idle_ms = x->timeout_ms;
  w->last_ms = mono_ms();
  w->what = what;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&w->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&w->mu, NULL);
  if (st && pthread_create(&w->th, NULL, idle_main, w) != 0) exit(ctl_oom(x));
  return w;
}

void ctl_idle_tick(ctl_idle *w) {
  pthread_mutex_lock(&w->mu);
  w->last_ms = mono_ms();
  pthread_mutex_unlock(&w->mu);
}

int ctl_idle_stop(ctl_idle *w, int rc) {
  pthread_mutex_lock(&w->mu);
  w->stop = 1;
  pthread_cond_signal(&w->cv);
  pthread_mutex_unlock(&w->mu);
  if (w->st) pthread_join(w->th, NULL);
  if (w->fired && rc == STRATA_ECANCELLED) {
    char d[32];
    rc = strata_err(STRATA_EDEADLINE,
                    "DEADLINE_EXCEEDED: strata-server sent nothing for %s (on a stream, --timeout "
                    "bounds each wait between messages)",
                    ctl_dur_str(w->idle_ms, d, sizeof d));
  }
  pthread_cond_destroy(&w->cv);
  pthread_mutex_destroy(&w->mu);
  free(w);
  return rc;
}

static int64_t progress_last_ms;
static int progress_shown;

void ctl_progress(const ctl_ctx *x, const char *fmt, ...) {
  if (x->json || !isatty(2)) return;
  int64_t now = mono_ms();
  if (progress_shown && now - progress_last_ms < 200) return;
  progress_last_ms = now;
  progress_shown = 1;
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "\r\033[K");
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fflush(stderr);
}

void ctl_progress_done(const ctl_ctx *x) {
  if (!progress_shown) return;
  fprintf(stderr, "\r\033[K");
  fflush(stderr);
  progress_shown = 0;
}

/* The one place a call's return code becomes an exit code. */
static int exit_code_of(int rc) {
  switch (rc) {
  case ENOTCONN:
  case STRATA_EDEADLINE:
  case STRATA_ESHUTDOWN: /* draining: as good as gone */
    return CTL_UNREACHABLE;
  case STRATA_EINVALID:
    return CTL_USAGE;
  default:
    return CTL_REFUSED;
  }
}

static void json_error(const char *code, const char *status, const char *msg, int exit_code) {
  json_t *e = json_pack("{s:s, s:s, s:s}", "code", code, "status", status, "message", msg);
  ctl_json_print(json_pack("{s:o, s:i}", "error", e, "exit", exit_code));
}

int ctl_rpc_fail(ctl_ctx *x, int rc, const char *what) {
  int ec = exit_code_of(rc);
  char msg[2048], d[32] = "";
  const char *detail = strata_errmsg();
  ctl_progress_done(x);
  ctl_client(x); /* sets x->addr */
  if (rc == ENOTCONN && !strstr(detail, x->addr))
    snprintf(msg, sizeof msg, "%s: cannot reach strata-server at %s (%s)", what, x->addr, detail);
  else if (rc == STRATA_EDEADLINE)
    snprintf(msg, sizeof msg, "%s was too slow: no answer from strata-server at %s within %s (%s)",
             what, x->addr, ctl_dur_str(x->timeout_ms, d, sizeof d), detail);
  else
    snprintf(msg, sizeof msg, "%s: %s", what, detail);
  fprintf(stderr, "stratactl: %s\n", msg);
  if (rc == STRATA_EDEADLINE)
    fprintf(stderr, "stratactl: %s answered nothing in time: a loaded server or a large request "
                    "needs a longer --timeout (now %s); 'stratactl stats' shows the calls in "
                    "flight. A server that never answers is not strata-server or is stuck.\n",
            x->addr, d);
  else if (ec == CTL_UNREACHABLE && strstr(detail, "andshake"))
    fprintf(stderr, "stratactl: the TLS handshake with %s failed: --tls-ca ($STRATA_TLS_CA) must "
                    "be the CA that signed the server's certificate, and a server that requires "
                    "client certificates needs --tls-cert and --tls-key (docs/security.md).\n",
            x->addr);
  else if (ec == CTL_UNREACHABLE)
    fprintf(stderr, "stratactl: is strata-server running at %s? Choose the server with --addr "
                    "HOST:PORT or $STRATA_ADDR (over TLS, with --tls-ca).\n", x->addr);
  if (ec == CTL_USAGE) ctl_usage_hint(x->cmd);
  if (x->json) {
    /* The failed call's gRPC status. OK means no call failed: the failure was
     * the client's own (an invalid answer, out of memory), so UNKNOWN. */
    grpc_status_code st = rpc_client_last_status();
    json_error(strata_errname(rc), st == GRPC_STATUS_OK ? "UNKNOWN" : rpc_status_name(st), msg, ec);
  }
  return ec;
}

int ctl_refuse(ctl_ctx *x, const char *code, const char *fmt, ...) {
  char msg[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "stratactl: %s\n", msg);
  if (x->json) json_error(code, "REFUSED", msg, CTL_REFUSED);
  return CTL_REFUSED;
}

int ctl_oom(ctl_ctx *x) {
  return ctl_refuse(x, "STRATA_ENOMEM", "%s: out of memory", x->cmd ? ctl_cmd_words(x->cmd) : "stratactl");
}

/* --- JSON -------------------------------------------------------------------------- */

void ctl_json_print(json_t *doc) {
  if (!doc) {
    fprintf(stderr, "stratactl: out of memory building the JSON output\n");
    exit(CTL_REFUSED);
  }
  json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
  fputc('\n', stdout);
  json_decref(doc);
}

json_t *ctl_json_u64(uint64_t v) {
  if (v <= (uint64_t)INT64_MAX) return json_integer((json_int_t)v);
  char s[24];
  snprintf(s, sizeof s, "%llu", (unsigned long long)v);
  return json_string(s);
}

void ctl_json_set_time(json_t *obj, const char *field, int64_t ns) {
  char name[64], buf[48];
  json_object_set_new(obj, field, ns ? json_string(ctl_time_str(ns, 9, buf, sizeof buf)) : json_null());
  snprintf(name, sizeof name, "%s_ns", field);
  json_object_set_new(obj, name, json_integer(ns));
}

json_t *ctl_json_version(uint64_t generation, int64_t commit_time_ns) {
  json_t *v = json_object();
  json_object_set_new(v, "generation", ctl_json_u64(generation));
  ctl_json_set_time(v, "commit_time", commit_time_ns);
  return v;
}

void ctl_json_set_key(json_t *obj, const char *field, const uint8_t *k, size_t len) {
  char name[64];
  char *s = ctl_key_str(k, len), *h = ctl_hex_str(k, len);
  json_object_set_new(obj, field, json_string(s ? s : ""));
  snprintf(name, sizeof name, "%s_hex", field);
  json_object_set_new(obj, name, json_string(h ? h : ""));
  free(s);
  free(h);
}

json_t *ctl_json_decoded(const uint8_t *k, size_t len) {
  char dec[96];
  const char *type;
  uint64_t ids[3];
  if (!ctl_row_decode(k, len, dec, sizeof dec, &type, ids)) return json_null();
  if (strcmp(type, "chunk") == 0)
    return json_pack("{s:s, s:o, s:s}", "type", type, "chunk_id", ctl_json_u64(ids[0]), "text", dec);
  return json_pack("{s:s, s:o, s:o, s:o, s:s}", "type", type, "x", ctl_json_u64(ids[0]), "y",
                   ctl_json_u64(ids[1]), "z", ctl_json_u64(ids[2]), "text", dec);
}

/* --- tables ------------------------------------------------------------------------- */

void ctl_table_init(ctl_table *t, size_t ncols, const char *const *header) {
  memset(t, 0, sizeof *t);
  t->ncols = ncols;
  ctl_table_add(t, header);
}

void ctl_table_add(ctl_table *t, const char *const *cells) {
  if (t->nrows == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 16;
    char **p = realloc(t->cells, cap * t->ncols * sizeof *p);
    if (!p) {
      fprintf(stderr, "stratactl: out of memory\n");
      exit(CTL_REFUSED);
    }
    t->cells = p;
    t->cap = cap;
  }
  for (size_t i = 0; i < t->ncols; i++) {
    char *s = strdup(cells[i] ? cells[i] : "-");
    if (!s) {
      fprintf(stderr, "stratactl: out of memory\n");
      exit(CTL_REFUSED);
    }
    t->cells[t->nrows * t->ncols + i] = s;
  }
  t->nrows++;
}

void ctl_table_print(const ctl_table *t, FILE *f) {
  size_t w[16] = {0};
  for (size_t r = 0; r < t->nrows; r++)
    for (size_t c = 0; c < t->ncols && c < 16; c++) {
      size_t n = strlen(t->cells[r * t->ncols + c]);
      if (n > w[c]) w[c] = n;
    }
  for (size_t r = 0; r < t->nrows; r++) {
    for (size_t c = 0; c < t->ncols; c++) {
      const char *s = t->cells[r * t->ncols + c];
      if (c + 1 == t->ncols) fprintf(f, "%s\n", s);
      else fprintf(f, "%-*s  ", (int)w[c], s);
    }
  }
}

void ctl_table_free(ctl_table *t) {
  for (size_t i = 0; i < t->nrows * t->ncols; i++) free(t->cells[i]);
  free(t->cells);
  memset(t, 0, sizeof *t);
}
