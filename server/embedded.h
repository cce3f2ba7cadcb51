/*
 * Embedded single-node mode, for users' own tests: one call starts a complete
 * Strata server inside the calling process, on an ephemeral loopback port,
 * over a given directory or a fresh temporary one; one call stops it.
 *
 *   srv_embedded *e;
 *   if (srv_embedded_start(NULL, &e) != 0) { fprintf(stderr, "%s\n", strata_errmsg()); ... }
 *   rpc_client_opts co = {.addr = srv_embedded_addr(e)};
 *   ... talk to it with rpc/client.h (or any gRPC client) ...
 *   srv_embedded_stop(e);
 *
 * Link with $(O)/libsrv.a $(O)/librpc.a libstrata.a and `pkg-config --libs grpc gpr
 * libprotobuf-c`. Several embedded servers may run in one process, each on its
 * own directory.
 */
#ifndef STRATA_SERVER_EMBEDDED_H
#define STRATA_SERVER_EMBEDDED_H

typedef struct srv_embedded srv_embedded;

/* Starts a server over `dir` (created if missing), or over a new directory
 * under $TMPDIR (default /tmp) when dir is NULL; that temporary directory is
 * deleted by srv_embedded_stop. Only errors are logged (stderr) unless
 * $STRATA_LOG_LEVEL says otherwise (warn, info, debug). Returns 0 or a Strata code with strata_errmsg(). */
int srv_embedded_start(const char *dir, srv_embedded **out);

/* "127.0.0.1:PORT". Valid until srv_embedded_stop. */
const char *srv_embedded_addr(const srv_embedded *e);
/* The data directory. Valid until srv_embedded_stop. */
const char *srv_embedded_dir(const srv_embedded *e);

/* Drains and stops the server, deletes a temporary directory, frees e. */
void srv_embedded_stop(srv_embedded *e);

#endif
