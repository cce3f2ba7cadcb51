/*
 * Files the engine does not create: coordinator-mode writers put their own
 * data files under d/ and commit references to them (st_txn_put_ref). This
 * file answers the questions about them: a file's size and checksum before a
 * commit refers to it. storage/README.md "Writer files".
 */
#include <stdlib.h>

#include "common/err.h"
#include "storage/engine_int.h"

#define READ_PIECE ((size_t)1 << 20)

int st_file_size(st_db *db, const char *path, uint64_t *size) {
  bs_file *f;
  int rc = bs_open_read(db->base, path, &f);
  if (rc == STRATA_ENOTFOUND) return strata_err(rc, "%s does not exist", path);
  if (rc) return rc;
  rc = bs_size(f, size);
  bs_close(f);
  return rc;
}

int st_file_crc32c(st_db *db, const char *path, uint64_t off, uint64_t len, uint32_t *crc) {
  bs_file *f;
  int rc = bs_open_read(db->base, path, &f);
  if (rc == STRATA_ENOTFOUND) return strata_err(rc, "%s does not exist", path);
  if (rc) return rc;
  uint8_t *buf = malloc(len < READ_PIECE ? (len ? len : 1) : READ_PIECE);
  uint32_t c = 0;
  if (!buf) rc = strata_err(STRATA_ENOMEM, "checksum of %s", path);
  for (uint64_t done = 0; !rc && done < len;) {
    size_t n = len - done < READ_PIECE ? (size_t)(len - done) : READ_PIECE;
    if ((rc = bs_pread(f, off + done, buf, n))) break;
    c = ocdbt_crc32c(c, buf, n);
    done += n;
  }
  free(buf);
  bs_close(f);
  if (!rc) *crc = c;
  return rc;
}
