/*
 * strata-bench --etcd: the same load, one figure at a time, against a Strata
 * server and an etcd 3.4 server, printing Strata's figures as ratios to etcd's
 * (tools/strata-bench-etcd.c; run by `make bench-etcd`, docs/benchmarks.md
 * "Against etcd").
 */
#ifndef STRATA_TOOLS_BENCH_ETCD_H
#define STRATA_TOOLS_BENCH_ETCD_H

typedef struct bench_etcd_opts {
  const char *strata_addr; /* "host:port" of a running strata-server */
  const char *etcd_addr;   /* "host:port" of a running etcd's client URL */
  double seconds;          /* length of one measurement (> 0) */
  int runs;                /* measurements per figure and server; the median is printed */
} bench_etcd_opts;

/* Largest runs accepted. */
#define BENCH_ETCD_MAX_RUNS 15

/* Runs every figure and prints the BENCH lines. Returns the process exit code:
 * 0, or 1 when a call failed or a read or lock came back wrong. */
int bench_etcd_run(const bench_etcd_opts *o);

#endif
