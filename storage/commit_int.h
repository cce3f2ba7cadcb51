/*
 * Private header of the commit pipeline: the transaction (txn.c builds it),
 * the group overlay and validation (validate.c), the committer (commit.c).
 */
#ifndef STRATA_STORAGE_COMMIT_INT_H
#define STRATA_STORAGE_COMMIT_INT_H

#include <stdint.h>

#include "storage/engine_int.h"

enum { OP_PUT = 1, OP_PUT_REF = 2, OP_DELETE = 3, OP_COND = 4 };

typedef struct top {
  int kind;
  uint8_t *key;          /* owned (one allocation with a copied value) */
  size_t klen;
  const uint8_t *val;
  size_t vlen;
  char *path;            /* OP_PUT_REF, owned */
  uint64_t off, len;
  int cond;              /* OP_COND: enum st_cond_kind */
  uint64_t since;
  uint8_t hash[ST_HASH_BYTES];
} top;

struct st_txn {
  st_db *db;
  top *ops;
  size_t n, cap;
  st_fence_fn fence;
  st_fence_done_fn fence_done;
  void *fence_ctx;
  int fence_passed;      /* the fence returned 0: fence_done is owed */
  st_done_fn done;
  void *done_ctx;
  st_txn *next;
  st_result res;
  int accepted;
};

/* The group's overlay: the survivors' changes so far, by key (validate.c). */
typedef struct gchange {
  const uint8_t *key;
  size_t klen;
  const top *op;          /* OP_PUT, OP_PUT_REF or OP_DELETE */
  uint32_t ref_file;      /* OP_PUT_REF: interned id */
} gchange;

typedef struct group {
  st_db *db;
  gchange *ch;
  size_t n, cap;
  uint32_t *slot;         /* open addressing: index + 1 */
  size_t scap;
} group;

/* validate.c: checks t against latest plus the group so far (conditions,
 * data references, then the fence); on success adds its changes to g and
 * sets t->accepted, otherwise sets t->res. */
void cm__validate(group *g, st_txn *t, const st_vers *latest);
void cm__group_free(group *g);
/* qsort order of a group's changes: by key. */
int cm__cmp_change(const void *a, const void *b);

/* Wall-clock nanoseconds (commit times). */
uint64_t cm__now_ns(void);

#endif
