/*
 * Listing and counting locks. Both read the durable 'L' records through one
 * RocksDB iterator (an implicit snapshot), so a page is consistent and comes
 * in row-key order without sorting the in-memory hash tables.
 */
#include <assert.h>
#include <stdlib.h>

#include "common/buf.h"
#include "common/err.h"
#include "locks/lk_int.h"

#define LIST_LIMIT_MAX 100000u

/* Called per matching slot; returns 1 to stop the scan. */
typedef int (*slot_fn)(void *ctx, const uint8_t *key, size_t len, const lk__slot *s, lk_kind kind,
                       int expired);

static int scan(lk_manager *lk, const lk_list_filter *f, int all_categories,
                const uint8_t *cursor, size_t cursor_len, slot_fn fn, void *ctx) {
  int rc = 0;
  unsigned kinds = f->kinds ? f->kinds : LK_KINDS_ALL;
  if (all_categories) kinds = LK_KINDS_ALL;
  if (kinds & ~LK_KINDS_ALL)
    return strata_err(STRATA_EINVALID, "lock list: filter.kinds 0x%x has unknown bits", f->kinds);
  if (f->prefix_len > LK_KEY_MAX || (f->prefix_len && !f->prefix))
    return strata_err(STRATA_EINVALID, "lock list: filter.prefix of %zu bytes is invalid",
                      f->prefix_len);
  if (cursor && (cursor_len < 2 || cursor_len > LK_KEY_MAX + 1 ||
                 (cursor[cursor_len - 1] != LK_TEMPORAL && cursor[cursor_len - 1] != LK_INDEFINITE)))
    return strata_err(STRATA_EINVALID, "lock list: cursor of %zu bytes is not one Locks.List returned",
                      cursor_len);
  uint8_t start[2 + LK_KEY_MAX];
  size_t start_len;
  start[0] = LK__TAG_LOCK;
  if (cursor) {
    memcpy(start + 1, cursor, cursor_len - 1);
    start_len = cursor_len;
  } else {
    if (f->prefix_len) memcpy(start + 1, f->prefix, f->prefix_len);
    start_len = 1 + f->prefix_len;
  }
  int64_t now = f->now ? f->now : lk_now(lk);
  if ((rc = lk__db_enter(lk, "listing locks"))) return rc;
  rocksdb_iterator_t *it = rocksdb_create_iterator(lk->db, lk->ro);
  for (rocksdb_iter_seek(it, (const char *)start, start_len); rocksdb_iter_valid(it);
       rocksdb_iter_next(it)) {
    size_t kl, vl;
    const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
    if (kl < 1 || k[0] != LK__TAG_LOCK) break;
    if (kl - 1 < f->prefix_len || (f->prefix_len && memcmp(k + 1, f->prefix, f->prefix_len)))
      break;
    /* Skip the cursor's own row up to and including its kind. */
    unsigned min_kind = 0;
    if (cursor && kl == cursor_len && memcmp(k + 1, cursor, cursor_len - 1) == 0)
      min_kind = cursor[cursor_len - 1];
    lk__slot tmp, ind;
    const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
    if ((rc = lk__rec_decode(v, vl, &tmp, &ind))) goto out;
    const lk__slot *slots[2] = {&tmp, &ind};
    for (lk_kind kind = LK_TEMPORAL; kind <= LK_INDEFINITE; kind++) {
      const lk__slot *s = slots[kind - 1];
      if (!s->op || (unsigned)kind <= min_kind || !(kinds & LK_KIND_BIT(kind))) continue;
      if (f->op && s->op != f->op) continue;
      int expired = now >= s->expires_at;
      if (expired && !f->include_expired && !all_categories) continue;
      if (fn(ctx, k + 1, kl - 1, s, kind, expired)) goto out;
    }
  }
  char *err = NULL;
  rocksdb_iter_get_error(it, &err);
  if (err) rc = lk__dberr(err, "listing locks");
out:
  rocksdb_iter_destroy(it);
  lk__db_leave(lk);
  /* What the iterator saw may include batches not yet synced, and even not
   * yet numbered: lk__write numbers a batch only after rocksdb_write
   * returns, but the batch is visible (and in the WAL file) before that, so
   * waiting for the current write_seq could miss it. Take a fresh number
   * instead: a sync covers it only if the syncer read write_seq after this
   * point, i.e. the sync started after the scan and covers every batch the
   * scan saw. Costs one (shared) WAL sync per listing. */
  if (!rc) rc = lk__durable(lk, atomic_fetch_add(&lk->write_seq, 1) + 1);
  return rc;
}

typedef struct page_ctx {
  lk_list_page *page;
  size_t limit, cap;
  strata_buf keys;   /* arena; items hold offsets into it until the end (it moves as it grows) */
  int more;
  int rc;
} page_ctx;

static int page_add(void *vctx, const uint8_t *key, size_t len, const lk__slot *s, lk_kind kind,
                    int expired) {
  page_ctx *c = vctx;
  lk_list_page *pg = c->page;
  if (pg->n == c->limit) {
    c->more = 1;
    return 1;
  }
  size_t off = c->keys.len;
  if ((c->rc = strata_buf_append(&c->keys, key, len))) {
    strata_err_wrap(c->rc, "lock list: key arena");
    return 1;
  }
  lk_lock_info *it = &pg->items[pg->n++];
  it->key = (uint8_t *)(uintptr_t)off;
  it->key_len = len;
  it->op = s->op;
  it->kind = kind;
  it->token = s->token;
  it->acquired_at = s->acquired_at;
  it->expires_at = s->expires_at;
  it->expired = expired;
  return 0;
}

int lk_list(lk_manager *lk, const lk_list_filter *f, const uint8_t *cursor, size_t cursor_len,
            size_t limit, lk_list_page *page) {
  assert(lk && page /* f may be NULL: no filter */);
  assert(cursor || cursor_len == 0);
  static const lk_list_filter none = {0};
  memset(page, 0, sizeof *page);
  if (!f) f = &none;
  if (limit == 0 || limit > LIST_LIMIT_MAX)
    return strata_err(STRATA_EINVALID, "lk_list: limit %zu, want 1..%u", limit, LIST_LIMIT_MAX);
  page_ctx c = {.page = page, .limit = limit};
  page->items = malloc(limit * sizeof *page->items);
  if (!page->items) return strata_err(STRATA_ENOMEM, "Locks.List: a page of %zu locks", limit);
  int rc = scan(lk, f, 0, cursor, cursor_len, page_add, &c);
  if (!rc) rc = c.rc;
  if (!rc && c.more) {
    const lk_lock_info *last = &page->items[page->n - 1];
    page->cursor_len = last->key_len + 1;
    page->cursor = malloc(page->cursor_len);
    if (!page->cursor) rc = strata_err(STRATA_ENOMEM, "Locks.List: cursor");
    else {
      memcpy(page->cursor, c.keys.p + (uintptr_t)last->key, last->key_len);
      page->cursor[last->key_len] = (uint8_t)last->kind;
    }
  }
  for (size_t i = 0; i < page->n; i++)
    page->items[i].key = c.keys.p + (uintptr_t)page->items[i].key;
  page->mem__ = c.keys.p; /* the page owns the arena now */
  if (rc) lk_list_page_free(page);
  return rc;
}

void lk_list_page_free(lk_list_page *page) {
  free(page->items);
  free(page->cursor);
  free(page->mem__);
  memset(page, 0, sizeof *page);
}

static int count_add(void *vctx, const uint8_t *key, size_t len, const lk__slot *s, lk_kind kind,
                     int expired) {
  lk_counts *c = vctx;
  if (kind == LK_INDEFINITE) c->indefinite++;
  else if (expired) c->temporal_expired++;
  else c->temporal++;
  return 0;
}

int lk_count(lk_manager *lk, const lk_list_filter *f, lk_counts *out) {
  assert(lk && out);
  static const lk_list_filter none = {0};
  memset(out, 0, sizeof *out);
  return scan(lk, f ? f : &none, 1, NULL, 0, count_add, out);
}
