/*
 * strata-populate's private header: the run's options, the task plan (one task per
 * block of mip-0 chunks with the chunks of every coarser scale whose origin lies in
 * it), the counters the worker processes share with the parent through an anonymous
 * shared mapping, and the worker entry point. Design: tools/populate/README.md.
 */
#ifndef STRATA_TOOLS_POP_H
#define STRATA_TOOLS_POP_H

#include <stdint.h>
#include <stdio.h>

#include "rpc/client.h"
#include "tools/populate/precomputed.h"

/* Longest key prefix accepted (the marker keys add about 60 bytes). */
#define POP_MAX_PREFIX 1024
/* Transient failures are retried this many times by default. */
#define POP_DEFAULT_RETRIES 10
/* Backoff: starts at 50 ms, doubles, capped at 5 s, each wait drawn from
 * [cap/2, cap] (jitter). */
#define POP_BACKOFF_FIRST_MS 50
#define POP_BACKOFF_CAP_MS 5000

typedef struct pop_opts {
  const char *source;     /* the precomputed directory */
  char prefix[POP_MAX_PREFIX]; /* key prefix, e.g. "seg/" */
  const char *addr;
  const char *store_dir;  /* overrides RegisterWriterResponse.store_dir */
  const char *name;       /* writer name base; default host/pid */
  int workers;            /* worker processes */
  int block;              /* mip-0 chunks per task per axis, a power of two */
  int layer;              /* 2 + log2(block): the marker's layer */
  int standalone;         /* values inline through Kv.Commit */
  int json;
  int retries;
  int64_t timeout_ms;     /* per call */
  int64_t lease_ms;
  uint64_t max_message;   /* the client's message limit (standalone sizing) */
} pop_opts;

/* One chunk of the plan. */
typedef struct pop_chunk {
  uint32_t scale;
  int32_t c[3];
} pop_chunk;

/* One task: a block; its chunks are plan.chunks[first .. first + count). */
typedef struct pop_task {
  int64_t b[3];
  uint64_t first, count, bytes;
} pop_task;

typedef struct pop_plan {
  pc_info info;
  char *info_text;
  size_t info_len;
  int64_t nb[3];         /* blocks per axis */
  uint64_t ntasks;
  pop_task *tasks;       /* in x-fastest block order */
  pop_chunk *chunks;
  uint64_t total_bytes;
} pop_plan;

/* Shared between the parent and the workers (MAP_SHARED | MAP_ANONYMOUS); the
 * counters are updated with __atomic builtins. todo[] lists the tasks to run. */
typedef struct pop_shared {
  uint64_t next;         /* the next index into todo */
  uint64_t ntodo;
  uint64_t done, lost, failed, skipped;
  uint64_t bytes, chunks;
  uint64_t retries;
  int setup_rc;          /* the setup child's verdict: 0 ok, else the exit code */
  uint64_t todo[];
} pop_shared;

/* The marker key of task t ("<prefix>.populated/<layer>_<x>_<y>_<z>") and of the
 * run's metadata ("<prefix>.populated/meta"). */
void pop_marker_key(const pop_opts *o, const pop_task *t, char *buf, size_t n);
void pop_meta_key(const pop_opts *o, char *buf, size_t n);
/* The source path and the Strata key of a chunk. */
void pop_chunk_path(const pop_opts *o, const pop_plan *p, const pop_chunk *c, char *buf, size_t n);
void pop_chunk_key(const pop_opts *o, const pop_plan *p, const pop_chunk *c, char *buf, size_t n);

/* Opens a client with the run's address and timeout; exits on failure. */
rpc_client *pop_client(const pop_opts *o);
/* 1 when the last call on this thread failed with a status worth retrying. */
int pop_transient(int rc);
/* Sleeps before retry number `attempt` (0-based); counts it in sh->retries. */
void pop_backoff(pop_shared *sh, int attempt, uint64_t *rng);

/* rc = call, retried while it fails with a transient status, at most o->retries
 * times, with pop_backoff between attempts. */
#define POP_RETRY(o, sh, rng, rc, call)                        \
  do {                                                         \
    for (int att_ = 0;; att_++) {                              \
      (rc) = (call);                                           \
      if (!pop_transient(rc) || att_ >= (o)->retries) break;   \
      pop_backoff((sh), att_, (rng));                          \
    }                                                          \
  } while (0)

/* A worker process's body: registers its writer (coordinator mode), runs tasks
 * from sh->todo until none is left, unregisters. Returns the process's exit code. */
int pop_worker_main(const pop_opts *o, const pop_plan *p, pop_shared *sh, int index);

#endif
