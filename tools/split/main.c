/*
 * strata-split: splits one supervoxel of a precomputed volume stored in Strata,
 * as an edit worker (tools/split/README.md, docs/edit-workers.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "tools/split/split.h"

static void usage(FILE *f) {
  fputs("usage: strata-split --prefix PREFIX/ --sv ID --source X,Y,Z[;X,Y,Z...] --sink X,Y,Z[;...]\n"
        "                    [--addr HOST:PORT] [--user NAME] [--chunk-bits 10] [--root-ttl-ms 10000]\n"
        "                    [--wait-ms 5000] [--max-message-bytes N] [--json] [--bench-multi-commit]\n"
        "Splits supervoxel ID of the precomputed volume under PREFIX (its `info` included) in two:\n"
        "voxels reached first from a --source seed on one side, from a --sink seed on the other\n"
        "(26-connected region growing). Seeds are voxel coordinates (voxel_offset included).\n"
        "Progress: key=value lines on stderr. --json: the result as one JSON object on stdout.\n"
        "--bench-multi-commit (make bench-split's anchor only): no op and no locks; each changed\n"
        "chunk in its own commit.\n"
        "Exit: 0 split committed; 1 failed (the message names the step; a crashed or stuck op is\n"
        "recovered with `stratactl op replay OP`); 2 usage or refused before locking.\n",
        f);
}

static int parse_seeds(const char *s, size_t *n, int64_t (**out)[3]) {
  *n = 0;
  *out = calloc(SPLIT_MAX_SEEDS, sizeof **out);
  if (!*out) return -1;
  const char *p = s;
  while (*p) {
    if (*n == SPLIT_MAX_SEEDS) return -1;
    for (int d = 0; d < 3; d++) {
      char *end;
      errno = 0;
      long long v = strtoll(p, &end, 10);
      if (end == p || errno) return -1;
      (*out)[*n][d] = v;
      p = end;
      if (d < 2) {
        if (*p != ',') return -1;
        p++;
      }
    }
    (*n)++;
    if (*p == ';') p++;
    else if (*p) return -1;
  }
  return *n ? 0 : -1;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"prefix", required_argument, 0, 'p'}, {"sv", required_argument, 0, 's'},
      {"source", required_argument, 0, 'a'}, {"sink", required_argument, 0, 'b'},
      {"addr", required_argument, 0, 'A'},   {"user", required_argument, 0, 'u'},
      {"chunk-bits", required_argument, 0, 'c'}, {"root-ttl-ms", required_argument, 0, 't'},
      {"wait-ms", required_argument, 0, 'w'}, {"max-message-bytes", required_argument, 0, 'm'},
      {"json", no_argument, 0, 'j'}, {"bench-multi-commit", no_argument, 0, 'B'},         {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  split_req r = {.chunk_bits = 10};
  split_opts o = {.user = NULL, .root_ttl_ms = 10000, .wait_ms = 5000, .log = stderr};
  rpc_client_opts co = {0};
  int json = 0, ch;
  char *end;
  char user[256];
  snprintf(user, sizeof user, "%s", getenv("USER") ? getenv("USER") : "strata-split");
  o.user = user;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
      case 'p': free(r.prefix); r.prefix = strdup(optarg); break;
      case 's':
        errno = 0;
        r.sv = strtoull(optarg, &end, 0);
        if (*end || errno || !*optarg) goto bad;
        break;
      case 'a': free(r.seeds[0]); if (parse_seeds(optarg, &r.nseeds[0], &r.seeds[0])) goto bad; break;
      case 'b': free(r.seeds[1]); if (parse_seeds(optarg, &r.nseeds[1], &r.seeds[1])) goto bad; break;
      case 'A': co.addr = optarg; break;
      case 'u': snprintf(user, sizeof user, "%s", optarg); break;
      case 'c': r.chunk_bits = (int)strtol(optarg, &end, 10); if (*end) goto bad; break;
      case 't': o.root_ttl_ms = strtoll(optarg, &end, 10); if (*end || o.root_ttl_ms < 30) goto bad; break;
      case 'w': o.wait_ms = strtoll(optarg, &end, 10); if (*end || o.wait_ms < 0) goto bad; break;
      case 'm': co.max_message_bytes = strtoull(optarg, &end, 10); if (*end) goto bad; break;
      case 'j': json = 1; break;
      case 'B': o.anchor_multi_commit = 1; break;
      case 'h': usage(stdout); split_req_free(&r); return 0;
      default: goto bad;
    }
  }
  if (optind != argc || !r.prefix || !r.sv || !r.seeds[0] || !r.seeds[1]) goto bad;
  rpc_client *c;
  if (rpc_client_open(&co, &c)) {
    fprintf(stderr, "strata-split: out of memory\n");
    split_req_free(&r);
    return 1;
  }
  split_out out;
  char err[2048];
  int rc = split_run(c, &r, &o, &out, err, sizeof err);
  if (rc) {
    fprintf(stderr, "strata-split: %s%s%s\n", out.op_id ? "op " : "", out.op_id ? "" : "", err);
    if (out.op_id) fprintf(stderr, "strata-split: op=%" PRIu64 "\n", out.op_id);
  } else if (json) {
    printf("%s\n", out.result ? out.result : "{}");
  } else {
    printf("op %" PRIu64 " committed at generation %" PRIu64 "\n", out.op_id, out.generation);
  }
  split_out_free(&out);
  rpc_client_close(c);
  split_req_free(&r);
  return rc;
bad:
  if (optind < argc || ch != -1) fprintf(stderr, "strata-split: bad or missing argument\n");
  else fprintf(stderr, "strata-split: --prefix, --sv, --source and --sink are required\n");
  usage(stderr);
  split_req_free(&r);
  return 2;
}
