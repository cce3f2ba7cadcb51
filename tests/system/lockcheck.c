/*
 * Jepsen-style lock-safety checker over gRPC (issue 9, point 5). The driver
 * starts a real strata-server whose store fsyncs are slowed
 * (STRATA_TEST_SLOW_SYNC_US), runs N client processes, pauses random clients
 * with SIGSTOP past their TTLs, and checks the merged histories:
 *
 *  - each client transaction: acquire 1..3 of R rows (temporal, short TTL, or
 *    indefinite for an op-log op), read the rows' counters (key "ctr/ROW") at
 *    latest after the grant, commit counter+1 for each under a fence naming the
 *    op and the rows, release;
 *  - no lost update: each row's final counter equals the number of acknowledged
 *    fenced commits that incremented it;
 *  - serial per row: the acknowledged commits of a row read 0, 1, 2, ... (no
 *    two read the same value), and in that order their fencing tokens and their
 *    generations strictly increase;
 *  - no double holder: for each grant the client knows an interval in which the
 *    op certainly held the row, [response received, min(release sent, expiry)]
 *    on the machine's clock (the server's lock clock); two ops' intervals on
 *    one row never overlap.
 *
 *   lockcheck                       the driver (env below)
 *   lockcheck client I ADDR FILE N SEED   one client (spawned by the driver)
 *
 * Env: STRATA_SERVER_BIN (required), STRATA_SEED, LOCKCHECK_TXNS (transactions
 * in all, default 25000: about 10^5 calls), LOCKCHECK_CLIENTS (16), LOCKCHECK_ROWS (48),
 * LOCKCHECK_SLOW_SYNC_US (3000), LOCKCHECK_SOAK=1 prints SOAK lines.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "rpc/client.h"
#include "tests/rpc/srv_harness.h"
#include "tests/system/sys_common.h"

#define MAX_ROWS_PER_TXN 3
#define MAX_CLIENTS 32
#define MAX_ROWS 256
#define TTL_MIN_MS 5
#define TTL_MAX_MS 60
#define WAIT_MS 2000
/* A paused client sleeps past every TTL. */
#define PAUSE_MIN_MS (TTL_MAX_MS * 2)

/* --- the client ------------------------------------------------------------ */

static void row_name(char *buf, size_t n, unsigned row) { snprintf(buf, n, "row%03u", row); }

/* The one place the acquire request is built. Rows are exclusive whatever the
 * kinds (issue 9, point 1): a temporal acquire never passes another op's
 * indefinite lock, so no flag is needed (respect_indefinite is gone from the
 * protocol). */
static void acquire_fill(Strata__V1__AcquireRequest *q, int indefinite, uint64_t ttl_ms) {
  q->kind = indefinite ? STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE
                       : STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  q->ttl_ms = indefinite ? 0 : ttl_ms;
  q->wait_ms = WAIT_MS;
}

/* One client transaction as it goes: its rows, op, grant, the counters it read
 * and its commit's outcome. */
typedef struct client_tx {
  size_t k;
  unsigned rows[MAX_ROWS_PER_TXN]; /* ascending */
  char names[MAX_ROWS_PER_TXN][16], keys[MAX_ROWS_PER_TXN][24];
  ProtobufCBinaryData rowbin[MAX_ROWS_PER_TXN], keybin[MAX_ROWS_PER_TXN];
  int indefinite;
  uint64_t op, token;
  int64_t expires, t_grant, t_rel;
  uint64_t base_gen, vals[MAX_ROWS_PER_TXN]; /* the counters read */
  char newv[MAX_ROWS_PER_TXN][24];
  Strata__V1__Put puts[MAX_ROWS_PER_TXN], *pp[MAX_ROWS_PER_TXN];
  const char *res; /* OK, FENCED or UNKNOWN */
  uint64_t gen;
  int64_t ctime;
} client_tx;

/* Rows: 1..3 distinct, in ascending order, with their names and counter keys. */
static void tx_pick_rows(client_tx *x, sys_rng *rng, unsigned nrows) {
  x->k = 1 + sys_below(rng, MAX_ROWS_PER_TXN);
  for (size_t i = 0; i < x->k;) {
    unsigned r = (unsigned)sys_below(rng, nrows);
    int dup = 0;
    for (size_t j = 0; j < i; j++) dup |= x->rows[j] == r;
    if (!dup) x->rows[i++] = r;
  }
  for (size_t i = 1; i < x->k; i++)
    for (size_t j = i; j > 0 && x->rows[j - 1] > x->rows[j]; j--) {
      unsigned t = x->rows[j];
      x->rows[j] = x->rows[j - 1];
      x->rows[j - 1] = t;
    }
  for (size_t i = 0; i < x->k; i++) {
    row_name(x->names[i], sizeof x->names[i], x->rows[i]);
    snprintf(x->keys[i], sizeof x->keys[i], "ctr/%s", x->names[i]);
    x->rowbin[i] = (ProtobufCBinaryData){strlen(x->names[i]), (uint8_t *)x->names[i]};
    x->keybin[i] = (ProtobufCBinaryData){strlen(x->keys[i]), (uint8_t *)x->keys[i]};
  }
}

/* The op: indefinite locks need an op-log op; temporal ones use a private id
 * range far above the op log's. */
static int tx_choose_op(client_tx *x, rpc_client *c, int idx, uint64_t seq, sys_rng *rng) {
  x->indefinite = sys_below(rng, 100) < 15;
  x->op = ((uint64_t)(idx + 1) << 40) | seq;
  if (!x->indefinite) return 0;
  Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
  q.user = "lockcheck";
  q.kind = "txn";
  Strata__V1__CreateOpResponse *r = NULL;
  if (rpc_ops_create(c, NULL, &q, &r)) {
    fprintf(stderr, "client %d: Ops.Create: %s\n", idx, strata_errmsg());
    return -1;
  }
  x->op = r->op->op_id;
  rpc_free(r);
  return 0;
}

/* Reads the counters at latest (the state after every earlier holder's commit)
 * and builds the puts of each plus one. */
static int tx_read_counters(client_tx *x, rpc_client *c, int idx) {
  Strata__V1__BatchGetRequest gq = STRATA__V1__BATCH_GET_REQUEST__INIT;
  gq.n_keys = x->k;
  gq.keys = x->keybin;
  Strata__V1__BatchGetResponse *gr = NULL;
  if (rpc_kv_batch_get(c, NULL, &gq, &gr)) {
    fprintf(stderr, "client %d: Kv.BatchGet: %s\n", idx, strata_errmsg());
    return -1;
  }
  x->base_gen = gr->version->generation;
  for (size_t i = 0; i < x->k; i++) {
    Strata__V1__KeyValue *e = gr->entries[i];
    char tmp[24] = {0};
    memcpy(tmp, e->value.data, e->value.len < 23 ? e->value.len : 23);
    x->vals[i] = e->found ? strtoull(tmp, NULL, 10) : 0;
    snprintf(x->newv[i], sizeof x->newv[i], "%llu", (unsigned long long)x->vals[i] + 1);
    x->puts[i] = (Strata__V1__Put)STRATA__V1__PUT__INIT;
    x->puts[i].key = x->keybin[i];
    x->puts[i].value = (ProtobufCBinaryData){strlen(x->newv[i]), (uint8_t *)x->newv[i]};
    x->pp[i] = &x->puts[i];
  }
  rpc_free(gr);
  return 0;
}

/* The commit of the new counters, fenced by the op and the rows. */
static void tx_fenced_commit(client_tx *x, rpc_client *c, int idx) {
  Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
  f.op_id = x->op;
  f.n_rows = x->k;
  f.rows = x->rowbin;
  Strata__V1__CommitRequest cq = STRATA__V1__COMMIT_REQUEST__INIT;
  cq.n_puts = x->k;
  cq.puts = x->pp;
  cq.fence = &f;
  Strata__V1__CommitResponse *cr = NULL;
  int crc = rpc_kv_commit(c, NULL, &cq, &cr);
  x->res = "OK";
  if (crc == 0) {
    x->gen = cr->version->generation;
    x->ctime = cr->version->commit_time_ns;
  } else if (crc == STRATA_EFENCED) {
    x->res = "FENCED";
  } else {
    x->res = "UNKNOWN"; /* may or may not have applied */
    fprintf(stderr, "client %d: Kv.Commit: %s\n", idx, strata_errmsg());
  }
  rpc_free(cr);
}

static void tx_log(const client_tx *x, int idx, int log) {
  char line[512];
  int n = snprintf(line, sizeof line, "T %d %llu %c %llu %lld %lld %lld %s %llu %lld %llu %zu", idx,
                   (unsigned long long)x->op, x->indefinite ? 'I' : 'T',
                   (unsigned long long)x->token, (long long)x->expires, (long long)x->t_grant,
                   (long long)x->t_rel, x->res, (unsigned long long)x->gen, (long long)x->ctime,
                   (unsigned long long)x->base_gen, x->k);
  for (size_t i = 0; i < x->k; i++)
    n += snprintf(line + n, sizeof line - (size_t)n, " %u:%llu", x->rows[i],
                  (unsigned long long)x->vals[i]);
  sys_logf(log, "%s", line);
}

/* One transaction; appends its history line. Returns 0, or -1 on an error that
 * ends the client. */
static int client_txn(rpc_client *c, int idx, uint64_t seq, sys_rng *rng, unsigned nrows, int log) {
  client_tx x = {0};
  tx_pick_rows(&x, rng, nrows);
  if (tx_choose_op(&x, c, idx, seq, rng)) return -1;
  uint64_t ttl = TTL_MIN_MS + sys_below(rng, TTL_MAX_MS - TTL_MIN_MS + 1);

  Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
  aq.op_id = x.op;
  aq.n_rows = x.k;
  aq.rows = x.rowbin;
  acquire_fill(&aq, x.indefinite, ttl);
  Strata__V1__AcquireResponse *ar = NULL;
  if (rpc_locks_acquire(c, NULL, &aq, &ar)) {
    fprintf(stderr, "client %d: Locks.Acquire: %s\n", idx, strata_errmsg());
    return -1;
  }
  x.t_grant = sys_now_ns();
  if (!ar->acquired) {
    rpc_free(ar);
    sys_logf(log, "N %d %llu %c", idx, (unsigned long long)x.op, x.indefinite ? 'I' : 'T');
    return 0;
  }
  x.token = ar->fencing_token;
  x.expires = x.indefinite ? INT64_MAX : ar->expires_at_ns;
  rpc_free(ar);

  if (tx_read_counters(&x, c, idx)) return -1;
  tx_fenced_commit(&x, c, idx);

  x.t_rel = sys_now_ns();
  Strata__V1__ReleaseRequest rq = STRATA__V1__RELEASE_REQUEST__INIT;
  rq.op_id = x.op;
  rq.all = 1;
  Strata__V1__ReleaseResponse *rr = NULL;
  if (rpc_locks_release(c, NULL, &rq, &rr)) {
    fprintf(stderr, "client %d: Locks.Release: %s\n", idx, strata_errmsg());
    return -1;
  }
  rpc_free(rr);
  tx_log(&x, idx, log);
  return 0;
}

/* A client that dies says so: a silent death would leave its indefinite locks
 * blocking every other client. */
static void on_fatal(int sig) {
  char msg[64];
  int n = snprintf(msg, sizeof msg, "lockcheck client: fatal signal %d\n", sig);
  if (write(2, msg, (size_t)n) < 0) {
  }
  signal(sig, SIG_DFL);
  raise(sig);
}

static int client_main(int argc, char **argv) {
  if (argc != 8) return 2;
  int fatal[] = {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL, SIGPIPE};
  for (size_t i = 0; i < sizeof fatal / sizeof *fatal; i++) signal(fatal[i], on_fatal);
  int idx = atoi(argv[2]);
  const char *addr = argv[3], *file = argv[4];
  uint64_t n = strtoull(argv[5], NULL, 10), seed = strtoull(argv[6], NULL, 10);
  unsigned nrows = (unsigned)atoi(argv[7]);
  sys_rng rng = {seed ^ ((uint64_t)idx * 0x9e3779b97f4a7c15ull)};
  /* Calls never time out in a healthy run: a deadline would make a commit's
   * outcome unknown. A hung server ends the run through the tier's timeout. */
  rpc_client_opts o = {.addr = addr, .timeout_ms = 600000};
  rpc_client *c;
  if (rpc_client_open(&o, &c)) return 1;
  int log = sys_log_open(file);
  int rc = 0;
  for (uint64_t seq = 1; seq <= n && !rc; seq++) rc = client_txn(c, idx, seq, &rng, nrows, log);
  close(log);
  rpc_client_close(c);
  return rc ? 1 : 0;
}

/* --- the checker ----------------------------------------------------------- */

typedef struct txn {
  int client;
  uint64_t op, token, gen, base_gen;
  char kind;
  int64_t expires, t_grant, t_rel, ctime;
  char res[12];
  size_t k;
  unsigned rows[MAX_ROWS_PER_TXN];
  uint64_t vals[MAX_ROWS_PER_TXN];
} txn;

typedef struct hist {
  txn *t;
  size_t n, cap;
  uint64_t refused; /* acquires that timed out waiting */
  uint64_t rpcs;    /* calls made: acquire, read, commit, release, and Ops.Create */
} hist;

static int parse_history(const char *path, hist *h) {
  char *text = sys_read_file(path, NULL);
  if (!text) {
    fprintf(stderr, "missing history %s\n", path);
    return -1;
  }
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == 'N') {
      h->refused++;
      h->rpcs += 1 + (strchr(line, 'I') != NULL);
      continue;
    }
    if (h->n == h->cap) h->t = realloc(h->t, (h->cap = h->cap ? 2 * h->cap : 4096) * sizeof *h->t);
    txn *t = &h->t[h->n];
    int off = 0;
    unsigned long long op, token, gen, bgen;
    long long exp, tg, tr, ct;
    if (sscanf(line, "T %d %llu %c %llu %lld %lld %lld %11s %llu %lld %llu %zu%n", &t->client, &op,
               &t->kind, &token, &exp, &tg, &tr, t->res, &gen, &ct, &bgen, &t->k, &off) != 12 ||
        t->k < 1 || t->k > MAX_ROWS_PER_TXN) {
      fprintf(stderr, "bad history line in %s: %s\n", path, line);
      free(text);
      return -1;
    }
    h->rpcs += 4 + (t->kind == 'I');
    t->op = op, t->token = token, t->gen = gen, t->base_gen = bgen;
    t->expires = exp, t->t_grant = tg, t->t_rel = tr, t->ctime = ct;
    char *p = line + off;
    for (size_t i = 0; i < t->k; i++) {
      unsigned long long v;
      int m = 0;
      if (sscanf(p, " %u:%llu%n", &t->rows[i], &v, &m) != 2 || t->rows[i] >= MAX_ROWS) {
        fprintf(stderr, "bad rows in %s: %s\n", path, line);
        free(text);
        return -1;
      }
      t->vals[i] = v;
      p += m;
    }
    h->n++;
  }
  free(text);
  return 0;
}

typedef struct figures {
  uint64_t rpcs, txns, acked, fenced, unknown, refused, pauses;
  uint64_t lost_updates, dup_reads, token_order, gen_order, double_holders;
} figures;

/* One row's acknowledged commits, sorted by the counter value they read. */
typedef struct rowref {
  uint64_t val, token, gen;
  const txn *t;
} rowref;

static int cmp_rowref(const void *a, const void *b) {
  const rowref *x = a, *y = b;
  return x->val < y->val ? -1 : x->val > y->val;
}

typedef struct ival {
  int64_t lo, hi;
  const txn *t;
} ival;

static int cmp_ival(const void *a, const void *b) {
  const ival *x = a, *y = b;
  return x->lo < y->lo ? -1 : x->lo > y->lo;
}

static void check_row(const hist *h, unsigned row, uint64_t final, uint64_t unknown_here,
                      figures *fg) {
  rowref *a = malloc((h->n + 1) * sizeof *a);
  ival *iv = malloc((h->n + 1) * sizeof *iv);
  size_t na = 0, ni = 0;
  for (size_t i = 0; i < h->n; i++) {
    const txn *t = &h->t[i];
    for (size_t j = 0; j < t->k; j++) {
      if (t->rows[j] != row) continue;
      if (strcmp(t->res, "OK") == 0) a[na++] = (rowref){t->vals[j], t->token, t->gen, t};
      int64_t hi = t->t_rel < t->expires ? t->t_rel : t->expires;
      if (hi > t->t_grant) iv[ni++] = (ival){t->t_grant, hi, t};
    }
  }
  /* Lost updates: every acknowledged increment is in the final counter (an
   * unknown outcome may add one more each). */
  if (final < na) {
    fg->lost_updates += na - final;
    fprintf(stderr, "LOST UPDATE row%03u: %zu acknowledged increments, counter %llu\n", row, na,
            (unsigned long long)final);
  } else if (final > na + unknown_here) {
    fprintf(stderr, "row%03u: counter %llu above %zu acknowledged + %llu unknown increments\n", row,
            (unsigned long long)final, na, (unsigned long long)unknown_here);
    fg->lost_updates += final - na - unknown_here; /* counted as a violation too */
  }
  qsort(a, na, sizeof *a, cmp_rowref);
  for (size_t i = 1; i < na; i++) {
    if (a[i].val == a[i - 1].val) {
      if (fg->dup_reads++ < 5)
        fprintf(stderr,
                "row%03u: ops %llu (token %llu, gen %llu) and %llu (token %llu, gen %llu) both "
                "read %llu and committed\n",
                row, (unsigned long long)a[i - 1].t->op, (unsigned long long)a[i - 1].token,
                (unsigned long long)a[i - 1].gen, (unsigned long long)a[i].t->op,
                (unsigned long long)a[i].token, (unsigned long long)a[i].gen,
                (unsigned long long)a[i].val);
      continue;
    }
    if (a[i].token <= a[i - 1].token && fg->token_order++ < 5)
      fprintf(stderr, "row%03u: the commit that read %llu has token %llu <= %llu of the one before\n",
              row, (unsigned long long)a[i].val, (unsigned long long)a[i].token,
              (unsigned long long)a[i - 1].token);
    if (a[i].gen <= a[i - 1].gen && fg->gen_order++ < 5)
      fprintf(stderr, "row%03u: the commit that read %llu is at generation %llu <= %llu\n", row,
              (unsigned long long)a[i].val, (unsigned long long)a[i].gen,
              (unsigned long long)a[i - 1].gen);
  }
  /* Certain-hold intervals of different ops never overlap. */
  qsort(iv, ni, sizeof *iv, cmp_ival);
  int64_t maxhi = INT64_MIN;
  const txn *maxt = NULL;
  for (size_t i = 0; i < ni; i++) {
    if (maxt && iv[i].lo < maxhi && iv[i].t->op != maxt->op) {
      if (fg->double_holders++ < 5)
        fprintf(stderr,
                "DOUBLE HOLDER row%03u: op %llu (%c, token %llu) held it until %lld, op %llu (%c, "
                "token %llu) from %lld\n",
                row, (unsigned long long)maxt->op, maxt->kind, (unsigned long long)maxt->token,
                (long long)maxhi, (unsigned long long)iv[i].t->op, iv[i].t->kind,
                (unsigned long long)iv[i].t->token, (long long)iv[i].lo);
    }
    if (iv[i].hi > maxhi) maxhi = iv[i].hi, maxt = iv[i].t;
  }
  free(a);
  free(iv);
}

/* Reads every row's final counter at latest. */
static int read_counters(const char *addr, unsigned nrows, uint64_t *out) {
  rpc_client_opts o = {.addr = addr, .timeout_ms = 60000};
  rpc_client *c;
  if (rpc_client_open(&o, &c)) return -1;
  int rc = 0;
  for (unsigned r = 0; r < nrows && !rc; r++) {
    char name[16], key[24];
    row_name(name, sizeof name, r);
    snprintf(key, sizeof key, "ctr/%s", name);
    Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
    q.key = (ProtobufCBinaryData){strlen(key), (uint8_t *)key};
    Strata__V1__GetResponse *g = NULL;
    if ((rc = rpc_kv_get(c, NULL, &q, &g))) {
      fprintf(stderr, "Kv.Get %s: %s\n", key, strata_errmsg());
      break;
    }
    char tmp[24] = {0};
    memcpy(tmp, g->value.data, g->value.len < 23 ? g->value.len : 23);
    out[r] = g->found ? strtoull(tmp, NULL, 10) : 0;
    rpc_free(g);
  }
  rpc_client_close(c);
  return rc;
}

/* SIGSTOPs a random live client past every TTL, then SIGCONTs it, until all
 * clients have exited, or one failed (its indefinite locks would block the others
 * for good: the rest are killed). Returns the number of pauses; fills status[i]. */
static uint64_t pause_loop(pid_t *pids, int n, sys_rng *rng, int *status) {
  int live = n;
  uint64_t pauses = 0;
  while (live > 0) {
    sys_sleep_ms(20 + (int64_t)sys_below(rng, 200));
    int i = (int)sys_below(rng, (uint64_t)n);
    if (pids[i] > 0 && kill(pids[i], SIGSTOP) == 0) {
      sys_sleep_ms(PAUSE_MIN_MS + (int64_t)sys_below(rng, 200));
      kill(pids[i], SIGCONT);
      pauses++;
    }
    for (int j = 0; j < n; j++) {
      int st;
      if (pids[j] > 0 && waitpid(pids[j], &st, WNOHANG) == pids[j]) {
        status[j] = st;
        pids[j] = 0;
        live--;
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0) continue;
        fprintf(stderr, "client %d failed (status 0x%x): stopping the others\n", j, st);
        for (int k = 0; k < n; k++)
          if (pids[k] > 0) {
            kill(pids[k], SIGKILL);
            waitpid(pids[k], &status[k], 0);
            pids[k] = 0;
            live--;
          }
      }
    }
  }
  return pauses;
}

/* Spawns the clients, each with its share of the transactions and its history
 * file in the server's directory. */
static void spawn_clients(const harness *h, int nclients, uint64_t txns, uint64_t seed,
                          unsigned nrows, pid_t *pids, char (*files)[600]) {
  for (int i = 0; i < nclients; i++) {
    char idx[16], n[32], sd[32], nr[16];
    snprintf(files[i], sizeof files[i], "%s/history-%d", h->dir, i);
    snprintf(idx, sizeof idx, "%d", i);
    snprintf(n, sizeof n, "%llu", (unsigned long long)(txns / (uint64_t)nclients + 1));
    snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
    snprintf(nr, sizeof nr, "%u", nrows);
    const char *args[] = {"client", idx, h->addr, files[i], n, sd, nr, NULL};
    pids[i] = sys_spawn_self(args);
    sys_watch_pid(&pids[i]);
  }
}

/* Counts the outcomes of the merged histories and checks every row against its
 * final counter. */
static void check_histories(const hist *hs, const uint64_t *final, unsigned nrows, figures *fg) {
  uint64_t unknown_per_row[MAX_ROWS] = {0};
  for (size_t i = 0; i < hs->n; i++) {
    const txn *t = &hs->t[i];
    fg->txns++;
    if (!strcmp(t->res, "OK")) fg->acked++;
    else if (!strcmp(t->res, "FENCED")) fg->fenced++;
    else {
      fg->unknown++;
      for (size_t j = 0; j < t->k; j++) unknown_per_row[t->rows[j]]++;
    }
  }
  fg->refused = hs->refused;
  fg->rpcs = hs->rpcs;
  fg->txns += hs->refused;
  for (unsigned r = 0; r < nrows; r++) check_row(hs, r, final[r], unknown_per_row[r], fg);
}

static void print_figures(const figures *fg, int nclients, int64_t ms, uint64_t slow) {
  printf("lockcheck: %llu operations (calls), %llu transactions (%llu committed, %llu fenced, %llu unknown, %llu acquires "
         "timed out) by %d clients in %lld ms (%.0f/s), %llu pauses, fsync delay %llu us\n",
         (unsigned long long)fg->rpcs, (unsigned long long)fg->txns, (unsigned long long)fg->acked,
         (unsigned long long)fg->fenced,
         (unsigned long long)fg->unknown, (unsigned long long)fg->refused, nclients, (long long)ms,
         ms ? (double)fg->txns * 1000.0 / (double)ms : 0.0, (unsigned long long)fg->pauses,
         (unsigned long long)slow);
  printf("lockcheck: lost updates %llu, double reads %llu, token order %llu, generation order "
         "%llu, double holders %llu\n",
         (unsigned long long)fg->lost_updates, (unsigned long long)fg->dup_reads,
         (unsigned long long)fg->token_order, (unsigned long long)fg->gen_order,
         (unsigned long long)fg->double_holders);
  if (getenv("LOCKCHECK_SOAK")) {
    printf("SOAK lockcheck_operations %llu\n", (unsigned long long)fg->rpcs);
    printf("SOAK lockcheck_transactions %llu\n", (unsigned long long)fg->txns);
    printf("SOAK lockcheck_committed %llu\n", (unsigned long long)fg->acked);
    printf("SOAK lockcheck_pauses %llu\n", (unsigned long long)fg->pauses);
    printf("SOAK lockcheck_lost_updates %llu\n", (unsigned long long)fg->lost_updates);
    printf("SOAK lockcheck_double_holders %llu\n", (unsigned long long)fg->double_holders);
  }
}

static int driver_main(void) {
  const char *bin = getenv("STRATA_SERVER_BIN");
  if (!bin) {
    fprintf(stderr, "lockcheck: set STRATA_SERVER_BIN\n");
    return 2;
  }
  uint64_t seed = sys_seed("lockcheck");
  sys_rng rng = {seed};
  uint64_t txns = sys_env_u64("LOCKCHECK_TXNS", 25000);
  int nclients = (int)sys_env_u64("LOCKCHECK_CLIENTS", 16);
  unsigned nrows = (unsigned)sys_env_u64("LOCKCHECK_ROWS", 48);
  uint64_t slow = sys_env_u64("LOCKCHECK_SLOW_SYNC_US", 3000);
  if (nclients < 1 || nclients > MAX_CLIENTS || nrows < MAX_ROWS_PER_TXN || nrows > MAX_ROWS)
    return 2;
  char slowbuf[32];
  snprintf(slowbuf, sizeof slowbuf, "%llu", (unsigned long long)slow);
  setenv("STRATA_TEST_SLOW_SYNC_US", slowbuf, 1);
  harness h;
  if (harness_start(&h, bin, NULL, NULL)) return 1;
  unsetenv("STRATA_TEST_SLOW_SYNC_US");
  sys_watch_pid(&h.pid);

  int64_t t0 = sys_mono_ms();
  pid_t pids[MAX_CLIENTS];
  int status[MAX_CLIENTS];
  char files[MAX_CLIENTS][600];
  spawn_clients(&h, nclients, txns, seed, nrows, pids, files);
  figures fg = {0};
  fg.pauses = pause_loop(pids, nclients, &rng, status);
  int64_t ms = sys_mono_ms() - t0;
  int failed = 0;
  for (int i = 0; i < nclients; i++)
    if (!WIFEXITED(status[i]) || WEXITSTATUS(status[i]) != 0) {
      fprintf(stderr, "client %d failed (status 0x%x)\n", i, status[i]);
      failed = 1;
    }

  hist hs = {0};
  for (int i = 0; i < nclients && !failed; i++) failed = parse_history(files[i], &hs) != 0;
  uint64_t final[MAX_ROWS] = {0};
  if (!failed) failed = read_counters(h.addr, nrows, final) != 0;
  if (!failed) check_histories(&hs, final, nrows, &fg);
  int stop = harness_stop(&h);
  print_figures(&fg, nclients, ms, slow);
  int bad = failed || stop != 0 || fg.lost_updates || fg.dup_reads || fg.token_order ||
            fg.gen_order || fg.double_holders || fg.acked == 0 || fg.pauses == 0;
  if (bad) fprintf(stderr, "lockcheck: FAILED (seed %llu)\n", (unsigned long long)seed);
  if (!bad) {
    harness_rmdir(h.dir);
    unlink(h.log);
  } else fprintf(stderr, "lockcheck: histories kept in %s\n", h.dir);
  free(hs.t);
  return bad ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "client") == 0) return client_main(argc, argv);
  return driver_main();
}
