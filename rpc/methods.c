/* The method table, generated from RPC_METHOD_MAP (see methods.h). */
#include "rpc/methods.h"

const rpc_method_desc rpc_methods[RPC_M__COUNT] = {
#define XX(name, path, kind, Req, req, Resp, resp) \
  [RPC_M_##name] = {path, RPC_##kind, &req##__descriptor, &resp##__descriptor},
    RPC_METHOD_MAP(XX)
#undef XX
};
