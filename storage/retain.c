/*
 * History retention: the floor below which the committer drops versions
 * (versions.c, vt__trim), the retained range, and the GC of Strata's own
 * files that no retained version references (data files, commit log batch
 * files, numbered manifests), after a grace period. storage/README.md
 * "Retention and GC of Strata's own files".
 */
#include <pthread.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "storage/engine_int.h"

/* Files found unreferenced, with when they were first seen so (monotonic ns).
 * In memory only: after a restart every candidate waits a full grace again. */
typedef struct pend {
  char *name; /* "d/<32 hex>" or "manifest.%016x" */
  uint64_t since;
} pend;

struct st_gc_own_state {
  strata_mutex mu; /* one GC at a time; guards p and n */
  pend *p;
  size_t n;
  st_gc_own_totals tot; /* atomic fields: read while a pass runs */
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

/* --- yielding to commits ------------------------------------------------------------ */

static uint64_t thread_cpu_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

#define PACE_SLICE_NS 1000000u /* CPU time between sleeps */

void gc__pace(gc_pace *p) {
  if (!p) return;
  if (p->work) __atomic_add_fetch(p->work, 1, __ATOMIC_RELAXED);
  if (p->duty_pct >= 100 || ++p->n % 16) return;
  uint64_t used = thread_cpu_ns() - p->cpu0;
  if (used < PACE_SLICE_NS) return;
  uint64_t ns = used * (100 - p->duty_pct) / p->duty_pct;
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL); /* pacing: EINTR only shortens one pause */
  p->cpu0 = thread_cpu_ns();
}

/* The GC thread's priority: nice GC_NICE (on Linux setpriority of a thread
 * id is that thread's). Not SCHED_IDLE and not the idle I/O class: the pass
 * takes cache.mu and ft.mu (and the kernel's directory locks when it
 * unlinks) like any reader, and a thread at CFS's minimum weight, or one
 * whose I/O waits for an idle disk, preempted while holding one would stall
 * the committer behind it for as long as the machine stays busy (priority
 * inversion). Lowering needs no privilege; a refusal (a seccomp profile)
 * leaves the pass at normal priority, still paced. */
#define GC_NICE 10
static void lower_priority(void) {
  setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), GC_NICE);
}

static int cmp_pend(const void *a, const void *b) {
  return strcmp(((const pend *)a)->name, ((const pend *)b)->name);
}

static void tot_add(uint64_t *f, uint64_t v) { __atomic_add_fetch(f, v, __ATOMIC_RELAXED); }

static int gc_pass(st_db *db, const st_gc_own_opts *o, st_gc_own_result *r) {
  memset(r, 0, sizeof *r);
  struct st_gc_own_state *g;
  int rc = gc_state(db, &g);
  if (rc) return rc;
  strata_mutex_lock(&g->mu);
  st_gc_own_totals *tot = &g->tot;
  int live = !o->dry_run; /* dry runs leave the totals alone */
  gc_pace pace = {.duty_pct = o->duty_pct ? o->duty_pct : ST_GC_DUTY_DEFAULT,
                  .work = live ? &tot->work : NULL,
                  .cpu0 = thread_cpu_ns()};
  if (pace.duty_pct > 100) pace.duty_pct = 100;
  if (live) __atomic_store_n(&tot->running, 1, __ATOMIC_RELAXED);
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
  if ((rc = gc__walk_state(db, &ms, &pace, &refs, &r->versions_walked))) goto out;
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
    gc__pace(&pace);
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
    if (live) {
      tot_add(&tot->files_scanned, 1);
      tot_add(&tot->bytes_scanned, size);
    }
    pend key = {path, 0}, *was = g->n ? bsearch(&key, g->p, g->n, sizeof *g->p, cmp_pend) : NULL;
    uint64_t since = was ? was->since : now;
    if (now - since >= o->grace_ns && (!o->max_remove || r->files_removed < o->max_remove)) {
      if (o->dry_run || (rc = bs_remove(db->base, path)) == 0) {
        r->files_removed++;
        r->bytes_removed += size;
        if (live) {
          tot_add(&tot->files_removed, 1);
          tot_add(&tot->bytes_removed, size);
        }
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
    tot_add(&tot->runs, 1);
    __atomic_store_n(&tot->files_waiting, r->files_waiting, __ATOMIC_RELAXED);
    __atomic_store_n(&tot->bytes_waiting, r->bytes_waiting, __ATOMIC_RELAXED);
  }
out:
  if (live) __atomic_store_n(&tot->running, 0, __ATOMIC_RELAXED);
  for (size_t i = 0; i < nnext; i++) free(next[i].name);
  free(next);
  free(top);
  free(dnames);
  st_fileset_free(refs);
  mstate__free(&ms);
  strata_mutex_unlock(&g->mu);
  return rc;
}

typedef struct gc_job {
  st_db *db;
  const st_gc_own_opts *o;
  st_gc_own_result *r;
  int rc;
  strata_err_saved err;
} gc_job;

static void *gc_thread(void *arg) {
  gc_job *j = arg;
  lower_priority();
  if ((j->rc = gc_pass(j->db, j->o, j->r))) strata_err_save(j->rc, &j->err);
  return NULL;
}

int st_gc_own(st_db *db, const st_gc_own_opts *o, st_gc_own_result *r) {
  if (o->in_caller) return gc_pass(db, o, r);
  gc_job *j = calloc(1, sizeof *j);
  if (!j) return strata_err(STRATA_ENOMEM, "GC");
  *j = (gc_job){.db = db, .o = o, .r = r};
  pthread_t t;
  int e = pthread_create(&t, NULL, gc_thread, j);
  if (e) { /* no thread to spare: the pass runs here, still paced */
    free(j);
    return gc_pass(db, o, r);
  }
  pthread_setname_np(t, "st-gc");
  pthread_join(t, NULL);
  int rc = j->rc ? strata_err_restore(&j->err) : 0;
  free(j);
  return rc;
}

void st_gc_own_totals_get(st_db *db, st_gc_own_totals *out) {
  memset(out, 0, sizeof *out);
  struct st_gc_own_state *g;
  if (gc_state(db, &g)) return;
  const st_gc_own_totals *t = &g->tot;
  out->runs = __atomic_load_n(&t->runs, __ATOMIC_RELAXED);
  out->files_scanned = __atomic_load_n(&t->files_scanned, __ATOMIC_RELAXED);
  out->bytes_scanned = __atomic_load_n(&t->bytes_scanned, __ATOMIC_RELAXED);
  out->files_removed = __atomic_load_n(&t->files_removed, __ATOMIC_RELAXED);
  out->bytes_removed = __atomic_load_n(&t->bytes_removed, __ATOMIC_RELAXED);
  out->files_waiting = __atomic_load_n(&t->files_waiting, __ATOMIC_RELAXED);
  out->bytes_waiting = __atomic_load_n(&t->bytes_waiting, __ATOMIC_RELAXED);
  out->work = __atomic_load_n(&t->work, __ATOMIC_RELAXED);
  out->running = __atomic_load_n(&t->running, __ATOMIC_RELAXED);
}
