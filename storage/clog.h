/*
 * The commit log (issue 10): an append-only log of committed groups, the
 * durability point of the commit pipeline once the committer is wired to it.
 * Segment files "<dir>/<16 hex sequence>" live in a base store (the database
 * directory's "log/" by default); they are not part of OCDBT and OCDBT
 * readers never look at them. docs/format.md ("Commit log") has the byte
 * layout, storage/README.md ("Commit log") the rules.
 *
 * A record is (type, generation, commit time, payload) under a CRC-32C. The
 * writer buffers records and makes them durable with one bs_append and one
 * fsync per clog_sync; a new segment's directory entry is synced with its
 * first records. A failed sync is taken back by a VOID record in a new
 * segment, so that "failed" stays the truth after a crash.
 *
 * Engine-private (storage/ and its benchmark, tools/bench/bench_store.c). Threads: a writer is used by one thread at
 * a time, except clog_prepare, clog_trim and clog_writer_stats, which may run
 * concurrently with it (an internal mutex guards the segment list and the
 * prepared segment).
 */
#ifndef STRATA_STORAGE_CLOG_H
#define STRATA_STORAGE_CLOG_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "storage/base.h"

#define CLOG_DIR "log"
/* Every segment starts with these 16 bytes. */
#define CLOG_SEGMENT_MAGIC "strata-clog-v1\n"
#define CLOG_SEGMENT_MAGIC_LEN 16
/* Record header: crc32c u32, payload length u32, type u8, 3 zero bytes,
 * generation u64, commit time u64 (little endian). */
#define CLOG_HEADER_BYTES 28
/* The largest payload a record may carry: the engine writes bigger values to
 * data files and logs a reference. */
#define CLOG_MAX_PAYLOAD (64u << 20)

enum clog_type {
  CLOG_GROUP = 1, /* a committed group: generation, commit time, its changes */
  CLOG_VOID = 2,  /* cancels every earlier record with generation >= its own */
};

enum clog_op_kind { CLOG_OP_DELETE = 0, CLOG_OP_VALUE = 1, CLOG_OP_REF = 2 };

/* One change of a group, as the log carries it. */
typedef struct clog_op {
  int kind;              /* enum clog_op_kind */
  const uint8_t *key;
  size_t klen;
  const uint8_t *value;  /* CLOG_OP_VALUE */
  size_t vlen;
  const char *path;      /* CLOG_OP_REF: a file under the database directory */
  size_t plen;
  uint64_t off, len;
} clog_op;

/* Appends the payload of a group record holding ops[0..n) to out. */
int clog_encode_ops(strata_buf *out, const clog_op *ops, size_t n);
/* Decodes a group payload; the ops point into p (keys, values, paths, the
 * paths not NUL-terminated). *ops is malloc'd: free() it. STRATA_ECORRUPT
 * when the payload does not parse to its end. */
int clog_decode_ops(const uint8_t *p, size_t n, clog_op **ops, size_t *nops);

/* --- reading ------------------------------------------------------------------ */

typedef struct clog_rec {
  int type;
  uint64_t generation, commit_time;
  const uint8_t *payload;  /* into the contents' segment bytes */
  size_t len;
  uint64_t seq, offset;    /* where it was read */
} clog_rec;

typedef struct clog_seg {
  uint64_t seq;
  uint64_t max_generation; /* of any record it holds, valid or voided; 0 none */
  uint64_t bytes;          /* file size */
  uint64_t torn_bytes;     /* bytes dropped at its tail (a crash mid-append) */
} clog_seg;

typedef struct clog_stamp {
  uint64_t generation, commit_time;
} clog_stamp;

typedef struct clog_contents {
  clog_rec *recs;          /* the group records after `after`, voids applied, generations contiguous */
  size_t n;
  clog_stamp *pub;         /* the records at or before `after` (published, not trimmed yet), voids
                              applied: what open checks against the manifests (recover.c) */
  size_t npub;
  clog_seg *segs;          /* every segment, by sequence */
  size_t nsegs;
  uint8_t **data;          /* segment bytes (one per segment) */
  uint64_t torn_bytes;     /* sum over the segments */
  size_t nvoids;           /* void records read */
} clog_contents;

/* Reads every segment under dir (missing dir: an empty log). Records with a
 * generation <= after are already published: only their stamps are kept
 * (out->pub). A record that
 * fails its checksum or runs past the end of its segment ends that segment
 * (torn tail: a crash mid-append; never acknowledged). Errors:
 * STRATA_ECORRUPT when a segment has a foreign header, or when the records
 * left are not exactly after+1, after+2, ... (records of an acknowledged
 * generation are missing: the message names the generations and segment).
 * *out is owned by the caller: clog_contents_free (also after an error). */
int clog_read(bs_store *s, const char *dir, uint64_t after, clog_contents *out);
void clog_contents_free(clog_contents *c);

/* --- writing ------------------------------------------------------------------ */

typedef struct clog_writer clog_writer;

/* A writer that appends to new segments under dir, the first numbered
 * first_seq (give clog_next_seq of what clog_read found, or 1). Existing
 * segments in known[0..nknown) are adopted for trimming. Creates dir (and
 * makes its entry durable) when missing. */
int clog_writer_open(bs_store *s, const char *dir, uint64_t first_seq, const clog_seg *known,
                     size_t nknown, clog_writer **out);
void clog_writer_close(clog_writer *w);
/* The sequence number after every segment in c. */
uint64_t clog_next_seq(const clog_contents *c);

/* Buffers one record (nothing is written yet). STRATA_ETOOBIG when the
 * payload exceeds CLOG_MAX_PAYLOAD. */
int clog_append(clog_writer *w, int type, uint64_t generation, uint64_t commit_time,
                const void *payload, size_t n);
/* Drops the records buffered since the last sync (a group that failed
 * before its sync). */
void clog_discard(clog_writer *w);
/* Writes the buffered records with one append and makes them durable (fsync
 * of the segment; its directory's fsync too when the segment is new). On
 * failure the records may or may not have reached the disk: the writer cuts
 * the segment back to where they started and fsyncs it (which needs no free
 * space, so a full disk is survived in place); if that fails it closes the
 * segment and makes a VOID record for the lowest buffered generation durable
 * at the start of a new segment. *unknown = 0 then (the failed records will
 * never be replayed); when that fails as well, *unknown = 1, the outcome is
 * unknown and every later sync fails (the database must be reopened).
 * Returns the first error. */
int clog_sync(clog_writer *w, int *unknown);
/* Takes back the records of the last successful clog_sync (nothing synced
 * since): cut off as above, or failing that voided from generation gen on.
 * 0 when they will never be replayed; otherwise *unknown = 1 as above. */
int clog_cancel_last(clog_writer *w, uint64_t gen, int *unknown);
/* The next sync starts a new segment (so that clog_trim can remove the
 * current one once everything in it is published). */
void clog_rotate(clog_writer *w);
/* Makes the next segment ready ahead of the writer, from another thread (the
 * publisher): creates it, writes its header, reserves `bytes` of room
 * (bs_reserve: appends into it sync without allocating) and makes its
 * directory entry durable, so that the writer's move to it costs no file
 * creation or directory sync and its syncs are overwrites. Does nothing when
 * one is ready or being made. A segment made ready but never used holds no
 * record; the reader skips it and a trim removes it. Returns 0 or the
 * failure (the writer then creates the segment itself, as without it). */
int clog_prepare(clog_writer *w, uint64_t bytes);
/* Bytes in the segment being appended to (0 before its first sync). */
uint64_t clog_segment_bytes(clog_writer *w);
/* Removes the closed segments, oldest first, whose records all have
 * generation <= upto; stops at the first that has a newer one. Removals are
 * not synced: a segment that comes back after a crash holds only published
 * generations, which clog_read leaves out. Returns the number removed. */
size_t clog_trim(clog_writer *w, uint64_t upto);

typedef struct clog_stats {
  uint64_t segments;       /* segments on disk (closed + current) */
  uint64_t bytes_written;  /* since open */
  uint64_t syncs;
} clog_stats;
void clog_writer_stats(clog_writer *w, clog_stats *out);

#endif
