/*
 * server/'s private header: the instance struct the handlers receive as their
 * context, and the handler tables of each service file. Nothing outside
 * server/ includes it.
 */
#ifndef STRATA_SERVER_SRV_INT_H
#define STRATA_SERVER_SRV_INT_H

#include "locks/lock.h"
#include "rpc/server.h"
#include "server/pool.h"
#include "server/srv.h"

struct srv {
  srv_opts o;
  char *data_dir;   /* owned copy */
  char *listen;     /* owned copy */
  int lock_fd;      /* flock(LOCK_EX) on data_dir/server.lock, held for the life of srv */
  rpc_server *rpc;
  srv_pool *pool;    /* blocking calls: waiting Locks.Acquire */
  /* Engines. The store is NULL until storage/store.h lands in the build. */
  void *store;
  lk_manager *lk;   /* locks, op log, id counters: data_dir/locks */
};

/* The latest committed generation (0 for an empty store). STRATA_EUNSUPPORTED
 * with a message when the store engine is not in this build. */
int srv__latest_generation(srv *s, uint64_t *gen);

/* Milliseconds -> nanoseconds, saturating. */
int64_t srv__ms_to_ns(uint64_t ms);

/* Each service file fills its methods' slots of the handler table. */
void srv__health_bind(srv *s, rpc_handler *h);
void srv__admin_bind(srv *s, rpc_handler *h);
void srv__kv_bind(srv *s, rpc_handler *h);
void srv__locks_bind(srv *s, rpc_handler *h);
void srv__ops_bind(srv *s, rpc_handler *h);

/* Ends `call` with rc and this thread's strata_errmsg(). */
void srv__fail(rpc_call *call, int rc);

#endif
