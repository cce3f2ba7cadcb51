/*
 * Version tree: leaf entries (one per generation: its B+tree root, statistics
 * and commit time) and interior entries (one per child node: the newest
 * generation under it, how many generations it holds, the earliest commit
 * time), and the version tree node that carries either kind.
 *
 * The arity is 2^arity_log2. A leaf holds the generations of one aligned block
 * of 2^a; an interior node at height h holds children that are complete
 * subtrees of 2^(a*h) generations each, all in one aligned block of
 * 2^(a*(h+1)). These are the rules tensorstore's reader checks.
 */
#include <string.h>

#include "storage/codec_int.h"

uint8_t ocdbt_vtree_max_height(uint8_t arity_log2) {
  return arity_log2 ? (uint8_t)(63 / arity_log2 - 1) : 0;
}

uint64_t ocdbt_vtree_first_generation(uint8_t arity_log2, uint8_t height, uint64_t latest) {
  unsigned bits = (unsigned)arity_log2 * (height + 1u);
  if (latest == 0 || bits >= 64) return 1;
  return latest - (latest - 1) % ((uint64_t)1 << bits);
}

/* x with its low `bits` bits cleared; 0 once bits reaches 64. */
static uint64_t clear_low(uint64_t x, unsigned bits) { return bits >= 64 ? 0 : (x >> bits) << bits; }

void ocdbt_vtree_walk_init(ocdbt_vtree_walk *w, uint8_t arity_log2, uint64_t latest) {
  w->arity_log2 = arity_log2;
  w->height = 0;
  w->lo = w->hi = 0;
  /* The inline versions hold latest's leaf block; older ones start below it. */
  w->next_hi_ = latest ? clear_low(latest - 1, arity_log2) : 0;
}

int ocdbt_vtree_walk_next(ocdbt_vtree_walk *w) {
  if (w->next_hi_ == 0) return 0;
  w->height++;
  uint64_t below = clear_low(w->next_hi_ - 1, w->arity_log2 * (w->height + 1));
  w->lo = below + 1;
  w->hi = w->next_hi_;
  w->next_hi_ = below;
  return 1;
}

/* Fails with STRATA_ECORRUPT when decoding, STRATA_EINVALID when encoding. */
#define CHECK_FAIL(...) strata_err(corrupt ? STRATA_ECORRUPT : STRATA_EINVALID, __VA_ARGS__)

int ocdbt__versions_check(uint8_t a, const ocdbt_version *v, size_t n, uint64_t nfiles,
                          const char *obj, int corrupt) {
  size_t max = (size_t)1 << a;
  if (n == 0 || n > max) return CHECK_FAIL("%s: num_versions %zu outside 1..%zu", obj, n, max);
  for (size_t i = 0; i < n; i++) {
    const ocdbt_version *e = &v[i];
    if (e->generation == 0) return CHECK_FAIL("%s: generation_number[%zu] is 0", obj, i);
    if (i && e->generation <= v[i - 1].generation)
      return CHECK_FAIL("%s: generation_number[%zu] = %llu is not greater than the previous %llu",
                        obj, i, (unsigned long long)e->generation,
                        (unsigned long long)v[i - 1].generation);
    if (i && e->commit_time <= v[i - 1].commit_time)
      return CHECK_FAIL("%s: commit_time[%zu] = %llu is not after the previous %llu", obj, i,
                        (unsigned long long)e->commit_time, (unsigned long long)v[i - 1].commit_time);
    if (e->root.file >= nfiles)
      return CHECK_FAIL("%s: data_file_id[%zu] = %llu outside the table of %llu files", obj, i,
                        (unsigned long long)e->root.file, (unsigned long long)nfiles);
    int missing = e->root.offset == OCDBT_MISSING && e->root.length == OCDBT_MISSING;
    if (missing) {
      if (e->root_height || e->stats.num_keys || e->stats.num_tree_bytes ||
          e->stats.num_indirect_value_bytes)
        return CHECK_FAIL("%s: generation %llu has no root but non-zero height or statistics", obj,
                          (unsigned long long)e->generation);
    } else if (!ocdbt__ref_range_ok(e->root.offset, e->root.length)) {
      return CHECK_FAIL("%s: root[%zu] offset %llu + length %llu exceeds 2^63-1", obj, i,
                        (unsigned long long)e->root.offset, (unsigned long long)e->root.length);
    }
  }
  uint64_t first = ocdbt_vtree_first_generation(a, 0, v[n - 1].generation);
  if (v[0].generation < first)
    return CHECK_FAIL("%s: generations %llu..%llu span more than one leaf block (first allowed %llu)",
                      obj, (unsigned long long)v[0].generation,
                      (unsigned long long)v[n - 1].generation, (unsigned long long)first);
  return 0;
}

/* Interior node children at `height` (each child is height - 1). */
static int vrefs_check(uint8_t a, uint8_t height, const ocdbt_vnode_ref *v, size_t n,
                       uint64_t nfiles, const char *obj, int corrupt) {
  size_t max = (size_t)1 << a;
  if (height == 0 || height > ocdbt_vtree_max_height(a))
    return CHECK_FAIL("%s: height %u outside 1..%u for arity_log2 %u", obj, height,
                      ocdbt_vtree_max_height(a), a);
  if (n == 0 || n > max) return CHECK_FAIL("%s: num_children %zu outside 1..%zu", obj, n, max);
  uint64_t stride = (uint64_t)1 << (a * height);
  for (size_t i = 0; i < n; i++) {
    const ocdbt_vnode_ref *e = &v[i];
    if (e->generation == 0) return CHECK_FAIL("%s: generation_number[%zu] is 0", obj, i);
    if (i && e->generation <= v[i - 1].generation)
      return CHECK_FAIL("%s: generation_number[%zu] = %llu is not greater than the previous %llu",
                        obj, i, (unsigned long long)e->generation,
                        (unsigned long long)v[i - 1].generation);
    if (e->generation % stride)
      return CHECK_FAIL("%s: generation_number[%zu] = %llu is not a multiple of %llu (children "
                        "must be complete subtrees)",
                        obj, i, (unsigned long long)e->generation, (unsigned long long)stride);
    if (e->num_generations > stride)
      return CHECK_FAIL("%s: num_generations[%zu] = %llu exceeds %llu", obj, i,
                        (unsigned long long)e->num_generations, (unsigned long long)stride);
    if (e->ref.file >= nfiles || !ocdbt__ref_range_ok(e->ref.offset, e->ref.length))
      return CHECK_FAIL("%s: child %zu refers outside the table of %llu files or the 2^63 range", obj,
                        i, (unsigned long long)nfiles);
  }
  if ((v[n - 1].generation - 1) / stride / max != (v[0].generation - 1) / stride / max)
    return CHECK_FAIL("%s: generations %llu and %llu cannot share one node", obj,
                      (unsigned long long)v[0].generation, (unsigned long long)v[n - 1].generation);
  return 0;
}

/* --- columns ------------------------------------------------------------------------
 * The tables below are docs/format.md's "Version tree leaf entries" and
 * "Version tree interior entries" in on-disk order. */

#define VCOL(member, name) OCDBT__VARINT(ocdbt_version, member, name, UINT64_MAX)
static const ocdbt__col version_cols[] = {
    VCOL(generation, "generation_number"),
    OCDBT__FIXED(ocdbt_version, root_height, "root_height", OCDBT__COL_U8),
    VCOL(root.file, "data_file_id"),
    VCOL(root.offset, "data_file_offset"),
    VCOL(root.length, "data_file_length"),
    VCOL(stats.num_keys, "num_keys"),
    VCOL(stats.num_tree_bytes, "num_tree_bytes"),
    VCOL(stats.num_indirect_value_bytes, "num_indirect_value_bytes"),
    OCDBT__FIXED(ocdbt_version, commit_time, "commit_time", OCDBT__COL_U64LE),
};
#undef VCOL

#define RCOL(member, name) OCDBT__VARINT(ocdbt_vnode_ref, member, name, UINT64_MAX)
/* The manifest's copy adds the height column (the last row). */
static const ocdbt__col vref_cols[] = {
    RCOL(generation, "generation_number"),
    {.name = "data_file_id", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_vnode_ref, ref.file), .max = UINT64_MAX, .rule = OCDBT__RULE_FILE_ID},
    RCOL(ref.offset, "data_file_offset"),
    {.name = "data_file_length", .type = OCDBT__COL_VARINT, .size = 8,
     .off = offsetof(ocdbt_vnode_ref, ref.length), .max = UINT64_MAX,
     .ref_off = offsetof(ocdbt_vnode_ref, ref), .rule = OCDBT__RULE_REF_RANGE_SHORT},
    RCOL(num_generations, "num_generations"),
    OCDBT__FIXED(ocdbt_vnode_ref, commit_time, "commit_time", OCDBT__COL_U64LE),
    OCDBT__FIXED(ocdbt_vnode_ref, height, "entry_height", OCDBT__COL_U8),
};
#undef RCOL

#define NCOLS(t) (sizeof t / sizeof t[0])

int ocdbt__versions_write(strata_buf *b, const ocdbt_version *v, size_t n) {
  int rc = strata_buf_reserve(b, 10);
  if (rc) return rc;
  ocdbt__put_varint(b, n);
  return ocdbt__cols_write(b, v, sizeof *v, n, version_cols, NCOLS(version_cols));
}

int ocdbt__versions_read(ocdbt__rd *r, uint8_t a, const ocdbt_dft *dft, ocdbt__arena *ar,
                         ocdbt_version **out, size_t *n_out) {
  uint64_t n;
  int rc;
  size_t col = r->off;
  if ((rc = ocdbt__rd_varint(r, (uint64_t)1 << a, &n, "num_versions", -1))) return rc;
  if ((rc = ocdbt__rd_check_count(r, n, 16, "num_versions"))) return rc;
  ocdbt_version *v = ocdbt__arena_alloc(ar, (n ? n : 1) * sizeof *v);
  if (!v) return STRATA_ENOMEM;
  ocdbt__cols_ctx ctx = {.dft = dft};
  if ((rc = ocdbt__cols_read(r, v, sizeof *v, n, version_cols, NCOLS(version_cols), &ctx)))
    return rc;
  if ((rc = ocdbt__versions_check(a, v, n, dft->n, r->obj, 1)))
    return strata_err_wrap(rc, "%s entries at body offset %zu", r->obj, col);
  *out = v;
  *n_out = n;
  return 0;
}

int ocdbt__vrefs_write(strata_buf *b, const ocdbt_vnode_ref *v, size_t n, int with_height) {
  int rc = strata_buf_reserve(b, 10);
  if (rc) return rc;
  ocdbt__put_varint(b, n);
  return ocdbt__cols_write(b, v, sizeof *v, n, vref_cols, NCOLS(vref_cols) - !with_height);
}

int ocdbt__vrefs_read(ocdbt__rd *r, size_t max_n, int with_height, const ocdbt_dft *dft,
                      ocdbt__arena *ar, ocdbt_vnode_ref **out, size_t *n_out) {
  uint64_t n;
  int rc;
  if ((rc = ocdbt__rd_varint(r, max_n, &n, "num_children", -1))) return rc;
  if ((rc = ocdbt__rd_check_count(r, n, 13, "num_children"))) return rc;
  ocdbt_vnode_ref *v = ocdbt__arena_alloc(ar, (n ? n : 1) * sizeof *v);
  if (!v) return STRATA_ENOMEM;
  ocdbt__cols_ctx ctx = {.dft = dft};
  if ((rc = ocdbt__cols_read(r, v, sizeof *v, n, vref_cols, NCOLS(vref_cols) - !with_height,
                             &ctx)))
    return rc;
  *out = v;
  *n_out = n;
  return 0;
}

/* --- nodes ------------------------------------------------------------------------------ */

int ocdbt_vtnode_encode(const ocdbt_config *cfg, const ocdbt_vtnode *node, strata_buf *out) {
  uint8_t a = node->arity_log2;
  int rc;
  if (a == 0 || a > OCDBT_MAX_ARITY_LOG2)
    return strata_err(STRATA_EINVALID, "version tree node: arity_log2 %u outside 1..%u", a,
                      OCDBT_MAX_ARITY_LOG2);
  if (node->height == 0)
    rc = ocdbt__versions_check(a, node->versions, node->n, node->dft.n, "version tree node", 0);
  else
    rc = vrefs_check(a, node->height, node->children, node->n, node->dft.n, "version tree node", 0);
  if (rc) return rc;
  size_t start;
  if ((rc = ocdbt__env_begin(out, OCDBT_VTREE_MAGIC, cfg->compression, &start))) return rc;
  if ((rc = ocdbt__w_u8(out, a)) || (rc = ocdbt__w_u8(out, node->height)) ||
      (rc = ocdbt_dft_encode(&node->dft, out)))
    goto fail;
  rc = node->height ? ocdbt__vrefs_write(out, node->children, node->n, 0)
                    : ocdbt__versions_write(out, node->versions, node->n);
  if (rc) goto fail;
  return ocdbt__env_end(out, start, cfg->compression, cfg->zstd_level);
fail:
  out->len = start;
  return rc;
}

int ocdbt_vtnode_decode(const uint8_t *p, size_t n, size_t transitive_len, ocdbt_vtnode *out) {
  memset(out, 0, sizeof *out);
  ocdbt__arena *a = ocdbt__arena_new();
  if (!a) return STRATA_ENOMEM;
  ocdbt__rd r;
  int rc = ocdbt__env_decode(p, n, OCDBT_VTREE_MAGIC, "version tree node", a, &r);
  if (rc) goto fail;
  if ((rc = ocdbt__rd_u8(&r, &out->arity_log2, "version_tree_arity_log2", -1))) goto fail;
  if (out->arity_log2 == 0 || out->arity_log2 > OCDBT_MAX_ARITY_LOG2) {
    rc = ocdbt__rd_fail(&r, "version_tree_arity_log2", -1, "%u outside 1..%u", out->arity_log2,
                        OCDBT_MAX_ARITY_LOG2);
    goto fail;
  }
  if ((rc = ocdbt__rd_u8(&r, &out->height, "height", -1))) goto fail;
  if (out->height > ocdbt_vtree_max_height(out->arity_log2)) {
    rc = ocdbt__rd_fail(&r, "height", -1, "%u exceeds %u for arity_log2 %u", out->height,
                        ocdbt_vtree_max_height(out->arity_log2), out->arity_log2);
    goto fail;
  }
  if ((rc = ocdbt__dft_read(&r, transitive_len, a, &out->dft))) goto fail;
  if (out->height == 0) {
    rc = ocdbt__versions_read(&r, out->arity_log2, &out->dft, a, &out->versions, &out->n);
  } else {
    rc = ocdbt__vrefs_read(&r, (size_t)1 << out->arity_log2, 0, &out->dft, a, &out->children, &out->n);
    for (size_t i = 0; !rc && i < out->n; i++) out->children[i].height = (uint8_t)(out->height - 1);
    if (!rc)
      rc = vrefs_check(out->arity_log2, out->height, out->children, out->n, out->dft.n,
                       "version tree node", 1);
  }
  if (!rc) rc = ocdbt__rd_end(&r);
fail:
  return ocdbt__decode_done(rc, a, &out->arena_, out, sizeof *out);
}

void ocdbt_vtnode_free(ocdbt_vtnode *node) {
  if (!node) return;
  ocdbt__arena_free(node->arena_);
  memset(node, 0, sizeof *node);
}
