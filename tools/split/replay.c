/*
 * stratactl op replay: verify the op still holds its scope, then finish or
 * redo its split under the same op, locks and ids.
 * tools/split/README.md has the design.
 */
#include "tools/split/split_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "common/err.h"
#include "locks/lock.h"
#include "tools/populate/precomputed.h"

static const char *status_str(Strata__V1__OpStatus st) {
  const ProtobufCEnumValue *v = protobuf_c_enum_descriptor_get_value(&strata__v1__op_status__descriptor, (int)st);
  return v ? v->name : "?";
}

/* --- replay ------------------------------------------------------------------------------- */

/* A comma-separated list of rows for a refusal; rows past its capacity are
 * counted but not shown. */
typedef struct miss_list {
  char s[2048];
  size_t n, len;
} miss_list;

static void miss_add(miss_list *m, const char *hex) {
  if (m->len + strlen(hex) + 4 < sizeof m->s)
    m->len += (size_t)snprintf(m->s + m->len, sizeof m->s - m->len, "%s%s", m->n ? ", " : "", hex);
  m->n++;
}

/* Ops.Get of p->op into *g; refuses an op of another kind or one that holds no
 * lock scope. */
static int replay_get_op(sp *p, Strata__V1__GetOpResponse **g) {
  Strata__V1__GetOpRequest gq = STRATA__V1__GET_OP_REQUEST__INIT;
  gq.op_id = p->op;
  if (rpc_ops_get(p->c, NULL, &gq, g))
    return sp__fail(p, 1, "Ops.Get %" PRIu64 ": %s", p->op, strata_errmsg());
  Strata__V1__Op *opr = (*g)->op;
  if (strcmp(opr->kind, SPLIT_OP_KIND) != 0)
    return sp__fail(p, 1, "refused: op %" PRIu64 " is a \"%s\" op, not a \"" SPLIT_OP_KIND "\"", p->op,
                    opr->kind);
  if (opr->n_scope == 0)
    return sp__fail(p, 1, "refused: op %" PRIu64 " (%s) holds no lock scope: it never locked its "
                    "chunks, or it was completed, replayed or released already; nothing to replay",
                    p->op, status_str(opr->status));
  return 0;
}

/* Locks.List of the indefinite locks p->op holds, every page into *lm (*nlm). */
static int replay_list_locks(sp *p, Strata__V1__ListLocksResponse ***lm, size_t *nlm) {
  Strata__V1__ListLocksRequest lq = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  lq.op_id = p->op;
  lq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
  rpc_cstream *st = NULL;
  if (rpc_locks_list(p->c, NULL, &lq, &st)) return sp__fail(p, 1, "Locks.List: %s", strata_errmsg());
  Strata__V1__ListLocksResponse *m;
  int rc;
  while ((rc = rpc_locks_list_next(st, &m)) == 1) {
    Strata__V1__ListLocksResponse **nm = realloc(*lm, (*nlm + 1) * sizeof *nm);
    if (!nm) {
      rpc_free(m);
      rc = STRATA_ENOMEM;
      break;
    }
    *lm = nm;
    (*lm)[(*nlm)++] = m;
  }
  rpc_cstream_close(st);
  if (rc) return sp__fail(p, 1, "Locks.List: %s", strata_errmsg());
  return 0;
}

/* Refuses the replay unless every scope row of opr is still held indefinitely
 * by the op. */
static int replay_check_scope_held(sp *p, const Strata__V1__Op *opr) {
  Strata__V1__ListLocksResponse **lm = NULL;
  size_t nlm = 0;
  int rc = replay_list_locks(p, &lm, &nlm);
  miss_list miss = {.s = ""};
  for (size_t i = 0; !rc && i < opr->n_scope; i++) {
    int held = 0;
    for (size_t a = 0; a < nlm && !held; a++)
      for (size_t b = 0; b < lm[a]->n_locks && !held; b++)
        held = lm[a]->locks[b]->row.len == opr->scope[i].len &&
               !memcmp(lm[a]->locks[b]->row.data, opr->scope[i].data, opr->scope[i].len);
    if (!held) {
      char hex[128];
      sp__rows_hex(p, opr->scope[i].data, opr->scope[i].len, hex, sizeof hex);
      miss_add(&miss, hex);
    }
  }
  for (size_t i = 0; i < nlm; i++) rpc_free(lm[i]);
  free(lm);
  if (rc) return rc;
  if (miss.n)
    return sp__fail(p, 1, "refused: op %" PRIu64 " no longer holds %zu of its %zu scope rows "
                    "indefinitely: %s", p->op, miss.n, opr->n_scope, miss.s);
  return 0;
}

/* Refuses the replay unless every chunk row the payload's split locks is in the
 * op's scope (an operator's privileged release of a row also removes it from
 * the scope). */
static int replay_check_chunks_in_scope(sp *p, const Strata__V1__Op *opr) {
  miss_list miss = {.s = ""};
  for (size_t i = 1; i < p->nrows; i++) {
    int in = 0;
    for (size_t k = 0; k < opr->n_scope && !in; k++)
      in = opr->scope[k].len == LK_L2_KEY_LEN && !memcmp(opr->scope[k].data, p->rows[i], LK_L2_KEY_LEN);
    if (!in) {
      char hex[64];
      sp__rows_hex(p, p->rows[i], LK_L2_KEY_LEN, hex, sizeof hex);
      miss_add(&miss, hex);
    }
  }
  if (miss.n)
    return sp__fail(p, 1, "refused: op %" PRIu64 " no longer holds %zu of the %zu chunk rows its split "
                    "locks (released by an operator?): %s", p->op, miss.n, p->nrows - 1, miss.s);
  return 0;
}

/* Reads the op's result record into out->result; *found says whether it exists. */
static int replay_read_result(sp *p, split_out *out, int *found) {
  char *rk = sp__result_key(p);
  uint8_t *v;
  size_t len;
  if (!rk) return sp__fail(p, 1, "out of memory");
  int rc = sp__kv_get(p, rk, 0, found, &v, &len);
  free(rk);
  if (rc || !*found) return rc;
  out->result = malloc(len + 1);
  if (out->result) {
    memcpy(out->result, v, len);
    out->result[len] = 0;
  }
  free(v);
  return 0;
}

/* The commit never landed: runs the split again under the op's root lock (the
 * crashed worker's may still be live: then the acquire changes nothing and keeps
 * its expiry, so it is renewed to a full TTL at once), reads, computes, takes the
 * op's ids and finishes. Returns 0 or 1. */
static int replay_rerun(sp *p, split_out *out) {
  if (sp__acquire(p, 0, 1, 0, "root lock")) return 1;
  if (sp__renew_root(p)) return sp__fail(p, 1, "root lock: Locks.Renew: %s", strata_errmsg());
  if (pthread_create(&p->th, NULL, sp__renew_main, p) == 0) p->th_on = 1;
  int rc;
  if ((rc = sp__read_region(p, 0))) return rc;
  if (sp__compute(p)) return 1;
  if ((rc = sp__needed_ids(p)) || (rc = sp__take_ids(p))) return rc;
  return sp__finish(p, out) ? 1 : 0;
}

/* After a failed replay: the chunk locks stay (the op stays listed for another
 * replay); the root lock is freed. */
static void replay_release_root(sp *p) {
  sp__renew_stop(p);
  if (!p->nrows) return;
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  ProtobufCBinaryData row = {8, p->rows[0]};
  q.op_id = p->op;
  q.rows = &row;
  q.n_rows = 1;
  Strata__V1__ReleaseResponse *rr = NULL;
  rpc_locks_release(p->c, NULL, &q, &rr);
  rpc_free(rr);
}

int split_replay(rpc_client *c, uint64_t op, const split_opts *o, split_out *out, char *err,
                 size_t errlen) {
  split_req r = {0};
  sp p;
  sp__sp_init(&p, c, &r, o, err, errlen);
  p.replay = 1;
  p.op = op;
  memset(out, 0, sizeof *out);
  out->op_id = op;
  Strata__V1__GetOpResponse *g = NULL;
  int rc, found;
  /* 1. the op: a split op that still holds every row of its scope */
  if ((rc = replay_get_op(&p, &g)) || (rc = replay_check_scope_held(&p, g->op))) goto out;
  Strata__V1__Op *opr = g->op;
  sp__logkv(&p, "step=verify scope_rows=%zu held=all status=%s", opr->n_scope,
            status_str(opr->status));
  /* 2. its request, whose chunk rows must all be in the scope */
  if (split_req_parse((const char *)opr->payload.data, opr->payload.len, &r, err, errlen)) {
    rc = 1;
    goto out;
  }
  if (sp__load_info(&p) || sp__plan_chunks(&p)) {
    rc = 1;
    goto out;
  }
  if ((rc = replay_check_chunks_in_scope(&p, opr))) goto out;
  /* 3. the result record decides: the commit landed, so mark SUCCESS and release */
  if ((rc = replay_read_result(&p, out, &found))) goto out;
  if (found) {
    out->found = "result";
    sp__logkv(&p, "step=result found=1 action=mark_success_and_release");
    if (opr->status != STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS &&
        (rc = sp__set_status(&p, STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS, "op replay: commit had landed")))
      goto out;
    rc = sp__release_all(&p);
    goto out;
  }
  /* 4. or it did not: run the split again */
  out->found = "no_result";
  sp__logkv(&p, "step=result found=0 action=rerun");
  rc = replay_rerun(&p, out);
out:
  if (rc) replay_release_root(&p);
  rpc_free(g);
  sp__sp_free(&p);
  split_req_free(&r);
  return rc ? 1 : 0;
}
