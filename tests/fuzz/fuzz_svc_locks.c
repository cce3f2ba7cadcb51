/* libFuzzer target: every method of strata.v1.Locks: Acquire, Renew, Release, List, Check, fed
 * [method byte][request bytes] through the server's real decode, validation and
 * handler path (tests/fuzz/fuzz_rpc.h says what must hold). */
#include "tests/fuzz/fuzz_rpc.h"

FUZZ_RPC_TARGET(RPC_M_locks_acquire, RPC_M_locks_renew, RPC_M_locks_release, RPC_M_locks_list,
                RPC_M_locks_check)
