/*
 * The lock manager: durable row locks on the server's clock, with fencing
 * tokens, waiting with deadlines, listing, and a fence hook for the store's
 * commit step. One lk_manager owns one RocksDB directory that also holds the
 * op log (locks/oplog.h) and the id counters (locks/counter.h).
 *
 * Functions return 0, a negative STRATA_E* code, or a positive errno (see
 * common/err.h); failures leave a detail message in strata_errmsg(). Expected
 * outcomes (a row is held by another op, a lock was lost) are not failures:
 * they come back as data in an lk_result. See docs/locks.md for semantics.
 */
#ifndef STRATA_LOCKS_LOCK_H
#define STRATA_LOCKS_LOCK_H

#include <stddef.h>
#include <stdint.h>

typedef struct lk_manager lk_manager;

/* Nanoseconds on the server's clock. Deadlines and expiries are absolute
 * values of this clock and are persisted, so it must be a wall clock that
 * survives restarts (the default is CLOCK_REALTIME). */
typedef int64_t (*lk_clock_fn)(void *ctx);

#define LK_KEY_MAX 4096u          /* longest row key, bytes */
#define LK_ROWS_MAX 1000000u      /* most rows in one request */
#define LK_NEVER INT64_MAX        /* expires_at of an indefinite lock */

/* Tests: called before each fdatasync of a WAL file by the group sync with
 * its number (NNNNNN of NNNNNN.log), and with LK_WAL_DIR_SYNCED after a
 * directory fsync. */
typedef void (*lk_wal_sync_hook)(void *ctx, uint64_t wal_number);
#define LK_WAL_DIR_SYNCED UINT64_MAX

typedef struct lk_options {
  const char *path;        /* RocksDB directory; created if missing. Required. */
  lk_clock_fn clock;       /* default: CLOCK_REALTIME */
  void *clock_ctx;
  unsigned partitions;     /* lock table partitions, power of two 1..65536; default 64 */
  int no_sync;             /* tests only: skip fsync (crash of the OS may lose acks). Default 0 */
  int64_t wait_poll_ns;    /* longest sleep of a waiter between re-checks; default 20 ms */
  lk_wal_sync_hook wal_sync_hook; /* tests only; default NULL */
  void *wal_sync_ctx;
} lk_options;

/* Fills in the defaults; the caller then sets path. */
void lk_options_init(lk_options *o);

/* Opens (creating if needed) the locks database and reloads every lock with
 * its deadline, the fencing-token high-water mark and the op log's last id
 * into memory; scopes and counters stay in RocksDB and are read when used.
 * On success *out is owned by the caller until lk_close. */
int lk_open(const lk_options *o, lk_manager **out);

/* Wakes every waiting lk_acquire, which returns STRATA_ESHUTDOWN; later calls
 * that would wait fail the same way. Safe to call from any thread. */
void lk_shutdown(lk_manager *lk);

/* Closes the database and frees lk. No call on lk may be running or start. */
void lk_close(lk_manager *lk);

/* Deferred durability, for a server that answers many calls per group sync
 * from one thread. Between lk_defer_begin() and lk_defer_end() on one thread,
 * lk_acquire, lk_renew, lk_release and lk_privileged_release return as soon
 * as their change is written and applied, without waiting for the WAL sync
 * that makes it (or the rows they looked at) durable; lk_defer_end() returns
 * the batch number they need (0: none). Nobody may be told their outcome
 * before lk_durable_wait(lk, n) returned 0; a failure there is the call's. */
void lk_defer_begin(void);
uint64_t lk_defer_end(void);
int lk_durable_wait(lk_manager *lk, uint64_t n);

/* The server clock as lk sees it. */
int64_t lk_now(lk_manager *lk);

typedef enum lk_kind {
  LK_TEMPORAL = 1,   /* held until expires_at or release */
  LK_INDEFINITE = 2, /* held until released; survives its holder's crash */
} lk_kind;

/* Kind masks for release and list; 0 means both. */
#define LK_KIND_BIT(k) (1u << (k))
#define LK_KINDS_ALL (LK_KIND_BIT(LK_TEMPORAL) | LK_KIND_BIT(LK_INDEFINITE))

/* A row key: 1..LK_KEY_MAX bytes, borrowed from the caller for the call. */
typedef struct lk_row {
  const uint8_t *key;
  size_t len;
} lk_row;

/* PyChunkedGraph's hash-prefixed keys. out must have room for
 * LK_L2_KEY_LEN / LK_BLOCK_KEY_LEN bytes. */
#define LK_L2_KEY_LEN 10
#define LK_BLOCK_KEY_LEN 26
void lk_l2_chunk_key(uint64_t chunk_id, uint8_t out[LK_L2_KEY_LEN]);
void lk_block_key(uint64_t x, uint64_t y, uint64_t z, uint8_t out[LK_BLOCK_KEY_LEN]);

typedef struct lk_acquire_req {
  uint64_t op;              /* holder, non-zero; indefinite needs an op-log op */
  const lk_row *rows;
  size_t nrows;             /* 1..LK_ROWS_MAX; duplicates allowed */
  lk_kind kind;
  int64_t ttl_ns;           /* temporal: > 0; ignored for indefinite */
  int64_t wait_deadline;    /* absolute clock ns; <= now: do not wait */
  /* Optional: polled while the request waits, before every decision (so at
   * least every wait_poll_ns). Non-zero (a STRATA_* code, e.g. the caller's
   * gRPC call was cancelled) ends the wait with that code, granting nothing. */
  int (*abandoned)(void *ctx);
  void *abandoned_ctx;
} lk_acquire_req;

typedef enum lk_status {
  LK_GRANTED = 0,   /* acquire/renew succeeded */
  LK_CONFLICT = 1,  /* acquire refused (no wait); see conflicts */
  LK_TIMEDOUT = 2,  /* waiting acquire reached its deadline; see conflicts */
  LK_NOT_HELD = 3,  /* renew refused: the op does not hold every row; see conflicts */
} lk_status;

/* One reason a row was refused. For LK_NOT_HELD, holder_op is the current
 * live holder or 0 when the row is free (released or expired). */
typedef struct lk_conflict {
  size_t row;          /* index into the request's rows */
  uint64_t holder_op;
  lk_kind kind;
  int64_t acquired_at;
  int64_t expires_at;  /* LK_NEVER for indefinite */
  int queued;          /* 1: not a holder but an earlier waiter (FIFO order) */
} lk_conflict;

typedef struct lk_result {
  lk_status status;
  uint64_t token;        /* LK_GRANTED acquire: the fencing token (already_held: the largest
                            token over the rows) */
  int64_t expires_at;    /* LK_GRANTED: earliest expiry over the rows */
  int already_held;      /* acquire: the op already held every row in the requested kind (a
                            temporal request also counts rows it holds indefinitely);
                            nothing changed */
  lk_conflict *conflicts;  /* owned by the result; freed by lk_result_free */
  size_t nconflicts;
} lk_result;

/* All rows or none, in one durable write. Returns 0 with the outcome in *res
 * (free with lk_result_free), or an error (then *res holds nothing). */
int lk_acquire(lk_manager *lk, const lk_acquire_req *req, lk_result *res);

/* Extends the op's temporal locks on rows to now + ttl_ns, only if the op
 * holds every row and none has expired (indefinite rows count as held and
 * are left as they are). Otherwise res->status = LK_NOT_HELD. */
int lk_renew(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows,
             int64_t ttl_ns, lk_result *res);

void lk_result_free(lk_result *res);

/* Releases the slots op holds on rows (rows == NULL: everywhere), of the
 * kinds in kinds (0: both). Expired temporal slots of op are removed too.
 * *released (may be NULL) counts removed slots. Releasing what op does not
 * hold is not an error. Indefinite releases clear the op's scope rows in
 * the same write. */
int lk_release(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows,
               unsigned kinds, size_t *released);

/* Operator recovery: like lk_release but op == 0 means "whatever op holds
 * these rows" (rows are then required). */
int lk_privileged_release(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows,
                          unsigned kinds, size_t *released);

/* *holds = 1 if op holds every row live right now, else 0 and *missing (may
 * be NULL) is the index of the first row in the caller's order that it does
 * not hold. */
int lk_check(lk_manager *lk, uint64_t op, const lk_row *rows, size_t nrows,
             int *holds, size_t *missing);

/* The store's fence hooks (storage's st_fence_fn and st_fence_done_fn), for
 * one commit; ctx is an lk_fence owned by the caller that lives until the
 * commit completes. See docs/locks.md "Fenced commits".
 *
 * lk_fence_check returns 0 if fence->op holds every row live now, else
 * STRATA_EFENCED with a detail naming the first row lost and who holds it
 * now. On 0 it also pins the rows until lk_fence_done: while pinned, no
 * other op can acquire a row even once the op's temporal lock on it has
 * expired, and releases of it (lk_release, lk_privileged_release) wait.
 * Call lk_fence_done exactly once after every check that returned 0, once
 * the commit is durable and visible or has failed. */
typedef struct lk_fence {
  lk_manager *lk;
  uint64_t op;
  const lk_row *rows;
  size_t nrows;
  /* Set by lk_fence_done: a temporal lock of op on a fenced row reached its
   * expiry while the commit was in flight. It was held for the commit (no
   * other op could take the row) and is expired now. */
  int expired_in_flight;
  void *pins__;  /* internal: the rows lk_fence_check pinned */
} lk_fence;
int lk_fence_check(void *ctx);
void lk_fence_done(void *ctx, int committed);

/* --- self-check ----------------------------------------------------------- */

typedef struct lk_selfcheck_info {
  uint64_t rows;          /* row entries in memory */
  uint64_t held_rows;     /* rows with a live holder (a pinned temporal slot counts) */
  uint64_t queued;        /* waiting acquires' places in row queues */
  uint64_t pinned_rows;   /* rows pinned by fenced commits in flight */
  uint64_t pin_waiters;   /* releases waiting for a pinned row */
  uint64_t records;       /* with disk: lock records in RocksDB */
} lk_selfcheck_info;

/* Walks the whole lock table with every partition mutex held (every lock
 * call waits meanwhile) and checks its invariants: each row has at most one
 * holding op, whatever the kinds; each entry sits in the right partition and
 * bucket and is in use (a slot, a waiter or a pin); wait queues are well
 * linked; tokens are non-zero and <= the token high-water mark. With disk,
 * also that the lock records in RocksDB equal the table and every indefinite
 * slot has its scope key. Returns 0, or STRATA_ECORRUPT naming the row and
 * the broken invariant. info (may be NULL) gets the counts. For tests and
 * operators; O(rows). */
int lk_selfcheck(lk_manager *lk, int disk, lk_selfcheck_info *info);

/* --- listing ------------------------------------------------------------ */

typedef struct lk_list_filter {
  uint64_t op;              /* 0: any op */
  unsigned kinds;           /* mask of LK_KIND_BIT; 0: both */
  const uint8_t *prefix;    /* row key prefix; NULL/0: all rows */
  size_t prefix_len;
  int include_expired;      /* also list expired temporal locks not yet cleaned up */
  int64_t now;              /* "expired" as of this time on the lock manager's clock;
                             * 0: the clock when each page is read. A stream of pages
                             * that tells its reader one server time passes it here. */
} lk_list_filter;

typedef struct lk_lock_info {
  uint8_t *key;             /* points into the page; valid until lk_list_page_free */
  size_t key_len;
  uint64_t op;
  lk_kind kind;
  uint64_t token;
  int64_t acquired_at;
  int64_t expires_at;
  int expired;
} lk_lock_info;

typedef struct lk_list_page {
  lk_lock_info *items;
  size_t n;
  uint8_t *cursor;          /* pass to the next lk_list; NULL when the listing is complete */
  size_t cursor_len;
  void *mem__;              /* internal */
} lk_list_page;

/* Lists held locks in row-key order (temporal before indefinite within a
 * row), at most limit (1..100000) per page, starting after cursor (NULL for
 * the first page). The page is a consistent snapshot; a listing over several
 * pages is not. Free the page with lk_list_page_free. */
int lk_list(lk_manager *lk, const lk_list_filter *f, const uint8_t *cursor, size_t cursor_len,
            size_t limit, lk_list_page *page);
void lk_list_page_free(lk_list_page *page);

typedef struct lk_counts {
  uint64_t temporal;          /* live temporal slots */
  uint64_t temporal_expired;  /* expired temporal slots not yet cleaned up */
  uint64_t indefinite;
} lk_counts;

/* Counts the locks matching f (f->include_expired and kinds are ignored:
 * every category is counted). One consistent snapshot. Costs O(locked rows
 * under f->prefix) record reads whatever f->op is (the op filter does not
 * narrow the scan), plus one WAL sync, like lk_list. */
int lk_count(lk_manager *lk, const lk_list_filter *f, lk_counts *out);

#endif
