/*
 * History retention: the floor below which the committer drops versions
 * (versions.c, vt__trim), the retained range, and the GC of Strata's own
 * files that no retained version references (data files, commit log batch
 * files, numbered manifests), after a grace period. storage/README.md
 * "Retention and GC of Strata's own files".
 */
#include <assert.h>
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
  assert(db && out);
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

unsigned gc__duty(const gc_pace *p, uint64_t now_ns) {
  if (!p->last_group_ns) return p->duty_pct;
  uint64_t last = __atomic_load_n(p->last_group_ns, __ATOMIC_RELAXED);
  int busy = now_ns < last + ST_GC_IDLE_AFTER_MS * 1000000ull;
  return busy ? p->duty_pct : p->idle_duty_pct;
}

int gc__pace(gc_pace *p) {
  if (!p) return 0;
  if (p->stop && __atomic_load_n(p->stop, __ATOMIC_RELAXED))
    return strata_err(STRATA_ESHUTDOWN, "GC pass given up: the server is stopping");
  if (p->work) __atomic_add_fetch(p->work, 1, __ATOMIC_RELAXED);
  if (p->duty_pct >= 100 || ++p->n % 16) return 0;
  uint64_t used = thread_cpu_ns() - p->cpu0;
  if (used < PACE_SLICE_NS) return 0;
  unsigned duty = gc__duty(p, mono_ns());
  if (duty >= 100) {
    p->cpu0 = thread_cpu_ns();
    return 0;
  }
  uint64_t ns = used * (100 - duty) / duty;
  struct timespec ts = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};
  nanosleep(&ts, NULL); /* pacing: EINTR only shortens one pause */
  p->cpu0 = thread_cpu_ns();
  return 0;
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

/* One pass's working state (gc_pass). */
typedef struct gc_run {
  st_db *db;
  const st_gc_own_opts *o;
  st_gc_own_result *r;
  struct st_gc_own_state *g; /* g->mu held for the whole pass */
  st_gc_own_totals *tot;
  int live;                  /* not a dry run: the totals and g->p move */
  uint64_t now;
  pend *next;                /* the candidates still in their grace period */
  size_t nnext, removed_d, removed_top;
} gc_run;

/* Whether s, a name in d/ (in_d) or at the top, is a candidate, with its
 * path: Strata's data files named for a generation the newest manifest (P)
 * covers that it does not reference, and numbered manifests of dropped
 * generations (below oldest). */
static int is_candidate(const char *s, int in_d, uint64_t P, uint64_t oldest, const st_fileset *refs,
                        char path[80]) {
  uint64_t gen = 0;
  if (in_d) {
    if (!st__data_file_generation(s, &gen) || gen > P) return 0;
    snprintf(path, 80, ST_DATA_DIR "/%s", s);
    return !st_fileset_has(refs, path);
  }
  if (strlen(s) != 25 || strncmp(s, "manifest.", 9) || !is_hex16(s + 9)) return 0;
  gen = strtoull(s + 9, NULL, 16);
  if (gen >= oldest || gen >= P) return 0;
  snprintf(path, 80, "%s", s);
  return 1;
}

/* Removes the candidate path once its grace period is over (and within
 * max_remove), otherwise keeps it waiting in x->next. */
static int consider(gc_run *x, const char *path, int in_d) {
  st_gc_own_result *r = x->r;
  st_gc_own_totals *tot = x->tot;
  uint64_t size = 0;
  strata_mutex_assert_held(&x->g->mu);
  if (st_file_size(x->db, path, &size)) return 0; /* gone meanwhile */
  r->files_scanned++;
  r->bytes_scanned += size;
  if (x->live) {
    tot_add(&tot->files_scanned, 1);
    tot_add(&tot->bytes_scanned, size);
  }
  pend key = {(char *)path, 0}, *was = x->g->n ? bsearch(&key, x->g->p, x->g->n, sizeof *x->g->p, cmp_pend) : NULL;
  uint64_t since = was ? was->since : x->now;
  if (x->now - since >= x->o->grace_ns && (!x->o->max_remove || r->files_removed < x->o->max_remove)) {
    int rc = 0;
    if (x->o->dry_run || (rc = bs_remove(x->db->base, path)) == 0) {
      r->files_removed++;
      r->bytes_removed += size;
      if (x->live) {
        tot_add(&tot->files_removed, 1);
        tot_add(&tot->bytes_removed, size);
      }
      if (in_d) x->removed_d++;
      else x->removed_top++;
      return 0;
    }
    return rc == STRATA_ENOTFOUND ? 0 : rc;
  }
  r->files_waiting++;
  r->bytes_waiting += size;
  if (!(x->next[x->nnext].name = strdup(path))) return strata_err(STRATA_ENOMEM, "GC");
  x->next[x->nnext++].since = since;
  return 0;
}

/* A live pass's end: the waiting candidates replace the remembered ones. */
static void keep_waiting(gc_run *x) {
  struct st_gc_own_state *g = x->g;
  strata_mutex_assert_held(&g->mu);
  qsort(x->next, x->nnext, sizeof *x->next, cmp_pend);
  for (size_t i = 0; i < g->n; i++) free(g->p[i].name);
  free(g->p);
  g->p = x->next;
  g->n = x->nnext;
  x->next = NULL;
  x->nnext = 0;
  tot_add(&x->tot->runs, 1);
  __atomic_store_n(&x->tot->files_waiting, x->r->files_waiting, __ATOMIC_RELAXED);
  __atomic_store_n(&x->tot->bytes_waiting, x->r->bytes_waiting, __ATOMIC_RELAXED);
}

static int gc_pass(st_db *db, const st_gc_own_opts *o, st_gc_own_result *r) {
  memset(r, 0, sizeof *r);
  struct st_gc_own_state *g;
  int rc = gc_state(db, &g);
  if (rc) return rc;
  strata_mutex_lock(&g->mu);
  gc_run x = {.db = db, .o = o, .r = r, .g = g, .tot = &g->tot, .live = !o->dry_run, .now = mono_ns()};
  /* dry runs leave the totals alone */
  gc_pace pace = {.duty_pct = o->duty_pct ? o->duty_pct : ST_GC_DUTY_DEFAULT,
                  .idle_duty_pct = o->idle_duty_pct ? o->idle_duty_pct : ST_GC_IDLE_DUTY_DEFAULT,
                  .last_group_ns = &db->last_group_ns,
                  .stop = o->stop,
                  .work = x.live ? &x.tot->work : NULL,
                  .cpu0 = thread_cpu_ns()};
  if (pace.duty_pct > 100) pace.duty_pct = 100;
  if (pace.idle_duty_pct > 100) pace.idle_duty_pct = 100;
  if (pace.idle_duty_pct < pace.duty_pct) pace.idle_duty_pct = pace.duty_pct;
  if (x.live) __atomic_store_n(&x.tot->running, 1, __ATOMIC_RELAXED);
  st_mstate ms;
  memset(&ms, 0, sizeof ms);
  uint64_t P = 0;
  char **top = NULL, **dnames = NULL;
  size_t ntop = 0, nd = 0;
  st_fileset *refs = NULL;
  /* 1. What the newest published manifest's retained versions reference. */
  if ((rc = st__load_published(db, &ms, &P, &top, &ntop))) {
    if (rc == STRATA_ENOTFOUND) rc = 0;
    goto out;
  }
  st_vers oldest;
  vt__oldest(&ms, &oldest);
  if ((rc = gc__walk_state(db, &ms, &pace, &refs, &r->versions_walked))) goto out;
  /* 2. The files present; both kinds of candidate are considered in one list. */
  rc = bs_list(db->base, ST_DATA_DIR, &dnames, &nd);
  if (rc == STRATA_ENOTFOUND) rc = 0;
  if (rc) goto out;
  if (!(x.next = calloc(nd + ntop + 1, sizeof *x.next))) {
    rc = strata_err(STRATA_ENOMEM, "GC");
    goto out;
  }
  for (size_t i = 0; i < nd + ntop; i++) {
    char path[80];
    if ((rc = gc__pace(&pace))) goto out;
    if (!is_candidate(i < nd ? dnames[i] : top[i - nd], i < nd, P, oldest.generation, refs, path)) continue;
    if ((rc = consider(&x, path, i < nd))) goto out;
  }
  /* 3. The removals made durable, then the waiting list remembered. */
  if (x.removed_d && (rc = bs_sync_dir(db->base, ST_DATA_DIR))) goto out;
  if (x.removed_top && (rc = bs_sync_dir(db->base, ""))) goto out;
  if (!o->dry_run) keep_waiting(&x);
out:
  if (x.live) __atomic_store_n(&x.tot->running, 0, __ATOMIC_RELAXED);
  for (size_t i = 0; i < x.nnext; i++) free(x.next[i].name);
  free(x.next);
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
  assert(db && o && r);
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
  assert(db && out);
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
