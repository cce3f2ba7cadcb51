/*
 * Data file tables: the list of (base_path, relative_path) pairs a manifest or
 * node refers to by index, stored with prefix compression over the combined
 * path = base_path + relative_path.
 *
 * Layout: num_files; path_prefix_length[1..n-1]; path_suffix_length[0..n-1];
 * base_path_length[0..n-1]; the suffix bytes of each path, concatenated.
 * tensorstore's reader requires that a prefix reaching past either base path
 * comes with two base paths of the same length (and so equal ones).
 */
#include <stdlib.h>
#include <string.h>

#include "storage/codec_int.h"

/* The prefix length tensorstore's writer stores between two adjacent paths:
 * the common prefix of the base paths, extended into the relative paths only
 * when the base paths are equal. */
static size_t path_prefix(const ocdbt_file *prev, const ocdbt_file *cur) {
  size_t k = ocdbt_common_prefix(prev->base_path, cur->base_path);
  if (prev->base_path.n == cur->base_path.n && k == cur->base_path.n)
    k += ocdbt_common_prefix(prev->relative_path, cur->relative_path);
  return k;
}

/* The length columns, encoded from (and decoded into) a scratch array. The
 * base_path_length column is read by hand: each element is checked against
 * its path before the next is read. */
typedef struct pathlens {
  uint16_t prefix, suffix, base;
} pathlens;

/* path_prefix_length has no element for the first path (see btnode.c). */
static const ocdbt__col path_prefix_col[] = {
    OCDBT__VARINT(pathlens, prefix, "path_prefix_length", UINT16_MAX)};
static const ocdbt__col path_len_cols[] = {
    OCDBT__VARINT(pathlens, suffix, "path_suffix_length", UINT16_MAX),
    OCDBT__VARINT(pathlens, base, "base_path_length", UINT16_MAX),
};

int ocdbt_dft_encode(const ocdbt_dft *dft, strata_buf *out) {
  int rc;
  size_t n = dft->n;
  for (size_t i = 0; i < n; i++) {
    const ocdbt_file *f = &dft->files[i];
    if (f->base_path.n + f->relative_path.n > OCDBT_MAX_PATH_LENGTH)
      return strata_err(STRATA_EINVALID, "data file table: path[%zu] is %zu bytes, limit %u", i,
                        f->base_path.n + f->relative_path.n, OCDBT_MAX_PATH_LENGTH);
  }
  if ((rc = strata_buf_reserve(out, 10 + n * 30))) return rc;
  ocdbt__put_varint(out, n);
  if (n == 0) return 0;
  pathlens *l = malloc(n * sizeof *l);
  if (!l) return strata_err(STRATA_ENOMEM, "data file table: cannot encode %zu files", n);
  for (size_t i = 0; i < n; i++) {
    const ocdbt_file *f = &dft->files[i];
    l[i].prefix = i ? (uint16_t)path_prefix(&dft->files[i - 1], f) : 0;
    l[i].suffix = (uint16_t)(f->base_path.n + f->relative_path.n - l[i].prefix);
    l[i].base = (uint16_t)f->base_path.n;
  }
  if ((rc = ocdbt__cols_write(out, l + 1, sizeof *l, n - 1, path_prefix_col, 1)) ||
      (rc = ocdbt__cols_write(out, l, sizeof *l, n, path_len_cols, 2)))
    goto out;
  for (size_t i = 0; i < n && !rc; i++) {
    const ocdbt_file *f = &dft->files[i];
    size_t k = l[i].prefix;
    size_t kb = k < f->base_path.n ? k : f->base_path.n;
    size_t kr = k - kb;
    if (!(rc = strata_buf_append(out, f->base_path.p + kb, f->base_path.n - kb)))
      rc = strata_buf_append(out, f->relative_path.p + kr, f->relative_path.n - kr);
  }
out:
  free(l);
  return rc;
}

int ocdbt__dft_read(ocdbt__rd *r, size_t transitive_len, ocdbt__arena *a, ocdbt_dft *out) {
  uint64_t n;
  int rc;
  *out = (ocdbt_dft){0, NULL};
  if ((rc = ocdbt__rd_varint(r, UINT64_MAX, &n, "num_files", -1))) return rc;
  if (n == 0) return 0;
  /* Each file takes at least three varint bytes, the first only two (it has
   * no prefix length). */
  if (n > (ocdbt__rd_left(r) + 1) / 3)
    return ocdbt__rd_fail(r, "num_files", -1, "%llu files cannot fit in the %zu bytes that remain",
                          (unsigned long long)n, ocdbt__rd_left(r));
  if (transitive_len > OCDBT_MAX_PATH_LENGTH)
    return strata_err(STRATA_ECORRUPT, "%s: transitive path of %zu bytes exceeds %u", r->obj,
                      transitive_len, OCDBT_MAX_PATH_LENGTH);
  size_t max_path = OCDBT_MAX_PATH_LENGTH - transitive_len;
  pathlens *l = ocdbt__arena_alloc(a, n * sizeof *l);
  ocdbt_file *files = ocdbt__arena_alloc(a, n * sizeof *files);
  if (!l || !files) return STRATA_ENOMEM;
  ocdbt__cols_ctx pctx = {0}, sctx = {0};
  if ((rc = ocdbt__cols_read(r, l + 1, sizeof *l, n - 1, path_prefix_col, 1, &pctx)) ||
      (rc = ocdbt__cols_read(r, l, sizeof *l, n, path_len_cols, 1, &sctx)))
    return rc;
  size_t prefix_col = pctx.start[0], suffix_col = sctx.start[0];
  size_t total = 0, prev_len = 0, prev_base = 0;
  uint64_t v;
  for (uint64_t i = 0; i < n; i++) {
    if ((rc = ocdbt__rd_varint(r, UINT16_MAX, &v, path_len_cols[1].name, (long)i))) return rc;
    l[i].base = (uint16_t)v;
    size_t path_len = (size_t)l[i].prefix + l[i].suffix;
    if (l[i].prefix > prev_len)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, prefix_col, i - 1), "path_prefix_length",
                            (long)i - 1,
                            "%u exceeds the previous path's length %zu", l[i].prefix, prev_len);
    if (path_len > max_path)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, suffix_col, i), "path_suffix_length",
                            (long)i,
                            "path of %zu bytes plus transitive path of %zu exceeds %u", path_len,
                            transitive_len, OCDBT_MAX_PATH_LENGTH);
    if (l[i].base > path_len)
      return ocdbt__rd_fail(r, "base_path_length", (long)i, "%u exceeds the path length %zu",
                            l[i].base, path_len);
    size_t min_base = prev_base < l[i].base ? prev_base : l[i].base;
    if (i > 0 && l[i].prefix > min_base && l[i].base != prev_base)
      return ocdbt__rd_fail_at(r, ocdbt__varint_offset(r, prefix_col, i - 1), "path_prefix_length",
                            (long)i - 1,
                            "%u reaches past base paths of different lengths (%zu, %u)", l[i].prefix,
                            prev_base, l[i].base);
    total += path_len;
    if (total > OCDBT_MAX_DECODED_BYTES)
      return strata_err(STRATA_ETOOBIG, "%s: data file paths exceed %zu bytes", r->obj,
                        (size_t)OCDBT_MAX_DECODED_BYTES);
    prev_len = path_len;
    prev_base = l[i].base;
  }
  uint8_t *paths = ocdbt__arena_alloc(a, total ? total : 1);
  if (!paths) return STRATA_ENOMEM;
  const uint8_t *prev = NULL;
  for (uint64_t i = 0; i < n; i++) {
    const uint8_t *s;
    if ((rc = ocdbt__rd_bytes(r, l[i].suffix, &s, "path_suffix", (long)i))) return rc;
    if (l[i].prefix) memcpy(paths, prev, l[i].prefix);
    if (l[i].suffix) memcpy(paths + l[i].prefix, s, l[i].suffix);
    size_t path_len = (size_t)l[i].prefix + l[i].suffix;
    files[i].base_path = (ocdbt_slice){paths, l[i].base};
    files[i].relative_path = (ocdbt_slice){paths + l[i].base, path_len - l[i].base};
    prev = paths;
    paths += path_len;
  }
  out->n = n;
  out->files = files;
  return 0;
}

int ocdbt_dft_decode(const uint8_t *p, size_t n, size_t transitive_len, ocdbt_dft *out,
                     void **arena, size_t *consumed) {
  ocdbt__arena *a = ocdbt__arena_new();
  *arena = NULL;
  *out = (ocdbt_dft){0, NULL};
  if (!a) return STRATA_ENOMEM;
  ocdbt__rd r = {p, n, 0, "data file table", 0, NULL};
  int rc = ocdbt__decode_done(ocdbt__dft_read(&r, transitive_len, a, out), a, arena, out,
                              sizeof *out);
  if (!rc && consumed) *consumed = r.off;
  return rc;
}

void ocdbt_dft_arena_free(void *arena) { ocdbt__arena_free(arena); }

/* --- canonical order -------------------------------------------------------------- */

static int file_cmp(const ocdbt_file *a, const ocdbt_file *b) {
  int c = ocdbt_slice_cmp(a->base_path, b->base_path);
  return c ? c : ocdbt_slice_cmp(a->relative_path, b->relative_path);
}

/* Abbreviated keys (as PostgreSQL's sorts use them): the first 8 bytes of the
 * base path and the first 16 of the relative path, big-endian and zero padded,
 * decide most comparisons with integer compares; only ties fall back to the
 * full comparison. Zero padding keeps the order: where two abbreviations
 * first differ, either both hold real bytes there, or the shorter path ends
 * there and is a prefix of the other (smaller in both orders). */
typedef struct {
  uint64_t kb, kr0, kr1;
  ocdbt_file f;
  uint64_t old;
} sort_item;

static uint64_t abbrev(ocdbt_slice s, size_t off) {
  uint64_t v = 0;
  for (size_t i = off; i < off + 8; i++) v = v << 8 | (i < s.n ? s.p[i] : 0);
  return v;
}

static int item_cmp(const void *x, const void *y) {
  const sort_item *a = x, *b = y;
  if (a->kb != b->kb) return a->kb < b->kb ? -1 : 1;
  if (a->f.base_path.n <= 8 && a->f.base_path.n == b->f.base_path.n) {
    /* the base paths are equal: the relative paths decide */
    if (a->kr0 != b->kr0) return a->kr0 < b->kr0 ? -1 : 1;
    if (a->kr1 != b->kr1) return a->kr1 < b->kr1 ? -1 : 1;
  }
  int c = file_cmp(&a->f, &b->f);
  return c ? c : (a->old > b->old) - (a->old < b->old);
}

int ocdbt_dft_sort(ocdbt_dft *dft, uint64_t *remap) {
  if (dft->n == 0) return 0;
  sort_item *items = malloc(dft->n * sizeof *items);
  if (!items) return strata_err(STRATA_ENOMEM, "cannot sort a table of %zu files", dft->n);
  for (size_t i = 0; i < dft->n; i++) {
    const ocdbt_file *f = &dft->files[i];
    items[i] = (sort_item){abbrev(f->base_path, 0), abbrev(f->relative_path, 0), abbrev(f->relative_path, 8), *f, i};
  }
  qsort(items, dft->n, sizeof *items, item_cmp);
  size_t out = 0;
  for (size_t i = 0; i < dft->n; i++) {
    if (out == 0 || file_cmp(&items[i].f, &dft->files[out - 1]) != 0) dft->files[out++] = items[i].f;
    remap[items[i].old] = out - 1;
  }
  dft->n = out;
  free(items);
  return 0;
}
