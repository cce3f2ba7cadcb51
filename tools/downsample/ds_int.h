/*
 * strata-downsample's private header: the worker's state and the helpers its files
 * share (layout.c, worker.c, block.c, feed.c, status.c). Design:
 * tools/downsample/README.md; the public contract is ds.h.
 */
#ifndef STRATA_TOOLS_DOWNSAMPLE_DS_INT_H
#define STRATA_TOOLS_DOWNSAMPLE_DS_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "locks/lock.h"
#include "tools/downsample/ds.h"

/* --- the worker's state --------------------------------------------------------------- */

typedef struct ds_local ds_local; /* local.c: --store's read-only view of the OCDBT files */

typedef struct ds {
  rpc_client *c;
  const ds_opts *o;
  ds_layout l;
  char *err;
  size_t errlen;
  uint64_t op;
  /* the checkpoint: its value and the generation it was last read or written at */
  uint64_t ckpt, ckpt_seen;
  /* the block lock being held, renewed by a thread; and the next block's, taken
   * ahead by the read-ahead thread while this one is computed (block.c) */
  pthread_t th;
  int th_on, stop, holding, ahead_holding;
  uint8_t row[LK_BLOCK_KEY_LEN], ahead_row[LK_BLOCK_KEY_LEN];
  pthread_mutex_t mu;
  pthread_cond_t cv;
  atomic_int lost, ahead_lost;
  uint64_t *reg[PC_MAX_SCALES];
  size_t reg_bytes[PC_MAX_SCALES]; /* their sizes (ds_region_free) */
  uint64_t *cbuf; /* one chunk */
  uint64_t *spare; /* the prefetch's mip-0 region */
  ds_local *local; /* NULL without --store; shared by the reading threads' views */
  uint64_t blocks_done, blocks_skipped, chunks_written;
} ds;

/* Formats err (printf-style) into p's error buffer; returns code. */
int ds__fail(ds *p, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Wall-clock milliseconds, for the progress lines. */
int64_t ds__now_ms(void);
/* One key=value progress line on o->log (none when NULL). */
void ds__logkv(ds *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A decimal generation value; 0 when absent or malformed. */
uint64_t ds__gen_value(const uint8_t *v, size_t len);
/* The worker's keys (DS_DIR in ds.h), malloc'd (caller frees), NULL when out of memory. */
char *ds__ckpt_key(ds *p);
char *ds__stamp_key(ds *p, const int64_t b[3]);
char *ds__chunk_key(ds *p, int i, const int64_t c[3]);
/* STRATA_DOWNSAMPLE_DIE_AT (tests only): SIGKILL at the N-th arrival at stage. */
void ds__crash_point(const char *stage);

/* The block lock (worker.c): ds__lock_block takes block b's row for p->op as the
 * row of the block being worked on (p->row) and returns 0 acquired, 1 held by
 * another, or -1 (err set); ds__lock_ahead does the same for the next block
 * (p->ahead_row, without waiting, called by the read-ahead thread through its view v
 * of p), and ds__adopt_ahead makes the row taken ahead the held one (1, or 0 when
 * none). The renewal thread renews both rows. */
int ds__lock_block(ds *p, const int64_t b[3], int64_t wait_ms);
int ds__lock_ahead(ds *p, ds *v, const int64_t b[3]);
int ds__adopt_ahead(ds *p);
void ds__unlock_block(ds *p);
void ds__unlock_ahead(ds *p);
void ds__release_row(ds *p, const uint8_t *row);

typedef struct putv {
  char *key;
  uint8_t *val;
  size_t len;
} putv;

/* One Kv.Commit of pv[0..n) and, with_ckpt, the checkpoint (worker.c says which fence
 * and condition); *gen is its generation. 0, or 1 with err set. */
int ds__commit(ds *p, putv *pv, size_t n, int fenced, int with_ckpt, uint64_t ckpt_new,
               uint64_t *gen);

/* Geometry helpers (layout.c): a box's voxel count; scale i's chunks in block b. */
size_t ds__box_voxels(const int64_t lo[3], const int64_t hi[3]);
void ds__block_chunks(const ds_layout *l, int i, const int64_t b[3], int64_t clo[3], int64_t chi[3]);

/* How a block's chunks arrive (block.c's batched reads, local.c's direct ones): per
 * key, in order; data valid during the call only, at any alignment. Returns 0 or
 * stops the read with its code. */
typedef int (*ds_read_fn)(ds *p, void *ctx, size_t i, int found, const uint8_t *v, size_t len);

/* Direct reads (local.c, --store): ds__local_open opens the store read-only (0, or 1
 * with err set); ds__local_read reads keys at gen from the OCDBT files like block.c's
 * batch_read: 0, fn's non-zero result, or -1 when the caller must read through the
 * server (gen not published yet, or the direct path failed: logged once, then off). */
int ds__local_open(ds *p);
void ds__local_close(ds *p);
int ds__local_read(ds *p, char **keys, const size_t *sizes, size_t n, uint64_t gen, ds_read_fn fn,
                   void *ctx);

/* The block pipeline (block.c): blocks bl[0..n) at generation g. */
int ds__do_blocks(ds *p, int64_t (*bl)[3], size_t n, uint64_t g, int force, int set_ckpt,
                  uint64_t ckpt_new);

/* The two modes (feed.c): --follow / --until, and --region. */
int ds__follow(ds *p);
int ds__region(ds *p);

#endif
