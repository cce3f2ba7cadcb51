/*
 * server/'s private header: the instance struct the handlers receive as their
 * context, and the handler tables of each service file. Nothing outside
 * server/ includes it.
 */
#ifndef STRATA_SERVER_SRV_INT_H
#define STRATA_SERVER_SRV_INT_H

#include <pthread.h>

#include "common/mutex.h"
#include "locks/lock.h"
#include "locks/writers.h"
#include "storage/store.h"
#include "rpc/server.h"
#include "server/auth.h"
#include "server/audit.h"
#include "server/pool.h"
#include "server/srv.h"

#define SRV_LAT_BUCKETS 10
#define SRV_METRICS_STUCK_S 600 /* strata_ops_stuck: ops older than this */

typedef struct srv_lkans srv_lkans; /* lkanswer.c */

/* A request check (validate.h): 0, or STRATA_EINVALID with a message naming
 * the field. It looks at the request only, never the engines. */
typedef int (*srv_check_fn)(const ProtobufCMessage *req);

/* srv_route.flags */
#define SRV_IO 1u /* the handler runs on the io pool: it blocks (RocksDB fsync, files) */
#define SRV_READ 2u /* the call counts in strata_reads_total, valid or not */
/* A unary handler that asks whether the client went away (rpc_call_stop_reason)
 * while it works: the server must learn of a cancel at once. Every other unary
 * method learns of it with its answer (rpc_handler.late_close). */
#define SRV_WATCHES_CANCEL 4u

/* One method's row in its service's table: the method, the check its request
 * must pass, the handler that runs after it, and where. srv.c's dispatch is
 * the one place that runs a check, so handlers start with a valid request. */
typedef struct srv_route {
  rpc_method_id m;
  srv_check_fn check; /* NULL: any decoded request is valid */
  rpc_start_fn fn;
  unsigned flags; /* SRV_IO, SRV_READ, SRV_WATCHES_CANCEL */
} srv_route;

typedef struct srv_hist {
  uint64_t b[SRV_LAT_BUCKETS + 1], sum_ns;
} srv_hist;

struct srv {
  srv_opts o;
  char *data_dir; /* owned copy */
  char *listen; /* owned copy */
  int lock_fd; /* flock(LOCK_EX) on data_dir/server.lock, held for the life of srv */
  rpc_server *rpc;
  srv_audit *audit; /* data_dir/audit.log */
  srv_auth *auth; /* the call gate: tokens, roles, audit records */
  srv_pool *pool; /* waiting Locks.Acquire calls (may block for wait_ms) */
  srv_pool *io; /* short synchronous engine writes (RocksDB fsync): lock and op-log mutations */
  srv_route routes[RPC_M__COUNT]; /* each method's check and handler (srv__bind) */
  srv_lkans *lkans; /* answers lock calls once their change is durable (lkanswer.c) */
  /* Engines. */
  st_db *db; /* the versioned store: data_dir/kv or o.data_url */
  bs_store *kv_files; /* the store's base when o.data_url or o.test_slow_sync_us names one */
  int remote_store;   /* o.data_url is s3://: reads wait on the network (srv.c's poller_threads) */
  bs_store *kv_slow; /* only with o.test_slow_sync_us: kv_files with slowed fsyncs */
  lk_manager *lk; /* locks, op log, id counters: data_dir/locks */
  wreg_registry *wr; /* coordinator mode's writers, in lk's database */
  char *store_dir; /* the store's location told to writers: an absolute directory, or
                      the s3:// URL (writers cannot write there; they send values) */
  /* GC (gc.c): one run at a time; the background thread. */
  strata_mutex gc_mu;
  strata_mutex gct_mu;
  pthread_cond_t gct_cv;
  int gct_stop, has_gct;
  pthread_t gct;
  /* Live Kv.Watch streams, woken after every successful commit (h_watch.c). */
  strata_mutex wmu;
  rpc_call **watchers;
  uint64_t **watchpos; /* each stream's last generation sent (atomic), a retention pin */
  size_t nwatch, capwatch;
  /* Retention (retain.c): ret_mu orders floor computations against new holds
   * and watchers; the thread recomputes the floor every SRV_RETENTION_TICK_MS.
   * Lock order: ret_mu before wmu. */
  strata_mutex ret_mu;
  strata_mutex rett_mu;
  pthread_cond_t rett_cv;
  int rett_stop, has_rett;
  pthread_t rett;
  /* Metrics (metrics.c): the libmicrohttpd daemon, and what only the server counts. */
  struct MHD_Daemon *metrics;
  uint64_t m_reads; /* atomic, like everything below */
  srv_hist m_commit; /* Kv.Commit latency */
  srv_hist m_lockwait; /* time waiting Locks.Acquire calls spent in lk_acquire */
  uint64_t m_waiters; /* waiting Locks.Acquire calls now */
  uint64_t m_fence_rejects; /* commits the fence refused (lock or writer lease) */
};

/* The lock answerer (lkanswer.c). A lock handler runs its lk_ call between
 * lk_defer_begin and lk_defer_end and answers with srv__lk_answer(s, call,
 * need, resp): at once when need is 0, else once batch `need` is durable
 * (failing the call if the sync fails). start/stop: after the pools start,
 * after they stop. */
int srv__lkans_start(lk_manager *lk, srv_lkans **out);
void srv__lkans_stop(srv_lkans *a);
void srv__lk_answer(srv *s, rpc_call *call, uint64_t need, const ProtobufCMessage *resp);

/* The latest committed generation (0 for an empty store). srv.c. */
int srv__latest_generation(srv *s, uint64_t *gen);

/* The byte budget of one stream message: `want`, but at most half the server's
 * --max-message-bytes, so a batch sized by estimate never crosses the limit. */
size_t srv__batch_bytes(const srv *s, size_t want);

/* Milliseconds -> nanoseconds, saturating. */
int64_t srv__ms_to_ns(uint64_t ms);

/* Each service file binds its table of routes (srv__bind). */
void srv__health_bind(srv *s, rpc_handler *h);
void srv__admin_bind(srv *s, rpc_handler *h);
void srv__kv_bind(srv *s, rpc_handler *h);
void srv__locks_bind(srv *s, rpc_handler *h);
void srv__ops_bind(srv *s, rpc_handler *h);
void srv__coord_bind(srv *s, rpc_handler *h);
void srv__watch_bind(srv *s, rpc_handler *h);

/* GC of coordinator-mode writer files (gc.c). */
#define SRV_GC_PATHS_MAX 1000 /* paths a report lists */
typedef struct srv_gc_report {
  uint64_t files_removed, bytes_removed, files_kept;
  uint64_t writers_collected, writers_deferred, versions_walked;
  st_gc_own_result own; /* Strata's own files (storage/retain.c) */
  char **paths; /* the first SRV_GC_PATHS_MAX removed; free with srv__gc_report_free */
  size_t npaths;
} srv_gc_report;
int srv__gc_run(srv *s, int dry_run, srv_gc_report *out);
/* Metrics (metrics.c). */
int srv__metrics_start(srv *s);
void srv__metrics_stop(srv *s);
void srv__metrics_commit(srv *s, int64_t ns);
void srv__hist_add(srv_hist *h, int64_t ns);
void srv__metrics_read(srv *s);
/* Retention (retain.c). */
#define SRV_RETENTION_TICK_MS 1000
void srv__retention_init(srv *s);
int srv__retention_start(srv *s);
void srv__retention_stop(srv *s);
void srv__retention_destroy(srv *s);
int srv__retention_apply(srv *s);
/* 0 when gen (0 = the empty store) is retained and stays so while ret_mu is
 * held; STRATA_ERANGE naming the oldest retained generation otherwise. */
int srv__retention_check(srv *s, uint64_t gen, const char *field);
void srv__retention_handler(rpc_call *call, const ProtobufCMessage *m, void *ctx);
void srv__retained_range(srv *s, Strata__V1__RetainedRange *out);
void srv__gc_report_free(srv_gc_report *r);
void srv__gc_init(srv *s); /* at srv_open's start; srv__gc_destroy in srv_free */
void srv__gc_destroy(srv *s);
int srv__gc_start(srv *s); /* the background thread (o.gc_interval_ms) */
void srv__gc_stop(srv *s);
/* Waits ms on cv (CLOCK_MONOTONIC) under mu; 0 once *stop is set (the
 * periodic threads' loop: GC, retention). */
int srv__tick_wait(strata_mutex *mu, pthread_cond_t *cv, const int *stop, int64_t ms);

/* Wakes every Watch stream; called after each successful commit. */
void srv__watch_notify(srv *s);

/* Resolves a version pin (NULL = latest) to a snapshot the caller releases.
 * NOT_FOUND / OUT_OF_RANGE / INVALID name `field`. A generation-0 pin (the
 * empty store before the first commit) gives 0 with *out NULL: read nothing.
 * srv.c. */
int srv__snap_at(srv *s, const char *field, const Strata__V1__VersionPin *pin, st_snap **out);

/* Binds n routes into the rpc handler table h. Every call of a bound method
 * goes through one dispatch (srv.c), on the poller that received it: it counts
 * a read (SRV_READ), runs the route's check and fails the call with the
 * check's error (the handler never runs), then runs the handler there or, with
 * SRV_IO, on the io pool (the call and request stay valid). */
void srv__bind(srv *s, rpc_handler *h, const srv_route *routes, size_t n);

/* Runs fn(call, req, s) on the io pool now (a handler that finds it must
 * block: reading a file, a synced write); on failure ends the call. */
void srv__run_io(srv *s, rpc_start_fn fn, rpc_call *call, const ProtobufCMessage *req);

/* Ends `call` with rc and this thread's strata_errmsg(). */
void srv__fail(rpc_call *call, int rc);

#endif
