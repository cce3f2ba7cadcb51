/*
 * What the client and the server both do to gRPC core's types: a message into
 * a byte buffer, an integer channel argument. Internal to rpc/.
 */
#ifndef STRATA_RPC_WIRE_H
#define STRATA_RPC_WIRE_H

#include <grpc/grpc.h>
#include <protobuf-c/protobuf-c.h>

/* m serialized into a new byte buffer (the caller destroys it). */
grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m);

/* An integer channel argument: key (one of GRPC_ARG_*), value. */
grpc_arg rpc_int_arg(const char *key, int value);

#endif
