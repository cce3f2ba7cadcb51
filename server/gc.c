/*
 * GC of coordinator-mode writer files: which writers' files may go (the
 * registry, locks/writers.h), which files are referenced (the store's walk,
 * storage/gc.c), and removing the rest; run by Admin.Gc and by a background
 * thread every --gc-interval. The rule that keeps it safe against commits in
 * flight is in server/README.md "Coordinator mode".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "server/log.h"
#include "server/srv_int.h"

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void srv__gc_report_free(srv_gc_report *r) {
  for (size_t i = 0; i < r->npaths; i++) free(r->paths[i]);
  free(r->paths);
  r->paths = NULL;
  r->npaths = 0;
}

static void note_path(srv_gc_report *r, const char *name) {
  if (r->npaths >= SRV_GC_PATHS_MAX) return;
  size_t n = strlen(name) + 3;
  char *p = malloc(n);
  if (!p) return;
  snprintf(p, n, "d/%s", name);
  r->paths[r->npaths++] = p;
}

/* Keeps, at the front of names, the candidates: files of a condemned writer
 * (ids, sorted), or of one forgotten by an earlier run (a file its process
 * created after that run listed d/). Returns how many. */
static size_t keep_candidates(srv *s, const uint64_t *ids, size_t nids, char **names, size_t nnames) {
  size_t ncand = 0;
  for (size_t i = 0; i < nnames; i++) {
    uint64_t id;
    if (wreg_parse_name(names[i], &id) &&
        (bsearch(&id, ids, nids, sizeof *ids, cmp_u64) || wreg_is_gone(s->wr, id)))
      names[ncand++] = names[i];
  }
  return ncand;
}

/* The writers whose file could not be removed (up to nids of them). */
typedef struct gc_failed {
  uint64_t *ids;
  size_t n, cap;
} gc_failed;

/* Removes (or, dry run, sizes) the candidate names no version references;
 * a failure is logged and its writer noted in failed. 1 if a file went. */
static int remove_unreferenced(srv *s, int dry_run, char **names, size_t ncand, const st_fileset *refs,
                               gc_failed *failed, srv_gc_report *out) {
  int removed_any = 0;
  for (size_t i = 0; i < ncand; i++) {
    uint64_t id;
    wreg_parse_name(names[i], &id);
    char path[WREG_PATH_MAX + 8];
    snprintf(path, sizeof path, "d/%s", names[i]);
    if (st_fileset_has(refs, path)) {
      out->files_kept++;
      continue;
    }
    uint64_t size = 0;
    int frc = dry_run ? st_file_size(s->db, path, &size) : st_remove_foreign_file(s->db, names[i], &size);
    if (frc) {
      srv_log(SRV_LOG_WARN, "event=gc_remove_failed path=%s msg=\"%s\"", path, strata_errmsg());
      if (failed->n < failed->cap) failed->ids[failed->n++] = id;
      continue;
    }
    removed_any = !dry_run;
    out->files_removed++;
    out->bytes_removed += size;
    note_path(out, names[i]);
  }
  return removed_any;
}

/* Forgets the condemned writers none of whose files failed to go. */
static int forget_collected(srv *s, const uint64_t *ids, size_t nids, const gc_failed *failed,
                            srv_gc_report *out) {
  for (size_t i = 0; i < nids; i++) {
    int bad = 0;
    for (size_t j = 0; j < failed->n; j++) bad |= failed->ids[j] == ids[i];
    if (bad) continue;
    int rc = wreg_forget(s->wr, ids[i]);
    if (rc) return rc;
    out->writers_collected++;
  }
  return 0;
}

/* Strata's own files no retained version references (storage/retain.c):
 * the same walk's rule, from the newest durable manifest. */
static int gc_own_files(srv *s, int dry_run, srv_gc_report *out) {
  /* A stopping server gives the pass up (srv__gc_stop sets gct_stop first). */
  st_gc_own_opts oo = {.dry_run = dry_run, .stop = &s->gct_stop};
  int64_t grace = s->o.gc_grace_ms ? s->o.gc_grace_ms : SRV_DEFAULT_GC_GRACE_MS;
  oo.grace_ns = grace < 0 ? 0 : (uint64_t)grace * 1000000u;
  int rc = st_gc_own(s->db, &oo, &out->own);
  if (!rc && out->own.files_removed)
    srv_log(SRV_LOG_INFO, "event=gc_own dry_run=%d files_removed=%llu bytes_removed=%llu files_waiting=%llu",
            dry_run, (unsigned long long)out->own.files_removed,
            (unsigned long long)out->own.bytes_removed, (unsigned long long)out->own.files_waiting);
  return rc;
}

/* One GC run, in this order:
 * 1. condemn: every writer whose lease ended and that has no commit between
 *    its fence and its decision becomes dead (wreg_condemn); from then on no
 *    commit of it passes the fence, so no version made later references its
 *    files. Writers with a commit in flight wait for the next run.
 * 2. walk every version (all are retained) for the files they reference; the
 *    versions of every commit that passed the fence before step 1 are among
 *    them (its pin is dropped only once it is visible).
 * 3. remove the dead writers' files that no version references.
 * 4. forget the dead writers whose files are all handled.
 * 5. collect Strata's own unreferenced files. */
int srv__gc_run(srv *s, int dry_run, srv_gc_report *out) {
  memset(out, 0, sizeof *out);
  out->paths = calloc(SRV_GC_PATHS_MAX, sizeof *out->paths);
  if (!out->paths) return strata_err(STRATA_ENOMEM, "GC");
  strata_mutex_lock(&s->gc_mu);
  uint64_t *ids = NULL;
  size_t nids = 0;
  gc_failed failed = {NULL, 0, 0};
  st_fileset *refs = NULL;
  char **names = NULL;
  size_t nnames = 0;
  /* 1. */
  int rc = wreg_condemn(s->wr, dry_run, &ids, &nids, &out->writers_deferred);
  if (rc) goto out;
  qsort(ids, nids, sizeof *ids, cmp_u64);
  if (!(failed.ids = calloc(nids ? nids : 1, sizeof *failed.ids))) {
    rc = strata_err(STRATA_ENOMEM, "GC");
    goto out;
  }
  failed.cap = nids;
  if ((rc = st_foreign_files(s->db, &names, &nnames))) goto out;
  size_t ncand = keep_candidates(s, ids, nids, names, nnames);
  /* 2. */
  if (ncand) { /* else nothing to remove: no walk */
    st_check_result walked;
    if ((rc = st_walk(s->db, 0, &refs, &walked))) goto out;
    out->versions_walked = walked.versions;
    st_check_result_free(&walked);
  }
  /* 3. */
  if (remove_unreferenced(s, dry_run, names, ncand, refs, &failed, out) && (rc = st_sync_data_dir(s->db)))
    goto out;
  /* 4. */
  if (!dry_run && (rc = forget_collected(s, ids, nids, &failed, out))) goto out;
  /* 5. */
  if ((rc = gc_own_files(s, dry_run, out))) goto out;
  if (out->files_removed || out->writers_collected)
    srv_log(SRV_LOG_INFO,
            "event=gc dry_run=%d files_removed=%llu bytes_removed=%llu files_kept=%llu "
            "writers_collected=%llu writers_deferred=%llu",
            dry_run, (unsigned long long)out->files_removed,
            (unsigned long long)out->bytes_removed, (unsigned long long)out->files_kept,
            (unsigned long long)out->writers_collected,
            (unsigned long long)out->writers_deferred);
out:
  strata_mutex_unlock(&s->gc_mu);
  free(ids);
  free(failed.ids);
  free(names);
  st_fileset_free(refs);
  if (rc) srv__gc_report_free(out);
  return rc;
}

/* --- the background thread ------------------------------------------------------ */

int srv__tick_wait(strata_mutex *mu, pthread_cond_t *cv, const int *stop, int64_t ms) {
  strata_mutex_lock(mu);
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  t.tv_sec += (time_t)(ms / 1000);
  t.tv_nsec += (long)(ms % 1000) * 1000000;
  if (t.tv_nsec >= 1000000000) {
    t.tv_sec++;
    t.tv_nsec -= 1000000000;
  }
  while (!*stop && strata_cond_timedwait(cv, mu, &t) != ETIMEDOUT) {
  }
  int go = !*stop;
  strata_mutex_unlock(mu);
  return go;
}

static void *gc_thread(void *arg) {
  srv *s = arg;
  while (srv__tick_wait(&s->gct_mu, &s->gct_cv, &s->gct_stop, s->o.gc_interval_ms)) {
    srv_gc_report r;
    int rc = srv__gc_run(s, 0, &r);
    if (rc == STRATA_ESHUTDOWN) srv_log(SRV_LOG_INFO, "event=gc_given_up reason=stop");
    else if (rc) srv_log(SRV_LOG_WARN, "event=gc_failed msg=\"%s\"", strata_errmsg());
    else srv__gc_report_free(&r);
  }
  return NULL;
}

void srv__gc_init(srv *s) {
  strata_mutex_init(&s->gc_mu);
  strata_mutex_init(&s->gct_mu);
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&s->gct_cv, &ca);
  pthread_condattr_destroy(&ca);
}

void srv__gc_destroy(srv *s) {
  srv__gc_stop(s);
  pthread_cond_destroy(&s->gct_cv);
  strata_mutex_destroy(&s->gct_mu);
  strata_mutex_destroy(&s->gc_mu);
}

int srv__gc_start(srv *s) {
  if (s->o.gc_interval_ms == 0) s->o.gc_interval_ms = SRV_DEFAULT_GC_INTERVAL_MS;
  if (s->o.gc_interval_ms < 0) return 0;
  int e = pthread_create(&s->gct, NULL, gc_thread, s);
  if (e) return strata_err(e, "starting the GC thread: %s", strerror(e));
  s->has_gct = 1;
  return 0;
}

/* Also gives up a pass in progress, the background one or an Admin.Gc's
 * (st_gc_own_opts.stop): a paced pass over a long history would hold the stop. */
void srv__gc_stop(srv *s) {
  strata_mutex_lock(&s->gct_mu);
  __atomic_store_n(&s->gct_stop, 1, __ATOMIC_RELAXED);
  pthread_cond_signal(&s->gct_cv);
  strata_mutex_unlock(&s->gct_mu);
  if (!s->has_gct) return;
  pthread_join(s->gct, NULL);
  s->has_gct = 0;
}
