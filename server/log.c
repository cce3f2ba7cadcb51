/* The key=value stderr log (see log.h). */
#include "server/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <grpc/support/log.h>

static int log_level = SRV_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

int srv_log_parse_level(const char *s) {
  for (int i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0) return i;
  return -1;
}

int srv_log_enabled(int level) { return level <= log_level; }
int srv_log_level(void) { return log_level; }

static void emit(int level, const char *text) {
  char line[2048];
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ level=%s %s\n",
                   tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                   ts.tv_nsec / 1000, level_names[level], text);
  if (n < 0) return;
  if ((size_t)n >= sizeof line) {
    n = sizeof line - 1;
    line[n - 1] = '\n';
  }
  ssize_t w = write(2, line, (size_t)n);
  (void)w;
}

void srv_log(int level, const char *fmt, ...) {
  if (!srv_log_enabled(level)) return;
  char text[1900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  emit(level, text);
}

void srv_log_line(int level, const char *line) {
  if (srv_log_enabled(level)) emit(level, line);
}

const char *srv_log_quote(char *out, size_t n, const char *s) {
  size_t o = 0;
  if (n < 3) {
    if (n) out[0] = 0;
    return out;
  }
  out[o++] = '"';
  for (; *s && o + 6 < n; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') {
      out[o++] = '\\';
      out[o++] = (char)ch;
    } else if (ch < 0x20 || ch == 0x7f) {
      o += (size_t)snprintf(out + o, n - o, "\\x%02x", ch);
    } else {
      out[o++] = (char)ch;
    }
  }
  out[o++] = '"';
  out[o] = 0;
  return out;
}

static void grpc_log_hook(gpr_log_func_args *a) {
  int level = a->severity == GPR_LOG_SEVERITY_ERROR  ? SRV_LOG_ERROR
              : a->severity == GPR_LOG_SEVERITY_INFO ? SRV_LOG_INFO
                                                     : SRV_LOG_DEBUG;
  if (!srv_log_enabled(level)) return;
  char q[1024];
  const char *file = strrchr(a->file, '/');
  srv_log(level, "event=grpc file=%s:%d msg=%s", file ? file + 1 : a->file, a->line,
          srv_log_quote(q, sizeof q, a->message));
}

void srv_log_init(int level) {
  log_level = level;
  gpr_set_log_function(grpc_log_hook);
  gpr_set_log_verbosity(level >= SRV_LOG_DEBUG ? GPR_LOG_SEVERITY_INFO : GPR_LOG_SEVERITY_ERROR);
}
