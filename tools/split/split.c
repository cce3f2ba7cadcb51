/*
 * The supervoxel split: steps, locks, reads, the region growing and the one
 * fenced commit. Design and crash analysis: tools/split/README.md and
 * docs/edit-workers.md.
 */
#include "tools/split/split.h"

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

enum { SRC = 1, SINK = 2, UNSET = 3 }; /* side[] values; 0 = not the supervoxel */
static const char *side_name[] = {"", "source", "sink"};

/* One (chunk, side) that needs a new id. */
typedef struct sp_id {
  int64_t c[3];
  int side;
  uint64_t id;
} sp_id;

typedef struct sp {
  rpc_client *c;
  const split_req *r;
  const split_opts *o;
  char *err;
  size_t errlen;
  int replay;
  pc_info info;
  const pc_scale *s;
  uint64_t op, base_gen;
  /* rows[0] is the root row (8 bytes), rows[1..nrows) the L2 chunk rows. */
  size_t nrows;
  uint8_t (*rows)[LK_L2_KEY_LEN];
  int64_t clo[3], chi[3]; /* chunk grid box [clo, chi] inclusive */
  int64_t rlo[3], n[3];   /* region: voxel origin (no offset) and dims */
  size_t nvox;
  uint64_t *lab;
  uint8_t *side;
  size_t nids;
  sp_id *ids;
  uint64_t count[3];
  /* the renewal thread */
  pthread_t th;
  int th_on;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  atomic_int lost;
  int locked; /* 1 once the chunk locks are held */
  double t_locks, t_read, t_compute, t_commit;
} sp;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fail(sp *p, int rc, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err, p->errlen, fmt, ap);
  va_end(ap);
  return rc;
}

static void logkv(sp *p, const char *fmt, ...) {
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
static void die_at(sp *p, const char *step) {
  if (p->replay) return;
  const char *e = getenv("STRATA_SPLIT_DIE_AT"), *st = getenv("STRATA_SPLIT_STOP_AT");
  if (st && !strcmp(st, step)) {
    logkv(p, "step=%s event=stop", step);
    raise(SIGSTOP);
  }
  if (!e || strcmp(e, step) != 0) return;
  logkv(p, "step=%s event=die", step);
  raise(SIGKILL);
}

/* --- the request ------------------------------------------------------------------------ */

static int seeds_parse(json_t *a, const char *name, size_t *n, int64_t (**out)[3], char *err,
                       size_t errlen) {
  if (!json_is_array(a) || json_array_size(a) > SPLIT_MAX_SEEDS) {
    snprintf(err, errlen, "payload: \"%s\" must be an array of at most %d [x,y,z]", name,
             SPLIT_MAX_SEEDS);
    return -1;
  }
  *n = json_array_size(a);
  *out = calloc(*n ? *n : 1, sizeof **out);
  if (!*out) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < *n; i++) {
    json_t *v = json_array_get(a, i);
    if (!json_is_array(v) || json_array_size(v) != 3) goto bad;
    for (int d = 0; d < 3; d++) {
      json_t *x = json_array_get(v, (size_t)d);
      if (!json_is_integer(x)) goto bad;
      (*out)[i][d] = json_integer_value(x);
    }
  }
  return 0;
bad:
  snprintf(err, errlen, "payload: %s[%zu] is not [x,y,z] integers", name, *n);
  return -1;
}

int split_req_parse(const char *text, size_t len, split_req *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  json_error_t je;
  json_t *j = json_loadb(text, len, 0, &je);
  if (!j) {
    snprintf(err, errlen, "payload: not JSON (%s)", je.text);
    return -1;
  }
  int rc = -1;
  json_t *pf = json_object_get(j, "prefix"), *sv = json_object_get(j, "sv"),
         *cb = json_object_get(j, "chunk_bits");
  if (!json_is_string(pf) || !json_is_integer(sv) || !json_is_integer(cb)) {
    snprintf(err, errlen, "payload: needs \"prefix\" (string), \"sv\" and \"chunk_bits\" (integers)");
    goto out;
  }
  r->prefix = strdup(json_string_value(pf));
  r->sv = (uint64_t)json_integer_value(sv);
  r->chunk_bits = (int)json_integer_value(cb);
  if (!r->prefix) goto out;
  if (seeds_parse(json_object_get(j, "source"), "source", &r->nseeds[0], &r->seeds[0], err,
                  errlen) ||
      seeds_parse(json_object_get(j, "sink"), "sink", &r->nseeds[1], &r->seeds[1], err, errlen))
    goto out;
  rc = 0;
out:
  json_decref(j);
  if (rc) split_req_free(r);
  return rc;
}

char *split_req_json(const split_req *r) {
  json_t *j = json_pack("{s:s, s:I, s:i}", "prefix", r->prefix, "sv", (json_int_t)r->sv,
                        "chunk_bits", r->chunk_bits);
  for (int k = 0; k < 2 && j; k++) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->nseeds[k]; i++)
      json_array_append_new(a, json_pack("[I,I,I]", (json_int_t)r->seeds[k][i][0],
                                         (json_int_t)r->seeds[k][i][1],
                                         (json_int_t)r->seeds[k][i][2]));
    json_object_set_new(j, side_name[k + 1], a);
  }
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  return s;
}

void split_req_free(split_req *r) {
  free(r->prefix);
  free(r->seeds[0]);
  free(r->seeds[1]);
  memset(r, 0, sizeof *r);
}

int split_req_check(const split_req *r, char *err, size_t errlen) {
  for (int k = 0; k < 2; k++)
    if (r->nseeds[k] == 0) {
      snprintf(err, errlen, "refused: the %s side has no seed (an empty side)", side_name[k + 1]);
      return -1;
    }
  for (size_t i = 0; i < r->nseeds[0]; i++)
    for (size_t j = 0; j < r->nseeds[1]; j++)
      if (!memcmp(r->seeds[0][i], r->seeds[1][j], sizeof r->seeds[0][i])) {
        snprintf(err, errlen, "refused: voxel %" PRId64 ",%" PRId64 ",%" PRId64
                 " is a seed of both sides", r->seeds[0][i][0], r->seeds[0][i][1],
                 r->seeds[0][i][2]);
        return -1;
      }
  if (r->chunk_bits < 1 || r->chunk_bits > 14) {
    snprintf(err, errlen, "refused: chunk_bits %d is not in 1..14", r->chunk_bits);
    return -1;
  }
  int layer;
  int64_t c[3];
  uint64_t seg;
  pc_node_split(r->sv, r->chunk_bits, &layer, c, &seg);
  if (layer != 1 || seg == 0) {
    snprintf(err, errlen, "refused: %" PRIu64 " is not a supervoxel id (layer %d, segment %" PRIu64
             ")", r->sv, layer, seg);
    return -1;
  }
  return 0;
}

/* --- keys ------------------------------------------------------------------------------- */

static char *keyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *keyf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

static char *chunk_key(sp *p, const int64_t c[3]) {
  char name[PC_MAX_NAME];
  pc_chunk_name(p->s, c, name, sizeof name);
  return keyf("%s%s/%s", p->r->prefix, p->s->key, name);
}
static char *ids_key(sp *p) { return keyf("%s.split/ops/%" PRIu64 "/ids", p->r->prefix, p->op); }
static char *result_key(sp *p) {
  return keyf("%s.split/ops/%" PRIu64 "/result", p->r->prefix, p->op);
}
static char *lineage_key(sp *p) {
  return keyf("%s.split/lineage/%" PRIu64 "/%" PRIu64, p->r->prefix, p->r->sv, p->op);
}

static void rows_hex(sp *p, const uint8_t *row, size_t len, char *buf, size_t cap) {
  (void)p;
  size_t o = 0;
  for (size_t i = 0; i < len && o + 3 < cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%02x", row[i]);
}

/* Reads key at `gen` (0 = latest). *found = 0 when absent. *val malloc'd. */
static int kv_get(sp *p, const char *key, uint64_t gen, int *found, uint8_t **val, size_t *len) {
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
  q.key.data = (uint8_t *)key;
  q.key.len = strlen(key);
  if (gen) {
    pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
    pin.generation = gen;
    q.pin = &pin;
  }
  Strata__V1__GetResponse *r = NULL;
  int rc = rpc_kv_get(p->c, NULL, &q, &r);
  if (rc) return fail(p, 1, "reading %s: %s", key, strata_errmsg());
  *found = r->found;
  *val = NULL;
  *len = r->value.len;
  if (r->found) {
    *val = malloc(r->value.len ? r->value.len : 1);
    if (!*val) {
      rpc_free(r);
      return fail(p, 1, "out of memory reading %s", key);
    }
    memcpy(*val, r->value.data, r->value.len);
  }
  rpc_free(r);
  return 0;
}

static int load_info(sp *p) {
  char *k = keyf("%sinfo", p->r->prefix);
  int found;
  uint8_t *v;
  size_t len;
  if (!k) return fail(p, 1, "out of memory");
  int rc = kv_get(p, k, 0, &found, &v, &len);
  if (!rc && !found) rc = fail(p, 2, "refused: no volume at prefix \"%s\" (%s is absent)", p->r->prefix, k);
  if (!rc) {
    char e[256];
    if (pc_info_parse((const char *)v, len, k, &p->info, e, sizeof e))
      rc = fail(p, 2, "refused: %s", e);
    free(v);
  }
  free(k);
  if (rc) return rc;
  p->s = &p->info.s[0];
  for (int d = 0; d < 3; d++)
    if (p->s->grid[d] > ((int64_t)1 << p->r->chunk_bits))
      return fail(p, 2, "refused: %" PRId64 " chunks along axis %d do not fit chunk_bits %d",
                  p->s->grid[d], d, p->r->chunk_bits);
  return 0;
}

/* The seed as a voxel without the offset; -1 when outside the volume. */
static int seed_voxel(sp *p, const int64_t in[3], int64_t v[3]) {
  for (int d = 0; d < 3; d++) {
    v[d] = in[d] - p->s->offset[d];
    if (v[d] < 0 || v[d] >= p->s->size[d]) return -1;
  }
  return 0;
}

/* The box (seeds' envelope plus one chunk, clipped), the one-voxel shell, and the
 * chunks overlapping it: p->clo/chi, the region and the rows. */
static int plan_chunks(sp *p) {
  int64_t lo[3], hi[3];
  for (int d = 0; d < 3; d++) {
    lo[d] = INT64_MAX;
    hi[d] = INT64_MIN;
  }
  for (int k = 0; k < 2; k++)
    for (size_t i = 0; i < p->r->nseeds[k]; i++) {
      int64_t v[3];
      if (seed_voxel(p, p->r->seeds[k][i], v))
        return fail(p, 2, "refused: %s seed %" PRId64 ",%" PRId64 ",%" PRId64 " is outside the volume",
                    side_name[k + 1], p->r->seeds[k][i][0], p->r->seeds[k][i][1], p->r->seeds[k][i][2]);
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
  if (!p->rows) return fail(p, 1, "out of memory");
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

static void fill_rows(sp *p, ProtobufCBinaryData *b, size_t from) {
  for (size_t i = from; i < p->nrows; i++) {
    b[i - from].data = p->rows[i];
    b[i - from].len = rowlen(i);
  }
}

/* --- locks -------------------------------------------------------------------------------- */

/* Extends the root lock to root_ttl_ms from now. */
static int renew_root(sp *p) {
  Strata__V1__RenewRequest q = STRATA__V1__RENEW_REQUEST__INIT;
  ProtobufCBinaryData row = {8, p->rows[0]};
  q.op_id = p->op;
  q.rows = &row;
  q.n_rows = 1;
  q.ttl_ms = (uint64_t)p->o->root_ttl_ms;
  Strata__V1__RenewResponse *r = NULL;
  int rc = rpc_locks_renew(p->c, NULL, &q, &r);
  rpc_free(r);
  return rc;
}

static void *renew_main(void *arg) {
  sp *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t ns = ts.tv_nsec + (p->o->root_ttl_ms / 3) * 1000000;
    ts.tv_sec += ns / 1000000000;
    ts.tv_nsec = ns % 1000000000;
    pthread_cond_timedwait(&p->cv, &p->mu, &ts);
    if (p->stop) break;
    pthread_mutex_unlock(&p->mu);
    int rc = renew_root(p);
    pthread_mutex_lock(&p->mu);
    if (rc) {
      atomic_store(&p->lost, 1);
      logkv(p, "event=renew_failed error=\"%s\"", strata_errmsg());
      break;
    }
  }
  pthread_mutex_unlock(&p->mu);
  return NULL;
}

static void renew_stop(sp *p) {
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
static int acquire(sp *p, size_t from, size_t to, int indefinite, const char *what) {
  ProtobufCBinaryData *b = calloc(to - from, sizeof *b);
  if (!b) return fail(p, 1, "out of memory");
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
  if (rc) return fail(p, 1, "%s: Locks.Acquire: %s", what, strata_errmsg());
  if (!r->acquired) {
    char msg[1024];
    conflicts_msg(r, msg, sizeof msg);
    rpc_free(r);
    return fail(p, 1, "%s: not acquired within %" PRId64 " ms: %s", what, p->o->wait_ms, msg);
  }
  rpc_free(r);
  return 0;
}

static int set_status(sp *p, Strata__V1__OpStatus st, const char *reason) {
  Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
  q.op_id = p->op;
  q.status = st;
  q.reason = (char *)reason;
  Strata__V1__SetStatusResponse *r = NULL;
  int rc = rpc_ops_set_status(p->c, NULL, &q, &r);
  rpc_free(r);
  return rc ? fail(p, 1, "Ops.SetStatus: %s", strata_errmsg()) : 0;
}

static int release_all(sp *p) {
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  q.op_id = p->op;
  q.all = 1;
  Strata__V1__ReleaseResponse *r = NULL;
  int rc = rpc_locks_release(p->c, NULL, &q, &r);
  rpc_free(r);
  return rc ? fail(p, 1, "Locks.Release: %s", strata_errmsg()) : 0;
}

/* --- reads -------------------------------------------------------------------------------- */

static size_t vidx(const sp *p, int64_t x, int64_t y, int64_t z) {
  return (size_t)(x + p->n[0] * (y + p->n[1] * z));
}

/* Copies chunk c between its bytes and the region (to_region or back). */
static void chunk_copy(sp *p, const int64_t c[3], uint64_t *buf, int to_region) {
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
static int read_region(sp *p, uint64_t gen) {
  p->lab = malloc(p->nvox * 8);
  p->side = calloc(p->nvox, 1);
  if (!p->lab || !p->side) return fail(p, 1, "out of memory for a %zu-voxel region", p->nvox);
  size_t nch = p->nrows - 1, i = 0;
  int64_t c[3];
  for (c[2] = p->clo[2]; c[2] <= p->chi[2]; c[2]++)
    for (c[1] = p->clo[1]; c[1] <= p->chi[1]; c[1]++)
      for (c[0] = p->clo[0]; c[0] <= p->chi[0]; c[0]++, i++) {
        if (i == nch / 2) die_at(p, "read");
        char *k = chunk_key(p, c);
        int found;
        uint8_t *v;
        size_t len;
        if (!k) return fail(p, 1, "out of memory");
        int rc = kv_get(p, k, gen, &found, &v, &len);
        if (!rc && !found) rc = fail(p, 1, "chunk %s is absent at generation %" PRIu64, k, gen);
        if (!rc && len != pc_chunk_bytes(p->s, c)) {
          rc = fail(p, 1, "chunk %s has %zu bytes, its box needs %" PRIu64, k, len,
                    pc_chunk_bytes(p->s, c));
          free(v);
        }
        free(k);
        if (rc) return rc;
        chunk_copy(p, c, (uint64_t *)v, 1);
        free(v);
      }
  return 0;
}

/* --- the split ------------------------------------------------------------------------- */

/* Calls f on each 26-neighbour index of voxel i. */
#define FOR_NEIGHBOURS(p, i, j, BODY)                                                     \
  do {                                                                                    \
    int64_t x_ = (int64_t)((i) % (size_t)(p)->n[0]),                                      \
            y_ = (int64_t)(((i) / (size_t)(p)->n[0]) % (size_t)(p)->n[1]),                \
            z_ = (int64_t)((i) / (size_t)((p)->n[0] * (p)->n[1]));                        \
    for (int dz_ = -1; dz_ <= 1; dz_++)                                                   \
      for (int dy_ = -1; dy_ <= 1; dy_++)                                                 \
        for (int dx_ = -1; dx_ <= 1; dx_++) {                                             \
          int64_t xx_ = x_ + dx_, yy_ = y_ + dy_, zz_ = z_ + dz_;                         \
          if ((dx_ | dy_ | dz_) == 0 || xx_ < 0 || yy_ < 0 || zz_ < 0 || xx_ >= (p)->n[0] || \
              yy_ >= (p)->n[1] || zz_ >= (p)->n[2])                                       \
            continue;                                                                     \
          size_t j = vidx((p), xx_, yy_, zz_);                                            \
          BODY                                                                            \
        }                                                                                 \
  } while (0)

/* Multi-source region growing, one component per side, strays to the majority of
 * their neighbours. side[] ends as SRC or SINK on every supervoxel voxel. */
static int compute(sp *p) {
  size_t n = p->nvox, qh = 0, qt = 0;
  uint32_t *q = malloc(n * sizeof *q);
  int32_t *mark = malloc(n * sizeof *mark);
  if (!q || !mark || n > UINT32_MAX) {
    free(q);
    free(mark);
    return fail(p, 1, n > UINT32_MAX ? "region of %zu voxels is too large"
                                     : "out of memory for a %zu-voxel region growing", n);
  }
  int rc = 0;
  int touches_edge = 0;
  for (size_t i = 0; i < n; i++) {
    p->side[i] = p->lab[i] == p->r->sv ? UNSET : 0;
    if (p->side[i]) {
      int64_t x = (int64_t)(i % (size_t)p->n[0]), y = (int64_t)((i / (size_t)p->n[0]) % (size_t)p->n[1]),
              z = (int64_t)(i / (size_t)(p->n[0] * p->n[1]));
      int64_t v[3] = {x, y, z};
      for (int d = 0; d < 3; d++)
        if ((v[d] == 0 && p->rlo[d] > 0) ||
            (v[d] == p->n[d] - 1 && p->rlo[d] + p->n[d] < p->s->size[d]))
          touches_edge = 1;
    }
  }
  if (touches_edge) {
    rc = fail(p, 2, "refused: supervoxel %" PRIu64 " continues past the locked chunks (seeds "
              "more than one chunk from part of it)", p->r->sv);
    goto out;
  }
  /* seeds: source first, then sink, so ties in distance go to the source */
  for (int k = 0; k < 2; k++)
    for (size_t s = 0; s < p->r->nseeds[k]; s++) {
      int64_t v[3];
      seed_voxel(p, p->r->seeds[k][s], v);
      size_t i = vidx(p, v[0] - p->rlo[0], v[1] - p->rlo[1], v[2] - p->rlo[2]);
      if (p->lab[i] != p->r->sv) {
        rc = fail(p, 2, "refused: %s seed %" PRId64 ",%" PRId64 ",%" PRId64
                  " is in supervoxel %" PRIu64 ", not %" PRIu64, side_name[k + 1],
                  p->r->seeds[k][s][0], p->r->seeds[k][s][1], p->r->seeds[k][s][2], p->lab[i],
                  p->r->sv);
        goto out;
      }
      if (p->side[i] == UNSET) {
        p->side[i] = (uint8_t)(k + 1);
        q[qt++] = (uint32_t)i;
      }
    }
  while (qh < qt) {
    size_t i = q[qh++];
    FOR_NEIGHBOURS(p, i, j, {
      if (p->side[j] == UNSET) {
        p->side[j] = p->side[i];
        q[qt++] = (uint32_t)j;
      }
    });
  }
  die_at(p, "compute");
  /* one component per side: the largest (first found on a tie); the others are strays */
  for (size_t i = 0; i < n; i++) mark[i] = -1;
  for (int s = SRC; s <= SINK; s++) {
    size_t best = 0, best_start = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
      if (p->side[i] != s || mark[i] != -1) continue;
      qh = qt = 0;
      q[qt++] = (uint32_t)i;
      mark[i] = (int32_t)i;
      while (qh < qt) {
        size_t a = q[qh++];
        FOR_NEIGHBOURS(p, a, j, {
          if (p->side[j] == s && mark[j] == -1) {
            mark[j] = (int32_t)i;
            q[qt++] = (uint32_t)j;
          }
        });
      }
      if (qt > best) {
        best = qt;
        best_start = i;
      }
    }
    for (size_t i = 0; i < n; i++)
      if (p->side[i] == s && mark[i] != (int32_t)best_start) p->side[i] = UNSET;
  }
  /* strays: each 26-connected fragment joins the side most of its neighbours are on
   * (the source on a tie); a fragment with no labelled neighbour waits for the next
   * pass; one left with none at all (a piece of the supervoxel not connected to
   * either side) goes to the source. */
  for (int pass = 0;; pass++) {
    int changed = 0, left = 0;
    for (size_t i = 0; i < n; i++) mark[i] = -1;
    for (size_t i = 0; i < n; i++) {
      if (p->side[i] != UNSET || mark[i] != -1) continue;
      qh = qt = 0;
      q[qt++] = (uint32_t)i;
      mark[i] = 0;
      uint64_t votes[3] = {0, 0, 0};
      while (qh < qt) {
        size_t a = q[qh++];
        FOR_NEIGHBOURS(p, a, j, {
          if (p->side[j] == UNSET && mark[j] == -1) {
            mark[j] = 0;
            q[qt++] = (uint32_t)j;
          } else if (p->side[j] == SRC || p->side[j] == SINK) {
            votes[p->side[j]]++;
          }
        });
      }
      int to = votes[SINK] > votes[SRC] ? SINK : votes[SRC] ? SRC : 0;
      if (to) {
        for (size_t k = 0; k < qt; k++) p->side[q[k]] = (uint8_t)to;
        changed = 1;
      } else {
        left = 1;
      }
    }
    if (!left) break;
    if (!changed)
      for (size_t i = 0; i < n; i++)
        if (p->side[i] == UNSET) p->side[i] = SRC;
  }
  for (size_t i = 0; i < n; i++) p->count[p->side[i] == SINK ? 2 : p->side[i] == SRC ? 1 : 0]++;
  if (!p->count[1] || !p->count[2])
    rc = fail(p, 2, "refused: the split leaves the %s side empty", p->count[1] ? "sink" : "source");
out:
  free(q);
  free(mark);
  return rc;
}

/* The (chunk, side) pairs that need an id, in chunk order then source, sink. */
static int needed_ids(sp *p) {
  size_t nch = p->nrows - 1;
  p->ids = calloc(2 * nch, sizeof *p->ids);
  if (!p->ids) return fail(p, 1, "out of memory");
  int64_t c[3];
  for (c[2] = p->clo[2]; c[2] <= p->chi[2]; c[2]++)
    for (c[1] = p->clo[1]; c[1] <= p->chi[1]; c[1]++)
      for (c[0] = p->clo[0]; c[0] <= p->chi[0]; c[0]++) {
        int64_t lo[3], hi[3];
        pc_chunk_box(p->s, c, lo, hi);
        int has[3] = {0, 0, 0};
        for (int64_t z = lo[2]; z < hi[2]; z++)
          for (int64_t y = lo[1]; y < hi[1]; y++)
            for (int64_t x = lo[0]; x < hi[0]; x++)
              has[p->side[vidx(p, x - p->rlo[0], y - p->rlo[1], z - p->rlo[2])] & 3] = 1;
        for (int s = SRC; s <= SINK; s++)
          if (has[s]) {
            memcpy(p->ids[p->nids].c, c, sizeof c);
            p->ids[p->nids++].side = s;
          }
      }
  return 0;
}

static json_t *ids_json(sp *p) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < p->nids; i++)
    json_array_append_new(a, json_pack("{s:[I,I,I], s:s, s:I}", "chunk", (json_int_t)p->ids[i].c[0],
                                       (json_int_t)p->ids[i].c[1], (json_int_t)p->ids[i].c[2],
                                       "side", side_name[p->ids[i].side], "id",
                                       (json_int_t)p->ids[i].id));
  return a;
}

/* A fenced commit of puts (key, value, len) with "absent" conditions on cond_keys. */
static int commit(sp *p, size_t nputs, char **keys, uint8_t **vals, size_t *lens, size_t nconds,
                  char **cond_keys, uint64_t *gen) {
  Strata__V1__Put *pv = calloc(nputs, sizeof *pv);
  Strata__V1__Put **pp = calloc(nputs, sizeof *pp);
  Strata__V1__Condition *cv = calloc(nconds ? nconds : 1, sizeof *cv);
  Strata__V1__Condition **cp = calloc(nconds ? nconds : 1, sizeof *cp);
  ProtobufCBinaryData *rows = calloc(p->nrows, sizeof *rows);
  int rc = 0;
  if (!pv || !pp || !cv || !cp || !rows) {
    rc = fail(p, 1, "out of memory");
    goto out;
  }
  for (size_t i = 0; i < nputs; i++) {
    Strata__V1__Put init = STRATA__V1__PUT__INIT;
    pv[i] = init;
    pv[i].key.data = (uint8_t *)keys[i];
    pv[i].key.len = strlen(keys[i]);
    pv[i].value.data = vals[i];
    pv[i].value.len = lens[i];
    pp[i] = &pv[i];
  }
  for (size_t i = 0; i < nconds; i++) {
    Strata__V1__Condition init = STRATA__V1__CONDITION__INIT;
    cv[i] = init;
    cv[i].key.data = (uint8_t *)cond_keys[i];
    cv[i].key.len = strlen(cond_keys[i]);
    cv[i].kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
    cp[i] = &cv[i];
  }
  fill_rows(p, rows, 0);
  Strata__V1__LockFence f = STRATA__V1__LOCK_FENCE__INIT;
  f.op_id = p->op;
  f.rows = rows;
  f.n_rows = p->nrows;
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.puts = pp;
  q.n_puts = nputs;
  q.conditions = cp;
  q.n_conditions = nconds;
  if (!p->o->anchor_multi_commit) q.fence = &f;
  Strata__V1__CommitResponse *r = NULL;
  rc = rpc_kv_commit(p->c, NULL, &q, &r);
  if (rc) {
    rc = fail(p, rc == STRATA_EFENCED || rc == STRATA_ECONDITION ? 3 : 1, "Kv.Commit: %s",
              strata_errmsg());
  } else {
    *gen = r->version ? r->version->generation : 0;
  }
  rpc_free(r);
out:
  free(pv);
  free(pp);
  free(cv);
  free(cp);
  free(rows);
  return rc;
}

/* The ids: the record on the op when there is one (a replay, or a worker that had
 * recorded them), else allocated per chunk from the id counters and recorded
 * (fenced, "absent") before any label uses them. */
static int take_ids(sp *p) {
  char *k = ids_key(p);
  int found, rc;
  uint8_t *v;
  size_t len;
  if (!k) return fail(p, 1, "out of memory");
  if ((rc = kv_get(p, k, 0, &found, &v, &len))) goto out;
  if (found) {
    json_error_t je;
    json_t *j = json_loadb((const char *)v, len, 0, &je), *a = json_object_get(j, "ids");
    free(v);
    if (!json_is_array(a) || json_array_size(a) != p->nids) {
      rc = fail(p, 1, "the ids recorded on op %" PRIu64 " (%s) do not match this split's %zu "
                "(chunk, side) pairs", p->op, k, p->nids);
      json_decref(j);
      goto out;
    }
    for (size_t i = 0; i < p->nids; i++) {
      json_t *e = json_array_get(a, i), *c = json_object_get(e, "chunk");
      int ok = !strcmp(json_string_value(json_object_get(e, "side")) ?: "", side_name[p->ids[i].side]);
      for (int d = 0; d < 3; d++)
        ok &= json_integer_value(json_array_get(c, (size_t)d)) == p->ids[i].c[d];
      if (!ok) {
        rc = fail(p, 1, "the ids recorded on op %" PRIu64 " name another (chunk, side) at %zu",
                  p->op, i);
        break;
      }
      p->ids[i].id = (uint64_t)json_integer_value(json_object_get(e, "id"));
    }
    json_decref(j);
    if (!rc) logkv(p, "step=ids source=recorded count=%zu", p->nids);
    goto out;
  }
  int segbits = pc_segment_bits(p->r->chunk_bits);
  uint64_t base = (uint64_t)1 << (segbits - 1);
  for (size_t i = 0; i < p->nids;) {
    size_t m = 1;
    while (i + m < p->nids && !memcmp(p->ids[i + m].c, p->ids[i].c, sizeof p->ids[i].c)) m++;
    char *cn = keyf("%s.split/counter/%" PRId64 "_%" PRId64 "_%" PRId64, p->r->prefix,
                    p->ids[i].c[0], p->ids[i].c[1], p->ids[i].c[2]);
    if (!cn) {
      rc = fail(p, 1, "out of memory");
      goto out;
    }
    Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
    q.counter = cn;
    q.count = m;
    Strata__V1__AllocateIdsResponse *r = NULL;
    rc = rpc_ops_allocate_ids(p->c, NULL, &q, &r);
    free(cn);
    if (rc) {
      rc = fail(p, 1, "Ops.AllocateIds: %s", strata_errmsg());
      goto out;
    }
    if (r->first + m >= base) {
      rpc_free(r);
      rc = fail(p, 1, "the id counter of chunk %" PRId64 ",%" PRId64 ",%" PRId64 " is exhausted",
                p->ids[i].c[0], p->ids[i].c[1], p->ids[i].c[2]);
      goto out;
    }
    for (size_t k2 = 0; k2 < m; k2++)
      p->ids[i + k2].id = pc_node_id(1, p->ids[i].c, p->r->chunk_bits, base + r->first + k2);
    rpc_free(r);
    i += m;
  }
  if (p->o->anchor_multi_commit) goto out;
  json_t *j = json_pack("{s:I, s:o}", "op", (json_int_t)p->op, "ids", ids_json(p));
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!body) {
    rc = fail(p, 1, "out of memory");
    goto out;
  }
  uint8_t *bv = (uint8_t *)body;
  size_t bl = strlen(body);
  uint64_t gen;
  rc = commit(p, 1, &k, &bv, &bl, 1, &k, &gen);
  free(body);
  if (!rc) logkv(p, "step=ids source=allocated count=%zu generation=%" PRIu64, p->nids, gen);
  else rc = 1;
out:
  free(k);
  return rc;
}

static uint64_t new_id(sp *p, const int64_t c[3], int side) {
  for (size_t i = 0; i < p->nids; i++)
    if (p->ids[i].side == side && !memcmp(p->ids[i].c, c, sizeof p->ids[i].c)) return p->ids[i].id;
  return 0;
}

/* Relabels, then ONE fenced commit: the changed chunks, the lineage and the result;
 * then SUCCESS and release. */
static int finish(sp *p, split_out *out) {
  size_t nch = p->nrows - 1, np = 0;
  char **keys = calloc(nch + 2, sizeof *keys);
  uint8_t **vals = calloc(nch + 2, sizeof *vals);
  size_t *lens = calloc(nch + 2, sizeof *lens);
  json_t *lin = json_array(), *written = json_array(), *newids[3] = {NULL, json_array(), json_array()};
  int rc = 0;
  char *rk = NULL;
  if (!keys || !vals || !lens || !lin || !written || !newids[1] || !newids[2]) {
    rc = fail(p, 1, "out of memory");
    goto out;
  }
  int64_t c[3];
  for (c[2] = p->clo[2]; c[2] <= p->chi[2]; c[2]++)
    for (c[1] = p->clo[1]; c[1] <= p->chi[1]; c[1]++)
      for (c[0] = p->clo[0]; c[0] <= p->chi[0]; c[0]++) {
        uint64_t ids[3] = {0, new_id(p, c, SRC), new_id(p, c, SINK)};
        if (!ids[1] && !ids[2]) continue; /* no voxel of the supervoxel: unchanged */
        int64_t lo[3], hi[3];
        pc_chunk_box(p->s, c, lo, hi);
        for (int64_t z = lo[2]; z < hi[2]; z++)
          for (int64_t y = lo[1]; y < hi[1]; y++)
            for (int64_t x = lo[0]; x < hi[0]; x++) {
              size_t i = vidx(p, x - p->rlo[0], y - p->rlo[1], z - p->rlo[2]);
              if (p->side[i]) p->lab[i] = ids[p->side[i]];
            }
        size_t len = (size_t)pc_chunk_bytes(p->s, c);
        vals[np] = malloc(len);
        keys[np] = chunk_key(p, c);
        if (!vals[np] || !keys[np]) {
          rc = fail(p, 1, "out of memory");
          goto out;
        }
        chunk_copy(p, c, (uint64_t *)vals[np], 0);
        lens[np] = len;
        char name[PC_MAX_NAME];
        pc_chunk_name(p->s, c, name, sizeof name);
        json_array_append_new(written, json_string(name));
        json_t *e = json_pack("{s:s, s:[I,I,I]}", "chunk", name, "grid", (json_int_t)c[0],
                              (json_int_t)c[1], (json_int_t)c[2]);
        for (int s = SRC; s <= SINK; s++) {
          json_object_set_new(e, side_name[s], ids[s] ? json_integer((json_int_t)ids[s]) : json_null());
          if (ids[s]) json_array_append_new(newids[s], json_integer((json_int_t)ids[s]));
        }
        json_array_append_new(lin, e);
        np++;
      }
  json_t *lj = json_pack("{s:I, s:I, s:O}", "op", (json_int_t)p->op, "old", (json_int_t)p->r->sv,
                         "chunks", lin);
  json_t *rj = json_pack("{s:I, s:I, s:I, s:{s:O, s:O}, s:{s:I, s:I}, s:O, s:s}", "op",
                         (json_int_t)p->op, "sv", (json_int_t)p->r->sv, "base_generation",
                         (json_int_t)p->base_gen, "new_ids", "source", newids[1], "sink",
                         newids[2], "voxels", "source", (json_int_t)p->count[1], "sink",
                         (json_int_t)p->count[2], "chunks_written", written, "scale", p->s->key);
  keys[np] = lineage_key(p);
  vals[np] = (uint8_t *)(lj ? json_dumps(lj, JSON_COMPACT) : NULL);
  rk = result_key(p);
  keys[np + 1] = rk ? strdup(rk) : NULL;
  vals[np + 1] = (uint8_t *)(rj ? json_dumps(rj, JSON_COMPACT) : NULL);
  json_decref(lj);
  if (!keys[np] || !vals[np] || !keys[np + 1] || !vals[np + 1]) {
    json_decref(rj);
    rc = fail(p, 1, "out of memory");
    goto out;
  }
  lens[np] = strlen((char *)vals[np]);
  lens[np + 1] = strlen((char *)vals[np + 1]);
  np += 2;
  if (p->o->anchor_multi_commit) {
    double ta = now_ms();
    uint64_t g = 0;
    for (size_t i = 0; i + 2 < np && !rc; i++) rc = commit(p, 1, keys + i, vals + i, lens + i, 0, NULL, &g);
    if (!rc) rc = commit(p, 2, keys + np - 2, vals + np - 2, lens + np - 2, 0, NULL, &g);
    p->t_commit = now_ms() - ta;
    out->generation = g;
    out->result = rj ? json_dumps(rj, JSON_COMPACT) : NULL;
    json_decref(rj);
    logkv(p, "step=commit mode=multi_commit commits=%zu ms=%.1f", np - 1, p->t_commit);
    goto out;
  }
  if ((rc = set_status(p, STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED, "split: committing"))) {
    json_decref(rj);
    goto out;
  }
  if (atomic_load(&p->lost)) {
    json_decref(rj);
    rc = fail(p, 3, "the root lock could not be renewed: not committing");
    goto out;
  }
  die_at(p, "commit_before");
  double t = now_ms();
  uint64_t gen = 0;
  rc = commit(p, np, keys, vals, lens, 1, &rk, &gen);
  p->t_commit = now_ms() - t;
  if (rc) {
    json_decref(rj);
    goto out;
  }
  logkv(p, "step=commit generation=%" PRIu64 " chunks=%zu ms=%.1f", gen, np - 2, p->t_commit);
  die_at(p, "commit_after");
  json_object_set_new(rj, "generation", json_integer((json_int_t)gen));
  out->generation = gen;
  out->result = json_dumps(rj, JSON_COMPACT);
  json_decref(rj);
  if ((rc = set_status(p, STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS, "split: committed"))) goto out;
  die_at(p, "success");
  renew_stop(p);
  rc = release_all(p);
  logkv(p, "step=release");
out:
  for (size_t i = 0; i < nch + 2 && keys && vals; i++) {
    free(keys[i]);
    free(vals[i]);
  }
  free(keys);
  free(vals);
  free(lens);
  free(rk);
  json_decref(lin);
  json_decref(written);
  json_decref(newids[1]);
  json_decref(newids[2]);
  return rc;
}

/* --- a fresh split --------------------------------------------------------------------- */

static void sp_init(sp *p, rpc_client *c, const split_req *r, const split_opts *o, char *err,
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

static void sp_free(sp *p) {
  renew_stop(p);
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
      seed_voxel(p, p->r->seeds[k][s], v); /* inside: plan_chunks checked */
      for (int d = 0; d < 3; d++) c[d] = v[d] / p->s->chunk[d];
      pc_chunk_box(p->s, c, lo, hi);
      char *key = chunk_key(p, c);
      int found;
      uint8_t *val;
      size_t len;
      if (!key) return fail(p, 1, "out of memory");
      int rc = kv_get(p, key, 0, &found, &val, &len);
      if (!rc && (!found || len != pc_chunk_bytes(p->s, c)))
        rc = fail(p, 1, "chunk %s is absent or has the wrong size", key);
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
        return fail(p, 2, "refused: %s seed %" PRId64 ",%" PRId64 ",%" PRId64 " is in supervoxel %"
                    PRIu64 ", not %" PRIu64, side_name[k + 1], p->r->seeds[k][s][0],
                    p->r->seeds[k][s][1], p->r->seeds[k][s][2], l, p->r->sv);
    }
  return 0;
}

/* After a failure with locks held: the op is marked and its locks released, since
 * nothing was written (a fenced commit either applied or did not). */
static void abandon(sp *p, Strata__V1__OpStatus st) {
  renew_stop(p);
  char reason[512];
  snprintf(reason, sizeof reason, "split: %s", p->err);
  char keep[1024];
  snprintf(keep, sizeof keep, "%s", p->err);
  set_status(p, st, reason);
  release_all(p);
  snprintf(p->err, p->errlen, "%s", keep);
}

int split_run(rpc_client *c, const split_req *r, const split_opts *o, split_out *out, char *err,
              size_t errlen) {
  sp p;
  sp_init(&p, c, r, o, err, errlen);
  memset(out, 0, sizeof *out);
  int rc;
  double t0 = now_ms(), t;
  if (split_req_check(r, err, errlen)) {
    rc = 2;
    goto out;
  }
  if ((rc = load_info(&p)) || (rc = plan_chunks(&p)) || (rc = check_seeds(&p))) goto out;
  if (o->anchor_multi_commit) {
    t = now_ms();
    if ((rc = read_region(&p, 0))) goto out;
    p.t_read = now_ms() - t;
    t = now_ms();
    if ((rc = compute(&p))) goto out;
    p.t_compute = now_ms() - t;
    if ((rc = needed_ids(&p)) || (rc = take_ids(&p)) || (rc = finish(&p, out))) goto out;
    logkv(&p, "step=done mode=multi_commit ms=%.1f locks_ms=0 read_ms=%.1f compute_ms=%.1f "
          "commit_ms=%.1f", now_ms() - t0, p.t_read, p.t_compute, p.t_commit);
    goto out;
  }
  /* 1. the op */
  char *payload = split_req_json(r);
  if (!payload) {
    rc = fail(&p, 1, "out of memory");
    goto out;
  }
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = (char *)o->user;
  cq.kind = SPLIT_OP_KIND;
  cq.payload.data = (uint8_t *)payload;
  cq.payload.len = strlen(payload);
  Strata__V1__CreateOpResponse *cr = NULL;
  rc = rpc_ops_create(c, NULL, &cq, &cr);
  free(payload);
  if (rc) {
    rc = fail(&p, 1, "Ops.Create: %s", strata_errmsg());
    goto out;
  }
  p.op = out->op_id = cr->op->op_id;
  p.base_gen = cr->op->start_generation;
  rpc_free(cr);
  logkv(&p, "step=create base_generation=%" PRIu64 " chunks=%zu", p.base_gen, p.nrows - 1);
  die_at(&p, "create");
  /* 2. the temporal root lock, renewed */
  t = now_ms();
  if ((rc = acquire(&p, 0, 1, 0, "root lock"))) {
    char keep[1024];
    snprintf(keep, sizeof keep, "%s", err);
    set_status(&p, STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION, keep);
    snprintf(err, errlen, "%s", keep);
    goto out;
  }
  if (pthread_create(&p.th, NULL, renew_main, &p) == 0) p.th_on = 1;
  logkv(&p, "step=root_lock ttl_ms=%" PRId64, o->root_ttl_ms);
  die_at(&p, "root_lock");
  /* 3. the indefinite chunk locks (the server records them as the op's scope in the
   * same write) */
  if ((rc = acquire(&p, 1, p.nrows, 1, "chunk locks"))) {
    abandon(&p, STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION);
    goto out;
  }
  p.t_locks = now_ms() - t;
  logkv(&p, "step=chunk_locks rows=%zu ms=%.1f", p.nrows - 1, p.t_locks);
  die_at(&p, "chunk_locks");
  /* 4. reads pinned at the base generation */
  t = now_ms();
  if ((rc = read_region(&p, p.base_gen))) goto stuck;
  p.t_read = now_ms() - t;
  logkv(&p, "step=read chunks=%zu voxels=%zu ms=%.1f", p.nrows - 1, p.nvox, p.t_read);
  /* 5. the split */
  t = now_ms();
  if ((rc = compute(&p))) {
    if (rc == 2) {
      abandon(&p, STRATA__V1__OP_STATUS__OP_STATUS_EXCEPTION);
      rc = 1;
    }
    goto out;
  }
  p.t_compute = now_ms() - t;
  logkv(&p, "step=compute source_voxels=%" PRIu64 " sink_voxels=%" PRIu64 " ms=%.1f", p.count[1],
        p.count[2], p.t_compute);
  /* 6. ids, recorded on the op before use */
  if ((rc = needed_ids(&p)) || (rc = take_ids(&p))) goto stuck;
  die_at(&p, "ids");
  /* 7. one commit, SUCCESS, release */
  rc = finish(&p, out);
  if (rc == 3) {
    abandon(&p, STRATA__V1__OP_STATUS__OP_STATUS_WRITE_FAILED);
    rc = 1;
  }
  if (!rc)
    logkv(&p, "step=done ms=%.1f locks_ms=%.1f read_ms=%.1f compute_ms=%.1f commit_ms=%.1f",
          now_ms() - t0, p.t_locks, p.t_read, p.t_compute, p.t_commit);
  goto out;
stuck:
  /* a transport or server failure with the chunk locks held: leave them for
   * stratactl op replay (the op is listed by op stuck) */
  renew_stop(&p);
  rc = 1;
out:
  sp_free(&p);
  return rc;
}

static const char *status_str(Strata__V1__OpStatus st) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&strata__v1__op_status__descriptor, (int)st);
  return v ? v->name : "?";
}

/* --- replay ------------------------------------------------------------------------------- */

int split_replay(rpc_client *c, uint64_t op, const split_opts *o, split_out *out, char *err,
                 size_t errlen) {
  split_req r = {0};
  sp p;
  sp_init(&p, c, &r, o, err, errlen);
  p.replay = 1;
  p.op = op;
  memset(out, 0, sizeof *out);
  out->op_id = op;
  Strata__V1__GetOpRequest gq = STRATA__V1__GET_OP_REQUEST__INIT;
  gq.op_id = op;
  Strata__V1__GetOpResponse *g = NULL;
  Strata__V1__ListLocksResponse **lm = NULL;
  size_t nlm = 0;
  int rc = rpc_ops_get(c, NULL, &gq, &g);
  if (rc) {
    rc = fail(&p, 1, "Ops.Get %" PRIu64 ": %s", op, strata_errmsg());
    goto out;
  }
  Strata__V1__Op *opr = g->op;
  if (strcmp(opr->kind, SPLIT_OP_KIND) != 0) {
    rc = fail(&p, 1, "refused: op %" PRIu64 " is a \"%s\" op, not a \"" SPLIT_OP_KIND "\"", op, opr->kind);
    goto out;
  }
  if (opr->n_scope == 0) {
    rc = fail(&p, 1, "refused: op %" PRIu64 " (%s) holds no lock scope: it never locked its "
              "chunks, or it was completed, replayed or released already; nothing to replay", op,
              status_str(opr->status));
    goto out;
  }
  /* every scope row must still be held indefinitely by this op */
  Strata__V1__ListLocksRequest lq = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  lq.op_id = op;
  lq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
  rpc_cstream *st = NULL;
  if ((rc = rpc_locks_list(c, NULL, &lq, &st))) {
    rc = fail(&p, 1, "Locks.List: %s", strata_errmsg());
    goto out;
  }
  Strata__V1__ListLocksResponse *m;
  while ((rc = rpc_locks_list_next(st, &m)) == 1) {
    Strata__V1__ListLocksResponse **nm = realloc(lm, (nlm + 1) * sizeof *nm);
    if (!nm) {
      rpc_free(m);
      rc = STRATA_ENOMEM;
      break;
    }
    lm = nm;
    lm[nlm++] = m;
  }
  rpc_cstream_close(st);
  if (rc) {
    rc = fail(&p, 1, "Locks.List: %s", strata_errmsg());
    goto out;
  }
  char missing[2048] = "";
  size_t nmiss = 0, mo = 0;
  for (size_t i = 0; i < opr->n_scope; i++) {
    int held = 0;
    for (size_t a = 0; a < nlm && !held; a++)
      for (size_t b = 0; b < lm[a]->n_locks && !held; b++)
        held = lm[a]->locks[b]->row.len == opr->scope[i].len &&
               !memcmp(lm[a]->locks[b]->row.data, opr->scope[i].data, opr->scope[i].len);
    if (!held) {
      char hex[128];
      rows_hex(&p, opr->scope[i].data, opr->scope[i].len, hex, sizeof hex);
      if (mo + strlen(hex) + 4 < sizeof missing)
        mo += (size_t)snprintf(missing + mo, sizeof missing - mo, "%s%s", nmiss ? ", " : "", hex);
      nmiss++;
    }
  }
  if (nmiss) {
    rc = fail(&p, 1, "refused: op %" PRIu64 " no longer holds %zu of its %zu scope rows "
              "indefinitely: %s", op, nmiss, opr->n_scope, missing);
    goto out;
  }
  logkv(&p, "step=verify scope_rows=%zu held=all status=%s", opr->n_scope,
        status_str(opr->status));
  if (split_req_parse((const char *)opr->payload.data, opr->payload.len, &r, err, errlen)) {
    rc = 1;
    goto out;
  }
  /* every chunk row the payload's split needs must be in the scope (an operator's
   * privileged release of a row also removes it from the scope) */
  if ((rc = load_info(&p)) || (rc = plan_chunks(&p))) {
    rc = 1;
    goto out;
  }
  nmiss = mo = 0;
  missing[0] = 0;
  for (size_t i = 1; i < p.nrows; i++) {
    int in = 0;
    for (size_t k = 0; k < opr->n_scope && !in; k++)
      in = opr->scope[k].len == LK_L2_KEY_LEN && !memcmp(opr->scope[k].data, p.rows[i], LK_L2_KEY_LEN);
    if (!in) {
      char hex[64];
      rows_hex(&p, p.rows[i], LK_L2_KEY_LEN, hex, sizeof hex);
      if (mo + strlen(hex) + 4 < sizeof missing)
        mo += (size_t)snprintf(missing + mo, sizeof missing - mo, "%s%s", nmiss ? ", " : "", hex);
      nmiss++;
    }
  }
  if (nmiss) {
    rc = fail(&p, 1, "refused: op %" PRIu64 " no longer holds %zu of the %zu chunk rows its split "
              "locks (released by an operator?): %s", op, nmiss, p.nrows - 1, missing);
    goto out;
  }
  /* the result record decides */
  char *rk = result_key(&p);
  int found;
  uint8_t *v;
  size_t len;
  if (!rk) {
    rc = fail(&p, 1, "out of memory");
    goto out;
  }
  rc = kv_get(&p, rk, 0, &found, &v, &len);
  free(rk);
  if (rc) goto out;
  if (found) {
    out->found = "result";
    out->result = malloc(len + 1);
    if (out->result) {
      memcpy(out->result, v, len);
      out->result[len] = 0;
    }
    free(v);
    logkv(&p, "step=result found=1 action=mark_success_and_release");
    if (opr->status != STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS &&
        (rc = set_status(&p, STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS, "op replay: commit had landed")))
      goto out;
    rc = release_all(&p);
    goto out;
  }
  out->found = "no_result";
  logkv(&p, "step=result found=0 action=rerun");
  /* the root lock again, for this op: the crashed worker's may still be live (then the
   * acquire changes nothing and keeps its expiry), so renew it to a full TTL at once */
  if ((rc = acquire(&p, 0, 1, 0, "root lock"))) {
    rc = 1;
    goto out;
  }
  if (renew_root(&p)) {
    rc = fail(&p, 1, "root lock: Locks.Renew: %s", strata_errmsg());
    goto out;
  }
  if (pthread_create(&p.th, NULL, renew_main, &p) == 0) p.th_on = 1;
  if ((rc = read_region(&p, 0))) goto out;
  if ((rc = compute(&p))) {
    rc = 1;
    goto out;
  }
  if ((rc = needed_ids(&p)) || (rc = take_ids(&p))) goto out;
  rc = finish(&p, out);
  if (rc) rc = 1;
out:
  if (rc) {
    /* leave the chunk locks: the op stays listed for another replay; free the root */
    renew_stop(&p);
    if (p.nrows) {
      Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
      ProtobufCBinaryData row = {8, p.rows[0]};
      q.op_id = op;
      q.rows = &row;
      q.n_rows = 1;
      Strata__V1__ReleaseResponse *rr = NULL;
      rpc_locks_release(c, NULL, &q, &rr);
      rpc_free(rr);
    }
  }
  for (size_t i = 0; i < nlm; i++) rpc_free(lm[i]);
  free(lm);
  rpc_free(g);
  sp_free(&p);
  split_req_free(&r);
  return rc ? 1 : 0;
}

void split_out_free(split_out *out) {
  free(out->result);
  out->result = NULL;
}
