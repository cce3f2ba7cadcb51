/* libFuzzer target: version tree node decoder and round trip. */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n;
  uint8_t *p = fuzz_patch(data, size, &n);
  ocdbt_vtnode node;
  if (ocdbt_vtnode_decode(p, n, 0, &node) == 0) {
    for (int z = 0; z < 2; z++) {
      ocdbt_config cfg = sample_config(z);
      strata_buf b = STRATA_BUF_INIT;
      FUZZ_CHECK(ocdbt_vtnode_encode(&cfg, &node, &b) == 0);
      ocdbt_vtnode again;
      FUZZ_CHECK(ocdbt_vtnode_decode(b.p, b.len, 0, &again) == 0);
      FUZZ_CHECK(vtnode_eq(&node, &again));
      ocdbt_vtnode_free(&again);
      strata_buf_free(&b);
    }
    ocdbt_vtnode_free(&node);
  }
  free(p);
  return 0;
}
