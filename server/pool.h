/*
 * A small fixed pool of threads for calls that must block in an engine: the
 * lock manager's fsync'd writes, and a Locks.Acquire that waits for rows to be
 * released (each kind has its own pool). Everything else runs on the gRPC
 * poller threads or answers from an engine callback.
 */
#ifndef STRATA_SERVER_POOL_H
#define STRATA_SERVER_POOL_H

typedef struct srv_pool srv_pool;

/* Starts n threads. Returns 0 or STRATA_ENOMEM. */
int srv_pool_start(int n, srv_pool **out);
/* Queues fn(arg); runs in FIFO order on a pool thread. Returns 0 or
 * STRATA_ESHUTDOWN after srv_pool_stop began. */
int srv_pool_run(srv_pool *p, void (*fn)(void *), void *arg);
/* Runs every queued job, joins the threads and frees p. */
void srv_pool_stop(srv_pool *p);

#endif
