/* Server harness for the integration tests (see srv_harness.h). */
#define _XOPEN_SOURCE 700
#include "srv_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

void harness_rmdir(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int make_dir(harness *h, const char *dir) {
  if (dir) {
    snprintf(h->dir, sizeof h->dir, "%s", dir);
    return 0;
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(h->dir, sizeof h->dir, "%s/strata-test-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(h->dir)) {
    perror("mkdtemp");
    return -1;
  }
  return 0;
}

static int64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Kills a child that will not be stopped politely, and reaps it. */
static void kill_child(harness *h) {
  kill(h->pid, SIGKILL);
  waitpid(h->pid, NULL, 0);
  h->pid = 0;
}

/* Reads the child's log until "event=ready ... port=N" appears. A server under
 * ASan on a loaded machine may take long to start: 60 s at most, after which
 * the child is killed, so a failed start leaves no server behind. */
static int wait_ready(harness *h) {
  for (int64_t t0 = mono_ms(); mono_ms() - t0 < 60000;) {
    FILE *f = fopen(h->log, "r");
    char line[2048];
    while (f && fgets(line, sizeof line, f)) {
      const char *p = strstr(line, "event=ready");
      const char *q = p ? strstr(p, "port=") : NULL;
      if (q) {
        snprintf(h->addr, sizeof h->addr, "127.0.0.1:%d", atoi(q + 5));
        fclose(f);
        return 0;
      }
    }
    if (f) fclose(f);
    int st;
    if (waitpid(h->pid, &st, WNOHANG) == h->pid) {
      h->pid = 0;
      fprintf(stderr, "harness: strata-server exited during start; log %s\n", h->log);
      return -1;
    }
    usleep(10000);
  }
  kill_child(h);
  fprintf(stderr, "harness: strata-server not ready after 60 s (killed); log %s\n", h->log);
  return -1;
}

int harness_start(harness *h, const char *bin, const char *dir, const char *const *extra) {
  memset(h, 0, sizeof *h);
  if (make_dir(h, dir)) return -1;
  if (!bin) {
    if (srv_embedded_start(h->dir, &h->emb)) {
      fprintf(stderr, "harness: embedded start: %s\n", strata_errmsg());
      return -1;
    }
    snprintf(h->addr, sizeof h->addr, "%s", srv_embedded_addr(h->emb));
    return 0;
  }
  h->process = 1;
  snprintf(h->log, sizeof h->log, "%s.log", h->dir);
  unlink(h->log); /* a restart must not read the previous run's "event=ready" */
  const char *argv[32];
  int n = 0;
  argv[n++] = bin;
  argv[n++] = "--listen";
  argv[n++] = "127.0.0.1:0";
  argv[n++] = "--data-dir";
  argv[n++] = h->dir;
  for (int i = 0; extra && extra[i] && n < 30; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  h->pid = fork();
  if (h->pid < 0) {
    perror("fork");
    h->pid = 0;
    return -1;
  }
  if (h->pid == 0) {
    int fd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) dup2(fd, 2);
    execv(bin, (char *const *)argv);
    _exit(127);
  }
  return wait_ready(h);
}

int harness_stop(harness *h) {
  if (!h->process) {
    if (!h->emb) return -1; /* never started, or stopped already */
    srv_embedded_stop(h->emb);
    h->emb = NULL;
    return 0;
  }
  if (h->pid <= 0) return -1; /* never started, or stopped already: kill(0) would hit us */
  kill(h->pid, SIGTERM);
  /* The drain is bounded by the server's grace (5 s unless --grace-ms); a server
   * still running after two minutes is hung: kill it rather than hang the tier. */
  int st;
  pid_t r = 0;
  for (int64_t t0 = mono_ms(); (r = waitpid(h->pid, &st, WNOHANG)) == 0 && mono_ms() - t0 < 120000;)
    usleep(10000);
  if (r != h->pid) {
    fprintf(stderr, "harness: strata-server did not exit within 120 s of SIGTERM (killed); log %s\n",
            h->log);
    kill_child(h);
    return -1;
  }
  h->pid = 0;
  if (!WIFEXITED(st)) {
    fprintf(stderr, "harness: strata-server died of signal %d; log %s\n", WTERMSIG(st), h->log);
    return -1;
  }
  return WEXITSTATUS(st);
}

int harness_run(const char *bin, const char *const *args, char *errbuf, size_t n) {
  char path[] = "/tmp/strata-run-XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return -1;
  pid_t pid = fork();
  if (pid < 0) {
    close(fd);
    unlink(path);
    return -1;
  }
  if (pid == 0) {
    dup2(fd, 2);
    dup2(fd, 1);
    execv(bin, (char *const *)args);
    _exit(127);
  }
  /* These runs end at once (refusals, --help); one that does not is a failure,
   * not a reason to hang the tier. */
  int st = 0;
  pid_t w = 0;
  for (int64_t t0 = mono_ms(); (w = waitpid(pid, &st, WNOHANG)) == 0 && mono_ms() - t0 < 60000;)
    usleep(10000);
  if (w == 0) {
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
  }
  ssize_t r = pread(fd, errbuf, n - 1, 0);
  errbuf[r > 0 ? r : 0] = 0;
  close(fd);
  unlink(path);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int harness_put(rpc_client *c, const void *k, size_t kn, const void *v, size_t vn) {
  Strata__V1__Put put = STRATA__V1__PUT__INIT, *pp = &put;
  put.key = (ProtobufCBinaryData){kn, (uint8_t *)k};
  put.value = (ProtobufCBinaryData){vn, (uint8_t *)v};
  Strata__V1__CommitRequest q = STRATA__V1__COMMIT_REQUEST__INIT;
  q.n_puts = 1;
  q.puts = &pp;
  Strata__V1__CommitResponse *r = NULL;
  int rc = rpc_kv_commit(c, NULL, &q, &r);
  rpc_free(r);
  return rc;
}

int harness_check(rpc_client *c, const void *k, size_t kn, const void *v, size_t vn) {
  Strata__V1__GetRequest q = STRATA__V1__GET_REQUEST__INIT;
  q.key = (ProtobufCBinaryData){kn, (uint8_t *)k};
  Strata__V1__GetResponse *r = NULL;
  int rc = rpc_kv_get(c, NULL, &q, &r);
  if (rc) {
    fprintf(stderr, "harness: get %.*s: %s\n", (int)kn, (const char *)k, strata_errmsg());
    return rc;
  }
  int same = r->found && r->value.len == vn && (!vn || memcmp(r->value.data, v, vn) == 0);
  if (!same)
    fprintf(stderr, "harness: key %.*s is %s\n", (int)kn, (const char *)k,
            r->found ? "not the value written" : "absent");
  rpc_free(r);
  return same ? 0 : 1;
}
