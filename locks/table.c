/*
 * One partition's hash table of row entries (chained, power-of-two buckets,
 * doubling at load 1). Every function here expects the partition mutex held.
 */
#include <stdlib.h>

#include "common/err.h"
#include "locks/lk_int.h"

uint64_t lk__hash(const uint8_t *key, size_t len) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < len; i++) {
    h ^= key[i];
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

lk__rowent *lk__row_find(lk__part *p, const uint8_t *key, size_t len, uint64_t h) {
  if (p->nbuckets == 0) return NULL;
  for (lk__rowent *r = p->buckets[h & (p->nbuckets - 1)]; r; r = r->next)
    if (r->hash == h && r->len == len && memcmp(r->key, key, len) == 0) return r;
  return NULL;
}

static int grow(lk__part *p) {
  size_t nb = p->nbuckets ? p->nbuckets * 2 : 64;
  lk__rowent **b = calloc(nb, sizeof *b);
  if (!b) return strata_err(STRATA_ENOMEM, "lock table: %zu buckets", nb);
  for (size_t i = 0; i < p->nbuckets; i++) {
    lk__rowent *r = p->buckets[i];
    while (r) {
      lk__rowent *next = r->next;
      size_t j = r->hash & (nb - 1);
      r->next = b[j];
      b[j] = r;
      r = next;
    }
  }
  free(p->buckets);
  p->buckets = b;
  p->nbuckets = nb;
  return 0;
}

int lk__row_insert(lk__part *p, const uint8_t *key, size_t len, uint64_t h, lk__rowent **out) {
  if (p->count >= p->nbuckets) {
    int rc = grow(p);
    if (rc) return rc;
  }
  lk__rowent *r = calloc(1, sizeof *r + len);
  if (!r) return strata_err(STRATA_ENOMEM, "lock table: row of %zu bytes", len);
  r->hash = h;
  r->len = (uint16_t)len;
  memcpy(r->key, key, len);
  size_t j = h & (p->nbuckets - 1);
  r->next = p->buckets[j];
  p->buckets[j] = r;
  p->count++;
  *out = r;
  return 0;
}

int lk__row_maybe_free(lk__part *p, lk__rowent *r) {
  if (r->tmp.op || r->ind.op || r->qhead || r->pins) return 0;
  lk__rowent **pp = &p->buckets[r->hash & (p->nbuckets - 1)];
  while (*pp != r) pp = &(*pp)->next;
  *pp = r->next;
  p->count--;
  free(r);
  return 1;
}

void lk__part_destroy(lk__part *p) {
  for (size_t i = 0; i < p->nbuckets; i++) {
    lk__rowent *r = p->buckets[i];
    while (r) {
      lk__rowent *next = r->next;
      free(r);
      r = next;
    }
  }
  free(p->buckets);
  p->buckets = NULL;
  p->nbuckets = p->count = 0;
  strata_mutex_destroy(&p->mu);
}
