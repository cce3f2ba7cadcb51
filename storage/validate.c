/*
 * Validation of a group's transactions: the overlay of the survivors'
 * changes so far (a hash map by key), the conditions, the data references,
 * and the fence, called last. storage/README.md, "Commit pipeline", step 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/keyshow.h"
#include "storage/commit_int.h"

/* --- the group's overlay ----------------------------------------------------- */

static gchange *g_find(group *g, const uint8_t *k, size_t kn) {
  if (!g->scap) return NULL;
  for (size_t j = st__hash_bytes(k, kn) & (g->scap - 1); g->slot[j]; j = (j + 1) & (g->scap - 1)) {
    gchange *c = &g->ch[g->slot[j] - 1];
    if (c->klen == kn && (!kn || !memcmp(c->key, k, kn))) return c;
  }
  return NULL;
}

static int g_rehash(group *g) {
  size_t cap = g->scap ? g->scap * 2 : 256;
  uint32_t *s = calloc(cap, sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "commit group");
  for (size_t i = 0; i < g->n; i++) {
    size_t j = st__hash_bytes(g->ch[i].key, g->ch[i].klen) & (cap - 1);
    while (s[j]) j = (j + 1) & (cap - 1);
    s[j] = (uint32_t)i + 1;
  }
  free(g->slot);
  g->slot = s;
  g->scap = cap;
  return 0;
}

static int g_add(group *g, const top *op, uint32_t ref_file) {
  gchange *c = g_find(g, op->key, op->klen);
  if (c) {
    c->op = op;
    c->ref_file = ref_file;
    return 0;
  }
  int rc;
  if ((g->n + 1) * 2 > g->scap && (rc = g_rehash(g))) return rc;
  if (strata_grow(&g->ch, &g->cap, g->n + 1, sizeof *g->ch, 256))
    return strata_err(STRATA_ENOMEM, "commit group");
  g->ch[g->n] = (gchange){op->key, op->klen, op, ref_file};
  size_t j = st__hash_bytes(op->key, op->klen) & (g->scap - 1);
  while (g->slot[j]) j = (j + 1) & (g->scap - 1);
  g->slot[j] = (uint32_t)++g->n;
  return 0;
}

void cm__group_free(group *g) {
  free(g->ch);
  free(g->slot);
}

/* --- validation ------------------------------------------------------------------ */

static int fail_cond(st_txn *t, const top *o, const char *why) {
  t->res.rc = STRATA_ECONDITION;
  t->res.failed_condition = o->cond;
  t->res.failed_condition_index = o->cond_index;
  t->res.failed_key = o->key;
  t->res.failed_key_len = o->klen;
  static const char *names[] = {"none", "absent", "unchanged since generation", "value hash"};
  char kb[STRATA_KEY_SHOW_BUF], since[32] = "";
  if (o->cond == ST_COND_UNCHANGED_SINCE) snprintf(since, sizeof since, " %llu", (unsigned long long)o->since);
  snprintf(t->res.message, sizeof t->res.message, "condition '%s%s' failed on key %s: %s", names[o->cond],
           since, strata_key_show(o->key, o->klen, kb, sizeof kb), why);
  return STRATA_ECONDITION;
}

/* The key's current entry: the group's change when there is one, else the
 * latest tree. *found = 0 when absent. Pins: release e->pin. */
static int current(group *g, const st_root *root, const top *o, int *found, st_entry *e,
                   const gchange **chg) {
  *chg = g_find(g, o->key, o->klen);
  memset(e, 0, sizeof *e);
  if (*chg) {
    const top *c = (*chg)->op;
    *found = c->kind != OP_DELETE;
    if (c->kind == OP_PUT) {
      e->kind = OCDBT_VALUE_INLINE; /* bytes in memory; compared by hash only */
      e->value = c->val;
      e->vlen = c->vlen;
    } else if (c->kind == OP_PUT_REF) {
      e->kind = OCDBT_VALUE_INDIRECT;
      e->ref = (st_ref){(*chg)->ref_file, c->off, c->len};
    }
    return 0;
  }
  int rc = bt__find(g->db, root, o->key, o->klen, e);
  if (rc == STRATA_ENOTFOUND) {
    *found = 0;
    return 0;
  }
  *found = !rc;
  return rc;
}

static int check_cond(group *g, st_txn *t, const top *o, const st_vers *latest) {
  st_db *db = g->db;
  int found = 0, rc;
  st_entry e;
  const gchange *chg;
  if ((rc = current(g, &latest->root, o, &found, &e, &chg))) return rc;
  switch (o->cond) {
    case ST_COND_ABSENT:
      rc = found ? fail_cond(t, o, "the key exists") : 0;
      break;
    case ST_COND_UNCHANGED_SINCE: {
      if (chg) {
        rc = fail_cond(t, o, "changed by an earlier transaction in this commit");
        break;
      }
      if (o->since == 0) {
        /* Generation 0 is the empty database: unchanged since then means
         * absent now (it has no version in the version tree to look up). */
        rc = found ? fail_cond(t, o, "the key was created after that generation (the empty database)") : 0;
        break;
      }
      st_vers old;
      if (o->since > latest->generation) {
        rc = fail_cond(t, o, "that generation does not exist yet");
        break;
      }
      rc = vt__find_generation(db, &db->ms, o->since, &old);
      if (rc == STRATA_ENOTFOUND) {
        rc = fail_cond(t, o, "that generation does not exist");
        break;
      }
      if (rc) break;
      st_entry oe;
      int ofound = 1;
      rc = bt__find(db, &old.root, o->key, o->klen, &oe);
      if (rc == STRATA_ENOTFOUND) {
        ofound = 0;
        rc = 0;
      }
      if (rc) break;
      int same = ofound == found && (!found || bt__entry_equal(&oe, &e));
      if (ofound) nc__release(db, oe.pin);
      rc = same ? 0 : fail_cond(t, o, "the key changed after that generation");
      break;
    }
    case ST_COND_HASH: {
      if (!found) {
        rc = fail_cond(t, o, "the key is absent");
        break;
      }
      strata_buf v = STRATA_BUF_INIT;
      uint8_t h[ST_HASH_BYTES];
      if (chg && chg->op->kind == OP_PUT) {
        st_value_hash(chg->op->val, chg->op->vlen, h);
      } else {
        if ((rc = bt__read_value(db, &e, &v))) break;
        st_value_hash(v.p, v.len, h);
        strata_buf_free(&v);
      }
      rc = memcmp(h, o->hash, ST_HASH_BYTES) ? fail_cond(t, o, "the value has another hash") : 0;
      break;
    }
    default:
      rc = strata_err(STRATA_EINVALID, "unknown condition %d", o->cond);
  }
  if (!chg && found) nc__release(db, e.pin);
  return rc;
}

/* Checks that a data reference names an existing file range. */
static int check_ref(st_db *db, st_txn *t, top *o, uint32_t *id) {
  int rc = ft__intern(db, o->path, strlen(o->path), 2, id);
  uint64_t size = 0;
  if (!rc) rc = ft__size(db, *id, &size);
  if (rc == STRATA_ENOTFOUND) {
    t->res.rc = STRATA_ENOTFOUND;
    char kb[STRATA_KEY_SHOW_BUF];
    snprintf(t->res.message, sizeof t->res.message, "put of key %s refers to %s, which does not exist",
             strata_key_show(o->key, o->klen, kb, sizeof kb), o->path);
    return rc;
  }
  if (rc) return rc;
  if (o->off + o->len > size) {
    t->res.rc = STRATA_ERANGE;
    char kb[STRATA_KEY_SHOW_BUF];
    snprintf(t->res.message, sizeof t->res.message,
             "put of key %s refers to %s bytes [%llu, %llu), but the file has %llu bytes",
             strata_key_show(o->key, o->klen, kb, sizeof kb), o->path,
             (unsigned long long)o->off, (unsigned long long)(o->off + o->len), (unsigned long long)size);
    return STRATA_ERANGE;
  }
  return 0;
}

/* Validates t against the latest version and the group so far; on success
 * adds its changes to the group. Sets t->res on rejection. */
void cm__validate(group *g, st_txn *t, const st_vers *latest) {
  st_db *db = g->db;
  int rc = 0;
  uint32_t *ids = calloc(t->n ? t->n : 1, sizeof *ids);
  if (!ids) {
    rc = strata_err(STRATA_ENOMEM, "commit");
    goto out;
  }
  for (size_t i = 0; i < t->n && !rc; i++) {
    top *o = &t->ops[i];
    if (o->kind == OP_COND) rc = check_cond(g, t, o, latest);
    else if (o->kind == OP_PUT_REF) rc = check_ref(db, t, o, &ids[i]);
  }
  if (rc) goto out;
  strata_mutex_assert_not_held(&db->mu); /* store.h: a fence runs with no engine lock held */
  if (t->fence) strata_err_clear();
  if (t->fence && (rc = t->fence(t->fence_ctx))) {
    t->res.rc = rc;
    /* Keep the fence's own detail (which row, which holder). */
    snprintf(t->res.message, sizeof t->res.message, "the transaction's fence refused it: %s",
             strata_errmsg_for(rc));
    goto out;
  }
  t->fence_passed = t->fence != NULL;
  for (size_t i = 0; i < t->n && !rc; i++)
    if (t->ops[i].kind != OP_COND) rc = g_add(g, &t->ops[i], ids[i]);
  if (!rc) t->accepted = 1;
out:
  if (rc && !t->res.rc) {
    t->res.rc = rc;
    snprintf(t->res.message, sizeof t->res.message, "%s", strata_errmsg());
  }
  free(ids);
}

int cm__cmp_change(const void *a, const void *b) {
  const gchange *x = a, *y = b;
  return ocdbt_slice_cmp((ocdbt_slice){x->key, x->klen}, (ocdbt_slice){y->key, y->klen});
}
