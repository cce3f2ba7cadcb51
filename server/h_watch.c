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
 * completed sees nothing twice.
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
  uint64_t pend_gen; /* generation whose changes are in ch */
  int64_t pend_time;
  change *ch;
  size_t nch, cap, next;
  int registered;
} watch_state;

/* --- the watcher list ------------------------------------------------------------- */

void srv__watch_notify(srv *s) {
  pthread_mutex_lock(&s->wmu);
  for (size_t i = 0; i < s->nwatch; i++) rpc_call_wake(s->watchers[i]);
  pthread_mutex_unlock(&s->wmu);
}

static int watch_register(srv *s, rpc_call *call) {
  pthread_mutex_lock(&s->wmu);
  if (s->nwatch == s->capwatch) {
    size_t cap = s->capwatch ? 2 * s->capwatch : 16;
    rpc_call **w = realloc(s->watchers, cap * sizeof *w);
    if (!w) {
      pthread_mutex_unlock(&s->wmu);
      return strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
    }
    s->watchers = w;
    s->capwatch = cap;
  }
  s->watchers[s->nwatch++] = call;
  pthread_mutex_unlock(&s->wmu);
  return 0;
}

static void watch_unregister(srv *s, rpc_call *call) {
  pthread_mutex_lock(&s->wmu);
  for (size_t i = 0; i < s->nwatch; i++) {
    if (s->watchers[i] == call) {
      s->watchers[i] = s->watchers[--s->nwatch];
      break;
    }
  }
  pthread_mutex_unlock(&s->wmu);
}

/* --- pending changes ----------------------------------------------------------------- */

static void changes_clear(watch_state *st) {
  for (size_t i = 0; i < st->nch; i++) free(st->ch[i].key);
  st->nch = st->next = 0;
}

static void watch_free(void *p) {
  watch_state *st = p;
  if (st->registered) watch_unregister(st->s, st->call);
  changes_clear(st);
  free(st->ch);
  strata_buf_free(&st->prefix);
  free(st);
}

static int add_change(watch_state *st, const uint8_t *key, size_t klen, int deleted) {
  if (klen < st->prefix.len || (st->prefix.len && memcmp(key, st->prefix.p, st->prefix.len) != 0))
    return 0;
  if (st->nch == st->cap) {
    size_t cap = st->cap ? 2 * st->cap : 64;
    change *c = realloc(st->ch, cap * sizeof *c);
    if (!c) return strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
    st->ch = c;
    st->cap = cap;
  }
  uint8_t *k = malloc(klen ? klen : 1);
  if (!k) return strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
  memcpy(k, key, klen);
  st->ch[st->nch++] = (change){k, klen, deleted};
  return 0;
}

static int on_diff(void *ctx, const uint8_t *key, size_t klen, int put) {
  return add_change(ctx, key, klen, !put);
}

/* Generation 1 has no predecessor snapshot: its changes are all its keys. */
static int collect_first(watch_state *st, st_snap *b) {
  st_range rg;
  strata_buf end = STRATA_BUF_INIT, cur = STRATA_BUF_INIT;
  int rc = st_prefix_range(st->prefix.p, st->prefix.len, &rg, &end);
  rg.keys_only = 1;
  for (int more = 1; !rc && more;) {
    st_list_result res;
    memset(&res, 0, sizeof res);
    if ((rc = st_list(b, &rg, 4096, &res))) {
      st_list_result_free(&res);
      break;
    }
    for (size_t i = 0; !rc && i < res.n; i++)
      rc = add_change(st, res.items[i].key, res.items[i].klen, 0);
    more = res.more;
    if (!rc && more) {
      cur.len = 0;
      rc = strata_buf_append(&cur, res.next.p, res.next.len);
      rg.start = cur.p;
      rg.start_len = cur.len;
    }
    st_list_result_free(&res);
  }
  strata_buf_free(&end);
  strata_buf_free(&cur);
  return rc;
}

/* Fills st->ch with the changes of generation g. */
static int collect(watch_state *st, uint64_t g) {
  st_snap *a = NULL, *b = NULL;
  changes_clear(st);
  int rc = st_snap_at_generation(st->s->db, g, &b);
  if (rc == STRATA_ENOTFOUND)
    return strata_err(rc, "generation %llu is no longer in history; resume from a later one",
                      (unsigned long long)g);
  if (rc) return rc;
  st->pend_gen = g;
  st->pend_time = (int64_t)st_snap_info(b).commit_time;
  if (g == 1) {
    rc = collect_first(st, b);
  } else if (!(rc = st_snap_at_generation(st->s->db, g - 1, &a))) {
    rc = st_diff(a, b, on_diff, st);
  }
  if (a) st_snap_release(a);
  st_snap_release(b);
  return rc;
}

/* Sends the next slice of the pending generation. */
static int send_pending(rpc_call *call, watch_state *st) {
  size_t end = st->next, bytes = 0;
  while (end < st->nch && end - st->next < WATCH_MAX_CHANGES &&
         (end == st->next || bytes + st->ch[end].klen < WATCH_MAX_BYTES))
    bytes += st->ch[end++].klen + 8;
  size_t k = end - st->next;
  Strata__V1__Change *c = calloc(k, sizeof *c);
  Strata__V1__Change **ptrs = calloc(k, sizeof *ptrs);
  int rc = 0;
  if (!c || !ptrs) {
    rc = strata_err(STRATA_ENOMEM, "Kv.Watch: out of memory");
  } else {
    for (size_t i = 0; i < k; i++) {
      const change *x = &st->ch[st->next + i];
      strata__v1__change__init(&c[i]);
      c[i].key = (ProtobufCBinaryData){x->klen, x->key};
      c[i].deleted = x->deleted;
      ptrs[i] = &c[i];
    }
    Strata__V1__Version v = STRATA__V1__VERSION__INIT;
    v.generation = st->pend_gen;
    v.commit_time_ns = st->pend_time;
    Strata__V1__WatchResponse resp = STRATA__V1__WATCH_RESPONSE__INIT;
    resp.version = &v;
    resp.n_changes = k;
    resp.changes = ptrs;
    resp.more = end < st->nch;
    rc = rpc_stream_send(call, &resp.base);
  }
  free(c);
  free(ptrs);
  if (rc) return rc;
  st->next = end;
  if (st->next == st->nch) {
    st->last = st->pend_gen;
    changes_clear(st);
  }
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
  if (st->next < st->nch) {
    rc = send_pending(call, st);
  } else {
    for (int budget = WATCH_EMPTY_BUDGET;; budget--) {
      uint64_t latest;
      if ((rc = srv__latest_generation(st->s, &latest))) break;
      if (st->last >= latest) return; /* caught up: wait for srv__watch_notify */
      if (budget == 0) {
        rpc_call_wake(call); /* yield the executor, come back for more */
        return;
      }
      if ((rc = collect(st, st->last + 1))) break;
      if (st->nch) {
        rc = send_pending(call, st);
        break;
      }
      st->last++; /* nothing under the prefix in this generation */
    }
  }
  if (rc) srv__fail(call, rc);
}

static void h_watch(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__WatchRequest *r = (const void *)m;
  uint64_t latest;
  int rc = v_bound("prefix", &r->prefix);
  if (!rc) rc = srv__latest_generation(s, &latest);
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
  if (r->from_generation) {
    st_snap *sn;
    rc = st_snap_at_generation(s->db, r->from_generation, &sn);
    if (rc == STRATA_ENOTFOUND) {
      rpc_call_fail(call, rc, "from_generation: %llu is no longer in history",
                    (unsigned long long)r->from_generation);
      return;
    }
    if (rc) {
      srv__fail(call, rc);
      return;
    }
    st_snap_release(sn);
  }
  watch_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Kv.Watch: out of memory");
    return;
  }
  st->s = s;
  st->call = call;
  st->last = r->from_generation;
  if ((rc = strata_buf_append(&st->prefix, r->prefix.data, r->prefix.len)) ||
      (rc = watch_register(s, call))) {
    watch_free(st);
    srv__fail(call, rc);
    return;
  }
  st->registered = 1;
  rpc_stream_begin(call, watch_next, st, watch_free);
}

void srv__watch_bind(srv *s, rpc_handler *h) {
  h[RPC_M_kv_watch] = (rpc_handler){h_watch, s, NULL};
}
