/*
 * auth hash and audit: the two commands that work on files rather than on a
 * server. auth hash makes a line of strata-server's --auth-file (the token's
 * SHA-256, never the token); audit reads the server's audit log
 * (DATA_DIR/audit.log, one JSON object per line; docs/security.md).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpc/tls.h"
#include "tools/stratactl/ctl.h"

/* The role names strata-server accepts (server/auth.h, srv_role_parse). */
static const char *const roles[] = {"reader", "writer", "operator"};

static int read_token_stdin(char *buf, size_t cap) {
  size_t n = 0;
  int ch;
  while ((ch = getchar()) != EOF && ch != '\n') {
    if (n + 1 >= cap) return -1;
    buf[n++] = (char)ch;
  }
  if (n && buf[n - 1] == '\r') n--;
  buf[n] = 0;
  return (int)n;
}

int ctl_auth_hash(ctl_ctx *x, const ctl_args *a) {
  const char *name = a->pos[0], *role = a->pos[1];
  int ok = 0;
  for (int i = 0; i < 3; i++) ok |= strcmp(role, roles[i]) == 0;
  if (!ok) return ctl_usage(a->cmd, "ROLE: expected reader, writer or operator, got \"%s\"", role);
  for (const char *p = name; *p; p++)
    if ((unsigned char)*p < 0x21 || (unsigned char)*p > 0x7e || *p == '"' || *p == '\\' || *p == '#')
      return ctl_usage(a->cmd, "NAME: printable ASCII without spaces, quotes, backslashes or '#'");
  if (strlen(name) > 64) return ctl_usage(a->cmd, "NAME: at most 64 characters");
  char token[4096];
  if (ctl_has(a, "generate")) {
    unsigned char r[32];
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read(fd, r, sizeof r) != (ssize_t)sizeof r) {
      fprintf(stderr, "stratactl: auth hash: cannot read /dev/urandom: %s\n", strerror(errno));
      if (fd >= 0) close(fd);
      return CTL_REFUSED;
    }
    close(fd);
    for (int i = 0; i < 32; i++) snprintf(token + 2 * i, 3, "%02x", r[i]);
  } else {
    int n = read_token_stdin(token, sizeof token);
    if (n <= 0)
      return ctl_usage(a->cmd, n < 0 ? "the token on stdin is longer than 4095 bytes"
                                     : "no token on stdin (or use --generate)");
  }
  unsigned char sha[32];
  char hex[65], line[256];
  rpc_sha256(token, strlen(token), sha);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", sha[i]);
  snprintf(line, sizeof line, "%s %s %s", name, role, hex);
  if (x->json) {
    json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "line", line, "name", name, "role", role,
                          "sha256", hex);
    if (ctl_has(a, "generate")) json_object_set_new(o, "token", json_string(token));
    ctl_json_print(o);
  } else {
    printf("%s\n", line);
    if (ctl_has(a, "generate"))
      fprintf(stderr, "stratactl: the new token for %s (give it to the client; it is not stored "
                      "anywhere): %s\n", name, token);
  }
  return CTL_OK;
}

/* --since: a duration back from now ("1h"), an RFC 3339 time as for pins
 * ("2026-12-06T22:00:00Z", "2026-12-06T23:00:00+01:00"), or UTC shorthands
 * "2026-12-06 22:00:00", "2026-12-06T22:00:00", "2026-12-06T22:00", "2026-12-06",
 * each completed to RFC 3339 and checked by the same parser (no 2026-02-30).
 * Nanoseconds since the epoch, or -1. */
static int64_t since_ns(const char *s) {
  int64_t ms, ns;
  if (ctl_dur_parse(s, &ms) == 0 && ms >= 0) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - ms) * 1000000;
  }
  char t[64];
  size_t n = strlen(s);
  if (n >= sizeof t - 12) return -1;
  memcpy(t, s, n + 1);
  if (n >= 11 && t[10] == ' ') t[10] = 'T';
  if (n == 10) strcat(t, "T00:00:00Z");
  else if (n == 16) strcat(t, ":00Z");
  else if (n == 19) strcat(t, "Z");
  return ctl_time_parse(t, &ns) ? -1 : ns;
}

static const char *jstr(json_t *o, const char *k) {
  const char *v = json_string_value(json_object_get(o, k));
  return v ? v : "";
}

/* The DETAIL column: what the record says beyond its fixed columns. */
static void detail(json_t *r, char *buf, size_t cap) {
  const char *ev = jstr(r, "event");
  buf[0] = 0;
  if (strcmp(ev, "call") == 0 || strcmp(ev, "refused") == 0) {
    char *req = NULL;
    json_t *q = json_object_get(r, "request");
    if (q) req = json_dumps(q, JSON_COMPACT);
    snprintf(buf, cap, "%s%s%s%s%s", jstr(r, "phase"), *jstr(r, "message") ? " " : "",
             jstr(r, "message"), req ? " " : "", req ? req : "");
    free(req);
    json_t *d = json_object_get(r, "dropped_refusals");
    if (d) {
      size_t n = strlen(buf);
      snprintf(buf + n, cap - n, " (+%lld refusals not recorded)", (long long)json_integer_value(d));
    }
  } else if (strcmp(ev, "auth_reload") == 0) {
    json_t *t = json_object_get(r, "tokens");
    if (t) snprintf(buf, cap, "%lld tokens from %s", (long long)json_integer_value(t), jstr(r, "file"));
    else snprintf(buf, cap, "%s", jstr(r, "message"));
  } else if (strcmp(ev, "server_start") == 0) {
    snprintf(buf, cap, "listen %s tls=%s auth_file=%s", jstr(r, "listen"),
             json_is_true(json_object_get(r, "tls")) ? "yes" : "no", jstr(r, "auth_file"));
  }
}

int ctl_audit(ctl_ctx *x, const ctl_args *a) {
  char path[4096];
  if (ctl_has(a, "file")) snprintf(path, sizeof path, "%s", ctl_val(a, "file", 0));
  else snprintf(path, sizeof path, "%s/audit.log",
                ctl_has(a, "data-dir") ? ctl_val(a, "data-dir", 0) : "./strata-data");
  int64_t since = 0;
  if (ctl_has(a, "since") && (since = since_ns(ctl_val(a, "since", 0))) < 0)
    return ctl_usage(a->cmd, "--since: expected a duration (30m, 2h) or a time (2026-12-06, "
                             "2026-12-06T22:00:00Z, 2026-12-06T23:00:00+01:00), got \"%s\"",
                     ctl_val(a, "since", 0));
  FILE *f = fopen(path, "r");
  if (!f) {
    fprintf(stderr, "stratactl: audit: cannot open %s: %s (choose the server's --data-dir with "
                    "--data-dir DIR, or --file PATH)\n", path, strerror(errno));
    return CTL_REFUSED;
  }
  json_t *all = json_array();
  char *line = NULL;
  size_t cap = 0, skipped = 0;
  ssize_t n;
  while ((n = getline(&line, &cap, f)) > 0) {
    if (line[n - 1] != '\n') { /* torn by a crash mid-append: never acknowledged */
      skipped++;
      continue;
    }
    json_error_t je;
    json_t *r = json_loadb(line, (size_t)n, 0, &je);
    if (!json_is_object(r)) {
      skipped++;
      json_decref(r);
      continue;
    }
    json_t *t = json_object_get(r, "time_ns");
    if (since && json_integer_value(t) < since) {
      json_decref(r);
      continue;
    }
    json_array_append_new(all, r);
  }
  free(line);
  fclose(f);
  if (x->json) {
    ctl_json_print(json_pack("{s:s, s:o, s:I}", "file", path, "records", all, "skipped_lines",
                             (json_int_t)skipped));
  } else {
    printf("%-27s %-12s %-16s %-9s %-32s %-18s %s\n", "TIME", "EVENT", "CALLER", "ROLE", "METHOD",
           "STATUS", "DETAIL");
    size_t i;
    json_t *r;
    char d[2048];
    json_array_foreach(all, i, r) {
      detail(r, d, sizeof d);
      printf("%-27s %-12s %-16s %-9s %-32s %-18s %s\n", jstr(r, "time"), jstr(r, "event"),
             *jstr(r, "caller") ? jstr(r, "caller") : "-", *jstr(r, "role") ? jstr(r, "role") : "-",
             *jstr(r, "method") ? jstr(r, "method") : "-",
             *jstr(r, "status") ? jstr(r, "status") : "-", d);
    }
    printf("%zu record%s\n", json_array_size(all), json_array_size(all) == 1 ? "" : "s");
    json_decref(all);
  }
  if (skipped)
    fprintf(stderr, "stratactl: audit: skipped %zu line%s that %s not a whole record (a crash "
                    "mid-append leaves at most one)\n", skipped, skipped == 1 ? "" : "s",
            skipped == 1 ? "is" : "are");
  return CTL_OK;
}
