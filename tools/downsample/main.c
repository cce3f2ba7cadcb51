/*
 * strata-downsample: keeps the coarser scales of a precomputed volume stored in
 * Strata in step with its mip 0 (tools/downsample/README.md, docs/edit-workers.md).
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "tools/downsample/ds.h"

static void usage(FILE *f) {
  fputs("usage: strata-downsample --prefix PREFIX/ (--follow | --until G | --region X0,Y0,Z0,X1,Y1,Z1 | --region all)\n"
        "                         [--name NAME] [--addr HOST:PORT] [--user U] [--ttl-ms 10000]\n"
        "                         [--wait-ms 60000] [--store DIR|s3://BUCKET/PREFIX] [--quiet]\n"
        "Keeps every coarser scale of the volume under PREFIX equal to the mode downsampling of\n"
        "its mip 0. --follow: follows Kv.Watch from the worker's checkpoint, for ever. --until G:\n"
        "catches up to generation G (at least) and exits. --region: recomputes the blocks\n"
        "overlapping the box (mip-0 voxels, voxel_offset included, upper bounds exclusive) from\n"
        "mip 0 at the latest generation; `all` is the whole volume and also sets the checkpoint.\n"
        "--name: the worker's checkpoint (PREFIX.downsample/checkpoint/NAME), default \"default\".\n"
        "Progress: key=value lines on stderr. Exit: 0 done; 1 failed (the message says what to run;\n"
        "restarting resumes from the checkpoint); 2 usage or a volume it refuses.\n"
        "--store: where this machine sees the store's OCDBT files (the server's --data-url, or its\n"
        "DATA_DIR/kv): mip 0 at a published generation is read from them directly, not through the\n"
        "server; anything else (and a generation not yet published) goes through the server.\n"
        "--bench-in-process DIR (make bench only): the same pyramid computed from a volume\n"
        "directory without a server; prints {\"mip0_bytes\", \"seconds\"}.\n",
        f);
}

static int parse_box(const char *s, int64_t lo[3], int64_t hi[3]) {
  long long v[6];
  int used = 0;
  if (sscanf(s, "%lld,%lld,%lld,%lld,%lld,%lld%n", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &used) != 6 ||
      s[used])
    return -1;
  for (int d = 0; d < 3; d++) {
    lo[d] = v[d];
    hi[d] = v[d + 3];
    if (hi[d] <= lo[d]) return -1;
  }
  return 0;
}

/* SIGTERM / SIGINT: a thread takes them (blocked everywhere else) and asks the
 * worker to stop, so it releases its lock and exits 0. */
static void *signal_main(void *arg) {
  sigset_t *set = arg;
  int sig;
  if (sigwait(set, &sig) == 0) ds_request_stop();
  return NULL;
}

/* glibc malloc tuned for the read path (before any thread starts). */
static void heap_setup(void) {
  /* The read path allocates per call: gRPC's received slices, the response flattened
   * into one buffer, protobuf-c's copy of every 256 KiB value. glibc serves blocks
   * above its mmap threshold (128 KiB at start, raised only as mmapped blocks are
   * freed) with fresh mmaps, and gives each new thread (a block's read-ahead) an arena
   * that another thread may have left small, so each block's 16 MiB was page-faulted
   * in again: 10% of the worker's CPU and about a quarter of a --region run's wall
   * time (docs/benchmarks.md, "The downsample worker"). One heap, kept. Applies to
   * --bench-in-process too, so the anchor runs under the same malloc. */
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
  mallopt(M_ARENA_MAX, 1);
}

/* --bench-in-process DIR: make bench's anchor; prints the JSON line. Exit code. */
static int bench_in_process(const char *dir) {
  uint64_t bytes = 0;
  double sec = 0;
  char e[1024];
  int r = ds_in_process(dir, &bytes, &sec, e, sizeof e);
  if (r) {
    fprintf(stderr, "strata-downsample: %s\n", e);
    return r;
  }
  printf("{\"mip0_bytes\": %" PRIu64 ", \"seconds\": %.6f}\n", bytes, sec);
  return 0;
}

/* Parses the options into o and *addr: -1 to run the worker, or the exit code to
 * return now (--help, a usage error, --bench-in-process). */
static int parse_opts(int argc, char **argv, ds_opts *o, const char **addr) {
  static const struct option lo[] = {
      {"prefix", 1, 0, 'p'}, {"follow", 0, 0, 'f'}, {"until", 1, 0, 'u'}, {"region", 1, 0, 'r'},
      {"name", 1, 0, 'n'},   {"addr", 1, 0, 'a'},   {"user", 1, 0, 'U'},  {"ttl-ms", 1, 0, 't'},
      {"wait-ms", 1, 0, 'w'}, {"quiet", 0, 0, 'q'}, {"help", 0, 0, 'h'}, {"store", 1, 0, 'S'},
      {"bench-in-process", 1, 0, 'B'}, {0, 0, 0, 0}};
  int ch, modes = 0;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    char *end = NULL;
    switch (ch) {
      case 'p': o->prefix = optarg; break;
      case 'f': o->follow = 1; modes++; break;
      case 'u':
        errno = 0;
        o->until = strtoull(optarg, &end, 10);
        if (errno || *end || !o->until) {
          fprintf(stderr, "strata-downsample: --until %s: expected a generation >= 1\n", optarg);
          return 2;
        }
        modes++;
        break;
      case 'r':
        o->region = 1;
        modes++;
        if (!strcmp(optarg, "all")) o->region_all = 1;
        else if (parse_box(optarg, o->rlo, o->rhi)) {
          fprintf(stderr, "strata-downsample: --region %s: expected X0,Y0,Z0,X1,Y1,Z1 with X1 > X0 ... or all\n", optarg);
          return 2;
        }
        break;
      case 'n': o->name = optarg; break;
      case 'a': *addr = optarg; break;
      case 'U': o->user = optarg; break;
      case 't': o->ttl_ms = strtoll(optarg, &end, 10); if (*end || o->ttl_ms < 30) { fprintf(stderr, "strata-downsample: --ttl-ms: at least 30\n"); return 2; } break;
      case 'w': o->wait_ms = strtoll(optarg, &end, 10); if (*end || o->wait_ms < 0) { fprintf(stderr, "strata-downsample: --wait-ms: expected ms >= 0\n"); return 2; } break;
      case 'q': o->log = NULL; break;
      case 'S': o->store = optarg; break;
      case 'B': return bench_in_process(optarg); /* make bench's anchor only */
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (!o->prefix || !*o->prefix || modes != 1 || optind != argc) {
    usage(stderr);
    return 2;
  }
  size_t nl = strlen(o->name);
  if (!nl || nl > DS_MAX_NAME || strchr(o->name, '/')) {
    fprintf(stderr, "strata-downsample: --name: 1..%d characters, no '/'\n", DS_MAX_NAME);
    return 2;
  }
  return -1;
}

/* SIGTERM and SIGINT go to signal_main's thread only. */
static void signal_setup(void) {
  static sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
  pthread_t sth;
  if (pthread_create(&sth, NULL, signal_main, &set) == 0) pthread_detach(sth);
}

int main(int argc, char **argv) {
  heap_setup();
  ds_opts o = {.name = "default", .user = "downsample", .ttl_ms = 10000, .wait_ms = 60000, .log = stderr};
  const char *addr = NULL;
  int rc = parse_opts(argc, argv, &o, &addr);
  if (rc >= 0) return rc;
  signal_setup();
  rpc_client_opts co = {.addr = addr, .timeout_ms = 120000};
  rpc_client *c = NULL;
  rc = rpc_client_open(&co, &c);
  if (rc) {
    fprintf(stderr, "strata-downsample: %s\n", strata_errmsg());
    return 1;
  }
  char err[2048] = "";
  rc = ds_run(c, &o, err, sizeof err);
  if (rc) fprintf(stderr, "strata-downsample: %s\n", err);
  rpc_client_close(c);
  return rc;
}
