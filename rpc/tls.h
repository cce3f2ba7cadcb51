/*
 * TLS material for gRPC core's SSL credentials, shared by the server and the
 * client library: PEM files read into memory and checked with OpenSSL before
 * gRPC sees them, so a missing, unreadable or mismatched file is a clear error
 * naming the file at startup instead of a failed handshake later.
 */
#ifndef STRATA_RPC_TLS_H
#define STRATA_RPC_TLS_H

#include <stddef.h>

/* What was loaded; every string is NUL-terminated PEM, NULL when not asked for.
 * Free with rpc_tls_free. */
typedef struct rpc_tls {
  char *ca; /* trusted CA certificate(s) */
  char *cert; /* own certificate chain */
  char *key; /* own private key, matching cert */
} rpc_tls;

/* Reads the files that are non-NULL. `flag_*` name the options in messages
 * ("--tls-cert"). cert and key come together: one without the other is an
 * error. Returns 0, or STRATA_EINVALID / an errno with a message naming the
 * file and what is wrong with it (missing, unreadable, not PEM, key does not
 * match the certificate); *t is then empty. */
int rpc_tls_load(rpc_tls *t, const char *ca, const char *flag_ca, const char *cert,
                 const char *flag_cert, const char *key, const char *flag_key);

void rpc_tls_free(rpc_tls *t);

/* SHA-256 of p[0..n) into out[32]. */
void rpc_sha256(const void *p, size_t n, unsigned char out[32]);

/* 1 when a[0..n) equals b[0..n); the time taken does not depend on where they
 * differ. */
int rpc_equal_ct(const void *a, const void *b, size_t n);

#endif
