/* libFuzzer target: B+tree node decoder, and encode/decode round trip of
 * whatever it accepts, uncompressed and with zstd. */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n;
  uint8_t *p = fuzz_patch(data, size, &n);
  ocdbt_btnode node;
  size_t transitive = size ? data[0] * 250u : 0;
  if (ocdbt_btnode_decode(p, n, transitive, &node) == 0) {
    for (int z = 0; z < 2; z++) {
      ocdbt_config cfg = sample_config(z);
      strata_buf b = STRATA_BUF_INIT;
      FUZZ_CHECK(ocdbt_btnode_encode(&cfg, &node, &b) == 0);
      ocdbt_btnode again;
      FUZZ_CHECK(ocdbt_btnode_decode(b.p, b.len, transitive, &again) == 0);
      FUZZ_CHECK(btnode_eq(&node, &again));
      ocdbt_btnode_free(&again);
      strata_buf_free(&b);
    }
    ocdbt_btnode_free(&node);
  }
  free(p);
  return 0;
}
