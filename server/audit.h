/*
 * The audit log: data_dir/audit.log, append-only, one JSON object per line,
 * each record written and fdatasync'ed before the call that caused it goes
 * on (docs/security.md, "The audit log"). server/auth.c decides what is
 * recorded; this file only builds the lines and makes them durable.
 */
#ifndef STRATA_SERVER_AUDIT_H
#define STRATA_SERVER_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define SRV_AUDIT_FILE "audit.log"
/* Refusal records (UNAUTHENTICATED / PERMISSION_DENIED) written per second at
 * most; the ones over the limit are counted and the count goes into the next
 * refusal record written ("dropped_refusals"), so a flood of bad calls cannot
 * fill the disk or the log's fsyncs. */
#define SRV_AUDIT_REFUSALS_PER_SEC 20
/* A record longer than this is cut (its request's arrays and strings are
 * shortened first; see jb_request). */
#define SRV_AUDIT_MAX_RECORD 8192

typedef struct srv_audit srv_audit;

/* Opens (creating) data_dir/audit.log for appending. A last line torn by a
 * crash (no final newline) is ended with a newline first, so the next record
 * starts on a line of its own. Returns 0 or an errno with the message. */
int srv_audit_open(const char *data_dir, srv_audit **out);
void srv_audit_close(srv_audit *a);

/* A record under construction: JSON members appended in order. */
typedef struct srv_jbuf {
  char p[SRV_AUDIT_MAX_RECORD];
  size_t n;
  int cut; /* something did not fit */
} srv_jbuf;

/* Starts a record: {"time":"...Z","time_ns":N,"event":"EVENT" */
void srv_jb_begin(srv_jbuf *b, const char *event);
void srv_jb_str(srv_jbuf *b, const char *key, const char *val);
void srv_jb_strn(srv_jbuf *b, const char *key, const char *val, size_t n);
void srv_jb_u64(srv_jbuf *b, const char *key, uint64_t v);
void srv_jb_bool(srv_jbuf *b, const char *key, int v);
/* "key": the message's set fields as a JSON object: numbers, booleans,
 * strings (at most 256 bytes), bytes as "0x..." hex (at most 64 bytes), enums
 * by name, nested messages up to two levels, repeated fields as arrays of at
 * most 16 elements followed by a "+N more" string. */
void srv_jb_request(srv_jbuf *b, const char *key, const ProtobufCMessage *m);

/* Closes the object and appends the line durably (write + fdatasync, under
 * the log's mutex so lines never interleave). Returns 0, or an errno with a
 * message saying the audit record could not be made durable. */
int srv_audit_append(srv_audit *a, srv_jbuf *b);

/* Whether a refusal record may be written now (the rate limit above). When it
 * may, *dropped is how many were skipped since the last one written (to put in
 * this record); when not, the skip is counted. */
int srv_audit_refusal_slot(srv_audit *a, uint64_t *dropped);

/* The path of the log (valid until srv_audit_close). */
const char *srv_audit_path(const srv_audit *a);

#endif
