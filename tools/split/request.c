/*
 * The split request: its JSON form (the op payload) and its checks.
 * tools/split/README.md has the design.
 */
#include "tools/split/split_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "common/err.h"
#include "locks/lock.h"
#include "tools/populate/precomputed.h"

/* --- the request ------------------------------------------------------------------------ */

static int seeds_parse(json_t *a, const char *name, size_t *n, int64_t (**out)[3], char *err,
                       size_t errlen) {
  if (!json_is_array(a) || json_array_size(a) > SPLIT_MAX_SEEDS) {
    snprintf(err, errlen, "payload: \"%s\" must be an array of at most %d [x,y,z]", name,
             SPLIT_MAX_SEEDS);
    return -1;
  }
  *n = json_array_size(a);
  *out = calloc(*n ? *n : 1, sizeof **out);
  if (!*out) {
    snprintf(err, errlen, "out of memory");
    return -1;
  }
  for (size_t i = 0; i < *n; i++) {
    json_t *v = json_array_get(a, i);
    if (!json_is_array(v) || json_array_size(v) != 3) goto bad;
    for (int d = 0; d < 3; d++) {
      json_t *x = json_array_get(v, (size_t)d);
      if (!json_is_integer(x)) goto bad;
      (*out)[i][d] = json_integer_value(x);
    }
  }
  return 0;
bad:
  snprintf(err, errlen, "payload: %s[%zu] is not [x,y,z] integers", name, *n);
  return -1;
}

int split_req_parse(const char *text, size_t len, split_req *r, char *err, size_t errlen) {
  memset(r, 0, sizeof *r);
  json_error_t je;
  json_t *j = json_loadb(text, len, 0, &je);
  if (!j) {
    snprintf(err, errlen, "payload: not JSON (%s)", je.text);
    return -1;
  }
  int rc = -1;
  json_t *pf = json_object_get(j, "prefix"), *sv = json_object_get(j, "sv"),
         *cb = json_object_get(j, "chunk_bits");
  if (!json_is_string(pf) || !json_is_integer(sv) || !json_is_integer(cb)) {
    snprintf(err, errlen, "payload: needs \"prefix\" (string), \"sv\" and \"chunk_bits\" (integers)");
    goto out;
  }
  r->prefix = strdup(json_string_value(pf));
  r->sv = (uint64_t)json_integer_value(sv);
  r->chunk_bits = (int)json_integer_value(cb);
  if (!r->prefix) goto out;
  if (seeds_parse(json_object_get(j, "source"), "source", &r->nseeds[0], &r->seeds[0], err,
                  errlen) ||
      seeds_parse(json_object_get(j, "sink"), "sink", &r->nseeds[1], &r->seeds[1], err, errlen))
    goto out;
  rc = 0;
out:
  json_decref(j);
  if (rc) split_req_free(r);
  return rc;
}

char *split_req_json(const split_req *r) {
  json_t *j = json_pack("{s:s, s:I, s:i}", "prefix", r->prefix, "sv", (json_int_t)r->sv,
                        "chunk_bits", r->chunk_bits);
  for (int k = 0; k < 2 && j; k++) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < r->nseeds[k]; i++)
      json_array_append_new(a, json_pack("[I,I,I]", (json_int_t)r->seeds[k][i][0],
                                         (json_int_t)r->seeds[k][i][1],
                                         (json_int_t)r->seeds[k][i][2]));
    json_object_set_new(j, sp__side_name[k + 1], a);
  }
  char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
  json_decref(j);
  return s;
}

void split_req_free(split_req *r) {
  free(r->prefix);
  free(r->seeds[0]);
  free(r->seeds[1]);
  memset(r, 0, sizeof *r);
}

int split_req_check(const split_req *r, char *err, size_t errlen) {
  for (int k = 0; k < 2; k++)
    if (r->nseeds[k] == 0) {
      snprintf(err, errlen, "refused: the %s side has no seed (an empty side)", sp__side_name[k + 1]);
      return -1;
    }
  for (size_t i = 0; i < r->nseeds[0]; i++)
    for (size_t j = 0; j < r->nseeds[1]; j++)
      if (!memcmp(r->seeds[0][i], r->seeds[1][j], sizeof r->seeds[0][i])) {
        snprintf(err, errlen, "refused: voxel %" PRId64 ",%" PRId64 ",%" PRId64
                 " is a seed of both sides", r->seeds[0][i][0], r->seeds[0][i][1],
                 r->seeds[0][i][2]);
        return -1;
      }
  if (r->chunk_bits < 1 || r->chunk_bits > 14) {
    snprintf(err, errlen, "refused: chunk_bits %d is not in 1..14", r->chunk_bits);
    return -1;
  }
  int layer;
  int64_t c[3];
  uint64_t seg;
  pc_node_split(r->sv, r->chunk_bits, &layer, c, &seg);
  if (layer != 1 || seg == 0) {
    snprintf(err, errlen, "refused: %" PRIu64 " is not a supervoxel id (layer %d, segment %" PRIu64
             ")", r->sv, layer, seg);
    return -1;
  }
  return 0;
}
