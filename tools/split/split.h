/*
 * The supervoxel split edit (issue 13, tools/split/README.md): one library that
 * strata-split (a fresh split) and stratactl op replay (recovery of a crashed
 * split under its own op id) both link, so a replay computes exactly what the
 * worker would have.
 */
#ifndef STRATA_TOOLS_SPLIT_H
#define STRATA_TOOLS_SPLIT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rpc/client.h"

/* The op kind strata-split records (Ops.Create kind). */
#define SPLIT_OP_KIND "split"
/* The most seeds per side. */
#define SPLIT_MAX_SEEDS 1024

/* A split request; also the op's payload (JSON, split_req_json). */
typedef struct split_req {
  char *prefix;          /* key prefix of the precomputed volume ("seg/") */
  uint64_t sv;           /* the supervoxel to split */
  int chunk_bits;        /* bits per chunk coordinate in the ids */
  size_t nseeds[2];      /* [0] source, [1] sink */
  int64_t (*seeds[2])[3]; /* voxel coordinates, voxel_offset included */
} split_req;

typedef struct split_opts {
  const char *user;     /* Ops.Create user */
  int64_t root_ttl_ms;  /* TTL of the temporal root lock, renewed every third */
  int64_t wait_ms;      /* how long an acquire waits for conflicting locks */
  FILE *log;            /* key=value progress lines; NULL = none */
  /* Benchmark anchor only (make bench-split): no op, no locks, no ids record; the
   * same reads (latest) and compute, then each changed chunk in its own non-fenced
   * commit and the lineage and result records in one more: "the multi-commit way". */
  int anchor_multi_commit;
} split_opts;

/* What a split or replay did. result: the result record (JSON text, malloc'd). */
typedef struct split_out {
  uint64_t op_id;
  uint64_t generation; /* the commit's generation; 0 when replay only marked SUCCESS */
  char *result;
  /* Replay: what it found ("result" = commit had landed, "no_result" = re-ran). */
  const char *found;
} split_out;

/* Payload JSON <-> request. Returns 0, or -1 with err set. */
int split_req_parse(const char *text, size_t len, split_req *r, char *err, size_t errlen);
char *split_req_json(const split_req *r);
void split_req_free(split_req *r);

/* Checks a request without the server: both sides have seeds, no voxel is on both
 * sides. Returns 0 or -1 with err set. */
int split_req_check(const split_req *r, char *err, size_t errlen);

/* Runs a fresh split (every step of tools/split/README.md). Returns 0; 2 when the
 * request was refused before anything was locked (no op, or an op left CREATED
 * without locks); 1 on any later failure (err says which step; the op is
 * EXCEPTION or WRITE_FAILED, or stuck for op replay when the worker could not
 * clean up). STRATA_SPLIT_DIE_AT=<step> makes it SIGKILL itself at that step. */
int split_run(rpc_client *c, const split_req *r, const split_opts *o, split_out *out, char *err,
              size_t errlen);

/* Recovers op `op` (stratactl op replay). Returns 0 when the op is now SUCCESS
 * with its locks released, 1 when it refused or failed (err names the rows or
 * the step). */
int split_replay(rpc_client *c, uint64_t op, const split_opts *o, split_out *out, char *err,
                 size_t errlen);

void split_out_free(split_out *out);

#endif
