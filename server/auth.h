/*
 * Who may call what: the token file (--auth-file), the three roles, the one
 * role table keyed by gRPC method path, and the gate rpc/server.c runs on
 * every call (rpc_gate_fn), which also writes the audit log (server/audit.h)
 * for privileged and operator calls and for refused ones. docs/security.md is
 * the user's guide; server/README.md ("Security") the design.
 */
#ifndef STRATA_SERVER_AUTH_H
#define STRATA_SERVER_AUTH_H

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc/server.h"
#include "server/audit.h"

typedef enum srv_role {
  SRV_ROLE_NONE = 0,
  SRV_ROLE_READER = 1, /* reads: Kv reads, Versions, Watch, Locks.List/Check, Ops reads, Health, Stats */
  SRV_ROLE_WRITER = 2, /* reader + commits, lock acquire/renew/release, op writes, ids, coordinator writer calls */
  SRV_ROLE_OPERATOR = 3, /* everything: privileged release, GC, checks; every call audited */
} srv_role;

const char *srv_role_name(srv_role r);
/* "reader" / "writer" / "operator" -> the role; SRV_ROLE_NONE otherwise. */
srv_role srv_role_parse(const char *s, size_t n);

/* One row of the role table. `escalate` (may be NULL) looks at the decoded
 * request: when it returns 1 the call needs operator whatever `role` says
 * (Locks.Release with privileged = true), and is audited. */
typedef struct srv_role_rule {
  const char *path; /* "/strata.v1.Kv/Get" */
  srv_role role;
  int (*escalate)(const ProtobufCMessage *req);
} srv_role_rule;

/* The role table (auth.c), terminated by a row with path NULL. It may name
 * methods this build does not serve (they are simply never called). */
extern const srv_role_rule srv_role_table[];
/* The row for `path`, or NULL when the table has none (with auth on such a
 * call is refused: PERMISSION_DENIED "not in the role table"). */
const srv_role_rule *srv_role_rule_of(const char *path);

/* --- the token file ---------------------------------------------------------- */

#define SRV_AUTH_MAX_NAME 64

typedef struct srv_token {
  char name[SRV_AUTH_MAX_NAME + 1];
  srv_role role;
  unsigned char sha256[32];
} srv_token;

typedef struct srv_tokens {
  size_t n;
  srv_token *t;
} srv_tokens;

/* Parses a token file's text: one "NAME ROLE SHA256" per line (whitespace
 * separated; SHA256 the token's SHA-256 in 64 lower-case hex digits), '#' to
 * the end of the line a comment, blank lines ignored. Returns 0 with *out
 * (free with srv_tokens_free), or STRATA_EINVALID with "FILE line N: what is
 * wrong" in strata_errmsg(). */
int srv_tokens_parse(const char *file, const char *text, size_t len, srv_tokens *out);
/* Reads and parses the file. */
int srv_tokens_load(const char *file, srv_tokens *out);
void srv_tokens_free(srv_tokens *t);
/* The token whose SHA-256 is sha[32], or NULL. Every entry is compared, each
 * in constant time, so the time taken does not say which bytes matched. */
const srv_token *srv_tokens_find(const srv_tokens *t, const unsigned char sha[32]);

/* --- the gate ------------------------------------------------------------------ */

typedef struct srv_auth srv_auth;

/* auth_file NULL: authentication off (every call runs; privileged and operator
 * calls are still audited, the caller named by its client certificate or
 * "anonymous"). `audit` is the log (not owned). Returns 0 or the load error. */
int srv_auth_open(const char *auth_file, srv_audit *audit, srv_auth **out);
void srv_auth_close(srv_auth *a);

/* Re-reads the auth file (SIGHUP). Calls in flight keep the table they
 * started with; a file that does not load leaves the old table in force. The
 * outcome is logged and audited. Returns 0 or the load error. */
int srv_auth_reload(srv_auth *a);

/* The gate (rpc_gate_fn) with ctx = the srv_auth. */
int srv_auth_gate(void *ctx, rpc_call *call, const ProtobufCMessage *req);

#endif
