/*
 * Argument parsing driven by the command table: each command's ctl_opt list
 * says which options exist and how many values each takes. The global
 * options (--addr, --json, --timeout, --help) are accepted anywhere.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "tools/stratactl/ctl.h"

static int opt_index(const ctl_cmd *c, const char *name, size_t len) {
  for (int i = 0; i < CTL_MAX_OPTS && c->opts[i].name; i++)
    if (strlen(c->opts[i].name) == len && memcmp(c->opts[i].name, name, len) == 0) return i;
  return -1;
}

/* Optimal string alignment distance (Levenshtein plus adjacent swaps). */
static size_t edit_distance(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  if (n > 64 || m > 64) return 99;
  size_t d[65][65];
  for (size_t i = 0; i <= n; i++) d[i][0] = i;
  for (size_t j = 0; j <= m; j++) d[0][j] = j;
  for (size_t i = 1; i <= n; i++)
    for (size_t j = 1; j <= m; j++) {
      size_t c = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
      if (d[i - 1][j] + 1 < c) c = d[i - 1][j] + 1;
      if (d[i][j - 1] + 1 < c) c = d[i][j - 1] + 1;
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] && d[i - 2][j - 2] + 1 < c)
        c = d[i - 2][j - 2] + 1;
      d[i][j] = c;
    }
  return d[n][m];
}

const char *ctl_closest(const char *w, const char *const *cands, size_t n) {
  size_t len = strlen(w), max = len <= 4 ? 1 : len <= 8 ? 2 : 3, best = max + 1;
  const char *pick = NULL;
  for (size_t i = 0; i < n; i++) {
    size_t dist = edit_distance(w, cands[i]);
    /* A prefix of a command ("ver" for "versions") is also a likely typo. */
    if (dist > max && len >= 2 && strncmp(cands[i], w, len) == 0) dist = max;
    if (dist < best) {
      best = dist;
      pick = cands[i];
    }
  }
  return pick;
}

int ctl_has(const ctl_args *a, const char *name) {
  int i = opt_index(a->cmd, name, strlen(name));
  return i >= 0 && a->set[i];
}

const char *ctl_val(const ctl_args *a, const char *name, int n) {
  int i = opt_index(a->cmd, name, strlen(name));
  return i >= 0 && a->set[i] ? a->val[i][n] : NULL;
}

const char *const ctl_global_opts[CTL_NGLOBAL] = {"--addr",   "--json",     "--timeout", "--help",
                                                   "--tls-ca", "--tls-cert", "--tls-key", "--token"};

/* The global options. Returns the number of argv entries consumed (0: not a
 * global option), or -1 after a usage error. */
static int global_opt(ctl_ctx *x, const ctl_cmd *c, int argc, char **argv, int i) {
  const char *s = argv[i], *v = NULL;
  size_t n = strcspn(s, "=");
  int used = 1;
  if (strcmp(s, "--json") == 0) {
    x->json = 1;
    return 1;
  }
  /* The options that take a value, and where it goes (NULL: --timeout). */
  static const struct {
    const char *name;
    size_t off;
  } vopts[] = {{"--addr", offsetof(ctl_ctx, addr)},         {"--timeout", 0},
               {"--tls-ca", offsetof(ctl_ctx, tls_ca)},     {"--tls-cert", offsetof(ctl_ctx, tls_cert)},
               {"--tls-key", offsetof(ctl_ctx, tls_key)},   {"--token", offsetof(ctl_ctx, token)}};
  int k = -1;
  for (int j = 0; j < (int)(sizeof vopts / sizeof vopts[0]); j++)
    if (strlen(vopts[j].name) == n && memcmp(s, vopts[j].name, n) == 0) k = j;
  if (k < 0) return 0;
  if (s[n] == '=') {
    v = s + n + 1;
  } else if (i + 1 < argc) {
    v = argv[i + 1];
    used = 2;
  } else {
    ctl_usage(c, "%s needs a value", s);
    return -1;
  }
  if (k == 0 && !strchr(v, ':')) {
    ctl_usage(c, "--addr: expected HOST:PORT, got \"%s\"", v);
    return -1;
  }
  if (k == 1) {
    if (ctl_dur_parse(v, &x->timeout_ms) || x->timeout_ms <= 0) {
      ctl_usage(c, "--timeout: expected a positive duration such as 500ms, 5s or 2m, got \"%s\"",
                v);
      return -1;
    }
    return used;
  }
  *(const char **)((char *)x + vopts[k].off) = v;
  return used;
}

int ctl_global_args(ctl_ctx *x, int argc, char **argv, int *i) {
  while (*i < argc) {
    int n = global_opt(x, NULL, argc, argv, *i);
    if (n < 0) return CTL_USAGE;
    if (n == 0) break;
    *i += n;
  }
  return CTL_OK;
}

int ctl_key_arg(ctl_ctx *x, const ctl_args *a, const char *what, const char *s, uint8_t **out,
                size_t *len) {
  char err[256];
  int rc = ctl_key_parse(s, out, len, err, sizeof err);
  if (rc == -2) return ctl_oom(x);
  return rc ? ctl_usage(a->cmd, "%s: %s", what, err) : 0;
}

int ctl_key_pin_arg(ctl_ctx *x, const ctl_args *a, int i, int pinnable, int empty_ok,
                    uint8_t **key, size_t *len, ctl_pin *pin) {
  const char *s = a->pos[i];
  size_t end = strlen(s);
  memset(pin, 0, sizeof *pin);
  *key = NULL;
  *len = 0;
  if (i < a->literal_from && strchr(s, '@')) {
    const char *at = strrchr(s, '@');
    if (!pinnable)
      return ctl_usage(a->cmd,
                       "KEY \"%s\": %s takes no pin; a key that contains '@' is given in hex "
                       "(0x...) or after -- (%s -- KEY)",
                       s, ctl_cmd_words(a->cmd), ctl_cmd_words(a->cmd));
    if (ctl_split_pin(s, &end, pin))
      return ctl_usage(a->cmd,
                       "\"%s\": \"%s\" is not a pin. A pin is " CTL_PIN_FORMS
                       ". A key that contains '@' is given in hex (0x...) or after --",
                       s, at + 1);
  }
  if (end == 0) return empty_ok ? 0 : ctl_usage(a->cmd, "KEY: empty key");
  char *k = strndup(s, end);
  if (!k) return ctl_oom(x);
  int rc = ctl_key_arg(x, a, "KEY", k, key, len);
  free(k);
  return rc;
}

int ctl_parse_args(ctl_ctx *x, const ctl_cmd *c, int argc, char **argv, ctl_args *a) {
  memset(a, 0, sizeof *a);
  a->cmd = c;
  a->pos = calloc((size_t)argc + 1, sizeof *a->pos);
  if (!a->pos) return ctl_oom(x);
  a->literal_from = argc + 1;
  int only_pos = 0;
  for (int i = 0; i < argc;) {
    const char *s = argv[i];
    if (only_pos || s[0] != '-' || strcmp(s, "-") == 0) {
      a->pos[a->npos++] = argv[i++];
      continue;
    }
    if (strcmp(s, "--") == 0 && !only_pos) {
      only_pos = 1;
      a->literal_from = a->npos;
      i++;
      continue;
    }
    if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
      ctl_help(stdout, c);
      return -1;
    }
    int g = global_opt(x, c, argc, argv, i);
    if (g < 0) return CTL_USAGE;
    if (g > 0) {
      i += g;
      continue;
    }
    size_t n = strcspn(s, "=");
    int k = s[1] == '-' ? opt_index(c, s + 2, n - 2) : -1;
    if (k < 0) {
      /* The command's options and the global ones, "--" included. */
      char names[CTL_MAX_OPTS][40], given[64];
      const char *cands[CTL_MAX_OPTS + CTL_NGLOBAL];
      size_t nc = 0;
      for (int j = 0; j < CTL_MAX_OPTS && c->opts[j].name; j++) {
        snprintf(names[j], sizeof names[0], "--%s", c->opts[j].name);
        cands[nc++] = names[j];
      }
      for (size_t j = 0; j < CTL_NGLOBAL; j++) cands[nc++] = ctl_global_opts[j];
      snprintf(given, sizeof given, "%.*s", (int)(n < 60 ? n : 60), s);
      const char *near = ctl_closest(given, cands, nc);
      if (near) return ctl_usage(c, "unknown option %.*s (did you mean %s?)", (int)n, s, near);
      return ctl_usage(c, "unknown option %.*s", (int)n, s);
    }
    const ctl_opt *o = &c->opts[k];
    if (a->set[k]) return ctl_usage(c, "--%s given twice", o->name);
    a->set[k] = 1;
    i++;
    if (o->nargs == 0) {
      if (s[n] == '=') return ctl_usage(c, "--%s takes no value", o->name);
      continue;
    }
    if (s[n] == '=') {
      if (o->nargs != 1) return ctl_usage(c, "--%s takes %d values: --%s %s", o->name, o->nargs, o->name, o->metavar);
      a->val[k][0] = s + n + 1;
      continue;
    }
    for (int j = 0; j < o->nargs; j++) {
      if (i >= argc) return ctl_usage(c, "--%s needs %s", o->name, o->metavar);
      a->val[k][j] = argv[i++];
    }
  }
  if (a->npos < c->min_pos)
    return ctl_usage(c, "%s", a->npos == 0 ? "missing argument" : "too few arguments");
  if (c->max_pos >= 0 && a->npos > c->max_pos)
    return ctl_usage(c, "unexpected argument \"%s\"", a->pos[c->max_pos]);
  return CTL_OK;
}
