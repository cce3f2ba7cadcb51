/*
 * killload's model and checks: the clients' histories applied to registers
 * (allowed values of each key, lock row and op), then the restarted server
 * listed and read back against them, and the store checked offline.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "rpc/client.h"
#include "storage/store.h"
#include "tests/system/killload.h"
#include "tests/system/sys_common.h"

/* --- the driver's model -------------------------------------------------------- */

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

void kl_violation(drv *d, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (d->violations++ < 20) {
    fprintf(stderr, "VIOLATION: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
  }
  va_end(ap);
}

/* A commit line: "C gen time k key=value..." acknowledged, "U k key=value..."
 * whose answer was lost. */
static void apply_commit(drv *d, int c, int acked, char **a, int n) {
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
}

/* An acknowledged acquire, "A op kind token expires row": its token above every
 * token granted before the last restart and above the client's previous one. */
static void apply_acquire(drv *d, int c, char **a) {
  uint64_t t = strtoull(a[2], NULL, 10);
  char v[48];
  snprintf(v, sizeof v, "%s/%s", a[0], a[2]);
  reg_ack(reg_get(&d->m, a[4], "-"), v, a[1][0] == 'T' ? strtoll(a[3], NULL, 10) : 0);
  if (t <= d->tok_before)
    kl_violation(d, "client %d: token %llu granted after a restart is not above %llu granted before",
                 c, (unsigned long long)t, (unsigned long long)d->tok_before);
  if (t <= d->tok_last[c])
    kl_violation(d, "client %d: token %llu not above its previous %llu", c, (unsigned long long)t,
                 (unsigned long long)d->tok_last[c]);
  d->tok_last[c] = t;
  if (t > d->tok_cycle) d->tok_cycle = t;
  d->effects++;
}

/* "O name value exp now": what the client saw at a cycle's start, which must be
 * allowed and then becomes the known value. */
static void apply_observed(drv *d, int c, char **a) {
  int lockrow = a[0][0] == 'r';
  reg *r = reg_get(&d->m, a[0], a[0][0] == 'k' ? "D" : lockrow ? "-" : "1");
  int64_t exp = strtoll(a[2], NULL, 10), now = strtoll(a[3], NULL, 10);
  const char *v = lockrow && exp && exp <= now ? "-" : a[1];
  if (!reg_allows(r, v, lockrow ? now : 0))
    kl_violation(d, "client %d saw %s = %s, not an acknowledged or possible value (acknowledged %s)",
                 c, a[0], v, r->val);
  reg_ack(r, a[1], exp);
}

/* Applies one client's new history line to the model. */
static void apply_line(drv *d, int c, char *line) {
  char *save, *tok = strtok_r(line, " ", &save);
  if (!tok) return;
  char *a[16];
  int n = 0;
  while (n < 16 && (a[n] = strtok_r(NULL, " ", &save))) n++;
  if (!strcmp(tok, "C") || !strcmp(tok, "U")) {
    apply_commit(d, c, tok[0] == 'C', a, n);
  } else if (!strcmp(tok, "A")) {
    apply_acquire(d, c, a);
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
  } else if (!strcmp(tok, "O")) {
    apply_observed(d, c, a);
  } else {
    kl_violation(d, "client %d: bad history line %s", c, tok);
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
      kl_violation(d, "%s: ids [%llu, +%llu) and [%llu, +%llu) overlap", d->ids[i].ctr,
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
        kl_violation(d, "%s is %s on the server; acknowledged %s (+%d unknown)", r->name, got, r->val,
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
      kl_violation(d, "the server has %s = %s, which no client wrote", s[i].name, s[i].val);
}

/* The next free entry of a growing listing s (*ns used of *cap). */
static seen *seen_next(seen **s, size_t *ns, size_t *cap) {
  if (*ns == *cap) *s = realloc(*s, (*cap = *cap ? 2 * *cap : 256) * sizeof **s);
  seen *e = &(*s)[(*ns)++];
  e->exp = 0;
  return e;
}

/* The end of a listing: checked against the registers of `kind` when the
 * stream ended well (rc 0), then freed. 0, or -1 when the stream failed. */
static int seen_check(drv *d, char kind, seen *s, size_t ns, int rc, int64_t now) {
  if (!rc) check_regs(d, kind, s, ns, now);
  free(s);
  return rc ? -1 : 0;
}

static int check_keys(drv *d, rpc_client *c) {
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  q.prefix = kl_bin("k");
  rpc_cstream *st;
  if (rpc_kv_list(c, NULL, &q, &st)) return -1;
  seen *s = NULL;
  size_t ns = 0, cap = 0;
  Strata__V1__ListResponse *m;
  int rc;
  while ((rc = rpc_kv_list_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_entries; i++) {
      Strata__V1__KeyValue *kv = m->entries[i];
      seen *e = seen_next(&s, &ns, &cap);
      snprintf(e->name, sizeof e->name, "%.*s", (int)kv->key.len, (char *)kv->key.data);
      kl_value_name(e->name, kv->value.data, kv->value.len, e->val, sizeof e->val);
    }
    rpc_free(m);
  }
  rpc_cstream_close(st);
  return seen_check(d, 'k', s, ns, rc, 0);
}

static int check_locks(drv *d, rpc_client *c) {
  Strata__V1__ListLocksRequest q = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  q.prefix = kl_bin("r");
  rpc_cstream *st;
  if (rpc_locks_list(c, NULL, &q, &st)) return -1;
  seen *s = NULL;
  size_t ns = 0, cap = 0;
  Strata__V1__ListLocksResponse *m;
  int rc;
  while ((rc = rpc_locks_list_next(st, &m)) == 1) {
    for (size_t i = 0; i < m->n_locks; i++) {
      Strata__V1__LockInfo *l = m->locks[i];
      seen *e = seen_next(&s, &ns, &cap);
      snprintf(e->name, sizeof e->name, "%.*s", (int)l->row.len, (char *)l->row.data);
      e->exp = l->expires_at_ns;
      snprintf(e->val, sizeof e->val, "%llu/%llu", (unsigned long long)l->op_id,
               (unsigned long long)l->fencing_token);
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
  return seen_check(d, 'r', s, ns, rc, now);
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
      seen *e = seen_next(&s, &ns, &cap);
      snprintf(e->name, sizeof e->name, "op%llu", (unsigned long long)m->ops[i]->op_id);
      snprintf(e->val, sizeof e->val, "%d", m->ops[i]->status);
    }
    rpc_free(m);
  }
  rpc_cstream_close(st);
  return seen_check(d, 'o', s, ns, rc, 0);
}

/* One version Kv.Versions listed (generation g at time t): the first one is the
 * previous check's latest, unchanged; the others follow gaplessly, each later. */
static void note_version(drv *d, uint64_t g, int64_t t, uint64_t *first, uint64_t *last) {
  if (!*first && d->vers_last && (g != d->vers_last || d->times[g] != t))
    kl_violation(d, "Kv.Versions from %llu starts at generation %llu",
                 (unsigned long long)d->vers_last, (unsigned long long)g);
  else if (*first && g != *last + 1)
    kl_violation(d, "Kv.Versions: generation %llu follows %llu", (unsigned long long)g,
                 (unsigned long long)*last);
  if (!*first) *first = g;
  if (g >= d->ntimes) {
    d->times = realloc(d->times, (2 * g + 4096) * sizeof *d->times);
    memset(d->times + d->ntimes, 0, (2 * g + 4096 - d->ntimes) * sizeof *d->times);
    d->ntimes = 2 * g + 4096;
  }
  if (g > 1 && d->times[g - 1] && t <= d->times[g - 1])
    kl_violation(d, "Kv.Versions: commit time of generation %llu not after the previous one",
                 (unsigned long long)g);
  d->times[g] = t;
  *last = g;
}

/* Time travel: each value of acknowledged commit `a` read back at its generation. */
static void read_back(drv *d, rpc_client *c, const ack_commit *a) {
  Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
  pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
  pin.generation = a->gen;
  for (int j = 0; j < a->n; j++) {
    char key[48];
    snprintf(key, sizeof key, "%s", a->kv[j]);
    char *want = strchr(key, '=');
    *want++ = 0;
    Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
    gq.key = kl_bin(key);
    gq.pin = &pin;
    Strata__V1__GetResponse *g = NULL;
    if (rpc_kv_get(c, NULL, &gq, &g)) {
      kl_violation(d, "Kv.Get %s at generation %llu: %s", key, (unsigned long long)a->gen,
                   strata_errmsg());
      continue;
    }
    char got[48] = "D";
    if (g->found) kl_value_name(key, g->value.data, g->value.len, got, sizeof got);
    if (strcmp(got, want) != 0)
      kl_violation(d, "%s at generation %llu is %s, acknowledged %s", key,
                   (unsigned long long)a->gen, got, want);
    else
      d->timetravel++;
    rpc_free(g);
  }
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
    for (size_t i = 0; i < m->n_versions; i++)
      note_version(d, m->versions[i]->generation, m->versions[i]->commit_time_ns, &first, &last);
    rpc_free(m);
  }
  rpc_cstream_close(st);
  if (rc) {
    kl_violation(d, "Kv.Versions from %llu: %s", (unsigned long long)d->vers_last, strata_errmsg());
    return 0;
  }
  if (last < d->max_gen || last < d->vers_last)
    kl_violation(d, "latest generation %llu is below the acknowledged %llu or the %llu seen before",
                 (unsigned long long)last, (unsigned long long)d->max_gen,
                 (unsigned long long)d->vers_last);
  for (size_t i = d->checked_acks; i < d->nacks; i++) {
    ack_commit *a = &d->acks[i];
    if (a->gen > last || a->gen >= d->ntimes || d->times[a->gen] != a->ctime)
      kl_violation(d, "acknowledged commit at generation %llu time %lld is not in Kv.Versions",
                   (unsigned long long)a->gen, (long long)a->ctime);
  }
  d->vers_last = last;
  /* Time travel: the newest acknowledged commits (at most TT_PER_CYCLE), and 16
   * older ones at random. */
  size_t from = d->checked_acks;
  if (d->nacks > from + TT_PER_CYCLE) from = d->nacks - TT_PER_CYCLE;
  for (size_t i = from; d->nacks && i < d->nacks + 16; i++)
    read_back(d, c, &d->acks[i < d->nacks ? i : (size_t)sys_below(&d->rng, d->nacks)]);
  d->checked_acks = d->nacks;
  return 0;
}

void kl_verify(drv *d, const char *addr) {
  read_histories(d);
  check_ids(d);
  rpc_client_opts o = {.addr = addr, .timeout_ms = 120000};
  rpc_client *c;
  if (rpc_client_open(&o, &c)) {
    kl_violation(d, "cannot open a client to %s", addr);
    return;
  }
  if (check_keys(d, c) || check_locks(d, c) || check_ops(d, c) || check_versions(d, c))
    kl_violation(d, "reading the restarted server failed: %s", strata_errmsg());
  rpc_client_close(c);
}

/* The store checked offline, the server down: every generation's tree walked
 * (keys) since the last check (all when `full`), values read at the latest and
 * at `sample` spread generations. */
void kl_offline_check(drv *d, const char *dir, int full, int sample) {
  char path[700];
  snprintf(path, sizeof path, "%s/kv", dir);
  st_options so = {.read_only = 1};
  st_db *db;
  int rc = st_open(path, &so, &db);
  if (rc) {
    kl_violation(d, "offline check: st_open %s: %s", path, strata_errmsg());
    return;
  }
  st_version_info *v = NULL;
  size_t nv = 0;
  if ((rc = st_versions(db, full ? 0 : d->offline_last, 0, &v, &nv)))
    kl_violation(d, "offline check: st_versions: %s", strata_errmsg());
  if (nv) d->offline_last = v[nv - 1].generation;
  for (size_t i = 0; !rc && i < nv; i++) {
    int values = i + 1 == nv || (sample && i % (nv / (size_t)sample + 1) == 0);
    st_snap *s;
    if ((rc = st_snap_at_generation(db, v[i].generation, &s))) {
      kl_violation(d, "offline check: generation %llu: %s", (unsigned long long)v[i].generation,
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
        kl_violation(d, "offline check: list at generation %llu: %s",
                     (unsigned long long)v[i].generation, strata_errmsg());
        break;
      }
      total += res.n;
      for (size_t j = 0; values && j < res.n; j++) {
        char name[48], got[48];
        snprintf(name, sizeof name, "%.*s", (int)res.items[j].klen, (char *)res.items[j].key);
        if (name[0] != 'k') continue;
        kl_value_name(name, res.items[j].value, res.items[j].vlen, got, sizeof got);
        if (!strcmp(got, "BAD"))
          kl_violation(d, "offline check: %s at generation %llu has damaged bytes", name,
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
      kl_violation(d, "offline check: generation %llu lists %zu keys, its version says %llu",
                   (unsigned long long)v[i].generation, total, (unsigned long long)v[i].num_keys);
    st_snap_release(s);
  }
  free(v);
  st_close(db);
  d->offline_checks++;
}
