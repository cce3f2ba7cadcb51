/*
 * Test fixture for the stratactl tier: does over the client library what
 * stratactl deliberately cannot (create an op, set its status), so the tests
 * can build the server state the op commands show.
 *
 *   ctl_fixture ADDR create-op USER KIND     prints the new op id
 *   ctl_fixture ADDR set-status ID STATUS    STATUS as the wire number (1..5)
 *   ctl_fixture ADDR register-writer NAME TTL_MS   prints "ID PREFIX STORE_DIR"
 *   ctl_fixture ADDR commit-ref ID KEY PATH  registers PATH (relative to the store
 *                                            directory) for writer ID and commits KEY
 *                                            as a reference to the whole file
 *   ctl_fixture ADDR unregister ID
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
  if (argc < 4 || argc > 6) {
    fprintf(stderr, "usage: ctl_fixture ADDR (create-op USER KIND | set-status ID STATUS | "
                    "register-writer NAME TTL_MS | commit-ref ID KEY PATH | unregister ID)\n");
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
  } else if (strcmp(argv[2], "register-writer") == 0 && argc == 5) {
    Strata__V1__RegisterWriterRequest q = STRATA__V1__REGISTER_WRITER_REQUEST__INIT;
    q.name = argv[3];
    q.lease_ttl_ms = strtoull(argv[4], NULL, 10);
    Strata__V1__RegisterWriterResponse *r = NULL;
    if ((rc = rpc_coord_register_writer(c, NULL, &q, &r))) ec = fail("Coordinator.RegisterWriter");
    else printf("%llu %s %s\n", (unsigned long long)r->writer_id, r->prefix, r->store_dir);
    rpc_free(r);
  } else if (strcmp(argv[2], "commit-ref") == 0 && argc == 6) {
    Strata__V1__RegisterFileRequest fq = STRATA__V1__REGISTER_FILE_REQUEST__INIT;
    fq.writer_id = strtoull(argv[3], NULL, 10);
    fq.path = argv[5];
    Strata__V1__RegisterFileResponse *fr = NULL;
    if ((rc = rpc_coord_register_file(c, NULL, &fq, &fr))) {
      ec = fail("Coordinator.RegisterFile");
    } else {
      Strata__V1__DataRef d = STRATA__V1__DATA_REF__INIT;
      d.path = argv[5];
      d.length = fr->size;
      Strata__V1__Put p = STRATA__V1__PUT__INIT, *pp = &p;
      p.key = (ProtobufCBinaryData){strlen(argv[4]), (uint8_t *)argv[4]};
      p.ref = &d;
      Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
      q.n_puts = 1;
      q.puts = &pp;
      q.writer_id = fq.writer_id;
      Strata__V1__CommitResponse *r = NULL;
      if ((rc = rpc_kv_commit(c, NULL, &q, &r))) ec = fail("Kv.Commit");
      rpc_free(r);
    }
    rpc_free(fr);
  } else if (strcmp(argv[2], "unregister") == 0 && argc == 4) {
    Strata__V1__UnregisterWriterRequest q = STRATA__V1__UNREGISTER_WRITER_REQUEST__INIT;
    q.writer_id = strtoull(argv[3], NULL, 10);
    Strata__V1__UnregisterWriterResponse *r = NULL;
    if ((rc = rpc_coord_unregister_writer(c, NULL, &q, &r))) ec = fail("Coordinator.UnregisterWriter");
    rpc_free(r);
  } else {
    fprintf(stderr, "ctl_fixture: unknown action %s\n", argv[2]);
    ec = 2;
  }
  rpc_client_close(c);
  return ec;
}
