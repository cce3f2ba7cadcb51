/* The display form of keys in messages (see keyshow.h). */
#include "common/keyshow.h"

#include <stdio.h>

const char *strata_key_show(const void *key, size_t len, char *buf, size_t cap) {
  const uint8_t *k = key;
  size_t show = len < STRATA_KEY_SHOW_BYTES ? len : STRATA_KEY_SHOW_BYTES;
  int text = 1;
  for (size_t i = 0; i < len && text; i++) text = k[i] >= 0x20 && k[i] <= 0x7e && k[i] != '"' && k[i] != '\\';
  size_t o;
  if (text) {
    o = (size_t)snprintf(buf, cap, "\"%.*s\"", (int)show, (const char *)k);
  } else {
    o = (size_t)snprintf(buf, cap, "0x");
    for (size_t i = 0; i < show && o + 3 <= cap; i++) o += (size_t)snprintf(buf + o, cap - o, "%02x", k[i]);
  }
  if (show < len && o < cap) snprintf(buf + o, cap - o, "... (%zu bytes)", len);
  return buf;
}
