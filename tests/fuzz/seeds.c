/* Writes a seed corpus of valid encodings for every fuzz target into
 * DIR/<target>/, so fuzzing starts from inputs deep inside the format.
 * Usage: seeds DIR */
#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "tests/codec_samples.h"

static int put(const char *dir, const char *target, int i, const uint8_t *p, size_t n) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, target);
  if (mkdir(path, 0755) && errno != EEXIST) return perror(path), -1;
  snprintf(path, sizeof path, "%s/%s/seed-%d", dir, target, i);
  FILE *f = fopen(path, "wb");
  if (!f || fwrite(p, 1, n, f) != n || fclose(f)) return perror(path), -1;
  return 0;
}

int main(int argc, char **argv) {
  if (argc != 2) return fprintf(stderr, "usage: seeds DIR\n"), 2;
  const char *dir = argv[1];
  int rc = 0, seed = 0;
  strata_buf b = STRATA_BUF_INIT;
  ocdbt_leaf_entry e[40];
  ocdbt_interior_entry c[12];
  uint8_t kb[40 * 32], vb[40 * 32];
  ocdbt_version v[16];
  ocdbt_vnode_ref r[16];
  for (int z = 0; z < 2; z++) {
    ocdbt_config cfg = sample_config(z);
    ocdbt_btnode node;
    for (size_t n = 1; n <= 40; n *= 6) {
      sample_leaf(&node, e, n, kb, vb, 7);
      b.len = 0;
      rc |= ocdbt_btnode_encode(&cfg, &node, &b) || put(dir, "fuzz_btnode", seed++, b.p, b.len);
    }
    sample_interior(&node, c, 12, kb);
    b.len = 0;
    rc |= ocdbt_btnode_encode(&cfg, &node, &b) || put(dir, "fuzz_btnode", seed++, b.p, b.len);

    sample_versions(v, 5, 33);
    ocdbt_vtnode leaf = {4, 0, {2, sample_files}, 5, v, NULL, NULL};
    b.len = 0;
    rc |= ocdbt_vtnode_encode(&cfg, &leaf, &b) || put(dir, "fuzz_vtnode", seed++, b.p, b.len);
    for (int i = 0; i < 4; i++) r[i] = (ocdbt_vnode_ref){16u * (i + 1), {i % 2, 10u * i, 9}, 16, 5u + i, 0};
    ocdbt_vtnode in = {4, 1, {2, sample_files}, 4, NULL, r, NULL};
    b.len = 0;
    rc |= ocdbt_vtnode_encode(&cfg, &in, &b) || put(dir, "fuzz_vtnode", seed++, b.p, b.len);

    ocdbt_manifest m;
    sample_manifest(&m, v, r, z);
    b.len = 0;
    rc |= ocdbt_manifest_encode(&m, &b) || put(dir, "fuzz_manifest", seed++, b.p, b.len);
    m.config.manifest_kind = OCDBT_MANIFEST_NUMBERED;
    b.len = 0;
    rc |= ocdbt_manifest_encode(&m, &b) || put(dir, "fuzz_manifest", seed++, b.p, b.len);
  }
  /* Bare tables, behind the two-byte transitive length the target reads. */
  uint8_t pre[2] = {0, 5};
  for (size_t n = 0; n <= 3; n++) {
    ocdbt_dft d = {n, sample_files};
    b.len = 0;
    rc |= strata_buf_append(&b, pre, 2) || ocdbt_dft_encode(&d, &b) ||
          put(dir, "fuzz_dft", seed++, b.p, b.len);
  }
  strata_buf_free(&b);
  if (rc) fprintf(stderr, "seeds: failed\n");
  return rc ? 1 : 0;
}
