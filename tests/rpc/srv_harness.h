/*
 * Shared by the integration tests: runs a Strata server either in-process
 * (server/embedded.h) or as a real strata-server child process on a fresh
 * directory and an ephemeral port, and waits until it serves.
 */
#ifndef STRATA_TESTS_RPC_SRV_HARNESS_H
#define STRATA_TESTS_RPC_SRV_HARNESS_H

#include <sys/types.h>

#include "rpc/client.h"
#include "server/embedded.h"

typedef struct harness {
  int process; /* 1: child process; 0: embedded */
  srv_embedded *emb;
  pid_t pid;
  char dir[512];
  char addr[64];
  char log[600]; /* the child's stderr */
} harness;

/* Starts a server on `dir` (NULL: a new temporary directory). `bin` is the
 * strata-server path for process mode, NULL for embedded mode. `extra` are more
 * flags for the process (NULL-terminated, may be NULL). Returns 0 or -1 with a
 * message on stderr; a process that is not ready within 60 s is killed. */
int harness_start(harness *h, const char *bin, const char *dir, const char *const *extra);

/* Embedded: srv_embedded_stop. Process: SIGTERM, wait (SIGKILL after 120 s);
 * returns the exit status (0 expected) or -1 if it did not exit normally.
 * Leaves the directory. Safe on a harness that never started or is already
 * stopped (returns -1 and signals nothing), so a teardown may always call it. */
int harness_stop(harness *h);

/* Removes the directory tree. */
void harness_rmdir(const char *dir);

/* Runs `bin` with args to completion (SIGKILL after 60 s) and returns its exit
 * status, or -1; its stderr is written to errbuf (size n). */
int harness_run(const char *bin, const char *const *args, char *errbuf, size_t n);

/* Commits one put k=v through c; returns the call's code (0 = acknowledged). */
int harness_put(rpc_client *c, const void *k, size_t kn, const void *v, size_t vn);

/* Reads k at the latest generation: 0 when it holds exactly v, 1 when it is
 * absent or holds something else (message on stderr), or the call's error. */
int harness_check(rpc_client *c, const void *k, size_t kn, const void *v, size_t vn);

#endif
