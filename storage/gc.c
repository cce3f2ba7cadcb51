/*
 * Files the engine does not create, and which files are referenced.
 * Coordinator-mode writers put their own data files under d/ and commit
 * references to them (st_txn_put_ref); this file answers the questions about
 * them: a file's size and checksum before a commit refers to it, which files
 * the retained versions reference (the walk GC and the check share), which
 * files of d/ are not Strata's own, and removing one. storage/README.md
 * "Writer files and GC".
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/engine_int.h"

#define READ_PIECE ((size_t)1 << 20)

int st_file_size(st_db *db, const char *path, uint64_t *size) {
  assert(db && path && size);
  bs_file *f;
  int rc = bs_open_read(db->base, path, &f);
  if (rc == STRATA_ENOTFOUND) return strata_err(rc, "%s does not exist", path);
  if (rc) return rc;
  rc = bs_size(f, size);
  bs_close(f);
  return rc;
}

int st_file_crc32c(st_db *db, const char *path, uint64_t off, uint64_t len, uint32_t *crc) {
  assert(db && path && crc);
  bs_file *f;
  int rc = bs_open_read(db->base, path, &f);
  if (rc == STRATA_ENOTFOUND) return strata_err(rc, "%s does not exist", path);
  if (rc) return rc;
  uint8_t *buf = malloc(len < READ_PIECE ? (len ? len : 1) : READ_PIECE);
  uint32_t c = 0;
  if (!buf) rc = strata_err(STRATA_ENOMEM, "checksum of %s", path);
  for (uint64_t done = 0; !rc && done < len;) {
    size_t n = len - done < READ_PIECE ? (size_t)(len - done) : READ_PIECE;
    if ((rc = bs_pread(f, off + done, buf, n))) break;
    c = ocdbt_crc32c(c, buf, n);
    done += n;
  }
  free(buf);
  bs_close(f);
  if (!rc) *crc = c;
  return rc;
}

/* --- the walk ---------------------------------------------------------------------- */

struct st_fileset {
  char **paths; /* sorted */
  size_t n;
};

/* A node already walked, with what its subtree adds up to. */
typedef struct seen {
  uint32_t file; /* ST_NOFILE: empty slot */
  uint64_t off;
  ocdbt_stats st;
  int bad;
} seen;

/* Open addressing by (file, offset), power-of-two capacity. */
typedef struct seentab {
  seen *h;
  size_t cap, n;
} seentab;

enum { F_REF = 1, F_SIZED = 2, F_MISSING = 4, F_CRC_KNOWN = 8, F_CRC = 16 };

typedef struct walk {
  st_db *db;
  int verify;
  st_check_result *res;
  uint64_t gen; /* the version being walked, for messages */
  seentab nodes; /* B+tree nodes walked, with their subtree's statistics */
  seentab values; /* out-of-line values checked (verify): a leaf rewritten by a
                   * later version keeps most of its values */
  uint8_t *fst; /* per file id: F_* */
  uint64_t *fsize;
  size_t fcap;
  gc_pace *pace; /* GC only */
} walk;

static void note(walk *w, const char *fmt, ...) {
  st_check_result *r = w->res;
  r->nerrors++;
  if (r->n_errors >= ST_CHECK_LIST_MAX) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  char *m = strdup(buf);
  if (m) r->errors[r->n_errors++] = m;
}

static int grow_files(walk *w, uint32_t id) {
  if (id < w->fcap) return 0;
  size_t cap = w->fcap ? w->fcap : 256;
  while (cap <= id) cap *= 2;
  uint8_t *f = realloc(w->fst, cap);
  if (!f) return strata_err(STRATA_ENOMEM, "walk");
  w->fst = f;
  uint64_t *s = realloc(w->fsize, cap * sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "walk");
  w->fsize = s;
  memset(w->fst + w->fcap, 0, cap - w->fcap);
  w->fcap = cap;
  return 0;
}

static size_t seen_slot(const seentab *t, uint32_t file, uint64_t off) {
  uint64_t h = off * 0x9e3779b97f4a7c15ull ^ (uint64_t)file * 0xc2b2ae3d27d4eb4full;
  size_t j = (size_t)(h ^ h >> 29) & (t->cap - 1);
  while (t->h[j].file != ST_NOFILE && (t->h[j].file != file || t->h[j].off != off))
    j = (j + 1) & (t->cap - 1);
  return j;
}

static const seen *seen_find(const seentab *t, st_ref ref) {
  if (!t->cap) return NULL;
  size_t j = seen_slot(t, ref.file, ref.offset);
  return t->h[j].file == ST_NOFILE ? NULL : &t->h[j];
}

static int seen_add(seentab *t, st_ref ref, const ocdbt_stats *st, int bad) {
  if ((t->n + 1) * 2 > t->cap) {
    size_t cap = t->cap ? t->cap * 2 : 1024, ocap = t->cap;
    seen *old = t->h, *h = malloc(cap * sizeof *h);
    if (!h) return strata_err(STRATA_ENOMEM, "walk");
    for (size_t i = 0; i < cap; i++) h[i].file = ST_NOFILE;
    t->h = h;
    t->cap = cap;
    for (size_t i = 0; i < ocap; i++)
      if (old[i].file != ST_NOFILE) h[seen_slot(t, old[i].file, old[i].off)] = old[i];
    free(old);
  }
  static const ocdbt_stats none;
  t->h[seen_slot(t, ref.file, ref.offset)] = (seen){ref.file, ref.offset, st ? *st : none, bad};
  t->n++;
  return 0;
}

/* The key for messages: printable bytes as they are, others as \xNN, cut. */
static const char *show(const uint8_t *k, size_t n, char *buf, size_t cap) {
  size_t j = 0;
  for (size_t i = 0; i < n && j + 5 < cap; i++) {
    if (k[i] >= 0x20 && k[i] < 0x7f && k[i] != '\\') buf[j++] = (char)k[i];
    else j += (size_t)snprintf(buf + j, cap - j, "\\x%02x", k[i]);
  }
  buf[j] = 0;
  return buf;
}

/* A value out of line: its file exists and holds the range; in Strata's own
 * data files its CRC-32C matches. */
static int check_value(walk *w, st_ref r, const uint8_t *key, size_t klen) {
  st_db *db = w->db;
  uint8_t *f = &w->fst[r.file];
  const char *path = ft__path(db, r.file, NULL);
  char kb[200];
  if (!(*f & F_SIZED)) {
    int rc = ft__size(db, r.file, &w->fsize[r.file]);
    if (rc == STRATA_ENOTFOUND) {
      *f |= F_MISSING;
      st_check_result *res = w->res;
      res->nmissing++;
      if (res->n_missing < ST_CHECK_LIST_MAX && (res->missing[res->n_missing] = strdup(path)))
        res->n_missing++;
      note(w, "generation %llu: key '%s': its value is in %s, which does not exist",
           (unsigned long long)w->gen, show(key, klen, kb, sizeof kb), path);
    } else if (rc) {
      return rc;
    }
    *f |= F_SIZED;
  }
  if (*f & F_MISSING) return 0;
  w->res->values++;
  w->res->bytes += r.length;
  if (r.offset + r.length > w->fsize[r.file]) {
    note(w, "generation %llu: key '%s': its value is bytes [%llu, %llu) of %s, which has %llu bytes",
         (unsigned long long)w->gen, show(key, klen, kb, sizeof kb), (unsigned long long)r.offset,
         (unsigned long long)(r.offset + r.length), path, (unsigned long long)w->fsize[r.file]);
    return 0;
  }
  if (!(*f & F_CRC_KNOWN)) {
    int has = 0, rc = ft__value_crc(db, r.file, &has);
    if (rc) {
      note(w, "generation %llu: key '%s': %s", (unsigned long long)w->gen,
           show(key, klen, kb, sizeof kb), strata_errmsg());
      return 0;
    }
    *f |= F_CRC_KNOWN | (has ? F_CRC : 0);
  }
  if (!(*f & F_CRC)) return 0;
  st_entry e = {.kind = OCDBT_VALUE_INDIRECT, .ref = r};
  strata_buf v = STRATA_BUF_INIT;
  int rc = bt__read_value(db, &e, &v);
  strata_buf_free(&v);
  if (rc == STRATA_ENOMEM) return rc;
  if (rc)
    note(w, "generation %llu: key '%s': %s", (unsigned long long)w->gen,
         show(key, klen, kb, sizeof kb), strata_errmsg());
  return 0;
}

static int walk_node(walk *w, st_ref ref, uint8_t height, strata_buf *prefix, ocdbt_stats *out,
                     int *bad);

/* The children of interior node n, each with its key prefix. */
static int walk_children(walk *w, const cnode *n, uint8_t height, strata_buf *prefix,
                         ocdbt_stats *st) {
  int rc = 0;
  size_t plen = prefix->len;
  for (size_t i = 0; !rc && i < n->u.bt.n; i++) {
    const ocdbt_interior_entry *c = &n->u.bt.children[i];
    st_ref cr = {n->files[c->ref.file], c->ref.offset, c->ref.length};
    prefix->len = plen;
    if ((rc = strata_buf_append(prefix, c->key.p, c->subtree_common_prefix_length))) break;
    ocdbt_stats cs = {0};
    int cbad = 0;
    if ((rc = walk_node(w, cr, (uint8_t)(height - 1), prefix, &cs, &cbad))) break;
    if (w->verify && !cbad &&
        (cs.num_keys != c->stats.num_keys || cs.num_tree_bytes != c->stats.num_tree_bytes ||
         cs.num_indirect_value_bytes != c->stats.num_indirect_value_bytes))
      note(w,
           "generation %llu: %s offset %llu: child %zu says %llu keys, %llu tree bytes, %llu "
           "value bytes; its subtree has %llu, %llu, %llu",
           (unsigned long long)w->gen, ft__path(w->db, n->ref.file, NULL),
           (unsigned long long)n->ref.offset, i, (unsigned long long)c->stats.num_keys,
           (unsigned long long)c->stats.num_tree_bytes,
           (unsigned long long)c->stats.num_indirect_value_bytes, (unsigned long long)cs.num_keys,
           (unsigned long long)cs.num_tree_bytes, (unsigned long long)cs.num_indirect_value_bytes);
    st->num_keys += cs.num_keys;
    st->num_tree_bytes += cs.num_tree_bytes;
    st->num_indirect_value_bytes += cs.num_indirect_value_bytes;
  }
  prefix->len = plen;
  return rc;
}

static int walk_leaf(walk *w, const cnode *n, strata_buf *prefix, ocdbt_stats *st) {
  int rc = 0;
  size_t plen = prefix->len;
  for (size_t i = 0; !rc && i < n->u.bt.n; i++) {
    const ocdbt_leaf_entry *e = &n->u.bt.leaves[i];
    st->num_keys++;
    if (e->kind != OCDBT_VALUE_INDIRECT) continue;
    st_ref r = {n->files[e->ref.file], e->ref.offset, e->ref.length};
    st->num_indirect_value_bytes += r.length;
    if ((rc = grow_files(w, r.file))) break;
    w->fst[r.file] |= F_REF;
    if (!w->verify) continue;
    if (seen_find(&w->values, r)) continue;
    prefix->len = plen;
    if (!(rc = strata_buf_append(prefix, e->key.p, e->key.n)) &&
        !(rc = check_value(w, r, prefix->p, prefix->len)))
      rc = seen_add(&w->values, r, NULL, 0);
  }
  prefix->len = plen;
  return rc;
}

static int walk_node(walk *w, st_ref ref, uint8_t height, strata_buf *prefix, ocdbt_stats *out,
                     int *bad) {
  const seen *s = seen_find(&w->nodes, ref);
  if (s) {
    *out = s->st;
    *bad = s->bad;
    return 0;
  }
  int rc = grow_files(w, ref.file);
  if (rc) return rc;
  w->fst[ref.file] |= F_REF;
  if ((rc = gc__pace(w->pace))) return rc;
  ocdbt_stats st = {0, ref.length, 0};
  cnode *n = NULL;
  rc = nc__get_scan(w->db, ref, CN_BTREE, &n);
  if (!rc && n->u.bt.height != height)
    rc = strata_err(STRATA_ECORRUPT, "%s offset %llu: btree node has height %u, its reference says %u",
                    ft__path(w->db, ref.file, NULL), (unsigned long long)ref.offset,
                    n->u.bt.height, height);
  if (rc) {
    nc__release_scan(w->db, n);
    if (!w->verify || rc == STRATA_ENOMEM) return rc;
    note(w, "generation %llu: %s", (unsigned long long)w->gen, strata_errmsg());
    *bad = 1;
    return seen_add(&w->nodes, ref, &st, 1);
  }
  if (w->res) w->res->nodes++;
  rc = height ? walk_children(w, n, height, prefix, &st) : walk_leaf(w, n, prefix, &st);
  nc__release_scan(w->db, n);
  if (rc) return rc;
  *out = st;
  *bad = 0;
  return seen_add(&w->nodes, ref, &st, 0);
}

static int walk_version(walk *w, uint64_t gen) {
  st_snap *sn;
  int rc = st_snap_at_generation(w->db, gen, &sn);
  if (rc) return rc;
  st_root root = sn->v.root;
  st_snap_release(sn);
  w->gen = gen;
  if (w->res) w->res->versions++;
  if (root.ref.file == ST_NOFILE) return 0;
  strata_buf prefix = STRATA_BUF_INIT;
  ocdbt_stats st = {0};
  int bad = 0;
  rc = walk_node(w, root.ref, root.height, &prefix, &st, &bad);
  strata_buf_free(&prefix);
  if (!rc && w->verify && !bad &&
      (st.num_keys != root.stats.num_keys || st.num_tree_bytes != root.stats.num_tree_bytes ||
       st.num_indirect_value_bytes != root.stats.num_indirect_value_bytes))
    note(w, "generation %llu: the version says %llu keys, %llu tree bytes, %llu value bytes; its "
         "tree has %llu, %llu, %llu",
         (unsigned long long)gen, (unsigned long long)root.stats.num_keys,
         (unsigned long long)root.stats.num_tree_bytes,
         (unsigned long long)root.stats.num_indirect_value_bytes, (unsigned long long)st.num_keys,
         (unsigned long long)st.num_tree_bytes, (unsigned long long)st.num_indirect_value_bytes);
  return rc;
}

static int cmp_str(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int make_fileset(walk *w, st_fileset **out) {
  st_fileset *s = calloc(1, sizeof *s);
  size_t n = 0;
  for (size_t i = 0; i < w->fcap; i++) n += (w->fst[i] & F_REF) != 0;
  if (!s || !(s->paths = calloc(n ? n : 1, sizeof *s->paths))) {
    free(s);
    return strata_err(STRATA_ENOMEM, "walk");
  }
  for (size_t i = 0; i < w->fcap; i++) {
    if (!(w->fst[i] & F_REF)) continue;
    if (!(s->paths[s->n] = strdup(ft__path(w->db, (uint32_t)i, NULL)))) {
      st_fileset_free(s);
      return strata_err(STRATA_ENOMEM, "walk");
    }
    s->n++;
  }
  qsort(s->paths, s->n, sizeof *s->paths, cmp_str);
  *out = s;
  return 0;
}

static int visit_state(void *arg, const st_vref *r, const st_vers *v);

int st_walk(st_db *db, int verify, st_fileset **refs, st_check_result *res) {
  assert(db && refs);
  assert(res || !verify /* store.h: res may be NULL without verify */);
  *refs = NULL;
  st_check_result scratch;
  if (!res) res = &scratch;
  memset(res, 0, sizeof *res);
  walk w = {.db = db, .verify = verify, .res = res};
  st_version_info *vs = NULL;
  size_t nv = 0;
  int rc = 0;
  if (verify && (!(res->errors = calloc(ST_CHECK_LIST_MAX, sizeof *res->errors)) ||
                 !(res->missing = calloc(ST_CHECK_LIST_MAX, sizeof *res->missing))))
    rc = strata_err(STRATA_ENOMEM, "check");
  /* The versions as of now: a later one can only reference files of writers
   * that were live when it was validated (server/README.md "Coordinator mode"). */
  if (!rc) rc = st_versions(db, 0, 0, &vs, &nv);
  for (size_t i = 0; !rc && i < nv; i++) rc = walk_version(&w, vs[i].generation);
  /* GC: also what the newest durable manifest retains. In commit log mode it
   * may lag the versions above, which can have dropped a version it still
   * has; a restart would load it. Its nodes are mostly walked already. */
  if (!rc && !verify) {
    st_mstate pub;
    uint64_t P;
    char **top = NULL;
    size_t ntop = 0;
    rc = st__load_published(db, &pub, &P, &top, &ntop);
    free(top);
    if (!rc) {
      uint64_t nv0 = res->versions;
      rc = vt__visit(db, &pub, visit_state, &w);
      res->versions = nv0;
      mstate__free(&pub);
    } else if (rc == STRATA_ENOTFOUND) {
      rc = 0;
    }
  }
  if (!rc) rc = make_fileset(&w, refs);
  free(vs);
  free(w.nodes.h);
  free(w.values.h);
  free(w.fst);
  free(w.fsize);
  if (rc || res == &scratch) st_check_result_free(res);
  if (rc) memset(res, 0, sizeof *res);
  return rc;
}

/* The walk of one manifest state (retain.c's GC of Strata's own files): the
 * versions it retains, as st_walk, plus the files of its version tree nodes. */
static int visit_state(void *arg, const st_vref *r, const st_vers *v) {
  walk *w = arg;
  int rc = gc__pace(w->pace);
  if (rc) return rc;
  if (r) {
    rc = grow_files(w, r->ref.file);
    if (!rc) w->fst[r->ref.file] |= F_REF;
    return rc;
  }
  w->gen = v->generation;
  w->res->versions++;
  if (v->root.ref.file == ST_NOFILE) return 0;
  strata_buf prefix = STRATA_BUF_INIT;
  ocdbt_stats st = {0};
  int bad = 0;
  rc = grow_files(w, v->root.ref.file);
  if (!rc) w->fst[v->root.ref.file] |= F_REF;
  if (!rc) rc = walk_node(w, v->root.ref, v->root.height, &prefix, &st, &bad);
  strata_buf_free(&prefix);
  return rc;
}

int gc__walk_state(st_db *db, const st_mstate *ms, gc_pace *pace, st_fileset **refs,
                   uint64_t *versions) {
  st_check_result res;
  memset(&res, 0, sizeof res);
  walk w = {.db = db, .res = &res, .pace = pace};
  int rc = vt__visit(db, ms, visit_state, &w);
  if (!rc) rc = make_fileset(&w, refs);
  *versions = res.versions;
  free(w.nodes.h);
  free(w.values.h);
  free(w.fst);
  free(w.fsize);
  return rc;
}

void st_check_result_free(st_check_result *res) {
  for (size_t i = 0; i < res->n_errors; i++) free(res->errors[i]);
  for (size_t i = 0; i < res->n_missing; i++) free(res->missing[i]);
  free(res->errors);
  free(res->missing);
  res->errors = res->missing = NULL;
  res->n_errors = res->n_missing = 0;
}

int st_fileset_has(const st_fileset *s, const char *path) {
  assert(s && path);
  return bsearch(&path, s->paths, s->n, sizeof *s->paths, cmp_str) != NULL;
}

void st_fileset_free(st_fileset *s) {
  if (!s) return;
  for (size_t i = 0; i < s->n; i++) free(s->paths[i]);
  free(s->paths);
  free(s);
}

/* --- the files of d/ that are not Strata's ------------------------------------------- */

int st_foreign_files(st_db *db, char ***names, size_t *n) {
  assert(db && names && n);
  *names = NULL;
  *n = 0;
  char **all;
  size_t na;
  int rc = bs_list(db->base, ST_DATA_DIR, &all, &na);
  if (rc == STRATA_ENOTFOUND) return 0;
  if (rc) return rc;
  size_t k = 0;
  for (size_t i = 0; i < na; i++)
    if (!st__is_data_file_name(all[i])) all[k++] = all[i];
  qsort(all, k, sizeof *all, cmp_str);
  *names = all;
  *n = k;
  return 0;
}

int st_remove_foreign_file(st_db *db, const char *name, uint64_t *size) {
  assert(db && name && size);
  if (st__is_data_file_name(name) || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
    return strata_err(STRATA_EINVALID, "d/%s: not a file GC may remove", name);
  char path[ST_DATA_PATH_MAX + 256];
  snprintf(path, sizeof path, ST_DATA_DIR "/%s", name);
  *size = 0;
  int rc = st_file_size(db, path, size);
  if (rc) return rc;
  return bs_remove(db->base, path);
}

int st_sync_data_dir(st_db *db) { return bs_sync_dir(db->base, ST_DATA_DIR); }
