/*
 * A lock request's rows: sorted by (partition, key) and deduplicated, their
 * partition mutexes taken in ascending partition order (README "Lock order")
 * and checked to be held, and their entries looked up in the table.
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "locks/lk_int.h"

static int cmp_req_row(const void *a, const void *b) {
  const lk__req_row *x = a, *y = b;
  if (x->part != y->part) return x->part < y->part ? -1 : 1;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->key, y->key, n);
  if (c) return c;
  if (x->len != y->len) return x->len < y->len ? -1 : 1;
  return x->idx < y->idx ? -1 : x->idx > y->idx;
}

void lk__prep_free(lk__prep *pr) {
  free(pr->rows);
  free(pr->parts);
  memset(pr, 0, sizeof *pr);
}

int lk__prep_rows(lk_manager *lk, const lk_row *rows, size_t nrows, lk__prep *pr) {
  memset(pr, 0, sizeof *pr);
  pr->rows = malloc(nrows * sizeof *pr->rows);
  pr->parts = malloc(nrows * sizeof *pr->parts);
  if (!pr->rows || !pr->parts) {
    lk__prep_free(pr);
    return strata_err(STRATA_ENOMEM, "lock request of %zu rows", nrows);
  }
  for (size_t i = 0; i < nrows; i++) {
    lk__req_row *r = &pr->rows[i];
    r->key = rows[i].key;
    r->len = rows[i].len;
    r->idx = i;
    r->part = lk__part_of(lk, r->key, r->len);
    r->hash = lk__hash(r->key, r->len);
    r->ent = NULL;
  }
  qsort(pr->rows, nrows, sizeof *pr->rows, cmp_req_row);
  size_t n = 0;
  for (size_t i = 0; i < nrows; i++) {
    lk__req_row *r = &pr->rows[i];
    if (n && pr->rows[n - 1].len == r->len && pr->rows[n - 1].part == r->part &&
        memcmp(pr->rows[n - 1].key, r->key, r->len) == 0)
      continue; /* duplicate: keep the first index */
    pr->rows[n++] = *r;
    if (pr->nparts == 0 || pr->parts[pr->nparts - 1] != r->part) pr->parts[pr->nparts++] = r->part;
  }
  pr->n = n;
  return 0;
}

/* Lock order: partition mutexes in ascending partition number. */
void lk__lock_parts(lk_manager *lk, const lk__prep *pr) {
  if (pr->all) {
    for (unsigned i = 0; i < lk->nparts; i++) strata_mutex_lock(&lk->parts[i].mu);
  } else {
    for (size_t i = 0; i < pr->nparts; i++) strata_mutex_lock(&lk->parts[pr->parts[i]].mu);
  }
}

void lk__unlock_parts(lk_manager *lk, const lk__prep *pr) {
  if (pr->all) {
    for (unsigned i = lk->nparts; i-- > 0;) strata_mutex_unlock(&lk->parts[i].mu);
  } else {
    for (size_t i = pr->nparts; i-- > 0;) strata_mutex_unlock(&lk->parts[pr->parts[i]].mu);
  }
}

void lk__find_ents(lk_manager *lk, lk__prep *pr) {
  lk__assert_parts_held(lk, pr);
  for (size_t i = 0; i < pr->n; i++) {
    lk__req_row *r = &pr->rows[i];
    r->ent = lk__row_find(&lk->parts[r->part], r->key, r->len, r->hash);
    if (r->ent && r->ent->wseq > pr->need) pr->need = r->ent->wseq;
  }
}

void lk__assert_parts_held(lk_manager *lk, const lk__prep *pr) {
#if STRATA_MUTEX_CHECKS
  if (pr->all) {
    for (unsigned i = 0; i < lk->nparts; i++) strata_mutex_assert_held(&lk->parts[i].mu);
  } else {
    for (size_t i = 0; i < pr->nparts; i++) strata_mutex_assert_held(&lk->parts[pr->parts[i]].mu);
  }
#else
  (void)lk;
  (void)pr;
#endif
}
