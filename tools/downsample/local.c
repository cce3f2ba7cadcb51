/*
 * strata-downsample's direct reads (--store URL): a block's mip 0, pinned at the
 * generation being processed, read from the store's OCDBT files themselves, as
 * tensorstore's readers do, instead of through the server, once that generation is
 * published. The server then spends nothing on the block's 16-128 MiB; the worker
 * decodes the nodes and values itself (storage/, read-only: no lock, no log). A
 * generation not published yet, or any failure of the direct path, reads through
 * the server as without --store. Design: tools/downsample/README.md "Direct reads".
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "storage/base_url.h"
#include "storage/store.h"
#include "tools/downsample/ds_int.h"

struct ds_local {
  pthread_mutex_t mu; /* one direct read at a time (they never overlap anyway: block.c) */
  char url[BS_URL_PATH_MAX + 8];
  bs_store *base;
  st_db *db;          /* read-only, at the newest manifest when last (re)opened */
  uint64_t published; /* its latest generation */
  int64_t reopened_ms; /* when it was last (re)opened */
  int warned;
  uint64_t direct, via_server; /* blocks read each way */
  strata_buf val;              /* the value being read (under mu) */
};

/* A generation newer than the store's looks for a newer manifest at most this often:
 * the publisher writes one every publish interval (25 ms by default), so a worker
 * following live edits does not reopen the store for every block. */
#define DS_REOPEN_MS 20

/* (Re)opens the read-only store at its newest published manifest. */
static int local_reopen(ds_local *l) {
  if (l->db) st_close(l->db);
  l->db = NULL;
  st_options so;
  memset(&so, 0, sizeof so);
  so.base = l->base;
  so.read_only = 1;
  so.published_only = 1; /* the server's commit log is never read (every reopen would) */
  so.cache_bytes = (size_t)64 << 20; /* the walk to a block's values; the values are not cached */
  l->reopened_ms = ds__now_ms();
  int rc = st_open(l->url, &so, &l->db);
  if (rc) return rc;
  st_snap *s;
  if ((rc = st_snap_latest(l->db, &s))) return rc;
  l->published = st_snap_info(s).generation;
  st_snap_release(s);
  return 0;
}

int ds__local_open(ds *p) {
  if (!p->o->store) return 0;
  ds_local *l = calloc(1, sizeof *l);
  if (!l) return ds__fail(p, 1, "out of memory");
  pthread_mutex_init(&l->mu, NULL);
  bs_url u;
  int rc = bs_url_parse(p->o->store, &u);
  struct stat st;
  if (!rc && u.kind == BS_URL_DIR && (stat(u.path, &st) != 0 || !S_ISDIR(st.st_mode)))
    rc = strata_err(STRATA_ENOTFOUND, "no directory %s", u.path); /* a reader creates nothing */
  if (!rc) {
    bs_url_format(&u, l->url, sizeof l->url);
    rc = bs_url_open(&u, NULL, &l->base);
  }
  if (!rc) rc = local_reopen(l);
  p->local = l; /* freed by ds__local_close, also after a failure */
  if (rc)
    return ds__fail(p, 1, "--store %s: %s (give the directory the server's --data-url or DATA_DIR/kv names, "
                    "as this machine sees it, or leave --store out to read through the server)",
                    p->o->store, strata_errmsg());
  ds__logkv(p, "event=store url=%s published=%" PRIu64, l->url, l->published);
  return 0;
}

void ds__local_close(ds *p) {
  ds_local *l = p->local;
  if (!l) return;
  if (l->db)
    ds__logkv(p, "event=store_reads url=%s direct=%" PRIu64 " via_server=%" PRIu64, l->url, l->direct,
              l->via_server);
  if (l->db) st_close(l->db);
  bs_destroy(l->base);
  strata_buf_free(&l->val);
  pthread_mutex_destroy(&l->mu);
  free(l);
  p->local = NULL;
}

/* A failure of the direct path: said once, then every read goes through the server. */
static int local_give_up(ds *p, ds_local *l, const char *what) {
  if (!l->warned)
    ds__logkv(p, "event=store_fallback url=%s reason=\"%s: %s\"", l->url, what, strata_errmsg());
  l->warned = 1;
  return -1;
}

int ds__local_read(ds *p, char **keys, const size_t *sizes, size_t n, uint64_t gen, ds_read_fn fn,
                   void *ctx) {
  ds_local *l = p->local;
  if (!l) return -1;
  pthread_mutex_lock(&l->mu);
  int rc = l->warned || !gen ? -1 : 0;
  st_snap *s = NULL;
  if (!rc && gen > l->published && ds__now_ms() - l->reopened_ms >= DS_REOPEN_MS && local_reopen(l))
    rc = local_give_up(p, l, "reopening");
  if (!rc && gen > l->published) rc = -1; /* not published yet: the server has it */
  if (!rc && st_snap_at_generation(l->db, gen, &s)) rc = local_give_up(p, l, "pinning");
  /* one value at a time, through one buffer: a block's 16 MiB of values never sit
   * in memory at once, and the buffer's pages, touched once, are reused (a
   * first touch of memory is what costs most here: tools/downsample/README.md) */
  for (size_t i = 0; !rc && i < n; i++) {
    l->val.len = 0;
    int g_rc = st_get(s, keys[i], strlen(keys[i]), &l->val);
    if (g_rc && g_rc != STRATA_ENOTFOUND) rc = local_give_up(p, l, "reading");
    else rc = fn(p, ctx, i, !g_rc, g_rc ? NULL : l->val.p, g_rc ? 0 : l->val.len);
  }
  if (rc == -1) l->via_server++;
  else if (rc == 0) l->direct++;
  if (s) st_snap_release(s);
  pthread_mutex_unlock(&l->mu);
  (void)sizes;
  return rc;
}
