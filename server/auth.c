/*
 * Tokens, roles and the call gate (auth.h). The gate runs on the poller
 * thread: authentication is a SHA-256 and one constant-time comparison per
 * token in the file, under a read lock that SIGHUP's reload takes for writing
 * only to swap the table. Only calls that may be audited (operator methods,
 * and methods whose request can ask for more, such as a privileged release)
 * get per-call state; every other call costs no allocation.
 */
#include "server/auth.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "rpc/methods.h"
#include "rpc/status.h"
#include "rpc/tls.h"
#include "server/log.h"

/* --- the role table --------------------------------------------------------------- */

static int release_is_privileged(const ProtobufCMessage *req) {
  return ((const Strata__V1__ReleaseRequest *)req)->privileged;
}

/* Every method, by path: the one place that says which role may call what
 * (docs/security.md has the same table for users). A method that is not here
 * is refused when authentication is on; tests/rpc/test_auth.c checks that
 * every method the server registers has a row. */
const srv_role_rule srv_role_table[] = {
    {"/grpc.health.v1.Health/Check", SRV_ROLE_READER, NULL},
    {"/strata.v1.Admin/Stats", SRV_ROLE_READER, NULL},
    {"/strata.v1.Admin/Gc", SRV_ROLE_OPERATOR, NULL},
    {"/strata.v1.Admin/Retention", SRV_ROLE_OPERATOR, NULL},
    {"/strata.v1.Admin/Check", SRV_ROLE_OPERATOR, NULL},
    {"/strata.v1.Kv/Get", SRV_ROLE_READER, NULL},
    {"/strata.v1.Kv/BatchGet", SRV_ROLE_READER, NULL},
    {"/strata.v1.Kv/List", SRV_ROLE_READER, NULL},
    {"/strata.v1.Kv/Versions", SRV_ROLE_READER, NULL},
    {"/strata.v1.Kv/Watch", SRV_ROLE_READER, NULL},
    {"/strata.v1.Kv/Commit", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Locks/List", SRV_ROLE_READER, NULL},
    {"/strata.v1.Locks/Check", SRV_ROLE_READER, NULL},
    {"/strata.v1.Locks/Acquire", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Locks/Renew", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Locks/Release", SRV_ROLE_WRITER, release_is_privileged},
    {"/strata.v1.Ops/Get", SRV_ROLE_READER, NULL},
    {"/strata.v1.Ops/List", SRV_ROLE_READER, NULL},
    {"/strata.v1.Ops/ListStuck", SRV_ROLE_READER, NULL},
    {"/strata.v1.Ops/Create", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Ops/SetStatus", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Ops/AllocateIds", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Coordinator/ListWriters", SRV_ROLE_READER, NULL},
    {"/strata.v1.Coordinator/RegisterWriter", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Coordinator/RenewWriter", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Coordinator/UnregisterWriter", SRV_ROLE_WRITER, NULL},
    {"/strata.v1.Coordinator/RegisterFile", SRV_ROLE_WRITER, NULL},
    {NULL, SRV_ROLE_NONE, NULL},
};

const srv_role_rule *srv_role_rule_of(const char *path) {
  for (const srv_role_rule *r = srv_role_table; r->path; r++)
    if (strcmp(r->path, path) == 0) return r;
  return NULL;
}

static const char *const role_names[] = {"none", "reader", "writer", "operator"};

const char *srv_role_name(srv_role r) {
  return (unsigned)r < 4 ? role_names[r] : "none";
}

srv_role srv_role_parse(const char *s, size_t n) {
  for (int r = SRV_ROLE_READER; r <= SRV_ROLE_OPERATOR; r++)
    if (strlen(role_names[r]) == n && memcmp(role_names[r], s, n) == 0) return (srv_role)r;
  return SRV_ROLE_NONE;
}

/* --- the token file --------------------------------------------------------------- */

static int hexval(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

/* The next whitespace-separated word of [*p, end): start and length; 0 at the end. */
static size_t word(const char **p, const char *end, const char **w) {
  while (*p < end && (**p == ' ' || **p == '\t' || **p == '\r')) (*p)++;
  *w = *p;
  while (*p < end && **p != ' ' && **p != '\t' && **p != '\r') (*p)++;
  return (size_t)(*p - *w);
}

static int parse_line(const char *file, int lineno, const char *p, const char *end, srv_token *t,
                      int *empty) {
  const char *hash = memchr(p, '#', (size_t)(end - p));
  if (hash) end = hash;
  const char *w[4];
  size_t n[4];
  int k = 0;
  for (; k < 4; k++)
    if (!(n[k] = word(&p, end, &w[k]))) break;
  *empty = k == 0;
  if (k == 0) return 0;
  if (k != 3)
    return strata_err(STRATA_EINVALID,
                      "%s line %d: expected NAME ROLE SHA256 (3 words), found %s%d", file, lineno,
                      k > 3 ? "more than " : "", k > 3 ? 3 : k);
  if (n[0] > SRV_AUTH_MAX_NAME)
    return strata_err(STRATA_EINVALID, "%s line %d: the name is longer than %d bytes", file,
                      lineno, SRV_AUTH_MAX_NAME);
  for (size_t i = 0; i < n[0]; i++)
    if ((unsigned char)w[0][i] < 0x21 || (unsigned char)w[0][i] > 0x7e || w[0][i] == '"' ||
        w[0][i] == '\\')
      return strata_err(STRATA_EINVALID,
                        "%s line %d: the name may hold printable ASCII except quotes and "
                        "backslashes only",
                        file, lineno);
  memcpy(t->name, w[0], n[0]);
  t->name[n[0]] = 0;
  if (!(t->role = srv_role_parse(w[1], n[1])))
    return strata_err(STRATA_EINVALID,
                      "%s line %d: role \"%.*s\" is not one of reader, writer, operator", file,
                      lineno, (int)(n[1] > 32 ? 32 : n[1]), w[1]);
  if (n[2] != 64)
    return strata_err(STRATA_EINVALID,
                      "%s line %d: expected the token's SHA-256 as 64 lower-case hex digits "
                      "(stratactl auth hash makes the line), found %zu characters",
                      file, lineno, n[2]);
  for (int i = 0; i < 32; i++) {
    int hi = hexval(w[2][2 * i]), lo = hexval(w[2][2 * i + 1]);
    if (hi < 0 || lo < 0)
      return strata_err(STRATA_EINVALID,
                        "%s line %d: the SHA-256 must be lower-case hex digits (0-9, a-f)", file,
                        lineno);
    t->sha256[i] = (unsigned char)(hi << 4 | lo);
  }
  return 0;
}

int srv_tokens_parse(const char *file, const char *text, size_t len, srv_tokens *out) {
  memset(out, 0, sizeof *out);
  const char *p = text, *end = text + len;
  size_t cap = 0;
  int lineno = 0, rc = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    lineno++;
    srv_token t;
    int empty;
    if ((rc = parse_line(file, lineno, p, le, &t, &empty))) break;
    p = nl ? nl + 1 : end;
    if (empty) continue;
    for (size_t i = 0; i < out->n; i++) {
      if (strcmp(out->t[i].name, t.name) == 0)
        rc = strata_err(STRATA_EINVALID, "%s line %d: the name %s is already used on an earlier "
                        "line", file, lineno, t.name);
      else if (memcmp(out->t[i].sha256, t.sha256, 32) == 0)
        rc = strata_err(STRATA_EINVALID, "%s line %d: the same token as %s's on an earlier line",
                        file, lineno, out->t[i].name);
    }
    if (rc) break;
    if (strata_grow(&out->t, &cap, out->n + 1, sizeof *out->t, 8)) {
      rc = strata_err(STRATA_ENOMEM, "%s: out of memory", file);
      break;
    }
    out->t[out->n++] = t;
  }
  if (rc) srv_tokens_free(out);
  return rc;
}

/* An auth file beyond this is not one. */
#define AUTH_MAX_FILE_BYTES (4 << 20)

int srv_tokens_load(const char *file, srv_tokens *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen(file, "rb");
  if (!f) return strata_err(errno, "--auth-file %s: cannot open: %s", file, strerror(errno));
  char *buf = malloc(AUTH_MAX_FILE_BYTES + 1);
  if (!buf) {
    fclose(f);
    return strata_err(STRATA_ENOMEM, "--auth-file %s: out of memory", file);
  }
  size_t n = fread(buf, 1, AUTH_MAX_FILE_BYTES + 1, f);
  int e = ferror(f) ? errno : 0;
  fclose(f);
  int rc;
  if (e) rc = strata_err(e, "--auth-file %s: cannot read: %s", file, strerror(e));
  else if (n > AUTH_MAX_FILE_BYTES)
    rc = strata_err(STRATA_EINVALID, "--auth-file %s: larger than %d bytes", file,
                    AUTH_MAX_FILE_BYTES);
  else rc = srv_tokens_parse(file, buf, n, out);
  free(buf);
  return rc;
}

void srv_tokens_free(srv_tokens *t) {
  free(t->t);
  memset(t, 0, sizeof *t);
}

const srv_token *srv_tokens_find(const srv_tokens *t, const unsigned char sha[32]) {
  const srv_token *hit = NULL;
  for (size_t i = 0; i < t->n; i++) /* no early exit */
    if (rpc_equal_ct(t->t[i].sha256, sha, 32)) hit = &t->t[i];
  return hit;
}

/* --- the gate ------------------------------------------------------------------------ */

struct srv_auth {
  char *file; /* NULL: authentication off */
  srv_audit *audit;
  pthread_rwlock_t lk; /* guards tokens: read for a lookup, write for the reload's swap */
  srv_tokens tokens;
  const srv_role_rule *rule_of[RPC_M__COUNT];
};

/* What the gate keeps for a call that may be audited. */
typedef struct gcall {
  srv_auth *a;
  const srv_role_rule *rule;
  srv_role role;
  int audited; /* the intent record is written: on_end writes the outcome */
  char name[512]; /* the token's name, or the certificate subject without tokens */
} gcall;

int srv_auth_open(const char *auth_file, srv_audit *audit, srv_auth **out) {
  *out = NULL;
  srv_auth *a = calloc(1, sizeof *a);
  if (!a) return strata_err(STRATA_ENOMEM, "auth: out of memory");
  a->audit = audit;
  pthread_rwlock_init(&a->lk, NULL);
  for (int m = 0; m < RPC_M__COUNT; m++) a->rule_of[m] = srv_role_rule_of(rpc_methods[m].path);
  if (auth_file) {
    int rc;
    if (!(a->file = strdup(auth_file))) rc = strata_err(STRATA_ENOMEM, "auth: out of memory");
    else rc = srv_tokens_load(auth_file, &a->tokens);
    if (rc) {
      srv_auth_close(a);
      return rc;
    }
  }
  *out = a;
  return 0;
}

void srv_auth_close(srv_auth *a) {
  if (!a) return;
  srv_tokens_free(&a->tokens);
  pthread_rwlock_destroy(&a->lk);
  free(a->file);
  free(a);
}

int srv_auth_reload(srv_auth *a) {
  srv_jbuf b;
  srv_tokens fresh;
  int rc = a->file ? srv_tokens_load(a->file, &fresh)
                   : strata_err(STRATA_EINVALID, "no --auth-file was given: nothing to reload");
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", rc ? strata_errmsg() : "");
  size_t n = 0;
  if (!rc) {
    pthread_rwlock_wrlock(&a->lk);
    srv_tokens old = a->tokens;
    a->tokens = fresh;
    n = fresh.n;
    pthread_rwlock_unlock(&a->lk);
    srv_tokens_free(&old);
  }
  srv_jb_begin(&b, "auth_reload");
  srv_jb_str(&b, "file", a->file ? a->file : "");
  srv_jb_str(&b, "status", rc ? "FAILED" : "OK");
  if (rc) srv_jb_str(&b, "message", msg);
  else srv_jb_u64(&b, "tokens", n);
  int arc = srv_audit_append(a->audit, &b);
  char q[1100];
  if (rc)
    srv_log(SRV_LOG_ERROR, "event=auth_reload status=failed action=kept_previous_table msg=%s",
            srv_log_quote(q, sizeof q, msg));
  else srv_log(SRV_LOG_INFO, "event=auth_reload status=ok tokens=%zu", n);
  if (arc) srv_log(SRV_LOG_ERROR, "event=audit_failed msg=%s", srv_log_quote(q, sizeof q, strata_errmsg()));
  return rc ? strata_err(rc, "%s", msg) : 0;
}

/* The caller's common fields of a record. */
static void jb_caller(srv_jbuf *b, rpc_call *call, const char *name, srv_role role) {
  char peer[160], subject[512];
  if (name && *name) srv_jb_str(b, "caller", name);
  if (role) srv_jb_str(b, "role", srv_role_name(role));
  if (rpc_call_peer_subject(call, subject, sizeof subject)) srv_jb_str(b, "cert", subject);
  rpc_call_peer(call, peer, sizeof peer);
  srv_jb_str(b, "peer", peer);
  srv_jb_str(b, "method", rpc_methods[rpc_call_method(call)].path);
}

/* Records a refused call (rate limited, see audit.h) and returns rc with msg. */
static int refuse(srv_auth *a, rpc_call *call, const ProtobufCMessage *req, const char *name,
                  srv_role role, int rc, const char *msg) {
  uint64_t dropped;
  if (srv_audit_refusal_slot(a->audit, &dropped)) {
    srv_jbuf *b = malloc(sizeof *b);
    if (b) {
      srv_jb_begin(b, "refused");
      jb_caller(b, call, name, role);
      srv_jb_request(b, "request", req);
      srv_jb_str(b, "status", rpc_status_name(rpc_status_of(rc)));
      srv_jb_str(b, "message", msg);
      if (dropped) srv_jb_u64(b, "dropped_refusals", dropped);
      if (srv_audit_append(a->audit, b)) {
        char q[1100];
        srv_log(SRV_LOG_ERROR, "event=audit_failed msg=%s",
                srv_log_quote(q, sizeof q, strata_errmsg()));
      }
      free(b);
    }
  }
  return strata_err(rc, "%s", msg);
}

/* The token of "authorization: Bearer TOKEN": its SHA-256 into sha. Returns 0,
 * or -1 when the call carries no bearer token. */
static int bearer_sha(rpc_call *call, unsigned char sha[32]) {
  const char *v;
  long n = rpc_call_metadata(call, "authorization", &v);
  if (n < 8 || strncasecmp(v, "bearer ", 7) != 0) return -1;
  rpc_sha256(v + 7, (size_t)n - 7, sha);
  return 0;
}

static void gcall_end(void *state, rpc_call *call, int rc, const char *msg) {
  gcall *g = state;
  if (!g->audited) return;
  srv_jbuf *b = malloc(sizeof *b);
  if (!b) return;
  srv_jb_begin(b, "call");
  srv_jb_str(b, "phase", "outcome");
  jb_caller(b, call, g->name, g->a->file ? g->role : SRV_ROLE_NONE);
  srv_jb_str(b, "status", rpc_status_name(rpc_status_of(rc)));
  if (rc) srv_jb_str(b, "message", msg);
  /* The action has happened (or failed) already: a record that cannot be made
   * durable now is logged, and the call keeps its real outcome. */
  if (srv_audit_append(g->a->audit, b)) {
    char q[1100];
    srv_log(SRV_LOG_ERROR, "event=audit_failed phase=outcome msg=%s",
            srv_log_quote(q, sizeof q, strata_errmsg()));
  }
  free(b);
}

/* Phase 2: the decoded request may ask for more (escalate); operator calls
 * get their intent record before they run. */
static int gate_request(srv_auth *a, rpc_call *call, const ProtobufCMessage *req) {
  gcall *g = rpc_call_attached(call);
  if (!g) return 0;
  int esc = g->rule->escalate && g->rule->escalate(req);
  srv_role need = esc ? SRV_ROLE_OPERATOR : g->rule->role;
  if (a->file && g->role < need) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s%s needs role %s; caller %s has role %s", g->rule->path,
             esc ? " with privileged = true" : "", srv_role_name(need), g->name,
             srv_role_name(g->role));
    return refuse(a, call, req, g->name, g->role, STRATA_EDENIED, msg);
  }
  if (g->rule->role < SRV_ROLE_OPERATOR && !esc) return 0;
  srv_jbuf *b = malloc(sizeof *b);
  if (!b) return strata_err(STRATA_ENOMEM, "audit: out of memory; the call was not run");
  srv_jb_begin(b, "call");
  srv_jb_str(b, "phase", "intent");
  jb_caller(b, call, g->name, a->file ? g->role : SRV_ROLE_NONE);
  if (esc) srv_jb_bool(b, "privileged", 1);
  srv_jb_request(b, "request", req);
  int rc = srv_audit_append(a->audit, b);
  free(b);
  if (rc) { /* recording is part of the call: no record, no action */
    char why[1024];
    snprintf(why, sizeof why, "%s", strata_errmsg());
    return strata_err(STRATA_EIO, "%s; %s was not run", why, g->rule->path);
  }
  g->audited = 1;
  return 0;
}

int srv_auth_gate(void *ctx, rpc_call *call, const ProtobufCMessage *req) {
  srv_auth *a = ctx;
  if (req) return gate_request(a, call, req);
  const char *path = rpc_methods[rpc_call_method(call)].path;
  const srv_role_rule *rule = a->rule_of[rpc_call_method(call)];
  srv_role role = SRV_ROLE_OPERATOR; /* authentication off: everything is allowed */
  char name[SRV_AUTH_MAX_NAME + 1] = "";
  char msg[512];
  if (a->file) {
    unsigned char sha[32];
    if (bearer_sha(call, sha))
      return refuse(a, call, NULL, NULL, SRV_ROLE_NONE, STRATA_EUNAUTHENTICATED,
                    "this server requires a token: send the metadata 'authorization: Bearer "
                    "TOKEN' (stratactl --token, $STRATA_TOKEN; docs/security.md)");
    pthread_rwlock_rdlock(&a->lk);
    const srv_token *t = srv_tokens_find(&a->tokens, sha);
    if (t) {
      role = t->role;
      memcpy(name, t->name, sizeof name);
    }
    pthread_rwlock_unlock(&a->lk);
    if (!t)
      return refuse(a, call, NULL, NULL, SRV_ROLE_NONE, STRATA_EUNAUTHENTICATED,
                    "the token is not valid on this server (not in its --auth-file)");
    if (!rule) {
      snprintf(msg, sizeof msg, "%s is not in the role table: no role may call it", path);
      return refuse(a, call, NULL, name, role, STRATA_EDENIED, msg);
    }
    /* A method whose request can ask for more (escalate) is judged in phase 2,
     * where the message can name the role the request really needs. */
    if (role < rule->role && !rule->escalate) {
      snprintf(msg, sizeof msg, "%s needs role %s; caller %s has role %s", path,
               srv_role_name(rule->role), name, srv_role_name(role));
      return refuse(a, call, NULL, name, role, STRATA_EDENIED, msg);
    }
  }
  if (!rule || (rule->role < SRV_ROLE_OPERATOR && !rule->escalate)) return 0;
  gcall *g = calloc(1, sizeof *g);
  if (!g) return strata_err(STRATA_ENOMEM, "auth: out of memory");
  g->a = a;
  g->rule = rule;
  g->role = role;
  if (a->file) {
    memcpy(g->name, name, sizeof name);
  } else { /* no tokens: the client certificate names the caller, if there is one */
    if (!rpc_call_peer_subject(call, g->name, sizeof g->name)) strcpy(g->name, "anonymous");
  }
  rpc_call_attach(call, g, gcall_end, free);
  return 0;
}
