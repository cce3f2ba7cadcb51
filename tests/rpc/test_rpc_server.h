/* Shared declarations of the integration test files (test_rpc_server.c, t_*.c). */
#ifndef STRATA_TESTS_RPC_TEST_RPC_SERVER_H
#define STRATA_TESTS_RPC_TEST_RPC_SERVER_H

#include <stdint.h>

#include "rpc/client.h"
#include "srv_harness.h"

extern harness H; /* the server of the running group */
extern rpc_client *C; /* a client connected to it */

int64_t t_now_ms(void);
ProtobufCBinaryData t_bytes(const char *s);
/* Fails the test unless rc == want and strata_errmsg() contains substr. */
void t_expect_err(int rc, int want, const char *substr);
/* The server's latest generation, from Admin.Stats. */
int srv_latest(uint64_t *gen);
/* Admin.Stats' calls_active (the Stats call itself counted); UINT64_MAX if
 * Stats failed. */
uint64_t t_calls_active(void);
/* Poll calls_active until it is <= n (>= n), for 30 s at most; return the
 * last value read, which the caller asserts on. t_wait_calls_at_most(1) is
 * the settled count before a test opens calls of its own: 1 (the Stats call)
 * once the calls earlier tests ended are gone on the server too. */
uint64_t t_wait_calls_at_most(uint64_t n);
uint64_t t_wait_calls_at_least(uint64_t n);
/* Commits puts (key=value pairs, NULL-terminated) and deletes on C; returns rc
 * (printed on failure) and *gen the generation (gen may be NULL). t_kv.c. */
int t_commit(const char *const *kvs, const char *const *dels, uint64_t *gen);

#define T_DECL(name) void name(void **state);

#define T_VALIDATION_LIST(X) X(test_validation_names_the_field)
#define T_LOCKS_LIST(X)                               \
  X(test_locks_acquire_conflict_release)              \
  X(test_locks_waiting_acquire_granted_after_release) \
  X(test_locks_wait_bounded_by_deadline)              \
  X(test_locks_wait_forever_saturates)                \
  X(test_locks_renew_check_list_privileged_release)   \
  X(test_locks_indefinite_excludes_temporal_acquires)
#define T_OPS_LIST(X) \
  X(test_ops_allocate_ids_disjoint_under_concurrency) X(test_ops_get_missing_and_list_stuck) \
  X(test_ops_list_pages_filters_and_orders)
#define T_KV_LIST(X)                                          \
  X(test_kv_commit_get_pins_batch_get)                        \
  X(test_kv_list_ranges_limits_and_paging)                    \
  X(test_kv_versions)                                         \
  X(test_kv_conditions_fail_naming_the_condition)             \
  X(test_kv_fenced_commit)                                    \
  X(test_ops_create_records_start_generation)                 \
  X(test_ops_indefinite_scope_listed_as_stuck_until_released) \
  X(test_kv_concurrent_committers)                            \
  X(test_kv_batch_get_each_matches_batch_get)
#define T_WATCH_LIST(X)                                       \
  X(test_kv_watch_replay_live_and_resume)                     \
  X(test_kv_watch_deadline_and_cancel)                        \
  X(test_kv_watch_splits_a_large_generation)                  \
  X(test_kv_watch_streams_a_generation_without_an_empty_tail) \
  X(test_kv_watch_follows_concurrent_commits_across_resume)

T_VALIDATION_LIST(T_DECL)
T_LOCKS_LIST(T_DECL)
T_OPS_LIST(T_DECL)
T_KV_LIST(T_DECL)
T_WATCH_LIST(T_DECL)

#define T_ENTRY(name) cmocka_unit_test(name),
#define T_VALIDATION_TESTS T_VALIDATION_LIST(T_ENTRY)
#define T_LOCKS_TESTS T_LOCKS_LIST(T_ENTRY)
#define T_OPS_TESTS T_OPS_LIST(T_ENTRY)
#define T_KV_TESTS T_KV_LIST(T_ENTRY)
#define T_WATCH_TESTS T_WATCH_LIST(T_ENTRY)

#endif
