/* libFuzzer target: every method of strata.v1.Coordinator (RegisterWriter,
 * RenewWriter, UnregisterWriter, RegisterFile, ListWriters) and Kv.Commit,
 * whose reference puts name the writers' files, fed [method byte][request
 * bytes] through the server's real decode, validation and handler path
 * (tests/fuzz/fuzz_rpc.h says what must hold). */
#include "tests/fuzz/fuzz_rpc.h"

FUZZ_RPC_TARGET(RPC_M_coord_register_writer, RPC_M_coord_renew_writer,
                RPC_M_coord_unregister_writer, RPC_M_coord_register_file,
                RPC_M_coord_list_writers, RPC_M_kv_commit)
