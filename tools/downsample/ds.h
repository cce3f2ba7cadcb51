/*
 * strata-downsample (issue 14, tools/downsample/README.md): keeps the coarser scales
 * of a precomputed segmentation stored in Strata in step with its mip 0, from
 * Kv.Watch. One library: the worker (ds_run), the block geometry and pyramid
 * compute (also the benchmark's in-process anchor) and the status that
 * `stratactl downsample status` prints, so the keys are formed in one place.
 */
#ifndef STRATA_TOOLS_DOWNSAMPLE_H
#define STRATA_TOOLS_DOWNSAMPLE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "rpc/client.h"
#include "tools/populate/precomputed.h"

/* The worker's keys, under the volume's PREFIX:
 *   PREFIX.downsample/checkpoint/<name>   decimal generation: every mip-0 change
 *                                         committed at or before it is in the pyramid
 *   PREFIX.downsample/blocks/<x>_<y>_<z>  decimal generation the block's coarser
 *                                         chunks were computed from (mip 0 read there)
 *   PREFIX.downsample/sync/<name>         written by --until to end its Watch */
#define DS_DIR ".downsample/"
#define DS_OP_KIND "downsample"
#define DS_MAX_NAME 64

/* The pyramid's geometry. A block is the mip-0 footprint of one chunk of the
 * coarsest scale: every chunk of every scale lies in exactly one block. */
typedef struct ds_layout {
  pc_info in;
  int64_t f[PC_MAX_SCALES][3]; /* factor from scale i-1 to i (i >= 1), from the resolutions */
  int64_t F[PC_MAX_SCALES][3]; /* factor from mip 0 to scale i */
  int64_t bvox[3];             /* block edge in mip-0 voxels */
  int64_t bgrid[3];            /* blocks per axis */
} ds_layout;

/* Derives the layout from an info; refuses (-1, err naming the scale and field)
 * non-integer factors, sizes that are not ceil(finer / factor), offsets that do not
 * scale, chunk grids that do not nest in the blocks, a single scale. */
int ds_layout_init(const pc_info *in, ds_layout *l, char *err, size_t errlen);

/* Block b's box at scale i: [lo, hi) voxels without offset. */
void ds_block_box(const ds_layout *l, int i, const int64_t b[3], int64_t lo[3], int64_t hi[3]);

/* Computes scales 1.. of block b from its mip-0 region reg[0] (the box of
 * ds_block_box at scale 0, x fastest): reg[i] must have room for scale i's box. */
void ds_block_pyramid(const ds_layout *l, const int64_t b[3], uint64_t *const *reg);

/* A region buffer of `bytes` (NULL when out of memory), and its release (bytes as
 * given). Mapped on its own in 2 MiB-aligned transparent huge pages where the kernel
 * gives them: touching a 16 MiB region for the first time in 4 KiB pages cost about
 * 30 ms on this project's VMs, in 2 MiB pages a few ms (docs/benchmarks.md "Large
 * values leave the page cache; the first block's memory"). The worker and the
 * in-process anchor both use it. */
void *ds_region_alloc(size_t bytes);
void ds_region_free(void *p, size_t bytes);

/* Copies chunk c of scale i between the block's region buffer and chunk bytes
 * (little-endian uint64 voxels, at any alignment). */
void ds_chunk_from_region(const ds_layout *l, int i, const int64_t b[3], const uint64_t *reg,
                          const int64_t c[3], void *chunk);
void ds_chunk_to_region(const ds_layout *l, int i, const int64_t b[3], uint64_t *reg,
                        const int64_t c[3], const void *chunk);

typedef struct ds_opts {
  const char *prefix;   /* the volume's key prefix, "seg/" */
  const char *name;     /* worker name: its checkpoint key; default "default" */
  const char *user;     /* Ops.Create user */
  int follow;           /* --follow */
  uint64_t until;       /* --until G (0: not given) */
  int region;           /* --region given */
  int64_t rlo[3], rhi[3]; /* --region box, mip-0 voxels with offset, [lo, hi) */
  int region_all;       /* --region all */
  int64_t ttl_ms;       /* block lock TTL, renewed every third */
  int64_t wait_ms;      /* the second pass's wait for a held block */
  FILE *log;            /* key=value lines; NULL = none */
  const char *store;    /* --store: the OCDBT files (a directory or s3://), read directly
                           for mip 0 once published; NULL = every read through the server */
} ds_opts;

/* Runs the worker. Returns 0, or 1 (failure; err says why and what to run) or 2
 * (usage / refused volume). */
int ds_run(rpc_client *c, const ds_opts *o, char *err, size_t errlen);

/* make bench's anchor: the same pyramid computed in-process from a volume
 * directory (strata-genvol's layout), no server: reads every mip-0 chunk file,
 * computes every block's coarser chunks. Returns 0, or 1/2 with err set. */
int ds_in_process(const char *dir, uint64_t *mip0_bytes, double *seconds, char *err, size_t errlen);

/* Asks a running ds_run to stop after the block it is doing (--follow ends its
 * Watch and exits 0). Any thread; not from a signal handler. */
void ds_request_stop(void);

/* One worker's checkpoint, as `stratactl downsample status` shows it. */
typedef struct ds_ckpt {
  char name[DS_MAX_NAME + 1];
  uint64_t generation;
} ds_ckpt;

/* Lists PREFIX.downsample/checkpoint/ at the latest generation (*latest set).
 * *out malloc'd (caller frees), *n entries in name order. Returns 0 or a Strata
 * code with err set. */
int ds_status(rpc_client *c, const char *prefix, uint64_t *latest, ds_ckpt **out, size_t *n,
              char *err, size_t errlen);

#endif
