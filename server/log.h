/*
 * strata-server's log: one line per event on stderr, key=value pairs,
 * `ts=2026-11-21T05:44:00.123456Z level=info event=listening addr=...`.
 * Values with spaces are double-quoted (srv_log_quote). gRPC core's own log
 * lines are routed here too (event=grpc).
 */
#ifndef STRATA_SERVER_LOG_H
#define STRATA_SERVER_LOG_H

#include <stddef.h>

enum srv_log_level { SRV_LOG_ERROR = 0, SRV_LOG_WARN = 1, SRV_LOG_INFO = 2, SRV_LOG_DEBUG = 3 };

/* Sets the level below which lines are dropped (default info) and routes gRPC
 * core's messages to this log. Call once, before starting threads. */
void srv_log_init(int level);
/* "error" | "warn" | "info" | "debug" -> level, or -1. */
int srv_log_parse_level(const char *s);
int srv_log_enabled(int level);
/* The current level. */
int srv_log_level(void);

/* Writes "ts=... level=... " + the formatted text, which should start with
 * "event=NAME". One write(2) per line, so lines never interleave. */
void srv_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The rpc layer's hook (rpc_log_fn): `line` is already "event=... k=v". */
void srv_log_line(int level, const char *line);

/* Writes s into out (size n) as a double-quoted value with " and \ escaped
 * and control bytes as \xNN; truncates to fit. Returns out. */
const char *srv_log_quote(char *out, size_t n, const char *s);

#endif
