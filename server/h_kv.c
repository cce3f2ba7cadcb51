/*
 * strata.v1.Kv handlers over the store engine (storage/store.h): Get,
 * BatchGet, List, Commit and Versions (Watch is in h_watch.c). Every request
 * is validated first; a version pin resolves to one snapshot that the whole
 * call reads. Commit never parks a thread: the handler submits the
 * transaction and the store's completion callback, on the committer thread,
 * answers the call and wakes the watchers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "common/keyshow.h"
#include "locks/acked.h"
#include "server/log.h"
#include "server/srv_int.h"
#include "server/validate.h"

#define LIST_MAX_ENTRIES 1000 /* entries per List message */
#define LIST_MAX_BYTES (1u << 20) /* and about this many bytes */
#define VERSIONS_PAGE 1000

/* --- validation ---------------------------------------------------------------- */

static int check_get(const ProtobufCMessage *m) {
  const Strata__V1__GetRequest *r = (const void *)m;
  int rc = v_key("key", &r->key);
  return rc ? rc : v_pin("pin", r->pin);
}

static int check_batch_get(const ProtobufCMessage *m) {
  const Strata__V1__BatchGetRequest *r = (const void *)m;
  int rc = v_count("keys", r->n_keys, 1, V_MAX_BATCH);
  for (size_t i = 0; !rc && i < r->n_keys; i++) rc = v_key_at("keys", i, "", &r->keys[i]);
  return rc ? rc : v_pin("pin", r->pin);
}

static int cmp_bytes(const void *a, size_t an, const void *b, size_t bn) {
  size_t n = an < bn ? an : bn;
  int c = n ? memcmp(a, b, n) : 0;
  return c ? c : (an > bn) - (an < bn);
}

static int check_list(const ProtobufCMessage *m) {
  const Strata__V1__ListRequest *r = (const void *)m;
  int rc;
  if ((rc = v_bound("start", &r->start)) || (rc = v_bound("end", &r->end)) ||
      (rc = v_bound("prefix", &r->prefix)))
    return rc;
  if (r->start.len && r->end.len &&
      cmp_bytes(r->end.data, r->end.len, r->start.data, r->start.len) <= 0)
    return strata_err(STRATA_EINVALID,
                      "end: must be greater than start (the range [start, end) "
                      "is empty or inverted)");
  return v_pin("pin", r->pin);
}

/* The request-only checks of puts[i].ref (coordinator mode); the file's
 * existence, registration, size and checksum are checked by ref_checks. */
static int check_ref(const Strata__V1__CommitRequest *r, size_t i) {
  const Strata__V1__Put *p = r->puts[i];
  if (!p->ref) return 0;
  char f[64];
  if (p->value.len)
    return strata_err(STRATA_EINVALID,
                      "puts[%zu]: both value (%zu bytes) and ref are set; a put carries one",
                      i, p->value.len);
  if (!r->writer_id)
    return strata_err(STRATA_EINVALID,
                      "writer_id: required with puts by reference (puts[%zu].ref); register "
                      "with Coordinator.RegisterWriter",
                      i);
  if (p->ref->length == 0 || p->ref->length > UINT32_MAX)
    return strata_err(STRATA_EINVALID, "puts[%zu].ref.length: must be 1..4294967295, got %llu", i,
                      (unsigned long long)p->ref->length);
  if (p->ref->offset > (UINT64_MAX >> 2))
    return strata_err(STRATA_EINVALID, "puts[%zu].ref.offset: %llu is out of bounds", i,
                      (unsigned long long)p->ref->offset);
  snprintf(f, sizeof f, "puts[%zu].ref.path", i);
  return wreg_check_path(r->writer_id, f, p->ref->path ? p->ref->path : "");
}

static int check_commit(const ProtobufCMessage *m) {
  const Strata__V1__CommitRequest *r = (const void *)m;
  int rc = 0;
  size_t nw = r->n_puts + r->n_deletes;
  if (nw == 0)
    return strata_err(STRATA_EINVALID,
                      "puts, deletes: a commit must write or delete at least "
                      "one key (conditions alone are refused: to check them, read)");
  for (size_t i = 0; !rc && i < r->n_puts; i++) rc = v_key_at("puts", i, ".key", &r->puts[i]->key);
  for (size_t i = 0; !rc && i < r->n_puts; i++) rc = check_ref(r, i);
  for (size_t i = 0; !rc && i < r->n_deletes; i++) rc = v_key_at("deletes", i, "", &r->deletes[i]);
  for (size_t i = 0; !rc && i < r->n_conditions; i++) {
    const Strata__V1__Condition *c = r->conditions[i];
    char f[64];
    if ((rc = v_key_at("conditions", i, ".key", &c->key))) break;
    snprintf(f, sizeof f, "conditions[%zu].kind", i);
    if ((rc = v_enum(f, c->kind, V_ENUM_SET, &strata__v1__condition__kind__descriptor))) break;
    if (c->kind == STRATA__V1__CONDITION__KIND__KIND_VALUE_HASH &&
        c->value_hash.len != ST_HASH_BYTES)
      rc = strata_err(STRATA_EINVALID,
                      "conditions[%zu].value_hash: must be %d bytes (BLAKE2b-256 "
                      "of the value), got %zu",
                      i, ST_HASH_BYTES, c->value_hash.len);
  }
  if (!rc && r->fence) {
    if (!(rc = v_op_id("fence.op_id", r->fence->op_id)))
      rc = v_rows("fence.rows", r->fence->n_rows, r->fence->rows);
  }
  if (rc) return rc;
  const ProtobufCBinaryData **keys = malloc(nw * sizeof *keys);
  if (!keys) return strata_err(STRATA_ENOMEM, "out of memory");
  for (size_t i = 0; i < r->n_puts; i++) keys[i] = &r->puts[i]->key;
  for (size_t i = 0; i < r->n_deletes; i++) keys[r->n_puts + i] = &r->deletes[i];
  rc = v_distinct("puts, deletes", nw, keys);
  free(keys);
  return rc;
}

static int check_versions(const ProtobufCMessage *m) {
  const Strata__V1__VersionsRequest *r = (const void *)m;
  if (r->start_generation && r->end_generation && r->end_generation < r->start_generation)
    return strata_err(STRATA_EINVALID, "end_generation: %llu is before start_generation %llu",
                      (unsigned long long)r->end_generation,
                      (unsigned long long)r->start_generation);
  return 0;
}

/* sn NULL: generation 0 (srv__snap_at). */
static void version_of(Strata__V1__Version *v, const st_snap *sn) {
  strata__v1__version__init(v);
  if (!sn) return;
  st_version_info vi = st_snap_info(sn);
  v->generation = vi.generation;
  v->commit_time_ns = (int64_t)vi.commit_time;
}

/* --- Get, BatchGet ------------------------------------------------------------------ */

static void h_get(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__GetRequest *r = (const void *)m;
  st_snap *sn;
  int rc = srv__snap_at(s, "pin", r->pin, &sn);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  strata_buf val = STRATA_BUF_INIT;
  rc = sn ? st_get(sn, r->key.data, r->key.len, &val) : STRATA_ENOTFOUND;
  if (rc && rc != STRATA_ENOTFOUND) {
    if (sn) st_snap_release(sn);
    strata_buf_free(&val);
    srv__fail(call, rc);
    return;
  }
  Strata__V1__Version v;
  version_of(&v, sn);
  Strata__V1__GetResponse resp = STRATA__V1__GET_RESPONSE__INIT;
  resp.found = rc == 0;
  resp.value = (ProtobufCBinaryData){val.len, val.p};
  resp.version = &v;
  rpc_call_reply(call, &resp.base);
  strata_buf_free(&val);
  if (sn) st_snap_release(sn);
}

static void h_batch_get(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__BatchGetRequest *r = (const void *)m;
  st_snap *sn;
  int rc = srv__snap_at(s, "pin", r->pin, &sn);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  size_t n = r->n_keys;
  st_key *keys = calloc(n, sizeof *keys);
  st_getres *res = calloc(n, sizeof *res);
  Strata__V1__KeyValue *kv = calloc(n, sizeof *kv);
  Strata__V1__KeyValue **ptrs = calloc(n, sizeof *ptrs);
  if (!keys || !res || !kv || !ptrs) {
    rc = strata_err(STRATA_ENOMEM, "BatchGet of %zu keys: out of memory", n);
    goto out;
  }
  for (size_t i = 0; i < n; i++) keys[i] = (st_key){r->keys[i].data, r->keys[i].len};
  for (size_t i = 0; !sn && i < n; i++) res[i].rc = STRATA_ENOTFOUND; /* generation 0 */
  if (sn && (rc = st_get_batch(sn, n, keys, res))) goto out;
  for (size_t i = 0; i < n; i++) {
    if (res[i].rc && res[i].rc != STRATA_ENOTFOUND) {
      char show[STRATA_KEY_SHOW_BUF];
      rc = strata_err(res[i].rc, "keys[%zu] (%s): %s", i, strata_key_show(r->keys[i].data, r->keys[i].len, show, sizeof show),
                      strata_strerror(res[i].rc));
      goto out;
    }
    strata__v1__key_value__init(&kv[i]);
    kv[i].key = r->keys[i];
    kv[i].found = res[i].rc == 0;
    kv[i].value = (ProtobufCBinaryData){res[i].value.len, res[i].value.p};
    ptrs[i] = &kv[i];
  }
  Strata__V1__Version v;
  version_of(&v, sn);
  Strata__V1__BatchGetResponse resp = STRATA__V1__BATCH_GET_RESPONSE__INIT;
  resp.n_entries = n;
  resp.entries = ptrs;
  resp.version = &v;
  rpc_call_reply(call, &resp.base);
out:
  if (rc) srv__fail(call, rc);
  for (size_t i = 0; res && i < n; i++) strata_buf_free(&res[i].value);
  free(keys);
  free(res);
  free(kv);
  free(ptrs);
  if (sn) st_snap_release(sn);
}

/* --- List (stream) ------------------------------------------------------------------ */

typedef struct list_state {
  st_snap *sn;
  strata_buf start; /* next key to list, inclusive */
  strata_buf end; /* exclusive bound when has_end */
  int has_end;
  int keys_only;
  uint64_t left; /* entries still allowed; UINT64_MAX = no limit */
  int done;
  int sent; /* a first message went out: it always does, so the client learns the version */
} list_state;

static void list_free(void *p) {
  list_state *st = p;
  if (st->sn) st_snap_release(st->sn);
  strata_buf_free(&st->start);
  strata_buf_free(&st->end);
  free(st);
}

/* Sets st's range to [start, end) ∩ [prefix, prefix_end). */
static int list_range(list_state *st, const Strata__V1__ListRequest *r) {
  int rc = 0;
  const ProtobufCBinaryData *lo = &r->start;
  if (r->prefix.len && cmp_bytes(r->prefix.data, r->prefix.len, lo->data, lo->len) > 0)
    lo = &r->prefix;
  if ((rc = strata_buf_append(&st->start, lo->data, lo->len))) return rc;
  if (r->end.len) {
    st->has_end = 1;
    rc = strata_buf_append(&st->end, r->end.data, r->end.len);
  }
  if (!rc && r->prefix.len) {
    st_range pr;
    strata_buf pend = STRATA_BUF_INIT;
    rc = st_prefix_range(r->prefix.data, r->prefix.len, &pr, &pend);
    if (!rc && pr.has_end &&
        (!st->has_end || cmp_bytes(pr.end, pr.end_len, st->end.p, st->end.len) < 0)) {
      st->end.len = 0;
      st->has_end = 1;
      rc = strata_buf_append(&st->end, pr.end, pr.end_len);
    }
    strata_buf_free(&pend);
  }
  if (!rc && st->has_end && cmp_bytes(st->start.p, st->start.len, st->end.p, st->end.len) >= 0)
    st->done = 1; /* empty intersection */
  return rc;
}

static void list_next(rpc_call *call, void *p) {
  list_state *st = p;
  if (rpc_call_stopping(call)) {
    rpc_call_fail(call, rpc_call_stop_reason(call), "Kv.List stopped");
    return;
  }
  if ((st->done || st->left == 0) && st->sent) {
    rpc_stream_end(call);
    return;
  }
  if (st->done || st->left == 0) st->done = 1; /* nothing to read: just the first message */
  st_range rg = {st->start.p, st->start.len, st->has_end ? st->end.p : NULL,
                 st->end.len, st->has_end,   st->keys_only};
  size_t want = st->left < LIST_MAX_ENTRIES ? (size_t)st->left : LIST_MAX_ENTRIES;
  st_list_result res;
  memset(&res, 0, sizeof res);
  int rc = st->done ? 0 : st_list(st->sn, &rg, want, &res);
  if (rc) {
    st_list_result_free(&res); /* empty after an error, but ours to free */
    srv__fail(call, rc);
    return;
  }
  /* Keep each message near LIST_MAX_BYTES: take a prefix of the page. */
  size_t k = 0, bytes = 0;
  while (k < res.n && (k == 0 || bytes + res.items[k].klen + res.items[k].vlen < LIST_MAX_BYTES)) {
    bytes += res.items[k].klen + res.items[k].vlen + 8;
    k++;
  }
  int send = 0;
  Strata__V1__KeyValue *kv = calloc(k ? k : 1, sizeof *kv);
  Strata__V1__KeyValue **ptrs = calloc(k ? k : 1, sizeof *ptrs);
  if (!kv || !ptrs) {
    rc = strata_err(STRATA_ENOMEM, "Kv.List: out of memory");
    goto out;
  }
  for (size_t i = 0; i < k; i++) {
    strata__v1__key_value__init(&kv[i]);
    kv[i].key = (ProtobufCBinaryData){res.items[i].klen, res.items[i].key};
    kv[i].found = 1;
    kv[i].value = (ProtobufCBinaryData){res.items[i].vlen, res.items[i].value};
    ptrs[i] = &kv[i];
  }
  /* Where the next message starts. */
  st->start.len = 0;
  if (k < res.n) {
    rc = strata_buf_append(&st->start, res.items[k].key, res.items[k].klen);
  } else if (res.more) {
    rc = strata_buf_append(&st->start, res.next.p, res.next.len);
  } else {
    st->done = 1;
  }
  if (st->left != UINT64_MAX) st->left -= k;
  send = k || !st->sent;
  if (!rc && send) {
    Strata__V1__Version v;
    version_of(&v, st->sn);
    Strata__V1__ListResponse resp = STRATA__V1__LIST_RESPONSE__INIT;
    resp.n_entries = k;
    resp.entries = ptrs;
    resp.version = &v;
    rc = rpc_stream_send(call, &resp.base);
    st->sent = 1;
  }
out:
  free(kv);
  free(ptrs);
  st_list_result_free(&res);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  if (!send) rpc_call_wake(call); /* nothing sent: go on to the end */
}

static void h_list(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__ListRequest *r = (const void *)m;
  int rc;
  list_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Kv.List: out of memory");
    return;
  }
  st->keys_only = r->keys_only;
  st->left = r->limit ? r->limit : UINT64_MAX;
  if ((rc = srv__snap_at(s, "pin", r->pin, &st->sn)) || (rc = list_range(st, r))) {
    list_free(st);
    srv__fail(call, rc);
    return;
  }
  if (!st->sn) st->done = 1; /* generation 0: nothing to list */
  rpc_stream_begin(call, list_next, st, list_free);
}

/* --- Commit --------------------------------------------------------------------------- */

typedef struct commit_ctx {
  srv *s;
  int64_t t0; /* CLOCK_MONOTONIC ns at submission: strata_commit_duration_seconds */
  rpc_call *call;
  const Strata__V1__CommitRequest *req; /* owned by the call, alive until it ends */
  lk_fence fence; /* the committer's lk_fence_check pins the rows, lk_fence_done unpins */
  lk_row *rows;
  uint64_t writer; /* writer_id when the commit has references; 0 otherwise */
  wreg_fence wf; /* with writer: its lease check and pin */
  uint64_t ref_bytes; /* the bytes its references name */
} commit_ctx;

/* The commit's fence, called by the committer at validation (storage/README.md
 * "Commit pipeline"): the writer's lease, then the lock fence. A live writer
 * is pinned (wreg_pin) until commit_fence_done, so GC cannot condemn it while
 * this commit is undecided; an ended one is refused here, after which its
 * files may go (server/README.md "Coordinator mode"). */
static int commit_fence(void *arg) {
  commit_ctx *c = arg;
  int rc = c->writer ? wreg_fence_check(&c->wf) : 0;
  if (!rc && c->req->fence && (rc = lk_fence_check(&c->fence)) && c->writer)
    wreg_fence_done(&c->wf, 0); /* refused: no done call will come for it */
  if (rc) __atomic_add_fetch(&c->s->m_fence_rejects, 1, __ATOMIC_RELAXED);
  return rc;
}

static void commit_fence_done(void *arg, int committed) {
  commit_ctx *c = arg;
  if (c->req->fence) lk_fence_done(&c->fence, committed);
  if (c->writer) wreg_fence_done(&c->wf, committed);
}

/* The store's completion callback, on the committer thread: answers the call. */
static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void commit_done(void *arg, const st_result *res) {
  commit_ctx *c = arg;
  if (res->rc == 0) {
    srv__metrics_commit(c->s, mono_ns() - c->t0);
    /* Recorded before the answer (README "Last acknowledged generation"); a
     * lock database that cannot take it only weakens the rollback check. */
    if (lk_acked_generation_note(c->s->lk, res->generation))
      srv_log(SRV_LOG_WARN, "event=acked_generation_not_recorded generation=%llu msg=\"%s\"",
              (unsigned long long)res->generation, strata_errmsg());
    Strata__V1__Version v = STRATA__V1__VERSION__INIT;
    v.generation = res->generation;
    v.commit_time_ns = (int64_t)res->commit_time;
    Strata__V1__CommitResponse resp = STRATA__V1__COMMIT_RESPONSE__INIT;
    resp.version = &v;
    resp.fence_expired_in_flight = c->fence.expired_in_flight; /* set by lk_fence_done, before us */
    if (c->writer) wreg_note_commit(c->s->wr, c->writer, res->generation, c->ref_bytes);
    rpc_call_reply(c->call, &resp.base);
    srv__watch_notify(c->s);
  } else if (res->rc == STRATA_ECONDITION) {
    /* Name the condition by its index in the request (commit_build adds
     * them in request order). The store's message names the kind, the key
     * and why. */
    rpc_call_fail(c->call, STRATA_ECONDITION, "conditions[%zu]: %s", res->failed_condition_index, res->message);
  } else {
    /* A fence refusal included: the store keeps the lock manager's message
     * (which row, which holder). */
    rpc_call_fail(c->call, res->rc, "commit failed: %s", res->message);
  }
  free(c->rows);
  free(c);
}

/* Adds the request's writes and conditions to t. */
static int commit_build(st_txn *t, const Strata__V1__CommitRequest *r) {
  int rc = 0;
  /* The values are borrowed: the request lives until commit_done has answered. */
  for (size_t i = 0; !rc && i < r->n_puts; i++) {
    const Strata__V1__Put *p = r->puts[i];
    rc = p->ref ? st_txn_put_ref(t, p->key.data, p->key.len, p->ref->path, p->ref->offset,
                                 p->ref->length)
                : st_txn_put_borrowed(t, p->key.data, p->key.len, p->value.data, p->value.len);
  }
  for (size_t i = 0; !rc && i < r->n_deletes; i++)
    rc = st_txn_delete(t, r->deletes[i].data, r->deletes[i].len);
  for (size_t i = 0; !rc && i < r->n_conditions; i++) {
    const Strata__V1__Condition *k = r->conditions[i];
    switch (k->kind) {
    case STRATA__V1__CONDITION__KIND__KIND_ABSENT:
      rc = st_txn_require_absent(t, k->key.data, k->key.len);
      break;
    case STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE:
      rc = st_txn_require_unchanged(t, k->key.data, k->key.len, k->generation);
      break;
    case STRATA__V1__CONDITION__KIND__KIND_VALUE_HASH:
      rc = st_txn_require_hash(t, k->key.data, k->key.len, k->value_hash.data);
      break;
    case STRATA__V1__CONDITION__KIND__KIND_UNSPECIFIED: /* check_commit refused it */
    case _STRATA__V1__CONDITION__KIND_IS_INT_SIZE:
      rc = strata_err(STRATA_EINVALID, "conditions[%zu].kind: not a condition", i);
      break;
    } /* No default: check_commit takes every kind kv.proto names, and -Wswitch
       * fails the build until a new one is handled here. */
  }
  return rc;
}

/* The checks of the references that need the files and the registry, before
 * anything is submitted: the writer is live, each file exists, was registered
 * by it, holds the range, and the range has the CRC-32C given. The lease is
 * checked again in commit_fence, which is what counts. */
static int ref_checks(srv *s, const Strata__V1__CommitRequest *r, uint64_t *bytes) {
  int rc = wreg_check_live(s->wr, r->writer_id);
  if (rc) return strata_err_wrap(rc, "writer_id");
  const char *last = NULL; /* the file of the previous reference, and its size */
  uint64_t size = 0;
  for (size_t i = 0; i < r->n_puts; i++) {
    const Strata__V1__Put *p = r->puts[i];
    if (!p->ref) continue;
    const Strata__V1__DataRef *d = p->ref;
    char show[STRATA_KEY_SHOW_BUF];
    const char *key = strata_key_show(p->key.data, p->key.len, show, sizeof show);
    uint64_t reg;
    /* A task commits many ranges of one file: look each file up once. */
    if (!last || strcmp(last, d->path)) {
      if ((rc = st_file_size(s->db, d->path, &size)))
        return strata_err(rc, "puts[%zu] (key %s): ref.path %s does not exist in the store directory",
                          i, key, d->path);
      if ((rc = wreg_file_size(s->wr, r->writer_id, d->path, &reg)) == STRATA_ENOTFOUND)
        return strata_err(STRATA_ECONDITION,
                          "puts[%zu] (key %s): ref.path %s was not registered by writer %llu "
                          "(Coordinator.RegisterFile)",
                          i, key, d->path, (unsigned long long)r->writer_id);
      if (rc) return rc;
      last = d->path;
    }
    if (d->offset + d->length > size)
      return strata_err(STRATA_ERANGE,
                        "puts[%zu] (key %s): ref names bytes [%llu, %llu) of %s, which has %llu "
                        "bytes",
                        i, key, (unsigned long long)d->offset,
                        (unsigned long long)(d->offset + d->length), d->path,
                        (unsigned long long)size);
    *bytes += d->length;
    if (!d->has_crc32c) continue;
    uint32_t crc;
    if ((rc = st_file_crc32c(s->db, d->path, d->offset, d->length, &crc))) return rc;
    if (crc != d->crc32c)
      return strata_err(STRATA_ECORRUPT,
                        "puts[%zu] (key %s): bytes [%llu, %llu) of %s have CRC-32C 0x%08x, the "
                        "request says 0x%08x",
                        i, key, (unsigned long long)d->offset,
                        (unsigned long long)(d->offset + d->length), d->path, crc, d->crc32c);
  }
  return 0;
}

static int has_refs(const Strata__V1__CommitRequest *r) {
  for (size_t i = 0; i < r->n_puts; i++)
    if (r->puts[i]->ref) return 1;
  return 0;
}

static void commit_submit(rpc_call *call, const ProtobufCMessage *m, void *ctx);

static void h_commit(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__CommitRequest *r = (const void *)m;
  /* References read files (sizes, checksums): not on a poller. */
  if (has_refs(r)) srv__run_io(s, commit_submit, call, m);
  else commit_submit(call, m, ctx);
}

static void commit_submit(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__CommitRequest *r = (const void *)m;
  uint64_t ref_bytes = 0;
  int refs = has_refs(r);
  int rc = refs ? ref_checks(s, r, &ref_bytes) : 0;
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  commit_ctx *c = calloc(1, sizeof *c);
  if (!c) {
    rpc_call_fail(call, STRATA_ENOMEM, "Kv.Commit: out of memory");
    return;
  }
  *c = (commit_ctx){.s = s, .t0 = mono_ns(), .call = call, .req = r, .writer = refs ? r->writer_id : 0,
                    .wf = {s->wr, r->writer_id}, .ref_bytes = ref_bytes};
  st_txn *t = NULL;
  if ((rc = st_txn_begin(s->db, &t)) || (rc = commit_build(t, r))) goto fail;
  if (r->fence) {
    c->rows = malloc(r->fence->n_rows * sizeof *c->rows);
    if (!c->rows) {
      rc = strata_err(STRATA_ENOMEM, "Kv.Commit: out of memory");
      goto fail;
    }
    for (size_t i = 0; i < r->fence->n_rows; i++)
      c->rows[i] = (lk_row){r->fence->rows[i].data, r->fence->rows[i].len};
    c->fence = (lk_fence){.lk = s->lk, .op = r->fence->op_id, .rows = c->rows,
                          .nrows = r->fence->n_rows};
  }
  if (r->fence || c->writer) {
    st_txn_set_fence(t, commit_fence, c);
    st_txn_set_fence_done(t, commit_fence_done); /* c lives until commit_done, which comes after */
  }
  if ((rc = st_txn_submit(t, commit_done, c))) {
    t = NULL; /* ownership passed even on failure */
    goto fail;
  }
  return; /* commit_done answers */
fail:
  if (t) st_txn_abort(t);
  free(c->rows);
  free(c);
  srv__fail(call, rc);
}

/* --- Versions (stream) ------------------------------------------------------------------ */

typedef struct versions_state {
  srv *s;
  uint64_t lo, hi; /* remaining range, inclusive; lo > hi = done */
  uint64_t left; /* versions still allowed */
  int desc;
} versions_state;

static void versions_next(rpc_call *call, void *p) {
  versions_state *st = p;
  if (rpc_call_stopping(call)) {
    rpc_call_fail(call, rpc_call_stop_reason(call), "Kv.Versions stopped");
    return;
  }
  if (st->lo > st->hi || st->left == 0) {
    rpc_stream_end(call);
    return;
  }
  uint64_t from = st->lo;
  if (st->desc && st->hi - st->lo >= VERSIONS_PAGE) from = st->hi - (VERSIONS_PAGE - 1);
  st_version_info *vs = NULL;
  size_t n = 0;
  int rc = st_versions(st->s->db, from, VERSIONS_PAGE, &vs, &n);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  while (n && vs[n - 1].generation > st->hi) n--; /* clip to the range */
  size_t k = n < st->left ? n : (size_t)st->left;
  Strata__V1__Version *v = calloc(k ? k : 1, sizeof *v);
  Strata__V1__Version **ptrs = calloc(k ? k : 1, sizeof *ptrs);
  if (!v || !ptrs) {
    rc = strata_err(STRATA_ENOMEM, "Kv.Versions: out of memory");
  } else {
    for (size_t i = 0; i < k; i++) {
      const st_version_info *vi = st->desc ? &vs[n - 1 - i] : &vs[i];
      strata__v1__version__init(&v[i]);
      v[i].generation = vi->generation;
      v[i].commit_time_ns = (int64_t)vi->commit_time;
      ptrs[i] = &v[i];
    }
    if (k) {
      Strata__V1__VersionsResponse resp = STRATA__V1__VERSIONS_RESPONSE__INIT;
      resp.n_versions = k;
      resp.versions = ptrs;
      rc = rpc_stream_send(call, &resp.base);
    }
  }
  /* Advance past what this page covered. */
  if (st->desc) {
    if (from <= st->lo)
      st->lo = st->hi + 1; /* that was the last page */
    else
      st->hi = from - 1;
  } else if (k == 0) {
    st->lo = st->hi + 1; /* nothing at or after lo */
  } else {
    st->lo = vs[k - 1].generation + 1;
  }
  st->left -= k;
  free(v);
  free(ptrs);
  free(vs);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  if (!k) rpc_call_wake(call);
}

static void h_versions(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__VersionsRequest *r = (const void *)m;
  uint64_t latest;
  int rc = srv__latest_generation(s, &latest);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  versions_state *st = calloc(1, sizeof *st);
  if (!st) {
    rpc_call_fail(call, STRATA_ENOMEM, "Kv.Versions: out of memory");
    return;
  }
  st->s = s;
  st->lo = r->start_generation ? r->start_generation : 1;
  st->hi = r->end_generation && r->end_generation < latest ? r->end_generation : latest;
  st->left = r->limit ? r->limit : UINT64_MAX;
  st->desc = r->descending;
  rpc_stream_begin(call, versions_next, st, free);
}

void srv__kv_bind(srv *s, rpc_handler *h) {
  static const srv_route routes[] = {
      {RPC_M_kv_get, check_get, h_get, SRV_READ},
      {RPC_M_kv_batch_get, check_batch_get, h_batch_get, SRV_READ},
      {RPC_M_kv_list, check_list, h_list, SRV_READ},
      /* A commit with references moves itself to the io pool (h_commit). */
      {RPC_M_kv_commit, check_commit, h_commit, 0},
      {RPC_M_kv_versions, check_versions, h_versions, 0},
  };
  srv__bind(s, h, routes, sizeof routes / sizeof routes[0]);
}
