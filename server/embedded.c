/* Embedded single-node mode (see embedded.h). */
#define _XOPEN_SOURCE 700
#include "server/embedded.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "server/log.h"
#include "server/srv.h"

struct srv_embedded {
  srv *s;
  char dir[4096];
  char addr[64];
  int temp; /* dir was created here and is deleted at stop */
};

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int srv_embedded_start(const char *dir, srv_embedded **out) {
  *out = NULL;
  srv_embedded *e = calloc(1, sizeof *e);
  if (!e) return strata_err(STRATA_ENOMEM, "out of memory");
  if (dir) {
    snprintf(e->dir, sizeof e->dir, "%s", dir);
  } else {
    const char *tmp = getenv("TMPDIR");
    snprintf(e->dir, sizeof e->dir, "%s/strata-embedded-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(e->dir)) {
      int rc =
          strata_err(errno, "cannot create a temporary directory %s: %s", e->dir, strerror(errno));
      free(e);
      return rc;
    }
    e->temp = 1;
  }
  const char *lvl = getenv("STRATA_LOG_LEVEL");
  int level = lvl ? srv_log_parse_level(lvl) : -1;
  srv_log_init(level >= 0 ? level : SRV_LOG_ERROR);
  srv_opts o = {.listen = "127.0.0.1:0", .data_dir = e->dir, .threads = 0, .grace_ms = 2000};
  int rc = srv_open(&o, &e->s);
  if (rc) {
    if (e->temp) nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(e);
    return rc;
  }
  snprintf(e->addr, sizeof e->addr, "127.0.0.1:%d", srv_port(e->s));
  *out = e;
  return 0;
}

const char *srv_embedded_addr(const srv_embedded *e) { return e->addr; }
const char *srv_embedded_dir(const srv_embedded *e) { return e->dir; }

void srv_embedded_stop(srv_embedded *e) {
  if (!e) return;
  srv_close(e->s);
  if (e->temp) nftw(e->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(e);
}
