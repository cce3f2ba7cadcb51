/* The S3 base store (storage/base_s3.c) against a real S3 endpoint (Ceph's
 * radosgw, started by the s3 tier: tests/s3/tier.sh): the base-store contract,
 * ranged and concurrent reads, conditional creates racing (exactly one
 * winner), rename never replacing, listings past one page, refused
 * credentials, unreachable and dead endpoints, a whole database committing
 * and reopening, and SIGKILLs of a process committing into S3.
 * Environment: STRATA_S3_ENDPOINT, STRATA_S3_BUCKET, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION (optional: AWS_SESSION_TOKEN); without
 * them the test fails (the harness did not run). STRATA_S3_KILLS: kills of
 * the crash test (default 4). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/base.h"
#include "storage/store.h"
#include "tests/unit/base_contract.h"

static bs_s3_config env_cfg;
static char run_prefix[96]; /* every test's objects live under run_prefix/NAME */

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A store on the harness's bucket under run_prefix/name. */
static bs_store *open_s3(const char *name) {
  static __thread char prefix[256];
  snprintf(prefix, sizeof prefix, "%s/%s", run_prefix, name);
  bs_s3_config c = env_cfg;
  c.prefix = prefix;
  bs_store *s = NULL;
  int rc = bs_s3_open(&c, &s);
  if (rc) fprintf(stderr, "bs_s3_open: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return s;
}

static void put_file(bs_store *s, const char *path, const void *p, size_t n) {
  bs_file *f;
  assert_int_equal(bs_create(s, path, &f), 0);
  assert_int_equal(bs_append(f, p, n), 0);
  int rc = bs_fsync(f);
  if (rc) fprintf(stderr, "fsync %s: %s\n", path, strata_errmsg());
  assert_int_equal(rc, 0);
  bs_close(f);
}

static void test_contract(void **state) {
  bs_store *s = open_s3("contract");
  check_contract(s, 0);
  assert_int_equal(bs_lock(s), 0); /* no lock in S3: documented no-op */
  bs_destroy(s);
}

typedef struct shared_reader {
  bs_file *f;
  volatile int stop;
  int reads, bad;
} shared_reader;

/* Reads bytes 0..5 ("abcdef") through a handle other threads share. */
static void *read_shared(void *p) {
  shared_reader *r = p;
  while (!r->stop || r->reads < 50) {
    char buf[6];
    if (bs_pread(r->f, 0, buf, 6) || memcmp(buf, "abcdef", 6)) r->bad++;
    r->reads++;
  }
  return NULL;
}

/* A file being written is read from memory by this process (the engine
 * reads a batch's nodes back before publishing it); once written and
 * closed, the same handle reads the object. */
static void test_read_while_writing(void **state) {
  bs_store *s = open_s3("rw");
  bs_file *f, *g, *h;
  char buf[8];
  uint64_t size;
  assert_int_equal(bs_create(s, "d/w", &f), 0);
  assert_int_equal(bs_append(f, "abc", 3), 0);
  assert_int_equal(bs_open_read(s, "d/w", &g), 0);
  assert_int_equal(bs_pread(g, 0, buf, 3), 0);
  assert_memory_equal(buf, "abc", 3);
  assert_int_equal(bs_append(f, "def", 3), 0);
  assert_int_equal(bs_pread(g, 3, buf, 3), 0);
  assert_memory_equal(buf, "def", 3);
  assert_int_equal(bs_pread(g, 4, buf, 3), STRATA_ERANGE);
  /* four threads read through g (one handle, as the engine's file table
   * shares it) while the writer uploads and closes: g moves to the object */
  shared_reader sr[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    sr[i] = (shared_reader){.f = g};
    assert_int_equal(pthread_create(&t[i], NULL, read_shared, &sr[i]), 0);
  }
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
  for (int i = 0; i < 4; i++) {
    sr[i].stop = 1;
    pthread_join(t[i], NULL);
    assert_int_equal(sr[i].bad, 0);
  }
  assert_int_equal(bs_pread(g, 1, buf, 5), 0); /* now from the object */
  assert_memory_equal(buf, "bcdef", 5);
  assert_int_equal(bs_size(g, &size), 0);
  assert_int_equal(size, 6);
  bs_close(g);
  /* appended after the last fsync and closed: not in the object */
  assert_int_equal(bs_create(s, "d/v", &f), 0);
  assert_int_equal(bs_append(f, "12", 2), 0);
  assert_int_equal(bs_fsync(f), 0);
  assert_int_equal(bs_append(f, "34", 2), 0);
  bs_close(f);
  assert_int_equal(bs_open_read(s, "d/v", &h), 0);
  assert_int_equal(bs_size(h, &size), 0);
  assert_int_equal(size, 2);
  bs_close(h);
  /* removed while open for writing: a later fsync does not bring it back */
  assert_int_equal(bs_create(s, "d/x", &f), 0);
  assert_int_equal(bs_append(f, "1", 1), 0);
  assert_int_equal(bs_fsync(f), 0);
  assert_int_equal(bs_remove(s, "d/x"), 0);
  assert_int_equal(bs_append(f, "2", 1), 0);
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
  assert_int_equal(bs_open_read(s, "d/x", &h), STRATA_ENOTFOUND);
  /* created and never fsynced: no object */
  assert_int_equal(bs_create(s, "d/u", &f), 0);
  bs_close(f);
  assert_int_equal(bs_open_read(s, "d/u", &h), STRATA_ENOTFOUND);
  bs_destroy(s);
}

/* PREFIX/path is the key: a store on the prefix and one on the bucket's
 * root see the same object; slashes around the prefix do not matter. */
static void test_prefix_is_the_key(void **state) {
  bs_store *a = open_s3("pfx/inner");
  put_file(a, "d/obj", "key", 3);
  char prefix[256], path[256];
  snprintf(prefix, sizeof prefix, "/%s/pfx/", run_prefix);
  bs_s3_config c = env_cfg;
  c.prefix = prefix;
  bs_store *b, *root;
  assert_int_equal(bs_s3_open(&c, &b), 0);
  expect_file(b, "inner/d/obj", "key", 3, 3);
  c.prefix = "";
  assert_int_equal(bs_s3_open(&c, &root), 0);
  snprintf(path, sizeof path, "%s/pfx/inner/d/obj", run_prefix);
  expect_file(root, path, "key", 3, 3);
  char **names;
  size_t n;
  assert_int_equal(bs_list(b, "inner", &names, &n), 0);
  assert_int_equal(n, 1);
  assert_string_equal(names[0], "d");
  free(names);
  bs_destroy(root);
  bs_destroy(b);
  bs_destroy(a);
}

typedef struct reader_arg {
  bs_store *s;
  const uint8_t *want;
  size_t len;
  unsigned seed;
  int bad;
} reader_arg;

static void *reader(void *p) {
  reader_arg *a = p;
  bs_file *f;
  if (bs_open_read(a->s, "big", &f)) {
    a->bad = 1000;
    return NULL;
  }
  uint8_t *buf = malloc(70000);
  for (int i = 0; i < 40; i++) {
    size_t n = 1 + rand_r(&a->seed) % 70000, off = rand_r(&a->seed) % (a->len - n);
    if (bs_pread(f, off, buf, n) || memcmp(buf, a->want + off, n)) a->bad++;
  }
  free(buf);
  bs_close(f);
  return NULL;
}

/* Ranged GETs: exact windows anywhere in a multi-MiB object, the end, past
 * it; eight threads reading at once share the connections. */
static void test_ranged_and_concurrent_reads(void **state) {
  bs_store *s = open_s3("ranges");
  size_t len = 5u << 20;
  uint8_t *data = malloc(len), *buf = malloc(len);
  for (size_t i = 0; i < len; i++) data[i] = (uint8_t)(i * 2654435761u >> 13);
  put_file(s, "big", data, len);
  bs_file *f;
  assert_int_equal(bs_open_read(s, "big", &f), 0);
  uint64_t size;
  assert_int_equal(bs_size(f, &size), 0);
  assert_int_equal(size, len);
  assert_int_equal(bs_pread(f, 0, buf, len), 0);
  assert_memory_equal(buf, data, len);
  assert_int_equal(bs_pread(f, 1234567, buf, 1), 0);
  assert_int_equal(buf[0], data[1234567]);
  assert_int_equal(bs_pread(f, len - 10, buf, 10), 0);
  assert_memory_equal(buf, data + len - 10, 10);
  assert_int_equal(bs_pread(f, len, buf, 0), 0);
  assert_int_equal(bs_pread(f, len - 10, buf, 11), STRATA_ERANGE);
  assert_int_equal(bs_pread(f, len + 1, buf, 0), STRATA_ERANGE);
  bs_close(f);
  pthread_t t[8];
  reader_arg a[8];
  for (int i = 0; i < 8; i++) {
    a[i] = (reader_arg){s, data, len, 77u + (unsigned)i, 0};
    assert_int_equal(pthread_create(&t[i], NULL, reader, &a[i]), 0);
  }
  for (int i = 0; i < 8; i++) {
    pthread_join(t[i], NULL);
    assert_int_equal(a[i].bad, 0);
  }
  free(data);
  free(buf);
  bs_destroy(s);
}

/* --- conditional creates racing -------------------------------------------------- */

#define RACERS 8
typedef struct racer {
  bs_store *s;
  pthread_barrier_t *bar;
  const char *path;
  int id, via_rename;
  int rc;
  char msg[512];
} racer;

static void *race_one(void *p) {
  racer *r = p;
  bs_file *f = NULL;
  char tmp[64], val[32];
  snprintf(val, sizeof val, "writer-%d", r->id);
  snprintf(tmp, sizeof tmp, "tmp.racer-%d", r->id);
  if (r->via_rename) put_file(r->s, tmp, val, strlen(val));
  pthread_barrier_wait(r->bar);
  if (r->via_rename) {
    r->rc = bs_rename(r->s, tmp, r->path);
  } else {
    r->rc = bs_create(r->s, r->path, &f);
    if (!r->rc && !(r->rc = bs_append(f, val, strlen(val)))) r->rc = bs_fsync(f);
    bs_close(f);
  }
  snprintf(r->msg, sizeof r->msg, "%s", r->rc ? strata_errmsg() : "");
  return NULL;
}

/* RACERS stores (as many servers) create one name at once, by create +
 * fsync or by rename (how a numbered manifest is published): exactly one
 * wins, the others get STRATA_EEXISTS, and the object is the winner's. */
static void race(const char *name, int via_rename) {
  bs_store *s[RACERS];
  racer r[RACERS];
  pthread_t t[RACERS];
  pthread_barrier_t bar;
  pthread_barrier_init(&bar, NULL, RACERS);
  for (int i = 0; i < RACERS; i++) {
    s[i] = open_s3("race");
    r[i] = (racer){.s = s[i], .bar = &bar, .path = name, .id = i, .via_rename = via_rename};
    assert_int_equal(pthread_create(&t[i], NULL, race_one, &r[i]), 0);
  }
  int winner = -1, wins = 0;
  for (int i = 0; i < RACERS; i++) {
    pthread_join(t[i], NULL);
    if (!r[i].rc) {
      wins++;
      winner = i;
    } else {
      if (r[i].rc != STRATA_EEXISTS) fprintf(stderr, "racer %d: %s\n", i, r[i].msg);
      assert_int_equal(r[i].rc, STRATA_EEXISTS);
      assert_non_null(strstr(r[i].msg, name));
    }
  }
  assert_int_equal(wins, 1);
  uint8_t *p;
  size_t n;
  char want[32];
  snprintf(want, sizeof want, "writer-%d", winner);
  assert_int_equal(bs_read_all(s[0], name, &p, &n), 0);
  assert_int_equal(n, strlen(want));
  assert_memory_equal(p, want, n);
  free(p);
  if (via_rename) { /* the winner's temp file is gone, each loser's stays */
    bs_file *f;
    for (int i = 0; i < RACERS; i++) {
      char tmp[64];
      snprintf(tmp, sizeof tmp, "tmp.racer-%d", i);
      assert_int_equal(bs_open_read(s[0], tmp, &f), i == winner ? STRATA_ENOTFOUND : 0);
      if (i != winner) {
        bs_close(f);
        assert_int_equal(bs_remove(s[0], tmp), 0);
      }
    }
  }
  for (int i = 0; i < RACERS; i++) bs_destroy(s[i]);
  pthread_barrier_destroy(&bar);
}

static void test_conditional_create_race(void **state) {
  char name[64];
  for (int k = 0; k < 4; k++) {
    snprintf(name, sizeof name, "d/raced-%d", k);
    race(name, 0);
  }
  /* the losers' message says who created it */
  bs_store *s = open_s3("race");
  bs_file *f, *g;
  bs_store *t = open_s3("race");
  assert_int_equal(bs_create(s, "d/late", &f), 0);
  assert_int_equal(bs_create(t, "d/late", &g), 0); /* neither has PUT yet */
  assert_int_equal(bs_append(f, "s", 1), 0);
  assert_int_equal(bs_append(g, "t", 1), 0);
  assert_int_equal(bs_fsync(f), 0);
  assert_int_equal(bs_fsync(g), STRATA_EEXISTS);
  assert_non_null(strstr(strata_errmsg(), "another writer"));
  assert_non_null(strstr(strata_errmsg(), "d/late"));
  assert_int_equal(bs_append(f, "ss", 2), 0); /* the owner PUTs again */
  assert_int_equal(bs_fsync(f), 0);
  bs_close(f);
  bs_close(g);
  expect_file(t, "d/late", "sss", 3, 3);
  bs_destroy(s);
  bs_destroy(t);
}

static void test_rename_race_and_no_replace(void **state) {
  char name[64];
  for (int k = 0; k < 3; k++) {
    snprintf(name, sizeof name, "manifest.%016x", k + 1);
    race(name, 1);
  }
  bs_store *s = open_s3("rename");
  put_file(s, "manifest.0000000000000001", "first", 5);
  put_file(s, "tmp.manifest.0000000000000001", "second", 6);
  assert_int_equal(bs_rename(s, "tmp.manifest.0000000000000001", "manifest.0000000000000001"), STRATA_EEXISTS);
  assert_non_null(strstr(strata_errmsg(), "manifest.0000000000000001"));
  expect_file(s, "manifest.0000000000000001", "first", 5, 5);  /* unchanged */
  expect_file(s, "tmp.manifest.0000000000000001", "second", 6, 6); /* kept */
  /* a rename of a file another store wrote (no copy in memory: a GET) */
  bs_store *t = open_s3("rename");
  assert_int_equal(bs_rename(t, "tmp.manifest.0000000000000001", "manifest.0000000000000002"), 0);
  expect_file(s, "manifest.0000000000000002", "second", 6, 6);
  bs_file *f;
  assert_int_equal(bs_open_read(s, "tmp.manifest.0000000000000001", &f), STRATA_ENOTFOUND);
  assert_int_equal(bs_rename(t, "tmp.gone", "manifest.0000000000000003"), STRATA_ENOTFOUND);
  bs_destroy(t);
  bs_destroy(s);
}

/* --- listings ---------------------------------------------------------------------- */

typedef struct maker {
  bs_store *s;
  int from, to;
} maker;

static void *make_files(void *p) {
  maker *m = p;
  for (int i = m->from; i < m->to; i++) {
    char path[64];
    snprintf(path, sizeof path, "many/f-%05d&<x>", i); /* entities in the XML */
    bs_file *f;
    if (bs_create(m->s, path, &f)) continue;
    if (!bs_append(f, path, strlen(path))) bs_fsync(f);
    bs_close(f);
  }
  return NULL;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* More than one page (1000 keys) of ListObjectsV2: every name once. */
static void test_list_pages(void **state) {
  enum { N = 1234, T = 8 };
  bs_store *s = open_s3("list");
  pthread_t t[T];
  maker m[T];
  for (int i = 0; i < T; i++) {
    m[i] = (maker){s, i * N / T, (i + 1) * N / T};
    assert_int_equal(pthread_create(&t[i], NULL, make_files, &m[i]), 0);
  }
  for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
  put_file(s, "many/sub/inner", "i", 1);
  put_file(s, "top", "t", 1);
  char **names;
  size_t n;
  assert_int_equal(bs_list(s, "many", &names, &n), 0);
  assert_int_equal(n, N + 1);
  qsort(names, n, sizeof *names, cmp_str);
  for (int i = 0; i < N; i++) {
    char want[64];
    snprintf(want, sizeof want, "f-%05d&<x>", i);
    assert_string_equal(names[i], want);
  }
  assert_string_equal(names[N], "sub"); /* a subdirectory, as readdir gives it */
  free(names);
  assert_int_equal(bs_list(s, "", &names, &n), 0);
  assert_int_equal(n, 2);
  qsort(names, n, sizeof *names, cmp_str);
  assert_string_equal(names[0], "many");
  assert_string_equal(names[1], "top");
  free(names);
  assert_int_equal(bs_list(s, "nothing-here", &names, &n), 0);
  assert_int_equal(n, 0);
  free(names);
  bs_destroy(s);
}

/* --- failures ---------------------------------------------------------------------- */

static void test_refused_credentials(void **state) {
  bs_s3_config c = env_cfg;
  c.secret_key = "not-the-secret-0123456789";
  bs_store *s;
  assert_int_equal(bs_s3_open(&c, &s), EACCES);
  const char *m = strata_errmsg();
  fprintf(stderr, "  refused: %s\n", m);
  assert_non_null(strstr(m, env_cfg.access_key));
  assert_non_null(strstr(m, env_cfg.bucket));
  assert_non_null(strstr(m, "403"));
  assert_null(strstr(m, c.secret_key));
  assert_null(strstr(m, env_cfg.secret_key));
  c = env_cfg;
  c.access_key = "NOSUCHKEY0000000000";
  assert_int_equal(bs_s3_open(&c, &s), EACCES);
  assert_non_null(strstr(strata_errmsg(), "NOSUCHKEY0000000000"));
  c = env_cfg;
  c.bucket = "strata-no-such-bucket";
  assert_int_equal(bs_s3_open(&c, &s), STRATA_ENOTFOUND);
  assert_non_null(strstr(strata_errmsg(), "strata-no-such-bucket"));
}

/* Nothing listens: refused at once, each attempt; the message names the
 * endpoint and the bucket. */
static void test_unreachable_endpoint(void **state) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  close(fd); /* the port is now closed */
  char ep[64];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", ntohs(a.sin_port));
  bs_s3_config c = env_cfg;
  c.endpoint = ep;
  bs_store *s;
  double t0 = now_s();
  assert_int_equal(bs_s3_open(&c, &s), ECONNREFUSED);
  assert_true(now_s() - t0 < 10);
  assert_non_null(strstr(strata_errmsg(), ep));
  assert_non_null(strstr(strata_errmsg(), env_cfg.bucket));
}

/* A dead endpoint: it accepts connections (the kernel's backlog) and never
 * answers. Each attempt gives up after the stall timeout, so open fails in
 * about attempts x timeout instead of hanging. */
static void test_dead_endpoint_times_out(void **state) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(fd, 16), 0);
  assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
  char ep[64];
  snprintf(ep, sizeof ep, "http://127.0.0.1:%d", ntohs(a.sin_port));
  bs_s3_config c = env_cfg;
  c.endpoint = ep;
  c.timeout_ms = 1000;
  c.attempts = 2;
  bs_store *s;
  double t0 = now_s();
  assert_int_equal(bs_s3_open(&c, &s), ETIMEDOUT);
  double took = now_s() - t0;
  fprintf(stderr, "  dead endpoint: %s (%.1f s)\n", strata_errmsg(), took);
  assert_true(took >= 1.0 && took < 15.0);
  assert_non_null(strstr(strata_errmsg(), ep));
  close(fd);
}

/* A fake endpoint that answers the first `fail` requests with `status` and
 * an S3 error body of `code`, then a ListObjectsV2 page with no keys; it
 * counts the requests. One connection at a time, closed after each answer. */
typedef struct fake_s3 {
  int fd, port, fail, status, requests;
  const char *code;
  /* when set, request i gets script[i]: "close" (the connection is dropped
   * unanswered) or "STATUS BODY"; past its end, the listing page */
  const char *const *script;
  pthread_t t;
} fake_s3;

static void *fake_serve(void *arg) {
  fake_s3 *f = arg;
  for (;;) {
    int c = accept(f->fd, NULL, NULL);
    if (c < 0) return NULL;
    char req[8192];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof req - 1 && (r = read(c, req + got, sizeof req - 1 - got)) > 0) {
      got += (size_t)r;
      req[got] = 0;
      if (strstr(req, "\r\n\r\n")) break;
    }
    char body[512], resp[1024];
    int st = 200, i = f->requests++;
    const char *sc = f->script ? f->script[i] : NULL;
    if (sc && !strcmp(sc, "close")) {
      close(c);
      continue;
    }
    if (sc) {
      st = atoi(sc);
      snprintf(body, sizeof body, "%s", strchr(sc, ' ') + 1);
    } else if (i < f->fail) {
      st = f->status;
      snprintf(body, sizeof body, "<?xml version=\"1.0\"?><Error><Code>%s</Code><Message>try &amp; see</Message></Error>",
               f->code);
    } else {
      snprintf(body, sizeof body, "<?xml version=\"1.0\"?><ListBucketResult><Name>b</Name>"
                                  "<IsTruncated>false</IsTruncated></ListBucketResult>");
    }
    int n = snprintf(resp, sizeof resp, "HTTP/1.1 %d X\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s", st,
                     strlen(body), body);
    if (write(c, resp, (size_t)n) != n) fprintf(stderr, "fake S3: short write\n");
    close(c);
  }
}

static void fake_start(fake_s3 *f, int fail, int status, const char *code, const char *const *script) {
  *f = (fake_s3){.fail = fail, .status = status, .code = code, .script = script};
  f->fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t al = sizeof a;
  assert_int_equal(bind(f->fd, (struct sockaddr *)&a, sizeof a), 0);
  assert_int_equal(listen(f->fd, 16), 0);
  assert_int_equal(getsockname(f->fd, (struct sockaddr *)&a, &al), 0);
  f->port = ntohs(a.sin_port);
  assert_int_equal(pthread_create(&f->t, NULL, fake_serve, f), 0);
}

static void fake_stop(fake_s3 *f) {
  shutdown(f->fd, SHUT_RDWR);
  close(f->fd);
  pthread_join(f->t, NULL);
}

/* What is retried: 503 SlowDown and 500 up to `attempts` tries, then
 * STRATA_EIO naming the code and the tries; a 400 never. */
static void test_retries(void **state) {
  static const struct { int fail, status; const char *code; int rc, requests; } cases[] = {
    {2, 503, "SlowDown", 0, 3},         /* the third try works */
    {9, 503, "SlowDown", STRATA_EIO, 4}, /* four tries, then the error */
    {9, 500, "InternalError", STRATA_EIO, 4},
    {9, 400, "InvalidArgument", STRATA_EIO, 1}, /* not retried */
    {9, 409, "SlowDown", STRATA_EIO, 2},        /* SlowDown is retried whatever the status */
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    fake_s3 f;
    fake_start(&f, cases[i].fail, cases[i].status, cases[i].code, NULL);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", f.port);
    bs_s3_config c = env_cfg;
    c.endpoint = ep;
    c.attempts = cases[i].status == 409 ? 2 : 4;
    bs_store *s = NULL;
    int rc = bs_s3_open(&c, &s);
    fake_stop(&f);
    if (rc != cases[i].rc) fprintf(stderr, "case %zu: %s\n", i, strata_errmsg());
    assert_int_equal(rc, cases[i].rc);
    assert_int_equal(f.requests, cases[i].requests);
    if (rc) {
      assert_non_null(strstr(strata_errmsg(), cases[i].code));
      assert_non_null(strstr(strata_errmsg(), "try & see")); /* the Message, entities decoded */
    }
    bs_destroy(s);
  }
}

/* A conditional PUT whose first attempt was cut off after it was sent, and
 * whose retry then meets 412: the object is compared with the file's bytes;
 * equal means the cut-off attempt created it (fsync succeeds), different
 * means another writer did (STRATA_EEXISTS). */
static void test_conditional_put_retried(void **state) {
  static const char *const ours[] = {
    "200 <ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>", /* open */
    "close", "412 <Error><Code>PreconditionFailed</Code></Error>", "200 mine", NULL}; /* no HEAD: d/ */
  static const char *const theirs[] = {
    "200 <ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>",
    "close", "412 <Error><Code>PreconditionFailed</Code></Error>", "200 other", NULL};
  for (int k = 0; k < 2; k++) {
    fake_s3 f;
    fake_start(&f, 0, 0, "", k ? theirs : ours);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", f.port);
    bs_s3_config c = env_cfg;
    c.endpoint = ep;
    bs_store *s;
    assert_int_equal(bs_s3_open(&c, &s), 0);
    bs_file *w;
    assert_int_equal(bs_create(s, "d/f", &w), 0);
    assert_int_equal(bs_append(w, "mine", 4), 0);
    int rc = bs_fsync(w);
    if (rc != (k ? STRATA_EEXISTS : 0)) fprintf(stderr, "case %d: %s\n", k, strata_errmsg());
    assert_int_equal(rc, k ? STRATA_EEXISTS : 0);
    bs_close(w);
    bs_destroy(s);
    fake_stop(&f);
    assert_int_equal(f.requests, 4);
  }
}

/* --- a whole database --------------------------------------------------------------- */

static char log_root[256];

static int per_group; /* open_db takes the per-group files path (no_commit_log) */

static st_db *open_db(bs_store *s, const char *logdir, int create) {
  st_options o;
  memset(&o, 0, sizeof o);
  o.no_commit_log = per_group;
  o.base = s;
  o.create = create;
  o.log_dir = logdir;
  o.config.max_decoded_node_bytes = 4096;
  o.cache_bytes = 4 << 20;
  st_db *db = NULL;
  int rc = st_open("s3", &o, &db);
  if (rc) fprintf(stderr, "st_open on S3: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  return db;
}

static void value_of(uint64_t id, uint8_t *v, size_t *n) {
  *n = id % 10 == 0 ? 100000 + id % 777 : 20 + id % 300; /* some above log_value_max (64 KiB) */
  for (size_t i = 0; i < *n; i++) v[i] = (uint8_t)(id * 31 + i);
}

/* Key k/<kid> holds value_of(vid). */
static void check_key(st_snap *sn, uint64_t kid, uint64_t vid, strata_buf *b, uint8_t *want) {
  char k[32];
  size_t n;
  snprintf(k, sizeof k, "k/%08llu", (unsigned long long)kid);
  value_of(vid, want, &n);
  b->len = 0;
  int rc = st_get(sn, k, strlen(k), b);
  if (rc) fprintf(stderr, "get %s: %s\n", k, strata_errmsg());
  assert_int_equal(rc, 0);
  assert_int_equal(b->len, n);
  assert_memory_equal(b->p, want, n);
}

static void check_walk(st_db *db) {
  st_check_result cr;
  memset(&cr, 0, sizeof cr);
  st_fileset *refs = NULL;
  assert_int_equal(st_walk(db, 1, &refs, &cr), 0);
  st_fileset_free(refs);
  for (size_t i = 0; i < cr.n_errors; i++) fprintf(stderr, "check: %s\n", cr.errors[i]);
  assert_int_equal(cr.nerrors, 0);
  assert_int_equal(cr.nmissing, 0);
  st_check_result_free(&cr);
}

/* A new database in the store run_prefix/name, its log in log_root/name. */
static st_db *new_db(const char *name, bs_store **s, char logdir[300]) {
  *s = open_s3(name);
  snprintf(logdir, 300, "%s/%s", log_root, name);
  return open_db(*s, logdir, 1);
}

/* Commits k/<kid> = value_of(vid) in a transaction of its own (buf: room for a value). */
static void commit_key(st_db *db, uint64_t kid, uint64_t vid, uint8_t *buf) {
  st_txn *t;
  st_result r;
  char k[32];
  size_t n;
  assert_int_equal(st_txn_begin(db, &t), 0);
  snprintf(k, sizeof k, "k/%08llu", (unsigned long long)kid);
  value_of(vid, buf, &n);
  assert_int_equal(st_txn_put(t, k, strlen(k), buf, n), 0);
  int rc = st_txn_commit(t, &r);
  if (rc) fprintf(stderr, "commit: %s\n", r.message);
  assert_int_equal(rc, 0);
  st_result_free(&r);
}

/* Every k/<id>, id < n, holds value_of(id + shift) at the latest generation,
 * and the check finds nothing. */
static void check_all(st_db *db, uint64_t n, uint64_t shift, uint8_t *buf) {
  strata_buf b = STRATA_BUF_INIT;
  st_snap *sn;
  assert_int_equal(st_snap_latest(db, &sn), 0);
  for (uint64_t id = 0; id < n; id++) check_key(sn, id, id + shift, &b, buf);
  st_snap_release(sn);
  strata_buf_free(&b);
  check_walk(db);
}

static void test_database_on_s3(void **state) {
  bs_store *s;
  char logdir[300];
  st_db *db = new_db("db", &s, logdir);
  uint8_t *v = malloc(200000);
  enum { N = 600 };
  for (uint64_t id = 0; id < N; id += 3) { /* 3 keys per transaction */
    st_txn *t;
    assert_int_equal(st_txn_begin(db, &t), 0);
    for (uint64_t j = id; j < id + 3; j++) {
      char k[32];
      size_t n;
      snprintf(k, sizeof k, "k/%08llu", (unsigned long long)j);
      value_of(j, v, &n);
      assert_int_equal(st_txn_put(t, k, strlen(k), v, n), 0);
    }
    st_result r;
    int rc = st_txn_commit(t, &r);
    if (rc) fprintf(stderr, "commit: %s\n", r.message);
    assert_int_equal(rc, 0);
    st_result_free(&r);
  }
  strata_buf b = STRATA_BUF_INIT;
  st_snap *sn;
  assert_int_equal(st_snap_latest(db, &sn), 0);
  for (uint64_t id = 0; id < N; id += 7) check_key(sn, id, id, &b, v); /* before publication too */
  st_snap_release(sn);
  st_close(db);
  /* what is in the bucket: numbered manifests, data files, no temp file */
  char **names;
  size_t n;
  int manifests = 0;
  assert_int_equal(bs_list(s, "", &names, &n), 0);
  for (size_t i = 0; i < n; i++) {
    assert_int_not_equal(strncmp(names[i], "tmp.", 4), 0);
    manifests += !strncmp(names[i], "manifest.", 9);
  }
  free(names);
  assert_true(manifests >= 2); /* manifest.ocdbt and a numbered one at least */
  bs_destroy(s);
  /* a fresh process's view: a new store, the same log directory */
  s = open_s3("db");
  db = open_db(s, logdir, 0);
  check_all(db, N, 0, v);
  st_close(db);
  bs_destroy(s);
  strata_buf_free(&b);
  free(v);
}

/* The per-group files path (no commit log; numbered manifests, so every
 * rename is to a new name): commits, reopens in commit log mode, reads back. */
static void test_per_group_path_on_s3(void **state) {
  bs_store *s;
  char logdir[300];
  per_group = 1;
  st_db *db = new_db("pergroup", &s, logdir);
  uint8_t *v = malloc(200000);
  for (uint64_t id = 0; id < 40; id++) commit_key(db, id, id, v);
  st_close(db);
  per_group = 0;
  db = open_db(s, logdir, 0);
  check_all(db, 40, 0, v);
  st_close(db);
  bs_destroy(s);
  free(v);
}

/* GC of Strata's own files on S3: old generations dropped, the files only
 * they referenced removed (DELETE), every retained key still there, and
 * every object left in d/ referenced. */
static void test_gc_on_s3(void **state) {
  bs_store *s;
  char logdir[300];
  st_db *db = new_db("gc", &s, logdir);
  uint8_t *v = malloc(200000);
  for (int round = 0; round < 6; round++) {
    for (uint64_t id = 0; id < 30; id++) commit_key(db, id, id + 1000 * (uint64_t)round, v); /* rewritten */
    struct timespec d = {0, 60000000L}; /* batches close: more data files */
    nanosleep(&d, NULL);
  }
  st_close(db); /* everything published */
  db = open_db(s, logdir, 0);
  st_retained rr;
  st_retained_range(db, &rr);
  st_set_retain_floor(db, rr.latest_generation);
  st_txn *t;
  st_result r;
  assert_int_equal(st_txn_begin(db, &t), 0);
  assert_int_equal(st_txn_put(t, "last", 4, "x", 1), 0);
  assert_int_equal(st_txn_commit(t, &r), 0); /* drops the versions below the floor */
  st_result_free(&r);
  st_close(db);
  db = open_db(s, logdir, 0);
  st_set_retain_floor(db, rr.latest_generation);
  st_gc_own_opts go = {.grace_ns = 0, .in_caller = 1, .idle_duty_pct = 100, .duty_pct = 100};
  st_gc_own_result gr;
  int rc = st_gc_own(db, &go, &gr);
  if (rc) fprintf(stderr, "GC: %s\n", strata_errmsg());
  assert_int_equal(rc, 0);
  fprintf(stderr, "  GC removed %llu files (%llu bytes)\n", (unsigned long long)gr.files_removed,
          (unsigned long long)gr.bytes_removed);
  assert_true(gr.files_removed > 0);
  check_all(db, 30, 5000, v);
  st_fileset *refs = NULL;
  assert_int_equal(st_walk(db, 0, &refs, NULL), 0);
  char **names;
  size_t n;
  assert_int_equal(bs_list(s, "d", &names, &n), 0);
  assert_true(n > 0);
  for (size_t i = 0; i < n; i++) {
    char path[300];
    snprintf(path, sizeof path, "d/%s", names[i]);
    if (!st_fileset_has(refs, path)) fprintf(stderr, "unreferenced: %s\n", path);
    assert_true(st_fileset_has(refs, path));
  }
  free(names);
  st_fileset_free(refs);
  st_close(db);
  bs_destroy(s);
  free(v);
}

/* --- SIGKILL of a process committing into S3 ------------------------------------------ */

/* Four threads (so that groups form) commit one key each, blocking, and
 * write each acknowledged id to the pipe (one write of 8 bytes: atomic), until
 * the process is killed. Thread t commits ids first_id + t, + 4, + 8 ... */
typedef struct committer {
  st_db *db;
  int fd;
  uint64_t id;
} committer;

static void *commit_loop(void *arg) {
  committer *c = arg;
  static __thread uint8_t v[200000];
  for (;; c->id += 4) {
    st_txn *t;
    st_result r;
    char k[32];
    size_t vl;
    if (st_txn_begin(c->db, &t)) _exit(5);
    snprintf(k, sizeof k, "k/%08llu", (unsigned long long)c->id);
    value_of(c->id, v, &vl);
    st_txn_put(t, k, strlen(k), v, vl);
    if (st_txn_commit(t, &r)) {
      fprintf(stderr, "child: commit failed: %s\n", r.message);
      _exit(3);
    }
    st_result_free(&r);
    if (write(c->fd, &c->id, sizeof c->id) != (ssize_t)sizeof c->id) _exit(4);
  }
  return NULL;
}

static void crash_child(const char *logdir, uint64_t first_id, int fd) {
  bs_s3_config c = env_cfg;
  char prefix[256];
  snprintf(prefix, sizeof prefix, "%s/crash", run_prefix);
  c.prefix = prefix;
  bs_store *s;
  if (bs_s3_open(&c, &s)) {
    fprintf(stderr, "child: open S3: %s\n", strata_errmsg());
    _exit(2);
  }
  st_options o;
  memset(&o, 0, sizeof o);
  o.base = s;
  o.create = 1;
  o.log_dir = logdir;
  o.config.max_decoded_node_bytes = 4096;
  st_db *db;
  if (st_open("s3", &o, &db)) {
    fprintf(stderr, "child: open: %s\n", strata_errmsg());
    _exit(2);
  }
  committer cs[4];
  pthread_t t[4];
  for (int i = 0; i < 4; i++) {
    cs[i] = (committer){db, fd, first_id + (uint64_t)i};
    if (pthread_create(&t[i], NULL, commit_loop, &cs[i])) _exit(7);
  }
  pthread_join(t[0], NULL); /* never returns: killed */
  _exit(8);
}

static void test_sigkill_while_committing(void **state) {
  const char *e = getenv("STRATA_S3_KILLS");
  int kills = e ? atoi(e) : 4;
  char logdir[300];
  snprintf(logdir, sizeof logdir, "%s/crash", log_root);
  uint64_t next_id = 0, total_acked = 0;
  uint8_t *v = malloc(200000);
  strata_buf b = STRATA_BUF_INIT;
  unsigned seed = (unsigned)getpid();
  for (int k = 0; k < kills; k++) {
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      close(p[0]);
      crash_child(logdir, next_id, p[1]);
    }
    close(p[1]);
    /* the kill lands 0.3-2.3 s in: during commits, uploads and publications */
    struct timespec d = {0, 300000000L};
    long ms = rand_r(&seed) % 2000;
    nanosleep(&d, NULL);
    d = (struct timespec){ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&d, NULL);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL); /* it was still committing */
    uint64_t *ids = NULL;
    size_t nids = 0, cap = 0;
    uint64_t id;
    while (read(p[0], &id, sizeof id) == (ssize_t)sizeof id) {
      if (nids == cap) ids = realloc(ids, (cap = cap ? cap * 2 : 1024) * sizeof *ids);
      ids[nids++] = id;
      if (id + 1 > next_id) next_id = id + 1;
    }
    close(p[0]);
    next_id += 8; /* ids of commits in flight at the kill are never reused */
    total_acked += nids;
    bs_store *s = open_s3("crash");
    st_db *db = open_db(s, logdir, nids == 0 && k == 0);
    st_snap *sn;
    assert_int_equal(st_snap_latest(db, &sn), 0);
    for (size_t i = 0; i < nids; i++) check_key(sn, ids[i], ids[i], &b, v);
    st_snap_release(sn);
    char **names;
    size_t nn;
    assert_int_equal(bs_list(s, "", &names, &nn), 0);
    for (size_t i = 0; i < nn; i++) assert_int_not_equal(strncmp(names[i], "tmp.", 4), 0); /* open's cleanup */
    free(names);
    fprintf(stderr, "  kill %d: %zu acknowledged commits all present\n", k, nids);
    if (k == kills - 1) check_walk(db);
    st_close(db);
    bs_destroy(s);
    free(ids);
  }
  assert_true(total_acked > 0);
  strata_buf_free(&b);
  free(v);
}

static int need(const char *name, const char **out) {
  *out = getenv(name);
  if (*out && **out) return 1;
  fprintf(stderr, "test_store_s3: %s is not set: the s3 tier's harness (tests/s3/tier.sh, make test-s3) did "
                  "not run; this test needs a running S3 endpoint\n", name);
  return 0;
}

int main(void) {
  int ok = need("STRATA_S3_ENDPOINT", &env_cfg.endpoint) & need("STRATA_S3_BUCKET", &env_cfg.bucket) &
           need("AWS_ACCESS_KEY_ID", &env_cfg.access_key) & need("AWS_SECRET_ACCESS_KEY", &env_cfg.secret_key);
  if (!ok) return 1;
  env_cfg.region = getenv("AWS_REGION");
  env_cfg.session_token = getenv("AWS_SESSION_TOKEN");
  snprintf(run_prefix, sizeof run_prefix, "test-s3-%d-%ld", (int)getpid(), (long)time(NULL));
  snprintf(log_root, sizeof log_root, "%s/strata-s3-logs-%d", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp",
           (int)getpid());
  if (mkdir(log_root, 0755) < 0) {
    fprintf(stderr, "mkdir %s: %s\n", log_root, strerror(errno));
    return 1;
  }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_contract),
    cmocka_unit_test(test_read_while_writing),
    cmocka_unit_test(test_prefix_is_the_key),
    cmocka_unit_test(test_ranged_and_concurrent_reads),
    cmocka_unit_test(test_conditional_create_race),
    cmocka_unit_test(test_rename_race_and_no_replace),
    cmocka_unit_test(test_list_pages),
    cmocka_unit_test(test_refused_credentials),
    cmocka_unit_test(test_unreachable_endpoint),
    cmocka_unit_test(test_dead_endpoint_times_out),
    cmocka_unit_test(test_retries),
    cmocka_unit_test(test_conditional_put_retried),
    cmocka_unit_test(test_database_on_s3),
    cmocka_unit_test(test_per_group_path_on_s3),
    cmocka_unit_test(test_gc_on_s3),
    cmocka_unit_test(test_sigkill_while_committing),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", log_root);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", log_root);
  return rc;
}
