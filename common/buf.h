/*
 * A growable byte buffer: the output type of every encoder. Appending never
 * fails silently: strata_buf_reserve returns STRATA_ENOMEM.
 */
#ifndef STRATA_COMMON_BUF_H
#define STRATA_COMMON_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct strata_buf {
  uint8_t *p;   /* owned; free with strata_buf_free */
  size_t len;
  size_t cap;
} strata_buf;

#define STRATA_BUF_INIT {NULL, 0, 0}

/* Makes room for `extra` more bytes. Returns 0 or STRATA_ENOMEM. */
int strata_buf_reserve(strata_buf *b, size_t extra);
/* Appends n bytes. Returns 0 or STRATA_ENOMEM. */
int strata_buf_append(strata_buf *b, const void *p, size_t n);
/* Frees the storage and resets b to empty. */
void strata_buf_free(strata_buf *b);

/* Appends without a capacity check: the caller reserved the room. */
static inline void strata_buf_put(strata_buf *b, const void *p, size_t n) {
  if (n) memcpy(b->p + b->len, p, n);
  b->len += n;
}

/* Makes room for at least `need` elements of `size` bytes in the array *pp
 * (a T **) of capacity *cap: the capacity doubles, from `first` when it is 0.
 * 0, or STRATA_ENOMEM with nothing changed (an overflowing size too). The one
 * copy of the doubling-realloc step every growing array uses. */
int strata_grow(void *pp, size_t *cap, size_t need, size_t size, size_t first);

#endif
