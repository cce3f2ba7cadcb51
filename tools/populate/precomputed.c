/*
 * Reading and validating a precomputed `info`, and the chunk grid arithmetic
 * (see precomputed.h). Only what Strata's populate copies is accepted: a
 * single-channel uint64 volume, raw encoding, no sharding; anything else is
 * refused with the field named, never guessed around.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "tools/populate/precomputed.h"

static int fail(char *err, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, n, fmt, ap);
  va_end(ap);
  return -1;
}

/* Reads a 3-element array of integers (min_value or more) into v. */
static int get_ivec3(json_t *o, const char *name, int64_t min_value, int64_t v[3]) {
  json_t *a = json_object_get(o, name);
  if (!json_is_array(a) || json_array_size(a) != 3) return -1;
  for (int d = 0; d < 3; d++) {
    json_t *e = json_array_get(a, d);
    if (!json_is_integer(e) || json_integer_value(e) < min_value) return -1;
    v[d] = json_integer_value(e);
  }
  return 0;
}

static int get_dvec3(json_t *o, const char *name, double v[3]) {
  json_t *a = json_object_get(o, name);
  if (!json_is_array(a) || json_array_size(a) != 3) return -1;
  for (int d = 0; d < 3; d++) {
    json_t *e = json_array_get(a, d);
    if (!json_is_number(e) || !(json_number_value(e) > 0) || !isfinite(json_number_value(e)))
      return -1;
    v[d] = json_number_value(e);
  }
  return 0;
}

static int want_string(json_t *o, const char *name, const char *value) {
  json_t *e = json_object_get(o, name);
  return json_is_string(e) && strcmp(json_string_value(e), value) == 0;
}

static int parse_scale(json_t *js, int i, const char *where, pc_scale *s, char *err, size_t n) {
  if (!json_is_object(js)) return fail(err, n, "%s: scales[%d]: not an object", where, i);
  json_t *k = json_object_get(js, "key");
  if (!json_is_string(k) || json_string_length(k) == 0 || json_string_length(k) >= PC_MAX_KEY ||
      strchr(json_string_value(k), '/') || strcmp(json_string_value(k), ".") == 0 ||
      strcmp(json_string_value(k), "..") == 0)
    return fail(err, n, "%s: scales[%d].key: expected a non-empty name without '/' below %d bytes",
                where, i, PC_MAX_KEY);
  snprintf(s->key, sizeof s->key, "%s", json_string_value(k));
  if (get_ivec3(js, "size", 1, s->size))
    return fail(err, n, "%s: scales[%d].size: expected 3 positive integers", where, i);
  if (get_ivec3(js, "voxel_offset", INT32_MIN, s->offset))
    return fail(err, n, "%s: scales[%d].voxel_offset: expected 3 integers", where, i);
  if (get_dvec3(js, "resolution", s->res))
    return fail(err, n, "%s: scales[%d].resolution: expected 3 positive numbers", where, i);
  json_t *cs = json_object_get(js, "chunk_sizes");
  if (!json_is_array(cs) || json_array_size(cs) != 1)
    return fail(err, n, "%s: scales[%d].chunk_sizes: expected exactly one chunk size", where, i);
  json_t *wrap = json_pack("{s:O}", "c", json_array_get(cs, 0));
  int bad = !wrap || get_ivec3(wrap, "c", 1, s->chunk);
  json_decref(wrap);
  if (bad) return fail(err, n, "%s: scales[%d].chunk_sizes[0]: expected 3 positive integers", where, i);
  if (!want_string(js, "encoding", "raw"))
    return fail(err, n, "%s: scales[%d].encoding: only \"raw\" is supported", where, i);
  if (json_object_get(js, "sharding") && !json_is_null(json_object_get(js, "sharding")))
    return fail(err, n, "%s: scales[%d].sharding: sharded volumes are not supported", where, i);
  uint64_t voxels = 1;
  for (int d = 0; d < 3; d++) {
    if (s->size[d] > INT32_MAX || s->chunk[d] > INT32_MAX)
      return fail(err, n, "%s: scales[%d]: size or chunk size above 2^31-1", where, i);
    s->grid[d] = (s->size[d] + s->chunk[d] - 1) / s->chunk[d];
    voxels *= (uint64_t)s->chunk[d];
  }
  if (voxels * 8 > UINT32_MAX)
    return fail(err, n, "%s: scales[%d]: a chunk of %" PRIu64 " bytes is above the 4 GiB value limit",
                where, i, voxels * 8);
  return 0;
}

int pc_info_parse(const char *text, size_t len, const char *where, pc_info *out, char *err,
                  size_t errlen) {
  json_error_t je;
  memset(out, 0, sizeof *out);
  json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
  if (!root)
    return fail(err, errlen, "%s: not valid JSON: %s (line %d, column %d)", where, je.text, je.line,
                je.column);
  int rc = -1;
  json_t *scales = json_object_get(root, "scales");
  if (!json_is_object(root)) {
    fail(err, errlen, "%s: expected a JSON object", where);
  } else if (!want_string(root, "type", "segmentation") && !want_string(root, "type", "image")) {
    fail(err, errlen, "%s: type: expected \"segmentation\" or \"image\"", where);
  } else if (!want_string(root, "data_type", "uint64")) {
    fail(err, errlen, "%s: data_type: only \"uint64\" is supported", where);
  } else if (!json_is_integer(json_object_get(root, "num_channels")) ||
             json_integer_value(json_object_get(root, "num_channels")) != 1) {
    fail(err, errlen, "%s: num_channels: only 1 is supported", where);
  } else if (!json_is_array(scales) || json_array_size(scales) == 0 ||
             json_array_size(scales) > PC_MAX_SCALES) {
    fail(err, errlen, "%s: scales: expected 1..%d scales", where, PC_MAX_SCALES);
  } else {
    rc = 0;
    out->nscales = (int)json_array_size(scales);
    for (int i = 0; i < out->nscales && rc == 0; i++)
      rc = parse_scale(json_array_get(scales, i), i, where, &out->s[i], err, errlen);
    for (int i = 0; i < out->nscales && rc == 0; i++)
      for (int j = 0; j < i && rc == 0; j++)
        if (strcmp(out->s[i].key, out->s[j].key) == 0)
          rc = fail(err, errlen, "%s: scales[%d].key: \"%s\" repeats scales[%d]'s", where, i,
                    out->s[i].key, j);
  }
  json_decref(root);
  return rc;
}

int pc_info_load(const char *dir, pc_info *out, char **text, size_t *len, char *err, size_t errlen) {
  char path[4096];
  snprintf(path, sizeof path, "%s/info", dir);
  *text = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return fail(err, errlen, "%s: cannot open: %s", path, strerror(errno));
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap);
  size_t got;
  while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
    n += got;
    if (n == cap) {
      char *nb = cap < (64u << 20) ? realloc(buf, cap * 2) : NULL;
      if (!nb) { free(buf); buf = NULL; break; }
      buf = nb;
      cap *= 2;
    }
  }
  int ioerr = ferror(f);
  fclose(f);
  if (!buf) return fail(err, errlen, "%s: too large or out of memory", path);
  if (ioerr) { free(buf); return fail(err, errlen, "%s: read error", path); }
  if (pc_info_parse(buf, n, path, out, err, errlen)) { free(buf); return -1; }
  *text = buf;
  *len = n;
  return 0;
}

void pc_chunk_box(const pc_scale *s, const int64_t c[3], int64_t lo[3], int64_t hi[3]) {
  for (int d = 0; d < 3; d++) {
    lo[d] = c[d] * s->chunk[d];
    hi[d] = lo[d] + s->chunk[d] < s->size[d] ? lo[d] + s->chunk[d] : s->size[d];
  }
}

uint64_t pc_chunk_bytes(const pc_scale *s, const int64_t c[3]) {
  int64_t lo[3], hi[3];
  pc_chunk_box(s, c, lo, hi);
  return 8u * (uint64_t)(hi[0] - lo[0]) * (uint64_t)(hi[1] - lo[1]) * (uint64_t)(hi[2] - lo[2]);
}

void pc_chunk_name(const pc_scale *s, const int64_t c[3], char *buf, size_t n) {
  int64_t lo[3], hi[3];
  pc_chunk_box(s, c, lo, hi);
  snprintf(buf, n, "%" PRId64 "-%" PRId64 "_%" PRId64 "-%" PRId64 "_%" PRId64 "-%" PRId64,
           lo[0] + s->offset[0], hi[0] + s->offset[0], lo[1] + s->offset[1], hi[1] + s->offset[1],
           lo[2] + s->offset[2], hi[2] + s->offset[2]);
}

/* The most frequent of n values; ties to the smaller. Sorts v (n is small). */
static uint64_t mode_of(uint64_t *v, int n) {
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
      uint64_t t = v[j];
      v[j] = v[j - 1];
      v[j - 1] = t;
    }
  uint64_t best = v[0];
  int bestn = 0;
  for (int i = 0; i < n;) {
    int j = i;
    while (j < n && v[j] == v[i]) j++;
    if (j - i > bestn) {
      bestn = j - i;
      best = v[i];
    }
    i = j;
  }
  return best;
}

void pc_downsample_mode(const uint64_t *fine, const int64_t fdim[3], const int64_t f[3],
                        uint64_t *out, const int64_t odim[3]) {
  size_t i = 0;
  for (int64_t z = 0; z < odim[2]; z++)
    for (int64_t y = 0; y < odim[1]; y++)
      for (int64_t x = 0; x < odim[0]; x++) {
        uint64_t v[PC_MAX_MODE_BLOCK];
        int n = 0;
        for (int64_t Z = f[2] * z; Z < f[2] * (z + 1) && Z < fdim[2]; Z++)
          for (int64_t Y = f[1] * y; Y < f[1] * (y + 1) && Y < fdim[1]; Y++) {
            const uint64_t *row = fine + (size_t)((Z * fdim[1] + Y) * fdim[0]);
            for (int64_t X = f[0] * x; X < f[0] * (x + 1) && X < fdim[0]; X++) v[n++] = row[X];
          }
        out[i++] = n ? mode_of(v, n) : 0;
      }
}

uint64_t pc_chunk_count(const pc_info *in) {
  uint64_t n = 0;
  for (int i = 0; i < in->nscales; i++)
    n += (uint64_t)in->s[i].grid[0] * (uint64_t)in->s[i].grid[1] * (uint64_t)in->s[i].grid[2];
  return n;
}

uint64_t pc_node_id(int layer, const int64_t c[3], int chunk_bits, uint64_t segment) {
  int shift = 64 - PC_LAYER_BITS;
  uint64_t id = (uint64_t)layer << shift;
  for (int d = 0; d < 3; d++) id |= (uint64_t)c[d] << (shift - chunk_bits * (d + 1));
  return id | segment;
}

int pc_segment_bits(int chunk_bits) { return 64 - PC_LAYER_BITS - 3 * chunk_bits; }

void pc_node_split(uint64_t id, int chunk_bits, int *layer, int64_t c[3], uint64_t *segment) {
  int shift = 64 - PC_LAYER_BITS;
  uint64_t mask = ((uint64_t)1 << chunk_bits) - 1;
  *layer = (int)(id >> shift);
  for (int d = 0; d < 3; d++) c[d] = (int64_t)((id >> (shift - chunk_bits * (d + 1))) & mask);
  *segment = id & (((uint64_t)1 << pc_segment_bits(chunk_bits)) - 1);
}
