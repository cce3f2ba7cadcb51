/*
 * strata-downsample's block pipeline: the batched reads of a block's chunks, the
 * read-ahead of the next block's mip 0, the stored coarser chunks read while the
 * pyramid is computed, and the commit of each block behind the next one. Design:
 * tools/downsample/README.md.
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tools/common/kvc.h"
#include "tools/downsample/ds_int.h"

/* --- one block ----------------------------------------------------------------------------- */

/* Reads many keys at generation gen (0 = latest) with Kv.BatchGet, in batches of at
 * most DS_BATCH_BYTES of expected value bytes; fn(p, ctx, i, found, data, len) per
 * key, in order, with data in place in the received message (rpc_kv_batch_get_each:
 * valid during the call only, any alignment). Returns 0, fn's non-zero result, or 1
 * with err set. */
#define DS_BATCH_BYTES ((size_t)32 << 20)
typedef struct read_call {
  ds *p;
  ds_read_fn fn;
  void *ctx;
  size_t base; /* the batch's first key */
  int rc;      /* fn's result */
} read_call;

static int read_one(void *arg, size_t i, int found, const uint8_t *v, size_t len) {
  read_call *rcall = arg;
  rcall->rc = rcall->fn(rcall->p, rcall->ctx, rcall->base + i, found, v, len);
  return rcall->rc ? -1 : 0;
}

static int batch_read(ds *p, char **keys, const size_t *sizes, size_t n, uint64_t gen, ds_read_fn fn,
                      void *ctx) {
  ProtobufCBinaryData *kb = calloc(n ? n : 1, sizeof *kb);
  if (!kb) return ds__fail(p, 1, "out of memory");
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
    else if (crc) rc = ds__fail(p, 1, "Kv.BatchGet of %s and %zu more: %s", keys[i], j - i - 1, strata_errmsg());
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
  ds__block_chunks(&p->l, i, b, clo, chi);
  size_t n = (size_t)((chi[0] - clo[0]) * (chi[1] - clo[1]) * (chi[2] - clo[2]));
  memset(cs, 0, sizeof *cs);
  cs->scale = i;
  cs->b = b;
  cs->keys = calloc(n, sizeof *cs->keys);
  cs->sizes = calloc(n, sizeof *cs->sizes);
  cs->c = calloc(n, sizeof *cs->c);
  if (!cs->keys || !cs->sizes || !cs->c) {
    chunk_set_free(cs);
    return ds__fail(p, 1, "out of memory");
  }
  for (c[2] = clo[2]; c[2] < chi[2]; c[2]++)
    for (c[1] = clo[1]; c[1] < chi[1]; c[1]++)
      for (c[0] = clo[0]; c[0] < chi[0]; c[0]++) {
        size_t k = cs->n++;
        memcpy(cs->c[k], c, sizeof c);
        cs->sizes[k] = pc_chunk_bytes(&p->l.in.s[i], c);
        if (!(cs->keys[k] = ds__chunk_key(p, i, c))) {
          chunk_set_free(cs);
          return ds__fail(p, 1, "out of memory");
        }
      }
  return 0;
}

/* mip 0 into the block's region; an absent chunk makes the block incomplete (2). */
static int take_mip0(ds *p, void *ctx, size_t i, int found, const uint8_t *v, size_t len) {
  chunk_set *cs = ctx;
  if (!found) return 2;
  if (len != cs->sizes[i])
    return ds__fail(p, 1, "%s: %zu bytes, its box holds %zu", cs->keys[i], len, cs->sizes[i]);
  ds_chunk_to_region(&p->l, 0, cs->b, p->reg[0], cs->c[i], v); /* any alignment */
  return 0;
}

/* Reads block b's mip-0 chunks pinned at g into p->reg[0], from the OCDBT files when
 * --store gives them and g is published, else through the server: 0, 2 when a chunk
 * is absent at g (the block is incomplete), or 1 with p->err set. */
static int read_mip0(ds *p, const int64_t b[3], uint64_t g) {
  chunk_set cs;
  int rc = chunk_set_of(p, 0, b, &cs);
  if (rc) return rc;
  rc = ds__local_read(p, cs.keys, cs.sizes, cs.n, g, take_mip0, &cs);
  if (rc == -1) rc = batch_read(p, cs.keys, cs.sizes, cs.n, g, take_mip0, &cs);
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
  v->local = p->local;
}

static int stamp_skips(ds *p, const char *sk, uint64_t g, int force, int *skip, uint64_t *stamp);

/* The next block, taken ahead by a thread while this one is computed and committed:
 * its lock (ds__lock_ahead, without waiting), then under it its stamp, then, unless
 * the stamp skips it, its mip 0 into the spare region. Started once this block's own
 * mip 0 is in, so the two reads never share the connection. A lock another worker
 * holds stops it there: the main thread then locks the block as it would have. */
typedef struct prefetch {
  pthread_t th;
  int on;
  int64_t b[3];
  uint64_t g;
  int force;
  ds *owner;      /* the worker whose ahead_row the lock goes to (held: its ahead_holding) */
  int have_stamp; /* the stamp was read: skip, stamp as stamp_skips's */
  int skip;
  uint64_t stamp;
  int rc; /* read_mip0's result; -1 when mip 0 was not read */
  char err[1024];
  ds view;
} prefetch;

static void *prefetch_main(void *arg) {
  prefetch *pf = arg;
  pf->rc = -1;
  pf->have_stamp = 0;
  if (ds__lock_ahead(pf->owner, &pf->view, pf->b)) return NULL;
  char *sk = ds__stamp_key(&pf->view, pf->b);
  pf->have_stamp = sk && !stamp_skips(&pf->view, sk, pf->g, pf->force, &pf->skip, &pf->stamp);
  free(sk);
  if (pf->have_stamp && !pf->skip) pf->rc = read_mip0(&pf->view, pf->b, pf->g);
  return NULL;
}

static void prefetch_start(ds *p, prefetch *pf, const int64_t b[3], uint64_t g, int force) {
  view_of(&pf->view, p, pf->err, sizeof pf->err, p->spare);
  pf->view.op = p->op;
  pf->owner = p;
  memcpy(pf->b, b, sizeof pf->b);
  pf->g = g;
  pf->force = force;
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
  if (found && !(sv->v = malloc(len ? len : 1))) return ds__fail(p, 1, "out of memory");
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
      rc = ds__fail(p, 1, "out of memory");
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
  if (pthread_create(&st->th, NULL, stored_main, st)) return ds__fail(p, 1, "cannot start a thread");
  st->on = 1;
  return 0;
}

/* Waits for the read; its result (0, or 1 with p's err set). */
static int stored_join(ds *p, stored *st) {
  if (!st->on) return 0;
  pthread_join(st->th, NULL);
  st->on = 0;
  return st->rc ? ds__fail(p, 1, "%s", st->err) : 0;
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
      return ds__fail(p, 1, "out of memory");
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
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int answered; /* under mu: the commit's answer is in (the row's release may follow) */
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
  int64_t t = ds__now_ms();
  ds__crash_point("commit_before");
  j->rc = ds__commit(q, j->pv, j->n + 1, 1, j->with_ckpt, j->ckpt_new, &at);
  if (j->rc) return;
  ds__crash_point("commit_after");
  j->committed = 1;
  ds__logkv(q, "event=block gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64
        " chunks=%zu commit=%" PRIu64 "%s read_ms=%" PRId64 " compute_ms=%" PRId64 " compare_ms=%" PRId64
        " commit_ms=%" PRId64,
        j->g, j->b[0], j->b[1], j->b[2], j->n, at, j->with_ckpt ? " checkpoint=1" : "", j->read_ms,
        j->compute_ms, j->compare_ms, ds__now_ms() - t);
}

static void *job_main(void *arg) {
  commit_job *j = arg;
  job_run(&j->view, j);
  pthread_mutex_lock(&j->mu);
  j->answered = 1;
  pthread_cond_signal(&j->cv);
  pthread_mutex_unlock(&j->mu);
  ds__release_row(&j->view, j->view.row);
  return NULL;
}

static void job_free(commit_job *j) {
  if (!j) return;
  pthread_mutex_destroy(&j->mu);
  pthread_cond_destroy(&j->cv);
  for (size_t i = 0; i <= j->n; i++) {
    free(j->pv[i].key);
    if (i < j->n) free(j->pv[i].val);
  }
  free(j->pv);
  free(j);
}

/* Counts a finished job's block and chunks into p when it committed. */
static void job_count(ds *p, const commit_job *j) {
  if (!j->committed) return;
  p->blocks_done++;
  p->chunks_written += j->n;
}

/* The block commit behind the main thread, and the one before it whose thread may
 * still be releasing its row (the next commit need not wait for that release). */
typedef struct job_slots {
  commit_job *commit;
  commit_job *release;
} job_slots;

/* Ends the job releasing its row (if any). */
static void job_reap(job_slots *js) {
  if (!js->release) return;
  pthread_join(js->release->th, NULL);
  job_free(js->release);
  js->release = NULL;
}

/* Waits for the commit in js (if any) to be answered; its thread goes on releasing
 * the row (reaped at the next join, or by job_reap). 0, or 1 with p's err set when
 * the commit failed. */
static int job_join(ds *p, job_slots *js) {
  job_reap(js);
  commit_job *j = js->commit;
  if (!j) return 0;
  pthread_mutex_lock(&j->mu);
  while (!j->answered) pthread_cond_wait(&j->cv, &j->mu);
  pthread_mutex_unlock(&j->mu);
  js->commit = NULL;
  js->release = j;
  job_count(p, j);
  return j->rc ? ds__fail(p, 1, "%s", j->err) : 0;
}

/* The next block to take ahead (b NULL: none). */
typedef struct next_read {
  prefetch *pf;
  const int64_t *b;
  int force;
} next_read;

static void read_ahead(ds *p, const next_read *nx, uint64_t g) {
  if (nx->b && p->spare) prefetch_start(p, nx->pf, nx->b, g, nx->force);
}

/* Reads block b's stamp sk: *skip = 1 when the block is already done at g (a stamp
 * above g, or equal to it unless force). 0, or 1 with err set. */
static int stamp_skips(ds *p, const char *sk, uint64_t g, int force, int *skip, uint64_t *stamp) {
  int found;
  uint8_t *v = NULL;
  size_t len = 0;
  *skip = 0;
  if (kvc_get(p->c, sk, 0, &found, &v, &len, NULL))
    return ds__fail(p, 1, "reading %s: %s", sk, strata_errmsg());
  *stamp = found ? ds__gen_value(v, len) : 0;
  free(v);
  *skip = found && (*stamp > g || (!force && *stamp == g));
  return 0;
}

static void putv_free(putv *pv, size_t n) {
  for (size_t i = 0; pv && i < n; i++) {
    free(pv[i].key);
    free(pv[i].val);
  }
  free(pv);
}

/* Computes block b's pyramid from p->reg[0] while a thread reads its stored coarser
 * chunks (st: started already when on, else started here; joined and emptied here),
 * then makes the chunks that differ puts: *pvp (*np of them, and room for one more:
 * the stamp), returned even on failure (the caller frees them). t[0], t[1]: when the
 * compute and the comparison ended. 0, or 1 with err set. */
static int compute_changes(ds *p, const int64_t b[3], stored *st, putv **pvp, size_t *np, int64_t t[2]) {
  const ds_layout *l = &p->l;
  int rc = 0;
  /* the stored coarser chunks are read while the pyramid is computed */
  if (!st->on) rc = stored_start(p, st, b);
  if (!rc) ds_block_pyramid(l, b, p->reg);
  t[0] = ds__now_ms();
  int jr = stored_join(p, st);
  if (!rc) rc = jr;
  /* the coarser chunks that differ from the stored ones */
  size_t total = 0;
  for (int i = 1; i < l->in.nscales; i++) total += st->cs[i].n;
  size_t n = 0;
  putv *pv = NULL;
  if (!rc && !(pv = calloc(total + 1, sizeof(putv)))) rc = ds__fail(p, 1, "out of memory");
  for (int i = 1; i < l->in.nscales && !rc; i++) rc = diff_scale(p, st, i, pv, &n);
  stored_free(st);
  t[1] = ds__now_ms();
  *pvp = pv;
  *np = n;
  return rc;
}

/* Commits job j (the previous block's commit already answered): in line, holding the
 * row, when it carries the checkpoint (do_blocks releases the row); otherwise behind
 * the next block, in a thread left in js->commit. *committed as do_block's. */
static int job_hand_off(ds *p, commit_job *j, int *committed, job_slots *js) {
  int rc;
  if (j->with_ckpt) {
    job_run(p, j);
    rc = j->rc;
    *committed = j->committed;
    job_count(p, j);
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
    ds__release_row(&j->view, j->view.row);
    rc = j->rc;
    job_count(p, j);
    if (rc) ds__fail(p, 1, "%s", j->err);
    job_free(j);
    return rc;
  }
  js->commit = j;
  *committed = 1;
  return 0;
}

/* Downsamples block b from mip 0 at generation g, holding its lock: skipped when
 * its stamp is already >= g (another worker, or an earlier run, did it at g or
 * later), unless force (then only a stamp above g skips). Commits the changed
 * coarser chunks and the stamp, plus the checkpoint when with_ckpt. *committed =
 * 1 when it committed (or handed the commit to js, whose job then holds the row).
 * pre: what the thread that took b ahead found (its stamp, and its mip 0 when
 * pre->rc >= 0, already in p->reg[0]), NULL = nothing; once b's mip 0 is in (or b
 * is skipped), nx is taken ahead. */
static int do_block(ds *p, const int64_t b[3], uint64_t g, int force, int with_ckpt,
                    uint64_t ckpt_new, int *committed, const prefetch *pre, const next_read *nx,
                    job_slots *js) {
  *committed = 0;
  char *sk = ds__stamp_key(p, b);
  if (!sk) return ds__fail(p, 1, "out of memory");
  /* 1. the stamp (read under the lock, here or ahead): a block done at g (or later)
   * already is skipped */
  int skip = 0, rc = 0;
  uint64_t stamp = 0;
  if (pre && pre->have_stamp) {
    skip = pre->skip;
    stamp = pre->stamp;
  } else {
    rc = stamp_skips(p, sk, g, force, &skip, &stamp);
  }
  if (rc || skip) {
    if (skip) {
      p->blocks_skipped++;
      ds__logkv(p, "event=skip gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64 " stamp=%" PRIu64, g,
                b[0], b[1], b[2], stamp);
      read_ahead(p, nx, g);
    }
    free(sk);
    return rc;
  }
  /* 2. mip 0 at g (read ahead already, or now: then the stored coarser chunks are
   * read meanwhile, by the thread that otherwise reads them during the compute); then
   * the next block's read-ahead */
  stored *st = calloc(1, sizeof *st); /* large (it holds a view of the state) */
  if (!st) {
    free(sk);
    return ds__fail(p, 1, "out of memory");
  }
  int64_t t0 = ds__now_ms();
  if (pre && pre->rc >= 0) {
    rc = pre->rc;
  } else {
    rc = stored_start(p, st, b);
    if (!rc) rc = read_mip0(p, b, g);
  }
  int64_t t1 = ds__now_ms();
  read_ahead(p, nx, g);
  if (rc) { /* the block is not computed: the early read is not needed (nor its error) */
    if (st->on) pthread_join(st->th, NULL);
    stored_free(st);
    free(st);
  }
  if (rc == 2) {
    /* the block is not complete at g (a populate still loading it, or a chunk
     * deleted): nothing to compute from; the change that completes it is in the
     * feed and brings the block back */
    p->blocks_skipped++;
    ds__logkv(p, "event=incomplete gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64, g, b[0], b[1],
              b[2]);
    free(sk);
    return 0;
  }
  if (rc) {
    free(sk);
    return rc;
  }
  ds__crash_point("read");
  /* 3. the pyramid, and the coarser chunks that changed */
  putv *pv = NULL;
  size_t n = 0;
  int64_t t[2];
  rc = compute_changes(p, b, st, &pv, &n, t);
  free(st);
  ds__crash_point("computed");
  if (!rc && atomic_load(&p->lost)) rc = ds__fail(p, 1, "the block lock's renewal failed: not committing");
  commit_job *j = rc ? NULL : calloc(1, sizeof *j);
  if (!j) {
    putv_free(pv, n);
    free(sk);
    return rc ? rc : ds__fail(p, 1, "out of memory");
  }
  /* 4. the job: the changes, then the stamp (pv[n], its key freed with the job) */
  pthread_mutex_init(&j->mu, NULL);
  pthread_cond_init(&j->cv, NULL);
  memcpy(j->b, b, sizeof j->b);
  j->g = g;
  j->with_ckpt = with_ckpt;
  j->ckpt_new = ckpt_new;
  j->pv = pv;
  j->n = n;
  snprintf(j->sval, sizeof j->sval, "%" PRIu64, g);
  pv[n].key = sk;
  pv[n].val = (uint8_t *)j->sval;
  pv[n].len = strlen(j->sval);
  j->read_ms = t1 - t0;
  j->compute_ms = t[0] - t1;
  j->compare_ms = t[1] - t[0];
  /* 5. the previous block's commit first: its error stops the worker, and a checkpoint
   * never lands before a block of its generation */
  if ((rc = job_join(p, js))) {
    job_free(j);
    return rc;
  }
  /* 6. this block's commit */
  return job_hand_off(p, j, committed, js);
}

/* Does blocks bl[0..n) at generation g: a first pass takes each block whose lock is
 * free at once; the blocks another worker held are then waited for (up to wait_ms)
 * and, once held, usually skipped by their stamp. The last commit carries the
 * checkpoint ckpt_new (or a checkpoint-only commit follows) when set_ckpt. */
int ds__do_blocks(ds *p, int64_t (*bl)[3], size_t n, uint64_t g, int force, int set_ckpt,
                     uint64_t ckpt_new) {
  char *deferred = calloc(n ? n : 1, 1);
  if (!deferred) return ds__fail(p, 1, "out of memory");
  size_t left = n;
  int rc = 0, ck_done = !set_ckpt;
  job_slots jobs = {NULL, NULL};
  prefetch *pf_mem = calloc(1, sizeof *pf_mem); /* large (it holds a copy of the state) */
  if (!pf_mem) {
    free(deferred);
    return ds__fail(p, 1, "out of memory");
  }
#define pf (*pf_mem)
  for (int pass = 0; pass < 2 && !rc; pass++)
    for (size_t i = 0; i < n && !rc; i++) {
      if (pass == 1 && !deferred[i]) continue;
      /* the block taken ahead (its lock, stamp and mip 0), or locked now */
      const prefetch *pre = NULL;
      if (prefetch_join(&pf, bl[i], g) && ds__adopt_ahead(p)) {
        pre = &pf;
        if (pf.rc >= 0) {
          uint64_t *t = p->reg[0]; /* the prefetched region becomes the block's */
          p->reg[0] = p->spare;
          p->spare = t;
        }
        if (pf.rc == 1) ds__fail(p, 1, "%s", pf.err);
      }
      ds__unlock_ahead(p); /* a row taken ahead for another block (none normally) */
      int l = pre ? 0 : ds__lock_block(p, bl[i], pass ? p->o->wait_ms : 0);
      if (l < 0) {
        rc = 1;
        break;
      }
      if (l == 1) {
        deferred[i] = 1;
        ds__logkv(p, "event=held gen=%" PRIu64 " block=%" PRId64 "_%" PRId64 "_%" PRId64, g, bl[i][0],
              bl[i][1], bl[i][2]);
        continue;
      }
      deferred[i] = 0;
      left--;
      next_read nx = {pf_mem, NULL, force};
      for (size_t j = i + 1; j < n; j++) /* the next candidate of this pass */
        if (pass == 0 || deferred[j]) {
          nx.b = bl[j];
          break;
        }
      int committed = 0;
      rc = do_block(p, bl[i], g, force, left == 0 && set_ckpt, ckpt_new, &committed, pre, &nx, &jobs);
      if (!rc && left == 0 && committed) ck_done = 1;
      ds__unlock_block(p);
    }
  if (pf.on) pthread_join(pf.th, NULL);
  ds__unlock_ahead(p); /* taken ahead for a block the loop never reached (it stopped) */
  int jr = job_join(p, &jobs); /* before any checkpoint, and before returning */
  job_reap(&jobs);
  if (!rc) rc = jr;
  free(pf_mem);
  free(deferred);
  if (!rc && !ck_done && p->ckpt != ckpt_new) {
    uint64_t at;
    rc = ds__commit(p, NULL, 0, 0, 1, ckpt_new, &at);
    if (!rc) ds__logkv(p, "event=checkpoint gen=%" PRIu64 " commit=%" PRIu64, ckpt_new, at);
  }
  return rc;
#undef pf
}

