#!/usr/bin/python3
"""strata-genvol (issue 12): the same seed gives byte-identical files; the info is a
neuroglancer precomputed segmentation with the documented scales; chunk files are
named and clipped as the format says; mip-0 labels decode as PyChunkedGraph-style
ids of their own chunk; every coarser voxel is the mode of its 2x2x2 (ties to the
smaller id). Everything is decoded here from the files, independently of the tool.

Environment: GENVOL_BIN, STRATA_SEED (default: time; printed)."""
import json
import os
import shutil
import struct
import sys
import tempfile
import time

from popcommon import check, genvol, report, seed, source_files

SEED = seed()
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="strata-genvol-test-")
SIZE, CHUNK, SCALES = (40, 36, 20), (16, 16, 8), 3


def ceil(a, b):
    return -(-a // b)


def load_scale(src, sc):
    """The whole scale as a dict (x, y, z) -> id, assembled from its chunk files."""
    vox = {}
    sx, sy, sz = sc["size"]
    cx, cy, cz = sc["chunk_sizes"][0]
    for gz in range(ceil(sz, cz)):
        for gy in range(ceil(sy, cy)):
            for gx in range(ceil(sx, cx)):
                lo = (gx * cx, gy * cy, gz * cz)
                hi = (min(lo[0] + cx, sx), min(lo[1] + cy, sy), min(lo[2] + cz, sz))
                name = "%d-%d_%d-%d_%d-%d" % (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2])
                data = open(os.path.join(src, sc["key"], name), "rb").read()
                n = (hi[0] - lo[0]) * (hi[1] - lo[1]) * (hi[2] - lo[2])
                vals = struct.unpack("<%dQ" % n, data)
                i = 0
                for z in range(lo[2], hi[2]):
                    for y in range(lo[1], hi[1]):
                        for x in range(lo[0], hi[0]):
                            vox[(x, y, z)] = vals[i]
                            i += 1
    return vox


def main():
    a, b, c = (os.path.join(TMP, n) for n in "abc")
    args = ("%d,%d,%d" % SIZE, "%d,%d,%d" % CHUNK, SCALES)
    genvol(a, *args, SEED)
    genvol(b, *args, SEED)
    genvol(c, *args, SEED + 1)
    fa, fb, fc = source_files(a), source_files(b), source_files(c)
    check(fa == fb, "the same seed writes byte-identical files")
    check(fa.keys() == fc.keys() and fa != fc, "another seed writes other labels, same layout")

    info = json.loads(fa["info"])
    check(info.get("type") == "segmentation" and info.get("data_type") == "uint64" and
          info.get("num_channels") == 1 and len(info["scales"]) == SCALES,
          "info: a uint64 single-channel segmentation with the scales asked for", repr(info)[:400])
    want_size = list(SIZE)
    for i, sc in enumerate(info["scales"]):
        res = [8 * 2 ** i, 8 * 2 ** i, 40 * 2 ** i]
        check(sc["key"] == "%d_%d_%d" % tuple(res) and sc["size"] == want_size and
              sc["chunk_sizes"] == [list(CHUNK)] and sc["resolution"] == res and
              sc["voxel_offset"] == [0, 0, 0] and sc["encoding"] == "raw",
              "info: scale %d key, size, chunk size, resolution, offset, encoding" % i, repr(sc))
        names = {k.split("/", 1)[1] for k in fa if k.startswith(sc["key"] + "/")}
        want = set()
        for gz in range(ceil(want_size[2], CHUNK[2])):
            for gy in range(ceil(want_size[1], CHUNK[1])):
                for gx in range(ceil(want_size[0], CHUNK[0])):
                    lo = (gx * CHUNK[0], gy * CHUNK[1], gz * CHUNK[2])
                    hi = [min(lo[d] + CHUNK[d], want_size[d]) for d in range(3)]
                    want.add("%d-%d_%d-%d_%d-%d" % (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]))
        check(names == want, "scale %d: chunk files named <x0>-<x1>_<y0>-<y1>_<z0>-<z1>, edges "
              "clipped" % i, "%s vs %s" % (sorted(names)[:4], sorted(want)[:4]))
        want_size = [ceil(s, 2) for s in want_size]

    # One mip-0 chunk decoded: layer 1, its own chunk coordinates (10 bits each), segment.
    sc0 = info["scales"][0]
    data = fa["%s/16-32_16-32_8-16" % sc0["key"]]
    ids = struct.unpack("<%dQ" % (len(data) // 8), data)
    dec = {(v >> 56, (v >> 46) & 1023, (v >> 36) & 1023, (v >> 26) & 1023) for v in ids}
    segs = {v & ((1 << 26) - 1) for v in ids}
    check(len(ids) == 16 * 16 * 8 and dec == {(1, 1, 1, 1)},
          "mip-0 chunk (1,1,1): every id has layer 1 and chunk x/y/z 1,1,1", repr(dec))
    check(len(segs) >= 2 and min(segs) >= 1 and max(segs) <= 12,
          "mip-0 chunk (1,1,1): several supervoxels, segments in 1..12", repr(sorted(segs)))

    # Every coarser voxel is the mode of the finer 2x2x2 (clipped), ties to the smaller id.
    fine = load_scale(a, info["scales"][0])
    for i in range(1, SCALES):
        sc = info["scales"][i]
        coarse = load_scale(a, sc)
        bad = 0
        for (x, y, z), v in coarse.items():
            vals = [fine[p] for p in ((2 * x + dx, 2 * y + dy, 2 * z + dz)
                                      for dz in (0, 1) for dy in (0, 1) for dx in (0, 1)) if p in fine]
            counts = {}
            for u in vals:
                counts[u] = counts.get(u, 0) + 1
            best = min(counts, key=lambda u: (-counts[u], u))
            bad += best != v
        check(bad == 0 and len(coarse) == sc["size"][0] * sc["size"][1] * sc["size"][2],
              "scale %d: every voxel is the mode of its 2x2x2 at scale %d" % (i, i - 1),
              "%d voxels differ" % bad)
        fine = coarse
    shutil.rmtree(TMP, ignore_errors=True)
    return report(T0)


if __name__ == "__main__":
    sys.exit(main())
