/* The client's and the server's shared handling of gRPC core's types (wire.h). */
#include "rpc/wire.h"

#include <grpc/byte_buffer.h>
#include <grpc/slice.h>

grpc_byte_buffer *rpc_pack(const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  grpc_slice sl = grpc_slice_malloc(n);
  protobuf_c_message_pack(m, GRPC_SLICE_START_PTR(sl));
  grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&sl, 1);
  grpc_slice_unref(sl); /* the buffer holds its own reference */
  return bb;
}

grpc_arg rpc_int_arg(const char *key, int value) {
  grpc_arg a;
  a.type = GRPC_ARG_INTEGER;
  a.key = (char *)key;
  a.value.integer = value;
  return a;
}
