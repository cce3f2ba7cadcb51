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

/* Reads the child's log until "event=ready ... port=N" appears (10 s at most). */
static int wait_ready(harness *h) {
  for (int i = 0; i < 1000; i++) {
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
      fprintf(stderr, "harness: strata-server exited during start; log %s\n", h->log);
      return -1;
    }
    usleep(10000);
  }
  fprintf(stderr, "harness: strata-server not ready after 10 s; log %s\n", h->log);
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
    srv_embedded_stop(h->emb);
    h->emb = NULL;
    return 0;
  }
  kill(h->pid, SIGTERM);
  int st;
  if (waitpid(h->pid, &st, 0) != h->pid) return -1;
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
  if (pid == 0) {
    dup2(fd, 2);
    dup2(fd, 1);
    execv(bin, (char *const *)args);
    _exit(127);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  ssize_t r = pread(fd, errbuf, n - 1, 0);
  errbuf[r > 0 ? r : 0] = 0;
  close(fd);
  unlink(path);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
