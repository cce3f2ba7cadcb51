/*
 * The split itself: multi-source region growing inside the supervoxel, one
 * 26-connected component per side, strays to the majority of their neighbours.
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

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "chunks hold little-endian uint64 as the host stores them: little-endian hosts only"
#endif

/* --- the split ------------------------------------------------------------------------- */

/* Calls f on each 26-neighbour index of voxel i. */
#define FOR_NEIGHBOURS(p, i, j, BODY)                                                     \
  do {                                                                                    \
    int64_t x_ = (int64_t)((i) % (size_t)(p)->n[0]),                                      \
            y_ = (int64_t)(((i) / (size_t)(p)->n[0]) % (size_t)(p)->n[1]),                \
            z_ = (int64_t)((i) / (size_t)((p)->n[0] * (p)->n[1]));                        \
    for (int dz_ = -1; dz_ <= 1; dz_++)                                                   \
      for (int dy_ = -1; dy_ <= 1; dy_++)                                                 \
        for (int dx_ = -1; dx_ <= 1; dx_++) {                                             \
          int64_t xx_ = x_ + dx_, yy_ = y_ + dy_, zz_ = z_ + dz_;                         \
          if ((dx_ | dy_ | dz_) == 0 || xx_ < 0 || yy_ < 0 || zz_ < 0 || xx_ >= (p)->n[0] || \
              yy_ >= (p)->n[1] || zz_ >= (p)->n[2])                                       \
            continue;                                                                     \
          size_t j = vidx((p), xx_, yy_, zz_);                                            \
          BODY                                                                            \
        }                                                                                 \
  } while (0)

/* side[] set to UNSET on the supervoxel's voxels, 0 elsewhere; refused when the
 * supervoxel reaches an edge of the region that is not the volume's edge. */
static int mark_supervoxel(sp *p) {
  size_t n = p->nvox;
  int touches_edge = 0;
  for (size_t i = 0; i < n; i++) {
    p->side[i] = p->lab[i] == p->r->sv ? UNSET : 0;
    if (p->side[i]) {
      int64_t x = (int64_t)(i % (size_t)p->n[0]), y = (int64_t)((i / (size_t)p->n[0]) % (size_t)p->n[1]),
              z = (int64_t)(i / (size_t)(p->n[0] * p->n[1]));
      int64_t v[3] = {x, y, z};
      for (int d = 0; d < 3; d++)
        if ((v[d] == 0 && p->rlo[d] > 0) ||
            (v[d] == p->n[d] - 1 && p->rlo[d] + p->n[d] < p->s->size[d]))
          touches_edge = 1;
    }
  }
  if (touches_edge)
    return sp__fail(p, 2, "refused: supervoxel %" PRIu64 " continues past the locked chunks (seeds "
                    "more than one chunk from part of it)", p->r->sv);
  return 0;
}

/* The seeds' voxels take their side and start the queue (*qt entries): source
 * first, then sink, so ties in distance go to the source. */
static int place_seeds(sp *p, uint32_t *q, size_t *qt) {
  for (int k = 0; k < 2; k++)
    for (size_t s = 0; s < p->r->nseeds[k]; s++) {
      int64_t v[3];
      sp__seed_voxel(p, p->r->seeds[k][s], v);
      size_t i = vidx(p, v[0] - p->rlo[0], v[1] - p->rlo[1], v[2] - p->rlo[2]);
      if (p->lab[i] != p->r->sv)
        return sp__fail(p, 2, "refused: %s seed %" PRId64 ",%" PRId64 ",%" PRId64
                        " is in supervoxel %" PRIu64 ", not %" PRIu64, sp__side_name[k + 1],
                        p->r->seeds[k][s][0], p->r->seeds[k][s][1], p->r->seeds[k][s][2],
                        p->lab[i], p->r->sv);
      if (p->side[i] == UNSET) {
        p->side[i] = (uint8_t)(k + 1);
        q[(*qt)++] = (uint32_t)i;
      }
    }
  return 0;
}

/* One component per side: the largest (first found on a tie); the others are
 * strays (UNSET again). */
static void keep_largest(sp *p, uint32_t *q, int32_t *mark) {
  size_t n = p->nvox, qh, qt;
  for (size_t i = 0; i < n; i++) mark[i] = -1;
  for (int s = SRC; s <= SINK; s++) {
    size_t best = 0, best_start = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
      if (p->side[i] != s || mark[i] != -1) continue;
      qh = qt = 0;
      q[qt++] = (uint32_t)i;
      mark[i] = (int32_t)i;
      while (qh < qt) {
        size_t a = q[qh++];
        FOR_NEIGHBOURS(p, a, j, {
          if (p->side[j] == s && mark[j] == -1) {
            mark[j] = (int32_t)i;
            q[qt++] = (uint32_t)j;
          }
        });
      }
      if (qt > best) {
        best = qt;
        best_start = i;
      }
    }
    for (size_t i = 0; i < n; i++)
      if (p->side[i] == s && mark[i] != (int32_t)best_start) p->side[i] = UNSET;
  }
}

/* Strays: each 26-connected fragment joins the side most of its neighbours are on
 * (the source on a tie); a fragment with no labelled neighbour waits for the next
 * pass; one left with none at all (a piece of the supervoxel not connected to
 * either side) goes to the source. */
static void assign_strays(sp *p, uint32_t *q, int32_t *mark) {
  size_t n = p->nvox, qh, qt;
  for (int pass = 0;; pass++) {
    int changed = 0, left = 0;
    for (size_t i = 0; i < n; i++) mark[i] = -1;
    for (size_t i = 0; i < n; i++) {
      if (p->side[i] != UNSET || mark[i] != -1) continue;
      qh = qt = 0;
      q[qt++] = (uint32_t)i;
      mark[i] = 0;
      uint64_t votes[3] = {0, 0, 0};
      while (qh < qt) {
        size_t a = q[qh++];
        FOR_NEIGHBOURS(p, a, j, {
          if (p->side[j] == UNSET && mark[j] == -1) {
            mark[j] = 0;
            q[qt++] = (uint32_t)j;
          } else if (p->side[j] == SRC || p->side[j] == SINK) {
            votes[p->side[j]]++;
          }
        });
      }
      int to = votes[SINK] > votes[SRC] ? SINK : votes[SRC] ? SRC : 0;
      if (to) {
        for (size_t k = 0; k < qt; k++) p->side[q[k]] = (uint8_t)to;
        changed = 1;
      } else {
        left = 1;
      }
    }
    if (!left) break;
    if (!changed)
      for (size_t i = 0; i < n; i++)
        if (p->side[i] == UNSET) p->side[i] = SRC;
  }
}

/* Multi-source region growing, one component per side, strays to the majority of
 * their neighbours. side[] ends as SRC or SINK on every supervoxel voxel. */
int sp__compute(sp *p) {
  size_t n = p->nvox, qh = 0, qt = 0;
  uint32_t *q = malloc(n * sizeof *q);
  int32_t *mark = malloc(n * sizeof *mark);
  if (!q || !mark || n > UINT32_MAX) {
    free(q);
    free(mark);
    return sp__fail(p, 1, n > UINT32_MAX ? "region of %zu voxels is too large"
                                     : "out of memory for a %zu-voxel region growing", n);
  }
  int rc;
  if ((rc = mark_supervoxel(p)) || (rc = place_seeds(p, q, &qt))) goto out;
  /* breadth-first from every seed at once */
  while (qh < qt) {
    size_t i = q[qh++];
    FOR_NEIGHBOURS(p, i, j, {
      if (p->side[j] == UNSET) {
        p->side[j] = p->side[i];
        q[qt++] = (uint32_t)j;
      }
    });
  }
  sp__die_at(p, "compute");
  keep_largest(p, q, mark);
  assign_strays(p, q, mark);
  for (size_t i = 0; i < n; i++) p->count[p->side[i] == SINK ? 2 : p->side[i] == SRC ? 1 : 0]++;
  if (!p->count[1] || !p->count[2])
    rc = sp__fail(p, 2, "refused: the split leaves the %s side empty", p->count[1] ? "sink" : "source");
out:
  free(q);
  free(mark);
  return rc;
}
