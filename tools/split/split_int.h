/*
 * The split library's private header: the state of one split (or replay) and
 * the steps its files share. split.c: helpers, keys, locks, reads, a fresh
 * split; request.c: the request's JSON; grow.c: the region growing;
 * commit.c: ids and the fenced commit; replay.c: op replay.
 */
#ifndef STRATA_TOOLS_SPLIT_INT_H
#define STRATA_TOOLS_SPLIT_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "locks/lock.h"
#include "tools/common/kvc.h"
#include "tools/populate/precomputed.h"
#include "tools/split/split.h"

enum { SRC = 1, SINK = 2, UNSET = 3 }; /* side[] values; 0 = not the supervoxel */
extern const char *const sp__side_name[]; /* by side: "", "source", "sink" */

/* One (chunk, side) that needs a new id. */
typedef struct sp_id {
  int64_t c[3];
  int side;
  uint64_t id;
} sp_id;

typedef struct sp {
  rpc_client *c;
  const split_req *r;
  const split_opts *o;
  char *err;
  size_t errlen;
  int replay;
  pc_info info;
  const pc_scale *s;
  uint64_t op, base_gen;
  /* rows[0] is the root row (8 bytes), rows[1..nrows) the L2 chunk rows. */
  size_t nrows;
  uint8_t (*rows)[LK_L2_KEY_LEN];
  int64_t clo[3], chi[3]; /* chunk grid box [clo, chi] inclusive */
  int64_t rlo[3], n[3];   /* region: voxel origin (no offset) and dims */
  size_t nvox;
  uint64_t *lab;
  uint8_t *side;
  size_t nids;
  sp_id *ids;
  uint64_t count[3];
  /* the renewal thread */
  pthread_t th;
  int th_on;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop;
  atomic_int lost;
  int locked; /* 1 once the chunk locks are held */
  double t_locks, t_read, t_compute, t_commit;
} sp;

static inline size_t vidx(const sp *p, int64_t x, int64_t y, int64_t z) {
  return (size_t)(x + p->n[0] * (y + p->n[1] * z));
}

int sp__acquire(sp *p, size_t from, size_t to, int indefinite, const char *what);
void sp__chunk_copy(sp *p, const int64_t c[3], uint64_t *buf, int to_region);
char *sp__chunk_key(sp *p, const int64_t c[3]);
void sp__die_at(sp *p, const char *step);
int sp__fail(sp *p, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void sp__fill_rows(sp *p, ProtobufCBinaryData *b, size_t from);
char *sp__ids_key(sp *p);
int sp__kv_get(sp *p, const char *key, uint64_t gen, int *found, uint8_t **val, size_t *len);
char *sp__lineage_key(sp *p);
int sp__load_info(sp *p);
void sp__logkv(sp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
double sp__now_ms(void);
int sp__plan_chunks(sp *p);
int sp__read_region(sp *p, uint64_t gen);
int sp__release_all(sp *p);
void *sp__renew_main(void *arg);
int sp__renew_root(sp *p);
void sp__renew_stop(sp *p);
char *sp__result_key(sp *p);
void sp__rows_hex(sp *p, const uint8_t *row, size_t len, char *buf, size_t cap);
int sp__seed_voxel(sp *p, const int64_t in[3], int64_t v[3]);
int sp__set_status(sp *p, Strata__V1__OpStatus st, const char *reason);
void sp__sp_free(sp *p);
void sp__sp_init(sp *p, rpc_client *c, const split_req *r, const split_opts *o, char *err,
                    size_t errlen);
int sp__compute(sp *p);
int sp__commit(sp *p, size_t nputs, char **keys, uint8_t **vals, size_t *lens, size_t nconds,
                  char **cond_keys, uint64_t *gen);
int sp__finish(sp *p, split_out *out);
int sp__needed_ids(sp *p);
int sp__take_ids(sp *p);

#endif
