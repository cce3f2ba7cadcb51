/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78), the checksum in every
 * OCDBT footer. With SSE4.2 the crc32 instruction runs three independent
 * streams over adjacent blocks (its latency is three cycles, its throughput
 * one), and the three partial CRCs are joined with a precomputed "append N
 * zero bytes" operator. Without SSE4.2, slicing-by-8 tables.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "storage/ocdbt.h"

#define POLY 0x82f63b78u
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256

static uint32_t slice8[8][256];
/* shift_long[k][b]: contribution of byte b at position k of a CRC register
 * after LONG_BLOCK zero bytes are appended; likewise shift_short. */
static uint32_t shift_long[4][256];
static uint32_t shift_short[4][256];
static int have_hw;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* --- GF(2) operators on 32-bit CRC registers ---------------------------------- */

static uint32_t gf2_times(const uint32_t *mat, uint32_t vec) {
  uint32_t sum = 0;
  for (; vec; vec >>= 1, mat++)
    if (vec & 1) sum ^= *mat;
  return sum;
}

static void gf2_square(uint32_t *square, const uint32_t *mat) {
  for (int n = 0; n < 32; n++) square[n] = gf2_times(mat, mat[n]);
}

/* The operator that appends `len` zero bytes to a CRC register. */
static void zeros_operator(uint32_t *op, size_t len) {
  uint32_t a[32], b[32];
  a[0] = POLY; /* one zero bit */
  for (int n = 1; n < 32; n++) a[n] = 1u << (n - 1);
  gf2_square(b, a); /* two bits */
  gf2_square(a, b); /* four bits */
  gf2_square(b, a); /* one byte */
  /* Binary exponentiation over the bytes of len. */
  uint32_t result[32];
  int have = 0;
  uint32_t *cur = b, *tmp = a;
  while (len) {
    if (len & 1) {
      if (!have) {
        memcpy(result, cur, sizeof result);
        have = 1;
      } else {
        uint32_t r2[32];
        for (int n = 0; n < 32; n++) r2[n] = gf2_times(cur, result[n]);
        memcpy(result, r2, sizeof result);
      }
    }
    len >>= 1;
    if (len) {
      gf2_square(tmp, cur);
      uint32_t *t = cur;
      cur = tmp;
      tmp = t;
    }
  }
  memcpy(op, result, sizeof result);
}

static void shift_table(uint32_t table[4][256], size_t len) {
  uint32_t op[32];
  zeros_operator(op, len);
  for (uint32_t n = 0; n < 256; n++)
    for (int k = 0; k < 4; k++) table[k][n] = gf2_times(op, n << (8 * k));
}

static inline uint32_t shift(uint32_t table[4][256], uint32_t crc) {
  return table[0][crc & 0xff] ^ table[1][(crc >> 8) & 0xff] ^ table[2][(crc >> 16) & 0xff] ^
         table[3][crc >> 24];
}

static void init(void) {
  for (uint32_t n = 0; n < 256; n++) {
    uint32_t c = n;
    for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ POLY : c >> 1;
    slice8[0][n] = c;
  }
  for (uint32_t n = 0; n < 256; n++)
    for (int k = 1; k < 8; k++) slice8[k][n] = (slice8[k - 1][n] >> 8) ^ slice8[0][slice8[k - 1][n] & 0xff];
  shift_table(shift_long, LONG_BLOCK);
  shift_table(shift_short, SHORT_BLOCK);
#if defined(__x86_64__)
  __builtin_cpu_init();
  have_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* --- portable ------------------------------------------------------------------ */

static uint32_t sw(uint32_t crc, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    crc = (crc >> 8) ^ slice8[0][(crc ^ *p++) & 0xff];
    n--;
  }
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    w ^= crc; /* little-endian: the low bytes meet the register */
    crc = slice8[7][w & 0xff] ^ slice8[6][(w >> 8) & 0xff] ^ slice8[5][(w >> 16) & 0xff] ^
          slice8[4][(w >> 24) & 0xff] ^ slice8[3][(w >> 32) & 0xff] ^ slice8[2][(w >> 40) & 0xff] ^
          slice8[1][(w >> 48) & 0xff] ^ slice8[0][w >> 56];
    p += 8;
    n -= 8;
  }
  while (n--) crc = (crc >> 8) ^ slice8[0][(crc ^ *p++) & 0xff];
  return crc;
}

uint32_t ocdbt_crc32c_portable(uint32_t crc, const void *p, size_t n) {
  pthread_once(&init_once, init);
  return ~sw(~crc, p, n);
}

/* --- SSE4.2 ---------------------------------------------------------------------- */

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t hw(uint32_t crc0, const uint8_t *p, size_t n) {
  while (n && ((uintptr_t)p & 7)) {
    crc0 = __builtin_ia32_crc32qi(crc0, *p++);
    n--;
  }
  static const size_t blocks[2] = {LONG_BLOCK, SHORT_BLOCK};
  for (int b = 0; b < 2; b++) {
    size_t blk = blocks[b];
    uint32_t(*table)[256] = b == 0 ? shift_long : shift_short;
    while (n >= 3 * blk) {
      uint64_t c0 = crc0, c1 = 0, c2 = 0;
      const uint8_t *end = p + blk;
      do {
        uint64_t w0, w1, w2;
        memcpy(&w0, p, 8);
        memcpy(&w1, p + blk, 8);
        memcpy(&w2, p + 2 * blk, 8);
        c0 = __builtin_ia32_crc32di(c0, w0);
        c1 = __builtin_ia32_crc32di(c1, w1);
        c2 = __builtin_ia32_crc32di(c2, w2);
        p += 8;
      } while (p < end);
      crc0 = shift(table, (uint32_t)c0) ^ (uint32_t)c1;
      crc0 = shift(table, crc0) ^ (uint32_t)c2;
      p += 2 * blk;
      n -= 3 * blk;
    }
  }
  uint64_t c = crc0;
  while (n >= 8) {
    uint64_t w;
    memcpy(&w, p, 8);
    c = __builtin_ia32_crc32di(c, w);
    p += 8;
    n -= 8;
  }
  crc0 = (uint32_t)c;
  while (n--) crc0 = __builtin_ia32_crc32qi(crc0, *p++);
  return crc0;
}
#endif

uint32_t ocdbt_crc32c(uint32_t crc, const void *p, size_t n) {
  pthread_once(&init_once, init);
#if defined(__x86_64__)
  if (have_hw) return ~hw(~crc, p, n);
#endif
  return ~sw(~crc, p, n);
}

int ocdbt_crc32c_hw(void) {
  pthread_once(&init_once, init);
  return have_hw;
}
