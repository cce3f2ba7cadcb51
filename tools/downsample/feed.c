/*
 * strata-downsample's modes: --follow / --until follow Kv.Watch from the checkpoint
 * and do the blocks of each generation's mip-0 changes; --region recomputes a box of
 * blocks. ds_request_stop ends the Watch. Design: tools/downsample/README.md.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tools/common/kvc.h"
#include "tools/downsample/ds_int.h"

/* --- stopping --------------------------------------------------------------------- */

static atomic_int g_stop;
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static rpc_cstream *g_stream;

void ds_request_stop(void) {
  atomic_store(&g_stop, 1);
  pthread_mutex_lock(&g_mu);
  if (g_stream) rpc_cstream_cancel(g_stream);
  pthread_mutex_unlock(&g_mu);
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
    return ds__fail(p, 1,
                "Kv.Watch from the checkpoint generation %" PRIu64 " of worker \"%s\": %s. The changes "
                "after the checkpoint cannot be listed, so which blocks are stale is unknown: run "
                "`strata-downsample --prefix %s --name %s --region all` to recompute the whole "
                "pyramid (it also sets the checkpoint), then start the worker again",
                from, p->o->name, strata_errmsg(), p->o->prefix, p->o->name);
  return ds__fail(p, 1, "Kv.Watch: %s", strata_errmsg());
}

/* The keys a Watch message changed, gathered for one generation: the blocks of the
 * mip-0 chunks (under k0), and whether anything outside our own .downsample/ (own)
 * changed. */
typedef struct feed {
  char *k0, *own;
  size_t k0len, ownlen;
  int64_t (*bl)[3];
  size_t nb, cap;
  int other;
} feed;

static void feed_free(feed *f) {
  free(f->bl);
  free(f->k0);
  free(f->own);
}

/* Adds one Watch message's changes to f. 0, or 1 with err set. */
static int feed_add(ds *p, feed *f, const Strata__V1__WatchResponse *m) {
  for (size_t i = 0; i < m->n_changes; i++) {
    const ProtobufCBinaryData *k = &m->changes[i]->key;
    if (k->len >= f->ownlen && !memcmp(k->data, f->own, f->ownlen)) continue;
    f->other = 1;
    int64_t b[3];
    if (k->len > f->k0len && !memcmp(k->data, f->k0, f->k0len) && !key_block(p, k->data, k->len, f->k0len, b))
      if (add_block(&f->bl, &f->nb, &f->cap, b)) return ds__fail(p, 1, "out of memory");
  }
  return 0;
}

/* --until G: *done = 1 when there is nothing to follow (the checkpoint is at G, or
 * an error); otherwise commits the sync key after G, whose arrival on the Watch ends
 * it, and sets *stop_at to that commit's generation. 0, or 1/2 with err set. */
static int until_start(ds *p, uint64_t *stop_at, int *done) {
  int found, rc = 0;
  uint64_t latest = 0;
  char *sk = kvc_keyf("%s" DS_DIR "sync/%s", p->o->prefix, p->o->name);
  if (!sk || (rc = kvc_get(p->c, sk, 0, &found, NULL, NULL, &latest))) {
    rc = ds__fail(p, 1, "reading the latest generation: %s", sk ? strata_errmsg() : "out of memory");
  } else if (p->o->until > latest) {
    rc = ds__fail(p, 2, "--until %" PRIu64 ": newer than the latest generation %" PRIu64, p->o->until, latest);
  } else if (p->ckpt < p->o->until) {
    /* a commit after G under the watched prefix ends the Watch once it arrives */
    char v[32];
    snprintf(v, sizeof v, "%" PRIu64, p->o->until);
    putv pv = {sk, (uint8_t *)v, strlen(v)};
    rc = ds__commit(p, &pv, 1, 0, 0, 0, stop_at);
  }
  free(sk);
  *done = rc || p->ckpt >= p->o->until;
  if (*done && !rc) ds__logkv(p, "event=done checkpoint=%" PRIu64 " until=%" PRIu64, p->ckpt, p->o->until);
  return rc;
}

/* Opens the Watch of the prefix from generation from, where ds_request_stop can
 * cancel it. 0, or 1 with err set. */
static int watch_open(ds *p, uint64_t from, rpc_cstream **stp) {
  Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
  q.from_generation = from;
  q.prefix.data = (uint8_t *)p->o->prefix;
  q.prefix.len = strlen(p->o->prefix);
  rpc_callopts co = {.timeout_ms = -1};
  rpc_cstream *st = NULL;
  int rc = rpc_kv_watch(p->c, &co, &q, &st);
  if (rc) return watch_error(p, rc, from);
  pthread_mutex_lock(&g_mu);
  g_stream = st;
  pthread_mutex_unlock(&g_mu);
  if (atomic_load(&g_stop)) rpc_cstream_cancel(st);
  ds__logkv(p, "event=watch from=%" PRIu64 " prefix=%s", from, p->o->prefix);
  *stp = st;
  return 0;
}

static void watch_close(rpc_cstream *st) {
  pthread_mutex_lock(&g_mu);
  g_stream = NULL;
  pthread_mutex_unlock(&g_mu);
  rpc_cstream_close(st);
}

/* Reads the Watch until a stop, an error or (stop_at set) generation stop_at: each
 * generation's blocks are done at it, the last one carrying the checkpoint. */
static int watch_loop(ds *p, rpc_cstream *st, feed *f, uint64_t from, uint64_t stop_at) {
  int rc = 0;
  for (;;) {
    Strata__V1__WatchResponse *m = NULL;
    int r = rpc_kv_watch_next(st, &m);
    if (r != 1) {
      if (atomic_load(&g_stop)) {
        ds__logkv(p, "event=stopped checkpoint=%" PRIu64, p->ckpt);
        return 0;
      }
      return r == 0 ? ds__fail(p, 1, "Kv.Watch ended unexpectedly") : watch_error(p, r, from);
    }
    uint64_t g = m->version ? m->version->generation : 0;
    rc = feed_add(p, f, m);
    int more = m->more;
    rpc_free(m);
    if (rc) return rc;
    if (more) continue;
    if (f->nb) ds__logkv(p, "event=generation gen=%" PRIu64 " blocks=%zu", g, f->nb);
    if (f->nb || (f->other && p->ckpt < g)) rc = ds__do_blocks(p, f->bl, f->nb, g, 0, 1, g);
    f->nb = 0;
    f->other = 0;
    from = g;
    if (rc) return rc;
    if (stop_at && g >= stop_at) {
      if (p->ckpt < g) rc = ds__do_blocks(p, NULL, 0, g, 0, 1, g);
      ds__logkv(p, "event=done checkpoint=%" PRIu64 " until=%" PRIu64, p->ckpt, p->o->until);
      return rc;
    }
  }
}

/* --follow / --until: one generation at a time from the checkpoint. */
int ds__follow(ds *p) {
  const char *pre = p->o->prefix;
  feed f = {.k0 = kvc_keyf("%s%s/", pre, p->l.in.s[0].key), .own = kvc_keyf("%s" DS_DIR, pre)};
  if (!f.k0 || !f.own) {
    feed_free(&f);
    return ds__fail(p, 1, "out of memory");
  }
  f.k0len = strlen(f.k0);
  f.ownlen = strlen(f.own);
  int rc = 0, done = 0;
  uint64_t stop_at = 0; /* --until: the sync key's generation */
  rpc_cstream *st = NULL;
  if (p->o->until) rc = until_start(p, &stop_at, &done);
  if (!done) rc = watch_open(p, p->ckpt, &st);
  if (st) {
    rc = watch_loop(p, st, &f, p->ckpt, stop_at);
    watch_close(st);
  }
  feed_free(&f);
  return rc;
}

/* --region: recomputes every block overlapping the box from mip 0 at the latest
 * generation, whatever the stamps say (except a stamp newer than that). */
int ds__region(ds *p) {
  int found, rc;
  uint64_t g = 0;
  char *ck = ds__ckpt_key(p);
  if (!ck) return ds__fail(p, 1, "out of memory");
  rc = kvc_get(p->c, ck, 0, &found, NULL, NULL, &g);
  free(ck);
  if (rc) return ds__fail(p, 1, "reading the latest generation: %s", strata_errmsg());
  const pc_scale *s = &p->l.in.s[0];
  int64_t blo[3], bhi[3];
  const int all = p->o->region_all;
  for (int d = 0; d < 3; d++) {
    int64_t lo = all ? 0 : p->o->rlo[d] - s->offset[d], hi = all ? s->size[d] : p->o->rhi[d] - s->offset[d];
    if (lo < 0) lo = 0;
    if (hi > s->size[d]) hi = s->size[d];
    if (lo >= hi) return ds__fail(p, 2, "--region: the box does not overlap the volume along axis %d", d);
    blo[d] = lo / p->l.bvox[d];
    bhi[d] = (hi + p->l.bvox[d] - 1) / p->l.bvox[d];
  }
  int whole = 1;
  for (int d = 0; d < 3; d++) whole = whole && blo[d] == 0 && bhi[d] == p->l.bgrid[d];
  size_t n = (size_t)((bhi[0] - blo[0]) * (bhi[1] - blo[1]) * (bhi[2] - blo[2]));
  int64_t(*bl)[3] = calloc(n, sizeof *bl);
  if (!bl) return ds__fail(p, 1, "out of memory");
  size_t i = 0;
  for (int64_t z = blo[2]; z < bhi[2]; z++)
    for (int64_t y = blo[1]; y < bhi[1]; y++)
      for (int64_t x = blo[0]; x < bhi[0]; x++) {
        bl[i][0] = x;
        bl[i][1] = y;
        bl[i][2] = z;
        i++;
      }
  ds__logkv(p, "event=region gen=%" PRIu64 " blocks=%zu whole=%d", g, n, whole);
  /* over the whole volume, every change up to g is in: the checkpoint moves to g */
  rc = ds__do_blocks(p, bl, n, g, 1, whole, g);
  free(bl);
  return rc;
}

