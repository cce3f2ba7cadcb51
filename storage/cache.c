/*
 * The engine's two shared tables: the data file table (path <-> interned id,
 * with a read handle per file) and the bounded cache of decoded nodes, keyed
 * by (file id, offset). Nodes are immutable once written, so a cached node is
 * never invalidated; it is only evicted, least recently used first, when the
 * charged bytes exceed the cap and nobody pins it.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "common/mutex.h"
#include "common/err.h"
#include "storage/engine_int.h"

/* --- file table --------------------------------------------------------------- */

int ft__init(ft_table *t, size_t max_open) {
  memset(t, 0, sizeof *t);
  strata_mutex_init(&t->mu);
  t->lru.lnext = t->lru.lprev = &t->lru;
  t->max_open = max_open ? max_open : 1;
  return 0;
}

void ft__destroy(ft_table *t) {
  for (size_t i = 0; i < t->n; i++) {
    bs_close(t->e[i]->rh);
    free(t->e[i]->path);
    free(t->e[i]);
  }
  free(t->e);
  free(t->hash);
  strata_mutex_destroy(&t->mu);
}

static int ft_rehash(ft_table *t) {
  size_t cap = t->hcap ? t->hcap * 2 : 64;
  uint32_t *h = calloc(cap, sizeof *h);
  if (!h) return strata_err(STRATA_ENOMEM, "file table");
  for (size_t i = 0; i < t->n; i++) {
    size_t j = st__hash_bytes(t->e[i]->path, strlen(t->e[i]->path)) & (cap - 1);
    while (h[j]) j = (j + 1) & (cap - 1);
    h[j] = (uint32_t)i + 1;
  }
  free(t->hash);
  t->hash = h;
  t->hcap = cap;
  return 0;
}

int ft__intern(st_db *db, const char *path, size_t n, size_t base_len, uint32_t *id) {
  ft_table *t = &db->ft;
  int rc = 0;
  strata_mutex_lock(&t->mu);
  if ((t->n + 1) * 2 > t->hcap && (rc = ft_rehash(t))) goto out;
  size_t j = st__hash_bytes(path, n) & (t->hcap - 1);
  for (; t->hash[j]; j = (j + 1) & (t->hcap - 1)) {
    ft_entry *e = t->e[t->hash[j] - 1];
    if (strlen(e->path) == n && !memcmp(e->path, path, n)) {
      *id = t->hash[j] - 1;
      goto out;
    }
  }
  if (strata_grow(&t->e, &t->cap, t->n + 1, sizeof *t->e, 64)) {
    rc = strata_err(STRATA_ENOMEM, "file table");
    goto out;
  }
  ft_entry *e = calloc(1, sizeof *e);
  if (!e || !(e->path = malloc(n + 1))) {
    free(e);
    rc = strata_err(STRATA_ENOMEM, "file table");
    goto out;
  }
  memcpy(e->path, path, n);
  e->path[n] = 0;
  e->base_len = base_len;
  e->vcrc = -1;
  t->e[t->n] = e;
  t->hash[j] = (uint32_t)t->n + 1;
  *id = (uint32_t)t->n++;
out:
  strata_mutex_unlock(&t->mu);
  return rc;
}

const char *ft__path(st_db *db, uint32_t id, size_t *base_len) {
  strata_mutex_lock(&db->ft.mu);
  ft_entry *e = db->ft.e[id];
  strata_mutex_unlock(&db->ft.mu);
  if (base_len) *base_len = e->base_len;
  return e->path;
}

/* --- open read handles: a bounded LRU (ft.mu held) --- */

static void fh_unlink(ft_entry *e) {
  e->lprev->lnext = e->lnext;
  e->lnext->lprev = e->lprev;
}

static void fh_front(ft_table *t, ft_entry *e) {
  strata_mutex_assert_held(&t->mu);
  e->lnext = t->lru.lnext;
  e->lprev = &t->lru;
  t->lru.lnext->lprev = e;
  t->lru.lnext = e;
}

static void fh_close(ft_table *t, ft_entry *e) {
  strata_mutex_assert_held(&t->mu);
  fh_unlink(e);
  bs_close(e->rh);
  e->rh = NULL;
  t->nopen--;
  t->closes++;
}

/* Closes unpinned handles, least recently used first, until at most `keep`
 * are open (pinned ones stay: a reader is in pread on them). */
static void fh_trim(ft_table *t, size_t keep) {
  strata_mutex_assert_held(&t->mu);
  ft_entry *e = t->lru.lprev;
  while (t->nopen > keep && e != &t->lru) {
    ft_entry *prev = e->lprev;
    if (!e->rh_refs) fh_close(t, e);
    e = prev;
  }
}

/* A pinned read handle of file id: release with ft_unpin. Opening happens
 * under ft.mu (first use of a file, or after its handle was evicted). */
static int ft_pin(st_db *db, uint32_t id, bs_file **out) {
  ft_table *t = &db->ft;
  int rc = 0;
  strata_mutex_lock(&t->mu);
  ft_entry *e = t->e[id];
  if (e->rh) {
    fh_unlink(e);
  } else {
    fh_trim(t, t->max_open - 1);
    rc = bs_open_read(db->base, e->path, &e->rh);
    /* Out of descriptors for another reason (the process's other files):
     * give back every unpinned handle and try once more. */
    if (rc && rc != STRATA_ENOTFOUND && t->nopen) {
      fh_trim(t, 0);
      rc = bs_open_read(db->base, e->path, &e->rh);
    }
    if (rc) {
      e->rh = NULL;
      strata_mutex_unlock(&t->mu);
      return rc;
    }
    t->nopen++;
    t->opens++;
  }
  fh_front(t, e);
  e->rh_refs++;
  *out = e->rh;
  strata_mutex_unlock(&t->mu);
  return 0;
}

static void ft_unpin(st_db *db, uint32_t id) {
  ft_table *t = &db->ft;
  strata_mutex_lock(&t->mu);
  ft_entry *e = t->e[id];
  if (--e->rh_refs == 0 && t->nopen > t->max_open) fh_close(t, e);
  strata_mutex_unlock(&t->mu);
}

/* The base store's codes as they are: ENOTFOUND (no file), ERANGE (short). */
static int ft_pread_raw(st_db *db, uint32_t id, uint64_t off, void *dst, size_t n) {
  bs_file *f;
  int rc = ft_pin(db, id, &f);
  if (rc) return rc;
  rc = bs_pread(f, off, dst, n);
  ft_unpin(db, id);
  return rc;
}

/* A file that a committed node or value refers to must exist and be long
 * enough: a missing or short one is damage (STRATA_ECORRUPT naming the
 * file), never "key absent". The one place that maps these codes, for node
 * loads and value reads alike. */
static int ft_damaged(st_db *db, uint32_t id, int rc) {
  if (rc != STRATA_ENOTFOUND && rc != STRATA_ERANGE) return rc;
  const char *path = ft__path(db, id, NULL);
  return strata_err_wrap(STRATA_ECORRUPT, "%s, referenced by the database, is %s", path,
                         rc == STRATA_ENOTFOUND ? "missing" : "too short");
}

int ft__pread(st_db *db, uint32_t id, uint64_t off, void *dst, size_t n) {
  int rc = ft_pread_raw(db, id, off, dst, n);
  return rc ? ft_damaged(db, id, rc) : 0;
}

int ft__size(st_db *db, uint32_t id, uint64_t *size) {
  bs_file *f;
  int rc = ft_pin(db, id, &f);
  if (rc) return rc;
  rc = bs_size(f, size);
  ft_unpin(db, id);
  return rc;
}

/* 1 when the path names one of Strata's own data files of a committed
 * generation: "d/" + 16 hex digits of a generation <= the latest + 16 random
 * ones. The path comes from a node's data file table (under the node's CRC)
 * and st_txn_put_ref refuses such names, so this cannot be damaged the way
 * the file's header can. tensorstore names its files with 32 random hex
 * digits: one is taken for Strata's only when its first 64 random bits are
 * <= the latest generation (probability ~ latest / 2^64). */
static int strata_written(st_db *db, const char *path) {
  uint64_t g;
  if (strncmp(path, ST_DATA_DIR "/", 2) || !st__data_file_generation(path + 2, &g)) return 0;
  strata_mutex_lock(&db->mu);
  uint64_t latest = db->latest.generation;
  strata_mutex_unlock(&db->mu);
  return g >= 1 && g <= latest;
}

int ft__value_crc(st_db *db, uint32_t id, int *has_crc) {
  strata_mutex_lock(&db->ft.mu);
  int v = db->ft.e[id]->vcrc;
  strata_mutex_unlock(&db->ft.mu);
  const char *path = ft__path(db, id, NULL);
  if (v < 0) {
    char hdr[ST_DATA_MAGIC_LEN];
    int rc = ft_pread_raw(db, id, 0, hdr, sizeof hdr);
    /* shorter than the magic: not a Strata data file; missing: damage */
    if (rc && rc != STRATA_ERANGE) return ft_damaged(db, id, rc);
    v = !rc && !memcmp(hdr, ST_DATA_MAGIC, ST_DATA_MAGIC_LEN);
    /* Whether values are checked never rests on the header alone: one of
     * Strata's own files without its magic is damaged, never foreign. */
    if (!v && strata_written(db, path)) v = 2;
    strata_mutex_lock(&db->ft.mu);
    db->ft.e[id]->vcrc = v;
    strata_mutex_unlock(&db->ft.mu);
  }
  if (v == 2)
    return strata_err(STRATA_ECORRUPT,
                      "%s: damaged header: a Strata data file must start with the " ST_DATA_MAGIC_NAME
                      " magic, so its values' checksums cannot be located",
                      path);
  *has_crc = v;
  return 0;
}

/* --- node cache --------------------------------------------------------------- */

int nc__init(nc_cache *c, size_t cap) {
  memset(c, 0, sizeof *c);
  strata_mutex_init(&c->mu);
  c->nbuckets = 1024;
  c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
  if (!c->buckets) return strata_err(STRATA_ENOMEM, "node cache");
  c->lru.next = c->lru.prev = &c->lru;
  c->cap = cap;
  return 0;
}

static void cn_free(cnode *n) {
  if (n->kind == CN_BTREE) ocdbt_btnode_free(&n->u.bt);
  else ocdbt_vtnode_free(&n->u.vt);
  free(n->files);
  free(n);
}

void nc__destroy(nc_cache *c) {
  cnode *n = c->lru.next;
  while (n != &c->lru) {
    cnode *next = n->next;
    cn_free(n);
    n = next;
  }
  free(c->buckets);
  strata_mutex_destroy(&c->mu);
}

static size_t bucket_of(const nc_cache *c, st_ref r) {
  uint64_t h = (r.offset * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)r.file * 0xc2b2ae3d27d4eb4full);
  return (size_t)(h ^ (h >> 32)) & (c->nbuckets - 1);
}

static void lru_unlink(cnode *n) {
  n->prev->next = n->next;
  n->next->prev = n->prev;
}

static void lru_front(nc_cache *c, cnode *n) {
  n->next = c->lru.next;
  n->prev = &c->lru;
  c->lru.next->prev = n;
  c->lru.next = n;
}

static void hash_remove(nc_cache *c, cnode *n) {
  cnode **pp = &c->buckets[bucket_of(c, n->ref)];
  while (*pp != n) pp = &(*pp)->hnext;
  *pp = n->hnext;
}

/* Evicts unpinned nodes from the cold end until under the cap. mu held. */
static void evict(nc_cache *c) {
  strata_mutex_assert_held(&c->mu);
  cnode *n = c->lru.prev;
  while (c->bytes > c->cap && n != &c->lru) {
    cnode *prev = n->prev;
    if (n->refs == 1) {
      lru_unlink(n);
      hash_remove(c, n);
      c->bytes -= n->charge;
      c->count--;
      cn_free(n);
    }
    n = prev;
  }
}

static void grow(nc_cache *c) {
  size_t old_n = c->nbuckets;
  cnode **old = c->buckets, **b = calloc(old_n * 2, sizeof *b);
  if (!b) return; /* longer chains, still correct */
  c->buckets = b;
  c->nbuckets = old_n * 2;
  for (size_t i = 0; i < old_n; i++) {
    cnode *n = old[i];
    while (n) {
      cnode *next = n->hnext;
      size_t j = bucket_of(c, n->ref);
      n->hnext = b[j];
      b[j] = n;
      n = next;
    }
  }
  free(old);
}

/* What a decoded node costs in memory: its entries, keys, inline values and
 * table (the arena holds exactly these), plus the cache's own bookkeeping. */
static size_t decoded_bytes(const cnode *n) {
  size_t b = sizeof *n + 64;
  if (n->kind == CN_BTREE) {
    const ocdbt_btnode *t = &n->u.bt;
    b += t->n * (t->height ? sizeof(ocdbt_interior_entry) : sizeof(ocdbt_leaf_entry));
    for (size_t i = 0; i < t->n; i++)
      b += t->height ? t->children[i].key.n : t->leaves[i].key.n + t->leaves[i].value.n;
    b += t->dft.n * (sizeof(ocdbt_file) + sizeof(uint32_t) + 48);
  } else {
    const ocdbt_vtnode *v = &n->u.vt;
    b += v->n * (v->height ? sizeof(ocdbt_vnode_ref) : sizeof(ocdbt_version));
    b += v->dft.n * (sizeof(ocdbt_file) + sizeof(uint32_t) + 48);
  }
  return b;
}

/* Reads and decodes the node at ref; translates its file table to ids. */
static int load(st_db *db, st_ref ref, int kind, cnode **out) {
  size_t base_len = 0;
  const char *path = ft__path(db, ref.file, &base_len);
  uint8_t *raw = malloc(ref.length ? ref.length : 1);
  cnode *n = calloc(1, sizeof *n);
  int rc = 0;
  if (!raw || !n) {
    rc = strata_err(STRATA_ENOMEM, "reading node in %s", path);
    goto out;
  }
  n->ref = ref;
  n->kind = kind;
  if ((rc = ft__pread(db, ref.file, ref.offset, raw, ref.length))) {
    rc = strata_err_wrap(rc, "%s node at offset %llu", kind == CN_BTREE ? "btree" : "version tree",
                         (unsigned long long)ref.offset);
    goto out;
  }
  const ocdbt_dft *dft;
  if (kind == CN_BTREE) {
    rc = ocdbt_btnode_decode(raw, ref.length, base_len, &n->u.bt);
    dft = &n->u.bt.dft;
  } else {
    rc = ocdbt_vtnode_decode(raw, ref.length, base_len, &n->u.vt);
    dft = &n->u.vt.dft;
  }
  if (rc) {
    rc = strata_err_wrap(rc, "%s, offset %llu", path, (unsigned long long)ref.offset);
    goto out;
  }
  n->files = malloc((dft->n ? dft->n : 1) * sizeof *n->files);
  if (!n->files) {
    rc = strata_err(STRATA_ENOMEM, "node files");
    goto out;
  }
  char stack[512];
  for (size_t i = 0; i < dft->n; i++) {
    const ocdbt_file *f = &dft->files[i];
    size_t len = base_len + f->base_path.n + f->relative_path.n;
    char *p = len <= sizeof stack ? stack : malloc(len);
    if (!p) {
      rc = strata_err(STRATA_ENOMEM, "node files");
      goto out;
    }
    memcpy(p, path, base_len);
    if (f->base_path.n) memcpy(p + base_len, f->base_path.p, f->base_path.n);
    if (f->relative_path.n) memcpy(p + base_len + f->base_path.n, f->relative_path.p, f->relative_path.n);
    rc = ft__intern(db, p, len, base_len + f->base_path.n, &n->files[i]);
    if (p != stack) free(p);
    if (rc) goto out;
  }
  n->charge = decoded_bytes(n);
  *out = n;
  n = NULL;
out:
  free(raw);
  if (n) cn_free(n);
  return rc;
}

/* The node linked at exactly ref with that kind, or NULL. c->mu held. */
static cnode *find_locked(nc_cache *c, st_ref ref, int kind) {
  strata_mutex_assert_held(&c->mu);
  for (cnode *o = c->buckets[bucket_of(c, ref)]; o; o = o->hnext)
    if (o->ref.file == ref.file && o->ref.offset == ref.offset && o->ref.length == ref.length &&
        o->kind == kind)
      return o;
  return NULL;
}

/* Links n with `refs` pins (the cache's own included) and evicts down to the
 * cap. c->mu held. */
static void link_locked(nc_cache *c, cnode *n, int refs) {
  strata_mutex_assert_held(&c->mu);
  if (c->count + 1 > c->nbuckets) grow(c);
  n->refs = refs;
  size_t b = bucket_of(c, n->ref);
  n->hnext = c->buckets[b];
  c->buckets[b] = n;
  lru_front(c, n);
  c->bytes += n->charge;
  c->count++;
  evict(c);
}

int nc__get(st_db *db, st_ref ref, int kind, cnode **out) {
  nc_cache *c = &db->cache;
  strata_mutex_lock(&c->mu);
  cnode *hit = find_locked(c, ref, kind);
  if (hit) {
    hit->refs++;
    c->hits++;
    if (c->lru.next != hit) {
      lru_unlink(hit);
      lru_front(c, hit);
    }
    strata_mutex_unlock(&c->mu);
    *out = hit;
    return 0;
  }
  c->misses++;
  strata_mutex_unlock(&c->mu);

  cnode *n = NULL;
  int rc = load(db, ref, kind, &n);
  if (rc) return rc;
  strata_mutex_lock(&c->mu);
  /* Another reader may have loaded it meanwhile: keep theirs. */
  cnode *o = find_locked(c, ref, kind);
  if (o) {
    o->refs++;
    strata_mutex_unlock(&c->mu);
    cn_free(n);
    *out = o;
    return 0;
  }
  link_locked(c, n, 2); /* the cache's and the caller's */
  strata_mutex_unlock(&c->mu);
  *out = n;
  return 0;
}

cnode *nc__new_btnode(const ocdbt_btnode *node, const uint32_t *files) {
  cnode *n = calloc(1, sizeof *n);
  if (!n) return NULL;
  n->kind = CN_BTREE;
  n->files = malloc((node->dft.n ? node->dft.n : 1) * sizeof *n->files);
  if (!n->files || ocdbt_btnode_clone(node, &n->u.bt)) {
    free(n->files);
    free(n);
    return NULL;
  }
  if (node->dft.n) memcpy(n->files, files, node->dft.n * sizeof *files);
  n->charge = decoded_bytes(n);
  return n;
}

void nc__put_new(st_db *db, st_ref ref, cnode *n) {
  n->ref = ref;
  nc_cache *c = &db->cache;
  strata_mutex_lock(&c->mu);
  if (find_locked(c, ref, CN_BTREE)) cn_free(n); /* cannot happen: a new file */
  else link_locked(c, n, 1);                    /* the cache's own pin */
  strata_mutex_unlock(&c->mu);
}

void nc__free_new(cnode *n) {
  if (n) cn_free(n);
}

int nc__get_scan(st_db *db, st_ref ref, int kind, cnode **out) {
  nc_cache *c = &db->cache;
  strata_mutex_lock(&c->mu);
  cnode *hit = find_locked(c, ref, kind);
  if (hit) hit->refs++; /* not moved up the LRU: a scan does not make a node hot */
  strata_mutex_unlock(&c->mu);
  if (hit) {
    *out = hit;
    return 0;
  }
  cnode *n = NULL;
  int rc = load(db, ref, kind, &n);
  if (rc) return rc;
  n->unlinked = 1; /* nc__release_scan frees it */
  *out = n;
  return 0;
}

void nc__release_scan(st_db *db, cnode *n) {
  if (n && n->unlinked) cn_free(n);
  else nc__release(db, n);
}

void nc__release(st_db *db, cnode *n) {
  if (!n) return;
  nc_cache *c = &db->cache;
  strata_mutex_lock(&c->mu);
  /* The cache's own pin stays while the node is linked, and evict() unlinks
   * (and frees) only nodes nobody else pins, so this never drops the last. */
  assert(n->refs > 1);
  if (--n->refs == 1 && c->bytes > c->cap) evict(c);
  strata_mutex_unlock(&c->mu);
}
