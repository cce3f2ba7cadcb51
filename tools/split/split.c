/*
 * The supervoxel split: steps, locks, reads, the region growing and the one
 * fenced commit. Design and crash analysis: tools/split/README.md and
 * docs/edit-workers.md.
 */
#include "tools/split/split_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/err.h"
#include "locks/lock.h"
#include "tools/populate/precomputed.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "chunks hold little-endian uint64 as the host stores them: little-endian hosts only"
#endif

const char *const sp__side_name[] = {"", "source", "sink"};

double sp__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int sp__fail(sp *p, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, p->errlen, fmt, ap);
  va_end(ap);
  return rc;
}

void sp__logkv(sp *p, const char *fmt, ...) {
  if (!p->o->log) return;
  va_list ap;
  va_start(ap, fmt);
  fprintf(p->o->log, "split: op=%" PRIu64 " ", p->op);
  vfprintf(p->o->log, fmt, ap);
  fputc('\n', p->o->log);
  fflush(p->o->log);
  va_end(ap);
}

/* STRATA_SPLIT_DIE_AT=<step>: the tests' crash points (README "Crash points"): SIGKILL
 * there. STRATA_SPLIT_STOP_AT=<step>: SIGSTOP there (a paused worker). */
void sp__die_at(sp *p, const char *step) {
  if (p->replay) return;
  const char *e = getenv("STRATA_SPLIT_DIE_AT"), *st = getenv("STRATA_SPLIT_STOP_AT");
  if (st && !strcmp(st, step)) {
    sp__logkv(p, "step=%s event=stop", step);
    raise(SIGSTOP);
  }
  if (!e || strcmp(e, step) != 0) return;
  sp__logkv(p, "step=%s event=die", step);
  raise(SIGKILL);
}

/* --- keys ------------------------------------------------------------------------------- */


char *sp__chunk_key(sp *p, const int64_t c[3]) {
  char name[PC_MAX_NAME];
  pc_chunk_name(p->s, c, name, sizeof name);
  return kvc_keyf("%s%s/%s", p->r->prefix, p->s->key, name);
}
char *sp__ids_key(sp *p) { return kvc_keyf("%s.split/ops/%" PRIu64 "/ids", p->r->prefix, p->op); }
char *sp__result_key(sp *p) {
  return kvc_keyf("%s.split/ops/%" PRIu64 "/result", p->r->prefix, p->op);
}
char *sp__lineage_key(sp *p) {
  return kvc_keyf("%s.split/lineage/%" PRIu64 "/%" PRIu64, p->r->prefix, p->r->sv, p->op);
}

void sp__rows_hex(sp *p, const uint8_t *row, size_t len, char *buf, size_t cap) {
  (void)p;
  size_t o = 0;
  for (size_t i = 0; i < len && o + 3 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%02x", row[i]);
}

/* Reads key at `gen` (0 = latest). *found = 0 when absent. *val malloc'd. */
int sp__kv_get(sp *p, const char *key, uint64_t gen, int *found, uint8_t **val, size_t *len) {
  int rc = kvc_get(p->c, key, gen, found, val, len, NULL);
  return rc ? sp__fail(p, 1, "reading %s: %s", key, strata_errmsg()) : 0;
}

int sp__load_info(sp *p) {
  char *k = kvc_keyf("%sinfo", p->r->prefix);
  int found;
  uint8_t *v;
  size_t len;
  if (!k) return sp__fail(p, 1, "out of memory");
  int rc = sp__kv_get(p, k, 0, &found, &v, &len);
  if (!rc && !found) rc = sp__fail(p, 2, "refused: no volume at prefix \"%s\" (%s is absent)", p->r->prefix, k);
  if (!rc) {
    char e[256];
    if (pc_info_parse((const char *)v, len, k, &p->info, e, sizeof e))
      rc = sp__fail(p, 2, "refused: %s", e);
    free(v);
  }
  free(k);
  if (rc) return rc;
  p->s = &p->info.s[0];
  for (int d = 0; d < 3; d++)
    if (p->s->grid[d] > ((int64_t)1 << p->r->chunk_bits))
      return sp__fail(p, 2, "refused: %" PRId64 " chunks along axis %d do not fit chunk_bits %d",
                  p->s->grid[d], d, p->r->chunk_bits);
  return 0;
}

/* The seed as a voxel without the offset; -1 when outside the volume. */
int sp__seed_voxel(sp *p, const int64_t in[3], int64_t v[3]) {
  for (int d = 0; d < 3; d++) {
    v[d] = in[d] - p->s->offset[d];
    if (v[d] < 0 || v[d] >= p->s->size[d]) return -1;
  }
  return 0;
}

/* The box (seeds' envelope plus one chunk, clipped), the one-voxel shell, and the
 * chunks overlapping it: p->clo/chi, the region and the rows. */
int sp__plan_chunks(sp *p) {
  int64_t lo[3], hi[3];
  for (int d = 0; d < 3; d++) {
    lo[d] = INT64_MAX;
    hi[d] = INT64_MIN;
  }
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < p->r->nseeds[k]; i++) {
      int64_t v[3];
      if (sp__seed_voxel(p, p->r->seeds[k][i], v))
        return sp__fail(p, 2, "refused: %s seed %" PRId64 ",%" PRId64 ",%" PRId64 " is outside the volume",
                    sp__side_name[k + 1], p->r->seeds[k][i][0], p->r->seeds[k][i][1], p->r->seeds[k][i][2]);
      for (int d = 0; d < 3; d++) {
        if (v[d] < lo[d]) lo[d] = v[d];
        if (v[d] + 1 > hi[d]) hi[d] = v[d] + 1;
      }
    }
  p->nrows = 1;
  for (int d = 0; d < 3; d++) {
    /* envelope + one chunk of margin + the one-voxel shell, clipped to the volume */
    int64_t a = lo[d] - p->s->chunk[d] - 1, b = hi[d] + p->s->chunk[d] + 1;
    if (a < 0) a = 0;
    if (b > p->s->size[d]) b = p->s->size[d];
    p->clo[d] = a / p->s->chunk[d];
    p->chi[d] = (b - 1) / p->s->chunk[d];
    p->rlo[d] = p->clo[d] * p->s->chunk[d];
    int64_t rhi = (p->chi[d] + 1) * p->s->chunk[d];
    if (rhi > p->s->size[d]) rhi = p->s->size[d];
    p->n[d] = rhi - p->rlo[d];
  }
  size_t nch = (size_t)((p->chi[0] - p->clo[0] + 1) * (p->chi[1] - p->clo[1] + 1) *
                        (p->chi[2] - p->clo[2] + 1));
  p->nrows = 1 + nch;
  p->rows = calloc(p->nrows, sizeof *p->rows);
  if (!p->rows) return sp__fail(p, 1, "out of memory");
  for (int i = 0; i < 8; i++) p->rows[0][i] = (uint8_t)(p->r->sv >> (56 - 8 * i)); /* root row */
  size_t i = 1;
  int64_t c[3];
  for (c[2] = p->clo[2]; c[2] <= p->chi[2]; c[2]++)
    for (c[1] = p->clo[1]; c[1] <= p->chi[1]; c[1]++)
      for (c[0] = p->clo[0]; c[0] <= p->chi[0]; c[0]++)
        lk_l2_chunk_key(pc_node_id(2, c, p->r->chunk_bits, 0), p->rows[i++]);
  p->nvox = (size_t)(p->n[0] * p->n[1] * p->n[2]);
  return 0;
}

static size_t rowlen(size_t i) { return i == 0 ? 8 : LK_L2_KEY_LEN; }

void sp__fill_rows(sp *p, ProtobufCBinaryData *b, size_t from) {
  for (size_t i = from; i < p->nrows; i++) {
    b[i - from].data = p->rows[i];
    b[i - from].len = rowlen(i);
  }
}

/* --- locks -------------------------------------------------------------------------------- */

/* Extends the root lock to root_ttl_ms from now. */
int sp__renew_root(sp *p) {
  return kvc_renew_row(p->c, p->op, p->rows[0], 8, (uint64_t)p->o->root_ttl_ms);
}

void *sp__renew_main(void *arg) {
  sp *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    struct timespec ts = kvc_deadline_ms(p->o->root_ttl_ms / 3);
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    if (p->stop) break;
    pthread_mutex_unlock(&p->mu);
    int rc = sp__renew_root(p);
    pthread_mutex_lock(&p->mu);
    if (rc) {
      atomic_store(&p->lost, 1);
      sp__logkv(p, "event=renew_failed error=\"%s\"", strata_errmsg());
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

void sp__renew_stop(sp *p) {
  if (!p->th_on) return;
  pthread_mutex_lock(&p->mu);
  p->stop = 1;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->th, NULL);
  p->th_on = 0;
}

/* Describes an acquire's conflicts: "row <hex> held by op N (kind)". */
static void conflicts_msg(Strata__V1__AcquireResponse *r, char *buf, size_t cap) {
  size_t o = 0;
  buf[0] = 0;
  for (size_t i = 0; i < r->n_conflicts && o + 80 < cap; i++) {
    char hex[64] = "";
    for (size_t k = 0; k < r->conflicts[i]->row.len && k < 26; k++)
      snprintf(hex + 2 * k, sizeof hex - 2 * k, "%02x", r->conflicts[i]->row.data[k]);
    o += (size_t)snprintf(buf + o, cap - o, "%srow %s held by op %" PRIu64 " (%s)", i ? "; " : "",
                          hex, r->conflicts[i]->op_id,
                          r->conflicts[i]->kind == STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE
                              ? "indefinite" : "temporal");
  }
}

/* Acquires rows [from, to) of the op. */
int sp__acquire(sp *p, size_t from, size_t to, int indefinite, const char *what) {
  ProtobufCBinaryData *b = calloc(to - from, sizeof *b);
  if (!b) return sp__fail(p, 1, "out of memory");
  for (size_t i = from; i < to; i++) {
    b[i - from].data = p->rows[i];
    b[i - from].len = rowlen(i);
  }
  Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
  q.op_id = p->op;
  q.rows = b;
  q.n_rows = to - from;
  q.kind = indefinite ? STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE
                      : STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  q.ttl_ms = indefinite ? 0 : (uint64_t)p->o->root_ttl_ms;
  q.wait_ms = (uint64_t)p->o->wait_ms;
  rpc_callopts co = {.timeout_ms = p->o->wait_ms + 30000};
  Strata__V1__AcquireResponse *r = NULL;
  int rc = rpc_locks_acquire(p->c, &co, &q, &r);
  free(b);
  if (rc) return sp__fail(p, 1, "%s: Locks.Acquire: %s", what, strata_errmsg());
  if (!r->acquired) {
    char msg[1024];
    conflicts_msg(r, msg, sizeof msg);
    rpc_free(r);
    return sp__fail(p, 1, "%s: not acquired within %" PRId64 " ms: %s", what, p->o->wait_ms, msg);
  }
  rpc_free(r);
  return 0;
}

int sp__set_status(sp *p, Strata__V1__OpStatus st, const char *reason) {
  Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
  q.op_id = p->op;
  q.status = st;
  q.reason = (char *)reason;
  Strata__V1__SetStatusResponse *r = NULL;
  int rc = rpc_ops_set_status(p->c, NULL, &q, &r);
  rpc_free(r);
  return rc ? sp__fail(p, 1, "Ops.SetStatus: %s", strata_errmsg()) : 0;
}

int sp__release_all(sp *p) {
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  q.op_id = p->op;
  q.all = 1;
  Strata__V1__ReleaseResponse *r = NULL;
  int rc = rpc_locks_release(p->c, NULL, &q, &r);
  rpc_free(r);
  return rc ? sp__fail(p, 1, "Locks.Release: %s", strata_errmsg()) : 0;
}

/* --- reads -------------------------------------------------------------------------------- */


/* Copies chunk c between its bytes and the region (to_region or back). */
void sp__chunk_copy(sp *p, const int64_t c[3], uint64_t *buf, int to_region) {
  int64_t lo[3], hi[3];
  pc_chunk_box(p->s, c, lo, hi);
  size_t w = (size_t)(hi[0] - lo[0]);
  size_t k = 0;
  for (int64_t z = lo[2]; z < hi[2]; z++)
    for (int64_t y = lo[1]; y < hi[1]; y++, k += w) {
      uint64_t *row = p->lab + vidx(p, lo[0] - p->rlo[0], y - p->rlo[1], z - p->rlo[2]);
      if (to_region) memcpy(row, buf + k, w * 8);
      else memcpy(buf + k, row, w * 8);
    }
}

/* Reads every locked chunk at gen (0 = latest) into the region. */
int sp__read_region(sp *p, uint64_t gen) {
  p->lab = malloc(p->nvox * 8);
  p->side = calloc(p->nvox, 1);
  if (!p->lab || !p->side) return sp__fail(p, 1, "out of memory for a %zu-voxel region", p->nvox);
  size_t nch = p->nrows - 1, i = 0;
  int64_t c[3];
  for (c[2] = p->clo[2]; c[2] <= p->chi[2]; c[2]++)
    for (c[1] = p->clo[1]; c[1] <= p->chi[1]; c[1]++)
      for (c[0] = p->clo[0]; c[0] <= p->chi[0]; c[0]++, i++) {
        if (i == nch / 2) sp__die_at(p, "read");
        char *k = sp__chunk_key(p, c);
        int found;
        uint8_t *v;
        size_t len;
        if (!k) return sp__fail(p, 1, "out of memory");
        int rc = sp__kv_get(p, k, gen, &found, &v, &len);
        if (!rc && !found) rc = sp__fail(p, 1, "chunk %s is absent at generation %" PRIu64, k, gen);
        if (!rc && len != pc_chunk_bytes(p->s, c)) {
          rc = sp__fail(p, 1, "chunk %s has %zu bytes, its box needs %" PRIu64, k, len,
                    pc_chunk_bytes(p->s, c));
          free(v);
        }
        free(k);
        if (rc) return rc;
        sp__chunk_copy(p, c, (uint64_t *)v, 1);
        free(v);
      }
  return 0;
}

/* --- a fresh split --------------------------------------------------------------------- */

void sp__sp_init(sp *p, rpc_client *c, const split_req *r, const split_opts *o, char *err,
                    size_t errlen) {
  memset(p, 0, sizeof *p);
  p->c = c;
  p->r = r;
  p->o = o;
  p->err = err;
  p->errlen = errlen;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  err[0] = 0;
}

void sp__sp_free(sp *p) {
  sp__renew_stop(p);
  free(p->rows);
  free(p->lab);
  free(p->side);
  free(p->ids);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
}

/* Reads the seeds' voxels at the latest version: the refusal before anything is
 * locked (and before the op exists) for seeds outside the supervoxel. Runs after
 * plan_chunks, which refused seeds outside the volume. */
static int check_seeds(sp *p) {
  for (int k = 0; k < 2; k++)
    for (size_t s = 0; s < p->r->nseeds[k]; s++) {
      int64_t v[3], c[3], lo[3], hi[3];
      sp__seed_voxel(p, p->r->seeds[k][s], v); /* inside: plan_chunks checked */
      for (int d = 0; d < 3; d++) c[d] = v[d] / p->s->chunk[d];
      pc_chunk_box(p->s, c, lo, hi);
      char *key = sp__chunk_key(p, c);
      int found;
      uint8_t *val;
      size_t len;
      if (!key) return sp__fail(p, 1, "out of memory");
      int rc = sp__kv_get(p, key, 0, &found, &val, &len);
      if (!rc && (!found || len != pc_chunk_bytes(p->s, c)))
        rc = sp__fail(p, 1, "chunk %s is absent or has the wrong size", key);
      free(key);
      if (rc) {
        if (found) free(val);
        return rc;
      }
      uint64_t l;
      size_t at = (size_t)((v[0] - lo[0]) + (hi[0] - lo[0]) * ((v[1] - lo[1]) + (hi[1] - lo[1]) * (v[2] - lo[2])));
      memcpy(&l, val + 8 * at, 8);
      free(val);
      if (l != p->r->sv)
        return sp__fail(p, 2, "refused: %s seed %" PRId64 ",%" PRId64 ",%" PRId64 " is in supervoxel %"
                    PRIu64 ", not %" PRIu64, sp__side_name[k + 1], p->r->seeds[k][s][0],
                    p->r->seeds[k][s][1], p->r->seeds[k][s][2], l, p->r->sv);
    }
  return 0;
}

/* After a failure with locks held: the op is marked and its locks released, since
 * nothing was written (a fenced commit either applied or did not). */
static void abandon(sp *p, Strata__V1__OpStatus st) {
  sp__renew_stop(p);
  char reason[512];
  snprintf(reason, sizeof reason, "split: %s", p->err);
  char keep[1024];
  snprintf(keep, sizeof keep, "%s", p->err);
  sp__set_status(p, st, reason);
  sp__release_all(p);
  snprintf(p->err, p->errlen, "%s", keep);
}

/* The anchor's multi-commit mode: no op and no locks; read, compute, take ids
 * and finish with one unfenced commit per chunk, then log the timings from t0. */
static int run_multi_commit(sp *p, split_out *out, double t0) {
  int rc;
  double t = sp__now_ms();
  if ((rc = sp__read_region(p, 0))) return rc;
  p->t_read = sp__now_ms() - t;
  t = sp__now_ms();
  if ((rc = sp__compute(p))) return rc;
  p->t_compute = sp__now_ms() - t;
  if ((rc = sp__needed_ids(p)) || (rc = sp__take_ids(p)) || (rc = sp__finish(p, out))) return rc;
  sp__logkv(p, "step=done mode=multi_commit ms=%.1f locks_ms=0 read_ms=%.1f compute_ms=%.1f "
            "commit_ms=%.1f", sp__now_ms() - t0, p->t_read, p->t_compute, p->t_commit);
  return 0;
}

/* Ops.Create of the split op with the request as its payload; sets p->op,
 * out->op_id and p->base_gen. */
static int create_op(sp *p, split_out *out) {
  char *payload = split_req_json(p->r);
  if (!payload) return sp__fail(p, 1, "out of memory");
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = (char *)p->o->user;
  cq.kind = SPLIT_OP_KIND;
  cq.payload.data = (uint8_t *)payload;
  cq.payload.len = strlen(payload);
  Strata__V1__CreateOpResponse *cr = NULL;
  int rc = rpc_ops_create(p->c, NULL, &cq, &cr);
  free(payload);
  if (rc) return sp__fail(p, 1, "Ops.Create: %s", strata_errmsg());
  p->op = out->op_id = cr->op->op_id;
  p->base_gen = cr->op->start_generation;
  rpc_free(cr);
  return 0;
}

/* The temporal root lock, with its renewal thread. If the lock is refused the op
 * is marked EXCEPTION (it holds nothing to release) and p->err kept. */
static int lock_root(sp *p) {
  int rc = sp__acquire(p, 0, 1, 0, "root lock");
  if (rc) {
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", p->err);
    sp__set_status(p, STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION, keep);
    snprintf(p->err, p->errlen, "%s", keep);
    return rc;
  }
  if (pthread_create(&p->th, NULL, sp__renew_main, p) == 0) p->th_on = 1;
  return 0;
}

int split_run(rpc_client *c, const split_req *r, const split_opts *o, split_out *out, char *err,
              size_t errlen) {
  sp p;
  sp__sp_init(&p, c, r, o, err, errlen);
  memset(out, 0, sizeof *out);
  int rc;
  double t0 = sp__now_ms(), t;
  /* 0. the request, the volume's scale, the chunks and the seeds */
  if (split_req_check(r, err, errlen)) {
    rc = 2;
    goto out;
  }
  if ((rc = sp__load_info(&p)) || (rc = sp__plan_chunks(&p)) || (rc = check_seeds(&p))) goto out;
  if (o->anchor_multi_commit) {
    rc = run_multi_commit(&p, out, t0);
    goto out;
  }
  /* 1. the op */
  if ((rc = create_op(&p, out))) goto out;
  sp__logkv(&p, "step=create base_generation=%" PRIu64 " chunks=%zu", p.base_gen, p.nrows - 1);
  sp__die_at(&p, "create");
  /* 2. the temporal root lock, renewed */
  t = sp__now_ms();
  if ((rc = lock_root(&p))) goto out;
  sp__logkv(&p, "step=root_lock ttl_ms=%" PRId64, o->root_ttl_ms);
  sp__die_at(&p, "root_lock");
  /* 3. the indefinite chunk locks (the server records them as the op's scope in the
   * same write) */
  if ((rc = sp__acquire(&p, 1, p.nrows, 1, "chunk locks"))) {
    abandon(&p, STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION);
    goto out;
  }
  p.t_locks = sp__now_ms() - t;
  sp__logkv(&p, "step=chunk_locks rows=%zu ms=%.1f", p.nrows - 1, p.t_locks);
  sp__die_at(&p, "chunk_locks");
  /* 4. reads pinned at the base generation */
  t = sp__now_ms();
  if ((rc = sp__read_region(&p, p.base_gen))) goto stuck;
  p.t_read = sp__now_ms() - t;
  sp__logkv(&p, "step=read chunks=%zu voxels=%zu ms=%.1f", p.nrows - 1, p.nvox, p.t_read);
  /* 5. the split */
  t = sp__now_ms();
  if ((rc = sp__compute(&p))) {
    if (rc == 2) {
      abandon(&p, STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION);
      rc = 1;
    }
    goto out;
  }
  p.t_compute = sp__now_ms() - t;
  sp__logkv(&p, "step=compute source_voxels=%" PRIu64 " sink_voxels=%" PRIu64 " ms=%.1f", p.count[1],
        p.count[2], p.t_compute);
  /* 6. ids, recorded on the op before use */
  if ((rc = sp__needed_ids(&p)) || (rc = sp__take_ids(&p))) goto stuck;
  sp__die_at(&p, "ids");
  /* 7. one commit, SUCCESS, release */
  rc = sp__finish(&p, out);
  if (rc == 3) {
    abandon(&p, STRATA__V1__OP_STATUS__OP_STATUS_WRITE_FAILED);
    rc = 1;
  }
  if (!rc)
    sp__logkv(&p, "step=done ms=%.1f locks_ms=%.1f read_ms=%.1f compute_ms=%.1f commit_ms=%.1f",
          sp__now_ms() - t0, p.t_locks, p.t_read, p.t_compute, p.t_commit);
  goto out;
stuck:
  /* a transport or server failure with the chunk locks held: leave them for
   * stratactl op replay (the op is listed by op stuck) */
  sp__renew_stop(&p);
  rc = 1;
out:
  sp__sp_free(&p);
  return rc;
}

void split_out_free(split_out *out) {
  free(out->result);
  out->result = NULL;
}
