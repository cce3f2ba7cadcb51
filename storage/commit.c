/*
 * The group-commit pipeline. Callers queue transactions (txn.c); one
 * committer thread per database takes every waiting transaction, validates
 * each against the latest generation plus the earlier survivors of the same
 * group (validate.c), and commits the survivors together: values and nodes
 * into one new data file, fsync, the manifest replaced atomically, then each
 * caller's completion. README.md ("The store engine") gives the durability
 * order and the recovery rules.
 */
#include <assert.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/commit_int.h"

/* --- the commit step --------------------------------------------------------- */

uint64_t cm__now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t cm__commit_time(const st_vers *latest) {
  uint64_t t = cm__now_ns();
  return t <= latest->commit_time ? latest->commit_time + 1 : t;
}

/* The fsync helper thread (db->syncer): one job at a time, posted by the
 * committer. The error message travels back with the code (strata_errmsg()
 * is per thread). */
static void *syncer_main(void *arg) {
  st_db *db = arg;
  pthread_setname_np(pthread_self(), "st-sync");
  strata_mutex_lock(&db->smu);
  for (;;) {
    while (db->s_state != SYNC_POSTED && db->s_state != SYNC_STOP) strata_cond_wait(&db->scv, &db->smu);
    if (db->s_state == SYNC_STOP) break;
    bs_file *f = db->s_file;
    int (*fn)(void *) = db->s_fn;
    void *fn_arg = db->s_arg;
    strata_mutex_unlock(&db->smu);
    int rc = fn ? fn(fn_arg) : bs_fsync(f);
    char msg[sizeof db->s_msg] = "";
    if (rc) snprintf(msg, sizeof msg, "%s", strata_errmsg());
    strata_mutex_lock(&db->smu);
    db->s_rc = rc;
    memcpy(db->s_msg, msg, sizeof msg);
    db->s_state = SYNC_DONE;
    atomic_fetch_add_explicit(&db->s_bell, 1, memory_order_release);
    pthread_cond_broadcast(&db->scv);
  }
  strata_mutex_unlock(&db->smu);
  return NULL;
}

/* fsyncs the data file (on the helper), the data directory (when the file is
 * new) and the temp manifest (here) at once; the first failure is returned. */
static int sync_all(st_db *db, bs_file *data, int dir, bs_file *man) {
  int rc[3] = {0, 0, 0};
  char msg[3][400] = {"", "", ""};
  if (db->has_syncer) {
    strata_mutex_lock(&db->smu);
    db->s_fn = NULL;
    db->s_file = data;
    db->s_state = SYNC_POSTED;
    pthread_cond_broadcast(&db->scv);
    strata_mutex_unlock(&db->smu);
  } else if ((rc[0] = bs_fsync(data))) {
    snprintf(msg[0], sizeof msg[0], "%s", strata_errmsg());
  }
  if (dir && (rc[1] = bs_sync_dir(db->base, ST_DATA_DIR))) snprintf(msg[1], sizeof msg[1], "%s", strata_errmsg());
  if ((rc[2] = bs_fsync(man))) snprintf(msg[2], sizeof msg[2], "%s", strata_errmsg());
  if (db->has_syncer) {
    strata_mutex_lock(&db->smu);
    while (db->s_state != SYNC_DONE) strata_cond_wait(&db->scv, &db->smu);
    rc[0] = db->s_rc;
    snprintf(msg[0], sizeof msg[0], "%s", db->s_msg);
    db->s_state = SYNC_IDLE;
    strata_mutex_unlock(&db->smu);
  }
  for (int i = 0; i < 3; i++)
    if (rc[i]) return strata_err(rc[i], "%s", msg[i]);
  return 0;
}

void cm__job_post(st_db *db, int (*fn)(void *), void *arg) {
  if (!db->has_syncer) { /* no helper: run it here */
    int rc = fn(arg);
    db->s_rc = rc;
    snprintf(db->s_msg, sizeof db->s_msg, "%s", rc ? strata_errmsg() : "");
    return;
  }
  strata_mutex_lock(&db->smu);
  db->s_fn = fn;
  db->s_arg = arg;
  db->s_state = SYNC_POSTED;
  pthread_cond_broadcast(&db->scv);
  strata_mutex_unlock(&db->smu);
}

/* smu held: takes and runs one shared task when one is left; 1 if it did. */
static int run_shared(st_db *db) {
  strata_mutex_assert_held(&db->smu);
  if (db->sh_next >= db->sh_n) return 0;
  size_t i = db->sh_next++;
  void (*fn)(void *, size_t) = db->sh_fn;
  void *ctx = db->sh_ctx;
  strata_mutex_unlock(&db->smu);
  fn(ctx, i);
  strata_mutex_lock(&db->smu);
  if (++db->sh_done == db->sh_n) pthread_cond_broadcast(&db->scv);
  return 1;
}

void cm__job_share(st_db *db, void (*fn)(void *ctx, size_t i), void *ctx, size_t n) {
  strata_mutex_lock(&db->smu);
  assert(db->sh_n == 0 /* one sharer at a time */);
  db->sh_fn = fn;
  db->sh_ctx = ctx;
  db->sh_n = n;
  db->sh_next = db->sh_done = 0;
  if (db->sh_waiters) {
    atomic_fetch_add_explicit(&db->s_bell, 1, memory_order_release);
    pthread_cond_broadcast(&db->scv);
  }
  while (run_shared(db)) {
  }
  while (db->sh_done < n) strata_cond_wait(&db->scv, &db->smu);
  db->sh_fn = NULL;
  db->sh_ctx = NULL;
  db->sh_n = db->sh_next = db->sh_done = 0;
  strata_mutex_unlock(&db->smu);
}

/* How long cm__job_wait watches for the job's end before it sleeps. */
#define JOB_WATCH_NS 150000

int cm__job_wait(st_db *db) {
  int rc;
  if (db->has_syncer) {
    strata_mutex_lock(&db->smu);
    db->sh_waiters++;
    while (db->s_state != SYNC_DONE) {
      if (run_shared(db)) continue;
      /* The job is near its end (this thread has synced the log and helped):
       * watch for it a while, yielding the CPU to anything runnable, before
       * sleeping. A sleep's wake-up took 70-80 us on this hypervisor, a
       * tenth of a group at 16 committers. */
      unsigned bell = atomic_load_explicit(&db->s_bell, memory_order_relaxed);
      strata_mutex_unlock(&db->smu);
      uint64_t until = cm__now_ns() + JOB_WATCH_NS;
      int rang;
      while (!(rang = atomic_load_explicit(&db->s_bell, memory_order_acquire) != bell) && cm__now_ns() < until)
        sched_yield();
      strata_mutex_lock(&db->smu);
      if (!rang && db->s_state != SYNC_DONE && db->sh_next >= db->sh_n) strata_cond_wait(&db->scv, &db->smu);
    }
    db->sh_waiters--;
    db->s_state = SYNC_IDLE;
    db->s_fn = NULL;
    strata_mutex_unlock(&db->smu);
  }
  rc = db->s_rc;
  return rc ? strata_err(rc, "%s", db->s_msg) : 0;
}

/* --- the preparer ----------------------------------------------------------- */

static void prep_discard(st_db *db, struct st_prepared *p) {
  bs_close(p->df);
  bs_close(p->tf);
  bs_remove(db->base, p->path);
  bs_remove(db->base, p->tmp);
  memset(p, 0, sizeof *p);
}

/* Hands the committer the files prepared for gen (1), or 0 when there are
 * none; either way asks the preparer for the next generation's. */
static int take_prepared(st_db *db, uint64_t gen, char *path, char *tmp, bs_file **df, bs_file **tf) {
  int got = 0;
  strata_mutex_lock(&db->mu);
  if (db->prepare && db->prep.ready && db->prep.gen == gen) {
    memcpy(path, db->prep.path, sizeof db->prep.path);
    memcpy(tmp, db->prep.tmp, sizeof db->prep.tmp);
    *df = db->prep.df;
    *tf = db->prep.tf;
    memset(&db->prep, 0, sizeof db->prep);
    db->prep_hits++;
    got = 1;
  }
  if (db->prepare) {
    db->prep_want = gen + 1;
    pthread_cond_signal(&db->prep_cv);
  }
  strata_mutex_unlock(&db->mu);
  return got;
}

/* Creates both files for generation g and makes their names durable. Any
 * failure just leaves the commit to create them itself. */
static int prep_make(st_db *db, uint64_t g, struct st_prepared *p) {
  memset(p, 0, sizeof *p);
  p->gen = g;
  df__path(p->path, g);
  /* Its own temp name: the committer may be creating "tmp.manifest.<g>"
   * itself right now when this preparation came too late. */
  snprintf(p->tmp, sizeof p->tmp, "tmp.p.manifest.%016llx", (unsigned long long)g);
  int rc;
  /* Only the data file's directory entry must be durable before a manifest
   * names it; the files' contents are fsynced by the commit, and the temp
   * manifest's name never matters (the rename's directory fsync covers it). */
  if ((rc = bs_create(db->base, p->path, &p->df)) || (rc = bs_create(db->base, p->tmp, &p->tf)) ||
      (rc = bs_sync_dir(db->base, ST_DATA_DIR))) {
    prep_discard(db, p);
    return rc;
  }
  p->ready = 1;
  return 0;
}

/* Removes the numbered manifests up to db->mf_obsolete (older ones were
 * removed before, or at open). */
void cm__remove_manifests(st_db *db) {
  strata_mutex_lock(&db->mu);
  uint64_t upto = db->mf_obsolete, from = db->mf_removed;
  db->mf_removed = upto;
  strata_mutex_unlock(&db->mu);
  for (uint64_t g = from + 1; g <= upto; g++) {
    char old[64];
    snprintf(old, sizeof old, "manifest.%016llx", (unsigned long long)g);
    bs_remove(db->base, old);
  }
}

static void *preparer(void *arg) {
  st_db *db = arg;
  pthread_setname_np(pthread_self(), "st-prepare");
  strata_mutex_lock(&db->mu);
  for (;;) {
    while (!db->closing && db->mf_obsolete == db->mf_removed &&
           (db->prep_want == 0 || (db->prep.ready && db->prep.gen == db->prep_want)))
      strata_cond_wait(&db->prep_cv, &db->mu);
    if (db->closing) break;
    if (db->mf_obsolete != db->mf_removed) {
      strata_mutex_unlock(&db->mu);
      cm__remove_manifests(db);
      strata_mutex_lock(&db->mu);
      continue;
    }
    uint64_t g = db->prep_want;
    struct st_prepared old = db->prep;
    memset(&db->prep, 0, sizeof db->prep);
    strata_mutex_unlock(&db->mu);
    if (old.ready) prep_discard(db, &old);
    struct st_prepared p;
    int rc = prep_make(db, g, &p);
    strata_mutex_lock(&db->mu);
    if (!rc) {
      assert(!db->prep.ready); /* only this thread fills the slot, and it emptied it */
      db->prep = p;
    } else if (db->prep_want == g) {
      db->prep_want = 0; /* wait for the committer to ask again */
    }
  }
  struct st_prepared left = db->prep;
  memset(&db->prep, 0, sizeof db->prep);
  strata_mutex_unlock(&db->mu);
  if (left.ready) prep_discard(db, &left);
  cm__remove_manifests(db);
  return NULL;
}

/* The final and the temporary manifest name of generation gen. */
static void manifest_names(st_db *db, uint64_t gen, char mpath[64], char tmp[64]) {
  if (db->cfg.manifest_kind == OCDBT_MANIFEST_NUMBERED) {
    snprintf(mpath, 64, "manifest.%016llx", (unsigned long long)gen);
    snprintf(tmp, 64, "tmp.manifest.%016llx", (unsigned long long)gen);
  } else {
    snprintf(mpath, 64, ST_MANIFEST);
    snprintf(tmp, 64, "tmp.manifest.ocdbt");
  }
}

int cm__mutation(st_db *db, st_writer *w, const gchange *c, st_mut *m) {
  const top *o = c->op;
  m->key = c->key;
  m->klen = c->klen;
  if (o->kind == OP_DELETE) {
    m->kind = MUT_DELETE;
  } else if (o->kind == OP_PUT_REF) {
    m->kind = MUT_INDIRECT;
    m->ref = (st_ref){c->ref_file, o->off, o->len};
  } else if (o->vlen <= db->cfg.max_inline_value_bytes) {
    m->kind = MUT_INLINE;
    m->value = o->val;
    m->vlen = o->vlen;
  } else {
    int rc = wr__append_value(w, o->val, o->vlen, &m->ref);
    if (rc) return rc;
    m->kind = MUT_INDIRECT;
  }
  return 0;
}

/* The B+tree mutations of the group's (sorted) changes, in *out (caller
 * frees, also on failure). */
static int group_mutations(st_db *db, st_writer *w, const group *g, st_mut **out) {
  st_mut *muts = *out = calloc(g->n ? g->n : 1, sizeof *muts);
  if (!muts) return strata_err(STRATA_ENOMEM, "commit");
  for (size_t i = 0; i < g->n; i++) {
    int rc = cm__mutation(db, w, &g->ch[i], &muts[i]);
    if (rc) return rc;
  }
  return 0;
}

/* Creates the temp manifest, replacing one a crashed commit left behind. */
static int create_fresh(st_db *db, const char *tmp, bs_file **mf) {
  int rc = bs_create(db->base, tmp, mf);
  if (rc == STRATA_EEXISTS && bs_remove(db->base, tmp) == 0) rc = bs_create(db->base, tmp, mf);
  return rc;
}

/* After the directory fsync that should publish mpath failed with rc: the
 * rename may or may not survive a crash. A numbered manifest is taken back
 * so that "failed" is the truth, but only once the removal is durable too.
 * If that is impossible (the removal or its directory fsync fails, or the
 * kind is single, whose rename replaced the old manifest), the state on disk
 * is unknown: the manifest may survive a crash, so its data file is kept
 * (returns 1: treat as published) and further commits are refused until
 * reopened. rc's message is kept as the current error. */
static int take_back_manifest(st_db *db, const char *mpath, int rc) {
  int published = 0;
  strata_err_saved why;
  strata_err_save(rc, &why);
  if (db->cfg.manifest_kind != OCDBT_MANIFEST_NUMBERED || bs_remove(db->base, mpath) != 0 ||
      bs_sync_dir(db->base, "") != 0) {
    strata_mutex_lock(&db->mu);
    db->broken = rc;
    strata_mutex_unlock(&db->mu);
    published = 1;
  }
  strata_err_restore(&why);
  return published;
}

/* Writes the group's values and tree into one data file and publishes the
 * manifest. On success, nv and nms are the new latest version and manifest. */
static int write_group(st_db *db, group *g, const st_vers *latest, st_vers *nv, st_mstate *nms,
                       gstats *st) {
  st_writer w;
  memset(&w, 0, sizeof w);
  w.db = db;
  st_mut *muts = NULL;
  strata_buf man = STRATA_BUF_INIT;
  char path[ST_DATA_PATH_MAX], mpath[64], tmp[64];
  int rc, published = 0, have_ms = 0, have_tmp = 0;
  bs_file *mf = NULL;
  uint64_t gen = latest->generation + 1;
  uint64_t t_start = cm__now_ns();
  df__path(path, gen);
  manifest_names(db, gen, mpath, tmp);

  /* 1. The data file: header, out-of-line values, B+tree nodes, version
   * nodes; pre-created by the preparer when it was quick enough. */
  int prepared = take_prepared(db, gen, path, tmp, &w.f, &mf);
  if (prepared) {
    have_tmp = 1;
  } else if ((rc = bs_create(db->base, path, &w.f))) {
    goto fail;
  }
  if ((rc = df__begin(db, &w, path))) goto fail;
  if (g->n) qsort(g->ch, g->n, sizeof *g->ch, cm__cmp_change);
  if ((rc = group_mutations(db, &w, g, &muts))) goto fail;
  nv->generation = gen;
  nv->commit_time = cm__commit_time(latest);
  if ((rc = bt__apply(db, &w, &latest->root, muts, g->n, &nv->root))) goto fail;
  if ((rc = vt__add(db, &w, &db->ms, nv, nms))) goto fail;
  have_ms = 1;

  /* 2. Write the temp manifest, then make the data file, its directory
   * entry and the temp manifest durable together: three fsyncs in parallel
   * (one journal commit on most filesystems), all before the rename. */
  if ((rc = wr__flush(&w))) goto fail;
  if ((rc = vt__encode_manifest(db, nms, &man))) goto fail;
  if (!prepared) {
    if ((rc = create_fresh(db, tmp, &mf))) goto fail;
    have_tmp = 1;
  }
  uint64_t t_sync = cm__now_ns();
  if ((rc = bs_append(mf, man.p, man.len)) || (rc = sync_all(db, w.f, !prepared, mf))) goto fail;
  uint64_t t_publish = cm__now_ns();
  bs_close(w.f);
  w.f = NULL;
  bs_close(mf);
  mf = NULL;

  /* 3. Publish: rename over the name readers look for, directory fsync. */
  if ((rc = bs_rename(db->base, tmp, mpath))) goto fail;
  have_tmp = 0;
  if ((rc = bs_sync_dir(db->base, ""))) {
    published = take_back_manifest(db, mpath, rc);
    goto fail;
  }
  /* the statistics are published with the new state (commit_group, under db->mu) */
  st->bytes_written = w.off + man.len;
  st->ns_build = t_sync - t_start;
  st->ns_sync = t_publish - t_sync;
  st->ns_publish = cm__now_ns() - t_publish;
  strata_buf_free(&man);
  strata_buf_free(&w.buf);
  free(muts);
  return 0;
fail: {
  strata_err_saved why;
  strata_err_save(rc, &why);
  if (w.f) bs_close(w.f);
  if (mf) bs_close(mf);
  if (have_tmp) bs_remove(db->base, tmp);
  if (!published) bs_remove(db->base, path); /* no orphan: never referenced */
  if (have_ms) mstate__free(nms);
  strata_buf_free(&man);
  strata_buf_free(&w.buf);
  free(muts);
  strata_err_restore(&why);
  return strata_err_wrap(rc, "commit of generation %llu", (unsigned long long)gen);
}
}

static void complete(st_txn *t) {
  strata_mutex_assert_not_held(&t->db->mu); /* store.h: no engine lock held */
  if (t->done) t->done(t->done_ctx, &t->res);
  st_txn_abort(t);
}

/* Why the next group is refused without being tried (0: it is not): the
 * database is broken, or the publisher is failing while the backlog is over
 * its bound. The latest version and the message to give are copied out
 * under db->mu. */
static int group_refusal(st_db *db, st_vers *latest, char *msg, size_t cap) {
  strata_mutex_lock(&db->mu);
  *latest = db->latest;
  int broken = db->broken;
  assert(cap >= sizeof db->broken_msg);
  memcpy(msg, db->broken_msg, sizeof db->broken_msg);
  if (!broken && db->log && db->pub_stall && db->backlog > db->max_backlog) {
    /* Refused, not failed: nothing is wrong with the store, and commits
     * resume once the publisher gets through. */
    broken = db->pub_stall;
    snprintf(msg, cap,
             "%.60s: %llu bytes of commits wait to be published and publishing them fails (%.180s); "
             "commits resume once it succeeds",
             db->path, (unsigned long long)db->backlog, db->pub_stall_msg);
  }
  strata_mutex_unlock(&db->mu);
  return broken;
}

static void refuse(st_db *db, st_txn *t, int broken, const char *msg) {
  t->res.rc = broken;
  if (msg[0]) snprintf(t->res.message, sizeof t->res.message, "%s", msg);
  else
    snprintf(t->res.message, sizeof t->res.message,
             "%s: an earlier commit failed in a way that left the manifest unknown; reopen the database",
             db->path);
}

/* Makes the committed group the latest state, with its statistics. */
static void install_group(st_db *db, const st_vers *nv, const st_mstate *nms, size_t accepted, const gstats *st) {
  strata_mutex_lock(&db->mu);
  mstate__free(&db->ms);
  db->ms = *nms;
  db->latest = *nv;
  db->commits += accepted;
  db->groups++;
  db->group_size[st__group_bucket(st_group_size_le, accepted)]++;
  db->group_bytes[st__group_bucket(st_group_bytes_le, st->bytes_written)]++;
  db->bytes_written += st->bytes_written;
  struct timespec mono;
  clock_gettime(CLOCK_MONOTONIC, &mono);
  __atomic_store_n(&db->last_group_ns, (uint64_t)mono.tv_sec * 1000000000ull + (uint64_t)mono.tv_nsec,
                   __ATOMIC_RELAXED);
  db->ns_build += st->ns_build;
  db->ns_sync += st->ns_sync;
  db->ns_publish += st->ns_publish;
  db->ns_tree_wait += st->ns_tree_wait;
  strata_mutex_unlock(&db->mu);
}

/* Per-group files mode, numbered manifests: keep the last ST_MANIFESTS_KEPT
 * for readers that listed them a while ago; older ones go, off the commit
 * path (the preparer) when there is one. */
static void drop_old_manifests(st_db *db, uint64_t gen) {
  strata_mutex_lock(&db->mu);
  db->mf_obsolete = gen - ST_MANIFESTS_KEPT;
  if (db->has_preparer) pthread_cond_signal(&db->prep_cv);
  strata_mutex_unlock(&db->mu);
  if (!db->has_preparer) cm__remove_manifests(db);
}

/* Commits the transactions of list as one group: refuse them all or
 * validate each (survivors join the group), write the group, install it,
 * then tell fences and callers. */
static void commit_group(st_db *db, st_txn *list) {
  group g;
  memset(&g, 0, sizeof g);
  g.db = db;
  st_vers latest;
  char broken_msg[sizeof db->broken_msg];
  int broken = group_refusal(db, &latest, broken_msg, sizeof broken_msg);
  size_t accepted = 0;
  for (st_txn *t = list; t; t = t->next) {
    if (broken) {
      refuse(db, t, broken, broken_msg);
      continue;
    }
    cm__validate(&g, t, &latest);
    accepted += t->accepted;
  }
  if (accepted) {
    st_vers nv;
    st_mstate nms;
    gstats st = {0, 0, 0, 0, 0};
    int rc = db->log ? lc__group(db, &g, &latest, &nv, &nms, &st) : write_group(db, &g, &latest, &nv, &nms, &st);
    if (!rc) install_group(db, &nv, &nms, accepted, &st);
    for (st_txn *t = list; t; t = t->next) {
      if (!t->accepted) continue;
      t->res.rc = rc;
      if (rc) {
        snprintf(t->res.message, sizeof t->res.message, "%s", strata_errmsg());
      } else {
        t->res.generation = nv.generation;
        t->res.commit_time = nv.commit_time;
      }
    }
    if (!rc && !db->log && db->cfg.manifest_kind == OCDBT_MANIFEST_NUMBERED && nv.generation > ST_MANIFESTS_KEPT)
      drop_old_manifests(db, nv.generation);
  }
  cm__group_free(&g);
  /* The group is decided and, if committed, visible (db->latest): fences
   * may let go of their rows. All before any completion, which may release
   * rows a later member's fence still holds. */
  for (st_txn *t = list; t; t = t->next)
    if (t->fence_passed && t->fence_done) t->fence_done(t->fence_ctx, t->accepted && t->res.rc == 0);
  while (list) {
    st_txn *next = list->next;
    complete(list);
    list = next;
  }
}

/* How long the committer waits for the callers it just completed to come
 * back before it starts a group smaller than the previous one. Without it,
 * N blocking committers split into two alternating half-size groups. */
#define LINGER_NS 300000
/* Commit log mode: a batch's data file takes no more commits past this size. */
#define BATCH_MAX_BYTES (64u << 20)

struct timespec cm__ts_of(uint64_t ns) {
  struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
  return ts;
}

/* Commit log mode, with db->mu held: waits while the unpublished backlog is
 * over its bound (backpressure), after handing the open batch over so that
 * the publisher can make progress. It does not wait on a publisher that is
 * retrying (a full disk): commit_group refuses the group instead. */
static void hold_back(st_db *db) {
  strata_mutex_assert_held(&db->mu);
  if (!db->log || db->backlog <= db->max_backlog) return;
  strata_mutex_unlock(&db->mu);
  lc__batch_close(db);
  strata_mutex_lock(&db->mu);
  while (db->backlog > db->max_backlog && !db->pub_err && !db->pub_stall && !db->closing)
    strata_cond_wait(&db->cv, &db->mu);
}

static void *committer(void *arg) {
  st_db *db = arg;
  pthread_setname_np(pthread_self(), "st-commit");
  size_t last = 0;
  strata_mutex_lock(&db->mu);
  for (;;) {
    while (!db->q_head && !db->closing) {
      uint64_t due = lc__batch_due(db);
      if (!due || db->pub_pending) { /* the publisher wakes us once it is done */
        strata_cond_wait(&db->cv, &db->mu);
        continue;
      }
      /* An open batch closes on time even when no commit comes. */
      struct timespec until = cm__ts_of(due);
      if (cm__now_ns() < due && strata_cond_timedwait(&db->cv, &db->mu, &until) == 0) continue;
      strata_mutex_unlock(&db->mu);
      lc__batch_close(db);
      strata_mutex_lock(&db->mu);
    }
    if (!db->q_head) break;
    hold_back(db);
    if (last > 1 && db->q_len < last && !db->closing) {
      struct timespec until = cm__ts_of(cm__now_ns() + LINGER_NS);
      db->linger_for = last;
      while (db->q_len < last && !db->closing)
        if (strata_cond_timedwait(&db->cv, &db->mu, &until)) break;
      db->linger_for = 0;
    }
    st_txn *list = db->q_head;
    last = db->q_len;
    db->q_head = db->q_tail = NULL;
    db->q_len = 0;
    strata_mutex_unlock(&db->mu);
    commit_group(db, list);
    /* A batch closes on time only while the publisher is idle: while it is
     * busy, commits gather into the open batch, so a disk slower than the
     * commit rate makes batches larger, not the queue longer (the queue is
     * what a close must publish). */
    strata_mutex_lock(&db->mu);
    int busy = db->pub_pending != 0;
    strata_mutex_unlock(&db->mu);
    uint64_t due = lc__batch_due(db);
    if (due && ((cm__now_ns() >= due && !busy) || db->batch->w.off >= BATCH_MAX_BYTES)) lc__batch_close(db);
    strata_mutex_lock(&db->mu);
  }
  strata_mutex_unlock(&db->mu);
  lc__batch_close(db); /* the publisher (stopped after this thread) publishes it */
  return NULL;
}

static void syncer_stop(st_db *db) {
  if (!db->has_syncer) return;
  strata_mutex_lock(&db->smu);
  db->s_state = SYNC_STOP; /* the committer has stopped: no job is posted */
  pthread_cond_broadcast(&db->scv);
  strata_mutex_unlock(&db->smu);
  pthread_join(db->syncer, NULL);
  db->has_syncer = 0;
}

int cm__start(st_db *db) {
  /* Started first, so the committer sees it. Without the helper the committer
   * does both fsyncs itself, one after the other. */
  db->has_syncer = pthread_create(&db->syncer, NULL, syncer_main, db) == 0;
  if (pthread_create(&db->committer, NULL, committer, db)) {
    syncer_stop(db);
    return strata_err(STRATA_EINTERNAL, "cannot start the committer thread");
  }
  db->has_committer = 1;
  if (db->log && pb__start(db)) {
    cm__stop(db);
    return strata_err(STRATA_EINTERNAL, "cannot start the publisher thread");
  }
  if (db->prepare) {
    if (pthread_create(&db->preparer, NULL, preparer, db) == 0) {
      db->has_preparer = 1;
      strata_mutex_lock(&db->mu);
      db->prep_want = db->latest.generation + 1;
      pthread_cond_signal(&db->prep_cv);
      strata_mutex_unlock(&db->mu);
    } else {
      db->prepare = 0;
    }
  }
  return 0;
}

void cm__stop(st_db *db) {
  strata_mutex_lock(&db->mu);
  db->closing = 1;
  pthread_cond_broadcast(&db->cv);
  pthread_cond_broadcast(&db->prep_cv);
  strata_mutex_unlock(&db->mu);
  if (db->has_committer) pthread_join(db->committer, NULL);
  db->has_committer = 0;
  pb__stop(db);
  if (db->has_preparer) pthread_join(db->preparer, NULL);
  db->has_preparer = 0;
  syncer_stop(db);
}
