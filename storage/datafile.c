/*
 * Strata's data files: their names, their header, and the writer that fills
 * them (values each followed by its CRC-32C, nodes). docs/format.md, "Data
 * file layout". Readers check the header (cache.c, ft__value_crc) and each
 * value's CRC (btree.c).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "storage/engine_int.h"

static int hex_digit(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

int st__is_data_file_name(const char *name) {
  if (strlen(name) != 32) return 0;
  for (int i = 0; i < 32; i++)
    if (hex_digit(name[i]) < 0) return 0;
  return 1;
}

int st__data_file_generation(const char *name, uint64_t *gen) {
  if (!st__is_data_file_name(name)) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) v = v << 4 | (uint64_t)hex_digit(name[i]);
  *gen = v;
  return 1;
}

void df__path(char out[ST_DATA_PATH_MAX], uint64_t gen) {
  static _Atomic uint64_t counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  uint64_t x = ((uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec) ^ atomic_fetch_add(&counter, 1) << 40;
  x *= 0x9e3779b97f4a7c15ull; /* 64 bits that differ per name: nothing is ever overwritten */
  snprintf(out, ST_DATA_PATH_MAX, ST_DATA_DIR "/%016llx%016llx", (unsigned long long)gen, (unsigned long long)x);
}

int df__begin(st_db *db, st_writer *w, const char *path) {
  int rc = ft__intern(db, path, strlen(path), 2, &w->file_id);
  if (!rc) rc = wr__append(w, ST_DATA_MAGIC, ST_DATA_MAGIC_LEN, NULL);
  return rc;
}

int wr__flush(st_writer *w) {
  if (!w->buf.len) return 0;
  int rc = bs_append(w->f, w->buf.p, w->buf.len);
  w->buf.len = 0;
  return rc;
}

int wr__append_value(st_writer *w, const void *p, size_t n, st_ref *ref) {
  uint8_t crc[4];
  uint64_t off;
  ocdbt_store_le(crc, ocdbt_crc32c(0, p, n), 4);
  int rc = wr__append(w, p, n, &off);
  if (!rc) rc = wr__append(w, crc, 4, NULL);
  if (!rc) *ref = (st_ref){w->file_id, off, n};
  return rc;
}

int wr__append(st_writer *w, const void *p, size_t n, uint64_t *offset) {
  int rc;
  if (offset) *offset = w->off;
  if (n >= (1u << 20)) { /* large: straight through, no copy */
    if ((rc = wr__flush(w)) || (rc = bs_append(w->f, p, n))) return rc;
  } else {
    if (w->buf.len + n > (4u << 20) && (rc = wr__flush(w))) return rc;
    if ((rc = strata_buf_append(&w->buf, p, n))) return rc;
  }
  w->off += n;
  return 0;
}
