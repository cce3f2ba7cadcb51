/* Codec benchmarks for `make bench`: encode and decode of a B+tree leaf node
 * holding about 1 MiB of entries, and CRC-32C, each against memcpy of the
 * same buffer measured in the same run. Prints BENCH lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/ocdbt.h"

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs fn until at least 0.3 s have passed, three times; returns the best
 * bytes per second. */
typedef void (*op_fn)(void *ctx);
static double rate(op_fn fn, void *ctx, size_t bytes) {
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    size_t iters = 0;
    double t0 = now(), t;
    do {
      fn(ctx);
      iters++;
    } while ((t = now()) - t0 < 0.3);
    double r = bytes * (double)iters / (t - t0);
    if (r > best) best = r;
  }
  return best;
}

static volatile uint32_t sink;

typedef struct {
  ocdbt_config cfg;
  ocdbt_btnode node;
  strata_buf enc;
  uint8_t *src, *dst;
  size_t len;
} ctx_t;

static void do_encode(void *p) {
  ctx_t *c = p;
  c->enc.len = 0;
  if (ocdbt_btnode_encode(&c->cfg, &c->node, &c->enc)) abort();
}

static void do_decode(void *p) {
  ctx_t *c = p;
  ocdbt_btnode out;
  if (ocdbt_btnode_decode(c->enc.p, c->enc.len, 0, &out)) {
    fprintf(stderr, "decode: %s\n", strata_errmsg());
    abort();
  }
  sink += (uint32_t)out.n;
  ocdbt_btnode_free(&out);
}

static void do_memcpy(void *p) {
  ctx_t *c = p;
  memcpy(c->dst, c->src, c->len);
  sink += c->dst[c->len / 2];
}

static void do_crc(void *p) {
  ctx_t *c = p;
  sink += ocdbt_crc32c(0, c->src, c->len);
}

static void do_crc_portable(void *p) {
  ctx_t *c = p;
  sink += ocdbt_crc32c_portable(0, c->src, c->len);
}

int main(void) {
  /* 16,384 entries: 24-byte keys sharing an 8-byte prefix, 40-byte values;
   * about 1 MiB encoded. */
  enum { N = 16384, VLEN = 40 };
  static ocdbt_leaf_entry e[N];
  static uint8_t keys[N][32], vals[N][VLEN];
  static ocdbt_file file = {{(const uint8_t *)"", 0}, {(const uint8_t *)"d/00000000000000000000000000000000", 34}};
  for (size_t i = 0; i < N; i++) {
    snprintf((char *)keys[i], sizeof keys[i], "segment/%016llx",
             (unsigned long long)(i * 0x9e3779b97f4a7c15ull));
    for (int j = 0; j < VLEN; j++) vals[i][j] = (uint8_t)(i * 131 + j * 7);
  }
  /* Keys must be sorted: the hash above is not monotone, so sort. */
  qsort(keys, N, sizeof keys[0], (int (*)(const void *, const void *))strcmp);
  for (size_t i = 0; i < N; i++)
    e[i] = (ocdbt_leaf_entry){{keys[i], 24}, OCDBT_VALUE_INLINE, {vals[i], VLEN}, {0, 0, 0}};
  ctx_t c;
  memset(&c, 0, sizeof c);
  c.node = (ocdbt_btnode){0, {1, &file}, N, e, NULL, NULL};

  for (int z = 0; z < 2; z++) {
    c.cfg = (ocdbt_config){{0}, 0, 100, 8 << 20, 4, (uint8_t)z, z ? 1 : 0};
    do_encode(&c);
    /* Throughput counts the decoded (uncompressed) node size in both cases. */
    size_t logical = z ? 0 : c.enc.len;
    if (z) {
      ctx_t plain = c;
      plain.cfg.compression = 0;
      plain.enc = (strata_buf)STRATA_BUF_INIT;
      do_encode(&plain);
      logical = plain.enc.len;
      strata_buf_free(&plain.enc);
    }
    c.len = logical;
    c.src = malloc(logical);
    c.dst = malloc(logical);
    memset(c.src, 0x5a, logical);
    double mc = rate(do_memcpy, &c, logical);
    double enc = rate(do_encode, &c, logical);
    double dec = rate(do_decode, &c, logical);
    const char *tag = z ? "_zstd1" : "";
    printf("BENCH leaf_node_encode_1MiB%s %.0f MB/s vs memcpy %.3f\n", tag, enc / 1e6, enc / mc);
    printf("BENCH leaf_node_decode_1MiB%s %.0f MB/s vs memcpy %.3f\n", tag, dec / 1e6, dec / mc);
    if (!z) {
      printf("BENCH leaf_node_size %.2f MiB (%d entries)\n", logical / 1048576.0, N);
      double crc = rate(do_crc, &c, logical);
      double crcp = rate(do_crc_portable, &c, logical);
      printf("BENCH crc32c_1MiB%s %.0f MB/s vs memcpy %.3f\n", ocdbt_crc32c_hw() ? "_sse42" : "",
             crc / 1e6, crc / mc);
      printf("BENCH crc32c_1MiB_portable %.0f MB/s vs memcpy %.3f\n", crcp / 1e6, crcp / mc);
    } else {
      printf("BENCH leaf_node_zstd1_ratio %.3f compressed/plain\n", (double)c.enc.len / logical);
    }
    free(c.src);
    free(c.dst);
  }
  strata_buf_free(&c.enc);
  return 0;
}
