#!/usr/bin/python3
"""make bench-split (part of make bench): the supervoxel split edit (issue 13).

split_op_ms: a 256^3 uint64 volume of 8 chunks of 128^3 (strata-genvol, loaded with
strata-populate), with SHELLS concentric spherical shells around its centre painted
in as supervoxels before loading, so each shell spans all 8 chunks. Each op splits one
shell (seeds at its two ends) with strata-split: 8 chunk locks, 8 chunk reads, 8 chunk
writes in ONE fenced commit (plus the small ids-record commit). The anchor, in the same
run on a second server over the same volume: the same reads, compute and writes with
strata-split --bench-multi-commit (no op, no locks, one non-fenced commit per chunk and
one for the records). Medians over the shells; the worker's own step timings
(stderr key=value lines) give the breakdown.

split_ops_per_s_disjoint: a 1024x64x64 volume of 64^3 chunks; 4 workers on supervoxels
of chunks 0, 5, 10 and 15 along x (their chunk sets are disjoint), each splitting the 4
supervoxels of its chunk one after another; ops / wall-clock seconds.

Prints BENCH lines (tools/README.md)."""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "populate"))
import popcommon  # noqa: E402
from popcommon import Server, genvol, populate  # noqa: E402

SPLIT = os.environ["SPLIT_BIN"]
SHELLS = [(0, 24), (24, 36), (36, 45), (45, 52), (52, 58), (58, 63)]
BIG = str(512 << 20)


def paint_shells(vol):
    """Rewrites the 8 chunk files: voxel at distance r from the centre in shell k gets
    supervoxel id (layer 1, chunk 0,0,0, segment 100 + k)."""
    info = json.load(open(os.path.join(vol, "info")))
    key = info["scales"][0]["key"]
    ids = [(1 << 56) | (100 + k) for k in range(len(SHELLS))]
    r2 = [(a * a, b * b) for a, b in SHELLS]
    for cz in range(2):
        for cy in range(2):
            for cx in range(2):
                name = "%d-%d_%d-%d_%d-%d" % (cx * 128, cx * 128 + 128, cy * 128, cy * 128 + 128,
                                              cz * 128, cz * 128 + 128)
                path = os.path.join(vol, key, name)
                a = array("Q")
                a.frombytes(open(path, "rb").read())
                for z in range(128):
                    dz = (cz * 128 + z - 128) ** 2
                    if dz >= r2[-1][1]:
                        continue
                    for y in range(128):
                        dyz = dz + (cy * 128 + y - 128) ** 2
                        if dyz >= r2[-1][1]:
                            continue
                        base = (z * 128 + y) * 128
                        for x in range(128):
                            d = dyz + (cx * 128 + x - 128) ** 2
                            for k, (lo, hi) in enumerate(r2):
                                if lo <= d < hi:
                                    a[base + x] = ids[k]
                                    break
                open(path, "wb").write(a.tobytes())
    return ids


def shell_seeds(k):
    """Two voxels of shell k at its opposite ends along x."""
    lo, hi = SHELLS[k]
    r = (lo + hi) // 2
    return (128 - r, 128, 128), (128 + r - 1, 128, 128)


def run_split(addr, sv, a, b, extra=()):
    argv = [SPLIT, "--addr", addr, "--prefix", "seg/", "--sv", str(sv), "--source",
            "%d,%d,%d" % a, "--sink", "%d,%d,%d" % b, "--max-message-bytes", BIG, "--json"] + list(extra)
    t0 = time.monotonic()
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    wall = (time.monotonic() - t0) * 1000
    if r.returncode != 0:
        sys.exit("strata-split failed: %s" % r.stderr.decode()[-2000:])
    m = re.search(r"step=done .*?ms=([\d.]+) locks_ms=([\d.]+) read_ms=([\d.]+) compute_ms=([\d.]+) "
                  r"commit_ms=([\d.]+)", r.stderr.decode())
    return dict(zip(["total", "locks", "read", "compute", "commit"], map(float, m.groups())),
                wall=wall, chunks=len(json.loads(r.stdout)["chunks_written"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    root = os.path.join(ap.parse_args().dir, "split")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    vol = os.path.join(root, "vol")
    genvol(vol, "256,256,256", "128,128,128", 1, 1, "--segments", "4")
    ids = paint_shells(vol)
    figs = {}
    for mode in ("op", "multi"):
        s = Server(os.path.join(root, mode), ["--max-message-bytes", BIG])
        try:
            r = populate(vol, "seg/", s.addr, "--workers", "2", "--block", "2")
            if r["rc"] != 0:
                sys.exit("populate failed: %r" % r)
            runs = [run_split(s.addr, ids[k], *shell_seeds(k),
                              extra=["--bench-multi-commit"] if mode == "multi" else [])
                    for k in range(len(SHELLS))]
            if any(x["chunks"] != 8 for x in runs):
                sys.exit("a split did not write 8 chunks: %r" % runs)
            figs[mode] = {f: statistics.median(x[f] for x in runs) for f in runs[0]}
        finally:
            s.stop()
            shutil.rmtree(os.path.join(root, mode), ignore_errors=True)
    op, mc = figs["op"], figs["multi"]
    print("BENCH split_op_ms %.1f ms vs multi_commit %.2f (one fenced op %.1f ms, multi-commit %.1f ms; "
          "8 chunks of 128^3 uint64, median of %d)" % (op["total"], op["total"] / mc["total"],
                                                       op["total"], mc["total"], len(SHELLS)))
    for f in ("locks", "read", "compute", "commit"):
        print("BENCH split_op_%s_ms %.1f ms (multi_commit %.1f ms)" % (f, op[f], mc[f]))

    # --- 4 workers on disjoint regions
    wide = os.path.join(root, "wide")
    genvol(wide, "1024,64,64", "64,64,64", 1, 2, "--segments", "4")
    key = json.load(open(os.path.join(wide, "info")))["scales"][0]["key"]
    s = Server(os.path.join(root, "disjoint"))
    try:
        if populate(wide, "seg/", s.addr, "--workers", "2", "--block", "2")["rc"] != 0:
            sys.exit("populate failed")
        jobs = []
        for cx in (0, 5, 10, 15):
            a = array("Q")
            a.frombytes(open(os.path.join(wide, key, "%d-%d_0-64_0-64" % (cx * 64, cx * 64 + 64)),
                             "rb").read())
            mine = []
            for v in sorted(set(a)):
                pts = [i for i in range(len(a)) if a[i] == v]
                p0, p1 = pts[0], pts[-1]
                xyz = lambda i: (cx * 64 + i % 64, (i // 64) % 64, i // 4096)
                if p0 != p1:
                    mine.append((v, xyz(p0), xyz(p1)))
            jobs.append(mine)
        script = ("import subprocess,sys\n"
                  "for v,a,b in %r:\n"
                  "  r=subprocess.run([%r,'--addr',%r,'--prefix','seg/','--sv',str(v),'--source','%%d,%%d,%%d'%%tuple(a),"
                  "'--sink','%%d,%%d,%%d'%%tuple(b),'--wait-ms','0'],stderr=subprocess.PIPE)\n"
                  "  sys.exit(r.stderr.decode()[-800:]) if r.returncode else None\n")
        t0 = time.monotonic()
        procs = [subprocess.Popen([sys.executable, "-c", script % (j, SPLIT, s.addr)],
                                 stdout=subprocess.DEVNULL) for j in jobs]
        rcs = [p.wait(timeout=600) for p in procs]
        secs = time.monotonic() - t0
        if any(rcs):
            sys.exit("a disjoint worker failed")
        n = sum(len(j) for j in jobs)
        print("BENCH split_ops_per_s_disjoint %.1f ops/s (4 workers, %d ops on disjoint 64^3-chunk "
              "regions, wall clock %.2f s)" % (n / secs, n, secs))
    finally:
        s.stop()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
