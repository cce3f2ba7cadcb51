/* The tools' shared client helpers (kvc.h). */
#include "tools/common/kvc.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

char *kvc_keyf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  char *s = NULL;
  if (vasprintf(&s, fmt, ap) < 0) s = NULL;
  va_end(ap);
  return s;
}

int kvc_get(rpc_client *c, const char *key, uint64_t gen, int *found, uint8_t **val, size_t *len,
            uint64_t *at) {
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  Strata__V1__VersionPin pin = STRATA__V1__VERSION_PIN__INIT;
  q.key.data = (uint8_t *)key;
  q.key.len = strlen(key);
  if (gen) {
    pin.pin_case = STRATA__V1__VERSION_PIN__PIN_GENERATION;
    pin.generation = gen;
    q.pin = &pin;
  }
  Strata__V1__GetResponse *r = NULL;
  int rc = rpc_kv_get(c, NULL, &q, &r);
  if (rc) return rc;
  *found = r->found;
  if (at) *at = r->version ? r->version->generation : 0;
  if (val) {
    *val = NULL;
    *len = r->value.len;
    if (r->found) {
      *val = malloc(r->value.len + 1);
      if (!*val) {
        rpc_free(r);
        return strata_err(STRATA_ENOMEM, "out of memory reading %s", key);
      }
      memcpy(*val, r->value.data, r->value.len);
      (*val)[r->value.len] = 0;
    }
  }
  rpc_free(r);
  return 0;
}

int kvc_renew_row(rpc_client *c, uint64_t op, const uint8_t *row, size_t len, uint64_t ttl_ms) {
  Strata__V1__RenewRequest q = STRATA__V1__RENEW_REQUEST__INIT;
  ProtobufCBinaryData b = {len, (uint8_t *)row};
  q.op_id = op;
  q.rows = &b;
  q.n_rows = 1;
  q.ttl_ms = ttl_ms;
  Strata__V1__RenewResponse *r = NULL;
  int rc = rpc_locks_renew(c, NULL, &q, &r);
  rpc_free(r);
  return rc;
}

struct timespec kvc_deadline_ms(int64_t ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t ns = ts.tv_nsec + (ms % 1000) * 1000000;
  ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
  ts.tv_nsec = (long)(ns % 1000000000);
  return ts;
}
