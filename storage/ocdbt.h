/*
 * OCDBT format version 0: the in-memory form of every on-disk object and the
 * codecs between the two (tensorstore's kvstore/ocdbt format; docs/format.md
 * has the byte layouts). Encoders write exactly the spec's layout; decoders
 * validate every field the reader in tensorstore checks, and more, and never
 * read out of bounds whatever the input. Nothing here touches files.
 *
 * Ownership: a decoded object owns one arena (freed by its _free function);
 * every slice inside it points into that arena, never into the input, so the
 * input may be freed as soon as decode returns.
 */
#ifndef STRATA_STORAGE_OCDBT_H
#define STRATA_STORAGE_OCDBT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"

#define OCDBT_MANIFEST_MAGIC 0x0cdb3a2au
#define OCDBT_VTREE_MAGIC 0x0cdb1234u
#define OCDBT_BTREE_MAGIC 0x0cdb20deu

#define OCDBT_MAX_KEY_LENGTH 65535u       /* full key, prefix included */
#define OCDBT_MAX_PATH_LENGTH 65535u      /* full data file path, transitive part included */
#define OCDBT_MAX_INLINE_VALUE (1u << 20) /* the reader refuses larger inline values */
#define OCDBT_MAX_NODE_ENTRIES (1u << 20)
#define OCDBT_MAX_ARITY_LOG2 16
#define OCDBT_ZSTD_MIN_LEVEL (-131072)
#define OCDBT_ZSTD_MAX_LEVEL 22
/* Offset and length of a missing B+tree root (an empty tree). */
#define OCDBT_MISSING UINT64_MAX
/* A decoder refuses to materialize more than this many bytes for one object
 * (decompressed body, or keys rebuilt from prefix compression). */
#ifdef STRATA_FUZZING
#define OCDBT_MAX_DECODED_BYTES ((size_t)64 << 20)
#else
#define OCDBT_MAX_DECODED_BYTES ((size_t)1 << 30)
#endif

typedef struct ocdbt_slice {
  const uint8_t *p;
  size_t n;
} ocdbt_slice;

/* Byte-wise order of two strings, a proper prefix first: <0, 0 or >0. */
static inline int ocdbt_slice_cmp(ocdbt_slice a, ocdbt_slice b) {
  size_t n = a.n < b.n ? a.n : b.n;
  int c = n ? memcmp(a.p, b.p, n) : 0;
  if (c) return c;
  return a.n < b.n ? -1 : a.n > b.n;
}

/* Length of the longest common prefix of a and b. */
static inline size_t ocdbt_common_prefix(ocdbt_slice a, ocdbt_slice b) {
  size_t n = a.n < b.n ? a.n : b.n, i = 0;
  while (i < n && a.p[i] == b.p[i]) i++;
  return i;
}

enum ocdbt_compression { OCDBT_COMPRESSION_NONE = 0, OCDBT_COMPRESSION_ZSTD = 1 };
enum ocdbt_manifest_kind { OCDBT_MANIFEST_SINGLE = 0, OCDBT_MANIFEST_NUMBERED = 1 };
enum ocdbt_value_kind { OCDBT_VALUE_INLINE = 0, OCDBT_VALUE_INDIRECT = 1 };

typedef struct ocdbt_config {
  uint8_t uuid[16];
  uint8_t manifest_kind;            /* enum ocdbt_manifest_kind */
  uint32_t max_inline_value_bytes;
  uint32_t max_decoded_node_bytes;
  uint8_t version_tree_arity_log2;  /* 1..16 */
  uint8_t compression;              /* enum ocdbt_compression */
  int32_t zstd_level;               /* meaningful when compression is zstd */
} ocdbt_config;

/* One data file: full path = transitive path + base_path + relative_path. */
typedef struct ocdbt_file {
  ocdbt_slice base_path;
  ocdbt_slice relative_path;
} ocdbt_file;

/* The data file table of a manifest or node. Encoders write it in the order
 * given; ocdbt_dft_sort puts it in the canonical order tensorstore writes. */
typedef struct ocdbt_dft {
  size_t n;
  ocdbt_file *files;
} ocdbt_dft;

/* A byte range in a data file; `file` indexes the enclosing object's table. */
typedef struct ocdbt_ref {
  uint64_t file;
  uint64_t offset;
  uint64_t length;
} ocdbt_ref;

typedef struct ocdbt_stats {
  uint64_t num_keys;
  uint64_t num_tree_bytes;
  uint64_t num_indirect_value_bytes;
} ocdbt_stats;

typedef struct ocdbt_leaf_entry {
  ocdbt_slice key;       /* relative to the node's implicit prefix */
  uint8_t kind;          /* enum ocdbt_value_kind */
  ocdbt_slice value;     /* inline value (kind == INLINE) */
  ocdbt_ref ref;         /* out-of-line value (kind == INDIRECT); ref.length is its size */
} ocdbt_leaf_entry;

typedef struct ocdbt_interior_entry {
  ocdbt_slice key;       /* relative key: inclusive lower bound of the child */
  uint32_t subtree_common_prefix_length; /* bytes of key shared by the whole subtree */
  ocdbt_ref ref;         /* the encoded child node */
  ocdbt_stats stats;     /* of the subtree rooted at the child */
} ocdbt_interior_entry;

typedef struct ocdbt_btnode {
  uint8_t height;        /* 0 = leaf */
  ocdbt_dft dft;
  size_t n;              /* 1..OCDBT_MAX_NODE_ENTRIES */
  ocdbt_leaf_entry *leaves;         /* height == 0 */
  ocdbt_interior_entry *children;   /* height > 0 */
  void *arena_;
} ocdbt_btnode;

/* A version tree leaf entry: one generation's B+tree root. */
typedef struct ocdbt_version {
  uint64_t generation;   /* >= 1 */
  uint8_t root_height;
  ocdbt_ref root;        /* offset = length = OCDBT_MISSING for an empty tree */
  ocdbt_stats stats;
  uint64_t commit_time;  /* nanoseconds since the Unix epoch */
} ocdbt_version;

/* A version tree interior entry (in a node, or in the manifest). */
typedef struct ocdbt_vnode_ref {
  uint64_t generation;       /* latest generation in the subtree */
  ocdbt_ref ref;
  uint64_t num_generations;
  uint64_t commit_time;      /* of the earliest generation in the subtree, ns */
  uint8_t height;            /* of the referenced node */
} ocdbt_vnode_ref;

typedef struct ocdbt_vtnode {
  uint8_t arity_log2;
  uint8_t height;            /* 0 = leaf */
  ocdbt_dft dft;
  size_t n;
  ocdbt_version *versions;   /* height == 0 */
  ocdbt_vnode_ref *children; /* height > 0; each child's height is height - 1 */
  void *arena_;
} ocdbt_vtnode;

typedef struct ocdbt_manifest {
  ocdbt_config config;
  /* The rest is present only when config.manifest_kind == SINGLE (a
   * manifest.ocdbt of the single kind, or a numbered manifest.%016x file). */
  ocdbt_dft dft;
  size_t n_versions;          /* >= 1 */
  ocdbt_version *versions;    /* the newest versions, inline */
  size_t n_nodes;
  ocdbt_vnode_ref *nodes;     /* older versions, by decreasing height */
  void *arena_;
} ocdbt_manifest;

/* --- fixed-width fields and checksums ------------------------------------- */

/* Little-endian fields of nbytes (4 or 8), as the format stores lengths,
 * commit times, zstd levels and CRC footers. */
static inline void ocdbt_store_le(uint8_t *p, uint64_t v, int nbytes) {
  for (int i = 0; i < nbytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint64_t ocdbt_load_le(const uint8_t *p, int nbytes) {
  uint64_t v = 0;
  for (int i = nbytes - 1; i >= 0; i--) v = v << 8 | p[i];
  return v;
}

/* CRC-32C (Castagnoli), with SSE4.2 when the CPU has it. */
uint32_t ocdbt_crc32c(uint32_t crc, const void *p, size_t n);
/* The portable table implementation, for tests and machines without SSE4.2. */
uint32_t ocdbt_crc32c_portable(uint32_t crc, const void *p, size_t n);
/* 1 when ocdbt_crc32c uses the SSE4.2 instruction. */
int ocdbt_crc32c_hw(void);

/* --- objects ----------------------------------------------------------------
 * Every encoder appends one complete object (header, body, CRC-32C footer) to
 * out and returns 0, STRATA_EINVALID when the object breaks a format rule
 * (the message names the field), or STRATA_ENOMEM. Compression follows
 * cfg->compression and cfg->zstd_level.
 *
 * Every decoder reads exactly n bytes and returns 0, STRATA_ECORRUPT with a
 * message naming the object, the field and the byte offset, STRATA_ETOOBIG
 * past OCDBT_MAX_DECODED_BYTES, or STRATA_ENOMEM. On failure *out is left
 * empty (safe to _free). transitive_len is the length of the transitive path
 * the object was reached through (0 for the manifest), counted against
 * OCDBT_MAX_PATH_LENGTH. */

int ocdbt_manifest_encode(const ocdbt_manifest *m, strata_buf *out);
int ocdbt_manifest_decode(const uint8_t *p, size_t n, ocdbt_manifest *out);
void ocdbt_manifest_free(ocdbt_manifest *m);

int ocdbt_btnode_encode(const ocdbt_config *cfg, const ocdbt_btnode *node, strata_buf *out);
int ocdbt_btnode_decode(const uint8_t *p, size_t n, size_t transitive_len, ocdbt_btnode *out);
void ocdbt_btnode_free(ocdbt_btnode *node);
/* A deep copy of a node (as decoded or as about to be encoded) that owns its
 * bytes, freed with ocdbt_btnode_free. Returns 0 or STRATA_ENOMEM. */
int ocdbt_btnode_clone(const ocdbt_btnode *src, ocdbt_btnode *dst);

int ocdbt_vtnode_encode(const ocdbt_config *cfg, const ocdbt_vtnode *node, strata_buf *out);
int ocdbt_vtnode_decode(const uint8_t *p, size_t n, size_t transitive_len, ocdbt_vtnode *out);
void ocdbt_vtnode_free(ocdbt_vtnode *node);

/* --- pieces, exposed for the engine, tests and fuzzing ------------------- */

/* Sorts table entries by (base_path, relative_path), removes duplicates, and
 * writes into remap[i] the new index of old entry i (remap has dft->n slots).
 * The slices are reordered in place; no bytes are copied. Returns 0 or
 * STRATA_ENOMEM. */
int ocdbt_dft_sort(ocdbt_dft *dft, uint64_t *remap);

/* Encodes / decodes a bare data file table (no envelope). The decoded table's
 * paths live in an arena returned through *arena, freed with
 * ocdbt_dft_arena_free; *consumed is the number of bytes read. */
int ocdbt_dft_encode(const ocdbt_dft *dft, strata_buf *out);
int ocdbt_dft_decode(const uint8_t *p, size_t n, size_t transitive_len, ocdbt_dft *out,
                     void **arena, size_t *consumed);
void ocdbt_dft_arena_free(void *arena);

/* The generation range a version tree node at `height` may cover when its
 * newest generation is `latest`: [first, latest]. */
uint64_t ocdbt_vtree_first_generation(uint8_t arity_log2, uint8_t height, uint64_t latest);
/* The largest height a version tree node may have: 63 / arity_log2 - 1. */
uint8_t ocdbt_vtree_max_height(uint8_t arity_log2);

/* The manifest's version node references, one possible per height: with
 * latest generation L, the reference at `height` may hold only the
 * generations [lo, hi]. Heights come from 1 upward until none are left:
 *   ocdbt_vtree_walk w;
 *   ocdbt_vtree_walk_init(&w, arity_log2, L);
 *   while (ocdbt_vtree_walk_next(&w)) use(w.height, w.lo, w.hi);
 * Both the manifest decoder and the store's writer follow this one rule. */
typedef struct ocdbt_vtree_walk {
  uint8_t arity_log2;
  unsigned height;
  uint64_t lo, hi;
  uint64_t next_hi_; /* private */
} ocdbt_vtree_walk;
void ocdbt_vtree_walk_init(ocdbt_vtree_walk *w, uint8_t arity_log2, uint64_t latest);
int ocdbt_vtree_walk_next(ocdbt_vtree_walk *w);

#endif
