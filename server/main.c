/*
 * strata-server: parses flags, sets up the log, blocks SIGTERM/SIGINT in every
 * thread and waits for them in main, where a signal starts the drain
 * (srv_close) and the process exits 0. Before anything is created it checks
 * that the listen address is free and that the data directory is one it may
 * use (server/datadir.h), so a refused start leaves nothing behind. See
 * server/README.md.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include "common/err.h"
#include "common/version.h"
#include "server/datadir.h"
#include "server/log.h"
#include "server/srv.h"

static void usage(FILE *f) {
  fprintf(f,
          "usage: strata-server [--listen HOST:PORT] [--data-dir DIR] [--threads N]\n"
          "                     [--max-message-bytes N] [--log-level error|warn|info|debug]\n"
          "                     [--grace-ms N] [--no-commit-log] [--gc-interval SECONDS]\n"
          "                     [--version]\n"
          "  --listen             address to serve gRPC on (default " SRV_DEFAULT_LISTEN
          ")\n"
          "  --data-dir           data directory, created if missing (default " SRV_DEFAULT_DATA_DIR
          ")\n"
          "  --threads            gRPC completion-queue threads (default 2)\n"
          "  --max-message-bytes  largest message received or sent (default 67108864 = 64 MiB)\n"
          "  --log-level          stderr log level (default info)\n"
          "  --grace-ms           on SIGTERM/SIGINT, time to let calls finish before cancelling\n"
          "                       them; 0 cancels at once (default 5000)\n"
          "  --no-commit-log      make each commit durable by writing and syncing its own OCDBT\n"
          "                       data file and manifest, with no commit log (default: one sync\n"
          "                       of a commit log in data-dir/kv/log, the OCDBT files published\n"
          "                       in batches shortly after; --commit-log asks for the default)\n"
          "  --gc-interval        seconds between background GC runs, which remove the files of\n"
          "                       coordinator-mode writers whose lease ended that no version\n"
          "                       references; 0 = only on demand (stratactl gc) (default 300)\n"
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

int main(int argc, char **argv) {
  static const struct option longopts[] = {{"listen", required_argument, 0, 'l'},
                                           {"data-dir", required_argument, 0, 'd'},
                                           {"threads", required_argument, 0, 't'},
                                           {"max-message-bytes", required_argument, 0, 'm'},
                                           {"log-level", required_argument, 0, 'v'},
                                           {"grace-ms", required_argument, 0, 'g'},
                                           {"commit-log", no_argument, 0, 'c'},
                                           {"no-commit-log", no_argument, 0, 'C'},
                                           {"gc-interval", required_argument, 0, 'G'},
                                           {"help", no_argument, 0, 'h'},
                                           {"version", no_argument, 0, 'V'},
                                           {0, 0, 0, 0}};
  srv_opts o = {.listen = SRV_DEFAULT_LISTEN,
                .data_dir = SRV_DEFAULT_DATA_DIR,
                .threads = 2,
                .grace_ms = SRV_DEFAULT_GRACE_MS};
  int level = SRV_LOG_INFO;
  unsigned long long v;
  int ch;
  while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
    switch (ch) {
    case 'l': o.listen = optarg; break;
    case 'd': o.data_dir = optarg; break;
    case 't':
      if (parse_u64("--threads", optarg, 1, 256, &v)) return 2;
      o.threads = (int)v;
      break;
    case 'm':
      if (parse_u64("--max-message-bytes", optarg, 1024, 2147483647ull, &v)) return 2;
      o.max_message_bytes = (size_t)v;
      break;
    case 'v':
      if ((level = srv_log_parse_level(optarg)) < 0) {
        fprintf(stderr,
                "strata-server: --log-level: expected error, warn, info or debug, got \"%s\"\n",
                optarg);
        return 2;
      }
      break;
    case 'g':
      if (parse_u64("--grace-ms", optarg, 0, 3600000, &v)) return 2;
      o.grace_ms = (int)v;
      break;
    case 'c': o.no_commit_log = 0; break;
    case 'C': o.no_commit_log = 1; break;
    case 'G':
      if (parse_u64("--gc-interval", optarg, 0, 604800, &v)) return 2;
      o.gc_interval_ms = v ? (int64_t)v * 1000 : -1;
      break;
    case 'h': usage(stdout); return 0;
    case 'V':
      printf("strata-server %s (commit %s, built %s)\n", strata_version(), strata_git_commit(),
             strata_build_date());
      return 0;
    default: usage(stderr); return 2;
    }
  }
  /* Test only, deliberately not a flag (server/README.md, "Test-only knobs"). */
  const char *slow = getenv("STRATA_TEST_SLOW_SYNC_US");
  if (slow && *slow) {
    if (parse_u64("STRATA_TEST_SLOW_SYNC_US", slow, 0, 10000000, &v)) return 2;
    o.test_slow_sync_us = (unsigned)v;
  }
  if (optind < argc) {
    fprintf(stderr, "strata-server: unexpected argument \"%s\"\n", argv[optind]);
    usage(stderr);
    return 2;
  }
  srv_log_init(level);

  /* Refusals that must leave nothing behind, before gRPC or the engines
   * start (and so before either can log): exactly one line on stderr. */
  char why[1024];
  if (srv_check_listen(o.listen, why, sizeof why) || srv_check_data_dir(o.data_dir, why, sizeof why) ||
      srv_mark_data_dir(o.data_dir, why, sizeof why)) {
    fprintf(stderr, "strata-server: %s\n", why);
    return 1;
  }

  /* Every thread created from here inherits the mask; only sigwait sees them. */
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  signal(SIGPIPE, SIG_IGN);

  srv *s;
  int rc = srv_open(&o, &s);
  if (rc) {
    char q[1024];
    srv_log(SRV_LOG_ERROR, "event=start_failed error=%s msg=%s", strata_errname(rc),
            srv_log_quote(q, sizeof q, strata_errmsg()));
    fprintf(stderr, "strata-server: %s\n", strata_errmsg());
    return 1;
  }
  srv_log(SRV_LOG_INFO, "event=ready pid=%ld port=%d", (long)getpid(), srv_port(s));
  int sig = 0;
  sigwait(&set, &sig);
  srv_log(SRV_LOG_INFO, "event=signal signal=%s action=drain",
          sig == SIGTERM ? "SIGTERM" : "SIGINT");
  srv_close(s);
  srv_log(SRV_LOG_INFO, "event=exit status=0");
  return 0;
}
