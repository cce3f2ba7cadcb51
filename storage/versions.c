/*
 * The version tree: which B+tree root each generation has. The newest
 * versions sit inline in the manifest (one version-tree leaf's worth); older
 * ones are in version tree nodes referenced from the manifest, one per height,
 * laid out exactly as tensorstore's reader requires (compat notes 4-6, 10):
 * the structure is a pure function of the latest generation and the arity.
 * A lookup by generation or by commit time reads one node per height, so it
 * costs O(log versions) node reads.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/engine_int.h"

/* --- data file tables for version entries ------------------------------------ */

typedef struct dftb {
  st_db *db;
  int manifest;        /* paths relative to the database ("d/" base) or to d/ */
  uint32_t ids[80];    /* ST_NOFILE for the empty-path entry of a missing root */
  ocdbt_file files[80];
  size_t n;
} dftb;

static int dftb_add(dftb *b, st_ref r, uint64_t *idx) {
  uint32_t id = r.offset == OCDBT_MISSING ? ST_NOFILE : r.file;
  for (size_t i = 0; i < b->n; i++)
    if (b->ids[i] == id) {
      *idx = i;
      return 0;
    }
  if (b->n == sizeof b->ids / sizeof b->ids[0])
    return strata_err(STRATA_EINVALID, "version entries reference more than 80 files");
  ocdbt_file *f = &b->files[b->n];
  if (id == ST_NOFILE) {
    f->base_path = (ocdbt_slice){(const uint8_t *)"", 0};
    f->relative_path = (ocdbt_slice){(const uint8_t *)"", 0};
  } else {
    const char *path = ft__path(b->db, id, NULL);
    size_t n = strlen(path);
    if (n < 2 || memcmp(path, ST_DATA_DIR "/", 2))
      return strata_err(STRATA_EINVALID, "file %s is not under " ST_DATA_DIR "/", path);
    f->base_path = (ocdbt_slice){(const uint8_t *)path, b->manifest ? 2 : 0};
    f->relative_path = (ocdbt_slice){(const uint8_t *)path + 2, n - 2};
  }
  b->ids[b->n] = id;
  *idx = b->n++;
  return 0;
}

static st_ref ref_in(const uint32_t *files, const ocdbt_ref *r) {
  if (r->offset == OCDBT_MISSING) return (st_ref){ST_NOFILE, OCDBT_MISSING, OCDBT_MISSING};
  return (st_ref){files[r->file], r->offset, r->length};
}

static void version_in(const uint32_t *files, const ocdbt_version *v, st_vers *out) {
  out->generation = v->generation;
  out->commit_time = v->commit_time;
  out->root.height = v->root_height;
  out->root.ref = ref_in(files, &v->root);
  out->root.stats = v->stats;
}

static int version_out(dftb *b, const st_vers *v, ocdbt_version *out) {
  memset(out, 0, sizeof *out);
  out->generation = v->generation;
  out->commit_time = v->commit_time;
  out->root_height = v->root.height;
  out->stats = v->root.stats;
  out->root.offset = v->root.ref.offset;
  out->root.length = v->root.ref.length;
  return dftb_add(b, v->root.ref, &out->root.file);
}

static int vref_out(dftb *b, const st_vref *v, ocdbt_vnode_ref *out) {
  out->generation = v->generation;
  out->num_generations = v->num_generations;
  out->commit_time = v->commit_time;
  out->height = v->height;
  out->ref.offset = v->ref.offset;
  out->ref.length = v->ref.length;
  return dftb_add(b, v->ref, &out->ref.file);
}

/* --- manifest state ------------------------------------------------------------ */

int mstate__copy(const st_mstate *src, size_t cap, st_mstate *dst) {
  *dst = *src;
  dst->versions = malloc(cap * sizeof *dst->versions);
  if (!dst->versions) return strata_err(STRATA_ENOMEM, "manifest state");
  if (src->n_versions) memcpy(dst->versions, src->versions, src->n_versions * sizeof *dst->versions);
  return 0;
}

void mstate__free(st_mstate *ms) {
  free(ms->versions);
  memset(ms, 0, sizeof *ms);
}

int vt__encode_manifest(st_db *db, const st_mstate *ms, strata_buf *out) {
  dftb b;
  b.db = db;
  b.manifest = 1;
  b.n = 0;
  ocdbt_manifest m;
  memset(&m, 0, sizeof m);
  m.config = db->cfg;
  m.config.manifest_kind = OCDBT_MANIFEST_SINGLE; /* a full manifest (numbered files too) */
  ocdbt_version *vs = calloc(ms->n_versions ? ms->n_versions : 1, sizeof *vs);
  ocdbt_vnode_ref nodes[64];
  int rc = 0;
  if (!vs) return strata_err(STRATA_ENOMEM, "manifest");
  for (size_t i = 0; i < ms->n_versions; i++)
    if ((rc = version_out(&b, &ms->versions[i], &vs[i]))) goto out;
  for (size_t i = 0; i < ms->n_nodes; i++)
    if ((rc = vref_out(&b, &ms->nodes[i], &nodes[i]))) goto out;
  m.dft.n = b.n;
  m.dft.files = b.files;
  uint64_t remap[80];
  if ((rc = ocdbt_dft_sort(&m.dft, remap))) goto out;
  for (size_t i = 0; i < ms->n_versions; i++) vs[i].root.file = remap[vs[i].root.file];
  for (size_t i = 0; i < ms->n_nodes; i++) nodes[i].ref.file = remap[nodes[i].ref.file];
  m.n_versions = ms->n_versions;
  m.versions = vs;
  m.n_nodes = ms->n_nodes;
  m.nodes = nodes;
  if ((rc = ocdbt_manifest_encode(&m, out))) rc = strata_err_wrap(rc, "encoding manifest");
out:
  free(vs);
  return rc;
}

int vt__load_manifest(st_db *db, const ocdbt_manifest *m, st_mstate *out) {
  memset(out, 0, sizeof *out);
  size_t cap = (size_t)1 << m->config.version_tree_arity_log2;
  uint32_t *files = malloc((m->dft.n ? m->dft.n : 1) * sizeof *files);
  int rc = 0;
  if (!files) return strata_err(STRATA_ENOMEM, "manifest");
  if (m->n_versions > cap || m->n_nodes > 64) {
    rc = strata_err(STRATA_ECORRUPT, "manifest holds %zu inline versions and %zu nodes", m->n_versions,
                    m->n_nodes);
    goto out;
  }
  for (size_t i = 0; i < m->dft.n; i++) {
    const ocdbt_file *f = &m->dft.files[i];
    char buf[1024];
    size_t n = f->base_path.n + f->relative_path.n;
    if (n >= sizeof buf) {
      rc = strata_err(STRATA_EUNSUPPORTED, "manifest: data file path of %zu bytes", n);
      goto out;
    }
    memcpy(buf, f->base_path.p, f->base_path.n);
    memcpy(buf + f->base_path.n, f->relative_path.p, f->relative_path.n);
    if ((rc = ft__intern(db, buf, n, f->base_path.n, &files[i]))) goto out;
  }
  out->versions = malloc(cap * sizeof *out->versions);
  if (!out->versions) {
    rc = strata_err(STRATA_ENOMEM, "manifest");
    goto out;
  }
  out->n_versions = m->n_versions;
  for (size_t i = 0; i < m->n_versions; i++) version_in(files, &m->versions[i], &out->versions[i]);
  out->n_nodes = m->n_nodes;
  for (size_t i = 0; i < m->n_nodes; i++) {
    const ocdbt_vnode_ref *r = &m->nodes[i];
    out->nodes[i] = (st_vref){r->generation, r->num_generations, r->commit_time, r->height,
                              ref_in(files, &r->ref)};
  }
out:
  free(files);
  if (rc) mstate__free(out);
  return rc;
}

/* --- writing ---------------------------------------------------------------------- */

static int write_vtnode(st_db *db, st_writer *w, uint8_t height, const st_vers *vs,
                        const st_vref *cs, size_t n, st_ref *out) {
  dftb b;
  b.db = db;
  b.manifest = 0;
  b.n = 0;
  ocdbt_vtnode node;
  memset(&node, 0, sizeof node);
  node.arity_log2 = db->cfg.version_tree_arity_log2;
  node.height = height;
  node.n = n;
  ocdbt_version *ov = height ? NULL : calloc(n, sizeof *ov);
  ocdbt_vnode_ref *oc = height ? calloc(n, sizeof *oc) : NULL;
  strata_buf enc = STRATA_BUF_INIT;
  int rc = 0;
  if (!ov && !oc) return strata_err(STRATA_ENOMEM, "version tree node");
  for (size_t i = 0; i < n && !rc; i++)
    rc = height ? vref_out(&b, &cs[i], &oc[i]) : version_out(&b, &vs[i], &ov[i]);
  if (rc) goto out;
  node.dft.n = b.n;
  node.dft.files = b.files;
  node.versions = ov;
  node.children = oc;
  uint64_t remap[80];
  if ((rc = ocdbt_dft_sort(&node.dft, remap))) goto out;
  for (size_t i = 0; i < n; i++) {
    if (height) oc[i].ref.file = remap[oc[i].ref.file];
    else ov[i].root.file = remap[ov[i].root.file];
  }
  if ((rc = ocdbt_vtnode_encode(&db->cfg, &node, &enc))) {
    rc = strata_err_wrap(rc, "encoding version tree node");
    goto out;
  }
  uint64_t off;
  if ((rc = wr__append(w, enc.p, enc.len, &off))) goto out;
  *out = (st_ref){w->file_id, off, enc.len};
out:
  free(ov);
  free(oc);
  strata_buf_free(&enc);
  return rc;
}

/* Copies the children of the version node at r (height h) into *out. */
static int read_children(st_db *db, const st_vref *r, st_vref **out, size_t *n) {
  cnode *cn;
  int rc = nc__get(db, r->ref, CN_VTREE, &cn);
  if (rc) return rc;
  const ocdbt_vtnode *v = &cn->u.vt;
  if (v->height != r->height || v->height == 0) {
    rc = strata_err(STRATA_ECORRUPT, "%s offset %llu: version node height %u, expected %u",
                    ft__path(db, r->ref.file, NULL), (unsigned long long)r->ref.offset, v->height,
                    r->height);
    goto out;
  }
  *out = malloc((v->n + 1) * sizeof **out);
  if (!*out) {
    rc = strata_err(STRATA_ENOMEM, "version node");
    goto out;
  }
  for (size_t i = 0; i < v->n; i++) {
    const ocdbt_vnode_ref *c = &v->children[i];
    (*out)[i] = (st_vref){c->generation, c->num_generations, c->commit_time, c->height,
                          ref_in(cn->files, &c->ref)};
  }
  *n = v->n;
out:
  nc__release(db, cn);
  return rc;
}

static int add_version(st_db *db, st_writer *w, const st_mstate *cur, const st_vers *v, st_mstate *out) {
  unsigned a = db->cfg.version_tree_arity_log2;
  size_t cap = (size_t)1 << a;
  int rc = mstate__copy(cur, cap, out);
  if (rc) return rc;
  uint64_t N = v->generation;
  uint64_t L = cur->n_versions ? cur->versions[cur->n_versions - 1].generation : 0;
  if (L == 0 || ocdbt_vtree_first_generation((uint8_t)a, 0, N) <= L) { /* same leaf block */
    out->versions[out->n_versions++] = *v;
    return 0;
  }
  /* The inline leaf is full: it becomes a version tree leaf node, and each
   * height's node in the manifest absorbs the previous height's old node
   * when their generation ranges say so. */
  st_vref child0;
  child0.height = 0;
  child0.generation = L;
  child0.num_generations = cur->n_versions;
  child0.commit_time = cur->versions[0].commit_time;
  if ((rc = write_vtnode(db, w, 0, cur->versions, NULL, cur->n_versions, &child0.ref))) goto fail;

  struct pair {
    const st_vref *old, *child;
  } pairs[64];
  size_t np = 0, idx = cur->n_nodes;
  const st_vref *prev = &child0;
  ocdbt_vtree_walk wk;
  ocdbt_vtree_walk_init(&wk, (uint8_t)a, N);
  while (ocdbt_vtree_walk_next(&wk)) {
    const st_vref *old = NULL;
    if (idx > 0 && cur->nodes[idx - 1].height == wk.height) old = &cur->nodes[--idx];
    int has_old = old && old->generation >= wk.lo && old->generation <= wk.hi;
    int has_child = prev && prev->generation >= wk.lo && prev->generation <= wk.hi;
    if (has_old || has_child) pairs[np++] = (struct pair){has_old ? old : NULL, has_child ? prev : NULL};
    prev = old;
  }
  out->n_nodes = np;
  for (size_t i = 0; i < np; i++) {
    const struct pair *p = &pairs[np - 1 - i];
    st_vref *r = &out->nodes[i];
    if (!p->old) {
      r->height = (uint8_t)(p->child->height + 1);
      r->generation = p->child->generation;
      r->num_generations = p->child->num_generations;
      r->commit_time = p->child->commit_time;
      if ((rc = write_vtnode(db, w, r->height, NULL, p->child, 1, &r->ref))) goto fail;
    } else if (!p->child) {
      *r = *p->old;
    } else {
      st_vref *kids = NULL;
      size_t nk = 0;
      if ((rc = read_children(db, p->old, &kids, &nk))) goto fail;
      kids[nk++] = *p->child;
      r->height = p->old->height;
      r->generation = p->child->generation;
      r->num_generations = p->old->num_generations + p->child->num_generations;
      r->commit_time = p->old->commit_time;
      rc = write_vtnode(db, w, r->height, NULL, kids, nk, &r->ref);
      free(kids);
      if (rc) goto fail;
    }
  }
  out->versions[0] = *v;
  out->n_versions = 1;
  return 0;
fail:
  mstate__free(out);
  return rc;
}

/* Adds v and drops the versions below the retention floor. The trim comes
 * first: it reads the nodes it rewrites, and only the previous commits' nodes
 * are readable yet (this one's are still in the writer's buffer); so a floor
 * above the previous latest takes effect a commit later. add_version reads
 * the node it extends, which the trim may have rewritten: the writer is
 * flushed in between (not synced; the commit's own sync covers it). */
int vt__add(st_db *db, st_writer *w, const st_mstate *cur, const st_vers *v, st_mstate *out) {
  uint64_t floor = __atomic_load_n(&db->retain_floor, __ATOMIC_ACQUIRE);
  st_vers old;
  vt__oldest(cur, &old);
  if (floor <= 1 || !cur->n_versions || old.generation >= floor) return add_version(db, w, cur, v, out);
  st_mstate t;
  int rc = mstate__copy(cur, (size_t)1 << db->cfg.version_tree_arity_log2, &t);
  if (rc) return rc;
  /* add_version may read the nodes the trim wrote: they leave the buffer first */
  if (!(rc = vt__trim(db, w, &t, floor)) && !(rc = wr__flush(w))) rc = add_version(db, w, &t, v, out);
  mstate__free(&t);
  return rc;
}

/* --- dropping old versions (retention) ----------------------------------------------
 * Only a prefix is ever dropped (every generation >= the oldest retained one
 * stays), so each subtree still covers a contiguous run of generations ending
 * at its newest: its oldest is generation - num_generations + 1. A subtree
 * entirely below the floor goes; one that straddles it is rewritten along
 * its left edge (one node per height), keeping its newest generation, so
 * every rule of compat notes 5 still holds. */

static uint64_t oldest_of(const st_vref *r) { return r->generation - r->num_generations + 1; }

static int trim_node(st_db *db, st_writer *w, const st_vref *r, uint64_t floor, st_vref *out) {
  cnode *cn;
  int rc = nc__get(db, r->ref, CN_VTREE, &cn);
  if (rc) return rc;
  const ocdbt_vtnode *v = &cn->u.vt;
  if (v->height != r->height) {
    rc = strata_err(STRATA_ECORRUPT, "%s offset %llu: version node height %u, expected %u",
                    ft__path(db, r->ref.file, NULL), (unsigned long long)r->ref.offset, v->height,
                    r->height);
    nc__release(db, cn);
    return rc;
  }
  size_t n = v->n, k = 0;
  *out = *r;
  if (v->height == 0) {
    st_vers *vs = malloc((n ? n : 1) * sizeof *vs);
    if (!vs) rc = strata_err(STRATA_ENOMEM, "version node");
    for (size_t i = 0; !rc && i < n; i++)
      if (v->versions[i].generation >= floor) version_in(cn->files, &v->versions[i], &vs[k++]);
    nc__release(db, cn);
    if (!rc && k) {
      out->num_generations = k;
      out->commit_time = vs[0].commit_time;
      rc = write_vtnode(db, w, 0, vs, NULL, k, &out->ref);
    }
    free(vs);
    return rc ? rc : k ? 0 : STRATA_ENOTFOUND;
  }
  st_vref *kids = malloc((n ? n : 1) * sizeof *kids);
  if (!kids) rc = strata_err(STRATA_ENOMEM, "version node");
  for (size_t i = 0; !rc && i < n; i++) {
    const ocdbt_vnode_ref *c = &v->children[i];
    if (c->generation >= floor)
      kids[k++] = (st_vref){c->generation, c->num_generations, c->commit_time, c->height,
                            ref_in(cn->files, &c->ref)};
  }
  nc__release(db, cn);
  if (!rc && k && oldest_of(&kids[0]) < floor) rc = trim_node(db, w, &kids[0], floor, &kids[0]);
  if (!rc && k) {
    uint64_t sum = 0;
    for (size_t i = 0; i < k; i++) sum += kids[i].num_generations;
    out->num_generations = sum;
    out->commit_time = kids[0].commit_time;
    rc = write_vtnode(db, w, r->height, NULL, kids, k, &out->ref);
  }
  free(kids);
  return rc ? rc : k ? 0 : STRATA_ENOTFOUND;
}

int vt__trim(st_db *db, st_writer *w, st_mstate *ms, uint64_t floor) {
  if (!ms->n_versions) return 0;
  uint64_t latest = ms->versions[ms->n_versions - 1].generation;
  if (floor > latest) floor = latest; /* the latest is never dropped */
  size_t k = 0;
  for (size_t i = 0; i < ms->n_nodes; i++) {
    st_vref r = ms->nodes[i];
    if (r.generation < floor) continue;
    if (oldest_of(&r) < floor) {
      int rc = trim_node(db, w, &r, floor, &r);
      if (rc) return rc == STRATA_ENOTFOUND ? strata_err(STRATA_ECORRUPT, "version tree: empty subtree") : rc;
    }
    ms->nodes[k++] = r;
  }
  ms->n_nodes = k;
  k = 0;
  for (size_t i = 0; i < ms->n_versions; i++)
    if (ms->versions[i].generation >= floor) ms->versions[k++] = ms->versions[i];
  ms->n_versions = k;
  return 0;
}

void vt__oldest(const st_mstate *ms, st_vers *out) {
  memset(out, 0, sizeof *out);
  if (ms->n_nodes) {
    out->generation = oldest_of(&ms->nodes[0]);
    out->commit_time = ms->nodes[0].commit_time;
  } else if (ms->n_versions) {
    *out = ms->versions[0];
  }
}

/* Every version node below r, and every version in it, depth first. */
static int visit_node(st_db *db, const st_vref *r, vt__visit_fn fn, void *arg) {
  int rc = fn(arg, r, NULL);
  if (rc) return rc;
  cnode *cn;
  if ((rc = nc__get(db, r->ref, CN_VTREE, &cn))) return rc;
  const ocdbt_vtnode *v = &cn->u.vt;
  for (size_t i = 0; i < v->n && !rc; i++) {
    if (v->height) {
      const ocdbt_vnode_ref *c = &v->children[i];
      st_vref cr = {c->generation, c->num_generations, c->commit_time, c->height, ref_in(cn->files, &c->ref)};
      rc = visit_node(db, &cr, fn, arg);
    } else {
      st_vers x;
      version_in(cn->files, &v->versions[i], &x);
      rc = fn(arg, NULL, &x);
    }
  }
  nc__release(db, cn);
  return rc;
}

int vt__visit(st_db *db, const st_mstate *ms, vt__visit_fn fn, void *arg) {
  int rc = 0;
  for (size_t i = 0; i < ms->n_nodes && !rc; i++) rc = visit_node(db, &ms->nodes[i], fn, arg);
  for (size_t i = 0; i < ms->n_versions && !rc; i++) rc = fn(arg, NULL, &ms->versions[i]);
  return rc;
}

/* --- reading ---------------------------------------------------------------------- */

/* Descends from node ref r to the version chosen by pick: for a generation,
 * the first child whose newest generation >= G; for a time, the last child
 * whose oldest commit_time <= T. */
static int descend(st_db *db, st_vref r, int by_time, uint64_t x, st_vers *out) {
  for (;;) {
    cnode *cn;
    int rc = nc__get(db, r.ref, CN_VTREE, &cn);
    if (rc) return rc;
    const ocdbt_vtnode *v = &cn->u.vt;
    if (v->height != r.height) {
      rc = strata_err(STRATA_ECORRUPT, "%s offset %llu: version node height %u, expected %u",
                      ft__path(db, r.ref.file, NULL), (unsigned long long)r.ref.offset, v->height,
                      r.height);
      nc__release(db, cn);
      return rc;
    }
    long pick = -1;
    for (size_t i = 0; i < v->n; i++) {
      uint64_t gen = v->height ? v->children[i].generation : v->versions[i].generation;
      uint64_t ct = v->height ? v->children[i].commit_time : v->versions[i].commit_time;
      if (by_time) {
        if (ct <= x) pick = (long)i;
      } else if (v->height ? gen >= x : gen == x) {
        pick = (long)i;
        break;
      }
    }
    if (pick < 0) {
      nc__release(db, cn);
      return STRATA_ENOTFOUND;
    }
    if (v->height == 0) {
      version_in(cn->files, &v->versions[pick], out);
      nc__release(db, cn);
      return 0;
    }
    const ocdbt_vnode_ref *c = &v->children[pick];
    r = (st_vref){c->generation, c->num_generations, c->commit_time, c->height, ref_in(cn->files, &c->ref)};
    nc__release(db, cn);
  }
}

int vt__find_generation(st_db *db, const st_mstate *ms, uint64_t gen, st_vers *out) {
  if (!ms->n_versions || gen == 0) return STRATA_ENOTFOUND;
  uint64_t first = ms->versions[0].generation;
  if (gen >= first) { /* contiguous: only a prefix is ever dropped */
    if (gen - first >= ms->n_versions) return STRATA_ENOTFOUND;
    *out = ms->versions[gen - first];
    return out->generation == gen ? 0 : strata_err(STRATA_ECORRUPT, "manifest: inline versions have gaps");
  }
  return vt__find_generation_nodes(db, ms->nodes, ms->n_nodes, gen, out);
}

int vt__find_generation_nodes(st_db *db, const st_vref *nodes, size_t n, uint64_t gen, st_vers *out) {
  for (size_t i = 0; i < n; i++)
    if (nodes[i].generation >= gen) return descend(db, nodes[i], 0, gen, out);
  return STRATA_ENOTFOUND;
}

int vt__find_time(st_db *db, const st_mstate *ms, uint64_t t, st_vers *out) {
  if (!ms->n_versions) return STRATA_ENOTFOUND;
  if (ms->versions[0].commit_time <= t) {
    size_t i = ms->n_versions;
    while (ms->versions[i - 1].commit_time > t) i--;
    *out = ms->versions[i - 1];
    return 0;
  }
  return vt__find_time_nodes(db, ms->nodes, ms->n_nodes, t, out);
}

int vt__find_time_nodes(st_db *db, const st_vref *nodes, size_t n, uint64_t t, st_vers *out) {
  for (size_t i = n; i-- > 0;)
    if (nodes[i].commit_time <= t) return descend(db, nodes[i], 1, t, out);
  return STRATA_ENOTFOUND;
}

typedef struct vlist {
  st_version_info *v;
  size_t n, cap, limit;
  uint64_t min_gen;
} vlist;

static int vl_push(vlist *l, const st_vers *v) {
  if (v->generation < l->min_gen || (l->limit && l->n == l->limit)) return 0;
  if (strata_grow(&l->v, &l->cap, l->n + 1, sizeof *l->v, 64)) return strata_err(STRATA_ENOMEM, "versions");
  l->v[l->n++] = (st_version_info){v->generation, v->commit_time, v->root.stats.num_keys};
  return 0;
}

static int list_node(st_db *db, const st_vref *r, vlist *l) {
  if (r->generation < l->min_gen || (l->limit && l->n == l->limit)) return 0;
  cnode *cn;
  int rc = nc__get(db, r->ref, CN_VTREE, &cn);
  if (rc) return rc;
  const ocdbt_vtnode *v = &cn->u.vt;
  for (size_t i = 0; i < v->n && !rc; i++) {
    if (v->height) {
      const ocdbt_vnode_ref *c = &v->children[i];
      st_vref cr = {c->generation, c->num_generations, c->commit_time, c->height, ref_in(cn->files, &c->ref)};
      rc = list_node(db, &cr, l);
    } else {
      st_vers x;
      version_in(cn->files, &v->versions[i], &x);
      rc = vl_push(l, &x);
    }
  }
  nc__release(db, cn);
  return rc;
}

int vt__list(st_db *db, const st_mstate *ms, uint64_t min_gen, size_t limit, st_version_info **out,
             size_t *n) {
  vlist l = {NULL, 0, 0, limit, min_gen};
  int rc = 0;
  for (size_t i = 0; i < ms->n_nodes && !rc; i++) rc = list_node(db, &ms->nodes[i], &l);
  for (size_t i = 0; i < ms->n_versions && !rc; i++) rc = vl_push(&l, &ms->versions[i]);
  if (rc) {
    free(l.v);
    return rc;
  }
  *out = l.v;
  *n = l.n;
  return 0;
}
