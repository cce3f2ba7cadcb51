/*
 * Shared by the server-level system tests (lockcheck, killload): seeds and a
 * small PRNG, clocks, history files written one whole line per write(), and
 * re-running this test binary as a client process. The server itself is
 * started with tests/rpc/srv_harness.h.
 */
#ifndef STRATA_TESTS_SYSTEM_SYS_COMMON_H
#define STRATA_TESTS_SYSTEM_SYS_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* splitmix64: every process of a run derives its stream from the run's seed. */
typedef struct sys_rng {
  uint64_t s;
} sys_rng;
uint64_t sys_rand(sys_rng *r);
/* Uniform in [0, n); n > 0. */
uint64_t sys_below(sys_rng *r, uint64_t n);

/* STRATA_SEED, or the time when unset; printed as "seed N" on stdout. */
uint64_t sys_seed(const char *test);
/* An environment variable as an integer, or dflt when unset or empty. */
uint64_t sys_env_u64(const char *name, uint64_t dflt);

/* CLOCK_REALTIME in ns: the server's lock clock, on the same machine. */
int64_t sys_now_ns(void);
int64_t sys_mono_ms(void);
void sys_sleep_ms(int64_t ms);

/* A history file: opened O_APPEND, each sys_logf is one write() of one line, so a
 * line is all there or not there whatever happens to the writer. */
int sys_log_open(const char *path);
void sys_logf(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads a whole file (NUL-terminated, caller frees); NULL when missing. */
char *sys_read_file(const char *path, size_t *len);

/* Runs this same binary (/proc/self/exe) with argv[1..] = args (NULL-terminated);
 * returns the pid or -1. stdout/stderr are inherited. */
pid_t sys_spawn_self(const char *const *args);

/* On SIGTERM or SIGINT (the tier's timeout), SIGKILLs every process whose pid is
 * at a watched address (the server, the clients) and exits 1, so a killed test
 * leaves nothing running. Up to 64 addresses; a pid <= 0 there is skipped. */
void sys_watch_pid(const pid_t *pid);

#endif
