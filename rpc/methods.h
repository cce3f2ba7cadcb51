/*
 * The one list of every RPC Strata serves. The server's method table, the
 * client library's typed functions and the method enum are all generated from
 * RPC_METHOD_MAP, so adding a call to a .proto means adding one line here.
 */
#ifndef STRATA_RPC_METHODS_H
#define STRATA_RPC_METHODS_H

#include "grpc/health/v1/health.pb-c.h"
#include "strata/v1/admin.pb-c.h"
#include "strata/v1/coordinator.pb-c.h"
#include "strata/v1/kv.pb-c.h"
#include "strata/v1/locks.pb-c.h"
#include "strata/v1/ops.pb-c.h"

/* The message size limit, both directions, of server and client alike unless
 * their options say otherwise. */
#define RPC_DEFAULT_MAX_MESSAGE_BYTES ((size_t)64 << 20)

/* XX(name, "/package.Service/Method", kind, RequestType, request_prefix,
 *    ResponseType, response_prefix)
 * kind is UNARY or STREAM (server streaming). The prefixes are protobuf-c's
 * lower-case names: request_prefix##__descriptor is the message descriptor. */
#define RPC_METHOD_MAP(XX)                                                                    \
  XX(kv_get, "/strata.v1.Kv/Get", UNARY, Strata__V1__GetRequest, strata__v1__get_request,       \
     Strata__V1__GetResponse, strata__v1__get_response)                                         \
  XX(kv_batch_get, "/strata.v1.Kv/BatchGet", UNARY, Strata__V1__BatchGetRequest,                \
     strata__v1__batch_get_request, Strata__V1__BatchGetResponse, strata__v1__batch_get_response) \
  XX(kv_list, "/strata.v1.Kv/List", STREAM, Strata__V1__ListRequest, strata__v1__list_request,  \
     Strata__V1__ListResponse, strata__v1__list_response)                                       \
  XX(kv_commit, "/strata.v1.Kv/Commit", UNARY, Strata__V1__CommitRequest,                       \
     strata__v1__commit_request, Strata__V1__CommitResponse, strata__v1__commit_response)       \
  XX(kv_versions, "/strata.v1.Kv/Versions", STREAM, Strata__V1__VersionsRequest,                \
     strata__v1__versions_request, Strata__V1__VersionsResponse, strata__v1__versions_response) \
  XX(kv_watch, "/strata.v1.Kv/Watch", STREAM, Strata__V1__WatchRequest,                         \
     strata__v1__watch_request, Strata__V1__WatchResponse, strata__v1__watch_response)          \
  XX(locks_acquire, "/strata.v1.Locks/Acquire", UNARY, Strata__V1__AcquireRequest,              \
     strata__v1__acquire_request, Strata__V1__AcquireResponse, strata__v1__acquire_response)    \
  XX(locks_renew, "/strata.v1.Locks/Renew", UNARY, Strata__V1__RenewRequest,                    \
     strata__v1__renew_request, Strata__V1__RenewResponse, strata__v1__renew_response)          \
  XX(locks_release, "/strata.v1.Locks/Release", UNARY, Strata__V1__ReleaseRequest,              \
     strata__v1__release_request, Strata__V1__ReleaseResponse, strata__v1__release_response)    \
  XX(locks_list, "/strata.v1.Locks/List", STREAM, Strata__V1__ListLocksRequest,                 \
     strata__v1__list_locks_request, Strata__V1__ListLocksResponse,                             \
     strata__v1__list_locks_response)                                                           \
  XX(locks_check, "/strata.v1.Locks/Check", UNARY, Strata__V1__CheckRequest,                    \
     strata__v1__check_request, Strata__V1__CheckResponse, strata__v1__check_response)          \
  XX(ops_create, "/strata.v1.Ops/Create", UNARY, Strata__V1__CreateOpRequest,                   \
     strata__v1__create_op_request, Strata__V1__CreateOpResponse, strata__v1__create_op_response) \
  XX(ops_get, "/strata.v1.Ops/Get", UNARY, Strata__V1__GetOpRequest, strata__v1__get_op_request, \
     Strata__V1__GetOpResponse, strata__v1__get_op_response)                                    \
  XX(ops_set_status, "/strata.v1.Ops/SetStatus", UNARY, Strata__V1__SetStatusRequest,           \
     strata__v1__set_status_request, Strata__V1__SetStatusResponse,                             \
     strata__v1__set_status_response)                                                           \
  XX(ops_list_stuck, "/strata.v1.Ops/ListStuck", STREAM, Strata__V1__ListStuckRequest,          \
     strata__v1__list_stuck_request, Strata__V1__ListStuckResponse,                             \
     strata__v1__list_stuck_response)                                                            \
  XX(ops_list, "/strata.v1.Ops/List", STREAM, Strata__V1__ListOpsRequest,                        \
     strata__v1__list_ops_request, Strata__V1__ListOpsResponse, strata__v1__list_ops_response)    \
  XX(ops_allocate_ids, "/strata.v1.Ops/AllocateIds", UNARY, Strata__V1__AllocateIdsRequest,     \
     strata__v1__allocate_ids_request, Strata__V1__AllocateIdsResponse,                         \
     strata__v1__allocate_ids_response)                                                          \
  XX(admin_stats, "/strata.v1.Admin/Stats", UNARY, Strata__V1__StatsRequest,                    \
     strata__v1__stats_request, Strata__V1__StatsResponse, strata__v1__stats_response)          \
  XX(admin_gc, "/strata.v1.Admin/Gc", UNARY, Strata__V1__GcRequest, strata__v1__gc_request,     \
     Strata__V1__GcResponse, strata__v1__gc_response)                                           \
  XX(admin_check, "/strata.v1.Admin/Check", UNARY, Strata__V1__CheckStoreRequest,               \
     strata__v1__check_store_request, Strata__V1__CheckStoreResponse,                           \
     strata__v1__check_store_response)                                                          \
  XX(admin_retention, "/strata.v1.Admin/Retention", UNARY, Strata__V1__RetentionRequest,        \
     strata__v1__retention_request, Strata__V1__RetentionResponse,                              \
     strata__v1__retention_response)                                                            \
  XX(coord_register_writer, "/strata.v1.Coordinator/RegisterWriter", UNARY,                     \
     Strata__V1__RegisterWriterRequest, strata__v1__register_writer_request,                    \
     Strata__V1__RegisterWriterResponse, strata__v1__register_writer_response)                  \
  XX(coord_renew_writer, "/strata.v1.Coordinator/RenewWriter", UNARY,                           \
     Strata__V1__RenewWriterRequest, strata__v1__renew_writer_request,                          \
     Strata__V1__RenewWriterResponse, strata__v1__renew_writer_response)                        \
  XX(coord_unregister_writer, "/strata.v1.Coordinator/UnregisterWriter", UNARY,                 \
     Strata__V1__UnregisterWriterRequest, strata__v1__unregister_writer_request,                \
     Strata__V1__UnregisterWriterResponse, strata__v1__unregister_writer_response)              \
  XX(coord_register_file, "/strata.v1.Coordinator/RegisterFile", UNARY,                         \
     Strata__V1__RegisterFileRequest, strata__v1__register_file_request,                        \
     Strata__V1__RegisterFileResponse, strata__v1__register_file_response)                      \
  XX(coord_list_writers, "/strata.v1.Coordinator/ListWriters", UNARY,                           \
     Strata__V1__ListWritersRequest, strata__v1__list_writers_request,                          \
     Strata__V1__ListWritersResponse, strata__v1__list_writers_response)                        \
  XX(health_check, "/grpc.health.v1.Health/Check", UNARY, Grpc__Health__V1__HealthCheckRequest, \
     grpc__health__v1__health_check_request, Grpc__Health__V1__HealthCheckResponse,             \
     grpc__health__v1__health_check_response)

typedef enum rpc_method_id {
#define XX(name, path, kind, Req, req, Resp, resp) RPC_M_##name,
  RPC_METHOD_MAP(XX)
#undef XX
  RPC_M__COUNT
} rpc_method_id;

typedef enum rpc_kind { RPC_UNARY = 0, RPC_STREAM = 1 } rpc_kind;

/* What the protocol says about one method; rpc_methods[id]. */
typedef struct rpc_method_desc {
  const char *path;                        /* "/strata.v1.Kv/Get" */
  rpc_kind kind;
  const ProtobufCMessageDescriptor *req;   /* request message */
  const ProtobufCMessageDescriptor *resp;  /* response (or stream element) message */
} rpc_method_desc;

extern const rpc_method_desc rpc_methods[RPC_M__COUNT];

#endif
