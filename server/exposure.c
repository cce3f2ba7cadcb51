/*
 * The safe default (exposure.h): without TLS and without an auth file the
 * server serves loopback only, as Redis's protected mode does.
 */
#include "server/exposure.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static int addr_is_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET)
    return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
  if (sa->sa_family == AF_INET6) {
    const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
    if (IN6_IS_ADDR_LOOPBACK(a)) return 1;
    if (IN6_IS_ADDR_V4MAPPED(a)) return a->s6_addr[12] == 127;
  }
  return 0;
}

int srv_listen_is_loopback(const char *listen) {
  const char *colon = strrchr(listen, ':');
  if (!colon) return 0;
  char host[256];
  size_t hl = (size_t)(colon - listen);
  const char *h = listen;
  if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
    h++;
    hl -= 2;
  }
  if (hl == 0 || hl >= sizeof host) return 0; /* ":7420" is every interface */
  memcpy(host, h, hl);
  host[hl] = 0;
  /* Every address the name stands for must be loopback: gRPC binds them all. */
  struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
  struct addrinfo *res = NULL;
  if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res) return 0;
  int all = 1;
  for (struct addrinfo *a = res; a; a = a->ai_next) all &= addr_is_loopback(a->ai_addr);
  freeaddrinfo(res);
  return all;
}

int srv_check_exposure(const char *listen, int is_protected, int insecure_listen, char *msg,
                       size_t cap) {
  msg[0] = 0;
  if (is_protected || srv_listen_is_loopback(listen)) return 0;
  if (insecure_listen) {
    snprintf(msg, cap,
             "serving %s without TLS and without --auth-file (--insecure-listen): anyone who "
             "can reach this address may read, write and release every lock",
             listen);
    return 1;
  }
  snprintf(msg, cap,
           "refusing to listen on %s without protection: it is not a loopback address, and "
           "neither TLS (--tls-cert/--tls-key) nor tokens (--auth-file) are configured. Protect "
           "it (docs/security.md), listen on 127.0.0.1, or pass --insecure-listen if this "
           "network is trusted",
           listen);
  return -1;
}
