/*
 * Opening, creating and closing a database, snapshots, and the public read
 * calls. Opening for writing also cleans up what a failed or killed commit
 * may have left: temp manifests and data files newer than the latest
 * generation (never referenced by any manifest), so no orphan survives.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/err.h"
#include "storage/engine_int.h"

#define DEFAULT_MAX_INLINE 100u
#define DEFAULT_MAX_NODE 8192u
#define DEFAULT_ARITY 4
#define DEFAULT_CACHE ((size_t)256 << 20)

static int is_hex(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

static uint64_t parse_hex(const char *s, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) v = v * 16 + (uint64_t)(s[i] <= '9' ? s[i] - '0' : s[i] - 'a' + 10);
  return v;
}

/* The config a new database gets from the options. */
static int new_config(const st_config *c, ocdbt_config *out) {
  memset(out, 0, sizeof *out);
  FILE *f = fopen("/dev/urandom", "rb");
  size_t got = f ? fread(out->uuid, 1, 16, f) : 0;
  if (f) fclose(f);
  if (got != 16) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t x = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
    memcpy(out->uuid, &x, 8);
    memcpy(out->uuid + 8, &out, 8);
  }
  out->manifest_kind = c->manifest == ST_MANIFEST_SINGLE ? OCDBT_MANIFEST_SINGLE : OCDBT_MANIFEST_NUMBERED;
  out->max_inline_value_bytes = c->max_inline_value_bytes ? c->max_inline_value_bytes : DEFAULT_MAX_INLINE;
  out->max_decoded_node_bytes = c->max_decoded_node_bytes ? c->max_decoded_node_bytes : DEFAULT_MAX_NODE;
  out->version_tree_arity_log2 = c->version_tree_arity_log2 ? c->version_tree_arity_log2 : DEFAULT_ARITY;
  out->compression = c->compression == ST_COMPRESSION_NONE ? OCDBT_COMPRESSION_NONE : OCDBT_COMPRESSION_ZSTD;
  out->zstd_level = c->zstd_level ? c->zstd_level : 1;
  if (out->max_inline_value_bytes > OCDBT_MAX_INLINE_VALUE)
    return strata_err(STRATA_EINVALID, "max_inline_value_bytes %u exceeds %u", out->max_inline_value_bytes,
                      OCDBT_MAX_INLINE_VALUE);
  if (out->max_decoded_node_bytes < 1024)
    return strata_err(STRATA_EINVALID, "max_decoded_node_bytes %u is below 1024", out->max_decoded_node_bytes);
  if (out->version_tree_arity_log2 > OCDBT_MAX_ARITY_LOG2)
    return strata_err(STRATA_EINVALID, "version_tree_arity_log2 %u outside 1..%u",
                      out->version_tree_arity_log2, OCDBT_MAX_ARITY_LOG2);
  if (out->zstd_level < OCDBT_ZSTD_MIN_LEVEL || out->zstd_level > OCDBT_ZSTD_MAX_LEVEL)
    return strata_err(STRATA_EINVALID, "zstd_level %d out of range", out->zstd_level);
  return 0;
}

/* An explicit option that differs from the database's config. */
static int check_config(const char *path, const st_config *c, const ocdbt_config *have) {
#define MISMATCH(field, want, got)                                                                  \
  return strata_err(STRATA_EMISMATCH,                                                               \
                    "%s: the database has %s = %lld but the options ask for %lld; open it without "  \
                    "that option or use another directory",                                         \
                    path, field, (long long)(got), (long long)(want))
  if (c->max_inline_value_bytes && c->max_inline_value_bytes != have->max_inline_value_bytes)
    MISMATCH("max_inline_value_bytes", c->max_inline_value_bytes, have->max_inline_value_bytes);
  if (c->max_decoded_node_bytes && c->max_decoded_node_bytes != have->max_decoded_node_bytes)
    MISMATCH("max_decoded_node_bytes", c->max_decoded_node_bytes, have->max_decoded_node_bytes);
  if (c->version_tree_arity_log2 && c->version_tree_arity_log2 != have->version_tree_arity_log2)
    MISMATCH("version_tree_arity_log2", c->version_tree_arity_log2, have->version_tree_arity_log2);
  if (c->compression) {
    int want = c->compression == ST_COMPRESSION_NONE ? OCDBT_COMPRESSION_NONE : OCDBT_COMPRESSION_ZSTD;
    if (want != have->compression) MISMATCH("compression", want, have->compression);
    if (c->zstd_level && want == OCDBT_COMPRESSION_ZSTD && c->zstd_level != have->zstd_level)
      MISMATCH("zstd_level", c->zstd_level, have->zstd_level);
  }
  if (c->manifest) {
    int want = c->manifest == ST_MANIFEST_SINGLE ? OCDBT_MANIFEST_SINGLE : OCDBT_MANIFEST_NUMBERED;
    if (want != have->manifest_kind) MISMATCH("manifest_kind", want, have->manifest_kind);
  }
#undef MISMATCH
  return 0;
}

static int read_manifest(st_db *db, const char *name, ocdbt_manifest *m) {
  uint8_t *p = NULL;
  size_t n = 0;
  int rc = bs_read_all(db->base, name, &p, &n);
  if (rc) return rc;
  rc = ocdbt_manifest_decode(p, n, m);
  free(p);
  if (rc) return strata_err_wrap(rc, "%s/%s", db->path, name);
  return 0;
}

/* Writes the config (numbered kind) or a first empty generation (single
 * kind, as tensorstore does) for a new database. */
static int create_db(st_db *db, const st_options *opt) {
  char **names = NULL;
  size_t n = 0;
  int rc = bs_list(db->base, "", &names, &n);
  if (rc) return rc;
  for (size_t i = 0; i < n; i++) {
    if (!strcmp(names[i], ST_DATA_DIR) || !strncmp(names[i], "tmp.", 4) || !strcmp(names[i], BS_LOCK_FILE))
      continue;
    rc = strata_err(STRATA_EINVALID, "%s is not a database (no manifest.ocdbt) and is not empty (%s); "
                    "choose an empty or new directory", db->path, names[i]);
    free(names);
    return rc;
  }
  free(names);
  if ((rc = new_config(&opt->config, &db->cfg))) return rc;
  if ((rc = bs_mkdir(db->base, ST_DATA_DIR)) || (rc = bs_sync_dir(db->base, ""))) return rc;
  ocdbt_manifest m;
  memset(&m, 0, sizeof m);
  m.config = db->cfg;
  ocdbt_version v;
  ocdbt_file empty = {{(const uint8_t *)"", 0}, {(const uint8_t *)"", 0}};
  if (db->cfg.manifest_kind == OCDBT_MANIFEST_SINGLE) {
    memset(&v, 0, sizeof v);
    v.generation = 1;
    v.root = (ocdbt_ref){0, OCDBT_MISSING, OCDBT_MISSING};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    v.commit_time = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
    m.dft.n = 1;
    m.dft.files = &empty;
    m.n_versions = 1;
    m.versions = &v;
  }
  strata_buf b = STRATA_BUF_INIT;
  if (!(rc = ocdbt_manifest_encode(&m, &b)))
    rc = bs_put_atomic(db->base, "", "tmp.manifest.ocdbt", ST_MANIFEST, b.p, b.len);
  strata_buf_free(&b);
  return rc;
}

static int config_equal(const ocdbt_config *a, const ocdbt_config *b) {
  return !memcmp(a->uuid, b->uuid, 16) && a->max_inline_value_bytes == b->max_inline_value_bytes &&
         a->max_decoded_node_bytes == b->max_decoded_node_bytes &&
         a->version_tree_arity_log2 == b->version_tree_arity_log2 && a->compression == b->compression &&
         (a->compression == OCDBT_COMPRESSION_NONE || a->zstd_level == b->zstd_level);
}

/* Loads the current manifest into db->ms / db->latest. */
static int load_state(st_db *db, ocdbt_manifest *cfgm) {
  ocdbt_manifest m;
  memset(&m, 0, sizeof m);
  int rc = 0;
  const ocdbt_manifest *src = cfgm;
  if (cfgm->config.manifest_kind == OCDBT_MANIFEST_NUMBERED) {
    char **names = NULL;
    size_t n = 0;
    uint64_t best = 0;
    if ((rc = bs_list(db->base, "", &names, &n))) return rc;
    for (size_t i = 0; i < n; i++) {
      const char *s = names[i];
      if (strlen(s) == 9 + 16 && !strncmp(s, "manifest.", 9) && is_hex(s + 9, 16)) {
        uint64_t g = parse_hex(s + 9, 16);
        if (g > best) best = g;
      }
    }
    free(names);
    if (!best) {
      db->ms.versions = malloc(((size_t)1 << db->cfg.version_tree_arity_log2) * sizeof(st_vers));
      if (!db->ms.versions) return strata_err(STRATA_ENOMEM, "open");
      db->latest.root.ref = (st_ref){ST_NOFILE, OCDBT_MISSING, OCDBT_MISSING};
      return 0;
    }
    char name[64];
    snprintf(name, sizeof name, "manifest.%016llx", (unsigned long long)best);
    if ((rc = read_manifest(db, name, &m))) return rc;
    if (m.config.manifest_kind != OCDBT_MANIFEST_SINGLE || !config_equal(&m.config, &cfgm->config) ||
        m.n_versions == 0 || m.versions[m.n_versions - 1].generation != best) {
      rc = strata_err(STRATA_ECORRUPT, "%s/%s: its config or latest generation does not match "
                      "manifest.ocdbt and its name", db->path, name);
      goto out;
    }
    src = &m;
  }
  if ((rc = vt__load_manifest(db, src, &db->ms))) {
    rc = strata_err_wrap(rc, "%s", db->path);
    goto out;
  }
  if (db->ms.n_versions) db->latest = db->ms.versions[db->ms.n_versions - 1];
  /* open's cleanup leaves the latest ST_MANIFESTS_KEPT numbered manifests */
  uint64_t L = db->latest.generation;
  db->mf_obsolete = db->mf_removed = L > ST_MANIFESTS_KEPT ? L - ST_MANIFESTS_KEPT : 0;
out:
  ocdbt_manifest_free(&m);
  return rc;
}

/* Removes temp manifests and numbered manifests older than the kept window.
 * Data files named for a generation newer than the latest manifest ("strays")
 * are never removed when they hold anything: such a file is either a commit
 * killed before its manifest's rename (generation L+1) or the data of
 * generations whose manifests were lost, which a restore of those manifests
 * needs. Empty ones (files the preparer created and no commit wrote) go. A
 * non-empty stray above L+1 cannot come from a crash (only generation L+1 is
 * ever written while L is the latest), so it means lost manifests: the open
 * is refused rather than generation numbers reused. */
static int cleanup(st_db *db) {
  char **names = NULL;
  size_t n = 0;
  int rc = bs_list(db->base, "", &names, &n), removed = 0;
  if (rc) return rc;
  uint64_t L = db->latest.generation;
  for (size_t i = 0; i < n; i++) {
    const char *s = names[i];
    int drop = !strncmp(s, "tmp.", 4);
    if (strlen(s) == 25 && !strncmp(s, "manifest.", 9) && is_hex(s + 9, 16))
      drop = parse_hex(s + 9, 16) + ST_MANIFESTS_KEPT <= L;
    if (drop && bs_remove(db->base, s) == 0) removed = 1;
  }
  free(names);
  rc = bs_list(db->base, ST_DATA_DIR, &names, &n);
  if (rc == STRATA_ENOTFOUND) return bs_mkdir(db->base, ST_DATA_DIR);
  if (rc) return rc;
  for (size_t i = 0; i < n && !rc; i++) {
    const char *s = names[i];
    if (!st__is_data_file_name(s)) continue;
    uint64_t g = parse_hex(s, 16), size = 0;
    if (g <= L) continue;
    char path[64];
    snprintf(path, sizeof path, ST_DATA_DIR "/%s", s);
    bs_file *f;
    if ((rc = bs_open_read(db->base, path, &f))) break;
    rc = bs_size(f, &size);
    bs_close(f);
    if (rc) break;
    if (size == 0) {
      if (bs_remove(db->base, path) == 0) removed = 1;
      continue;
    }
    db->strays++;
    if (g > L + 1)
      rc = strata_err(STRATA_ECORRUPT,
                      "%s/%s holds data of generation %llu but the newest manifest is generation %llu: "
                      "the manifests of generations %llu..%llu are missing (restore them, or move the "
                      "file away to continue from generation %llu)",
                      db->path, path, (unsigned long long)g, (unsigned long long)L,
                      (unsigned long long)L + 1, (unsigned long long)g, (unsigned long long)L);
  }
  free(names);
  if (removed) {
    bs_sync_dir(db->base, ST_DATA_DIR);
    bs_sync_dir(db->base, "");
  }
  return rc;
}

/* opt->min_generation: the caller knows that generation was acknowledged. */
static int check_min_generation(st_db *db, uint64_t min) {
  uint64_t L = db->latest.generation;
  /* A read-only open does not replay the log; what it holds is not lost. */
  if (min <= L || min <= db->log_last) return 0;
  if (db->cfg.manifest_kind == OCDBT_MANIFEST_NUMBERED)
    return strata_err(STRATA_ECORRUPT,
                      "%s: generation %llu was acknowledged but the newest manifest is "
                      "manifest.%016llx (generation %llu): manifest.%016llx is missing",
                      db->path, (unsigned long long)min, (unsigned long long)L, (unsigned long long)L,
                      (unsigned long long)min);
  return strata_err(STRATA_ECORRUPT,
                    "%s: generation %llu was acknowledged but " ST_MANIFEST " holds generation %llu",
                    db->path, (unsigned long long)min, (unsigned long long)L);
}

/* A quarter of the descriptor limit, at most 256, at least 8: the server's
 * sockets and the lock table's files need the rest. */
static size_t default_max_open(void) {
  struct rlimit rl;
  size_t n = 256;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 4 < n)
    n = (size_t)(rl.rlim_cur / 4);
  return n < 8 ? 8 : n;
}

static void db_free(st_db *db) {
  st__gc_own_free(db);
  mstate__free(&db->ms);
  nc__destroy(&db->cache);
  ft__destroy(&db->ft);
  strata_mutex_destroy(&db->mu);
  pthread_cond_destroy(&db->cv);
  pthread_cond_destroy(&db->prep_cv);
  strata_mutex_destroy(&db->smu);
  pthread_cond_destroy(&db->scv);
  pthread_cond_destroy(&db->pub_cv);
  rc__close_log(db);
  bs_destroy(db->own_base);
  free(db->path);
  free(db);
}

int st_open(const char *path, const st_options *opt, st_db **out) {
  assert(path && out);
  st_options defaults;
  memset(&defaults, 0, sizeof defaults);
  if (!opt) opt = &defaults;
  st_db *db = calloc(1, sizeof *db);
  if (!db || !(db->path = strdup(path))) {
    free(db);
    return strata_err(STRATA_ENOMEM, "open %s", path);
  }
  strata_mutex_init(&db->mu);
  pthread_cond_init(&db->cv, NULL);
  pthread_cond_init(&db->prep_cv, NULL);
  strata_mutex_init(&db->smu);
  pthread_cond_init(&db->scv, NULL);
  pthread_cond_init(&db->pub_cv, NULL);
  ft__init(&db->ft, opt->max_open_files ? opt->max_open_files : default_max_open());
  db->read_only = opt->read_only;
  ocdbt_manifest cm;
  memset(&cm, 0, sizeof cm);
  int rc = nc__init(&db->cache, opt->cache_bytes ? opt->cache_bytes : DEFAULT_CACHE);
  if (rc) goto fail;
  if (opt->base) {
    db->base = opt->base;
  } else {
    if ((rc = bs_file_open(path, &db->own_base))) goto fail;
    db->base = db->own_base;
  }
  if (!db->read_only && (rc = bs_lock(db->base))) goto fail;
  rc = read_manifest(db, ST_MANIFEST, &cm);
  if (rc == STRATA_ENOTFOUND) {
    if (!opt->create || db->read_only) {
      rc = strata_err(STRATA_ENOTFOUND, "%s is not a database: %s/" ST_MANIFEST " does not exist", path, path);
      goto fail;
    }
    if ((rc = create_db(db, opt)) || (rc = read_manifest(db, ST_MANIFEST, &cm))) goto fail;
  } else if (rc) {
    goto fail;
  }
  if ((rc = check_config(path, &opt->config, &cm.config))) goto fail;
  db->cfg = cm.config;
  if (db->cfg.max_inline_value_bytes > OCDBT_MAX_INLINE_VALUE) db->cfg.max_inline_value_bytes = OCDBT_MAX_INLINE_VALUE;
  if (db->cfg.max_decoded_node_bytes < 1024) db->cfg.max_decoded_node_bytes = 1024;
  if ((rc = load_state(db, &cm)) || (rc = rc__open_log(db, opt)) ||
      (rc = check_min_generation(db, opt->min_generation)) || (rc = rc__start_log(db, opt)))
    goto fail;
  db->prepare = !opt->no_prepare && db->cfg.manifest_kind == OCDBT_MANIFEST_NUMBERED && !db->log;
  db->no_log_prepare = opt->no_prepare;
  if (!db->read_only && ((rc = cleanup(db)) || (rc = cm__start(db)))) goto fail;
  ocdbt_manifest_free(&cm);
  *out = db;
  return 0;
fail:
  ocdbt_manifest_free(&cm);
  db_free(db);
  return rc;
}

void st_close(st_db *db) {
  if (!db) return;
  cm__stop(db);
  db_free(db);
}

/* --- snapshots -------------------------------------------------------------------- */

static int new_snap(st_db *db, const st_vers *v, st_snap **out) {
  st_snap *s = malloc(sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "snapshot");
  s->db = db;
  s->v = *v;
  *out = s;
  return 0;
}

int st_snap_latest(st_db *db, st_snap **out) {
  assert(db && out);
  strata_mutex_lock(&db->mu);
  st_vers v = db->latest;
  strata_mutex_unlock(&db->mu);
  return new_snap(db, &v, out);
}

/* A private copy of the manifest state (the committer may replace db->ms). */
static int copy_ms(st_db *db, st_mstate *ms) {
  strata_mutex_lock(&db->mu);
  int rc = mstate__copy(&db->ms, db->ms.n_versions ? db->ms.n_versions : 1, ms);
  strata_mutex_unlock(&db->mu);
  return rc;
}

/* Looks a version up without copying the manifest: the inline versions are
 * answered under db->mu; otherwise only the (few) node references are copied
 * and the version tree is read without the lock. */
static int find_version(st_db *db, int by_time, uint64_t x, st_vers *v) {
  st_vref nodes[64];
  size_t n;
  int rc = STRATA_ENOTFOUND, inl = 0;
  strata_mutex_lock(&db->mu);
  const st_mstate *ms = &db->ms;
  if (ms->n_versions) {
    if (by_time ? ms->versions[0].commit_time <= x : x >= ms->versions[0].generation) {
      inl = 1;
      rc = by_time ? vt__find_time(db, ms, x, v) : vt__find_generation(db, ms, x, v);
    }
  }
  n = ms->n_nodes;
  memcpy(nodes, ms->nodes, n * sizeof nodes[0]);
  strata_mutex_unlock(&db->mu);
  if (!inl && (by_time || x > 0))
    rc = by_time ? vt__find_time_nodes(db, nodes, n, x, v) : vt__find_generation_nodes(db, nodes, n, x, v);
  return rc;
}

int st_snap_at_generation(st_db *db, uint64_t generation, st_snap **out) {
  assert(db && out);
  st_vers v;
  int rc = find_version(db, 0, generation, &v);
  if (rc == STRATA_ENOTFOUND && st__dropped(db, 0, generation)) return STRATA_ERANGE;
  if (rc == STRATA_ENOTFOUND)
    return strata_err(rc, "%s: generation %llu does not exist", db->path, (unsigned long long)generation);
  return rc ? rc : new_snap(db, &v, out);
}

int st_snap_at_time(st_db *db, uint64_t t_ns, st_snap **out) {
  assert(db && out);
  st_vers v;
  int rc = find_version(db, 1, t_ns, &v);
  if (rc == STRATA_ENOTFOUND && st__dropped(db, 1, t_ns)) return STRATA_ERANGE;
  if (rc == STRATA_ENOTFOUND)
    return strata_err(rc, "%s: no commit at or before time %llu ns", db->path, (unsigned long long)t_ns);
  return rc ? rc : new_snap(db, &v, out);
}

void st_snap_release(st_snap *s) { free(s); }

st_version_info st_snap_info(const st_snap *s) {
  assert(s);
  st_version_info i = {s->v.generation, s->v.commit_time, s->v.root.stats.num_keys};
  return i;
}

int st_get(st_snap *s, const void *key, size_t klen, strata_buf *value) {
  assert(s && value);
  assert(key || klen == 0);
  st_entry e;
  int rc = bt__find(s->db, &s->v.root, key, klen, &e);
  if (rc) return rc;
  rc = bt__read_value(s->db, &e, value);
  nc__release(s->db, e.pin);
  return rc;
}

int st_get_batch(st_snap *s, size_t n, const st_key *keys, st_getres *out) {
  assert(s);
  assert((keys && out) || n == 0);
  /* st_getres has no message: the first hard error's (which file, which
   * offset) is kept and recorded again as the call's. */
  int first = 0;
  size_t at = 0;
  strata_err_saved why;
  for (size_t i = 0; i < n; i++) {
    memset(&out[i].value, 0, sizeof out[i].value);
    out[i].rc = st_get(s, keys[i].p, keys[i].n, &out[i].value);
    if (!first && out[i].rc && out[i].rc != STRATA_ENOTFOUND) {
      first = out[i].rc;
      at = i;
      strata_err_save(first, &why);
    }
  }
  if (!first) return 0;
  strata_err_restore(&why);
  return strata_err_wrap(first, "keys[%zu]", at);
}

int st_versions(st_db *db, uint64_t min_generation, size_t limit, st_version_info **out, size_t *n) {
  assert(db && out && n);
  st_mstate ms;
  int rc = copy_ms(db, &ms);
  if (rc) return rc;
  rc = vt__list(db, &ms, min_generation, limit, out, n);
  mstate__free(&ms);
  return rc;
}

const uint64_t st_group_size_le[ST_GROUP_BUCKETS] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
const uint64_t st_group_bytes_le[ST_GROUP_BUCKETS] = {
    256,           1u << 10,      4u << 10,      16u << 10,     64u << 10,     256u << 10,
    1u << 20,      4u << 20,      16u << 20,     64u << 20,     256u << 20};

size_t st__group_bucket(const uint64_t *le, uint64_t v) {
  size_t i = 0;
  while (i < ST_GROUP_BUCKETS && v > le[i]) i++;
  return i;
}

void st_get_stats(st_db *db, st_stats *out) {
  assert(db && out);
  memset(out, 0, sizeof *out);
  strata_mutex_lock(&db->mu);
  out->commits = db->commits;
  out->groups = db->groups;
  memcpy(out->group_size, db->group_size, sizeof out->group_size);
  memcpy(out->group_bytes, db->group_bytes, sizeof out->group_bytes);
  out->bytes_written = db->bytes_written;
  out->prepared_hits = db->prep_hits;
  out->stray_data_files = db->strays;
  out->ns_build = db->ns_build;
  out->ns_sync = db->ns_sync;
  out->ns_publish = db->ns_publish;
  out->ns_tree_wait = db->ns_tree_wait;
  out->committed_generation = db->latest.generation;
  out->published_generation = db->log ? db->published : db->latest.generation;
  out->publish_batches = db->batches;
  out->unpublished_bytes = db->backlog;
  out->publish_stalls = db->pub_stalls;
  out->log_prepare_failures = db->log_prep_failures;
  out->publish_stalled = db->pub_stall != 0;
  if (db->pub_stall) snprintf(out->publish_error, sizeof out->publish_error, "%.255s", db->pub_stall_msg);
  strata_mutex_unlock(&db->mu);
  strata_mutex_lock(&db->ft.mu);
  out->open_files = db->ft.nopen;
  out->file_opens = db->ft.opens;
  out->file_closes = db->ft.closes;
  strata_mutex_unlock(&db->ft.mu);
  strata_mutex_lock(&db->cache.mu);
  out->cache_hits = db->cache.hits;
  out->cache_misses = db->cache.misses;
  out->cache_bytes = db->cache.bytes;
  strata_mutex_unlock(&db->cache.mu);
}
