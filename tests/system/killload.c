/*
 * kill -9 of the real strata-server under mixed load (issue 9, point 6). The
 * driver runs client processes that commit (small, out-of-line, multi-key,
 * conditional, fenced), acquire and release locks of both kinds, create ops and
 * move them through statuses, and allocate ids; each client appends every
 * acknowledged effect (and every call whose outcome it could not learn) to its
 * own history file. The driver SIGKILLs the server at a random moment, restarts
 * it on the same data directory and, before the load resumes, checks that every
 * acknowledged effect is there:
 *
 *  - every key's value at latest is its last acknowledged value, or the value of
 *    a later commit whose answer was lost; every acknowledged commit's values
 *    read back at its own generation (time travel);
 *  - every lock row is held as acknowledged (temporal ones unless expired on the
 *    server's clock), op statuses are as acknowledged, fencing tokens granted
 *    after a restart exceed every token granted before it, id ranges never
 *    overlap;
 *  - Kv.Versions lists gapless generations with strictly increasing commit
 *    times, each acknowledged commit at its generation and time;
 *  - every few cycles, with the server down, and at the end, the store itself
 *    is checked offline (st_open read-only): every generation's tree is walked,
 *    values read at sampled generations and at the latest.
 *
 * Registers: each key, lock row and op is a register whose allowed values are
 * its last acknowledged value plus any later unknown ones. A client resyncs its
 * uncertain registers at the start of a cycle and logs what it saw (O lines),
 * which must itself be allowed and then becomes the known value.
 *
 *   killload                        the driver (env below)
 *   killload client I SEED          one client: commands on stdin, answers on stdout
 *
 * Env: STRATA_SERVER_BIN (required), STRATA_SEED, KILLLOAD_CYCLES (50),
 * KILLLOAD_CLIENTS (4), KILLLOAD_CHECK_EVERY (10), KILLLOAD_SOAK=1 prints SOAK
 * lines.
 *
 * This file holds the values both sides rebuild and the driver; the client is in
 * killload_client.c, the model and the checks in killload_check.c (killload.h).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/rpc/srv_harness.h"
#include "tests/system/killload.h"
#include "tests/system/sys_common.h"

/* --- values ------------------------------------------------------------------- */

size_t kl_value_make(uint8_t *out, const char *key, uint64_t seq, size_t len) {
  int n = snprintf((char *)out, len + 1 > 96 ? 96 : len + 1, "%s:%llu:", key,
                   (unsigned long long)seq);
  size_t p = (size_t)n < len ? (size_t)n : len;
  sys_rng r = {seq * 1000003u + (uint64_t)strlen(key) * 7919u + (uint64_t)key[strlen(key) - 1]};
  for (; p < len; p++) out[p] = (uint8_t)('a' + sys_below(&r, 26));
  return len;
}

void kl_value_name(const char *key, const uint8_t *v, size_t len, char *out, size_t n) {
  char pfx[128];
  size_t kl = strlen(key);
  unsigned long long seq;
  static uint8_t buf[VAL_MAX];
  if (len > VAL_MAX || len < kl + 3 || memcmp(v, key, kl) != 0 || v[kl] != ':') {
    snprintf(out, n, "BAD");
    return;
  }
  size_t m = len - kl - 1 < sizeof pfx - 1 ? len - kl - 1 : sizeof pfx - 1;
  memcpy(pfx, v + kl + 1, m);
  pfx[m] = 0;
  if (sscanf(pfx, "%llu:", &seq) != 1 || kl_value_make(buf, key, seq, len) != len ||
                                                       memcmp(buf, v, len) != 0) {
                                                       snprintf(out, n, "BAD");
    return;
  }
  snprintf(out, n, "%llu/%zu", seq, len);
}

ProtobufCBinaryData kl_bin(const char *s) {
  return (ProtobufCBinaryData){strlen(s), (uint8_t *)s};
}

/* --- the driver ---------------------------------------------------------------- */

typedef struct proc {
  pid_t pid;
  int to, from; /* command pipe (its stdin), answer pipe (its stdout) */
} proc;

static int spawn_client(proc *p, int idx, uint64_t seed, const char *file) {
  int in[2], out[2];
  if (pipe(in) || pipe(out)) return -1;
  char i[16], sd[32];
  snprintf(i, sizeof i, "%d", idx);
  snprintf(sd, sizeof sd, "%llu", (unsigned long long)seed);
  fflush(stdout);
  fflush(stderr);
  p->pid = fork();
  if (p->pid < 0) return -1;
  if (p->pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    close(in[0]), close(in[1]), close(out[0]), close(out[1]);
    execl("/proc/self/exe", "killload", "client", i, sd, file, (char *)NULL);
    _exit(127);
  }
  close(in[0]), close(out[1]);
  p->to = in[1], p->from = out[0];
  return 0;
}

static int send_all(proc *p, int n, const char *cmd) {
  for (int i = 0; i < n; i++)
    if (write(p[i].to, cmd, strlen(cmd)) != (ssize_t)strlen(cmd)) return -1;
  return 0;
}

/* Waits for every client's IDLE line; -1 when one died. */
static int wait_idle(proc *p, int n) {
  for (int i = 0; i < n; i++) {
    char buf[8];
    size_t got = 0;
    while (got < 5) {
      ssize_t r = read(p[i].from, buf + got, 5 - got);
      if (r <= 0) {
        fprintf(stderr, "killload: client %d died\n", i);
        return -1;
      }
      got += (size_t)r;
    }
  }
  return 0;
}

/* One run's processes: the server (restarted on `dir`) and the clients. */
typedef struct run {
  const char *bin;
  char dir[512];
  harness h;
  proc cl[MAX_CLIENTS];
  sys_rng rng; /* when each kill lands */
  uint64_t seed, kills;
} run;

/* Cycle `cyc`: after the first a restart and its check, then GO, 50..500 ms of
 * load, SIGKILL, STOP, every client idle, and every `check_every`-th cycle the
 * offline check. 0, or -1 when the run cannot go on. */
static int kill_cycle(drv *d, run *r, uint64_t cyc, uint64_t check_every) {
  if (cyc > 1) {
    if (harness_start(&r->h, r->bin, r->dir, NULL)) {
      kl_violation(d, "the server did not restart after kill %llu; log %s",
                   (unsigned long long)r->kills, r->h.log);
      return -1;
    }
    kl_verify(d, r->h.addr);
  }
  int broken = 0;
  char go[128];
  snprintf(go, sizeof go, "GO %s\n", r->h.addr);
  if (send_all(r->cl, d->nclients, go)) broken = 1;
  sys_sleep_ms(50 + (int64_t)sys_below(&r->rng, 450)); /* load runs; the kill lands anywhere */
  kill(r->h.pid, SIGKILL);
  waitpid(r->h.pid, NULL, 0);
  r->h.pid = 0;
  r->kills++;
  if (send_all(r->cl, d->nclients, "STOP\n") || wait_idle(r->cl, d->nclients)) broken = 1;
  if (!broken && check_every && cyc % check_every == 0) kl_offline_check(d, r->dir, 0, 0);
  if (d->violations) broken = 1;
  return broken ? -1 : 0;
}

/* The last restart, its check, then a clean stop and the full offline check; the
 * clients told to quit and reaped. Returns harness_stop's result (-1 when the
 * server never came back). */
static int finish(drv *d, run *r, int broken) {
  int stop = -1;
  if (!broken && harness_start(&r->h, r->bin, r->dir, NULL) == 0) {
    kl_verify(d, r->h.addr);
    stop = harness_stop(&r->h);
    kl_offline_check(d, r->dir, 1, 20);
  } else if (!broken) {
    kl_violation(d, "the server did not restart after the last kill; log %s", r->h.log);
  }
  send_all(r->cl, d->nclients, "QUIT\n");
  for (int i = 0; i < d->nclients; i++) {
    int st;
    close(r->cl[i].to);
    waitpid(r->cl[i].pid, &st, 0);
    if (!broken && (!WIFEXITED(st) || WEXITSTATUS(st)))
      kl_violation(d, "client %d exited 0x%x", i, st);
  }
  if (r->h.pid > 0) harness_stop(&r->h);
  return stop;
}

static void print_figures(const drv *d, uint64_t kills, int64_t ms) {
  printf("killload: %llu kills in %lld ms, %llu acknowledged effects, %llu register checks, %llu "
         "time-travel reads, %llu unknown outcomes, %llu offline checks, %llu registers, %llu "
         "generations, %llu violations\n",
         (unsigned long long)kills, (long long)ms, (unsigned long long)d->effects,
         (unsigned long long)d->verified, (unsigned long long)d->timetravel,
         (unsigned long long)d->unknowns, (unsigned long long)d->offline_checks,
         (unsigned long long)d->m.nregs, (unsigned long long)d->max_gen,
         (unsigned long long)d->violations);
  if (getenv("KILLLOAD_SOAK")) {
    printf("SOAK killload_kills %llu\n", (unsigned long long)kills);
    printf("SOAK killload_acknowledged_effects %llu\n", (unsigned long long)d->effects);
    printf("SOAK killload_checks %llu\n", (unsigned long long)(d->verified + d->timetravel));
    printf("SOAK killload_violations %llu\n", (unsigned long long)d->violations);
  }
}

/* A failed run keeps the data directory, the server's log and the histories. */
static void keep_or_remove(const drv *d, const run *r, int bad) {
  if (bad) {
    fprintf(stderr, "killload: FAILED (seed %llu); data and histories kept in %s*\n",
            (unsigned long long)r->seed, r->dir);
    return;
  }
  harness_rmdir(r->dir);
  char p[700];
  snprintf(p, sizeof p, "%s.log", r->dir);
  unlink(p);
  for (int i = 0; i < d->nclients; i++) unlink(d->files[i]);
}

static int driver_main(void) {
  static run r;
  r.bin = getenv("STRATA_SERVER_BIN");
  if (!r.bin) {
    fprintf(stderr, "killload: set STRATA_SERVER_BIN\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  r.seed = sys_seed("killload");
  r.rng.s = r.seed;
  uint64_t cycles = sys_env_u64("KILLLOAD_CYCLES", 50);
  uint64_t check_every = sys_env_u64("KILLLOAD_CHECK_EVERY", 10);
  static drv d;
  d.rng.s = r.seed + 1;
  d.nclients = (int)sys_env_u64("KILLLOAD_CLIENTS", 4);
  if (d.nclients < 1 || d.nclients > MAX_CLIENTS) return 2;

  if (harness_start(&r.h, r.bin, NULL, NULL)) return 1;
  sys_watch_pid(&r.h.pid);
  snprintf(r.dir, sizeof r.dir, "%s", r.h.dir);
  for (int i = 0; i < d.nclients; i++) {
    snprintf(d.files[i], sizeof d.files[i], "%s.history-%d", r.dir, i);
    if (spawn_client(&r.cl[i], i, r.seed, d.files[i])) return 1;
    sys_watch_pid(&r.cl[i].pid);
  }
  int64_t t0 = sys_mono_ms();
  int broken = 0;
  for (uint64_t cyc = 1; cyc <= cycles && !broken; cyc++)
    broken = kill_cycle(&d, &r, cyc, check_every) != 0;
  int stop = finish(&d, &r, broken);
  print_figures(&d, r.kills, sys_mono_ms() - t0);
  int bad = broken || d.violations || stop != 0 || r.kills < cycles || d.effects == 0;
  keep_or_remove(&d, &r, bad);
  return bad ? 1 : 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "client") == 0) return kl_client_main(argc, argv);
  return driver_main();
}
