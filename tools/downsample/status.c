/*
 * strata-downsample's status: the workers' checkpoints under a volume's prefix, as
 * `stratactl downsample status` prints them (stratactl links this library).
 */
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tools/common/kvc.h"
#include "tools/downsample/ds_int.h"

/* --- status --------------------------------------------------------------------------------- */

int ds_status(rpc_client *c, const char *prefix, uint64_t *latest, ds_ckpt **out, size_t *n,
              char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  *latest = 0;
  char *start = kvc_keyf("%s" DS_DIR "checkpoint/", prefix), *end = kvc_keyf("%s" DS_DIR "checkpoint0", prefix);
  if (!start || !end) {
    free(start);
    free(end);
    snprintf(err, errlen, "out of memory");
    return STRATA_ENOMEM;
  }
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  q.start.data = (uint8_t *)start;
  q.start.len = strlen(start);
  q.end.data = (uint8_t *)end;
  q.end.len = strlen(end);
  rpc_cstream *st = NULL;
  int rc = rpc_kv_list(c, NULL, &q, &st);
  size_t cap = 0, slen = strlen(start);
  while (!rc) {
    Strata__V1__ListResponse *m = NULL;
    int r = rpc_kv_list_next(st, &m);
    if (r != 1) {
      rc = r;
      break;
    }
    if (m->version) *latest = m->version->generation;
    for (size_t i = 0; i < m->n_entries; i++) {
      const Strata__V1__KeyValue *e = m->entries[i];
      if (*n == cap) {
        cap = cap ? 2 * cap : 8;
        ds_ckpt *nv = realloc(*out, cap * sizeof **out);
        if (!nv) {
          rc = STRATA_ENOMEM;
          break;
        }
        *out = nv;
      }
      ds_ckpt *d = &(*out)[(*n)++];
      size_t nl = e->key.len - slen < DS_MAX_NAME ? e->key.len - slen : DS_MAX_NAME;
      memcpy(d->name, e->key.data + slen, nl);
      d->name[nl] = 0;
      d->generation = ds__gen_value(e->value.data, e->value.len);
    }
    rpc_free(m);
  }
  if (st) rpc_cstream_close(st);
  if (rc) snprintf(err, errlen, "Kv.List %s: %s", start, strata_errmsg());
  if (!rc && !*latest) { /* no entries: the latest from a read */
    int found;
    if ((rc = kvc_get(c, start, 0, &found, NULL, NULL, latest)))
      snprintf(err, errlen, "Kv.Get: %s", strata_errmsg());
  }
  free(start);
  free(end);
  return rc;
}

