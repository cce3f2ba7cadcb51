/*
 * B+tree nodes. Inner header: height (u8), data file table, num_entries
 * (varint, 1..2^20). Keys are stored column-wise with prefix compression
 * against the previous key: key_prefix_length[1..n-1], key_suffix_length[n],
 * (interior only) subtree_common_prefix_length[n], then the suffix bytes.
 *
 * Leaf nodes follow with value_length[n], value_kind[n] (one byte each),
 * data_file_id and data_file_offset of each out-of-line value, then the inline
 * values concatenated. Interior nodes follow with data_file_id[n],
 * data_file_offset[n], data_file_length[n], num_keys[n], num_tree_bytes[n],
 * num_indirect_value_bytes[n].
 */
#include <stdlib.h>
#include <string.h>

#include "storage/codec_int.h"

static inline ocdbt_slice entry_key(const ocdbt_btnode *node, size_t i) {
  return node->height ? node->children[i].key : node->leaves[i].key;
}

/* Checks every rule the reader enforces, so we never write what it rejects. */
static int check_node(const ocdbt_btnode *node) {
  if (node->n == 0 || node->n > OCDBT_MAX_NODE_ENTRIES)
    return strata_err(STRATA_EINVALID, "btree node: %zu entries, must be 1..%u", node->n,
                      OCDBT_MAX_NODE_ENTRIES);
  if (node->height ? !node->children : !node->leaves)
    return strata_err(STRATA_EINVALID, "btree node: entries missing for height %u", node->height);
  for (size_t i = 0; i < node->n; i++) {
    ocdbt_slice k = entry_key(node, i);
    if (k.n > OCDBT_MAX_KEY_LENGTH)
      return strata_err(STRATA_EINVALID, "btree node: key[%zu] is %zu bytes, limit %u", i, k.n,
                        OCDBT_MAX_KEY_LENGTH);
    if (i && ocdbt_slice_cmp(entry_key(node, i - 1), k) >= 0)
      return strata_err(STRATA_EINVALID, "btree node: key[%zu] is not greater than key[%zu]", i,
                        i - 1);
    const ocdbt_ref *ref = NULL;
    if (node->height) {
      const ocdbt_interior_entry *e = &node->children[i];
      if (e->subtree_common_prefix_length > k.n)
        return strata_err(STRATA_EINVALID,
                          "btree node: subtree_common_prefix_length[%zu] = %u exceeds key length %zu",
                          i, e->subtree_common_prefix_length, k.n);
      ref = &e->ref;
    } else {
      const ocdbt_leaf_entry *e = &node->leaves[i];
      if (e->kind == OCDBT_VALUE_INLINE) {
        if (e->value.n > OCDBT_MAX_INLINE_VALUE)
          return strata_err(STRATA_EINVALID, "btree node: inline value[%zu] is %zu bytes, limit %u",
                            i, e->value.n, OCDBT_MAX_INLINE_VALUE);
      } else if (e->kind == OCDBT_VALUE_INDIRECT) {
        ref = &e->ref;
      } else {
        return strata_err(STRATA_EINVALID, "btree node: value_kind[%zu] = %u", i, e->kind);
      }
    }
    if (ref && (ref->file >= node->dft.n || !ocdbt__ref_range_ok(ref->offset, ref->length)))
      return strata_err(STRATA_EINVALID, "btree node: entry %zu refers to file %llu offset %llu length %llu, "
                        "outside the table of %zu files or the 2^63 range",
                        i, (unsigned long long)ref->file, (unsigned long long)ref->offset,
                        (unsigned long long)ref->length, node->dft.n);
  }
  return 0;
}

/* --- column tables: docs/format.md "B+tree nodes", in on-disk order ------------------- */

/* The key columns, decoded into (and encoded from) a scratch array. */
typedef struct keylens {
  uint16_t prefix, suffix, scpl;
} keylens;

/* key_prefix_length has no element for the first key: it is read over
 * entries 1..n-1, which names them 0..n-2 as the format does. */
static const ocdbt__col key_prefix_col[] = {
    OCDBT__VARINT(keylens, prefix, "key_prefix_length", UINT16_MAX)};
/* Leaf nodes have the first column only. */
static const ocdbt__col key_len_cols[] = {
    OCDBT__VARINT(keylens, suffix, "key_suffix_length", UINT16_MAX),
    OCDBT__VARINT(keylens, scpl, "subtree_common_prefix_length", UINT16_MAX),
};

static uint64_t leaf_value_length(const uint8_t *entry) {
  const ocdbt_leaf_entry *e = (const void *)entry;
  return e->kind == OCDBT_VALUE_INLINE ? e->value.n : e->ref.length;
}

static int value_kind_fail(const ocdbt__rd *r, const ocdbt_leaf_entry *e, long i,
                           const ocdbt__cols_ctx *ctx) {
  if (e->kind > OCDBT_VALUE_INDIRECT)
    return ocdbt__rd_fail(r, "value_kind", i, "%u is neither 0 (inline) nor 1 (out of line)",
                          e->kind);
  if (e->kind == OCDBT_VALUE_INLINE && e->ref.length > OCDBT_MAX_INLINE_VALUE)
    return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, ctx->start[0], (size_t)i), "value_length",
                             i, "inline value of %llu bytes exceeds %u",
                             (unsigned long long)e->ref.length, OCDBT_MAX_INLINE_VALUE);
  return 0;
}

/* The kind byte, and the inline value length the column before it held.
 * Inlined into the walker (it runs once per entry); failures are out of line. */
OCDBT__INLINE int check_value_kind(const ocdbt__rd *r, const ocdbt__col *c, const uint8_t *entry,
                                   long i, const ocdbt__cols_ctx *ctx) {
  const ocdbt_leaf_entry *e = (const void *)entry;
  if (e->kind == OCDBT_VALUE_INDIRECT ||
      (e->kind == OCDBT_VALUE_INLINE && e->ref.length <= OCDBT_MAX_INLINE_VALUE))
    return 0;
  return value_kind_fail(r, e, i, ctx);
}

/* value_length is decoded into ref.length and moved to value.n for inline
 * entries once the values are read. */
#define LEAF_INDIRECT .when = 1, .when_val = OCDBT_VALUE_INDIRECT, \
                      .when_off = offsetof(ocdbt_leaf_entry, kind)
static const ocdbt__col leaf_cols[] = {
    {.name = "value_length", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_leaf_entry, ref.length), .max = UINT64_MAX, .get = leaf_value_length},
    {.name = "value_kind", .type = OCDBT__COL_U8, .size = 1,
     .off = offsetof(ocdbt_leaf_entry, kind), .check = check_value_kind},
    {.name = "data_file_id", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_leaf_entry, ref.file), .max = UINT64_MAX, LEAF_INDIRECT,
     .rule = OCDBT__RULE_FILE_ID},
    {.name = "data_file_offset", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_leaf_entry, ref.offset), .max = UINT64_MAX, LEAF_INDIRECT,
     .ref_off = offsetof(ocdbt_leaf_entry, ref), .rule = OCDBT__RULE_REF_RANGE},
};
#undef LEAF_INDIRECT

#define ICOL(member, name) OCDBT__VARINT(ocdbt_interior_entry, member, name, UINT64_MAX)
static const ocdbt__col interior_cols[] = {
    {.name = "data_file_id", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_interior_entry, ref.file), .max = UINT64_MAX,
     .rule = OCDBT__RULE_FILE_ID},
    ICOL(ref.offset, "data_file_offset"),
    {.name = "data_file_length", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_interior_entry, ref.length), .max = UINT64_MAX,
     .ref_off = offsetof(ocdbt_interior_entry, ref), .rule = OCDBT__RULE_REF_RANGE},
    ICOL(stats.num_keys, "num_keys"),
    ICOL(stats.num_tree_bytes, "num_tree_bytes"),
    ICOL(stats.num_indirect_value_bytes, "num_indirect_value_bytes"),
};
#undef ICOL

#define NCOLS(t) (sizeof t / sizeof t[0])

/* --- encode ----------------------------------------------------------------------- */

/* Fills the key columns of every entry (prefix lengths against the key before). */
static keylens *key_lens(const ocdbt_btnode *node) {
  keylens *k = malloc(node->n * sizeof *k);
  if (!k) return NULL;
  for (size_t i = 0; i < node->n; i++) {
    ocdbt_slice key = entry_key(node, i);
    k[i].prefix = i ? (uint16_t)ocdbt_common_prefix(entry_key(node, i - 1), key) : 0;
    k[i].suffix = (uint16_t)(key.n - k[i].prefix);
    k[i].scpl = node->height ? node->children[i].subtree_common_prefix_length : 0;
  }
  return k;
}

static int write_body(const ocdbt_btnode *node, strata_buf *out) {
  size_t n = node->n;
  size_t key_bytes = 0, value_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    key_bytes += entry_key(node, i).n;
    if (!node->height && node->leaves[i].kind == OCDBT_VALUE_INLINE) value_bytes += node->leaves[i].value.n;
  }
  int rc = ocdbt__w_u8(out, node->height);
  if (rc || (rc = ocdbt_dft_encode(&node->dft, out))) return rc;
  /* Every column entry is at most 10 bytes; the interior node has 9 columns. */
  if ((rc = strata_buf_reserve(out, 10 + n * 90 + key_bytes + value_bytes))) return rc;
  ocdbt__put_varint(out, n);
  keylens *k = key_lens(node);
  if (!k) return strata_err(STRATA_ENOMEM, "btree node: cannot encode %zu entries", n);
  /* The reserve above covers every column: these cannot fail. */
  ocdbt__cols_write(out, k + 1, sizeof *k, n - 1, key_prefix_col, 1);
  ocdbt__cols_write(out, k, sizeof *k, n, key_len_cols, node->height ? 2 : 1);
  for (size_t i = 0; i < n; i++) {
    ocdbt_slice key = entry_key(node, i);
    strata_buf_put(out, key.p + k[i].prefix, k[i].suffix);
  }
  free(k);
  if (node->height)
    return ocdbt__cols_write(out, node->children, sizeof *node->children, n, interior_cols,
                             NCOLS(interior_cols));
  const ocdbt_leaf_entry *e = node->leaves;
  ocdbt__cols_write(out, e, sizeof *e, n, leaf_cols, NCOLS(leaf_cols));
  for (size_t i = 0; i < n; i++)
    if (e[i].kind == OCDBT_VALUE_INLINE) strata_buf_put(out, e[i].value.p, e[i].value.n);
  return 0;
}

int ocdbt_btnode_encode(const ocdbt_config *cfg, const ocdbt_btnode *node, strata_buf *out) {
  int rc = check_node(node);
  if (rc) return rc;
  size_t start;
  if ((rc = ocdbt__env_begin(out, OCDBT_BTREE_MAGIC, cfg->compression, &start))) return rc;
  if ((rc = write_body(node, out))) {
    out->len = start;
    return rc;
  }
  return ocdbt__env_end(out, start, cfg->compression, cfg->zstd_level);
}

/* --- decode ------------------------------------------------------------------------ */

/* Checks the key columns against each other and the limits; *total is the
 * bytes the rebuilt keys take. */
static int check_key_lens(const ocdbt__rd *r, const keylens *k, size_t n, int interior,
                          const ocdbt__cols_ctx *ctx, size_t *total) {
  size_t prev_len = 0;
  *total = 0;
  for (size_t i = 0; i < n; i++) {
    size_t key_len = (size_t)k[i].prefix + k[i].suffix;
    if (k[i].prefix > prev_len)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, ctx->start[0], i - 1),
                               "key_prefix_length", (long)i - 1,
                               "%u exceeds the previous key's length %zu", k[i].prefix, prev_len);
    if (key_len > OCDBT_MAX_KEY_LENGTH)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, ctx->start[1], i), "key_suffix_length",
                               (long)i, "key length %zu exceeds %u", key_len, OCDBT_MAX_KEY_LENGTH);
    if (interior && k[i].scpl > key_len)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, ctx->start[2], i),
                               "subtree_common_prefix_length", (long)i,
                               "%u exceeds the key length %zu", k[i].scpl, key_len);
    *total += key_len;
    prev_len = key_len;
  }
  if (*total > OCDBT_MAX_DECODED_BYTES)
    return strata_err(STRATA_ETOOBIG, "%s: rebuilt keys would take %zu bytes, limit %zu", r->obj,
                      *total, (size_t)OCDBT_MAX_DECODED_BYTES);
  return 0;
}

/* Reads the key columns and rebuilds every key into arena memory. */
static int read_keys(ocdbt__rd *r, ocdbt_btnode *node, ocdbt__arena *a) {
  size_t n = node->n, total;
  int interior = node->height > 0;
  keylens *k = ocdbt__arena_alloc_raw(a, n * sizeof *k);
  if (!k) return STRATA_ENOMEM;
  k[0].prefix = 0;
  /* start[0]: the prefix column; start[1], start[2]: the length columns. */
  ocdbt__cols_ctx pctx = {0}, ctx = {0};
  int rc = ocdbt__cols_read(r, k + 1, sizeof *k, n - 1, key_prefix_col, 1, &pctx);
  if (rc || (rc = ocdbt__cols_read(r, k, sizeof *k, n, key_len_cols, interior ? 2 : 1, &ctx)))
    return rc;
  ctx.start[2] = ctx.start[1];
  ctx.start[1] = ctx.start[0];
  ctx.start[0] = pctx.start[0];
  if ((rc = check_key_lens(r, k, n, interior, &ctx, &total))) return rc;
  uint8_t *kb = ocdbt__arena_alloc_raw(a, total ? total : 1);
  if (!kb) return STRATA_ENOMEM;
  ocdbt_slice prev = {NULL, 0};
  for (size_t i = 0; i < n; i++) {
    const uint8_t *s;
    if ((rc = ocdbt__rd_bytes(r, k[i].suffix, &s, "key_suffix", (long)i))) return rc;
    /* Strictly increasing: the new suffix must sort after the rest of the
     * previous key past the shared prefix. */
    if (i) {
      ocdbt_slice prev_rest = {prev.p + k[i].prefix, prev.n - k[i].prefix};
      if (ocdbt_slice_cmp(prev_rest, (ocdbt_slice){s, k[i].suffix}) >= 0)
        return ocdbt__rd_fail(r, "key_suffix", (long)i, "key does not sort after key[%zu]", i - 1);
    }
    if (k[i].prefix) memcpy(kb, prev.p, k[i].prefix);
    if (k[i].suffix) memcpy(kb + k[i].prefix, s, k[i].suffix);
    ocdbt_slice key = {kb, (size_t)k[i].prefix + k[i].suffix};
    if (interior) {
      node->children[i].key = key;
      node->children[i].subtree_common_prefix_length = k[i].scpl;
    } else {
      node->leaves[i].key = key;
    }
    prev = key;
    kb += key.n;
  }
  return 0;
}

static int read_leaf_values(ocdbt__rd *r, ocdbt_btnode *node) {
  ocdbt_leaf_entry *e = node->leaves;
  ocdbt__cols_ctx ctx = {.dft = &node->dft};
  int rc = ocdbt__cols_read(r, e, sizeof *e, node->n, leaf_cols, NCOLS(leaf_cols), &ctx);
  for (size_t i = 0; !rc && i < node->n; i++) {
    if (e[i].kind != OCDBT_VALUE_INLINE) continue;
    size_t len = (size_t)e[i].ref.length;
    e[i].ref.length = 0;
    const uint8_t *p;
    if (!(rc = ocdbt__rd_bytes(r, len, &p, "value", (long)i))) e[i].value = (ocdbt_slice){p, len};
  }
  return rc;
}

static int read_interior_refs(ocdbt__rd *r, ocdbt_btnode *node) {
  ocdbt__cols_ctx ctx = {.dft = &node->dft};
  return ocdbt__cols_read(r, node->children, sizeof *node->children, node->n, interior_cols,
                          NCOLS(interior_cols), &ctx);
}

int ocdbt_btnode_decode(const uint8_t *p, size_t n, size_t transitive_len, ocdbt_btnode *out) {
  memset(out, 0, sizeof *out);
  ocdbt__arena *a = ocdbt__arena_new();
  if (!a) return STRATA_ENOMEM;
  ocdbt__rd r;
  uint64_t count;
  int rc = ocdbt__env_decode(p, n, OCDBT_BTREE_MAGIC, "btree node", a, &r);
  if (rc) goto fail;
  if ((rc = ocdbt__rd_u8(&r, &out->height, "height", -1))) goto fail;
  if ((rc = ocdbt__dft_read(&r, transitive_len, a, &out->dft))) goto fail;
  if ((rc = ocdbt__rd_varint(&r, UINT32_MAX, &count, "num_entries", -1))) goto fail;
  if (count == 0 || count > OCDBT_MAX_NODE_ENTRIES) {
    rc = ocdbt__rd_fail(&r, "num_entries", -1, "%llu is outside 1..%u", (unsigned long long)count,
                        OCDBT_MAX_NODE_ENTRIES);
    goto fail;
  }
  /* Each entry takes at least two bytes of columns (suffix length, and value
   * length + kind or file id + offset + length + three statistics). */
  if ((rc = ocdbt__rd_check_count(&r, count, 2, "num_entries"))) goto fail;
  out->n = (size_t)count;
  if (out->height)
    out->children = ocdbt__arena_alloc(a, out->n * sizeof *out->children);
  else
    out->leaves = ocdbt__arena_alloc(a, out->n * sizeof *out->leaves);
  if (!out->children && !out->leaves) {
    rc = STRATA_ENOMEM;
    goto fail;
  }
  if ((rc = read_keys(&r, out, a))) goto fail;
  rc = out->height ? read_interior_refs(&r, out) : read_leaf_values(&r, out);
  if (!rc) rc = ocdbt__rd_end(&r);
fail:
  return ocdbt__decode_done(rc, a, &out->arena_, out, sizeof *out);
}

/* Copies a slice's bytes to *cursor and advances it. */
static ocdbt_slice clone_slice(ocdbt_slice s, uint8_t **cursor) {
  ocdbt_slice d = {*cursor, s.n};
  if (s.n) memcpy(*cursor, s.p, s.n);
  *cursor += s.n;
  return d;
}

int ocdbt_btnode_clone(const ocdbt_btnode *src, ocdbt_btnode *dst) {
  memset(dst, 0, sizeof *dst);
  size_t esz = src->height ? sizeof *src->children : sizeof *src->leaves;
  size_t bytes = src->n * esz + src->dft.n * sizeof *src->dft.files;
  for (size_t i = 0; i < src->n; i++)
    bytes += src->height ? src->children[i].key.n : src->leaves[i].key.n + src->leaves[i].value.n;
  for (size_t i = 0; i < src->dft.n; i++)
    bytes += src->dft.files[i].base_path.n + src->dft.files[i].relative_path.n;
  ocdbt__arena *a = ocdbt__arena_new();
  uint8_t *mem = a ? ocdbt__arena_alloc_raw(a, bytes ? bytes : 1) : NULL;
  if (!mem) {
    ocdbt__arena_free(a);
    return STRATA_ENOMEM;
  }
  /* Arrays first (the arena is 16-byte aligned, entry sizes are multiples of 8). */
  dst->height = src->height;
  dst->n = src->n;
  dst->dft.n = src->dft.n;
  dst->dft.files = (ocdbt_file *)mem;
  mem += src->dft.n * sizeof *src->dft.files;
  if (src->height) dst->children = (ocdbt_interior_entry *)mem;
  else dst->leaves = (ocdbt_leaf_entry *)mem;
  mem += src->n * esz;
  for (size_t i = 0; i < src->dft.n; i++) {
    dst->dft.files[i].base_path = clone_slice(src->dft.files[i].base_path, &mem);
    dst->dft.files[i].relative_path = clone_slice(src->dft.files[i].relative_path, &mem);
  }
  for (size_t i = 0; i < src->n; i++) {
    if (src->height) {
      dst->children[i] = src->children[i];
      dst->children[i].key = clone_slice(src->children[i].key, &mem);
    } else {
      dst->leaves[i] = src->leaves[i];
      dst->leaves[i].key = clone_slice(src->leaves[i].key, &mem);
      dst->leaves[i].value = clone_slice(src->leaves[i].value, &mem);
    }
  }
  dst->arena_ = a;
  return 0;
}

void ocdbt_btnode_free(ocdbt_btnode *node) {
  if (!node) return;
  ocdbt__arena_free(node->arena_);
  memset(node, 0, sizeof *node);
}
