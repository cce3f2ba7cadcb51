/*
 * The contract every base store keeps (storage/base.h), checked the same way
 * for each implementation: tests/unit/test_store_base.c (files, memory, the
 * fault wrapper) and tests/storage/test_store_s3.c (S3). Include after
 * cmocka.h; the store must be empty.
 */
#ifndef STRATA_TESTS_BASE_CONTRACT_H
#define STRATA_TESTS_BASE_CONTRACT_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "storage/base.h"

/* The file at path holds want[0..wlen) followed by zeros up to size bytes. */
static inline void expect_file(bs_store *s, const char *path, const char *want, size_t wlen, size_t size) {
  uint8_t *p;
  size_t n;
  assert_int_equal(bs_read_all(s, path, &p, &n), 0);
  assert_int_equal(n, size);
  assert_memory_equal(p, want, wlen);
  for (size_t i = wlen; i < n; i++) assert_int_equal(p[i], 0);
  free(p);
}

/* A reserved room: zeros past the append position, in the file's size, that
 * later appends overwrite; a cut moves the position back. A store without
 * reserve (S3) has no room: the file is what was appended. */
static inline void check_reserve(bs_store *s) {
  bs_file *f;
  size_t room = s->ops->reserve ? 100 : 2;
  assert_int_equal(bs_create(s, "d/r", &f), 0);
  assert_int_equal(bs_append(f, "abc", 3), 0);
  assert_int_equal(bs_reserve(f, 100), 0);
  assert_int_equal(bs_append(f, "de", 2), 0);
  assert_int_equal(bs_fsync(f), 0);
  expect_file(s, "d/r", "abcde", 5, 3 + room);
  assert_int_equal(bs_truncate(f, 2), 0);
  assert_int_equal(bs_append(f, "x", 1), 0);
  assert_int_equal(bs_fsync(f), 0);
  expect_file(s, "d/r", "abx", 3, 3);
  bs_close(f);
  assert_int_equal(bs_remove(s, "d/r"), 0);
}

/* Create-new, append, fsync, read back, ranges, listing, removal, atomic
 * publication. `replaces`: bs_rename (so bs_put_atomic) replaces an existing
 * name; otherwise (S3) it refuses with STRATA_EEXISTS and changes nothing. */
static inline void check_contract(bs_store *s, int replaces) {
  bs_file *f, *g;
  assert_int_equal(bs_mkdir(s, "d"), 0);
  assert_int_equal(bs_create(s, "d/a", &f), 0);
  assert_int_equal(bs_create(s, "d/a", &g), STRATA_EEXISTS); /* create-new only */
  assert_int_equal(bs_append(f, "hello ", 6), 0);
  assert_int_equal(bs_append(f, "world", 5), 0);
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
  /* also once written and closed: at create, or (S3, a data file's name under d/,
   * which the committer creates without asking the object store) at its first
   * fsync, before anything of the existing file changes */
  int rc = bs_create(s, "d/a", &g);
  if (rc == 0) {
    assert_false(replaces);
    assert_int_equal(bs_append(g, "other", 5), 0);
    assert_int_equal(bs_fsync(g), STRATA_EEXISTS);
    bs_close(g);
  } else {
    assert_int_equal(rc, STRATA_EEXISTS);
  }
  assert_int_equal(bs_open_read(s, "d/a", &f), 0);
  uint64_t size;
  assert_int_equal(bs_size(f, &size), 0);
  assert_int_equal(size, 11);
  char buf[16];
  assert_int_equal(bs_pread(f, 6, buf, 5), 0);
  assert_memory_equal(buf, "world", 5);
  assert_int_equal(bs_pread(f, 8, buf, 5), STRATA_ERANGE); /* past the end */
  bs_close(f);
  assert_int_equal(bs_open_read(s, "d/missing", &f), STRATA_ENOTFOUND);
  /* atomic publish leaves no temp file; a second one replaces or is refused */
  assert_int_equal(bs_put_atomic(s, "", "tmp.x", "x", "one", 3), 0);
  assert_int_equal(bs_put_atomic(s, "", "tmp.x", "x", "two!", 4), replaces ? 0 : STRATA_EEXISTS);
  uint8_t *p;
  size_t n;
  assert_int_equal(bs_read_all(s, "x", &p, &n), 0);
  assert_int_equal(n, replaces ? 4 : 3);
  assert_memory_equal(p, replaces ? "two!" : "one", n);
  free(p);
  char **names;
  assert_int_equal(bs_list(s, "", &names, &n), 0);
  int saw_x = 0;
  for (size_t i = 0; i < n; i++) {
    assert_string_not_equal(names[i], "tmp.x");
    saw_x |= !strcmp(names[i], "x");
  }
  assert_true(saw_x);
  free(names);
  assert_int_equal(bs_list(s, "d", &names, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(names[0], "a");
  free(names);
  assert_int_equal(bs_remove(s, "d/a"), 0);
  assert_int_equal(bs_remove(s, "d/a"), STRATA_ENOTFOUND);
  assert_int_equal(bs_open_read(s, "d/a", &f), STRATA_ENOTFOUND);
  assert_int_equal(bs_sync_dir(s, "d"), 0);
  check_reserve(s);
}

#endif
