/*
 * PyChunkedGraph's hash-prefixed row keys and row-key validation. The 2-byte
 * blake2b prefix spreads rows evenly over the lock table's partitions.
 */
#include <blake2.h>
#include <stdio.h>

#include "common/err.h"
#include "locks/lk_int.h"

void lk_l2_chunk_key(uint64_t chunk_id, uint8_t out[LK_L2_KEY_LEN]) {
  uint8_t be[8];
  lk__put64(be, chunk_id);
  blake2b(out, be, NULL, 2, sizeof be, 0); /* libb2: out, in, key, outlen, inlen, keylen */
  memcpy(out + 2, be, 8);
}

void lk_block_key(uint64_t x, uint64_t y, uint64_t z, uint8_t out[LK_BLOCK_KEY_LEN]) {
  uint8_t be[24];
  lk__put64(be, x);
  lk__put64(be + 8, y);
  lk__put64(be + 16, z);
  blake2b(out, be, NULL, 2, sizeof be, 0); /* libb2: out, in, key, outlen, inlen, keylen */
  memcpy(out + 2, be, 24);
}

int lk__check_rows(const lk_row *rows, size_t nrows, const char *field) {
  if (nrows == 0 || rows == NULL)
    return strata_err(STRATA_EINVALID, "%s: at least one row is required", field);
  if (nrows > LK_ROWS_MAX)
    return strata_err(STRATA_EINVALID, "%s: %zu rows, at most %u per request", field, nrows,
                      LK_ROWS_MAX);
  for (size_t i = 0; i < nrows; i++) {
    if (rows[i].len == 0 || rows[i].key == NULL)
      return strata_err(STRATA_EINVALID, "%s[%zu]: empty row key (keys are 1..%u bytes)", field,
                        i, LK_KEY_MAX);
    if (rows[i].len > LK_KEY_MAX)
      return strata_err(STRATA_EINVALID, "%s[%zu]: row key of %zu bytes, at most %u", field, i,
                        rows[i].len, LK_KEY_MAX);
  }
  return 0;
}

