/* libFuzzer target: every method of strata.v1.Admin: Stats, Gc, Check, fed
 * [method byte][request bytes] through the server's real decode, validation and
 * handler path (tests/fuzz/fuzz_rpc.h says what must hold). */
#include "tests/fuzz/fuzz_rpc.h"

FUZZ_RPC_TARGET(RPC_M_admin_stats, RPC_M_admin_gc, RPC_M_admin_check)
