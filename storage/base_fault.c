/*
 * The fault-injecting base store: forwards every call to an inner store and
 * fails the Nth write (append), fsync (file or directory), rename or truncate with the
 * armed errno, so tests can fail each durability site of a commit in turn.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/mutex.h"
#include "common/err.h"
#include "storage/base.h"

typedef struct xstore {
  bs_store base;
  bs_store *inner;
  strata_mutex mu;
  uint64_t count[BS_FAULT_NSITES];
  uint64_t fire_at[BS_FAULT_NSITES]; /* absolute count that fails; 0 = never */
  int err[BS_FAULT_NSITES];
  uint32_t delay_us[BS_FAULT_NSITES]; /* slept before every operation at the site */
  uint64_t fired;
} xstore;

typedef struct xfile {
  bs_file base;
  bs_file *inner;
} xfile;

static const char *site_name[BS_FAULT_NSITES] = {"write", "fsync", "rename", "truncate"};

/* Counts one operation at site; returns the injected error or 0. */
static int x_tick(xstore *s, enum bs_fault_site site, const char *path) {
  int e = 0;
  strata_mutex_lock(&s->mu);
  uint32_t delay = s->delay_us[site];
  s->count[site]++;
  if (s->fire_at[site] && s->count[site] == s->fire_at[site]) {
    e = s->err[site];
    s->fire_at[site] = 0;
    s->fired++;
  }
  strata_mutex_unlock(&s->mu);
  if (delay) {
    struct timespec ts = {(time_t)(delay / 1000000), (long)(delay % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }
  if (e)
    return strata_err(e, "injected %s failure on %s: %s", site_name[site], path, strerror(e));
  return 0;
}

static int x_wrap(xstore *s, bs_file *inner, bs_file **out) {
  xfile *f = calloc(1, sizeof *f);
  if (!f) {
    bs_close(inner);
    return strata_err(STRATA_ENOMEM, "fault store");
  }
  f->base.store = &s->base;
  f->inner = inner;
  *out = &f->base;
  return 0;
}

static int x_open_read(bs_store *bs, const char *path, bs_file **out) {
  xstore *s = (xstore *)bs;
  bs_file *in = NULL;
  int rc = bs_open_read(s->inner, path, &in);
  return rc ? rc : x_wrap(s, in, out);
}

static int x_create(bs_store *bs, const char *path, bs_file **out) {
  xstore *s = (xstore *)bs;
  bs_file *in = NULL;
  int rc = bs_create(s->inner, path, &in);
  return rc ? rc : x_wrap(s, in, out);
}

static int x_pread(bs_file *f, uint64_t off, void *dst, size_t n) {
  return bs_pread(((xfile *)f)->inner, off, dst, n);
}
static int x_size(bs_file *f, uint64_t *out) { return bs_size(((xfile *)f)->inner, out); }

static int x_append(bs_file *f, const void *p, size_t n) {
  int rc = x_tick((xstore *)f->store, BS_FAULT_WRITE, "a data or manifest file");
  return rc ? rc : bs_append(((xfile *)f)->inner, p, n);
}

static int x_fsync(bs_file *f) {
  int rc = x_tick((xstore *)f->store, BS_FAULT_FSYNC, "a file");
  return rc ? rc : bs_fsync(((xfile *)f)->inner);
}

static int x_reserve(bs_file *f, uint64_t n) {
  int rc = x_tick((xstore *)f->store, BS_FAULT_WRITE, "a file's reserved room");
  return rc ? rc : bs_reserve(((xfile *)f)->inner, n);
}

static void x_drop_cache(bs_file *f, uint64_t off, uint64_t n) { bs_drop_cache(((xfile *)f)->inner, off, n); }

static int x_truncate(bs_file *f, uint64_t len) {
  int rc = x_tick((xstore *)f->store, BS_FAULT_TRUNCATE, "a file");
  return rc ? rc : bs_truncate(((xfile *)f)->inner, len);
}

static void x_close(bs_file *f) {
  bs_close(((xfile *)f)->inner);
  free(f);
}

static int x_rename(bs_store *bs, const char *from, const char *to) {
  xstore *s = (xstore *)bs;
  int rc = x_tick(s, BS_FAULT_RENAME, to);
  return rc ? rc : bs_rename(s->inner, from, to);
}

static int x_sync_dir(bs_store *bs, const char *dir) {
  xstore *s = (xstore *)bs;
  int rc = x_tick(s, BS_FAULT_FSYNC, *dir ? dir : "the database directory");
  return rc ? rc : bs_sync_dir(s->inner, dir);
}

static int x_remove(bs_store *bs, const char *path) { return bs_remove(((xstore *)bs)->inner, path); }
static int x_mkdir(bs_store *bs, const char *dir) { return bs_mkdir(((xstore *)bs)->inner, dir); }
static int x_list(bs_store *bs, const char *dir, char ***names, size_t *n) {
  return bs_list(((xstore *)bs)->inner, dir, names, n);
}

static int x_lock(bs_store *bs) { return bs_lock(((xstore *)bs)->inner); }

static void x_destroy(bs_store *bs) {
  xstore *s = (xstore *)bs;
  strata_mutex_destroy(&s->mu);
  free(s);
}

static const bs_ops fault_ops = {
  x_open_read, x_pread, x_size, x_create, x_append, x_fsync, x_truncate, x_close,
  x_rename, x_sync_dir, x_remove, x_mkdir, x_list, x_lock, x_destroy, x_reserve, x_drop_cache,
};

int bs_fault_wrap(bs_store *inner, bs_store **out) {
  xstore *s = calloc(1, sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "fault store");
  s->base.ops = &fault_ops;
  s->inner = inner;
  strata_mutex_init(&s->mu);
  *out = &s->base;
  return 0;
}

void bs_fault_arm(bs_store *bs, enum bs_fault_site site, uint64_t nth, int err) {
  xstore *s = (xstore *)bs;
  strata_mutex_lock(&s->mu);
  s->fire_at[site] = nth ? s->count[site] + nth : 0;
  s->err[site] = err;
  strata_mutex_unlock(&s->mu);
}

void bs_fault_delay(bs_store *bs, enum bs_fault_site site, uint32_t us) {
  xstore *s = (xstore *)bs;
  strata_mutex_lock(&s->mu);
  s->delay_us[site] = us;
  strata_mutex_unlock(&s->mu);
}

uint64_t bs_fault_count(bs_store *bs, enum bs_fault_site site) {
  xstore *s = (xstore *)bs;
  strata_mutex_lock(&s->mu);
  uint64_t c = s->count[site];
  strata_mutex_unlock(&s->mu);
  return c;
}

uint64_t bs_fault_fired(bs_store *bs) {
  xstore *s = (xstore *)bs;
  strata_mutex_lock(&s->mu);
  uint64_t c = s->fired;
  strata_mutex_unlock(&s->mu);
  return c;
}
