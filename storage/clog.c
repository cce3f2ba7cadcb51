/*
 * The commit log: record and group payload encoding, the reader (torn tails,
 * voids, the contiguity check) and the writer (buffered appends, one fsync
 * per sync, segments, trimming). clog.h states the contract.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mutex.h"
#include "common/err.h"
#include "storage/clog.h"
#include "storage/codec_int.h"
#include "storage/ocdbt.h"

/* --- group payload ----------------------------------------------------------- */

int clog_encode_ops(strata_buf *out, const clog_op *ops, size_t n) {
  size_t need = 10;
  for (size_t i = 0; i < n; i++) need += 40 + ops[i].klen + ops[i].vlen + ops[i].plen;
  if (strata_buf_reserve(out, need)) return strata_err(STRATA_ENOMEM, "commit log record of %zu ops", n);
  ocdbt__put_varint(out, n);
  for (size_t i = 0; i < n; i++) {
    const clog_op *o = &ops[i];
    if (o->kind < CLOG_OP_DELETE || o->kind > CLOG_OP_REF)
      return strata_err(STRATA_EINVALID, "commit log: op %zu has kind %d", i, o->kind);
    ocdbt__put_le(out, (uint64_t)o->kind, 1);
    ocdbt__put_varint(out, o->klen);
    strata_buf_put(out, o->key, o->klen);
    if (o->kind == CLOG_OP_VALUE) {
      ocdbt__put_varint(out, o->vlen);
      strata_buf_put(out, o->value, o->vlen);
    } else if (o->kind == CLOG_OP_REF) {
      ocdbt__put_varint(out, o->plen);
      strata_buf_put(out, o->path, o->plen);
      ocdbt__put_varint(out, o->off);
      ocdbt__put_varint(out, o->len);
    }
  }
  return 0;
}

int clog_decode_ops(const uint8_t *p, size_t n, clog_op **ops, size_t *nops) {
  ocdbt__rd r = {p, n, 0, "commit log record", 0, NULL};
  uint64_t count;
  *ops = NULL;
  *nops = 0;
  int rc = ocdbt__rd_varint(&r, UINT32_MAX, &count, "op_count", -1);
  /* every op takes at least 2 bytes (kind, key length) */
  if (!rc) rc = ocdbt__rd_check_count(&r, count, 2, "op_count");
  if (rc) return rc;
  clog_op *o = calloc(count ? count : 1, sizeof *o);
  if (!o) return strata_err(STRATA_ENOMEM, "commit log record of %" PRIu64 " ops", count);
  for (uint64_t i = 0; i < count && !rc; i++) {
    uint8_t kind;
    uint64_t len;
    const uint8_t *b;
    long ix = (long)i;
    if ((rc = ocdbt__rd_u8(&r, &kind, "op_kind", ix))) break;
    if (kind > CLOG_OP_REF) {
      rc = ocdbt__rd_fail(&r, "op_kind", ix, "unknown kind %u", kind);
      break;
    }
    o[i].kind = kind;
    if ((rc = ocdbt__rd_varint(&r, OCDBT_MAX_KEY_LENGTH, &len, "key_length", ix)) ||
        (rc = ocdbt__rd_bytes(&r, (size_t)len, &b, "key", ix)))
      break;
    o[i].key = b;
    o[i].klen = (size_t)len;
    if (kind == CLOG_OP_VALUE) {
      if ((rc = ocdbt__rd_varint(&r, CLOG_MAX_PAYLOAD, &len, "value_length", ix)) ||
          (rc = ocdbt__rd_bytes(&r, (size_t)len, &b, "value", ix)))
        break;
      o[i].value = b;
      o[i].vlen = (size_t)len;
    } else if (kind == CLOG_OP_REF) {
      if ((rc = ocdbt__rd_varint(&r, 4096, &len, "path_length", ix)) ||
          (rc = ocdbt__rd_bytes(&r, (size_t)len, &b, "path", ix)) ||
          (rc = ocdbt__rd_varint(&r, UINT64_MAX >> 1, &o[i].off, "offset", ix)) ||
          (rc = ocdbt__rd_varint(&r, UINT64_MAX >> 1, &o[i].len, "length", ix)))
        break;
      o[i].path = (const char *)b;
      o[i].plen = (size_t)len;
    }
  }
  if (!rc) rc = ocdbt__rd_end(&r);
  if (rc) {
    free(o);
    return rc;
  }
  *ops = o;
  *nops = (size_t)count;
  return 0;
}

/* --- records ------------------------------------------------------------------ */

static void put_header(uint8_t *h, int type, uint64_t gen, uint64_t t, const void *payload, size_t n) {
  ocdbt_store_le(h + 4, n, 4);
  h[8] = (uint8_t)type;
  h[9] = h[10] = h[11] = 0;
  ocdbt_store_le(h + 12, gen, 8);
  ocdbt_store_le(h + 20, t, 8);
  uint32_t crc = ocdbt_crc32c(0, h + 4, CLOG_HEADER_BYTES - 4);
  crc = ocdbt_crc32c(crc, payload, n);
  ocdbt_store_le(h, crc, 4);
}

static int seg_name(char *buf, size_t cap, const char *dir, uint64_t seq) {
  int n = snprintf(buf, cap, "%s/%016" PRIx64, dir, seq);
  return n > 0 && (size_t)n < cap ? 0 : strata_err(STRATA_EINVALID, "commit log directory name too long");
}

static int parse_seq(const char *name, uint64_t *seq) {
  if (strlen(name) != 16) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = v << 4 | (uint64_t)d;
  }
  *seq = v;
  return 1;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Parses one segment's bytes into recs (appending); fills seg. */
static int read_segment(const char *dir, clog_seg *seg, const uint8_t *p, size_t n, clog_rec **recs,
                        size_t *nrec, size_t *cap) {
  seg->bytes = n;
  if (n < CLOG_SEGMENT_MAGIC_LEN) { /* created, header never made durable */
    seg->torn_bytes = n;
    return 0;
  }
  if (memcmp(p, CLOG_SEGMENT_MAGIC, CLOG_SEGMENT_MAGIC_LEN)) {
    int zero = 1;
    for (size_t i = 0; i < CLOG_SEGMENT_MAGIC_LEN; i++) zero &= p[i] == 0;
    if (!zero)
      return strata_err(STRATA_ECORRUPT, "commit log %s/%016" PRIx64 ": not a commit log segment (bad header)",
                        dir, seg->seq);
    seg->torn_bytes = n; /* a size made durable before the bytes: nothing was */
    return 0;
  }
  size_t off = CLOG_SEGMENT_MAGIC_LEN;
  while (off < n) {
    size_t left = n - off;
    if (left < CLOG_HEADER_BYTES) break;
    const uint8_t *h = p + off;
    uint64_t len = ocdbt_load_le(h + 4, 4);
    if (len > CLOG_MAX_PAYLOAD || len > left - CLOG_HEADER_BYTES) break;
    uint32_t crc = ocdbt_crc32c(0, h + 4, CLOG_HEADER_BYTES - 4);
    crc = ocdbt_crc32c(crc, h + CLOG_HEADER_BYTES, (size_t)len);
    if (crc != (uint32_t)ocdbt_load_le(h, 4)) break;
    int type = h[8];
    if (type != CLOG_GROUP && type != CLOG_VOID)
      return strata_err(STRATA_ECORRUPT, "commit log %s/%016" PRIx64 " offset %zu: unknown record type %d", dir,
                        seg->seq, off, type);
    if (strata_grow(recs, cap, *nrec + 1, sizeof **recs, 64))
      return strata_err(STRATA_ENOMEM, "reading the commit log");
    clog_rec *r = &(*recs)[(*nrec)++];
    r->type = type;
    r->generation = ocdbt_load_le(h + 12, 8);
    r->commit_time = ocdbt_load_le(h + 20, 8);
    r->payload = h + CLOG_HEADER_BYTES;
    r->len = (size_t)len;
    r->seq = seg->seq;
    r->offset = off;
    if (r->generation > seg->max_generation) seg->max_generation = r->generation;
    off += CLOG_HEADER_BYTES + (size_t)len;
  }
  /* Zeros after the last record are the segment's reserved room, never
   * written (clog_prepare): not a torn tail. */
  size_t end = n;
  while (end > off && p[end - 1] == 0) end--;
  seg->torn_bytes = end - off;
  return 0;
}

void clog_contents_free(clog_contents *c) {
  for (size_t i = 0; i < c->nsegs; i++) free(c->data[i]);
  free(c->data);
  free(c->segs);
  free(c->recs);
  free(c->pub);
  memset(c, 0, sizeof *c);
}

uint64_t clog_next_seq(const clog_contents *c) { return c->nsegs ? c->segs[c->nsegs - 1].seq + 1 : 1; }

int clog_read(bs_store *s, const char *dir, uint64_t after, clog_contents *out) {
  memset(out, 0, sizeof *out);
  char **names = NULL;
  size_t nn = 0, cap = 0, nall = 0;
  clog_rec *all = NULL;
  uint64_t *seqs = NULL;
  int rc = bs_list(s, dir, &names, &nn);
  if (rc == STRATA_ENOTFOUND) return 0;
  if (rc) return rc;
  size_t ns = 0;
  seqs = malloc((nn ? nn : 1) * sizeof *seqs);
  out->segs = calloc(nn ? nn : 1, sizeof *out->segs);
  out->data = calloc(nn ? nn : 1, sizeof *out->data);
  if (!seqs || !out->segs || !out->data) {
    rc = strata_err(STRATA_ENOMEM, "reading the commit log");
    goto out;
  }
  for (size_t i = 0; i < nn; i++)
    if (parse_seq(names[i], &seqs[ns])) ns++; /* other names are not the log's */
  qsort(seqs, ns, sizeof *seqs, cmp_u64);
  for (size_t i = 0; i < ns; i++) {
    char path[512];
    size_t n = 0;
    if ((rc = seg_name(path, sizeof path, dir, seqs[i]))) goto out;
    clog_seg *seg = &out->segs[out->nsegs];
    seg->seq = seqs[i];
    /* Gone since the listing: a live writer's publisher trimmed it (a reader
     * beside the server), so all its records were published. Skipped: if
     * any of them was past `after`, the gap check below says so. */
    if ((rc = bs_read_all(s, path, &out->data[out->nsegs], &n)) == STRATA_ENOTFOUND) {
      rc = 0;
      continue;
    }
    if (rc) goto out;
    out->nsegs++;
    if ((rc = read_segment(dir, seg, out->data[out->nsegs - 1], n, &all, &nall, &cap))) goto out;
    out->torn_bytes += seg->torn_bytes;
  }
  /* Apply voids, in log order: a VOID cancels every earlier record with a
   * generation >= its own (a failed sync's records, which may have reached
   * the disk). What remains must continue after+1 without a gap. */
  size_t keep = 0;
  if (!(out->pub = malloc((nall ? nall : 1) * sizeof *out->pub))) {
    rc = strata_err(STRATA_ENOMEM, "reading the commit log");
    goto out;
  }
  for (size_t i = 0; i < nall; i++) {
    clog_rec *r = &all[i];
    if (r->type == CLOG_VOID) {
      out->nvoids++;
      while (keep && all[keep - 1].generation >= r->generation) keep--;
      while (out->npub && out->pub[out->npub - 1].generation >= r->generation) out->npub--;
      continue;
    }
    if (r->generation <= after) {
      out->pub[out->npub++] = (clog_stamp){r->generation, r->commit_time};
      continue;
    }
    all[keep++] = *r;
  }
  uint64_t want = after + 1;
  for (size_t i = 0; i < keep; i++, want++) {
    if (all[i].generation == want) continue;
    if (all[i].generation < want)
      rc = strata_err(STRATA_ECORRUPT,
                      "commit log %s/%016" PRIx64 " offset %" PRIu64 ": a second record of generation %" PRIu64
                      " without a void before it",
                      dir, all[i].seq, all[i].offset, all[i].generation);
    else
      rc = strata_err(STRATA_ECORRUPT,
                      "commit log %s/%016" PRIx64 " offset %" PRIu64 ": holds generation %" PRIu64
                      " but generations %" PRIu64 "..%" PRIu64
                      " are in neither the manifests nor the log (records or segments are missing)",
                      dir, all[i].seq, all[i].offset, all[i].generation, want, all[i].generation - 1);
    goto out;
  }
  out->recs = all;
  out->n = keep;
  all = NULL;
out:
  free(all);
  free(seqs);
  free(names);
  return rc;
}

/* --- writing ------------------------------------------------------------------ */

struct clog_writer {
  bs_store *s;
  char *dir;
  bs_file *f;              /* the current segment, created at its first sync */
  uint64_t seq;            /* the current segment's number */
  uint64_t seg_bytes;      /* written to it */
  uint64_t last_start;     /* where the last write_sync's records start in it */
  int rotate;              /* the next sync starts segment seq + 1 */
  int dead;                /* a failed sync could not be voided */
  strata_buf buf;          /* records since the last sync */
  uint64_t buf_min_gen, buf_max_gen;
  int buf_has;
  strata_mutex mu;      /* guards segs, nsegs, cur_seq, the statistics, f and seq
                           * (written under it, read by the writer's thread without it),
                           * and the prepared segment below */
  uint64_t cur_seq;        /* the segment open for appending (never trimmed); 0 none */
  /* The next segment, made ready by clog_prepare on another thread: created,
   * header written, room reserved and synced, directory entry durable. */
  bs_file *prep;
  uint64_t prep_seq;
  uint64_t preparing;      /* the segment clog_prepare is making now; 0 none */
  uint64_t bad_seq;        /* one whose preparation failed and could not be removed */
  int creating;            /* the writer is creating segment seq itself */
  pthread_cond_t prep_cv;  /* preparing went to 0 */
  clog_seg *segs;          /* on disk, by sequence; the last may be the current one */
  size_t nsegs, segcap;
  uint64_t bytes_written, syncs;
};

static int add_seg(clog_writer *w, uint64_t seq, uint64_t max_gen, int current) {
  strata_mutex_lock(&w->mu);
  int rc = 0;
  if (strata_grow(&w->segs, &w->segcap, w->nsegs + 1, sizeof *w->segs, 16))
    rc = strata_err(STRATA_ENOMEM, "commit log segments");
  if (!rc) w->segs[w->nsegs++] = (clog_seg){seq, max_gen, 0, 0};
  if (!rc && current) w->cur_seq = seq;
  strata_mutex_unlock(&w->mu);
  return rc;
}

int clog_writer_open(bs_store *s, const char *dir, uint64_t first_seq, const clog_seg *known,
                     size_t nknown, clog_writer **out) {
  clog_writer *w = calloc(1, sizeof *w);
  if (!w || !(w->dir = strdup(dir))) {
    free(w);
    return strata_err(STRATA_ENOMEM, "commit log writer");
  }
  w->s = s;
  w->seq = first_seq ? first_seq : 1;
  w->rotate = 0;
  strata_mutex_init(&w->mu);
  pthread_cond_init(&w->prep_cv, NULL);
  int rc = 0;
  for (size_t i = 0; i < nknown && !rc; i++) rc = add_seg(w, known[i].seq, known[i].max_generation, 0);
  /* The directory and its entry in the parent must exist durably before a
   * segment in it can be. */
  if (!rc) rc = bs_mkdir(s, dir);
  if (!rc) {
    const char *slash = strrchr(dir, '/');
    char parent[512] = "";
    if (slash) snprintf(parent, sizeof parent, "%.*s", (int)(slash - dir), dir);
    rc = bs_sync_dir(s, parent);
  }
  if (rc) {
    clog_writer_close(w);
    return rc;
  }
  *out = w;
  return 0;
}

void clog_writer_close(clog_writer *w) {
  if (!w) return;
  strata_mutex_lock(&w->mu);
  while (w->preparing) strata_cond_wait(&w->prep_cv, &w->mu);
  strata_mutex_unlock(&w->mu);
  if (w->prep) { /* never used: holds no record */
    char path[512];
    bs_close(w->prep);
    if (!seg_name(path, sizeof path, w->dir, w->prep_seq)) bs_remove(w->s, path);
  }
  pthread_cond_destroy(&w->prep_cv);
  bs_close(w->f);
  strata_buf_free(&w->buf);
  strata_mutex_destroy(&w->mu);
  free(w->segs);
  free(w->dir);
  free(w);
}

int clog_append(clog_writer *w, int type, uint64_t gen, uint64_t t, const void *payload, size_t n) {
  if (n > CLOG_MAX_PAYLOAD)
    return strata_err(STRATA_ETOOBIG, "commit log record of %zu bytes (the limit is %u)", n, CLOG_MAX_PAYLOAD);
  if (strata_buf_reserve(&w->buf, CLOG_HEADER_BYTES + n))
    return strata_err(STRATA_ENOMEM, "commit log record of %zu bytes", n);
  uint8_t *h = w->buf.p + w->buf.len;
  put_header(h, type, gen, t, payload, n);
  w->buf.len += CLOG_HEADER_BYTES;
  strata_buf_put(&w->buf, payload, n);
  if (!w->buf_has || gen < w->buf_min_gen) w->buf_min_gen = gen;
  if (!w->buf_has || gen > w->buf_max_gen) w->buf_max_gen = gen;
  w->buf_has = 1;
  return 0;
}

void clog_discard(clog_writer *w) {
  w->buf.len = 0;
  w->buf_has = 0;
}

/* Closes the current segment (if any); the next sync starts segment seq + 1. */
static void seg_done(clog_writer *w) {
  strata_mutex_lock(&w->mu);
  bs_file *f = w->f;
  w->f = NULL;
  w->seq++;
  w->rotate = 0;
  strata_mutex_unlock(&w->mu);
  bs_close(f);
}

/* Makes segment seq the current one: the prepared one when clog_prepare made
 * it (waiting for a preparation under way), else created here. *fresh = 1
 * when its directory entry still has to be made durable. */
static int seg_open(clog_writer *w, int *fresh) {
  char path[512];
  bs_file *stale = NULL, *f = NULL;
  uint64_t stale_seq = 0;
  int rc;
  strata_mutex_lock(&w->mu);
  while (w->preparing && w->preparing <= w->seq) strata_cond_wait(&w->prep_cv, &w->mu);
  if (w->seq == w->bad_seq) w->seq++;
  if (w->prep && w->prep_seq < w->seq) { /* passed over: it holds no record */
    stale = w->prep;
    stale_seq = w->prep_seq;
    w->prep = NULL;
  }
  if (w->prep && w->prep_seq == w->seq) {
    f = w->prep;
    w->prep = NULL;
  } else {
    w->creating = 1;
  }
  strata_mutex_unlock(&w->mu);
  if (stale) {
    bs_close(stale);
    if (!seg_name(path, sizeof path, w->dir, stale_seq)) bs_remove(w->s, path);
  }
  *fresh = !f;
  if (f) {
    w->seg_bytes = CLOG_SEGMENT_MAGIC_LEN;
    rc = add_seg(w, w->seq, 0, 1);
  } else {
    rc = seg_name(path, sizeof path, w->dir, w->seq);
    if (!rc) rc = bs_create(w->s, path, &f);
    w->seg_bytes = 0;
    if (!rc) rc = add_seg(w, w->seq, 0, 1);
    /* A failed header leaves the segment current: the caller's take back
     * cuts it to nothing and moves on to the next one. */
    if (!rc && !(rc = bs_append(f, CLOG_SEGMENT_MAGIC, CLOG_SEGMENT_MAGIC_LEN)))
      w->seg_bytes = CLOG_SEGMENT_MAGIC_LEN;
  }
  w->last_start = w->seg_bytes;
  strata_mutex_lock(&w->mu);
  w->creating = 0;
  w->f = f;
  strata_mutex_unlock(&w->mu);
  return rc;
}

/* Writes p[0..n) (records covering generations up to max_gen) to the current
 * segment, opening the next one first when needed, and makes them durable. */
static int write_sync(clog_writer *w, const uint8_t *p, size_t n, uint64_t max_gen) {
  int rc, fresh = 0;
  if (w->rotate && w->f) seg_done(w);
  w->rotate = 0;
  if (!w->f && (rc = seg_open(w, &fresh))) return rc;
  w->last_start = w->seg_bytes;
  /* The records may be on disk from here on: count them for trimming. */
  strata_mutex_lock(&w->mu);
  clog_seg *cur = &w->segs[w->nsegs - 1];
  if (max_gen > cur->max_generation) cur->max_generation = max_gen;
  strata_mutex_unlock(&w->mu);
  w->seg_bytes += n;
  if ((rc = bs_append(w->f, p, n)) || (rc = bs_fsync(w->f))) return rc;
  if (fresh && (rc = bs_sync_dir(w->s, w->dir))) return rc;
  strata_mutex_lock(&w->mu);
  w->bytes_written += n + (fresh ? CLOG_SEGMENT_MAGIC_LEN : 0);
  w->syncs++;
  strata_mutex_unlock(&w->mu);
  return 0;
}

int clog_prepare(clog_writer *w, uint64_t bytes) {
  char path[512];
  bs_file *f = NULL;
  strata_mutex_lock(&w->mu);
  uint64_t seq = w->f || w->creating ? w->seq + 1 : w->seq;
  int skip = w->dead || w->prep || w->preparing || seq == w->bad_seq;
  if (!skip) w->preparing = seq;
  strata_mutex_unlock(&w->mu);
  if (skip) return 0;
  uint64_t room = bytes > CLOG_SEGMENT_MAGIC_LEN ? bytes - CLOG_SEGMENT_MAGIC_LEN : 0;
  int rc = seg_name(path, sizeof path, w->dir, seq), made = 0;
  if (!rc) made = !(rc = bs_create(w->s, path, &f));
  if (!rc) rc = bs_append(f, CLOG_SEGMENT_MAGIC, CLOG_SEGMENT_MAGIC_LEN);
  if (!rc) rc = bs_reserve(f, room);
  if (!rc) rc = bs_fsync(f); /* the header, also where bs_reserve is a no-op */
  if (!rc) rc = bs_sync_dir(w->s, w->dir);
  int lost = 0;
  if (rc) {
    strata_err_saved why;
    strata_err_save(rc, &why);
    bs_close(f);
    f = NULL;
    lost = made && bs_remove(w->s, path) != 0;
    rc = strata_err_restore(&why);
  }
  strata_mutex_lock(&w->mu);
  w->preparing = 0;
  if (f) {
    w->prep = f;
    w->prep_seq = seq;
  }
  if (lost) w->bad_seq = seq; /* the writer steps over it */
  pthread_cond_broadcast(&w->prep_cv);
  strata_mutex_unlock(&w->mu);
  return rc;
}

/* Takes the last write_sync's records back: the current segment is cut to
 * where they started and the cut made durable, so they are certainly not in
 * the log and the segment goes on from there. Cutting frees space, so this
 * works on a full disk. */
static int take_back(clog_writer *w) {
  if (!w->f) return strata_err(STRATA_EIO, "commit log %s: no segment to cut", w->dir);
  int rc = bs_truncate(w->f, w->last_start);
  if (!rc) rc = bs_fsync(w->f);
  if (rc) return rc;
  w->seg_bytes = w->last_start;
  /* A new segment cut before its header: it stays empty (the reader takes an
   * empty segment as one never written) and the next sync starts the one
   * after it. */
  if (w->last_start < CLOG_SEGMENT_MAGIC_LEN) seg_done(w);
  return 0;
}

/* Records that may be on disk (seq's segment) can never be replayed once a
 * VOID for the lowest generation they carry is durable in a new segment. */
static int write_void(clog_writer *w, uint64_t gen, int *unknown) {
  w->rotate = 1;
  if (!w->f) { /* the segment was never created (or its creation failed) */
    strata_mutex_lock(&w->mu);
    w->seq++;
    w->rotate = 0;
    strata_mutex_unlock(&w->mu);
  }
  uint8_t v[CLOG_HEADER_BYTES];
  put_header(v, CLOG_VOID, gen, 0, NULL, 0);
  if (!write_sync(w, v, sizeof v, gen)) return 0;
  w->dead = 1;
  *unknown = 1;
  if (w->f) seg_done(w);
  return -1;
}

int clog_cancel_last(clog_writer *w, uint64_t gen, int *unknown) {
  *unknown = 0;
  int rc = take_back(w);
  if (!rc) return 0;
  strata_err_saved cut;
  strata_err_save(rc, &cut);
  if (!write_void(w, gen, unknown)) return 0;
  return strata_err(STRATA_EIO, "commit log %s: a record could not be taken back (%s, and the void record: %s)",
                    w->dir, cut.msg, strata_errmsg());
}

int clog_sync(clog_writer *w, int *unknown) {
  *unknown = 0;
  if (w->dead) {
    clog_discard(w);
    *unknown = 1;
    return strata_err(STRATA_EIO, "commit log %s: an earlier failed write could not be taken back; reopen the database",
                      w->dir);
  }
  if (!w->buf_has) return 0;
  int rc = write_sync(w, w->buf.p, w->buf.len, w->buf_max_gen);
  if (!rc) {
    clog_discard(w);
    return 0;
  }
  /* The records may or may not be on disk (a failed fsync leaves the file's
   * state unknown). Cutting them off (take_back) settles it and keeps the
   * segment; when even that fails, the segment is closed for good and a VOID
   * makes them dead. Either way they are never replayed. */
  strata_err_saved why, cut;
  strata_err_save(rc, &why);
  uint64_t gen = w->buf_min_gen;
  clog_discard(w);
  if (!w->f) { /* the segment's creation failed: nothing of them was written */
    strata_mutex_lock(&w->mu);
    w->seq++;
    w->rotate = 0;
    strata_mutex_unlock(&w->mu);
    return strata_err_restore(&why);
  }
  int crc = take_back(w);
  if (!crc) return strata_err_restore(&why);
  strata_err_save(crc, &cut);
  if (write_void(w, gen, unknown))
    return strata_err(rc, "%s (cutting it off failed: %s; and the void record after it: %s)", why.msg, cut.msg,
                      strata_errmsg());
  return strata_err_restore(&why);
}

void clog_rotate(clog_writer *w) {
  if (w->f) w->rotate = 1;
}

uint64_t clog_segment_bytes(clog_writer *w) { return w->f ? w->seg_bytes : 0; }

size_t clog_trim(clog_writer *w, uint64_t upto) {
  size_t removed = 0;
  for (;;) {
    strata_mutex_lock(&w->mu);
    /* Never the segment open for appending: only closed ones go. */
    int ok = w->nsegs && w->segs[0].seq != w->cur_seq && w->segs[0].max_generation <= upto;
    uint64_t seq = ok ? w->segs[0].seq : 0;
    strata_mutex_unlock(&w->mu);
    if (!ok) break;
    char path[512];
    if (seg_name(path, sizeof path, w->dir, seq)) break;
    int rc = bs_remove(w->s, path);
    if (rc && rc != STRATA_ENOTFOUND) break; /* tried again at the next trim */
    strata_mutex_lock(&w->mu);
    memmove(w->segs, w->segs + 1, (w->nsegs - 1) * sizeof *w->segs);
    w->nsegs--;
    strata_mutex_unlock(&w->mu);
    removed++;
  }
  return removed;
}

void clog_writer_stats(clog_writer *w, clog_stats *out) {
  strata_mutex_lock(&w->mu);
  out->segments = w->nsegs;
  out->bytes_written = w->bytes_written;
  out->syncs = w->syncs;
  strata_mutex_unlock(&w->mu);
}
