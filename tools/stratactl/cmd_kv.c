/*
 * kv get / put / rm / ls / versions / diff: the versioned store (Kv service).
 * Reads take KEY[@PIN]; kv diff finds the changed keys with Kv.Watch and
 * classifies them with Kv.BatchGet at both versions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "tools/stratactl/ctl.h"

#define BATCH_MAX 10000 /* Kv.BatchGet's limit on keys per request */

static json_t *version_json(const Strata__V1__Version *v) {
  return v ? ctl_json_version(v->generation, v->commit_time_ns) : json_null();
}

/* "v12 (2026-11-21T10:00:00.123456789Z)" */
static const char *version_str(const Strata__V1__Version *v, char *buf, size_t cap) {
  char t[48];
  if (!v) snprintf(buf, cap, "no version");
  else snprintf(buf, cap, "v%llu (%s)", (unsigned long long)v->generation,
                ctl_time_str(v->commit_time_ns, 9, t, sizeof t));
  return buf;
}

static int resolve_pin(ctl_ctx *x, const ctl_pin *pin, Strata__V1__Version *out);

/* --- kv get ---------------------------------------------------------------------------------------- */

int ctl_kv_get(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  Strata__V1__VersionPin pm;
  ctl_pin pin;
  uint8_t *key;
  int rc = ctl_key_pin_arg(x, a, 0, 1, 0, &key, &q.key.len, &pin);
  if (rc) return rc;
  q.key.data = key;
  q.pin = ctl_pin_msg(&pin, &pm);
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__GetResponse *r = NULL;
  rc = rpc_kv_get(ctl_client(x), &co, &q, &r);
  if (rc) {
    rc = ctl_rpc_fail(x, rc, "Kv.Get");
    goto out;
  }
  if (x->json) {
    json_t *o = json_object();
    ctl_json_set_key(o, "key", key, q.key.len);
    json_object_set_new(o, "found", json_boolean(r->found));
    if (r->found) {
      char *b = ctl_base64(r->value.data, r->value.len);
      json_t *txt = json_stringn((const char *)r->value.data, r->value.len);
      json_object_set_new(o, "size", json_integer((json_int_t)r->value.len));
      json_object_set_new(o, "value", txt ? txt : json_null());
      json_object_set_new(o, "value_base64", json_string(b ? b : ""));
      free(b);
    }
    json_object_set_new(o, "version", version_json(r->version));
    ctl_json_print(o);
  } else if (r->found && r->value.len) {
    fwrite(r->value.data, 1, r->value.len, stdout);
  }
  if (!r->found) {
    char *ks = ctl_key_str(key, q.key.len), vb[80];
    fprintf(stderr, "stratactl: kv get: key %s not found at %s\n", ks ? ks : "?",
            version_str(r->version, vb, sizeof vb));
    free(ks);
    rc = CTL_REFUSED;
  }
out:
  rpc_free(r);
  free(key);
  return rc;
}

/* --- kv put ---------------------------------------------------------------------------------------- */

/* Reads f to its end into a malloc'd *buf (freed by the caller). Returns 0,
 * -1 when out of memory, or the errno of a read error (EIO when none). */
static int read_all(FILE *f, uint8_t **buf, size_t *len) {
  size_t cap = 1 << 16;
  *len = 0;
  *buf = malloc(cap);
  while (*buf) {
    errno = 0;
    size_t want = cap - *len, n = fread(*buf + *len, 1, want, f);
    *len += n;
    /* Short: end of file or an error. Not read again: a terminal's Ctrl-D is one
     * end of file, and a second fread would wait for another. */
    if (n < want) return ferror(f) ? (errno ? errno : EIO) : 0;
    if (*len == cap) {
      uint8_t *p = realloc(*buf, cap *= 2);
      if (!p) break;
      *buf = p;
    }
  }
  free(*buf);
  *buf = NULL;
  return -1;
}

static int commit_one(ctl_ctx *x, Strata__V1__CommitRequest *q, Strata__V1__CommitResponse **r) {
  rpc_callopts co = ctl_callopts(x, 0);
  return rpc_kv_commit(ctl_client(x), &co, q, r);
}

static void print_committed(const ctl_ctx *x, const char *verb, const uint8_t *key, size_t klen,
                            long long size, const Strata__V1__CommitResponse *r) {
  char *ks = ctl_key_str(key, klen), vb[80];
  if (x->json) {
    json_t *o = json_object();
    ctl_json_set_key(o, "key", key, klen);
    if (size >= 0) json_object_set_new(o, "size", json_integer(size));
    json_object_set_new(o, "version", version_json(r->version));
    ctl_json_print(o);
  } else if (size >= 0) {
    printf("%s %s (%lld bytes) at %s\n", verb, ks ? ks : "?", size, version_str(r->version, vb, sizeof vb));
  } else {
    printf("%s %s at %s\n", verb, ks ? ks : "?", version_str(r->version, vb, sizeof vb));
  }
  free(ks);
}

int ctl_kv_put(ctl_ctx *x, const ctl_args *a) {
  uint8_t *key, *val = NULL;
  size_t klen, vlen;
  ctl_pin nopin;
  int rc = ctl_key_pin_arg(x, a, 0, 0, 0, &key, &klen, &nopin);
  if (rc) return rc;
  const char *path = a->npos > 1 ? a->pos[1] : "-";
  int from_stdin = strcmp(path, "-") == 0;
  FILE *f = from_stdin ? stdin : fopen(path, "rb");
  if (!f) {
    rc = ctl_usage(a->cmd, "FILE: cannot open %s: %s", path, strerror(errno));
    goto out;
  }
  /* A value typed at the terminal: say so, or the command just seems to hang. */
  if (from_stdin && isatty(0))
    fprintf(stderr, "stratactl: kv put: reading the value of %s from the terminal; end it with "
                    "Ctrl-D (or give a FILE)\n", a->pos[0]);
  int err = read_all(f, &val, &vlen); /* its errno, saved before fclose */
  if (!from_stdin) fclose(f);
  if (err) {
    rc = err < 0 ? ctl_oom(x)
                 : ctl_refuse(x, "EIO", "kv put: cannot read %s: %s", from_stdin ? "stdin" : path,
                              strerror(err));
    goto out;
  }
  Strata__V1__Put put = STRATA__V1__PUT__INIT, *puts[1] = {&put};
  put.key = (ProtobufCBinaryData){klen, key};
  put.value = (ProtobufCBinaryData){vlen, val};
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = puts;
  Strata__V1__CommitResponse *r = NULL;
  rc = commit_one(x, &q, &r);
  if (rc) rc = ctl_rpc_fail(x, rc, "Kv.Commit");
  else print_committed(x, "put", key, klen, (long long)vlen, r);
  rpc_free(r);
out:
  free(key);
  free(val);
  return rc;
}

/* --- kv rm ------------------------------------------------------------------------------------------ */

int ctl_kv_rm(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__GetRequest g = STRATA__V1__GET_REQUEST__INIT;
  uint8_t *key;
  ctl_pin nopin;
  int rc = ctl_key_pin_arg(x, a, 0, 0, 0, &key, &g.key.len, &nopin);
  if (rc) return rc;
  g.key.data = key;
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__GetResponse *gr = NULL;
  Strata__V1__CommitResponse *r = NULL;
  rc = rpc_kv_get(ctl_client(x), &co, &g, &gr);
  if (rc) {
    rc = ctl_rpc_fail(x, rc, "Kv.Get");
    goto out;
  }
  if (!gr->found) {
    char *ks = ctl_key_str(key, g.key.len), vb[80];
    rc = ctl_refuse(x, "STRATA_ENOTFOUND", "kv rm: key %s not found at %s; nothing deleted",
                    ks ? ks : "?", version_str(gr->version, vb, sizeof vb));
    free(ks);
    goto out;
  }
  /* Delete only what was checked: refused if the key changed since. */
  Strata__V1__Condition cond = STRATA__V1__CONDITION__INIT, *conds[1] = {&cond};
  cond.key = g.key;
  cond.kind = STRATA__V1__CONDITION__KIND__KIND_UNCHANGED_SINCE;
  cond.generation = gr->version ? gr->version->generation : 0;
  ProtobufCBinaryData dels[1] = {g.key};
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_deletes = 1;
  q.deletes = dels;
  q.n_conditions = 1;
  q.conditions = conds;
  rc = commit_one(x, &q, &r);
  if (rc) rc = ctl_rpc_fail(x, rc, "Kv.Commit");
  else print_committed(x, "deleted", key, g.key.len, -1, r);
out:
  rpc_free(gr);
  rpc_free(r);
  free(key);
  return rc;
}

/* --- kv ls ------------------------------------------------------------------------------------------ */

/* Prints one listed key (table mode) or appends it to keys (JSON). */
static void ls_key(const ctl_ctx *x, json_t *keys, const ProtobufCBinaryData *k) {
  if (x->json) {
    json_t *o = json_object();
    ctl_json_set_key(o, "key", k->data, k->len);
    json_array_append_new(keys, o);
    return;
  }
  char *ks = ctl_key_str(k->data, k->len);
  printf("%s\n", ks ? ks : "?");
  free(ks);
}

int ctl_kv_ls(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  Strata__V1__VersionPin pm;
  ctl_pin pin = {0};
  uint8_t *prefix = NULL;
  int rc = 0;
  const char *s = ctl_val(a, "limit", 0);
  if (s && ctl_u64_parse(s, 1, UINT64_MAX, &q.limit))
    return ctl_usage(a->cmd, "--limit: expected a number >= 1, got \"%s\"", s);
  if (a->npos && (rc = ctl_key_pin_arg(x, a, 0, 1, 1, &prefix, &q.prefix.len, &pin))) return rc;
  q.prefix.data = prefix;
  q.pin = ctl_pin_msg(&pin, &pm);
  q.keys_only = 1;

  rpc_cstream *st = NULL;
  rpc_callopts co;
  int ready = ctl_stream_begin(x, &co);
  json_t *keys = json_array();
  Strata__V1__Version ver = STRATA__V1__VERSION__INIT;
  int have_ver = 0;
  json_int_t n = 0;
  rc = ready ? ready : rpc_kv_list(ctl_client(x), &co, &q, &st);
  ctl_idle *idle = ctl_idle_start(x, rc ? NULL : st, "Kv.List");
  Strata__V1__ListResponse *m;
  while (!rc && (rc = rpc_kv_list_next(st, &m)) == 1) {
    ctl_idle_tick(idle);
    if (m->version) {
      ver = *m->version;
      have_ver = 1;
    }
    for (size_t i = 0; i < m->n_entries; i++, n++) ls_key(x, keys, &m->entries[i]->key);
    if (!x->json) fflush(stdout); /* as it arrives, also into a pipe */
    if (!isatty(1)) ctl_progress(x, "kv ls: %lld keys so far", (long long)n); /* output elsewhere */
    rpc_free(m);
    rc = 0;
  }
  rc = ctl_idle_stop(idle, rc);
  ctl_progress_done(x);
  rpc_cstream_close(st);
  free(prefix);
  /* The server always sends a first message, carrying the listed version. */
  if (!rc && !have_ver) rc = strata_err(STRATA_EINTERNAL, "the server sent no message");
  char vb[80];
  if (rc) rc = ctl_rpc_fail(x, rc, "Kv.List");
  else if (x->json)
    ctl_json_print(json_pack("{s:O, s:I, s:o}", "keys", keys, "count", n, "version", version_json(&ver)));
  else
    printf("%lld key%s at %s\n", (long long)n, n == 1 ? "" : "s", version_str(&ver, vb, sizeof vb));
  json_decref(keys);
  return rc;
}

/* --- kv versions ------------------------------------------------------------------------------------ */

int ctl_kv_versions(ctl_ctx *x, const ctl_args *a) {
  Strata__V1__VersionsRequest q = STRATA__V1__VERSIONS_REQUEST__INIT;
  const char *s = ctl_val(a, "limit", 0);
  if (s && ctl_u64_parse(s, 1, UINT64_MAX, &q.limit))
    return ctl_usage(a->cmd, "--limit: expected a number >= 1, got \"%s\"", s);
  q.descending = 1;
  rpc_cstream *st = NULL;
  rpc_callopts co;
  int ready = ctl_stream_begin(x, &co);
  static const char *const hdr[3] = {"GENERATION", "COMMIT TIME", "AGE"};
  ctl_table t;
  ctl_table_init(&t, 3, hdr);
  json_t *arr = json_array();
  int64_t now = ctl_now_ns();
  uint64_t n = 0;
  int rc = ready ? ready : rpc_kv_versions(ctl_client(x), &co, &q, &st);
  ctl_idle *idle = ctl_idle_start(x, rc ? NULL : st, "Kv.Versions");
  Strata__V1__VersionsResponse *m;
  while (!rc && (rc = rpc_kv_versions_next(st, &m)) == 1) {
    ctl_idle_tick(idle);
    for (size_t i = 0; i < m->n_versions; i++, n++) {
      const Strata__V1__Version *v = m->versions[i];
      char g[24], tb[48], age[32];
      snprintf(g, sizeof g, "v%llu", (unsigned long long)v->generation);
      const char *cells[3] = {g, ctl_time_str(v->commit_time_ns, 9, tb, sizeof tb),
                              ctl_dur_str((now - v->commit_time_ns) / 1000000, age, sizeof age)};
      ctl_table_add(&t, cells);
      json_array_append_new(arr, version_json(v));
    }
    rpc_free(m);
    rc = 0;
  }
  rc = ctl_idle_stop(idle, rc);
  rpc_cstream_close(st);
  if (rc) {
    rc = ctl_rpc_fail(x, rc, "Kv.Versions");
  } else {
    Strata__V1__StatsResponse *sr = ctl_stats_for_range(x); /* the retained range */
    if (x->json) {
      json_t *o = json_pack("{s:O, s:I}", "versions", arr, "count", (json_int_t)n);
      if (sr && sr->retained) json_object_set_new(o, "retained", ctl_range_json(sr->retained));
      ctl_json_print(o);
    } else {
      ctl_table_print(&t, stdout);
      if (sr && sr->retained && sr->retained->latest_generation) ctl_print_range(sr->retained);
      printf("%llu version%s\n", (unsigned long long)n, n == 1 ? "" : "s");
    }
    rpc_free(sr);
  }
  json_decref(arr);
  ctl_table_free(&t);
  return rc;
}

/* --- kv diff ---------------------------------------------------------------------------------------- */

/* The version a pin resolves to, through a Kv.Get of a one-byte key. */
static int resolve_pin(ctl_ctx *x, const ctl_pin *pin, Strata__V1__Version *out) {
  static uint8_t probe[1] = {0};
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  Strata__V1__VersionPin pm;
  q.key = (ProtobufCBinaryData){1, probe};
  q.pin = ctl_pin_msg(pin, &pm);
  rpc_callopts co = ctl_callopts(x, 0);
  Strata__V1__GetResponse *r = NULL;
  int rc = rpc_kv_get(ctl_client(x), &co, &q, &r);
  if (!rc && !r->version) rc = strata_err(STRATA_EINTERNAL, "Kv.Get answered without a version");
  if (!rc) *out = *r->version;
  rpc_free(r);
  return rc;
}

typedef struct keyset {
  ProtobufCBinaryData *k; /* each data malloc'd */
  size_t n, cap;
} keyset;

static int keyset_add(keyset *s, const ProtobufCBinaryData *k) {
  if (strata_grow(&s->k, &s->cap, s->n + 1, sizeof *s->k, 64)) return strata_err(STRATA_ENOMEM, "out of memory");
  uint8_t *d = malloc(k->len ? k->len : 1);
  if (!d) return strata_err(STRATA_ENOMEM, "out of memory");
  memcpy(d, k->data, k->len);
  s->k[s->n++] = (ProtobufCBinaryData){k->len, d};
  return 0;
}

static int cmp_key(const void *pa, const void *pb) {
  const ProtobufCBinaryData *a = pa, *b = pb;
  size_t n = a->len < b->len ? a->len : b->len;
  int c = n ? memcmp(a->data, b->data, n) : 0;
  return c ? c : (a->len > b->len) - (a->len < b->len);
}

static void keyset_sort_unique(keyset *s) {
  if (!s->n) return;
  qsort(s->k, s->n, sizeof *s->k, cmp_key);
  size_t o = 1;
  for (size_t i = 1; i < s->n; i++) {
    if (cmp_key(&s->k[i], &s->k[o - 1]) == 0) free(s->k[i].data);
    else s->k[o++] = s->k[i];
  }
  s->n = o;
}

static void keyset_free(keyset *s) {
  for (size_t i = 0; i < s->n; i++) free(s->k[i].data);
  free(s->k);
}

/* Every key changed by a generation in (lo, hi], from Kv.Watch. */
static int changed_keys(ctl_ctx *x, uint64_t lo, uint64_t hi, keyset *ks) {
  Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
  q.from_generation = lo;
  rpc_cstream *st = NULL;
  rpc_callopts co;
  int rc = ctl_stream_begin(x, &co), done = 0;
  if (!rc) rc = rpc_kv_watch(ctl_client(x), &co, &q, &st);
  ctl_idle *idle = ctl_idle_start(x, rc ? NULL : st, "Kv.Watch");
  Strata__V1__WatchResponse *m;
  while (!rc && !done && (rc = rpc_kv_watch_next(st, &m)) == 1) {
    ctl_idle_tick(idle);
    rc = 0;
    uint64_t g = m->version ? m->version->generation : 0;
    ctl_progress(x, "kv diff: read the changes of v%llu of v%llu..v%llu, %zu keys so far",
                 (unsigned long long)g, (unsigned long long)lo + 1, (unsigned long long)hi, ks->n);
    if (g > hi) done = 1; /* hi changed nothing we were told about; the stream is past it */
    for (size_t i = 0; !done && !rc && i < m->n_changes; i++) rc = keyset_add(ks, &m->changes[i]->key);
    if (g == hi && !m->more) done = 1;
    rpc_free(m);
  }
  rc = ctl_idle_stop(idle, rc);
  if (rc == 0 && !done) rc = strata_err(STRATA_EINTERNAL, "Kv.Watch ended before generation %llu",
                                        (unsigned long long)hi);
  rpc_cstream_close(st); /* cancels the live part of the stream */
  return rc;
}

/* Every key that exists at generation g, from Kv.List: what changed between the
 * empty store (v0) and g. Unlike Kv.Watch from 0 it needs no history before g, so it
 * works when retention has dropped the early generations. */
static int keys_at(ctl_ctx *x, uint64_t g, keyset *ks) {
  Strata__V1__ListRequest q = STRATA__V1__LIST_REQUEST__INIT;
  Strata__V1__VersionPin pm;
  ctl_pin pin = {.kind = 1, .generation = g};
  q.pin = ctl_pin_msg(&pin, &pm);
  q.keys_only = 1;
  rpc_cstream *st = NULL;
  rpc_callopts co;
  int rc = ctl_stream_begin(x, &co);
  if (!rc) rc = rpc_kv_list(ctl_client(x), &co, &q, &st);
  ctl_idle *idle = ctl_idle_start(x, rc ? NULL : st, "Kv.List");
  Strata__V1__ListResponse *m;
  while (!rc && (rc = rpc_kv_list_next(st, &m)) == 1) {
    ctl_idle_tick(idle);
    rc = 0;
    for (size_t i = 0; !rc && i < m->n_entries; i++) rc = keyset_add(ks, &m->entries[i]->key);
    ctl_progress(x, "kv diff: listed the keys at v%llu, %zu so far", (unsigned long long)g, ks->n);
    rpc_free(m);
  }
  rc = ctl_idle_stop(idle, rc);
  rpc_cstream_close(st);
  return rc;
}

/* Values of keys[0..n) at generation g, in order (BatchGet, in batches). */
static int values_at(ctl_ctx *x, const keyset *ks, uint64_t g, Strata__V1__BatchGetResponse ***out,
                     size_t *nout) {
  size_t nb = (ks->n + BATCH_MAX - 1) / BATCH_MAX;
  *out = calloc(nb ? nb : 1, sizeof **out);
  *nout = 0;
  if (!*out) return strata_err(STRATA_ENOMEM, "out of memory");
  for (size_t b = 0; b < nb; b++) {
    ctl_progress(x, "kv diff: reading values at v%llu, %zu of %zu keys", (unsigned long long)g,
                 b * BATCH_MAX, ks->n);
    Strata__V1__BatchGetRequest q = STRATA__V1__BATCH_GET_REQUEST__INIT;
    Strata__V1__VersionPin pm;
    ctl_pin pin = {.kind = 1, .generation = g};
    q.keys = ks->k + b * BATCH_MAX;
    q.n_keys = ks->n - b * BATCH_MAX < BATCH_MAX ? ks->n - b * BATCH_MAX : BATCH_MAX;
    q.pin = ctl_pin_msg(&pin, &pm);
    rpc_callopts co = ctl_callopts(x, 0);
    int rc = rpc_kv_batch_get(ctl_client(x), &co, &q, &(*out)[b]);
    if (rc) return rc;
    (*nout)++;
    if ((*out)[b]->n_entries != q.n_keys)
      return strata_err(STRATA_EINTERNAL, "Kv.BatchGet answered %zu entries for %zu keys",
                        (*out)[b]->n_entries, q.n_keys);
  }
  return 0;
}

static const Strata__V1__KeyValue *entry(Strata__V1__BatchGetResponse **v, size_t i) {
  return v[i / BATCH_MAX]->entries[i % BATCH_MAX];
}

static void free_batches(Strata__V1__BatchGetResponse **v, size_t n) {
  for (size_t i = 0; v && i < n; i++) rpc_free(v[i]);
  free(v);
}

static int print_diff(ctl_ctx *x, const Strata__V1__Version *va, const Strata__V1__Version *vb,
                      const keyset *ks, Strata__V1__BatchGetResponse **from,
                      Strata__V1__BatchGetResponse **to) {
  size_t counts[3] = {0};
  static const char *const names[3] = {"added", "removed", "modified"};
  static const char marks[3] = {'+', '-', '~'};
  json_t *arr = json_array();
  for (size_t i = 0; i < ks->n; i++) {
    const Strata__V1__KeyValue *f = entry(from, i), *t = entry(to, i);
    int c;
    if (!f->found && t->found) c = 0;
    else if (f->found && !t->found) c = 1;
    else if (f->found && t->found && cmp_key(&f->value, &t->value) != 0) c = 2;
    else continue; /* changed and changed back, or written then deleted */
    counts[c]++;
    if (x->json) {
      json_t *o = json_object();
      ctl_json_set_key(o, "key", ks->k[i].data, ks->k[i].len);
      json_object_set_new(o, "change", json_string(names[c]));
      json_array_append_new(arr, o);
    } else {
      char *s = ctl_key_str(ks->k[i].data, ks->k[i].len);
      printf("%c %s\n", marks[c], s ? s : "?");
      free(s);
    }
  }
  size_t total = counts[0] + counts[1] + counts[2];
  if (x->json) {
    ctl_json_print(json_pack("{s:o, s:o, s:o, s:{s:I, s:I, s:I, s:I}}", "from", version_json(va),
                             "to", version_json(vb), "changes", arr, "counts", "total",
                             (json_int_t)total, "added", (json_int_t)counts[0], "removed",
                             (json_int_t)counts[1], "modified", (json_int_t)counts[2]));
  } else {
    json_decref(arr);
    printf("%zu change%s from v%llu to v%llu: %zu added, %zu removed, %zu modified\n", total,
           total == 1 ? "" : "s", (unsigned long long)va->generation,
           (unsigned long long)vb->generation, counts[0], counts[1], counts[2]);
  }
  return CTL_OK;
}

int ctl_kv_diff(ctl_ctx *x, const ctl_args *a) {
  ctl_pin p[2];
  Strata__V1__Version v[2];
  for (int i = 0; i < 2; i++) {
    const char *s = a->pos[i][0] == '@' ? a->pos[i] + 1 : a->pos[i];
    if (ctl_pin_parse(s, &p[i]))
      return ctl_usage(a->cmd, "\"%s\" is not a pin. A pin is @ then " CTL_PIN_FORMS, a->pos[i]);
  }
  int rc = 0;
  for (int i = 0; i < 2 && !rc; i++)
    if ((rc = resolve_pin(x, &p[i], &v[i]))) return ctl_rpc_fail(x, rc, "Kv.Get (resolving the pin)");
  uint64_t lo = v[0].generation < v[1].generation ? v[0].generation : v[1].generation;
  uint64_t hi = v[0].generation ^ v[1].generation ^ lo;
  keyset ks = {0};
  Strata__V1__BatchGetResponse **from = NULL, **to = NULL;
  size_t nfrom = 0, nto = 0;
  /* From v0 every key at hi is new: list them instead of watching all history. */
  const char *what = lo == 0 ? "Kv.List" : "Kv.Watch";
  if (lo < hi && (rc = lo == 0 ? keys_at(x, hi, &ks) : changed_keys(x, lo, hi, &ks))) goto fail;
  keyset_sort_unique(&ks);
  what = "Kv.BatchGet";
  if ((rc = values_at(x, &ks, v[0].generation, &from, &nfrom)) ||
      (rc = values_at(x, &ks, v[1].generation, &to, &nto)))
    goto fail;
  ctl_progress_done(x);
  rc = print_diff(x, &v[0], &v[1], &ks, from, to);
  goto out;
fail:
  rc = ctl_rpc_fail(x, rc, what);
out:
  free_batches(from, nfrom);
  free_batches(to, nto);
  keyset_free(&ks);
  return rc;
}
