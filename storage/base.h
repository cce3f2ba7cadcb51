/*
 * Base stores: where the engine's bytes live. A base store is a directory of
 * immutable files addressed by relative paths ("d/<hex>", "manifest.ocdbt").
 * Files are only ever created new, appended while open, and published with an
 * atomic rename; nothing is modified in place (a reserved room of zeros past
 * a file's end is overwritten by its appends: `reserve` below). Four implementations: real
 * files (bs_file_open), objects of an S3-compatible object store (bs_s3_open),
 * memory (bs_mem_create, for tests) and a wrapper that injects EIO/ENOSPC at
 * the Nth write, fsync or rename, or slows a site (bs_fault_wrap).
 *
 * Every call returns 0, a negative STRATA_E* code or a positive errno, and
 * records a message naming the path (common/err.h).
 */
#ifndef STRATA_STORAGE_BASE_H
#define STRATA_STORAGE_BASE_H

#include <stddef.h>
#include <stdint.h>

typedef struct bs_store bs_store;

/* The writer lock: a file of its own next to the OCDBT files (not part of
 * OCDBT; readers ignore it, docs/format.md "Files"); on S3 an object. */
#define BS_LOCK_FILE "strata.lock"
typedef struct bs_file bs_file;

/* The driver interface every implementation fills in (a vtable, like a VFS). */
typedef struct bs_ops {
  /* Opens an existing file for reading; STRATA_ENOTFOUND when missing. */
  int (*open_read)(bs_store *s, const char *path, bs_file **out);
  /* Reads exactly n bytes at off; STRATA_ERANGE when the file is shorter. */
  int (*pread)(bs_file *f, uint64_t off, void *dst, size_t n);
  int (*size)(bs_file *f, uint64_t *out);
  /* Creates a new file for appending; STRATA_EEXISTS when the path exists. */
  int (*create)(bs_store *s, const char *path, bs_file **out);
  int (*append)(bs_file *f, const void *p, size_t n);
  /* Makes the file's bytes and size durable (files: fdatasync). */
  int (*fsync)(bs_file *f);
  /* Cuts the file to len bytes (len <= its size); later appends go after them.
   * Durable only after the next fsync. Needs no free space. */
  int (*truncate)(bs_file *f, uint64_t len);
  void (*close)(bs_file *f);
  /* Atomically renames from -> to, replacing `to` when it exists (the S3
   * store never replaces: STRATA_EEXISTS, see bs_s3_open). */
  int (*rename)(bs_store *s, const char *from, const char *to);
  /* Makes the directory's entries (creates, renames, removes) durable. */
  int (*sync_dir)(bs_store *s, const char *dir);
  int (*remove)(bs_store *s, const char *path);
  int (*mkdir)(bs_store *s, const char *dir);
  /* Names (not paths) of the files in dir; *names is one malloc'd array of
   * pointers followed by the strings, free() it. STRATA_ENOTFOUND if no dir. */
  int (*list)(bs_store *s, const char *dir, char ***names, size_t *n);
  /* Takes the single-writer lock of the store (held until destroy);
   * STRATA_EBUSY when another process holds it. Files: a flock on
   * BS_LOCK_FILE in the directory (created, never removed). */
  int (*lock)(bs_store *s);
  void (*destroy)(bs_store *s);
  /* Optional (NULL: bs_reserve does nothing). Writes n zero bytes after the
   * file's append position and makes them, the file's size and everything
   * appended so far durable (an fsync), without moving the append position:
   * later appends overwrite the zeros. A sync of an append into the room
   * then writes only data, no block allocation or size (files: ~90 us
   * instead of ~150 us here, docs/benchmarks.md). The file's size (and what
   * a reader or a crash finds) includes the room: it ends in zeros past the
   * last append. Counts as a write for fault injection and quotas. */
  int (*reserve)(bs_file *f, uint64_t n);
  /* Optional (NULL: does nothing). The bytes [off, off + n), already synced,
   * will not be read soon: files drop their pages from the OS page cache
   * (posix_fadvise DONTNEED; pages only partly inside the range stay). A hint:
   * it cannot fail, and a later read finds the same bytes (from the disk). */
  void (*drop_cache)(bs_file *f, uint64_t off, uint64_t n);
} bs_ops;

struct bs_store {
  const bs_ops *ops;
};

struct bs_file {
  bs_store *store;
};

/* Real files under the directory root (created when missing). Caller owns
 * *out and frees it with bs_destroy. */
int bs_file_open(const char *root, bs_store **out);
/* An S3-compatible object store (AWS S3, Ceph RGW, MinIO) through libcurl,
 * signed with SigV4. Unset (zero) fields take the default named. */
typedef struct bs_s3_config {
  const char *endpoint; /* "http://127.0.0.1:7480"; path-style URLs: ENDPOINT/BUCKET/KEY */
  const char *region;   /* SigV4 region; NULL or "": "us-east-1" */
  const char *bucket;
  const char *prefix;   /* NULL, "" or "a/b": the object of path P is PREFIX/P */
  const char *access_key, *secret_key; /* both NULL: unsigned (anonymous) requests */
  const char *session_token;           /* NULL: none (sent as x-amz-security-token) */
  unsigned timeout_ms; /* connecting, and a transfer that moves no byte, fail after this
                        * long (a stall counts in whole seconds); 0: 30000 */
  unsigned attempts;   /* tries of a request that failed in transit or with a 5xx; 0: 4 */
  /* The writer lock (bs_lock): NULL = none (tests that race stores on purpose).
   * Otherwise lock creates the object BS_LOCK_FILE under the prefix with
   * `If-None-Match: *`, holding "owner OWNER" and the lines of owner_info; an
   * object that names the same owner is this writer's own (a restart after a
   * crash), another owner's is STRATA_EBUSY naming it, unless take_over, which
   * replaces it. destroy deletes the object if it still names this owner. */
  const char *owner, *owner_info;
  int take_over;
} bs_s3_config;
/* Opens the store on cfg's bucket (strings are copied) after a one-key
 * listing of the prefix, which fails naming the endpoint and the bucket when
 * the endpoint cannot be reached, the bucket does not exist or the
 * credentials are refused. Caller frees *out with bs_destroy.
 * How it differs from a directory (storage/README.md, "S3 store"):
 * - a created file is written in memory and becomes an object at its first
 *   fsync, a PUT with `If-None-Match: *`: STRATA_EEXISTS when another writer
 *   created the name meanwhile; a later fsync PUTs the whole file again.
 *   What was appended after the last fsync is dropped at close. A file being
 *   written is read from memory by this process's readers.
 * - rename never replaces: it creates `to` the same conditional way
 *   (STRATA_EEXISTS when it exists) and deletes `from`. So bs_put_atomic
 *   creates a path once and cannot replace it.
 * - sync_dir and mkdir do nothing (a PUT or DELETE is durable when
 *   answered); list of a directory with no objects is empty, not
 *   STRATA_ENOTFOUND; lock does nothing (S3 has no lock; the server's data
 *   directory lock and the conditional creates guard); no reserve.
 * - failures: 404 STRATA_ENOTFOUND, 412 STRATA_EEXISTS, 401/403 EACCES
 *   naming the access key id; a connection failure, timeout or 5xx is retried
 *   (cfg->attempts, with backoff), then ECONNREFUSED, ETIMEDOUT or
 *   STRATA_EIO. Messages name the operation, bucket/key, HTTP status and S3
 *   error Code. */
int bs_s3_open(const bs_s3_config *cfg, bs_store **out);
/* An in-memory store; everything is lost at bs_destroy. */
int bs_mem_create(bs_store **out);
/* Power-cut model of the memory store (tests): after n more operations
 * (create, append, fsync, rename, directory fsync, remove) every operation
 * fails with STRATA_EIO; n = 0 cuts at once, n < 0 never. bs_mem_power_on
 * then keeps only what was durable: each file's bytes up to its last fsync,
 * each directory's entries as of its last directory fsync. */
void bs_mem_cut_power_after(bs_store *s, long n);
int bs_mem_power_on(bs_store *s);
/* Operations counted so far (to know how many crash points a run has). */
long bs_mem_ops(bs_store *s);
/* A full disk: an append that would take the bytes of the files linked in
 * the store past `bytes` fails with ENOSPC and writes nothing; 0 lifts it.
 * bs_mem_used gives the bytes now. */
void bs_mem_set_quota(bs_store *s, uint64_t bytes);
uint64_t bs_mem_used(bs_store *s);

/* Fault injection: wraps inner (not owned; must outlive the wrapper). */
enum bs_fault_site {
  BS_FAULT_WRITE = 0, BS_FAULT_FSYNC = 1, BS_FAULT_RENAME = 2, BS_FAULT_TRUNCATE = 3, BS_FAULT_NSITES
};
int bs_fault_wrap(bs_store *inner, bs_store **out);
/* Arms the wrapper: the nth (1-based, counted from now) operation at `site`
 * fails with err (EIO or ENOSPC); n = 0 disarms. A failed write writes nothing. */
void bs_fault_arm(bs_store *s, enum bs_fault_site site, uint64_t nth, int err);
/* Slows the wrapper: every later operation at `site` first sleeps `us`
 * microseconds (0 = no delay). The server's test-only STRATA_TEST_SLOW_SYNC_US. */
void bs_fault_delay(bs_store *s, enum bs_fault_site site, uint32_t us);
/* Operations seen at `site` since creation. */
uint64_t bs_fault_count(bs_store *s, enum bs_fault_site site);
/* Number of faults injected since creation. */
uint64_t bs_fault_fired(bs_store *s);

/* Convenience wrappers over the vtable. */
static inline int bs_open_read(bs_store *s, const char *path, bs_file **out) {
  return s->ops->open_read(s, path, out);
}
static inline int bs_pread(bs_file *f, uint64_t off, void *dst, size_t n) {
  return f->store->ops->pread(f, off, dst, n);
}
static inline int bs_size(bs_file *f, uint64_t *out) { return f->store->ops->size(f, out); }
static inline int bs_create(bs_store *s, const char *path, bs_file **out) {
  return s->ops->create(s, path, out);
}
static inline int bs_append(bs_file *f, const void *p, size_t n) {
  return f->store->ops->append(f, p, n);
}
static inline int bs_fsync(bs_file *f) { return f->store->ops->fsync(f); }
static inline int bs_reserve(bs_file *f, uint64_t n) {
  return f->store->ops->reserve ? f->store->ops->reserve(f, n) : 0;
}
static inline void bs_drop_cache(bs_file *f, uint64_t off, uint64_t n) {
  if (f->store->ops->drop_cache) f->store->ops->drop_cache(f, off, n);
}
static inline int bs_truncate(bs_file *f, uint64_t len) { return f->store->ops->truncate(f, len); }
static inline void bs_close(bs_file *f) {
  if (f) f->store->ops->close(f);
}
static inline int bs_rename(bs_store *s, const char *from, const char *to) {
  return s->ops->rename(s, from, to);
}
static inline int bs_sync_dir(bs_store *s, const char *dir) { return s->ops->sync_dir(s, dir); }
static inline int bs_remove(bs_store *s, const char *path) { return s->ops->remove(s, path); }
static inline int bs_mkdir(bs_store *s, const char *dir) { return s->ops->mkdir(s, dir); }
static inline int bs_list(bs_store *s, const char *dir, char ***names, size_t *n) {
  return s->ops->list(s, dir, names, n);
}
static inline int bs_lock(bs_store *s) { return s->ops->lock(s); }
static inline void bs_destroy(bs_store *s) {
  if (s) s->ops->destroy(s);
}

/* Reads a whole file into a malloc'd buffer (*p, *n). */
int bs_read_all(bs_store *s, const char *path, uint8_t **p, size_t *n);
/* Publishes a small file atomically and durably: writes `tmp`, fsyncs it,
 * renames it to `path`, fsyncs the directory `dir`. On a failure before the
 * rename the temp file is removed and `path` is unchanged. If only the
 * directory fsync after the rename failed, a `path` that did not exist
 * before is removed again (best effort); one that existed holds the new
 * content (the old cannot be restored) and whether the replacement survives
 * a crash is unknown. */
int bs_put_atomic(bs_store *s, const char *dir, const char *tmp, const char *path,
                  const void *p, size_t n);

#endif
