/*
 * What the tools' client code shares (strata-split, strata-downsample): a key
 * built with printf, a Kv.Get at a generation, the renewal of one lock row, a
 * deadline some milliseconds from now. One owner each; tools/README.md.
 */
#ifndef STRATA_TOOLS_COMMON_KVC_H
#define STRATA_TOOLS_COMMON_KVC_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "rpc/client.h"

/* A malloc'd key from a printf format; NULL when out of memory. */
char *kvc_keyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads key at gen (0 = latest) through c. *found = 0 when absent. With val,
 * *val is malloc'd (NUL-terminated, *len bytes) when found, NULL otherwise;
 * with at, *at = the generation that answered. Returns the call's code
 * (strata_errmsg() says why) or STRATA_ENOMEM. */
int kvc_get(rpc_client *c, const char *key, uint64_t gen, int *found, uint8_t **val, size_t *len,
            uint64_t *at);

/* Locks.Renew of one row held by op, to ttl_ms from now. Returns the call's
 * code (strata_errmsg() says why). */
int kvc_renew_row(rpc_client *c, uint64_t op, const uint8_t *row, size_t len, uint64_t ttl_ms);

/* CLOCK_REALTIME now + ms, for pthread_cond_timedwait. */
struct timespec kvc_deadline_ms(int64_t ms);

#endif
