/*
 * Private to the OCDBT codecs (crc32c.c, codec.c, dft.c, btnode.c, vtree.c,
 * manifest.c): the bounds-checked reader every decoder parses with, uleb128
 * varints, the arena decoded objects own, and the common envelope.
 */
#ifndef STRATA_STORAGE_CODEC_INT_H
#define STRATA_STORAGE_CODEC_INT_H

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

/* offset + length must not overflow and must stay <= 2^63 - 1. */
static inline int ocdbt__ref_range_ok(uint64_t offset, uint64_t length) {
  return offset <= INT64_MAX && length <= (uint64_t)INT64_MAX - offset;
}

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
