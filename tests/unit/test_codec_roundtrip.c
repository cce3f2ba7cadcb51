/* Every OCDBT structure survives encode -> decode unchanged, with and without
 * zstd, at the edges (empty, one entry, 65,535-byte keys and paths, many
 * entries, long shared prefixes, both value kinds, both manifest kinds), and
 * so does a B+tree node's deep copy (ocdbt_btnode_clone); and
 * the encoders refuse objects tensorstore's reader would reject. */
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

static void roundtrip_btnode(const ocdbt_btnode *in, int compression) {
  ocdbt_config cfg = sample_config(compression);
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_btnode_encode(&cfg, in, &b), 0);
  ocdbt_btnode out;
  int rc = ocdbt_btnode_decode(b.p, b.len, 0, &out);
  if (rc) fail_msg("decode: %s", strata_errmsg());
  assert_true(btnode_eq(in, &out));
  /* Encoding what we decoded gives the same bytes: the encoding is canonical. */
  strata_buf b2 = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_btnode_encode(&cfg, &out, &b2), 0);
  assert_int_equal(b.len, b2.len);
  assert_memory_equal(b.p, b2.p, b.len);
  /* A clone owns its bytes: it outlives the decoded node (ASan would catch a
   * dangling slice) and encodes to the same bytes. */
  ocdbt_btnode c;
  assert_int_equal(ocdbt_btnode_clone(&out, &c), 0);
  ocdbt_btnode_free(&out);
  assert_true(btnode_eq(in, &c));
  strata_buf b3 = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_btnode_encode(&cfg, &c, &b3), 0);
  assert_int_equal(b.len, b3.len);
  assert_memory_equal(b.p, b3.p, b.len);
  ocdbt_btnode_free(&c);
  strata_buf_free(&b);
  strata_buf_free(&b2);
  strata_buf_free(&b3);
}

static void test_leaf_nodes_roundtrip(void **state) {
  for (int z = 0; z < 2; z++) {
    for (size_t n = 1; n <= 1000; n = n * 10) {
      ocdbt_leaf_entry *e = calloc(n, sizeof *e);
      uint8_t *kb = malloc(n * 32), *vb = malloc(n * 32);
      ocdbt_btnode node;
      sample_leaf(&node, e, n, kb, vb, 24);
      roundtrip_btnode(&node, z);
      free(e), free(kb), free(vb);
    }
  }
}

static void test_leaf_edges_roundtrip(void **state) {
  /* Keys of 65,535 bytes that share 65,534, an empty key, an empty value and
   * a 1 MiB inline value. */
  uint8_t *k1 = malloc(OCDBT_MAX_KEY_LENGTH), *k2 = malloc(OCDBT_MAX_KEY_LENGTH);
  memset(k1, 'k', OCDBT_MAX_KEY_LENGTH);
  memset(k2, 'k', OCDBT_MAX_KEY_LENGTH);
  k2[OCDBT_MAX_KEY_LENGTH - 1] = 'l';
  uint8_t *big = malloc(OCDBT_MAX_INLINE_VALUE);
  for (size_t i = 0; i < OCDBT_MAX_INLINE_VALUE; i++) big[i] = (uint8_t)(i * 7);
  ocdbt_leaf_entry e[4] = {
      {{(const uint8_t *)"", 0}, OCDBT_VALUE_INLINE, {(const uint8_t *)"", 0}, {0, 0, 0}},
      {{k1, OCDBT_MAX_KEY_LENGTH}, OCDBT_VALUE_INLINE, {big, OCDBT_MAX_INLINE_VALUE}, {0, 0, 0}},
      {{k2, OCDBT_MAX_KEY_LENGTH}, OCDBT_VALUE_INDIRECT, {NULL, 0}, {1, INT64_MAX - 5, 5}},
      {S("z"), OCDBT_VALUE_INDIRECT, {NULL, 0}, {0, 0, 0}},
  };
  ocdbt_btnode node = {0, {2, sample_files}, 4, e, NULL, NULL};
  roundtrip_btnode(&node, 0);
  roundtrip_btnode(&node, 1);
  free(k1), free(k2), free(big);
}

static void test_interior_nodes_roundtrip(void **state) {
  for (int z = 0; z < 2; z++)
    for (size_t n = 1; n <= 4096; n *= 8) {
      ocdbt_interior_entry *e = calloc(n, sizeof *e);
      uint8_t *kb = malloc(n * 32);
      ocdbt_btnode node;
      sample_interior(&node, e, n, kb);
      roundtrip_btnode(&node, z);
      free(e), free(kb);
    }
}

static void roundtrip_dft(const ocdbt_dft *in) {
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_dft_encode(in, &b), 0);
  ocdbt_dft out;
  void *arena;
  size_t used;
  int rc = ocdbt_dft_decode(b.p, b.len, 0, &out, &arena, &used);
  if (rc) fail_msg("decode: %s", strata_errmsg());
  assert_int_equal(used, b.len);
  assert_true(dft_eq(in, &out));
  ocdbt_dft_arena_free(arena);
  strata_buf_free(&b);
}

static void test_data_file_tables_roundtrip(void **state) {
  ocdbt_dft empty = {0, NULL};
  roundtrip_dft(&empty);
  ocdbt_dft three = {3, sample_files};
  roundtrip_dft(&three);
  /* One empty path: three bytes in all (found by fuzz_dft). */
  ocdbt_file nothing = {{(const uint8_t *)"", 0}, {(const uint8_t *)"", 0}};
  ocdbt_dft one_empty = {1, &nothing};
  roundtrip_dft(&one_empty);
  /* One path of the full 65,535 bytes, split between base and relative. */
  uint8_t *p = malloc(OCDBT_MAX_PATH_LENGTH);
  memset(p, 'p', OCDBT_MAX_PATH_LENGTH);
  ocdbt_file longf = {{p, 1000}, {p + 1000, OCDBT_MAX_PATH_LENGTH - 1000}};
  ocdbt_dft one = {1, &longf};
  roundtrip_dft(&one);
  /* Many files with long shared prefixes, several base paths, sorted. */
  size_t n = 2000;
  ocdbt_file *f = calloc(n, sizeof *f);
  char *names = malloc(n * 64);
  for (size_t i = 0; i < n; i++) {
    char *s = names + i * 64;
    int len = snprintf(s, 64, "base%zu/d/%032zx", i / 500, i * 2654435761u);
    f[i].base_path = (ocdbt_slice){(uint8_t *)s, 6};
    f[i].relative_path = (ocdbt_slice){(uint8_t *)s + 6, (size_t)len - 6};
  }
  ocdbt_dft many = {n, f};
  uint64_t *remap = malloc(n * sizeof *remap);
  assert_int_equal(ocdbt_dft_sort(&many, remap), 0);
  assert_int_equal(many.n, n);
  roundtrip_dft(&many);
  /* A path over the limit is refused. */
  ocdbt_file over = {{p, 1}, {p, OCDBT_MAX_PATH_LENGTH}};
  ocdbt_dft bad = {1, &over};
  strata_buf b = STRATA_BUF_INIT;
  assert_int_equal(ocdbt_dft_encode(&bad, &b), STRATA_EINVALID);
  strata_buf_free(&b);
  free(p), free(f), free(names), free(remap);
}

static void test_dft_sort_dedups_and_remaps(void **state) {
  ocdbt_file f[4] = {sample_files[2], sample_files[1], sample_files[0], sample_files[1]};
  ocdbt_dft d = {4, f};
  uint64_t remap[4];
  assert_int_equal(ocdbt_dft_sort(&d, remap), 0);
  assert_int_equal(d.n, 3);
  /* Sorted by base path first: "" < "base/". */
  assert_true(slice_eq(d.files[0].relative_path, sample_files[0].relative_path));
  assert_true(slice_eq(d.files[2].base_path, sample_files[2].base_path));
  assert_int_equal(remap[0], 2);
  assert_int_equal(remap[1], 1);
  assert_int_equal(remap[2], 0);
  assert_int_equal(remap[3], 1);
}

/* The sort's order equals plain (base_path, relative_path) byte order on paths
 * built to trip its shortcuts: NUL bytes, prefixes of each other, lengths
 * around 8 and 16, shared starts; and it removes exactly the duplicates. */
static int plain_cmp(const void *x, const void *y) {
  const ocdbt_file *a = x, *b = y;
  int c = ocdbt_slice_cmp(a->base_path, b->base_path);
  return c ? c : ocdbt_slice_cmp(a->relative_path, b->relative_path);
}

static void test_dft_sort_matches_byte_order(void **state) {
  enum { N = 600 };
  static uint8_t bytes[N][2][24];
  ocdbt_file f[N], ref[N];
  uint64_t remap[N];
  uint64_t x = 0x9e3779b97f4a7c15ull;
  static const uint8_t alphabet[] = {0, 1, 'a', 'b', 0xff};
  for (int round = 0; round < 20; round++) {
    for (int i = 0; i < N; i++) {
      for (int part = 0; part < 2; part++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t n = (size_t)(x % (part ? 21 : 11)); /* base 0..10, relative 0..20 bytes */
        for (size_t j = 0; j < n; j++) {
          x ^= x << 13, x ^= x >> 7, x ^= x << 17;
          bytes[i][part][j] = alphabet[x % sizeof alphabet];
        }
        ocdbt_slice sl = {bytes[i][part], n};
        if (part) f[i].relative_path = sl;
        else f[i].base_path = sl;
      }
    }
    memcpy(ref, f, sizeof ref);
    qsort(ref, N, sizeof *ref, plain_cmp);
    size_t uniq = 0;
    for (int i = 0; i < N; i++)
      if (uniq == 0 || plain_cmp(&ref[i], &ref[uniq - 1])) ref[uniq++] = ref[i];
    ocdbt_file orig[N];
    memcpy(orig, f, sizeof orig);
    ocdbt_dft d = {N, f};
    assert_int_equal(ocdbt_dft_sort(&d, remap), 0);
    assert_int_equal(d.n, uniq);
    for (size_t i = 0; i < uniq; i++) assert_int_equal(plain_cmp(&d.files[i], &ref[i]), 0);
    for (int i = 0; i < N; i++) assert_int_equal(plain_cmp(&d.files[remap[i]], &orig[i]), 0);
  }
}

static void roundtrip_vtnode(const ocdbt_vtnode *in, int compression) {
  ocdbt_config cfg = sample_config(compression);
  strata_buf b = STRATA_BUF_INIT;
  int rc = ocdbt_vtnode_encode(&cfg, in, &b);
  if (rc) fail_msg("encode: %s", strata_errmsg());
  ocdbt_vtnode out;
  rc = ocdbt_vtnode_decode(b.p, b.len, 0, &out);
  if (rc) fail_msg("decode: %s", strata_errmsg());
  assert_true(vtnode_eq(in, &out));
  ocdbt_vtnode_free(&out);
  strata_buf_free(&b);
}

static void test_version_tree_nodes_roundtrip(void **state) {
  ocdbt_version v[16];
  for (int z = 0; z < 2; z++) {
    /* A full leaf (generations 17..32) and a one-entry leaf. */
    sample_versions(v, 16, 17);
    ocdbt_vtnode leaf = {4, 0, {2, sample_files}, 16, v, NULL, NULL};
    roundtrip_vtnode(&leaf, z);
    leaf.n = 1;
    roundtrip_vtnode(&leaf, z);
    /* An empty tree's root: offset = length = 2^64-1, height and stats 0. */
    v[0].root = (ocdbt_ref){0, OCDBT_MISSING, OCDBT_MISSING};
    v[0].root_height = 0;
    v[0].stats = (ocdbt_stats){0, 0, 0};
    roundtrip_vtnode(&leaf, z);
    /* Interior at height 1: children are complete leaves (multiples of 16);
     * at height 2 children are multiples of 256. */
    ocdbt_vnode_ref c[16];
    for (int i = 0; i < 16; i++)
      c[i] = (ocdbt_vnode_ref){16u * (i + 1), {i % 2, 100u * i, 90}, 16, 1000u + i, 0};
    ocdbt_vtnode in1 = {4, 1, {2, sample_files}, 16, NULL, c, NULL};
    roundtrip_vtnode(&in1, z);
    for (int i = 0; i < 3; i++) c[i].generation = 256u * (i + 1), c[i].num_generations = 256, c[i].height = 1;
    ocdbt_vtnode in2 = {4, 2, {2, sample_files}, 3, NULL, c, NULL};
    roundtrip_vtnode(&in2, z);
  }
}

static void roundtrip_manifest(const ocdbt_manifest *in) {
  strata_buf b = STRATA_BUF_INIT;
  int rc = ocdbt_manifest_encode(in, &b);
  if (rc) fail_msg("encode: %s", strata_errmsg());
  ocdbt_manifest out;
  rc = ocdbt_manifest_decode(b.p, b.len, &out);
  if (rc) fail_msg("decode: %s", strata_errmsg());
  assert_true(manifest_eq(in, &out));
  ocdbt_manifest_free(&out);
  strata_buf_free(&b);
}

static void test_manifests_roundtrip(void **state) {
  ocdbt_version v[16];
  ocdbt_vnode_ref nodes[4];
  for (int z = 0; z < 2; z++) {
    ocdbt_manifest m;
    sample_manifest(&m, v, nodes, z);
    roundtrip_manifest(&m);
    /* Only inline versions: generations 1..3. */
    sample_versions(v, 3, 1);
    m.n_versions = 3;
    m.n_nodes = 0;
    roundtrip_manifest(&m);
    /* Latest 300 with arity 16: inline 289..300; height-1 node 257..288
     * (generation 288); height-2 node 1..256 (generation 256). */
    sample_versions(v, 12, 289);
    m.n_versions = 12;
    nodes[0] = (ocdbt_vnode_ref){256, {0, 1, 2}, 256, 5, 2};
    nodes[1] = (ocdbt_vnode_ref){288, {1, 3, 4}, 32, 6, 1};
    m.n_nodes = 2;
    roundtrip_manifest(&m);
    /* The numbered kind's manifest.ocdbt holds only the config. */
    m.config.manifest_kind = OCDBT_MANIFEST_NUMBERED;
    roundtrip_manifest(&m);
  }
}

static void expect_refused(int rc, const char *needle) {
  assert_int_equal(rc, STRATA_EINVALID);
  if (!strstr(strata_errmsg(), needle)) fail_msg("message '%s' lacks '%s'", strata_errmsg(), needle);
}

static void test_encoders_refuse_what_readers_reject(void **state) {
  ocdbt_config cfg = sample_config(0);
  strata_buf b = STRATA_BUF_INIT;
  ocdbt_leaf_entry e[2] = {
      {S("b"), OCDBT_VALUE_INLINE, S("1"), {0, 0, 0}},
      {S("a"), OCDBT_VALUE_INLINE, S("2"), {0, 0, 0}},
  };
  ocdbt_btnode node = {0, {2, sample_files}, 2, e, NULL, NULL};
  expect_refused(ocdbt_btnode_encode(&cfg, &node, &b), "key[1] is not greater");
  e[1].key = S("b");
  expect_refused(ocdbt_btnode_encode(&cfg, &node, &b), "key[1] is not greater");
  e[1].key = S("c");
  e[1].kind = OCDBT_VALUE_INDIRECT;
  e[1].ref = (ocdbt_ref){2, 0, 1};
  expect_refused(ocdbt_btnode_encode(&cfg, &node, &b), "outside the table");
  e[1].ref = (ocdbt_ref){0, INT64_MAX, 1};
  expect_refused(ocdbt_btnode_encode(&cfg, &node, &b), "2^63");
  node.n = 0;
  expect_refused(ocdbt_btnode_encode(&cfg, &node, &b), "0 entries");
  assert_int_equal(b.len, 0);

  ocdbt_version v[17];
  sample_versions(v, 17, 16); /* 16..32 spans two leaf blocks */
  ocdbt_vtnode leaf = {4, 0, {2, sample_files}, 2, v, NULL, NULL};
  expect_refused(ocdbt_vtnode_encode(&cfg, &leaf, &b), "more than one leaf block");
  leaf.n = 17;
  expect_refused(ocdbt_vtnode_encode(&cfg, &leaf, &b), "num_versions 17");
  sample_versions(v, 2, 1);
  v[1].commit_time = v[0].commit_time;
  leaf.n = 2;
  expect_refused(ocdbt_vtnode_encode(&cfg, &leaf, &b), "commit_time[1]");
  ocdbt_vnode_ref c[2] = {{16, {0, 0, 1}, 16, 1, 0}, {33, {0, 0, 1}, 1, 2, 0}};
  ocdbt_vtnode in1 = {4, 1, {2, sample_files}, 2, NULL, c, NULL};
  expect_refused(ocdbt_vtnode_encode(&cfg, &in1, &b), "not a multiple of 16");

  ocdbt_vnode_ref nodes[2];
  ocdbt_manifest m;
  sample_manifest(&m, v, nodes, 0);
  nodes[0].generation = 33; /* would overlap the inline block 33..37 */
  expect_refused(ocdbt_manifest_encode(&m, &b), "outside 1..32");
  sample_manifest(&m, v, nodes, 0);
  m.config.version_tree_arity_log2 = 17;
  expect_refused(ocdbt_manifest_encode(&m, &b), "version_tree_arity_log2 17");
  m.config.version_tree_arity_log2 = 4;
  m.config.compression = 1;
  m.config.zstd_level = 23;
  expect_refused(ocdbt_manifest_encode(&m, &b), "zstd level 23");
  assert_int_equal(b.len, 0);
  strata_buf_free(&b);
}

/* Several objects appended to one buffer decode independently: a data file
 * is such a concatenation, addressed by (offset, length). */
static void test_objects_concatenate_in_one_data_file(void **state) {
  ocdbt_config cfg = sample_config(1);
  strata_buf b = STRATA_BUF_INIT;
  ocdbt_leaf_entry e[10];
  uint8_t kb[320], vb[320];
  ocdbt_btnode node;
  sample_leaf(&node, e, 10, kb, vb, 8);
  size_t off[4];
  for (int i = 0; i < 3; i++) {
    off[i] = b.len;
    assert_int_equal(ocdbt_btnode_encode(&cfg, &node, &b), 0);
  }
  off[3] = b.len;
  for (int i = 0; i < 3; i++) {
    ocdbt_btnode out;
    assert_int_equal(ocdbt_btnode_decode(b.p + off[i], off[i + 1] - off[i], 0, &out), 0);
    assert_true(btnode_eq(&node, &out));
    ocdbt_btnode_free(&out);
  }
  strata_buf_free(&b);
}

/* The heights and generation ranges of the manifest's version node
 * references, worked out by hand from the rule in compat note 5. */
static void test_vtree_walk_ranges(void **state) {
  struct { uint8_t a; uint64_t latest; unsigned n; uint64_t range[3][2]; } cases[] = {
      {1, 9, 2, {{5, 8}, {1, 4}}},       /* arity 2: inline 9; heights 1 and 2 */
      {4, 300, 2, {{257, 288}, {1, 256}}},
      {4, 37, 1, {{1, 32}}},
      {4, 16, 0, {{0, 0}}},              /* everything still inline */
      {4, 17, 1, {{1, 16}}},
      {16, 70000, 1, {{1, 65536}}},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    ocdbt_vtree_walk w;
    ocdbt_vtree_walk_init(&w, cases[c].a, cases[c].latest);
    unsigned h = 0;
    while (ocdbt_vtree_walk_next(&w)) {
      assert_true(h < cases[c].n);
      assert_int_equal(w.height, h + 1);
      assert_int_equal(w.lo, cases[c].range[h][0]);
      assert_int_equal(w.hi, cases[c].range[h][1]);
      h++;
    }
    assert_int_equal(h, cases[c].n);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_leaf_nodes_roundtrip),
      cmocka_unit_test(test_leaf_edges_roundtrip),
      cmocka_unit_test(test_interior_nodes_roundtrip),
      cmocka_unit_test(test_data_file_tables_roundtrip),
      cmocka_unit_test(test_dft_sort_dedups_and_remaps),
      cmocka_unit_test(test_dft_sort_matches_byte_order),
      cmocka_unit_test(test_version_tree_nodes_roundtrip),
      cmocka_unit_test(test_manifests_roundtrip),
      cmocka_unit_test(test_encoders_refuse_what_readers_reject),
      cmocka_unit_test(test_objects_concatenate_in_one_data_file),
      cmocka_unit_test(test_vtree_walk_ranges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
