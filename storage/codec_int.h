/*
 * Private to the OCDBT codecs (crc32c.c, codec.c, dft.c, btnode.c, vtree.c,
 * manifest.c): the bounds-checked reader every decoder parses with, uleb128
 * varints, the arena decoded objects own, the common envelope, and the
 * column tables that describe the per-entry fields of nodes.
 */
#ifndef STRATA_STORAGE_CODEC_INT_H
#define STRATA_STORAGE_CODEC_INT_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/ocdbt.h"

/* --- arena: many allocations, one free ------------------------------------ */

typedef struct ocdbt__arena ocdbt__arena;

ocdbt__arena *ocdbt__arena_new(void);
/* Zeroed, 16-byte aligned memory valid until ocdbt__arena_free. NULL on OOM
 * (with strata_err set). */
void *ocdbt__arena_alloc(ocdbt__arena *a, size_t size);
/* The same without zeroing, for arrays the caller fills completely. */
void *ocdbt__arena_alloc_raw(ocdbt__arena *a, size_t size);
/* Hands a malloc'd block to the arena, which frees it with everything else. */
int ocdbt__arena_adopt(ocdbt__arena *a, void *block);
void ocdbt__arena_free(ocdbt__arena *a);

/* --- reader --------------------------------------------------------------- */

/* A cursor over [p, p+n). Every read checks the bytes that remain; a failure
 * records "OBJ: FIELD[IDX] at body offset OFF: why" and returns
 * STRATA_ECORRUPT. idx < 0 means the field is not an array element. */
typedef struct ocdbt__rd {
  const uint8_t *p;
  size_t n;
  size_t off;
  const char *obj;
  size_t field_off; /* where the field read last (or being read) starts */
  const char *where; /* how messages name offsets; NULL: "body offset" */
} ocdbt__rd;

/* Reports the failure at the start of the field read last. */
int ocdbt__rd_fail(const ocdbt__rd *r, const char *field, long idx, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Reports the failure at an explicit body offset. */
int ocdbt__rd_fail_at(const ocdbt__rd *r, size_t off, const char *field, long idx, const char *fmt,
                      ...) __attribute__((format(printf, 5, 6)));
/* The body offset of element idx of a varint column starting at col. Only
 * for error paths: it rescans the column. */
size_t ocdbt__varint_offset(const ocdbt__rd *r, size_t col, size_t idx);

static inline size_t ocdbt__rd_left(const ocdbt__rd *r) { return r->n - r->off; }

/* A uleb128 varint that must fit in max (UINT64_MAX, UINT32_MAX, UINT16_MAX).
 * Most varints in a node are one byte: that case is inlined. */
int ocdbt__rd_varint_slow(ocdbt__rd *r, uint64_t max, uint64_t *v, const char *field, long idx);
static inline int ocdbt__rd_varint(ocdbt__rd *r, uint64_t max, uint64_t *v, const char *field,
                                   long idx) {
  if (r->off < r->n && r->p[r->off] < 0x80 && r->p[r->off] <= max) {
    r->field_off = r->off;
    *v = r->p[r->off++];
    return 0;
  }
  return ocdbt__rd_varint_slow(r, max, v, field, idx);
}
int ocdbt__rd_u8(ocdbt__rd *r, uint8_t *v, const char *field, long idx);
int ocdbt__rd_u32le(ocdbt__rd *r, uint32_t *v, const char *field, long idx);
int ocdbt__rd_u64le(ocdbt__rd *r, uint64_t *v, const char *field, long idx);
/* Points *out at the next len bytes (inside the reader's buffer). */
int ocdbt__rd_bytes(ocdbt__rd *r, size_t len, const uint8_t **out, const char *field, long idx);
/* Fails unless every byte was consumed. */
int ocdbt__rd_end(const ocdbt__rd *r);

/* Reads `count` elements that each take at least min_bytes: fails early when
 * the bytes left cannot hold them, so no allocation is sized by a lie. */
int ocdbt__rd_check_count(const ocdbt__rd *r, uint64_t count, size_t min_bytes,
                          const char *field);

/* --- writer --------------------------------------------------------------- */

/* Caller reserved at least 10 bytes. */
static inline void ocdbt__put_varint(strata_buf *b, uint64_t v) {
  while (v >= 0x80) {
    b->p[b->len++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b->p[b->len++] = (uint8_t)v;
}
int ocdbt__w_u8(strata_buf *b, uint8_t v);

/* Appends a little-endian field of nbytes; the caller reserved the room. */
static inline void ocdbt__put_le(strata_buf *b, uint64_t v, int nbytes) {
  ocdbt_store_le(b->p + b->len, v, nbytes);
  b->len += (size_t)nbytes;
}

/* offset + length must not overflow and must stay <= 2^63 - 1. */
static inline int ocdbt__ref_range_ok(uint64_t offset, uint64_t length) {
  return offset <= INT64_MAX && length <= (uint64_t)INT64_MAX - offset;
}

/* --- column tables --------------------------------------------------------------
 * The node formats store a node's entries column by column (docs/format.md):
 * one field of every entry, then the next field. Each object's table lists its
 * columns in on-disk order, with the entry member each one fills; one walker
 * encodes and one decodes every table, so a column is described once. */

enum { OCDBT__COL_VARINT, OCDBT__COL_U8, OCDBT__COL_U64LE };
#define OCDBT__MAX_COLS 10 /* the walkers below unroll this many steps */

/* What a column's check needs besides the entry. */
typedef struct ocdbt__cols_ctx {
  const ocdbt_dft *dft;              /* the object's data file table */
  size_t start[OCDBT__MAX_COLS];     /* body offset where each column began */
} ocdbt__cols_ctx;

/* The shared rules: the file id just read is inside the table; the entry's
 * ref stays within 2^63 (a message naming both values, or a short one). */
enum { OCDBT__RULE_NONE, OCDBT__RULE_FILE_ID, OCDBT__RULE_REF_RANGE, OCDBT__RULE_REF_RANGE_SHORT };

typedef struct ocdbt__col ocdbt__col;
struct ocdbt__col {
  const char *name;  /* the field's name in docs/format.md and in error messages */
  uint8_t type;      /* OCDBT__COL_* */
  uint8_t size;      /* sizeof the entry member it fills: 1, 2 or 8 */
  uint16_t off;      /* offsetof that member */
  uint64_t max;      /* varints: the largest value allowed */
  /* Column holds only the entries whose byte at when_off equals when_val
   * (out-of-line value columns); when == 0: every entry. */
  uint8_t when, when_val;
  uint16_t when_off;
  /* Decode: a rule checked as soon as the element is read. `rule` names a
   * shared one (inlined), `check` an object's own (NULL: none). */
  uint8_t rule;      /* OCDBT__RULE_* */
  uint16_t ref_off;  /* the ref rules: offsetof the entry's ocdbt_ref */
  int (*check)(const ocdbt__rd *r, const ocdbt__col *c, const uint8_t *entry, long idx,
               const ocdbt__cols_ctx *ctx);
  /* Encode: the value written, when it is not the member itself. */
  uint64_t (*get)(const uint8_t *entry);
};

/* The walkers are inline and unroll the column loop by hand, so that with a
 * constant table the compiler folds each column's type, width and rule: the
 * table is the source, the code is as specialised as hand-written loops. */
#define OCDBT__INLINE static inline __attribute__((always_inline))

OCDBT__INLINE size_t ocdbt__col_width(const ocdbt__col *c) {
  return c->type == OCDBT__COL_VARINT ? 10 : c->type == OCDBT__COL_U8 ? 1 : 8;
}

OCDBT__INLINE uint64_t ocdbt__col_load(const ocdbt__col *c, const uint8_t *e) {
  if (c->get) return c->get(e);
  if (c->size == 1) return e[c->off];
  if (c->size == 2) return *(const uint16_t *)(const void *)(e + c->off);
  return *(const uint64_t *)(const void *)(e + c->off);
}

OCDBT__INLINE int ocdbt__col_skips(const ocdbt__col *c, const uint8_t *e) {
  return c->when && e[c->when_off] != c->when_val;
}

/* Appends one column of n entries; the caller reserved the room. */
OCDBT__INLINE void ocdbt__col_write(strata_buf *b, const uint8_t *e, size_t stride, size_t n,
                                    const ocdbt__col *c) {
  for (size_t i = 0; i < n; i++, e += stride) {
    if (ocdbt__col_skips(c, e)) continue;
    uint64_t v = ocdbt__col_load(c, e);
    if (c->type == OCDBT__COL_VARINT) ocdbt__put_varint(b, v);
    else if (c->type == OCDBT__COL_U8) b->p[b->len++] = (uint8_t)v;
    else ocdbt__put_le(b, v, 8);
  }
}

/* Writes columns [0, ncols) of n entries of `stride` bytes (ncols <=
 * OCDBT__MAX_COLS). */
OCDBT__INLINE int ocdbt__cols_write(strata_buf *b, const void *entries, size_t stride, size_t n,
                                    const ocdbt__col *cols, size_t ncols) {
  size_t width = 0;
  for (size_t k = 0; k < ncols; k++) width += ocdbt__col_width(&cols[k]);
  int rc = strata_buf_reserve(b, n * width);
  if (rc) return rc;
  assert(ncols <= OCDBT__MAX_COLS);
  /* Unrolled by hand, as in ocdbt__cols_read. */
#define OCDBT__WRITE_STEP(k) \
  if ((k) < ncols) ocdbt__col_write(b, entries, stride, n, &cols[k]);
  OCDBT__WRITE_STEP(0) OCDBT__WRITE_STEP(1) OCDBT__WRITE_STEP(2) OCDBT__WRITE_STEP(3)
  OCDBT__WRITE_STEP(4) OCDBT__WRITE_STEP(5) OCDBT__WRITE_STEP(6) OCDBT__WRITE_STEP(7)
  OCDBT__WRITE_STEP(8) OCDBT__WRITE_STEP(9)
#undef OCDBT__WRITE_STEP
  return 0;
}

/* The failure of a shared rule (out of line: only error paths call it). */
int ocdbt__col_rule_fail(const ocdbt__rd *r, const ocdbt__col *c, const uint8_t *e, long idx,
                         const ocdbt__cols_ctx *ctx);

OCDBT__INLINE int ocdbt__col_rule_ok(const ocdbt__col *c, const uint8_t *e, uint64_t v,
                                     const ocdbt__cols_ctx *ctx) {
  if (c->rule == OCDBT__RULE_FILE_ID) return v < ctx->dft->n;
  const ocdbt_ref *ref = (const ocdbt_ref *)(const void *)(e + c->ref_off);
  return ocdbt__ref_range_ok(ref->offset, ref->length);
}

/* Reads one column of n entries. */
OCDBT__INLINE int ocdbt__col_read(ocdbt__rd *r, uint8_t *e, size_t stride, size_t n,
                                  const ocdbt__col *c, const ocdbt__cols_ctx *ctx) {
  int rc;
  for (size_t i = 0; i < n; i++, e += stride) {
    if (ocdbt__col_skips(c, e)) continue;
    uint64_t v;
    uint8_t u8 = 0;
    if (c->type == OCDBT__COL_VARINT) {
      rc = ocdbt__rd_varint(r, c->max, &v, c->name, (long)i);
    } else if (c->type == OCDBT__COL_U8) {
      rc = ocdbt__rd_u8(r, &u8, c->name, (long)i);
      v = u8;
    } else {
      rc = ocdbt__rd_u64le(r, &v, c->name, (long)i);
    }
    if (rc) return rc;
    if (c->size == 8) *(uint64_t *)(void *)(e + c->off) = v;
    else if (c->size == 2) *(uint16_t *)(void *)(e + c->off) = (uint16_t)v;
    else e[c->off] = (uint8_t)v;
    if (c->rule && !ocdbt__col_rule_ok(c, e, v, ctx))
      return ocdbt__col_rule_fail(r, c, e, (long)i, ctx);
    if (c->check && (rc = c->check(r, c, e, (long)i, ctx))) return rc;
  }
  return 0;
}

/* Reads columns [0, ncols) (ncols <= OCDBT__MAX_COLS) into the entries'
 * members, naming elements 0..n-1 in messages; ctx->start[k] is where
 * column k began. */
OCDBT__INLINE int ocdbt__cols_read(ocdbt__rd *r, void *entries, size_t stride, size_t n,
                                   const ocdbt__col *cols, size_t ncols, ocdbt__cols_ctx *ctx) {
  assert(ncols <= OCDBT__MAX_COLS);
  int rc = 0;
  /* Unrolled by hand: with a constant table every step's column is known. */
#define OCDBT__READ_STEP(k)                                                                         \
  if ((k) < ncols && !rc) {                                                                        \
    ctx->start[k] = r->off;                                                                        \
    rc = ocdbt__col_read(r, entries, stride, n, &cols[k], ctx);                                    \
  }
  OCDBT__READ_STEP(0) OCDBT__READ_STEP(1) OCDBT__READ_STEP(2) OCDBT__READ_STEP(3)
  OCDBT__READ_STEP(4) OCDBT__READ_STEP(5) OCDBT__READ_STEP(6) OCDBT__READ_STEP(7)
  OCDBT__READ_STEP(8) OCDBT__READ_STEP(9)
#undef OCDBT__READ_STEP
  return rc;
}


/* Table rows: a member of entry type T filled from a column. */
#define OCDBT__VARINT(T, member, name_, max_)                                                      \
  { .name = name_, .type = OCDBT__COL_VARINT, .size = sizeof(((T *)0)->member),                \
    .off = offsetof(T, member), .max = max_ }
#define OCDBT__FIXED(T, member, name_, type_)                                                      \
  { .name = name_, .type = type_, .size = sizeof(((T *)0)->member), .off = offsetof(T, member) }

/* --- decode arena ownership ------------------------------------------------------- */

/* The common tail of every decoder: on success the object owns the arena
 * (*arena_slot = a); on failure the arena is freed and the object (out_size
 * bytes at out) zeroed. Returns rc. */
int ocdbt__decode_done(int rc, ocdbt__arena *a, void **arena_slot, void *out, size_t out_size);

/* --- keys and paths ------------------------------------------------------- */

/* Byte-wise order of two slices, shorter first on a tie (memcmp order). */
/* --- envelope ----------------------------------------------------------------
 * magic (u32 BE) | length (u64 LE, whole object) | version (varint, 0) |
 * compression (varint 0 none, 1 zstd) | body (compressed as said) | crc32c (u32 LE
 * of everything before it). */

/* Writes the header with a placeholder length; returns the object's start
 * offset in *start. The body is then appended to out uncompressed. */
int ocdbt__env_begin(strata_buf *out, uint32_t magic, int compression, size_t *start);
/* Compresses the body in place when asked, fills in the length, appends the
 * CRC. On failure out->len is restored to start. */
int ocdbt__env_end(strata_buf *out, size_t start, int compression, int zstd_level);

/* Checks magic, length, CRC, version and compression, then yields the body
 * in arena memory: decompressed, or copied when uncompressed, so decoded
 * objects never point into the input. */
int ocdbt__env_decode(const uint8_t *p, size_t n, uint32_t magic, const char *obj,
                      ocdbt__arena *arena, ocdbt__rd *body);

/* --- pieces shared by the node codecs ----------------------------------------- */

/* Data file table inside a body: decode into arena memory. */
int ocdbt__dft_read(ocdbt__rd *r, size_t transitive_len, ocdbt__arena *a, ocdbt_dft *out);

/* Version tree leaf entries (manifest inline versions and leaf nodes). */
int ocdbt__versions_write(strata_buf *b, const ocdbt_version *v, size_t n);
int ocdbt__versions_read(ocdbt__rd *r, uint8_t arity_log2, const ocdbt_dft *dft,
                         ocdbt__arena *a, ocdbt_version **out, size_t *n_out);
int ocdbt__versions_check(uint8_t arity_log2, const ocdbt_version *v, size_t n, uint64_t nfiles,
                          const char *obj, int corrupt);

/* Version tree interior entries; with_height adds the manifest's height column. */
int ocdbt__vrefs_write(strata_buf *b, const ocdbt_vnode_ref *v, size_t n, int with_height);
int ocdbt__vrefs_read(ocdbt__rd *r, size_t max_n, int with_height, const ocdbt_dft *dft,
                      ocdbt__arena *a, ocdbt_vnode_ref **out, size_t *n_out);

#endif
