/*
 * Shared by the coordinator-mode tests (test_coord.c, test_coord_gc.c): a real
 * strata-server per test (setup/teardown) and the calls those tests make
 * through it. Every call asserts its own success unless it returns a code.
 */
#ifndef STRATA_TESTS_RPC_COORD_FIXTURE_H
#define STRATA_TESTS_RPC_COORD_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/client.h"
#include "srv_harness.h"

extern harness H; /* the server of the running test */
extern rpc_client *C; /* a client connected to it */
/* --gc-interval of the next tc_start: "0" (GC only on demand) unless a test
 * says otherwise. */
extern const char *tc_gc_interval;

/* Starts strata-server ($STRATA_SERVER_BIN) on dir (NULL: a new one) and
 * connects C; tc_stop closes C and stops the server, leaving the directory. */
void tc_start(const char *dir);
void tc_stop(void);
/* cmocka setup/teardown: a server on a fresh directory, removed afterwards. */
int tc_setup(void **state);
int tc_teardown(void **state);

typedef struct tc_writer {
  uint64_t id;
  char prefix[64];
  char store_dir[600];
} tc_writer;

/* Registers a writer with the lease ttl_ms. */
tc_writer tc_reg(const char *name, uint64_t ttl_ms);
/* Writes `data` to the writer's file `name` (create-new, fsync) and, when
 * do_reg, registers it. */
void tc_write_file(const tc_writer *w, const char *name, const void *data, size_t n, int do_reg);

/* One put: by value (ref_name NULL) or by reference. */
typedef struct tc_put {
  const char *key;
  const char *value;
  const char *ref_name;
  uint64_t off, len;
  int has_crc;
  uint32_t crc;
} tc_put;

/* Commits puts (and deletes) as writer w (NULL: no writer); returns the
 * call's code and, when gen is not NULL, the committed generation. */
int tc_commit(const tc_writer *w, const tc_put *ps, size_t n, const char *const *dels, size_t nd,
              Strata__V1__Condition **conds, size_t nc, Strata__V1__LockFence *fence,
              uint64_t *gen);
/* key holds exactly want[0..n) at the latest generation / key is absent. */
void tc_want_value(const char *key, const void *want, size_t n);
void tc_want_absent(const char *key);

/* A writer as ListWriters shows it (include_expired); 0 when not listed. Any
 * out pointer may be NULL. */
int tc_listed(uint64_t id, int *live, uint64_t *bytes, uint64_t *last_gen, uint64_t *files);
/* Polls (yielding, no fixed sleep as synchronisation) until the server
 * reports w's lease ended. */
void tc_wait_ended(const tc_writer *w);

/* Admin.Check; its errors are printed. Caller frees with rpc_free. */
Strata__V1__CheckStoreResponse *tc_check(void);
uint32_t tc_crc(const void *p, size_t n);

#endif
