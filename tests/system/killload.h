/*
 * killload's private header: the sizes every part agrees on, the driver's model
 * of what the clients were told (registers, acknowledged commits, id ranges), and
 * the calls between its three files: killload.c (values, the driver),
 * killload_client.c (a client process's workload) and killload_check.c (the
 * model fed from the histories, the checks against the restarted server and the
 * offline store check).
 */
#ifndef STRATA_TESTS_SYSTEM_KILLLOAD_H
#define STRATA_TESTS_SYSTEM_KILLLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "rpc/client.h"
#include "tests/system/sys_common.h"

#define NSMALL 24        /* small keys per client (inline values) */
#define NLARGE 4         /* large keys per client (out-of-line values) */
#define NKEYS (NSMALL + NLARGE)
#define NLOCKROWS 8      /* lock rows per client */
#define MAXOPS 4096      /* ops a client tracks */
#define MAX_CLIENTS 16
#define VAL_MAX 65536
#define TT_PER_CYCLE 200 /* newest acknowledged commits read back per verification */

/* --- values ------------------------------------------------------------------- */

/* The bytes of value `seq` of `key`, `len` long: a readable prefix naming them,
 * then filler derived from both, so a verifier rebuilds the exact bytes. */
size_t kl_value_make(uint8_t *out, const char *key, uint64_t seq, size_t len);
/* "seq/len" for a value that matches its generator exactly, "BAD" otherwise. */
void kl_value_name(const char *key, const uint8_t *v, size_t len, char *out, size_t n);
/* A C string as protobuf bytes (not copied). */
ProtobufCBinaryData kl_bin(const char *s);

/* --- the client ---------------------------------------------------------------- */

/* `killload client I SEED FILE`: commands on stdin, IDLE lines on stdout. */
int kl_client_main(int argc, char **argv);

/* --- the driver's model -------------------------------------------------------- */

#define MAXUNK 8
typedef struct reg {
  char name[40];
  char val[48]; /* last acknowledged (or observed) value */
  int64_t exp;  /* temporal lock: expiry (ns); 0 otherwise */
  char unk[MAXUNK][48];
  int64_t unk_exp[MAXUNK];
  int nunk;
  struct reg *next;
} reg;

#define NBUCKETS 4096
typedef struct model {
  reg *b[NBUCKETS];
  uint64_t nregs;
} model;

typedef struct ack_commit {
  uint64_t gen;
  int64_t ctime;
  int client;
  char kv[4][48]; /* key=value */
  int n;
} ack_commit;

typedef struct idrange {
  char ctr[24];
  uint64_t first, count;
} idrange;

typedef struct drv {
  model m;
  int nclients;
  char files[MAX_CLIENTS][600];
  size_t off[MAX_CLIENTS];
  ack_commit *acks; /* every acknowledged commit */
  size_t nacks, capacks, checked_acks;
  idrange *ids;
  size_t nids, capids;
  uint64_t tok_before;    /* the largest token acknowledged in earlier cycles */
  uint64_t tok_cycle;     /* the largest this cycle */
  uint64_t tok_last[MAX_CLIENTS];
  uint64_t max_gen;
  uint64_t lost_creates; /* Ops.Create calls whose outcome is unknown */
  sys_rng rng;           /* picks the older commits read back */
  int64_t *times;        /* commit time of each generation Kv.Versions listed */
  uint64_t ntimes, vers_last;
  uint64_t offline_last; /* generations up to this one were walked offline */
  /* figures */
  uint64_t effects, verified, unknowns, violations, timetravel, offline_checks;
} drv;

/* Counts a violation and prints the first 20. */
void kl_violation(drv *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Reads the clients' new history lines into the model, then checks the restarted
 * server at `addr` against it. */
void kl_verify(drv *d, const char *addr);
/* The store in `dir` checked offline, the server down: every generation's tree
 * walked (keys) since the last check (all when `full`), values read at the latest
 * and at `sample` spread generations. */
void kl_offline_check(drv *d, const char *dir, int full, int sample);

#endif
