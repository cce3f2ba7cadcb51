/* Request validation helpers (see validate.h). */
#include "server/validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/keyshow.h"
#include "locks/lock.h"

_Static_assert(LK_KEY_MAX <= V_MAX_KEY, "a lock row is a key: v_rows checks the smaller limit only");

int v_key(const char *field, const ProtobufCBinaryData *k) {
  if (k->len == 0) return strata_err(STRATA_EINVALID, "%s: must not be empty", field);
  if (k->len > V_MAX_KEY)
    return strata_err(STRATA_EINVALID, "%s: %zu bytes exceeds the %u-byte key limit", field, k->len,
                      V_MAX_KEY);
  return 0;
}

int v_key_at(const char *list, size_t i, const char *sub, const ProtobufCBinaryData *k) {
  char f[96];
  snprintf(f, sizeof f, "%s[%zu]%s", list, i, sub);
  return v_key(f, k);
}

int v_bound(const char *field, const ProtobufCBinaryData *k) {
  if (k->len > V_MAX_KEY)
    return strata_err(STRATA_EINVALID, "%s: %zu bytes exceeds the %u-byte key limit", field, k->len,
                      V_MAX_KEY);
  return 0;
}

int v_count(const char *field, size_t n, size_t lo, size_t hi) {
  if (n < lo)
    return strata_err(STRATA_EINVALID, "%s: at least %zu required, got %zu", field, lo, n);
  if (n > hi) return strata_err(STRATA_EINVALID, "%s: at most %zu allowed, got %zu", field, hi, n);
  return 0;
}

static int cmp_keyp(const void *a, const void *b) {
  const ProtobufCBinaryData *x = *(const ProtobufCBinaryData *const *)a;
  const ProtobufCBinaryData *y = *(const ProtobufCBinaryData *const *)b;
  size_t n = x->len < y->len ? x->len : y->len;
  int c = n ? memcmp(x->data, y->data, n) : 0;
  if (c) return c;
  return (x->len > y->len) - (x->len < y->len);
}

int v_distinct(const char *field, size_t n, const ProtobufCBinaryData **keys) {
  qsort(keys, n, sizeof *keys, cmp_keyp);
  for (size_t i = 1; i < n; i++) {
    if (cmp_keyp(&keys[i - 1], &keys[i]) == 0) {
      char show[STRATA_KEY_SHOW_BUF];
      return strata_err(STRATA_EINVALID, "%s: key %s appears more than once", field,
                        strata_key_show(keys[i]->data, keys[i]->len, show, sizeof show));
    }
  }
  return 0;
}

int v_rows(const char *field, size_t n, const ProtobufCBinaryData *rows) {
  int rc = v_count(field, n, 1, V_MAX_BATCH);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++) {
    if (rows[i].len == 0)
      return strata_err(STRATA_EINVALID, "%s[%zu]: must not be empty", field, i);
    if (rows[i].len > LK_KEY_MAX) /* lock rows have the lock manager's limit, not the store's */
      return strata_err(STRATA_EINVALID, "%s[%zu]: %zu bytes exceeds the %u-byte row limit", field, i,
                        rows[i].len, LK_KEY_MAX);
  }
  const ProtobufCBinaryData **p = malloc(n * sizeof *p);
  if (!p) return strata_err(STRATA_ENOMEM, "%s: out of memory", field);
  for (size_t i = 0; i < n; i++) p[i] = &rows[i];
  rc = v_distinct(field, n, p);
  free(p);
  return rc;
}

int v_pin(const char *field, const Strata__V1__VersionPin *pin) {
  if (!pin) return 0;
  switch (pin->pin_case) {
  case STRATA__V1__VERSION_PIN__PIN__NOT_SET: return 0;
  case STRATA__V1__VERSION_PIN__PIN_LATEST:
    if (!pin->latest)
      return strata_err(STRATA_EINVALID,
                        "%s.latest: set it to true, or set generation or "
                        "commit_time_ns",
                        field);
    return 0;
  case STRATA__V1__VERSION_PIN__PIN_GENERATION: return 0; /* 0: the empty store */
  case STRATA__V1__VERSION_PIN__PIN_COMMIT_TIME_NS:
    if (pin->commit_time_ns < 0)
      return strata_err(STRATA_EINVALID,
                        "%s.commit_time_ns: must be >= 0 (ns since the Unix "
                        "epoch), got %lld",
                        field, (long long)pin->commit_time_ns);
    return 0;
  default: return strata_err(STRATA_EINVALID, "%s: unknown pin kind %d", field, (int)pin->pin_case);
  }
}

int v_enum(const char *field, int v, int unset_ok, const ProtobufCEnumDescriptor *d) {
  const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(d, v);
  if (ev && (v != 0 || unset_ok)) return 0;
  if (ev) return strata_err(STRATA_EINVALID, "%s: %s is not allowed here", field, ev->name);
  return strata_err(STRATA_EINVALID, "%s: %d is not a known %s value", field, v, d->name);
}

int v_op_id(const char *field, uint64_t id) {
  if (id == 0) return strata_err(STRATA_EINVALID, "%s: must be set (op ids start at 1)", field);
  return 0;
}

