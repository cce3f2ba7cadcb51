/*
 * The operation log: one durable record per edit operation (who, what kind,
 * payload, the generation it started from, status), with strictly increasing
 * ids. It lives in the lk_manager's RocksDB; an indefinite lk_acquire records
 * its rows as the op's scope in the same write as the lock cells, and the
 * release clears them the same way, so ListStuck finds half-done edits.
 */
#ifndef STRATA_LOCKS_OPLOG_H
#define STRATA_LOCKS_OPLOG_H

#include <stddef.h>
#include <stdint.h>

#include "locks/lock.h"

typedef struct oplog oplog;

/* The op log inside lk; borrowed, valid until lk_close. */
oplog *lk_oplog(lk_manager *lk);

typedef enum oplog_status {
  OPLOG_CREATED = 0,
  OPLOG_WRITE_STARTED = 1,
  OPLOG_SUCCESS = 2,
  OPLOG_EXCEPTION = 3,
  OPLOG_WRITE_FAILED = 4,
} oplog_status;

#define OPLOG_NAME_MAX 255u             /* user and kind, bytes */
#define OPLOG_PAYLOAD_MAX (16u << 20)   /* payload, bytes */
#define OPLOG_EXCEPTION_MAX (64u << 10) /* exception text, bytes */

/* Name of a status ("WRITE_FAILED"); static string. */
const char *oplog_status_name(oplog_status s);

typedef struct oplog_op {
  uint64_t id;
  int64_t created_at;        /* server clock, ns */
  int64_t status_at;         /* when status was last set */
  uint64_t base_generation;
  oplog_status status;
  char *user;                /* NUL-terminated */
  char *kind;
  uint8_t *payload;
  size_t payload_len;
  char *exception;           /* "" when none */
  lk_row *scope;             /* rows held indefinitely by the op; keys owned */
  size_t nscope;
} oplog_op;

/* Appends an op with status CREATED. user and kind: 1..OPLOG_NAME_MAX bytes;
 * payload may be NULL when payload_len is 0. *id is larger than every id
 * handed out before, restarts included; *created_at is the server time. */
int oplog_create(oplog *ol, const char *user, const char *kind, const void *payload,
                 size_t payload_len, uint64_t base_generation, uint64_t *id, int64_t *created_at);

/* Sets the status (and exception text, NULL for none) durably.
 * STRATA_ENOTFOUND for an id never created. */
int oplog_set_status(oplog *ol, uint64_t id, oplog_status status, const char *exception);

/* Reads op id into *out (free with oplog_op_free). STRATA_ENOTFOUND if none. */
int oplog_get(oplog *ol, uint64_t id, oplog_op *out);
void oplog_op_free(oplog_op *op);

/* Ops whose scope is not empty, status is not SUCCESS and created_at is at
 * least min_age_ns ago, in id order. *ops is an array of *n ops; free with
 * oplog_ops_free. */
int oplog_list_stuck(oplog *ol, int64_t min_age_ns, oplog_op **ops, size_t *n);
void oplog_ops_free(oplog_op *ops, size_t n);

typedef struct oplog_list_filter {
  int any_status;         /* 1: every status; 0: only `status` */
  oplog_status status;
  int newest_first;       /* 0: ascending ids after after_id; 1: descending ids below before_id */
  uint64_t after_id;      /* ascending: only ids > after_id (0 = from the first) */
  uint64_t before_id;     /* descending: only ids < before_id (0 = from the newest) */
  size_t limit;           /* at most this many ops; 0 = no limit */
} oplog_list_filter;

/* Ops matching f, with their scopes, in the order f asks for. *ops is an
 * array of *n ops; free with oplog_ops_free. STRATA_EINVALID for an unknown
 * status. A page of `limit` ops costs O(limit + skipped) record reads. */
int oplog_list(oplog *ol, const oplog_list_filter *f, oplog_op **ops, size_t *n);

/* The oldest base generation (> 0) of an op whose status is not SUCCESS, or
 * 0 when there is none: retention's pin (server/retain.c, every second). One
 * pass over the op records' headers: no scope read, nothing copied. */
int oplog_oldest_open_base(oplog *ol, uint64_t *gen);

/* Largest id handed out so far (0 if none). */
uint64_t oplog_last_id(oplog *ol);

#endif
