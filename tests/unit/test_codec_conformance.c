/* Byte-level conformance: each object below is written out by hand from the
 * tables of tensorstore's OCDBT spec (kvstore/ocdbt/index.rst), not produced
 * by our encoder. The decoder must read every field as the spec says, and the
 * encoder must reproduce the bytes exactly. Only the length field and the
 * CRC-32C footer are filled in by the test (the CRC by the portable table
 * implementation, itself checked against RFC 3720 in test_crc32c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "storage/ocdbt.h"

/* Fills the u64le length at offset 4 and appends the CRC-32C footer. */
static size_t finish(uint8_t *obj, size_t n_without_crc) {
  size_t n = n_without_crc + 4;
  for (int i = 0; i < 8; i++) obj[4 + i] = (uint8_t)((uint64_t)n >> (8 * i));
  uint32_t crc = ocdbt_crc32c_portable(0, obj, n_without_crc);
  for (int i = 0; i < 4; i++) obj[n_without_crc + i] = (uint8_t)(crc >> (8 * i));
  return n;
}

#define LEN8 0, 0, 0, 0, 0, 0, 0, 0 /* placeholder for the u64le length */

static void assert_slice(ocdbt_slice s, const char *want) {
  assert_int_equal(s.n, strlen(want));
  assert_memory_equal(s.p, want, s.n);
}

static const ocdbt_config plain = {{0}, 0, 0, 0, 4, OCDBT_COMPRESSION_NONE, 0};

static void test_leaf_node_bytes(void **state) {
  uint8_t obj[64] = {
      0x0c, 0xdb, 0x20, 0xde, LEN8, /* magic (u32 BE), length (u64 LE) */
      0x00, 0x00,                   /* version 0, compression_format 0 */
      0x00,                         /* height 0: leaf */
      0x01, 0x03, 0x00, 'd', '/', 'x', /* table: 1 file, suffix_length 3, base_length 0, "d/x" */
      0x02,                         /* num_entries 2 */
      0x01,                         /* key_prefix_length[1] = 1 */
      0x02, 0x01,                   /* key_suffix_length = 2, 1 */
      'a', 'b', 'c',                /* key suffixes: "ab", "c" -> keys "ab", "ac" */
      0x02, 0xac, 0x02,             /* value_length = 2, 300 */
      0x00, 0x01,                   /* value_kind = inline, out of line */
      0x00,                         /* data_file_id of the out-of-line value */
      0x05,                         /* data_file_offset = 5 */
      'x', 'y',                     /* the inline value */
  };
  size_t n = finish(obj, 37);
  ocdbt_btnode node;
  int rc = ocdbt_btnode_decode(obj, n, 0, &node);
  if (rc) fail_msg("%s", strata_errmsg());
  assert_int_equal(node.height, 0);
  assert_int_equal(node.dft.n, 1);
  assert_slice(node.dft.files[0].base_path, "");
  assert_slice(node.dft.files[0].relative_path, "d/x");
  assert_int_equal(node.n, 2);
  assert_slice(node.leaves[0].key, "ab");
  assert_int_equal(node.leaves[0].kind, OCDBT_VALUE_INLINE);
  assert_slice(node.leaves[0].value, "xy");
  assert_slice(node.leaves[1].key, "ac");
  assert_int_equal(node.leaves[1].kind, OCDBT_VALUE_INDIRECT);
  assert_int_equal(node.leaves[1].ref.file, 0);
  assert_int_equal(node.leaves[1].ref.offset, 5);
  assert_int_equal(node.leaves[1].ref.length, 300);
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_btnode_encode(&plain, &node, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, obj, n);
  strata_buf_free(&b);
  ocdbt_btnode_free(&node);
}

static void test_interior_node_bytes(void **state) {
  uint8_t obj[80] = {
      0x0c, 0xdb, 0x20, 0xde, LEN8, 0x00, 0x00,
      0x01,                         /* height 1 */
      0x02,                         /* table: 2 files */
      0x03,                         /* path_prefix_length[0] = 3 ("d/a") */
      0x04, 0x01,                   /* path_suffix_length = 4, 1 */
      0x00, 0x00,                   /* base_path_length = 0, 0 */
      'd', '/', 'a', 'a', 'b',      /* "d/aa", then "b" -> "d/ab" */
      0x02,                         /* num_entries 2 */
      0x00,                         /* key_prefix_length[1] = 0 */
      0x00, 0x01,                   /* key_suffix_length = 0 (empty first key), 1 */
      0x00, 0x01,                   /* subtree_common_prefix_length = 0, 1 */
      'm',                          /* keys "", "m" */
      0x00, 0x01,                   /* data_file_id */
      0x00, 0x80, 0x01,             /* data_file_offset = 0, 128 */
      0x0a, 0x14,                   /* data_file_length = 10, 20 */
      0x03, 0x04,                   /* num_keys */
      0x0a, 0x14,                   /* num_tree_bytes */
      0x00, 0x64,                   /* num_indirect_value_bytes = 0, 100 */
  };
  size_t n = finish(obj, 46);
  ocdbt_btnode node;
  int rc = ocdbt_btnode_decode(obj, n, 0, &node);
  if (rc) fail_msg("%s", strata_errmsg());
  assert_int_equal(node.height, 1);
  assert_int_equal(node.dft.n, 2);
  assert_slice(node.dft.files[0].relative_path, "d/aa");
  assert_slice(node.dft.files[1].relative_path, "d/ab");
  assert_int_equal(node.n, 2);
  assert_slice(node.children[0].key, "");
  assert_slice(node.children[1].key, "m");
  assert_int_equal(node.children[1].subtree_common_prefix_length, 1);
  assert_int_equal(node.children[1].ref.file, 1);
  assert_int_equal(node.children[1].ref.offset, 128);
  assert_int_equal(node.children[1].ref.length, 20);
  assert_int_equal(node.children[0].stats.num_keys, 3);
  assert_int_equal(node.children[1].stats.num_tree_bytes, 20);
  assert_int_equal(node.children[1].stats.num_indirect_value_bytes, 100);
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_btnode_encode(&plain, &node, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, obj, n);
  strata_buf_free(&b);
  ocdbt_btnode_free(&node);
}

static void test_single_manifest_bytes(void **state) {
  uint8_t obj[96] = {
      0x0c, 0xdb, 0x3a, 0x2a, LEN8, 0x00, 0x00,
      0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, /* uuid */
      0x00,                         /* manifest_kind 0: single (one byte) */
      0x64,                         /* max_inline_value_bytes = 100 */
      0x80, 0x80, 0x80, 0x04,       /* max_decoded_node_bytes = 8 MiB */
      0x04,                         /* version_tree_arity_log2 = 4 */
      0x00,                         /* compression_method 0 */
      0x01, 0x03, 0x00, 'd', '/', 'x', /* data file table */
      0x01,                         /* num_versions 1 */
      0x01,                         /* generation_number 1 */
      0x00,                         /* root_height 0 */
      0x00, 0x00, 0x29,             /* data_file_id, offset 0, length 41 */
      0x02, 0x29, 0xac, 0x02,       /* num_keys 2, num_tree_bytes 41, num_indirect_value_bytes 300 */
      0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01, /* commit_time (u64 LE, ns) */
      0x00,                         /* no version nodes */
  };
  size_t n = finish(obj, 63);
  ocdbt_manifest m;
  int rc = ocdbt_manifest_decode(obj, n, &m);
  if (rc) fail_msg("%s", strata_errmsg());
  for (int i = 0; i < 16; i++) assert_int_equal(m.config.uuid[i], i);
  assert_int_equal(m.config.manifest_kind, OCDBT_MANIFEST_SINGLE);
  assert_int_equal(m.config.max_inline_value_bytes, 100);
  assert_int_equal(m.config.max_decoded_node_bytes, 8 << 20);
  assert_int_equal(m.config.version_tree_arity_log2, 4);
  assert_int_equal(m.config.compression, OCDBT_COMPRESSION_NONE);
  assert_int_equal(m.n_versions, 1);
  assert_int_equal(m.versions[0].generation, 1);
  assert_int_equal(m.versions[0].root.length, 41);
  assert_int_equal(m.versions[0].stats.num_keys, 2);
  assert_int_equal(m.versions[0].stats.num_indirect_value_bytes, 300);
  assert_true(m.versions[0].commit_time == 0x0123456789abcdefull);
  assert_int_equal(m.n_nodes, 0);
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_manifest_encode(&m, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, obj, n);
  strata_buf_free(&b);
  ocdbt_manifest_free(&m);
}

static void test_numbered_manifest_config_bytes(void **state) {
  uint8_t obj[48] = {
      0x0c, 0xdb, 0x3a, 0x2a, LEN8, 0x00, 0x00,
      0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00,
      0x01,                         /* manifest_kind 1: numbered, config only */
      0x00, 0x00,                   /* max_inline_value_bytes 0, max_decoded_node_bytes 0 */
      0x01,                         /* arity_log2 1 */
      0x00,
  };
  size_t n = finish(obj, 35);
  ocdbt_manifest m;
  int rc = ocdbt_manifest_decode(obj, n, &m);
  if (rc) fail_msg("%s", strata_errmsg());
  assert_int_equal(m.config.manifest_kind, OCDBT_MANIFEST_NUMBERED);
  assert_int_equal(m.config.uuid[0], 0xff);
  assert_int_equal(m.config.version_tree_arity_log2, 1);
  assert_int_equal(m.n_versions, 0);
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_manifest_encode(&m, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, obj, n);
  strata_buf_free(&b);
  ocdbt_manifest_free(&m);
}

static void test_version_tree_nodes_bytes(void **state) {
  /* Interior node, arity 4, height 1: children hold generations 1..4, 5..8. */
  uint8_t in[80] = {
      0x0c, 0xdb, 0x12, 0x34, LEN8, 0x00, 0x00,
      0x02, 0x01,                   /* version_tree_arity_log2 2, height 1 */
      0x01, 0x03, 0x00, 'd', '/', 'v',
      0x02,                         /* num_children */
      0x04, 0x08,                   /* generation_number */
      0x00, 0x00,                   /* data_file_id */
      0x00, 0x40,                   /* data_file_offset */
      0x40, 0x40,                   /* data_file_length */
      0x04, 0x04,                   /* num_generations */
      0xe8, 0x03, 0, 0, 0, 0, 0, 0, /* commit_time 1000 */
      0xd0, 0x07, 0, 0, 0, 0, 0, 0, /* commit_time 2000 */
  };
  size_t n = finish(in, 49);
  ocdbt_vtnode v;
  int rc = ocdbt_vtnode_decode(in, n, 0, &v);
  if (rc) fail_msg("%s", strata_errmsg());
  assert_int_equal(v.arity_log2, 2);
  assert_int_equal(v.height, 1);
  assert_int_equal(v.n, 2);
  assert_int_equal(v.children[1].generation, 8);
  assert_int_equal(v.children[1].ref.offset, 64);
  assert_int_equal(v.children[1].num_generations, 4);
  assert_int_equal(v.children[1].commit_time, 2000);
  assert_int_equal(v.children[1].height, 0);
  ocdbt_config cfg = plain;
  cfg.version_tree_arity_log2 = 2;
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_vtnode_encode(&cfg, &v, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, in, n);
  ocdbt_vtnode_free(&v);

  /* Leaf node holding generation 1 of an empty tree: root offset and length
   * are 2^64-1 (nine 0xff bytes then 0x01), the table holds one empty path. */
  uint8_t lf[80] = {
      0x0c, 0xdb, 0x12, 0x34, LEN8, 0x00, 0x00,
      0x04, 0x00,                   /* arity_log2 4, height 0 */
      0x01, 0x00, 0x00,             /* table: one file with an empty path */
      0x01, 0x01, 0x00, 0x00,       /* num_versions 1, generation 1, root_height 0, file 0 */
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* offset 2^64-1 */
      0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01, /* length 2^64-1 */
      0x00, 0x00, 0x00,             /* statistics */
      0x01, 0, 0, 0, 0, 0, 0, 0,    /* commit_time 1 */
  };
  n = finish(lf, 54);
  rc = ocdbt_vtnode_decode(lf, n, 0, &v);
  if (rc) fail_msg("%s", strata_errmsg());
  assert_int_equal(v.height, 0);
  assert_int_equal(v.dft.n, 1);
  assert_int_equal(v.dft.files[0].relative_path.n, 0);
  assert_true(v.versions[0].root.offset == OCDBT_MISSING);
  assert_true(v.versions[0].root.length == OCDBT_MISSING);
  b.len = 0;
  assert_int_equal(ocdbt_vtnode_encode(&plain, &v, &b), 0);
  assert_int_equal(b.len, n);
  assert_memory_equal(b.p, lf, n);
  strata_buf_free(&b);
  ocdbt_vtnode_free(&v);
}

/* Errors name the object, the field and the offset. The objects are valid
 * but for one field, with a correct CRC. */
static void test_errors_name_object_field_offset(void **state) {
  uint8_t obj[64] = {
      0x0c, 0xdb, 0x20, 0xde, LEN8, 0x00, 0x00,
      0x00, 0x00,                   /* leaf, empty table */
      0x02, 0x00, 0x01, 0x01, 'b', 'a', /* keys "b" then "a": out of order */
      0x00, 0x00, 0x00, 0x00,
  };
  size_t n = finish(obj, 26);
  ocdbt_btnode node;
  assert_int_equal(ocdbt_btnode_decode(obj, n, 0, &node), STRATA_ECORRUPT);
  assert_string_equal(strata_errmsg(),
                      "btree node: key_suffix[1] at body offset 7: key does not sort after key[0]");
  obj[17] = 0x05; /* key_prefix_length[0] (body offset 3) = 5 > length of key 0 */
  n = finish(obj, 26);
  assert_int_equal(ocdbt_btnode_decode(obj, n, 0, &node), STRATA_ECORRUPT);
  assert_string_equal(strata_errmsg(), "btree node: key_prefix_length[0] at body offset 3: "
                                       "5 exceeds the previous key's length 1");
  obj[17] = 0x00;
  obj[21] = 'c'; /* now "b", "c"; make value_kind[1] (body offset 11) = 2 */
  obj[25] = 0x02;
  n = finish(obj, 26);
  assert_int_equal(ocdbt_btnode_decode(obj, n, 0, &node), STRATA_ECORRUPT);
  assert_string_equal(strata_errmsg(), "btree node: value_kind[1] at body offset 11: "
                                       "2 is neither 0 (inline) nor 1 (out of line)");
  obj[25] = 0x00;
  n = finish(obj, 26);
  assert_int_equal(ocdbt_btnode_decode(obj, n, 0, &node), 0);
  ocdbt_btnode_free(&node);
  /* A check right after a one-byte varint names that varint's offset:
   * entry 1 is out of line in file 5 of an empty table. */
  uint8_t bad_file[64] = {
      0x0c, 0xdb, 0x20, 0xde, LEN8, 0x00, 0x00,
      0x00, 0x00, 0x02, 0x00, 0x01, 0x01, 'b', 'c', /* leaf, empty table, keys "b" "c" */
      0x00, 0x00, 0x00, 0x01,       /* value lengths 0, 0; kinds inline, out of line */
      0x05, 0x00,                   /* data_file_id (body offset 12) = 5, offset 0 */
  };
  size_t nb = finish(bad_file, 28);
  assert_int_equal(ocdbt_btnode_decode(bad_file, nb, 0, &node), STRATA_ECORRUPT);
  assert_string_equal(strata_errmsg(), "btree node: data_file_id[1] at body offset 12: "
                                       "file index 5 outside the table of 0 files");
  /* Header fields are named by their offset in the whole object. */
  bad_file[13] = 0x07; /* compression_format */
  nb = finish(bad_file, 28);
  assert_int_equal(ocdbt_btnode_decode(bad_file, nb, 0, &node), STRATA_ECORRUPT);
  assert_string_equal(strata_errmsg(),
                      "btree node: compression_format at offset 13: unknown compression format 7");
  /* Wrong magic and wrong CRC are named as such. */
  obj[3] = 0xdf;
  assert_int_equal(ocdbt_btnode_decode(obj, n, 0, &node), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "magic at offset 0 is 0x0cdb20df, expected 0x0cdb20de"));
  obj[3] = 0xde;
  obj[n - 1] ^= 1;
  assert_int_equal(ocdbt_btnode_decode(obj, n, 0, &node), STRATA_ECORRUPT);
  assert_non_null(strstr(strata_errmsg(), "btree node: CRC-32C mismatch"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_leaf_node_bytes),
      cmocka_unit_test(test_interior_node_bytes),
      cmocka_unit_test(test_single_manifest_bytes),
      cmocka_unit_test(test_numbered_manifest_config_bytes),
      cmocka_unit_test(test_version_tree_nodes_bytes),
      cmocka_unit_test(test_errors_name_object_field_offset),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
