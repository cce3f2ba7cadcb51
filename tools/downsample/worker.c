/*
 * strata-downsample's worker: its state and progress lines, the block locks and
 * their renewal, the fenced commits, and ds_run, which sets the worker up and runs
 * one of the modes (feed.c). Design: tools/downsample/README.md.
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "tools/common/kvc.h"
#include "tools/downsample/ds_int.h"

/* --- crash points ------------------------------------------------------------------------ */

/* STRATA_DOWNSAMPLE_DIE_AT=stage:N (tests only): SIGKILL at the N-th (1-based) time
 * the worker reaches stage: read (a block's mip 0 read), computed (its pyramid and
 * changes), commit_before, commit_after. STRATA_DOWNSAMPLE_STALL=stage:MS: sleep MS
 * every time (a slow block, for the renewal of the rows held meanwhile). */
void ds__crash_point(const char *stage) {
  static atomic_int count;
  size_t n = strlen(stage);
  const char *st = getenv("STRATA_DOWNSAMPLE_STALL");
  if (st && !strncmp(st, stage, n) && st[n] == ':') {
    long ms = atol(st + n + 1);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
  }
  const char *e = getenv("STRATA_DOWNSAMPLE_DIE_AT");
  if (!e || strncmp(e, stage, n) || e[n] != ':') return;
  if (atomic_fetch_add(&count, 1) + 1 == atoi(e + n + 1)) raise(SIGKILL);
}

/* --- the worker's state --------------------------------------------------------------- */

int ds__fail(ds *p, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, p->errlen, fmt, ap);
  va_end(ap);
  return code;
}

int64_t ds__now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void ds__logkv(ds *p, const char *fmt, ...) {
  if (!p->o->log) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(p->o->log, "downsample: worker=%s t_ms=%" PRId64 " %s\n", p->o->name, ds__now_ms(), buf);
  fflush(p->o->log);
}

/* A decimal generation value; 0 when absent or malformed. */
uint64_t ds__gen_value(const uint8_t *v, size_t len) {
  if (!v || !len || len > 20) return 0;
  char buf[32];
  memcpy(buf, v, len);
  buf[len] = 0;
  return strtoull(buf, NULL, 10);
}

char *ds__ckpt_key(ds *p) { return kvc_keyf("%s" DS_DIR "checkpoint/%s", p->o->prefix, p->o->name); }

char *ds__stamp_key(ds *p, const int64_t b[3]) {
  return kvc_keyf("%s" DS_DIR "blocks/%" PRId64 "_%" PRId64 "_%" PRId64, p->o->prefix, b[0], b[1], b[2]);
}

char *ds__chunk_key(ds *p, int i, const int64_t c[3]) {
  char name[PC_MAX_NAME];
  pc_chunk_name(&p->l.in.s[i], c, name, sizeof name);
  return kvc_keyf("%s%s/%s", p->o->prefix, p->l.in.s[i].key, name);
}

/* --- the block lock and its renewal ------------------------------------------------------ */

/* Renews row for p->op; on failure, when *held still names row, sets *lost. Called
 * with p->mu held; drops it during the call. */
static void renew_one(ds *p, const uint8_t *held_row, const int *held, atomic_int *lost) {
  uint8_t row[LK_BLOCK_KEY_LEN];
  memcpy(row, held_row, sizeof row);
  pthread_mutex_unlock(&p->mu);
  int rc = kvc_renew_row(p->c, p->op, row, sizeof row, (uint64_t)p->o->ttl_ms);
  pthread_mutex_lock(&p->mu);
  if (rc && *held && !memcmp(row, held_row, sizeof row)) {
    atomic_store(lost, 1);
    ds__logkv(p, "event=renew_failed error=\"%s\"", strata_errmsg());
  }
}

static void *renew_main(void *arg) {
  ds *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    struct timespec ts = kvc_deadline_ms(p->o->ttl_ms / 3);
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    if (p->stop) continue;
    if (p->holding) renew_one(p, p->row, &p->holding, &p->lost);
    if (p->ahead_holding && !p->stop) renew_one(p, p->ahead_row, &p->ahead_holding, &p->ahead_lost);
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Acquires block b's row (temporal) into row: 0 acquired, 1 held by another, or -1
 * (err set). */
static int acquire_row(ds *p, const int64_t b[3], int64_t wait_ms, uint8_t row[LK_BLOCK_KEY_LEN]) {
  lk_block_key((uint64_t)b[0], (uint64_t)b[1], (uint64_t)b[2], row);
  Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
  ProtobufCBinaryData rb = {LK_BLOCK_KEY_LEN, row};
  q.op_id = p->op;
  q.rows = &rb;
  q.n_rows = 1;
  q.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  q.ttl_ms = (uint64_t)p->o->ttl_ms;
  q.wait_ms = (uint64_t)wait_ms;
  rpc_callopts co = {.timeout_ms = wait_ms + 30000};
  Strata__V1__AcquireResponse *r = NULL;
  int rc = rpc_locks_acquire(p->c, &co, &q, &r);
  if (rc) return ds__fail(p, -1, "Locks.Acquire of block %" PRId64 "_%" PRId64 "_%" PRId64 ": %s", b[0], b[1],
                      b[2], strata_errmsg());
  int got = r->acquired;
  uint64_t holder = !got && r->n_conflicts ? r->conflicts[0]->op_id : 0;
  rpc_free(r);
  if (!got && wait_ms)
    return ds__fail(p, -1, "block %" PRId64 "_%" PRId64 "_%" PRId64 " still held by op %" PRIu64
                " after %" PRId64 " ms", b[0], b[1], b[2], holder, wait_ms);
  return got ? 0 : 1;
}

/* Records row as held in *dst (p->row or p->ahead_row), under p->mu. */
static void hold_row(ds *p, uint8_t *dst, int *holding, atomic_int *lost, const uint8_t *row) {
  pthread_mutex_lock(&p->mu);
  memcpy(dst, row, LK_BLOCK_KEY_LEN);
  *holding = 1;
  atomic_store(lost, 0);
  pthread_mutex_unlock(&p->mu);
}

/* Releases the row held in *src (p->row or p->ahead_row), if any. */
static void drop_row(ds *p, const uint8_t *src, int *holding) {
  uint8_t row[LK_BLOCK_KEY_LEN];
  pthread_mutex_lock(&p->mu);
  memcpy(row, src, sizeof row);
  int was = *holding;
  *holding = 0;
  pthread_mutex_unlock(&p->mu);
  if (was) ds__release_row(p, row);
}

int ds__lock_block(ds *p, const int64_t b[3], int64_t wait_ms) {
  uint8_t row[LK_BLOCK_KEY_LEN];
  int rc = acquire_row(p, b, wait_ms, row);
  if (!rc) hold_row(p, p->row, &p->holding, &p->lost, row);
  return rc;
}

int ds__lock_ahead(ds *p, ds *v, const int64_t b[3]) {
  uint8_t row[LK_BLOCK_KEY_LEN];
  int rc = acquire_row(v, b, 0, row);
  if (!rc) hold_row(p, p->ahead_row, &p->ahead_holding, &p->ahead_lost, row);
  return rc;
}

int ds__adopt_ahead(ds *p) {
  pthread_mutex_lock(&p->mu);
  int had = p->ahead_holding;
  if (had) {
    memcpy(p->row, p->ahead_row, sizeof p->row);
    p->holding = 1;
    p->ahead_holding = 0;
    atomic_store(&p->lost, atomic_load(&p->ahead_lost));
  }
  pthread_mutex_unlock(&p->mu);
  return had;
}

void ds__unlock_block(ds *p) { drop_row(p, p->row, &p->holding); }

void ds__unlock_ahead(ds *p) { drop_row(p, p->ahead_row, &p->ahead_holding); }

void ds__release_row(ds *p, const uint8_t *row) {
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  ProtobufCBinaryData b = {LK_BLOCK_KEY_LEN, (uint8_t *)row};
  q.op_id = p->op;
  q.rows = &b;
  q.n_rows = 1;
  Strata__V1__ReleaseResponse *r = NULL;
  rpc_locks_release(p->c, NULL, &q, &r); /* a failure leaves a lock that expires */
  rpc_free(r);
}

/* --- commits ------------------------------------------------------------------------------- */


/* One commit of puts; fenced by the held block row when fenced; when with_ckpt,
 * also the checkpoint = ckpt_new, conditioned on the checkpoint unchanged since
 * this worker last saw it (two processes under one name refuse each other). */
int ds__commit(ds *p, putv *pv, size_t n, int fenced, int with_ckpt, uint64_t ckpt_new,
                  uint64_t *gen) {
  char *ck = NULL, val[32];
  Strata__V1__Put *pb = calloc(n + 1, sizeof *pb);
  Strata__V1__Put **pp = calloc(n + 1, sizeof *pp);
  if (!pb || !pp) {
    free(pb);
    free(pp);
    return ds__fail(p, 1, "out of memory");
  }
  size_t np = 0;
  for (size_t i = 0; i < n; i++) {
    Strata__V1__Put init = STRATA__V1__PUT__INIT;
    pb[np] = init;
    pb[np].key.data = (uint8_t *)pv[i].key;
    pb[np].key.len = strlen(pv[i].key);
    pb[np].value.data = pv[i].val;
    pb[np].value.len = pv[i].len;
    pp[np] = &pb[np];
    np++;
  }
  Strata__V1__Condition cond = STRATA__V1__CONDITION__INIT;
  Strata__V1__Condition *cp = &cond;
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  if (with_ckpt) {
    ck = ds__ckpt_key(p);
    snprintf(val, sizeof val, "%" PRIu64, ckpt_new);
    Strata__V1__Put init = STRATA__V1__PUT__INIT;
    pb[np] = init;
    pb[np].key.data = (uint8_t *)ck;
    pb[np].key.len = strlen(ck);
    pb[np].value.data = (uint8_t *)val;
    pb[np].value.len = strlen(val);
    pp[np] = &pb[np];
    np++;
    cond.key = pb[np - 1].key;
    cond.kind = STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE;
    cond.generation = p->ckpt_seen;
    q.conditions = &cp;
    q.n_conditions = 1;
  }
  q.puts = pp;
  q.n_puts = np;
  Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
  ProtobufCBinaryData rb = {LK_BLOCK_KEY_LEN, p->row};
  if (fenced) {
    f.op_id = p->op;
    f.rows = &rb;
    f.n_rows = 1;
    q.fence = &f;
  }
  Strata__V1__CommitResponse *r = NULL;
  int rc = rpc_kv_commit(p->c, NULL, &q, &r);
  if (rc) {
    rc = ds__fail(p, 1, "Kv.Commit%s: %s", with_ckpt ? " (with the checkpoint)" : "", strata_errmsg());
  } else {
    *gen = r->version ? r->version->generation : 0;
    if (with_ckpt) {
      p->ckpt = ckpt_new;
      p->ckpt_seen = *gen;
    }
  }
  rpc_free(r);
  free(ck);
  free(pb);
  free(pp);
  return rc;
}

static int load_layout(ds *p) {
  char *k = kvc_keyf("%sinfo", p->o->prefix);
  int found;
  uint8_t *v = NULL;
  size_t len = 0;
  if (!k) return ds__fail(p, 1, "out of memory");
  int rc = kvc_get(p->c, k, 0, &found, &v, &len, NULL);
  if (rc) rc = ds__fail(p, 1, "reading %s: %s", k, strata_errmsg());
  else if (!found) rc = ds__fail(p, 2, "refused: no volume at prefix \"%s\" (%s is absent)", p->o->prefix, k);
  pc_info in;
  char e[512];
  if (!rc && pc_info_parse((const char *)v, len, k, &in, e, sizeof e))
    rc = ds__fail(p, 2, "refused: %s", e);
  if (!rc && ds_layout_init(&in, &p->l, e, sizeof e)) rc = ds__fail(p, 2, "refused: %s: %s", k, e);
  free(v);
  free(k);
  return rc;
}

/* The region buffers of one block at every scale, one chunk's buffer, and the spare
 * mip-0 region the read-ahead fills. 0, or 1 with err set. */
static int alloc_buffers(ds *p) {
  for (int i = 0; i < p->l.in.nscales; i++) {
    int64_t b0[3] = {0, 0, 0}, lo[3], hi[3];
    ds_block_box(&p->l, i, b0, lo, hi);
    for (int d = 0; d < 3; d++) hi[d] = lo[d] + p->l.bvox[d] / p->l.F[i][d];
    p->reg_bytes[i] = ds__box_voxels(lo, hi) * 8;
    if (!(p->reg[i] = ds_region_alloc(p->reg_bytes[i]))) return ds__fail(p, 1, "out of memory");
  }
  const pc_scale *s = &p->l.in.s[0];
  size_t cb = (size_t)(s->chunk[0] * s->chunk[1] * s->chunk[2]) * 8;
  if (!(p->cbuf = malloc(cb))) return ds__fail(p, 1, "out of memory");
  /* without the spare the blocks are simply read one after another (the same size
   * as reg[0], which it is swapped with) */
  p->spare = ds_region_alloc(p->reg_bytes[0]);
  return 0;
}

/* The checkpoint's value and the generation it was read at. 0, or 1 with err set. */
static int read_checkpoint(ds *p) {
  char *ck = ds__ckpt_key(p);
  int found, rc = 0;
  uint8_t *v = NULL;
  size_t len = 0;
  if (!ck || kvc_get(p->c, ck, 0, &found, &v, &len, &p->ckpt_seen))
    rc = ds__fail(p, 1, "reading the checkpoint: %s", ck ? strata_errmsg() : "out of memory");
  else
    p->ckpt = found ? ds__gen_value(v, len) : 0;
  free(v);
  free(ck);
  return rc;
}

/* The holder of the block locks: an op of kind downsample. 0, or 1 with err set. */
static int create_op(ds *p) {
  Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
  q.user = (char *)p->o->user;
  q.kind = DS_OP_KIND;
  char payload[512];
  snprintf(payload, sizeof payload, "{\"prefix\":\"%s\",\"name\":\"%s\"}", p->o->prefix, p->o->name);
  q.payload.data = (uint8_t *)payload;
  q.payload.len = strlen(payload);
  Strata__V1__CreateOpResponse *r = NULL;
  int rc = 0;
  if (rpc_ops_create(p->c, NULL, &q, &r)) rc = ds__fail(p, 1, "Ops.Create: %s", strata_errmsg());
  else p->op = r->op ? r->op->op_id : 0;
  rpc_free(r);
  return rc;
}

/* Runs the mode with the renewal thread beside it; stops the thread after. */
static int run_mode(ds *p) {
  ds__logkv(p, "event=start op=%" PRIu64 " checkpoint=%" PRIu64 " blocks=%" PRId64 "x%" PRId64 "x%" PRId64
            " block_voxels=%" PRId64 "x%" PRId64 "x%" PRId64,
            p->op, p->ckpt, p->l.bgrid[0], p->l.bgrid[1], p->l.bgrid[2], p->l.bvox[0], p->l.bvox[1],
            p->l.bvox[2]);
  if (pthread_create(&p->th, NULL, renew_main, p) == 0) p->th_on = 1;
  int rc = p->o->region ? ds__region(p) : ds__follow(p);
  if (p->th_on) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
  }
  return rc;
}

/* Releases any block still held and ends the op: success, or exception with err. */
static void finish_op(ds *p, int rc) {
  ds__unlock_block(p);
  ds__unlock_ahead(p);
  Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
  q.op_id = p->op;
  q.status = rc ? STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION : STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS;
  q.reason = rc ? p->err : "";
  Strata__V1__SetStatusResponse *r = NULL;
  rpc_ops_set_status(p->c, NULL, &q, &r);
  rpc_free(r);
}

int ds_run(rpc_client *c, const ds_opts *o, char *err, size_t errlen) {
  ds *p = calloc(1, sizeof *p);
  if (!p) {
    snprintf(err, errlen, "out of memory");
    return 1;
  }
  p->c = c;
  p->o = o;
  p->err = err;
  p->errlen = errlen;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  /* 1. the volume, the buffers, the checkpoint, the op */
  int rc = load_layout(p);
  if (!rc) rc = alloc_buffers(p);
  if (!rc) rc = ds__local_open(p);
  if (!rc) rc = read_checkpoint(p);
  if (!rc) rc = create_op(p);
  /* 2. the mode */
  if (!rc) rc = run_mode(p);
  /* 3. the op's end, then the state's */
  if (p->op) finish_op(p, rc);
  if (!rc)
    ds__logkv(p, "event=exit checkpoint=%" PRIu64 " blocks_done=%" PRIu64 " blocks_skipped=%" PRIu64
              " chunks_written=%" PRIu64, p->ckpt, p->blocks_done, p->blocks_skipped, p->chunks_written);
  ds__local_close(p);
  for (int i = 0; i < PC_MAX_SCALES; i++) ds_region_free(p->reg[i], p->reg_bytes[i]);
  free(p->cbuf);
  ds_region_free(p->spare, p->reg_bytes[0]);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
  return rc;
}
