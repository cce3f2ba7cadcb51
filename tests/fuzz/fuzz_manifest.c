/* libFuzzer target: manifest decoder (config, single and numbered kinds) and
 * round trip. */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  size_t n;
  uint8_t *p = fuzz_patch(data, size, &n);
  ocdbt_manifest m;
  if (ocdbt_manifest_decode(p, n, &m) == 0) {
    strata_buf b = STRATA_BUF_INIT;
    FUZZ_CHECK(ocdbt_manifest_encode(&m, &b) == 0);
    ocdbt_manifest again;
    FUZZ_CHECK(ocdbt_manifest_decode(b.p, b.len, &again) == 0);
    FUZZ_CHECK(manifest_eq(&m, &again));
    ocdbt_manifest_free(&again);
    strata_buf_free(&b);
    ocdbt_manifest_free(&m);
  }
  free(p);
  return 0;
}
