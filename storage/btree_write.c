/*
 * Applying one group commit's sorted changes to the copy-on-write B+tree.
 * Each level returns its rewritten nodes to its parent still unwritten
 * ("pending"), so the parent can merge a pending node that fell below a
 * quarter of max_decoded_node_bytes with a neighbour before anything is
 * written: merges and splits never write a node twice and the tree never
 * keeps thin nodes. One exception: when the new root has a single child
 * whose keys are relative to a prefix, that child (already written) is read
 * back and written again with full keys as the root.
 * Nodes are split by estimated decoded size into near-equal parts.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/engine_int.h"

typedef struct wentry {
  const uint8_t *key;   /* full key */
  size_t klen;
  size_t size;          /* estimated decoded bytes */
  /* leaf */
  uint8_t kind;
  const uint8_t *value;
  size_t vlen;
  st_ref ref;
  /* interior */
  size_t cprefix;       /* the child's implicit prefix is key[0:cprefix] */
  ocdbt_stats stats;
} wentry;

typedef struct pnode {
  uint8_t height;
  int written;          /* an untouched child: e[0] is its entry in the parent */
  wentry *e;
  size_t n, cap, bytes;
} pnode;

typedef struct plist {
  pnode *p;
  size_t n, cap;
} plist;

typedef struct actx {
  st_db *db;
  st_writer *w;
  size_t max, min;
  cnode **pins;
  size_t npins, pcap;
  uint8_t **chunks;     /* arena for materialized keys */
  size_t nchunks, ccap, chunk_used, chunk_size;
} actx;

static void *arena_alloc(actx *a, size_t n) {
  if (!n) n = 1;
  if (a->nchunks == 0 || a->chunk_used + n > a->chunk_size) {
    size_t sz = n > 65536 ? n : 65536;
    if (strata_grow(&a->chunks, &a->ccap, a->nchunks + 1, sizeof *a->chunks, 16)) return NULL;
    uint8_t *c = malloc(sz);
    if (!c) return NULL;
    a->chunks[a->nchunks++] = c;
    a->chunk_used = 0;
    a->chunk_size = sz;
  }
  void *p = a->chunks[a->nchunks - 1] + a->chunk_used;
  a->chunk_used += n;
  return p;
}

static int pn_push(pnode *p, const wentry *e) {
  if (strata_grow(&p->e, &p->cap, p->n + 1, sizeof *p->e, 16))
    return strata_err(STRATA_ENOMEM, "commit: node entries");
  p->e[p->n++] = *e;
  p->bytes += e->size;
  return 0;
}

/* Makes room for `more` entries at once (a node's entries arrive in bulk). */
static int pn_reserve(pnode *p, size_t more) {
  if (p->n + more <= p->cap) return 0;
  size_t cap = p->n + more;
  wentry *ne = realloc(p->e, cap * sizeof *ne);
  if (!ne) return strata_err(STRATA_ENOMEM, "commit: node entries");
  p->e = ne;
  p->cap = cap;
  return 0;
}

static int pl_push(plist *l, const pnode *p) {
  if (strata_grow(&l->p, &l->cap, l->n + 1, sizeof *l->p, 8)) return strata_err(STRATA_ENOMEM, "commit: node list");
  l->p[l->n++] = *p;
  return 0;
}

static void pl_free(plist *l) {
  for (size_t i = 0; i < l->n; i++) free(l->p[i].e);
  free(l->p);
  memset(l, 0, sizeof *l);
}

static size_t leaf_size(size_t klen, int kind, size_t vlen) {
  return klen + 8 + (kind == OCDBT_VALUE_INLINE ? vlen : 24);
}
#define INTERIOR_SIZE(klen) ((klen) + 48)

/* Loads the node at ref and appends its entries, with full keys, to *out. */
static int materialize(actx *a, st_ref ref, uint8_t height, const uint8_t *prefix, size_t pn,
                       pnode *out) {
  cnode *n;
  int rc;
  /* A node this commit wrote (a collapsing root's child) may still be buffered. */
  if (ref.file == a->w->file_id && (rc = wr__flush(a->w))) return rc;
  rc = nc__get(a->db, ref, CN_BTREE, &n);
  if (rc) return rc;
  if (strata_grow(&a->pins, &a->pcap, a->npins + 1, sizeof *a->pins, 64)) {
    nc__release(a->db, n);
    return strata_err(STRATA_ENOMEM, "commit: pins");
  }
  a->pins[a->npins++] = n;
  const ocdbt_btnode *b = &n->u.bt;
  if (b->height != height)
    return strata_err(STRATA_ECORRUPT, "%s offset %llu: btree node height %u, expected %u",
                      ft__path(a->db, ref.file, NULL), (unsigned long long)ref.offset, b->height, height);
  out->height = height;
  if ((rc = pn_reserve(out, b->n))) return rc;
  for (size_t i = 0; i < b->n; i++) {
    wentry e;
    memset(&e, 0, sizeof e);
    ocdbt_slice k = height ? b->children[i].key : b->leaves[i].key;
    uint8_t *key = arena_alloc(a, pn + k.n);
    if (!key) return strata_err(STRATA_ENOMEM, "commit: keys");
    if (pn) memcpy(key, prefix, pn);
    if (k.n) memcpy(key + pn, k.p, k.n);
    e.key = key;
    e.klen = pn + k.n;
    if (height) {
      const ocdbt_interior_entry *c = &b->children[i];
      e.cprefix = pn + c->subtree_common_prefix_length;
      e.ref = (st_ref){n->files[c->ref.file], c->ref.offset, c->ref.length};
      e.stats = c->stats;
      e.size = INTERIOR_SIZE(e.klen);
    } else {
      const ocdbt_leaf_entry *l = &b->leaves[i];
      e.kind = l->kind;
      e.value = l->value.p;
      e.vlen = l->value.n;
      if (l->kind == OCDBT_VALUE_INDIRECT)
        e.ref = (st_ref){n->files[l->ref.file], l->ref.offset, l->ref.length};
      e.size = leaf_size(e.klen, e.kind, e.vlen);
    }
    if ((rc = pn_push(out, &e))) return rc;
  }
  return 0;
}

/* Splits the entries of src into k near-equal nodes, k = ceil(bytes /
 * (7/8 max)): an entry goes to the part its midpoint falls in, so every part
 * is about bytes/k (never a thin last part) and at most ~7/8 max plus half an
 * entry. src's entries move to out; src is emptied. */
static int split_into(actx *a, pnode *src, plist *out) {
  size_t unit = a->max - a->max / 8;
  size_t k = src->bytes / unit + (src->bytes % unit != 0);
  if (k == 0) k = 1;
  size_t by_count = src->n / OCDBT_MAX_NODE_ENTRIES + 1;
  if (k < by_count) k = by_count;
  /* An interior part keeps at least two children on average (k <= n/2), so a
   * level of m >= 2 nodes always has a parent level of at most m/2 nodes and
   * the tree's growth ends. Without it, interior entries larger than the
   * target (keys over ~21 KB at 24 KiB nodes) split into one-child nodes,
   * each level as wide as the one below, for ever. Such nodes are then
   * larger than the target: it is a target, not a limit of the format. */
  if (src->height && k > src->n / 2) k = src->n / 2 ? src->n / 2 : 1;
  if (k == 1) { /* the common case: the node fits, its entries move as they are */
    int rc = pl_push(out, src);
    if (!rc) memset(src, 0, sizeof *src);
    return rc;
  }
  pnode cur = {src->height, 0, NULL, 0, 0, 0};
  size_t cum = 0, part = 0;
  int rc = 0;
  for (size_t i = 0; i < src->n; i++) {
    const wentry *e = &src->e[i];
    size_t mid = cum + e->size / 2;
    size_t want = src->bytes ? (size_t)((unsigned __int128)mid * k / src->bytes) : 0;
    if (want >= k) want = k - 1;
    if (cur.n && want != part) {
      if ((rc = pl_push(out, &cur))) goto fail;
      memset(&cur, 0, sizeof cur);
      cur.height = src->height;
    }
    part = want;
    cum += e->size;
    if ((rc = pn_push(&cur, e))) goto fail;
  }
  if (cur.n && (rc = pl_push(out, &cur))) goto fail;
  free(src->e);
  memset(src, 0, sizeof *src);
  return 0;
fail:
  free(cur.e);
  return rc;
}

/* The implicit prefix of a node's keys (docs/format.md, "Prefixes"): a leaf's
 * is the common prefix of its first and last key; an interior node's that of
 * its first key and its last child's prefix, capped by every child's. A root
 * has full keys. */
static size_t node_prefix(const pnode *p, int root) {
  if (root) return 0;
  const wentry *first = &p->e[0], *last = &p->e[p->n - 1];
  if (p->height == 0)
    return ocdbt_common_prefix((ocdbt_slice){first->key, first->klen}, (ocdbt_slice){last->key, last->klen});
  size_t pfx = ocdbt_common_prefix((ocdbt_slice){first->key, first->klen}, (ocdbt_slice){last->key, last->cprefix});
  for (size_t i = 0; i < p->n; i++)
    if (p->e[i].cprefix < pfx) pfx = p->e[i].cprefix;
  return pfx;
}

/* A node's data file table under construction: each file id once, found by
 * hash (a leaf's values may come from hundreds of commits' files). */
typedef struct ntable {
  uint32_t *slot;      /* open addressing: index + 1 */
  size_t hcap;
  uint32_t *ids;       /* file id of table entry i */
  ocdbt_file *files;
  size_t n;
} ntable;

static int ntable_init(ntable *t, size_t max) {
  memset(t, 0, sizeof *t);
  t->hcap = 16;
  while (t->hcap < 2 * max) t->hcap *= 2;
  t->slot = calloc(t->hcap, sizeof *t->slot);
  t->ids = malloc(max * sizeof *t->ids);
  t->files = malloc(max * sizeof *t->files);
  return t->slot && t->ids && t->files ? 0 : strata_err(STRATA_ENOMEM, "commit: encoding node");
}

static void ntable_free(ntable *t) {
  free(t->slot);
  free(t->ids);
  free(t->files);
}

/* The table index of file id `file`, added when new. */
static int ntable_index(st_db *db, ntable *t, uint32_t file, uint64_t *fi) {
  size_t h = ((uint64_t)file * 0x9e3779b97f4a7c15ull >> 20) & (t->hcap - 1);
  while (t->slot[h] && t->ids[t->slot[h] - 1] != file) h = (h + 1) & (t->hcap - 1);
  if (t->slot[h]) {
    *fi = t->slot[h] - 1;
    return 0;
  }
  size_t bl;
  const char *path = ft__path(db, file, &bl);
  if (strncmp(path, ST_DATA_DIR "/", 2))
    return strata_err(STRATA_EINVALID, "commit: referenced file %s is not under " ST_DATA_DIR "/", path);
  *fi = t->n;
  t->slot[h] = (uint32_t)t->n + 1;
  t->ids[t->n] = file;
  t->files[t->n].base_path = (ocdbt_slice){(const uint8_t *)"", 0};
  t->files[t->n].relative_path = (ocdbt_slice){(const uint8_t *)path + 2, strlen(path) - 2};
  t->n++;
  return 0;
}

/* Puts the node's table in the canonical order tensorstore writes and
 * renumbers its references; *sorted_ids (malloc'd, NULL when out of memory:
 * the write-through cache then skips the node) gets the file ids in the new
 * order (they are unique, so the sort removes nothing). */
static int ntable_sort(ocdbt_btnode *node, const ntable *t, uint32_t **sorted_ids) {
  size_t nf = t->n;
  uint64_t remap_stack[64], *remap = nf <= 64 ? remap_stack : malloc(nf * sizeof *remap);
  int rc = 0;
  *sorted_ids = NULL;
  if (!remap || (rc = ocdbt_dft_sort(&node->dft, remap))) {
    if (remap != remap_stack) free(remap);
    return rc ? rc : strata_err(STRATA_ENOMEM, "commit: encoding node");
  }
  for (size_t i = 0; i < node->n; i++) {
    if (node->height) node->children[i].ref.file = remap[node->children[i].ref.file];
    else if (node->leaves[i].kind == OCDBT_VALUE_INDIRECT) node->leaves[i].ref.file = remap[node->leaves[i].ref.file];
  }
  *sorted_ids = malloc((nf ? nf : 1) * sizeof **sorted_ids);
  if (*sorted_ids)
    for (size_t j = 0; j < nf; j++) (*sorted_ids)[remap[j]] = t->ids[j];
  if (remap != remap_stack) free(remap);
  return 0;
}

/* A pending node encoded but not yet written: write_node's first half, which
 * reads nothing the commit changes, so the encodings of a level's sibling
 * nodes can run on two threads (settle_children); the second half (place_node)
 * appends them to the data file in order. */
typedef struct enode {
  st_db *db;
  const pnode *p;
  int root;          /* the node is a root: its keys are full keys (prefix 0) */
  int rc;            /* encode_node's result; err its message */
  strata_err_saved err;
  size_t pfx;
  ocdbt_btnode node;
  ntable tab;
  void *ents;
  uint32_t *sorted_ids;
  cnode *cached;     /* its copy for the node cache (best effort: may be NULL) */
  ocdbt_stats st;
  strata_buf enc;
} enode;

/* Frees what encode_node made; may be called again. */
static void enode_free(enode *e) {
  nc__free_new(e->cached);
  free(e->sorted_ids);
  ntable_free(&e->tab);
  free(e->ents);
  strata_buf_free(&e->enc);
  e->cached = NULL;
  e->sorted_ids = NULL;
  e->ents = NULL;
  memset(&e->tab, 0, sizeof e->tab);
}

/* Encodes e->p into e->enc (and e->node, its table and statistics); sets
 * e->rc. Frees what it made on failure. */
static void encode_node(enode *e) {
  const pnode *p = e->p;
  size_t pfx = e->pfx = node_prefix(p, e->root);
  ocdbt_btnode *node = &e->node;
  memset(node, 0, sizeof *node);
  node->height = p->height;
  node->n = p->n;
  ocdbt_stats st = {0, 0, 0};
  e->ents = p->height ? (void *)calloc(p->n, sizeof(ocdbt_interior_entry))
                      : (void *)calloc(p->n, sizeof(ocdbt_leaf_entry));
  int rc = ntable_init(&e->tab, p->n);
  if (!rc && !e->ents) rc = strata_err(STRATA_ENOMEM, "commit: encoding node");
  if (rc) goto out;
  for (size_t i = 0; i < p->n; i++) {
    const wentry *w = &p->e[i];
    uint64_t fi = 0;
    if ((p->height || w->kind == OCDBT_VALUE_INDIRECT) && (rc = ntable_index(e->db, &e->tab, w->ref.file, &fi)))
      goto out;
    ocdbt_slice k = {w->key + pfx, w->klen - pfx};
    if (p->height) {
      ocdbt_interior_entry *c = &((ocdbt_interior_entry *)e->ents)[i];
      c->key = k;
      c->subtree_common_prefix_length = (uint32_t)(w->cprefix - pfx);
      c->ref = (ocdbt_ref){fi, w->ref.offset, w->ref.length};
      c->stats = w->stats;
      st.num_keys += w->stats.num_keys;
      st.num_tree_bytes += w->stats.num_tree_bytes;
      st.num_indirect_value_bytes += w->stats.num_indirect_value_bytes;
    } else {
      ocdbt_leaf_entry *l = &((ocdbt_leaf_entry *)e->ents)[i];
      l->key = k;
      l->kind = w->kind;
      l->value = (ocdbt_slice){w->value, w->vlen};
      if (w->kind == OCDBT_VALUE_INDIRECT) {
        l->ref = (ocdbt_ref){fi, w->ref.offset, w->ref.length};
        st.num_indirect_value_bytes += w->ref.length;
      }
      st.num_keys++;
    }
  }
  node->dft.n = e->tab.n;
  node->dft.files = e->tab.files;
  if (p->height) node->children = e->ents;
  else node->leaves = e->ents;
  if ((rc = ntable_sort(node, &e->tab, &e->sorted_ids))) goto out;
  if ((rc = ocdbt_btnode_encode(&e->db->cfg, node, &e->enc))) rc = strata_err_wrap(rc, "commit: encoding btree node");
  /* Without the copy the node is read back from the file when needed. */
  if (!rc && e->sorted_ids) e->cached = nc__new_btnode(node, e->sorted_ids);
  e->st = st;
out:
  e->rc = rc;
  if (rc) {
    strata_err_save(rc, &e->err);
    enode_free(e);
  }
}

static void encode_task(void *ctx, size_t i) { encode_node(&((enode *)ctx)[i]); }

/* Appends an encoded node to the data file and frees it; *out becomes its
 * entry in the parent. */
static int place_node(actx *a, enode *e, wentry *out) {
  if (e->rc) return strata_err_restore(&e->err);
  uint64_t off;
  int rc = wr__append(a->w, e->enc.p, e->enc.len, &off);
  if (rc) goto out;
  if (e->cached) nc__put_new(a->db, (st_ref){a->w->file_id, off, e->enc.len}, e->cached);
  e->cached = NULL;
  const wentry *first = &e->p->e[0];
  memset(out, 0, sizeof *out);
  out->key = first->key;
  out->klen = first->klen;
  out->cprefix = e->pfx;
  out->ref = (st_ref){a->w->file_id, off, e->enc.len};
  out->stats = e->st;
  out->stats.num_tree_bytes += e->enc.len;
  out->size = INTERIOR_SIZE(first->klen);
out:
  enode_free(e);
  return rc;
}

/* Encodes and writes a pending node; *out becomes its entry in the parent.
 * root: the node is a root, so its keys are full keys (prefix 0). */
static int write_node(actx *a, const pnode *p, int root, wentry *out) {
  enode e;
  memset(&e, 0, sizeof e);
  e.db = a->db;
  e.p = p;
  e.root = root;
  encode_node(&e);
  return place_node(a, &e, out);
}

/* Merges the sorted leaf entries of *node with muts into a new entry list. */
static int merge_leaf(const pnode *node, const st_mut *m, size_t nm, pnode *out) {
  size_t i = 0, j = 0;
  int rc = 0;
  out->height = 0;
  if ((rc = pn_reserve(out, node->n + nm))) return rc;
  while (i < node->n || j < nm) {
    int c;
    if (i == node->n) c = 1;
    else if (j == nm) c = -1;
    else c = ocdbt_slice_cmp((ocdbt_slice){node->e[i].key, node->e[i].klen},
                             (ocdbt_slice){m[j].key, m[j].klen});
    if (c < 0) {
      if ((rc = pn_push(out, &node->e[i++]))) return rc;
      continue;
    }
    if (c == 0) i++;
    const st_mut *mu = &m[j++];
    if (mu->kind == MUT_DELETE) continue;
    wentry e;
    memset(&e, 0, sizeof e);
    e.key = mu->key;
    e.klen = mu->klen;
    if (mu->kind == MUT_INLINE) {
      e.kind = OCDBT_VALUE_INLINE;
      e.value = mu->value;
      e.vlen = mu->vlen;
    } else {
      e.kind = OCDBT_VALUE_INDIRECT;
      e.ref = mu->ref;
    }
    e.size = leaf_size(e.klen, e.kind, e.vlen);
    if ((rc = pn_push(out, &e))) return rc;
  }
  return 0;
}

static int apply_node(actx *a, st_ref ref, uint8_t height, const uint8_t *prefix, size_t pn,
                      const st_mut *m, size_t nm, plist *out);

/* Turns an untouched child entry back into a pending node of its entries. */
static int open_child(actx *a, pnode *p, uint8_t child_height) {
  wentry e = p->e[0];
  free(p->e);
  memset(p, 0, sizeof *p);
  return materialize(a, e.ref, child_height, e.key, e.cprefix, p);
}

/* Fixes underflow among the children of a level-`height` node, then writes
 * every pending child. items: written (untouched) children and pending ones. */
static int settle_children(actx *a, plist *items, uint8_t child_height, pnode *parent) {
  int rc = 0;
  /* Each round removes one item or leaves two parts of at least ~7/16 max;
   * the bound only guards against pathological entry sizes. */
  for (size_t round = 0; round < 4 * items->n + 16; round++) {
    size_t i;
    for (i = 0; i < items->n; i++)
      if (!items->p[i].written && items->p[i].bytes < a->min && items->n > 1) break;
    if (i == items->n) break;
    size_t j = i + 1 < items->n ? i + 1 : i - 1, lo = i < j ? i : j;
    pnode *x = &items->p[lo], *y = &items->p[lo + 1];
    if (x->written && (rc = open_child(a, x, child_height))) return rc;
    if (y->written && (rc = open_child(a, y, child_height))) return rc;
    for (size_t k = 0; k < y->n; k++)
      if ((rc = pn_push(x, &y->e[k]))) return rc;
    free(y->e);
    memmove(y, y + 1, (items->n - lo - 2) * sizeof *y);
    items->n--;
    if (x->bytes > a->max) {
      plist parts = {0};
      /* whole takes over x's entries: x must not keep a pointer to them
       * (split_into frees them; on an error path items is freed too). */
      pnode whole = *x;
      x->e = NULL;
      x->n = x->cap = x->bytes = 0;
      if ((rc = split_into(a, &whole, &parts))) {
        free(whole.e);
        pl_free(&parts);
        return rc;
      }
      /* replace x with parts */
      size_t need = items->n - 1 + parts.n;
      if (strata_grow(&items->p, &items->cap, need, sizeof *items->p, 8)) {
        pl_free(&parts);
        return strata_err(STRATA_ENOMEM, "commit: node list");
      }
      memmove(&items->p[lo + parts.n], &items->p[lo + 1], (items->n - lo - 1) * sizeof(pnode));
      memcpy(&items->p[lo], parts.p, parts.n * sizeof(pnode));
      items->n = need;
      free(parts.p);
    }
  }
  /* The pending children are encoded first, two threads at a time when the
   * committer is free to help (cm__job_share), then written in order. */
  size_t np = 0, k = 0;
  for (size_t i = 0; i < items->n; i++) np += !items->p[i].written && items->p[i].n;
  enode *en = np >= 2 ? calloc(np, sizeof *en) : NULL; /* none: one at a time */
  if (en) {
    for (size_t i = 0; i < items->n; i++)
      if (!items->p[i].written && items->p[i].n) en[k++] = (enode){.db = a->db, .p = &items->p[i]};
    cm__job_share(a->db, encode_task, en, np);
    k = 0;
  }
  for (size_t i = 0; i < items->n && !rc; i++) {
    pnode *p = &items->p[i];
    wentry e;
    if (p->written) e = p->e[0];
    else if (p->n == 0) continue;
    else if ((rc = en ? place_node(a, &en[k++], &e) : write_node(a, p, 0, &e))) break;
    rc = pn_push(parent, &e);
  }
  if (en) {
    for (; k < np; k++) enode_free(&en[k]);
    free(en);
  }
  return rc;
}

static int apply_interior(actx *a, pnode *node, const st_mut *m, size_t nm, plist *out) {
  plist items = {0};
  pnode parent = {node->height, 0, NULL, 0, 0, 0};
  int rc = 0;
  size_t j = 0;
  for (size_t i = 0; i < node->n; i++) {
    size_t end = nm;
    if (i + 1 < node->n) {
      end = j;
      const wentry *nx = &node->e[i + 1];
      while (end < nm &&
             ocdbt_slice_cmp((ocdbt_slice){m[end].key, m[end].klen}, (ocdbt_slice){nx->key, nx->klen}) < 0)
        end++;
    }
    const wentry *c = &node->e[i];
    if (end == j) {
      pnode w = {(uint8_t)(node->height - 1), 1, NULL, 0, 0, 0};
      if ((rc = pn_push(&w, c)) || (rc = pl_push(&items, &w))) {
        free(w.e);
        goto out;
      }
      items.p[items.n - 1].bytes = a->max; /* an untouched child counts as full */
      continue;
    }
    if ((rc = apply_node(a, c->ref, (uint8_t)(node->height - 1), c->key, c->cprefix, m + j, end - j,
                         &items)))
      goto out;
    j = end;
  }
  if ((rc = settle_children(a, &items, (uint8_t)(node->height - 1), &parent))) goto out;
  if (parent.n == 0) goto out; /* everything below was deleted */
  rc = split_into(a, &parent, out);
out:
  free(parent.e);
  pl_free(&items);
  return rc;
}

/* Applies m to the subtree at ref; appends its replacement pending nodes
 * (height `height`, possibly none) to *out. */
static int apply_node(actx *a, st_ref ref, uint8_t height, const uint8_t *prefix, size_t pn,
                      const st_mut *m, size_t nm, plist *out) {
  pnode cur = {height, 0, NULL, 0, 0, 0};
  int rc = 0;
  if (ref.file != ST_NOFILE && (rc = materialize(a, ref, height, prefix, pn, &cur))) goto out;
  if (height == 0) {
    pnode merged = {0, 0, NULL, 0, 0, 0};
    if ((rc = merge_leaf(&cur, m, nm, &merged))) {
      free(merged.e);
      goto out;
    }
    if (merged.n == 0) {
      free(merged.e);
      goto out;
    }
    rc = split_into(a, &merged, out);
    free(merged.e);
  } else {
    rc = apply_interior(a, &cur, m, nm, out);
  }
out:
  free(cur.e);
  return rc;
}

static void actx_free(actx *a) {
  for (size_t i = 0; i < a->npins; i++) nc__release(a->db, a->pins[i]);
  free(a->pins);
  for (size_t i = 0; i < a->nchunks; i++) free(a->chunks[i]);
  free(a->chunks);
}

int bt__apply(st_db *db, st_writer *w, const st_root *root, const st_mut *muts, size_t n,
              st_root *out) {
  actx a;
  memset(&a, 0, sizeof a);
  a.db = db;
  a.w = w;
  a.max = db->cfg.max_decoded_node_bytes;
  a.min = a.max / 4;
  plist level = {0};
  uint8_t height = root->ref.file == ST_NOFILE ? 0 : root->height;
  if (height >= ST_MAX_TREE_HEIGHT)
    return strata_err(STRATA_EINTERNAL, "commit: the B+tree is %u levels high (at most %u)", height,
                      ST_MAX_TREE_HEIGHT);
  int rc = apply_node(&a, root->ref, height, NULL, 0, muts, n, &level);
  if (rc) goto out;
  for (;;) {
    if (level.n == 0) {
      memset(out, 0, sizeof *out);
      out->ref = (st_ref){ST_NOFILE, OCDBT_MISSING, OCDBT_MISSING};
      break;
    }
    pnode *p = &level.p[0];
    if (level.n == 1 && p->height > 0 && p->n == 1) {
      /* A root with one child: the child becomes the root (rewritten with
       * full keys when its keys are relative to a prefix). */
      wentry c = p->e[0];
      if (c.cprefix == 0) {
        out->height = (uint8_t)(p->height - 1);
        out->ref = c.ref;
        out->stats = c.stats;
        break;
      }
      pnode q = {0};
      if ((rc = materialize(&a, c.ref, (uint8_t)(p->height - 1), c.key, c.cprefix, &q))) {
        free(q.e);
        goto out;
      }
      free(p->e);
      *p = q;
      continue;
    }
    if (level.n == 1) {
      wentry e;
      if ((rc = write_node(&a, p, 1, &e))) goto out;
      out->height = p->height;
      out->ref = e.ref;
      out->stats = e.stats;
      break;
    }
    /* Each round at least halves the nodes (split_into), so the height stays
     * near log2 of the leaves; a tree that would grow past the bound is an
     * engine bug, and the commit fails instead of writing for ever. */
    if (p->height + 1 >= ST_MAX_TREE_HEIGHT) {
      rc = strata_err(STRATA_EINTERNAL,
                      "commit: splitting %zu nodes of height %u would make the B+tree higher than %u "
                      "levels; the split makes no progress",
                      level.n, p->height, ST_MAX_TREE_HEIGHT);
      goto out;
    }
    pnode parent = {(uint8_t)(p->height + 1), 0, NULL, 0, 0, 0};
    for (size_t i = 0; i < level.n; i++) {
      wentry e;
      if ((rc = write_node(&a, &level.p[i], 0, &e)) || (rc = pn_push(&parent, &e))) {
        free(parent.e);
        goto out;
      }
    }
    pl_free(&level);
    rc = split_into(&a, &parent, &level);
    free(parent.e);
    if (rc) goto out;
  }
out:
  pl_free(&level);
  actx_free(&a);
  return rc;
}
