/*
 * strata-populate: copies a neuroglancer precomputed volume into Strata under a
 * key prefix, one task per block of chunks (all scales), with N worker
 * processes. This file is the parent: options, the task plan, the setup step
 * (populate metadata, resume from the markers) and progress; pop_task.c is a
 * worker. The parent never opens a gRPC channel itself (gRPC does not survive a
 * fork): the setup runs in a child that reports through the shared mapping.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/err.h"
#include "tools/populate/pop.h"

static int64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* --- keys and paths ----------------------------------------------------------------------- */

void pop_marker_key(const pop_opts *o, const pop_task *t, char *buf, size_t n) {
  snprintf(buf, n, "%s.populated/%d_%" PRId64 "_%" PRId64 "_%" PRId64, o->prefix, o->layer, t->b[0],
           t->b[1], t->b[2]);
}

void pop_meta_key(const pop_opts *o, char *buf, size_t n) {
  snprintf(buf, n, "%s.populated/meta", o->prefix);
}

/* The chunk's name within its scale. */
static const pc_scale *chunk_name(const pop_plan *p, const pop_chunk *c, char name[PC_MAX_NAME]) {
  const pc_scale *s = &p->info.s[c->scale];
  int64_t cc[3] = {c->c[0], c->c[1], c->c[2]};
  pc_chunk_name(s, cc, name, PC_MAX_NAME);
  return s;
}

void pop_chunk_path(const pop_opts *o, const pop_plan *p, const pop_chunk *c, char *buf, size_t n) {
  char name[PC_MAX_NAME];
  const pc_scale *s = chunk_name(p, c, name);
  snprintf(buf, n, "%s/%s/%s", o->source, s->key, name);
}

void pop_chunk_key(const pop_opts *o, const pop_plan *p, const pop_chunk *c, char *buf, size_t n) {
  char name[PC_MAX_NAME];
  const pc_scale *s = chunk_name(p, c, name);
  snprintf(buf, n, "%s%s/%s", o->prefix, s->key, name);
}

/* --- client helpers the workers share ------------------------------------------------------- */

rpc_client *pop_client(const pop_opts *o) {
  rpc_client_opts co = {.addr = o->addr, .timeout_ms = o->timeout_ms,
                        .max_message_bytes = o->max_message};
  rpc_client *c = NULL;
  if (rpc_client_open(&co, &c)) {
    fprintf(stderr, "strata-populate: out of memory opening the client\n");
    exit(1);
  }
  return c;
}

int pop_transient(int rc) {
  if (rc == 0 || rc == STRATA_ETOOBIG) return 0; /* a message too big stays too big */
  grpc_status_code st = rpc_client_last_status();
  return st == GRPC_STATUS_UNAVAILABLE || st == GRPC_STATUS_DEADLINE_EXCEEDED ||
         st == GRPC_STATUS_RESOURCE_EXHAUSTED;
}

void pop_backoff(pop_shared *sh, int attempt, uint64_t *rng) {
  int64_t cap = POP_BACKOFF_FIRST_MS;
  for (int i = 0; i < attempt && cap < POP_BACKOFF_CAP_MS; i++) cap *= 2;
  if (cap > POP_BACKOFF_CAP_MS) cap = POP_BACKOFF_CAP_MS;
  *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
  int64_t ms = cap / 2 + (int64_t)((*rng >> 33) % (uint64_t)(cap / 2 + 1));
  __atomic_add_fetch(&sh->retries, 1, __ATOMIC_RELAXED);
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) && errno == EINTR) {
  }
}

/* --- the plan --------------------------------------------------------------------------------- */

/* The block of mip-0 chunks holding a chunk's origin, clamped to the grid. */
static uint64_t task_of(const pop_opts *o, const pop_plan *p, int si, const int64_t c[3]) {
  const pc_scale *s = &p->info.s[si], *s0 = &p->info.s[0];
  int64_t b[3];
  for (int d = 0; d < 3; d++) {
    double phys = (double)(s->offset[d] + c[d] * s->chunk[d]) * s->res[d];
    int64_t v0 = (int64_t)(phys / s0->res[d] + 1e-9) - s0->offset[d];
    int64_t bb = v0 < 0 ? 0 : v0 / ((int64_t)o->block * s0->chunk[d]);
    b[d] = bb >= p->nb[d] ? p->nb[d] - 1 : bb;
  }
  return ((uint64_t)b[2] * (uint64_t)p->nb[1] + (uint64_t)b[1]) * (uint64_t)p->nb[0] + (uint64_t)b[0];
}

static int plan_build(const pop_opts *o, pop_plan *p, char *err, size_t errlen) {
  if (pc_info_load(o->source, &p->info, &p->info_text, &p->info_len, err, errlen)) return -1;
  const pc_scale *s0 = &p->info.s[0];
  for (int d = 0; d < 3; d++) p->nb[d] = (s0->grid[d] + o->block - 1) / o->block;
  p->ntasks = (uint64_t)p->nb[0] * (uint64_t)p->nb[1] * (uint64_t)p->nb[2];
  uint64_t nchunks = pc_chunk_count(&p->info);
  p->tasks = calloc(p->ntasks, sizeof *p->tasks);
  p->chunks = calloc(nchunks, sizeof *p->chunks);
  /* Counting sort of every chunk of every scale by its task: all[] in grid order
   * with owner[] its task, then scattered into p->chunks task by task. */
  pop_chunk *all = calloc(nchunks, sizeof *all);
  uint64_t *owner = calloc(nchunks, sizeof *owner);
  if (!p->tasks || !p->chunks || !all || !owner) {
    free(all);
    free(owner);
    snprintf(err, errlen, "out of memory planning %" PRIu64 " chunks", nchunks);
    return -1;
  }
  uint64_t k = 0;
  for (int si = 0; si < p->info.nscales; si++) {
    const pc_scale *s = &p->info.s[si];
    int64_t c[3];
    for (c[2] = 0; c[2] < s->grid[2]; c[2]++)
      for (c[1] = 0; c[1] < s->grid[1]; c[1]++)
        for (c[0] = 0; c[0] < s->grid[0]; c[0]++, k++) {
          uint64_t t = task_of(o, p, si, c);
          all[k].scale = (uint32_t)si;
          for (int d = 0; d < 3; d++) all[k].c[d] = (int32_t)c[d];
          owner[k] = t;
          p->tasks[t].count++;
          p->tasks[t].bytes += pc_chunk_bytes(s, c);
          p->total_bytes += pc_chunk_bytes(s, c);
        }
  }
  uint64_t at = 0;
  for (uint64_t t = 0; t < p->ntasks; t++) {
    p->tasks[t].first = at;
    at += p->tasks[t].count;
    p->tasks[t].count = 0;
    p->tasks[t].b[0] = (int64_t)(t % (uint64_t)p->nb[0]);
    p->tasks[t].b[1] = (int64_t)(t / (uint64_t)p->nb[0] % (uint64_t)p->nb[1]);
    p->tasks[t].b[2] = (int64_t)(t / (uint64_t)p->nb[0] / (uint64_t)p->nb[1]);
  }
  for (k = 0; k < nchunks; k++) {
    pop_task *t = &p->tasks[owner[k]];
    p->chunks[t->first + t->count++] = all[k];
  }
  free(all);
  free(owner);
  return 0;
}

/* --- populate metadata: recorded at the first run, compared at every later one ---------- */

static json_t *meta_of(const pop_opts *o, const pop_plan *p) {
  json_t *scales = json_array();
  for (int i = 0; i < p->info.nscales; i++) {
    const pc_scale *s = &p->info.s[i];
    json_array_append_new(scales, json_pack("{s:s, s:[I,I,I], s:[I,I,I], s:[I,I,I]}", "key",
                                            s->key, "size", s->size[0], s->size[1], s->size[2],
                                            "chunk_size", s->chunk[0], s->chunk[1], s->chunk[2],
                                            "voxel_offset", s->offset[0], s->offset[1],
                                            s->offset[2]));
  }
  return json_pack("{s:i, s:i, s:i, s:o}", "format", 1, "block", o->block, "layer", o->layer,
                   "scales", scales);
}

/* Says what differs between the recorded metadata and this run's; 0 when equal. */
static int meta_diff(const char *key, json_t *rec, json_t *mine) {
  int diffs = 0;
  static const char *top[] = {"format", "block"};
  for (size_t i = 0; i < sizeof top / sizeof *top; i++)
    if (!json_equal(json_object_get(rec, top[i]), json_object_get(mine, top[i]))) {
      char *a = json_dumps(json_object_get(rec, top[i]), JSON_ENCODE_ANY);
      char *b = json_dumps(json_object_get(mine, top[i]), JSON_ENCODE_ANY);
      fprintf(stderr, "strata-populate: %s: %s: recorded %s, this run %s\n", key, top[i],
              a ? a : "(none)", b ? b : "(none)");
      free(a);
      free(b);
      diffs++;
    }
  json_t *rs = json_object_get(rec, "scales"), *ms = json_object_get(mine, "scales");
  size_t n = json_array_size(rs);
  if (n != json_array_size(ms)) {
    fprintf(stderr, "strata-populate: %s: scales: recorded %zu, source has %zu\n", key,
            json_array_size(rs), json_array_size(ms));
    diffs++;
    if (json_array_size(ms) < n) n = json_array_size(ms);
  }
  static const char *fields[] = {"key", "size", "chunk_size", "voxel_offset"};
  for (size_t i = 0; i < n; i++)
    for (size_t f = 0; f < sizeof fields / sizeof *fields; f++) {
      json_t *a = json_object_get(json_array_get(rs, i), fields[f]);
      json_t *b = json_object_get(json_array_get(ms, i), fields[f]);
      if (json_equal(a, b)) continue;
      char *sa = json_dumps(a, JSON_ENCODE_ANY | JSON_COMPACT);
      char *sb = json_dumps(b, JSON_ENCODE_ANY | JSON_COMPACT);
      fprintf(stderr, "strata-populate: %s: scales[%zu].%s: recorded %s, source has %s\n", key, i,
              fields[f], sa ? sa : "(none)", sb ? sb : "(none)");
      free(sa);
      free(sb);
      diffs++;
    }
  return diffs;
}

/* Records or checks the metadata and the info. Returns 0, 1 (failed call) or 2 (refused). */
static int setup_meta(const pop_opts *o, const pop_plan *p, rpc_client *c, pop_shared *sh,
                      uint64_t *rng) {
  char mkey[POP_MAX_PREFIX + 64], ikey[POP_MAX_PREFIX + 8];
  pop_meta_key(o, mkey, sizeof mkey);
  snprintf(ikey, sizeof ikey, "%sinfo", o->prefix);
  json_t *mine = meta_of(o, p);
  char *mtext = json_dumps(mine, JSON_COMPACT);
  int rc = 0, out = 1;
  for (int round = 0; round < 2; round++) {
    Strata__V1__GetRequest gq = STRATA__V1__GET_REQUEST__INIT;
    gq.key.data = (uint8_t *)mkey;
    gq.key.len = strlen(mkey);
    Strata__V1__GetResponse *gr = NULL;
    POP_RETRY(o, sh, rng, rc, rpc_kv_get(c, NULL, &gq, &gr));
    if (rc) {
      fprintf(stderr, "strata-populate: reading %s: %s\n", mkey, strata_errmsg());
      goto out;
    }
    if (gr->found) {
      json_t *rec = json_loadb((const char *)gr->value.data, gr->value.len, 0, NULL);
      int diffs = rec ? meta_diff(mkey, rec, mine) : 1;
      if (!rec) fprintf(stderr, "strata-populate: %s: not valid JSON\n", mkey);
      json_decref(rec);
      rpc_free(gr);
      if (diffs) {
        fprintf(stderr, "strata-populate: refused: %s was populated with a different layout; "
                        "use another --prefix, or the recorded --block\n", o->prefix);
        out = 2;
        goto out;
      }
      out = 0;
      goto out;
    }
    rpc_free(gr);
    /* First run: the info and the metadata in one commit, unless another run was first. */
    Strata__V1__Put puts[2] = {STRATA__V1__PUT__INIT, STRATA__V1__PUT__INIT};
    Strata__V1__Put *pp[2] = {&puts[0], &puts[1]};
    puts[0].key.data = (uint8_t *)ikey;
    puts[0].key.len = strlen(ikey);
    puts[0].value.data = (uint8_t *)p->info_text;
    puts[0].value.len = p->info_len;
    puts[1].key.data = (uint8_t *)mkey;
    puts[1].key.len = strlen(mkey);
    puts[1].value.data = (uint8_t *)mtext;
    puts[1].value.len = strlen(mtext);
    Strata__V1__Condition cond = STRATA__V1__CONDITION__INIT, *cp = &cond;
    cond.key = puts[1].key;
    cond.kind = STRATA__V1__CONDITION__KIND__KIND_ABSENT;
    Strata__V1__CommitRequest cq = STRATA__V1__COMMIT_REQUEST__INIT;
    cq.n_puts = 2;
    cq.puts = pp;
    cq.n_conditions = 1;
    cq.conditions = &cp;
    Strata__V1__CommitResponse *cr = NULL;
    POP_RETRY(o, sh, rng, rc, rpc_kv_commit(c, NULL, &cq, &cr));
    rpc_free(cr);
    if (rc == 0) { out = 0; goto out; }
    if (rc != STRATA_ECONDITION) {
      fprintf(stderr, "strata-populate: recording %s: %s\n", mkey, strata_errmsg());
      goto out;
    }
    /* Someone recorded it meanwhile (or our own earlier attempt did): compare. */
  }
out:
  free(mtext);
  json_decref(mine);
  return out;
}

/* Lists the markers and fills sh->todo with the tasks that have none. */
static int setup_resume(const pop_opts *o, const pop_plan *p, rpc_client *c, pop_shared *sh) {
  uint8_t *doneb = calloc(p->ntasks, 1);
  if (!doneb) return 1;
  char pre[POP_MAX_PREFIX + 64];
  snprintf(pre, sizeof pre, "%s.populated/", o->prefix);
  size_t plen = strlen(pre);
  Strata__V1__ListRequest lq = STRATA__V1__LIST_REQUEST__INIT;
  lq.prefix.data = (uint8_t *)pre;
  lq.prefix.len = plen;
  lq.keys_only = 1;
  rpc_callopts co = {.timeout_ms = -1};
  rpc_cstream *st = NULL;
  int rc = rpc_kv_list(c, &co, &lq, &st);
  Strata__V1__ListResponse *m = NULL;
  while (rc == 0 && (rc = rpc_kv_list_next(st, &m)) == 1) {
    rc = 0;
    for (size_t i = 0; i < m->n_entries; i++) {
      ProtobufCBinaryData k = m->entries[i]->key;
      char name[128];
      if (k.len - plen >= sizeof name) continue;
      memcpy(name, k.data + plen, k.len - plen);
      name[k.len - plen] = 0;
      int layer;
      long long x, y, z;
      char tail;
      if (sscanf(name, "%d_%lld_%lld_%lld%c", &layer, &x, &y, &z, &tail) != 4 || layer != o->layer)
        continue;
      if (x < 0 || y < 0 || z < 0 || x >= p->nb[0] || y >= p->nb[1] || z >= p->nb[2]) continue;
      doneb[((uint64_t)z * (uint64_t)p->nb[1] + (uint64_t)y) * (uint64_t)p->nb[0] + (uint64_t)x] = 1;
    }
    rpc_free(m);
    m = NULL;
  }
  if (st) rpc_cstream_close(st);
  if (rc) {
    fprintf(stderr, "strata-populate: listing the markers under %s: %s\n", pre, strata_errmsg());
    free(doneb);
    return 1;
  }
  uint64_t n = 0;
  for (uint64_t t = 0; t < p->ntasks; t++)
    if (!doneb[t] && p->tasks[t].count) sh->todo[n++] = t;
    else if (doneb[t]) sh->skipped++;
  sh->ntodo = n;
  free(doneb);
  return 0;
}

static int setup_main(const pop_opts *o, const pop_plan *p, pop_shared *sh) {
  rpc_client *c = pop_client(o);
  uint64_t rng = (uint64_t)getpid() * 0x9E3779B97F4A7C15ull;
  int rc = setup_meta(o, p, c, sh, &rng);
  if (rc == 0) rc = setup_resume(o, p, c, sh);
  rpc_client_close(c);
  return rc;
}

/* --- the run ---------------------------------------------------------------------------------- */

static void progress(const pop_plan *p, const pop_shared *sh, int64_t t0, int last) {
  uint64_t done = __atomic_load_n(&sh->done, __ATOMIC_RELAXED);
  uint64_t lost = __atomic_load_n(&sh->lost, __ATOMIC_RELAXED);
  uint64_t failed = __atomic_load_n(&sh->failed, __ATOMIC_RELAXED);
  uint64_t bytes = __atomic_load_n(&sh->bytes, __ATOMIC_RELAXED);
  double secs = (double)(mono_ns() - t0) / 1e9;
  double mbs = secs > 0 ? (double)bytes / 1e6 / secs : 0;
  uint64_t left = sh->ntodo - done - lost - failed;
  double eta = mbs > 0 ? (double)left * ((double)bytes / (double)(done ? done : 1)) / 1e6 / mbs : 0;
  fprintf(stderr, "\r%" PRIu64 "/%" PRIu64 " tasks  %.1f MB/s  ETA %.0fs  %s", done + lost + failed +
          sh->skipped, p->ntasks, mbs, eta, failed ? "(failures)" : "          ");
  if (last) fputc('\n', stderr);
}

static void summary(const pop_opts *o, const pop_plan *p, const pop_shared *sh, double secs,
                    int killed) {
  double mb = (double)sh->bytes / 1e6;
  if (o->json) {
    json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:i}",
                          "mode", o->standalone ? "standalone" : "coordinator", "source",
                          o->source, "prefix", o->prefix, "tasks", (json_int_t)p->ntasks,
                          "done", (json_int_t)sh->done, "skipped", (json_int_t)sh->skipped,
                          "lost", (json_int_t)sh->lost, "failed", (json_int_t)sh->failed,
                          "chunks", (json_int_t)sh->chunks, "bytes", (json_int_t)sh->bytes,
                          "retries", (json_int_t)sh->retries, "seconds", secs, "mb_per_s",
                          secs > 0 ? mb / secs : 0.0, "workers", (json_int_t)o->workers,
                          "workers_killed", killed);
    char *s = json_dumps(j, JSON_COMPACT);
    printf("%s\n", s);
    free(s);
    json_decref(j);
    return;
  }
  printf("populated %s from %s (%s): %" PRIu64 " tasks: %" PRIu64 " done, %" PRIu64
         " already populated, %" PRIu64 " lost to another writer, %" PRIu64 " failed; %" PRIu64
         " chunks, %.1f MB in %.1f s (%.1f MB/s), %" PRIu64 " retries\n",
         o->prefix, o->source, o->standalone ? "standalone" : "coordinator", p->ntasks, sh->done,
         sh->skipped, sh->lost, sh->failed, sh->chunks, mb, secs, secs > 0 ? mb / secs : 0,
         sh->retries);
  if (killed) printf("%d worker process(es) died; run the same command again to resume\n", killed);
}

static void usage(FILE *f) {
  fprintf(f,
    "usage: strata-populate --source DIR --prefix PREFIX/ [--addr HOST:PORT] [--workers N]\n"
    "                       [--block B] [--standalone] [--store-dir DIR] [--name NAME]\n"
    "                       [--retries N] [--timeout MS] [--lease MS] [--json]\n"
    "Copies the precomputed volume in DIR (info + raw uint64 chunks, every scale) into Strata\n"
    "under PREFIX (PREFIXinfo, PREFIX<scale>/<chunk>), one task per BxBxB block of mip-0\n"
    "chunks (default 4) with the chunks of the coarser scales inside it, N worker processes\n"
    "(default 4). Each task's chunks and its marker PREFIX.populated/<layer>_<x>_<y>_<z> are one\n"
    "commit; re-running the command resumes. Coordinator mode (default): workers write their own\n"
    "data files and commit references; --standalone sends the values inside Kv.Commit.\n"
    "Exit: 0 all tasks populated; 1 a task or worker failed (rerun to resume); 2 usage, bad\n"
    "source or a mismatching re-run.\n");
}

static int parse_i(const char *arg, const char *opt, int64_t lo, int64_t hi, int64_t *v) {
  char *end;
  errno = 0;
  long long x = strtoll(arg, &end, 10);
  if (errno || end == arg || *end || x < lo || x > hi) {
    fprintf(stderr, "strata-populate: %s %s: expected an integer in %" PRId64 "..%" PRId64 "\n", opt,
            arg, lo, hi);
    return -1;
  }
  *v = x;
  return 0;
}

static int parse_args(int argc, char **argv, pop_opts *o) {
  static const struct option lo[] = {
      {"source", 1, 0, 's'},  {"prefix", 1, 0, 'p'},  {"addr", 1, 0, 'a'},
      {"workers", 1, 0, 'w'}, {"block", 1, 0, 'b'},   {"standalone", 0, 0, 'S'},
      {"store-dir", 1, 0, 'd'}, {"name", 1, 0, 'n'},  {"retries", 1, 0, 'r'},
      {"timeout", 1, 0, 't'}, {"lease", 1, 0, 'l'},   {"json", 0, 0, 'j'},
      {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
  const char *prefix = NULL;
  int ch;
  int64_t v;
  while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
    switch (ch) {
      case 's': o->source = optarg; break;
      case 'p': prefix = optarg; break;
      case 'a': o->addr = optarg; break;
      case 'w': if (parse_i(optarg, "--workers", 1, 256, &v)) return 2; o->workers = (int)v; break;
      case 'b': if (parse_i(optarg, "--block", 1, 1 << 20, &v)) return 2; o->block = (int)v; break;
      case 'S': o->standalone = 1; break;
      case 'd': o->store_dir = optarg; break;
      case 'n': o->name = optarg; break;
      case 'r': if (parse_i(optarg, "--retries", 0, 1000, &v)) return 2; o->retries = (int)v; break;
      case 't': if (parse_i(optarg, "--timeout", 1, INT32_MAX, &v)) return 2; o->timeout_ms = v; break;
      case 'l': if (parse_i(optarg, "--lease", 1000, 86400000, &v)) return 2; o->lease_ms = v; break;
      case 'j': o->json = 1; break;
      case 'h': usage(stdout); exit(0);
      default: usage(stderr); return 2;
    }
  }
  if (!o->source || !prefix || optind != argc) {
    usage(stderr);
    return 2;
  }
  size_t pl = strlen(prefix);
  if (pl == 0 || pl >= POP_MAX_PREFIX || prefix[pl - 1] != '/') {
    fprintf(stderr, "strata-populate: --prefix %s: expected 1..%d bytes ending in '/' (e.g. seg/)\n",
            prefix, POP_MAX_PREFIX - 1);
    return 2;
  }
  snprintf(o->prefix, sizeof o->prefix, "%s", prefix);
  if (o->block & (o->block - 1)) {
    fprintf(stderr, "strata-populate: --block %d: expected a power of two (a task is a "
                    "PyChunkedGraph-style parent chunk, layer 2 + log2(block))\n", o->block);
    return 2;
  }
  o->layer = 2;
  for (int b = o->block; b > 1; b >>= 1) o->layer++;
  return 0;
}

/* Forks the workers, shows progress until they are gone, prints the summary;
 * returns the exit code. */
static int run_workers(const pop_opts *o, const pop_plan *p, pop_shared *sh) {
  int64_t t0 = mono_ns();
  int nw = o->workers;
  if ((uint64_t)nw > sh->ntodo) nw = (int)sh->ntodo;
  fflush(NULL);
  int started = 0;
  for (int i = 0; i < nw; i++, started++) {
    pid_t pid = fork();
    if (pid < 0) { perror("strata-populate: fork"); break; }
    if (pid == 0) _exit(pop_worker_main(o, p, sh, i));
  }
  int tty = isatty(2) && !o->json, alive = started, killed = 0, bad_exit = 0, ws;
  while (alive > 0) {
    pid_t w = waitpid(-1, &ws, tty ? WNOHANG : 0);
    if (w > 0) {
      alive--;
      if (WIFSIGNALED(ws)) {
        killed++;
        fprintf(stderr, "%sstrata-populate: worker %d killed by signal %d\n", tty ? "\n" : "",
                (int)w, WTERMSIG(ws));
      } else if (WEXITSTATUS(ws) != 0) {
        bad_exit++;
      }
      continue;
    }
    if (w < 0 && errno != EINTR) break;
    progress(p, sh, t0, 0);
    struct timespec ts = {0, 200 * 1000000};
    nanosleep(&ts, NULL);
  }
  if (tty) progress(p, sh, t0, 1);
  summary(o, p, sh, (double)(mono_ns() - t0) / 1e9, killed);
  int incomplete = sh->done + sh->lost + sh->failed < sh->ntodo;
  return sh->failed || killed || bad_exit || incomplete || started < nw ? 1 : 0;
}

int main(int argc, char **argv) {
  pop_opts o = {.workers = 4, .block = 4, .retries = POP_DEFAULT_RETRIES, .timeout_ms = 60000,
                .lease_ms = 60000, .max_message = RPC_DEFAULT_MAX_MESSAGE_BYTES};
  int rc = parse_args(argc, argv, &o);
  if (rc) return rc;
  signal(SIGPIPE, SIG_IGN);

  pop_plan p = {0};
  pop_shared *sh = MAP_FAILED;
  size_t shsize = 0;
  char err[1024];
  rc = 2;
  if (plan_build(&o, &p, err, sizeof err)) {
    fprintf(stderr, "strata-populate: %s\n", err);
    goto out;
  }
  if (o.standalone) {
    /* A task is one commit in both modes, so a chunk and its marker stay atomic:
     * a standalone task must fit in one message. */
    uint64_t maxb = 0, maxt = 0;
    for (uint64_t t = 0; t < p.ntasks; t++)
      if (p.tasks[t].bytes > maxb) { maxb = p.tasks[t].bytes; maxt = t; }
    uint64_t room = o.max_message - (o.max_message / 64);
    if (maxb > room) {
      char mk[POP_MAX_PREFIX + 64];
      pop_marker_key(&o, &p.tasks[maxt], mk, sizeof mk);
      fprintf(stderr, "strata-populate: --standalone: task %s holds %" PRIu64 " bytes, above what "
                      "one Kv.Commit message carries (%" PRIu64 "): use a smaller --block, or "
                      "coordinator mode\n", mk, maxb, room);
      goto out;
    }
  }

  rc = 1;
  shsize = sizeof(pop_shared) + p.ntasks * sizeof(uint64_t);
  sh = mmap(NULL, shsize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    fprintf(stderr, "strata-populate: mmap: %s\n", strerror(errno));
    goto out;
  }
  fflush(NULL);
  pid_t sp = fork();
  if (sp < 0) { perror("strata-populate: fork"); goto out; }
  if (sp == 0) {
    sh->setup_rc = setup_main(&o, &p, sh);
    _exit(0);
  }
  int ws;
  if (waitpid(sp, &ws, 0) != sp || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0) {
    fprintf(stderr, "strata-populate: the setup process died\n");
    goto out;
  }
  if (sh->setup_rc) {
    rc = sh->setup_rc;
    goto out;
  }
  rc = run_workers(&o, &p, sh);
out:
  if (sh != MAP_FAILED) munmap(sh, shsize);
  free(p.tasks);
  free(p.chunks);
  free(p.info_text);
  return rc;
}
