/* Every byte of a small database flipped in turn: every file, headers,
 * magics, lengths, data file tables, bodies, checksums. After each flip
 * every read (every key at every generation, and a listing of each) either
 * returns exactly the right answer or STRATA_ECORRUPT (DATA_LOSS); a wrong
 * answer (wrong bytes, a present key reported absent, or the reverse) is a
 * failure. Then the double damage: each byte of a data file's magic
 * together with a byte of each out-of-line value in it (a damaged header
 * used to make the file look foreign, so its value checksums were skipped),
 * and each data file's first 4 KiB zeroed. Prints the figures. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/store.h"

static char dir[256];

#define NKEYS 40
#define NGENS 3

/* The model: value of key i at generation g (len -1 = absent). */
static char keyname[NKEYS][64];
static uint8_t val[NGENS + 1][NKEYS][320];
static int vlen[NGENS + 1][NKEYS];

static struct {
  uint64_t flips, header_flips, reads, right, data_loss, wrong, open_refused;
} fig;

static void rm_rf(const char *d) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system(cmd)) fprintf(stderr, "cleanup failed\n");
}

/* Key i: 20 long inline keys (interior nodes at 1 KiB nodes), the rest a
 * mix of small inline and 300-byte out-of-line values. */
static void set_value(int g, int i, int len, uint8_t fillb) {
  vlen[g][i] = len;
  for (int j = 0; j < len; j++) val[g][i][j] = (uint8_t)(fillb + j % 7);
}

static void build(void) {
  rm_rf(dir);
  for (int i = 0; i < NKEYS; i++) {
    if (i < 20) snprintf(keyname[i], sizeof keyname[i], "long-key-%02d-padding-padding-padding-padding", i);
    else snprintf(keyname[i], sizeof keyname[i], "k%02d", i);
  }
  for (int g = 0; g <= NGENS; g++)
    for (int i = 0; i < NKEYS; i++) vlen[g][i] = -1;
  for (int g = 1; g <= NGENS; g++) {
    memcpy(vlen[g], vlen[g - 1], sizeof vlen[g]);
    memcpy(val[g], val[g - 1], sizeof val[g]);
    for (int i = 0; i < NKEYS; i++) {
      if (g == 1 && i < 30) set_value(g, i, i % 3 == 0 ? 300 : 20, (uint8_t)(0x40 + i));
      if (g == 2 && i >= 25 && i < 35) set_value(g, i, i % 2 ? 300 : 9, (uint8_t)(0x80 + i));
      if (g == 3 && i % 5 == 0) vlen[g][i] = -1;
      if (g == 3 && i >= 35) set_value(g, i, 300, (uint8_t)(0xc0 + i));
    }
  }
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.create = 1;
  o.no_prepare = 1;
  o.config.max_decoded_node_bytes = 1024;
  st_db *db;
  assert_int_equal(st_open(dir, &o, &db), 0);
  for (int g = 1; g <= NGENS; g++) {
    st_txn *t;
    st_result r;
    assert_int_equal(st_txn_begin(db, &t), 0);
    for (int i = 0; i < NKEYS; i++) {
      int was = vlen[g - 1][i], now = vlen[g][i];
      if (now < 0 && was >= 0) assert_int_equal(st_txn_delete(t, keyname[i], strlen(keyname[i])), 0);
      if (now >= 0 && (was != now || memcmp(val[g][i], val[g - 1][i], (size_t)now)))
        assert_int_equal(st_txn_put(t, keyname[i], strlen(keyname[i]), val[g][i], (size_t)now), 0);
    }
    assert_int_equal(st_txn_commit(t, &r), 0);
    assert_int_equal(r.generation, (uint64_t)g);
    st_result_free(&r);
  }
  st_close(db);
}

static void count(int rc, int right) {
  fig.reads++;
  if (rc == STRATA_ECORRUPT) fig.data_loss++;
  else if (rc == 0 && right) fig.right++;
  else fig.wrong++;
}

/* Every read of the damaged database; returns the wrong answers. */
static uint64_t check_all(const char *what) {
  uint64_t before = fig.wrong;
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.read_only = 1;
  st_db *db;
  int rc = st_open(dir, &o, &db);
  if (rc) {
    count(rc, 0);
    fig.open_refused++;
    return fig.wrong - before;
  }
  for (int g = 1; g <= NGENS; g++) {
    st_snap *s;
    rc = st_snap_at_generation(db, (uint64_t)g, &s);
    if (rc) {
      count(rc, 0);
      continue;
    }
    size_t present = 0;
    for (int i = 0; i < NKEYS; i++) {
      strata_buf b = STRATA_BUF_INIT;
      rc = st_get(s, keyname[i], strlen(keyname[i]), &b);
      if (vlen[g][i] < 0) {
        count(rc == STRATA_ENOTFOUND ? 0 : rc, rc == STRATA_ENOTFOUND);
      } else {
        present++;
        count(rc, rc == 0 && b.len == (size_t)vlen[g][i] && !memcmp(b.p, val[g][i], b.len));
      }
      strata_buf_free(&b);
    }
    st_range r;
    memset(&r, 0, sizeof r);
    st_list_result lr;
    rc = st_list(s, &r, 0, &lr);
    int right = rc == 0 && lr.n == present && !lr.more;
    /* listed in key order: the model's present keys sorted */
    const char *prev = "";
    for (size_t j = 0; right && j < lr.n; j++) {
      int i;
      for (i = 0; i < NKEYS; i++)
        if (strlen(keyname[i]) == lr.items[j].klen && !memcmp(keyname[i], lr.items[j].key, lr.items[j].klen)) break;
      right = i < NKEYS && vlen[g][i] >= 0 && lr.items[j].vlen == (size_t)vlen[g][i] &&
              !memcmp(lr.items[j].value, val[g][i], lr.items[j].vlen) && strcmp(prev, keyname[i]) < 0;
      if (right) prev = keyname[i];
    }
    count(rc, right);
    st_list_result_free(&lr);
    st_snap_release(s);
  }
  st_close(db);
  if (fig.wrong != before) fprintf(stderr, "wrong answer after %s\n", what);
  return fig.wrong - before;
}

typedef struct dbfile {
  char path[512];
  uint8_t *p;
  size_t n;
  int data;      /* a data file under d/ */
} dbfile;

static size_t list_files(dbfile *f, size_t cap) {
  char cmd[700];
  snprintf(cmd, sizeof cmd, "cd '%s' && ls manifest.* d/*", dir);
  FILE *p = popen(cmd, "r");
  assert_non_null(p);
  size_t n = 0;
  char line[256];
  while (n < cap && fgets(line, sizeof line, p)) {
    line[strcspn(line, "\n")] = 0;
    snprintf(f[n].path, sizeof f[n].path, "%s/%s", dir, line);
    f[n].data = !strncmp(line, "d/", 2);
    int fd = open(f[n].path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    f[n].n = (size_t)st.st_size;
    f[n].p = malloc(f[n].n ? f[n].n : 1);
    assert_int_equal(pread(fd, f[n].p, f[n].n, 0), (ssize_t)f[n].n);
    close(fd);
    n++;
  }
  pclose(p);
  return n;
}

static void write_at(const char *path, size_t off, const uint8_t *p, size_t n) {
  int fd = open(path, O_WRONLY);
  assert_true(fd >= 0);
  assert_int_equal(pwrite(fd, p, n, (off_t)off), (ssize_t)n);
  close(fd);
}

/* 1 when byte `off` of f is in an envelope header (magic, length, version,
 * compression: the first 16 bytes of a manifest or node) or a data file's
 * magic. Nodes are found by their magic inside data files. */
static int in_header(const dbfile *f, size_t off) {
  if (off < 16) return 1;
  if (!f->data) return 0;
  static const uint8_t mg[2][4] = {{0x0c, 0xdb, 0x20, 0xde}, {0x0c, 0xdb, 0x12, 0x34}};
  for (size_t s = off >= 15 ? off - 15 : 0; s <= off && s + 4 <= f->n; s++)
    for (int k = 0; k < 2; k++)
      if (!memcmp(f->p + s, mg[k], 4)) return 1;
  return 0;
}

static void test_every_byte_flipped(void **state) {
  (void)state;
  build();
  dbfile f[16];
  size_t nf = list_files(f, 16);
  assert_true(nf >= 3 + NGENS);
  assert_int_equal(check_all("nothing"), 0);
  for (size_t i = 0; i < nf; i++) {
    for (size_t off = 0; off < f[i].n; off++) {
      uint8_t b = f[i].p[off] ^ (off % 2 ? 0x01 : 0x80);
      write_at(f[i].path, off, &b, 1);
      fig.flips++;
      if (in_header(&f[i], off)) fig.header_flips++;
      char what[600];
      snprintf(what, sizeof what, "flipping byte %zu of %.400s", off, f[i].path);
      check_all(what);
      write_at(f[i].path, off, &f[i].p[off], 1);
    }
  }
  fprintf(stderr,
          "single flips: %llu bytes flipped (%llu in headers and magics), %llu reads: %llu right, "
          "%llu DATA_LOSS (%llu opens refused), %llu wrong\n",
          (unsigned long long)fig.flips, (unsigned long long)fig.header_flips, (unsigned long long)fig.reads,
          (unsigned long long)fig.right, (unsigned long long)fig.data_loss,
          (unsigned long long)fig.open_refused, (unsigned long long)fig.wrong);
  assert_int_equal(fig.wrong, 0);

  /* The magic of each data file damaged together with one byte of each
   * out-of-line value in it (found by the model's fill pattern). */
  memset(&fig, 0, sizeof fig);
  uint64_t pairs = 0;
  for (size_t i = 0; i < nf; i++) {
    if (!f[i].data) continue;
    for (size_t m = 0; m < 16; m++) {
      for (int g = 1; g <= NGENS; g++) {
        for (int k = 0; k < NKEYS; k++) {
          if (vlen[g][k] != 300) continue;
          uint8_t *hit = memmem(f[i].p + 16, f[i].n - 16, val[g][k], 300);
          if (!hit) continue;
          size_t voff = (size_t)(hit - f[i].p) + 150;
          uint8_t hb = f[i].p[m] ^ 0x20, vb = f[i].p[voff] ^ 0x04;
          write_at(f[i].path, m, &hb, 1);
          write_at(f[i].path, voff, &vb, 1);
          pairs++;
          char what[600];
          snprintf(what, sizeof what, "flipping magic byte %zu and value byte %zu of %.400s", m, voff, f[i].path);
          check_all(what);
          write_at(f[i].path, m, &f[i].p[m], 1);
          write_at(f[i].path, voff, &f[i].p[voff], 1);
        }
      }
    }
    /* the first 4 KiB zeroed, and the value byte too */
    size_t z = f[i].n < 4096 ? f[i].n : 4096;
    uint8_t *zero = calloc(1, z);
    write_at(f[i].path, 0, zero, z);
    check_all("zeroing the first 4 KiB");
    write_at(f[i].path, 0, f[i].p, z);
    free(zero);
  }
  fprintf(stderr,
          "magic + value flips: %llu pairs, %llu reads: %llu right, %llu DATA_LOSS, %llu wrong\n",
          (unsigned long long)pairs, (unsigned long long)fig.reads, (unsigned long long)fig.right,
          (unsigned long long)fig.data_loss, (unsigned long long)fig.wrong);
  assert_true(pairs > 0);
  assert_int_equal(fig.wrong, 0);
  assert_int_equal(check_all("restoring every byte"), 0);
  for (size_t i = 0; i < nf; i++) free(f[i].p);
  rm_rf(dir);
}

/* A Strata data file with its header damaged is DATA_LOSS naming the file,
 * even where the value itself is intact. */
static void test_damaged_header_names_the_file(void **state) {
  (void)state;
  build();
  dbfile f[16];
  size_t nf = list_files(f, 16);
  for (size_t i = 0; i < nf; i++) {
    if (!f[i].data) continue;
    uint8_t b = f[i].p[3] ^ 0x01;
    write_at(f[i].path, 3, &b, 1);
  }
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = 1; /* the per-group files path (the log's: test_store_logmode) */
  o.read_only = 1;
  st_db *db;
  assert_int_equal(st_open(dir, &o, &db), 0);
  st_snap *s;
  assert_int_equal(st_snap_latest(db, &s), 0);
  strata_buf b = STRATA_BUF_INIT;
  int k = 3; /* 300 bytes, written by generation 1 */
  assert_int_equal(vlen[NGENS][k], 300);
  assert_int_equal(st_get(s, keyname[k], strlen(keyname[k]), &b), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "damaged header"));
  assert_non_null(strstr(strata_errmsg(), "d/0000000000000001"));
  assert_int_equal(b.len, 0);
  /* inline values still read: the nodes carry their own checksums */
  assert_int_equal(st_get(s, keyname[1], strlen(keyname[1]), &b), 0);
  assert_int_equal(b.len, 20);
  strata_buf_free(&b);
  st_snap_release(s);
  st_close(db);
  for (size_t i = 0; i < nf; i++) free(f[i].p);
  rm_rf(dir);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/strata-flips-%d", (int)getpid());
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_damaged_header_names_the_file),
      cmocka_unit_test(test_every_byte_flipped),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
