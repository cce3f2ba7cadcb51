/* Corruption: every single-byte change and every truncation of small encoded
 * manifests and nodes is rejected with STRATA_ECORRUPT, never accepted and
 * never a crash (this binary also runs under ASan+UBSan). A second pass
 * recomputes the CRC after each change, so the structural checks behind the
 * checksum see every mutation too: those may accept a still-valid object, but
 * must never crash or read out of bounds, and what they accept must encode. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "tests/codec_samples.h"

enum kind { MANIFEST, BTNODE, VTNODE };

static int decode(enum kind k, const uint8_t *p, size_t n) {
  int rc;
  ocdbt_config cfg = sample_config(0);
  strata_buf b = STRATA_BUF_INIT;
  if (k == MANIFEST) {
    ocdbt_manifest m;
    if ((rc = ocdbt_manifest_decode(p, n, &m)) == 0) {
      assert_int_equal(ocdbt_manifest_encode(&m, &b), 0);
      ocdbt_manifest_free(&m);
    }
  } else if (k == BTNODE) {
    ocdbt_btnode node;
    if ((rc = ocdbt_btnode_decode(p, n, 0, &node)) == 0) {
      assert_int_equal(ocdbt_btnode_encode(&cfg, &node, &b), 0);
      ocdbt_btnode_free(&node);
    }
  } else {
    ocdbt_vtnode node;
    if ((rc = ocdbt_vtnode_decode(p, n, 0, &node)) == 0) {
      assert_int_equal(ocdbt_vtnode_encode(&cfg, &node, &b), 0);
      ocdbt_vtnode_free(&node);
    }
  }
  strata_buf_free(&b);
  return rc;
}

static void fix_crc(uint8_t *p, size_t n) {
  uint32_t crc = ocdbt_crc32c(0, p, n - 4);
  for (int i = 0; i < 4; i++) p[n - 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* Returns how many structurally mutated objects were still accepted. */
static size_t mutate_all(enum kind k, const strata_buf *enc, const char *what) {
  uint8_t *copy = malloc(enc->len);
  size_t accepted_structural = 0;
  assert_int_equal(decode(k, enc->p, enc->len), 0);
  for (size_t i = 0; i < enc->len; i++) {
    static const uint8_t deltas[] = {0x01, 0x80, 0xff, 0x55};
    for (size_t d = 0; d < sizeof deltas; d++) {
      memcpy(copy, enc->p, enc->len);
      copy[i] ^= deltas[d];
      int rc = decode(k, copy, enc->len);
      if (rc != STRATA_ECORRUPT)
        fail_msg("%s: byte %zu ^ 0x%02x gave %s, want STRATA_ECORRUPT", what, i, deltas[d],
                 strata_errname(rc));
      if (i < enc->len - 4 && i >= 12) {
        fix_crc(copy, enc->len);
        rc = decode(k, copy, enc->len);
        assert_true(rc == 0 || rc == STRATA_ECORRUPT || rc == STRATA_ETOOBIG);
        if (rc == 0) accepted_structural++;
      }
    }
  }
  for (size_t len = 0; len < enc->len; len++) {
    memcpy(copy, enc->p, len);
    int rc = decode(k, copy, len);
    if (rc != STRATA_ECORRUPT)
      fail_msg("%s: truncation to %zu of %zu bytes gave %s", what, len, enc->len, strata_errname(rc));
    /* A truncated object whose header and CRC were made consistent again is
     * still rejected or re-encodable. */
    if (len >= 16) {
      for (int b = 0; b < 8; b++) copy[4 + b] = (uint8_t)((uint64_t)len >> (8 * b));
      fix_crc(copy, len);
      rc = decode(k, copy, len);
      assert_true(rc == 0 || rc == STRATA_ECORRUPT || rc == STRATA_ETOOBIG);
    }
  }
  free(copy);
  return accepted_structural;
}

static void test_manifest_mutations_rejected(void **state) {
  ocdbt_version v[16];
  ocdbt_vnode_ref nodes[2];
  for (int z = 0; z < 2; z++) {
    ocdbt_manifest m;
    sample_manifest(&m, v, nodes, z);
    strata_buf b = STRATA_BUF_INIT;
    assert_int_equal(ocdbt_manifest_encode(&m, &b), 0);
    mutate_all(MANIFEST, &b, z ? "manifest (zstd)" : "manifest");
    strata_buf_free(&b);
  }
}

static void test_btree_node_mutations_rejected(void **state) {
  ocdbt_leaf_entry e[12];
  ocdbt_interior_entry c[6];
  uint8_t kb[12 * 32], vb[12 * 32];
  for (int z = 0; z < 2; z++) {
    ocdbt_config cfg = sample_config(z);
    ocdbt_btnode node;
    strata_buf b = STRATA_BUF_INIT;
    sample_leaf(&node, e, 12, kb, vb, 5);
    assert_int_equal(ocdbt_btnode_encode(&cfg, &node, &b), 0);
    mutate_all(BTNODE, &b, "leaf node");
    b.len = 0;
    sample_interior(&node, c, 6, kb);
    assert_int_equal(ocdbt_btnode_encode(&cfg, &node, &b), 0);
    mutate_all(BTNODE, &b, "interior node");
    strata_buf_free(&b);
  }
}

static void test_version_node_mutations_rejected(void **state) {
  ocdbt_version v[4];
  ocdbt_vnode_ref c[3];
  for (int z = 0; z < 2; z++) {
    ocdbt_config cfg = sample_config(z);
    strata_buf b = STRATA_BUF_INIT;
    sample_versions(v, 4, 33);
    ocdbt_vtnode leaf = {4, 0, {2, sample_files}, 4, v, NULL, NULL};
    assert_int_equal(ocdbt_vtnode_encode(&cfg, &leaf, &b), 0);
    mutate_all(VTNODE, &b, "version leaf");
    b.len = 0;
    for (int i = 0; i < 3; i++) c[i] = (ocdbt_vnode_ref){16u * (i + 1), {0, 10u * i, 9}, 16, 5u + i, 0};
    ocdbt_vtnode in = {4, 1, {2, sample_files}, 3, NULL, c, NULL};
    assert_int_equal(ocdbt_vtnode_encode(&cfg, &in, &b), 0);
    mutate_all(VTNODE, &b, "version interior");
    strata_buf_free(&b);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_manifest_mutations_rejected),
      cmocka_unit_test(test_btree_node_mutations_rejected),
      cmocka_unit_test(test_version_node_mutations_rejected),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
