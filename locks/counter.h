/*
 * Id counters: named, durable sequences that hand out ranges of new ids
 * (new supervoxel ids, for instance). They live in the lk_manager's RocksDB.
 */
#ifndef STRATA_LOCKS_COUNTER_H
#define STRATA_LOCKS_COUNTER_H

#include <stdint.h>

#include "locks/lock.h"

typedef struct ctr_table ctr_table;

#define CTR_NAME_MAX 255u  /* counter name, bytes */

/* The counters inside lk; borrowed, valid until lk_close. */
ctr_table *lk_counters(lk_manager *lk);

/* Reserves count (>= 1) ids from counter name (1..CTR_NAME_MAX bytes; a
 * counter starts at 1 the first time it is used) and stores the first in
 * *first: the ids [*first, *first + count) were never handed out before and
 * never will be again, restarts included. STRATA_ERANGE if the counter would
 * pass UINT64_MAX. */
int ctr_allocate(ctr_table *ct, const char *name, uint64_t count, uint64_t *first);

/* The next id ctr_allocate would hand out (1 for an unused counter). */
int ctr_peek(ctr_table *ct, const char *name, uint64_t *next);

#endif
