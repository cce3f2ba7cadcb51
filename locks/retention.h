/*
 * The store's retention policy and explicit holds, persisted in the
 * lk_manager's RocksDB beside the writer registry ('R' 'P' -> policy,
 * 'R' 'H' generation(8) -> hold). The policy is the operator's decision; the
 * server turns it, the holds, the ops' base generations and the live
 * watchers' positions into the store's retention floor (server/retain.c).
 * Why here and not in the store's own files: it is changed online by an
 * operator call that must be durable when answered, like the registry, and
 * an OCDBT manifest has no place for it that tensorstore would keep.
 */
#ifndef STRATA_LOCKS_RETENTION_H
#define STRATA_LOCKS_RETENTION_H

#include <stddef.h>
#include <stdint.h>

#include "locks/lock.h"

typedef enum ret_kind {
  RET_KEEP_ALL = 0,      /* the default */
  RET_KEEP_VERSIONS = 1, /* value: the newest N versions */
  RET_KEEP_FOR = 2,      /* value: nanoseconds of history */
} ret_kind;

typedef struct ret_policy {
  ret_kind kind;
  uint64_t value;
  int64_t set_at_ns; /* server clock; 0 for the default never set */
} ret_policy;

#define RET_REASON_MAX 256u /* bytes of a hold's reason */

typedef struct ret_hold {
  uint64_t generation;
  int64_t created_ns;
  char reason[RET_REASON_MAX + 1];
} ret_hold;

/* The policy (keep-all when never set). */
int ret_policy_get(lk_manager *lk, ret_policy *out);
/* Sets it durably (STRATA_EINVALID for keep-versions 0 or keep-for 0). */
int ret_policy_set(lk_manager *lk, const ret_policy *p);
/* Adds or replaces the hold on generation (>= 1) durably. */
int ret_hold_add(lk_manager *lk, uint64_t generation, const char *reason);
/* Removes it durably; STRATA_ENOTFOUND when there is none. */
int ret_hold_release(lk_manager *lk, uint64_t generation);
/* Every hold, by generation; free(*out). */
int ret_hold_list(lk_manager *lk, ret_hold **out, size_t *n);

#endif
