/* rpc/'s private declarations, shared by its own files only. */
#ifndef STRATA_RPC_SERVER_INT_H
#define STRATA_RPC_SERVER_INT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

/* Checks every `string` field of the encoded message p[0..n) of type d
 * (nested and repeated ones too) with strata_text_check: 0, or STRATA_EINVALID
 * with a message naming the field as a path ("scope[2].name: contains a NUL
 * byte (byte 3 of 5)"). Bytes that do not parse are left to the decoder. */
int rpc__check_text(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n);

#endif
