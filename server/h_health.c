/* grpc.health.v1.Health/Check: SERVING for the server and each Strata service. */
#include <string.h>

#include "common/err.h"
#include "server/srv_int.h"

static const char *const services[] = {"",
                                       "strata.v1.Kv",
                                       "strata.v1.Locks",
                                       "strata.v1.Ops",
                                       "strata.v1.Admin",
                                       "strata.v1.Coordinator",
                                       "grpc.health.v1.Health"};

static void check(rpc_call *call, const ProtobufCMessage *m, void *ctx) {
  (void)ctx;
  const Grpc__Health__V1__HealthCheckRequest *req = (const void *)m;
  const char *svc = req->service ? req->service : "";
  int known = 0;
  for (size_t i = 0; i < sizeof services / sizeof services[0]; i++)
    if (strcmp(svc, services[i]) == 0) known = 1;
  if (!known) {
    rpc_call_fail(call, STRATA_ENOTFOUND, "service: unknown service \"%s\"", svc);
    return;
  }
  Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
  resp.status = rpc_server_draining(rpc_call_server(call))
                    ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                    : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
  rpc_call_reply(call, &resp.base);
}

void srv__health_bind(srv *s, rpc_handler *h) {
  static const srv_route routes[] = {{RPC_M_health_check, NULL, check, 0}};
  srv__bind(s, h, routes, 1);
}
