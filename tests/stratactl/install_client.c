/* A tiny Strata client built out of tree against an installed Strata (make install,
 * pkg-config --cflags --libs strata) by tests/stratactl/test_install.py: a Health
 * check, a put and a get against the server at argv[1]. */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "rpc/client.h"

int main(int argc, char **argv) {
  if (argc != 2) return 2;
  rpc_client_opts o = {.addr = argv[1], .timeout_ms = 30000};
  rpc_client *c;
  if (rpc_client_open(&o, &c)) return 1;
  Grpc__Health__V1__HealthCheckRequest hq = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *hr = NULL;
  int rc = rpc_health_check(c, NULL, &hq, &hr);
  if (rc) {
    fprintf(stderr, "health: %s\n", strata_errmsg());
    return 1;
  }
  printf("health: %s\n", hr->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                             ? "SERVING" : "not serving");
  rpc_free(hr);
  Strata__V1__Put put = STRATA__V1__PUT__INIT, *puts[1] = {&put};
  put.key = (ProtobufCBinaryData){11, (uint8_t *)"out-of-tree"};
  put.value = (ProtobufCBinaryData){5, (uint8_t *)"hello"};
  Strata__V1__CommitRequest cq = STRATA__V1__COMMIT_REQUEST__INIT;
  cq.n_puts = 1;
  cq.puts = puts;
  Strata__V1__CommitResponse *cr = NULL;
  if ((rc = rpc_kv_commit(c, NULL, &cq, &cr))) {
    fprintf(stderr, "commit: %s\n", strata_errmsg());
    return 1;
  }
  printf("put at v%llu\n", (unsigned long long)cr->version->generation);
  rpc_free(cr);
  Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
  gq.key = put.key;
  Strata__V1__GetResponse *gr = NULL;
  if ((rc = rpc_kv_get(c, NULL, &gq, &gr))) {
    fprintf(stderr, "get: %s\n", strata_errmsg());
    return 1;
  }
  printf("get: %.*s\n", (int)gr->value.len, (const char *)gr->value.data);
  rpc_free(gr);
  rpc_client_close(c);
  return 0;
}
