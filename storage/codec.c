/*
 * The machinery every OCDBT codec shares: the arena decoded objects own, the
 * bounds-checked reader, varints, and the envelope (header, optional zstd
 * body, CRC-32C footer) around manifests, version tree nodes and B+tree nodes.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "storage/codec_int.h"

/* --- arena ------------------------------------------------------------------
 * Allocation bumps a pointer in the newest block; a new block is at least
 * twice the previous one, so a decode makes few blocks. When an arena is
 * freed, its largest block (up to SPARE_MAX) is kept as this thread's spare
 * and reused by the next arena: repeated decodes of similar nodes then touch
 * warm memory instead of asking the kernel for fresh zeroed pages. */

#define SPARE_MAX ((size_t)64 << 20)
#define BLOCK_MIN ((size_t)4096)

typedef struct block {
  struct block *next;
  size_t used, cap;
  _Alignas(16) unsigned char data[];
} block;

struct ocdbt__arena {
  block *head;
  void **adopted;
  size_t n_adopted, cap_adopted;
};

static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static void spare_key_init(void) { pthread_key_create(&spare_key, free); }

static block *spare_take(size_t cap) {
  pthread_once(&spare_once, spare_key_init);
  block *b = pthread_getspecific(spare_key);
  if (!b || b->cap < cap) return NULL;
  pthread_setspecific(spare_key, NULL);
  return b;
}

static void spare_give(block *b) {
  pthread_once(&spare_once, spare_key_init);
  block *old = pthread_getspecific(spare_key);
  if (b->cap > SPARE_MAX || (old && old->cap >= b->cap)) {
    free(b);
    return;
  }
  pthread_setspecific(spare_key, b);
  free(old);
}

ocdbt__arena *ocdbt__arena_new(void) {
  ocdbt__arena *a = calloc(1, sizeof *a);
  if (!a) strata_err(STRATA_ENOMEM, "cannot allocate decode arena");
  return a;
}

void *ocdbt__arena_alloc(ocdbt__arena *a, size_t size) {
  void *p = ocdbt__arena_alloc_raw(a, size);
  if (p) memset(p, 0, size);
  return p;
}

void *ocdbt__arena_alloc_raw(ocdbt__arena *a, size_t size) {
  size = (size + 15) & ~(size_t)15;
  block *b = a->head;
  if (!b || b->cap - b->used < size) {
    size_t cap = b ? b->cap * 2 : BLOCK_MIN;
    if (cap < size) cap = size;
    b = spare_take(cap);
    if (!b) {
      if (!(b = malloc(sizeof *b + cap))) {
        strata_err(STRATA_ENOMEM, "cannot allocate %zu bytes while decoding", size);
        return NULL;
      }
      b->cap = cap;
    }
    b->used = 0;
    b->next = a->head;
    a->head = b;
  }
  void *p = b->data + b->used;
  b->used += size;
  return p;
}

int ocdbt__arena_adopt(ocdbt__arena *a, void *blockp) {
  if (strata_grow(&a->adopted, &a->cap_adopted, a->n_adopted + 1, sizeof *a->adopted, 4))
    return strata_err(STRATA_ENOMEM, "cannot grow decode arena");
  a->adopted[a->n_adopted++] = blockp;
  return 0;
}

void ocdbt__arena_free(ocdbt__arena *a) {
  if (!a) return;
  block *largest = NULL;
  for (block *b = a->head, *next; b; b = next) {
    next = b->next;
    if (!largest || b->cap > largest->cap) {
      free(largest);
      largest = b;
    } else {
      free(b);
    }
  }
  if (largest) spare_give(largest);
  for (size_t i = 0; i < a->n_adopted; i++) free(a->adopted[i]);
  free(a->adopted);
  free(a);
}

/* --- reader ------------------------------------------------------------------ */

static int vfail(const ocdbt__rd *r, size_t off, const char *field, long idx, const char *fmt,
                 va_list ap) {
  char why[512];
  vsnprintf(why, sizeof why, fmt, ap);
  const char *where = r->where ? r->where : "body offset";
  if (idx >= 0)
    return strata_err(STRATA_ECORRUPT, "%s: %s[%ld] at %s %zu: %s", r->obj, field, idx, where, off,
                      why);
  return strata_err(STRATA_ECORRUPT, "%s: %s at %s %zu: %s", r->obj, field, where, off, why);
}

int ocdbt__rd_fail(const ocdbt__rd *r, const char *field, long idx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(r, r->field_off, field, idx, fmt, ap);
  va_end(ap);
  return rc;
}

int ocdbt__rd_fail_at(const ocdbt__rd *r, size_t off, const char *field, long idx, const char *fmt,
                      ...) {
  va_list ap;
  va_start(ap, fmt);
  int rc = vfail(r, off, field, idx, fmt, ap);
  va_end(ap);
  return rc;
}

size_t ocdbt__varint_offset(const ocdbt__rd *r, size_t col, size_t idx) {
  size_t off = col;
  while (idx-- && off < r->n) {
    while (off < r->n && (r->p[off] & 0x80)) off++;
    off++;
  }
  return off;
}

int ocdbt__rd_varint_slow(ocdbt__rd *r, uint64_t max, uint64_t *v, const char *field, long idx) {
  uint64_t x = 0;
  r->field_off = r->off;
  for (unsigned shift = 0, i = 0;; shift += 7, i++) {
    if (r->off + i >= r->n) return ocdbt__rd_fail(r, field, idx, "unexpected end of data in varint");
    uint8_t byte = r->p[r->off + i];
    /* The 10th byte may carry only bit 63. */
    if (i == 9 && byte > 1) return ocdbt__rd_fail(r, field, idx, "varint exceeds 64 bits");
    x |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) {
      if (x > max)
        return ocdbt__rd_fail(r, field, idx, "value %llu exceeds the field's maximum %llu",
                              (unsigned long long)x, (unsigned long long)max);
      r->off += i + 1;
      *v = x;
      return 0;
    }
  }
}

int ocdbt__rd_u8(ocdbt__rd *r, uint8_t *v, const char *field, long idx) {
  r->field_off = r->off;
  if (r->off >= r->n) return ocdbt__rd_fail(r, field, idx, "unexpected end of data");
  *v = r->p[r->off++];
  return 0;
}

int ocdbt__rd_u32le(ocdbt__rd *r, uint32_t *v, const char *field, long idx) {
  r->field_off = r->off;
  if (ocdbt__rd_left(r) < 4) return ocdbt__rd_fail(r, field, idx, "unexpected end of data");
  *v = (uint32_t)ocdbt_load_le(r->p + r->off, 4);
  r->off += 4;
  return 0;
}

int ocdbt__rd_u64le(ocdbt__rd *r, uint64_t *v, const char *field, long idx) {
  r->field_off = r->off;
  if (ocdbt__rd_left(r) < 8) return ocdbt__rd_fail(r, field, idx, "unexpected end of data");
  *v = ocdbt_load_le(r->p + r->off, 8);
  r->off += 8;
  return 0;
}

int ocdbt__rd_bytes(ocdbt__rd *r, size_t len, const uint8_t **out, const char *field, long idx) {
  r->field_off = r->off;
  if (ocdbt__rd_left(r) < len)
    return ocdbt__rd_fail(r, field, idx, "needs %zu bytes but only %zu remain", len,
                          ocdbt__rd_left(r));
  *out = r->p + r->off;
  r->off += len;
  return 0;
}

int ocdbt__rd_end(const ocdbt__rd *r) {
  if (r->off != r->n)
    return ocdbt__rd_fail_at(r, r->off, "end", -1, "%zu unexpected trailing bytes", r->n - r->off);
  return 0;
}

int ocdbt__rd_check_count(const ocdbt__rd *r, uint64_t count, size_t min_bytes,
                          const char *field) {
  if (count > ocdbt__rd_left(r) / min_bytes)
    return ocdbt__rd_fail(r, field, -1, "count %llu cannot fit in the %zu bytes that remain",
                          (unsigned long long)count, ocdbt__rd_left(r));
  return 0;
}

/* --- writer ------------------------------------------------------------------ */

int ocdbt__w_u8(strata_buf *b, uint8_t v) { return strata_buf_append(b, &v, 1); }

/* --- zstd contexts, one per thread -------------------------------------------- */

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t zstd_once = PTHREAD_ONCE_INIT;

static void free_cctx(void *p) { ZSTD_freeCCtx(p); }
static void free_dctx(void *p) { ZSTD_freeDCtx(p); }
static void zstd_keys(void) {
  pthread_key_create(&cctx_key, free_cctx);
  pthread_key_create(&dctx_key, free_dctx);
}

static ZSTD_CCtx *thread_cctx(void) {
  pthread_once(&zstd_once, zstd_keys);
  ZSTD_CCtx *c = pthread_getspecific(cctx_key);
  if (!c && (c = ZSTD_createCCtx())) pthread_setspecific(cctx_key, c);
  return c;
}

static ZSTD_DCtx *thread_dctx(void) {
  pthread_once(&zstd_once, zstd_keys);
  ZSTD_DCtx *d = pthread_getspecific(dctx_key);
  if (!d && (d = ZSTD_createDCtx())) pthread_setspecific(dctx_key, d);
  return d;
}

/* --- envelope ------------------------------------------------------------------ */

#define ENV_FIXED 12 /* magic + length */

int ocdbt__env_begin(strata_buf *out, uint32_t magic, int compression, size_t *start) {
  int rc = strata_buf_reserve(out, ENV_FIXED + 2);
  if (rc) return rc;
  *start = out->len;
  uint8_t hdr[ENV_FIXED] = {(uint8_t)(magic >> 24), (uint8_t)(magic >> 16), (uint8_t)(magic >> 8),
                            (uint8_t)magic};
  strata_buf_put(out, hdr, sizeof hdr);
  ocdbt__put_varint(out, 0);           /* format version */
  ocdbt__put_varint(out, (uint64_t)compression);
  return 0;
}

/* Replaces out[body, len) with its zstd compression. */
static int compress_body(strata_buf *out, size_t body, int level) {
  size_t n = out->len - body;
  size_t bound = ZSTD_compressBound(n);
  uint8_t *tmp = malloc(bound);
  ZSTD_CCtx *c = thread_cctx();
  if (!tmp || !c) {
    free(tmp);
    return strata_err(STRATA_ENOMEM, "cannot allocate zstd compression state");
  }
  ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
  ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level);
  ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 0);
  size_t z = ZSTD_compress2(c, tmp, bound, out->p + body, n);
  if (ZSTD_isError(z)) {
    free(tmp);
    /* zstd allocates its work space inside the call: out of memory there is
     * ENOMEM like any other allocation (the publisher retries it), not a bug */
    int oom = ZSTD_getErrorCode(z) == ZSTD_error_memory_allocation;
    return strata_err(oom ? STRATA_ENOMEM : STRATA_EINTERNAL, "zstd compression failed: %s", ZSTD_getErrorName(z));
  }
  out->len = body;
  int rc = strata_buf_append(out, tmp, z);
  free(tmp);
  return rc;
}

int ocdbt__env_end(strata_buf *out, size_t start, int compression, int zstd_level) {
  int rc = 0;
  if (compression == OCDBT_COMPRESSION_ZSTD) {
    if (zstd_level < OCDBT_ZSTD_MIN_LEVEL || zstd_level > OCDBT_ZSTD_MAX_LEVEL) {
      rc = strata_err(STRATA_EINVALID, "zstd level %d outside [%d, %d]", zstd_level,
                      OCDBT_ZSTD_MIN_LEVEL, OCDBT_ZSTD_MAX_LEVEL);
      goto fail;
    }
    /* The body starts after the 12 fixed bytes and the two one-byte varints. */
    if ((rc = compress_body(out, start + ENV_FIXED + 2, zstd_level))) goto fail;
  } else if (compression != OCDBT_COMPRESSION_NONE) {
    rc = strata_err(STRATA_EINVALID, "unknown compression method %d", compression);
    goto fail;
  }
  if ((rc = strata_buf_reserve(out, 4))) goto fail;
  ocdbt_store_le(out->p + start + 4, out->len + 4 - start, 8);
  ocdbt__put_le(out, ocdbt_crc32c(0, out->p + start, out->len - start), 4);
  return 0;
fail:
  out->len = start;
  return rc;
}

/* Streams the frame(s) in src into a buffer the arena adopts; the result must
 * end exactly at a frame boundary and stay within OCDBT_MAX_DECODED_BYTES. */
static int decompress(const uint8_t *src, size_t n, const char *obj, ocdbt__arena *a,
                      ocdbt__rd *body) {
  ZSTD_DCtx *d = thread_dctx();
  if (!d) return strata_err(STRATA_ENOMEM, "cannot allocate zstd decompression state");
  ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
  unsigned long long want = ZSTD_getFrameContentSize(src, n);
  if (want != ZSTD_CONTENTSIZE_UNKNOWN && want != ZSTD_CONTENTSIZE_ERROR) {
    if (want > OCDBT_MAX_DECODED_BYTES)
      return strata_err(STRATA_ETOOBIG, "%s: decompressed size %llu exceeds the limit of %zu bytes",
                        obj, want, (size_t)OCDBT_MAX_DECODED_BYTES);
    /* One frame that states its size (as ours do): decompress in one call
     * into arena memory. */
    size_t frame = ZSTD_findFrameCompressedSize(src, n);
    if (!ZSTD_isError(frame) && frame == n) {
      uint8_t *out = ocdbt__arena_alloc_raw(a, want ? (size_t)want : 1);
      if (!out) return STRATA_ENOMEM;
      size_t got = ZSTD_decompressDCtx(d, out, (size_t)want, src, n);
      if (ZSTD_isError(got))
        return strata_err(STRATA_ECORRUPT, "%s: zstd body: %s", obj, ZSTD_getErrorName(got));
      if (got != want)
        return strata_err(STRATA_ECORRUPT, "%s: zstd body holds %zu bytes, its header says %llu", obj,
                          got, want);
      body->p = out;
      body->n = got;
      return 0;
    }
  }
  size_t cap = 4096;
  uint8_t *dst = malloc(cap);
  if (!dst) return strata_err(STRATA_ENOMEM, "cannot allocate %zu bytes to decompress %s", cap, obj);
  ZSTD_inBuffer in = {src, n, 0};
  ZSTD_outBuffer o = {dst, cap, 0};
  size_t ret = 1;
  while (in.pos < in.size || (ret != 0 && o.pos == o.size)) {
    if (o.pos == o.size) {
      if (o.size >= OCDBT_MAX_DECODED_BYTES) {
        free(dst);
        return strata_err(STRATA_ETOOBIG, "%s: decompressed body exceeds the limit of %zu bytes",
                          obj, (size_t)OCDBT_MAX_DECODED_BYTES);
      }
      size_t ncap = o.size * 2 > OCDBT_MAX_DECODED_BYTES ? OCDBT_MAX_DECODED_BYTES : o.size * 2;
      uint8_t *p = realloc(dst, ncap);
      if (!p) {
        free(dst);
        return strata_err(STRATA_ENOMEM, "cannot grow decompression buffer for %s", obj);
      }
      dst = p;
      o.dst = p;
      o.size = ncap;
    }
    size_t before_in = in.pos, before_out = o.pos;
    ret = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(ret)) {
      free(dst);
      return strata_err(STRATA_ECORRUPT, "%s: zstd body at byte %zu: %s", obj, in.pos,
                        ZSTD_getErrorName(ret));
    }
    if (in.pos == before_in && o.pos == before_out && o.pos < o.size) break; /* no progress */
  }
  if (ret != 0) {
    free(dst);
    return strata_err(STRATA_ECORRUPT, "%s: zstd body ends inside a frame", obj);
  }
  if (ocdbt__arena_adopt(a, dst)) {
    free(dst);
    return STRATA_ENOMEM;
  }
  body->p = dst;
  body->n = o.pos;
  return 0;
}

int ocdbt__env_decode(const uint8_t *p, size_t n, uint32_t magic, const char *obj,
                      ocdbt__arena *a, ocdbt__rd *body) {
  if (n < ENV_FIXED + 4)
    return strata_err(STRATA_ECORRUPT, "%s: %zu bytes is shorter than the minimum of 16", obj, n);
  uint32_t m = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
  if (m != magic)
    return strata_err(STRATA_ECORRUPT, "%s: magic at offset 0 is 0x%08x, expected 0x%08x", obj, m,
                      magic);
  uint64_t length = ocdbt_load_le(p + 4, 8);
  if (length != n)
    return strata_err(STRATA_ECORRUPT, "%s: length field at offset 4 says %llu bytes, object has %zu",
                      obj, (unsigned long long)length, n);
  uint32_t want = (uint32_t)ocdbt_load_le(p + n - 4, 4);
  uint32_t got = ocdbt_crc32c(0, p, n - 4);
  if (want != got)
    return strata_err(STRATA_ECORRUPT, "%s: CRC-32C mismatch (footer 0x%08x, computed 0x%08x)", obj,
                      want, got);
  /* The header's fields are named by their offset in the whole object. */
  ocdbt__rd h = {p, n - 4, ENV_FIXED, obj, ENV_FIXED, "offset"};
  uint64_t version, compression;
  int rc;
  if ((rc = ocdbt__rd_varint(&h, UINT32_MAX, &version, "version", -1))) return rc;
  if (version != 0) return ocdbt__rd_fail(&h, "version", -1, "format version %llu is not 0",
                                          (unsigned long long)version);
  if ((rc = ocdbt__rd_varint(&h, UINT32_MAX, &compression, "compression_format", -1))) return rc;
  const uint8_t *rest = h.p + h.off;
  size_t rest_n = h.n - h.off;
  switch (compression) {
  case OCDBT_COMPRESSION_NONE: {
    /* Copied once so that the decoded object never points into the input. */
    uint8_t *copy = ocdbt__arena_alloc_raw(a, rest_n ? rest_n : 1);
    if (!copy) return STRATA_ENOMEM;
    memcpy(copy, rest, rest_n);
    *body = (ocdbt__rd){copy, rest_n, 0, obj, 0, NULL};
    return 0;
  }
  case OCDBT_COMPRESSION_ZSTD:
    *body = (ocdbt__rd){NULL, 0, 0, obj, 0, NULL};
    return decompress(rest, rest_n, obj, a, body);
  default:
    return ocdbt__rd_fail(&h, "compression_format", -1, "unknown compression format %llu",
                          (unsigned long long)compression);
  }
}

/* --- column tables ------------------------------------------------------------ */

int ocdbt__col_rule_fail(const ocdbt__rd *r, const ocdbt__col *c, const uint8_t *e, long idx,
                         const ocdbt__cols_ctx *ctx) {
  const ocdbt_ref *ref = (const ocdbt_ref *)(const void *)(e + c->ref_off);
  switch (c->rule) {
  case OCDBT__RULE_FILE_ID:
    return ocdbt__rd_fail(r, c->name, idx, "file index %llu outside the table of %zu files",
                          (unsigned long long)ocdbt__col_load(c, e), ctx->dft->n);
  case OCDBT__RULE_REF_RANGE:
    return ocdbt__rd_fail(r, c->name, idx, "offset %llu + length %llu exceeds 2^63-1",
                          (unsigned long long)ref->offset, (unsigned long long)ref->length);
  default:
    return ocdbt__rd_fail(r, c->name, idx, "offset + length exceeds 2^63-1");
  }
}

/* --- decode arena ownership ------------------------------------------------------- */

int ocdbt__decode_done(int rc, ocdbt__arena *a, void **arena_slot, void *out, size_t out_size) {
  if (rc) {
    ocdbt__arena_free(a);
    memset(out, 0, out_size);
    return rc;
  }
  *arena_slot = a;
  return 0;
}
