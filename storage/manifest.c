/*
 * The manifest: config (uuid, manifest_kind, max_inline_value_bytes,
 * max_decoded_node_bytes, version_tree_arity_log2, compression), then, for the
 * single kind only, the data file table, the newest versions inline, and
 * references to the version tree nodes that hold the older ones, one per
 * height, tallest first.
 */
#include <string.h>

#include "storage/codec_int.h"

static int config_check(const ocdbt_config *c, int corrupt) {
  int code = corrupt ? STRATA_ECORRUPT : STRATA_EINVALID;
  if (c->manifest_kind > OCDBT_MANIFEST_NUMBERED)
    return strata_err(code, "manifest: manifest_kind %u is neither 0 (single) nor 1 (numbered)",
                      c->manifest_kind);
  if (c->version_tree_arity_log2 == 0 || c->version_tree_arity_log2 > OCDBT_MAX_ARITY_LOG2)
    return strata_err(code, "manifest: version_tree_arity_log2 %u outside 1..%u",
                      c->version_tree_arity_log2, OCDBT_MAX_ARITY_LOG2);
  if (c->compression > OCDBT_COMPRESSION_ZSTD)
    return strata_err(code, "manifest: compression_method %u is neither 0 nor 1 (zstd)", c->compression);
  if (c->compression == OCDBT_COMPRESSION_ZSTD &&
      (c->zstd_level < OCDBT_ZSTD_MIN_LEVEL || c->zstd_level > OCDBT_ZSTD_MAX_LEVEL))
    return strata_err(code, "manifest: zstd level %d outside %d..%d", c->zstd_level,
                      OCDBT_ZSTD_MIN_LEVEL, OCDBT_ZSTD_MAX_LEVEL);
  return 0;
}

static int config_write(strata_buf *b, const ocdbt_config *c) {
  int rc = strata_buf_reserve(b, 16 + 1 + 10 + 10 + 1 + 10 + 4);
  if (rc) return rc;
  strata_buf_put(b, c->uuid, 16);
  b->p[b->len++] = c->manifest_kind;
  ocdbt__put_varint(b, c->max_inline_value_bytes);
  ocdbt__put_varint(b, c->max_decoded_node_bytes);
  b->p[b->len++] = c->version_tree_arity_log2;
  ocdbt__put_varint(b, c->compression);
  if (c->compression == OCDBT_COMPRESSION_ZSTD)
    ocdbt__put_le(b, (uint32_t)c->zstd_level, 4);
  return 0;
}

static int config_read(ocdbt__rd *r, ocdbt_config *c) {
  const uint8_t *uuid;
  uint64_t v;
  uint32_t level;
  int rc;
  memset(c, 0, sizeof *c);
  if ((rc = ocdbt__rd_bytes(r, 16, &uuid, "uuid", -1))) return rc;
  memcpy(c->uuid, uuid, 16);
  if ((rc = ocdbt__rd_u8(r, &c->manifest_kind, "manifest_kind", -1))) return rc;
  if (c->manifest_kind > OCDBT_MANIFEST_NUMBERED)
    return ocdbt__rd_fail(r, "manifest_kind", -1, "%u is neither 0 (single) nor 1 (numbered)",
                          c->manifest_kind);
  if ((rc = ocdbt__rd_varint(r, UINT32_MAX, &v, "max_inline_value_bytes", -1))) return rc;
  c->max_inline_value_bytes = (uint32_t)v;
  if ((rc = ocdbt__rd_varint(r, UINT32_MAX, &v, "max_decoded_node_bytes", -1))) return rc;
  c->max_decoded_node_bytes = (uint32_t)v;
  if ((rc = ocdbt__rd_u8(r, &c->version_tree_arity_log2, "version_tree_arity_log2", -1))) return rc;
  if (c->version_tree_arity_log2 == 0 || c->version_tree_arity_log2 > OCDBT_MAX_ARITY_LOG2)
    return ocdbt__rd_fail(r, "version_tree_arity_log2", -1, "%u outside 1..%u",
                          c->version_tree_arity_log2, OCDBT_MAX_ARITY_LOG2);
  if ((rc = ocdbt__rd_varint(r, UINT32_MAX, &v, "compression_method", -1))) return rc;
  if (v > OCDBT_COMPRESSION_ZSTD)
    return ocdbt__rd_fail(r, "compression_method", -1, "%llu is neither 0 nor 1 (zstd)",
                          (unsigned long long)v);
  c->compression = (uint8_t)v;
  if (c->compression == OCDBT_COMPRESSION_ZSTD) {
    if ((rc = ocdbt__rd_u32le(r, &level, "zstd_level", -1))) return rc;
    c->zstd_level = (int32_t)level;
    if (c->zstd_level < OCDBT_ZSTD_MIN_LEVEL || c->zstd_level > OCDBT_ZSTD_MAX_LEVEL)
      return ocdbt__rd_fail(r, "zstd_level", -1, "%d outside %d..%d", c->zstd_level,
                            OCDBT_ZSTD_MIN_LEVEL, OCDBT_ZSTD_MAX_LEVEL);
  }
  return 0;
}

/* The manifest's version node references: heights strictly decreasing, each
 * at height h covering its aligned block below the inline versions' block
 * (tensorstore's ValidateManifestVersionTreeNodes). */
static int nodes_check(uint8_t a, uint64_t latest, const ocdbt_vnode_ref *v, size_t n,
                       uint64_t nfiles, int corrupt) {
  int code = corrupt ? STRATA_ECORRUPT : STRATA_EINVALID;
  uint8_t max_h = ocdbt_vtree_max_height(a);
  if (n > max_h) return strata_err(code, "manifest: %zu version nodes, at most %u", n, max_h);
  for (size_t i = 0; i < n; i++) {
    if (v[i].height == 0 || v[i].height > max_h)
      return strata_err(code, "manifest: entry_height[%zu] = %u outside 1..%u", i, v[i].height, max_h);
    if (v[i].generation == 0) return strata_err(code, "manifest: version node %zu has generation 0", i);
    if (v[i].ref.file >= nfiles || !ocdbt__ref_range_ok(v[i].ref.offset, v[i].ref.length))
      return strata_err(code, "manifest: version node %zu refers outside the table or the 2^63 range", i);
    if (i && v[i].generation <= v[i - 1].generation)
      return strata_err(code, "manifest: version node generation[%zu] = %llu is not greater than %llu",
                        i, (unsigned long long)v[i].generation, (unsigned long long)v[i - 1].generation);
    if (i && v[i].height >= v[i - 1].height)
      return strata_err(code, "manifest: entry_height[%zu] = %u is not below entry_height[%zu] = %u", i,
                        v[i].height, i - 1, v[i - 1].height);
  }
  /* Walk the heights from 1 up; the references come tallest first. */
  size_t i = n;
  ocdbt_vtree_walk w;
  ocdbt_vtree_walk_init(&w, a, latest);
  while (i > 0 && ocdbt_vtree_walk_next(&w)) {
    const ocdbt_vnode_ref *e = &v[i - 1];
    if (e->height != w.height) continue;
    i--;
    if (e->generation < w.lo || e->generation > w.hi)
      return strata_err(code, "manifest: version node at height %u has generation %llu outside %llu..%llu",
                        w.height, (unsigned long long)e->generation, (unsigned long long)w.lo,
                        (unsigned long long)w.hi);
  }
  if (i)
    return strata_err(code, "manifest: version node %zu (generation %llu, height %u) does not fit "
                      "below latest generation %llu",
                      i - 1, (unsigned long long)v[i - 1].generation, v[i - 1].height,
                      (unsigned long long)latest);
  return 0;
}

int ocdbt_manifest_encode(const ocdbt_manifest *m, strata_buf *out) {
  const ocdbt_config *c = &m->config;
  int rc = config_check(c, 0);
  if (rc) return rc;
  if (c->manifest_kind == OCDBT_MANIFEST_SINGLE) {
    if ((rc = ocdbt__versions_check(c->version_tree_arity_log2, m->versions, m->n_versions, m->dft.n,
                                    "manifest", 0)))
      return rc;
    if ((rc = nodes_check(c->version_tree_arity_log2, m->versions[m->n_versions - 1].generation,
                          m->nodes, m->n_nodes, m->dft.n, 0)))
      return rc;
  }
  size_t start;
  if ((rc = ocdbt__env_begin(out, OCDBT_MANIFEST_MAGIC, c->compression, &start))) return rc;
  if ((rc = config_write(out, c))) goto fail;
  if (c->manifest_kind == OCDBT_MANIFEST_SINGLE) {
    if ((rc = ocdbt_dft_encode(&m->dft, out)) ||
        (rc = ocdbt__versions_write(out, m->versions, m->n_versions)) ||
        (rc = ocdbt__vrefs_write(out, m->nodes, m->n_nodes, 1)))
      goto fail;
  }
  return ocdbt__env_end(out, start, c->compression, c->zstd_level);
fail:
  out->len = start;
  return rc;
}

int ocdbt_manifest_decode(const uint8_t *p, size_t n, ocdbt_manifest *out) {
  memset(out, 0, sizeof *out);
  ocdbt__arena *a = ocdbt__arena_new();
  if (!a) return STRATA_ENOMEM;
  ocdbt__rd r;
  int rc = ocdbt__env_decode(p, n, OCDBT_MANIFEST_MAGIC, "manifest", a, &r);
  if (rc || (rc = config_read(&r, &out->config))) goto fail;
  if (out->config.manifest_kind == OCDBT_MANIFEST_SINGLE) {
    uint8_t arity = out->config.version_tree_arity_log2;
    if ((rc = ocdbt__dft_read(&r, 0, a, &out->dft)) ||
        (rc = ocdbt__versions_read(&r, arity, &out->dft, a, &out->versions, &out->n_versions)) ||
        (rc = ocdbt__vrefs_read(&r, ocdbt_vtree_max_height(arity), 1, &out->dft, a, &out->nodes,
                                &out->n_nodes)) ||
        (rc = nodes_check(arity, out->versions[out->n_versions - 1].generation, out->nodes,
                          out->n_nodes, out->dft.n, 1)))
      goto fail;
  }
  rc = ocdbt__rd_end(&r);
fail:
  return ocdbt__decode_done(rc, a, &out->arena_, out, sizeof *out);
}

void ocdbt_manifest_free(ocdbt_manifest *m) {
  if (!m) return;
  ocdbt__arena_free(m->arena_);
  memset(m, 0, sizeof *m);
}
