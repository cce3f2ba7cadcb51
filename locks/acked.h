/*
 * The last acknowledged generation of the store, kept in the lock database
 * (key 'G', locks/README.md) so that a store whose newest acknowledged
 * generation has gone missing from disk is refused at open instead of opened
 * rolled back (server/srv.c passes it to st_open as min_generation).
 */
#ifndef STRATA_LOCKS_ACKED_H
#define STRATA_LOCKS_ACKED_H

#include <stdint.h>

#include "locks/lock.h"

/* Records that generation `gen` was acknowledged, when it is above the value
 * recorded so far. A sync=false write: no fsync of its own, durable with the
 * lock table's next WAL sync. So the recorded value is exact after kill -9
 * (the write is in the OS before the caller answers) and a lower bound after a
 * power cut. Returns 0, or the lock database's failure (nothing recorded). */
int lk_acked_generation_note(lk_manager *lk, uint64_t gen);

/* The recorded value (0: none yet). */
uint64_t lk_acked_generation(lk_manager *lk);

#endif
