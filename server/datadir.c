/* See datadir.h. */
#include "server/datadir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "server/srv.h"
#include "storage/base_url.h"

int srv_listen_syntax(const char *flag, const char *listen, char *msg, size_t cap) {
  const char *colon = strrchr(listen, ':');
  if (!colon || !colon[1]) {
    snprintf(msg, cap, "%s: expected HOST:PORT, got \"%s\"", flag, listen);
    return -1;
  }
  /* Decimal digits only, at most 65535: getaddrinfo would take 99999 and bind
   * 99999 mod 65536, and a service name is not what a user means here. */
  size_t nd = strspn(colon + 1, "0123456789");
  if (colon[1 + nd] || nd > 5 || strtoul(colon + 1, NULL, 10) > 65535) {
    snprintf(msg, cap, "%s %s: the port must be a number in 0..65535 (0 picks a free one), got \"%s\"",
             flag, listen, colon + 1);
    return -1;
  }
  return 0;
}

int srv_check_listen(const char *flag, const char *listen, char *msg, size_t cap) {
  if (srv_listen_syntax(flag, listen, msg, cap)) return -1;
  const char *colon = strrchr(listen, ':');
  char host[256];
  size_t hl = (size_t)(colon - listen);
  const char *h = listen;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [::1]:7420 */
    h++;
    hl -= 2;
  }
  if (hl >= sizeof host) hl = sizeof host - 1;
  memcpy(host, h, hl);
  host[hl] = 0;
  if (strcmp(colon + 1, "0") == 0) return 0;
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
  struct addrinfo *res = NULL;
  int g = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &res);
  if (g) {
    snprintf(msg, cap, "cannot listen on %s: %s", listen, gai_strerror(g));
    return -1;
  }
  int rc = 0;
  for (struct addrinfo *a = res; a && !rc; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue; /* an address family this host lacks: gRPC skips it too */
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* as gRPC: TIME_WAIT is fine */
    if (a->ai_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0) {
      int e = errno;
      if (e == EADDRINUSE)
        snprintf(msg, cap,
                 "cannot listen on %s: the address is already in use (another strata-server or "
                 "program listens there); stop it or choose another %s HOST:PORT",
                 listen, flag);
      else
        snprintf(msg, cap, "cannot listen on %s: %s", listen, strerror(e));
      rc = -1;
    }
    close(fd);
  }
  freeaddrinfo(res);
  return rc;
}

/* Reads the first bytes of path into buf; returns how many, or -1. */
static ssize_t read_head(const char *path, void *buf, size_t n) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t r = read(fd, buf, n);
  close(fd);
  return r;
}

/* The OCDBT manifest's envelope: magic (u32be), length (u64le), format
 * version (varint). docs/format.md, "Envelope". */
static int check_manifest(const char *dir, char *msg, size_t cap) {
  char path[4096];
  uint8_t b[32];
  snprintf(path, sizeof path, "%s/kv/manifest.ocdbt", dir);
  ssize_t n = read_head(path, b, sizeof b);
  if (n < 0) return 0; /* none yet (a store being created): the store decides */
  uint32_t magic = n >= 4 ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3] : 0;
  if (n < 13 || magic != 0x0cdb3a2au) {
    snprintf(msg, cap,
             "%s is not an OCDBT manifest (%zd bytes, magic 0x%08x, want 0x0cdb3a2a): "
             "not a Strata data directory",
             path, n, (unsigned)magic);
    return -1;
  }
  uint64_t version = 0;
  for (int i = 0, shift = 0; 12 + i < n && i < 10; i++, shift += 7) {
    version |= (uint64_t)(b[12 + i] & 0x7f) << shift;
    if (!(b[12 + i] & 0x80)) break;
  }
  if (version != 0) {
    snprintf(msg, cap,
             "%s has OCDBT format version %llu; this strata-server reads version 0: the data "
             "directory was written by a newer Strata, run that one",
             path, (unsigned long long)version);
    return -1;
  }
  return 0;
}

int srv_check_data_dir(const char *dir, char *msg, size_t cap) {
  struct stat st;
  if (stat(dir, &st) != 0) {
    if (errno == ENOENT) return 0;
    snprintf(msg, cap, "cannot use data directory %s: %s", dir, strerror(errno));
    return -1;
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(msg, cap, "data directory %s exists and is not a directory", dir);
    return -1;
  }
  DIR *d = opendir(dir);
  if (!d) {
    snprintf(msg, cap, "cannot read data directory %s: %s", dir, strerror(errno));
    return -1;
  }
  /* What a Strata data directory holds (srv.c, this file), and what else is there. */
  static const char *const ours[] = {SRV_FORMAT_FILE, SRV_LOCK_FILE, SRV_STORE_FILE, "kv", "locks",
                                     SRV_LOCAL_LOG_DIR};
  int found_ours = 0, nother = 0;
  char other[512] = "";
  struct dirent *e;
  while ((e = readdir(d))) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (strcmp(e->d_name, "lost+found") == 0) continue; /* a file system's root */
    int mine = 0;
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) mine |= strcmp(e->d_name, ours[i]) == 0;
    if (mine) {
      found_ours = 1;
    } else if (nother++ < 5) {
      size_t l = strlen(other);
      snprintf(other + l, sizeof other - l, "%s%s", l ? ", " : "", e->d_name);
    }
  }
  closedir(d);
  if (!found_ours && nother) {
    snprintf(msg, cap,
             "%s is not a Strata data directory: it holds %s%s and none of FORMAT, kv/, locks/; "
             "choose a new or empty --data-dir",
             dir, other, nother > 5 ? ", ..." : "");
    return -1;
  }
  char path[4096], text[128];
  snprintf(path, sizeof path, "%s/%s", dir, SRV_FORMAT_FILE);
  ssize_t n = read_head(path, text, sizeof text - 1);
  if (n >= 0) {
    text[n] = 0;
    unsigned long long v;
    char tail;
    static const char prefix[] = "strata data directory format ";
    if (strncmp(text, prefix, sizeof prefix - 1) != 0 ||
        sscanf(text + sizeof prefix - 1, "%llu%c", &v, &tail) != 2 || tail != '\n') {
      text[strcspn(text, "\n")] = 0;
      snprintf(msg, cap, "%s is not a Strata format marker: found \"%.60s\"", path, text);
      return -1;
    }
    if (v > SRV_FORMAT_VERSION) {
      snprintf(msg, cap,
               "data directory %s has format %llu (%s); this strata-server reads format %d: it "
               "was written by a newer Strata, run that one",
               dir, v, path, SRV_FORMAT_VERSION);
      return -1;
    }
  } else if (errno != ENOENT) {
    snprintf(msg, cap, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  return check_manifest(dir, msg, cap);
}

/* Writes dir/name durably: a temporary file, fsync, rename, fsync of the
 * directory. Returns 0, or -1 with msg. */
static int write_small_file(const char *dir, const char *name, const char *text, char *msg, size_t cap) {
  char path[4096], tmp[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
  size_t len = strlen(text);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
  if (fd >= 0 && close(fd) != 0) ok = 0;
  if (ok) ok = rename(tmp, path) == 0;
  int dfd = ok ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
  if (ok) ok = dfd >= 0 && fsync(dfd) == 0;
  if (dfd >= 0) close(dfd);
  if (!ok) {
    snprintf(msg, cap, "cannot write %s: %s", path, strerror(errno));
    unlink(tmp);
    return -1;
  }
  return 0;
}

int srv_mark_data_dir(const char *dir, char *msg, size_t cap) {
  char path[4096], line[64];
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(msg, cap, "cannot create data directory %s: %s", dir, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/%s", dir, SRV_FORMAT_FILE);
  if (access(path, F_OK) == 0) return 0;
  snprintf(line, sizeof line, "strata data directory format %d\n", SRV_FORMAT_VERSION);
  return write_small_file(dir, SRV_FORMAT_FILE, line, msg, cap);
}

/* A directory made absolute against the working directory (not resolved:
 * the name the operator gave, wherever the server starts next). */
static int absolute(const char *p, char *out, size_t cap, char *msg, size_t mcap) {
  char cwd[4096];
  if (p[0] == '/') {
    snprintf(out, cap, "%s", p);
  } else if (!getcwd(cwd, sizeof cwd)) {
    snprintf(msg, mcap, "cannot resolve %s: %s", p, strerror(errno));
    return -1;
  } else if ((size_t)snprintf(out, cap, "%s/%s", cwd, p[0] == '.' && p[1] == '/' ? p + 2 : p) >= cap) {
    snprintf(msg, mcap, "%s: the path is too long", p);
    return -1;
  }
  size_t n = strlen(out);
  while (n > 1 && out[n - 1] == '/') out[--n] = 0;
  return 0;
}

/* A --data-url in its recorded form (bs_url_format of the parsed URL, a
 * directory made absolute). */
static int canonical_url(const char *url, char *out, size_t cap, char *msg, size_t mcap) {
  bs_url u;
  if (bs_url_parse(url, &u)) {
    snprintf(msg, mcap, "--data-url: %s", strata_errmsg());
    return -1;
  }
  if (u.kind == BS_URL_DIR) return absolute(u.path, out, cap, msg, mcap);
  bs_url_format(&u, out, cap);
  return 0;
}

/* Reads DIR/STORE into loc; 1 when there is none, 0, or -1 with msg. */
static int read_store(const char *dir, srv_store_loc *loc, char *msg, size_t cap) {
  char path[4096], text[9000];
  snprintf(path, sizeof path, "%s/%s", dir, SRV_STORE_FILE);
  ssize_t n = read_head(path, text, sizeof text - 1);
  if (n < 0) {
    if (errno == ENOENT) return 1;
    snprintf(msg, cap, "cannot read %s: %s", path, strerror(errno));
    return -1;
  }
  text[n] = 0;
  char *save = NULL;
  for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    if (strncmp(line, "data-url ", 9) == 0) snprintf(loc->data_url, sizeof loc->data_url, "%s", line + 9);
    else if (strncmp(line, "log-dir ", 8) == 0) snprintf(loc->log_dir, sizeof loc->log_dir, "%s", line + 8);
    else if (strncmp(line, "owner ", 6) == 0) snprintf(loc->owner, sizeof loc->owner, "%s", line + 6);
    else if (strncmp(line, "s3-endpoint ", 12) == 0)
      snprintf(loc->s3_endpoint, sizeof loc->s3_endpoint, "%s", line + 12);
    else if (strncmp(line, "s3-region ", 10) == 0) snprintf(loc->s3_region, sizeof loc->s3_region, "%s", line + 10);
    else {
      snprintf(msg, cap, "%s: unknown line \"%.60s\" (expected data-url URL, log-dir DIR, owner HEX)", path,
               line);
      return -1;
    }
  }
  if (!loc->data_url[0] && !loc->log_dir[0]) {
    snprintf(msg, cap, "%s names neither a data-url nor a log-dir", path);
    return -1;
  }
  return 0;
}

int srv_resolve_store(const char *dir, const char *data_url, const char *log_dir, const char *s3_endpoint,
                      const char *s3_region, srv_store_loc *loc, char *msg, size_t cap) {
  srv_store_loc want;
  memset(&want, 0, sizeof want);
  if (s3_endpoint) snprintf(want.s3_endpoint, sizeof want.s3_endpoint, "%s", s3_endpoint);
  if (s3_region) snprintf(want.s3_region, sizeof want.s3_region, "%s", s3_region);
  memset(loc, 0, sizeof *loc);
  if (data_url && canonical_url(data_url, want.data_url, sizeof want.data_url, msg, cap)) return -1;
  if (log_dir && absolute(log_dir, want.log_dir, sizeof want.log_dir, msg, cap)) return -1;
  int r = read_store(dir, loc, msg, cap);
  if (r < 0) return -1;
  if (r == 0) {
    const char *what = NULL, *had = NULL, *asked = NULL;
    if (data_url && strcmp(want.data_url, loc->data_url) != 0)
      what = "--data-url", had = loc->data_url[0] ? loc->data_url : "its kv/", asked = want.data_url;
    else if (log_dir && strcmp(want.log_dir, loc->log_dir) != 0)
      what = "--log-dir", had = loc->log_dir[0] ? loc->log_dir : "the default", asked = want.log_dir;
    else if (s3_endpoint && strcmp(want.s3_endpoint, loc->s3_endpoint) != 0)
      what = "--s3-endpoint", had = loc->s3_endpoint[0] ? loc->s3_endpoint : "the environment's",
      asked = want.s3_endpoint;
    else if (s3_region && strcmp(want.s3_region, loc->s3_region) != 0)
      what = "--s3-region", had = loc->s3_region[0] ? loc->s3_region : "the environment's", asked = want.s3_region;
    if (what) {
      snprintf(msg, cap,
               "data directory %s keeps its store's files at %s (%s/%s, recorded at its first start); "
               "%s %s names another place: drop the flag, or move the database as docs/operations.md "
               "\"Moving a database\" says",
               dir, had, dir, SRV_STORE_FILE, what, asked);
      return -1;
    }
    return 0;
  }
  if (!data_url && !log_dir) return 0;
  char path[4096];
  snprintf(path, sizeof path, "%s/kv/manifest.ocdbt", dir);
  if (access(path, F_OK) == 0) {
    snprintf(msg, cap,
             "data directory %s already holds its store in %s/kv; %s cannot move it: start without "
             "the flag, or move the database as docs/operations.md \"Moving a database\" says",
             dir, dir, data_url ? "--data-url" : "--log-dir");
    return -1;
  }
  *loc = want;
  loc->fresh = 1;
  uint8_t id[16];
  if (getrandom(id, sizeof id, 0) != (ssize_t)sizeof id) {
    snprintf(msg, cap, "cannot draw this data directory's owner id: %s", strerror(errno));
    return -1;
  }
  for (size_t i = 0; i < sizeof id; i++) snprintf(loc->owner + 2 * i, 3, "%02x", id[i]);
  return 0;
}

int srv_record_store(const char *dir, const srv_store_loc *loc, char *msg, size_t cap) {
  if (!loc->fresh) return 0;
  char text[9000];
  int n = snprintf(text, sizeof text, "%s%s%s%s%s%s", loc->data_url[0] ? "data-url " : "", loc->data_url,
                   loc->data_url[0] ? "\n" : "", loc->log_dir[0] ? "log-dir " : "", loc->log_dir,
                   loc->log_dir[0] ? "\n" : "");
  if (loc->s3_endpoint[0]) n += snprintf(text + n, sizeof text - (size_t)n, "s3-endpoint %s\n", loc->s3_endpoint);
  if (loc->s3_region[0]) n += snprintf(text + n, sizeof text - (size_t)n, "s3-region %s\n", loc->s3_region);
  snprintf(text + n, sizeof text - (size_t)n, "owner %s\n", loc->owner);
  return write_small_file(dir, SRV_STORE_FILE, text, msg, cap);
}
