/* The text check every client-supplied string passes: well-formed UTF-8, no NUL,
 * and the offset of the first bad byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/utf8.h"

static strata_text_fault chk(const char *s, size_t n, size_t *at) {
  return strata_text_check((const uint8_t *)s, n, at);
}

static void test_well_formed_text_passes(void **state) {
  static const char *ok[] = {"", "split", "caf\xc3\xa9", "\xe2\x82\xac", "\xef\xbf\xbf",
                             "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf", "\xed\x9f\xbf", "\x7f"};
  for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
    assert_int_equal(chk(ok[i], strlen(ok[i]), NULL), STRATA_TEXT_OK);
}

static void test_malformed_utf8_is_refused_at_its_offset(void **state) {
  static const struct {
    const char *s;
    size_t at;
  } bad[] = {
      {"ab\x80", 2},              /* lone continuation byte */
      {"\xc0\xaf", 0},            /* overlong '/' */
      {"\xc1\xbf", 0},            /* overlong */
      {"\xe0\x80\xaf", 0},        /* overlong 3-byte */
      {"\xed\xa0\x80", 0},        /* UTF-16 surrogate */
      {"\xf0\x80\x80\xaf", 0},    /* overlong 4-byte */
      {"\xf4\x90\x80\x80", 0},    /* above U+10FFFF */
      {"\xf5\x80\x80\x80", 0},    /* lead byte never valid */
      {"x\xff", 1},               /* never valid */
      {"ok\xe2\x82", 2},          /* truncated at the end */
      {"\xe2\x28\xa1", 0},        /* bad continuation */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    size_t at = 99;
    assert_int_equal(chk(bad[i].s, strlen(bad[i].s), &at), STRATA_TEXT_BAD_UTF8);
    assert_int_equal(at, bad[i].at);
  }
}

static void test_nul_is_refused_at_its_offset(void **state) {
  size_t at = 99;
  assert_int_equal(chk("nul\0A", 5, &at), STRATA_TEXT_NUL);
  assert_int_equal(at, 3);
  assert_int_equal(chk("\0", 1, &at), STRATA_TEXT_NUL);
  assert_int_equal(at, 0);
  assert_non_null(strstr(strata_text_fault_str(STRATA_TEXT_NUL), "NUL"));
  assert_non_null(strstr(strata_text_fault_str(STRATA_TEXT_BAD_UTF8), "UTF-8"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_well_formed_text_passes),
      cmocka_unit_test(test_malformed_utf8_is_refused_at_its_offset),
      cmocka_unit_test(test_nul_is_refused_at_its_offset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
