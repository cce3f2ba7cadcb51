/*
 * Sample OCDBT objects for the codec tests, the fuzz seed generator and the
 * codec benchmark. Header-only: each program includes it once. Samples point
 * into static or caller-owned memory; nothing here allocates except where a
 * function says so.
 */
#ifndef STRATA_TESTS_CODEC_SAMPLES_H
#define STRATA_TESTS_CODEC_SAMPLES_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "storage/ocdbt.h"

#define S(str) ((ocdbt_slice){(const uint8_t *)(str), sizeof(str) - 1})

static inline ocdbt_config sample_config(int compression) {
  ocdbt_config c;
  memset(&c, 0, sizeof c);
  for (int i = 0; i < 16; i++) c.uuid[i] = (uint8_t)(0xa0 + i);
  c.manifest_kind = OCDBT_MANIFEST_SINGLE;
  c.max_inline_value_bytes = 100;
  c.max_decoded_node_bytes = 8 << 20;
  c.version_tree_arity_log2 = 4;
  c.compression = (uint8_t)compression;
  c.zstd_level = compression ? 3 : 0;
  return c;
}

/* Two data files, as Strata names them: d/<32 hex>. */
static ocdbt_file sample_files[3] = {
    {{(const uint8_t *)"", 0}, {(const uint8_t *)"d/0123456789abcdef0123456789abcdef", 34}},
    {{(const uint8_t *)"", 0}, {(const uint8_t *)"d/0123456789abcdef0123456789abcdff", 34}},
    {{(const uint8_t *)"base/", 5}, {(const uint8_t *)"d/ffffffffffffffffffffffffffffffff", 34}},
};

/* A leaf node of n entries: keys "prefix/%08u", values alternate inline
 * ("value-%u") and out of line. keybuf must hold n * 32 bytes, valbuf n * 32. */
static inline void sample_leaf(ocdbt_btnode *node, ocdbt_leaf_entry *e, size_t n, uint8_t *keybuf,
                               uint8_t *valbuf, size_t value_len) {
  memset(node, 0, sizeof *node);
  node->height = 0;
  node->dft = (ocdbt_dft){2, sample_files};
  node->n = n;
  node->leaves = e;
  for (size_t i = 0; i < n; i++) {
    uint8_t *k = keybuf + i * 32;
    int kn = snprintf((char *)k, 32, "prefix/%08zu", i);
    e[i].key = (ocdbt_slice){k, (size_t)kn};
    if (i % 3 == 2) {
      e[i].kind = OCDBT_VALUE_INDIRECT;
      e[i].ref = (ocdbt_ref){i % 2, i * 1000, 1000 + i};
      e[i].value = (ocdbt_slice){NULL, 0};
    } else {
      e[i].kind = OCDBT_VALUE_INLINE;
      uint8_t *v = valbuf + i * value_len;
      for (size_t j = 0; j < value_len; j++) v[j] = (uint8_t)(i * 31 + j);
      e[i].value = (ocdbt_slice){v, value_len};
      e[i].ref = (ocdbt_ref){0, 0, 0};
    }
  }
}

/* An interior node of n children with keys "prefix/%08u" (the first empty). */
static inline void sample_interior(ocdbt_btnode *node, ocdbt_interior_entry *e, size_t n,
                                   uint8_t *keybuf) {
  memset(node, 0, sizeof *node);
  node->height = 2;
  node->dft = (ocdbt_dft){3, sample_files};
  node->n = n;
  node->children = e;
  for (size_t i = 0; i < n; i++) {
    uint8_t *k = keybuf + i * 32;
    int kn = i ? snprintf((char *)k, 32, "prefix/%08zu", i * 7) : 0;
    e[i].key = (ocdbt_slice){k, (size_t)kn};
    e[i].subtree_common_prefix_length = i ? 7 : 0;
    e[i].ref = (ocdbt_ref){i % 3, i * 4096, 4000 + i};
    e[i].stats = (ocdbt_stats){100 + i, 65536 * (i + 1), i * 1000000};
  }
}

/* Version i (0-based) of generations first..first+n-1. */
static inline void sample_versions(ocdbt_version *v, size_t n, uint64_t first) {
  for (size_t i = 0; i < n; i++) {
    v[i].generation = first + i;
    v[i].root_height = (uint8_t)(i % 3);
    v[i].root = (ocdbt_ref){i % 2, 1000 * i, 200 + i};
    v[i].stats = (ocdbt_stats){10 * i + 1, 4096 * (i + 1), 7 * i};
    v[i].commit_time = 1763700000000000000ull + 1000003ull * (first + i);
  }
}

/* A single-kind manifest at latest generation 37 with arity 4 (16): inline
 * versions 33..37, a height-1 node covering 17..32 and ... 1..16 is inside the
 * height-1 block, so one reference at height 1 (generation 32). */
static inline void sample_manifest(ocdbt_manifest *m, ocdbt_version *v, ocdbt_vnode_ref *nodes,
                                   int compression) {
  memset(m, 0, sizeof *m);
  m->config = sample_config(compression);
  m->dft = (ocdbt_dft){2, sample_files};
  sample_versions(v, 5, 33);
  m->versions = v;
  m->n_versions = 5;
  nodes[0] = (ocdbt_vnode_ref){32, {1, 5000, 321}, 32, 1763700000000000000ull + 1000003ull, 1};
  m->nodes = nodes;
  m->n_nodes = 1;
}

/* --- structural equality (for round trips) ------------------------------------ */

static inline int slice_eq(ocdbt_slice a, ocdbt_slice b) {
  return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

static inline int dft_eq(const ocdbt_dft *a, const ocdbt_dft *b) {
  if (a->n != b->n) return 0;
  for (size_t i = 0; i < a->n; i++)
    if (!slice_eq(a->files[i].base_path, b->files[i].base_path) ||
        !slice_eq(a->files[i].relative_path, b->files[i].relative_path))
      return 0;
  return 1;
}

static inline int ref_eq(ocdbt_ref a, ocdbt_ref b) {
  return a.file == b.file && a.offset == b.offset && a.length == b.length;
}

static inline int stats_eq(ocdbt_stats a, ocdbt_stats b) {
  return a.num_keys == b.num_keys && a.num_tree_bytes == b.num_tree_bytes &&
         a.num_indirect_value_bytes == b.num_indirect_value_bytes;
}

static inline int btnode_eq(const ocdbt_btnode *a, const ocdbt_btnode *b) {
  if (a->height != b->height || a->n != b->n || !dft_eq(&a->dft, &b->dft)) return 0;
  for (size_t i = 0; i < a->n; i++) {
    if (a->height) {
      const ocdbt_interior_entry *x = &a->children[i], *y = &b->children[i];
      if (!slice_eq(x->key, y->key) || x->subtree_common_prefix_length != y->subtree_common_prefix_length ||
          !ref_eq(x->ref, y->ref) || !stats_eq(x->stats, y->stats))
        return 0;
    } else {
      const ocdbt_leaf_entry *x = &a->leaves[i], *y = &b->leaves[i];
      if (!slice_eq(x->key, y->key) || x->kind != y->kind) return 0;
      if (x->kind == OCDBT_VALUE_INLINE ? !slice_eq(x->value, y->value) : !ref_eq(x->ref, y->ref))
        return 0;
    }
  }
  return 1;
}

static inline int versions_eq(const ocdbt_version *a, const ocdbt_version *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i].generation != b[i].generation || a[i].root_height != b[i].root_height ||
        !ref_eq(a[i].root, b[i].root) || !stats_eq(a[i].stats, b[i].stats) ||
        a[i].commit_time != b[i].commit_time)
      return 0;
  return 1;
}

static inline int vrefs_eq(const ocdbt_vnode_ref *a, const ocdbt_vnode_ref *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (a[i].generation != b[i].generation || !ref_eq(a[i].ref, b[i].ref) ||
        a[i].num_generations != b[i].num_generations || a[i].commit_time != b[i].commit_time ||
        a[i].height != b[i].height)
      return 0;
  return 1;
}

static inline int config_eq(const ocdbt_config *a, const ocdbt_config *b) {
  return memcmp(a->uuid, b->uuid, 16) == 0 && a->manifest_kind == b->manifest_kind &&
         a->max_inline_value_bytes == b->max_inline_value_bytes &&
         a->max_decoded_node_bytes == b->max_decoded_node_bytes &&
         a->version_tree_arity_log2 == b->version_tree_arity_log2 &&
         a->compression == b->compression &&
         (a->compression == 0 || a->zstd_level == b->zstd_level);
}

static inline int manifest_eq(const ocdbt_manifest *a, const ocdbt_manifest *b) {
  if (!config_eq(&a->config, &b->config)) return 0;
  if (a->config.manifest_kind != OCDBT_MANIFEST_SINGLE) return 1;
  return dft_eq(&a->dft, &b->dft) && a->n_versions == b->n_versions &&
         versions_eq(a->versions, b->versions, a->n_versions) && a->n_nodes == b->n_nodes &&
         vrefs_eq(a->nodes, b->nodes, a->n_nodes);
}

static inline int vtnode_eq(const ocdbt_vtnode *a, const ocdbt_vtnode *b) {
  if (a->arity_log2 != b->arity_log2 || a->height != b->height || a->n != b->n ||
      !dft_eq(&a->dft, &b->dft))
    return 0;
  return a->height ? vrefs_eq(a->children, b->children, a->n) : versions_eq(a->versions, b->versions, a->n);
}

#endif
