/*
 * killload's client process: commits, locks, op statuses and id allocations
 * against the server named by each GO command, every acknowledged effect and
 * every lost answer appended to its history file; after a lost answer it idles
 * until the next cycle, which starts by reading back its uncertain registers.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "rpc/client.h"
#include "tests/system/killload.h"
#include "tests/system/sys_common.h"

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

/* A commit being built: 1..4 distinct keys of the client, each a put or a
 * delete, conditions on some, a fence on a held row. */
typedef struct commit_req {
  size_t k;
  int pick[4]; /* indexes into client.keys */
  char desc[4][48]; /* key=seq/len or key=D, as logged */
  Strata__V1__Put puts[4], *pp[4];
  ProtobufCBinaryData dels[4];
  Strata__V1__Condition conds[4], *cp[4];
  size_t np, nd, nc;
  Strata__V1__LockFence f;
  ProtobufCBinaryData frow;
  Strata__V1__CommitRequest q;
} commit_req;

static uint8_t commit_vals[4][VAL_MAX]; /* the puts' values */

static void pick_keys(client *cl, commit_req *w) {
  w->k = 1 + sys_below(&cl->rng, 4);
  for (size_t i = 0; i < w->k;) {
    int x = (int)sys_below(&cl->rng, NKEYS), dup = 0;
    for (size_t j = 0; j < i; j++) dup |= w->pick[j] == x;
    if (!dup) w->pick[i++] = x;
  }
}

/* Key i of the commit: a delete (1 in 8) or a put of a new value, and when
 * `conditional` a condition if the client knows the key's state. */
static void add_key(client *cl, commit_req *w, size_t i, int conditional) {
  ckey *key = &cl->keys[w->pick[i]];
  if (sys_below(&cl->rng, 8) == 0) {
    w->dels[w->nd++] = kl_bin(key->name);
    snprintf(w->desc[i], sizeof w->desc[i], "%.31s=D", key->name);
  } else {
    size_t len = key->large ? 200 + sys_below(&cl->rng, 8000) : 30 + sys_below(&cl->rng, 40);
    uint64_t seq = ++cl->seq;
    size_t np = w->np++;
    kl_value_make(commit_vals[np], key->name, seq, len);
    w->puts[np] = (Strata__V1__Put)STRATA__V1__PUT__INIT;
    w->puts[np].key = kl_bin(key->name);
    w->puts[np].value = (ProtobufCBinaryData){len, commit_vals[np]};
    w->pp[np] = &w->puts[np];
    snprintf(w->desc[i], sizeof w->desc[i], "%.31s=%llu/%zu", key->name, (unsigned long long)seq,
             len);
  }
  if (conditional && key->certain) {
    Strata__V1__Condition *c = &w->conds[w->nc];
    *c = (Strata__V1__Condition)STRATA__V1__CONDITION__INIT;
    c->key = kl_bin(key->name);
    if (key->exists) {
      c->kind = STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE;
      c->generation = key->gen;
    } else {
      c->kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
    }
    w->cp[w->nc++] = c;
  }
}

/* A fence on a row this client holds with time to spare, sometimes. */
static void add_fence(client *cl, commit_req *w) {
  w->f = (Strata__V1__LockFence)STRATA__V1__LOCK_FENCE__INIT;
  int64_t now = sys_now_ns();
  for (int i = 0; i < NLOCKROWS && sys_below(&cl->rng, 2); i++) {
    crow *r = &cl->rows[i];
    if (r->certain && r->op && (r->indefinite || r->expires > now + 2000000000LL)) {
      w->frow = kl_bin(r->name);
      w->f.op_id = r->op, w->f.n_rows = 1, w->f.rows = &w->frow;
      w->q.fence = &w->f;
      break;
    }
  }
}

/* Logs the commit's outcome (C acknowledged, U answer lost) and updates what
 * the client knows of its keys. 0, 1 for a definite refusal, -1 when unknown. */
static int log_commit(client *cl, commit_req *w, int rc, const Strata__V1__CommitResponse *resp) {
  char rec[1024];
  int n = 0;
  if (rc == 0) {
    n = snprintf(rec, sizeof rec, "C %llu %lld %zu", (unsigned long long)resp->version->generation,
                 (long long)resp->version->commit_time_ns, w->k);
    for (size_t i = 0; i < w->k; i++) {
      ckey *key = &cl->keys[w->pick[i]];
      key->certain = 1;
      key->exists = strstr(w->desc[i], "=D") == NULL;
      key->gen = resp->version->generation;
    }
  } else if (definite(rc, w->q.fence ? STRATA_EFENCED : 1)) {
    return 1; /* a lock that expired while the server was down */
  } else if (rc == STRATA_ECONDITION) {
    fprintf(stderr, "client %d: a condition on keys only it writes failed: %s\n", cl->idx,
            strata_errmsg());
    sys_logf(cl->log, "X condition %s", strata_errmsg());
    exit(1);
  } else {
    lost(cl, rc, "Kv.Commit");
    n = snprintf(rec, sizeof rec, "U %zu", w->k);
    for (size_t i = 0; i < w->k; i++) cl->keys[w->pick[i]].certain = 0;
  }
  for (size_t i = 0; i < w->k; i++)
    n += snprintf(rec + n, sizeof rec - (size_t)n, " %s", w->desc[i]);
  sys_logf(cl->log, "%s", rec);
  return rc ? -1 : 0;
}

/* One commit of 1..4 keys: puts (small or large) and deletes, optionally with
 * conditions on certain keys and a fence on a held row. 0, or -1 when the
 * outcome is unknown (the client then idles until the next cycle). */
static int op_commit(client *cl) {
  commit_req w = {.q = STRATA__V1__COMMIT_REQUEST__INIT};
  pick_keys(cl, &w);
  int conditional = sys_below(&cl->rng, 3) == 0;
  for (size_t i = 0; i < w.k; i++) add_key(cl, &w, i, conditional);
  w.q.n_puts = w.np, w.q.puts = w.pp, w.q.n_deletes = w.nd, w.q.deletes = w.dels;
  w.q.n_conditions = w.nc, w.q.conditions = w.cp;
  add_fence(cl, &w);
  Strata__V1__CommitResponse *resp = NULL;
  int rc = rpc_kv_commit(cl->c, NULL, &w.q, &resp);
  int out = log_commit(cl, &w, rc, resp);
  rpc_free(resp);
  return out == 1 ? 0 : out;
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
    ProtobufCBinaryData row = kl_bin(r->name);
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
  ProtobufCBinaryData row = kl_bin(r->name);
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
    q.key = kl_bin(k->name);
    Strata__V1__GetResponse *g = NULL;
    int crc = rpc_kv_get(cl->c, NULL, &q, &g);
    if (crc) {
      lost(cl, crc, "Kv.Get");
      return -1;
    }
    char v[64] = "D";
    if (g->found) kl_value_name(k->name, g->value.data, g->value.len, v, sizeof v);
    k->certain = 1, k->exists = g->found, k->gen = g->version->generation;
    sys_logf(cl->log, "O %s %s 0 0", k->name, v);
    rpc_free(g);
  }
  for (int i = 0; i < NLOCKROWS; i++) {
    crow *r = &cl->rows[i];
    if (r->certain) continue;
    Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
    q.prefix = kl_bin(r->name);
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

int kl_client_main(int argc, char **argv) {
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
