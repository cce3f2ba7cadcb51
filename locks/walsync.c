/*
 * The lock table's group sync of RocksDB's WAL, done with our own file
 * descriptors (README "Durability order").
 *
 * Lock batches are written with sync=false: RocksDB appends each one to the
 * current WAL file with write(2) before rocksdb_write returns. Making them
 * durable is then an fdatasync of that file's inode, which any descriptor of
 * the file does. We open the WAL files ourselves instead of calling
 * rocksdb_flush_wal because RocksDB 7.8 asserts in flush_wal once an append
 * has failed on another thread, so flush_wal could only run with every writer
 * shut out: each fsync then stalled every lock write in the server.
 *
 * Which files: every `NNNNNN.log` in the database directory (RocksDB's WAL
 * naming; this database sets no wal_dir, recycles no log files and archives
 * none). A batch numbered before the leader read write_seq was in a WAL file
 * when the leader lists the directory afterwards, or that file was already
 * obsolete, which RocksDB decides only after the memtable holding its batches
 * is flushed to a synced SST and the MANIFEST says so. A file seen for the
 * first time gets a directory fsync too: RocksDB creates a WAL file without
 * one. Descriptors stay open from one sync to the next, so a writeback error
 * in between is reported to us (Linux reports it on each open description).
 *
 * Only the sync leader (lk->syncing set) calls lk__wal_sync, so the file table
 * needs no lock of its own.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/err.h"
#include "common/buf.h"
#include "locks/lk_int.h"

/* 1 when `name` is a WAL file name ("000012.log"); its number in *num. */
static int wal_name(const char *name, uint64_t *num) {
  uint64_t n = 0;
  size_t i = 0;
  for (; name[i] >= '0' && name[i] <= '9'; i++) n = n * 10 + (uint64_t)(name[i] - '0');
  if (i == 0 || strcmp(name + i, ".log") != 0) return 0;
  *num = n;
  return 1;
}

static lk__wal_file *find(lk__wal_set *w, uint64_t num) {
  for (size_t i = 0; i < w->n; i++)
    if (w->f[i].num == num) return &w->f[i];
  return NULL;
}

/* Brings the table in step with the directory: opens new WAL files (*fresh set
 * when there was one), closes those RocksDB has removed. */
static int rescan(lk__wal_set *w, const char *path, int *fresh) {
  DIR *d = opendir(path);
  if (!d) return strata_err(STRATA_EIO, "locks db %s: listing the WAL files: %s", path, strerror(errno));
  for (size_t i = 0; i < w->n; i++) w->f[i].seen = 0;
  int rc = 0;
  struct dirent *e;
  while (!rc && (e = readdir(d))) {
    uint64_t num;
    if (!wal_name(e->d_name, &num)) continue;
    lk__wal_file *f = find(w, num);
    if (f) {
      f->seen = 1;
      continue;
    }
    int fd = openat(dirfd(d), e->d_name, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) continue; /* removed since the listing: obsolete */
      rc = strata_err(STRATA_EIO, "locks db %s: opening WAL file %s: %s", path, e->d_name,
                      strerror(errno));
      break;
    }
    if ((rc = strata_grow(&w->f, &w->cap, w->n + 1, sizeof *w->f, 4))) {
      close(fd);
      break;
    }
    w->f[w->n++] = (lk__wal_file){num, fd, 1};
    *fresh = 1;
  }
  closedir(d);
  size_t k = 0;
  for (size_t i = 0; i < w->n; i++) {
    if (w->f[i].seen) w->f[k++] = w->f[i];
    else close(w->f[i].fd);
  }
  w->n = k;
  return rc;
}

int lk__wal_sync(lk_manager *lk) {
  lk__wal_set *w = &lk->wal;
  int fresh = 0;
  int rc = rescan(w, lk->path, &fresh);
  if (rc) return rc;
  if (w->n == 0) return strata_err(STRATA_EIO, "locks db %s: no WAL file to sync", lk->path);
  for (size_t i = 0; i < w->n; i++) {
    if (lk->wal_sync_hook) lk->wal_sync_hook(lk->wal_sync_ctx, w->f[i].num);
    if (fdatasync(w->f[i].fd) != 0) {
      int e = errno;
      return strata_err(e == ENOSPC ? ENOSPC : STRATA_EIO, "locks db %s: fdatasync of WAL file %06llu.log: %s",
                        lk->path, (unsigned long long)w->f[i].num, strerror(e));
    }
  }
  if (fresh) {
    int dfd = open(lk->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
      int e = errno;
      if (dfd >= 0) close(dfd);
      /* The new file may be unreachable after a crash: forget every file, so
       * the next call finds them new and syncs the directory again. */
      for (size_t i = 0; i < w->n; i++) close(w->f[i].fd);
      w->n = 0;
      return strata_err(STRATA_EIO, "locks db %s: fsync of the directory: %s", lk->path, strerror(e));
    }
    if (lk->wal_sync_hook) lk->wal_sync_hook(lk->wal_sync_ctx, LK_WAL_DIR_SYNCED);
    close(dfd);
  }
  return 0;
}

void lk__wal_close(lk__wal_set *w) {
  for (size_t i = 0; i < w->n; i++) close(w->f[i].fd);
  free(w->f);
  *w = (lk__wal_set){0};
}
