/*
 * The one check of client-supplied text: well-formed UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF) without NUL bytes.
 * Protobuf `string` fields must be UTF-8 or standard clients refuse the whole
 * message that echoes them, and Strata's engines keep text NUL-terminated, so a
 * NUL would silently cut it short.
 */
#ifndef STRATA_COMMON_UTF8_H
#define STRATA_COMMON_UTF8_H

#include <stddef.h>
#include <stdint.h>

typedef enum strata_text_fault {
  STRATA_TEXT_OK = 0,
  STRATA_TEXT_BAD_UTF8 = 1, /* a byte sequence that is not well-formed UTF-8 */
  STRATA_TEXT_NUL = 2,      /* a NUL byte */
} strata_text_fault;

/* Checks p[0..n). On a fault, *at (may be NULL) is the offset of the first bad byte. */
strata_text_fault strata_text_check(const uint8_t *p, size_t n, size_t *at);

/* "is not valid UTF-8" / "contains a NUL byte"; static. */
const char *strata_text_fault_str(strata_text_fault f);

#endif
