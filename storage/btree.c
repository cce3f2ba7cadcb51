/*
 * Reading the copy-on-write B+tree of one generation: point lookup, ordered
 * listing with pagination, and the diff of two generations that skips every
 * subtree the two share (same node reference => same content). Keys inside a
 * node are relative to its implicit prefix (docs/format.md): the root holds
 * full keys; a child's prefix is the parent's plus the first
 * subtree_common_prefix_length bytes of its entry's key.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/engine_int.h"

/* Compares prefix||rel with k. */
static int cmp_split(const uint8_t *prefix, size_t pn, const uint8_t *rel, size_t rn, const uint8_t *k,
                     size_t kn) {
  size_t n = pn < kn ? pn : kn;
  int c = n ? memcmp(prefix, k, n) : 0;
  if (c) return c;
  if (kn < pn) return 1;
  /* k is NULL for an empty start (a zeroed st_range): no offset on it. */
  return ocdbt_slice_cmp((ocdbt_slice){rel, rn}, (ocdbt_slice){k ? k + pn : k, kn - pn});
}

static st_ref child_ref(const cnode *n, const ocdbt_ref *r) {
  st_ref x = {n->files[r->file], r->offset, r->length};
  return x;
}

/* Index of the last entry whose key <= k (relative), or -1. */
static long upper_index(const cnode *n, const uint8_t *k, size_t kn) {
  const ocdbt_btnode *b = &n->u.bt;
  long lo = 0, hi = (long)b->n - 1, ans = -1;
  while (lo <= hi) {
    long mid = (lo + hi) / 2;
    ocdbt_slice s = b->height ? b->children[mid].key : b->leaves[mid].key;
    if (ocdbt_slice_cmp(s, (ocdbt_slice){k, kn}) <= 0) {
      ans = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  return ans;
}

static int check_height(st_db *db, const cnode *n, uint8_t want) {
  if (n->u.bt.height != want)
    return strata_err(STRATA_ECORRUPT, "%s offset %llu: btree node has height %u, its reference says %u",
                      ft__path(db, n->ref.file, NULL), (unsigned long long)n->ref.offset, n->u.bt.height,
                      want);
  return 0;
}

int bt__find(st_db *db, const st_root *root, const uint8_t *key, size_t klen, st_entry *out) {
  memset(out, 0, sizeof *out);
  if (root->ref.file == ST_NOFILE) return STRATA_ENOTFOUND;
  st_ref ref = root->ref;
  uint8_t height = root->height;
  size_t p = 0; /* key[0:p] is the current node's prefix */
  for (;;) {
    cnode *n;
    int rc = nc__get(db, ref, CN_BTREE, &n);
    if (rc) return rc;
    if ((rc = check_height(db, n, height))) {
      nc__release(db, n);
      return rc;
    }
    long i = upper_index(n, key + p, klen - p);
    if (height == 0) {
      const ocdbt_leaf_entry *e = i >= 0 ? &n->u.bt.leaves[i] : NULL;
      if (!e || e->key.n != klen - p || (e->key.n && memcmp(e->key.p, key + p, e->key.n))) {
        nc__release(db, n);
        return STRATA_ENOTFOUND;
      }
      out->kind = e->kind;
      out->value = e->value.p;
      out->vlen = e->value.n;
      if (e->kind == OCDBT_VALUE_INDIRECT) out->ref = child_ref(n, &e->ref);
      out->pin = n;
      return 0;
    }
    if (i < 0) {
      nc__release(db, n);
      return STRATA_ENOTFOUND;
    }
    const ocdbt_interior_entry *c = &n->u.bt.children[i];
    size_t scpl = c->subtree_common_prefix_length;
    if (klen - p < scpl || memcmp(c->key.p, key + p, scpl)) {
      nc__release(db, n);
      return STRATA_ENOTFOUND;
    }
    p += scpl;
    ref = child_ref(n, &c->ref);
    height--;
    nc__release(db, n);
  }
}

int bt__read_value(st_db *db, const st_entry *e, strata_buf *out) {
  if (e->kind == OCDBT_VALUE_INLINE) return strata_buf_append(out, e->value, e->vlen);
  int has_crc = 0, rc;
  if ((rc = ft__value_crc(db, e->ref.file, &has_crc))) return rc;
  if (e->ref.length > SIZE_MAX - 8) return strata_err(STRATA_ETOOBIG, "value too large");
  size_t n = (size_t)e->ref.length, crc = has_crc ? 4 : 0;
  /* One read: the value and, in Strata's data files, the CRC behind it. */
  if ((rc = strata_buf_reserve(out, n + crc))) return rc;
  uint8_t *p = out->p + out->len;
  if ((rc = ft__pread(db, e->ref.file, e->ref.offset, p, n + crc)))
    return strata_err_wrap(rc, "value at offset %llu (%zu bytes%s)", (unsigned long long)e->ref.offset,
                           n, crc ? " and its checksum" : "");
  if (crc && (uint32_t)ocdbt_load_le(p + n, 4) != ocdbt_crc32c(0, p, n))
    return strata_err(STRATA_ECORRUPT, "%s: checksum mismatch in value at offset %llu (%zu bytes)",
                      ft__path(db, e->ref.file, NULL), (unsigned long long)e->ref.offset, n);
  out->len += n;
  return 0;
}

int bt__entry_equal(const st_entry *a, const st_entry *b) {
  if (a->kind != b->kind) return 0;
  if (a->kind == OCDBT_VALUE_INLINE)
    return a->vlen == b->vlen && (!a->vlen || !memcmp(a->value, b->value, a->vlen));
  return a->ref.file == b->ref.file && a->ref.offset == b->ref.offset && a->ref.length == b->ref.length;
}

/* --- listing -------------------------------------------------------------------- */

typedef struct lst {
  st_db *db;
  const st_range *r;
  size_t limit;
  st_list_result *res;
  size_t cap;
  int done;
} lst;

static int emit(lst *L, const uint8_t *prefix, size_t pn, const cnode *n, size_t i) {
  const ocdbt_leaf_entry *e = &n->u.bt.leaves[i];
  size_t kl = pn + e->key.n;
  st_list_result *res = L->res;
  if (L->limit && res->n == L->limit) {
    res->more = 1;
    L->done = 1;
    int rc = strata_buf_append(&res->next, prefix, pn);
    return rc ? rc : strata_buf_append(&res->next, e->key.p, e->key.n);
  }
  if (strata_grow(&res->items, &L->cap, res->n + 1, sizeof *res->items, 64))
    return strata_err(STRATA_ENOMEM, "listing");
  st_kv *kv = &res->items[res->n];
  memset(kv, 0, sizeof *kv);
  kv->key = malloc(kl ? kl : 1);
  if (!kv->key) return strata_err(STRATA_ENOMEM, "listing");
  memcpy(kv->key, prefix, pn);
  if (e->key.n) memcpy(kv->key + pn, e->key.p, e->key.n);
  kv->klen = kl;
  res->n++;
  if (L->r->keys_only) return 0;
  st_entry en = {e->kind, e->value.p, e->value.n, {0, 0, 0}, NULL};
  if (e->kind == OCDBT_VALUE_INDIRECT) en.ref = child_ref(n, &e->ref);
  strata_buf v = STRATA_BUF_INIT;
  int rc = bt__read_value(L->db, &en, &v);
  if (rc) {
    strata_buf_free(&v);
    return rc;
  }
  kv->value = v.p ? v.p : malloc(1);
  kv->vlen = v.len;
  return kv->value ? 0 : strata_err(STRATA_ENOMEM, "listing");
}

/* Lists the subtree at ref (prefix = its full implicit prefix), from the
 * range's start on, until its end or the limit. */
static int list_node(lst *L, st_ref ref, uint8_t height, const uint8_t *prefix, size_t pn) {
  const st_range *r = L->r;
  cnode *n;
  int rc = nc__get(L->db, ref, CN_BTREE, &n);
  if (rc) return rc;
  if ((rc = check_height(L->db, n, height))) goto out;
  const ocdbt_btnode *b = &n->u.bt;
  /* First entry that may hold keys >= start. */
  size_t i = 0;
  if (cmp_split(prefix, pn, (const uint8_t *)"", 0, r->start, r->start_len) < 0) {
    /* start is past the prefix: locate it */
    if (r->start_len >= pn && !memcmp(r->start, prefix, pn)) {
      long j = upper_index(n, (const uint8_t *)r->start + pn, r->start_len - pn);
      i = j < 0 ? 0 : (size_t)j;
    } else {
      i = b->n; /* every key here sorts before start */
    }
  }
  for (; i < b->n && !L->done; i++) {
    if (height == 0) {
      ocdbt_slice k = b->leaves[i].key;
      if (cmp_split(prefix, pn, k.p, k.n, r->start, r->start_len) < 0) continue;
      if (r->has_end && cmp_split(prefix, pn, k.p, k.n, r->end, r->end_len) >= 0) {
        L->done = 1;
        break;
      }
      if ((rc = emit(L, prefix, pn, n, i))) goto out;
      continue;
    }
    const ocdbt_interior_entry *c = &b->children[i];
    if (r->has_end && cmp_split(prefix, pn, c->key.p, c->key.n, r->end, r->end_len) >= 0) {
      L->done = 1;
      break;
    }
    size_t cpn = pn + c->subtree_common_prefix_length;
    uint8_t *cp = malloc(cpn ? cpn : 1);
    if (!cp) {
      rc = strata_err(STRATA_ENOMEM, "listing");
      goto out;
    }
    memcpy(cp, prefix, pn);
    memcpy(cp + pn, c->key.p, c->subtree_common_prefix_length);
    rc = list_node(L, child_ref(n, &c->ref), (uint8_t)(height - 1), cp, cpn);
    free(cp);
    if (rc) goto out;
  }
out:
  nc__release(L->db, n);
  return rc;
}

int st_list(st_snap *s, const st_range *r, size_t limit, st_list_result *out) {
  assert(s && r && out);
  assert(r->start || r->start_len == 0);
  assert(r->end || r->end_len == 0 || !r->has_end);
  memset(out, 0, sizeof *out);
  if (s->v.root.ref.file == ST_NOFILE) return 0;
  lst L = {s->db, r, limit, out, 0, 0};
  int rc = list_node(&L, s->v.root.ref, s->v.root.height, (const uint8_t *)"", 0);
  if (rc) st_list_result_free(out);
  return rc;
}

void st_list_result_free(st_list_result *res) {
  for (size_t i = 0; i < res->n; i++) {
    free(res->items[i].key);
    free(res->items[i].value);
  }
  free(res->items);
  strata_buf_free(&res->next);
  memset(res, 0, sizeof *res);
}

int st_prefix_range(const void *prefix, size_t n, st_range *r, strata_buf *end_buf) {
  assert((prefix || n == 0) && r && end_buf);
  memset(r, 0, sizeof *r);
  r->start = prefix;
  r->start_len = n;
  const uint8_t *p = prefix;
  size_t m = n;
  while (m && p[m - 1] == 0xff) m--;
  if (!m) return 0; /* all 0xff (or empty): no end */
  int rc = strata_buf_append(end_buf, p, m);
  if (rc) return rc;
  end_buf->p[m - 1]++;
  r->end = end_buf->p;
  r->end_len = m;
  r->has_end = 1;
  return 0;
}

/* --- diff ------------------------------------------------------------------------ */

typedef struct dframe {
  cnode *n;
  size_t i;
  strata_buf prefix;
} dframe;

typedef struct dcur {
  st_db *db;
  dframe f[40];
  int top; /* -1 = exhausted */
} dcur;

static void dcur_pop(dcur *c) {
  nc__release(c->db, c->f[c->top].n);
  strata_buf_free(&c->f[c->top].prefix);
  c->top--;
  if (c->top >= 0) c->f[c->top].i++;
}

/* Pops finished frames; afterwards the top frame has a current entry. */
static void dcur_settle(dcur *c) {
  while (c->top >= 0 && c->f[c->top].i >= c->f[c->top].n->u.bt.n) dcur_pop(c);
}

static int dcur_push(dcur *c, st_ref ref, uint8_t height, const uint8_t *prefix, size_t pn) {
  if (c->top + 1 >= (int)(sizeof c->f / sizeof c->f[0]))
    return strata_err(STRATA_ECORRUPT, "btree deeper than 40 levels");
  cnode *n;
  int rc = nc__get(c->db, ref, CN_BTREE, &n);
  if (rc) return rc;
  if ((rc = check_height(c->db, n, height))) {
    nc__release(c->db, n);
    return rc;
  }
  dframe *f = &c->f[++c->top];
  f->n = n;
  f->i = 0;
  memset(&f->prefix, 0, sizeof f->prefix);
  if ((rc = strata_buf_append(&f->prefix, prefix, pn))) return rc;
  return 0;
}

/* The current item's key (full, into kb) and whether it is a subtree. */
static int dcur_head(dcur *c, strata_buf *kb, int *subtree) {
  dframe *f = &c->f[c->top];
  const ocdbt_btnode *b = &f->n->u.bt;
  ocdbt_slice k = b->height ? b->children[f->i].key : b->leaves[f->i].key;
  kb->len = 0;
  int rc = strata_buf_append(kb, f->prefix.p, f->prefix.len);
  if (!rc) rc = strata_buf_append(kb, k.p, k.n);
  *subtree = b->height > 0;
  return rc;
}

static int dcur_descend(dcur *c) {
  dframe *f = &c->f[c->top];
  const ocdbt_interior_entry *e = &f->n->u.bt.children[f->i];
  strata_buf p = STRATA_BUF_INIT;
  int rc = strata_buf_append(&p, f->prefix.p, f->prefix.len);
  if (!rc) rc = strata_buf_append(&p, e->key.p, e->subtree_common_prefix_length);
  if (!rc) rc = dcur_push(c, child_ref(f->n, &e->ref), (uint8_t)(f->n->u.bt.height - 1), p.p, p.len);
  strata_buf_free(&p);
  return rc;
}

static void dcur_entry(dcur *c, st_entry *e) {
  dframe *f = &c->f[c->top];
  const ocdbt_leaf_entry *l = &f->n->u.bt.leaves[f->i];
  memset(e, 0, sizeof *e);
  e->kind = l->kind;
  e->value = l->value.p;
  e->vlen = l->value.n;
  if (l->kind == OCDBT_VALUE_INDIRECT) e->ref = child_ref(f->n, &l->ref);
}

static int same_subtree(dcur *a, dcur *b) {
  dframe *fa = &a->f[a->top], *fb = &b->f[b->top];
  const ocdbt_interior_entry *ea = &fa->n->u.bt.children[fa->i], *eb = &fb->n->u.bt.children[fb->i];
  st_ref ra = child_ref(fa->n, &ea->ref), rb = child_ref(fb->n, &eb->ref);
  return ra.file == rb.file && ra.offset == rb.offset && ra.length == rb.length &&
         fa->n->u.bt.height == fb->n->u.bt.height;
}

struct st_diff_iter {
  st_db *db;
  dcur A, B;            /* A: the older version (empty when none), B: the newer */
  strata_buf ka, kb;
  int done;
};

static void dcur_free(dcur *c) {
  while (c->top >= 0) {
    nc__release(c->db, c->f[c->top].n);
    strata_buf_free(&c->f[c->top].prefix);
    c->top--;
  }
}

void st_diff_close(st_diff_iter *it) {
  if (!it) return;
  dcur_free(&it->A);
  dcur_free(&it->B);
  strata_buf_free(&it->ka);
  strata_buf_free(&it->kb);
  free(it);
}

int st_diff_open(st_snap *sa, st_snap *sb, st_diff_iter **out) {
  assert(sb && out /* sa may be NULL: the empty version */);
  *out = NULL;
  st_diff_iter *it = calloc(1, sizeof *it);
  if (!it) return strata_err(STRATA_ENOMEM, "diff");
  st_db *db = sb->db;
  it->db = db;
  it->A = (dcur){db, {{0}}, -1};
  it->B = (dcur){db, {{0}}, -1};
  const st_root *rb = &sb->v.root, *ra = sa ? &sa->v.root : NULL;
  int rc = 0;
  if (ra && ra->ref.file == rb->ref.file && ra->ref.offset == rb->ref.offset && ra->ref.length == rb->ref.length)
    it->done = 1; /* the same tree: no change */
  else if (ra && ra->ref.file != ST_NOFILE)
    rc = dcur_push(&it->A, ra->ref, ra->height, NULL, 0);
  if (!rc && !it->done && rb->ref.file != ST_NOFILE) rc = dcur_push(&it->B, rb->ref, rb->height, NULL, 0);
  if (rc) {
    st_diff_close(it);
    return rc;
  }
  *out = it;
  return 0;
}

/* The walk: both cursors advance in key order; subtrees the versions share
 * are skipped without reading them. */
int st_diff_step(st_diff_iter *it, st_diff_fn fn, void *ctx, int *done) {
  assert(it && fn && done);
  dcur *A = &it->A, *B = &it->B;
  int rc = 0;
  while (!it->done) {
    dcur_settle(A);
    dcur_settle(B);
    if (A->top < 0 && B->top < 0) {
      it->done = 1;
      break;
    }
    int sta = 0, stb = 0, c;
    if (A->top >= 0 && (rc = dcur_head(A, &it->ka, &sta))) break;
    if (B->top >= 0 && (rc = dcur_head(B, &it->kb, &stb))) break;
    if (A->top < 0) c = 1;        /* only B left */
    else if (B->top < 0) c = -1;  /* only A left */
    else c = ocdbt_slice_cmp((ocdbt_slice){it->ka.p, it->ka.len}, (ocdbt_slice){it->kb.p, it->kb.len});
    if (sta && stb && c == 0 && same_subtree(A, B)) {
      A->f[A->top].i++;
      B->f[B->top].i++;
      continue;
    }
    /* Expand a subtree that starts first (or at the same key, the taller). */
    if (sta && (c < 0 || (c == 0 && (!stb || A->f[A->top].n->u.bt.height >= B->f[B->top].n->u.bt.height)))) {
      if ((rc = dcur_descend(A))) break;
      continue;
    }
    if (stb && c >= 0) {
      if ((rc = dcur_descend(B))) break;
      continue;
    }
    if (sta) c = 1;       /* A subtree after B's entry: B's entry is new */
    else if (stb) c = -1;
    if (c < 0) {
      rc = fn(ctx, it->ka.p, it->ka.len, 0);
      A->f[A->top].i++;
    } else if (c > 0) {
      rc = fn(ctx, it->kb.p, it->kb.len, 1);
      B->f[B->top].i++;
    } else {
      st_entry ea, eb;
      dcur_entry(A, &ea);
      dcur_entry(B, &eb);
      if (!bt__entry_equal(&ea, &eb)) rc = fn(ctx, it->kb.p, it->kb.len, 1);
      A->f[A->top].i++;
      B->f[B->top].i++;
    }
    if (rc == ST_DIFF_PAUSE) break; /* resumable: the change was consumed */
    if (rc) break;
  }
  if (rc && rc != ST_DIFF_PAUSE) it->done = 1; /* an error or a stop ends the walk */
  *done = it->done;
  return rc;
}

int st_diff(st_snap *sa, st_snap *sb, st_diff_fn fn, void *ctx) {
  assert(sb && fn);
  st_diff_iter *it;
  int done, rc = st_diff_open(sa, sb, &it);
  if (!rc) rc = st_diff_step(it, fn, ctx, &done);
  st_diff_close(it);
  return rc;
}
