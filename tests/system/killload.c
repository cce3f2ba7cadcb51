/*
 * kill -9 of the real strata-server under mixed load (issue 9, point 6). The
 * driver runs client processes that commit (small, out-of-line, multi-key,
 * conditional, fenced), acquire and release locks of both kinds, create ops and
 * move them through statuses, and allocate ids; each client appends every
 * acknowledged effect (and every call whose outcome it could not learn) to its
 * own history file. The driver SIGKILLs the server at a random moment, restarts
 * it on the same data directory and, before the load resumes, checks that every
 * acknowledged effect is there:
 *
 *  - every key's value at latest is its last acknowledged value, or the value of
 *    a later commit whose answer was lost; every acknowledged commit's values
 *    read back at its own generation (time travel);
 *  - every lock row is held as acknowledged (temporal ones unless expired on the
 *    server's clock), op statuses are as acknowledged, fencing tokens granted
 *    after a restart exceed every token granted before it, id ranges never
 *    overlap;
 *  - Kv.Versions lists gapless generations with strictly increasing commit
 *    times, each acknowledged commit at its generation and time;
 *  - every few cycles, with the server down, and at the end, the store itself
 *    is checked offline (st_open read-only): every generation's tree is walked,
 *    values read at sampled generations and at the latest.
 *
 * Registers: each key, lock row and op is a register whose allowed values are
 * its last acknowledged value plus any later unknown ones. A client resyncs its
 * uncertain registers at the start of a cycle and logs what it saw (O lines),
 * which must itself be allowed and then becomes the known value.
 *
 *   killload                        the driver (env below)
 *   killload client I SEED          one client: commands on stdin, answers on stdout
 *
 * Env: STRATA_SERVER_BIN (required), STRATA_SEED, KILLLOAD_CYCLES (50),
 * KILLLOAD_CLIENTS (4), KILLLOAD_CHECK_EVERY (10), KILLLOAD_SOAK=1 prints SOAK
 * lines.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "rpc/client.h"
#include "storage/store.h"
#include "tests/rpc/srv_harness.h"
#include "tests/system/sys_common.h"

#define NSMALL 24        /* small keys per client (inline values) */
#define NLARGE 4         /* large keys per client (out-of-line values) */
#define NKEYS (NSMALL + NLARGE)
#define NLOCKROWS 8      /* lock rows per client */
#define MAXOPS 4096      /* ops a client tracks */
#define MAX_CLIENTS 16
#define VAL_MAX 65536
#define TT_PER_CYCLE 200 /* newest acknowledged commits read back per verification */

/* --- values ------------------------------------------------------------------- */

/* The bytes of value `seq` of `key`, `len` long: a readable prefix naming them,
 * then filler derived from both, so a verifier rebuilds the exact bytes. */
static size_t value_make(uint8_t *out, const char *key, uint64_t seq, size_t len) {
  int n = snprintf((char *)out, len + 1 > 96 ? 96 : len + 1, "%s:%llu:", key,
                   (unsigned long long)seq);
  size_t p = (size_t)n < len ? (size_t)n : len;
  sys_rng r = {seq * 1000003u + (uint64_t)strlen(key) * 7919u + (uint64_t)key[strlen(key) - 1]};
  for (; p < len; p++) out[p] = (uint8_t)('a' + sys_below(&r, 26));
  return len;
}

/* "seq/len" for a value that matches its generator exactly, "BAD" otherwise. */
static void value_name(const char *key, const uint8_t *v, size_t len, char *out, size_t n) {
  char pfx[128];
  size_t kl = strlen(key);
  unsigned long long seq;
  static uint8_t buf[VAL_MAX];
  if (len > VAL_MAX || len < kl + 3 || memcmp(v, key, kl) != 0 || v[kl] != ':') {
    snprintf(out, n, "BAD");
    return;
  }
  size_t m = len - kl - 1 < sizeof pfx - 1 ? len - kl - 1 : sizeof pfx - 1;
  memcpy(pfx, v + kl + 1, m);
  pfx[m] = 0;
  if (sscanf(pfx, "%llu:", &seq) != 1 || value_make(buf, key, seq, len) != len ||
      memcmp(buf, v, len) != 0) {
    snprintf(out, n, "BAD");
    return;
  }
  snprintf(out, n, "%llu/%zu", seq, len);
}

/* --- the client ---------------------------------------------------------------- */

typedef struct ckey {
  char name[32];
  int large;
  int certain;  /* the value and gen below are what the server has */
  int exists;
  uint64_t gen; /* the key is known unchanged since this generation */
} ckey;

typedef struct crow {
  char name[32];
  int certain;
  uint64_t op; /* 0: free */
  int indefinite;
  int64_t expires;
} crow;

typedef struct cop {
  uint64_t id;
  int status; /* wire number; 0 = unknown */
} cop;

typedef struct client {
  int idx, log;
  sys_rng rng;
  rpc_client *c;
  uint64_t seq; /* value sequence */
  ckey keys[NKEYS];
  crow rows[NLOCKROWS];
  cop ops[MAXOPS];
  size_t nops;
  char inbuf[512];
  size_t inlen;
  uint64_t tmp_ops; /* private op ids for temporal locks */
} client;

/* A call failed: 1 for a definite refusal of the kind `expect` (nothing applied),
 * 0 for an outcome that cannot be known (the server died). */
static int definite(int rc, int expect) { return rc == expect; }

/* A call's answer was lost. Only a server that went away may do that; any other
 * error is a bug (of the server or of this client) and ends the run. */
static void lost(const client *cl, int rc, const char *what) {
  if (rc == ENOTCONN || rc == STRATA_ECANCELLED) return;
  fprintf(stderr, "client %d: %s: unexpected %s: %s\n", cl->idx, what, strata_errname(rc),
          strata_errmsg());
  exit(1);
}

/* Reads one command line from stdin (blocking when `wait`); 1 with the line, 0
 * when none is there yet, -1 at end of input. */
static int read_cmd(client *cl, char *line, size_t n, int wait) {
  for (;;) {
    char *nl = memchr(cl->inbuf, '\n', cl->inlen);
    if (nl) {
      size_t l = (size_t)(nl - cl->inbuf);
      snprintf(line, n, "%.*s", (int)l, cl->inbuf);
      memmove(cl->inbuf, nl + 1, cl->inlen - l - 1);
      cl->inlen -= l + 1;
      return 1;
    }
    struct pollfd p = {0, POLLIN, 0};
    if (!wait && poll(&p, 1, 0) <= 0) return 0;
    ssize_t r = read(0, cl->inbuf + cl->inlen, sizeof cl->inbuf - cl->inlen);
    if (r <= 0) return -1;
    cl->inlen += (size_t)r;
  }
}

static ProtobufCBinaryData bin(const char *s) {
  return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* One commit of 1..4 keys: puts (small or large) and deletes, optionally with
 * conditions on certain keys and a fence on a held row. 0, or -1 when the
 * outcome is unknown (the client then idles until the next cycle). */
static int op_commit(client *cl) {
  static uint8_t vals[4][VAL_MAX];
  size_t k = 1 + sys_below(&cl->rng, 4);
  int pick[4];
  for (size_t i = 0; i < k;) {
    int x = (int)sys_below(&cl->rng, NKEYS), dup = 0;
    for (size_t j = 0; j < i; j++) dup |= pick[j] == x;
    if (!dup) pick[i++] = x;
  }
  Strata__V1__Put puts[4], *pp[4];
  ProtobufCBinaryData dels[4];
  Strata__V1__Condition conds[4], *cp[4];
  size_t np = 0, nd = 0, nc = 0;
  char desc[4][48], rec[1024];
  int conditional = sys_below(&cl->rng, 3) == 0;
  for (size_t i = 0; i < k; i++) {
    ckey *key = &cl->keys[pick[i]];
    if (sys_below(&cl->rng, 8) == 0) {
      dels[nd++] = bin(key->name);
      snprintf(desc[i], sizeof desc[i], "%.31s=D", key->name);
    } else {
      size_t len = key->large ? 200 + sys_below(&cl->rng, 8000) : 30 + sys_below(&cl->rng, 40);
      uint64_t seq = ++cl->seq;
      value_make(vals[np], key->name, seq, len);
      puts[np] = (Strata__V1__Put)STRATA__V1__PUT__INIT;
      puts[np].key = bin(key->name);
      puts[np].value = (ProtobufCBinaryData){len, vals[np]};
      pp[np] = &puts[np];
      np++;
      snprintf(desc[i], sizeof desc[i], "%.31s=%llu/%zu", key->name, (unsigned long long)seq, len);
    }
    if (conditional && key->certain) {
      conds[nc] = (Strata__V1__Condition)STRATA__V1__CONDITION__INIT;
      conds[nc].key = bin(key->name);
      if (key->exists) {
        conds[nc].kind = STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE;
        conds[nc].generation = key->gen;
      } else {
        conds[nc].kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
      }
      cp[nc] = &conds[nc];
      nc++;
    }
  }
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = np, q.puts = pp, q.n_deletes = nd, q.deletes = dels, q.n_conditions = nc,
  q.conditions = cp;
  /* A fence on a row this client holds with time to spare. */
  Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
  ProtobufCBinaryData frow;
  int64_t now = sys_now_ns();
  for (int i = 0; i < NLOCKROWS && sys_below(&cl->rng, 2); i++) {
    crow *r = &cl->rows[i];
    if (r->certain && r->op && (r->indefinite || r->expires > now + 2000000000LL)) {
      frow = bin(r->name);
      f.op_id = r->op, f.n_rows = 1, f.rows = &frow;
      q.fence = &f;
      break;
    }
  }
  Strata__V1__CommitResponse *resp = NULL;
  int rc = rpc_kv_commit(cl->c, NULL, &q, &resp);
  int n = 0;
  if (rc == 0) {
    n = snprintf(rec, sizeof rec, "C %llu %lld %zu", (unsigned long long)resp->version->generation,
                 (long long)resp->version->commit_time_ns, k);
    for (size_t i = 0; i < k; i++) {
      ckey *key = &cl->keys[pick[i]];
      key->certain = 1;
      key->exists = strstr(desc[i], "=D") == NULL;
      key->gen = resp->version->generation;
    }
  } else if (definite(rc, q.fence ? STRATA_EFENCED : 1)) {
    rpc_free(resp);
    return 0; /* a lock that expired while the server was down */
  } else if (rc == STRATA_ECONDITION) {
    fprintf(stderr, "client %d: a condition on keys only it writes failed: %s\n", cl->idx,
            strata_errmsg());
    sys_logf(cl->log, "X condition %s", strata_errmsg());
    exit(1);
  } else {
    lost(cl, rc, "Kv.Commit");
    n = snprintf(rec, sizeof rec, "U %zu", k);
    for (size_t i = 0; i < k; i++) cl->keys[pick[i]].certain = 0;
  }
  for (size_t i = 0; i < k; i++) n += snprintf(rec + n, sizeof rec - (size_t)n, " %s", desc[i]);
  sys_logf(cl->log, "%s", rec);
  rpc_free(resp);
  return rc ? -1 : 0;
}

/* Ops.Create; returns the new id, 0 when the outcome is unknown. */
static uint64_t op_create(client *cl) {
  Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
  q.user = "killload";
  q.kind = "edit";
  Strata__V1__CreateOpResponse *r = NULL;
  int rc = rpc_ops_create(cl->c, NULL, &q, &r);
  if (rc) {
    lost(cl, rc, "Ops.Create");
    sys_logf(cl->log, "OCU");
    return 0;
  }
  uint64_t id = r->op->op_id;
  rpc_free(r);
  if (cl->nops < MAXOPS) cl->ops[cl->nops++] = (cop){id, 1};
  sys_logf(cl->log, "OC %llu", (unsigned long long)id);
  return id;
}

static int op_status(client *cl) {
  if (!cl->nops) return op_create(cl) ? 0 : -1;
  cop *o = &cl->ops[sys_below(&cl->rng, cl->nops)];
  if (o->status != 1 && o->status != 2) return op_create(cl) ? 0 : -1;
  int next = o->status == 1 ? 2 : (sys_below(&cl->rng, 2) ? 3 : 4);
  Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
  q.op_id = o->id;
  q.status = next;
  Strata__V1__SetStatusResponse *r = NULL;
  int rc = rpc_ops_set_status(cl->c, NULL, &q, &r);
  rpc_free(r);
  if (rc) lost(cl, rc, "Ops.SetStatus");
  sys_logf(cl->log, "%s %llu %d", rc ? "OSU" : "OS", (unsigned long long)o->id, next);
  o->status = rc ? 0 : next;
  return rc ? -1 : 0;
}

static int op_lock(client *cl) {
  crow *r = &cl->rows[sys_below(&cl->rng, NLOCKROWS)];
  if (!r->certain) return 0;
  int64_t now = sys_now_ns();
  int live = r->op && (r->indefinite || r->expires > now);
  if (live) { /* release it */
    Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
    ProtobufCBinaryData row = bin(r->name);
    q.op_id = r->op, q.n_rows = 1, q.rows = &row;
    Strata__V1__ReleaseResponse *resp = NULL;
    int rc = rpc_locks_release(cl->c, NULL, &q, &resp);
    rpc_free(resp);
    if (rc) lost(cl, rc, "Locks.Release");
    sys_logf(cl->log, "%s %llu %s", rc ? "RU" : "R", (unsigned long long)r->op, r->name);
    if (rc) r->certain = 0;
    else r->op = 0;
    return rc ? -1 : 0;
  }
  int indefinite = sys_below(&cl->rng, 3) == 0;
  uint64_t op;
  if (indefinite) {
    if (!(op = op_create(cl))) return -1;
  } else {
    op = ((uint64_t)(cl->idx + 1) << 40) | ++cl->tmp_ops;
  }
  /* Some TTLs run out within a cycle, some outlive several restarts. */
  uint64_t ttl = sys_below(&cl->rng, 2) ? 100 + sys_below(&cl->rng, 900) : 5000 + sys_below(&cl->rng, 30000);
  Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
  ProtobufCBinaryData row = bin(r->name);
  q.op_id = op, q.n_rows = 1, q.rows = &row;
  q.kind = indefinite ? STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE : STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  q.ttl_ms = indefinite ? 0 : ttl;
  Strata__V1__AcquireResponse *resp = NULL;
  int rc = rpc_locks_acquire(cl->c, NULL, &q, &resp);
  if (rc) {
    lost(cl, rc, "Locks.Acquire");
    sys_logf(cl->log, "AU %llu %s", (unsigned long long)op, r->name);
    r->certain = 0;
    return -1;
  }
  if (resp->acquired) {
    r->op = op, r->indefinite = indefinite;
    r->expires = indefinite ? 0 : resp->expires_at_ns;
    sys_logf(cl->log, "A %llu %c %llu %lld %s", (unsigned long long)op, indefinite ? 'I' : 'T',
             (unsigned long long)resp->fencing_token, (long long)r->expires, r->name);
  }
  /* Refused: an expired lock of ours the server still counted, or a clock edge. */
  rpc_free(resp);
  return 0;
}

static int op_ids(client *cl) {
  char ctr[32];
  snprintf(ctr, sizeof ctr, sys_below(&cl->rng, 2) ? "ids/shared" : "ids/c%d", cl->idx);
  Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
  q.counter = ctr;
  q.count = 1 + sys_below(&cl->rng, 1000);
  Strata__V1__AllocateIdsResponse *r = NULL;
  int rc = rpc_ops_allocate_ids(cl->c, NULL, &q, &r);
  if (rc) {
    lost(cl, rc, "Ops.AllocateIds");
    return -1;
  }
  sys_logf(cl->log, "I %s %llu %llu", ctr, (unsigned long long)r->first,
           (unsigned long long)r->count);
  rpc_free(r);
  return 0;
}

/* Learns the server's state of every uncertain register and logs it (O lines). */
static int resync(client *cl) {
  for (int i = 0; i < NKEYS; i++) {
    ckey *k = &cl->keys[i];
    if (k->certain) continue;
    Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
    q.key = bin(k->name);
    Strata__V1__GetResponse *g = NULL;
    int crc = rpc_kv_get(cl->c, NULL, &q, &g);
    if (crc) {
      lost(cl, crc, "Kv.Get");
      return -1;
    }
    char v[64] = "D";
    if (g->found) value_name(k->name, g->value.data, g->value.len, v, sizeof v);
    k->certain = 1, k->exists = g->found, k->gen = g->version->generation;
    sys_logf(cl->log, "O %s %s 0 0", k->name, v);
    rpc_free(g);
  }
  for (int i = 0; i < NLOCKROWS; i++) {
    crow *r = &cl->rows[i];
    if (r->certain) continue;
    Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
    q.prefix = bin(r->name);
    rpc_cstream *st;
    int crc = rpc_locks_list(cl->c, NULL, &q, &st);
    if (crc) {
      lost(cl, crc, "Locks.List");
      return -1;
    }
    Strata__V1__ListLocksResponse *m;
    int rc;
    r->op = 0;
    char v[64] = "-";
    while ((rc = rpc_locks_list_next(st, &m)) == 1) {
      for (size_t j = 0; j < m->n_locks; j++) {
        Strata__V1__LockInfo *l = m->locks[j];
        if (l->row.len != strlen(r->name) || memcmp(l->row.data, r->name, l->row.len)) continue;
        r->op = l->op_id;
        r->indefinite = l->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
        r->expires = l->expires_at_ns;
        snprintf(v, sizeof v, "%llu/%llu", (unsigned long long)l->op_id,
                 (unsigned long long)l->fencing_token);
      }
      rpc_free(m);
    }
    rpc_cstream_close(st);
    /* See check_locks: expiry is judged at a time after the listing. */
    int64_t now = sys_now_ns();
    if (rc) {
      lost(cl, rc, "Locks.List");
      return -1;
    }
    r->certain = 1;
    sys_logf(cl->log, "O %s %s %lld %lld", r->name, v, (long long)(r->op ? r->expires : 0),
             (long long)now);
  }
  for (size_t i = 0; i < cl->nops; i++) {
    cop *o = &cl->ops[i];
    if (o->status) continue;
    Strata__V1__GetOpRequest q = STRATA__V1__GET_OP_REQUEST__INIT;
    q.op_id = o->id;
    Strata__V1__GetOpResponse *g = NULL;
    int crc = rpc_ops_get(cl->c, NULL, &q, &g);
    if (crc) {
      lost(cl, crc, "Ops.Get");
      return -1;
    }
    o->status = g->op->status;
    sys_logf(cl->log, "O op%llu %d 0 0", (unsigned long long)o->id, o->status);
    rpc_free(g);
  }
  return 0;
}

/* Runs load until STOP arrives or a call's outcome is unknown (the server is
 * gone); then waits for STOP. */
static void run_cycle(client *cl, const char *addr) {
  rpc_client_opts o = {.addr = addr, .timeout_ms = 120000};
  if (rpc_client_open(&o, &cl->c)) {
    fprintf(stderr, "client %d: rpc_client_open failed\n", cl->idx);
    exit(1);
  }
  char line[256];
  int stopped = 0, rc = resync(cl);
  while (!rc && !(stopped = read_cmd(cl, line, sizeof line, 0) == 1)) {
    uint64_t x = sys_below(&cl->rng, 100);
    rc = x < 55 ? op_commit(cl) : x < 75 ? op_lock(cl) : x < 90 ? op_status(cl) : op_ids(cl);
  }
  if (!stopped && read_cmd(cl, line, sizeof line, 1) != 1) exit(1);
  rpc_client_close(cl->c);
  cl->c = NULL;
  if (write(1, "IDLE\n", 5) != 5) exit(1);
}

static int client_main(int argc, char **argv) {
  if (argc != 5) return 2;
  static client cl;
  cl.idx = atoi(argv[2]);
  cl.rng.s = strtoull(argv[3], NULL, 10) ^ ((uint64_t)(cl.idx + 1) * 0x9e3779b97f4a7c15ull);
  cl.log = sys_log_open(argv[4]);
  for (int i = 0; i < NKEYS; i++) {
    ckey *k = &cl.keys[i];
    snprintf(k->name, sizeof k->name, "k%d/%c%02d", cl.idx, i < NSMALL ? 's' : 'L', i);
    k->large = i >= NSMALL;
    k->certain = 1;
  }
  for (int i = 0; i < NLOCKROWS; i++) {
    snprintf(cl.rows[i].name, sizeof cl.rows[i].name, "r%d/%d", cl.idx, i);
    cl.rows[i].certain = 1;
  }
  char line[256];
  while (read_cmd(&cl, line, sizeof line, 1) == 1) {
    if (strncmp(line, "GO ", 3) == 0) run_cycle(&cl, line + 3);
    else if (strcmp(line, "QUIT") == 0) return 0;
  }
  return 1;
}

/* --- the driver's model -------------------------------------------------------- */

#define MAXUNK 8
typedef struct reg {
  char name[40];
  char val[48]; /* last acknowledged (or observed) value */
  int64_t exp;  /* temporal lock: expiry (ns); 0 otherwise */
  char unk[MAXUNK][48];
  int64_t unk_exp[MAXUNK];
  int nunk;
  struct reg *next;
} reg;

#define NBUCKETS 4096
typedef struct model {
  reg *b[NBUCKETS];
  uint64_t nregs;
} model;

static reg **reg_slot(model *m, const char *name) {
  uint64_t h = 1469598103934665603ull;
  for (const char *p = name; *p; p++) h = (h ^ (uint8_t)*p) * 1099511628211ull;
  return &m->b[h % NBUCKETS];
}

static reg *reg_find(model *m, const char *name) {
  for (reg *r = *reg_slot(m, name); r; r = r->next)
    if (strcmp(r->name, name) == 0) return r;
  return NULL;
}

static reg *reg_get(model *m, const char *name, const char *init) {
  reg *r = reg_find(m, name);
  if (r) return r;
  reg **slot = reg_slot(m, name);
  r = calloc(1, sizeof *r);
  snprintf(r->name, sizeof r->name, "%s", name);
  snprintf(r->val, sizeof r->val, "%s", init);
  r->next = *slot;
  *slot = r;
  m->nregs++;
  return r;
}

static void reg_ack(reg *r, const char *v, int64_t exp) {
  snprintf(r->val, sizeof r->val, "%s", v);
  r->exp = exp;
  r->nunk = 0;
}

static void reg_unk(reg *r, const char *v, int64_t exp) {
  if (r->nunk == MAXUNK) return; /* cannot happen: a client idles after one unknown */
  snprintf(r->unk[r->nunk], sizeof r->unk[0], "%s", v);
  r->unk_exp[r->nunk++] = exp;
}

/* A lock value as it stands at server time `now`: an expired temporal lock is free. */
static int lock_same(const char *want, int64_t exp, const char *got, int64_t now) {
  if (exp && exp <= now) want = "-";
  size_t n = strlen(want);
  if (n >= 2 && strcmp(want + n - 2, "/*") == 0) /* unknown acquire: any token of that op */
    return strncmp(got, want, n - 1) == 0 || strcmp(got, "-") == 0;
  return strcmp(want, got) == 0;
}

/* Whether the server's value `got` is allowed for r. `now` != 0: r is a lock row. */
static int reg_allows(const reg *r, const char *got, int64_t now) {
  if (now ? lock_same(r->val, r->exp, got, now) : strcmp(r->val, got) == 0) return 1;
  for (int i = 0; i < r->nunk; i++)
    if (now ? lock_same(r->unk[i], r->unk_exp[i], got, now) : strcmp(r->unk[i], got) == 0) return 1;
  return 0;
}

typedef struct ack_commit {
  uint64_t gen;
  int64_t ctime;
  int client;
  char kv[4][48]; /* key=value */
  int n;
} ack_commit;

typedef struct idrange {
  char ctr[24];
  uint64_t first, count;
} idrange;

typedef struct drv {
  model m;
  int nclients;
  char files[MAX_CLIENTS][600];
  size_t off[MAX_CLIENTS];
  ack_commit *acks; /* every acknowledged commit */
  size_t nacks, capacks, checked_acks;
  idrange *ids;
  size_t nids, capids;
  uint64_t tok_before;    /* the largest token acknowledged in earlier cycles */
  uint64_t tok_cycle;     /* the largest this cycle */
  uint64_t tok_last[MAX_CLIENTS];
  uint64_t max_gen;
  uint64_t lost_creates; /* Ops.Create calls whose outcome is unknown */
  sys_rng rng;           /* picks the older commits read back */
  int64_t *times;        /* commit time of each generation Kv.Versions listed */
  uint64_t ntimes, vers_last;
  uint64_t offline_last; /* generations up to this one were walked offline */
  /* figures */
  uint64_t effects, verified, unknowns, violations, timetravel, offline_checks;
} drv;

static void violation(drv *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void violation(drv *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (d->violations++ < 20) {
    fprintf(stderr, "VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
  }
  va_end(ap);
}

/* Applies one client's new history lines to the model. */
static void apply_line(drv *d, int c, char *line) {
  char *save, *tok = strtok_r(line, " ", &save);
  if (!tok) return;
  char *a[16];
  int n = 0;
  while (n < 16 && (a[n] = strtok_r(NULL, " ", &save))) n++;
  if (!strcmp(tok, "C") || !strcmp(tok, "U")) {
    int acked = tok[0] == 'C';
    int first = acked ? 3 : 1;
    ack_commit ac = {0};
    if (acked) {
      ac.gen = strtoull(a[0], NULL, 10), ac.ctime = strtoll(a[1], NULL, 10), ac.client = c;
      if (ac.gen > d->max_gen) d->max_gen = ac.gen;
      d->effects++;
    } else {
      d->unknowns++;
    }
    for (int i = first; i < n; i++) {
      char *eq = strchr(a[i], '=');
      *eq = 0;
      reg *r = reg_get(&d->m, a[i], "D");
      if (acked) {
        reg_ack(r, eq + 1, 0);
        snprintf(ac.kv[ac.n++], sizeof ac.kv[0], "%s=%s", a[i], eq + 1);
      } else {
        reg_unk(r, eq + 1, 0);
      }
    }
    if (acked) {
      if (d->nacks == d->capacks)
        d->acks = realloc(d->acks, (d->capacks = d->capacks ? 2 * d->capacks : 4096) * sizeof *d->acks);
      d->acks[d->nacks++] = ac;
    }
  } else if (!strcmp(tok, "A")) { /* op kind token expires row */
    uint64_t t = strtoull(a[2], NULL, 10);
    char v[48];
    snprintf(v, sizeof v, "%s/%s", a[0], a[2]);
    reg_ack(reg_get(&d->m, a[4], "-"), v, a[1][0] == 'T' ? strtoll(a[3], NULL, 10) : 0);
    if (t <= d->tok_before)
      violation(d, "client %d: token %llu granted after a restart is not above %llu granted before",
                c, (unsigned long long)t, (unsigned long long)d->tok_before);
    if (t <= d->tok_last[c])
      violation(d, "client %d: token %llu not above its previous %llu", c, (unsigned long long)t,
                (unsigned long long)d->tok_last[c]);
    d->tok_last[c] = t;
    if (t > d->tok_cycle) d->tok_cycle = t;
    d->effects++;
  } else if (!strcmp(tok, "AU")) {
    char v[48];
    snprintf(v, sizeof v, "%s/*", a[0]);
    reg_unk(reg_get(&d->m, a[1], "-"), v, 0);
    d->unknowns++;
  } else if (!strcmp(tok, "R") || !strcmp(tok, "RU")) {
    reg *r = reg_get(&d->m, a[1], "-");
    if (tok[1]) reg_unk(r, "-", 0), d->unknowns++;
    else reg_ack(r, "-", 0), d->effects++;
  } else if (!strcmp(tok, "OCU")) {
    d->lost_creates++, d->unknowns++;
  } else if (!strcmp(tok, "OC") || !strcmp(tok, "OS") || !strcmp(tok, "OSU")) {
    char name[40];
    snprintf(name, sizeof name, "op%s", a[0]);
    reg *r = reg_get(&d->m, name, "1");
    if (!strcmp(tok, "OSU")) reg_unk(r, a[1], 0), d->unknowns++;
    else reg_ack(r, tok[1] == 'C' ? "1" : a[1], 0), d->effects++;
  } else if (!strcmp(tok, "I")) {
    if (d->nids == d->capids)
      d->ids = realloc(d->ids, (d->capids = d->capids ? 2 * d->capids : 1024) * sizeof *d->ids);
    idrange *ir = &d->ids[d->nids++];
    snprintf(ir->ctr, sizeof ir->ctr, "%s", a[0]);
    ir->first = strtoull(a[1], NULL, 10), ir->count = strtoull(a[2], NULL, 10);
    d->effects++;
  } else if (!strcmp(tok, "O")) { /* name value exp now: what the client saw at a cycle's start */
    int lockrow = a[0][0] == 'r';
    reg *r = reg_get(&d->m, a[0], a[0][0] == 'k' ? "D" : lockrow ? "-" : "1");
    int64_t exp = strtoll(a[2], NULL, 10), now = strtoll(a[3], NULL, 10);
    const char *v = lockrow && exp && exp <= now ? "-" : a[1];
    if (!reg_allows(r, v, lockrow ? now : 0))
      violation(d, "client %d saw %s = %s, not an acknowledged or possible value (acknowledged %s)",
                c, a[0], v, r->val);
    reg_ack(r, a[1], exp);
  } else {
    violation(d, "client %d: bad history line %s", c, tok);
  }
}

static void read_histories(drv *d) {
  for (int c = 0; c < d->nclients; c++) {
    size_t len;
    char *text = sys_read_file(d->files[c], &len);
    if (!text) continue;
    char *p = text + d->off[c];
    d->off[c] = len;
    char *save;
    for (char *line = strtok_r(p, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
      apply_line(d, c, line);
    free(text);
  }
  d->tok_before = d->tok_cycle > d->tok_before ? d->tok_cycle : d->tok_before;
}

static int cmp_id(const void *x, const void *y) {
  const idrange *a = x, *b = y;
  int c = strcmp(a->ctr, b->ctr);
  return c ? c : (a->first < b->first ? -1 : a->first > b->first);
}

static void check_ids(drv *d) {
  qsort(d->ids, d->nids, sizeof *d->ids, cmp_id);
  for (size_t i = 1; i < d->nids; i++)
    if (!strcmp(d->ids[i].ctr, d->ids[i - 1].ctr) &&
        d->ids[i].first < d->ids[i - 1].first + d->ids[i - 1].count)
      violation(d, "%s: ids [%llu, +%llu) and [%llu, +%llu) overlap", d->ids[i].ctr,
                (unsigned long long)d->ids[i - 1].first, (unsigned long long)d->ids[i - 1].count,
                (unsigned long long)d->ids[i].first, (unsigned long long)d->ids[i].count);
}

/* --- the driver's checks against the restarted server ----------------------- */

typedef struct seen {
  char name[40], val[48];
  int64_t exp; /* lock rows: the lock's expiry (0: indefinite) */
} seen;

static int cmp_seen(const void *x, const void *y) { return strcmp(((const seen *)x)->name, ((const seen *)y)->name); }

/* Every register of one kind (first letter) against what the server has. */
static void check_regs(drv *d, char kind, seen *s, size_t ns, int64_t now) {
  qsort(s, ns, sizeof *s, cmp_seen);
  for (size_t i = 0; i < NBUCKETS; i++)
    for (reg *r = d->m.b[i]; r; r = r->next) {
      if (r->name[0] != kind) continue;
      seen key, *f;
      snprintf(key.name, sizeof key.name, "%s", r->name);
      f = bsearch(&key, s, ns, sizeof *s, cmp_seen);
      const char *got = f ? f->val : kind == 'k' ? "D" : kind == 'r' ? "-" : "absent";
      if (!reg_allows(r, got, kind == 'r' ? now : 0))
        violation(d, "%s is %s on the server; acknowledged %s (+%d unknown)", r->name, got, r->val,
                  r->nunk);
      else
        d->verified++;
      /* What the server has is now the known value (a lost answer resolved). */
      reg_ack(r, got, f ? f->exp : 0);
    }
  /* Nothing on the server that no client ever wrote; only ops whose Ops.Create
   * answer was lost may be there unannounced. */
  uint64_t extra = 0;
  for (size_t i = 0; i < ns; i++)
    if (strcmp(s[i].val, "-") != 0 && !reg_find(&d->m, s[i].name) &&
        (kind != 'o' || ++extra > d->lost_creates))
      violation(d, "the server has %s = %s, which no client wrote", s[i].name, s[i].val);
}

static int check_keys(drv *d, rpc_client *c) {
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  q.prefix = bin("k");
  rpc_cstream *st;
  if (rpc_kv_list(c, NULL, &q, &st)) return -1;
  seen *s = NULL;
  size_t ns = 0, cap = 0;
  Strata__V1__ListResponse *m;
  int rc;
  while ((rc = rpc_kv_list_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_entries; i++) {
      if (ns == cap) s = realloc(s, (cap = cap ? 2 * cap : 256) * sizeof *s);
      snprintf(s[ns].name, sizeof s[ns].name, "%.*s", (int)m->entries[i]->key.len,
               (char *)m->entries[i]->key.data);
      value_name(s[ns].name, m->entries[i]->value.data, m->entries[i]->value.len, s[ns].val,
                 sizeof s[ns].val);
      s[ns].exp = 0;
      ns++;
    }
    rpc_free(m);
  }
  rpc_cstream_close(st);
  if (rc) {
    free(s);
    return -1;
  }
  check_regs(d, 'k', s, ns, 0);
  free(s);
  return 0;
}

static int check_locks(drv *d, rpc_client *c) {
  Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  q.prefix = bin("r");
  rpc_cstream *st;
  if (rpc_locks_list(c, NULL, &q, &st)) return -1;
  seen *s = NULL;
  size_t ns = 0, cap = 0;
  Strata__V1__ListLocksResponse *m;
  int rc;
  while ((rc = rpc_locks_list_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_locks; i++) {
      Strata__V1__LockInfo *l = m->locks[i];
      if (ns == cap) s = realloc(s, (cap = cap ? 2 * cap : 256) * sizeof *s);
      snprintf(s[ns].name, sizeof s[ns].name, "%.*s", (int)l->row.len, (char *)l->row.data);
      s[ns].exp = l->expires_at_ns;
      snprintf(s[ns].val, sizeof s[ns].val, "%llu/%llu", (unsigned long long)l->op_id,
               (unsigned long long)l->fencing_token);
      ns++;
    }
    rpc_free(m);
  }
  rpc_cstream_close(st);
  /* Expiry is judged at a time after the listing ended: the server skips locks that
   * expired while it read them, though its server_time_ns is from the listing's start
   * (and an empty listing has none). A lock not listed but unexpired now was lost. */
  int64_t now = sys_now_ns();
  for (size_t i = 0; i < ns; i++)
    if (s[i].exp && s[i].exp <= now) snprintf(s[i].val, sizeof s[i].val, "-");
  if (rc) {
    free(s);
    return -1;
  }
  check_regs(d, 'r', s, ns, now);
  free(s);
  return 0;
}

static int check_ops(drv *d, rpc_client *c) {
  Strata__V1__ListOpsRequest q = STRATA__V1__LIST_OPS_REQUEST__INIT;
  rpc_cstream *st;
  if (rpc_ops_list(c, NULL, &q, &st)) return -1;
  seen *s = NULL;
  size_t ns = 0, cap = 0;
  Strata__V1__ListOpsResponse *m;
  int rc;
  while ((rc = rpc_ops_list_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_ops; i++) {
      if (ns == cap) s = realloc(s, (cap = cap ? 2 * cap : 256) * sizeof *s);
      snprintf(s[ns].name, sizeof s[ns].name, "op%llu", (unsigned long long)m->ops[i]->op_id);
      snprintf(s[ns].val, sizeof s[ns].val, "%d", m->ops[i]->status);
      s[ns].exp = 0;
      ns++;
    }
    rpc_free(m);
  }
  rpc_cstream_close(st);
  if (rc) {
    free(s);
    return -1;
  }
  check_regs(d, 'o', s, ns, 0);
  free(s);
  return 0;
}

/* Gapless generations, strictly increasing commit times, each acknowledged commit
 * at its generation and time; then its values read back at that generation. */
static int check_versions(drv *d, rpc_client *c) {
  /* From the latest generation the previous check saw (published, hence durable):
   * it must still be there with the same time, and the rest follow it gaplessly. */
  Strata__V1__VersionsRequest q = STRATA__V1__VERSIONS_REQUEST__INIT;
  q.start_generation = d->vers_last;
  rpc_cstream *st;
  if (rpc_kv_versions(c, NULL, &q, &st)) return -1;
  uint64_t first = 0, last = 0;
  Strata__V1__VersionsResponse *m;
  int rc;
  while ((rc = rpc_kv_versions_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_versions; i++) {
      uint64_t g = m->versions[i]->generation;
      int64_t t = m->versions[i]->commit_time_ns;
      if (!first && d->vers_last && (g != d->vers_last || d->times[g] != t))
        violation(d, "Kv.Versions from %llu starts at generation %llu",
                  (unsigned long long)d->vers_last, (unsigned long long)g);
      else if (first && g != last + 1)
        violation(d, "Kv.Versions: generation %llu follows %llu", (unsigned long long)g,
                  (unsigned long long)last);
      if (!first) first = g;
      if (g >= d->ntimes) {
        d->times = realloc(d->times, (2 * g + 4096) * sizeof *d->times);
        memset(d->times + d->ntimes, 0, (2 * g + 4096 - d->ntimes) * sizeof *d->times);
        d->ntimes = 2 * g + 4096;
      }
      if (g > 1 && d->times[g - 1] && t <= d->times[g - 1])
        violation(d, "Kv.Versions: commit time of generation %llu not after the previous one",
                  (unsigned long long)g);
      d->times[g] = t;
      last = g;
    }
    rpc_free(m);
  }
  rpc_cstream_close(st);
  if (rc) {
    violation(d, "Kv.Versions from %llu: %s", (unsigned long long)d->vers_last, strata_errmsg());
    return 0;
  }
  if (last < d->max_gen || last < d->vers_last)
    violation(d, "latest generation %llu is below the acknowledged %llu or the %llu seen before",
              (unsigned long long)last, (unsigned long long)d->max_gen,
              (unsigned long long)d->vers_last);
  for (size_t i = d->checked_acks; i < d->nacks; i++) {
    ack_commit *a = &d->acks[i];
    if (a->gen > last || a->gen >= d->ntimes || d->times[a->gen] != a->ctime)
      violation(d, "acknowledged commit at generation %llu time %lld is not in Kv.Versions",
                (unsigned long long)a->gen, (long long)a->ctime);
  }
  d->vers_last = last;
  /* Time travel: the newest acknowledged commits (at most TT_PER_CYCLE), and 16
   * older ones at random. */
  size_t from = d->checked_acks;
  if (d->nacks > from + TT_PER_CYCLE) from = d->nacks - TT_PER_CYCLE;
  for (size_t i = from; d->nacks && i < d->nacks + 16; i++) {
    ack_commit *a = &d->acks[i < d->nacks ? i : (size_t)sys_below(&d->rng, d->nacks)];
    Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
    pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
    pin.generation = a->gen;
    for (int j = 0; j < a->n; j++) {
      char key[48];
      snprintf(key, sizeof key, "%s", a->kv[j]);
      char *want = strchr(key, '=');
      *want++ = 0;
      Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
      gq.key = bin(key);
      gq.pin = &pin;
      Strata__V1__GetResponse *g = NULL;
      if (rpc_kv_get(c, NULL, &gq, &g)) {
        violation(d, "Kv.Get %s at generation %llu: %s", key, (unsigned long long)a->gen,
                  strata_errmsg());
        continue;
      }
      char got[48] = "D";
      if (g->found) value_name(key, g->value.data, g->value.len, got, sizeof got);
      if (strcmp(got, want) != 0)
        violation(d, "%s at generation %llu is %s, acknowledged %s", key,
                  (unsigned long long)a->gen, got, want);
      else
        d->timetravel++;
      rpc_free(g);
    }
  }
  d->checked_acks = d->nacks;
  return 0;
}

static void verify(drv *d, const char *addr) {
  read_histories(d);
  check_ids(d);
  rpc_client_opts o = {.addr = addr, .timeout_ms = 120000};
  rpc_client *c;
  if (rpc_client_open(&o, &c)) {
    violation(d, "cannot open a client to %s", addr);
    return;
  }
  if (check_keys(d, c) || check_locks(d, c) || check_ops(d, c) || check_versions(d, c))
    violation(d, "reading the restarted server failed: %s", strata_errmsg());
  rpc_client_close(c);
}

/* The store checked offline, the server down: every generation's tree walked
 * (keys) since the last check (all when `full`), values read at the latest and
 * at `sample` spread generations. */
static void offline_check(drv *d, const char *dir, int full, int sample) {
  char path[700];
  snprintf(path, sizeof path, "%s/kv", dir);
  st_options so = {.read_only = 1};
  st_db *db;
  int rc = st_open(path, &so, &db);
  if (rc) {
    violation(d, "offline check: st_open %s: %s", path, strata_errmsg());
    return;
  }
  st_version_info *v = NULL;
  size_t nv = 0;
  if ((rc = st_versions(db, full ? 0 : d->offline_last, 0, &v, &nv)))
    violation(d, "offline check: st_versions: %s", strata_errmsg());
  if (nv) d->offline_last = v[nv - 1].generation;
  for (size_t i = 0; !rc && i < nv; i++) {
    int values = i + 1 == nv || (sample && i % (nv / (size_t)sample + 1) == 0);
    st_snap *s;
    if ((rc = st_snap_at_generation(db, v[i].generation, &s))) {
      violation(d, "offline check: generation %llu: %s", (unsigned long long)v[i].generation,
                strata_errmsg());
      break;
    }
    st_range r = {0};
    r.keys_only = !values;
    st_list_result res = {0};
    strata_buf cur = STRATA_BUF_INIT; /* the next page's start, alive across st_list */
    size_t total = 0;
    for (;;) {
      if ((rc = st_list(s, &r, 1000, &res))) {
        violation(d, "offline check: list at generation %llu: %s",
                  (unsigned long long)v[i].generation, strata_errmsg());
        break;
      }
      total += res.n;
      for (size_t j = 0; values && j < res.n; j++) {
        char name[48], got[48];
        snprintf(name, sizeof name, "%.*s", (int)res.items[j].klen, (char *)res.items[j].key);
        if (name[0] != 'k') continue;
        value_name(name, res.items[j].value, res.items[j].vlen, got, sizeof got);
        if (!strcmp(got, "BAD"))
          violation(d, "offline check: %s at generation %llu has damaged bytes", name,
                    (unsigned long long)v[i].generation);
      }
      if (!res.more) break;
      strata_buf_free(&cur);
      cur = res.next;
      res.next = (strata_buf)STRATA_BUF_INIT;
      st_list_result_free(&res);
      res = (st_list_result){0};
      r.start = cur.p, r.start_len = cur.len;
    }
    strata_buf_free(&cur);
    st_list_result_free(&res);
    if (total != v[i].num_keys)
      violation(d, "offline check: generation %llu lists %zu keys, its version says %llu",
                (unsigned long long)v[i].generation, total, (unsigned long long)v[i].num_keys);
    st_snap_release(s);
  }
  free(v);
  st_close(db);
  d->offline_checks++;
}

/* --- the driver ---------------------------------------------------------------- */

typedef struct proc {
  pid_t pid;
  int to, from; /* command pipe (its stdin), answer pipe (its stdout) */
} proc;

static int spawn_client(proc *p, int idx, uint64_t seed, const char *file) {
  int in[2], out[2];
  if (pipe(in) || pipe(out)) return -1;
  char i[16], sd[32];
  snprintf(i, sizeof i, "%d", idx);
  snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
  fflush(stdout);
  fflush(stderr);
  p->pid = fork();
  if (p->pid < 0) return -1;
  if (p->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    execl("/proc/self/exe", "killload", "client", i, sd, file, (char *)NULL);
    _exit(127);
  }
  close(in[0]), close(out[1]);
  p->to = in[1], p->from = out[0];
  return 0;
}

static int send_all(proc *p, int n, const char *cmd) {
  for (int i = 0; i < n; i++)
    if (write(p[i].to, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) return -1;
  return 0;
}

/* Waits for every client's IDLE line; -1 when one died. */
static int wait_idle(proc *p, int n) {
  for (int i = 0; i < n; i++) {
    char buf[8];
    size_t got = 0;
    while (got < 5) {
      ssize_t r = read(p[i].from, buf + got, 5 - got);
      if (r <= 0) {
        fprintf(stderr, "killload: client %d died\n", i);
        return -1;
      }
      got += (size_t)r;
    }
  }
  return 0;
}

static int driver_main(void) {
  const char *bin = getenv("STRATA_SERVER_BIN");
  if (!bin) {
    fprintf(stderr, "killload: set STRATA_SERVER_BIN\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  uint64_t seed = sys_seed("killload");
  sys_rng rng = {seed};
  uint64_t cycles = sys_env_u64("KILLLOAD_CYCLES", 50);
  uint64_t check_every = sys_env_u64("KILLLOAD_CHECK_EVERY", 10);
  static drv d;
  d.rng.s = seed + 1;
  d.nclients = (int)sys_env_u64("KILLLOAD_CLIENTS", 4);
  if (d.nclients < 1 || d.nclients > MAX_CLIENTS) return 2;

  harness h;
  if (harness_start(&h, bin, NULL, NULL)) return 1;
  sys_watch_pid(&h.pid);
  char dir[512];
  snprintf(dir, sizeof dir, "%s", h.dir);
  proc cl[MAX_CLIENTS];
  for (int i = 0; i < d.nclients; i++) {
    snprintf(d.files[i], sizeof d.files[i], "%s.history-%d", dir, i);
    if (spawn_client(&cl[i], i, seed, d.files[i])) return 1;
    sys_watch_pid(&cl[i].pid);
  }
  int64_t t0 = sys_mono_ms();
  uint64_t kills = 0;
  int broken = 0;
  for (uint64_t cyc = 1; cyc <= cycles && !broken; cyc++) {
    if (cyc > 1) {
      if (harness_start(&h, bin, dir, NULL)) {
        violation(&d, "the server did not restart after kill %llu; log %s",
                  (unsigned long long)kills, h.log);
        broken = 1;
        break;
      }
      verify(&d, h.addr);
    }
    char go[128];
    snprintf(go, sizeof go, "GO %s\n", h.addr);
    if (send_all(cl, d.nclients, go)) broken = 1;
    sys_sleep_ms(50 + (int64_t)sys_below(&rng, 450)); /* load runs; the kill lands anywhere */
    kill(h.pid, SIGKILL);
    waitpid(h.pid, NULL, 0);
    h.pid = 0;
    kills++;
    if (send_all(cl, d.nclients, "STOP\n") || wait_idle(cl, d.nclients)) broken = 1;
    if (!broken && check_every && cyc % check_every == 0) offline_check(&d, dir, 0, 0);
    if (d.violations) broken = 1;
  }
  /* The last restart, its check, then a clean stop and the full offline check. */
  int stop = -1;
  if (!broken && harness_start(&h, bin, dir, NULL) == 0) {
    verify(&d, h.addr);
    stop = harness_stop(&h);
    offline_check(&d, dir, 1, 20);
  } else if (!broken) {
    violation(&d, "the server did not restart after the last kill; log %s", h.log);
  }
  send_all(cl, d.nclients, "QUIT\n");
  for (int i = 0; i < d.nclients; i++) {
    int st;
    close(cl[i].to);
    waitpid(cl[i].pid, &st, 0);
    if (!broken && (!WIFEXITED(st) || WEXITSTATUS(st))) violation(&d, "client %d exited 0x%x", i, st);
  }
  if (h.pid > 0) harness_stop(&h);
  int64_t ms = sys_mono_ms() - t0;
  printf("killload: %llu kills in %lld ms, %llu acknowledged effects, %llu register checks, %llu "
         "time-travel reads, %llu unknown outcomes, %llu offline checks, %llu registers, %llu "
         "generations, %llu violations\n",
         (unsigned long long)kills, (long long)ms, (unsigned long long)d.effects,
         (unsigned long long)d.verified, (unsigned long long)d.timetravel,
         (unsigned long long)d.unknowns, (unsigned long long)d.offline_checks,
         (unsigned long long)d.m.nregs, (unsigned long long)d.max_gen,
         (unsigned long long)d.violations);
  if (getenv("KILLLOAD_SOAK")) {
    printf("SOAK killload_kills %llu\n", (unsigned long long)kills);
    printf("SOAK killload_acknowledged_effects %llu\n", (unsigned long long)d.effects);
    printf("SOAK killload_checks %llu\n", (unsigned long long)(d.verified + d.timetravel));
    printf("SOAK killload_violations %llu\n", (unsigned long long)d.violations);
  }
  int bad = broken || d.violations || stop != 0 || kills < cycles || d.effects == 0;
  if (bad) {
    fprintf(stderr, "killload: FAILED (seed %llu); data and histories kept in %s*\n",
            (unsigned long long)seed, dir);
  } else {
    harness_rmdir(dir);
    char p[700];
    snprintf(p, sizeof p, "%s.log", dir);
    unlink(p);
    for (int i = 0; i < d.nclients; i++) unlink(d.files[i]);
  }
  return bad ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "client") == 0) return client_main(argc, argv);
  return driver_main();
}
