/*
 * The part of the neuroglancer precomputed format the bulk populate tools use:
 * an `info` JSON with one or more scales of a raw-encoded, unsharded, single-
 * channel uint64 segmentation, and the chunk grid of each scale. The generator
 * (genvol.c) writes this layout and strata-populate (populate.c) reads it; both
 * name chunks through pc_chunk_name so the two never disagree.
 */
#ifndef STRATA_TOOLS_PRECOMPUTED_H
#define STRATA_TOOLS_PRECOMPUTED_H

#include <stddef.h>
#include <stdint.h>

/* The most scales an info may list (a 2^31-voxel axis halves 31 times). */
#define PC_MAX_SCALES 32
/* Longest scale key accepted. */
#define PC_MAX_KEY 128
/* Longest chunk name: 6 decimal int64 values and 5 separators. */
#define PC_MAX_NAME 128

typedef struct pc_scale {
  char key[PC_MAX_KEY];  /* the scale's directory, e.g. "8_8_40" */
  int64_t size[3];       /* voxels per axis */
  int64_t chunk[3];      /* chunk size per axis (the first of chunk_sizes) */
  int64_t offset[3];     /* voxel_offset */
  double res[3];         /* resolution (nm per voxel) */
  int64_t grid[3];       /* chunks per axis: ceil(size / chunk) */
} pc_scale;

typedef struct pc_info {
  int nscales;
  pc_scale s[PC_MAX_SCALES];
} pc_info;

/* Parses and validates an info document. `where` names it in messages (a path).
 * Returns 0, or -1 with a message naming `where` and the field in err. */
int pc_info_parse(const char *text, size_t len, const char *where, pc_info *out, char *err,
                  size_t errlen);

/* Reads DIR/info and parses it. On success *text (malloc'd, caller frees) holds the
 * document's bytes and *len their count. Returns 0 or -1 with err set. */
int pc_info_load(const char *dir, pc_info *out, char **text, size_t *len, char *err, size_t errlen);

/* The chunk at grid coordinates c: its voxel box [lo, hi) without the offset
 * (hi clipped to the volume), and its byte count (8 bytes per voxel). */
void pc_chunk_box(const pc_scale *s, const int64_t c[3], int64_t lo[3], int64_t hi[3]);
uint64_t pc_chunk_bytes(const pc_scale *s, const int64_t c[3]);

/* The chunk's name, "<x0>-<x1>_<y0>-<y1>_<z0>-<z1>" in voxel coordinates with the
 * offset added (the precomputed format's unsharded chunk key within a scale). */
void pc_chunk_name(const pc_scale *s, const int64_t c[3], char *buf, size_t n);

/* Mode downsampling, the one implementation (strata-genvol's coarser scales and
 * strata-downsample's pyramid): `fine` is a box of fdim voxels (x fastest, then y, z);
 * out voxel p of the odim box takes the most frequent value among the fine voxels
 * f * p + d (0 <= d < f per axis, those inside fdim), ties to the smaller value.
 * f[0] * f[1] * f[2] must be at most PC_MAX_MODE_BLOCK. */
#define PC_MAX_MODE_BLOCK 64
void pc_downsample_mode(const uint64_t *fine, const int64_t fdim[3], const int64_t f[3],
                        uint64_t *out, const int64_t odim[3]);

/* Number of chunks of all scales. */
uint64_t pc_chunk_count(const pc_info *in);

/* PyChunkedGraph-style node ids (genvol writes them, strata-split allocates them):
 * the layer in the top PC_LAYER_BITS, then the chunk's x, y, z with `chunk_bits`
 * bits each, then the segment in the low 56 - 3 * chunk_bits bits. A layer-2 id with
 * segment 0 is the L2 chunk id PyChunkedGraph locks. */
#define PC_LAYER_BITS 8
uint64_t pc_node_id(int layer, const int64_t c[3], int chunk_bits, uint64_t segment);
/* The bits of the segment field for `chunk_bits`. */
int pc_segment_bits(int chunk_bits);
/* Inverse of pc_node_id: the layer, chunk coordinates and segment of an id. */
void pc_node_split(uint64_t id, int chunk_bits, int *layer, int64_t c[3], uint64_t *segment);

#endif
