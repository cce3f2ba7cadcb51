/*
 * New ids (allocated, recorded before use) and the one fenced commit.
 * tools/split/README.md has the design.
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

/* The (chunk, side) pairs that need an id, in chunk order then source, sink. */
int sp__needed_ids(sp *p) {
  size_t nch = p->nrows - 1;
  p->ids = calloc(2 * nch, sizeof *p->ids);
  if (!p->ids) return sp__fail(p, 1, "out of memory");
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
                                       "side", sp__side_name[p->ids[i].side], "id",
                                       (json_int_t)p->ids[i].id));
  return a;
}

/* A fenced commit of puts (key, value, len) with "absent" conditions on cond_keys. */
int sp__commit(sp *p, size_t nputs, char **keys, uint8_t **vals, size_t *lens, size_t nconds,
                  char **cond_keys, uint64_t *gen) {
  Strata__V1__Put *pv = calloc(nputs, sizeof *pv);
  Strata__V1__Put **pp = calloc(nputs, sizeof *pp);
  Strata__V1__Condition *cv = calloc(nconds ? nconds : 1, sizeof *cv);
  Strata__V1__Condition **cp = calloc(nconds ? nconds : 1, sizeof *cp);
  ProtobufCBinaryData *rows = calloc(p->nrows, sizeof *rows);
  int rc = 0;
  if (!pv || !pp || !cv || !cp || !rows) {
    rc = sp__fail(p, 1, "out of memory");
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
  sp__fill_rows(p, rows, 0);
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
    rc = sp__fail(p, rc == STRATA_EFENCED || rc == STRATA_ECONDITION ? 3 : 1, "Kv.Commit: %s",
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

/* The ids recorded on the op (JSON v, len bytes, freed here) into p->ids; they
 * must name this split's (chunk, side) pairs in order. */
static int ids_recorded(sp *p, const char *k, uint8_t *v, size_t len) {
  json_error_t je;
  json_t *j = json_loadb((const char *)v, len, 0, &je), *a = json_object_get(j, "ids");
  int rc = 0;
  free(v);
  if (!json_is_array(a) || json_array_size(a) != p->nids) {
    rc = sp__fail(p, 1, "the ids recorded on op %" PRIu64 " (%s) do not match this split's %zu "
                  "(chunk, side) pairs", p->op, k, p->nids);
    json_decref(j);
    return rc;
  }
  for (size_t i = 0; i < p->nids; i++) {
    json_t *e = json_array_get(a, i), *c = json_object_get(e, "chunk");
    int ok = !strcmp(json_string_value(json_object_get(e, "side")) ?: "", sp__side_name[p->ids[i].side]);
    for (int d = 0; d < 3; d++)
      ok &= json_integer_value(json_array_get(c, (size_t)d)) == p->ids[i].c[d];
    if (!ok) {
      rc = sp__fail(p, 1, "the ids recorded on op %" PRIu64 " name another (chunk, side) at %zu",
                    p->op, i);
      break;
    }
    p->ids[i].id = (uint64_t)json_integer_value(json_object_get(e, "id"));
  }
  json_decref(j);
  if (!rc) sp__logkv(p, "step=ids source=recorded count=%zu", p->nids);
  return rc;
}

/* New ids for p->ids from each chunk's id counter, one Ops.AllocateIds per chunk,
 * in the upper half of the chunk's segment range. */
static int ids_allocate(sp *p) {
  int segbits = pc_segment_bits(p->r->chunk_bits), rc;
  uint64_t base = (uint64_t)1 << (segbits - 1);
  for (size_t i = 0; i < p->nids;) {
    size_t m = 1;
    while (i + m < p->nids && !memcmp(p->ids[i + m].c, p->ids[i].c, sizeof p->ids[i].c)) m++;
    char *cn = kvc_keyf("%s.split/counter/%" PRId64 "_%" PRId64 "_%" PRId64, p->r->prefix,
                        p->ids[i].c[0], p->ids[i].c[1], p->ids[i].c[2]);
    if (!cn) return sp__fail(p, 1, "out of memory");
    Strata__V1__AllocateIdsRequest q = STRATA__V1__ALLOCATE_IDS_REQUEST__INIT;
    q.counter = cn;
    q.count = m;
    Strata__V1__AllocateIdsResponse *r = NULL;
    rc = rpc_ops_allocate_ids(p->c, NULL, &q, &r);
    free(cn);
    if (rc) return sp__fail(p, 1, "Ops.AllocateIds: %s", strata_errmsg());
    if (r->first + m >= base) {
      rpc_free(r);
      return sp__fail(p, 1, "the id counter of chunk %" PRId64 ",%" PRId64 ",%" PRId64 " is exhausted",
                      p->ids[i].c[0], p->ids[i].c[1], p->ids[i].c[2]);
    }
    for (size_t k2 = 0; k2 < m; k2++)
      p->ids[i + k2].id = pc_node_id(1, p->ids[i].c, p->r->chunk_bits, base + r->first + k2);
    rpc_free(r);
    i += m;
  }
  return 0;
}

/* The ids: the record on the op when there is one (a replay, or a worker that had
 * recorded them), else allocated per chunk from the id counters and recorded
 * (fenced, "absent") before any label uses them. */
int sp__take_ids(sp *p) {
  char *k = sp__ids_key(p);
  int found, rc;
  uint8_t *v;
  size_t len;
  if (!k) return sp__fail(p, 1, "out of memory");
  if ((rc = sp__kv_get(p, k, 0, &found, &v, &len))) goto out;
  if (found) {
    rc = ids_recorded(p, k, v, len);
    goto out;
  }
  if ((rc = ids_allocate(p))) goto out;
  if (p->o->anchor_multi_commit) goto out;
  json_t *j = json_pack("{s:I, s:o}", "op", (json_int_t)p->op, "ids", ids_json(p));
  char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  if (!body) {
    rc = sp__fail(p, 1, "out of memory");
    goto out;
  }
  uint8_t *bv = (uint8_t *)body;
  size_t bl = strlen(body);
  uint64_t gen;
  rc = sp__commit(p, 1, &k, &bv, &bl, 1, &k, &gen);
  free(body);
  if (!rc) sp__logkv(p, "step=ids source=allocated count=%zu generation=%" PRIu64, p->nids, gen);
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

/* The finishing commit's writes: the changed chunks, then the lineage and the
 * result; and the JSON those two are made of. */
typedef struct writes {
  size_t np; /* entries used in keys/vals/lens (room for the chunks + 2) */
  char **keys;
  uint8_t **vals;
  size_t *lens;
  json_t *lin, *written, *newids[3]; /* lineage entries, chunk names, new ids per side */
} writes;

/* Chunk c relabelled (the supervoxel's voxels to the chunk's new id of their
 * side) and added to the writes with its lineage entry; unchanged chunks (no
 * voxel of the supervoxel) are skipped. */
static int add_chunk(sp *p, writes *w, const int64_t c[3]) {
  uint64_t ids[3] = {0, new_id(p, c, SRC), new_id(p, c, SINK)};
  if (!ids[1] && !ids[2]) return 0;
  int64_t lo[3], hi[3];
  pc_chunk_box(p->s, c, lo, hi);
  for (int64_t z = lo[2]; z < hi[2]; z++)
    for (int64_t y = lo[1]; y < hi[1]; y++)
      for (int64_t x = lo[0]; x < hi[0]; x++) {
        size_t i = vidx(p, x - p->rlo[0], y - p->rlo[1], z - p->rlo[2]);
        if (p->side[i]) p->lab[i] = ids[p->side[i]];
      }
  size_t np = w->np, len = (size_t)pc_chunk_bytes(p->s, c);
  w->vals[np] = malloc(len);
  w->keys[np] = sp__chunk_key(p, c);
  if (!w->vals[np] || !w->keys[np]) return sp__fail(p, 1, "out of memory");
  sp__chunk_copy(p, c, (uint64_t *)w->vals[np], 0);
  w->lens[np] = len;
  char name[PC_MAX_NAME];
  pc_chunk_name(p->s, c, name, sizeof name);
  json_array_append_new(w->written, json_string(name));
  json_t *e = json_pack("{s:s, s:[I,I,I]}", "chunk", name, "grid", (json_int_t)c[0],
                        (json_int_t)c[1], (json_int_t)c[2]);
  for (int s = SRC; s <= SINK; s++) {
    json_object_set_new(e, sp__side_name[s], ids[s] ? json_integer((json_int_t)ids[s]) : json_null());
    if (ids[s]) json_array_append_new(w->newids[s], json_integer((json_int_t)ids[s]));
  }
  json_array_append_new(w->lin, e);
  w->np++;
  return 0;
}

/* The lineage and the result (*rj, caller's reference; *rk its key) as the last
 * two writes. */
static int add_records(sp *p, writes *w, json_t **rj, char **rk) {
  size_t np = w->np;
  json_t *lj = json_pack("{s:I, s:I, s:O}", "op", (json_int_t)p->op, "old", (json_int_t)p->r->sv,
                         "chunks", w->lin);
  *rj = json_pack("{s:I, s:I, s:I, s:{s:O, s:O}, s:{s:I, s:I}, s:O, s:s}", "op",
                  (json_int_t)p->op, "sv", (json_int_t)p->r->sv, "base_generation",
                  (json_int_t)p->base_gen, "new_ids", "source", w->newids[1], "sink",
                  w->newids[2], "voxels", "source", (json_int_t)p->count[1], "sink",
                  (json_int_t)p->count[2], "chunks_written", w->written, "scale", p->s->key);
  w->keys[np] = sp__lineage_key(p);
  w->vals[np] = (uint8_t *)(lj ? json_dumps(lj, JSON_COMPACT) : NULL);
  *rk = sp__result_key(p);
  w->keys[np + 1] = *rk ? strdup(*rk) : NULL;
  w->vals[np + 1] = (uint8_t *)(*rj ? json_dumps(*rj, JSON_COMPACT) : NULL);
  json_decref(lj);
  if (!w->keys[np] || !w->vals[np] || !w->keys[np + 1] || !w->vals[np + 1])
    return sp__fail(p, 1, "out of memory");
  w->lens[np] = strlen((char *)w->vals[np]);
  w->lens[np + 1] = strlen((char *)w->vals[np + 1]);
  w->np += 2;
  return 0;
}

/* anchor_multi_commit: one unfenced commit per chunk, then the two records. */
static int commit_multi(sp *p, writes *w, const json_t *rj, split_out *out) {
  size_t np = w->np;
  double ta = sp__now_ms();
  uint64_t g = 0;
  int rc = 0;
  for (size_t i = 0; i + 2 < np && !rc; i++)
    rc = sp__commit(p, 1, w->keys + i, w->vals + i, w->lens + i, 0, NULL, &g);
  if (!rc) rc = sp__commit(p, 2, w->keys + np - 2, w->vals + np - 2, w->lens + np - 2, 0, NULL, &g);
  p->t_commit = sp__now_ms() - ta;
  out->generation = g;
  out->result = rj ? json_dumps(rj, JSON_COMPACT) : NULL;
  sp__logkv(p, "step=commit mode=multi_commit commits=%zu ms=%.1f", np - 1, p->t_commit);
  return rc;
}

/* WRITE_STARTED, the ONE fenced commit ("absent" on the result key rk), the
 * result with its generation, SUCCESS, release. */
static int commit_fenced(sp *p, writes *w, char *rk, json_t *rj, split_out *out) {
  int rc;
  if ((rc = sp__set_status(p, STRATA__V1__OP_STATUS__OP_STATUS_WRITE_STARTED, "split: committing")))
    return rc;
  if (atomic_load(&p->lost))
    return sp__fail(p, 3, "the root lock could not be renewed: not committing");
  sp__die_at(p, "commit_before");
  double t = sp__now_ms();
  uint64_t gen = 0;
  rc = sp__commit(p, w->np, w->keys, w->vals, w->lens, 1, &rk, &gen);
  p->t_commit = sp__now_ms() - t;
  if (rc) return rc;
  sp__logkv(p, "step=commit generation=%" PRIu64 " chunks=%zu ms=%.1f", gen, w->np - 2, p->t_commit);
  sp__die_at(p, "commit_after");
  json_object_set_new(rj, "generation", json_integer((json_int_t)gen));
  out->generation = gen;
  out->result = json_dumps(rj, JSON_COMPACT);
  if ((rc = sp__set_status(p, STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS, "split: committed")))
    return rc;
  sp__die_at(p, "success");
  sp__renew_stop(p);
  rc = sp__release_all(p);
  sp__logkv(p, "step=release");
  return rc;
}

/* Relabels, then ONE fenced commit: the changed chunks, the lineage and the result;
 * then SUCCESS and release. */
int sp__finish(sp *p, split_out *out) {
  size_t nch = p->nrows - 1;
  writes w = {.keys = calloc(nch + 2, sizeof *w.keys), .vals = calloc(nch + 2, sizeof *w.vals),
              .lens = calloc(nch + 2, sizeof *w.lens), .lin = json_array(),
              .written = json_array(), .newids = {NULL, json_array(), json_array()}};
  int rc = 0;
  char *rk = NULL;
  json_t *rj = NULL;
  if (!w.keys || !w.vals || !w.lens || !w.lin || !w.written || !w.newids[1] || !w.newids[2]) {
    rc = sp__fail(p, 1, "out of memory");
    goto out;
  }
  int64_t c[3];
  for (c[2] = p->clo[2]; c[2] <= p->chi[2]; c[2]++)
    for (c[1] = p->clo[1]; c[1] <= p->chi[1]; c[1]++)
      for (c[0] = p->clo[0]; c[0] <= p->chi[0]; c[0]++)
        if ((rc = add_chunk(p, &w, c))) goto out;
  if ((rc = add_records(p, &w, &rj, &rk))) goto out;
  rc = p->o->anchor_multi_commit ? commit_multi(p, &w, rj, out)
                                 : commit_fenced(p, &w, rk, rj, out);
out:
  for (size_t i = 0; i < nch + 2 && w.keys && w.vals; i++) {
    free(w.keys[i]);
    free(w.vals[i]);
  }
  free(w.keys);
  free(w.vals);
  free(w.lens);
  free(rk);
  json_decref(rj);
  json_decref(w.lin);
  json_decref(w.written);
  json_decref(w.newids[1]);
  json_decref(w.newids[2]);
  return rc;
}
