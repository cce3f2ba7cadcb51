/*
 * Check and fence. lk_fence_check is the store's fence hook: when the op
 * holds every row it pins them (a count on the row entry) until the store
 * reports the commit decided through lk_fence_done. A pinned row keeps other
 * ops out even past its temporal expiry, and releases of it wait for the
 * pin to go (README "Fences hold until the commit is decided").
 */
#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>

#include "common/err.h"
#include "common/keyshow.h"
#include "locks/lk_int.h"

/* Decides "does op hold every row" with the rows' partition mutexes held and
 * lk__find_ents done. On a miss, *missing is the first row in the caller's
 * order it does not hold and *holder / *holder_kind who keeps it (op 0: the
 * row is free). */
static int holds_all(const lk__prep *pr, uint64_t op, int64_t now, size_t *missing,
                     lk__slot *holder, lk_kind *holder_kind) {
  int held = 1;
  size_t first = SIZE_MAX; /* rows are in (partition, key) order: report the first asked for */
  for (size_t i = 0; i < pr->n; i++) {
    const lk__rowent *e = pr->rows[i].ent;
    if (lk__holds(e, op, now)) continue;
    held = 0;
    if (pr->rows[i].idx > first) continue;
    first = pr->rows[i].idx;
    *missing = first;
    memset(holder, 0, sizeof *holder);
    *holder_kind = LK_TEMPORAL;
    if (e && e->tmp.op != op && lk__tmp_blocks(e, now)) *holder = e->tmp;
    else if (e && e->ind.op) *holder = e->ind, *holder_kind = LK_INDEFINITE;
  }
  return held;
}

int lk_check(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows, int *held,
             size_t *missing) {
  lk__prep pr;
  int rc;
  assert(lk && held);
  *held = 0;
  if ((rc = lk__check_op(op, "lk_check"))) return rc;
  if ((rc = lk__check_rows(rows, nrows, "lk_check rows"))) return rc;
  if ((rc = lk__prep_rows(lk, rows, nrows, &pr))) return rc;
  lk__lock_parts(lk, &pr);
  lk__find_ents(lk, &pr);
  size_t miss = 0;
  lk__slot h;
  lk_kind hk;
  *held = holds_all(&pr, op, lk_now(lk), &miss, &h, &hk);
  lk__unlock_parts(lk, &pr);
  if (*held) rc = lk__durable(lk, pr.need); /* never vouch for a grant not yet durable */
  else if (missing) *missing = miss;
  lk__prep_free(&pr);
  if (rc) *held = 0;
  return rc;
}

/* Takes one pin off every row of pr and wakes whoever waits for them.
 * Partition mutexes held. Returns 1 if a temporal slot of op on a row
 * passed its expiry (it stayed held only for the commit). */
static int unpin(lk_manager *lk, lk__prep *pr, uint64_t op, int64_t now) {
  lk__assert_parts_held(lk, pr);
  int expired = 0, freed = 0;
  for (size_t i = 0; i < pr->n; i++) {
    lk__rowent *e = pr->rows[i].ent; /* a pinned entry is never freed */
    assert(e && e->pins > 0);
    if (e->tmp.op == op && e->ind.op != op && !lk__live(&e->tmp, now)) expired = 1;
    if (--e->pins) continue;
    freed = 1;
    lk__kick_row(e, NULL); /* waiting acquires: the row may be free now */
  }
  if (freed) { /* waiting releases (lk__wait_unpinned) */
    strata_mutex_lock(&lk->pin_mu);
    lk->pin_epoch++;
    if (lk->pin_waiters) pthread_cond_broadcast(&lk->pin_cv);
    strata_mutex_unlock(&lk->pin_mu);
  }
  return expired;
}

int lk__wait_unpinned(lk_manager *lk, lk__prep *pr, const char *fn) {
  lk__assert_parts_held(lk, pr);
  int rc = 0;
  strata_mutex_lock(&lk->pin_mu); /* before the partition mutexes go: no unpin is missed */
  uint64_t epoch = lk->pin_epoch;
  lk->pin_waiters++;
  lk__unlock_parts(lk, pr);
  while (lk->pin_epoch == epoch && !atomic_load(&lk->shutting_down))
    strata_cond_wait(&lk->pin_cv, &lk->pin_mu);
  lk->pin_waiters--;
  if (atomic_load(&lk->shutting_down))
    rc = strata_err(STRATA_ESHUTDOWN,
                    "%s: waited for a fenced commit in flight on a row; the lock manager is "
                    "shutting down, nothing was released", fn);
  strata_mutex_unlock(&lk->pin_mu);
  return rc;
}

int lk_fence_check(void *ctx) {
  lk_fence *f = ctx;
  int rc;
  assert(f && f->lk);
  lk_manager *lk = f->lk;
  if (f->pins__)
    return strata_err(STRATA_EINVALID, "fence of op %" PRIu64 ": checked again before lk_fence_done",
                      f->op);
  f->expired_in_flight = 0;
  if ((rc = lk__check_op(f->op, "lk_fence_check"))) return rc;
  if ((rc = lk__check_rows(f->rows, f->nrows, "lk_fence_check rows"))) return rc;
  lk__prep *pr = calloc(1, sizeof *pr);
  if (!pr) return strata_err(STRATA_ENOMEM, "fence of %zu rows", f->nrows);
  if ((rc = lk__prep_rows(lk, f->rows, f->nrows, pr))) {
    free(pr);
    return rc;
  }
  lk__lock_parts(lk, pr);
  lk__find_ents(lk, pr);
  size_t missing = 0;
  lk__slot h;
  lk_kind hk = LK_TEMPORAL;
  int64_t now = lk_now(lk);
  int held = holds_all(pr, f->op, now, &missing, &h, &hk);
  if (held)
    for (size_t i = 0; i < pr->n; i++) pr->rows[i].ent->pins++;
  lk__unlock_parts(lk, pr);
  if (held && (rc = lk__durable(lk, pr->need))) { /* never pass on a grant not yet durable */
    lk__lock_parts(lk, pr);
    unpin(lk, pr, f->op, now);
    lk__unlock_parts(lk, pr);
    held = 0;
  }
  if (held) {
    f->pins__ = pr;
    return 0;
  }
  lk__prep_free(pr);
  free(pr);
  if (rc) return rc;
  char kb[STRATA_KEY_SHOW_BUF];
  const lk_row *r = &f->rows[missing];
  strata_key_show(r->key, r->len, kb, sizeof kb);
  if (h.op)
    return strata_err(STRATA_EFENCED,
                      "fence: op %" PRIu64 " no longer holds row %s; op %" PRIu64
                      " holds it (%s); the commit is refused, re-acquire and retry",
                      f->op, kb, h.op, hk == LK_TEMPORAL ? "temporal" : "indefinite");
  return strata_err(STRATA_EFENCED,
                    "fence: op %" PRIu64 " no longer holds row %s (expired or released); "
                    "the commit is refused, re-acquire and retry", f->op, kb);
}

void lk_fence_done(void *ctx, int committed) {
  lk_fence *f = ctx;
  (void)committed; /* either way the commit is decided: the rows go back to normal */
  lk__prep *pr = f ? f->pins__ : NULL;
  if (!pr) return;
  f->pins__ = NULL;
  lk__lock_parts(f->lk, pr);
  f->expired_in_flight = unpin(f->lk, pr, f->op, lk_now(f->lk));
  lk__unlock_parts(f->lk, pr);
  lk__prep_free(pr);
  free(pr);
}
