/* CRC-32C: the RFC 3720 (iSCSI) test vectors, and the hardware path agreeing
 * with the portable tables on every length, alignment and split. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "storage/ocdbt.h"

static void check_both(const void *p, size_t n, uint32_t want) {
  assert_int_equal(ocdbt_crc32c(0, p, n), want);
  assert_int_equal(ocdbt_crc32c_portable(0, p, n), want);
}

static void test_rfc3720_vectors(void **state) {
  uint8_t buf[48];
  memset(buf, 0, 32);
  check_both(buf, 32, 0x8a9136aa);
  memset(buf, 0xff, 32);
  check_both(buf, 32, 0x62a8ab43);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)i;
  check_both(buf, 32, 0x46dd794e);
  for (int i = 0; i < 32; i++) buf[i] = (uint8_t)(31 - i);
  check_both(buf, 32, 0x113fdb5c);
  /* The iSCSI SCSI Read (10) command PDU from RFC 3720 appendix B.4. */
  static const uint8_t pdu[48] = {
      0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
      0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
      0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  check_both(pdu, 48, 0xd9963a56);
  check_both("123456789", 9, 0xe3069283);
  check_both("", 0, 0);
}

/* Lengths around the 256- and 8192-byte interleave blocks, every alignment,
 * and incremental use: crc(crc(a), b) == crc(a || b). */
static void test_hw_matches_portable_everywhere(void **state) {
  size_t max = 3 * 8192 * 2 + 300;
  uint8_t *buf = malloc(max + 16);
  assert_non_null(buf);
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < max + 16; i++) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    buf[i] = (uint8_t)x;
  }
  static const size_t lens[] = {0, 1, 7, 8, 9, 255, 256, 767, 768, 769, 1000, 8191, 8192,
                                24575, 24576, 24577, 24576 + 768 + 5, 49152 + 300};
  for (size_t a = 0; a < 8; a++)
    for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
      size_t n = lens[li];
      uint32_t want = ocdbt_crc32c_portable(0, buf + a, n);
      assert_int_equal(ocdbt_crc32c(0, buf + a, n), want);
      for (size_t cut = 0; cut <= n; cut += n / 5 + 1) {
        uint32_t c = ocdbt_crc32c(0, buf + a, cut);
        assert_int_equal(ocdbt_crc32c(c, buf + a + cut, n - cut), want);
      }
    }
  free(buf);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rfc3720_vectors),
      cmocka_unit_test(test_hw_matches_portable_everywhere),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
