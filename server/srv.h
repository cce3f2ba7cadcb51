/*
 * One Strata server instance: the data directory (locked against a second
 * server), the engines, and the gRPC services bound to them. strata-server's
 * main() and the embedded mode (embedded.h) are its two users.
 */
#ifndef STRATA_SERVER_SRV_H
#define STRATA_SERVER_SRV_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/server.h"

typedef struct srv srv;
struct bs_store;

typedef struct srv_opts {
  const char *listen; /* default "127.0.0.1:7420"; port 0 picks a free one */
  const char *data_dir; /* default "./strata-data"; created when missing */
  /* Where the OCDBT files live (storage/base_url.h: a directory or s3://BUCKET/PREFIX);
   * NULL = data_dir/kv. strata-server records it in the data directory (datadir.h). */
  const char *data_url;
  /* The directory whose log/ holds the commit log; NULL = the store's own directory
   * (data_dir/kv/log) without data_url, data_dir/SRV_LOCAL_LOG_DIR with it, so that the
   * durability point stays on the server's disk when the OCDBT files are shared. */
  const char *log_dir;
  const char *s3_endpoint, *s3_region; /* s3:// data_url: NULL = the AWS environment */
  /* s3:// data_url: this server's name in the store's writer lock (strata-server: the
   * data directory's recorded owner id; NULL = no lock), and --take-over-store. */
  const char *store_owner;
  int take_over_store;
  int threads; /* gRPC poller threads; 0 = the default (srv.c's poller_threads) */
  size_t max_message_bytes; /* both directions; 0 = RPC_DEFAULT_MAX_MESSAGE_BYTES (64 MiB) */
  int grace_ms; /* drain time at stop before in-flight calls are cancelled; 0 cancels them
                  at once; < 0 = the default, SRV_DEFAULT_GRACE_MS */
  int no_commit_log; /* 0 (default): the store commits through its commit log
                        (storage/README.md "Commit log mode"): one sync per group,
                        OCDBT files published in batches; the log lives in
                        data_dir/kv/log. 1: each group writes and syncs its own
                        data file and manifest (the per-group path) */
  unsigned publish_interval_ms; /* commit log: a batch's collection time; 0 = the store's
                                   default (st_options.publish_interval_ms) */
  int keep_value_pages;         /* st_options.keep_value_pages */
  /* Security (docs/security.md). tls_cert + tls_key: serve TLS; tls_client_ca:
   * also require client certificates signed by it. auth_file: the token file
   * (server/auth.h); NULL = authentication off. */
  const char *tls_cert, *tls_key, *tls_client_ca;
  const char *auth_file;
  /* Background GC of coordinator-mode writer files (server/README.md
   * "Coordinator mode"): ms between runs; 0 = SRV_DEFAULT_GC_INTERVAL_MS;
   * < 0 = none (Admin.Gc only). */
  int64_t gc_interval_ms;
  /* How long Strata's own files stay after no retained version references
   * them (readers that opened an older manifest); 0 = SRV_DEFAULT_GC_GRACE_MS,
   * < 0 = no grace (tests). */
  int64_t gc_grace_ms;
  /* "HOST:PORT" (IPv4): serve Prometheus metrics at http://HOST:PORT/metrics; NULL = off. */
  const char *metrics_listen;
  /* Test only (tests/system): every fsync of the store (files and directories) first
   * sleeps this many microseconds, widening the window between a commit's fence check
   * and its publication. 0 = off. strata-server reads it from STRATA_TEST_SLOW_SYNC_US. */
  unsigned test_slow_sync_us;
  /* For fuzzing and tests, all off by default: */
  int local; /* no listener: calls only through srv_call_local */
  struct bs_store *store_base; /* the store's files in this base store (not owned) instead of
                                  data_dir/kv */
  int lock_no_sync; /* the lock database skips its fsyncs (nothing survives a crash) */
} srv_opts;

#define SRV_DEFAULT_LISTEN "127.0.0.1:7420"
#define SRV_DEFAULT_DATA_DIR "./strata-data"
#define SRV_LOCK_FILE "server.lock"
#define SRV_LOCAL_LOG_DIR "kv-log" /* the commit log's home when the OCDBT files are elsewhere */
#define SRV_DEFAULT_GRACE_MS 5000
/* After the grace, the rest of a stop (cancelling calls, closing the store and the
 * lock table) gets this long by default (strata-server --stop-timeout-ms); past it
 * strata-server exits at once with status 1 (server/README.md "Shutdown"). Nothing
 * acknowledged is lost that way: an acknowledged commit or lock write is already
 * durable, as for kill -9. */
#define SRV_STOP_HARD_MS 30000
#define SRV_DEFAULT_GC_INTERVAL_MS 300000
#define SRV_DEFAULT_GC_GRACE_MS 600000

/* Locks the data directory, opens the engines and starts serving. On failure
 * returns a Strata code (STRATA_EBUSY when another server holds the directory
 * or the address is taken) with the detail in strata_errmsg(); nothing is left
 * running. */
int srv_open(const srv_opts *o, srv **out);

/* Runs one call on a server opened with opts.local (rpc_server_call_local):
 * the request bytes go through the same limit, text check, decoding,
 * validation and handler as over gRPC. */
void srv_call_local(srv *s, rpc_method_id m, const void *req, size_t n, int64_t timeout_ms,
                    rpc_local_result *res);

/* Re-reads the auth file (SIGHUP): calls in flight and connections are not
 * touched; a file that does not load keeps the previous table. The outcome is
 * logged and audited. Returns 0 or the load error. */
int srv_reload_auth(srv *s);

/* The bound port (0 for a local server). */
int srv_port(const srv *s);

/* Drains in-flight calls (srv_opts.grace_ms), stops serving, closes the
 * engines (every acknowledged commit is durable before this returns), and
 * unlocks the data directory. */
void srv_close(srv *s);

#endif
