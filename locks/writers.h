/*
 * The writer registry of coordinator mode (docs/protocol.md "Coordinator"):
 * registered writers with leases on the server's clock, the data files each
 * one registered, and the pins that keep GC away from a writer whose commit
 * is in flight. Persisted in the lk_manager's RocksDB beside the lock table,
 * the op log and the counters (locks/README.md "Writer registry").
 *
 * Functions return 0, a negative STRATA_E* code or a positive errno, with a
 * message in strata_errmsg() that names the writer (and the file).
 */
#ifndef STRATA_LOCKS_WRITERS_H
#define STRATA_LOCKS_WRITERS_H

#include <stddef.h>
#include <stdint.h>

#include "locks/lock.h"

typedef struct wreg_registry wreg_registry;

#define WREG_NAME_MAX 256u /* writer name, bytes */
#define WREG_TTL_MIN_MS 1000u
#define WREG_TTL_MAX_MS 86400000u
#define WREG_FILE_NAME_MAX 64u /* characters after the prefix */
/* "d/w" + 14 hex digits + "-": the prefix of writer files; the id fits 56 bits. */
#define WREG_PREFIX_LEN 18u
#define WREG_ID_MAX ((UINT64_C(1) << 56) - 1)
/* A path: the prefix plus at most WREG_FILE_NAME_MAX characters, plus the NUL. */
#define WREG_PATH_MAX (WREG_PREFIX_LEN + WREG_FILE_NAME_MAX + 1)

typedef enum wreg_state {
  WREG_LEASED = 0, /* live while now < lease_expires_ns */
  WREG_UNREGISTERED = 1, /* ended by UnregisterWriter */
  WREG_DEAD = 2, /* ended, and GC has started collecting it: no commit of it validates again */
} wreg_state;

/* One writer as listed. */
typedef struct wreg_info {
  uint64_t id;
  char name[WREG_NAME_MAX + 1];
  int64_t registered_ns;
  int64_t lease_expires_ns;
  uint64_t ttl_ms;
  wreg_state state;
  int live; /* state == WREG_LEASED and now < lease_expires_ns */
  uint64_t files_registered;
  uint64_t bytes_committed;
  uint64_t last_commit_generation;
  char prefix[WREG_PREFIX_LEN + 1];
} wreg_info;

/* Loads every writer of lk's database into memory. *out is the caller's until
 * wreg_close, which must come before lk_close. */
int wreg_open(lk_manager *lk, wreg_registry **out);
void wreg_close(wreg_registry *r);

/* The prefix of writer id's files, "d/w%014x-": the one place it is built.
 * out has room for WREG_PREFIX_LEN + 1 bytes. */
void wreg_prefix(uint64_t id, char out[WREG_PREFIX_LEN + 1]);
/* If `name` (a file name inside d/, without the "d/") has the form of a
 * writer file, "w" + 14 hex digits + "-" + 1..WREG_FILE_NAME_MAX characters of
 * [A-Za-z0-9._-] without "..", returns 1 and sets *id; otherwise 0. */
int wreg_parse_name(const char *name, uint64_t *id);
/* 0 when path (relative to the store directory) is a file name writer id may
 * use; else STRATA_EINVALID naming `field` and what is wrong. */
int wreg_check_path(uint64_t id, const char *field, const char *path);

/* A new writer with a lease of ttl_ms (WREG_TTL_MIN_MS..WREG_TTL_MAX_MS) from
 * now; durable before it returns. name is 1..WREG_NAME_MAX bytes. */
int wreg_register(wreg_registry *r, const char *name, uint64_t ttl_ms, wreg_info *out);
/* Extends a live writer's lease to now + ttl_ms (0: its registered TTL);
 * durable before it returns. STRATA_ENOTFOUND: no such writer;
 * STRATA_EEXPIRED: its lease has ended (it must register again). */
int wreg_renew(wreg_registry *r, uint64_t id, uint64_t ttl_ms, int64_t *expires_ns);
/* Ends the writer's lease now (its unreferenced files become GC's). Ending
 * an ended writer is a no-op; STRATA_ENOTFOUND for an unknown one. */
int wreg_unregister(wreg_registry *r, uint64_t id);
/* Records that live writer id created `path` (checked with wreg_check_path)
 * of `size` bytes. Registering a path again updates its size. */
int wreg_register_file(wreg_registry *r, uint64_t id, const char *path, uint64_t size);
/* The registered size of path: STRATA_ENOTFOUND when id never registered it. */
int wreg_file_size(wreg_registry *r, uint64_t id, const char *path, uint64_t *size);
/* 0 when the writer is live now; else STRATA_EEXPIRED (or ENOTFOUND for an
 * unknown id mapped to STRATA_EEXPIRED too) with a message saying why. */
int wreg_check_live(wreg_registry *r, uint64_t id);

/* Writers in id order; ended ones only with include_ended. *out is
 * malloc'd (free it). */
int wreg_list(wreg_registry *r, int include_ended, wreg_info **out, size_t *n);

/* --- the commit path (server/h_kv.c, through the store's fence) --------------
 * wreg_pin: the writer is live now, and GC will not collect it until the
 * matching wreg_unpin. Called at the commit's validation, on the committer
 * thread; takes one mutex, no I/O. STRATA_EEXPIRED when it is not live. */
int wreg_pin(wreg_registry *r, uint64_t id);
void wreg_unpin(wreg_registry *r, uint64_t id);
/* A commit of id's references reached generation gen with `bytes` of them.
 * Written without a sync of its own (statistics). Unknown ids are ignored. */
void wreg_note_commit(wreg_registry *r, uint64_t id, uint64_t gen, uint64_t bytes);

/* --- GC (storage/gc.c through the server) -----------------------------------
 * wreg_condemn: every writer whose lease has ended and that has no commit
 * pinned becomes WREG_DEAD (durably), so no commit of it validates again; the
 * ids of all WREG_DEAD writers go to *ids (malloc'd, free it), and *deferred
 * counts ended writers skipped because a commit of theirs is in flight.
 * With dry_run nothing changes: *ids lists the writers that would be. */
int wreg_condemn(wreg_registry *r, int dry_run, uint64_t **ids, size_t *n, uint64_t *deferred);
/* Removes a WREG_DEAD writer and its file registrations (after GC removed its
 * unreferenced files). */
int wreg_forget(wreg_registry *r, uint64_t id);
/* 1 when id was handed out and has been forgotten (wreg_forget): no commit
 * of it can pass wreg_pin ever again, so files under its prefix are GC's. */
int wreg_is_gone(wreg_registry *r, uint64_t id);
/* Is id a writer the registry knows (any state)? and is it live? */
int wreg_known(wreg_registry *r, uint64_t id, int *live);

#endif
