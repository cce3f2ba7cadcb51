/*
 * server/'s private header: the instance struct the handlers receive as their
 * context, and the handler tables of each service file. Nothing outside
 * server/ includes it.
 */
#ifndef STRATA_SERVER_SRV_INT_H
#define STRATA_SERVER_SRV_INT_H

#include "rpc/server.h"
#include "server/srv.h"

struct srv {
  srv_opts o;
  char *data_dir;   /* owned copy */
  char *listen;     /* owned copy */
  int lock_fd;      /* flock(LOCK_EX) on data_dir/server.lock, held for the life of srv */
  rpc_server *rpc;
  /* Engines: NULL until their modules land in the build (see server/README.md). */
  void *store;
  void *locks;
};

/* Each service file fills its methods' slots of the handler table. */
void srv__health_bind(srv *s, rpc_handler *h);
void srv__admin_bind(srv *s, rpc_handler *h);
void srv__kv_bind(srv *s, rpc_handler *h);
void srv__locks_bind(srv *s, rpc_handler *h);
void srv__ops_bind(srv *s, rpc_handler *h);

/* Ends `call` with rc and this thread's strata_errmsg(). */
void srv__fail(rpc_call *call, int rc);

#endif
