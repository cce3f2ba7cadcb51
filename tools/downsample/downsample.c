/*
 * strata-downsample's library: block geometry, the pyramid of a block, the worker
 * loop over Kv.Watch, block locks and the fenced commits, and the status that
 * stratactl prints. Design: tools/downsample/README.md.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "locks/lock.h"
#include "tools/common/kvc.h"
#include "tools/downsample/ds.h"

/* --- geometry ----------------------------------------------------------------------- */

static int lfail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

int ds_layout_init(const pc_info *in, ds_layout *l, char *err, size_t errlen) {
  memset(l, 0, sizeof *l);
  l->in = *in;
  if (in->nscales < 2) return lfail(err, errlen, "info: one scale only, no pyramid to keep");
  for (int d = 0; d < 3; d++) l->F[0][d] = 1;
  for (int i = 1; i < in->nscales; i++) {
    const pc_scale *a = &in->s[i - 1], *s = &in->s[i];
    for (int d = 0; d < 3; d++) {
      double r = s->res[d] / a->res[d];
      int64_t f = (int64_t)llround(r);
      if (f < 1 || fabs(r - (double)f) > 1e-9)
        return lfail(err, errlen, "scales[%d].resolution[%d]: %g is not an integer multiple of %g", i,
                     d, s->res[d], a->res[d]);
      if (s->size[d] != (a->size[d] + f - 1) / f)
        return lfail(err, errlen, "scales[%d].size[%d]: %" PRId64 ", expected ceil(%" PRId64 " / %" PRId64 ")",
                     i, d, s->size[d], a->size[d], f);
      if (a->offset[d] != s->offset[d] * f)
        return lfail(err, errlen, "scales[%d].voxel_offset[%d]: %" PRId64 " does not scale to %" PRId64,
                     i, d, s->offset[d], a->offset[d]);
      l->f[i][d] = f;
      l->F[i][d] = l->F[i - 1][d] * f;
    }
    if (l->f[i][0] * l->f[i][1] * l->f[i][2] > PC_MAX_MODE_BLOCK)
      return lfail(err, errlen, "scales[%d]: a downsampling block above %d voxels", i, PC_MAX_MODE_BLOCK);
  }
  int N = in->nscales - 1;
  for (int d = 0; d < 3; d++) {
    l->bvox[d] = in->s[N].chunk[d] * l->F[N][d];
    l->bgrid[d] = in->s[N].grid[d];
    for (int i = 0; i <= N; i++)
      if ((l->bvox[d] / l->F[i][d]) % in->s[i].chunk[d])
        return lfail(err, errlen,
                     "scales[%d].chunk_sizes[%d]: %" PRId64 " does not divide the block edge %" PRId64
                     " at that scale (a block is one chunk of the coarsest scale)",
                     i, d, in->s[i].chunk[d], l->bvox[d] / l->F[i][d]);
  }
  return 0;
}

void ds_block_box(const ds_layout *l, int i, const int64_t b[3], int64_t lo[3], int64_t hi[3]) {
  for (int d = 0; d < 3; d++) {
    int64_t e = l->bvox[d] / l->F[i][d];
    lo[d] = b[d] * e;
    hi[d] = lo[d] + e < l->in.s[i].size[d] ? lo[d] + e : l->in.s[i].size[d];
  }
}

void ds_block_pyramid(const ds_layout *l, const int64_t b[3], uint64_t *const *reg) {
  for (int i = 1; i < l->in.nscales; i++) {
    int64_t flo[3], fhi[3], lo[3], hi[3], fdim[3], odim[3];
    ds_block_box(l, i - 1, b, flo, fhi);
    ds_block_box(l, i, b, lo, hi);
    for (int d = 0; d < 3; d++) {
      fdim[d] = fhi[d] - flo[d];
      odim[d] = hi[d] - lo[d];
    }
    pc_downsample_mode(reg[i - 1], fdim, l->f[i], reg[i], odim);
  }
}

/* chunk: bytes at any alignment (a value as it lies in a received message) */
static void chunk_copy(const ds_layout *l, int i, const int64_t b[3], uint64_t *reg,
                       const int64_t c[3], uint8_t *chunk, int to_region) {
  int64_t blo[3], bhi[3], lo[3], hi[3];
  ds_block_box(l, i, b, blo, bhi);
  pc_chunk_box(&l->in.s[i], c, lo, hi);
  int64_t rx = bhi[0] - blo[0], ry = bhi[1] - blo[1];
  int64_t cx = hi[0] - lo[0], cy = hi[1] - lo[1];
  for (int64_t z = lo[2]; z < hi[2]; z++)
    for (int64_t y = lo[1]; y < hi[1]; y++) {
      uint64_t *r = reg + (size_t)(((z - blo[2]) * ry + (y - blo[1])) * rx + (lo[0] - blo[0]));
      uint8_t *k = chunk + (size_t)(((z - lo[2]) * cy + (y - lo[1])) * cx) * 8;
      if (to_region) memcpy(r, k, (size_t)cx * 8);
      else memcpy(k, r, (size_t)cx * 8);
    }
}

void ds_chunk_from_region(const ds_layout *l, int i, const int64_t b[3], const uint64_t *reg,
                          const int64_t c[3], void *chunk) {
  chunk_copy(l, i, b, (uint64_t *)reg, c, chunk, 0);
}

void ds_chunk_to_region(const ds_layout *l, int i, const int64_t b[3], uint64_t *reg,
                        const int64_t c[3], const void *chunk) {
  chunk_copy(l, i, b, reg, c, (uint8_t *)chunk, 1);
}

/* --- stopping and crash points -------------------------------------------------------- */

static atomic_int g_stop;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rpc_cstream *g_stream;

void ds_request_stop(void) {
  atomic_store(&g_stop, 1);
  pthread_mutex_lock(&g_mu);
  if (g_stream) rpc_cstream_cancel(g_stream);
  pthread_mutex_unlock(&g_mu);
}

/* STRATA_DOWNSAMPLE_DIE_AT=stage:N (tests only): SIGKILL at the N-th (1-based) time
 * the worker reaches stage: read (a block's mip 0 read), commit_before, commit_after. */
static void crash_point(const char *stage) {
  static int count;
  const char *e = getenv("STRATA_DOWNSAMPLE_DIE_AT");
  size_t n = strlen(stage);
  if (!e || strncmp(e, stage, n) || e[n] != ':') return;
  if (++count == atoi(e + n + 1)) raise(SIGKILL);
}

/* --- the worker's state --------------------------------------------------------------- */

typedef struct ds {
  rpc_client *c;
  const ds_opts *o;
  ds_layout l;
  char *err;
  size_t errlen;
  uint64_t op;
  /* the checkpoint: its value and the generation it was last read or written at */
  uint64_t ckpt, ckpt_seen;
  /* the block lock being held, renewed by a thread */
  pthread_t th;
  int th_on, stop, holding;
  uint8_t row[LK_BLOCK_KEY_LEN];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int lost;
  uint64_t *reg[PC_MAX_SCALES];
  uint64_t *cbuf; /* one chunk */
  uint64_t *spare; /* the prefetch's mip-0 region */
  uint64_t blocks_done, blocks_skipped, chunks_written;
} ds;

static int fail(ds *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(ds *p, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, p->errlen, fmt, ap);
  va_end(ap);
  return code;
}

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void logkv(ds *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logkv(ds *p, const char *fmt, ...) {
  if (!p->o->log) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  fprintf(p->o->log, "downsample: worker=%s t_ms=%" PRId64 " %s\n", p->o->name, now_ms(), buf);
  fflush(p->o->log);
}

/* A decimal generation value; 0 when absent or malformed. */
static uint64_t gen_value(const uint8_t *v, size_t len) {
  if (!v || !len || len > 20) return 0;
  char buf[32];
  memcpy(buf, v, len);
  buf[len] = 0;
  return strtoull(buf, NULL, 10);
}

static char *ckpt_key(ds *p) { return kvc_keyf("%s" DS_DIR "checkpoint/%s", p->o->prefix, p->o->name); }

static char *stamp_key(ds *p, const int64_t b[3]) {
  return kvc_keyf("%s" DS_DIR "blocks/%" PRId64 "_%" PRId64 "_%" PRId64, p->o->prefix, b[0], b[1], b[2]);
}

static char *chunk_key(ds *p, int i, const int64_t c[3]) {
  char name[PC_MAX_NAME];
  pc_chunk_name(&p->l.in.s[i], c, name, sizeof name);
  return kvc_keyf("%s%s/%s", p->o->prefix, p->l.in.s[i].key, name);
}

/* --- the block lock and its renewal ------------------------------------------------------ */

static void *renew_main(void *arg) {
  ds *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    struct timespec ts = kvc_deadline_ms(p->o->ttl_ms / 3);
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    if (p->stop || !p->holding) continue;
    uint8_t row[LK_BLOCK_KEY_LEN];
    memcpy(row, p->row, sizeof row);
    pthread_mutex_unlock(&p->mu);
    Strata__V1__RenewRequest q = STRATA__V1__RENEW_REQUEST__INIT;
    ProtobufCBinaryData b = {sizeof row, row};
    q.op_id = p->op;
    q.rows = &b;
    q.n_rows = 1;
    q.ttl_ms = (uint64_t)p->o->ttl_ms;
    Strata__V1__RenewResponse *r = NULL;
    int rc = rpc_locks_renew(p->c, NULL, &q, &r);
    rpc_free(r);
    pthread_mutex_lock(&p->mu);
    if (rc && p->holding && !memcmp(row, p->row, sizeof row)) {
      atomic_store(&p->lost, 1);
      logkv(p, "event=renew_failed error=\"%s\"", strata_errmsg());
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

/* Acquires block b's row (temporal). Returns 0 acquired, 1 held by another, or an
 * error (err set). */
static int lock_block(ds *p, const int64_t b[3], int64_t wait_ms) {
  uint8_t row[LK_BLOCK_KEY_LEN];
  lk_block_key((uint64_t)b[0], (uint64_t)b[1], (uint64_t)b[2], row);
  Strata__V1__AcquireRequest q = STRATA__V1__ACQUIRE_REQUEST__INIT;
  ProtobufCBinaryData rb = {sizeof row, row};
  q.op_id = p->op;
  q.rows = &rb;
  q.n_rows = 1;
  q.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  q.ttl_ms = (uint64_t)p->o->ttl_ms;
  q.wait_ms = (uint64_t)wait_ms;
  rpc_callopts co = {.timeout_ms = wait_ms + 30000};
  Strata__V1__AcquireResponse *r = NULL;
  int rc = rpc_locks_acquire(p->c, &co, &q, &r);
  if (rc) return fail(p, -1, "Locks.Acquire of block %" PRId64 "_%" PRId64 "_%" PRId64 ": %s", b[0], b[1],
                      b[2], strata_errmsg());
  int got = r->acquired;
  uint64_t holder = !got && r->n_conflicts ? r->conflicts[0]->op_id : 0;
  rpc_free(r);
  if (!got) {
    if (wait_ms)
      return fail(p, -1, "block %" PRId64 "_%" PRId64 "_%" PRId64 " still held by op %" PRIu64
                  " after %" PRId64 " ms", b[0], b[1], b[2], holder, wait_ms);
    return 1;
  }
  pthread_mutex_lock(&p->mu);
  memcpy(p->row, row, sizeof row);
  p->holding = 1;
  atomic_store(&p->lost, 0);
  pthread_mutex_unlock(&p->mu);
  return 0;
}

static void release_row(ds *p, const uint8_t *row);

static void unlock_block(ds *p) {
  pthread_mutex_lock(&p->mu);
  uint8_t row[LK_BLOCK_KEY_LEN];
  memcpy(row, p->row, sizeof row);
  int was = p->holding;
  p->holding = 0;
  pthread_mutex_unlock(&p->mu);
  if (was) release_row(p, row);
}

static void release_row(ds *p, const uint8_t *row) {
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

typedef struct putv {
  char *key;
  uint8_t *val;
  size_t len;
} putv;

/* One commit of puts; fenced by the held block row when fenced; when with_ckpt,
 * also the checkpoint = ckpt_new, conditioned on the checkpoint unchanged since
 * this worker last saw it (two processes under one name refuse each other). */
static int commit(ds *p, putv *pv, size_t n, int fenced, int with_ckpt, uint64_t ckpt_new,
                  uint64_t *gen) {
  char *ck = NULL, val[32];
  Strata__V1__Put *pb = calloc(n + 1, sizeof *pb);
  Strata__V1__Put **pp = calloc(n + 1, sizeof *pp);
  if (!pb || !pp) {
    free(pb);
    free(pp);
    return fail(p, 1, "out of memory");
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
    ck = ckpt_key(p);
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
    rc = fail(p, 1, "Kv.Commit%s: %s", with_ckpt ? " (with the checkpoint)" : "", strata_errmsg());
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

/* --- one block ----------------------------------------------------------------------------- */

static size_t box_voxels(const int64_t lo[3], const int64_t hi[3]) {
  return (size_t)(hi[0] - lo[0]) * (size_t)(hi[1] - lo[1]) * (size_t)(hi[2] - lo[2]);
}

/* Scale i's chunks in block b: [clo, chi) grid coordinates. */
static void block_chunks(const ds_layout *l, int i, const int64_t b[3], int64_t clo[3], int64_t chi[3]) {
  int64_t lo[3], hi[3];
  ds_block_box(l, i, b, lo, hi);
  for (int d = 0; d < 3; d++) {
    clo[d] = lo[d] / l->in.s[i].chunk[d];
    chi[d] = (hi[d] + l->in.s[i].chunk[d] - 1) / l->in.s[i].chunk[d];
  }
}

/* Reads many keys at generation gen (0 = latest) with Kv.BatchGet, in batches of at
 * most DS_BATCH_BYTES of expected value bytes; fn(p, ctx, i, found, data, len) per
 * key, in order, with data in place in the received message (rpc_kv_batch_get_each:
 * valid during the call only, any alignment). Returns 0, fn's non-zero result, or 1
 * with err set. */
#define DS_BATCH_BYTES ((size_t)32 << 20)
typedef int (*read_fn)(ds *p, void *ctx, size_t i, int found, const uint8_t *v, size_t len);
typedef struct read_call {
  ds *p;
  read_fn fn;
  void *ctx;
  size_t base; /* the batch's first key */
  int rc;      /* fn's result */
} read_call;

static int read_one(void *arg, size_t i, int found, const uint8_t *v, size_t len) {
  read_call *rcall = arg;
  rcall->rc = rcall->fn(rcall->p, rcall->ctx, rcall->base + i, found, v, len);
  return rcall->rc ? -1 : 0;
}

static int batch_read(ds *p, char **keys, const size_t *sizes, size_t n, uint64_t gen, read_fn fn,
                      void *ctx) {
  ProtobufCBinaryData *kb = calloc(n ? n : 1, sizeof *kb);
  if (!kb) return fail(p, 1, "out of memory");
  int rc = 0;
  for (size_t i = 0; i < n && !rc;) {
    size_t j = i, bytes = 0;
    while (j < n && (j == i || bytes + sizes[j] <= DS_BATCH_BYTES) && j - i < 10000) {
      kb[j].data = (uint8_t *)keys[j];
      kb[j].len = strlen(keys[j]);
      bytes += sizes[j++];
    }
    Strata__V1__BatchGetRequest q = STRATA__V1__BATCH_GET_REQUEST__INIT;
    Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
    q.keys = kb + i;
    q.n_keys = j - i;
    if (gen) {
      pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
      pin.generation = gen;
      q.pin = &pin;
    }
    read_call rcall = {p, fn, ctx, i, 0};
    int crc = rpc_kv_batch_get_each(p->c, NULL, &q, read_one, &rcall, NULL);
    if (rcall.rc) rc = rcall.rc;
    else if (crc) rc = fail(p, 1, "Kv.BatchGet of %s and %zu more: %s", keys[i], j - i - 1, strata_errmsg());
    i = j;
  }
  free(kb);
  return rc;
}

/* The keys, expected sizes and grid coordinates of scale i's chunks in block b. */
typedef struct chunk_set {
  size_t n;
  char **keys;
  size_t *sizes;
  int64_t (*c)[3];
  int scale;
  const int64_t *b;
} chunk_set;

static void chunk_set_free(chunk_set *cs) {
  for (size_t i = 0; i < cs->n; i++) free(cs->keys[i]);
  free(cs->keys);
  free(cs->sizes);
  free(cs->c);
  memset(cs, 0, sizeof *cs);
}

static int chunk_set_of(ds *p, int i, const int64_t b[3], chunk_set *cs) {
  int64_t clo[3], chi[3], c[3];
  block_chunks(&p->l, i, b, clo, chi);
  size_t n = (size_t)((chi[0] - clo[0]) * (chi[1] - clo[1]) * (chi[2] - clo[2]));
  memset(cs, 0, sizeof *cs);
  cs->scale = i;
  cs->b = b;
  cs->keys = calloc(n, sizeof *cs->keys);
  cs->sizes = calloc(n, sizeof *cs->sizes);
  cs->c = calloc(n, sizeof *cs->c);
  if (!cs->keys || !cs->sizes || !cs->c) {
    chunk_set_free(cs);
    return fail(p, 1, "out of memory");
  }
  for (c[2] = clo[2]; c[2] < chi[2]; c[2]++)
    for (c[1] = clo[1]; c[1] < chi[1]; c[1]++)
      for (c[0] = clo[0]; c[0] < chi[0]; c[0]++) {
        size_t k = cs->n++;
        memcpy(cs->c[k], c, sizeof c);
        cs->sizes[k] = pc_chunk_bytes(&p->l.in.s[i], c);
        if (!(cs->keys[k] = chunk_key(p, i, c))) {
          chunk_set_free(cs);
          return fail(p, 1, "out of memory");
        }
      }
  return 0;
}

/* mip 0 into the block's region; an absent chunk makes the block incomplete (2). */
static int take_mip0(ds *p, void *ctx, size_t i, int found, const uint8_t *v, size_t len) {
  chunk_set *cs = ctx;
  if (!found) return 2;
  if (len != cs->sizes[i])
    return fail(p, 1, "%s: %zu bytes, its box holds %zu", cs->keys[i], len, cs->sizes[i]);
  ds_chunk_to_region(&p->l, 0, cs->b, p->reg[0], cs->c[i], v); /* any alignment */
  return 0;
}

/* Reads block b's mip-0 chunks pinned at g into p->reg[0]: 0, 2 when a chunk is
 * absent at g (the block is incomplete), or 1 with p->err set. */
static int read_mip0(ds *p, const int64_t b[3], uint64_t g) {
  chunk_set cs;
  int rc = chunk_set_of(p, 0, b, &cs);
  if (rc) return rc;
  rc = batch_read(p, cs.keys, cs.sizes, cs.n, g, take_mip0, &cs);
  chunk_set_free(&cs);
  return rc;
}

/* A view of p for a reading thread: the client (safe from many threads), the options
 * and the layout, its own error buffer; reg0 is its mip-0 region. */
static void view_of(ds *v, const ds *p, char *err, size_t errlen, uint64_t *reg0) {
  memset(v, 0, sizeof *v);
  v->c = p->c;
  v->o = p->o;
  v->l = p->l;
  v->err = err;
  v->errlen = errlen;
  v->reg[0] = reg0;
}

/* The next block's mip 0, read by a thread into the spare region while this one is
 * computed and committed (mip 0 at g never changes, so it needs no lock). Started once
 * this block's own mip 0 is in, so the two reads never share the connection. */
typedef struct prefetch {
  pthread_t th;
  int on;
  int64_t b[3];
  uint64_t g;
  int rc;
  char err[1024];
  ds view;
} prefetch;

static void *prefetch_main(void *arg) {
  prefetch *pf = arg;
  pf->rc = read_mip0(&pf->view, pf->b, pf->g);
  return NULL;
}

static void prefetch_start(ds *p, prefetch *pf, const int64_t b[3], uint64_t g) {
  view_of(&pf->view, p, pf->err, sizeof pf->err, p->spare);
  memcpy(pf->b, b, sizeof pf->b);
  pf->g = g;
  pf->on = pthread_create(&pf->th, NULL, prefetch_main, pf) == 0;
}

/* Waits for the prefetch; returns 1 when it was block b at g. */
static int prefetch_join(prefetch *pf, const int64_t b[3], uint64_t g) {
  if (!pf->on) return 0;
  pthread_join(pf->th, NULL);
  pf->on = 0;
  return pf->g == g && !memcmp(pf->b, b, sizeof pf->b);
}

/* The block's stored coarser chunks, read by a thread once the block's lock is held
 * (the lock keeps every other downsample writer out, so they are read at the latest)
 * while the main thread computes the pyramid: each coarser scale's chunk set and a
 * copy of each stored value. Its view of the worker's state is the prefetch's. */
typedef struct stored_val {
  int found;
  uint8_t *v;
  size_t len;
} stored_val;

typedef struct stored {
  pthread_t th;
  int on, rc;
  int64_t b[3];
  chunk_set cs[PC_MAX_SCALES];
  stored_val *val[PC_MAX_SCALES];
  char err[1024];
  ds view;
} stored;

static int keep_value(ds *p, void *ctx, size_t i, int found, const uint8_t *v, size_t len) {
  stored_val *sv = (stored_val *)ctx + i;
  sv->found = found;
  sv->len = len;
  if (found && !(sv->v = malloc(len ? len : 1))) return fail(p, 1, "out of memory");
  if (found && len) memcpy(sv->v, v, len);
  return 0;
}

static void *stored_main(void *arg) {
  stored *st = arg;
  ds *p = &st->view;
  int rc = 0;
  for (int i = 1; i < p->l.in.nscales && !rc; i++) {
    if ((rc = chunk_set_of(p, i, st->b, &st->cs[i]))) break;
    if (!(st->val[i] = calloc(st->cs[i].n ? st->cs[i].n : 1, sizeof(stored_val)))) {
      rc = fail(p, 1, "out of memory");
      break;
    }
    rc = batch_read(p, st->cs[i].keys, st->cs[i].sizes, st->cs[i].n, 0, keep_value, st->val[i]);
  }
  st->rc = rc;
  return NULL;
}

/* Starts reading block b's stored coarser chunks; 0, or 1 with err set. */
static int stored_start(ds *p, stored *st, const int64_t b[3]) {
  memset(st, 0, offsetof(stored, view));
  view_of(&st->view, p, st->err, sizeof st->err, NULL);
  memcpy(st->b, b, sizeof st->b);
  if (pthread_create(&st->th, NULL, stored_main, st)) return fail(p, 1, "cannot start a thread");
  st->on = 1;
  return 0;
}

/* Waits for the read; its result (0, or 1 with p's err set). */
static int stored_join(ds *p, stored *st) {
  if (!st->on) return 0;
  pthread_join(st->th, NULL);
  st->on = 0;
  return st->rc ? fail(p, 1, "%s", st->err) : 0;
}

static void stored_free(stored *st) {
  for (int i = 0; i < PC_MAX_SCALES; i++) {
    for (size_t k = 0; st->val[i] && k < st->cs[i].n; k++) free(st->val[i][k].v);
    free(st->val[i]);
    st->val[i] = NULL;
    chunk_set_free(&st->cs[i]);
  }
}

/* The coarser chunks of scale i that differ from the stored ones become puts. */
static int diff_scale(ds *p, stored *st, int i, putv *pv, size_t *n) {
  chunk_set *cs = &st->cs[i];
  for (size_t k = 0; k < cs->n; k++) {
    const stored_val *sv = &st->val[i][k];
    size_t bytes = cs->sizes[k];
    ds_chunk_from_region(&p->l, i, st->b, p->reg[i], cs->c[k], p->cbuf);
    if (sv->found && sv->len == bytes && !memcmp(sv->v, p->cbuf, bytes)) continue;
    putv *o = &pv[*n];
    if (!(o->val = malloc(bytes ? bytes : 1)) || !(o->key = strdup(cs->keys[k]))) {
      free(o->val);
      return fail(p, 1, "out of memory");
    }
    memcpy(o->val, p->cbuf, bytes);
    o->len = bytes;
    (*n)++;
  }
  return 0;
}

/* A block's commit, run by a thread while the main thread locks, reads and computes
 * the next block: one at a time (the next hand-off, and every checkpoint commit,
 * first waits for it). The job holds the block's row until its commit is answered,
 * so no other worker ever sees the block half done; a generation's last block, which
 * carries the checkpoint, commits in line after it. */
typedef struct commit_job {
  pthread_t th;
  int rc, committed;
  int64_t b[3];
  uint64_t g;
  int with_ckpt;
  uint64_t ckpt_new;
  putv *pv;
  size_t n; /* the changed chunks; pv[n] is the stamp */
  char sval[32];
  int64_t read_ms, compute_ms, compare_ms;
  char err[1024];
  ds view; /* the client, the options, the op, the row; its own error buffer */
} commit_job;

static void job_run(ds *q, commit_job *j) {
  uint64_t at = 0;
  int64_t t = now_ms();
  crash_point("commit_before");
  j->rc = commit(q, j->pv, j->n + 1, 1, j->with_ckpt, j->ckpt_new, &at);
  if (j->rc) return;
  crash_point("commit_after");
  j->committed = 1;
  logkv(q, "event=block gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64
        " chunks=%zu commit=%" PRIu64 "%s read_ms=%" PRId64 " compute_ms=%" PRId64 " compare_ms=%" PRId64
        " commit_ms=%" PRId64,
        j->g, j->b[0], j->b[1], j->b[2], j->n, at, j->with_ckpt ? " checkpoint=1" : "", j->read_ms,
        j->compute_ms, j->compare_ms, now_ms() - t);
}

static void *job_main(void *arg) {
  commit_job *j = arg;
  job_run(&j->view, j);
  release_row(&j->view, j->view.row);
  return NULL;
}

static void job_free(commit_job *j) {
  if (!j) return;
  for (size_t i = 0; i <= j->n; i++) {
    free(j->pv[i].key);
    if (i < j->n) free(j->pv[i].val);
  }
  free(j->pv);
  free(j);
}

/* Waits for the job in *jobp (if any): 0, or 1 with p's err set when its commit failed. */
static int job_join(ds *p, commit_job **jobp) {
  commit_job *j = *jobp;
  if (!j) return 0;
  pthread_join(j->th, NULL);
  *jobp = NULL;
  if (j->committed) {
    p->blocks_done++;
    p->chunks_written += j->n;
  }
  int rc = j->rc ? fail(p, 1, "%s", j->err) : 0;
  job_free(j);
  return rc;
}

/* The next block to read ahead (b NULL: none). */
typedef struct next_read {
  prefetch *pf;
  const int64_t *b;
} next_read;

static void read_ahead(ds *p, const next_read *nx, uint64_t g) {
  if (nx->b && p->spare) prefetch_start(p, nx->pf, nx->b, g);
}

/* Downsamples block b from mip 0 at generation g, holding its lock: skipped when
 * its stamp is already >= g (another worker, or an earlier run, did it at g or
 * later), unless force (then only a stamp above g skips). Commits the changed
 * coarser chunks and the stamp, plus the checkpoint when with_ckpt. *committed =
 * 1 when it committed (or handed the commit to *jobp, which then holds the row).
 * pre_rc: the prefetch's result when its region is already p->reg[0], -1 = none; once
 * b's mip 0 is in (or b is skipped), nx is read ahead. */
static int do_block(ds *p, const int64_t b[3], uint64_t g, int force, int with_ckpt,
                    uint64_t ckpt_new, int *committed, int pre_rc, const next_read *nx,
                    commit_job **jobp) {
  *committed = 0;
  char *sk = stamp_key(p, b);
  if (!sk) return fail(p, 1, "out of memory");
  int found, rc;
  uint8_t *v = NULL;
  size_t len = 0;
  if ((rc = kvc_get(p->c, sk, 0, &found, &v, &len, NULL))) {
    rc = fail(p, 1, "reading %s: %s", sk, strata_errmsg());
    free(sk);
    return rc;
  }
  uint64_t stamp = found ? gen_value(v, len) : 0;
  free(v);
  if (found && (stamp > g || (!force && stamp == g))) {
    p->blocks_skipped++;
    logkv(p, "event=skip gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64 " stamp=%" PRIu64, g,
          b[0], b[1], b[2], stamp);
    read_ahead(p, nx, g);
    free(sk);
    return 0;
  }
  const ds_layout *l = &p->l;
  int64_t t0 = now_ms();
  rc = pre_rc >= 0 ? pre_rc : read_mip0(p, b, g);
  int64_t t1 = now_ms();
  read_ahead(p, nx, g);
  if (rc == 2) {
    /* the block is not complete at g (a populate still loading it, or a chunk
     * deleted): nothing to compute from; the change that completes it is in the
     * feed and brings the block back */
    p->blocks_skipped++;
    logkv(p, "event=incomplete gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64, g, b[0], b[1], b[2]);
    free(sk);
    return 0;
  }
  if (rc) {
    free(sk);
    return rc;
  }
  crash_point("read");
  /* the stored coarser chunks are read while the pyramid is computed */
  stored *st = calloc(1, sizeof *st); /* large (it holds a view of the state) */
  if (!st) rc = fail(p, 1, "out of memory");
  if (!rc) rc = stored_start(p, st, b);
  if (!rc) ds_block_pyramid(l, b, p->reg);
  int64_t t2 = now_ms();
  if (st) {
    int jr = stored_join(p, st);
    if (!rc) rc = jr;
  }
  /* the coarser chunks that differ from the stored ones */
  size_t total = 0;
  for (int i = 1; st && i < l->in.nscales; i++) total += st->cs[i].n;
  size_t n = 0;
  putv *pv = NULL;
  if (!rc && !(pv = calloc(total + 1, sizeof(putv)))) rc = fail(p, 1, "out of memory");
  for (int i = 1; i < l->in.nscales && !rc; i++) rc = diff_scale(p, st, i, pv, &n);
  if (st) stored_free(st);
  free(st);
  int64_t t3 = now_ms();
  if (!rc && atomic_load(&p->lost)) rc = fail(p, 1, "the block lock's renewal failed: not committing");
  commit_job *j = rc ? NULL : calloc(1, sizeof *j);
  if (!j) {
    for (size_t i = 0; pv && i < n; i++) {
      free(pv[i].key);
      free(pv[i].val);
    }
    free(pv);
    free(sk);
    return rc ? rc : fail(p, 1, "out of memory");
  }
  memcpy(j->b, b, sizeof j->b);
  j->g = g;
  j->with_ckpt = with_ckpt;
  j->ckpt_new = ckpt_new;
  j->pv = pv;
  j->n = n;
  snprintf(j->sval, sizeof j->sval, "%" PRIu64, g);
  pv[n].key = sk; /* freed with the job */
  pv[n].val = (uint8_t *)j->sval;
  pv[n].len = strlen(j->sval);
  j->read_ms = t1 - t0;
  j->compute_ms = t2 - t1;
  j->compare_ms = t3 - t2;
  /* the previous block's commit first: its error stops the worker, and a checkpoint
   * never lands before a block of its generation */
  if ((rc = job_join(p, jobp))) {
    job_free(j);
    return rc;
  }
  if (with_ckpt) { /* in line, holding the row (do_blocks releases it) */
    job_run(p, j);
    rc = j->rc;
    *committed = j->committed;
    if (j->committed) {
      p->blocks_done++;
      p->chunks_written += j->n;
    }
    job_free(j);
    return rc;
  }
  /* behind the next block: the job takes over the row (no longer renewed: a commit
   * takes milliseconds against a TTL of seconds, and the fence refuses it if the row
   * expired anyway) and releases it once its commit is answered */
  view_of(&j->view, p, j->err, sizeof j->err, NULL);
  j->view.op = p->op;
  pthread_mutex_lock(&p->mu);
  memcpy(j->view.row, p->row, sizeof j->view.row);
  p->holding = 0;
  pthread_mutex_unlock(&p->mu);
  if (pthread_create(&j->th, NULL, job_main, j)) {
    job_run(&j->view, j); /* no thread: in line */
    release_row(&j->view, j->view.row);
    rc = j->rc;
    if (j->committed) {
      p->blocks_done++;
      p->chunks_written += j->n;
    }
    if (rc) fail(p, 1, "%s", j->err);
    job_free(j);
    return rc;
  }
  *jobp = j;
  *committed = 1;
  return 0;
}

/* Does blocks bl[0..n) at generation g: a first pass takes each block whose lock is
 * free at once; the blocks another worker held are then waited for (up to wait_ms)
 * and, once held, usually skipped by their stamp. The last commit carries the
 * checkpoint ckpt_new (or a checkpoint-only commit follows) when set_ckpt. */
static int do_blocks(ds *p, int64_t (*bl)[3], size_t n, uint64_t g, int force, int set_ckpt,
                     uint64_t ckpt_new) {
  char *deferred = calloc(n ? n : 1, 1);
  if (!deferred) return fail(p, 1, "out of memory");
  size_t left = n;
  int rc = 0, ck_done = !set_ckpt;
  commit_job *job = NULL;
  prefetch *pf_mem = calloc(1, sizeof *pf_mem); /* large (it holds a copy of the state) */
  if (!pf_mem) {
    free(deferred);
    return fail(p, 1, "out of memory");
  }
#define pf (*pf_mem)
  for (int pass = 0; pass < 2 && !rc; pass++)
    for (size_t i = 0; i < n && !rc; i++) {
      if (pass == 1 && !deferred[i]) continue;
      int l = lock_block(p, bl[i], pass ? p->o->wait_ms : 0);
      if (l < 0) {
        rc = 1;
        break;
      }
      if (l == 1) {
        deferred[i] = 1;
        logkv(p, "event=held gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64, g, bl[i][0],
              bl[i][1], bl[i][2]);
        continue;
      }
      deferred[i] = 0;
      left--;
      int pre_rc = -1;
      if (prefetch_join(&pf, bl[i], g)) {
        pre_rc = pf.rc;
        if (pre_rc == 1) fail(p, 1, "%s", pf.err);
        uint64_t *t = p->reg[0]; /* the prefetched region becomes the block's */
        p->reg[0] = p->spare;
        p->spare = t;
      }
      next_read nx = {pf_mem, NULL};
      for (size_t j = i + 1; j < n; j++) /* the next candidate of this pass */
        if (pass == 0 || deferred[j]) {
          nx.b = bl[j];
          break;
        }
      int committed = 0;
      rc = do_block(p, bl[i], g, force, left == 0 && set_ckpt, ckpt_new, &committed, pre_rc, &nx,
                    &job);
      if (!rc && left == 0 && committed) ck_done = 1;
      unlock_block(p);
    }
  if (pf.on) pthread_join(pf.th, NULL);
  int jr = job_join(p, &job); /* before any checkpoint, and before returning */
  if (!rc) rc = jr;
  free(pf_mem);
  free(deferred);
  if (!rc && !ck_done && p->ckpt != ckpt_new) {
    uint64_t at;
    rc = commit(p, NULL, 0, 0, 1, ckpt_new, &at);
    if (!rc) logkv(p, "event=checkpoint gen=%" PRIu64 " commit=%" PRIu64, ckpt_new, at);
  }
  return rc;
#undef pf
}

/* --- the feed --------------------------------------------------------------------------------- */

/* The block of a changed mip-0 key, or -1 when the key is not a chunk of the grid. */
static int key_block(ds *p, const uint8_t *key, size_t len, size_t skip, int64_t b[3]) {
  char name[PC_MAX_NAME];
  if (len - skip >= sizeof name) return -1;
  memcpy(name, key + skip, len - skip);
  name[len - skip] = 0;
  int64_t lo[3], hi[3];
  int used = 0;
  if (sscanf(name, "%" SCNd64 "-%" SCNd64 "_%" SCNd64 "-%" SCNd64 "_%" SCNd64 "-%" SCNd64 "%n", &lo[0],
             &hi[0], &lo[1], &hi[1], &lo[2], &hi[2], &used) != 6 || name[used])
    return -1;
  const pc_scale *s = &p->l.in.s[0];
  for (int d = 0; d < 3; d++) {
    int64_t v = lo[d] - s->offset[d];
    if (v < 0 || v >= s->size[d]) return -1;
    b[d] = v / p->l.bvox[d];
  }
  return 0;
}

static int add_block(int64_t (**bl)[3], size_t *n, size_t *cap, const int64_t b[3]) {
  for (size_t i = 0; i < *n; i++)
    if (!memcmp((*bl)[i], b, sizeof(int64_t[3]))) return 0;
  if (*n == *cap) {
    size_t nc = *cap ? 2 * *cap : 16;
    int64_t(*nb)[3] = realloc(*bl, nc * sizeof **bl);
    if (!nb) return -1;
    *bl = nb;
    *cap = nc;
  }
  memcpy((*bl)[(*n)++], b, sizeof(int64_t[3]));
  return 0;
}

static int watch_error(ds *p, int rc, uint64_t from) {
  if (rc == STRATA_ENOTFOUND || rc == STRATA_ERANGE)
    return fail(p, 1,
                "Kv.Watch from the checkpoint generation %" PRIu64 " of worker \"%s\": %s. The changes "
                "after the checkpoint cannot be listed, so which blocks are stale is unknown: run "
                "`strata-downsample --prefix %s --name %s --region all` to recompute the whole "
                "pyramid (it also sets the checkpoint), then start the worker again",
                from, p->o->name, strata_errmsg(), p->o->prefix, p->o->name);
  return fail(p, 1, "Kv.Watch: %s", strata_errmsg());
}

/* --follow / --until: one generation at a time from the checkpoint. */
static int follow(ds *p) {
  const char *pre = p->o->prefix;
  char *k0 = kvc_keyf("%s%s/", pre, p->l.in.s[0].key), *own = kvc_keyf("%s" DS_DIR, pre);
  if (!k0 || !own) {
    free(k0);
    free(own);
    return fail(p, 1, "out of memory");
  }
  size_t plen = strlen(pre), k0len = strlen(k0), ownlen = strlen(own);
  int rc = 0;
  uint64_t stop_at = 0; /* --until: the sync key's generation */
  if (p->o->until) {
    int found;
    uint64_t latest = 0;
    char *sk = kvc_keyf("%s" DS_DIR "sync/%s", pre, p->o->name);
    if (!sk || (rc = kvc_get(p->c, sk, 0, &found, NULL, NULL, &latest))) {
      rc = fail(p, 1, "reading the latest generation: %s", sk ? strata_errmsg() : "out of memory");
    } else if (p->o->until > latest) {
      rc = fail(p, 2, "--until %" PRIu64 ": newer than the latest generation %" PRIu64, p->o->until, latest);
    } else if (p->ckpt < p->o->until) {
      /* a commit after G under the watched prefix ends the Watch once it arrives */
      char v[32];
      snprintf(v, sizeof v, "%" PRIu64, p->o->until);
      putv pv = {sk, (uint8_t *)v, strlen(v)};
      rc = commit(p, &pv, 1, 0, 0, 0, &stop_at);
    }
    free(sk);
    if (rc || p->ckpt >= p->o->until) {
      if (!rc) logkv(p, "event=done checkpoint=%" PRIu64 " until=%" PRIu64, p->ckpt, p->o->until);
      free(k0);
      free(own);
      return rc;
    }
  }
  uint64_t from = p->ckpt;
  Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
  q.from_generation = from;
  q.prefix.data = (uint8_t *)pre;
  q.prefix.len = plen;
  rpc_callopts co = {.timeout_ms = -1};
  rpc_cstream *st = NULL;
  if ((rc = rpc_kv_watch(p->c, &co, &q, &st))) {
    rc = watch_error(p, rc, from);
    free(k0);
    free(own);
    return rc;
  }
  pthread_mutex_lock(&g_mu);
  g_stream = st;
  pthread_mutex_unlock(&g_mu);
  if (atomic_load(&g_stop)) rpc_cstream_cancel(st);
  logkv(p, "event=watch from=%" PRIu64 " prefix=%s", from, pre);
  int64_t(*bl)[3] = NULL;
  size_t nb = 0, cap = 0;
  int other = 0; /* the generation changed keys outside our own .downsample/ */
  for (;;) {
    Strata__V1__WatchResponse *m = NULL;
    int r = rpc_kv_watch_next(st, &m);
    if (r != 1) {
      if (atomic_load(&g_stop)) {
        logkv(p, "event=stopped checkpoint=%" PRIu64, p->ckpt);
        break;
      }
      rc = r == 0 ? fail(p, 1, "Kv.Watch ended unexpectedly") : watch_error(p, r, from);
      break;
    }
    uint64_t g = m->version ? m->version->generation : 0;
    for (size_t i = 0; i < m->n_changes && !rc; i++) {
      const ProtobufCBinaryData *k = &m->changes[i]->key;
      if (k->len >= ownlen && !memcmp(k->data, own, ownlen)) continue;
      other = 1;
      int64_t b[3];
      if (k->len > k0len && !memcmp(k->data, k0, k0len) && !key_block(p, k->data, k->len, k0len, b))
        if (add_block(&bl, &nb, &cap, b)) rc = fail(p, 1, "out of memory");
    }
    int more = m->more;
    rpc_free(m);
    if (rc) break;
    if (more) continue;
    if (nb) logkv(p, "event=generation gen=%" PRIu64 " blocks=%zu", g, nb);
    if (nb || (other && p->ckpt < g)) rc = do_blocks(p, bl, nb, g, 0, 1, g);
    nb = 0;
    other = 0;
    from = g;
    if (rc) break;
    if (stop_at && g >= stop_at) {
      if (p->ckpt < g) rc = do_blocks(p, NULL, 0, g, 0, 1, g);
      logkv(p, "event=done checkpoint=%" PRIu64 " until=%" PRIu64, p->ckpt, p->o->until);
      break;
    }
  }
  pthread_mutex_lock(&g_mu);
  g_stream = NULL;
  pthread_mutex_unlock(&g_mu);
  rpc_cstream_close(st);
  free(bl);
  free(k0);
  free(own);
  return rc;
}

/* --region: recomputes every block overlapping the box from mip 0 at the latest
 * generation, whatever the stamps say (except a stamp newer than that). */
static int region(ds *p) {
  int found, rc;
  uint64_t g = 0;
  char *ck = ckpt_key(p);
  if (!ck) return fail(p, 1, "out of memory");
  rc = kvc_get(p->c, ck, 0, &found, NULL, NULL, &g);
  free(ck);
  if (rc) return fail(p, 1, "reading the latest generation: %s", strata_errmsg());
  const pc_scale *s = &p->l.in.s[0];
  int64_t blo[3], bhi[3];
  const int all = p->o->region_all;
  for (int d = 0; d < 3; d++) {
    int64_t lo = all ? 0 : p->o->rlo[d] - s->offset[d], hi = all ? s->size[d] : p->o->rhi[d] - s->offset[d];
    if (lo < 0) lo = 0;
    if (hi > s->size[d]) hi = s->size[d];
    if (lo >= hi) return fail(p, 2, "--region: the box does not overlap the volume along axis %d", d);
    blo[d] = lo / p->l.bvox[d];
    bhi[d] = (hi + p->l.bvox[d] - 1) / p->l.bvox[d];
  }
  int whole = 1;
  for (int d = 0; d < 3; d++) whole = whole && blo[d] == 0 && bhi[d] == p->l.bgrid[d];
  size_t n = (size_t)((bhi[0] - blo[0]) * (bhi[1] - blo[1]) * (bhi[2] - blo[2]));
  int64_t(*bl)[3] = calloc(n, sizeof *bl);
  if (!bl) return fail(p, 1, "out of memory");
  size_t i = 0;
  for (int64_t z = blo[2]; z < bhi[2]; z++)
    for (int64_t y = blo[1]; y < bhi[1]; y++)
      for (int64_t x = blo[0]; x < bhi[0]; x++) {
        bl[i][0] = x;
        bl[i][1] = y;
        bl[i][2] = z;
        i++;
      }
  logkv(p, "event=region gen=%" PRIu64 " blocks=%zu whole=%d", g, n, whole);
  /* over the whole volume, every change up to g is in: the checkpoint moves to g */
  rc = do_blocks(p, bl, n, g, 1, whole, g);
  free(bl);
  return rc;
}

static int load_layout(ds *p) {
  char *k = kvc_keyf("%sinfo", p->o->prefix);
  int found;
  uint8_t *v = NULL;
  size_t len = 0;
  if (!k) return fail(p, 1, "out of memory");
  int rc = kvc_get(p->c, k, 0, &found, &v, &len, NULL);
  if (rc) rc = fail(p, 1, "reading %s: %s", k, strata_errmsg());
  else if (!found) rc = fail(p, 2, "refused: no volume at prefix \"%s\" (%s is absent)", p->o->prefix, k);
  pc_info in;
  char e[512];
  if (!rc && pc_info_parse((const char *)v, len, k, &in, e, sizeof e))
    rc = fail(p, 2, "refused: %s", e);
  if (!rc && ds_layout_init(&in, &p->l, e, sizeof e)) rc = fail(p, 2, "refused: %s: %s", k, e);
  free(v);
  free(k);
  return rc;
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
  int rc = load_layout(p);
  for (int i = 0; !rc && i < p->l.in.nscales; i++) {
    int64_t b0[3] = {0, 0, 0}, lo[3], hi[3];
    ds_block_box(&p->l, i, b0, lo, hi);
    for (int d = 0; d < 3; d++) hi[d] = lo[d] + p->l.bvox[d] / p->l.F[i][d];
    if (!(p->reg[i] = malloc(box_voxels(lo, hi) * 8))) rc = fail(p, 1, "out of memory");
  }
  if (!rc) {
    const pc_scale *s = &p->l.in.s[0];
    size_t cb = (size_t)(s->chunk[0] * s->chunk[1] * s->chunk[2]) * 8;
    int64_t b0[3] = {0, 0, 0}, lo[3], hi[3];
    ds_block_box(&p->l, 0, b0, lo, hi);
    for (int d = 0; d < 3; d++) hi[d] = lo[d] + p->l.bvox[d];
    if (!(p->cbuf = malloc(cb))) rc = fail(p, 1, "out of memory");
    /* without the spare the blocks are simply read one after another */
    p->spare = malloc(box_voxels(lo, hi) * 8);
  }
  if (!rc) { /* the checkpoint */
    char *ck = ckpt_key(p);
    int found;
    uint8_t *v = NULL;
    size_t len = 0;
    if (!ck || kvc_get(c, ck, 0, &found, &v, &len, &p->ckpt_seen))
      rc = fail(p, 1, "reading the checkpoint: %s", ck ? strata_errmsg() : "out of memory");
    else
      p->ckpt = found ? gen_value(v, len) : 0;
    free(v);
    free(ck);
  }
  if (!rc) { /* the holder of the block locks: an op of kind downsample */
    Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
    q.user = (char *)o->user;
    q.kind = DS_OP_KIND;
    char payload[512];
    snprintf(payload, sizeof payload, "{\"prefix\":\"%s\",\"name\":\"%s\"}", o->prefix, o->name);
    q.payload.data = (uint8_t *)payload;
    q.payload.len = strlen(payload);
    Strata__V1__CreateOpResponse *r = NULL;
    if (rpc_ops_create(c, NULL, &q, &r)) rc = fail(p, 1, "Ops.Create: %s", strata_errmsg());
    else p->op = r->op ? r->op->op_id : 0;
    rpc_free(r);
  }
  if (!rc) {
    logkv(p, "event=start op=%" PRIu64 " checkpoint=%" PRIu64 " blocks=%" PRId64 "x%" PRId64 "x%" PRId64
          " block_voxels=%" PRId64 "x%" PRId64 "x%" PRId64,
          p->op, p->ckpt, p->l.bgrid[0], p->l.bgrid[1], p->l.bgrid[2], p->l.bvox[0], p->l.bvox[1],
          p->l.bvox[2]);
    if (pthread_create(&p->th, NULL, renew_main, p) == 0) p->th_on = 1;
    rc = o->region ? region(p) : follow(p);
  }
  if (p->th_on) {
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->th, NULL);
  }
  if (p->op) {
    unlock_block(p);
    Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
    q.op_id = p->op;
    q.status = rc ? STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION : STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS;
    q.reason = rc ? err : "";
    Strata__V1__SetStatusResponse *r = NULL;
    rpc_ops_set_status(c, NULL, &q, &r);
    rpc_free(r);
  }
  if (!rc)
    logkv(p, "event=exit checkpoint=%" PRIu64 " blocks_done=%" PRIu64 " blocks_skipped=%" PRIu64
          " chunks_written=%" PRIu64, p->ckpt, p->blocks_done, p->blocks_skipped, p->chunks_written);
  for (int i = 0; i < PC_MAX_SCALES; i++) free(p->reg[i]);
  free(p->cbuf);
  free(p->spare);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
  return rc;
}

/* --- status --------------------------------------------------------------------------------- */

int ds_status(rpc_client *c, const char *prefix, uint64_t *latest, ds_ckpt **out, size_t *n,
              char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  *latest = 0;
  char *start = kvc_keyf("%s" DS_DIR "checkpoint/", prefix), *end = kvc_keyf("%s" DS_DIR "checkpoint0", prefix);
  if (!start || !end) {
    free(start);
    free(end);
    snprintf(err, errlen, "out of memory");
    return STRATA_ENOMEM;
  }
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  q.start.data = (uint8_t *)start;
  q.start.len = strlen(start);
  q.end.data = (uint8_t *)end;
  q.end.len = strlen(end);
  rpc_cstream *st = NULL;
  int rc = rpc_kv_list(c, NULL, &q, &st);
  size_t cap = 0, slen = strlen(start);
  while (!rc) {
    Strata__V1__ListResponse *m = NULL;
    int r = rpc_kv_list_next(st, &m);
    if (r != 1) {
      rc = r;
      break;
    }
    if (m->version) *latest = m->version->generation;
    for (size_t i = 0; i < m->n_entries; i++) {
      const Strata__V1__KeyValue *e = m->entries[i];
      if (*n == cap) {
        cap = cap ? 2 * cap : 8;
        ds_ckpt *nv = realloc(*out, cap * sizeof **out);
        if (!nv) {
          rc = STRATA_ENOMEM;
          break;
        }
        *out = nv;
      }
      ds_ckpt *d = &(*out)[(*n)++];
      size_t nl = e->key.len - slen < DS_MAX_NAME ? e->key.len - slen : DS_MAX_NAME;
      memcpy(d->name, e->key.data + slen, nl);
      d->name[nl] = 0;
      d->generation = gen_value(e->value.data, e->value.len);
    }
    rpc_free(m);
  }
  if (st) rpc_cstream_close(st);
  if (rc) snprintf(err, errlen, "Kv.List %s: %s", start, strata_errmsg());
  if (!rc && !*latest) { /* no entries: the latest from a read */
    int found;
    if ((rc = kvc_get(c, start, 0, &found, NULL, NULL, latest)))
      snprintf(err, errlen, "Kv.Get: %s", strata_errmsg());
  }
  free(start);
  free(end);
  return rc;
}

/* --- the benchmark's anchor ------------------------------------------------------------------ */

int ds_in_process(const char *dir, uint64_t *mip0_bytes, double *seconds, char *err, size_t errlen) {
  pc_info in;
  char *text = NULL;
  size_t tlen;
  if (pc_info_load(dir, &in, &text, &tlen, err, errlen)) return 2;
  free(text);
  ds_layout l;
  if (ds_layout_init(&in, &l, err, errlen)) return 2;
  uint64_t *reg[PC_MAX_SCALES] = {0}, *cbuf = NULL, *tmp = NULL;
  int rc = 0;
  for (int i = 0; i < in.nscales && !rc; i++) {
    int64_t n = 1;
    for (int d = 0; d < 3; d++) n *= l.bvox[d] / l.F[i][d];
    if (!(reg[i] = malloc((size_t)n * 8))) rc = 1;
  }
  size_t cvox = (size_t)(in.s[0].chunk[0] * in.s[0].chunk[1] * in.s[0].chunk[2]);
  if (!rc && (!(cbuf = malloc(cvox * 8)) || !(tmp = malloc(cvox * 8)))) rc = 1;
  if (rc) snprintf(err, errlen, "out of memory");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  *mip0_bytes = 0;
  int64_t b[3], c[3], clo[3], chi[3];
  for (b[2] = 0; b[2] < l.bgrid[2] && !rc; b[2]++)
    for (b[1] = 0; b[1] < l.bgrid[1] && !rc; b[1]++)
      for (b[0] = 0; b[0] < l.bgrid[0] && !rc; b[0]++) {
        block_chunks(&l, 0, b, clo, chi);
        for (c[2] = clo[2]; c[2] < chi[2] && !rc; c[2]++)
          for (c[1] = clo[1]; c[1] < chi[1] && !rc; c[1]++)
            for (c[0] = clo[0]; c[0] < chi[0] && !rc; c[0]++) {
              char name[PC_MAX_NAME], path[4096];
              pc_chunk_name(&in.s[0], c, name, sizeof name);
              snprintf(path, sizeof path, "%s/%s/%s", dir, in.s[0].key, name);
              size_t bytes = pc_chunk_bytes(&in.s[0], c);
              FILE *f = fopen(path, "rb");
              if (!f || fread(tmp, 1, bytes, f) != bytes) {
                snprintf(err, errlen, "cannot read %s", path);
                rc = 1;
              }
              if (f) fclose(f);
              if (!rc) ds_chunk_to_region(&l, 0, b, reg[0], c, tmp);
              *mip0_bytes += bytes;
            }
        if (rc) break;
        ds_block_pyramid(&l, b, reg);
        for (int i = 1; i < in.nscales; i++) {
          block_chunks(&l, i, b, clo, chi);
          for (c[2] = clo[2]; c[2] < chi[2]; c[2]++)
            for (c[1] = clo[1]; c[1] < chi[1]; c[1]++)
              for (c[0] = clo[0]; c[0] < chi[0]; c[0]++) ds_chunk_from_region(&l, i, b, reg[i], c, cbuf);
        }
      }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  for (int i = 0; i < PC_MAX_SCALES; i++) free(reg[i]);
  free(cbuf);
  free(tmp);
  return rc;
}
