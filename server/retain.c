/*
 * Retention (server/README.md "Retention"): turns the persisted policy and
 * holds (locks/retention.h), the base generations of ops not yet SUCCESS and
 * the live watchers' positions into the store's retention floor
 * (st_set_retain_floor), once a second and after every change of policy or
 * hold; and the Admin.Retention call.
 *
 * Why nothing pinned is ever dropped:
 * - ops: the latest generation L is read before the op log is scanned. An op
 *   created after the scan has a base >= L, and the floor is at most L.
 * - watchers and holds: registering one and computing the floor both hold
 *   ret_mu; a watcher (h_watch.c) or a hold registered after a computation
 *   is checked against the floor it set, and refused with OUT_OF_RANGE when
 *   below it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "locks/oplog.h"
#include "locks/retention.h"
#include "server/log.h"
#include "server/srv_int.h"

static uint64_t min_nz(uint64_t a, uint64_t b) { return !a ? b : !b ? a : a < b ? a : b; }

/* The oldest base generation (> 0) of an op whose status is not SUCCESS: one
 * header-only pass over the op log (it ran four full listings, each reading
 * every open op's scope, which on a 250k-op log took longer than a stop may). */
static int oldest_op_base(srv *s, uint64_t *out) {
  return oplog_oldest_open_base(lk_oplog(s->lk), out);
}

/* ret_mu held. */
static uint64_t oldest_watcher(srv *s) {
  uint64_t m = 0;
  strata_mutex_assert_held(&s->ret_mu);
  strata_mutex_lock(&s->wmu);
  for (size_t i = 0; i < s->nwatch; i++)
  {
    uint64_t pos = __atomic_load_n(s->watchpos[i], __ATOMIC_ACQUIRE);
    m = min_nz(m, pos ? pos : 1); /* from 0: generation 1 is read next */
  }
  strata_mutex_unlock(&s->wmu);
  return m;
}

typedef struct ret_view {
  ret_policy p;
  uint64_t floor, op_base, watcher, hold;
} ret_view;

/* Computes and sets the floor; ret_mu held. */
static int apply_locked(srv *s, ret_view *v) {
  strata_mutex_assert_held(&s->ret_mu);
  memset(v, 0, sizeof *v);
  st_retained rr;
  st_retained_range(s->db, &rr); /* L first: see the top of the file */
  uint64_t L = rr.latest_generation;
  int rc = ret_policy_get(s->lk, &v->p);
  if (!rc) rc = oldest_op_base(s, &v->op_base);
  ret_hold *h = NULL;
  size_t nh = 0;
  if (!rc) rc = ret_hold_list(s->lk, &h, &nh);
  if (rc) return rc;
  if (nh) v->hold = h[0].generation; /* by generation */
  free(h);
  v->watcher = oldest_watcher(s);
  uint64_t f = 0;
  if (v->p.kind == RET_KEEP_VERSIONS && L > v->p.value) {
    f = L - v->p.value + 1;
  } else if (v->p.kind == RET_KEEP_FOR && L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    st_snap *sn;
    /* the version in effect keep_for ago stays, so reads at that time work */
    if (now > v->p.value && st_snap_at_time(s->db, now - v->p.value, &sn) == 0) {
      f = st_snap_info(sn).generation;
      st_snap_release(sn);
    }
  }
  if (f) {
    uint64_t pin = min_nz(min_nz(v->op_base, v->watcher), v->hold);
    if (pin && pin < f) f = pin;
  }
  /* The floor never moves back below versions already dropped (that would
   * only make the pins above look safe when they are not). */
  if (f && f < rr.oldest_generation) f = rr.oldest_generation;
  v->floor = f;
  st_set_retain_floor(s->db, f);
  return 0;
}

int srv__retention_apply(srv *s) {
  ret_view v;
  strata_mutex_lock(&s->ret_mu);
  int rc = apply_locked(s, &v);
  strata_mutex_unlock(&s->ret_mu);
  return rc;
}

int srv__retention_check(srv *s, uint64_t gen, const char *field) {
  if (gen == 0) return 0;
  uint64_t floor = st_retain_floor(s->db);
  st_retained rr;
  st_retained_range(s->db, &rr);
  uint64_t oldest = floor > rr.oldest_generation ? floor : rr.oldest_generation;
  if (gen >= oldest) return 0;
  if (oldest > rr.oldest_generation) /* not dropped yet, but outside the policy */
    return strata_err(STRATA_ERANGE,
                      "%s: generation %llu is outside the retained history: versions below "
                      "generation %llu are being dropped",
                      field, (unsigned long long)gen, (unsigned long long)oldest);
  return strata_err(STRATA_ERANGE,
                    "%s: generation %llu is outside the retained history: the oldest retained "
                    "generation is %llu (commit time %lld ns)",
                    field, (unsigned long long)gen, (unsigned long long)oldest,
                    (long long)rr.oldest_time_ns);
}

/* --- Admin.Retention -------------------------------------------------------------- */

void srv__retention_handler(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  srv *s = ctx;
  const Strata__V1__RetentionRequest *r = (const void *)m;
  int rc = 0;
  strata_mutex_lock(&s->ret_mu);
  ret_policy p = {0};
  switch (r->action_case) {
    case STRATA__V1__RETENTION_REQUEST__ACTION_KEEP_VERSIONS:
      p.kind = RET_KEEP_VERSIONS;
      p.value = r->keep_versions;
      rc = ret_policy_set(s->lk, &p);
      break;
    case STRATA__V1__RETENTION_REQUEST__ACTION_KEEP_FOR_NS:
      p.kind = RET_KEEP_FOR;
      p.value = r->keep_for_ns;
      rc = ret_policy_set(s->lk, &p);
      break;
    case STRATA__V1__RETENTION_REQUEST__ACTION_KEEP_ALL:
      p.kind = RET_KEEP_ALL;
      rc = ret_policy_set(s->lk, &p);
      break;
    case STRATA__V1__RETENTION_REQUEST__ACTION_HOLD: {
      st_retained rr;
      st_retained_range(s->db, &rr);
      if (r->hold > rr.latest_generation)
        rc = strata_err(STRATA_ERANGE, "hold: generation %llu is newer than the latest %llu",
                        (unsigned long long)r->hold, (unsigned long long)rr.latest_generation);
      else rc = srv__retention_check(s, r->hold, "hold");
      if (!rc) rc = ret_hold_add(s->lk, r->hold, r->reason);
      break;
    }
    case STRATA__V1__RETENTION_REQUEST__ACTION_RELEASE:
      rc = ret_hold_release(s->lk, r->release);
      break;
    default:
      break;
  }
  ret_view v;
  if (!rc) rc = apply_locked(s, &v);
  ret_hold *h = NULL;
  size_t nh = 0;
  if (!rc) rc = ret_hold_list(s->lk, &h, &nh);
  strata_mutex_unlock(&s->ret_mu);
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  Strata__V1__RetentionResponse resp = STRATA__V1__RETENTION_RESPONSE__INIT;
  resp.policy = v.p.kind == RET_KEEP_VERSIONS ? "keep-versions" : v.p.kind == RET_KEEP_FOR ? "keep-for" : "keep-all";
  if (v.p.kind == RET_KEEP_VERSIONS) resp.keep_versions = v.p.value;
  if (v.p.kind == RET_KEEP_FOR) resp.keep_for_ns = v.p.value;
  Strata__V1__RetentionHold *hs = calloc(nh ? nh : 1, sizeof *hs);
  Strata__V1__RetentionHold **hp = calloc(nh ? nh : 1, sizeof *hp);
  if (!hs || !hp) nh = 0;
  for (size_t i = 0; i < nh; i++) {
    strata__v1__retention_hold__init(&hs[i]);
    hs[i].generation = h[i].generation;
    hs[i].created_ns = h[i].created_ns;
    hs[i].reason = h[i].reason;
    hp[i] = &hs[i];
  }
  resp.n_holds = nh;
  resp.holds = hp;
  Strata__V1__RetainedRange rg = STRATA__V1__RETAINED_RANGE__INIT;
  srv__retained_range(s, &rg);
  resp.retained = &rg;
  resp.oldest_op_base = v.op_base;
  resp.oldest_watcher = v.watcher;
  rpc_call_reply(call, &resp.base);
  free(hs);
  free(hp);
  free(h);
}

void srv__retained_range(srv *s, Strata__V1__RetainedRange *out) {
  st_retained rr;
  st_retained_range(s->db, &rr);
  out->oldest_generation = rr.oldest_generation;
  out->oldest_commit_time_ns = (int64_t)rr.oldest_time_ns;
  out->latest_generation = rr.latest_generation;
  out->floor = st_retain_floor(s->db);
}

/* --- the thread --------------------------------------------------------------------- */

static void *ret_thread(void *arg) {
  srv *s = arg;
  while (srv__tick_wait(&s->rett_mu, &s->rett_cv, &s->rett_stop, SRV_RETENTION_TICK_MS))
    if (srv__retention_apply(s))
      srv_log(SRV_LOG_WARN, "event=retention_failed msg=\"%s\"", strata_errmsg());
  return NULL;
}

void srv__retention_init(srv *s) {
  strata_mutex_init(&s->ret_mu);
  strata_mutex_init(&s->rett_mu);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->rett_cv, &ca);
  pthread_condattr_destroy(&ca);
}

int srv__retention_start(srv *s) {
  if (srv__retention_apply(s)) return -1; /* before any commit: the floor of the policy */
  int e = pthread_create(&s->rett, NULL, ret_thread, s);
  if (e) return strata_err(e, "starting the retention thread: %s", strerror(e));
  s->has_rett = 1;
  return 0;
}

void srv__retention_stop(srv *s) {
  if (!s->has_rett) return;
  strata_mutex_lock(&s->rett_mu);
  s->rett_stop = 1;
  pthread_cond_signal(&s->rett_cv);
  strata_mutex_unlock(&s->rett_mu);
  pthread_join(s->rett, NULL);
  s->has_rett = 0;
}

void srv__retention_destroy(srv *s) {
  srv__retention_stop(s);
  pthread_cond_destroy(&s->rett_cv);
  strata_mutex_destroy(&s->rett_mu);
  strata_mutex_destroy(&s->ret_mu);
}
