/* libFuzzer target: every method of grpc.health.v1.Health: Check, fed
 * [method byte][request bytes] through the server's real decode, validation and
 * handler path (tests/fuzz/fuzz_rpc.h says what must hold). */
#include "tests/fuzz/fuzz_rpc.h"

FUZZ_RPC_TARGET(RPC_M_health_check)
