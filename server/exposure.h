/*
 * Which listen addresses the server may serve unprotected. strata-server's
 * main() asks before anything is created (docs/security.md, "Safe defaults").
 */
#ifndef STRATA_SERVER_EXPOSURE_H
#define STRATA_SERVER_EXPOSURE_H

#include <stddef.h>

/* 1 when every address HOST of "HOST:PORT" ("[v6]:PORT") names is a loopback
 * address (127.0.0.0/8, ::1; "localhost" resolves to them); 0 otherwise,
 * including an empty host (all interfaces) and names that do not resolve. */
int srv_listen_is_loopback(const char *listen);

/* is_protected: TLS or an auth file is configured. Returns 0 (serve), -1
 * (refuse: msg says why and how to protect it), or 1 (serve, but msg is the
 * warning to log: unprotected on a non-loopback address with
 * --insecure-listen). */
int srv_check_exposure(const char *listen, int is_protected, int insecure_listen, char *msg,
                       size_t cap);

#endif
