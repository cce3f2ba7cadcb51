/*
 * Commit log mode, the committer's side: a group's values and nodes go into
 * the open batch's data file (written, not synced), its changes into one log
 * record, and one log sync makes it durable. Batches are closed on time or
 * size and handed to the publisher (publish.c). storage/README.md, "Commit
 * log mode", gives the durability argument.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/clog.h"
#include "storage/commit_int.h"

void lc__batch_free(st_batch *b) {
  if (!b) return;
  bs_close(b->w.f);
  strata_buf_free(&b->w.buf);
  if (b->ms.versions) mstate__free(&b->ms);
  free(b);
}

int lc__batch_open(st_db *db, uint64_t gen) {
  st_batch *b = calloc(1, sizeof *b);
  if (!b) return strata_err(STRATA_ENOMEM, "commit batch");
  b->w.db = db;
  b->first = gen;
  b->t_open = cm__now_ns();
  df__path(b->path, gen);
  int rc = bs_create(db->base, b->path, &b->w.f);
  if (!rc) rc = df__begin(db, &b->w, b->path);
  if (rc) {
    if (b->w.f) bs_remove(db->base, b->path);
    lc__batch_free(b);
    return rc;
  }
  db->batch = b;
  return 0;
}

uint64_t lc__batch_due(st_db *db) { return db->batch ? db->batch->t_open + db->publish_ns : 0; }

void lc__batch_close(st_db *db) {
  st_batch *b = db->batch;
  if (!b) return;
  db->batch = NULL;
  strata_mutex_lock(&db->mu);
  int broken = db->broken;
  int rc = b->last ? mstate__copy(&db->ms, db->ms.n_versions ? db->ms.n_versions : 1, &b->ms) : 0;
  if (!b->last || rc) db->backlog -= b->bytes;
  if (rc && !db->broken) {
    db->broken = rc;
    snprintf(db->broken_msg, sizeof db->broken_msg,
             "%s: out of memory closing a batch; the commit log holds every acknowledged commit: reopen the database",
             db->path);
  }
  strata_mutex_unlock(&db->mu);
  if (!b->last || rc) {
    /* Nothing acknowledged lives in it. A failed record whose outcome is
     * unknown (broken) may refer to it, so then it stays. */
    if (!b->last && !broken) {
      bs_close(b->w.f);
      b->w.f = NULL;
      bs_remove(db->base, b->path);
    }
    lc__batch_free(b);
    return;
  }
  /* A new segment costs a file creation and a directory fsync on the commit
   * path, so segments span batches until they reach log_segment_bytes;
   * trimming removes one once all of its batches are published. */
  if (clog_segment_bytes(db->log) >= db->log_segment_bytes) clog_rotate(db->log);
  pb__enqueue(db, b);
}

/* The helper thread's job: apply a group to the tree (new nodes into the
 * batch's data file, flushed so that readers of the new generation can read
 * them back) while the committer syncs the group's log record. */
typedef struct apply_job {
  st_db *db;
  const st_mut *muts;
  size_t n;
  const st_vers *latest;
  uint64_t gen, t;
  st_vers *nv;
  st_mstate *nms;
  int have_ms; /* *nms was built: the caller frees it on failure */
} apply_job;

static int apply_job_run(void *arg) {
  apply_job *j = arg;
  int rc = lc__apply(j->db, j->muts, j->n, j->latest, j->gen, j->t, j->nv, j->nms);
  j->have_ms = !rc;
  if (!rc) rc = wr__flush(&j->db->batch->w);
  return rc;
}

int lc__apply(st_db *db, const st_mut *muts, size_t n, const st_vers *latest, uint64_t gen, uint64_t t,
              st_vers *nv, st_mstate *nms) {
  nv->generation = gen;
  nv->commit_time = t;
  int rc = bt__apply(db, &db->batch->w, &latest->root, muts, n, &nv->root);
  if (!rc) rc = vt__add(db, &db->batch->w, &db->ms, nv, nms);
  return rc;
}

/* The B+tree mutations and the log ops of the group's (sorted) changes, in
 * *muts and *ops (caller frees both, also on failure). Values above
 * max_inline_value_bytes are appended to the batch's data file; those above
 * log_value_max are logged by reference, and *need_sync is set: the
 * referenced bytes must be durable before the record; *ref_end is where the
 * last of them ends in the batch's data file. */
static int group_ops(st_db *db, st_batch *b, const group *g, st_mut **muts_out, clog_op **ops_out,
                     int *need_sync, uint64_t *ref_end) {
  st_mut *muts = *muts_out = calloc(g->n ? g->n : 1, sizeof *muts);
  clog_op *ops = *ops_out = calloc(g->n ? g->n : 1, sizeof *ops);
  if (!muts || !ops) return strata_err(STRATA_ENOMEM, "commit");
  for (size_t i = 0; i < g->n; i++) {
    const top *o = g->ch[i].op;
    st_mut *m = &muts[i];
    int rc = cm__mutation(db, &b->w, &g->ch[i], m);
    if (rc) return rc;
    if (o->kind == OP_DELETE) {
      ops[i] = (clog_op){CLOG_OP_DELETE, m->key, m->klen, NULL, 0, NULL, 0, 0, 0};
    } else if (o->kind == OP_PUT_REF) {
      ops[i] = (clog_op){CLOG_OP_REF, m->key, m->klen, NULL, 0, o->path, strlen(o->path), o->off, o->len};
    } else if (o->vlen <= db->cfg.max_inline_value_bytes || o->vlen <= db->log_value_max) {
      ops[i] = (clog_op){CLOG_OP_VALUE, m->key, m->klen, o->val, o->vlen, NULL, 0, 0, 0};
    } else { /* logged by reference: the bytes must be durable first */
      ops[i] = (clog_op){CLOG_OP_REF, m->key, m->klen, NULL, 0, b->path, strlen(b->path), m->ref.offset, o->vlen};
      *ref_end = m->ref.offset + o->vlen; /* appended in order */
      *need_sync = 1;
    }
  }
  return 0;
}

/* Makes the batch's bytes so far, and its directory entry, durable: a log
 * record is about to refer to them. */
static int sync_referenced(st_db *db, st_batch *b) {
  int rc;
  if ((rc = wr__flush(&b->w)) || (rc = bs_fsync(b->w.f))) return rc;
  if (!b->dir_synced && (rc = bs_sync_dir(db->base, ST_DATA_DIR))) return rc;
  b->dir_synced = 1;
  return 0;
}

/* A log write failed and could not be taken back: its outcome is unknown,
 * so the database refuses commits until reopened. */
static void mark_unknown(st_db *db, int rc) {
  strata_mutex_lock(&db->mu);
  db->broken = rc;
  snprintf(db->broken_msg, sizeof db->broken_msg,
           "%s: a commit log write failed and could not be taken back; reopen the database", db->path);
  strata_mutex_unlock(&db->mu);
}

int lc__group(st_db *db, group *g, const st_vers *latest, st_vers *nv, st_mstate *nms, gstats *st) {
  uint64_t gen = latest->generation + 1, t_start = cm__now_ns();
  st_mut *muts = NULL;
  clog_op *ops = NULL;
  strata_buf rec = STRATA_BUF_INIT;
  int rc = 0, have_ms = 0, unknown = 0, need_sync = 0;
  if (!db->batch && (rc = lc__batch_open(db, gen))) goto fail;
  st_batch *b = db->batch;
  uint64_t off0 = b->w.off;
  if (g->n) qsort(g->ch, g->n, sizeof *g->ch, cm__cmp_change);
  uint64_t ref_end = 0;
  if ((rc = group_ops(db, b, g, &muts, &ops, &need_sync, &ref_end))) goto fail;
  uint64_t t = cm__commit_time(latest);
  uint64_t t_sync = cm__now_ns();
  if (need_sync && (rc = sync_referenced(db, b))) goto fail;
  /* Large values, durable now, leave the page cache (storage/README.md
   * "Large values and the page cache"), with the batch's bytes before them
   * (all synced just now: the page cache may hold a file in folios of up to
   * 2 MiB, and only a folio wholly inside the range is dropped). */
  if (need_sync && !db->keep_value_pages) bs_drop_cache(b->w.f, 0, ref_end);
  if ((rc = clog_encode_ops(&rec, ops, g->n)) ||
      (rc = clog_append(db->log, CLOG_GROUP, gen, t, rec.p, rec.len)))
    goto fail;
  /* The helper applies the group to the tree while this thread writes and
   * syncs the log record (which needs nothing from the tree): a commit costs
   * max(sync, build), not their sum, and the sync, the longer of the two
   * for small groups, runs without a thread hand-off before or after it. */
  apply_job job = {db, muts, g->n, latest, gen, t, nv, nms, 0};
  cm__job_post(db, apply_job_run, &job);
  rc = clog_sync(db->log, &unknown);
  uint64_t t_synced = cm__now_ns();
  strata_err_saved swhy;
  if (rc) strata_err_save(rc, &swhy);
  int brc = cm__job_wait(db); /* always: the job uses muts, nv and nms */
  have_ms = job.have_ms;
  if (rc) {
    strata_err_restore(&swhy);
    goto fail;
  }
  if (brc) {
    /* The record is durable but the group failed: it is taken back (cut off,
     * or voided) before anyone is told. */
    strata_err_saved bwhy;
    strata_err_save(brc, &bwhy);
    rc = brc;
    if (clog_cancel_last(db->log, gen, &unknown)) unknown = 1;
    strata_err_restore(&bwhy);
    goto fail;
  }
  /* Durable: from here nothing can fail. */
  if (!b->last) b->first_time = t;
  b->last = gen;
  uint64_t added = b->w.off - off0;
  b->bytes += added;
  strata_mutex_lock(&db->mu);
  db->backlog += added;
  strata_mutex_unlock(&db->mu);
  st->bytes_written = added + rec.len + CLOG_HEADER_BYTES;
  st->ns_build = t_sync - t_start;
  st->ns_sync = t_synced - t_sync;
  st->ns_publish = 0;
  st->ns_tree_wait = cm__now_ns() - t_synced; /* the tree build outlasting the sync */
  strata_buf_free(&rec);
  free(muts);
  free(ops);
  return 0;
fail: {
  strata_err_saved why;
  strata_err_save(rc, &why);
  clog_discard(db->log);
  if (unknown) mark_unknown(db, rc);
  /* The batch's file may hold a partial write now: it takes no more
   * commits (what it holds that was acknowledged is published). */
  lc__batch_close(db);
  if (have_ms) mstate__free(nms);
  strata_buf_free(&rec);
  free(muts);
  free(ops);
  strata_err_restore(&why);
  return strata_err_wrap(rc, "commit of generation %llu", (unsigned long long)gen);
}
}
