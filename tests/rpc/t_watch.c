/*
 * Kv.Watch over the wire against the real store engine: replay, live and resume
 * without gaps or repeats, the deadline and cancellation, a large generation
 * split into messages and streamed without an empty tail, and a watcher following
 * concurrent committers across a reconnect. Shares the group's store with t_kv.c,
 * so each test uses its own key prefix and generations relative to what it
 * committed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "test_rpc_server.h"

/* Reads Watch events until `until` generation is complete (or the stream
 * ends); appends "gen:key" strings and sets *last to the last complete
 * generation. Asserts nothing, so a caller with a thread running can join it
 * first: returns 0, the stream's error, or -1 when a generation came out of
 * order. */
static int watch_collect(uint64_t from, const char *prefix, uint64_t until, char (*out)[48],
                         size_t *n, uint64_t *last) {
  Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
  q.from_generation = from;
  q.prefix = t_bytes(prefix);
  rpc_callopts co = {.timeout_ms = 30000};
  rpc_cstream *st;
  *last = from;
  int rc = rpc_kv_watch(C, &co, &q, &st);
  if (rc) return rc;
  Strata__V1__WatchResponse *m;
  while (!rc && *last < until && rpc_kv_watch_next(st, &m) == 1) {
    if (m->version->generation <= *last) rc = -1;
    for (size_t i = 0; i < m->n_changes && *n < 64; i++)
      snprintf(out[(*n)++], 48, "%llu:%.*s%s", (unsigned long long)m->version->generation,
               (int)m->changes[i]->key.len, (char *)m->changes[i]->key.data,
               m->changes[i]->deleted ? "-" : "");
    if (!m->more) *last = m->version->generation;
    rpc_free(m);
  }
  rpc_cstream_close(st);
  return rc;
}

/* Commits w/live once the watch is open on the server (more calls active
 * than `base`), so that the commit arrives live, not as a replay. */
typedef struct later_arg {
  uint64_t base, gen;
  int rc;
} later_arg;
static void *commit_later(void *p) {
  later_arg *a = p;
  t_wait_calls_at_least(a->base + 1);
  const char *kv[] = {"w/live", "1", NULL};
  a->rc = t_commit(kv, NULL, &a->gen);
  return NULL;
}

void test_kv_watch_replay_live_and_resume(void **state) {
  (void)state;
  uint64_t g0, g1, g2, g3;
  assert_int_equal(srv_latest(&g0), 0);
  const char *a[] = {"w/a", "1", "other/x", "1", NULL};
  assert_int_equal(t_commit(a, NULL, &g1), 0);
  const char *b[] = {"other/y", "1", NULL}; /* nothing under w/ */
  assert_int_equal(t_commit(b, NULL, &g2), 0);
  const char *c[] = {"w/b", "2", NULL}, *d[] = {"w/a", NULL};
  assert_int_equal(t_commit(c, d, &g3), 0);
  /* Replay from before g1: g1 and g3 only, keys in order, deletes marked. */
  char ev[64][48];
  size_t n = 0;
  uint64_t last;
  assert_int_equal(watch_collect(g0, "w/", g3, ev, &n, &last), 0);
  assert_int_equal(last, g3);
  assert_int_equal(n, 3);
  char want[48];
  snprintf(want, sizeof want, "%llu:w/a", (unsigned long long)g1);
  assert_string_equal(ev[0], want);
  snprintf(want, sizeof want, "%llu:w/a-", (unsigned long long)g3);
  assert_string_equal(ev[1], want);
  snprintf(want, sizeof want, "%llu:w/b", (unsigned long long)g3);
  assert_string_equal(ev[2], want);
  /* Resume from g1 (the last one seen): exactly g3's changes, no g1 again. */
  n = 0;
  assert_int_equal(watch_collect(g1, "w/", g3, ev, &n, &last), 0);
  assert_int_equal(last, g3);
  assert_int_equal(n, 2);
  /* Live: a commit made while the stream waits arrives. */
  later_arg la = {.base = t_wait_calls_at_most(1)};
  pthread_t t;
  pthread_create(&t, NULL, commit_later, &la);
  n = 0;
  int rc = watch_collect(g3, "w/", g3 + 1, ev, &n, &last);
  pthread_join(t, NULL);
  assert_int_equal(rc, 0);
  assert_int_equal(la.rc, 0);
  assert_int_equal(last, la.gen);
  assert_int_equal(n, 1);
  snprintf(want, sizeof want, "%llu:w/live", (unsigned long long)la.gen);
  assert_string_equal(ev[0], want);
  /* From the future: OUT_OF_RANGE naming the field. */
  Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
  q.from_generation = la.gen + 100;
  rpc_cstream *st;
  Strata__V1__WatchResponse *m;
  assert_int_equal(rpc_kv_watch(C, NULL, &q, &st), 0);
  t_expect_err(rpc_kv_watch_next(st, &m), STRATA_ERANGE, "from_generation");
  rpc_cstream_close(st);
}

void test_kv_watch_deadline_and_cancel(void **state) {
  (void)state;
  uint64_t g;
  assert_int_equal(srv_latest(&g), 0);
  uint64_t base = t_wait_calls_at_most(1);
  Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
  q.from_generation = g;
  rpc_callopts co = {.timeout_ms = 300};
  rpc_cstream *st;
  Strata__V1__WatchResponse *m;
  /* The deadline ends the waiting stream: DEADLINE_EXCEEDED, not an event or
   * the end of the stream (no wall-clock bound: the status says it). */
  assert_int_equal(rpc_kv_watch(C, &co, &q, &st), 0);
  assert_int_equal(rpc_kv_watch_next(st, &m), STRATA_EDEADLINE);
  rpc_cstream_close(st);
  /* The server ended its side of the stream too. */
  assert_int_equal(t_wait_calls_at_most(base), base);
  /* Closing an open stream cancels it; the server ends it and keeps serving.
   * The stream reaches the server some time after rpc_kv_watch returns. */
  co.timeout_ms = -1;
  assert_int_equal(rpc_kv_watch(C, &co, &q, &st), 0);
  uint64_t open = t_wait_calls_at_least(base + 1);
  rpc_cstream_close(st);
  /* At least: the count is polled with Admin.Stats, and the previous poll's
   * call may not have been counted out yet when the next one reads it. */
  assert_true(open >= base + 1 && open != UINT64_MAX);
  assert_int_equal(t_wait_calls_at_most(base), base);
  assert_int_equal(srv_latest(&g), 0);
}

/* A watcher follows 4 concurrent committers live, disconnecting and resuming
 * half-way: every committed key arrives exactly once, generations in order. */
#define WL_THREADS 4
#define WL_PER 50
static void *wl_committer(void *arg) {
  long t = (long)arg;
  for (int i = 0; i < WL_PER; i++) {
    char k[32];
    snprintf(k, sizeof k, "wl/%ld/%03d", t, i);
    const char *kv[] = {k, "x", NULL};
    if (t_commit(kv, NULL, NULL)) break;
  }
  return NULL;
}

void test_kv_watch_follows_concurrent_commits_across_resume(void **state) {
  (void)state;
  uint64_t from;
  assert_int_equal(srv_latest(&from), 0);
  pthread_t th[WL_THREADS];
  for (long i = 0; i < WL_THREADS; i++) pthread_create(&th[i], NULL, wl_committer, (void *)i);
  static int seen[WL_THREADS][WL_PER];
  memset(seen, 0, sizeof seen);
  /* Nothing is asserted while the committers run (they share C): a problem
   * is noted, the loop stops, the threads are joined, then the test fails. */
  char bad[160] = "";
  int total = 0, connections = 0;
  while (!bad[0] && total < WL_THREADS * WL_PER && connections < 10) {
    connections++;
    Strata__V1__WatchRequest q = STRATA__V1__WATCH_REQUEST__INIT;
    q.from_generation = from;
    q.prefix = t_bytes("wl/");
    rpc_callopts co = {.timeout_ms = 20000};
    rpc_cstream *st;
    int rc = rpc_kv_watch(C, &co, &q, &st);
    if (rc) {
      snprintf(bad, sizeof bad, "watch from %llu: %s", (unsigned long long)from, strata_errname(rc));
      break;
    }
    Strata__V1__WatchResponse *m;
    int in_this = 0;
    while (!bad[0] && total < WL_THREADS * WL_PER && rpc_kv_watch_next(st, &m) == 1) {
      if (m->version->generation <= from)
        snprintf(bad, sizeof bad, "generation %llu after %llu",
                 (unsigned long long)m->version->generation, (unsigned long long)from);
      for (size_t i = 0; !bad[0] && i < m->n_changes; i++) {
        long t;
        int n;
        char k[32];
        snprintf(k, sizeof k, "%.*s", (int)m->changes[i]->key.len, (char *)m->changes[i]->key.data);
        if (sscanf(k, "wl/%ld/%d", &t, &n) != 2 || t < 0 || t >= WL_THREADS || n < 0 || n >= WL_PER) {
          snprintf(bad, sizeof bad, "unexpected key %s", k);
          break;
        }
        seen[t][n]++;
        total++;
      }
      if (!m->more) from = m->version->generation;
      rpc_free(m);
      /* Hang up once, in the middle, after a complete generation. */
      if (connections == 1 && ++in_this >= 20 && from) break;
    }
    rpc_cstream_close(st);
  }
  for (int i = 0; i < WL_THREADS; i++) pthread_join(th[i], NULL);
  if (bad[0]) fail_msg("%s", bad);
  assert_true(connections >= 2);
  for (int t = 0; t < WL_THREADS; t++)
    for (int n = 0; n < WL_PER; n++)
      if (seen[t][n] != 1) fail_msg("key wl/%d/%03d seen %d times", t, n, seen[t][n]);
}

/* Commits n keys, value "v", in one generation and returns it: key i is
 * in_fmt % i for i < in, out_fmt % i after. */
static uint64_t commit_keys(int n, int in, const char *in_fmt, const char *out_fmt) {
  char(*kb)[16] = calloc((size_t)n, sizeof *kb);
  Strata__V1__Put *p = calloc((size_t)n, sizeof *p);
  Strata__V1__Put **pp = calloc((size_t)n, sizeof *pp);
  assert_true(kb && p && pp);
  for (int i = 0; i < n; i++) {
    snprintf(kb[i], sizeof kb[i], i < in ? in_fmt : out_fmt, i);
    strata__v1__put__init(&p[i]);
    p[i].key = t_bytes(kb[i]);
    p[i].value = t_bytes("v");
    pp[i] = &p[i];
  }
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = (size_t)n;
  q.puts = pp;
  Strata__V1__CommitResponse *r;
  assert_int_equal(rpc_kv_commit(C, NULL, &q, &r), 0);
  uint64_t g = r->version->generation;
  rpc_free(r);
  free(kb);
  free(p);
  free(pp);
  return g;
}

/* Watches prefix from `from` until a message with more = false: every message is
 * generation g's, with per_msg changes when per_msg > 0, and the keys are fmt % 0,
 * 1, ... in order. Returns the number of messages; *keys the number of keys and
 * *last_more the last message's more. */
static int watch_generation(uint64_t from, const char *prefix, uint64_t g, size_t per_msg,
                            const char *fmt, int *keys, int *last_more) {
  Strata__V1__WatchRequest wq = STRATA__V1__WATCH_REQUEST__INIT;
  wq.from_generation = from;
  wq.prefix = t_bytes(prefix);
  rpc_cstream *st;
  assert_int_equal(rpc_kv_watch(C, NULL, &wq, &st), 0);
  Strata__V1__WatchResponse *m;
  int msgs = 0;
  *keys = 0;
  *last_more = 1;
  while (*last_more && rpc_kv_watch_next(st, &m) == 1) {
    assert_int_equal(m->version->generation, g);
    if (per_msg) assert_int_equal(m->n_changes, per_msg);
    for (size_t i = 0; i < m->n_changes; i++, (*keys)++) {
      char want[16];
      snprintf(want, sizeof want, fmt, *keys);
      assert_int_equal(m->changes[i]->key.len, strlen(want));
      assert_memory_equal(m->changes[i]->key.data, want, strlen(want));
    }
    *last_more = m->more;
    msgs++;
    rpc_free(m);
  }
  rpc_cstream_close(st);
  return msgs;
}

/* A generation that changed 2500 keys arrives split (more = true) and whole. */
void test_kv_watch_splits_a_large_generation(void **state) {
  (void)state;
  uint64_t from;
  assert_int_equal(srv_latest(&from), 0);
  enum { N = 2500 };
  uint64_t g = commit_keys(N, N, "wm/%05d", "wm/%05d");
  int keys, last_more;
  int msgs = watch_generation(from, "wm/", g, 0, "wm/%05d", &keys, &last_more);
  assert_int_equal(keys, N);
  assert_true(msgs >= 3);
  assert_int_equal(last_more, 0);
}

/* A generation found while it is sent: 2,000 changes under the prefix among
 * 1,500 outside it arrive as exactly two full messages, the second with more
 * = false (the look-ahead never leaves an empty message at the end), in key
 * order, and the keys outside the prefix never appear. */
void test_kv_watch_streams_a_generation_without_an_empty_tail(void **state) {
  (void)state;
  uint64_t from;
  assert_int_equal(srv_latest(&from), 0);
  enum { IN = 2000, OUT = 1500, N = IN + OUT };
  /* "wx%05d" sorts among them, not under "wx/" */
  uint64_t g = commit_keys(N, IN, "wx/%05d", "wx%05d");
  int keys, last_more;
  int msgs = watch_generation(from, "wx/", g, 1000, "wx/%05d", &keys, &last_more);
  assert_int_equal(keys, IN);
  assert_int_equal(msgs, 2);
  assert_int_equal(last_more, 0);
}
