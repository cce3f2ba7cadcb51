/* libFuzzer target: bare data file table decoder (prefix compression, base
 * paths, transitive-path limit) and round trip through the canonical encoder. */
#include "tests/fuzz/fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2) return 0;
  size_t transitive = (size_t)data[0] << 8 | data[1];
  ocdbt_dft dft;
  void *arena;
  size_t used;
  if (ocdbt_dft_decode(data + 2, size - 2, transitive, &dft, &arena, &used) == 0) {
    FUZZ_CHECK(used <= size - 2);
    for (size_t i = 0; i < dft.n; i++)
      FUZZ_CHECK(transitive + dft.files[i].base_path.n + dft.files[i].relative_path.n <=
                 OCDBT_MAX_PATH_LENGTH);
    strata_buf b = STRATA_BUF_INIT;
    FUZZ_CHECK(ocdbt_dft_encode(&dft, &b) == 0);
    ocdbt_dft again;
    void *arena2;
    FUZZ_CHECK(ocdbt_dft_decode(b.p, b.len, transitive, &again, &arena2, &used) == 0);
    FUZZ_CHECK(used == b.len);
    FUZZ_CHECK(dft_eq(&dft, &again));
    ocdbt_dft_arena_free(arena2);
    strata_buf_free(&b);
    ocdbt_dft_arena_free(arena);
  }
  return 0;
}
