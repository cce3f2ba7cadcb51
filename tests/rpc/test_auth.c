/*
 * server/auth.c, server/audit.c and server/exposure.c without a network: the
 * role table covers every method the server registers, token files parse (and
 * refuse what is malformed, naming the line), the token lookup, the loopback
 * rule of the safe default, and the audit log's lines (a request's essentials
 * as JSON; a torn last line ended before the next record).
 */
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
#include "rpc/methods.h"
#include "rpc/tls.h"
#include "server/audit.h"
#include "server/auth.h"
#include "server/exposure.h"

static void every_registered_method_has_a_role(void **st) {
  for (int m = 0; m < RPC_M__COUNT; m++) {
    const srv_role_rule *r = srv_role_rule_of(rpc_methods[m].path);
    if (!r) fail_msg("%s is served but not in server/auth.c's role table", rpc_methods[m].path);
    assert_true(r->role >= SRV_ROLE_READER && r->role <= SRV_ROLE_OPERATOR);
  }
  /* Rows are unique by path: one owner of "which role may call what". */
  for (const srv_role_rule *a = srv_role_table; a->path; a++)
    for (const srv_role_rule *b = a + 1; b->path; b++) assert_string_not_equal(a->path, b->path);
}

static void roles_of_notable_methods(void **st) {
  assert_int_equal(srv_role_rule_of("/strata.v1.Kv/Get")->role, SRV_ROLE_READER);
  assert_int_equal(srv_role_rule_of("/strata.v1.Kv/Commit")->role, SRV_ROLE_WRITER);
  assert_int_equal(srv_role_rule_of("/strata.v1.Admin/Gc")->role, SRV_ROLE_OPERATOR);
  assert_int_equal(srv_role_rule_of("/strata.v1.Coordinator/RegisterWriter")->role, SRV_ROLE_WRITER);
  assert_int_equal(srv_role_rule_of("/strata.v1.Coordinator/ListWriters")->role, SRV_ROLE_READER);
  assert_null(srv_role_rule_of("/strata.v1.Kv/Nope"));
  /* Release is a writer call that a privileged request escalates to operator. */
  const srv_role_rule *r = srv_role_rule_of("/strata.v1.Locks/Release");
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  assert_int_equal(r->role, SRV_ROLE_WRITER);
  assert_non_null(r->escalate);
  assert_false(r->escalate(&q.base));
  q.privileged = 1;
  assert_true(r->escalate(&q.base));
}

static const char *sha_of(const char *tok, char hex[65]) {
  unsigned char d[32];
  rpc_sha256(tok, strlen(tok), d);
  for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
  return hex;
}

static void token_file_parses_and_finds(void **st) {
  char h1[65], h2[65], text[512];
  snprintf(text, sizeof text,
           "# a comment\n\n  alice   writer %s   # trailing comment\r\nbob\toperator\t%s\n",
           sha_of("t-alice", h1), sha_of("t-bob", h2));
  srv_tokens t;
  assert_int_equal(srv_tokens_parse("F", text, strlen(text), &t), 0);
  assert_int_equal(t.n, 2);
  unsigned char d[32];
  rpc_sha256("t-bob", 5, d);
  const srv_token *k = srv_tokens_find(&t, d);
  assert_non_null(k);
  assert_string_equal(k->name, "bob");
  assert_int_equal(k->role, SRV_ROLE_OPERATOR);
  rpc_sha256("t-alicf", 7, d);
  assert_null(srv_tokens_find(&t, d));
  srv_tokens_free(&t);
}

static void token_file_errors_name_the_line(void **st) {
  char h[65], text[512];
  sha_of("x", h);
  struct {
    const char *fmt, *want;
  } cases[] = {
      {"ok reader %s\nbad reader\n", "F line 2: expected NAME ROLE SHA256"},
      {"a admin %s\n", "F line 1: role \"admin\""},
      {"a reader %s extra\n", "more than 3"},
      {"a reader ABCDEF%s\n", "64 lower-case hex"},
      {"a reader %s\na writer %s\n", "line 2: the name a is already used"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    snprintf(text, sizeof text, cases[i].fmt, h, h);
    srv_tokens t;
    assert_int_equal(srv_tokens_parse("F", text, strlen(text), &t), STRATA_EINVALID);
    if (!strstr(strata_errmsg(), cases[i].want))
      fail_msg("case %zu: \"%s\" lacks \"%s\"", i, strata_errmsg(), cases[i].want);
    assert_int_equal(t.n, 0);
  }
  /* Upper-case hex is refused: the file holds exactly what auth hash prints. */
  char up[65];
  for (int i = 0; i < 64; i++) up[i] = (char)(h[i] >= 'a' ? h[i] - 32 : h[i]);
  up[64] = 0;
  snprintf(text, sizeof text, "a reader %s\n", up);
  srv_tokens t;
  if (strcmp(up, h) != 0) assert_int_equal(srv_tokens_parse("F", text, strlen(text), &t), STRATA_EINVALID);
  /* Same token under two names is ambiguous. */
  snprintf(text, sizeof text, "a reader %s\nb writer %s\n", h, h);
  assert_int_equal(srv_tokens_parse("F", text, strlen(text), &t), STRATA_EINVALID);
  assert_non_null(strstr(strata_errmsg(), "the same token as a's"));
}

static void loopback_rule(void **st) {
  assert_true(srv_listen_is_loopback("127.0.0.1:7420"));
  assert_true(srv_listen_is_loopback("127.3.2.1:0"));
  assert_true(srv_listen_is_loopback("[::1]:7420"));
  assert_true(srv_listen_is_loopback("localhost:7420"));
  assert_false(srv_listen_is_loopback("0.0.0.0:7420"));
  assert_false(srv_listen_is_loopback("[::]:7420"));
  assert_false(srv_listen_is_loopback(":7420"));
  assert_false(srv_listen_is_loopback("10.1.2.3:7420"));
  char msg[1024];
  assert_int_equal(srv_check_exposure("0.0.0.0:1", 0, 0, msg, sizeof msg), -1);
  assert_non_null(strstr(msg, "--insecure-listen"));
  assert_int_equal(srv_check_exposure("0.0.0.0:1", 0, 1, msg, sizeof msg), 1);
  assert_int_equal(srv_check_exposure("0.0.0.0:1", 1, 0, msg, sizeof msg), 0);
  assert_int_equal(srv_check_exposure("127.0.0.1:1", 0, 0, msg, sizeof msg), 0);
}

static void request_essentials_as_json(void **st) {
  Strata__V1__ReleaseRequest q = STRATA__V1__RELEASE_REQUEST__INIT;
  ProtobufCBinaryData rows[20];
  uint8_t b[2] = {0xab, 0x01};
  for (int i = 0; i < 20; i++) rows[i] = (ProtobufCBinaryData){2, b};
  q.rows = rows;
  q.n_rows = 2;
  q.privileged = 1;
  q.op_id = 42;
  srv_jbuf *j = malloc(sizeof *j);
  srv_jb_begin(j, "call");
  srv_jb_str(j, "message", "quote \" and \n newline");
  srv_jb_request(j, "request", &q.base);
  j->p[j->n] = 0;
  assert_non_null(strstr(j->p, "\"request\":{\"op_id\":42,\"rows\":[\"0xab01\",\"0xab01\"],\"privileged\":true}"));
  assert_non_null(strstr(j->p, "\"message\":\"quote \\\" and \\u000a newline\""));
  q.n_rows = 20; /* long arrays are cut, saying how much */
  srv_jb_begin(j, "call");
  srv_jb_request(j, "request", &q.base);
  j->p[j->n] = 0;
  assert_non_null(strstr(j->p, "\"+4 more\"]"));
  free(j);
}

static void audit_ends_a_torn_line(void **st) {
  char dir[] = "/tmp/strata-audit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, SRV_AUDIT_FILE);
  FILE *f = fopen(path, "w");
  fputs("{\"event\":\"whole\"}\n{\"event\":\"to", f); /* kill -9 mid-append */
  fclose(f);
  srv_audit *a;
  assert_int_equal(srv_audit_open(dir, &a), 0);
  srv_jbuf *j = malloc(sizeof *j);
  srv_jb_begin(j, "next");
  assert_int_equal(srv_audit_append(a, j), 0);
  srv_audit_close(a);
  free(j);
  char text[1024] = "";
  f = fopen(path, "r");
  size_t n = fread(text, 1, sizeof text - 1, f);
  fclose(f);
  text[n] = 0;
  const char *torn = strstr(text, "{\"event\":\"to\n{\"time\"");
  assert_non_null(torn); /* the torn line stands alone; the new record on its own line */
  assert_int_equal(text[n - 1], '\n');
  unlink(path);
  rmdir(dir);
}

static void refusal_records_are_rate_limited(void **st) {
  char dir[] = "/tmp/strata-audit-XXXXXX";
  assert_non_null(mkdtemp(dir));
  srv_audit *a;
  assert_int_equal(srv_audit_open(dir, &a), 0);
  uint64_t dropped = 0;
  int granted = 0;
  /* However fast: never more than the limit within one second, and the ones
   * refused are counted for the next record. */
  for (int i = 0; i < 10 * SRV_AUDIT_REFUSALS_PER_SEC; i++) granted += srv_audit_refusal_slot(a, &dropped);
  assert_true(granted >= SRV_AUDIT_REFUSALS_PER_SEC);
  assert_true(granted <= 10 * SRV_AUDIT_REFUSALS_PER_SEC);
  srv_audit_close(a);
  char path[256];
  snprintf(path, sizeof path, "%s/%s", dir, SRV_AUDIT_FILE);
  unlink(path);
  rmdir(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(every_registered_method_has_a_role),
      cmocka_unit_test(roles_of_notable_methods),
      cmocka_unit_test(token_file_parses_and_finds),
      cmocka_unit_test(token_file_errors_name_the_line),
      cmocka_unit_test(loopback_rule),
      cmocka_unit_test(request_essentials_as_json),
      cmocka_unit_test(audit_ends_a_torn_line),
      cmocka_unit_test(refusal_records_are_rate_limited),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
