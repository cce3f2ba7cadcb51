/*
 * Private to locks/: the lk_manager struct, the in-memory lock table and the
 * on-disk key/value layout. locks/README.md explains the design; this file is
 * its code-level map.
 */
#ifndef STRATA_LOCKS_LK_INT_H
#define STRATA_LOCKS_LK_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include <rocksdb/c.h>

#include "common/mutex.h"
#include "locks/counter.h"
#include "locks/lock.h"
#include "locks/oplog.h"

/* --- on-disk layout (README "On-disk layout") ---------------------------- */
#define LK__TAG_LOCK 'L'    /* 'L' row              -> lock record */
#define LK__TAG_SCOPE 'S'   /* 'S' op(8) row        -> "" (indefinite scope) */
#define LK__TAG_OP 'O'      /* 'O' op(8)            -> op record */
#define LK__TAG_CTR 'C'     /* 'C' name             -> next id (8) */
#define LK__TAG_TOKEN 'T'   /* 'T' partition(2)     -> token high-water (8) */
#define LK__TAG_META 'V'    /* 'V'                  -> format string */
#define LK__TAG_ACKED 'G'   /* 'G'                  -> last acknowledged store generation (8) */
#define LK__FORMAT "strata-locks/1"

#define LK__REC_VERSION 1
#define LK__REC_LEN 58      /* version, flags, temporal slot (32), indefinite slot (24) */

static inline void lk__put64(uint8_t *p, uint64_t v) {
  for (int i = 7; i >= 0; i--) { p[i] = (uint8_t)v; v >>= 8; }
}
static inline uint64_t lk__get64(const uint8_t *p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; i++) v = (v << 8) | p[i];
  return v;
}

/* --- in-memory lock table ------------------------------------------------ */

/* One holder of one kind on a row; op == 0 means empty. */
typedef struct lk__slot {
  uint64_t op;
  uint64_t token;
  int64_t acquired_at;
  int64_t expires_at;  /* LK_NEVER for the indefinite slot */
} lk__slot;

struct lk__waiter;

/* A waiter's place in one row's FIFO queue. */
typedef struct lk__wnode {
  struct lk__wnode *prev, *next;
  struct lk__waiter *w;
} lk__wnode;

/* A row that is held or waited for. Lives in its partition's hash chain;
 * freed when both slots are empty and nobody waits. */
typedef struct lk__rowent {
  struct lk__rowent *next;   /* hash chain */
  uint64_t hash;
  uint64_t wseq;             /* write sequence of the row's last change (README "Durability order") */
  lk__slot tmp, ind;
  lk__wnode *qhead, *qtail;  /* waiters, arrival order */
  uint32_t pins;             /* fenced commits in flight on this row (README "Fences hold") */
  uint16_t len;
  uint8_t key[];
} lk__rowent;

/* A partition: one mutex guards its hash table, its rows' slots and queues. */
typedef struct lk__part {
  strata_mutex mu;
  lk__rowent **buckets;
  size_t nbuckets;
  size_t count;
} __attribute__((aligned(64))) lk__part;

/* A blocked lk_acquire. Lives on the waiting thread's stack; it is in row
 * queues only while the thread is inside lk_acquire, and it leaves them under
 * the partition mutexes, so a kicker holding a partition mutex may touch it.
 * mu is a leaf lock: taken after partition mutexes, never before them. */
typedef struct lk__waiter {
  strata_mutex mu;
  pthread_cond_t cv;
  int kicked;                /* guarded by mu */
  uint64_t op;
  lk__wnode *nodes;          /* one per distinct row of the request */
} lk__waiter;

/* Wakes w (it re-checks its request). Caller holds a partition mutex of a
 * row w is queued on, which keeps w alive. */
void lk__waiter_kick(lk__waiter *w);

struct oplog {
  lk_manager *lk;
  strata_mutex mu;        /* serializes creates and status changes */
  _Atomic uint64_t last_id;
};

struct ctr_table {
  lk_manager *lk;
  strata_mutex mu;        /* serializes allocations */
};

/* The WAL files the sync leader fdatasyncs (walsync.c). */
typedef struct lk__wal_file {
  uint64_t num; /* NNNNNN of NNNNNN.log */
  int fd;
  int seen;     /* in the latest directory listing */
} lk__wal_file;

typedef struct lk__wal_set {
  lk__wal_file *f;
  size_t n, cap;
} lk__wal_set;

struct lk_manager {
  rocksdb_t *db;
  rocksdb_options_t *dbopts;
  rocksdb_writeoptions_t *wo;        /* sync=true: op log and counters */
  rocksdb_writeoptions_t *wo_lock;   /* sync=false: lock batches, synced by lk__durable */
  int no_sync;
  /* Group sync of the WAL (README "Durability order"). write_seq counts lock
   * batches written; synced_seq is the highest one known durable. */
  _Atomic uint64_t write_seq;
  strata_mutex sync_mu;           /* leaf lock: guards the fields below */
  pthread_cond_t sync_cv;
  uint64_t synced_seq;
  int syncing;                       /* a thread is in lk__wal_sync: the leader */
  lk__wal_set wal;                   /* the leader's only */
  lk_wal_sync_hook wal_sync_hook;    /* tests: told of each fdatasync (lock.h) */
  void *wal_sync_ctx;
  /* Failure state (README "Full disk"), guarded by sync_mu. db_failed is the
   * code of the first failed write or WAL sync (ENOSPC, STRATA_EIO); while it
   * is set nothing writes to or syncs the instance (RocksDB 7.8 asserts when a
   * WAL writer that saw an error is flushed again; our own sync would be safe,
   * but a reopen makes everything durable anyway). A failed write leaves memory
   * equal to the WAL file, so lk__db_recover may reopen the instance once the
   * disk has room; a failed sync may leave memory ahead of disk (db_fatal):
   * only a restart reloads. */
  int db_failed;
  int db_fatal;
  int64_t recover_at_ns;             /* last reopen attempt (monotonic) */
  char db_fail_msg[512];
  /* Every use of `db` holds db_rw for reading; lk__db_recover holds it for
   * writing while it swaps the instance. Order: partition mutexes, oplog.mu,
   * ctrs.mu before db_rw; sync_mu after it. After a failed reopen db is a
   * read-only instance (db_readonly; writes refused) or, if even that failed,
   * NULL. */
  pthread_rwlock_t db_rw;
  int db_readonly;                   /* under db_rw */
  char *path;
  strata_mutex gen_mu;            /* orders 'G' writes; before db_rw */
  uint64_t acked_gen;                /* the 'G' value, under gen_mu */
  rocksdb_readoptions_t *ro;
  lk_clock_fn clock;
  void *clock_ctx;
  int64_t wait_poll_ns;
  unsigned nparts;
  unsigned part_shift;       /* partition = (first two key bytes) >> part_shift */
  lk__part *parts;
  _Atomic uint64_t token_hwm; /* largest token handed out or found on disk */
  atomic_int shutting_down;
  /* Releases waiting for pinned rows (README "Fences hold"). pin_mu is a leaf
   * lock taken after partition mutexes; pin_epoch grows on every unpin that
   * brings a row's pins to 0. */
  strata_mutex pin_mu;
  pthread_cond_t pin_cv;
  uint64_t pin_epoch;
  uint64_t pin_waiters;
  struct oplog oplog;
  struct ctr_table ctrs;
};

/* Partition of a row key: its first two bytes (the hash prefix of
 * PyChunkedGraph keys) scaled to nparts. */
static inline unsigned lk__part_of(const lk_manager *lk, const uint8_t *key, size_t len) {
  unsigned hi = (unsigned)key[0] << 8 | (len > 1 ? key[1] : 0);
  return hi >> lk->part_shift;
}

/* --- a request's rows, sorted and deduplicated (lock.c) -------------------- */

typedef struct lk__req_row {
  const uint8_t *key;
  size_t len;
  size_t idx;        /* first index in the caller's array */
  unsigned part;
  uint64_t hash;
  lk__rowent *ent;   /* valid only while the partition mutex is held (or the row is pinned) */
} lk__req_row;

typedef struct lk__prep {
  lk__req_row *rows;
  size_t n;
  unsigned *parts;   /* distinct partitions, ascending */
  size_t nparts;
  int all;           /* every partition (release of all rows) */
  uint64_t need;     /* write sequence that must be durable before answering */
} lk__prep;

/* Sorts rows by (partition, key) and drops duplicates (keeping the first index). */
int lk__prep_rows(lk_manager *lk, const lk_row *rows, size_t nrows, lk__prep *pr);
void lk__prep_free(lk__prep *pr);
/* Takes / drops the request's partition mutexes, in ascending order. */
void lk__lock_parts(lk_manager *lk, const lk__prep *pr);
void lk__unlock_parts(lk_manager *lk, const lk__prep *pr);
/* Asserts (in the checked builds, common/mutex.h) that the calling thread
 * holds every partition mutex of the request: the precondition of the
 * functions below that say "partition mutexes held". */
void lk__assert_parts_held(lk_manager *lk, const lk__prep *pr);
/* Looks up every row's entry (NULL when absent) and raises pr->need to the
 * rows' last writes. Partition mutexes held. */
void lk__find_ents(lk_manager *lk, lk__prep *pr);
/* Wakes every waiter queued on e except self. Partition mutex held. */
void lk__kick_row(lk__rowent *e, const lk__waiter *self);
int lk__check_op(uint64_t op, const char *fn);
/* Waits until some row's pins drop to 0 (or lk_shutdown: STRATA_ESHUTDOWN).
 * Called with pr's partition mutexes held; returns with them released. The
 * caller then decides again from the start. */
int lk__wait_unpinned(lk_manager *lk, lk__prep *pr, const char *fn);

/* A temporal slot is live while now < expires_at. */
static inline int lk__live(const lk__slot *s, int64_t now) { return s->op && now < s->expires_at; }
/* Does e's temporal slot keep other ops out? Live, or pinned by a fenced
 * commit in flight (its expiry is deferred until the commit is decided). */
static inline int lk__tmp_blocks(const lk__rowent *e, int64_t now) {
  return e->tmp.op && (now < e->tmp.expires_at || e->pins);
}

/* Does op hold the row live in any slot? (A pinned temporal slot past its
 * expiry is not held by its op any more, though it still keeps others out.) */
static inline int lk__holds(const lk__rowent *e, uint64_t op, int64_t now) {
  return e && ((e->tmp.op == op && lk__live(&e->tmp, now)) || e->ind.op == op);
}

/* Writes a lock batch to the WAL without syncing it and returns its write
 * sequence in *seq. Call with the partition mutexes held; call lk__durable
 * after releasing them and before answering. Returns 0 or STRATA_EIO. */
int lk__write(lk_manager *lk, rocksdb_writebatch_t *b, const char *what, uint64_t *seq);

/* Waits until every lock batch up to seq is synced, syncing the WAL itself
 * when no other thread is (group commit). Holds no partition mutex. Returns
 * 0, or STRATA_EIO once a sync has failed (the manager then stays failed). */
int lk__durable(lk_manager *lk, uint64_t seq);

/* Encodes/decodes a row's lock record. decode returns STRATA_ECORRUPT. */
void lk__rec_encode(const lk__slot *tmp, const lk__slot *ind, uint8_t out[LK__REC_LEN]);
int lk__rec_decode(const uint8_t *v, size_t n, lk__slot *tmp, lk__slot *ind);

/* Row-key validation shared by every entry point: names field in errors. */
int lk__check_rows(const lk_row *rows, size_t nrows, const char *field);

/* Hash table of one partition; caller holds p->mu. */
uint64_t lk__hash(const uint8_t *key, size_t len);
lk__rowent *lk__row_find(lk__part *p, const uint8_t *key, size_t len, uint64_t h);
int lk__row_insert(lk__part *p, const uint8_t *key, size_t len, uint64_t h, lk__rowent **out);
/* Frees r if no slot is held and nobody waits; returns 1 if it did. */
int lk__row_maybe_free(lk__part *p, lk__rowent *r);
void lk__part_destroy(lk__part *p);


/* Loads the op log's last id; called by lk_open after the lock reload. */
int lk__oplog_load(lk_manager *lk);

/* Turns a RocksDB error string (freed here) into a code with context:
 * ENOSPC for a full disk (RESOURCE_EXHAUSTED on the wire), else STRATA_EIO. */
int lk__dberr(char *err, const char *what);

/* Takes db_rw for reading and returns 0 with lk->db usable, or the failure
 * code (db_rw not held) when the instance is closed after a full disk and
 * cannot be reopened yet. Pair with lk__db_leave. */
int lk__db_enter(lk_manager *lk, const char *what);

/* The group sync (walsync.c): fdatasyncs every WAL file of the database, and
 * the directory when one is new. Called only by the sync leader, with db_rw
 * held for reading. */
int lk__wal_sync(lk_manager *lk);
void lk__wal_close(lk__wal_set *w);
void lk__db_leave(lk_manager *lk);

/* A synced put (op log, counters) through the failure state: refused while the
 * instance is failed and cannot be recovered; a failure marks it failed. */
int lk__put_sync(lk_manager *lk, const void *k, size_t kl, const void *v, size_t vl,
                 const char *what);

#endif
