/* The error table: every code has a distinct name and message, and the
 * per-thread detail message carries context through layers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/keyshow.h"

static void test_names_and_messages_are_distinct(void **state) {
  static const int codes[] = {
#define XX(name, val, msg) STRATA_E##name,
    STRATA_ERRNO_MAP(XX)
#undef XX
  };
  size_t n = sizeof codes / sizeof codes[0];
  for (size_t i = 0; i < n; i++) {
    assert_true(codes[i] < 0);
    assert_string_not_equal(strata_errname(codes[i]), "STRATA_EUNKNOWN");
    for (size_t j = i + 1; j < n; j++) {
      assert_int_not_equal(codes[i], codes[j]);
      assert_string_not_equal(strata_errname(codes[i]), strata_errname(codes[j]));
    }
  }
  assert_string_equal(strata_errname(STRATA_ECORRUPT), "STRATA_ECORRUPT");
  assert_string_equal(strata_errname(STRATA_OK), "STRATA_OK");
}

static void test_errno_values_pass_through(void **state) {
  assert_string_equal(strata_errname(ENOSPC), "ENOSPC");
  assert_string_equal(strata_strerror(ENOSPC), strerror(ENOSPC));
}

static void test_detail_message_and_wrap(void **state) {
  strata_err_clear();
  assert_string_equal(strata_errmsg(), "success");
  int rc = strata_err(STRATA_ECORRUPT, "btree node: field %s at offset %d", "num_entries", 13);
  assert_int_equal(rc, STRATA_ECORRUPT);
  assert_string_equal(strata_errmsg(), "btree node: field num_entries at offset 13");
  rc = strata_err_wrap(rc, "file %s", "d/abc");
  assert_string_equal(strata_errmsg(), "file d/abc: btree node: field num_entries at offset 13");
  /* Wrapping a code with no detail recorded uses its description. */
  strata_err_clear();
  strata_err_wrap(STRATA_ENOTFOUND, "key %s", "k1");
  assert_string_equal(strata_errmsg(), "key k1: not found");
  /* errmsg_for gives the detail only when it was recorded for that code. */
  assert_string_equal(strata_errmsg_for(STRATA_ENOTFOUND), "key k1: not found");
  assert_string_equal(strata_errmsg_for(STRATA_EFENCED), strata_strerror(STRATA_EFENCED));
}

/* The one display form of keys in messages: quoted text, or hex, cut after
 * STRATA_KEY_SHOW_BYTES with the full length named. */
static void test_key_show(void **state) {
  (void)state;
  char b[STRATA_KEY_SHOW_BUF];
  assert_string_equal(strata_key_show("fence/row", 9, b, sizeof b), "\"fence/row\"");
  assert_string_equal(strata_key_show("\x0a\x1b\xff", 3, b, sizeof b), "0x0a1bff");
  assert_string_equal(strata_key_show("a\"b", 3, b, sizeof b), "0x612262"); /* a quote is not shown raw */
  assert_string_equal(strata_key_show("", 0, b, sizeof b), "\"\"");
  char big[300];
  memset(big, 'k', sizeof big);
  strata_key_show(big, sizeof big, b, sizeof b);
  assert_int_equal(strlen(b), 2 + STRATA_KEY_SHOW_BYTES + strlen("... (300 bytes)"));
  assert_non_null(strstr(b, "\"... (300 bytes)"));
  big[0] = 0;
  strata_key_show(big, sizeof big, b, sizeof b);
  assert_int_equal(strlen(b), 2 + 2 * STRATA_KEY_SHOW_BYTES + strlen("... (300 bytes)"));
  assert_true(strncmp(b, "0x006b6b", 8) == 0);
  char tiny[8];
  strata_key_show(big, sizeof big, tiny, sizeof tiny); /* never past the buffer */
  assert_true(strlen(tiny) < sizeof tiny);
}

/* A saved error survives calls that record their own, whole (a message
 * longer than the 400-byte buffers it replaced), and comes back with its code. */
static void test_save_restore(void **state) {
  (void)state;
  char longpart[900];
  memset(longpart, 'x', sizeof longpart - 1);
  longpart[sizeof longpart - 1] = 0;
  assert_int_equal(strata_err(STRATA_EIO, "first failure: %s", longpart), STRATA_EIO);
  strata_err_saved s;
  strata_err_save(STRATA_EIO, &s);
  strata_err(STRATA_ENOTFOUND, "cleanup failed too");
  assert_int_equal(strata_err_restore(&s), STRATA_EIO);
  assert_int_equal(strlen(strata_errmsg()), strlen("first failure: ") + sizeof longpart - 1);
  assert_true(strncmp(strata_errmsg(), "first failure: xxx", 18) == 0);
  assert_string_equal(strata_errmsg_for(STRATA_EIO), strata_errmsg());
  assert_int_equal(strata_err_wrap(STRATA_EIO, "commit of generation %d", 7), STRATA_EIO);
  assert_true(strncmp(strata_errmsg(), "commit of generation 7: first failure: ", 39) == 0);
}

/* The one growing-array step: doubles from `first`, keeps the contents, and
 * refuses a size that would overflow with nothing changed. */
static void test_grow(void **state) {
  (void)state;
  uint64_t *a = NULL;
  size_t cap = 0;
  assert_int_equal(strata_grow(&a, &cap, 1, sizeof *a, 8), 0);
  assert_int_equal(cap, 8);
  for (uint64_t i = 0; i < 8; i++) a[i] = i * 3;
  assert_int_equal(strata_grow(&a, &cap, 8, sizeof *a, 8), 0); /* already room */
  assert_int_equal(cap, 8);
  assert_int_equal(strata_grow(&a, &cap, 9, sizeof *a, 8), 0);
  assert_int_equal(cap, 16);
  assert_int_equal(strata_grow(&a, &cap, 100, sizeof *a, 8), 0);
  assert_int_equal(cap, 128);
  for (uint64_t i = 0; i < 8; i++) assert_int_equal(a[i], i * 3);
  uint64_t *before = a;
  assert_int_equal(strata_grow(&a, &cap, SIZE_MAX / 4, sizeof *a, 8), STRATA_ENOMEM);
  assert_ptr_equal(a, before);
  assert_int_equal(cap, 128);
  free(a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_names_and_messages_are_distinct),
    cmocka_unit_test(test_errno_values_pass_through),
    cmocka_unit_test(test_detail_message_and_wrap),
    cmocka_unit_test(test_key_show),
    cmocka_unit_test(test_save_restore),
    cmocka_unit_test(test_grow),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
