/*
 * strata.v1.Kv/Watch: streams, for each generation after from_generation, the
 * keys it changed under a prefix (the store's diff between the generation and
 * the one before), first from history and then live.
 *
 * A Watch stream is registered in srv's watcher list for its whole life; every
 * successful commit wakes every watcher (srv__watch_notify). The stream is
 * registered before it first looks at the latest generation, so a commit that
 * lands between "nothing new" and "wait" still wakes it: no missed generation.
 * Each generation is sent whole (split across messages with more = true when
 * large) and in order, so a client that resumes from the last generation it
 * completed sees nothing twice. A generation's changes are found as they are
 * sent: the diff walk pauses once a message is full (plus one change of
 * look-ahead, which tells whether more follow) and resumes for the next, so a
 * stream holds one message's keys, however many keys the generation changed.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define WATCH_MAX_CHANGES 1000 /* changes per message */
#define WATCH_MAX_BYTES (1u << 20) /* and about this many key bytes */
#define WATCH_EMPTY_BUDGET 64 /* empty generations skipped per run before yielding */

typedef struct change {
  uint8_t *key;
  size_t klen;
  int deleted;
} change;

typedef struct watch_state {
  srv *s;
  rpc_call *call;
  strata_buf prefix;
  uint64_t last; /* last generation completely sent (or skipped) */
  uint64_t pend_gen; /* generation being sent (pending: it != NULL or nch > 0) */
  int64_t pend_time;
  st_diff_iter *it;  /* its diff walk; NULL once finished */
  change *ch;        /* found and not yet sent, in key order */
  size_t nch, cap;
  size_t bytes;      /* what they count against WATCH_MAX_BYTES */
  int registered;
} watch_state;

/* --- the watcher list ------------------------------------------------------------- */

void srv__watch_notify(srv *s) {
  strata_mutex_lock(&s->wmu);
  for (size_t i = 0; i < s->nwatch; i++) rpc_call_wake(s->watchers[i]);
  strata_mutex_unlock(&s->wmu);
}

/* ret_mu held: a watcher registered after a floor computation is checked
 * against that floor (server/retain.c). Lock order: ret_mu, then wmu. */
static int watch_register(srv *s, rpc_call *call, uint64_t *pos) {
  strata_mutex_assert_held(&s->ret_mu);
  strata_mutex_lock(&s->wmu);
  if (s->nwatch == s->capwatch) {
    size_t cap = s->capwatch ? 2 * s->capwatch : 16;
    rpc_call **w = realloc(s->watchers, cap * sizeof *w);
    uint64_t **p = w ? realloc(s->watchpos, cap * sizeof *p) : NULL;
    if (w) s->watchers = w;
    if (p) s->watchpos = p;
    if (!w || !p) {
      strata_mutex_unlock(&s->wmu);
      return strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
    }
    s->capwatch = cap;
  }
  s->watchpos[s->nwatch] = pos;
  s->watchers[s->nwatch++] = call;
  strata_mutex_unlock(&s->wmu);
  return 0;
}

static void watch_unregister(srv *s, rpc_call *call) {
  strata_mutex_lock(&s->wmu);
  for (size_t i = 0; i < s->nwatch; i++) {
    if (s->watchers[i] == call) {
      s->watchpos[i] = s->watchpos[s->nwatch - 1];
      s->watchers[i] = s->watchers[--s->nwatch];
      break;
    }
  }
  strata_mutex_unlock(&s->wmu);
}

/* --- pending changes ----------------------------------------------------------------- */

static void changes_clear(watch_state *st) {
  for (size_t i = 0; i < st->nch; i++) free(st->ch[i].key);
  st->nch = st->bytes = 0;
}

static void watch_free(void *p) {
  watch_state *st = p;
  if (st->registered) watch_unregister(st->s, st->call);
  st_diff_close(st->it);
  changes_clear(st);
  free(st->ch);
  strata_buf_free(&st->prefix);
  free(st);
}

static int add_change(watch_state *st, const uint8_t *key, size_t klen, int deleted) {
  if (klen < st->prefix.len || (st->prefix.len && memcmp(key, st->prefix.p, st->prefix.len) != 0))
    return 0;
  if (strata_grow(&st->ch, &st->cap, st->nch + 1, sizeof *st->ch, 64))
    return strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
  uint8_t *k = malloc(klen ? klen : 1);
  if (!k) return strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
  memcpy(k, key, klen);
  st->ch[st->nch++] = (change){k, klen, deleted};
  st->bytes += klen + 8;
  return 0;
}

/* Full: more than one message holds, so at least one change is left over
 * after sending (the look-ahead that makes `more` true). */
static int full(const watch_state *st) { return st->nch > WATCH_MAX_CHANGES || st->bytes >= WATCH_MAX_BYTES; }

static int on_diff(void *ctx, const uint8_t *key, size_t klen, int put) {
  watch_state *st = ctx;
  int rc = add_change(st, key, klen, !put);
  return rc ? rc : full(st) ? ST_DIFF_PAUSE : 0;
}

/* Starts generation g: its diff against g - 1 (generation 1: against the
 * empty store). */
static int open_gen(watch_state *st, uint64_t g) {
  st_snap *a = NULL, *b = NULL;
  int rc = st_snap_at_generation(st->s->db, g, &b);
  if (rc == STRATA_ENOTFOUND)
    return strata_err(rc, "generation %llu is no longer in history; resume from a later one",
                      (unsigned long long)g);
  if (rc) return rc;
  st->pend_gen = g;
  st->pend_time = (int64_t)st_snap_info(b).commit_time;
  if (g == 1 || !(rc = st_snap_at_generation(st->s->db, g - 1, &a))) rc = st_diff_open(a, b, &st->it);
  if (a) st_snap_release(a);
  st_snap_release(b);
  return rc;
}

/* Walks the pending generation on until a message is full or it ends. */
static int pump(watch_state *st) {
  int done = 0, rc = 0;
  if (st->it && !full(st)) {
    rc = st_diff_step(st->it, on_diff, st, &done);
    if (rc == ST_DIFF_PAUSE) rc = 0;
    if (done) {
      st_diff_close(st->it);
      st->it = NULL;
    }
  }
  return rc;
}

/* Sends the next message of the pending generation: the changes that fit,
 * with more = true while any are left or the walk goes on. */
static int send_pending(rpc_call *call, watch_state *st) {
  size_t end = 0, bytes = 0;
  while (end < st->nch && end < WATCH_MAX_CHANGES && (end == 0 || bytes + st->ch[end].klen < WATCH_MAX_BYTES))
    bytes += st->ch[end++].klen + 8;
  Strata__V1__Change *c = calloc(end ? end : 1, sizeof *c);
  Strata__V1__Change **ptrs = calloc(end ? end : 1, sizeof *ptrs);
  int rc = 0, more = end < st->nch || st->it != NULL;
  if (!c || !ptrs) {
    rc = strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
  } else {
    for (size_t i = 0; i < end; i++) {
      strata__v1__change__init(&c[i]);
      c[i].key = (ProtobufCBinaryData){st->ch[i].klen, st->ch[i].key};
      c[i].deleted = st->ch[i].deleted;
      ptrs[i] = &c[i];
    }
    Strata__V1__Version v = STRATA__V1__VERSION__INIT;
    v.generation = st->pend_gen;
    v.commit_time_ns = st->pend_time;
    Strata__V1__WatchResponse resp = STRATA__V1__WATCH_RESPONSE__INIT;
    resp.version = &v;
    resp.n_changes = end;
    resp.changes = ptrs;
    resp.more = more;
    rc = rpc_stream_send(call, &resp.base);
  }
  free(c);
  free(ptrs);
  if (rc) return rc;
  for (size_t i = 0; i < end; i++) free(st->ch[i].key);
  memmove(st->ch, st->ch + end, (st->nch - end) * sizeof *st->ch);
  st->nch -= end;
  st->bytes = 0;
  for (size_t i = 0; i < st->nch; i++) st->bytes += st->ch[i].klen + 8;
  if (!more) __atomic_store_n(&st->last, st->pend_gen, __ATOMIC_RELEASE);
  return 0;
}

static void watch_next(rpc_call *call, void *p) {
  watch_state *st = p;
  if (rpc_call_stopping(call)) {
    rpc_call_fail(call, rpc_call_stop_reason(call), "Kv.Watch stopped at generation %llu",
                  (unsigned long long)st->last);
    return;
  }
  int rc = 0;
  if (st->it || st->nch) { /* the rest of the pending generation */
    if (!(rc = pump(st))) rc = send_pending(call, st);
  } else {
    for (int budget = WATCH_EMPTY_BUDGET;; budget--) {
      uint64_t latest;
      if ((rc = srv__latest_generation(st->s, &latest))) break;
      if (st->last >= latest) return; /* caught up: wait for srv__watch_notify */
      if (budget == 0) {
        rpc_call_wake(call); /* yield the executor, come back for more */
        return;
      }
      if ((rc = open_gen(st, st->last + 1)) || (rc = pump(st))) break;
      if (st->nch) {
        rc = send_pending(call, st);
        break;
      }
      __atomic_store_n(&st->last, st->last + 1, __ATOMIC_RELEASE); /* nothing under the prefix in this generation (the walk ended) */
    }
  }
  if (rc) srv__fail(call, rc);
}

static int check_watch(const ProtobufCMessage *m) {
  const Strata__V1__WatchRequest *r = (const void *)m;
  return v_bound("prefix", &r->prefix);
}

static void h_watch(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__WatchRequest *r = (const void *)m;
  uint64_t latest;
  int rc = srv__latest_generation(s, &latest);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  if (r->from_generation > latest) {
    rpc_call_fail(call, STRATA_ERANGE,
                  "from_generation: %llu is newer than the latest generation %llu",
                  (unsigned long long)r->from_generation, (unsigned long long)latest);
    return;
  }
  watch_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Kv.Watch: out of memory");
    return;
  }
  st->s = s;
  st->call = call;
  st->last = r->from_generation;
  /* Registered (its position pins retention) under ret_mu, then checked
   * against the floor: server/retain.c. */
  strata_mutex_lock(&s->ret_mu);
  if ((rc = strata_buf_append(&st->prefix, r->prefix.data, r->prefix.len)) ||
      (rc = watch_register(s, call, &st->last))) {
    strata_mutex_unlock(&s->ret_mu);
    watch_free(st);
    srv__fail(call, rc);
    return;
  }
  st->registered = 1;
  /* from 0 reads generation 1 first */
  rc = srv__retention_check(s, r->from_generation ? r->from_generation : latest ? 1 : 0, "from_generation");
  strata_mutex_unlock(&s->ret_mu);
  if (!rc && r->from_generation) {
    st_snap *sn;
    rc = st_snap_at_generation(s->db, r->from_generation, &sn);
    if (rc == STRATA_ENOTFOUND)
      rc = strata_err(rc, "from_generation: %llu is no longer in history",
                      (unsigned long long)r->from_generation);
    if (!rc) st_snap_release(sn);
  }
  if (rc) {
    watch_free(st);
    srv__fail(call, rc);
    return;
  }
  rpc_stream_begin(call, watch_next, st, watch_free);
}

void srv__watch_bind(srv *s, rpc_handler *h) {
  static const srv_route routes[] = {{RPC_M_kv_watch, check_watch, h_watch, 0}};
  srv__bind(s, h, routes, 1);
}
