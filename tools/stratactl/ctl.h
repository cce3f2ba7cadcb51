/*
 * stratactl's private header: the declarative command table (one ctl_cmd per
 * command drives parsing, dispatch and --help), the context every command
 * runs with, and the shared parsing and output helpers. Nothing outside
 * tools/stratactl includes it. See tools/README.md and docs/stratactl.md.
 */
#ifndef STRATA_TOOLS_STRATACTL_CTL_H
#define STRATA_TOOLS_STRATACTL_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "rpc/client.h"

/* Exit codes (docs/stratactl.md, "Exit codes"). */
enum {
  CTL_OK = 0,          /* success */
  CTL_REFUSED = 1,     /* the server refused or failed the operation */
  CTL_USAGE = 2,       /* bad arguments */
  CTL_UNREACHABLE = 3, /* no answer from the server */
};

#define CTL_DEFAULT_TIMEOUT_MS 10000
#define CTL_MAX_OPTS 8

/* One option of a command. nargs: 0 for a flag, else the values it takes. */
typedef struct ctl_opt {
  const char *name;    /* without the leading "--" */
  int nargs;
  const char *metavar; /* "N", "DURATION", "X Y Z" */
  const char *help;
} ctl_opt;

typedef struct ctl_ctx ctl_ctx;
typedef struct ctl_args ctl_args;
typedef struct ctl_cmd ctl_cmd;

struct ctl_cmd {
  const char *group;    /* "lock", "op", "kv", or NULL for a top-level command */
  const char *name;     /* "list" */
  const char *synopsis; /* the arguments after the command words */
  const char *summary;  /* one line */
  const char *details;  /* optional paragraph for --help */
  const char *examples; /* lines for --help */
  ctl_opt opts[CTL_MAX_OPTS];
  int min_pos, max_pos; /* positional arguments; max_pos < 0: no limit */
  int (*run)(ctl_ctx *x, const ctl_args *a);
};

/* The command table (table.c), terminated by an entry with run == NULL. */
extern const ctl_cmd ctl_cmds[];

/* Parsed arguments of one command; values borrow argv. */
struct ctl_args {
  const ctl_cmd *cmd;
  int set[CTL_MAX_OPTS];
  const char *val[CTL_MAX_OPTS][3];
  char **pos;
  int npos;
  int literal_from; /* pos[i] with i >= literal_from came after "--": taken as typed */
};

/* What a command runs with. The client is opened lazily by ctl_client. */
struct ctl_ctx {
  const char *addr; /* --addr, else NULL until ctl_client sets the client's */
  /* --tls-ca, --tls-cert, --tls-key, --token; NULL: the client library's
   * $STRATA_TLS_CA, $STRATA_TLS_CERT, $STRATA_TLS_KEY, $STRATA_TOKEN. */
  const char *tls_ca, *tls_cert, *tls_key, *token;
  int json;
  int64_t timeout_ms;
  const ctl_cmd *cmd;
  rpc_client *client;
};

/* --- args.c ---------------------------------------------------------------- */
/* The global options ("--addr", ... "--token"), accepted before, between and after
 * the command words: the one list the "did you mean" suggestions draw from. */
#define CTL_NGLOBAL 8
extern const char *const ctl_global_opts[CTL_NGLOBAL];
/* Whether option `name` was given; its i-th value (NULL when absent). */
int ctl_has(const ctl_args *a, const char *name);
const char *ctl_val(const ctl_args *a, const char *name, int i);
/* Parses argv (after the command words) into *a. Global options may appear
 * among them; they are stored into x. Returns CTL_OK, or CTL_USAGE (or
 * CTL_REFUSED when out of memory) after printing the error, or -1 when --help
 * was asked (help printed). */
int ctl_parse_args(ctl_ctx *x, const ctl_cmd *c, int argc, char **argv, ctl_args *a);
/* Consumes the global options at argv[*i...] (before or between the command
 * words). Returns CTL_OK or CTL_USAGE after printing the error. */
int ctl_global_args(ctl_ctx *x, int argc, char **argv, int *i);
/* A key argument s (see ctl_key_parse) into a malloc'd *out. Returns 0, or
 * after reporting: CTL_USAGE for a malformed key (`what` names the argument,
 * "KEY" or "--prefix"), CTL_REFUSED when out of memory. */
int ctl_key_arg(ctl_ctx *x, const ctl_args *a, const char *what, const char *s, uint8_t **out,
                size_t *len);

/* The candidate closest to w by edit distance (a swap of two neighbours
 * counts as one edit), or NULL when none is close enough to be a typo: at
 * most 1 edit for words up to 4 characters, 2 up to 8, then 3. */
const char *ctl_closest(const char *w, const char *const *cands, size_t n);

/* --- main.c ---------------------------------------------------------------- */
/* Prints "stratactl: MSG", the command's usage line and a --help hint to
 * stderr; returns CTL_USAGE. */
int ctl_usage(const ctl_cmd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints c's usage line (global options included) and the --help hint to
 * stderr: the tail of ctl_usage, for usage errors reported elsewhere. */
void ctl_usage_hint(const ctl_cmd *c);
/* The command words of c ("lock list", "health"); static storage per call. */
const char *ctl_cmd_words(const ctl_cmd *c);
/* Prints the full help of c to f. */
void ctl_help(FILE *f, const ctl_cmd *c);

/* --- out.c ----------------------------------------------------------------- */
/* The client for x->addr (opened on first use; then x->addr is the address
 * it talks to). Exits 1 when out of memory. */
rpc_client *ctl_client(ctl_ctx *x);
/* Call options with x's timeout plus extra_ms. */
rpc_callopts ctl_callopts(const ctl_ctx *x, int64_t extra_ms);

/* Long streams (kv ls, kv diff's Kv.Watch, op list, op stuck) have no overall
 * deadline: --timeout bounds the wait for each message instead. Before opening
 * the stream call ctl_stream_begin (the server must answer a Health check
 * within --timeout; returns 0 or that call's error, and sets *co to no
 * deadline), then ctl_idle_start the stream, ctl_idle_tick after each
 * message, and pass the stream's final rc through ctl_idle_stop, which turns
 * the cancellation of a stream that was silent for --timeout into
 * STRATA_EDEADLINE with a message saying so. */
typedef struct ctl_idle ctl_idle;
int ctl_stream_begin(ctl_ctx *x, rpc_callopts *co);
ctl_idle *ctl_idle_start(ctl_ctx *x, rpc_cstream *st, const char *what);
void ctl_idle_tick(ctl_idle *w);
int ctl_idle_stop(ctl_idle *w, int rc);
/* Progress on stderr when it is a terminal and the output is not --json: a
 * line rewritten in place at most every 200 ms; ctl_progress_done clears it. */
void ctl_progress(const ctl_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ctl_progress_done(const ctl_ctx *x);
/* Reports a failed call (`what` names it, e.g. "Locks.Acquire") on stderr and,
 * with --json, as {"error": ...} on stdout; returns the exit code for rc.
 * The message is strata_errmsg(): whoever returned rc must have recorded it. */
int ctl_rpc_fail(ctl_ctx *x, int rc, const char *what);
/* Reports a refusal (an expected outcome such as "not found") the same way;
 * returns CTL_REFUSED. */
int ctl_refuse(ctl_ctx *x, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Reports "COMMAND: out of memory" like a refusal; returns CTL_REFUSED. */
int ctl_oom(ctl_ctx *x);
/* Prints doc (stolen) as indented JSON and a newline on stdout. */
void ctl_json_print(json_t *doc);
/* JSON helpers: an unsigned 64-bit number (a string above INT64_MAX), a
 * version object, a key (display form + hex), an ISO time + ns pair. */
json_t *ctl_json_u64(uint64_t v);
json_t *ctl_json_version(uint64_t generation, int64_t commit_time_ns);
void ctl_json_set_key(json_t *obj, const char *field, const uint8_t *k, size_t len);
void ctl_json_set_time(json_t *obj, const char *field, int64_t ns);
/* A row key's decoded form: {"type": "chunk", "chunk_id": N, "text": ...},
 * {"type": "block", "x": .., "y": .., "z": .., "text": ...}, or null. */
json_t *ctl_json_decoded(const uint8_t *k, size_t len);

/* A text table: rows of cells, printed with aligned columns. */
typedef struct ctl_table {
  size_t ncols, nrows, cap;
  char **cells; /* nrows * ncols, owned */
} ctl_table;
void ctl_table_init(ctl_table *t, size_t ncols, const char *const *header);
/* Adds a row; the cells are copied. */
void ctl_table_add(ctl_table *t, const char *const *cells);
void ctl_table_print(const ctl_table *t, FILE *f);
void ctl_table_free(ctl_table *t);

/* --- fmt.c ----------------------------------------------------------------- */
/* Keys: printable (0x21..0x7e, not starting with "0x") as they are, any other
 * as 0x + lower-case hex. Returns a malloc'd string (NULL on out-of-memory). */
char *ctl_key_str(const uint8_t *k, size_t len);
/* Standard base64 with padding; malloc'd. */
char *ctl_base64(const uint8_t *p, size_t len);
/* Lower-case hex with a 0x prefix; malloc'd. */
char *ctl_hex_str(const uint8_t *k, size_t len);
/* Parses a key argument (0x... hex, else the bytes as typed) into a malloc'd
 * buffer. Returns 0, -1 for a malformed key or -2 when out of memory, with a
 * message in err. */
int ctl_key_parse(const char *s, uint8_t **out, size_t *len, char *err, size_t errcap);

/* Durations: "500ms", "5s", "2m", "1h30m", "1.5s", "0". Returns 0 or -1. */
int ctl_dur_parse(const char *s, int64_t *ms);
/* "950ms", "29.5s", "4m12s", "2h03m", "3d04h" into buf. */
const char *ctl_dur_str(int64_t ms, char *buf, size_t cap);
/* Unsigned decimal integer in [lo, hi]. Returns 0 or -1. */
int ctl_u64_parse(const char *s, uint64_t lo, uint64_t hi, uint64_t *out);
/* An id: unsigned 64-bit, decimal or 0x-hex (1..16 hex digits). Returns 0 or -1. */
int ctl_id_parse(const char *s, uint64_t *out);

/* UTC ISO-8601 "2026-11-21T10:00:00.123Z" with `digits` (0, 3 or 9) of
 * fractional seconds; "-" for 0. */
const char *ctl_time_str(int64_t ns, int digits, char *buf, size_t cap);
/* An RFC 3339 time, "2026-11-21T10:00:00[.fraction]" then Z or +HH:MM / -HH:MM, every
 * field in range (no 2026-02-30, no :60), up to 2262 (int64 ns): ns since the epoch.
 * Returns 0 or -1. */
int ctl_time_parse(const char *s, int64_t *ns);
/* Now on the local wall clock, ns since the epoch. */
int64_t ctl_now_ns(void);

/* What a pin looks like, for messages and help (one definition). */
#define CTL_PIN_FORMS                                                                     \
  "v<generation> (v12; v0 is the empty store before the first commit) or an RFC 3339 time " \
  "(2026-11-21T10:00:00Z, 2026-11-21T11:00:00.5+01:00)"

/* A version pin: v<generation> or an RFC 3339 time (Z or a +HH:MM offset). */
typedef struct ctl_pin {
  int kind; /* 0 latest, 1 generation, 2 time */
  uint64_t generation;
  int64_t time_ns;
} ctl_pin;
int ctl_pin_parse(const char *s, ctl_pin *p);
/* Splits "KEY@PIN" at the last '@'; *key_end is the length of the key part.
 * No '@': p->kind = 0, *key_end = strlen(s), returns 0. Returns -1 when the
 * text after the last '@' is not a pin (a usage error: a key containing '@'
 * is given in hex or after "--"). */
int ctl_split_pin(const char *s, size_t *key_end, ctl_pin *p);
/* Fills a protobuf pin from p (m must outlive the request). NULL for latest. */
Strata__V1__VersionPin *ctl_pin_msg(const ctl_pin *p, Strata__V1__VersionPin *m);
/* (args.c) */
/* Positional argument i as "KEY[@PIN]" (kv get, kv ls): a malloc'd key and a
 * pin. After "--" the argument is all key. pinnable 0 (kv put, kv rm): a '@'
 * is a usage error too, so that what kv put wrote kv get reads back. empty_ok:
 * an empty key part is fine (kv ls). Returns 0, CTL_USAGE or CTL_REFUSED
 * (out of memory) after reporting. */
int ctl_key_pin_arg(ctl_ctx *x, const ctl_args *a, int i, int pinnable, int empty_ok,
                    uint8_t **key, size_t *len, ctl_pin *pin);

/* A PyChunkedGraph hash-prefixed row key decoded: "chunk 123" or
 * "block 1,2,3" into buf, or NULL when the key is not one. Sets *type to
 * "chunk"/"block" and fills ids (1 or 3 values). */
const char *ctl_row_decode(const uint8_t *k, size_t len, char *buf, size_t cap,
                           const char **type, uint64_t ids[3]);

/* --- commands (cmd_*.c) ------------------------------------------------------ */
int ctl_lock_list(ctl_ctx *x, const ctl_args *a);
int ctl_lock_acquire(ctl_ctx *x, const ctl_args *a);
int ctl_lock_renew(ctl_ctx *x, const ctl_args *a);
int ctl_lock_release(ctl_ctx *x, const ctl_args *a);
int ctl_lock_key(ctl_ctx *x, const ctl_args *a);
int ctl_op_show(ctl_ctx *x, const ctl_args *a);
int ctl_op_list(ctl_ctx *x, const ctl_args *a);
int ctl_op_stuck(ctl_ctx *x, const ctl_args *a);
int ctl_op_replay(ctl_ctx *x, const ctl_args *a);
int ctl_downsample_status(ctl_ctx *x, const ctl_args *a);
int ctl_op_set_status(ctl_ctx *x, const ctl_args *a);
int ctl_kv_get(ctl_ctx *x, const ctl_args *a);
int ctl_kv_put(ctl_ctx *x, const ctl_args *a);
int ctl_kv_rm(ctl_ctx *x, const ctl_args *a);
int ctl_kv_ls(ctl_ctx *x, const ctl_args *a);
int ctl_kv_versions(ctl_ctx *x, const ctl_args *a);
int ctl_kv_diff(ctl_ctx *x, const ctl_args *a);
int ctl_health(ctl_ctx *x, const ctl_args *a);
int ctl_stats(ctl_ctx *x, const ctl_args *a);
/* cmd_auth.c: commands on files, no server call. */
int ctl_auth_hash(ctl_ctx *x, const ctl_args *a);
int ctl_audit(ctl_ctx *x, const ctl_args *a);
int ctl_writers(ctl_ctx *x, const ctl_args *a);
int ctl_gc(ctl_ctx *x, const ctl_args *a);
/* cmd_retain.c */
int ctl_retention_show(ctl_ctx *x, const ctl_args *a);
int ctl_retention_set(ctl_ctx *x, const ctl_args *a);
int ctl_retention_hold(ctl_ctx *x, const ctl_args *a);
int ctl_retention_release(ctl_ctx *x, const ctl_args *a);
int ctl_gc_status(ctl_ctx *x);
int ctl_stats_watch(ctl_ctx *x, const ctl_args *a);
void ctl_print_range(const Strata__V1__RetainedRange *g);
json_t *ctl_range_json(const Strata__V1__RetainedRange *g);
Strata__V1__StatsResponse *ctl_stats_for_range(ctl_ctx *x);
int ctl_check(ctl_ctx *x, const ctl_args *a);

#endif
