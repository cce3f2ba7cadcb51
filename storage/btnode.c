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

static int write_body(const ocdbt_btnode *node, strata_buf *out) {
  size_t n = node->n;
  size_t key_bytes = 0, value_bytes = 0;
  for (size_t i = 0; i < n; i++) {
    key_bytes += entry_key(node, i).n;
    if (!node->height && node->leaves[i].kind == OCDBT_VALUE_INLINE) value_bytes += node->leaves[i].value.n;
  }
  int rc = ocdbt__w_u8(out, node->height);
  if (rc || (rc = ocdbt_dft_encode(&node->dft, out))) return rc;
  /* Every column entry is at most 10 bytes; the interior node has 7 columns. */
  if ((rc = strata_buf_reserve(out, 10 + n * 70 + key_bytes + value_bytes))) return rc;
  ocdbt__put_varint(out, n);
  uint16_t *prefix = malloc(n * sizeof *prefix);
  if (!prefix) return strata_err(STRATA_ENOMEM, "btree node: cannot encode %zu entries", n);
  prefix[0] = 0;
  for (size_t i = 1; i < n; i++) {
    prefix[i] = (uint16_t)ocdbt_common_prefix(entry_key(node, i - 1), entry_key(node, i));
    ocdbt__put_varint(out, prefix[i]);
  }
  for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, entry_key(node, i).n - prefix[i]);
  if (node->height)
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, node->children[i].subtree_common_prefix_length);
  for (size_t i = 0; i < n; i++) {
    ocdbt_slice k = entry_key(node, i);
    strata_buf_put(out, k.p + prefix[i], k.n - prefix[i]);
  }
  free(prefix);
  if (node->height) {
    const ocdbt_interior_entry *e = node->children;
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, e[i].ref.file);
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, e[i].ref.offset);
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, e[i].ref.length);
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, e[i].stats.num_keys);
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, e[i].stats.num_tree_bytes);
    for (size_t i = 0; i < n; i++) ocdbt__put_varint(out, e[i].stats.num_indirect_value_bytes);
    return 0;
  }
  const ocdbt_leaf_entry *e = node->leaves;
  for (size_t i = 0; i < n; i++)
    ocdbt__put_varint(out, e[i].kind == OCDBT_VALUE_INLINE ? e[i].value.n : e[i].ref.length);
  for (size_t i = 0; i < n; i++) out->p[out->len++] = e[i].kind;
  for (size_t i = 0; i < n; i++)
    if (e[i].kind == OCDBT_VALUE_INDIRECT) ocdbt__put_varint(out, e[i].ref.file);
  for (size_t i = 0; i < n; i++)
    if (e[i].kind == OCDBT_VALUE_INDIRECT) ocdbt__put_varint(out, e[i].ref.offset);
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

/* Reads the key columns and rebuilds every key into arena memory. */
static int read_keys(ocdbt__rd *r, ocdbt_btnode *node, ocdbt__arena *a) {
  size_t n = node->n;
  int interior = node->height > 0;
  uint16_t *prefix = ocdbt__arena_alloc_raw(a, n * 3 * sizeof(uint16_t));
  if (!prefix) return STRATA_ENOMEM;
  uint16_t *suffix = prefix + n, *scpl = prefix + 2 * n;
  prefix[0] = 0;
  uint64_t v;
  int rc;
  size_t prefix_col = r->off;
  for (size_t i = 1; i < n; i++) {
    if ((rc = ocdbt__rd_varint(r, UINT16_MAX, &v, "key_prefix_length", (long)i - 1))) return rc;
    prefix[i] = (uint16_t)v;
  }
  size_t suffix_col = r->off;
  for (size_t i = 0; i < n; i++) {
    if ((rc = ocdbt__rd_varint(r, UINT16_MAX, &v, "key_suffix_length", (long)i))) return rc;
    suffix[i] = (uint16_t)v;
  }
  size_t scpl_col = r->off;
  if (interior)
    for (size_t i = 0; i < n; i++) {
      if ((rc = ocdbt__rd_varint(r, UINT16_MAX, &v, "subtree_common_prefix_length", (long)i)))
        return rc;
      scpl[i] = (uint16_t)v;
    }
  size_t total = 0, prev_len = 0;
  for (size_t i = 0; i < n; i++) {
    size_t key_len = (size_t)prefix[i] + suffix[i];
    if (prefix[i] > prev_len)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, prefix_col, i - 1), "key_prefix_length",
                               (long)i - 1, "%u exceeds the previous key's length %zu", prefix[i],
                               prev_len);
    if (key_len > OCDBT_MAX_KEY_LENGTH)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, suffix_col, i), "key_suffix_length",
                               (long)i, "key length %zu exceeds %u", key_len, OCDBT_MAX_KEY_LENGTH);
    if (interior && scpl[i] > key_len)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, scpl_col, i),
                               "subtree_common_prefix_length", (long)i,
                               "%u exceeds the key length %zu", scpl[i], key_len);
    total += key_len;
    prev_len = key_len;
  }
  if (total > OCDBT_MAX_DECODED_BYTES)
    return strata_err(STRATA_ETOOBIG, "%s: rebuilt keys would take %zu bytes, limit %zu", r->obj,
                      total, (size_t)OCDBT_MAX_DECODED_BYTES);
  uint8_t *kb = ocdbt__arena_alloc_raw(a, total ? total : 1);
  if (!kb) return STRATA_ENOMEM;
  ocdbt_slice prev = {NULL, 0};
  for (size_t i = 0; i < n; i++) {
    const uint8_t *s;
    if ((rc = ocdbt__rd_bytes(r, suffix[i], &s, "key_suffix", (long)i))) return rc;
    /* Strictly increasing: the new suffix must sort after the rest of the
     * previous key past the shared prefix. */
    if (i) {
      ocdbt_slice prev_rest = {prev.p + prefix[i], prev.n - prefix[i]};
      if (ocdbt_slice_cmp(prev_rest, (ocdbt_slice){s, suffix[i]}) >= 0)
        return ocdbt__rd_fail(r, "key_suffix", (long)i, "key does not sort after key[%zu]", i - 1);
    }
    if (prefix[i]) memcpy(kb, prev.p, prefix[i]);
    if (suffix[i]) memcpy(kb + prefix[i], s, suffix[i]);
    ocdbt_slice key = {kb, (size_t)prefix[i] + suffix[i]};
    if (interior) {
      node->children[i].key = key;
      node->children[i].subtree_common_prefix_length = scpl[i];
    } else {
      node->leaves[i].key = key;
    }
    prev = key;
    kb += key.n;
  }
  return 0;
}

static int read_file_id(ocdbt__rd *r, const ocdbt_dft *dft, uint64_t *file, const char *field, long i) {
  int rc = ocdbt__rd_varint(r, UINT64_MAX, file, field, i);
  if (rc) return rc;
  if (*file >= dft->n)
    return ocdbt__rd_fail(r, field, i, "file index %llu outside the table of %zu files",
                          (unsigned long long)*file, dft->n);
  return 0;
}

static int read_leaf_values(ocdbt__rd *r, ocdbt_btnode *node) {
  size_t n = node->n;
  ocdbt_leaf_entry *e = node->leaves;
  uint64_t v;
  int rc;
  size_t vlen_col = r->off;
  for (size_t i = 0; i < n; i++) {
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &v, "value_length", (long)i))) return rc;
    e[i].ref.length = v; /* moved to value.n for inline entries below */
  }
  for (size_t i = 0; i < n; i++) {
    if ((rc = ocdbt__rd_u8(r, &e[i].kind, "value_kind", (long)i))) return rc;
    if (e[i].kind > OCDBT_VALUE_INDIRECT)
      return ocdbt__rd_fail(r, "value_kind", (long)i, "%u is neither 0 (inline) nor 1 (out of line)",
                            e[i].kind);
    if (e[i].kind == OCDBT_VALUE_INLINE && e[i].ref.length > OCDBT_MAX_INLINE_VALUE)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, vlen_col, i), "value_length", (long)i,
                            "inline value of %llu bytes exceeds %u",
                            (unsigned long long)e[i].ref.length, OCDBT_MAX_INLINE_VALUE);
  }
  for (size_t i = 0; i < n; i++)
    if (e[i].kind == OCDBT_VALUE_INDIRECT &&
        (rc = read_file_id(r, &node->dft, &e[i].ref.file, "data_file_id", (long)i)))
      return rc;
  for (size_t i = 0; i < n; i++) {
    if (e[i].kind != OCDBT_VALUE_INDIRECT) continue;
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &e[i].ref.offset, "data_file_offset", (long)i))) return rc;
    if (!ocdbt__ref_range_ok(e[i].ref.offset, e[i].ref.length))
      return ocdbt__rd_fail(r, "data_file_offset", (long)i, "offset %llu + length %llu exceeds 2^63-1",
                            (unsigned long long)e[i].ref.offset, (unsigned long long)e[i].ref.length);
  }
  for (size_t i = 0; i < n; i++) {
    if (e[i].kind != OCDBT_VALUE_INLINE) continue;
    size_t len = (size_t)e[i].ref.length;
    e[i].ref.length = 0;
    const uint8_t *p;
    if ((rc = ocdbt__rd_bytes(r, len, &p, "value", (long)i))) return rc;
    e[i].value = (ocdbt_slice){p, len};
  }
  return 0;
}

static int read_interior_refs(ocdbt__rd *r, ocdbt_btnode *node) {
  size_t n = node->n;
  ocdbt_interior_entry *e = node->children;
  int rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = read_file_id(r, &node->dft, &e[i].ref.file, "data_file_id", (long)i))) return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &e[i].ref.offset, "data_file_offset", (long)i))) return rc;
  for (size_t i = 0; i < n; i++) {
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &e[i].ref.length, "data_file_length", (long)i))) return rc;
    if (!ocdbt__ref_range_ok(e[i].ref.offset, e[i].ref.length))
      return ocdbt__rd_fail(r, "data_file_length", (long)i, "offset %llu + length %llu exceeds 2^63-1",
                            (unsigned long long)e[i].ref.offset, (unsigned long long)e[i].ref.length);
  }
  for (size_t i = 0; i < n; i++)
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &e[i].stats.num_keys, "num_keys", (long)i))) return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &e[i].stats.num_tree_bytes, "num_tree_bytes", (long)i)))
      return rc;
  for (size_t i = 0; i < n; i++)
    if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &e[i].stats.num_indirect_value_bytes,
                               "num_indirect_value_bytes", (long)i)))
      return rc;
  return 0;
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
  if (rc || (rc = ocdbt__rd_end(&r))) goto fail;
  out->arena_ = a;
  return 0;
fail:
  ocdbt__arena_free(a);
  memset(out, 0, sizeof *out);
  return rc;
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
