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
  size_t cond_index;     /* OP_COND: how many conditions were added before it */
  uint64_t since;
  uint8_t hash[ST_HASH_BYTES];
} top;

struct st_txn {
  st_db *db;
  top *ops;
  size_t n, cap;
  size_t nconds;         /* conditions added so far */
  int err;               /* first failed st_txn_* call: latched, submit refuses the txn */
  char *errmsg;          /* its message (may be NULL when out of memory) */
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

/* The B+tree mutation of one group change; a value above
 * max_inline_value_bytes is appended to w's data file first (commit.c). */
int cm__mutation(st_db *db, st_writer *w, const gchange *c, st_mut *m);

/* Wall-clock nanoseconds (commit times), and as a deadline for
 * pthread_cond_timedwait (the database's condition variables use that clock). */
uint64_t cm__now_ns(void);
/* The commit time of the generation after latest: now, but always later
 * than latest's. */
uint64_t cm__commit_time(const st_vers *latest);
struct timespec cm__ts_of(uint64_t ns);

/* Runs fn(arg) on the fsync helper thread while the caller (the committer)
 * goes on; cm__job_wait returns its result (and message), running meanwhile
 * the tasks the job shares (cm__job_share). One job at a time; without the
 * helper, post runs it at once. */
void cm__job_post(st_db *db, int (*fn)(void *), void *arg);
int cm__job_wait(st_db *db);

/* What one commit adds to the statistics in st_db. */
typedef struct gstats {
  uint64_t bytes_written, ns_build, ns_sync, ns_publish, ns_tree_wait;
} gstats;

/* --- commit log mode ------------------------------------------------------------ */

/* A batch: consecutive generations first..last whose nodes and values are in
 * one data file; published with one manifest of generation last. */
typedef struct st_batch {
  st_writer w;             /* the data file; w.f stays open until published */
  char path[ST_DATA_PATH_MAX];
  uint64_t first, last;    /* last = 0: no generation committed in it yet */
  uint64_t t_open;         /* when it was opened (ns, wall clock) */
  uint64_t first_time;     /* commit time of its first generation */
  uint64_t bytes;          /* counted in db->backlog */
  int dir_synced;          /* its entry in d/ is durable */
  int file_synced;         /* its bytes are durable (the publisher's first step) */
  st_mstate ms;            /* the manifest state at `last`, set when it closes */
  struct st_batch *next;
} st_batch;

/* logcommit.c */
/* Commits the group through the log: values and nodes into the open batch,
 * one log record, one sync. Same contract as the per-commit write. */
int lc__group(st_db *db, group *g, const st_vers *latest, st_vers *nv, st_mstate *nms, gstats *st);
/* Opens a batch whose first generation is gen (db->batch). */
int lc__batch_open(st_db *db, uint64_t gen);
/* Applies sorted unique muts as generation gen at time t over latest and
 * db->ms, writing through the open batch. */
int lc__apply(st_db *db, const st_mut *muts, size_t n, const st_vers *latest, uint64_t gen, uint64_t t,
              st_vers *nv, st_mstate *nms);
/* Closes the open batch (if any): hands it to the publisher, or drops it when
 * nothing committed in it. The next log sync starts a new segment. */
void lc__batch_close(st_db *db);
/* The time (wall clock ns) the open batch is due to close; 0 none. */
uint64_t lc__batch_due(st_db *db);
void lc__batch_free(st_batch *b);

/* publish.c */
int pb__start(st_db *db);
/* Publishes every queued batch, then stops the publisher. */
void pb__stop(st_db *db);
/* Queues a closed batch (ownership passes). */
void pb__enqueue(st_db *db, st_batch *b);
/* Makes batch b the published state: fsync of its data file and of d/, the
 * manifest of b->last written, fsynced, renamed, the directory fsynced.
 * *fatal = 1 when the data file's flush or fsync failed: trying again could
 * not be trusted. Any other failure may be retried. */
int pb__publish(st_db *db, st_batch *b, int *fatal);

#endif
