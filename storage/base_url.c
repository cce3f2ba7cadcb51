/*
 * The one parser of a store's location (base_url.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "storage/base_url.h"

#define FORMS "a directory (/path, ./path, file:///path) or s3://BUCKET[/PREFIX]"

static int bad(const char *url, const char *why) {
  return strata_err(STRATA_EINVALID, "data URL \"%s\": %s; expected %s", url, why, FORMS);
}

/* S3's bucket naming rules (the subset every S3 implementation accepts):
 * 3..63 characters of lower-case letters, digits, '.' and '-', starting and
 * ending with a letter or digit. */
static int bucket_ok(const char *b, size_t n) {
  if (n < 3 || n > BS_URL_BUCKET_MAX) return 0;
  for (size_t i = 0; i < n; i++) {
    char c = b[i];
    int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (!alnum && ((c != '.' && c != '-') || i == 0 || i == n - 1)) return 0;
  }
  return 1;
}

/* An object-name prefix: segments of printable ASCII other than '\\', none
 * empty, "." or ".." (one trailing '/' was stripped by the caller). */
static int prefix_ok(const char *p) {
  if (!*p) return 1;
  const char *seg = p;
  for (const char *c = p;; c++) {
    if (*c == '/' || !*c) {
      size_t n = (size_t)(c - seg);
      if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) return 0;
      if (!*c) return 1;
      seg = c + 1;
    } else if (*c < 0x21 || *c > 0x7e || *c == '\\') {
      return 0;
    }
  }
}

int bs_url_parse(const char *url, bs_url *u) {
  memset(u, 0, sizeof *u);
  if (!url || !*url) return bad(url ? url : "", "empty");
  if (strncmp(url, "s3://", 5) == 0) {
    const char *b = url + 5, *slash = strchr(b, '/');
    size_t bn = slash ? (size_t)(slash - b) : strlen(b);
    if (!bucket_ok(b, bn))
      return bad(url, "the bucket must be 3..63 characters of a-z, 0-9, '.' and '-'");
    memcpy(u->bucket, b, bn);
    const char *p = slash ? slash + 1 : "";
    size_t pn = strlen(p);
    if (pn && p[pn - 1] == '/') pn--;
    if (pn >= sizeof u->prefix) return bad(url, "the prefix is too long");
    memcpy(u->prefix, p, pn);
    if (!prefix_ok(u->prefix))
      return bad(url, "the prefix must be '/'-separated names of printable characters, none empty, "
                      "\".\" or \"..\"");
    u->kind = BS_URL_S3;
    return 0;
  }
  const char *path = url;
  if (strncmp(url, "file://", 7) == 0) {
    path = url + 7;
    if (path[0] != '/') return bad(url, "a file:// URL needs an absolute path (file:///path)");
  } else if (strstr(url, "://")) {
    return bad(url, "unknown scheme");
  }
  if (strlen(path) >= sizeof u->path) return bad(url, "the path is too long");
  snprintf(u->path, sizeof u->path, "%s", path);
  u->kind = BS_URL_DIR;
  return 0;
}

void bs_url_format(const bs_url *u, char *out, size_t cap) {
  if (u->kind == BS_URL_S3)
    snprintf(out, cap, "s3://%s%s%s", u->bucket, u->prefix[0] ? "/" : "", u->prefix);
  else
    snprintf(out, cap, "%s", u->path);
}

/* The first of the environment variables that is set and not empty, or NULL. */
static const char *env_first(const char *a, const char *b) {
  const char *v = getenv(a);
  if ((!v || !*v) && b) v = getenv(b);
  return v && *v ? v : NULL;
}

static int open_s3(const bs_url *u, const bs_url_opts *o, bs_store **out) {
  char endpoint[512];
  const char *region = o->s3_region ? o->s3_region : env_first("AWS_REGION", "AWS_DEFAULT_REGION");
  if (!region) region = "us-east-1";
  const char *ep = o->s3_endpoint ? o->s3_endpoint : env_first("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL");
  if (ep) snprintf(endpoint, sizeof endpoint, "%s", ep);
  else snprintf(endpoint, sizeof endpoint, "https://s3.%s.amazonaws.com", region);
  size_t n = strlen(endpoint);
  while (n && endpoint[n - 1] == '/') endpoint[--n] = 0;
  if (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)
    return strata_err(STRATA_EINVALID, "s3://%s: the endpoint \"%s\" is not an http:// or https:// URL",
                      u->bucket, endpoint);
  const char *ak = env_first("AWS_ACCESS_KEY_ID", NULL), *sk = env_first("AWS_SECRET_ACCESS_KEY", NULL);
  if (!ak || !sk)
    return strata_err(STRATA_EINVALID, "s3://%s: no credentials: set AWS_ACCESS_KEY_ID and "
                      "AWS_SECRET_ACCESS_KEY in the server's environment (never given as flags)", u->bucket);
  bs_s3_config c = {.endpoint = endpoint, .region = region, .bucket = u->bucket, .prefix = u->prefix,
                    .access_key = ak, .secret_key = sk, .session_token = env_first("AWS_SESSION_TOKEN", NULL),
                    .owner = o->owner, .owner_info = o->owner_info, .take_over = o->take_over};
  return bs_s3_open(&c, out);
}

int bs_url_open(const bs_url *u, const bs_url_opts *o, bs_store **out) {
  static const bs_url_opts none;
  *out = NULL;
  if (u->kind == BS_URL_S3) return open_s3(u, o ? o : &none, out);
  /* The directory is created, its parent never: a shared file system that is
   * not mounted must not turn into a store on the local disk under the mount point. */
  char parent[BS_URL_PATH_MAX];
  snprintf(parent, sizeof parent, "%s", u->path);
  size_t n = strlen(parent);
  while (n > 1 && parent[n - 1] == '/') parent[--n] = 0;
  char *slash = strrchr(parent, '/');
  if (slash) {
    if (slash == parent) slash[1] = 0;
    else *slash = 0;
    struct stat st;
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
      return strata_err(STRATA_ENOTFOUND, "%s: its parent directory %s does not exist (is the file "
                        "system mounted?); Strata creates the store's directory, never its parents",
                        u->path, parent);
  }
  return bs_file_open(u->path, out);
}
