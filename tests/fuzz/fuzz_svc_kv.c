/* libFuzzer target: every method of strata.v1.Kv: Get, BatchGet, List, Commit, Versions, Watch, fed
 * [method byte][request bytes] through the server's real decode, validation and
 * handler path (tests/fuzz/fuzz_rpc.h says what must hold). */
#include "tests/fuzz/fuzz_rpc.h"

FUZZ_RPC_TARGET(RPC_M_kv_get, RPC_M_kv_batch_get, RPC_M_kv_list, RPC_M_kv_commit, RPC_M_kv_versions,
                RPC_M_kv_watch)
