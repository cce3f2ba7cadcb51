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

int split_replay(rpc_client *c, uint64_t op, const split_opts *o, split_out *out, char *err,
                 size_t errlen) {
  split_req r = {0};
  sp p;
  sp__sp_init(&p, c, &r, o, err, errlen);
  p.replay = 1;
  p.op = op;
  memset(out, 0, sizeof *out);
  out->op_id = op;
  Strata__V1__GetOpRequest gq = STRATA__V1__GET_OP_REQUEST__INIT;
  gq.op_id = op;
  Strata__V1__GetOpResponse *g = NULL;
  Strata__V1__ListLocksResponse **lm = NULL;
  size_t nlm = 0;
  int rc = rpc_ops_get(c, NULL, &gq, &g);
  if (rc) {
    rc = sp__fail(&p, 1, "Ops.Get %" PRIu64 ": %s", op, strata_errmsg());
    goto out;
  }
  Strata__V1__Op *opr = g->op;
  if (strcmp(opr->kind, SPLIT_OP_KIND) != 0) {
    rc = sp__fail(&p, 1, "refused: op %" PRIu64 " is a \"%s\" op, not a \"" SPLIT_OP_KIND "\"", op, opr->kind);
    goto out;
  }
  if (opr->n_scope == 0) {
    rc = sp__fail(&p, 1, "refused: op %" PRIu64 " (%s) holds no lock scope: it never locked its "
              "chunks, or it was completed, replayed or released already; nothing to replay", op,
              status_str(opr->status));
    goto out;
  }
  /* every scope row must still be held indefinitely by this op */
  Strata__V1__ListLocksRequest lq = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  lq.op_id = op;
  lq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_INDEFINITE;
  rpc_cstream *st = NULL;
  if ((rc = rpc_locks_list(c, NULL, &lq, &st))) {
    rc = sp__fail(&p, 1, "Locks.List: %s", strata_errmsg());
    goto out;
  }
  Strata__V1__ListLocksResponse *m;
  while ((rc = rpc_locks_list_next(st, &m)) == 1) {
    Strata__V1__ListLocksResponse **nm = realloc(lm, (nlm + 1) * sizeof *nm);
    if (!nm) {
      rpc_free(m);
      rc = STRATA_ENOMEM;
      break;
    }
    lm = nm;
    lm[nlm++] = m;
  }
  rpc_cstream_close(st);
  if (rc) {
    rc = sp__fail(&p, 1, "Locks.List: %s", strata_errmsg());
    goto out;
  }
  char missing[2048] = "";
  size_t nmiss = 0, mo = 0;
  for (size_t i = 0; i < opr->n_scope; i++) {
    int held = 0;
    for (size_t a = 0; a < nlm && !held; a++)
      for (size_t b = 0; b < lm[a]->n_locks && !held; b++)
        held = lm[a]->locks[b]->row.len == opr->scope[i].len &&
               !memcmp(lm[a]->locks[b]->row.data, opr->scope[i].data, opr->scope[i].len);
    if (!held) {
      char hex[128];
      sp__rows_hex(&p, opr->scope[i].data, opr->scope[i].len, hex, sizeof hex);
      if (mo + strlen(hex) + 4 < sizeof missing)
        mo += (size_t)snprintf(missing + mo, sizeof missing - mo, "%s%s", nmiss ? ", " : "", hex);
      nmiss++;
    }
  }
  if (nmiss) {
    rc = sp__fail(&p, 1, "refused: op %" PRIu64 " no longer holds %zu of its %zu scope rows "
              "indefinitely: %s", op, nmiss, opr->n_scope, missing);
    goto out;
  }
  sp__logkv(&p, "step=verify scope_rows=%zu held=all status=%s", opr->n_scope,
        status_str(opr->status));
  if (split_req_parse((const char *)opr->payload.data, opr->payload.len, &r, err, errlen)) {
    rc = 1;
    goto out;
  }
  /* every chunk row the payload's split needs must be in the scope (an operator's
   * privileged release of a row also removes it from the scope) */
  if ((rc = sp__load_info(&p)) || (rc = sp__plan_chunks(&p))) {
    rc = 1;
    goto out;
  }
  nmiss = mo = 0;
  missing[0] = 0;
  for (size_t i = 1; i < p.nrows; i++) {
    int in = 0;
    for (size_t k = 0; k < opr->n_scope && !in; k++)
      in = opr->scope[k].len == LK_L2_KEY_LEN && !memcmp(opr->scope[k].data, p.rows[i], LK_L2_KEY_LEN);
    if (!in) {
      char hex[64];
      sp__rows_hex(&p, p.rows[i], LK_L2_KEY_LEN, hex, sizeof hex);
      if (mo + strlen(hex) + 4 < sizeof missing)
        mo += (size_t)snprintf(missing + mo, sizeof missing - mo, "%s%s", nmiss ? ", " : "", hex);
      nmiss++;
    }
  }
  if (nmiss) {
    rc = sp__fail(&p, 1, "refused: op %" PRIu64 " no longer holds %zu of the %zu chunk rows its split "
              "locks (released by an operator?): %s", op, nmiss, p.nrows - 1, missing);
    goto out;
  }
  /* the result record decides */
  char *rk = sp__result_key(&p);
  int found;
  uint8_t *v;
  size_t len;
  if (!rk) {
    rc = sp__fail(&p, 1, "out of memory");
    goto out;
  }
  rc = sp__kv_get(&p, rk, 0, &found, &v, &len);
  free(rk);
  if (rc) goto out;
  if (found) {
    out->found = "result";
    out->result = malloc(len + 1);
    if (out->result) {
      memcpy(out->result, v, len);
      out->result[len] = 0;
    }
    free(v);
    sp__logkv(&p, "step=result found=1 action=mark_success_and_release");
    if (opr->status != STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS &&
        (rc = sp__set_status(&p, STRATA__V1__OP_STATUS__OP_STATUS_SUCCESS, "op replay: commit had landed")))
      goto out;
    rc = sp__release_all(&p);
    goto out;
  }
  out->found = "no_result";
  sp__logkv(&p, "step=result found=0 action=rerun");
  /* the root lock again, for this op: the crashed worker's may still be live (then the
   * acquire changes nothing and keeps its expiry), so renew it to a full TTL at once */
  if ((rc = sp__acquire(&p, 0, 1, 0, "root lock"))) {
    rc = 1;
    goto out;
  }
  if (sp__renew_root(&p)) {
    rc = sp__fail(&p, 1, "root lock: Locks.Renew: %s", strata_errmsg());
    goto out;
  }
  if (pthread_create(&p.th, NULL, sp__renew_main, &p) == 0) p.th_on = 1;
  if ((rc = sp__read_region(&p, 0))) goto out;
  if ((rc = sp__compute(&p))) {
    rc = 1;
    goto out;
  }
  if ((rc = sp__needed_ids(&p)) || (rc = sp__take_ids(&p))) goto out;
  rc = sp__finish(&p, out);
  if (rc) rc = 1;
out:
  if (rc) {
    /* leave the chunk locks: the op stays listed for another replay; free the root */
    sp__renew_stop(&p);
    if (p.nrows) {
      Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
      ProtobufCBinaryData row = {8, p.rows[0]};
      q.op_id = op;
      q.rows = &row;
      q.n_rows = 1;
      Strata__V1__ReleaseResponse *rr = NULL;
      rpc_locks_release(c, NULL, &q, &rr);
      rpc_free(rr);
    }
  }
  for (size_t i = 0; i < nlm; i++) rpc_free(lm[i]);
  free(lm);
  rpc_free(g);
  sp__sp_free(&p);
  split_req_free(&r);
  return rc ? 1 : 0;
}
