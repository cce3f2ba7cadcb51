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
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "server/srv.h"

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
  static const char *const ours[] = {SRV_FORMAT_FILE, SRV_LOCK_FILE, "kv", "locks"};
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

int srv_mark_data_dir(const char *dir, char *msg, size_t cap) {
  char path[4096], tmp[4096], line[64];
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    snprintf(msg, cap, "cannot create data directory %s: %s", dir, strerror(errno));
    return -1;
  }
  snprintf(path, sizeof path, "%s/%s", dir, SRV_FORMAT_FILE);
  if (access(path, F_OK) == 0) return 0;
  snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, SRV_FORMAT_FILE);
  int len = snprintf(line, sizeof line, "strata data directory format %d\n", SRV_FORMAT_VERSION);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int ok = fd >= 0 && write(fd, line, (size_t)len) == len && fsync(fd) == 0;
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
