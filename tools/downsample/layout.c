/*
 * strata-downsample's geometry: the layout of the pyramid's blocks, a block's boxes
 * and chunks, the mode downsampling of a block, and the benchmark's in-process
 * anchor that runs the same computation without a server. Design:
 * tools/downsample/README.md.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "tools/downsample/ds_int.h"

/* --- region buffers ----------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
/* Under AddressSanitizer from malloc, so that a write past a region is caught. */
void *ds_region_alloc(size_t bytes) { return malloc(bytes ? bytes : 1); }
void ds_region_free(void *p, size_t bytes) {
  (void)bytes;
  free(p);
}
#else
#define DS_HUGE ((size_t)2 << 20)

static size_t region_span(size_t bytes) { return (bytes + DS_HUGE - 1) / DS_HUGE * DS_HUGE; }

void *ds_region_alloc(size_t bytes) {
  size_t span = region_span(bytes ? bytes : 1);
  /* one huge page more, then the unaligned head and tail given back */
  uint8_t *raw = mmap(NULL, span + DS_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return NULL;
  uint8_t *p = (uint8_t *)(((uintptr_t)raw + DS_HUGE - 1) & ~(uintptr_t)(DS_HUGE - 1));
  if (p > raw) munmap(raw, (size_t)(p - raw));
  if (raw + span + DS_HUGE > p + span) munmap(p + span, (size_t)(raw + span + DS_HUGE - (p + span)));
  (void)madvise(p, span, MADV_HUGEPAGE); /* a hint: 4 KiB pages where refused */
  return p;
}

void ds_region_free(void *p, size_t bytes) {
  if (p) munmap(p, region_span(bytes ? bytes : 1));
}
#endif

/* --- geometry ----------------------------------------------------------------------- */

static int lfail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

int ds_layout_init(const pc_info *in, ds_layout *l, char *err, size_t errlen) {
  memset(l, 0, sizeof *l);
  l->in = *in;
  if (in->nscales < 2) return lfail(err, errlen, "info: one scale only, no pyramid to keep");
  for (int d = 0; d < 3; d++) l->F[0][d] = 1;
  for (int i = 1; i < in->nscales; i++) {
    const pc_scale *a = &in->s[i - 1], *s = &in->s[i];
    for (int d = 0; d < 3; d++) {
      double r = s->res[d] / a->res[d];
      int64_t f = (int64_t)llround(r);
      if (f < 1 || fabs(r - (double)f) > 1e-9)
        return lfail(err, errlen, "scales[%d].resolution[%d]: %g is not an integer multiple of %g", i,
                     d, s->res[d], a->res[d]);
      if (s->size[d] != (a->size[d] + f - 1) / f)
        return lfail(err, errlen, "scales[%d].size[%d]: %" PRId64 ", expected ceil(%" PRId64 " / %" PRId64 ")",
                     i, d, s->size[d], a->size[d], f);
      if (a->offset[d] != s->offset[d] * f)
        return lfail(err, errlen, "scales[%d].voxel_offset[%d]: %" PRId64 " does not scale to %" PRId64,
                     i, d, s->offset[d], a->offset[d]);
      l->f[i][d] = f;
      l->F[i][d] = l->F[i - 1][d] * f;
    }
    if (l->f[i][0] * l->f[i][1] * l->f[i][2] > PC_MAX_MODE_BLOCK)
      return lfail(err, errlen, "scales[%d]: a downsampling block above %d voxels", i, PC_MAX_MODE_BLOCK);
  }
  int N = in->nscales - 1;
  for (int d = 0; d < 3; d++) {
    l->bvox[d] = in->s[N].chunk[d] * l->F[N][d];
    l->bgrid[d] = in->s[N].grid[d];
    for (int i = 0; i <= N; i++)
      if ((l->bvox[d] / l->F[i][d]) % in->s[i].chunk[d])
        return lfail(err, errlen,
                     "scales[%d].chunk_sizes[%d]: %" PRId64 " does not divide the block edge %" PRId64
                     " at that scale (a block is one chunk of the coarsest scale)",
                     i, d, in->s[i].chunk[d], l->bvox[d] / l->F[i][d]);
  }
  return 0;
}

void ds_block_box(const ds_layout *l, int i, const int64_t b[3], int64_t lo[3], int64_t hi[3]) {
  for (int d = 0; d < 3; d++) {
    int64_t e = l->bvox[d] / l->F[i][d];
    lo[d] = b[d] * e;
    hi[d] = lo[d] + e < l->in.s[i].size[d] ? lo[d] + e : l->in.s[i].size[d];
  }
}

void ds_block_pyramid(const ds_layout *l, const int64_t b[3], uint64_t *const *reg) {
  for (int i = 1; i < l->in.nscales; i++) {
    int64_t flo[3], fhi[3], lo[3], hi[3], fdim[3], odim[3];
    ds_block_box(l, i - 1, b, flo, fhi);
    ds_block_box(l, i, b, lo, hi);
    for (int d = 0; d < 3; d++) {
      fdim[d] = fhi[d] - flo[d];
      odim[d] = hi[d] - lo[d];
    }
    pc_downsample_mode(reg[i - 1], fdim, l->f[i], reg[i], odim);
  }
}

/* chunk: bytes at any alignment (a value as it lies in a received message) */
static void chunk_copy(const ds_layout *l, int i, const int64_t b[3], uint64_t *reg,
                       const int64_t c[3], uint8_t *chunk, int to_region) {
  int64_t blo[3], bhi[3], lo[3], hi[3];
  ds_block_box(l, i, b, blo, bhi);
  pc_chunk_box(&l->in.s[i], c, lo, hi);
  int64_t rx = bhi[0] - blo[0], ry = bhi[1] - blo[1];
  int64_t cx = hi[0] - lo[0], cy = hi[1] - lo[1];
  for (int64_t z = lo[2]; z < hi[2]; z++)
    for (int64_t y = lo[1]; y < hi[1]; y++) {
      uint64_t *r = reg + (size_t)(((z - blo[2]) * ry + (y - blo[1])) * rx + (lo[0] - blo[0]));
      uint8_t *k = chunk + (size_t)(((z - lo[2]) * cy + (y - lo[1])) * cx) * 8;
      if (to_region) memcpy(r, k, (size_t)cx * 8);
      else memcpy(k, r, (size_t)cx * 8);
    }
}

void ds_chunk_from_region(const ds_layout *l, int i, const int64_t b[3], const uint64_t *reg,
                          const int64_t c[3], void *chunk) {
  chunk_copy(l, i, b, (uint64_t *)reg, c, chunk, 0);
}

void ds_chunk_to_region(const ds_layout *l, int i, const int64_t b[3], uint64_t *reg,
                        const int64_t c[3], const void *chunk) {
  chunk_copy(l, i, b, reg, c, (uint8_t *)chunk, 1);
}

size_t ds__box_voxels(const int64_t lo[3], const int64_t hi[3]) {
  return (size_t)(hi[0] - lo[0]) * (size_t)(hi[1] - lo[1]) * (size_t)(hi[2] - lo[2]);
}

/* Scale i's chunks in block b: [clo, chi) grid coordinates. */
void ds__block_chunks(const ds_layout *l, int i, const int64_t b[3], int64_t clo[3], int64_t chi[3]) {
  int64_t lo[3], hi[3];
  ds_block_box(l, i, b, lo, hi);
  for (int d = 0; d < 3; d++) {
    clo[d] = lo[d] / l->in.s[i].chunk[d];
    chi[d] = (hi[d] + l->in.s[i].chunk[d] - 1) / l->in.s[i].chunk[d];
  }
}

/* --- the benchmark's anchor ------------------------------------------------------------------ */

int ds_in_process(const char *dir, uint64_t *mip0_bytes, double *seconds, char *err, size_t errlen) {
  pc_info in;
  char *text = NULL;
  size_t tlen;
  if (pc_info_load(dir, &in, &text, &tlen, err, errlen)) return 2;
  free(text);
  ds_layout l;
  if (ds_layout_init(&in, &l, err, errlen)) return 2;
  uint64_t *reg[PC_MAX_SCALES] = {0}, *cbuf = NULL, *tmp = NULL;
  size_t reg_bytes[PC_MAX_SCALES] = {0};
  int rc = 0;
  for (int i = 0; i < in.nscales && !rc; i++) {
    int64_t n = 1;
    for (int d = 0; d < 3; d++) n *= l.bvox[d] / l.F[i][d];
    reg_bytes[i] = (size_t)n * 8;
    if (!(reg[i] = ds_region_alloc(reg_bytes[i]))) rc = 1;
  }
  size_t cvox = (size_t)(in.s[0].chunk[0] * in.s[0].chunk[1] * in.s[0].chunk[2]);
  if (!rc && (!(cbuf = malloc(cvox * 8)) || !(tmp = malloc(cvox * 8)))) rc = 1;
  if (rc) snprintf(err, errlen, "out of memory");
  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  *mip0_bytes = 0;
  int64_t b[3], c[3], clo[3], chi[3];
  for (b[2] = 0; b[2] < l.bgrid[2] && !rc; b[2]++)
    for (b[1] = 0; b[1] < l.bgrid[1] && !rc; b[1]++)
      for (b[0] = 0; b[0] < l.bgrid[0] && !rc; b[0]++) {
        ds__block_chunks(&l, 0, b, clo, chi);
        for (c[2] = clo[2]; c[2] < chi[2] && !rc; c[2]++)
          for (c[1] = clo[1]; c[1] < chi[1] && !rc; c[1]++)
            for (c[0] = clo[0]; c[0] < chi[0] && !rc; c[0]++) {
              char name[PC_MAX_NAME], path[4096];
              pc_chunk_name(&in.s[0], c, name, sizeof name);
              snprintf(path, sizeof path, "%s/%s/%s", dir, in.s[0].key, name);
              size_t bytes = pc_chunk_bytes(&in.s[0], c);
              FILE *f = fopen(path, "rb");
              if (!f || fread(tmp, 1, bytes, f) != bytes) {
                snprintf(err, errlen, "cannot read %s", path);
                rc = 1;
              }
              if (f) fclose(f);
              if (!rc) ds_chunk_to_region(&l, 0, b, reg[0], c, tmp);
              *mip0_bytes += bytes;
            }
        if (rc) break;
        ds_block_pyramid(&l, b, reg);
        for (int i = 1; i < in.nscales; i++) {
          ds__block_chunks(&l, i, b, clo, chi);
          for (c[2] = clo[2]; c[2] < chi[2]; c[2]++)
            for (c[1] = clo[1]; c[1] < chi[1]; c[1]++)
              for (c[0] = clo[0]; c[0] < chi[0]; c[0]++) ds_chunk_from_region(&l, i, b, reg[i], c, cbuf);
        }
      }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  for (int i = 0; i < PC_MAX_SCALES; i++) ds_region_free(reg[i], reg_bytes[i]);
  free(cbuf);
  free(tmp);
  return rc;
}
