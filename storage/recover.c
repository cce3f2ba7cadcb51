/*
 * Commit log mode at open: the log's records past the newest manifest are
 * replayed (same generations, same commit times, same changes), published
 * as one batch, and the log trimmed, all before the database serves. A log
 * that skips generations is refused (clog_read). storage/README.md, "Commit
 * log mode".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/clog.h"
#include "storage/commit_int.h"

#define DEFAULT_PUBLISH_MS 25
#define DEFAULT_MAX_BACKLOG ((uint64_t)64 << 20)
#define DEFAULT_LOG_VALUE_MAX (64u << 10)
#define DEFAULT_LOG_SEGMENT_BYTES ((uint64_t)4 << 20)

/* Whether this open commits through the log: the default, unless the
 * caller asks for the per-group path or the database keeps a single
 * manifest (a log batch publishes a numbered one). */
static int use_log(const st_db *db, const st_options *opt) {
  return !opt->no_commit_log && db->cfg.manifest_kind == OCDBT_MANIFEST_NUMBERED;
}

/* Replays one group record on top of db->latest / db->ms. */
static int replay_one(st_db *db, const clog_rec *r) {
  clog_op *ops = NULL;
  size_t n = 0;
  int rc = clog_decode_ops(r->payload, r->len, &ops, &n);
  if (rc) return rc;
  st_mut *muts = calloc(n ? n : 1, sizeof *muts);
  if (!muts) {
    free(ops);
    return strata_err(STRATA_ENOMEM, "replay");
  }
  st_writer *w = &db->batch->w;
  for (size_t i = 0; i < n && !rc; i++) {
    const clog_op *o = &ops[i];
    st_mut *m = &muts[i];
    m->key = o->key;
    m->klen = o->klen;
    if (i && ocdbt_slice_cmp((ocdbt_slice){muts[i - 1].key, muts[i - 1].klen}, (ocdbt_slice){o->key, o->klen}) >= 0) {
      rc = strata_err(STRATA_ECORRUPT, "its keys are not in order at change %zu", i);
    } else if (o->kind == CLOG_OP_DELETE) {
      m->kind = MUT_DELETE;
    } else if (o->kind == CLOG_OP_REF) {
      char path[4200];
      snprintf(path, sizeof path, "%.*s", (int)o->plen, o->path);
      m->kind = MUT_INDIRECT;
      m->ref.offset = o->off;
      m->ref.length = o->len;
      rc = ft__intern(db, path, strlen(path), 2, &m->ref.file);
    } else if (o->vlen <= db->cfg.max_inline_value_bytes) {
      m->kind = MUT_INLINE;
      m->value = o->value;
      m->vlen = o->vlen;
    } else {
      rc = wr__append_value(w, o->value, o->vlen, &m->ref);
      m->kind = MUT_INDIRECT;
    }
  }
  st_vers nv;
  st_mstate nms;
  if (!rc && !(rc = lc__apply(db, muts, n, &db->latest, r->generation, r->commit_time, &nv, &nms))) {
    mstate__free(&db->ms);
    db->ms = nms;
    db->latest = nv;
    db->batch->last = r->generation;
    if (!db->batch->first_time) db->batch->first_time = r->commit_time;
  }
  free(muts);
  free(ops);
  return rc;
}

static int replay(st_db *db, const clog_contents *c) {
  int rc = lc__batch_open(db, db->latest.generation + 1);
  for (size_t i = 0; i < c->n && !rc; i++)
    if ((rc = replay_one(db, &c->recs[i])))
      rc = strata_err(rc, "%s: replaying the commit log, generation %llu (segment %016llx offset %llu): %s",
                      db->path, (unsigned long long)c->recs[i].generation, (unsigned long long)c->recs[i].seq,
                      (unsigned long long)c->recs[i].offset, strata_errmsg());
  st_batch *b = db->batch;
  db->batch = NULL;
  if (!rc) rc = mstate__copy(&db->ms, db->ms.n_versions ? db->ms.n_versions : 1, &b->ms);
  int fatal;
  if (!rc) rc = pb__publish(db, b, &fatal);
  lc__batch_free(b);
  if (!rc) db->published = db->latest.generation;
  return rc;
}

/* The log's records that the manifests already cover must be the ones the
 * manifests hold: same generation, same commit time. Otherwise another writer
 * published those generations into the store (a second server on the same
 * files or bucket), and replaying the rest on top of its history would lose
 * this server's acknowledged commits without a word. Generations the version
 * tree no longer retains cannot be compared and are passed. */
static int check_published(st_db *db, const clog_contents *c) {
  for (size_t i = 0; i < c->npub; i++) {
    st_vers v;
    int rc = vt__find_generation(db, &db->ms, c->pub[i].generation, &v);
    if (rc == STRATA_ENOTFOUND) continue;
    if (rc) return rc;
    if (v.commit_time != c->pub[i].commit_time)
      return strata_err(STRATA_ECORRUPT,
                        "%s: generation %llu in the store was committed at %llu ns, but this server's commit "
                        "log acknowledged generation %llu at %llu ns: another server has published into this "
                        "store. Nothing was changed; keep one server per store (docs/operations.md "
                        "\"Deployment shapes\")",
                        db->path, (unsigned long long)c->pub[i].generation, (unsigned long long)v.commit_time,
                        (unsigned long long)c->pub[i].generation, (unsigned long long)c->pub[i].commit_time);
  }
  return 0;
}

int rc__open_log(st_db *db, const st_options *opt) {
  int rc = 0;
  db->publish_ns = (uint64_t)(opt->publish_interval_ms ? opt->publish_interval_ms : DEFAULT_PUBLISH_MS) * 1000000ull;
  db->max_backlog = opt->max_unpublished_bytes ? opt->max_unpublished_bytes : DEFAULT_MAX_BACKLOG;
  db->log_value_max = opt->log_value_max ? opt->log_value_max : DEFAULT_LOG_VALUE_MAX;
  db->keep_value_pages = opt->keep_value_pages;
  db->log_segment_bytes = opt->log_segment_bytes ? opt->log_segment_bytes : DEFAULT_LOG_SEGMENT_BYTES;
  db->published = db->latest.generation;
  db->log_last = db->latest.generation;
  if (db->read_only && opt->published_only) return 0; /* the log is the writer's: not opened */
  if (opt->log_dir) {
    if ((rc = bs_file_open(opt->log_dir, &db->own_log_base))) return rc;
    db->log_base = db->own_log_base;
  } else {
    db->log_base = db->base;
  }
  clog_contents *c = &db->log_found;
  if ((rc = clog_read(db->log_base, CLOG_DIR, db->latest.generation, c)))
    rc = strata_err(rc, "%s: %s", db->path, strata_errmsg());
  if (!rc) rc = check_published(db, c);
  if (!rc && c->n) db->log_last = c->recs[c->n - 1].generation;
  if (!rc && !db->read_only && c->n) rc = replay(db, c);
  return rc;
}

int rc__start_log(st_db *db, const st_options *opt) {
  clog_contents *c = &db->log_found;
  int rc = 0;
  /* The writer adopts the old segments so that they are trimmed; without
   * the log option they go now (everything in them is published). */
  if (!db->read_only && (use_log(db, opt) || c->nsegs))
    rc = clog_writer_open(db->log_base, CLOG_DIR, clog_next_seq(c), c->segs, c->nsegs, &db->log);
  if (!rc && db->log) clog_trim(db->log, db->published);
  if (!rc && !use_log(db, opt) && db->log) {
    clog_writer_close(db->log);
    db->log = NULL;
  }
  clog_contents_free(c);
  return rc;
}

void rc__close_log(st_db *db) {
  clog_contents_free(&db->log_found);
  clog_writer_close(db->log);
  db->log = NULL;
  bs_destroy(db->own_log_base);
  db->own_log_base = NULL;
}
