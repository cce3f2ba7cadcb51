/*
 * Shared by the libFuzzer targets. Random bytes almost never carry a valid
 * CRC-32C, so a fuzzer would only ever exercise the checksum check; each
 * target therefore patches the length field and footer of its input before
 * decoding (the checksum itself is covered by tests/unit/test_codec_corruption).
 * Whatever decodes must encode again and decode to the same object.
 */
#ifndef STRATA_TESTS_FUZZ_COMMON_H
#define STRATA_TESTS_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tests/codec_samples.h"

/* Returns a malloc'd copy of data with a consistent length and CRC; the first
 * input byte selects whether to patch (so unpatched inputs are tried too). */
static inline uint8_t *fuzz_patch(const uint8_t *data, size_t size, size_t *n) {
  uint8_t *p = malloc(size ? size : 1);
  if (!p) abort();
  memcpy(p, data, size);
  *n = size;
  if (size >= 16 && (data[size - 1] & 7) != 0) {
    for (int i = 0; i < 8; i++) p[4 + i] = (uint8_t)((uint64_t)size >> (8 * i));
    uint32_t crc = ocdbt_crc32c(0, p, size - 4);
    for (int i = 0; i < 4; i++) p[size - 4 + i] = (uint8_t)(crc >> (8 * i));
  }
  return p;
}

#define FUZZ_CHECK(cond)                                                          \
  do {                                                                            \
    if (!(cond)) {                                                                \
      fprintf(stderr, "fuzz check failed: %s (%s)\n", #cond, strata_errmsg());   \
      abort();                                                                    \
    }                                                                             \
  } while (0)

#endif
