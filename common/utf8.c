/* Well-formed UTF-8 without NULs (see utf8.h). The table is RFC 3629's
 * section 4 grammar: the valid second byte depends on the lead byte. */
#include "common/utf8.h"

strata_text_fault strata_text_check(const uint8_t *p, size_t n, size_t *at) {
  size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    size_t len;
    uint8_t lo = 0x80, hi = 0xbf; /* range of the second byte */
    if (b == 0) {
      if (at) *at = i;
      return STRATA_TEXT_NUL;
    }
    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xc2 && b <= 0xdf) len = 2;
    else if (b == 0xe0) len = 3, lo = 0xa0;
    else if (b == 0xed) len = 3, hi = 0x9f; /* no UTF-16 surrogates */
    else if (b >= 0xe1 && b <= 0xef) len = 3;
    else if (b == 0xf0) len = 4, lo = 0x90;
    else if (b >= 0xf1 && b <= 0xf3) len = 4;
    else if (b == 0xf4) len = 4, hi = 0x8f; /* nothing above U+10FFFF */
    else goto bad;                          /* 0x80..0xc1, 0xf5..0xff */
    if (n - i < len || p[i + 1] < lo || p[i + 1] > hi) goto bad;
    for (size_t k = 2; k < len; k++)
      if (p[i + k] < 0x80 || p[i + k] > 0xbf) goto bad;
    i += len;
  }
  return STRATA_TEXT_OK;
bad:
  if (at) *at = i;
  return STRATA_TEXT_BAD_UTF8;
}

const char *strata_text_fault_str(strata_text_fault f) {
  switch (f) {
  case STRATA_TEXT_OK: return "is valid text";
  case STRATA_TEXT_BAD_UTF8: return "is not valid UTF-8";
  case STRATA_TEXT_NUL: return "contains a NUL byte";
  }
  return "?";
}
