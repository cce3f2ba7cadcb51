/*
 * TLS and tokens from the C client library against a real strata-server
 * ($STRATA_SERVER_BIN) with certificates made at test time
 * (tests/rpc/mkcerts.sh, openssl):
 *  - over TLS with mutual TLS and a token, one call of every service works;
 *  - a client that does not trust the server's CA fails (ENOTCONN), and so
 *    does one without a client certificate or with one from another CA;
 *  - the client library refuses missing or mismatched files, naming them;
 *  - tokens: no token and a bad one get UNAUTHENTICATED, a reader's commit
 *    PERMISSION_DENIED naming the role, and the refused commit changed nothing.
 * The role matrix over every RPC is tests/python/test_security.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "rpc/client.h"
#include "rpc/tls.h"
#include "srv_harness.h"

static harness H;
static char pki[512];
static char auth[600];
static const char *const TOK_READER = "c-reader", *const TOK_WRITER = "c-writer",
                         *const TOK_OPERATOR = "c-operator";

static const char *pf(const char *name) { /* a file of the test PKI; static per call site */
  static char buf[8][700];
  static int k;
  char *p = buf[k++ % 8];
  snprintf(p, 700, "%s/%s", pki, name);
  return p;
}

static void auth_line(FILE *f, const char *name, const char *role, const char *tok) {
  unsigned char d[32];
  rpc_sha256(tok, strlen(tok), d);
  fprintf(f, "%s %s ", name, role);
  for (int i = 0; i < 32; i++) fprintf(f, "%02x", d[i]);
  fprintf(f, "\n");
}

static int setup(void **st) {
  const char *bin = getenv("STRATA_SERVER_BIN");
  if (!bin) {
    fprintf(stderr, "test_security: set STRATA_SERVER_BIN\n");
    return -1;
  }
  snprintf(pki, sizeof pki, "/tmp/strata-pki-XXXXXX");
  if (!mkdtemp(pki)) return -1;
  char cmd[1200];
  const char *src = getenv("STRATA_SRC_DIR");
  snprintf(cmd, sizeof cmd, "sh %s/tests/rpc/mkcerts.sh %s", src ? src : ".", pki);
  if (system(cmd) != 0) {
    fprintf(stderr, "test_security: %s failed (is openssl installed?)\n", cmd);
    return -1;
  }
  snprintf(auth, sizeof auth, "%s/auth", pki);
  FILE *f = fopen(auth, "w");
  auth_line(f, "rita", "reader", TOK_READER);
  auth_line(f, "wally", "writer", TOK_WRITER);
  auth_line(f, "olga", "operator", TOK_OPERATOR);
  fclose(f);
  const char *extra[] = {"--tls-cert", pf("server.pem"), "--tls-key", pf("server.key"),
                         "--tls-client-ca", pf("ca.pem"), "--auth-file", auth, "--grace-ms", "0",
                         NULL};
  return harness_start(&H, bin, NULL, extra);
}

static int teardown(void **st) {
  int rc = harness_stop(&H);
  harness_rmdir(H.dir);
  harness_rmdir(pki);
  return rc == 0 ? 0 : -1;
}

static rpc_client *open_client(const char *ca, const char *cert, const char *key, const char *tok) {
  rpc_client_opts o = {.addr = H.addr, .timeout_ms = 60000, .tls_ca = ca, .tls_cert = cert,
                       .tls_key = key, .token = tok};
  rpc_client *c = NULL;
  int rc = rpc_client_open(&o, &c);
  if (rc) fail_msg("rpc_client_open: %s", strata_errmsg());
  return c;
}

static rpc_client *good(const char *tok) {
  return open_client(pf("ca.pem"), pf("client.pem"), pf("client.key"), tok);
}

static int health(rpc_client *c) {
  Grpc__Health__V1__HealthCheckRequest q = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
  Grpc__Health__V1__HealthCheckResponse *r = NULL;
  int rc = rpc_health_check(c, NULL, &q, &r);
  rpc_free(r);
  return rc;
}

/* One call of every service over mutual TLS with an operator's token. */
static void every_service_over_tls(void **st) {
  rpc_client *c = good(TOK_OPERATOR);
  assert_int_equal(health(c), 0);
  assert_int_equal(harness_put(c, "tls-k", 5, "v", 1), 0);
  assert_int_equal(harness_check(c, "tls-k", 5, "v", 1), 0);
  Strata__V1__StatsRequest sq = STRATA__V1__STATS_REQUEST__INIT;
  Strata__V1__StatsResponse *sr = NULL;
  assert_int_equal(rpc_admin_stats(c, NULL, &sq, &sr), 0);
  rpc_free(sr);
  Strata__V1__CreateOpRequest oq = STRATA__V1__CREATE_OP_REQUEST__INIT;
  oq.user = "c";
  oq.kind = "tls";
  Strata__V1__CreateOpResponse *orr = NULL;
  assert_int_equal(rpc_ops_create(c, NULL, &oq, &orr), 0);
  uint64_t op = orr->op->op_id;
  rpc_free(orr);
  ProtobufCBinaryData row = {3, (uint8_t *)"row"};
  Strata__V1__AcquireRequest aq = STRATA__V1__ACQUIRE_REQUEST__INIT;
  aq.op_id = op;
  aq.rows = &row;
  aq.n_rows = 1;
  aq.kind = STRATA__V1__LOCK_KIND__LOCK_KIND_TEMPORAL;
  aq.ttl_ms = 600000;
  Strata__V1__AcquireResponse *ar = NULL;
  assert_int_equal(rpc_locks_acquire(c, NULL, &aq, &ar), 0);
  assert_true(ar->acquired);
  rpc_free(ar);
  /* A stream over TLS. */
  Strata__V1__ListLocksRequest lq = STRATA__V1__LIST_LOCKS_REQUEST__INIT;
  rpc_cstream *s = NULL;
  assert_int_equal(rpc_locks_list(c, NULL, &lq, &s), 0);
  Strata__V1__ListLocksResponse *lr;
  size_t n = 0;
  int rc;
  while ((rc = rpc_locks_list_next(s, &lr)) == 1) {
    n += lr->n_locks;
    rpc_free(lr);
  }
  assert_int_equal(rc, 0);
  assert_int_equal(n, 1);
  rpc_cstream_close(s);
  rpc_client_close(c);
}

static void untrusted_ca_fails(void **st) {
  rpc_client *c = open_client(pf("other-ca.pem"), pf("client.pem"), pf("client.key"), TOK_OPERATOR);
  assert_int_equal(health(c), ENOTCONN);
  rpc_client_close(c);
  /* Plaintext to a TLS port fails too. */
  c = open_client(NULL, NULL, NULL, TOK_OPERATOR);
  assert_int_equal(health(c), ENOTCONN);
  rpc_client_close(c);
}

static void mutual_tls_needs_our_client_certificate(void **st) {
  rpc_client *c = open_client(pf("ca.pem"), NULL, NULL, TOK_OPERATOR);
  assert_int_equal(health(c), ENOTCONN);
  rpc_client_close(c);
  c = open_client(pf("ca.pem"), pf("other-client.pem"), pf("other-client.key"), TOK_OPERATOR);
  assert_int_equal(health(c), ENOTCONN);
  rpc_client_close(c);
}

static void client_names_bad_files(void **st) {
  rpc_client_opts o = {.addr = H.addr, .tls_ca = "/nonexistent/ca.pem"};
  rpc_client *c = NULL;
  assert_int_equal(rpc_client_open(&o, &c), ENOENT);
  assert_null(c);
  assert_non_null(strstr(strata_errmsg(), "--tls-ca /nonexistent/ca.pem: cannot open"));
  o = (rpc_client_opts){.addr = H.addr, .tls_ca = pf("ca.pem"), .tls_cert = pf("client.pem"),
                        .tls_key = pf("server.key")};
  assert_int_equal(rpc_client_open(&o, &c), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "does not match the certificate"));
  o = (rpc_client_opts){.addr = H.addr, .tls_ca = pf("ca.pem"), .tls_cert = pf("client.pem")};
  assert_int_equal(rpc_client_open(&o, &c), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "--tls-cert and --tls-key go together"));
}

static void tokens_and_roles(void **st) {
  rpc_client *none = good(""), *bad = good("nope"), *reader = good(TOK_READER),
             *writer = good(TOK_WRITER);
  assert_int_equal(health(none), STRATA_EUNAUTHENTICATED);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_UNAUTHENTICATED);
  assert_int_equal(health(bad), STRATA_EUNAUTHENTICATED);
  assert_int_equal(health(reader), 0);
  assert_int_equal(harness_put(reader, "role-k", 6, "r", 1), STRATA_EDENIED);
  assert_int_equal(rpc_client_last_status(), GRPC_STATUS_PERMISSION_DENIED);
  assert_non_null(strstr(strata_errmsg(), "needs role writer; caller rita has role reader"));
  assert_int_equal(harness_check(writer, "role-k", 6, "r", 1), 1); /* the refused put left nothing */
  assert_int_equal(harness_put(writer, "role-k", 6, "w", 1), 0);
  assert_int_equal(harness_check(reader, "role-k", 6, "w", 1), 0);
  rpc_client_close(none);
  rpc_client_close(bad);
  rpc_client_close(reader);
  rpc_client_close(writer);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_service_over_tls),
      cmocka_unit_test(untrusted_ca_fails),
      cmocka_unit_test(mutual_tls_needs_our_client_certificate),
      cmocka_unit_test(client_names_bad_files),
      cmocka_unit_test(tokens_and_roles),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
