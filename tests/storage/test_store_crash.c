/* Crash test: a child process commits continuously (groups of concurrent
 * transactions, some with multi-MiB values) and reports every acknowledged
 * transaction over a pipe; the parent SIGKILLs it at a random moment, reopens
 * the database and checks that it opens cleanly (no temp files; at most the
 * interrupted commit's data file past the latest generation, reported),
 * that every acknowledged transaction is there, and that no transaction is
 * partly visible (each one writes a/ID, b/ID and big/ID or nothing). The
 * child commits on the per-group files path and the parent opens in commit
 * log mode (the default); then the other way round: the kill lands during
 * log appends and during the publisher's batches (10 ms apart), and the
 * parent's open on the per-group path replays the log. So each mode opens
 * what a killed process of the other left.
 * STRATA_SEED picks the seed (printed on failure); STRATA_CRASH_KILLS the
 * number of kills per mode (default 200). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "storage/store.h"

static uint64_t seed, rng;
static char dir[256];
static int log_mode; /* children commit through the commit log; else the per-group path */

static uint64_t rnd(void) {
  rng ^= rng >> 12;
  rng ^= rng << 25;
  rng ^= rng >> 27;
  return rng * 2685821657736338717ull;
}

#define FAIL(...)                                                                  \
  do {                                                                             \
    fprintf(stderr, "FAILED (STRATA_SEED=%llu): ", (unsigned long long)seed);      \
    fprintf(stderr, __VA_ARGS__);                                                  \
    fprintf(stderr, "\n");                                                         \
    exit(1);                                                                       \
  } while (0)

/* --- child ----------------------------------------------------------------------- */

typedef struct ack {
  uint64_t id, gen;
} ack;

static int ack_fd;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int inflight;

static void on_done(void *ctx, const st_result *r) {
  if (r->rc) {
    fprintf(stderr, "child: commit failed: %s\n", r->message);
    _exit(3);
  }
  ack a = {(uint64_t)(uintptr_t)ctx, r->generation};
  if (write(ack_fd, &a, sizeof a) != (ssize_t)sizeof a) _exit(4);
  pthread_mutex_lock(&mu);
  inflight--;
  pthread_cond_signal(&cv);
  pthread_mutex_unlock(&mu);
}

static void child(uint64_t first_id, uint64_t cseed) {
  rng = cseed;
  st_options o;
  memset(&o, 0, sizeof o);
  o.create = 1;
  o.config.max_decoded_node_bytes = 4096;
  o.no_commit_log = !log_mode;
  st_db *db;
  if (st_open(dir, &o, &db)) {
    fprintf(stderr, "child: open: %s\n", strata_errmsg());
    _exit(2);
  }
  static uint8_t big[3 << 20];
  memset(big, 'B', sizeof big);
  for (uint64_t id = first_id;;) {
    int n = 1 + (int)(rnd() % 4);
    pthread_mutex_lock(&mu);
    inflight += n;
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < n; i++, id++) {
      st_txn *t;
      char k[32], v[32];
      if (st_txn_begin(db, &t)) _exit(5);
      snprintf(v, sizeof v, "%llu", (unsigned long long)id);
      snprintf(k, sizeof k, "a/%012llu", (unsigned long long)id);
      st_txn_put(t, k, strlen(k), v, strlen(v));
      snprintf(k, sizeof k, "b/%012llu", (unsigned long long)id);
      st_txn_put(t, k, strlen(k), v, strlen(v));
      size_t bl = rnd() % 8 == 0 ? (1u << 20) + rnd() % (2u << 20) : 200 + rnd() % 3000;
      snprintf(k, sizeof k, "big/%012llu", (unsigned long long)id);
      st_txn_put_borrowed(t, k, strlen(k), big, bl);
      st_txn_put(t, "last", 4, v, strlen(v));
      if (st_txn_submit(t, on_done, (void *)(uintptr_t)id)) _exit(6);
    }
    pthread_mutex_lock(&mu);
    while (inflight) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
  }
}

/* --- parent ------------------------------------------------------------------------ */

static uint8_t *acked;      /* acked[id] = 1 */
static uint64_t max_id_cap;

static void list_ids(st_snap *s, const char *prefix, uint8_t *seen, uint64_t *count) {
  strata_buf end = STRATA_BUF_INIT, next = STRATA_BUF_INIT;
  st_range r;
  if (st_prefix_range(prefix, strlen(prefix), &r, &end)) FAIL("prefix range");
  r.keys_only = 1;
  *count = 0;
  for (;;) {
    st_list_result lr;
    if (st_list(s, &r, 5000, &lr)) FAIL("list %s: %s", prefix, strata_errmsg());
    for (size_t i = 0; i < lr.n; i++) {
      char num[32];
      size_t pl = strlen(prefix), nl = lr.items[i].klen - pl;
      if (nl >= sizeof num) FAIL("unexpected key under %s", prefix);
      memcpy(num, lr.items[i].key + pl, nl);
      num[nl] = 0; /* keys are not NUL-terminated */
      uint64_t id = strtoull(num, NULL, 10);
      if (id >= max_id_cap) FAIL("id %llu out of range", (unsigned long long)id);
      seen[id] |= 1;
      (*count)++;
    }
    int more = lr.more;
    if (more) {
      next.len = 0;
      strata_buf_append(&next, lr.next.p, lr.next.len);
      r.start = next.p;
      r.start_len = next.len;
    }
    st_list_result_free(&lr);
    if (!more) break;
  }
  strata_buf_free(&end);
  strata_buf_free(&next);
}

static uint64_t any_acked; /* set once a child acknowledged anything */

/* Opens the database the killed child left (in the child's other commit mode). */
static st_db *reopen_after_kill(uint64_t cycle) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = log_mode; /* the child's other mode */
  st_db *db;
  if (st_open(dir, &o, &db)) {
    /* A kill during the very first create leaves no database: correct, since
     * nothing was acknowledged; but the leftovers must not block creating it. */
    int rc = STRATA_ENOTFOUND;
    if (!any_acked) {
      o.create = 1;
      o.config.max_decoded_node_bytes = 4096; /* as the children create it */
      rc = st_open(dir, &o, &db);
    }
    if (rc) FAIL("cycle %llu: reopen after kill: %s", (unsigned long long)cycle, strata_errmsg());
    fprintf(stderr, "cycle %llu: the kill interrupted the first create; created again over its leftovers\n",
            (unsigned long long)cycle);
  }
  return db;
}

/* Opened cleanly: no temp manifests; no data file newer than L + 1 (the commit
 * the kill interrupted, kept by open and reported as a stray, never deleted: it
 * may be the data of a lost manifest), and that one not empty. */
static void check_files(uint64_t L, uint64_t cycle, uint64_t reported_strays) {
  bs_store *fs;
  char **names;
  size_t n;
  if (bs_file_open(dir, &fs)) FAIL("open dir");
  if (bs_list(fs, "", &names, &n)) FAIL("list dir");
  for (size_t i = 0; i < n; i++)
    if (!strncmp(names[i], "tmp.", 4)) FAIL("cycle %llu: %s left after open", (unsigned long long)cycle, names[i]);
  free(names);
  if (bs_list(fs, "d", &names, &n)) FAIL("list d");
  uint64_t strays = 0;
  for (size_t i = 0; i < n; i++) {
    char gen[17];
    memcpy(gen, names[i], 16);
    gen[16] = 0;
    uint64_t fg = strtoull(gen, NULL, 16), size = 0;
    if (fg <= L) continue;
    if (fg > L + 1) FAIL("cycle %llu: orphan d/%s after generation %llu", (unsigned long long)cycle,
                         names[i], (unsigned long long)L);
    char path[64];
    bs_file *f;
    snprintf(path, sizeof path, "d/%s", names[i]);
    if (bs_open_read(fs, path, &f) || bs_size(f, &size)) FAIL("size of %s", path);
    bs_close(f);
    if (size == 0) FAIL("cycle %llu: empty %s left after open", (unsigned long long)cycle, path);
    strays++;
  }
  if (strays != reported_strays)
    FAIL("cycle %llu: %llu stray data files, open reported %llu", (unsigned long long)cycle,
         (unsigned long long)strays, (unsigned long long)reported_strays);
  free(names);
  bs_destroy(fs);
}

/* Every acknowledged transaction whole at latest, every other one whole or
 * absent, every value readable; then the files. Returns one past the highest
 * transaction id visible. */
static uint64_t verify(uint64_t next_id, uint64_t cycle) {
  st_db *db = reopen_after_kill(cycle);
  st_snap *s;
  st_snap_latest(db, &s);
  uint64_t L = st_snap_info(s).generation;
  uint8_t *a = calloc(next_id + 1, 1), *b = calloc(next_id + 1, 1), *g = calloc(next_id + 1, 1);
  uint64_t na, nb, ng;
  list_ids(s, "a/", a, &na);
  list_ids(s, "b/", b, &nb);
  list_ids(s, "big/", g, &ng);
  for (uint64_t id = 0; id < next_id; id++) {
    if (acked[id] && !a[id]) FAIL("cycle %llu: acknowledged transaction %llu is missing", (unsigned long long)cycle,
                                  (unsigned long long)id);
    if (a[id] != b[id] || a[id] != g[id])
      FAIL("cycle %llu: transaction %llu is partly visible (a %d b %d big %d; listed %llu %llu %llu)", (unsigned long long)cycle, (unsigned long long)id, a[id], b[id], g[id], (unsigned long long)na, (unsigned long long)nb, (unsigned long long)ng);
  }
  /* every key's value reads back (values and nodes intact) */
  strata_buf v = STRATA_BUF_INIT;
  if (st_get(s, "last", 4, &v) && na) FAIL("cycle %llu: 'last' missing", (unsigned long long)cycle);
  strata_buf_free(&v);
  if (na && (st_snap_info(s).num_keys != na + nb + ng + 1))
    FAIL("cycle %llu: num_keys %llu, listed %llu", (unsigned long long)cycle,
         (unsigned long long)st_snap_info(s).num_keys, (unsigned long long)(na + nb + ng + 1));
  st_snap_release(s);
  st_stats stats;
  st_get_stats(db, &stats);
  st_close(db);
  check_files(L, cycle, stats.stray_data_files);
  uint64_t top = 0;
  for (uint64_t id = 0; id < next_id; id++)
    if (a[id]) top = id + 1;
  free(a);
  free(b);
  free(g);
  return top;
}

static int run(int kills) {
  snprintf(dir, sizeof dir, "/tmp/strata-crash-%d", (int)getpid());
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd)) return 1;
  any_acked = 0;
  fprintf(stderr, "crash test: STRATA_SEED=%llu, %d kills, %s%s\n", (unsigned long long)seed, kills, dir,
          log_mode ? ", commit log mode" : "");
  /* Ids stay dense: each child starts after the largest id the database
   * holds, so the arrays stay small. */
  uint64_t per_cycle = 100000, next_first = 0;
  max_id_cap = per_cycle * (uint64_t)(kills + 1);
  acked = calloc(max_id_cap, 1);
  uint64_t total_acks = 0, max_gen = 0;
  for (int c = 0; c < kills; c++) {
    int fds[2];
    if (pipe(fds)) FAIL("pipe");
    uint64_t first = next_first;
    uint64_t cseed = rnd();
    pid_t pid = fork();
    if (pid < 0) FAIL("fork: %s", strerror(errno));
    if (pid == 0) {
      close(fds[0]);
      ack_fd = fds[1];
      child(first, cseed);
      _exit(0);
    }
    close(fds[1]);
    /* 1..41 ms; the first cycle kills within 2 ms, usually inside the very
     * first create, which must not leave a directory that cannot be created. */
    struct timespec ts = {0, c == 0 ? (long)(rnd() % 2000000) : (long)(1000000 + rnd() % 40000000)};
    nanosleep(&ts, NULL);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status)) FAIL("cycle %d: child exited by itself with status %d", c, WEXITSTATUS(status));
    ack a;
    ssize_t r;
    while ((r = read(fds[0], &a, sizeof a)) == (ssize_t)sizeof a) {
      if (a.id < first || a.id >= first + per_cycle) FAIL("bad ack id");
      acked[a.id] = 1;
      any_acked = 1;
      total_acks++;
      if (a.gen > max_gen) max_gen = a.gen;
    }
    close(fds[0]);
    uint64_t top = verify(first + per_cycle, (uint64_t)c);
    next_first = top > first ? top : first;
    for (uint64_t id = first; id < first + per_cycle; id++)
      if (acked[id] && id + 1 > next_first) next_first = id + 1;
  }
  fprintf(stderr, "crash test: %d kills, %llu acknowledged transactions, up to generation %llu: all present, "
          "none partial\n", kills, (unsigned long long)total_acks, (unsigned long long)max_gen);
  if (total_acks == 0) FAIL("no transaction was ever acknowledged");
  if (system(cmd)) return 1;
  free(acked);
  return 0;
}

int main(void) {
  const char *s = getenv("STRATA_SEED");
  seed = s ? strtoull(s, NULL, 10) : (uint64_t)time(NULL);
  rng = seed * 0x2545F4914F6CDD1Dull + 3;
  const char *k = getenv("STRATA_CRASH_KILLS");
  int kills = k ? atoi(k) : 200;
  if (run(kills)) return 1;
  log_mode = 1;
  return run(kills);
}
