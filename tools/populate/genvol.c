/*
 * strata-genvol: writes a synthetic neuroglancer precomputed segmentation, for
 * strata-populate's tests and benchmarks and for the edit workers. The labels
 * are a seeded Voronoi-like partition of each mip-0 chunk into supervoxels whose
 * ids encode layer, chunk and segment the way PyChunkedGraph node ids do; each
 * coarser scale is the previous one downsampled 2x2x2 by mode. The output is a
 * pure function of the arguments: the same seed gives byte-identical files.
 * Layout and id bits: tools/populate/README.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "tools/populate/precomputed.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "chunks are written as the host stores uint64: little-endian hosts only"
#endif

#define GV_MAX_SEGMENTS 4096

typedef struct gv_opts {
  const char *out;
  int64_t size[3], chunk[3];
  double res[3];
  int scales;
  uint64_t seed;
  int segments;   /* supervoxel seeds per mip-0 chunk */
  int chunk_bits; /* bits per chunk coordinate in the ids */
  int quiet;
} gv_opts;

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

static void die(const char *fmt, const char *arg) {
  fprintf(stderr, "strata-genvol: ");
  fprintf(stderr, fmt, arg);
  fputc('\n', stderr);
  exit(1);
}

static int write_file(const char *path, const void *p, size_t n) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return -1;
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      close(fd);
      return -1;
    }
    c += w;
    n -= (size_t)w;
  }
  return close(fd);
}

/* The supervoxel id: layer 1, the chunk, the segment (1-based). */
static uint64_t sv_id(const gv_opts *o, const int64_t c[3], int seg) {
  return pc_node_id(1, c, o->chunk_bits, (uint64_t)seg);
}

/* One mip-0 chunk: each voxel takes the seed of the chunk with the smallest
 * weighted squared physical distance (a power diagram, so supervoxels differ
 * in size); ties go to the lower segment. */
static void gen_mip0(const gv_opts *o, const pc_scale *s, const int64_t c[3], uint64_t *buf) {
  int64_t lo[3], hi[3];
  pc_chunk_box(s, c, lo, hi);
  uint64_t st = o->seed ^ ((uint64_t)c[0] * 0x100000001B3ull) ^ ((uint64_t)c[1] << 21) ^
                ((uint64_t)c[2] << 42);
  splitmix(&st);
  double px[GV_MAX_SEGMENTS], py[GV_MAX_SEGMENTS], pz[GV_MAX_SEGMENTS], w[GV_MAX_SEGMENTS];
  double ext[3];
  for (int d = 0; d < 3; d++) ext[d] = (double)(hi[d] - lo[d]) * s->res[d];
  double span = ext[0] * ext[0] + ext[1] * ext[1] + ext[2] * ext[2];
  for (int k = 0; k < o->segments; k++) {
    px[k] = (double)(splitmix(&st) >> 11) / 9007199254740992.0 * ext[0];
    py[k] = (double)(splitmix(&st) >> 11) / 9007199254740992.0 * ext[1];
    pz[k] = (double)(splitmix(&st) >> 11) / 9007199254740992.0 * ext[2];
    w[k] = (double)(splitmix(&st) >> 11) / 9007199254740992.0 * span / (4.0 * o->segments);
  }
  uint64_t ids[GV_MAX_SEGMENTS];
  for (int k = 0; k < o->segments; k++) ids[k] = sv_id(o, c, k + 1);
  size_t i = 0;
  for (int64_t z = lo[2]; z < hi[2]; z++) {
    double fz = ((double)(z - lo[2]) + 0.5) * s->res[2];
    for (int64_t y = lo[1]; y < hi[1]; y++) {
      double fy = ((double)(y - lo[1]) + 0.5) * s->res[1];
      for (int64_t x = lo[0]; x < hi[0]; x++) {
        double fx = ((double)(x - lo[0]) + 0.5) * s->res[0];
        int best = 0;
        double bd = 0;
        for (int k = 0; k < o->segments; k++) {
          double dx = fx - px[k], dy = fy - py[k], dz = fz - pz[k];
          double dd = dx * dx + dy * dy + dz * dz - w[k];
          if (k == 0 || dd < bd) { bd = dd; best = k; }
        }
        buf[i++] = ids[best];
      }
    }
  }
}

static void chunk_path(const gv_opts *o, const pc_scale *s, const int64_t c[3], char *p, size_t n) {
  char name[PC_MAX_NAME];
  pc_chunk_name(s, c, name, sizeof name);
  snprintf(p, n, "%s/%s/%s", o->out, s->key, name);
}

/* Reads the part of fine-scale chunk fc that lies in the box [rlo, rhi) into reg
 * (x fastest, dimensions rhi - rlo). */
static void read_into(const gv_opts *o, const pc_scale *f, const int64_t fc[3], const int64_t rlo[3],
                      const int64_t rhi[3], uint64_t *reg, uint64_t *tmp) {
  char path[4096];
  chunk_path(o, f, fc, path, sizeof path);
  int64_t lo[3], hi[3];
  pc_chunk_box(f, fc, lo, hi);
  size_t bytes = pc_chunk_bytes(f, fc);
  FILE *fp = fopen(path, "rb");
  if (!fp || fread(tmp, 1, bytes, fp) != bytes) die("cannot read back %s", path);
  fclose(fp);
  int64_t rx = rhi[0] - rlo[0], ry = rhi[1] - rlo[1];
  int64_t cx = hi[0] - lo[0], cy = hi[1] - lo[1];
  for (int64_t z = lo[2] > rlo[2] ? lo[2] : rlo[2]; z < hi[2] && z < rhi[2]; z++)
    for (int64_t y = lo[1] > rlo[1] ? lo[1] : rlo[1]; y < hi[1] && y < rhi[1]; y++)
      for (int64_t x = lo[0] > rlo[0] ? lo[0] : rlo[0]; x < hi[0] && x < rhi[0]; x++)
        reg[((z - rlo[2]) * ry + (y - rlo[1])) * rx + (x - rlo[0])] =
            tmp[((z - lo[2]) * cy + (y - lo[1])) * cx + (x - lo[0])];
}

/* One chunk of a coarser scale from the finer scale's files. */
static void gen_down(const gv_opts *o, const pc_scale *f, const pc_scale *s, const int64_t c[3],
                     uint64_t *buf, uint64_t *reg, uint64_t *tmp) {
  int64_t lo[3], hi[3], rlo[3], rhi[3];
  pc_chunk_box(s, c, lo, hi);
  for (int d = 0; d < 3; d++) {
    rlo[d] = 2 * lo[d];
    rhi[d] = 2 * hi[d] < f->size[d] ? 2 * hi[d] : f->size[d];
  }
  int64_t fc[3];
  for (fc[2] = rlo[2] / f->chunk[2]; fc[2] * f->chunk[2] < rhi[2]; fc[2]++)
    for (fc[1] = rlo[1] / f->chunk[1]; fc[1] * f->chunk[1] < rhi[1]; fc[1]++)
      for (fc[0] = rlo[0] / f->chunk[0]; fc[0] * f->chunk[0] < rhi[0]; fc[0]++)
        read_into(o, f, fc, rlo, rhi, reg, tmp);
  int64_t rdim[3], odim[3], two[3] = {2, 2, 2};
  for (int d = 0; d < 3; d++) {
    rdim[d] = rhi[d] - rlo[d];
    odim[d] = hi[d] - lo[d];
  }
  pc_downsample_mode(reg, rdim, two, buf, odim);
}

static void scale_key(pc_scale *s) {
  snprintf(s->key, sizeof s->key, "%.10g_%.10g_%.10g", s->res[0], s->res[1], s->res[2]);
}

static void write_info(const gv_opts *o, const pc_info *in) {
  json_t *scales = json_array();
  for (int i = 0; i < in->nscales; i++) {
    const pc_scale *s = &in->s[i];
    json_array_append_new(
        scales, json_pack("{s:s, s:[I,I,I], s:[[I,I,I]], s:[f,f,f], s:[I,I,I], s:s}", "key", s->key,
                          "size", s->size[0], s->size[1], s->size[2], "chunk_sizes", s->chunk[0],
                          s->chunk[1], s->chunk[2], "resolution", s->res[0], s->res[1], s->res[2],
                          "voxel_offset", s->offset[0], s->offset[1], s->offset[2], "encoding",
                          "raw"));
  }
  json_t *root = json_pack("{s:s, s:s, s:s, s:i, s:o}", "@type", "neuroglancer_multiscale_volume",
                           "type", "segmentation", "data_type", "uint64", "num_channels", 1,
                           "scales", scales);
  char path[4096];
  snprintf(path, sizeof path, "%s/info", o->out);
  char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
  if (!text || write_file(path, text, strlen(text))) die("cannot write %s", path);
  free(text);
  json_decref(root);
}

static int parse3(const char *arg, int64_t v[3]) {
  char tail;
  long long a, b, c;
  if (sscanf(arg, "%lld,%lld,%lld%c", &a, &b, &c, &tail) != 3 || a < 1 || b < 1 || c < 1 ||
      a > INT32_MAX || b > INT32_MAX || c > INT32_MAX)
    return -1;
  v[0] = a; v[1] = b; v[2] = c;
  return 0;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: strata-genvol --out DIR --size X,Y,Z --chunk X,Y,Z [--scales N] [--seed S]\n"
          "                     [--resolution X,Y,Z] [--segments K] [--chunk-bits B] [--quiet]\n"
          "Writes a synthetic precomputed uint64 segmentation (raw encoding) into DIR: N scales\n"
          "(default 1), each coarser one 2x2x2 downsampled by mode; K (default 12) supervoxels per\n"
          "mip-0 chunk with PyChunkedGraph-style ids (layer 8 bits, chunk x/y/z B bits each,\n"
          "default 10, then the segment). Same arguments and seed: byte-identical files.\n");
}

/* Parses the command line into *o; returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, gv_opts *o) {
  int have_size = 0, have_chunk = 0;
  static const struct option lo[] = {
      {"out", 1, 0, 'o'},      {"size", 1, 0, 's'},       {"chunk", 1, 0, 'c'},
      {"scales", 1, 0, 'n'},   {"seed", 1, 0, 'S'},       {"resolution", 1, 0, 'r'},
      {"segments", 1, 0, 'k'}, {"chunk-bits", 1, 0, 'b'}, {"quiet", 0, 0, 'q'},
      {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
  int ch;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    char *end = NULL;
    int64_t r3[3];
    switch (ch) {
      case 'o': o->out = optarg; break;
      case 's': if (parse3(optarg, o->size)) die("--size %s: expected X,Y,Z positive integers", optarg); have_size = 1; break;
      case 'c': if (parse3(optarg, o->chunk)) die("--chunk %s: expected X,Y,Z positive integers", optarg); have_chunk = 1; break;
      case 'n': o->scales = (int)strtol(optarg, &end, 10);
        if (*end || o->scales < 1 || o->scales > PC_MAX_SCALES) die("--scales %s: expected 1..32", optarg);
        break;
      case 'S': o->seed = strtoull(optarg, &end, 0); if (*end || !*optarg) die("--seed %s: expected an integer", optarg); break;
      case 'r': if (parse3(optarg, r3)) die("--resolution %s: expected X,Y,Z positive integers", optarg);
        for (int d = 0; d < 3; d++) o->res[d] = (double)r3[d];
        break;
      case 'k': o->segments = (int)strtol(optarg, &end, 10);
        if (*end || o->segments < 1 || o->segments > GV_MAX_SEGMENTS) die("--segments %s: expected 1..4096", optarg);
        break;
      case 'b': o->chunk_bits = (int)strtol(optarg, &end, 10);
        if (*end || o->chunk_bits < 1 || o->chunk_bits > 14) die("--chunk-bits %s: expected 1..14", optarg);
        break;
      case 'q': o->quiet = 1; break;
      case 'h': usage(stdout); return 0;
      default: usage(stderr); return 2;
    }
  }
  if (!o->out || !have_size || !have_chunk || optind != argc) { usage(stderr); return 2; }
  return -1;
}

/* The scales: each coarser one half the size (rounded up) at twice the
 * resolution, same chunk size; the ids' bits must hold the grid and segments. */
static void plan_scales(const gv_opts *o, pc_info *in) {
  in->nscales = o->scales;
  for (int i = 0; i < o->scales; i++) {
    pc_scale *s = &in->s[i];
    for (int d = 0; d < 3; d++) {
      s->size[d] = i == 0 ? o->size[d] : (in->s[i - 1].size[d] + 1) / 2;
      s->chunk[d] = o->chunk[d];
      s->res[d] = i == 0 ? o->res[d] : in->s[i - 1].res[d] * 2;
      s->grid[d] = (s->size[d] + s->chunk[d] - 1) / s->chunk[d];
    }
    scale_key(s);
  }
  for (int d = 0; d < 3; d++)
    if (in->s[0].grid[d] > ((int64_t)1 << o->chunk_bits))
      die("%s: more mip-0 chunks along an axis than --chunk-bits can encode", "--size/--chunk");
  if ((uint64_t)o->segments >= ((uint64_t)1 << pc_segment_bits(o->chunk_bits)))
    die("%s: more segments than the id's segment bits hold", "--segments");
}

int main(int argc, char **argv) {
  gv_opts o = {.scales = 1, .seed = 1, .segments = 12, .chunk_bits = 10,
               .res = {8, 8, 40}};
  int rc = parse_args(argc, argv, &o);
  if (rc >= 0) return rc;
  pc_info in = {0};
  plan_scales(&o, &in);
  uint64_t cvox = (uint64_t)o.chunk[0] * (uint64_t)o.chunk[1] * (uint64_t)o.chunk[2];
  if (cvox * 8 > UINT32_MAX) die("%s: a chunk above 4 GiB", "--chunk");

  if (mkdir(o.out, 0755) && errno != EEXIST) die("cannot create %s", o.out);
  uint64_t *buf = malloc(cvox * 8), *tmp = malloc(cvox * 8), *reg = malloc(cvox * 8 * 8);
  if (!buf || !tmp || !reg) die("%s", "out of memory");
  uint64_t total = 0, files = 0;
  for (int i = 0; i < in.nscales; i++) {
    pc_scale *s = &in.s[i];
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/%s", o.out, s->key);
    if (mkdir(dir, 0755) && errno != EEXIST) die("cannot create %s", dir);
    int64_t c[3];
    for (c[2] = 0; c[2] < s->grid[2]; c[2]++)
      for (c[1] = 0; c[1] < s->grid[1]; c[1]++)
        for (c[0] = 0; c[0] < s->grid[0]; c[0]++) {
          if (i == 0) gen_mip0(&o, s, c, buf);
          else gen_down(&o, &in.s[i - 1], s, c, buf, reg, tmp);
          chunk_path(&o, s, c, path, sizeof path);
          uint64_t n = pc_chunk_bytes(s, c);
          if (write_file(path, buf, n)) die("cannot write %s", path);
          total += n;
          files++;
        }
  }
  write_info(&o, &in);
  if (!o.quiet)
    printf("wrote %s: %d scales, %" PRIu64 " chunks, %" PRIu64 " bytes\n", o.out, in.nscales,
           files, total);
  free(buf);
  free(tmp);
  free(reg);
  return 0;
}
