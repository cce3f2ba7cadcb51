/* libFuzzer target: every method of strata.v1.Ops: Create, Get, SetStatus, ListStuck, List, AllocateIds, fed
 * [method byte][request bytes] through the server's real decode, validation and
 * handler path (tests/fuzz/fuzz_rpc.h says what must hold). */
#include "tests/fuzz/fuzz_rpc.h"

FUZZ_RPC_TARGET(RPC_M_ops_create, RPC_M_ops_get, RPC_M_ops_set_status, RPC_M_ops_list_stuck,
                RPC_M_ops_list, RPC_M_ops_allocate_ids)
