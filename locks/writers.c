/*
 * The writer registry (writers.h): every writer is in memory, in id order,
 * and in RocksDB under 'W' id (its record), 'F' id path (its registered files)
 * and 'U' id (its commit statistics); 'N' is the id counter. Two mutexes:
 * `wmu` orders every change that is written (register, renew, unregister,
 * file registration, condemnation, forgetting), `mu` guards the memory and is
 * the only one the commit path takes (wreg_pin). Order: wmu, mu, then db_rw;
 * nothing waits for RocksDB while holding mu. locks/README.md "Writer
 * registry".
 */
#include "locks/writers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "locks/lk_int.h"

#define TAG_WRITER 'W'
#define TAG_WFILE 'F'
#define TAG_WUSAGE 'U'
#define TAG_WNEXT 'N'
#define REC_VERSION 1
#define REC_FIXED 36 /* version, state, registered, expires, ttl, files (8 each), name_len (2) */

typedef struct writer {
  wreg_info i;
  uint32_t pins; /* commits between wreg_pin and wreg_unpin */
} writer;

struct wreg_registry {
  lk_manager *lk;
  strata_mutex wmu;
  strata_mutex mu;
  writer *w; /* ascending id */
  size_t n, cap;
  uint64_t next_id; /* under wmu */
};

/* --- names ---------------------------------------------------------------------- */

void wreg_prefix(uint64_t id, char out[WREG_PREFIX_LEN + 1]) {
  snprintf(out, WREG_PREFIX_LEN + 1, "d/w%014" PRIx64 "-", id & WREG_ID_MAX);
}

static int name_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

int wreg_parse_name(const char *name, uint64_t *id) {
  if (name[0] != 'w') return 0;
  uint64_t v = 0;
  for (int i = 1; i <= 14; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = v << 4 | (uint64_t)d;
  }
  if (name[15] != '-') return 0;
  const char *rest = name + 16;
  size_t n = strlen(rest);
  if (n < 1 || n > WREG_FILE_NAME_MAX || strstr(rest, "..")) return 0;
  for (size_t i = 0; i < n; i++)
    if (!name_char(rest[i])) return 0;
  *id = v;
  return 1;
}

int wreg_check_path(uint64_t id, const char *field, const char *path) {
  char pre[WREG_PREFIX_LEN + 1];
  wreg_prefix(id, pre);
  if (strncmp(path, pre, WREG_PREFIX_LEN) != 0)
    return strata_err(STRATA_EINVALID, "%s: %s is outside writer %" PRIu64 "'s prefix %s", field,
                      path, id, pre);
  uint64_t got;
  if (!wreg_parse_name(path + 2, &got))
    return strata_err(STRATA_EINVALID,
                      "%s: %s: a file name is the prefix %s followed by 1..%u characters of "
                      "[A-Za-z0-9._-] (no \"..\")",
                      field, path, pre, WREG_FILE_NAME_MAX);
  return 0;
}

/* --- records ---------------------------------------------------------------------- */

static size_t wkey(uint8_t tag, uint64_t id, const char *path, uint8_t *k) {
  k[0] = tag;
  lk__put64(k + 1, id);
  size_t n = path ? strlen(path) : 0;
  if (n) memcpy(k + 9, path, n);
  return 9 + n;
}

static size_t rec_encode(const wreg_info *i, uint8_t *v) {
  size_t nl = strlen(i->name);
  v[0] = REC_VERSION;
  v[1] = (uint8_t)i->state;
  lk__put64(v + 2, (uint64_t)i->registered_ns);
  lk__put64(v + 10, (uint64_t)i->lease_expires_ns);
  lk__put64(v + 18, i->ttl_ms);
  lk__put64(v + 26, i->files_registered);
  v[34] = (uint8_t)(nl >> 8);
  v[35] = (uint8_t)nl;
  memcpy(v + REC_FIXED, i->name, nl);
  return REC_FIXED + nl;
}

static int rec_decode(uint64_t id, const uint8_t *v, size_t n, wreg_info *i) {
  memset(i, 0, sizeof *i);
  size_t nl = n >= REC_FIXED ? (size_t)v[34] << 8 | v[35] : 0;
  if (n < REC_FIXED || v[0] != REC_VERSION || v[1] > WREG_DEAD || nl > WREG_NAME_MAX ||
      n != REC_FIXED + nl)
    return strata_err(STRATA_ECORRUPT, "writer registry: record of writer %" PRIu64 " is damaged",
                      id);
  i->id = id;
  i->state = (wreg_state)v[1];
  i->registered_ns = (int64_t)lk__get64(v + 2);
  i->lease_expires_ns = (int64_t)lk__get64(v + 10);
  i->ttl_ms = lk__get64(v + 18);
  i->files_registered = lk__get64(v + 26);
  memcpy(i->name, v + REC_FIXED, nl);
  i->name[nl] = 0;
  wreg_prefix(id, i->prefix);
  return 0;
}

/* Writes batch b and waits until it is durable (the lock table's group sync). */
static int write_synced(wreg_registry *r, rocksdb_writebatch_t *b, const char *what) {
  uint64_t seq;
  int rc = lk__write(r->lk, b, what, &seq);
  if (!rc) rc = lk__durable(r->lk, seq);
  return rc;
}

/* Puts w's record into b. */
static void batch_rec(rocksdb_writebatch_t *b, const wreg_info *i) {
  uint8_t k[9], v[REC_FIXED + WREG_NAME_MAX];
  size_t kl = wkey(TAG_WRITER, i->id, NULL, k);
  size_t vl = rec_encode(i, v);
  rocksdb_writebatch_put(b, (const char *)k, kl, (const char *)v, vl);
}

static int put_rec_synced(wreg_registry *r, const wreg_info *i, const char *what) {
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  batch_rec(b, i);
  int rc = write_synced(r, b, what);
  rocksdb_writebatch_destroy(b);
  return rc;
}

/* --- memory ------------------------------------------------------------------------- */

/* The writer with this id, or NULL; mu held. */
static writer *find(wreg_registry *r, uint64_t id) {
  strata_mutex_assert_held(&r->mu);
  size_t lo = 0, hi = r->n;
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (r->w[mid].i.id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo < r->n && r->w[lo].i.id == id ? &r->w[lo] : NULL;
}

/* Appends (ids only grow, so the order holds); mu held. */
static int append(wreg_registry *r, const wreg_info *i) {
  strata_mutex_assert_held(&r->mu);
  if (strata_grow(&r->w, &r->cap, r->n + 1, sizeof *r->w, 16)) return strata_err(STRATA_ENOMEM, "writer registry");
  r->w[r->n++] = (writer){*i, 0};
  return 0;
}

static int is_live(const wreg_info *i, int64_t now) {
  return i->state == WREG_LEASED && now < i->lease_expires_ns;
}

static int64_t add_ttl(int64_t now, uint64_t ttl_ms) {
  return ttl_ms > (uint64_t)((INT64_MAX - now) / 1000000) ? INT64_MAX
                                                          : now + (int64_t)ttl_ms * 1000000;
}

/* --- open / close ---------------------------------------------------------------------- */

static int load(wreg_registry *r) {
  int rc = lk__db_enter(r->lk, "loading the writer registry");
  if (rc) return rc;
  char *err = NULL;
  size_t vl;
  const char nk = TAG_WNEXT;
  char *v = rocksdb_get(r->lk->db, r->lk->ro, &nk, 1, &vl, &err);
  r->next_id = 1;
  if (!err && v && vl == 8) r->next_id = lk__get64((const uint8_t *)v);
  rocksdb_free(v);
  if (err) {
    lk__db_leave(r->lk);
    return lk__dberr(err, "loading the writer registry");
  }
  rocksdb_iterator_t *it = rocksdb_create_iterator(r->lk->db, r->lk->ro);
  for (rocksdb_iter_seek(it, (const char[]){TAG_WRITER}, 1); !rc && rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t kl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl < 1 || k[0] != TAG_WRITER) break;
    if (kl != 9) continue;
    const uint8_t *rv = (const uint8_t *)rocksdb_iter_value(it, &vl);
    wreg_info i;
    if (!(rc = rec_decode(lk__get64(k + 1), rv, vl, &i))) rc = append(r, &i);
  }
  rocksdb_iter_get_error(it, &err);
  if (err && !rc) rc = lk__dberr(err, "loading the writer registry");
  rocksdb_iter_destroy(it);
  /* Statistics, written apart from the records (wreg_note_commit). */
  it = rocksdb_create_iterator(r->lk->db, r->lk->ro);
  for (rocksdb_iter_seek(it, (const char[]){TAG_WUSAGE}, 1); !rc && rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t kl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl < 1 || k[0] != TAG_WUSAGE) break;
    const uint8_t *uv = (const uint8_t *)rocksdb_iter_value(it, &vl);
    writer *w = kl == 9 && vl == 16 ? find(r, lk__get64(k + 1)) : NULL;
    if (w) {
      w->i.bytes_committed = lk__get64(uv);
      w->i.last_commit_generation = lk__get64(uv + 8);
    }
  }
  err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err && !rc) rc = lk__dberr(err, "loading the writer registry");
  rocksdb_iter_destroy(it);
  lk__db_leave(r->lk);
  if (!rc && r->n && r->w[r->n - 1].i.id >= r->next_id) r->next_id = r->w[r->n - 1].i.id + 1;
  return rc;
}

int wreg_open(lk_manager *lk, wreg_registry **out) {
  *out = NULL;
  wreg_registry *r = calloc(1, sizeof *r);
  if (!r) return strata_err(STRATA_ENOMEM, "writer registry");
  r->lk = lk;
  strata_mutex_init(&r->wmu);
  strata_mutex_init(&r->mu);
  strata_mutex_lock(&r->mu); /* nobody else has r yet; find and append want it held */
  int rc = load(r);
  strata_mutex_unlock(&r->mu);
  if (rc) {
    wreg_close(r);
    return rc;
  }
  *out = r;
  return 0;
}

void wreg_close(wreg_registry *r) {
  if (!r) return;
  strata_mutex_destroy(&r->wmu);
  strata_mutex_destroy(&r->mu);
  free(r->w);
  free(r);
}

/* --- register, renew, unregister --------------------------------------------------------- */

int wreg_register(wreg_registry *r, const char *name, uint64_t ttl_ms, wreg_info *out) {
  size_t nl = strlen(name);
  if (nl < 1 || nl > WREG_NAME_MAX)
    return strata_err(STRATA_EINVALID, "name: must be 1..%u bytes, got %zu", WREG_NAME_MAX, nl);
  if (ttl_ms < WREG_TTL_MIN_MS || ttl_ms > WREG_TTL_MAX_MS)
    return strata_err(STRATA_EINVALID, "lease_ttl_ms: must be %u..%u, got %" PRIu64, WREG_TTL_MIN_MS,
                      WREG_TTL_MAX_MS, ttl_ms);
  strata_mutex_lock(&r->wmu);
  int rc = 0;
  uint64_t id = r->next_id;
  if (id > WREG_ID_MAX) {
    rc = strata_err(STRATA_ERANGE, "RegisterWriter: every writer id has been handed out");
    goto out;
  }
  wreg_info i;
  memset(&i, 0, sizeof i);
  i.id = id;
  memcpy(i.name, name, nl);
  i.registered_ns = lk_now(r->lk);
  i.lease_expires_ns = add_ttl(i.registered_ns, ttl_ms);
  i.ttl_ms = ttl_ms;
  i.state = WREG_LEASED;
  i.live = 1;
  wreg_prefix(id, i.prefix);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  uint8_t nv[8];
  lk__put64(nv, id + 1);
  rocksdb_writebatch_put(b, (const char[]){TAG_WNEXT}, 1, (const char *)nv, 8);
  batch_rec(b, &i);
  rc = write_synced(r, b, "registering a writer");
  rocksdb_writebatch_destroy(b);
  if (rc) goto out;
  r->next_id = id + 1; /* even if memory fails below: ids are never reused */
  strata_mutex_lock(&r->mu);
  rc = append(r, &i);
  strata_mutex_unlock(&r->mu);
  if (!rc) *out = i;
out:
  strata_mutex_unlock(&r->wmu);
  return rc;
}

static int ended_err(const wreg_info *i, int64_t now) {
  if (i->state == WREG_LEASED)
    return strata_err(STRATA_EEXPIRED,
                      "writer %" PRIu64 " (%s): its lease ended %.3f s ago; register a new writer",
                      i->id, i->name, (double)(now - i->lease_expires_ns) / 1e9);
  return strata_err(STRATA_EEXPIRED, "writer %" PRIu64 " (%s) %s; register a new writer", i->id,
                    i->name, i->state == WREG_UNREGISTERED ? "has unregistered" : "has ended and is being collected");
}

static int unknown_err(uint64_t id, int rc) {
  return strata_err(rc, "writer %" PRIu64 " is not registered (never was, or it ended and GC "
                    "collected it); register a new writer", id);
}

int wreg_renew(wreg_registry *r, uint64_t id, uint64_t ttl_ms, int64_t *expires_ns) {
  if (ttl_ms && (ttl_ms < WREG_TTL_MIN_MS || ttl_ms > WREG_TTL_MAX_MS))
    return strata_err(STRATA_EINVALID, "lease_ttl_ms: must be 0 or %u..%u, got %" PRIu64,
                      WREG_TTL_MIN_MS, WREG_TTL_MAX_MS, ttl_ms);
  strata_mutex_lock(&r->wmu);
  strata_mutex_lock(&r->mu);
  int rc = 0;
  int64_t now = lk_now(r->lk);
  writer *w = find(r, id);
  wreg_info i;
  if (!w) rc = unknown_err(id, STRATA_ENOTFOUND);
  else if (!is_live(&w->i, now)) rc = ended_err(&w->i, now);
  else {
    i = w->i;
    i.lease_expires_ns = add_ttl(now, ttl_ms ? ttl_ms : i.ttl_ms);
  }
  strata_mutex_unlock(&r->mu);
  /* Under wmu nothing else changes the writer: GC's condemnation waits, so a
   * renewal it did not see cannot be written after it. */
  if (!rc) rc = put_rec_synced(r, &i, "renewing a writer's lease");
  if (!rc) {
    strata_mutex_lock(&r->mu);
    w = find(r, id);
    w->i.lease_expires_ns = i.lease_expires_ns;
    strata_mutex_unlock(&r->mu);
    *expires_ns = i.lease_expires_ns;
  }
  strata_mutex_unlock(&r->wmu);
  return rc;
}

int wreg_unregister(wreg_registry *r, uint64_t id) {
  strata_mutex_lock(&r->wmu);
  strata_mutex_lock(&r->mu);
  int rc = 0;
  writer *w = find(r, id);
  wreg_info i;
  int write = 0;
  if (!w) rc = unknown_err(id, STRATA_ENOTFOUND);
  else if (w->i.state == WREG_LEASED) {
    i = w->i;
    i.state = WREG_UNREGISTERED;
    write = 1;
  }
  strata_mutex_unlock(&r->mu);
  if (write && !(rc = put_rec_synced(r, &i, "unregistering a writer"))) {
    strata_mutex_lock(&r->mu);
    find(r, id)->i.state = WREG_UNREGISTERED;
    strata_mutex_unlock(&r->mu);
  }
  strata_mutex_unlock(&r->wmu);
  return rc;
}

/* --- files ---------------------------------------------------------------------------------- */

/* 0 with *out when writer id is live now, else STRATA_EEXPIRED saying why
 * (an unknown id too: for a commit it is as good as ended); mu held. */
static int live_locked(wreg_registry *r, uint64_t id, writer **out) {
  writer *w = *out = find(r, id);
  int64_t now = lk_now(r->lk);
  return !w ? unknown_err(id, STRATA_EEXPIRED) : is_live(&w->i, now) ? 0 : ended_err(&w->i, now);
}

int wreg_check_live(wreg_registry *r, uint64_t id) {
  writer *w;
  strata_mutex_lock(&r->mu);
  int rc = live_locked(r, id, &w);
  strata_mutex_unlock(&r->mu);
  return rc;
}

int wreg_file_size(wreg_registry *r, uint64_t id, const char *path, uint64_t *size) {
  uint8_t k[9 + WREG_PATH_MAX];
  if (strlen(path) >= WREG_PATH_MAX)
    return strata_err(STRATA_ENOTFOUND, "%s was not registered by writer %" PRIu64, path, id);
  size_t kl = wkey(TAG_WFILE, id, path, k);
  int rc = lk__db_enter(r->lk, "reading a registered file");
  if (rc) return rc;
  char *err = NULL;
  size_t vl = 0;
  char *v = rocksdb_get(r->lk->db, r->lk->ro, (const char *)k, kl, &vl, &err);
  lk__db_leave(r->lk);
  if (err) return lk__dberr(err, "reading a registered file");
  if (!v || vl != 8) rc = strata_err(STRATA_ENOTFOUND, "%s was not registered by writer %" PRIu64
                                     " (Coordinator.RegisterFile)", path, id);
  else *size = lk__get64((const uint8_t *)v);
  rocksdb_free(v);
  return rc;
}

int wreg_register_file(wreg_registry *r, uint64_t id, const char *path, uint64_t size) {
  int rc = wreg_check_path(id, "path", path);
  if (rc) return rc;
  strata_mutex_lock(&r->wmu);
  uint64_t old;
  int fresh = wreg_file_size(r, id, path, &old) == STRATA_ENOTFOUND;
  strata_err_clear();
  strata_mutex_lock(&r->mu);
  writer *w;
  wreg_info i;
  if (!(rc = live_locked(r, id, &w))) {
    i = w->i;
    i.files_registered += fresh;
  }
  strata_mutex_unlock(&r->mu);
  if (!rc) {
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    uint8_t k[9 + WREG_PATH_MAX], v[8];
    size_t kl = wkey(TAG_WFILE, id, path, k);
    lk__put64(v, size);
    rocksdb_writebatch_put(b, (const char *)k, kl, (const char *)v, 8);
    batch_rec(b, &i);
    rc = write_synced(r, b, "registering a writer's file");
    rocksdb_writebatch_destroy(b);
  }
  if (!rc) {
    strata_mutex_lock(&r->mu);
    find(r, id)->i.files_registered = i.files_registered;
    strata_mutex_unlock(&r->mu);
  }
  strata_mutex_unlock(&r->wmu);
  return rc;
}

/* --- listing --------------------------------------------------------------------------------- */

int wreg_list(wreg_registry *r, int include_ended, wreg_info **out, size_t *n) {
  *out = NULL;
  *n = 0;
  strata_mutex_lock(&r->mu);
  int64_t now = lk_now(r->lk);
  wreg_info *a = malloc((r->n ? r->n : 1) * sizeof *a);
  if (!a) {
    strata_mutex_unlock(&r->mu);
    return strata_err(STRATA_ENOMEM, "listing writers");
  }
  size_t k = 0;
  for (size_t j = 0; j < r->n; j++) {
    wreg_info i = r->w[j].i;
    i.live = is_live(&i, now);
    if (i.live || include_ended) a[k++] = i;
  }
  strata_mutex_unlock(&r->mu);
  *out = a;
  *n = k;
  return 0;
}

int wreg_is_gone(wreg_registry *r, uint64_t id) {
  strata_mutex_lock(&r->wmu); /* next_id */
  strata_mutex_lock(&r->mu);
  int gone = id >= 1 && id < r->next_id && !find(r, id);
  strata_mutex_unlock(&r->mu);
  strata_mutex_unlock(&r->wmu);
  return gone;
}

int wreg_known(wreg_registry *r, uint64_t id, int *live) {
  strata_mutex_lock(&r->mu);
  writer *w = find(r, id);
  int known = w != NULL;
  if (live) *live = w && is_live(&w->i, lk_now(r->lk));
  strata_mutex_unlock(&r->mu);
  return known;
}

/* --- the commit path -------------------------------------------------------------------------- */

int wreg_pin(wreg_registry *r, uint64_t id) {
  writer *w;
  strata_mutex_lock(&r->mu);
  int rc = live_locked(r, id, &w);
  if (!rc) w->pins++;
  strata_mutex_unlock(&r->mu);
  return rc;
}

void wreg_unpin(wreg_registry *r, uint64_t id) {
  strata_mutex_lock(&r->mu);
  writer *w = find(r, id);
  if (w && w->pins) w->pins--; /* a pinned writer is never forgotten: w exists */
  strata_mutex_unlock(&r->mu);
}

int wreg_fence_check(void *ctx) {
  const wreg_fence *f = ctx;
  return wreg_pin(f->r, f->id);
}

void wreg_fence_done(void *ctx, int committed) {
  (void)committed;
  const wreg_fence *f = ctx;
  wreg_unpin(f->r, f->id);
}

void wreg_note_commit(wreg_registry *r, uint64_t id, uint64_t gen, uint64_t bytes) {
  strata_mutex_lock(&r->mu);
  writer *w = find(r, id);
  uint8_t v[16];
  if (w) {
    w->i.bytes_committed += bytes;
    if (gen > w->i.last_commit_generation) w->i.last_commit_generation = gen;
    lk__put64(v, w->i.bytes_committed);
    lk__put64(v + 8, w->i.last_commit_generation);
  }
  strata_mutex_unlock(&r->mu);
  if (!w) return;
  /* Unsynced: durable with the lock table's next sync. Only the store's
   * committer thread calls this, so the writes arrive in order. */
  uint8_t k[9];
  size_t kl = wkey(TAG_WUSAGE, id, NULL, k);
  rocksdb_writebatch_t *b = rocksdb_writebatch_create();
  rocksdb_writebatch_put(b, (const char *)k, kl, (const char *)v, 16);
  uint64_t seq;
  if (lk__write(r->lk, b, "recording a writer's commit", &seq)) strata_err_clear();
  rocksdb_writebatch_destroy(b);
}

/* --- GC -------------------------------------------------------------------------------------------- */

int wreg_condemn(wreg_registry *r, int dry_run, uint64_t **ids, size_t *n, uint64_t *deferred) {
  *ids = NULL;
  *n = 0;
  *deferred = 0;
  strata_mutex_lock(&r->wmu);
  strata_mutex_lock(&r->mu);
  int rc = 0;
  int64_t now = lk_now(r->lk);
  uint64_t *a = malloc((r->n ? r->n : 1) * sizeof *a);
  wreg_info *newly = malloc((r->n ? r->n : 1) * sizeof *newly);
  size_t k = 0, nn = 0;
  if (!a || !newly) rc = strata_err(STRATA_ENOMEM, "GC: condemning writers");
  for (size_t j = 0; !rc && j < r->n; j++) {
    writer *w = &r->w[j];
    if (is_live(&w->i, now)) continue;
    if (w->pins) { /* a commit of it passed the check and is not decided yet */
      (*deferred)++;
      continue;
    }
    if (w->i.state != WREG_DEAD) {
      newly[nn] = w->i;
      newly[nn++].state = WREG_DEAD;
      if (!dry_run) w->i.state = WREG_DEAD; /* from here on wreg_pin refuses it */
    }
    a[k++] = w->i.id;
  }
  strata_mutex_unlock(&r->mu);
  if (!rc && !dry_run && nn) {
    /* Durable too, so a clock stepped back at a restart cannot revive it. */
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    for (size_t j = 0; j < nn; j++) batch_rec(b, &newly[j]);
    rc = write_synced(r, b, "condemning ended writers");
    rocksdb_writebatch_destroy(b);
  }
  strata_mutex_unlock(&r->wmu);
  free(newly);
  if (rc) {
    free(a);
    return rc;
  }
  *ids = a;
  *n = k;
  return 0;
}

int wreg_forget(wreg_registry *r, uint64_t id) {
  strata_mutex_lock(&r->wmu);
  strata_mutex_lock(&r->mu);
  writer *w = find(r, id);
  int rc = !w ? unknown_err(id, STRATA_ENOTFOUND)
               : w->i.state != WREG_DEAD || w->pins
                     ? strata_err(STRATA_EINVALID, "writer %" PRIu64 " is not condemned", id)
                     : 0;
  strata_mutex_unlock(&r->mu);
  if (!rc) {
    uint8_t lo[9], hi[9];
    wkey(TAG_WFILE, id, NULL, lo);
    wkey(TAG_WFILE, id + 1, NULL, hi);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete_range(b, (const char *)lo, 9, (const char *)hi, 9);
    uint8_t k[9];
    rocksdb_writebatch_delete(b, (const char *)k, wkey(TAG_WRITER, id, NULL, k));
    rocksdb_writebatch_delete(b, (const char *)k, wkey(TAG_WUSAGE, id, NULL, k));
    rc = write_synced(r, b, "forgetting a collected writer");
    rocksdb_writebatch_destroy(b);
  }
  if (!rc) {
    strata_mutex_lock(&r->mu);
    w = find(r, id);
    size_t j = (size_t)(w - r->w);
    memmove(w, w + 1, (r->n - j - 1) * sizeof *w);
    r->n--;
    strata_mutex_unlock(&r->mu);
  }
  strata_mutex_unlock(&r->wmu);
  return rc;
}
