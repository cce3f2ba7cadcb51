/* strata_buf: see buf.h. Grows geometrically so appends are amortized O(1). */
#include "common/buf.h"

#include <stdlib.h>

#include "common/err.h"

int strata_buf_reserve(strata_buf *b, size_t extra) {
  if (b->cap - b->len >= extra) return 0;
  if (extra > SIZE_MAX / 2 - b->len)
    return strata_err(STRATA_ENOMEM, "buffer of %zu + %zu bytes is too large", b->len, extra);
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < extra) cap *= 2;
  uint8_t *p = realloc(b->p, cap);
  if (!p) return strata_err(STRATA_ENOMEM, "cannot grow buffer to %zu bytes", cap);
  b->p = p;
  b->cap = cap;
  return 0;
}

int strata_buf_append(strata_buf *b, const void *p, size_t n) {
  int rc = strata_buf_reserve(b, n);
  if (rc) return rc;
  strata_buf_put(b, p, n);
  return 0;
}

void strata_buf_free(strata_buf *b) {
  free(b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

int strata_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first) {
  if (need <= *cap) return 0;
  size_t c = *cap ? *cap : (first ? first : 1);
  while (c < need) {
    if (c > SIZE_MAX / 2) return STRATA_ENOMEM;
    c *= 2;
  }
  if (size && c > SIZE_MAX / size) return STRATA_ENOMEM;
  void *old;
  memcpy(&old, pp, sizeof old);
  void *q = realloc(old, c * size);
  if (!q) return STRATA_ENOMEM;
  memcpy(pp, &q, sizeof q);
  *cap = c;
  return 0;
}
