/*
 * The Strata store engine: a versioned key-value store in OCDBT format v0.
 * Every commit makes generation N+1; any generation can be read through a
 * snapshot. One committer thread per database group-commits transactions
 * (conditions, lock fence) into one new data file and one new manifest.
 * storage/README.md ("The store engine") is the design; docs/format.md says
 * how the files are written.
 *
 * Threads: every function may be called from any thread. A snapshot may be
 * read by several threads at once. Release snapshots before st_close.
 */
#ifndef STRATA_STORAGE_STORE_H
#define STRATA_STORAGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "storage/base.h"

typedef struct st_db st_db;
typedef struct st_snap st_snap;
typedef struct st_txn st_txn;

enum st_compression { ST_COMPRESSION_DEFAULT = 0, ST_COMPRESSION_NONE = 1, ST_COMPRESSION_ZSTD = 2 };
enum st_manifest { ST_MANIFEST_DEFAULT = 0, ST_MANIFEST_NUMBERED = 1, ST_MANIFEST_SINGLE = 2 };

/* The database's OCDBT config. A zero field is "not given": creating uses the
 * default shown, opening accepts whatever the database has. A given field that
 * differs from an existing database's is STRATA_EMISMATCH. */
typedef struct st_config {
  uint32_t max_inline_value_bytes;  /* default 100; values above go out of line */
  uint32_t max_decoded_node_bytes;  /* default 8192; nodes split above it */
  uint8_t version_tree_arity_log2;  /* default 4 (16 versions per node) */
  int compression;                  /* enum st_compression; default zstd */
  int zstd_level;                   /* default 1 (0 = default) */
  int manifest;                     /* enum st_manifest; default numbered */
} st_config;

typedef struct st_options {
  st_config config;
  size_t cache_bytes;   /* decoded node cache; 0 = 256 MiB */
  bs_store *base;       /* NULL: files under `path`; otherwise not owned, must outlive the db */
  int create;           /* create the database when the directory has none */
  int read_only;        /* no committer, no cleanup, no writer lock */
  int published_only;   /* with read_only: a reader beside a live server (strata-downsample
                           --store, external tools): the published generations only; the
                           commit log, the server's and changing under it, is never read
                           (so min_generation is checked against what is published) */
  int no_prepare;       /* don't pre-create the next commit's files, nor the commit log's next
                           segment (tests that count a commit's I/O) */
  /* Data files kept open for reading at most (least recently used closed
   * first); 0 = min(256, RLIMIT_NOFILE / 4), at least 8. */
  size_t max_open_files;
  /* The last generation the caller knows was acknowledged (the server keeps
   * it in its lock store): when the newest manifest that loads is older,
   * open fails with STRATA_ECORRUPT naming the missing manifest instead of
   * opening the database rolled back. 0 = no check. */
  uint64_t min_generation;
  /* Commits are durable once their group's record is appended to the commit
   * log and synced (one fsync); a publisher thread writes the OCDBT files
   * (one data file and one numbered manifest per batch of generations)
   * shortly after (storage/README.md "Commit log mode"). This is the default.
   * no_commit_log = 1 takes the per-group files path instead: each group
   * writes its own data file and manifest and is durable once they are
   * synced (the fallback where a log on the database's disk is not wanted,
   * and what the tests of that path ask for). A database of the single
   * manifest kind always takes the per-group path (a log batch publishes a
   * numbered manifest). Either way open replays a log it finds before
   * serving, so a database opens in one mode after the other. */
  int no_commit_log;
  /* Where the log lives: NULL = "log/" in the database's base store; else
   * "log/" under this directory (the server's local disk). Give the same
   * directory at every open. */
  const char *log_dir;
  /* A batch closes this long after its first commit; 0 = 25 ms. */
  uint32_t publish_interval_ms;
  /* Backpressure: commits wait while more than this is unpublished; 0 = 64 MiB. */
  uint64_t max_unpublished_bytes;
  /* Values above this many bytes are logged as a reference to their data
   * file, which is synced first; smaller ones travel in the log. 0 = 64 KiB. */
  uint32_t log_value_max;
  /* Those values' bytes leave the OS page cache once synced (a write of
   * large values is rarely read back at once, and a page cache grown by
   * every such write costs memory and CPU: storage/README.md "Large values
   * and the page cache"); 1 keeps them cached, for workloads that read
   * their large values right back. */
  int keep_value_pages;
  /* A log segment takes new batches until it holds this many bytes; it is
   * removed once all of them are published. 0 = 4 MiB. */
  uint64_t log_segment_bytes;
} st_options;

/* Opens (or with opt->create, creates) the database in `path`. *out is owned
 * by the caller; close with st_close. Errors: STRATA_ENOTFOUND (no database
 * and no create), STRATA_EINVALID (the directory holds something else),
 * STRATA_EMISMATCH (explicit config differs), STRATA_ECORRUPT (a damaged
 * manifest, the message naming the file; a latest generation below
 * opt->min_generation; for writing, data of generations past the newest
 * manifest + 1, i.e. lost manifests), STRATA_EBUSY (another writer). Open
 * removes only temp files, numbered manifests past the kept window and empty
 * data files of uncommitted generations: nothing a restore would need. */
int st_open(const char *path, const st_options *opt, st_db **out);
/* Finishes queued commits, stops the committer and frees everything. */
void st_close(st_db *db);

/* --- reads ------------------------------------------------------------------ */

typedef struct st_version_info {
  uint64_t generation;
  uint64_t commit_time;   /* ns since the Unix epoch, strictly increasing */
  uint64_t num_keys;
} st_version_info;

/* A snapshot pins one generation; it is read-only and stays valid while new
 * commits land. The caller owns it; release with st_snap_release. Generation
 * 0 is the empty database before the first commit (latest only). */
int st_snap_latest(st_db *db, st_snap **out);
/* STRATA_ENOTFOUND when the generation does not exist. */
int st_snap_at_generation(st_db *db, uint64_t generation, st_snap **out);
/* The latest generation with commit_time <= t_ns; STRATA_ENOTFOUND when t_ns
 * is before the first commit. */
int st_snap_at_time(st_db *db, uint64_t t_ns, st_snap **out);
void st_snap_release(st_snap *s);
st_version_info st_snap_info(const st_snap *s);

/* Point get: appends the value to *value (caller owns it). STRATA_ENOTFOUND
 * when the key is absent. */
int st_get(st_snap *s, const void *key, size_t klen, strata_buf *value);

typedef struct st_key {
  const void *p;
  size_t n;
} st_key;
typedef struct st_getres {
  int rc;             /* 0, STRATA_ENOTFOUND, or an error for this key */
  strata_buf value;   /* caller frees */
} st_getres;
/* Batch get: out[i] for keys[i], every one filled in (the caller frees each
 * value, also after an error). Returns 0 when every key was found or absent;
 * otherwise the first other error (out[i].rc of the first such key), whose
 * message (strata_errmsg) names the key's index and the file and offset. */
int st_get_batch(st_snap *s, size_t n, const st_key *keys, st_getres *out);

/* Listing [start, end) in key order (no end unless has_end), at most `limit`
 * entries (0 = no limit). A zeroed st_range lists everything. */
typedef struct st_range {
  const void *start;
  size_t start_len;
  const void *end;
  size_t end_len;
  int has_end;
  int keys_only;     /* skip reading values */
} st_range;

typedef struct st_kv {
  uint8_t *key;
  size_t klen;
  uint8_t *value;    /* NULL with keys_only */
  size_t vlen;
} st_kv;

typedef struct st_list_result {
  size_t n;
  st_kv *items;        /* owned by the result */
  int more;            /* 1 when entries remain after the last one returned */
  strata_buf next;     /* with more: pass as the next range's start (inclusive) */
} st_list_result;

/* *out is owned by the caller: free with st_list_result_free (also after an
 * error, when it is empty). */
int st_list(st_snap *s, const st_range *r, size_t limit, st_list_result *out);
/* The range of every key starting with prefix (end computed). *r borrows
 * prefix; end_buf receives the computed end (caller frees). */
int st_prefix_range(const void *prefix, size_t n, st_range *r, strata_buf *end_buf);
void st_list_result_free(st_list_result *res);

/* Versions with generation >= min_generation, oldest first, at most limit
 * (0 = all). *out is malloc'd; free() it. */
int st_versions(st_db *db, uint64_t min_generation, size_t limit, st_version_info **out,
                size_t *n);

/* Changes from a to b: fn is called once per key, in key order, with put = 1
 * (present in b and absent in a, or present in both with another entry) or 0
 * (deleted: in a, not in b). Entries are compared as stored, not by value:
 * inline values (<= max_inline_value_bytes) by their bytes, out-of-line
 * values by their reference (file, offset, length). So rewriting a large
 * value with the same bytes is reported as a put, while deleting and
 * rewriting a small value with the same bytes between a and b is not.
 * Subtrees the two versions share are skipped without reading them. fn
 * returning non-zero stops the walk and st_diff returns that value. a may be
 * NULL: the empty version (every key of b is a put). */
typedef int (*st_diff_fn)(void *ctx, const uint8_t *key, size_t klen, int put);
int st_diff(st_snap *a, st_snap *b, st_diff_fn fn, void *ctx);
/* The same walk, a piece at a time (a Watch stream sends a generation's
 * changes as it finds them). The iterator keeps the nodes it stands on
 * pinned, not the snapshots, which may be released after the open.
 * st_diff_step calls fn for the next changes until fn returns ST_DIFF_PAUSE
 * (the walk stops after that change and the next step resumes behind it;
 * returns ST_DIFF_PAUSE), another non-zero value (returned; the walk is over),
 * or the diff ends (returns 0). *done tells whether anything is left. */
#define ST_DIFF_PAUSE 1
typedef struct st_diff_iter st_diff_iter;
int st_diff_open(st_snap *a, st_snap *b, st_diff_iter **out);
int st_diff_step(st_diff_iter *it, st_diff_fn fn, void *ctx, int *done);
void st_diff_close(st_diff_iter *it);

/* --- transactions ----------------------------------------------------------- */

/* The lock fence: called by the committer inside the commit step, after the
 * transaction's conditions held and just before its changes join the group
 * being committed; 0 allows the transaction, anything else rejects it with
 * that code (nothing of it becomes visible). Called once per attempt, with no
 * engine lock held; it must not wait for a commit of the same database. */
typedef int (*st_fence_fn)(void *ctx);
/* Optional second half of the fence (st_txn_set_fence_done): called by the
 * committer exactly once for every fence call that returned 0, with the
 * fence's ctx, once the transaction is decided: committed = 1 after its
 * group is durable and visible to readers, 0 when it was not applied (its
 * group failed, or it was dropped after the fence). Every fence_done of a
 * group runs before any completion callback of that group. Same rules as the
 * fence: no engine lock held, must not wait for a commit of this database.
 * The lock manager unpins the fenced rows here (docs/locks.md). */
typedef void (*st_fence_done_fn)(void *ctx, int committed);

enum st_cond_kind { ST_COND_NONE = 0, ST_COND_ABSENT = 1, ST_COND_UNCHANGED_SINCE = 2, ST_COND_HASH = 3 };

#define ST_HASH_BYTES 32
/* The value hash conditions compare: BLAKE2b with a 32-byte digest, no key. */
void st_value_hash(const void *p, size_t n, uint8_t out[ST_HASH_BYTES]);

/* A transaction under construction; owned by the caller until submitted.
 * A failed st_txn_* call poisons it: later calls and st_txn_submit /
 * st_txn_commit return that first error (message "the transaction failed
 * earlier and is refused whole: ..."), and nothing of it is committed. */
int st_txn_begin(st_db *db, st_txn **out);
/* Puts copy key and value. Keys are 0..OCDBT_MAX_KEY_LENGTH (65,535) bytes,
 * any number and mix of sizes; a longer key is STRATA_EINVALID. */
int st_txn_put(st_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
/* Like st_txn_put but borrows val: it must stay valid until the transaction
 * completes (for large values: no copy is made). */
int st_txn_put_borrowed(st_txn *t, const void *key, size_t klen, const void *val, size_t vlen);
/* The value is bytes [offset, offset+length) already in a data file under the
 * database directory (path relative to it, inside d/). The committer checks
 * the file and range exist. */
int st_txn_put_ref(st_txn *t, const void *key, size_t klen, const char *path, uint64_t offset,
                   uint64_t length);
int st_txn_delete(st_txn *t, const void *key, size_t klen);
int st_txn_require_absent(st_txn *t, const void *key, size_t klen);
/* Holds when the key's entry now equals its entry at since_generation
 * (both absent counts as equal; generation 0 is the empty database, so
 * "unchanged since 0" means absent now) and no earlier transaction of the
 * same group wrote it. Entries compare as in st_diff: inline values by
 * bytes, out-of-line values by reference, so a large value rewritten with
 * the same bytes is a change, and a small value deleted and rewritten with
 * the same bytes is not. */
int st_txn_require_unchanged(st_txn *t, const void *key, size_t klen, uint64_t since_generation);
int st_txn_require_hash(st_txn *t, const void *key, size_t klen, const uint8_t hash[ST_HASH_BYTES]);
void st_txn_set_fence(st_txn *t, st_fence_fn fn, void *ctx);
void st_txn_set_fence_done(st_txn *t, st_fence_done_fn done);
/* Frees a transaction that was not submitted. */
void st_txn_abort(st_txn *t);

typedef struct st_result {
  int rc;                  /* 0; STRATA_ECONDITION; the fence's code; or the commit's error */
  uint64_t generation;     /* with rc == 0 */
  uint64_t commit_time;
  int failed_condition;    /* enum st_cond_kind, with STRATA_ECONDITION */
  /* with STRATA_ECONDITION: which condition, 0-based, in the order the
   * st_txn_require_* calls added them */
  size_t failed_condition_index;
  const uint8_t *failed_key; /* the condition's key; valid as long as the result */
  size_t failed_key_len;
  char message[512];
} st_result;

/* Called exactly once per submitted transaction, on the committer thread,
 * after the commit is durable (or rejected). res is valid during the call.
 * It must not wait for another commit of the same database (it would wait
 * for itself); submitting one is fine. */
typedef void (*st_done_fn)(void *ctx, const st_result *res);
/* Queues t (ownership passes to the engine) for the next group commit. On an
 * error return (read-only or closing database) t is freed and done is not
 * called. */
int st_txn_submit(st_txn *t, st_done_fn done, void *ctx);
/* Blocking: submits and waits. res->failed_key is owned by res: free it with
 * st_result_free. Returns res->rc. */
int st_txn_commit(st_txn *t, st_result *res);
void st_result_free(st_result *res);

/* --- files others create (coordinator mode; storage/README.md "Writer files") --
 * Paths are relative to the database directory, like st_txn_put_ref's. */

/* The file's size now; STRATA_ENOTFOUND (naming it) when it does not exist. */
int st_file_size(st_db *db, const char *path, uint64_t *size);
/* The CRC-32C of bytes [off, off+len) of the file (read in pieces of 1 MiB);
 * STRATA_ERANGE when the file is shorter. */
int st_file_crc32c(st_db *db, const char *path, uint64_t off, uint64_t len, uint32_t *crc);

/* --- which files are referenced: GC and the check (storage/gc.c) ---------------
 * "Retained" is what the version tree keeps (retention drops a prefix). */

typedef struct st_fileset st_fileset;
#define ST_CHECK_LIST_MAX 1000 /* messages and paths a check keeps (counts go on) */

typedef struct st_check_result {
  uint64_t versions, nodes, values, bytes;
  uint64_t nerrors; /* problems found; the first ST_CHECK_LIST_MAX are in errors */
  char **errors;
  size_t n_errors;
  uint64_t nmissing; /* referenced files that do not exist; the first paths listed */
  char **missing;
  size_t n_missing;
} st_check_result;

/* Walks every version from its root down, each distinct B+tree node once (a
 * subtree versions share is walked once), and returns in *refs the files
 * they reference (nodes and out-of-line values; the caller frees it with
 * st_fileset_free). Without verify (GC) any unreadable node fails the walk:
 * the set would be incomplete. With verify (the check) problems are recorded
 * in *res and the walk goes on: node checksums and structure (the codecs),
 * heights, each subtree's statistics against its parent's entry, every
 * out-of-line value's range inside its file and, in Strata's own data files,
 * its CRC-32C. res may be NULL without verify; free it with
 * st_check_result_free. */
int st_walk(st_db *db, int verify, st_fileset **refs, st_check_result *res);
void st_check_result_free(st_check_result *res);
int st_fileset_has(const st_fileset *s, const char *path);
void st_fileset_free(st_fileset *s);

/* The names (without "d/") of the files in d/ that are not Strata's own data
 * files, sorted; *names is one malloc'd block, free() it. */
int st_foreign_files(st_db *db, char ***names, size_t *n);
/* Removes d/<name>, a file that is not one of Strata's own data files
 * (STRATA_EINVALID for one that is), and gives its size. */
int st_remove_foreign_file(st_db *db, const char *name, uint64_t *size);
/* Makes removals in d/ durable. */
int st_sync_data_dir(st_db *db);

/* --- retention (storage/retain.c; storage/README.md "Retention") ---------------
 * The caller (the server) decides which versions to keep; the store drops
 * only a prefix: every commit from now on removes from the version tree the
 * versions below floor, except the latest. Reads at a dropped generation or a
 * time before the oldest retained version are STRATA_ERANGE naming it. The
 * floor is not persisted: the caller sets it after every open (0 = keep all). */
void st_set_retain_floor(st_db *db, uint64_t floor);
uint64_t st_retain_floor(st_db *db);
typedef struct st_retained {
  uint64_t oldest_generation, oldest_time_ns; /* 0 when empty */
  uint64_t latest_generation, latest_time_ns;
} st_retained;
void st_retained_range(st_db *db, st_retained *out);

/* One GC pass over Strata's own files: the newest durable manifest's retained
 * versions are walked; every data file d/<32 hex> named for a generation it
 * covers that none of them references, and every numbered manifest of a
 * dropped generation, is removed once it has been seen unreferenced for
 * grace_ns (by earlier passes of this handle), at most max_remove (0: no
 * bound) per pass. Safe at any kill: only files the newest manifest (and so
 * every later one) does not need are removed.
 * The pass yields to commits (storage/README.md "GC yields to commits"): it
 * runs on a thread of its own at nice 10 (not idle priority: README.md
 * says why; the caller waits) and uses at most duty_pct percent of one core
 * while commits run (0: ST_GC_DUTY_DEFAULT) and idle_duty_pct once no group
 * has been committed for ST_GC_IDLE_AFTER_MS (0: ST_GC_IDLE_DUTY_DEFAULT;
 * never below duty_pct; 100: no cap). in_caller: on the calling thread at its
 * priority instead (the caps still apply). stop (may be NULL):
 * once *stop is nonzero (read atomically) the pass gives up at its next unit
 * of work with STRATA_ESHUTDOWN, as safe as a kill (a stopping server must not
 * wait for a paced pass over a long history). */
#define ST_GC_DUTY_DEFAULT 4
#define ST_GC_IDLE_DUTY_DEFAULT 25
#define ST_GC_IDLE_AFTER_MS 100
typedef struct st_gc_own_opts {
  uint64_t grace_ns;
  uint64_t max_remove;
  int dry_run;
  unsigned duty_pct, idle_duty_pct;
  int in_caller;
  const int *stop;
} st_gc_own_opts;
typedef struct st_gc_own_result {
  uint64_t versions_walked;
  uint64_t files_scanned, bytes_scanned; /* unreferenced files found */
  uint64_t files_removed, bytes_removed;
  uint64_t files_waiting, bytes_waiting; /* unreferenced, within the grace or over max_remove */
} st_gc_own_result;
/* Since the handle opened, passes other than dry runs. Read without waiting
 * for a pass: the scanned and removed counts and work move while a pass runs
 * (work: version tree nodes, versions and B+tree nodes walked, and candidate
 * files decided); running is 1 during a pass. */
typedef struct st_gc_own_totals {
  uint64_t runs, files_scanned, bytes_scanned, files_removed, bytes_removed;
  uint64_t files_waiting, bytes_waiting; /* of the last pass */
  uint64_t work;
  int running;
} st_gc_own_totals;
int st_gc_own(st_db *db, const st_gc_own_opts *o, st_gc_own_result *r);
void st_gc_own_totals_get(st_db *db, st_gc_own_totals *out);

/* Commit groups by size: the committer counts every group (generation) in
 * the first bucket whose upper bound is >= its number of commits and its
 * bytes written (data, log record, manifest). Bucket ST_GROUP_BUCKETS counts
 * the groups above the last bound; the sums are st_stats.commits and
 * bytes_written, the count st_stats.groups. */
#define ST_GROUP_BUCKETS 11
extern const uint64_t st_group_size_le[ST_GROUP_BUCKETS];  /* 1, 2, 4, ..., 1024 commits */
extern const uint64_t st_group_bytes_le[ST_GROUP_BUCKETS]; /* 256 B, 1 KiB, ..., 256 MiB */

/* Statistics for tests and benchmarks. */
typedef struct st_stats {
  uint64_t commits, groups, cache_hits, cache_misses, cache_bytes, bytes_written;
  /* per bucket, not cumulative (see ST_GROUP_BUCKETS) */
  uint64_t group_size[ST_GROUP_BUCKETS + 1], group_bytes[ST_GROUP_BUCKETS + 1];
  uint64_t prepared_hits;  /* commits that used pre-created files */
  /* nanoseconds spent by the committer: building and writing the data file
   * and temp manifest; their fsyncs; rename + directory fsync. Commit log
   * mode: preparing the group's record; the log write and sync; 0. ns_tree_wait
   * (commit log mode only): after the sync, the wait for the group's tree
   * build, which runs during it */
  uint64_t ns_build, ns_sync, ns_publish, ns_tree_wait;
  /* data files open for reading now, and opens/closes of them so far */
  uint64_t open_files, file_opens, file_closes;
  /* non-empty data files named for a generation newer than the latest that
   * open found and left in place (a commit killed before its rename) */
  uint64_t stray_data_files;
  /* Commit log mode: the newest acknowledged generation (visible to this
   * handle's readers), the newest published one (what an OCDBT reader of
   * the files sees), batches published, bytes not yet published. Without
   * the log both generations are the latest. */
  uint64_t committed_generation, published_generation, publish_batches, unpublished_bytes;
  /* Commit log mode: times publication started retrying (for want of space
   * or memory), and whether it is retrying now (then publish_error says why). */
  uint64_t publish_stalls;
  int publish_stalled;
  /* Commit log mode: times the publisher could not make the log's next
   * segment ready ahead (storage/README.md, "Commit log"); the committer
   * then creates it itself, at the cost of one slower sync. */
  uint64_t log_prepare_failures;
  char publish_error[256];
} st_stats;
void st_get_stats(st_db *db, st_stats *out);
/* Commit log mode: the publication lag of the most recent batches (up to
 * cap, oldest first), in ns: from the first commit of a batch to its
 * manifest being durable. Returns how many were written. */
size_t st_publish_lags(st_db *db, uint64_t *out, size_t cap);

#endif
