/*
 * A strata-populate worker process: its own client and, in coordinator mode, its
 * own registered writer whose lease a thread renews. Per task it reads the
 * task's chunks from the source, writes them into one new data file under the
 * writer's prefix (create-new, write, fsync the file and its directory),
 * registers the file, and makes ONE Kv.Commit of the references plus the task's
 * marker, conditioned on the marker being absent. In standalone mode the same
 * commit carries the values. A refused condition means another writer already
 * populated the task: not an error. Fault injection for the crash tests:
 * STRATA_POPULATE_CRASH (tools/populate/README.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/err.h"
#include "storage/ocdbt.h"
#include "tools/populate/pop.h"

typedef struct pop_worker {
  const pop_opts *o;
  const pop_plan *p;
  pop_shared *sh;
  rpc_client *c;
  uint64_t rng;
  char name[256];
  /* coordinator mode */
  uint64_t writer_id;
  char wprefix[512];
  char store_dir[4096];
  pthread_t renew_th;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stop_renew, renew_started;
  /* fault injection */
  char crash[128];
  int crash_permille;
  long delay_ms; /* STRATA_POPULATE_TASK_DELAY_MS: tests slow tasks to land a kill inside */
  /* buffers */
  uint8_t *buf;
  size_t cap;
} pop_worker;

static uint64_t next_rand(pop_worker *w) {
  w->rng = w->rng * 6364136223846793005ull + 1442695040888963407ull;
  return w->rng >> 17;
}

/* SIGKILLs this process at `stage` when STRATA_POPULATE_CRASH names it, with the
 * probability STRATA_POPULATE_CRASH_PERMILLE / 1000 (default 1000). */
static void maybe_crash(pop_worker *w, const char *stage) {
  if (!w->crash[0]) return;
  char pat[64];
  snprintf(pat, sizeof pat, ",%s,", stage);
  if (!strstr(w->crash, pat)) return;
  if ((int)(next_rand(w) % 1000) < w->crash_permille) raise(SIGKILL);
}

static void *killer_thread(void *arg) {
  pop_worker *w = arg;
  struct timespec ts = {0, (long)(next_rand(w) % 3000) * 1000};
  nanosleep(&ts, NULL);
  raise(SIGKILL);
  return NULL;
}

/* "mid-commit": a thread kills the process a random 0..3 ms after the commit is sent. */
static void maybe_crash_mid_commit(pop_worker *w) {
  if (!w->crash[0] || !strstr(w->crash, ",mid-commit,")) return;
  if ((int)(next_rand(w) % 1000) >= w->crash_permille) return;
  pthread_t th;
  pthread_create(&th, NULL, killer_thread, w);
  pthread_detach(th);
}

static void now_iso(char *buf, size_t n) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  struct tm tm;
  gmtime_r(&ts.tv_sec, &tm);
  char s[32];
  strftime(s, sizeof s, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf, n, "%s.%09ldZ", s, ts.tv_nsec);
}

/* --- the writer and its lease ----------------------------------------------------------------- */

static void *renew_thread(void *arg) {
  pop_worker *w = arg;
  rpc_client *c = pop_client(w->o);
  int64_t every_ms = w->o->lease_ms / 3;
  pthread_mutex_lock(&w->mu);
  while (!w->stop_renew) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += every_ms / 1000;
    dl.tv_nsec += (every_ms % 1000) * 1000000;
    if (dl.tv_nsec >= 1000000000) { dl.tv_sec++; dl.tv_nsec -= 1000000000; }
    if (pthread_cond_timedwait(&w->cv, &w->mu, &dl) != ETIMEDOUT) continue;
    pthread_mutex_unlock(&w->mu);
    Strata__V1__RenewWriterRequest q = STRATA__V1__RENEW_WRITER_REQUEST__INIT;
    q.writer_id = w->writer_id;
    Strata__V1__RenewWriterResponse *r = NULL;
    int rc = rpc_coord_renew_writer(c, NULL, &q, &r);
    rpc_free(r);
    /* A transient failure is retried at the next period; a refusal means the lease is
     * gone and every later commit of this writer will be refused, which the task
     * reports. */
    if (rc && !pop_transient(rc))
      fprintf(stderr, "strata-populate: worker %s: renewing writer %" PRIu64 ": %s\n", w->name,
              w->writer_id, strata_errmsg());
    pthread_mutex_lock(&w->mu);
  }
  pthread_mutex_unlock(&w->mu);
  rpc_client_close(c);
  return NULL;
}

static int writer_register(pop_worker *w) {
  Strata__V1__RegisterWriterRequest q = STRATA__V1__REGISTER_WRITER_REQUEST__INIT;
  q.name = w->name;
  q.lease_ttl_ms = (uint64_t)w->o->lease_ms;
  Strata__V1__RegisterWriterResponse *r = NULL;
  int rc;
  POP_RETRY(w->o, w->sh, &w->rng, rc, rpc_coord_register_writer(w->c, NULL, &q, &r));
  if (rc) {
    fprintf(stderr, "strata-populate: worker %s: registering a writer: %s\n", w->name,
            strata_errmsg());
    return -1;
  }
  w->writer_id = r->writer_id;
  if (!w->o->store_dir && r->store_dir && strncmp(r->store_dir, "s3://", 5) == 0) {
    /* Writers write their files with POSIX calls into the store's directory. */
    fprintf(stderr, "strata-populate: worker %s: the store is in an object store (%s): coordinator-mode "
            "writers need the store's directory; run with --standalone (values inside the commits)\n",
            w->name, r->store_dir);
    rpc_free(r);
    return -1;
  }
  snprintf(w->wprefix, sizeof w->wprefix, "%s", r->prefix);
  snprintf(w->store_dir, sizeof w->store_dir, "%s", w->o->store_dir ? w->o->store_dir : r->store_dir);
  rpc_free(r);
  pthread_mutex_init(&w->mu, NULL);
  pthread_cond_init(&w->cv, NULL);
  w->renew_started = pthread_create(&w->renew_th, NULL, renew_thread, w) == 0;
  return 0;
}

static void writer_unregister(pop_worker *w) {
  if (w->renew_started) {
    pthread_mutex_lock(&w->mu);
    w->stop_renew = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->renew_th, NULL);
  }
  Strata__V1__UnregisterWriterRequest q = STRATA__V1__UNREGISTER_WRITER_REQUEST__INIT;
  q.writer_id = w->writer_id;
  Strata__V1__UnregisterWriterResponse *r = NULL;
  if (rpc_coord_unregister_writer(w->c, NULL, &q, &r) && !pop_transient(-1))
    fprintf(stderr, "strata-populate: worker %s: unregistering writer %" PRIu64 ": %s\n", w->name,
            w->writer_id, strata_errmsg());
  rpc_free(r);
}

static int file_register(pop_worker *w, const char *rel, const char *mk) {
  Strata__V1__RegisterFileRequest q = STRATA__V1__REGISTER_FILE_REQUEST__INIT;
  q.writer_id = w->writer_id;
  q.path = (char *)rel;
  Strata__V1__RegisterFileResponse *r = NULL;
  int rc;
  POP_RETRY(w->o, w->sh, &w->rng, rc, rpc_coord_register_file(w->c, NULL, &q, &r));
  rpc_free(r);
  if (rc)
    fprintf(stderr, "strata-populate: task %s: registering %s: %s\n", mk, rel, strata_errmsg());
  return rc;
}

/* --- one task --------------------------------------------------------------------------------- */

/* Reads one chunk into w->buf (grown as needed); checks its size. Returns its length
 * or -1 with a message naming the file and the task. */
static int64_t read_chunk(pop_worker *w, const pop_chunk *ch, const char *mk) {
  char path[4096];
  pop_chunk_path(w->o, w->p, ch, path, sizeof path);
  const pc_scale *s = &w->p->info.s[ch->scale];
  int64_t cc[3] = {ch->c[0], ch->c[1], ch->c[2]};
  uint64_t want = pc_chunk_bytes(s, cc);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat(fd, &st)) {
    fprintf(stderr, "strata-populate: task %s: %s: %s\n", mk, path, strerror(errno));
    if (fd >= 0) close(fd);
    return -1;
  }
  if ((uint64_t)st.st_size != want) {
    fprintf(stderr, "strata-populate: task %s: %s: %" PRIu64 " bytes, expected %" PRIu64
                    " (a raw uint64 chunk of that box)\n", mk, path, (uint64_t)st.st_size, want);
    close(fd);
    return -1;
  }
  if (want > w->cap) {
    uint8_t *nb = realloc(w->buf, want);
    if (!nb) { close(fd); fprintf(stderr, "strata-populate: out of memory\n"); return -1; }
    w->buf = nb;
    w->cap = want;
  }
  uint64_t got = 0;
  while (got < want) {
    ssize_t r = read(fd, w->buf + got, want - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) {
      fprintf(stderr, "strata-populate: task %s: reading %s: %s\n", mk, path,
              r < 0 ? strerror(errno) : "file shrank");
      close(fd);
      return -1;
    }
    got += (uint64_t)r;
  }
  close(fd);
  return (int64_t)want;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t r = write(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

typedef struct pop_put {
  char key[POP_MAX_PREFIX + PC_MAX_KEY + PC_MAX_NAME];
  uint64_t off, len;
  uint32_t crc;
  uint8_t *value; /* standalone */
} pop_put;

static char *marker_body(pop_worker *w, const pop_task *t, const char *file) {
  char when[64];
  now_iso(when, sizeof when);
  json_t *j = json_pack("{s:s, s:I, s:s, s:I, s:I, s:s, s:I}", "writer", w->name, "writer_id",
                        (json_int_t)w->writer_id, "time", when, "chunks", (json_int_t)t->count,
                        "bytes", (json_int_t)t->bytes, "file", file ? file : "", "nonce",
                        (json_int_t)(next_rand(w) & 0x7fffffffffffull));
  char *s = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  return s;
}

/* After a refused condition: was the marker written by this very attempt (a retried
 * commit whose first try applied)? 1 ours, 0 someone else's, -1 cannot tell. */
static int marker_is(pop_worker *w, const char *mk, const char *body) {
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  q.key.data = (uint8_t *)mk;
  q.key.len = strlen(mk);
  Strata__V1__GetResponse *r = NULL;
  int rc;
  POP_RETRY(w->o, w->sh, &w->rng, rc, rpc_kv_get(w->c, NULL, &q, &r));
  if (rc) return -1;
  int out = !r->found ? -1 : r->value.len == strlen(body) && memcmp(r->value.data, body, r->value.len) == 0;
  rpc_free(r);
  return out;
}

enum { TASK_DONE, TASK_LOST, TASK_FAILED };

/* One task on its way: its marker key, its chunks' puts and, unless standalone,
 * the data file they go into (path relative to the store and absolute). */
typedef struct task_run {
  const pop_task *t;
  char mk[POP_MAX_PREFIX + 64];
  pop_put *puts;
  char rel[1024], abs[8192];
  int fd;
} task_run;

/* 1. The chunks: into one new data file, or kept in memory (standalone). */
static int write_chunks(pop_worker *w, task_run *x) {
  const pop_opts *o = w->o;
  const pop_task *t = x->t;
  maybe_crash(w, "before-write");
  if (!o->standalone) {
    snprintf(x->rel, sizeof x->rel, "%st%d_%" PRId64 "_%" PRId64 "_%" PRId64 ".%08" PRIx64,
             w->wprefix, o->layer, t->b[0], t->b[1], t->b[2], next_rand(w) & 0xffffffffu);
    snprintf(x->abs, sizeof x->abs, "%s/%s", w->store_dir, x->rel);
    x->fd = open(x->abs, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (x->fd < 0) {
      fprintf(stderr, "strata-populate: task %s: creating %s: %s\n", x->mk, x->abs, strerror(errno));
      return -1;
    }
  }
  uint64_t off = 0;
  for (uint64_t i = 0; i < t->count; i++) {
    const pop_chunk *ch = &w->p->chunks[t->first + i];
    pop_put *pu = &x->puts[i];
    int64_t n = read_chunk(w, ch, x->mk);
    if (n < 0) return -1;
    pop_chunk_key(o, w->p, ch, pu->key, sizeof pu->key);
    pu->off = off;
    pu->len = (uint64_t)n;
    pu->crc = ocdbt_crc32c(0, w->buf, (size_t)n);
    if (o->standalone) {
      pu->value = malloc((size_t)n ? (size_t)n : 1);
      if (!pu->value) return -1;
      memcpy(pu->value, w->buf, (size_t)n);
    } else if (write_all(x->fd, w->buf, (size_t)n)) {
      fprintf(stderr, "strata-populate: task %s: writing %s: %s\n", x->mk, x->abs, strerror(errno));
      return -1;
    }
    off += (uint64_t)n;
    if (i == t->count / 2) maybe_crash(w, "mid-write");
  }
  return 0;
}

/* 2. Durable before anything refers to it: the bytes, then the directory entry;
 * then the file is registered with the server. */
static int make_durable(pop_worker *w, task_run *x) {
  if (fsync(x->fd) || close(x->fd)) {
    x->fd = -1;
    fprintf(stderr, "strata-populate: task %s: fsync %s: %s\n", x->mk, x->abs, strerror(errno));
    return -1;
  }
  x->fd = -1;
  char dcopy[8192];
  snprintf(dcopy, sizeof dcopy, "%s", x->abs);
  int dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd)) {
    fprintf(stderr, "strata-populate: task %s: fsync of %s's directory: %s\n", x->mk, x->abs,
            strerror(errno));
    if (dfd >= 0) close(dfd);
    return -1;
  }
  close(dfd);
  maybe_crash(w, "after-fsync");
  if (file_register(w, x->rel, x->mk)) return -1;
  maybe_crash(w, "after-register");
  return 0;
}

/* The commit's puts (pv, pointed to by pp): each chunk, by value (standalone) or
 * by reference into the data file (refs), then the marker with `body`. */
static void fill_puts(const pop_opts *o, const task_run *x, const char *body, Strata__V1__Put *pv,
                      Strata__V1__DataRef *refs, Strata__V1__Put **pp) {
  const pop_task *t = x->t;
  for (size_t i = 0; i < t->count + 1; i++) {
    Strata__V1__Put init = STRATA__V1__PUT__INIT;
    pv[i] = init;
    pp[i] = &pv[i];
  }
  for (uint64_t i = 0; i < t->count; i++) {
    pv[i].key.data = (uint8_t *)x->puts[i].key;
    pv[i].key.len = strlen(x->puts[i].key);
    if (o->standalone) {
      pv[i].value.data = x->puts[i].value;
      pv[i].value.len = x->puts[i].len;
    } else {
      Strata__V1__DataRef init = STRATA__V1__DATA_REF__INIT;
      refs[i] = init;
      refs[i].path = (char *)x->rel;
      refs[i].offset = x->puts[i].off;
      refs[i].length = x->puts[i].len;
      refs[i].has_crc32c = 1;
      refs[i].crc32c = x->puts[i].crc;
      pv[i].ref = &refs[i];
    }
  }
  pv[t->count].key.data = (uint8_t *)x->mk;
  pv[t->count].key.len = strlen(x->mk);
  pv[t->count].value.data = (uint8_t *)body;
  pv[t->count].value.len = strlen(body);
}

/* 3. One commit: every chunk and the marker, if the marker is still absent.
 * Returns TASK_*, or -1 when out of memory (nothing sent). */
static int commit_task(pop_worker *w, const task_run *x, const char *body) {
  const pop_opts *o = w->o;
  const pop_task *t = x->t;
  size_t np = t->count + 1;
  Strata__V1__Put *pv = calloc(np, sizeof *pv);
  Strata__V1__DataRef *refs = calloc(t->count ? t->count : 1, sizeof *refs);
  Strata__V1__Put **pp = calloc(np, sizeof *pp);
  if (!pv || !refs || !pp) { free(pv); free(refs); free(pp); return -1; }
  fill_puts(o, x, body, pv, refs, pp);
  Strata__V1__Condition cond = STRATA__V1__CONDITION__INIT, *cp = &cond;
  cond.key = pv[t->count].key;
  cond.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = np;
  q.puts = pp;
  q.n_conditions = 1;
  q.conditions = &cp;
  q.writer_id = o->standalone ? 0 : w->writer_id;
  Strata__V1__CommitResponse *r = NULL;
  int retried = 0, rc, out = TASK_FAILED;
  for (int att = 0;; att++) {
    maybe_crash_mid_commit(w);
    rc = rpc_kv_commit(w->c, NULL, &q, &r);
    if (!pop_transient(rc) || att >= o->retries) break;
    retried = 1;
    pop_backoff(w->sh, att, &w->rng);
  }
  rpc_free(r);
  free(pv);
  free(refs);
  free(pp);
  if (rc == 0) {
    out = TASK_DONE;
  } else if (rc == STRATA_ECONDITION) {
    /* The marker exists: another writer won, or a retried commit had applied. */
    int mine = retried ? marker_is(w, x->mk, body) : 0;
    out = mine == 1 ? TASK_DONE : mine == 0 ? TASK_LOST : TASK_FAILED;
    if (mine < 0)
      fprintf(stderr, "strata-populate: task %s: marker refused, then unreadable: %s\n", x->mk,
              strata_errmsg());
  } else {
    fprintf(stderr, "strata-populate: task %s: commit of %" PRIu64 " chunks%s%s: %s\n", x->mk,
            t->count, x->rel[0] ? " from " : "", x->rel, strata_errmsg());
  }
  return out;
}

static int run_task(pop_worker *w, const pop_task *t) {
  const pop_opts *o = w->o;
  task_run x = {.t = t, .fd = -1};
  pop_marker_key(o, t, x.mk, sizeof x.mk);
  x.puts = calloc(t->count, sizeof *x.puts);
  int out = TASK_FAILED, rc;
  char *body = NULL;
  if (!x.puts) goto out;
  if (write_chunks(w, &x)) goto out;
  if (!o->standalone && make_durable(w, &x)) goto out;
  if (w->delay_ms > 0) {
    struct timespec ts = {w->delay_ms / 1000, (w->delay_ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
  }
  body = marker_body(w, t, o->standalone ? NULL : x.rel);
  if ((rc = commit_task(w, &x, body)) < 0) goto out;
  out = rc;
  maybe_crash(w, "after-commit");

out:
  if (x.fd >= 0) close(x.fd);
  if (x.puts)
    for (uint64_t i = 0; i < t->count; i++) free(x.puts[i].value);
  free(x.puts);
  free(body);
  return out;
}

int pop_worker_main(const pop_opts *o, const pop_plan *p, pop_shared *sh, int index) {
  pop_worker w = {.o = o, .p = p, .sh = sh};
  char host[128] = "localhost";
  gethostname(host, sizeof host - 1);
  snprintf(w.name, sizeof w.name, "%s%s%s/%d/populate-w%d", o->name ? o->name : "",
           o->name ? "@" : "", host, (int)getpid(), index);
  const char *seed = getenv("STRATA_SEED");
  w.rng = (seed ? strtoull(seed, NULL, 0) : (uint64_t)time(NULL)) ^
          ((uint64_t)getpid() * 0x9E3779B97F4A7C15ull);
  const char *crash = getenv("STRATA_POPULATE_CRASH");
  if (crash && *crash) snprintf(w.crash, sizeof w.crash, ",%s,", crash);
  const char *pm = getenv("STRATA_POPULATE_CRASH_PERMILLE");
  w.crash_permille = pm ? atoi(pm) : 1000;
  const char *dl = getenv("STRATA_POPULATE_TASK_DELAY_MS");
  w.delay_ms = dl ? atol(dl) : 0;
  w.c = pop_client(o);
  if (!o->standalone && writer_register(&w)) {
    rpc_client_close(w.c);
    return 1;
  }
  for (;;) {
    uint64_t i = __atomic_fetch_add(&sh->next, 1, __ATOMIC_RELAXED);
    if (i >= sh->ntodo) break;
    const pop_task *t = &p->tasks[sh->todo[i]];
    switch (run_task(&w, t)) {
      case TASK_DONE:
        __atomic_add_fetch(&sh->bytes, t->bytes, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sh->chunks, t->count, __ATOMIC_RELAXED);
        __atomic_add_fetch(&sh->done, 1, __ATOMIC_RELAXED);
        break;
      case TASK_LOST: __atomic_add_fetch(&sh->lost, 1, __ATOMIC_RELAXED); break;
      default: __atomic_add_fetch(&sh->failed, 1, __ATOMIC_RELAXED); break;
    }
  }
  if (!o->standalone) writer_unregister(&w);
  free(w.buf);
  rpc_client_close(w.c);
  return 0;
}
