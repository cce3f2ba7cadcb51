/*
 * The file base store: paths are resolved relative to one directory opened
 * once (openat), files are created with O_EXCL, published with rename(2), and
 * made durable with fdatasync(2) on the file (its bytes and size, which is
 * all a reader needs; not its times) and fsync(2) on its directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "storage/base.h"

typedef struct fstore {
  bs_store base;
  int dirfd;
  int lockfd; /* BS_LOCK_FILE, once locked; -1 before */
  char *root;
} fstore;

typedef struct ffile {
  bs_file base;
  int fd;
  char *path;
} ffile;

static int errno_rc(int e, const char *what, const fstore *s, const char *path) {
  int rc = e;
  if (e == ENOENT) rc = STRATA_ENOTFOUND;
  else if (e == EEXIST) rc = STRATA_EEXISTS;
  return strata_err(rc, "%s %s/%s: %s", what, s->root, path, strerror(e));
}

static int f_open_common(bs_store *bs, const char *path, int flags, bs_file **out) {
  fstore *s = (fstore *)bs;
  int fd = openat(s->dirfd, path, flags | O_CLOEXEC, 0644);
  if (fd < 0)
    return errno_rc(errno, (flags & O_CREAT) ? "cannot create" : "cannot open", s, path);
  ffile *f = calloc(1, sizeof *f);
  char *dup = strdup(path);
  if (!f || !dup) {
    close(fd);
    free(f);
    free(dup);
    return strata_err(STRATA_ENOMEM, "open %s", path);
  }
  f->base.store = bs;
  f->fd = fd;
  f->path = dup;
  *out = &f->base;
  return 0;
}

static int f_open_read(bs_store *bs, const char *path, bs_file **out) {
  return f_open_common(bs, path, O_RDONLY, out);
}

static int f_create(bs_store *bs, const char *path, bs_file **out) {
  return f_open_common(bs, path, O_WRONLY | O_CREAT | O_EXCL, out);
}

static int f_pread(bs_file *bf, uint64_t off, void *dst, size_t n) {
  ffile *f = (ffile *)bf;
  uint8_t *p = dst;
  while (n) {
    ssize_t r = pread(f->fd, p, n > (1u << 30) ? (1u << 30) : n, (off_t)off);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_rc(errno, "cannot read", (fstore *)bf->store, f->path);
    }
    if (r == 0)
      return strata_err(STRATA_ERANGE, "%s/%s: file ends before offset %llu (%zu bytes missing)",
                        ((fstore *)bf->store)->root, f->path, (unsigned long long)off, n);
    p += r;
    n -= (size_t)r;
    off += (uint64_t)r;
  }
  return 0;
}

static int f_size(bs_file *bf, uint64_t *out) {
  ffile *f = (ffile *)bf;
  struct stat st;
  if (fstat(f->fd, &st) < 0) return errno_rc(errno, "cannot stat", (fstore *)bf->store, f->path);
  *out = (uint64_t)st.st_size;
  return 0;
}

static int f_append(bs_file *bf, const void *buf, size_t n) {
  ffile *f = (ffile *)bf;
  const uint8_t *p = buf;
  while (n) {
    ssize_t r = write(f->fd, p, n > (1u << 30) ? (1u << 30) : n);
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno_rc(errno, "cannot write", (fstore *)bf->store, f->path);
    }
    p += r;
    n -= (size_t)r;
  }
  return 0;
}

static int f_fsync(bs_file *bf) {
  ffile *f = (ffile *)bf;
  if (fdatasync(f->fd) < 0) return errno_rc(errno, "cannot fsync", (fstore *)bf->store, f->path);
  return 0;
}

static void f_drop_cache(bs_file *bf, uint64_t off, uint64_t n) {
  (void)posix_fadvise(((ffile *)bf)->fd, (off_t)off, (off_t)n, POSIX_FADV_DONTNEED);
}

static int f_reserve(bs_file *bf, uint64_t n) {
  static const uint8_t zeros[64 << 10];
  ffile *f = (ffile *)bf;
  off_t pos = lseek(f->fd, 0, SEEK_CUR);
  if (pos < 0) return errno_rc(errno, "cannot reserve room in", (fstore *)bf->store, f->path);
  /* pwrite leaves the position (where appends go) where it is. */
  for (uint64_t done = 0; done < n;) {
    size_t k = n - done < sizeof zeros ? (size_t)(n - done) : sizeof zeros;
    ssize_t r = pwrite(f->fd, zeros, k, pos + (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_rc(errno, "cannot reserve room in", (fstore *)bf->store, f->path);
    done += (uint64_t)r;
  }
  return f_fsync(bf);
}

static int f_truncate(bs_file *bf, uint64_t len) {
  ffile *f = (ffile *)bf;
  if (ftruncate(f->fd, (off_t)len) < 0 || lseek(f->fd, (off_t)len, SEEK_SET) < 0)
    return errno_rc(errno, "cannot truncate", (fstore *)bf->store, f->path);
  return 0;
}

static void f_close(bs_file *bf) {
  ffile *f = (ffile *)bf;
  close(f->fd);
  free(f->path);
  free(f);
}

static int f_rename(bs_store *bs, const char *from, const char *to) {
  fstore *s = (fstore *)bs;
  if (renameat(s->dirfd, from, s->dirfd, to) < 0) return errno_rc(errno, "cannot rename", s, from);
  return 0;
}

static int f_sync_dir(bs_store *bs, const char *dir) {
  fstore *s = (fstore *)bs;
  int fd = openat(s->dirfd, dir && *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_rc(errno, "cannot open directory", s, dir);
  int rc = 0;
  if (fsync(fd) < 0) rc = errno_rc(errno, "cannot fsync directory", s, dir);
  close(fd);
  return rc;
}

static int f_remove(bs_store *bs, const char *path) {
  fstore *s = (fstore *)bs;
  if (unlinkat(s->dirfd, path, 0) < 0) return errno_rc(errno, "cannot remove", s, path);
  return 0;
}

static int f_mkdir(bs_store *bs, const char *dir) {
  fstore *s = (fstore *)bs;
  if (mkdirat(s->dirfd, dir, 0755) < 0 && errno != EEXIST)
    return errno_rc(errno, "cannot create directory", s, dir);
  return 0;
}

static int f_list(bs_store *bs, const char *dir, char ***names, size_t *n) {
  fstore *s = (fstore *)bs;
  int fd = openat(s->dirfd, dir && *dir ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno_rc(errno, "cannot open directory", s, dir);
  DIR *d = fdopendir(fd);
  if (!d) {
    close(fd);
    return errno_rc(errno, "cannot list directory", s, dir);
  }
  /* One pass, names copied as they come: the directory may change while it
   * is read (the publisher creates manifests while GC lists the top), so a
   * count and sizes from an earlier pass are no bound for a later one. */
  size_t cnt = 0, used = 0, bcap = 0, ocap = 0, *off = NULL;
  char *buf = NULL;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.' && (!e->d_name[1] || (e->d_name[1] == '.' && !e->d_name[2]))) continue;
    size_t l = strlen(e->d_name) + 1;
    if (strata_grow(&buf, &bcap, used + l, 1, 4096) || strata_grow(&off, &ocap, cnt + 1, sizeof *off, 64)) {
      rc = strata_err(STRATA_ENOMEM, "listing %s", dir);
      break;
    }
    memcpy(buf + used, e->d_name, l);
    off[cnt++] = used;
    used += l;
  }
  closedir(d);
  char **arr = rc ? NULL : malloc((cnt + 1) * sizeof(char *) + used);
  if (!rc && !arr) rc = strata_err(STRATA_ENOMEM, "listing %s", dir);
  if (!rc) {
    char *str = (char *)(arr + cnt + 1);
    if (used) memcpy(str, buf, used);
    for (size_t i = 0; i < cnt; i++) arr[i] = str + off[i];
    arr[cnt] = NULL;
    *names = arr;
    *n = cnt;
  }
  free(buf);
  free(off);
  return rc;
}

/* The writer lock: flock on a file in the directory. Not on the directory
 * itself (as until 2026-12-07): a shared file system's client (GlusterFS's
 * FUSE client, measured in tests/gluster) keeps a directory's flock to its own
 * mount, while a regular file's is seen by every client, so a second server
 * on another machine's mount of the same store is refused too. */
static int f_lock(bs_store *bs) {
  fstore *s = (fstore *)bs;
  if (s->lockfd >= 0) return 0;
  int fd = openat(s->dirfd, BS_LOCK_FILE, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return errno_rc(errno, "cannot create the writer lock", s, BS_LOCK_FILE);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int e = errno;
    close(fd);
    return strata_err(e == EWOULDBLOCK ? STRATA_EBUSY : e,
                      "%s: the database is open for writing by another process (it holds %s/%s)", s->root,
                      s->root, BS_LOCK_FILE);
  }
  s->lockfd = fd;
  return 0;
}

static void f_destroy(bs_store *bs) {
  fstore *s = (fstore *)bs;
  if (s->lockfd >= 0) close(s->lockfd); /* releases the flock */
  close(s->dirfd);
  free(s->root);
  free(s);
}

static const bs_ops file_ops = {
  f_open_read, f_pread, f_size, f_create, f_append, f_fsync, f_truncate, f_close,
  f_rename, f_sync_dir, f_remove, f_mkdir, f_list, f_lock, f_destroy, f_reserve, f_drop_cache,
};

int bs_file_open(const char *root, bs_store **out) {
  if (mkdir(root, 0755) < 0 && errno != EEXIST)
    return strata_err(errno, "cannot create directory %s: %s", root, strerror(errno));
  int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return strata_err(errno == ENOTDIR ? STRATA_EINVALID : errno,
                                "cannot open directory %s: %s", root, strerror(errno));
  fstore *s = calloc(1, sizeof *s);
  if (!s || !(s->root = strdup(root))) {
    free(s);
    close(fd);
    return strata_err(STRATA_ENOMEM, "opening %s", root);
  }
  s->base.ops = &file_ops;
  s->dirfd = fd;
  s->lockfd = -1;
  *out = &s->base;
  return 0;
}
