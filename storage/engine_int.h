/*
 * Private header of the store engine (db.c, cache.c, btree.c, btree_write.c,
 * versions.c, commit.c). Nothing outside storage/ includes it. Data file
 * references inside the engine use interned file ids (st_ref.file), never
 * table indexes: each node's table is translated once, when it is decoded.
 */
#ifndef STRATA_STORAGE_ENGINE_INT_H
#define STRATA_STORAGE_ENGINE_INT_H

#include <pthread.h>
#include <stdint.h>

#include "common/mutex.h"
#include "storage/clog.h"
#include "storage/ocdbt.h"
#include "storage/store.h"

#define ST_NOFILE UINT32_MAX
#define ST_DATA_DIR "d"
#define ST_DATA_PATH_MAX 64   /* "d/" + 32 hex digits, with room to spare */
#define ST_MANIFEST "manifest.ocdbt"
/* Numbered manifests kept behind the latest, as tensorstore does
 * (kNumNumberedManifestsToKeep): a reader that listed the directory a while
 * ago can still open the one it chose. */
#define ST_MANIFESTS_KEPT 128
/* A B+tree higher than this is refused by the writer (STRATA_EINTERNAL): each
 * level at least halves the nodes below it, so a real tree stays far lower
 * (2^48 leaves); the bound turns a split that makes no progress into an error
 * instead of a committer that writes for ever. */
#define ST_MAX_TREE_HEIGHT 48

typedef struct st_ref {
  uint32_t file;       /* interned id, ST_NOFILE for a missing root */
  uint64_t offset;
  uint64_t length;
} st_ref;

/* One generation's B+tree. */
typedef struct st_root {
  uint8_t height;
  st_ref ref;
  ocdbt_stats stats;
} st_root;

typedef struct st_vers {
  uint64_t generation;
  uint64_t commit_time;
  st_root root;
} st_vers;

typedef struct st_vref {
  uint64_t generation;       /* newest generation below */
  uint64_t num_generations;
  uint64_t commit_time;      /* of the oldest generation below */
  uint8_t height;
  st_ref ref;
} st_vref;

/* The content of the current manifest: the inline versions (one version-tree
 * leaf) and the version node references, by decreasing height. */
typedef struct st_mstate {
  size_t n_versions;
  st_vers *versions;   /* capacity 2^arity_log2 */
  size_t n_nodes;
  st_vref nodes[64];
} st_mstate;

/* FNV-1a over n bytes, with a final mix of the high bits into the low ones
 * (the tables index with the low bits): the file table's and the commit
 * group's hash. */
static inline uint64_t st__hash_bytes(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h ^ (h >> 31);
}

/* --- file table (cache.c) --------------------------------------------------- */
typedef struct ft_entry {
  char *path;          /* relative to the database directory */
  size_t base_len;     /* length of its base path ("d/"), the transitive path of what it holds */
  bs_file *rh;         /* read handle: opened on use, closed when evicted */
  int rh_refs;         /* readers using rh now (pinned: never closed under them) */
  struct ft_entry *lprev, *lnext;  /* LRU of open handles, while rh is set */
  int vcrc;            /* -1 unknown, 1 a Strata data file (values carry a CRC), 0 not */
} ft_entry;

typedef struct ft_table {
  strata_mutex mu;
  ft_entry **e;
  size_t n, cap;
  uint32_t *hash;      /* open addressing: id + 1, 0 = empty */
  size_t hcap;
  ft_entry lru;        /* sentinel of the open handles: lru.lnext most recent */
  size_t nopen, max_open;
  uint64_t opens, closes;
} ft_table;

/* --- node cache (cache.c) --------------------------------------------------- */
enum { CN_BTREE = 0, CN_VTREE = 1 };
typedef struct cnode {
  st_ref ref;
  int kind;
  union {
    ocdbt_btnode bt;
    ocdbt_vtnode vt;
  } u;
  uint32_t *files;     /* file id of each entry of the node's data file table */
  size_t charge;
  int refs;            /* pins; the cache holds one while the node is linked */
  int unlinked;        /* nc__get_scan's miss: never linked, the caller's alone */
  struct cnode *hnext, *prev, *next;
} cnode;

typedef struct nc_cache {
  strata_mutex mu;
  cnode **buckets;
  size_t nbuckets, count;
  cnode lru;           /* sentinel: lru.next most recent */
  size_t bytes, cap;
  uint64_t hits, misses;
} nc_cache;

/* Commit log mode: a batch of consecutive generations whose nodes and values
 * go into one data file, published with one manifest (commit_int.h). */
struct st_batch;
struct clog_writer;
/* Publication lags kept for st_publish_lags. */
#define ST_LAG_RING 1024

struct st_db {
  bs_store *base;
  bs_store *own_base;  /* base created by st_open, destroyed by st_close */
  char *path;
  ocdbt_config cfg;
  int read_only;
  ft_table ft;
  nc_cache cache;

  /* mu guards everything below; lock order: db.mu, then cache.mu or ft.mu. */
  strata_mutex mu;
  pthread_cond_t cv;      /* queue became non-empty, or closing */
  st_txn *q_head, *q_tail;
  size_t q_len;
  size_t linger_for; /* the committer lingers until q_len reaches it (0: not lingering) */
  int closing;
  int broken;             /* non-zero: an undoable failure; commits refuse */
  uint64_t strays;        /* non-empty data files newer than the latest at open (kept) */
  st_mstate ms;           /* the current manifest, replaced by the committer */
  uint64_t retain_floor;  /* atomic: commits drop versions below it (retain.c) */
  uint64_t last_group_ns; /* atomic: CLOCK_MONOTONIC ns of the last installed group (GC's pace) */
  struct st_gc_own_state *gc_own; /* retain.c; created under mu on first use */
  st_vers latest;         /* generation 0 = empty database */
  uint64_t commits, groups, bytes_written;
  uint64_t group_size[ST_GROUP_BUCKETS + 1], group_bytes[ST_GROUP_BUCKETS + 1]; /* st_stats */
  uint64_t ns_build, ns_sync, ns_publish, ns_tree_wait; /* time in each commit phase */
  pthread_t committer;
  int has_committer;

  /* The preparer thread creates the next generation's (empty) data file and
   * temp manifest ahead of time and makes their names durable, so a commit
   * only has to write and fsync them. Guarded by mu. */
  int prepare;            /* enabled (numbered manifests, not read-only) */
  int no_log_prepare;     /* st_options.no_prepare: the publisher makes no log segment ready ahead */
  pthread_t preparer;
  int has_preparer;
  pthread_cond_t prep_cv;
  uint64_t prep_want;     /* generation the committer will need next */
  struct st_prepared {
    int ready;
    uint64_t gen;
    char path[ST_DATA_PATH_MAX], tmp[64];
    bs_file *df, *tf;
  } prep;
  uint64_t prep_hits;
  uint64_t mf_obsolete, mf_removed;  /* numbered manifests <= obsolete may go; <= removed are gone */

  /* The fsync helper: fsyncs the data file while the committer fsyncs the
   * temp manifest (a thread kept for the database's life, not one per commit). */
  pthread_t syncer;
  int has_syncer;
  strata_mutex smu;
  pthread_cond_t scv;
  enum { SYNC_IDLE, SYNC_POSTED, SYNC_DONE, SYNC_STOP } s_state;
  bs_file *s_file;        /* the job: fsync this file */
  int (*s_fn)(void *);    /* ... or, when set, run s_fn(s_arg) (cm__job_post) */
  void *s_arg;
  int s_rc;
  char s_msg[400];
  /* Work the running job shares with a committer waiting for it
   * (cm__job_share): tasks sh_fn(sh_ctx, i) for i < sh_n; sh_next is the
   * first not taken, sh_done how many have finished; sh_waiters counts the
   * threads in cm__job_wait. Under smu. */
  void (*sh_fn)(void *ctx, size_t i);
  void *sh_ctx;
  size_t sh_n, sh_next, sh_done;
  int sh_waiters;
  /* Bumped under smu when the job finishes or shares tasks: cm__job_wait
   * watches it for a while before it sleeps. */
  _Atomic unsigned s_bell;
  char broken_msg[400];   /* why commits refuse, when not the default reason */

  /* Commit log mode (logcommit.c, publish.c, recover.c); log == NULL: off. */
  struct clog_writer *log;
  bs_store *log_base, *own_log_base;
  uint64_t publish_ns, max_backlog;
  uint32_t log_value_max;
  int keep_value_pages;       /* st_options.keep_value_pages */
  uint64_t log_segment_bytes;
  uint64_t log_last;          /* read-only opens: the newest generation in the log */
  struct clog_contents log_found; /* what open read, until the writer adopts its segments */
  struct st_batch *batch;     /* being filled: the committer's only (and open's) */
  /* Guarded by mu: the publication queue and its state. */
  struct st_batch *pq_head, *pq_tail;
  uint64_t backlog;           /* bytes of batches not yet published (the open one too) */
  uint64_t published;         /* newest generation whose manifest is durable */
  uint64_t batches;
  int pub_err, pub_stop;
  uint64_t pub_pending;       /* batches handed to the publisher and not yet done with */
  int pub_stall;              /* the publisher is retrying after this error (publish.c) */
  uint64_t pub_stalls;        /* times it started retrying */
  uint64_t log_prep_failures; /* clog_prepare failed (the committer made the segment) */
  char pub_stall_msg[400];
  pthread_t publisher;
  int has_publisher;
  pthread_cond_t pub_cv;
  uint64_t lags[ST_LAG_RING]; /* publication lag per batch, ns */
  uint64_t nlags;
};

struct st_snap {
  st_db *db;
  st_vers v;
};

/* file table */
/* max_open: read handles kept open at most (unpinned ones beyond it are
 * closed, least recently used first). */
int ft__init(ft_table *t, size_t max_open);
void ft__destroy(ft_table *t);
/* Interns path (length n, base path length base_len); returns its id. */
int ft__intern(st_db *db, const char *path, size_t n, size_t base_len, uint32_t *id);
/* Path of id; stable until st_close. */
const char *ft__path(st_db *db, uint32_t id, size_t *base_len);
int ft__pread(st_db *db, uint32_t id, uint64_t off, void *dst, size_t n);
int ft__size(st_db *db, uint32_t id, uint64_t *size);
/* 1 when the file starts with ST_DATA_MAGIC: its out-of-line values are each
 * followed by their CRC-32C (4 bytes, little endian). One of Strata's own
 * data files (by its name, see db.c) without the magic is STRATA_ECORRUPT. */
int ft__value_crc(st_db *db, uint32_t id, int *has_crc);
#define ST_DATA_MAGIC "strata-data-v1\n"
#define ST_DATA_MAGIC_NAME "strata-data-v1"
#define ST_DATA_MAGIC_LEN 16

/* node cache: returns a pinned node; release with nc__release. */
int nc__init(nc_cache *c, size_t cap);
void nc__destroy(nc_cache *c);
int nc__get(st_db *db, st_ref ref, int kind, cnode **out);
void nc__release(st_db *db, cnode *n);
/* For a walk that reads each node once (GC, the check): a cached node as
 * nc__get (not moved up the LRU), a miss decoded for the caller alone, so the
 * walk neither evicts the readers' and committer's nodes nor links its own.
 * Release with nc__release_scan. */
int nc__get_scan(st_db *db, st_ref ref, int kind, cnode **out);
void nc__release_scan(st_db *db, cnode *n);
/* Write-through: a copy of a B+tree node the committer just encoded (files[i]
 * is the file id of the node's table entry i), made by nc__new_btnode on any
 * thread before the node's place is known, then cached at its ref by
 * nc__put_new, so the next commit and readers of the new generation find it
 * without reading it back. A node of a commit that then fails stays until
 * evicted: its file id is never reused (every data file name is new), so
 * nothing can look it up. */
cnode *nc__new_btnode(const ocdbt_btnode *node, const uint32_t *files); /* NULL: out of memory */
void nc__put_new(st_db *db, st_ref ref, cnode *n);
void nc__free_new(cnode *n); /* one nc__new_btnode made that is not put */

/* btree.c: reads */
typedef struct st_entry {
  uint8_t kind;        /* OCDBT_VALUE_INLINE / INDIRECT */
  const uint8_t *value;
  size_t vlen;
  st_ref ref;          /* indirect */
  cnode *pin;          /* keeps `value` alive; nc__release when done */
} st_entry;
/* Finds key under root; STRATA_ENOTFOUND when absent. */
int bt__find(st_db *db, const st_root *root, const uint8_t *key, size_t klen, st_entry *out);
/* Reads an entry's value into out (appends). */
int bt__read_value(st_db *db, const st_entry *e, strata_buf *out);
int bt__entry_equal(const st_entry *a, const st_entry *b);

/* btree_write.c: one group's changes, sorted by key, unique. */
enum { MUT_DELETE = 0, MUT_INLINE = 1, MUT_INDIRECT = 2 };
typedef struct st_mut {
  const uint8_t *key;
  size_t klen;
  int kind;
  const uint8_t *value;  /* MUT_INLINE */
  size_t vlen;
  st_ref ref;            /* MUT_INDIRECT */
} st_mut;

/* Where a commit's new nodes go: one data file, buffered appends. */
typedef struct st_writer {
  st_db *db;
  bs_file *f;
  uint32_t file_id;
  uint64_t off;          /* bytes written so far (including the buffer) */
  strata_buf buf;
} st_writer;
int wr__append(st_writer *w, const void *p, size_t n, uint64_t *offset);
/* An out-of-line value: its bytes, then their CRC-32C (4 bytes, little
 * endian); *ref names the bytes only (docs/format.md, data file layout). */
int wr__append_value(st_writer *w, const void *p, size_t n, st_ref *ref);
int wr__flush(st_writer *w);

/* Runs fn(ctx, i) for every i < n, on this thread and, when the committer is
 * waiting for the job this thread runs (cm__job_wait), on the committer too;
 * returns once all have finished. Any thread may call it (without a waiting
 * committer it runs them all); one caller at a time (the tree build). commit.c. */
void cm__job_share(st_db *db, void (*fn)(void *ctx, size_t i), void *ctx, size_t n);

/* Applies muts to root, writing new nodes through w; *out is the new root.
 * Sibling nodes are encoded through cm__job_share. */
int bt__apply(st_db *db, st_writer *w, const st_root *root, const st_mut *muts, size_t n,
              st_root *out);

/* versions.c */
/* Adds version v to a copy of cur (new nodes written through w). */
int vt__add(st_db *db, st_writer *w, const st_mstate *cur, const st_vers *v, st_mstate *out);
int vt__find_generation(st_db *db, const st_mstate *ms, uint64_t gen, st_vers *out);
int vt__find_time(st_db *db, const st_mstate *ms, uint64_t t, st_vers *out);
/* The same over the manifest's version node references only (no inline versions). */
int vt__find_generation_nodes(st_db *db, const st_vref *nodes, size_t n, uint64_t gen, st_vers *out);
int vt__find_time_nodes(st_db *db, const st_vref *nodes, size_t n, uint64_t t, st_vers *out);
/* Retention (versions.c, retain.c): drops every version below floor but the
 * latest; the oldest retained version (generation 0 when empty); visits every
 * version node (r) and version (v) of ms. */
int vt__trim(st_db *db, st_writer *w, st_mstate *ms, uint64_t floor);
void vt__oldest(const st_mstate *ms, st_vers *out);
typedef int (*vt__visit_fn)(void *arg, const st_vref *r, const st_vers *v);
int vt__visit(st_db *db, const st_mstate *ms, vt__visit_fn fn, void *arg);
/* Whether generation (by_time 0) or time x lies before the oldest retained
 * version of a database that dropped versions; if so the error message says
 * which is the oldest (retain.c). */
int st__dropped(st_db *db, int by_time, uint64_t x);
/* GC's pacing (retain.c): gc__pace is called once per unit of work (a node
 * walked, a file decided); every ~1 ms of the calling thread's CPU time it
 * sleeps so that this thread uses at most duty_pct of one core while commits
 * run (a group installed within ST_GC_IDLE_AFTER_MS, read from *last_group_ns
 * when not NULL), idle_duty_pct when they do not (100: never sleeps). *work
 * (atomic; may be NULL) counts the units, as live progress. It returns
 * STRATA_ESHUTDOWN once *stop (may be NULL) is set: the caller gives up. A
 * NULL pace never stops. */
typedef struct gc_pace {
  unsigned duty_pct, idle_duty_pct;
  const uint64_t *last_group_ns;
  const int *stop;
  uint64_t *work;
  uint64_t cpu0; /* thread CPU ns at the last sleep */
  unsigned n;
} gc_pace;
int gc__pace(gc_pace *p);
/* The cap that applies at now_ns (CLOCK_MONOTONIC): duty_pct while commits run. */
unsigned gc__duty(const gc_pace *p, uint64_t now_ns);
/* gc.c: the files ms's retained versions and its version nodes reference,
 * paced by pace (NULL: not paced). */
int gc__walk_state(st_db *db, const st_mstate *ms, gc_pace *pace, st_fileset **refs,
                   uint64_t *versions);
/* retain.c: the newest durable manifest's state and generation, and the
 * names at the top of the database (one block: free(*names)); STRATA_ENOTFOUND
 * when nothing is published yet. */
int st__load_published(st_db *db, st_mstate *ms, uint64_t *gen, char ***names, size_t *nn);
void st__gc_own_free(st_db *db);
/* db.c: the bucket of v among the ST_GROUP_BUCKETS upper bounds le. */
size_t st__group_bucket(const uint64_t *le, uint64_t v);
int vt__list(st_db *db, const st_mstate *ms, uint64_t min_gen, size_t limit, st_version_info **out,
             size_t *n);
/* Manifest <-> state. */
int vt__encode_manifest(st_db *db, const st_mstate *ms, strata_buf *out);
int vt__load_manifest(st_db *db, const ocdbt_manifest *m, st_mstate *out);
int mstate__copy(const st_mstate *src, size_t cap, st_mstate *dst);
void mstate__free(st_mstate *ms);

/* datafile.c: 1 when name (a file name inside d/) has the form of Strata's
 * own data files, "<16 hex generation><16 hex random>" (lower case): open's
 * cleanup removes such a file when its generation never committed, so
 * st_txn_put_ref refuses these names. */
int st__is_data_file_name(const char *name);
/* The same, and *gen = the generation its name carries. */
int st__data_file_generation(const char *name, uint64_t *gen);
/* A new data file's path for generation gen: "d/" + that name form. */
void df__path(char out[ST_DATA_PATH_MAX], uint64_t gen);
/* Starts a data file created at path: interns it into w->file_id and writes
 * the header (ST_DATA_MAGIC). */
int df__begin(st_db *db, st_writer *w, const char *path);

/* commit.c */
int cm__start(st_db *db);
void cm__stop(st_db *db);
/* Removes the numbered manifests up to db->mf_obsolete. */
void cm__remove_manifests(st_db *db);

/* recover.c: opens the commit log (opt->log_dir) and replays what it holds
 * past the latest manifest, then publishes it. Read-only: only reads it
 * (db->log_last). */
int rc__open_log(st_db *db, const st_options *opt);
/* Then (after the min_generation check): in commit log mode (the default;
 * recover.c use_log) leaves db->log open for the committer; trims segments
 * that hold only published records. */
int rc__start_log(st_db *db, const st_options *opt);
void rc__close_log(st_db *db);

#endif
