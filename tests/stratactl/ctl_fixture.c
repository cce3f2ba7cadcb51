/*
 * Test fixture for the stratactl tier: does over the client library what
 * stratactl deliberately cannot (create an op, set its status), so the tests
 * can build the server state the op commands show.
 *
 *   ctl_fixture ADDR create-op USER KIND     prints the new op id
 *   ctl_fixture ADDR set-status ID STATUS    STATUS as the wire number (1..5)
 *
 * Exit 0 on success, 1 on an error (message on stderr), 2 on bad arguments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "rpc/client.h"

static int fail(const char *what) {
  fprintf(stderr, "ctl_fixture: %s: %s\n", what, strata_errmsg());
  return 1;
}

int main(int argc, char **argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: ctl_fixture ADDR (create-op USER KIND | set-status ID STATUS)\n");
    return 2;
  }
  rpc_client_opts o = {.addr = argv[1], .timeout_ms = 10000};
  rpc_client *c;
  if (rpc_client_open(&o, &c)) return fail("open");
  int rc, ec = 0;
  if (strcmp(argv[2], "create-op") == 0) {
    Strata__V1__CreateOpRequest q = STRATA__V1__CREATE_OP_REQUEST__INIT;
    q.user = argv[3];
    q.kind = argv[4];
    Strata__V1__CreateOpResponse *r = NULL;
    if ((rc = rpc_ops_create(c, NULL, &q, &r))) ec = fail("Ops.Create");
    else printf("%llu\n", (unsigned long long)r->op->op_id);
    rpc_free(r);
  } else if (strcmp(argv[2], "set-status") == 0) {
    Strata__V1__SetStatusRequest q = STRATA__V1__SET_STATUS_REQUEST__INIT;
    q.op_id = strtoull(argv[3], NULL, 10);
    q.status = atoi(argv[4]);
    Strata__V1__SetStatusResponse *r = NULL;
    if ((rc = rpc_ops_set_status(c, NULL, &q, &r))) ec = fail("Ops.SetStatus");
    rpc_free(r);
  } else {
    fprintf(stderr, "ctl_fixture: unknown action %s\n", argv[2]);
    ec = 2;
  }
  rpc_client_close(c);
  return ec;
}
