/*
 * Request validation shared by the handlers. Each check returns 0 or
 * STRATA_EINVALID with a strata_err() message that names the field as a path
 * into the request ("puts[3].key: ..."), so the client sees exactly what to fix.
 * Checks that need the engines (a pinned generation that is not in history)
 * happen in the handlers.
 */
#ifndef STRATA_SERVER_VALIDATE_H
#define STRATA_SERVER_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "strata/v1/common.pb-c.h"

#define V_MAX_KEY 65535u /* OCDBT's key limit */
#define V_MAX_BATCH 10000u /* keys per BatchGet, rows per lock call */
#define V_MAX_ID_COUNT (UINT64_C(1) << 32)

/* A key or row: 1..65535 bytes. `field` is printf'd with idx when idx >= 0
 * ("%s[%d]"), so callers pass "puts" + index + ".key" via v_key_at. */
int v_key(const char *field, const ProtobufCBinaryData *k);
int v_key_at(const char *list, size_t i, const char *sub, const ProtobufCBinaryData *k);
/* An optional bound or prefix: 0..65535 bytes. */
int v_bound(const char *field, const ProtobufCBinaryData *k);
/* A list of lock rows: 1..V_MAX_BATCH of them, each 1..LK_KEY_MAX bytes (the
 * lock manager's row limit, checked once: it is below V_MAX_KEY), no
 * duplicates. */
int v_rows(const char *field, size_t n, const ProtobufCBinaryData *rows);
/* n in [lo, hi]. */
int v_count(const char *field, size_t n, size_t lo, size_t hi);
/* A version pin: absent, latest=true, generation >= 1, commit_time_ns >= 0. */
int v_pin(const char *field, const Strata__V1__VersionPin *pin);
/* An enum value: one the generated descriptor d names, so the range follows
 * the .proto. Its 0 (UNSPECIFIED) value only with V_ENUM_OR_UNSET (a filter's
 * "any"); with V_ENUM_SET it is "not allowed here". */
#define V_ENUM_SET 0
#define V_ENUM_OR_UNSET 1
int v_enum(const char *field, int v, int unset_ok, const ProtobufCEnumDescriptor *d);
/* An op id that must be set. */
int v_op_id(const char *field, uint64_t id);

/* Sorts pointers to keys and reports the first duplicate as "field: key 0x.. appears
 * twice". keys[i] are borrowed. */
int v_distinct(const char *field, size_t n, const ProtobufCBinaryData **keys);

#endif
