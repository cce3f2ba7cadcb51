/*
 * strata-server: parses flags, sets up the log, blocks SIGTERM/SIGINT/SIGHUP in
 * every thread and waits for them in a signal thread (the stopper), whose word
 * on SIGTERM/SIGINT makes main drain (srv_close) and exit 0. Before anything
 * is created it checks that the listen address is free and that the data
 * directory is one it may use (server/datadir.h), so a refused start leaves
 * nothing behind. See server/README.md.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/mutex.h"
#include "common/version.h"
#include "rpc/tls.h"
#include "server/auth.h"
#include "server/datadir.h"
#include "server/exposure.h"
#include "server/log.h"
#include "server/srv.h"
#include "storage/base_url.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: strata-server [--listen HOST:PORT] [--data-dir DIR] [--threads N]\n"
          "                     [--data-url DIR|s3://BUCKET/PREFIX] [--log-dir DIR]\n"
          "                     [--s3-endpoint URL] [--s3-region REGION] [--take-over-store]\n"
          "                     [--max-message-bytes N] [--log-level error|warn|info|debug]\n"
          "                     [--grace-ms N] [--stop-timeout-ms N] [--no-commit-log]\n"
          "                     [--publish-interval-ms N] [--keep-value-pages]\n"
          "                     [--gc-interval SECONDS] [--gc-grace SECONDS]\n"
          "                     [--metrics-listen HOST:PORT]\n"
          "                     [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
          "                     [--auth-file FILE] [--insecure-listen] [--version]\n"
          "  --listen             address to serve gRPC on (default " SRV_DEFAULT_LISTEN
          "; port 0..65535,\n"
          "                       0 picks a free one)\n"
          "  --data-dir           data directory, created if missing (default " SRV_DEFAULT_DATA_DIR
          ")\n"
          "  --data-url           where the OCDBT files live: a directory (e.g. on a shared file\n"
          "                       system) or s3://BUCKET/PREFIX; the commit log and the lock\n"
          "                       table stay in --data-dir (default: data-dir/kv). Recorded in\n"
          "                       data-dir/STORE at the first start; later starts may omit it\n"
          "  --log-dir            the commit log's directory (default: data-dir/kv, or\n"
          "                       data-dir/kv-log with --data-url); recorded like --data-url\n"
          "  --s3-endpoint        s3:// only: the service's URL (default $AWS_ENDPOINT_URL_S3,\n"
          "                       $AWS_ENDPOINT_URL, else AWS); credentials from\n"
          "                       $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY, $AWS_SESSION_TOKEN\n"
          "  --s3-region          s3:// only: the signing region (default $AWS_REGION,\n"
          "                       $AWS_DEFAULT_REGION, else us-east-1)\n"
          "  --take-over-store    s3:// only: take the store's writer lock (strata.lock) from\n"
          "                       another server that is gone for good (a lost machine)\n"
          "  --threads            gRPC completion-queue (poller) threads (default: half the\n"
          "                       CPUs, 1 to 8; at least 4 with an s3:// store)\n"
          "  --max-message-bytes  largest message received or sent (default 67108864 = 64 MiB)\n"
          "  --log-level          stderr log level (default info)\n"
          "  --grace-ms           on SIGTERM/SIGINT, time to let calls finish before cancelling\n"
          "                       them; 0 cancels at once (default 5000)\n"
          "  --stop-timeout-ms    after the grace, how long the rest of a stop may take before\n"
          "                       the server exits at once with status 1 (default 30000)\n"
          "  --no-commit-log      make each commit durable by writing and syncing its own OCDBT\n"
          "                       data file and manifest, with no commit log (default: one sync\n"
          "                       of a commit log in data-dir/kv/log, the OCDBT files published\n"
          "                       in batches shortly after; --commit-log asks for the default)\n"
          "  --publish-interval-ms with the commit log, how long a batch of commits collects\n"
          "                       before its OCDBT files are published (1..600000, default 25)\n"
          "  --keep-value-pages   with the commit log, keep values logged by reference (the large\n"
          "                       ones) in the OS page cache once durable (default: dropped\n"
          "                       from it; read back from the disk)\n"
          "  --tls-cert, --tls-key serve TLS with this PEM certificate (chain) and its key\n"
          "  --tls-client-ca      mutual TLS: require a client certificate signed by this CA;\n"
          "                       its subject names the caller\n"
          "  --auth-file          bearer tokens and their roles, one 'NAME ROLE SHA256' a line\n"
          "                       (stratactl auth hash); re-read on SIGHUP\n"
          "  --insecure-listen    serve a non-loopback address with neither TLS nor tokens\n"
          "                       (refused without it)\n"
          "                       (docs/security.md; operator and privileged calls are\n"
          "                       recorded in DIR/audit.log)\n"
          "  --gc-interval        seconds between background GC runs, which remove the files of\n"
          "                       coordinator-mode writers whose lease ended that no version\n"
          "                       references; 0 = only on demand (stratactl gc) (default 300)\n"
          "  --metrics-listen     HOST:PORT: serve Prometheus metrics at /metrics (off by default;\n"
          "                       e.g. 127.0.0.1:9420; docs/operations.md \"Metrics\")\n"
          "  --gc-grace           seconds Strata's own files stay after no retained version\n"
          "                       references them (readers of older manifests) (default 600)\n"
          "  --version            print the version, git commit and build date\n");
}

static int parse_u64(const char *flag, const char *s, unsigned long long lo, unsigned long long hi,
                     unsigned long long *out) {
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (!*s || *end || *s == '-' || v < lo || v > hi) {
    fprintf(stderr, "strata-server: %s: expected an integer in [%llu, %llu], got \"%s\"\n", flag,
            lo, hi, s);
    return -1;
  }
  *out = v;
  return 0;
}

/* The TLS files and the auth file load, and the listen address is one the
 * server may serve with the protection it has (server/exposure.h). Prints the
 * --insecure-listen warning. Returns 0, or -1 with one line in why. */
static int check_security(const srv_opts *o, int insecure_listen, char *why, size_t cap) {
  rpc_tls t;
  int rc = rpc_tls_load(&t, o->tls_client_ca, "--tls-client-ca", o->tls_cert, "--tls-cert",
                        o->tls_key, "--tls-key");
  rpc_tls_free(&t);
  if (!rc && o->tls_client_ca && !o->tls_cert)
    rc = strata_err(STRATA_EINVALID, "--tls-client-ca needs --tls-cert and --tls-key");
  if (!rc && o->auth_file) {
    srv_tokens tk;
    if (!(rc = srv_tokens_load(o->auth_file, &tk))) {
      if (tk.n == 0)
        srv_log(SRV_LOG_WARN, "event=auth_file_empty file=%s msg=\"every call will be refused "
                "UNAUTHENTICATED\"", o->auth_file);
      srv_tokens_free(&tk);
    }
  }
  if (rc) {
    snprintf(why, cap, "%s", strata_errmsg());
    return -1;
  }
  int e = srv_check_exposure(o->listen, o->tls_cert || o->auth_file, insecure_listen, why, cap);
  if (e < 0) return -1;
  if (e > 0) {
    char q[1100];
    srv_log(SRV_LOG_WARN, "event=insecure_listen msg=%s", srv_log_quote(q, sizeof q, why));
  }
  if (o->tls_cert && !o->tls_client_ca && !o->auth_file && !srv_listen_is_loopback(o->listen))
    srv_log(SRV_LOG_WARN, "event=no_caller_check msg=\"TLS without --auth-file or "
            "--tls-client-ca: every client that reaches %s may call everything\"", o->listen);
  return 0;
}

/* The signal thread: SIGHUP re-reads the auth file (connections and calls
 * are left alone); SIGTERM or SIGINT starts the drain, and bounds the stop. A signal before the server is ready ends the process at once (nothing
 * was acknowledged yet; an interrupted recovery is redone at the next start);
 * a stop still running --stop-timeout-ms after the grace (a disk that stopped
 * answering, a commit that cannot finish) ends it too. Both exit with 1;
 * everything acknowledged is durable, as after kill -9. */
static struct {
  strata_mutex mu;
  pthread_cond_t cv;
  sigset_t set;
  int grace_ms, hard_ms, sig, ready, done;
  srv *s; /* once ready */
} stopper = {.mu = STRATA_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .hard_ms = SRV_STOP_HARD_MS};

static void *stopper_main(void *arg) {
  (void)arg;
  int sig = 0;
  for (;;) {
    if (sigwait(&stopper.set, &sig) != 0) continue;
    if (sig != SIGHUP) break;
    strata_mutex_lock(&stopper.mu);
    srv *s = stopper.s;
    strata_mutex_unlock(&stopper.mu);
    srv_log(SRV_LOG_INFO, "event=signal signal=SIGHUP action=%s", s ? "reload_auth" : "ignored_not_ready");
    if (s) srv_reload_auth(s); /* main closes s only after this thread's word */
  }
  const char *name = sig == SIGTERM ? "SIGTERM" : "SIGINT";
  strata_mutex_lock(&stopper.mu);
  if (!stopper.ready) {
    srv_log(SRV_LOG_WARN, "event=signal signal=%s action=exit reason=not_ready", name);
    srv_log(SRV_LOG_INFO, "event=exit status=1");
    _exit(1);
  }
  srv_log(SRV_LOG_INFO, "event=signal signal=%s action=drain", name);
  stopper.sig = sig;
  pthread_cond_broadcast(&stopper.cv);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  uint64_t ms = (uint64_t)(stopper.grace_ms > 0 ? stopper.grace_ms : 0) + (uint64_t)stopper.hard_ms;
  until.tv_sec += (time_t)(ms / 1000);
  until.tv_nsec += (long)(ms % 1000) * 1000000;
  if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
  while (!stopper.done)
    if (strata_cond_timedwait(&stopper.cv, &stopper.mu, &until) == ETIMEDOUT) break;
  if (!stopper.done) {
    srv_log(SRV_LOG_ERROR, "event=exit status=1 reason=stop_deadline grace_ms=%d stop_timeout_ms=%d",
            stopper.grace_ms, stopper.hard_ms);
    _exit(1);
  }
  strata_mutex_unlock(&stopper.mu);
  return NULL;
}

static const struct option longopts[] = {{"listen", required_argument, 0, 'l'},
                                         {"data-dir", required_argument, 0, 'd'},
                                         {"data-url", required_argument, 0, 'U'},
                                         {"log-dir", required_argument, 0, 'L'},
                                         {"s3-endpoint", required_argument, 0, 'E'},
                                         {"s3-region", required_argument, 0, 'N'},
                                         {"take-over-store", no_argument, 0, 'O'},
                                         {"threads", required_argument, 0, 't'},
                                         {"max-message-bytes", required_argument, 0, 'm'},
                                         {"log-level", required_argument, 0, 'v'},
                                         {"grace-ms", required_argument, 0, 'g'},
                                         {"commit-log", no_argument, 0, 'c'},
                                         {"no-commit-log", no_argument, 0, 'C'},
                                         {"publish-interval-ms", required_argument, 0, 'P'},
                                         {"keep-value-pages", no_argument, 0, 'k'},
                                         {"stop-timeout-ms", required_argument, 0, 'S'},
                                         {"gc-interval", required_argument, 0, 'G'},
                                         {"gc-grace", required_argument, 0, 'R'},
                                         {"metrics-listen", required_argument, 0, 'M'},
                                         {"help", no_argument, 0, 'h'},
                                         {"version", no_argument, 0, 'V'},
                                         {"tls-cert", required_argument, 0, 'T'},
                                         {"tls-key", required_argument, 0, 'K'},
                                         {"tls-client-ca", required_argument, 0, 'A'},
                                         {"auth-file", required_argument, 0, 'F'},
                                         {"insecure-listen", no_argument, 0, 'I'},
                                         {0, 0, 0, 0}};

/* The one line for an option getopt_long refused (ch is ':' when its value is
 * missing), then where to look; returns 2, the exit status. */
static int bad_option(int ch, char **argv) {
  const char *w = argv[optind - 1];
  size_t n = strcspn(w, "=");
  int known = 0;
  for (const struct option *lo = longopts; lo->name && w[0] == '-' && w[1] == '-'; lo++)
    known |= strlen(lo->name) == n - 2 && strncmp(lo->name, w + 2, n - 2) == 0;
  if (ch == ':') fprintf(stderr, "strata-server: %.*s needs a value\n", (int)n, w);
  else if (known) fprintf(stderr, "strata-server: %.*s takes no value\n", (int)n, w);
  else if (w[1] != '-') fprintf(stderr, "strata-server: unknown option -%c\n", optopt);
  else fprintf(stderr, "strata-server: unknown option %.*s\n", (int)n, w);
  fprintf(stderr, "Run 'strata-server --help' for the options.\n");
  return 2;
}

#define GO_ON (-1) /* parse_flags: start the server */

/* Parses the command line into o, *level and *insecure_listen (and
 * --stop-timeout-ms into the stopper), then the test-only environment knob.
 * Returns GO_ON, or the status to exit with at once: 0 after --help or
 * --version, 2 after one line on stderr naming what is wrong. */
static int parse_flags(int argc, char **argv, srv_opts *o, int *level, int *insecure_listen) {
  unsigned long long v;
  int ch;
  opterr = 0; /* our one line (bad_option), not getopt's and then the whole usage */
  while ((ch = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'l': o->listen = optarg; break;
    case 'd': o->data_dir = optarg; break;
    case 'U': o->data_url = optarg; break;
    case 'L': o->log_dir = optarg; break;
    case 'E': o->s3_endpoint = optarg; break;
    case 'N': o->s3_region = optarg; break;
    case 'O': o->take_over_store = 1; break;
    case 't':
      if (parse_u64("--threads", optarg, 1, 256, &v)) return 2;
      o->threads = (int)v;
      break;
    case 'm':
      if (parse_u64("--max-message-bytes", optarg, 1024, 2147483647ull, &v)) return 2;
      o->max_message_bytes = (size_t)v;
      break;
    case 'v':
      if ((*level = srv_log_parse_level(optarg)) < 0) {
        fprintf(stderr,
                "strata-server: --log-level: expected error, warn, info or debug, got \"%s\"\n",
                optarg);
        return 2;
      }
      break;
    case 'g':
      if (parse_u64("--grace-ms", optarg, 0, 3600000, &v)) return 2;
      o->grace_ms = (int)v;
      break;
    case 'c': o->no_commit_log = 0; break;
    case 'C': o->no_commit_log = 1; break;
    case 'S':
      if (parse_u64("--stop-timeout-ms", optarg, 0, 3600000, &v)) return 2;
      stopper.hard_ms = (int)v;
      break;
    case 'P':
      if (parse_u64("--publish-interval-ms", optarg, 1, 600000, &v)) return 2;
      o->publish_interval_ms = (unsigned)v;
      break;
    case 'k': o->keep_value_pages = 1; break;
    case 'T': o->tls_cert = optarg; break;
    case 'K': o->tls_key = optarg; break;
    case 'A': o->tls_client_ca = optarg; break;
    case 'F': o->auth_file = optarg; break;
    case 'I': *insecure_listen = 1; break;
    case 'G':
      if (parse_u64("--gc-interval", optarg, 0, 604800, &v)) return 2;
      o->gc_interval_ms = v ? (int64_t)v * 1000 : -1;
      break;
    case 'M': o->metrics_listen = optarg; break;
    case 'R':
      if (parse_u64("--gc-grace", optarg, 0, 604800, &v)) return 2;
      o->gc_grace_ms = v ? (int64_t)v * 1000 : -1;
      break;
    case 'h': usage(stdout); return 0;
    case 'V':
      printf("strata-server %s (commit %s, built %s)\n", strata_version(), strata_git_commit(),
             strata_build_date());
      return 0;
    default: return bad_option(ch, argv);
    }
  }
  /* Test only, deliberately not a flag (server/README.md, "Test-only knobs"). */
  const char *slow = getenv("STRATA_TEST_SLOW_SYNC_US");
  if (slow && *slow) {
    if (parse_u64("STRATA_TEST_SLOW_SYNC_US", slow, 0, 10000000, &v)) return 2;
    o->test_slow_sync_us = (unsigned)v;
  }
  if (optind < argc) {
    fprintf(stderr, "strata-server: unexpected argument \"%s\"\n", argv[optind]);
    fprintf(stderr, "Run 'strata-server --help' for the options.\n");
    return 2;
  }
  return GO_ON;
}

/* A store location named for the first time must work before it is recorded
 * (a mistyped one would otherwise stick): its base store opens (a directory is
 * created, its parent must exist; a bucket must answer) and the log's
 * directory can be created. */
static int check_places(const srv_opts *o, const srv_store_loc *loc, char *why, size_t cap) {
  if (!loc->fresh) return 0;
  if (loc->data_url[0]) {
    bs_url u;
    bs_store *b = NULL;
    bs_url_opts uo = {.s3_endpoint = o->s3_endpoint, .s3_region = o->s3_region};
    if (bs_url_parse(loc->data_url, &u) || bs_url_open(&u, &uo, &b)) {
      snprintf(why, cap, "--data-url: %.900s", strata_errmsg());
      return -1;
    }
    bs_destroy(b);
  }
  if (loc->log_dir[0] && mkdir(loc->log_dir, 0755) != 0 && errno != EEXIST) {
    snprintf(why, cap, "--log-dir %.600s: cannot create it: %s", loc->log_dir, strerror(errno));
    return -1;
  }
  return 0;
}

/* Refusals that must leave nothing behind, before gRPC or the engines start
 * (and so before either can log): exactly one line on stderr. Then the format
 * marker and the store's recorded location (o->data_url, o->log_dir become
 * the recorded ones, kept in *loc). Returns 0, or 1 (the exit status). */
static int check_start(srv_opts *o, int insecure_listen, srv_store_loc *loc) {
  char why[1024];
  if (srv_check_listen("--listen", o->listen, why, sizeof why) ||
      (o->metrics_listen && srv_check_metrics_listen(o->metrics_listen, why, sizeof why)) ||
      check_security(o, insecure_listen, why, sizeof why) ||
      srv_check_data_dir(o->data_dir, why, sizeof why) ||
      srv_mark_data_dir(o->data_dir, why, sizeof why) ||
      srv_resolve_store(o->data_dir, o->data_url, o->log_dir, o->s3_endpoint, o->s3_region, loc, why,
                        sizeof why) ||
      check_places(o, loc, why, sizeof why) || srv_record_store(o->data_dir, loc, why, sizeof why)) {
    fprintf(stderr, "strata-server: %s\n", why);
    return 1;
  }
  o->data_url = loc->data_url[0] ? loc->data_url : NULL;
  o->log_dir = loc->log_dir[0] ? loc->log_dir : NULL;
  o->store_owner = loc->owner[0] ? loc->owner : NULL;
  if (loc->s3_endpoint[0]) o->s3_endpoint = loc->s3_endpoint;
  if (loc->s3_region[0]) o->s3_region = loc->s3_region;
  return 0;
}

/* Blocks SIGTERM, SIGINT and SIGHUP, ignores SIGPIPE and starts the stopper.
 * Called before any other thread exists: every thread created from here
 * inherits the mask, so only the stopper's sigwait sees them. Returns 0, or 1
 * (the exit status) with a line on stderr. */
static int start_stopper(int grace_ms) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);
  stopper.set = set;
  stopper.grace_ms = grace_ms;
  pthread_t stop_thread;
  if (pthread_create(&stop_thread, NULL, stopper_main, NULL) != 0) {
    fprintf(stderr, "strata-server: cannot start the signal thread\n");
    return 1;
  }
  return 0;
}

/* Starts the server, tells the stopper it is ready, waits for the stopper's
 * word (SIGTERM or SIGINT), drains and closes it (srv_close), and tells the
 * stopper the stop is done. Returns the exit status: 0, or 1 when the server
 * did not start (logged and on stderr). */
static int serve_until_signal(const srv_opts *o) {
  srv *s;
  int rc = srv_open(o, &s);
  if (rc) {
    char q[1024];
    srv_log(SRV_LOG_ERROR, "event=start_failed error=%s msg=%s", strata_errname(rc),
            srv_log_quote(q, sizeof q, strata_errmsg()));
    fprintf(stderr, "strata-server: %s\n", strata_errmsg());
    return 1;
  }
  srv_log(SRV_LOG_INFO, "event=ready pid=%ld port=%d", (long)getpid(), srv_port(s));
  strata_mutex_lock(&stopper.mu);
  stopper.ready = 1;
  stopper.s = s;
  while (!stopper.sig) strata_cond_wait(&stopper.cv, &stopper.mu);
  strata_mutex_unlock(&stopper.mu);
  srv_close(s);
  strata_mutex_lock(&stopper.mu);
  stopper.done = 1;
  pthread_cond_broadcast(&stopper.cv);
  strata_mutex_unlock(&stopper.mu);
  srv_log(SRV_LOG_INFO, "event=exit status=0");
  return 0;
}

/* The order is server/README.md's "Threads": flags, the log, the refusals
 * that leave nothing behind, the signal mask before any thread, then serve. */
/* glibc malloc for large messages (before any thread starts). A call's buffers of a
 * MiB or more (a 2.3 MB commit received, a BatchGet reply packed, the 256 KiB values
 * read for it) came from fresh mmaps, above glibc's mmap threshold (128 KiB at start,
 * raised only as such blocks are freed), and were page-faulted in again on every call;
 * on this project's VMs a first touch costs about 2 ms a MiB (docs/benchmarks.md "Large
 * values leave the page cache"). Blocks up to 32 MiB come from the heaps instead, and a
 * heap keeps up to 64 MiB free at its top for the next call. */
static void heap_setup(void) {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
}

int main(int argc, char **argv) {
  heap_setup();
  srv_opts o = {.listen = SRV_DEFAULT_LISTEN,
                .data_dir = SRV_DEFAULT_DATA_DIR,
                .threads = 0,
                .grace_ms = SRV_DEFAULT_GRACE_MS};
  int level = SRV_LOG_INFO;
  int insecure_listen = 0;
  int rc = parse_flags(argc, argv, &o, &level, &insecure_listen);
  if (rc != GO_ON) return rc;
  srv_log_init(level);
  static srv_store_loc loc; /* 8 KiB: not on main's stack; o points into it */
  if (check_start(&o, insecure_listen, &loc)) return 1;
  if (start_stopper(o.grace_ms)) return 1;
  return serve_until_signal(&o);
}
