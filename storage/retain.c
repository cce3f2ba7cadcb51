/*
 * History retention: the floor below which the committer drops versions
 * (versions.c, vt__trim), the retained range, and the GC of Strata's own
 * files that no retained version references (data files, commit log batch
 * files, numbered manifests), after a grace period. storage/README.md
 * "Retention and GC of Strata's own files".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/engine_int.h"

/* Files found unreferenced, with when they were first seen so (monotonic ns).
 * In memory only: after a restart every candidate waits a full grace again. */
typedef struct pend {
  char *name; /* "d/<32 hex>" or "manifest.%016x" */
  uint64_t since;
} pend;

struct st_gc_own_state {
  strata_mutex mu; /* one GC at a time; guards the fields below */
  pend *p;
  size_t n;
  st_gc_own_totals tot;
};

static uint64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

void st_set_retain_floor(st_db *db, uint64_t floor) {
  __atomic_store_n(&db->retain_floor, floor, __ATOMIC_RELEASE);
}

uint64_t st_retain_floor(st_db *db) { return __atomic_load_n(&db->retain_floor, __ATOMIC_ACQUIRE); }

void st_retained_range(st_db *db, st_retained *out) {
  st_vers o;
  strata_mutex_lock(&db->mu);
  vt__oldest(&db->ms, &o);
  out->latest_generation = db->latest.generation;
  out->latest_time_ns = db->latest.commit_time;
  strata_mutex_unlock(&db->mu);
  out->oldest_generation = o.generation;
  out->oldest_time_ns = o.commit_time;
}

int st__dropped(st_db *db, int by_time, uint64_t x) {
  st_retained r;
  st_retained_range(db, &r);
  if (r.oldest_generation <= 1) return 0; /* nothing was ever dropped */
  if (by_time ? x >= r.oldest_time_ns : x >= r.oldest_generation || x == 0) return 0;
  strata_err(STRATA_ERANGE,
             "%s: %s %llu is no longer retained: the oldest retained version is generation %llu "
             "(commit time %llu ns)",
             db->path, by_time ? "time" : "generation", (unsigned long long)x,
             (unsigned long long)r.oldest_generation, (unsigned long long)r.oldest_time_ns);
  return 1;
}

/* --- GC of Strata's own files -------------------------------------------------------- */

static int gc_state(st_db *db, struct st_gc_own_state **out) {
  strata_mutex_lock(&db->mu);
  if (!db->gc_own) {
    struct st_gc_own_state *g = calloc(1, sizeof *g);
    if (g) strata_mutex_init(&g->mu);
    db->gc_own = g;
  }
  *out = db->gc_own;
  strata_mutex_unlock(&db->mu);
  return *out ? 0 : strata_err(STRATA_ENOMEM, "GC");
}

void st__gc_own_free(st_db *db) {
  struct st_gc_own_state *g = db->gc_own;
  if (!g) return;
  for (size_t i = 0; i < g->n; i++) free(g->p[i].name);
  free(g->p);
  strata_mutex_destroy(&g->mu);
  free(g);
  db->gc_own = NULL;
}

static int is_hex16(const char *s) {
  for (int i = 0; i < 16; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
  return 1;
}

/* The newest durable manifest's state: what an open after a crash would load.
 * Everything a later manifest references is in it or in files named for a
 * later generation (copy-on-write from its latest version, which it keeps). */
int st__load_published(st_db *db, st_mstate *ms, uint64_t *gen, char ***names, size_t *nn) {
  int rc = bs_list(db->base, "", names, nn);
  if (rc) return rc;
  uint64_t best = 0;
  for (size_t i = 0; i < *nn; i++) {
    const char *s = (*names)[i];
    if (strlen(s) == 25 && !strncmp(s, "manifest.", 9) && is_hex16(s + 9)) {
      uint64_t g = strtoull(s + 9, NULL, 16);
      if (g > best) best = g;
    }
  }
  char name[64];
  if (best) snprintf(name, sizeof name, "manifest.%016llx", (unsigned long long)best);
  else snprintf(name, sizeof name, "manifest.ocdbt");
  uint8_t *p = NULL;
  size_t n = 0;
  ocdbt_manifest m;
  memset(&m, 0, sizeof m);
  if ((rc = bs_read_all(db->base, name, &p, &n))) return rc;
  rc = ocdbt_manifest_decode(p, n, &m);
  free(p);
  if (rc) return strata_err_wrap(rc, "GC: %s/%s", db->path, name);
  if (m.n_versions == 0) { /* nothing published yet: nothing to collect */
    ocdbt_manifest_free(&m);
    return STRATA_ENOTFOUND;
  }
  *gen = m.versions[m.n_versions - 1].generation;
  rc = vt__load_manifest(db, &m, ms);
  ocdbt_manifest_free(&m);
  return rc;
}

static int cmp_pend(const void *a, const void *b) {
  return strcmp(((const pend *)a)->name, ((const pend *)b)->name);
}

int st_gc_own(st_db *db, const st_gc_own_opts *o, st_gc_own_result *r) {
  memset(r, 0, sizeof *r);
  struct st_gc_own_state *g;
  int rc = gc_state(db, &g);
  if (rc) return rc;
  strata_mutex_lock(&g->mu);
  st_mstate ms;
  memset(&ms, 0, sizeof ms);
  uint64_t P = 0, now = mono_ns();
  char **top = NULL, **dnames = NULL;
  size_t ntop = 0, nd = 0;
  st_fileset *refs = NULL;
  pend *next = NULL;
  size_t nnext = 0, removed_d = 0, removed_top = 0;
  if ((rc = st__load_published(db, &ms, &P, &top, &ntop))) {
    if (rc == STRATA_ENOTFOUND) rc = 0;
    goto out;
  }
  st_vers oldest;
  vt__oldest(&ms, &oldest);
  if ((rc = gc__walk_state(db, &ms, &refs, &r->versions_walked))) goto out;
  rc = bs_list(db->base, ST_DATA_DIR, &dnames, &nd);
  if (rc == STRATA_ENOTFOUND) rc = 0;
  if (rc) goto out;
  if (!(next = calloc(nd + ntop + 1, sizeof *next))) {
    rc = strata_err(STRATA_ENOMEM, "GC");
    goto out;
  }
  /* The candidates: Strata's data files named for a generation the newest
   * manifest covers that it does not reference, and numbered manifests of
   * dropped generations. Both kinds are considered in one list. */
  for (size_t i = 0; i < nd + ntop; i++) {
    const char *s = i < nd ? dnames[i] : top[i - nd];
    char path[80];
    uint64_t gen = 0, size = 0;
    if (i < nd) {
      if (!st__data_file_generation(s, &gen) || gen > P) continue;
      snprintf(path, sizeof path, ST_DATA_DIR "/%s", s);
      if (st_fileset_has(refs, path)) continue;
    } else {
      if (strlen(s) != 25 || strncmp(s, "manifest.", 9) || !is_hex16(s + 9)) continue;
      gen = strtoull(s + 9, NULL, 16);
      if (gen >= oldest.generation || gen >= P) continue;
      snprintf(path, sizeof path, "%s", s);
    }
    if (st_file_size(db, path, &size)) continue; /* gone meanwhile */
    r->files_scanned++;
    r->bytes_scanned += size;
    pend key = {path, 0}, *was = g->n ? bsearch(&key, g->p, g->n, sizeof *g->p, cmp_pend) : NULL;
    uint64_t since = was ? was->since : now;
    if (now - since >= o->grace_ns && (!o->max_remove || r->files_removed < o->max_remove)) {
      if (o->dry_run || (rc = bs_remove(db->base, path)) == 0) {
        r->files_removed++;
        r->bytes_removed += size;
        if (i < nd) removed_d++;
        else removed_top++;
        continue;
      }
      if (rc != STRATA_ENOTFOUND) goto out;
      rc = 0;
      continue;
    }
    r->files_waiting++;
    r->bytes_waiting += size;
    if (!(next[nnext].name = strdup(path))) {
      rc = strata_err(STRATA_ENOMEM, "GC");
      goto out;
    }
    next[nnext++].since = since;
  }
  if (removed_d && (rc = bs_sync_dir(db->base, ST_DATA_DIR))) goto out;
  if (removed_top && (rc = bs_sync_dir(db->base, ""))) goto out;
  if (!o->dry_run) {
    qsort(next, nnext, sizeof *next, cmp_pend);
    for (size_t i = 0; i < g->n; i++) free(g->p[i].name);
    free(g->p);
    g->p = next;
    g->n = nnext;
    next = NULL;
    nnext = 0;
    g->tot.runs++;
    g->tot.files_scanned += r->files_scanned;
    g->tot.bytes_scanned += r->bytes_scanned;
    g->tot.files_removed += r->files_removed;
    g->tot.bytes_removed += r->bytes_removed;
    g->tot.files_waiting = r->files_waiting;
    g->tot.bytes_waiting = r->bytes_waiting;
  }
out:
  for (size_t i = 0; i < nnext; i++) free(next[i].name);
  free(next);
  free(top);
  free(dnames);
  st_fileset_free(refs);
  mstate__free(&ms);
  strata_mutex_unlock(&g->mu);
  return rc;
}

void st_gc_own_totals_get(st_db *db, st_gc_own_totals *out) {
  memset(out, 0, sizeof *out);
  struct st_gc_own_state *g;
  if (gc_state(db, &g)) return;
  strata_mutex_lock(&g->mu);
  *out = g->tot;
  strata_mutex_unlock(&g->mu);
}
