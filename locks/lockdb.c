/*
 * Opening and closing the locks database: the RocksDB instance shared by the
 * lock table, the op log and the counters, the lock record codec, and the
 * reload of every lock and the token high-water mark at open.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/err.h"
#include "locks/acked.h"
#include "locks/lk_int.h"

static int64_t realtime_ns(void *ctx) {
  (void)ctx;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void lk_options_init(lk_options *o) {
  assert(o);
  memset(o, 0, sizeof *o);
  o->clock = realtime_ns;
  o->partitions = 64;
  o->wait_poll_ns = 20 * 1000000;
}

int64_t lk_now(lk_manager *lk) { return lk->clock(lk->clock_ctx); }

/* A reopen is tried when the disk has this much room, or at most once a
 * second otherwise (RocksDB needs room to recover: a new WAL, a flush, a
 * manifest). */
#define LK__RECOVER_MIN_FREE ((uint64_t)8 << 20)
#define LK__RECOVER_INTERVAL_NS INT64_C(1000000000)

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int lk__dberr(char *err, const char *what) {
  int code = err && strstr(err, "No space left on device") ? ENOSPC : STRATA_EIO;
  int rc = strata_err(code, "locks db: %s: %s", what, err ? err : "unknown error");
  free(err);
  return rc;
}

/* Records the first failure (this thread's message); `fatal` when memory may
 * be ahead of disk. */
static void mark_failed(lk_manager *lk, int rc, int fatal) {
  strata_mutex_lock(&lk->sync_mu);
  if (!lk->db_failed) {
    lk->db_failed = rc;
    snprintf(lk->db_fail_msg, sizeof lk->db_fail_msg, "%s", strata_errmsg());
  }
  if (fatal) lk->db_fatal = 1;
  pthread_cond_broadcast(&lk->sync_cv);
  strata_mutex_unlock(&lk->sync_mu);
}

/* The refusal while failed; sync_mu held. */
static int failed_err(lk_manager *lk, const char *what) {
  strata_mutex_assert_held(&lk->sync_mu);
  if (lk->db_fatal)
    return strata_err(lk->db_failed,
                      "locks db %s: %s refused: a WAL sync failed earlier (%s); the lock table "
                      "may be ahead of the disk, restart the server to reload it",
                      lk->path, what, lk->db_fail_msg);
  if (lk->db_failed == ENOSPC)
    return strata_err(ENOSPC,
                      "locks db %s: %s refused: the disk is full (%s); lock, op and id writes "
                      "resume once space is freed",
                      lk->path, what, lk->db_fail_msg);
  return strata_err(lk->db_failed, "locks db %s: %s refused: an earlier write failed (%s)",
                    lk->path, what, lk->db_fail_msg);
}

static int disk_has_room(const char *path) {
  struct statvfs v;
  if (statvfs(path, &v) != 0) return 0;
  return (uint64_t)v.f_bavail * v.f_frsize >= LK__RECOVER_MIN_FREE;
}

/* Closes the failed instance and opens it again: RocksDB replays the WAL (every
 * write that returned OK is in it; the refused one is not, or is a torn tail
 * that point-in-time recovery drops) and flushes it, so memory and disk agree
 * and all of it is durable. Called with no db_rw held. Returns 0 when writes may
 * go on, else the refusal. */
static int db_recover(lk_manager *lk, const char *what) {
  strata_mutex_lock(&lk->sync_mu);
  int64_t now = mono_ns();
  int try_now = lk->db_failed && !lk->db_fatal &&
                (disk_has_room(lk->path) || now - lk->recover_at_ns >= LK__RECOVER_INTERVAL_NS);
  int rc = lk->db_failed ? failed_err(lk, what) : 0;
  if (try_now) lk->recover_at_ns = now;
  strata_mutex_unlock(&lk->sync_mu);
  if (!try_now) return rc;

  pthread_rwlock_wrlock(&lk->db_rw);
  strata_mutex_lock(&lk->sync_mu);
  int still = lk->db_failed && !lk->db_fatal && !lk->syncing;
  strata_mutex_unlock(&lk->sync_mu);
  if (!still) { /* another thread recovered (or it turned fatal) meanwhile */
    pthread_rwlock_unlock(&lk->db_rw);
    strata_mutex_lock(&lk->sync_mu);
    rc = lk->db_failed ? failed_err(lk, what) : 0;
    strata_mutex_unlock(&lk->sync_mu);
    return rc;
  }
  if (lk->db) rocksdb_close(lk->db);
  char *err = NULL;
  lk->db = rocksdb_open(lk->dbopts, lk->path, &err);
  lk->db_readonly = 0;
  if (err) {
    free(err);
    /* No room to recover yet: reads go on from a read-only instance, which
     * replays the WAL in memory and creates no file; writes stay refused
     * (db_failed) and the next attempt closes it. */
    err = NULL;
    lk->db = rocksdb_open_for_read_only(lk->dbopts, lk->path, 0, &err);
    if (err) {
      free(err);
      lk->db = NULL;
    } else {
      lk->db_readonly = 1;
    }
    pthread_rwlock_unlock(&lk->db_rw);
    strata_mutex_lock(&lk->sync_mu);
    rc = failed_err(lk, what);
    strata_mutex_unlock(&lk->sync_mu);
    return rc;
  }
  rc = lk__oplog_load(lk); /* a refused synced put may still have reached the WAL */
  strata_mutex_lock(&lk->sync_mu);
  if (!rc) {
    lk->db_failed = 0;
    lk->db_fail_msg[0] = 0;
    lk->synced_seq = atomic_load(&lk->write_seq); /* recovered and flushed by the open */
    pthread_cond_broadcast(&lk->sync_cv);
  }
  strata_mutex_unlock(&lk->sync_mu);
  pthread_rwlock_unlock(&lk->db_rw);
  return rc;
}

int lk__db_enter(lk_manager *lk, const char *what) {
  for (int tries = 0;; tries++) {
    pthread_rwlock_rdlock(&lk->db_rw);
    if (lk->db) return 0;
    pthread_rwlock_unlock(&lk->db_rw);
    int rc = db_recover(lk, what);
    if (rc) return rc;
    if (tries) return strata_err(STRATA_EIO, "locks db %s: %s: the database is closed", lk->path, what);
  }
}

void lk__db_leave(lk_manager *lk) { pthread_rwlock_unlock(&lk->db_rw); }

/* Takes db_rw for reading with an instance that takes writes (recovering a
 * failed one first): 0, or the refusal with db_rw not held. The read-only
 * instance a failed reopen leaves is refused here too: a write may pass the
 * failed-state check just before another thread's write fails and reopens. */
static int enter_writable(lk_manager *lk, const char *what) {
  strata_mutex_lock(&lk->sync_mu);
  int failed = lk->db_failed;
  strata_mutex_unlock(&lk->sync_mu);
  int rc = failed ? db_recover(lk, what) : 0;
  if (rc || (rc = lk__db_enter(lk, what)) || !lk->db_readonly) return rc;
  strata_mutex_lock(&lk->sync_mu);
  rc = failed_err(lk, what);
  strata_mutex_unlock(&lk->sync_mu);
  lk__db_leave(lk);
  return rc;
}

int lk__put_sync(lk_manager *lk, const void *k, size_t kl, const void *v, size_t vl,
                 const char *what) {
  int rc = enter_writable(lk, what);
  if (rc) return rc;
  char *err = NULL;
  rocksdb_put(lk->db, lk->wo, k, kl, v, vl, &err);
  if (!err) {
    lk__db_leave(lk);
    return 0;
  }
  /* Nothing in memory depends on a refused put; but a failed fsync may have
   * dropped lock batches written before it, so only a refused append is
   * recoverable. Marked before db_rw is left: see lk__durable. */
  int append = strstr(err, "While appending") != NULL;
  rc = lk__dberr(err, what);
  mark_failed(lk, rc, !(rc == ENOSPC && append));
  lk__db_leave(lk);
  return rc;
}

int lk__write(lk_manager *lk, rocksdb_writebatch_t *b, const char *what, uint64_t *seq) {
  char *err = NULL;
  *seq = 0;
  int rc = enter_writable(lk, what);
  if (rc) return rc;
  rocksdb_write(lk->db, lk->wo_lock, b, &err);
  if (err) {
    rc = lk__dberr(err, what);
    mark_failed(lk, rc, 0); /* the caller applies nothing to memory; before db_rw is left */
    lk__db_leave(lk);
    return rc;
  }
  /* Numbered after the write returned: every batch with a smaller or equal
   * number is already in the WAL file when a syncer reads write_seq. */
  *seq = atomic_fetch_add(&lk->write_seq, 1) + 1;
  lk__db_leave(lk);
  return 0;
}

/* lk_defer_begin .. lk_defer_end on this thread: set, and the largest batch
 * the calls in between need. */
static _Thread_local int defer_on;
static _Thread_local uint64_t defer_need;

void lk_defer_begin(void) {
  assert(!defer_on);
  defer_on = 1;
  defer_need = 0;
}

uint64_t lk_defer_end(void) {
  assert(defer_on);
  defer_on = 0;
  return defer_need;
}

int lk_durable_wait(lk_manager *lk, uint64_t n) {
  assert(lk);
  assert(!defer_on);
  return lk__durable(lk, n);
}

int lk__durable(lk_manager *lk, uint64_t seq) {
  int rc = 0;
  if (seq == 0 || lk->no_sync) return 0;
  if (defer_on) {
    if (seq > defer_need) defer_need = seq;
    return 0;
  }
  strata_mutex_lock(&lk->sync_mu);
  while (lk->synced_seq < seq) {
    if (lk->db_failed) {
      /* Never sync a failed instance: recover it (a reopen makes every
       * written batch durable) or report the failure. */
      strata_mutex_unlock(&lk->sync_mu);
      rc = db_recover(lk, "waiting for the WAL sync");
      strata_mutex_lock(&lk->sync_mu);
      if (rc) break;
      continue;
    }
    if (lk->syncing) {
      strata_cond_wait(&lk->sync_cv, &lk->sync_mu);
      continue;
    }
    /* Become the leader: one fsync covers every batch written so far. */
    lk->syncing = 1;
    uint64_t target = atomic_load(&lk->write_seq);
    strata_mutex_unlock(&lk->sync_mu);
    /* Writers go on appending while the leader syncs (db_rw shared): the
     * sync is our own fdatasync of the WAL files (walsync.c), not
     * rocksdb_flush_wal, which asserts in RocksDB 7.8 once an append failed
     * on another thread. db_rw only keeps a reopen out. */
    int failed, wrc = 0;
    pthread_rwlock_rdlock(&lk->db_rw);
    strata_mutex_lock(&lk->sync_mu);
    failed = lk->db_failed;
    strata_mutex_unlock(&lk->sync_mu);
    if (!failed) {
      if (lk->db) wrc = lk__wal_sync(lk);
      else wrc = strata_err(STRATA_EIO, "locks db %s: the database is closed", lk->path);
    }
    pthread_rwlock_unlock(&lk->db_rw);
    if (failed) { /* the loop recovers it or reports */
      strata_mutex_lock(&lk->sync_mu);
      lk->syncing = 0;
      pthread_cond_broadcast(&lk->sync_cv);
      continue;
    }
    /* A failed fdatasync may have lost written batches: memory may be ahead
     * of the disk, only a restart reloads. */
    if (wrc) mark_failed(lk, rc = wrc, 1);
    strata_mutex_lock(&lk->sync_mu);
    lk->syncing = 0;
    if (!wrc && target > lk->synced_seq) lk->synced_seq = target;
    pthread_cond_broadcast(&lk->sync_cv);
    if (rc) break;
  }
  strata_mutex_unlock(&lk->sync_mu);
  return rc;
}

int lk_acked_generation_note(lk_manager *lk, uint64_t gen) {
  int rc = 0;
  strata_mutex_lock(&lk->gen_mu);
  if (gen <= lk->acked_gen) goto out;
  strata_mutex_lock(&lk->sync_mu);
  if (lk->db_failed) rc = failed_err(lk, "recording the acknowledged generation");
  strata_mutex_unlock(&lk->sync_mu);
  if (rc) goto out; /* no recovery attempt from the committer's thread */
  uint8_t v[8];
  lk__put64(v, gen);
  const char k = LK__TAG_ACKED;
  char *err = NULL;
  pthread_rwlock_rdlock(&lk->db_rw);
  if (lk->db && !lk->db_readonly) rocksdb_put(lk->db, lk->wo_lock, &k, 1, (const char *)v, 8, &err);
  else err = strdup(lk->db ? "the database is read-only after a failed reopen" : "the database is closed");
  if (err) {
    rc = lk__dberr(err, "recording the acknowledged generation");
    mark_failed(lk, rc, 0); /* before db_rw is left: see lk__durable */
  }
  pthread_rwlock_unlock(&lk->db_rw);
  if (rc) goto out;
  lk->acked_gen = gen;
out:
  strata_mutex_unlock(&lk->gen_mu);
  return rc;
}

uint64_t lk_acked_generation(lk_manager *lk) {
  strata_mutex_lock(&lk->gen_mu);
  uint64_t g = lk->acked_gen;
  strata_mutex_unlock(&lk->gen_mu);
  return g;
}

static int load_acked(lk_manager *lk) {
  char *err = NULL;
  size_t vl = 0;
  const char k = LK__TAG_ACKED;
  char *v = rocksdb_get(lk->db, lk->ro, &k, 1, &vl, &err);
  if (err) return lk__dberr(err, "reading the acknowledged generation");
  int rc = 0;
  if (v && vl != 8) rc = strata_err(STRATA_ECORRUPT, "acknowledged generation record of %zu bytes", vl);
  else if (v) lk->acked_gen = lk__get64((const uint8_t *)v);
  rocksdb_free(v);
  return rc;
}

/* Lock record: version(1) flags(1: bit0 temporal, bit1 indefinite)
 * temporal op, token, acquired_at, expires_at (4 x 8)
 * indefinite op, token, acquired_at (3 x 8); absent slots are zeros. */
void lk__rec_encode(const lk__slot *tmp, const lk__slot *ind, uint8_t out[LK__REC_LEN]) {
  memset(out, 0, LK__REC_LEN);
  out[0] = LK__REC_VERSION;
  out[1] = (uint8_t)((tmp->op ? 1 : 0) | (ind->op ? 2 : 0));
  if (tmp->op) {
    lk__put64(out + 2, tmp->op);
    lk__put64(out + 10, tmp->token);
    lk__put64(out + 18, (uint64_t)tmp->acquired_at);
    lk__put64(out + 26, (uint64_t)tmp->expires_at);
  }
  if (ind->op) {
    lk__put64(out + 34, ind->op);
    lk__put64(out + 42, ind->token);
    lk__put64(out + 50, (uint64_t)ind->acquired_at);
  }
}

int lk__rec_decode(const uint8_t *v, size_t n, lk__slot *tmp, lk__slot *ind) {
  memset(tmp, 0, sizeof *tmp);
  memset(ind, 0, sizeof *ind);
  if (n != LK__REC_LEN || v[0] != LK__REC_VERSION || (v[1] & ~3u) || v[1] == 0)
    return strata_err(STRATA_ECORRUPT, "lock record: %zu bytes, version %u, flags %u", n,
                      n ? v[0] : 0, n > 1 ? v[1] : 0);
  if (v[1] & 1) {
    tmp->op = lk__get64(v + 2);
    tmp->token = lk__get64(v + 10);
    tmp->acquired_at = (int64_t)lk__get64(v + 18);
    tmp->expires_at = (int64_t)lk__get64(v + 26);
  }
  if (v[1] & 2) {
    ind->op = lk__get64(v + 34);
    ind->token = lk__get64(v + 42);
    ind->acquired_at = (int64_t)lk__get64(v + 50);
    ind->expires_at = LK_NEVER;
  }
  if ((v[1] & 1 && tmp->op == 0) || (v[1] & 2 && ind->op == 0))
    return strata_err(STRATA_ECORRUPT, "lock record: slot with op 0");
  return 0;
}

/* Checks or writes the format marker so a directory of something else is
 * refused instead of misread. */
static int check_format(lk_manager *lk, const char *path) {
  char *err = NULL;
  size_t vlen = 0;
  const char k = LK__TAG_META;
  char *v = rocksdb_get(lk->db, lk->ro, &k, 1, &vlen, &err);
  if (err) return lk__dberr(err, "reading format marker");
  if (v) {
    int ok = vlen == strlen(LK__FORMAT) && memcmp(v, LK__FORMAT, vlen) == 0;
    rocksdb_free(v);
    if (!ok)
      return strata_err(STRATA_EMISMATCH, "locks db %s: format marker is not %s", path,
                        LK__FORMAT);
    return 0;
  }
  rocksdb_put(lk->db, lk->wo, &k, 1, LK__FORMAT, strlen(LK__FORMAT), &err);
  return err ? lk__dberr(err, "writing format marker") : 0;
}

/* Rebuilds the in-memory lock table from the 'L' records and the token
 * high-water mark from the 'T' keys and every stored token. */
static int reload(lk_manager *lk) {
  int rc = 0;
  uint64_t hwm = 0;
  rocksdb_iterator_t *it = rocksdb_create_iterator(lk->db, lk->ro);
  const char tag_t = LK__TAG_TOKEN, tag_l = LK__TAG_LOCK;
  for (rocksdb_iter_seek(it, &tag_t, 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const char *k = rocksdb_iter_key(it, &kl);
    if (kl == 0 || k[0] != LK__TAG_TOKEN) break;
    const char *v = rocksdb_iter_value(it, &vl);
    if (vl != 8) {
      rc = strata_err(STRATA_ECORRUPT, "token high-water record of %zu bytes", vl);
      goto out;
    }
    uint64_t t = lk__get64((const uint8_t *)v);
    if (t > hwm) hwm = t;
  }
  for (rocksdb_iter_seek(it, &tag_l, 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl == 0 || k[0] != LK__TAG_LOCK) break;
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
    lk__slot tmp, ind;
    if (kl < 2 || kl - 1 > LK_KEY_MAX) {
      rc = strata_err(STRATA_ECORRUPT, "lock record key of %zu bytes", kl);
      goto out;
    }
    rc = lk__rec_decode(v, vl, &tmp, &ind);
    if (rc) goto out;
    const uint8_t *key = k + 1;
    size_t len = kl - 1;
    lk__part *p = &lk->parts[lk__part_of(lk, key, len)];
    lk__rowent *r;
    rc = lk__row_insert(p, key, len, lk__hash(key, len), &r);
    if (rc) goto out;
    r->tmp = tmp;
    r->ind = ind;
    if (tmp.token > hwm) hwm = tmp.token;
    if (ind.token > hwm) hwm = ind.token;
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err) rc = lk__dberr(err, "reloading locks");
out:
  rocksdb_iter_destroy(it);
  atomic_store(&lk->token_hwm, hwm);
  return rc;
}

int lk_open(const lk_options *o, lk_manager **out) {
  assert(out /* a missing o or path is STRATA_EINVALID */);
  int rc = 0;
  char *err = NULL;
  *out = NULL;
  if (!o || !o->path || !o->path[0])
    return strata_err(STRATA_EINVALID, "lk_open: options.path is required");
  if (o->partitions == 0 || o->partitions > 65536 || (o->partitions & (o->partitions - 1)))
    return strata_err(STRATA_EINVALID, "lk_open: options.partitions = %u, want a power of two 1..65536",
                      o->partitions);
  lk_manager *lk = calloc(1, sizeof *lk);
  if (!lk) return strata_err(STRATA_ENOMEM, "lk_open");
  lk->clock = o->clock ? o->clock : realtime_ns;
  lk->clock_ctx = o->clock ? o->clock_ctx : NULL;
  lk->wait_poll_ns = o->wait_poll_ns > 0 ? o->wait_poll_ns : 20 * 1000000;
  lk->nparts = o->partitions;
  unsigned bits = 0;
  while ((1u << bits) < o->partitions) bits++;
  lk->part_shift = 16 - bits;
  lk->parts = calloc(lk->nparts, sizeof *lk->parts);
  if (!lk->parts) {
    free(lk);
    return strata_err(STRATA_ENOMEM, "lk_open: %u partitions", o->partitions);
  }
  for (unsigned i = 0; i < lk->nparts; i++) strata_mutex_init(&lk->parts[i].mu);
  lk->oplog.lk = lk;
  strata_mutex_init(&lk->oplog.mu);
  lk->ctrs.lk = lk;
  strata_mutex_init(&lk->ctrs.mu);
  strata_mutex_init(&lk->sync_mu);
  pthread_cond_init(&lk->sync_cv, NULL);
  strata_mutex_init(&lk->pin_mu);
  pthread_cond_init(&lk->pin_cv, NULL);
  pthread_rwlock_init(&lk->db_rw, NULL);
  strata_mutex_init(&lk->gen_mu);
  lk->no_sync = o->no_sync;
  lk->wal_sync_hook = o->wal_sync_hook;
  lk->wal_sync_ctx = o->wal_sync_ctx;
  lk->path = strdup(o->path);
  if (!lk->path) {
    rc = strata_err(STRATA_ENOMEM, "lk_open");
    goto fail;
  }

  lk->dbopts = rocksdb_options_create();
  rocksdb_options_set_create_if_missing(lk->dbopts, 1);
  rocksdb_options_set_max_background_jobs(lk->dbopts, 2);
  rocksdb_options_set_keep_log_file_num(lk->dbopts, 2);
  /* FATAL only: RocksDB's info LOG lives on the same disk, and once an append
   * to it fails (a full disk) its next line asserts in RocksDB 7.8 and aborts
   * the server. Every RocksDB error reaches our own log through the calls. */
  rocksdb_options_set_info_log_level(lk->dbopts, 4 /* fatal */);
  rocksdb_options_set_enable_pipelined_write(lk->dbopts, 1);
  lk->wo = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(lk->wo, o->no_sync ? 0 : 1);
  lk->wo_lock = rocksdb_writeoptions_create();
  rocksdb_writeoptions_set_sync(lk->wo_lock, 0);
  lk->ro = rocksdb_readoptions_create();
  lk->db = rocksdb_open(lk->dbopts, o->path, &err);
  if (err) {
    rc = lk__dberr(err, "open");
    strata_err_wrap(rc, "opening %s", o->path);
    goto fail;
  }
  if ((rc = check_format(lk, o->path))) goto fail;
  if ((rc = reload(lk))) goto fail;
  if ((rc = lk__oplog_load(lk))) goto fail;
  if ((rc = load_acked(lk))) goto fail;
  *out = lk;
  return 0;
fail:
  lk_close(lk);
  return rc;
}

void lk_shutdown(lk_manager *lk) {
  atomic_store(&lk->shutting_down, 1);
  for (unsigned i = 0; i < lk->nparts; i++) {
    lk__part *p = &lk->parts[i];
    strata_mutex_lock(&p->mu);
    for (size_t b = 0; b < p->nbuckets; b++)
      for (lk__rowent *r = p->buckets[b]; r; r = r->next)
        for (lk__wnode *n = r->qhead; n; n = n->next) lk__waiter_kick(n->w);
    strata_mutex_unlock(&p->mu);
  }
  /* Releases waiting for a pinned row (fence.c) give up too. */
  strata_mutex_lock(&lk->pin_mu);
  pthread_cond_broadcast(&lk->pin_cv);
  strata_mutex_unlock(&lk->pin_mu);
}

void lk_close(lk_manager *lk) {
  if (!lk) return;
  if (lk->db) rocksdb_close(lk->db);
  lk__wal_close(&lk->wal);
  strata_mutex_destroy(&lk->oplog.mu);
  strata_mutex_destroy(&lk->ctrs.mu);
  strata_mutex_destroy(&lk->sync_mu);
  pthread_cond_destroy(&lk->sync_cv);
  strata_mutex_destroy(&lk->pin_mu);
  pthread_cond_destroy(&lk->pin_cv);
  pthread_rwlock_destroy(&lk->db_rw);
  strata_mutex_destroy(&lk->gen_mu);
  free(lk->path);
  if (lk->ro) rocksdb_readoptions_destroy(lk->ro);
  if (lk->wo) rocksdb_writeoptions_destroy(lk->wo);
  if (lk->wo_lock) rocksdb_writeoptions_destroy(lk->wo_lock);
  if (lk->dbopts) rocksdb_options_destroy(lk->dbopts);
  for (unsigned i = 0; i < lk->nparts; i++) lk__part_destroy(&lk->parts[i]);
  free(lk->parts);
  free(lk);
}
