/*
 * Loading and checking PEM files for TLS (see tls.h). OpenSSL parses them; the
 * bytes handed to gRPC are the files' own.
 */
#include "rpc/tls.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "common/err.h"

/* PEM files beyond this are not certificates or keys. */
#define TLS_MAX_FILE_BYTES (1 << 20)

static int read_file(const char *flag, const char *path, char **out) {
  *out = NULL;
  FILE *f = fopen(path, "rb");
  if (!f) return strata_err(errno, "%s %s: cannot open: %s", flag, path, strerror(errno));
  char *buf = malloc(TLS_MAX_FILE_BYTES + 1);
  if (!buf) {
    fclose(f);
    return strata_err(STRATA_ENOMEM, "%s %s: out of memory", flag, path);
  }
  size_t n = fread(buf, 1, TLS_MAX_FILE_BYTES + 1, f);
  int e = ferror(f) ? errno : 0;
  fclose(f);
  if (e) {
    free(buf);
    return strata_err(e, "%s %s: cannot read: %s", flag, path, strerror(e));
  }
  if (n > TLS_MAX_FILE_BYTES) {
    free(buf);
    return strata_err(STRATA_EINVALID, "%s %s: larger than %d bytes: not a PEM file", flag, path,
                      TLS_MAX_FILE_BYTES);
  }
  buf[n] = 0;
  *out = buf;
  return 0;
}

/* The first certificate in a PEM string, or NULL. Caller frees with X509_free. */
static X509 *first_cert(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  X509 *x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  ERR_clear_error();
  return x;
}

static EVP_PKEY *first_key(const char *pem) {
  BIO *b = BIO_new_mem_buf(pem, -1);
  EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
  BIO_free(b);
  ERR_clear_error();
  return k;
}

int rpc_tls_load(rpc_tls *t, const char *ca, const char *flag_ca, const char *cert,
                 const char *flag_cert, const char *key, const char *flag_key) {
  memset(t, 0, sizeof *t);
  int rc = 0;
  X509 *x = NULL;
  EVP_PKEY *k = NULL;
  if (!cert != !key) {
    rc = strata_err(STRATA_EINVALID, "%s and %s go together: give both or neither", flag_cert,
                    flag_key);
    goto out;
  }
  if (ca) {
    if ((rc = read_file(flag_ca, ca, &t->ca))) goto out;
    if (!(x = first_cert(t->ca))) {
      rc = strata_err(STRATA_EINVALID, "%s %s: no PEM certificate in the file", flag_ca, ca);
      goto out;
    }
    X509_free(x);
    x = NULL;
  }
  if (cert) {
    if ((rc = read_file(flag_cert, cert, &t->cert)) || (rc = read_file(flag_key, key, &t->key)))
      goto out;
    if (!(x = first_cert(t->cert))) {
      rc = strata_err(STRATA_EINVALID, "%s %s: no PEM certificate in the file", flag_cert, cert);
      goto out;
    }
    if (!(k = first_key(t->key))) {
      rc = strata_err(STRATA_EINVALID, "%s %s: no PEM private key in the file (or it is encrypted)",
                      flag_key, key);
      goto out;
    }
    if (X509_check_private_key(x, k) != 1) {
      ERR_clear_error();
      rc = strata_err(STRATA_EINVALID, "%s %s: the key does not match the certificate in %s %s",
                      flag_key, key, flag_cert, cert);
      goto out;
    }
  }
out:
  X509_free(x);
  EVP_PKEY_free(k);
  if (rc) {
    /* strata_err's message is this thread's: keep it while freeing */
    free(t->ca);
    free(t->cert);
    free(t->key);
    memset(t, 0, sizeof *t);
  }
  return rc;
}

void rpc_tls_free(rpc_tls *t) {
  if (!t) return;
  free(t->ca);
  if (t->key) OPENSSL_cleanse(t->key, strlen(t->key));
  free(t->cert);
  free(t->key);
  memset(t, 0, sizeof *t);
}

void rpc_sha256(const void *p, size_t n, unsigned char out[32]) {
  unsigned int len = 32;
  EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

int rpc_equal_ct(const void *a, const void *b, size_t n) { return CRYPTO_memcmp(a, b, n) == 0; }
