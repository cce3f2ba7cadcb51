/*
 * A server instance: lock the data directory, open the engines, bind every
 * service's handlers into the rpc method table and start gRPC; the reverse on
 * close. See server/README.md for the order and why.
 */
#include "server/srv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "locks/acked.h"
#include "storage/base_url.h"
#include "server/log.h"

/* --threads' default (server/README.md "Threads"): half the CPUs this process may
 * run on, at least 1 and at most 8, because a put's or a get's CPU is gRPC core's
 * and the kernel's on the poller, and the committer, the publisher and the clients
 * need the rest (on 2 CPUs one poller served 1.4-1.9x the health checks and gets of
 * two and no fewer puts: docs/benchmarks.md "One poller on two CPUs"). With an
 * s3:// store a read waits on the network on its poller, so 4 at least. */
static int poller_threads(const srv *s) {
  cpu_set_t set;
  int ncpu = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 2;
  int n = ncpu / 2;
  if (n < 1) n = 1;
  if (n > 8) n = 8;
  if (s->remote_store && n < 4) n = 4;
  return n;
}

void srv__fail(rpc_call *call, int rc) { rpc_call_fail(call, rc, "%s", strata_errmsg()); }

/* Creates data_dir if needed and takes an exclusive flock on its lock file, so a
 * second server on the same directory refuses to start. */
static int lock_data_dir(srv *s) {
  if (mkdir(s->data_dir, 0755) != 0 && errno != EEXIST)
    return strata_err(errno, "cannot create data directory %s: %s", s->data_dir, strerror(errno));
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", s->data_dir, SRV_LOCK_FILE);
  int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return strata_err(errno, "cannot open %s: %s", path, strerror(errno));
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    char pid[32] = "";
    ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
    if (n > 0) pid[n] = 0;
    pid[strcspn(pid, "\n")] = 0;
    close(fd);
    if (e == EWOULDBLOCK)
      return strata_err(STRATA_EBUSY,
                        "data directory %s is in use by another strata-server (pid %s holds %s); "
                        "stop it or choose another --data-dir",
                        s->data_dir, *pid ? pid : "?", path);
    return strata_err(e, "cannot lock %s: %s", path, strerror(e));
  }
  char buf[32];
  int len = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
  if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)len, 0) != len) {
    /* The pid is informational only; the flock is what excludes. */
  }
  s->lock_fd = fd;
  return 0;
}

size_t srv__batch_bytes(const srv *s, size_t want) {
  size_t half = rpc_server_max_message_bytes(s->rpc) / 2;
  return half && half < want ? half : want;
}

int64_t srv__ms_to_ns(uint64_t ms) {
  return ms > (uint64_t)(INT64_MAX / 1000000) ? INT64_MAX : (int64_t)ms * 1000000;
}

/* Opens the engines under data_dir: locks/ (RocksDB) first, since it knows the
 * last acknowledged generation, then kv/ (the OCDBT store). */
static int open_engines(srv *s) {
  char path[4096];
  snprintf(path, sizeof path, "%s/locks", s->data_dir);
  lk_options lo;
  lk_options_init(&lo);
  lo.path = path;
  lo.no_sync = s->o.lock_no_sync;
  int rc = lk_open(&lo, &s->lk);
  if (rc) return strata_err_wrap(rc, "lock manager in %s", path);
  if ((rc = wreg_open(s->lk, &s->wr))) return strata_err_wrap(rc, "writer registry in %s", path);
  uint64_t acked = lk_acked_generation(s->lk);
  st_options so = {.create = 1, .base = s->o.store_base, .min_generation = acked,
                   .no_commit_log = s->o.no_commit_log, .publish_interval_ms = s->o.publish_interval_ms,
                   .log_dir = s->o.log_dir, .keep_value_pages = s->o.keep_value_pages};
  char log_dir[4096];
  bs_url u = {.kind = BS_URL_DIR};
  if (s->o.data_url) {
    if ((rc = bs_url_parse(s->o.data_url, &u))) return rc;
    s->remote_store = u.kind == BS_URL_S3;
    char info[4400], host[256] = "?";
    gethostname(host, sizeof host - 1);
    snprintf(info, sizeof info, "host %s\npid %ld\ndata-dir %s\n", host, (long)getpid(), s->data_dir);
    bs_url_opts uo = {.s3_endpoint = s->o.s3_endpoint, .s3_region = s->o.s3_region, .owner = s->o.store_owner,
                      .owner_info = info, .take_over = s->o.take_over_store};
    if ((rc = bs_url_open(&u, &uo, &s->kv_files))) return strata_err_wrap(rc, "store at %s", s->o.data_url);
    so.base = s->kv_files;
    bs_url_format(&u, path, sizeof path);
    if (!so.log_dir) {
      snprintf(log_dir, sizeof log_dir, "%s/%s", s->data_dir, SRV_LOCAL_LOG_DIR);
      so.log_dir = log_dir;
    }
  } else {
    snprintf(path, sizeof path, "%s/kv", s->data_dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
      return strata_err(errno, "cannot create %s: %s", path, strerror(errno));
    snprintf(u.path, sizeof u.path, "%s", path);
  }
  if (so.log_dir && mkdir(so.log_dir, 0755) != 0 && errno != EEXIST)
    return strata_err(errno, "cannot create the commit log's directory %s: %s", so.log_dir, strerror(errno));
  if (s->o.test_slow_sync_us && !s->o.store_base) { /* test only: see srv_opts */
    if (!s->kv_files && (rc = bs_file_open(path, &s->kv_files))) return strata_err_wrap(rc, "store in %s", path);
    if ((rc = bs_fault_wrap(s->kv_files, &s->kv_slow))) return strata_err_wrap(rc, "store in %s", path);
    bs_fault_delay(s->kv_slow, BS_FAULT_FSYNC, s->o.test_slow_sync_us);
    so.base = s->kv_slow;
    srv_log(SRV_LOG_WARN, "event=test_slow_sync us=%u", s->o.test_slow_sync_us);
  }
  char *abs = u.kind == BS_URL_DIR ? realpath(u.path, NULL) : NULL;
  s->store_dir = abs ? abs : strdup(path);
  if (!s->store_dir) return strata_err(STRATA_ENOMEM, "out of memory");
  rc = st_open(path, &so, &s->db);
  if (rc) return strata_err_wrap(rc, "store in %s (last acknowledged generation %llu)", path,
                                 (unsigned long long)acked);
  if ((rc = srv_pool_start(16, &s->pool)) || (rc = srv_pool_start(8, &s->io))) return rc;
  return srv__lkans_start(s->lk, &s->lkans);
}

/* --- handlers that run on the io pool ----------------------------------------- */

typedef struct io_job {
  rpc_start_fn fn;
  rpc_call *call;
  const ProtobufCMessage *req;
  void *ctx;
} io_job;

static void io_run(void *p) {
  io_job *j = p;
  j->fn(j->call, j->req, j->ctx);
  free(j);
}

void srv__run_io(srv *s, rpc_start_fn fn, rpc_call *call, const ProtobufCMessage *req) {
  io_job *j = malloc(sizeof *j);
  if (!j) {
    rpc_call_fail(call, STRATA_ENOMEM, "out of memory");
    return;
  }
  *j = (io_job){fn, call, req, s};
  int rc = srv_pool_run(s->io, io_run, j);
  if (rc) {
    free(j);
    srv__fail(call, rc);
  }
}

/* --- the dispatch: every bound method's one way in ------------------------------ */

static void dispatch(rpc_call *call, const ProtobufCMessage *req, void *ctx) {
  srv *s = ctx;
  const srv_route *r = &s->routes[rpc_call_method(call)];
  if (r->flags & SRV_READ) srv__metrics_read(s);
  int rc = r->check ? r->check(req) : 0;
  if (rc) {
    srv__fail(call, rc);
    return;
  }
  if (r->flags & SRV_IO) srv__run_io(s, r->fn, call, req);
  else r->fn(call, req, s);
}

void srv__bind(srv *s, rpc_handler *h, const srv_route *routes, size_t n) {
  for (size_t i = 0; i < n; i++) {
    s->routes[routes[i].m] = routes[i];
    h[routes[i].m] = (rpc_handler){dispatch, s, NULL, !(routes[i].flags & SRV_WATCHES_CANCEL)};
  }
}

/* --- pins ------------------------------------------------------------------------- */

int srv__latest_generation(srv *s, uint64_t *gen) {
  st_snap *sn;
  int rc = st_snap_latest(s->db, &sn);
  if (rc) return rc;
  *gen = st_snap_info(sn).generation;
  st_snap_release(sn);
  return 0;
}

int srv__snap_at(srv *s, const char *field, const Strata__V1__VersionPin *pin, st_snap **out) {
  *out = NULL;
  if (!pin || pin->pin_case == STRATA__V1__VERSION_PIN__PIN__NOT_SET ||
      pin->pin_case == STRATA__V1__VERSION_PIN__PIN_LATEST)
    return st_snap_latest(s->db, out);
  uint64_t latest;
  int rc = srv__latest_generation(s, &latest);
  if (rc) return rc;
  if (pin->pin_case == STRATA__V1__VERSION_PIN__PIN_GENERATION) {
    /* Generation 0 is the empty store before the first commit: always
     * pinnable (an op created on an empty store starts there). No snapshot
     * holds it: NULL, which the readers take as empty, version {0, 0}. */
    if (pin->generation == 0) return 0;
    if (pin->generation > latest)
      return strata_err(STRATA_ERANGE,
                        "%s.generation: %llu is newer than the latest generation %llu", field,
                        (unsigned long long)pin->generation, (unsigned long long)latest);
    rc = st_snap_at_generation(s->db, pin->generation, out);
    if (rc == STRATA_ERANGE) return strata_err_wrap(rc, "%s.generation", field);
    if (rc == STRATA_ENOTFOUND)
      return strata_err(rc, "%s.generation: %llu is not in the store's history", field,
                        (unsigned long long)pin->generation);
    return rc;
  }
  rc = st_snap_at_time(s->db, (uint64_t)pin->commit_time_ns, out);
  if (rc == STRATA_ERANGE) return strata_err_wrap(rc, "%s.commit_time_ns", field);
  if (rc == STRATA_ENOTFOUND)
    return strata_err(rc, "%s.commit_time_ns: %lld is before the first commit", field,
                      (long long)pin->commit_time_ns);
  return rc;
}

/* The audit log and the call gate. A local server (fuzzing) has them only
 * when given an auth file; a networked one always (operator calls are audited
 * even without authentication). */
static int open_security(srv *s) {
  if (s->o.local && !s->o.auth_file) return 0;
  int rc = srv_audit_open(s->data_dir, &s->audit);
  if (!rc) rc = srv_auth_open(s->o.auth_file, s->audit, &s->auth);
  if (rc) return rc;
  srv_jbuf *b = malloc(sizeof *b);
  if (!b) return strata_err(STRATA_ENOMEM, "out of memory");
  srv_jb_begin(b, "server_start");
  srv_jb_str(b, "listen", s->listen);
  srv_jb_bool(b, "tls", s->o.tls_cert != NULL);
  srv_jb_bool(b, "client_certificates", s->o.tls_client_ca != NULL);
  srv_jb_str(b, "auth_file", s->o.auth_file ? s->o.auth_file : "");
  rc = srv_audit_append(s->audit, b);
  free(b);
  return rc;
}

int srv_reload_auth(srv *s) {
  if (!s->auth) return strata_err(STRATA_EINVALID, "this server has no call gate");
  return srv_auth_reload(s->auth);
}

static void srv_free(srv *s) {
  srv__metrics_stop(s); /* its thread reads the engines */
  srv__gc_destroy(s); /* stops the thread: it uses the engines */
  srv__retention_destroy(s);
  srv_pool_stop(s->pool);
  srv_pool_stop(s->io);
  srv__lkans_stop(s->lkans); /* after the pools: nothing queues any more */
  struct timespec t0, t1, t2;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (s->db) st_close(s->db); /* after the calls: every acknowledged commit is durable */
  clock_gettime(CLOCK_MONOTONIC, &t1);
  bs_destroy(s->kv_slow);
  bs_destroy(s->kv_files);
  wreg_close(s->wr);
  if (s->lk) lk_close(s->lk);
  clock_gettime(CLOCK_MONOTONIC, &t2);
  /* What a stop spends where (the store publishes its last batch; RocksDB
   * may flush): server/README.md "Shutdown". */
  srv_log(SRV_LOG_INFO, "event=engines_closed store_ms=%lld locks_ms=%lld",
          (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000),
          (long long)((t2.tv_sec - t1.tv_sec) * 1000 + (t2.tv_nsec - t1.tv_nsec) / 1000000));
  srv_auth_close(s->auth);
  srv_audit_close(s->audit);
  free(s->store_dir);
  strata_mutex_destroy(&s->wmu);
  free(s->watchers);
  free(s->watchpos);
  if (s->lock_fd >= 0) close(s->lock_fd); /* releases the flock */
  free(s->data_dir);
  free(s->listen);
  free(s);
}

int srv_open(const srv_opts *o, srv **out) {
  *out = NULL;
  srv *s = calloc(1, sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "out of memory");
  s->o = *o;
  s->lock_fd = -1;
  strata_mutex_init(&s->wmu);
  srv__gc_init(s);
  srv__retention_init(s);
  s->data_dir = strdup(o->data_dir ? o->data_dir : SRV_DEFAULT_DATA_DIR);
  s->listen = strdup(o->listen ? o->listen : SRV_DEFAULT_LISTEN);
  if (!s->data_dir || !s->listen) {
    srv_free(s);
    return strata_err(STRATA_ENOMEM, "out of memory");
  }
  s->o.data_dir = s->data_dir;
  s->o.listen = s->listen;
  if (s->o.grace_ms < 0) s->o.grace_ms = SRV_DEFAULT_GRACE_MS; /* 0 is a real choice */
  int rc = lock_data_dir(s);
  if (!rc) rc = open_security(s);
  if (!rc) rc = open_engines(s);
  if (!rc) rc = srv__retention_start(s);
  if (!rc) rc = srv__gc_start(s);
  if (!rc) rc = srv__metrics_start(s);
  if (rc) {
    srv_free(s);
    return rc;
  }

  rpc_server_opts ro = {
      .listen = s->listen,
      .threads = o->threads > 0 ? o->threads : poller_threads(s),
      .max_message_bytes = o->max_message_bytes,
      .log = srv_log_line,
      .log_level = srv_log_level(),
      .tls_cert = o->tls_cert,
      .tls_key = o->tls_key,
      .tls_client_ca = o->tls_client_ca,
      .gate = s->auth ? srv_auth_gate : NULL,
      .gate_ctx = s->auth,
  };
  srv__health_bind(s, ro.handlers);
  srv__admin_bind(s, ro.handlers);
  srv__kv_bind(s, ro.handlers);
  srv__locks_bind(s, ro.handlers);
  srv__ops_bind(s, ro.handlers);
  srv__coord_bind(s, ro.handlers);
  srv__watch_bind(s, ro.handlers);
  rc = o->local ? rpc_server_start_local(&ro, &s->rpc) : rpc_server_start(&ro, &s->rpc);
  if (rc) {
    srv_free(s);
    return rc;
  }
  uint64_t gen = 0;
  srv__latest_generation(s, &gen);
  srv_log(SRV_LOG_INFO, "event=listening addr=%s port=%d data_dir=%s store=%s log_dir=%s generation=%llu",
          s->listen, rpc_server_port(s->rpc), s->data_dir, s->store_dir,
          s->o.log_dir ? s->o.log_dir : s->o.data_url ? SRV_LOCAL_LOG_DIR : "kv", (unsigned long long)gen);
  *out = s;
  return 0;
}

int srv_port(const srv *s) { return rpc_server_port(s->rpc); }

void srv_call_local(srv *s, rpc_method_id m, const void *req, size_t n, int64_t timeout_ms,
                    rpc_local_result *res) {
  rpc_server_call_local(s->rpc, m, req, n, timeout_ms, res);
}

void srv_close(srv *s) {
  if (!s) return;
  /* Waiting acquires return STRATA_ESHUTDOWN at once instead of holding the drain. */
  lk_shutdown(s->lk);
  srv__gc_stop(s); /* a run in progress finishes first */
  srv__retention_stop(s);
  srv__metrics_stop(s);
  /* Calls next: every handler has answered before the engines go away. */
  rpc_server_stop(s->rpc, s->o.grace_ms);
  srv_log(SRV_LOG_INFO, "event=stopped data_dir=%s", s->data_dir);
  srv_free(s);
}
