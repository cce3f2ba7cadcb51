/*
 * Commit log mode, the publisher: a thread that makes closed batches the
 * published OCDBT state, in order. Per batch: fsync of its data file and of
 * d/, then the numbered manifest of its last generation (temp file, fsync,
 * rename, directory fsync), then the log is trimmed up to that generation,
 * its next segment made ready (clog_prepare) and old manifests are removed.
 * Every generation it publishes was already acknowledged (it is in the
 * synced log), so a manifest that survives a crash, even one whose rename
 * was not yet durable, is never ahead of what was acknowledged. A failure
 * for want of space or memory is retried with backoff (every step of a
 * publication may be redone: the manifest is written afresh under a temp
 * name), and commits go on meanwhile until the backlog bound. Any other
 * failure, and a failed fsync of the batch's data file (after which its
 * bytes in the page cache cannot be trusted), stops publication: the log
 * keeps every acknowledged commit, the database refuses commits, and a
 * reopen replays.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/clog.h"
#include "storage/commit_int.h"

/* Failures of a remote base store (S3: storage/README.md "S3 store") that the
 * service's return can cure. A file store never returns them; its failed
 * fsync stays fatal (the page cache may have dropped the dirty pages), while a
 * remote store keeps the file's bytes and uploads them whole again. */
static int transient(int rc) {
  return rc == ETIMEDOUT || rc == ECONNREFUSED || rc == ECONNRESET || rc == EHOSTUNREACH ||
         rc == ENETUNREACH || rc == EAGAIN;
}

int pb__publish(st_db *db, st_batch *b, int *fatal) {
  char tmp[64], mpath[64];
  strata_buf man = STRATA_BUF_INIT;
  bs_file *mf = NULL;
  int rc, have_tmp = 0;
  *fatal = 0;
  snprintf(mpath, sizeof mpath, "manifest.%016llx", (unsigned long long)b->last);
  snprintf(tmp, sizeof tmp, "tmp.manifest.%016llx", (unsigned long long)b->last);
  if (!b->file_synced) {
    if ((rc = wr__flush(&b->w)) || (rc = bs_fsync(b->w.f))) {
      *fatal = !transient(rc);
      goto out;
    }
    b->file_synced = 1;
  }
  if (!b->dir_synced && (rc = bs_sync_dir(db->base, ST_DATA_DIR))) goto out;
  b->dir_synced = 1;
  if ((rc = vt__encode_manifest(db, &b->ms, &man))) goto out;
  rc = bs_create(db->base, tmp, &mf);
  if (rc == STRATA_EEXISTS && bs_remove(db->base, tmp) == 0) rc = bs_create(db->base, tmp, &mf);
  if (rc) goto out;
  have_tmp = 1;
  if ((rc = bs_append(mf, man.p, man.len)) || (rc = bs_fsync(mf))) goto out;
  bs_close(mf);
  mf = NULL;
  if ((rc = bs_rename(db->base, tmp, mpath))) goto out;
  have_tmp = 0;
  rc = bs_sync_dir(db->base, "");
out:
  bs_close(mf);
  if (have_tmp) bs_remove(db->base, tmp);
  strata_buf_free(&man);
  if (rc)
    return strata_err(rc, "publishing generations %llu..%llu: %s", (unsigned long long)b->first,
                      (unsigned long long)b->last, strata_errmsg());
  return 0;
}

void pb__enqueue(st_db *db, st_batch *b) {
  strata_mutex_lock(&db->mu);
  b->next = NULL;
  if (db->pq_tail) db->pq_tail->next = b;
  else db->pq_head = b;
  db->pq_tail = b;
  db->pub_pending++;
  pthread_cond_signal(&db->pub_cv);
  strata_mutex_unlock(&db->mu);
}

/* The log's next segment, made ready before the committer needs it. A
 * failure only means that the committer creates it itself; it is counted.
 * Called without db->mu. */
static void prepare_segment(st_db *db) {
  if (db->no_log_prepare || !clog_prepare(db->log, db->log_segment_bytes)) return;
  strata_mutex_lock(&db->mu);
  db->log_prep_failures++;
  strata_mutex_unlock(&db->mu);
}

/* After batch b is published (rc = 0) or failed: the state, the log, old
 * manifests. Called with db->mu held; returns with it held. */
static void published(st_db *db, st_batch *b, int rc, const char *why) {
  strata_mutex_assert_held(&db->mu);
  db->backlog -= b->bytes;
  db->pub_pending--;
  pthread_cond_broadcast(&db->cv); /* a committer held back by the backlog */
  if (rc || db->pub_err) {
    if (rc && !db->pub_err) {
      db->pub_err = rc;
      if (!db->broken) {
        db->broken = rc;
        snprintf(db->broken_msg, sizeof db->broken_msg,
                 "%.80s: %.240s; the commit log holds every acknowledged commit: reopen the database", db->path,
                 why);
      }
    }
    return;
  }
  db->published = b->last;
  db->batches++;
  uint64_t now = cm__now_ns();
  db->lags[db->nlags++ % ST_LAG_RING] = now > b->first_time ? now - b->first_time : 0;
  if (b->last > ST_MANIFESTS_KEPT) db->mf_obsolete = b->last - ST_MANIFESTS_KEPT;
  strata_mutex_unlock(&db->mu);
  clog_trim(db->log, b->last);
  prepare_segment(db);
  cm__remove_manifests(db);
  strata_mutex_lock(&db->mu);
}

/* Failures that time can cure: space, memory, a remote store's outage. */
static int retryable(int rc) {
  return rc == ENOSPC || rc == EDQUOT || rc == ENOMEM || rc == STRATA_ENOSPC || rc == STRATA_ENOMEM ||
         transient(rc);
}

/* Publishes b, retrying what retryable() allows with a backoff from 10 ms
 * to 1 s until it works or the database closes. Called and returns without
 * db->mu. */
static int publish_retrying(st_db *db, st_batch *b, strata_err_saved *why) {
  uint64_t wait_ns = 10 * 1000000ull;
  for (;;) {
    int fatal, rc = pb__publish(db, b, &fatal);
    if (rc) strata_err_save(rc, why);
    strata_mutex_lock(&db->mu);
    if (!rc || fatal || !retryable(rc) || db->pub_stop) {
      db->pub_stall = 0;
      strata_mutex_unlock(&db->mu);
      return rc;
    }
    if (!db->pub_stall) db->pub_stalls++;
    db->pub_stall = rc;
    snprintf(db->pub_stall_msg, sizeof db->pub_stall_msg, "%.399s", why->msg);
    pthread_cond_broadcast(&db->cv); /* a committer held back learns of it */
    struct timespec until = cm__ts_of(cm__now_ns() + wait_ns);
    strata_cond_timedwait(&db->pub_cv, &db->mu, &until);
    strata_mutex_unlock(&db->mu);
    if (wait_ns < 1000000000ull) wait_ns *= 2;
  }
}

static void *publisher(void *arg) {
  st_db *db = arg;
  pthread_setname_np(pthread_self(), "st-publish");
  prepare_segment(db); /* the first: its syncs are overwrites too */
  strata_mutex_lock(&db->mu);
  for (;;) {
    while (!db->pq_head && !db->pub_stop) strata_cond_wait(&db->pub_cv, &db->mu);
    st_batch *b = db->pq_head;
    if (!b) break;
    db->pq_head = b->next;
    if (!db->pq_head) db->pq_tail = NULL;
    int skip = db->pub_err != 0;
    strata_mutex_unlock(&db->mu);
    strata_err_saved why = {0, ""};
    /* After a failure nothing more is published: a later manifest would
     * name nodes in the batch whose publication failed. */
    int rc = skip ? 0 : publish_retrying(db, b, &why);
    strata_mutex_lock(&db->mu);
    published(db, b, rc, why.msg);
    strata_mutex_unlock(&db->mu);
    lc__batch_free(b);
    strata_mutex_lock(&db->mu);
  }
  strata_mutex_unlock(&db->mu);
  return NULL;
}

int pb__start(st_db *db) {
  if (pthread_create(&db->publisher, NULL, publisher, db))
    return strata_err(STRATA_EINTERNAL, "cannot start the publisher thread");
  db->has_publisher = 1;
  return 0;
}

void pb__stop(st_db *db) {
  if (!db->has_publisher) return;
  strata_mutex_lock(&db->mu);
  db->pub_stop = 1;
  pthread_cond_broadcast(&db->pub_cv);
  strata_mutex_unlock(&db->mu);
  pthread_join(db->publisher, NULL);
  db->has_publisher = 0;
}

size_t st_publish_lags(st_db *db, uint64_t *out, size_t cap) {
  strata_mutex_lock(&db->mu);
  uint64_t n = db->nlags < ST_LAG_RING ? db->nlags : ST_LAG_RING;
  if (n > cap) n = cap;
  for (uint64_t i = 0; i < n; i++) out[i] = db->lags[(db->nlags - n + i) % ST_LAG_RING];
  strata_mutex_unlock(&db->mu);
  return (size_t)n;
}
