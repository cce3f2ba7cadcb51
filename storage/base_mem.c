/*
 * The in-memory base store, for tests: a flat list of named byte arrays under
 * one mutex. Directories are implicit ("d/x" lives in "d").
 *
 * It also models what a power cut keeps, the strict way a local filesystem
 * without a journal may behave: a file's bytes are durable up to its last
 * fsync, and a directory's entries (creates, renames, removes) as they were at
 * its last directory fsync, nothing else. A reserved room (bs_reserve) is
 * durable zeros: appends into it since the last fsync come back as zeros.
 * bs_mem_cut_power_after(s, n) lets n more operations complete and then
 * fails every later one with STRATA_EIO
 * (the machine is off); bs_mem_power_on(s) then rebuilds the store from what
 * was durable, as a reboot would find it.
 *
 * Shared helpers over any base store (bs_read_all, bs_put_atomic) live here too.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/mutex.h"
#include "common/err.h"
#include "storage/base.h"

typedef struct mnode {
  char *path;
  uint8_t *p;
  size_t len, cap; /* len: the file's size, reserved room included */
  size_t wpos;     /* where appends go (len unless room is reserved); zeros after it */
  size_t synced;   /* size durable (fsynced) */
  size_t dwpos;    /* bytes durable (fsynced) as written; zeros from there to synced */
  int refs;       /* open handles + 1 while linked in the store + 1 per durable entry */
  struct mnode *next;
} mnode;

/* A directory entry as of its directory's last fsync. */
typedef struct dent {
  char *path;
  mnode *node;
  struct dent *next;
} dent;

typedef struct mstore {
  bs_store base;
  strata_mutex mu;
  mnode *head;
  dent *durable;
  long ops_left;  /* operations until the power goes off; < 0: never */
  long ops_done;  /* operations counted so far */
  int off;
  uint64_t quota; /* > 0: appends past this many bytes in all linked files fail (ENOSPC) */
} mstore;

/* Counts one operation against the power budget; STRATA_EIO once it is off.
 * Called with s->mu held. */
static int m_power(mstore *s, const char *what) {
  strata_mutex_assert_held(&s->mu);
  if (s->off) return strata_err(STRATA_EIO, "mem:%s: the power is off", what);
  if (s->ops_left > 0 && --s->ops_left == 0) s->off = 1; /* this one completes */
  s->ops_done++;
  return 0;
}

/* The directory part of a path ("" for the top). */
static size_t dir_len(const char *path) {
  const char *sl = strrchr(path, '/');
  return sl ? (size_t)(sl - path) : 0;
}

static int in_dir(const char *path, const char *dir) {
  size_t n = strlen(dir);
  return dir_len(path) == n && !strncmp(path, dir, n);
}

typedef struct mfile {
  bs_file base;
  mnode *node;
} mfile;

static mnode **m_find(mstore *s, const char *path) {
  mnode **pp = &s->head;
  while (*pp && strcmp((*pp)->path, path)) pp = &(*pp)->next;
  return pp;
}

static void m_unref(mnode *n) {
  if (--n->refs == 0) {
    free(n->path);
    free(n->p);
    free(n);
  }
}

static int m_handle(mstore *s, mnode *n, bs_file **out) {
  mfile *f = calloc(1, sizeof *f);
  if (!f) return strata_err(STRATA_ENOMEM, "memory store");
  f->base.store = &s->base;
  f->node = n;
  n->refs++;
  *out = &f->base;
  return 0;
}

static int m_open_read(bs_store *bs, const char *path, bs_file **out) {
  mstore *s = (mstore *)bs;
  strata_mutex_lock(&s->mu);
  mnode *n = *m_find(s, path);
  int rc = s->off ? strata_err(STRATA_EIO, "mem:%s: the power is off", path)
           : n    ? m_handle(s, n, out)
                  : strata_err(STRATA_ENOTFOUND, "mem:%s: no such file", path);
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_create(bs_store *bs, const char *path, bs_file **out) {
  mstore *s = (mstore *)bs;
  int rc = 0;
  strata_mutex_lock(&s->mu);
  if ((rc = m_power(s, path))) goto out;
  if (*m_find(s, path)) {
    rc = strata_err(STRATA_EEXISTS, "mem:%s: file exists", path);
    goto out;
  }
  mnode *n = calloc(1, sizeof *n);
  if (!n || !(n->path = strdup(path))) {
    free(n);
    rc = strata_err(STRATA_ENOMEM, "mem:%s", path);
    goto out;
  }
  n->refs = 1;
  n->next = s->head;
  s->head = n;
  rc = m_handle(s, n, out);
out:
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_pread(bs_file *bf, uint64_t off, void *dst, size_t n) {
  mstore *s = (mstore *)bf->store;
  mnode *nd = ((mfile *)bf)->node;
  int rc = 0;
  strata_mutex_lock(&s->mu);
  if (s->off)
    rc = strata_err(STRATA_EIO, "mem:%s: the power is off", nd->path);
  else if (off > nd->len || n > nd->len - off)
    rc = strata_err(STRATA_ERANGE, "mem:%s: file ends before offset %llu + %zu", nd->path,
                    (unsigned long long)off, n);
  else if (n)
    memcpy(dst, nd->p + off, n);
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_size(bs_file *bf, uint64_t *out) {
  mstore *s = (mstore *)bf->store;
  strata_mutex_lock(&s->mu);
  *out = ((mfile *)bf)->node->len;
  strata_mutex_unlock(&s->mu);
  return 0;
}

/* Bytes in the files linked in the store. Called with s->mu held. */
static uint64_t m_used(const mstore *s) {
  strata_mutex_assert_held(&s->mu);
  uint64_t u = 0;
  for (const mnode *n = s->head; n; n = n->next) u += n->len;
  return u;
}

/* Makes room for nd->p[0..need). Called with s->mu held. */
static int m_grow(mnode *nd, size_t need) {
  if (nd->cap >= need) return 0;
  size_t cap = nd->cap ? nd->cap : 4096;
  while (cap < need) cap *= 2;
  uint8_t *q = realloc(nd->p, cap);
  if (!q) return strata_err(STRATA_ENOMEM, "mem:%s: cannot grow to %zu bytes", nd->path, cap);
  nd->p = q;
  nd->cap = cap;
  return 0;
}

/* Writes n bytes at the append position of nd: p's, moving the position,
 * or (room) zeros, leaving it. Called with s->mu held. */
static int m_write(mstore *s, mnode *nd, const void *p, size_t n, int room) {
  int rc;
  if ((rc = m_power(s, nd->path))) return rc;
  size_t end = nd->wpos + n, grow = end > nd->len ? end - nd->len : 0;
  if (s->quota && m_used(s) + grow > s->quota)
    return strata_err(ENOSPC, "mem:%s: no space left (quota %llu bytes)", nd->path, (unsigned long long)s->quota);
  if ((rc = m_grow(nd, end))) return rc;
  if (n && room) memset(nd->p + nd->wpos, 0, n);
  else if (n) memcpy(nd->p + nd->wpos, p, n);
  if (end > nd->len) nd->len = end;
  if (!room) nd->wpos = end;
  return 0;
}

static int m_append(bs_file *bf, const void *p, size_t n) {
  mstore *s = (mstore *)bf->store;
  strata_mutex_lock(&s->mu);
  int rc = m_write(s, ((mfile *)bf)->node, p, n, 0);
  strata_mutex_unlock(&s->mu);
  return rc;
}

/* The room's zeros and everything appended so far become durable: the
 * reservation includes an fsync (as the file store's does). */
static int m_reserve(bs_file *bf, uint64_t n) {
  mstore *s = (mstore *)bf->store;
  mnode *nd = ((mfile *)bf)->node;
  strata_mutex_lock(&s->mu);
  int rc = n > SIZE_MAX / 2 ? strata_err(STRATA_ENOMEM, "mem:%s: room of %llu bytes", nd->path, (unsigned long long)n)
                            : m_write(s, nd, NULL, (size_t)n, 1);
  if (!rc) {
    nd->synced = nd->len;
    nd->dwpos = nd->wpos;
  }
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_fsync(bs_file *bf) {
  mstore *s = (mstore *)bf->store;
  mnode *nd = ((mfile *)bf)->node;
  strata_mutex_lock(&s->mu);
  int rc = m_power(s, nd->path);
  if (!rc) {
    nd->synced = nd->len;
    nd->dwpos = nd->wpos;
  }
  strata_mutex_unlock(&s->mu);
  return rc;
}

/* The durable prefix shrinks at once: the model errs towards losing the cut
 * bytes, which only ever held records being taken back. */
static int m_truncate(bs_file *bf, uint64_t len) {
  mstore *s = (mstore *)bf->store;
  mnode *nd = ((mfile *)bf)->node;
  strata_mutex_lock(&s->mu);
  int rc = m_power(s, nd->path);
  if (!rc && len < nd->len) nd->len = (size_t)len;
  if (!rc) nd->wpos = nd->len;
  if (!rc && len < nd->synced) nd->synced = (size_t)len;
  if (!rc && len < nd->dwpos) nd->dwpos = (size_t)len;
  strata_mutex_unlock(&s->mu);
  return rc;
}

static void m_close(bs_file *bf) {
  mstore *s = (mstore *)bf->store;
  strata_mutex_lock(&s->mu);
  m_unref(((mfile *)bf)->node);
  strata_mutex_unlock(&s->mu);
  free(bf);
}

static int m_rename(bs_store *bs, const char *from, const char *to) {
  mstore *s = (mstore *)bs;
  int rc = 0;
  strata_mutex_lock(&s->mu);
  if ((rc = m_power(s, from))) goto out;
  mnode **pf = m_find(s, from);
  if (!*pf) {
    rc = strata_err(STRATA_ENOTFOUND, "mem:%s: cannot rename, no such file", from);
    goto out;
  }
  char *np = strdup(to);
  if (!np) {
    rc = strata_err(STRATA_ENOMEM, "mem rename");
    goto out;
  }
  mnode *n = *pf;
  *pf = n->next;
  mnode **pt = m_find(s, to);
  if (*pt) {
    mnode *old = *pt;
    *pt = old->next;
    m_unref(old);
  }
  free(n->path);
  n->path = np;
  n->next = s->head;
  s->head = n;
out:
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_sync_dir(bs_store *bs, const char *dir) {
  mstore *s = (mstore *)bs;
  const char *d = dir ? dir : "";
  strata_mutex_lock(&s->mu);
  int rc = m_power(s, d);
  if (rc) goto out;
  /* The directory's durable entries become its current ones. */
  for (dent **pp = &s->durable; *pp;) {
    dent *e = *pp;
    if (!in_dir(e->path, d)) {
      pp = &e->next;
      continue;
    }
    *pp = e->next;
    m_unref(e->node);
    free(e->path);
    free(e);
  }
  for (mnode *n = s->head; n; n = n->next) {
    if (!in_dir(n->path, d)) continue;
    dent *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(n->path))) {
      free(e);
      rc = strata_err(STRATA_ENOMEM, "mem sync_dir");
      goto out;
    }
    e->node = n;
    n->refs++;
    e->next = s->durable;
    s->durable = e;
  }
out:
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_remove(bs_store *bs, const char *path) {
  mstore *s = (mstore *)bs;
  int rc = 0;
  strata_mutex_lock(&s->mu);
  mnode **pp = m_find(s, path);
  if ((rc = m_power(s, path))) goto out;
  if (!*pp) {
    rc = strata_err(STRATA_ENOTFOUND, "mem:%s: cannot remove, no such file", path);
  } else {
    mnode *n = *pp;
    *pp = n->next;
    m_unref(n);
  }
out:
  strata_mutex_unlock(&s->mu);
  return rc;
}

static int m_mkdir(bs_store *bs, const char *dir) { return 0; }

static int m_list(bs_store *bs, const char *dir, char ***names, size_t *count) {
  mstore *s = (mstore *)bs;
  size_t dl = dir ? strlen(dir) : 0, cnt = 0, bytes = 0;
  strata_mutex_lock(&s->mu);
  if (s->off) {
    strata_mutex_unlock(&s->mu);
    return strata_err(STRATA_EIO, "mem:%s: the power is off", dir ? dir : "");
  }
  for (int pass = 0; pass < 2; pass++) {
    char **arr = pass ? malloc((cnt + 1) * sizeof(char *) + bytes) : NULL;
    if (pass && !arr) {
      strata_mutex_unlock(&s->mu);
      return strata_err(STRATA_ENOMEM, "mem list");
    }
    char *str = pass ? (char *)(arr + cnt + 1) : NULL;
    size_t i = 0;
    for (mnode *n = s->head; n; n = n->next) {
      const char *name = n->path;
      if (dl) {
        if (strncmp(name, dir, dl) || name[dl] != '/') continue;
        name += dl + 1;
      }
      if (strchr(name, '/')) continue;
      size_t l = strlen(name) + 1;
      if (!pass) {
        cnt++;
        bytes += l;
      } else {
        memcpy(str, name, l);
        arr[i++] = str;
        str += l;
      }
    }
    if (pass) {
      arr[i] = NULL;
      *names = arr;
      *count = i;
    }
  }
  strata_mutex_unlock(&s->mu);
  return 0;
}

static int m_lock(bs_store *bs) { return 0; }

static void drop_durable(mstore *s) {
  while (s->durable) {
    dent *e = s->durable;
    s->durable = e->next;
    m_unref(e->node);
    free(e->path);
    free(e);
  }
}

static void m_destroy(bs_store *bs) {
  mstore *s = (mstore *)bs;
  drop_durable(s);
  while (s->head) {
    mnode *n = s->head;
    s->head = n->next;
    m_unref(n);
  }
  strata_mutex_destroy(&s->mu);
  free(s);
}

static const bs_ops mem_ops = {
  m_open_read, m_pread, m_size, m_create, m_append, m_fsync, m_truncate, m_close,
  m_rename, m_sync_dir, m_remove, m_mkdir, m_list, m_lock, m_destroy, m_reserve, NULL,
};

int bs_mem_create(bs_store **out) {
  mstore *s = calloc(1, sizeof *s);
  if (!s) return strata_err(STRATA_ENOMEM, "memory store");
  s->base.ops = &mem_ops;
  s->ops_left = -1;
  strata_mutex_init(&s->mu);
  *out = &s->base;
  return 0;
}

void bs_mem_cut_power_after(bs_store *bs, long n) {
  mstore *s = (mstore *)bs;
  strata_mutex_lock(&s->mu);
  s->ops_left = n;
  s->off = n == 0;
  strata_mutex_unlock(&s->mu);
}

void bs_mem_set_quota(bs_store *bs, uint64_t bytes) {
  mstore *s = (mstore *)bs;
  strata_mutex_lock(&s->mu);
  s->quota = bytes;
  strata_mutex_unlock(&s->mu);
}

uint64_t bs_mem_used(bs_store *bs) {
  mstore *s = (mstore *)bs;
  strata_mutex_lock(&s->mu);
  uint64_t u = m_used(s);
  strata_mutex_unlock(&s->mu);
  return u;
}

long bs_mem_ops(bs_store *bs) {
  mstore *s = (mstore *)bs;
  strata_mutex_lock(&s->mu);
  long n = s->ops_done;
  strata_mutex_unlock(&s->mu);
  return n;
}

int bs_mem_power_on(bs_store *bs) {
  mstore *s = (mstore *)bs;
  int rc = 0;
  strata_mutex_lock(&s->mu);
  /* Every file keeps what was fsynced; the namespace is the durable one. */
  while (s->head) {
    mnode *n = s->head;
    s->head = n->next;
    m_unref(n);
  }
  for (dent *e = s->durable; e; e = e->next) {
    mnode *n = calloc(1, sizeof *n);
    if (!n || !(n->path = strdup(e->path)) || !(n->p = malloc(e->node->synced ? e->node->synced : 1))) {
      if (n) free(n->path);
      free(n);
      rc = strata_err(STRATA_ENOMEM, "mem power on");
      break;
    }
    /* A fresh copy: a file renamed under two durable names is two files now,
     * which no test relies on, and no handle from before survives. */
    const mnode *o = e->node;
    if (o->dwpos) memcpy(n->p, o->p, o->dwpos);
    if (o->synced > o->dwpos) memset(n->p + o->dwpos, 0, o->synced - o->dwpos);
    n->len = n->cap = n->synced = n->wpos = n->dwpos = o->synced;
    n->refs = 1;
    n->next = s->head;
    s->head = n;
  }
  drop_durable(s);
  /* What the reboot found is durable as it is. */
  for (mnode *n = s->head; n && !rc; n = n->next) {
    dent *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(n->path))) {
      free(e);
      rc = strata_err(STRATA_ENOMEM, "mem power on");
      break;
    }
    e->node = n;
    n->refs++;
    e->next = s->durable;
    s->durable = e;
  }
  s->ops_left = -1;
  s->off = 0;
  strata_mutex_unlock(&s->mu);
  return rc;
}

/* --- helpers over any store ----------------------------------------------- */

int bs_read_all(bs_store *s, const char *path, uint8_t **p, size_t *n) {
  bs_file *f = NULL;
  uint8_t *buf = NULL;
  uint64_t size = 0;
  int rc = bs_open_read(s, path, &f);
  if (rc) return rc;
  if ((rc = bs_size(f, &size))) goto out;
  buf = malloc(size ? size : 1);
  if (!buf) {
    rc = strata_err(STRATA_ENOMEM, "reading %s (%llu bytes)", path, (unsigned long long)size);
    goto out;
  }
  if ((rc = bs_pread(f, 0, buf, size))) goto out;
  *p = buf;
  *n = size;
  buf = NULL;
out:
  free(buf);
  bs_close(f);
  return rc;
}

int bs_put_atomic(bs_store *s, const char *dir, const char *tmp, const char *path,
                  const void *p, size_t n) {
  bs_file *f = NULL;
  int rc = bs_create(s, tmp, &f);
  if (rc == STRATA_EEXISTS) {
    /* A temp file left by a crash: it was never published, so drop it. */
    bs_remove(s, tmp);
    rc = bs_create(s, tmp, &f);
  }
  if (rc) return rc;
  if ((rc = bs_append(f, p, n)) || (rc = bs_fsync(f))) goto fail;
  bs_close(f);
  f = NULL;
  /* Whether path exists already decides what a failed directory fsync can
   * take back (below). */
  bs_file *old = NULL;
  int existed = bs_open_read(s, path, &old) != STRATA_ENOTFOUND;
  bs_close(old);
  if ((rc = bs_rename(s, tmp, path))) goto fail;
  if ((rc = bs_sync_dir(s, dir))) {
    /* The rename may or may not survive a crash. A new path is taken back
     * so that the caller's "failed" is the truth; a replaced one cannot be
     * (the old content is gone), so it is left with the new content rather
     * than removed. */
    strata_err_saved why;
    strata_err_save(rc, &why);
    if (!existed && bs_remove(s, path) == 0) bs_sync_dir(s, dir);
    return strata_err_restore(&why);
  }
  return 0;
fail: {
  strata_err_saved why;
  strata_err_save(rc, &why);
  bs_close(f);
  bs_remove(s, tmp);
  return strata_err_restore(&why);
}
}
