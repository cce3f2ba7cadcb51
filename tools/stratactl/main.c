/*
 * stratactl: the operator tool for strata-server (issue 6, docs/stratactl.md).
 * main finds the command in ctl_cmds by its words, parses its arguments with
 * the same table and runs it; --help text comes from the table too.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/support/log.h>

#include "common/version.h"
#include "tools/stratactl/ctl.h"

#define GLOBAL_USAGE "[--addr HOST:PORT] [--json] [--timeout DURATION] [--tls-ca FILE] [--token T]"

const char *ctl_cmd_words(const ctl_cmd *c) {
  static char buf[64];
  snprintf(buf, sizeof buf, "%s%s%s", c->group ? c->group : "", c->group ? " " : "", c->name);
  return buf;
}

static void usage_line(FILE *f, const ctl_cmd *c) {
  if (!c) {
    fprintf(f, "usage: stratactl " GLOBAL_USAGE " COMMAND [ARGS...]\n");
    return;
  }
  fprintf(f, "usage: stratactl " GLOBAL_USAGE " %s%s%s\n", ctl_cmd_words(c), *c->synopsis ? " " : "",
          c->synopsis);
}

void ctl_usage_hint(const ctl_cmd *c) {
  usage_line(stderr, c);
  fprintf(stderr, "Run 'stratactl %s%s--help' for details.\n", c ? ctl_cmd_words(c) : "",
          c ? " " : "");
}

int ctl_usage(const ctl_cmd *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "stratactl: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  ctl_usage_hint(c);
  return CTL_USAGE;
}

static void print_indented(FILE *f, const char *text, const char *indent) {
  while (text && *text) {
    size_t n = strcspn(text, "\n");
    fprintf(f, "%s%.*s\n", indent, (int)n, text);
    text += n + (text[n] == '\n');
  }
}

static void global_help(FILE *f) {
  fprintf(f,
          "Global options (anywhere on the command line):\n"
          "  --addr HOST:PORT      server address (default $STRATA_ADDR, then " RPC_DEFAULT_ADDR ")\n"
          "  --json                print one JSON document instead of a table\n"
          "  --timeout DURATION    deadline of each call, e.g. 500ms, 5s, 2m (default 10s)\n"
          "  --tls-ca FILE         connect over TLS, trusting this CA (default $STRATA_TLS_CA)\n"
          "  --tls-cert FILE, --tls-key FILE\n"
          "                        client certificate for mutual TLS ($STRATA_TLS_CERT, $STRATA_TLS_KEY)\n"
          "  --token TOKEN         bearer token sent with every call (default $STRATA_TOKEN; prefer\n"
          "                        the variable: a command line is visible to other users)\n"
          "  --help                help for the command\n"
          "  --version             print stratactl's version, git commit and build date\n"
          "Exit codes: 0 success, 1 refused (lock held, not found, condition failed, server error),\n"
          "            2 usage error, 3 server unreachable, shutting down or not answering in time.\n");
}

void ctl_help(FILE *f, const ctl_cmd *c) {
  usage_line(f, c);
  fprintf(f, "\n%s.\n", c->summary);
  if (c->details) {
    fprintf(f, "\n");
    print_indented(f, c->details, "");
  }
  if (c->opts[0].name) {
    fprintf(f, "\nOptions:\n");
    for (int i = 0; i < CTL_MAX_OPTS && c->opts[i].name; i++) {
      char left[64];
      snprintf(left, sizeof left, "--%s%s%s", c->opts[i].name, c->opts[i].nargs ? " " : "",
               c->opts[i].nargs ? c->opts[i].metavar : "");
      fprintf(f, "  %-28s %s\n", left, c->opts[i].help);
    }
  }
  fprintf(f, "\nExamples:\n");
  print_indented(f, c->examples, "  ");
  fprintf(f, "\n");
  global_help(f);
}

/* The command list, optionally only one group's. */
static void list_help(FILE *f, const char *group) {
  if (group)
    fprintf(f, "usage: stratactl " GLOBAL_USAGE " %s COMMAND [ARGS...]\n\nCommands:\n", group);
  else
    fprintf(f, "stratactl: the Strata operator tool.\n\n");
  if (!group) usage_line(f, NULL);
  if (!group) fprintf(f, "\nCommands:\n");
  for (const ctl_cmd *c = ctl_cmds; c->run; c++) {
    if (group && (!c->group || strcmp(c->group, group) != 0)) continue;
    char left[96];
    snprintf(left, sizeof left, "%s %s", ctl_cmd_words(c), c->synopsis);
    fprintf(f, "  %s\n      %s\n", left, c->summary);
  }
  fprintf(f,
          "\nKeys are given and shown as text, or as 0x... hex when a byte is not printable.\n"
          "A PIN is " CTL_PIN_FORMS ".\n"
          "A key that contains '@' is given in hex (0x...) or after --.\n"
          "Run 'stratactl COMMAND --help' for a command's options and examples.\n\n");
  global_help(f);
}

/* "unknown command ..." with the closest command words, if any. group NULL:
 * w is the first word (a group or a top-level command). */
static int unknown_cmd(const char *group, const char *w) {
  const char *cands[64];
  char words[96];
  size_t n = 0;
  for (const ctl_cmd *c = ctl_cmds; c->run && n < 64; c++) {
    const char *cand = group ? (c->group && strcmp(c->group, group) == 0 ? c->name : NULL)
                             : (c->group ? c->group : c->name);
    if (!cand) continue;
    int dup = 0;
    for (size_t i = 0; i < n; i++) dup |= strcmp(cands[i], cand) == 0;
    if (!dup) cands[n++] = cand;
  }
  const char *near = ctl_closest(w, cands, n);
  if (near && group) {
    snprintf(words, sizeof words, "%s %s", group, near);
    near = words;
  }
  if (w[0] == '-' && !group) {
    const char *globals[CTL_NGLOBAL + 1] = {"--version"};
    memcpy(globals + 1, ctl_global_opts, sizeof ctl_global_opts);
    const char *g = ctl_closest(w, globals, CTL_NGLOBAL + 1);
    return ctl_usage(NULL, "unknown option %s%s%s%s", w, g ? " (did you mean " : "", g ? g : "",
                     g ? "?)" : "");
  }
  if (group)
    return ctl_usage(NULL, "unknown command \"%s %s\"%s%s%s (run 'stratactl %s --help')", group, w,
                     near ? " (did you mean '" : "", near ? near : "", near ? "'?)" : "", group);
  return ctl_usage(NULL, "unknown command \"%s\"%s%s%s", w, near ? " (did you mean '" : "",
                   near ? near : "", near ? "'?)" : "");
}

static int is_group(const char *w) {
  for (const ctl_cmd *c = ctl_cmds; c->run; c++)
    if (c->group && strcmp(c->group, w) == 0) return 1;
  return 0;
}

/* Finds the command named by argv[*i] (and, for a group, the next word that
 * is not a global option: "lock --json list"). Returns it and advances *i
 * past its words, or NULL after printing help or a usage error (*rc says
 * which exit code). */
static const ctl_cmd *find_cmd(ctl_ctx *x, int argc, char **argv, int *i, int *rc) {
  const char *w = argv[*i];
  if (strcmp(w, "--version") == 0 || strcmp(w, "version") == 0) {
    printf("stratactl %s (commit %s, built %s)\n", strata_version(), strata_git_commit(),
           strata_build_date());
    *rc = CTL_OK;
    return NULL;
  }
  if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0 || strcmp(w, "help") == 0) {
    list_help(stdout, NULL);
    *rc = CTL_OK;
    return NULL;
  }
  if (!is_group(w)) {
    for (const ctl_cmd *c = ctl_cmds; c->run; c++)
      if (!c->group && strcmp(c->name, w) == 0) {
        (*i)++;
        return c;
      }
    *rc = unknown_cmd(NULL, w);
    return NULL;
  }
  int j = *i + 1;
  if (ctl_global_args(x, argc, argv, &j)) {
    *rc = CTL_USAGE;
    return NULL;
  }
  const char *sub = j < argc ? argv[j] : NULL;
  if (!sub || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
    list_help(sub ? stdout : stderr, w);
    *rc = sub ? CTL_OK : CTL_USAGE;
    if (!sub) fprintf(stderr, "stratactl: %s: missing command\n", w);
    return NULL;
  }
  for (const ctl_cmd *c = ctl_cmds; c->run; c++)
    if (c->group && strcmp(c->group, w) == 0 && strcmp(c->name, sub) == 0) {
      *i = j + 1;
      return c;
    }
  *rc = unknown_cmd(w, sub);
  return NULL;
}

/* gRPC core's own log lines (a failed TLS handshake, ...) repeat what the failed
 * call's status already says, in a form meant for developers: dropped unless
 * $GRPC_VERBOSITY asks for them. */
static void quiet_grpc_log(gpr_log_func_args *args) { (void)args; }

int main(int argc, char **argv) {
  ctl_ctx x = {.timeout_ms = CTL_DEFAULT_TIMEOUT_MS}; /* addr: see ctl_client */
  if (!getenv("GRPC_VERBOSITY")) gpr_set_log_function(quiet_grpc_log);
  int i = 1, rc = CTL_OK;
  if (ctl_global_args(&x, argc, argv, &i)) return CTL_USAGE;
  if (i >= argc) {
    list_help(stderr, NULL);
    fprintf(stderr, "stratactl: missing command\n");
    return CTL_USAGE;
  }
  const ctl_cmd *c = find_cmd(&x, argc, argv, &i, &rc);
  if (!c) return rc;
  x.cmd = c;
  ctl_args a;
  rc = ctl_parse_args(&x, c, argc - i, argv + i, &a);
  if (rc == CTL_OK) rc = c->run(&x, &a);
  else if (rc < 0) rc = CTL_OK; /* --help */
  free(a.pos);
  if (x.client) rpc_client_close(x.client);
  return rc;
}
