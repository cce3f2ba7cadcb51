/*
 * stratactl op replay: recovery of a crashed split op (issue 13). The work is
 * tools/split/split.c's split_replay, the same code strata-split runs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "tools/split/split.h"
#include "tools/stratactl/ctl.h"

int ctl_op_replay(ctl_ctx *x, const ctl_args *a) {
  uint64_t op;
  if (ctl_u64_parse(a->pos[0], 1, UINT64_MAX, &op))
    return ctl_usage(a->cmd, "expected an operation id >= 1, got \"%s\"", a->pos[0]);
  char user[64];
  snprintf(user, sizeof user, "stratactl");
  split_opts o = {.user = user, .root_ttl_ms = 10000, .wait_ms = 0, .log = stderr};
  split_out out;
  char err[2048];
  int rc = split_replay(ctl_client(x), op, &o, &out, err, sizeof err);
  if (rc) {
    fprintf(stderr, "stratactl: op replay %" PRIu64 ": %s\n", op, err);
    split_out_free(&out);
    return CTL_REFUSED;
  }
  const char *did = out.generation ? "re-ran the split and committed it" : "marked SUCCESS";
  if (x->json) {
    json_error_t je;
    json_t *res = out.result ? json_loads(out.result, 0, &je) : NULL;
    ctl_json_print(json_pack("{s:o, s:s, s:s, s:o, s:o}", "op", ctl_json_u64(op), "found",
                             out.found ? out.found : "", "action", did, "generation",
                             ctl_json_u64(out.generation), "result", res ? res : json_null()));
  } else {
    printf("op %" PRIu64 ": %s; %s%s; locks released\n", op,
           out.found && out.found[0] == 'r' ? "its commit had landed (result record found)"
                                            : "no result record (the commit never landed)",
           did, out.generation ? "" : "");
    if (out.generation) printf("op %" PRIu64 ": committed at generation %" PRIu64 "\n", op, out.generation);
  }
  split_out_free(&out);
  return CTL_OK;
}
