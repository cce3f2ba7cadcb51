/* Kv over the wire. The store engine (storage/store.h) is not in the build
 * yet: valid requests get UNIMPLEMENTED naming what is missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "test_rpc_server.h"

void test_kv_calls_without_store(void **state) {
  (void)state;
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  q.key = t_bytes("k");
  Strata__V1__GetResponse *r;
  t_expect_err(rpc_kv_get(C, NULL, &q, &r), STRATA_EUNSUPPORTED, "storage/store.h");
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_UNIMPLEMENTED);
  Strata__V1__CreateOpRequest cq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  cq.user = "u";
  cq.kind = "split";
  Strata__V1__CreateOpResponse *cr;
  t_expect_err(rpc_ops_create(C, NULL, &cq, &cr), STRATA_EUNSUPPORTED, "start generation");
}
