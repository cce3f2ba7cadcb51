/* Helpers of the system tests (see sys_common.h). */
#include "sys_common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t sys_rand(sys_rng *r) {
  uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t sys_below(sys_rng *r, uint64_t n) { return sys_rand(r) % n; }

uint64_t sys_env_u64(const char *name, uint64_t dflt) {
  const char *v = getenv(name);
  return v && *v ? strtoull(v, NULL, 10) : dflt;
}

uint64_t sys_seed(const char *test) {
  uint64_t seed = sys_env_u64("STRATA_SEED", (uint64_t)time(NULL));
  printf("%s: seed %llu (replay with STRATA_SEED=%llu)\n", test, (unsigned long long)seed,
         (unsigned long long)seed);
  fflush(stdout);
  return seed;
}

int64_t sys_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t sys_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sys_sleep_ms(int64_t ms) {
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

int sys_log_open(const char *path) {
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd < 0) {
    fprintf(stderr, "cannot open %s: %s\n", path, strerror(errno));
    exit(2);
  }
  return fd;
}

void sys_logf(int fd, const char *fmt, ...) {
  char buf[8192];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  if (n < 0 || n >= (int)sizeof buf - 1) {
    fprintf(stderr, "history line too long\n");
    exit(2);
  }
  buf[n++] = '\n';
  if (write(fd, buf, (size_t)n) != n) {
    fprintf(stderr, "history write failed: %s\n", strerror(errno));
    exit(2);
  }
}

char *sys_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *p = malloc(cap);
  size_t r;
  while (p && (r = fread(p + n, 1, cap - n - 1, f)) > 0) {
    n += r;
    if (cap - n < 2) p = realloc(p, cap *= 2);
  }
  fclose(f);
  if (!p) return NULL;
  p[n] = 0;
  if (len) *len = n;
  return p;
}

pid_t sys_spawn_self(const char *const *args) {
  const char *argv[32];
  int n = 0;
  argv[n++] = "/proc/self/exe";
  for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
  argv[n] = NULL;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid == 0) {
    execv("/proc/self/exe", (char *const *)argv);
    _exit(127);
  }
  return pid;
}

static const pid_t *watched[64];
static volatile sig_atomic_t nwatched;

static void on_term(int sig) {
  (void)sig;
  for (int i = 0; i < nwatched; i++)
    if (*watched[i] > 0) kill(*watched[i], SIGKILL);
  _exit(1);
}

void sys_watch_pid(const pid_t *pid) {
  if (nwatched == 0) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
  }
  if (nwatched < 64) watched[nwatched++] = pid;
}
