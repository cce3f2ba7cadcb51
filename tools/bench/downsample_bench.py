#!/usr/bin/python3
"""make bench-downsample (part of make bench): the downsample worker (issue 14).

downsample_MBps: a 1024x512x256 uint64 volume of 32^3 chunks with 3 scales (strata-genvol;
blocks of 128^3 mip-0 voxels, 64 of them, 1 GiB of mip 0), loaded with strata-populate with
its mip 0 replaced by another seed's, so every coarser chunk is stale. One worker runs
`--region all`: it reads every mip-0 chunk, computes the pyramid and commits every coarser
chunk (one fenced commit per block). MB/s of mip 0 over the worker's wall-clock time, against
the same pyramid computed in the same run by `strata-downsample --bench-in-process` from the
volume's files (no server): the ratio. Both are timed as their process's wall time (start-up
and exit included). The worker runs with --store (mip 0 read from the store's OCDBT files, as
a worker on a machine that sees them does; tools/downsample/README.md "Direct reads"): RUNS
copies of the volume under seg/, seg1/, seg2/; downsample_via_server_MBps is the same with
every read through the server, on RUNS more copies under via0/, via1/, via2/. Medians of RUNS
runs of each, interleaved with RUNS anchor runs. downsample_128MiB_MBps: the same --store run
on a 512x256x128 volume (8 blocks, the figure's volume until 2026-12-07), where the worker's
fixed part (connect, layout, checkpoint, op, the last commit) weighs 8 times as much.

pyramid_lag_ms: a worker in --follow mode; SPLITS splits one after another (strata-split,
each in a different mip-0 chunk); for each, from the split's commit (its generation's commit
time on the server clock) to the worker's last block commit for that generation (its log
line's time, the same machine's clock). Median and p99.

Prints BENCH lines (tools/README.md)."""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "populate"))
from popcommon import Server, genvol, populate  # noqa: E402

import strata  # noqa: E402

DS = os.environ["DOWNSAMPLE_BIN"]
SPLIT = os.environ["SPLIT_BIN"]
SIZE, SMALL, CHUNK = (1024, 512, 256), (512, 256, 128), 32
SPLITS = 30
RUNS = 3


def pick_seeds(vol, key, c):
    """The largest supervoxel of mip-0 chunk c (from the source files) and two of its voxels."""
    lo = [c[d] * CHUNK for d in range(3)]
    name = "%d-%d_%d-%d_%d-%d" % (lo[0], lo[0] + CHUNK, lo[1], lo[1] + CHUNK, lo[2], lo[2] + CHUNK)
    a = array("Q")
    a.frombytes(open(os.path.join(vol, key, name), "rb").read())
    count = {}
    for v in a:
        count[v] = count.get(v, 0) + 1
    sv = max(sorted(count), key=lambda v: count[v])
    pts = [i for i, v in enumerate(a) if v == sv]
    to_xyz = lambda i: (lo[0] + i % CHUNK, lo[1] + i // CHUNK % CHUNK, lo[2] + i // (CHUNK * CHUNK))
    return sv, to_xyz(pts[0]), to_xyz(pts[-1])


def volumes(root, size, tag):
    """(vol, other, key0): a generated volume of size whose mip 0 is another seed's, and
    that other volume."""
    vol, other = os.path.join(root, "vol" + tag), os.path.join(root, "other" + tag)
    dims, chunk = "%d,%d,%d" % size, "%d,%d,%d" % (CHUNK, CHUNK, CHUNK)
    genvol(vol, dims, chunk, 3, 1, "--segments", "8")
    genvol(other, dims, chunk, 1, 2, "--segments", "8")
    key0 = json.load(open(os.path.join(vol, "info")))["scales"][0]["key"]
    shutil.rmtree(os.path.join(vol, key0))
    shutil.copytree(os.path.join(other, key0), os.path.join(vol, key0))
    return vol, other, key0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    root = os.path.join(ap.parse_args().dir, "downsample")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    vol, other, key0 = volumes(root, SIZE, "")
    small, _, _ = volumes(root, SMALL, "-small")

    s = Server(os.path.join(root, "db"))
    try:
        c = strata.Client(s.addr)
        # RUNS copies of each volume per measurement (every coarser chunk stale in each):
        # one worker run per copy, reading mip 0 from the store's files (--store) on seg,
        # seg1, ... (and small0, ...) and through the server on via0, ...
        copies = [(vol, "seg%s/" % (k or "")) for k in range(RUNS)] + \
                 [(vol, "via%d/" % k) for k in range(RUNS)] + [(small, "small%d/" % k) for k in range(RUNS)]
        for src, prefix in copies:
            r = populate(src, prefix, s.addr, "--workers", "2", "--block", "2")
            if r["rc"] != 0:
                sys.exit("populate of %s failed: %r" % (prefix, r))
        while c.stats().store.published_generation < c.latest().generation:
            time.sleep(0.01)  # --store reads published generations (the last batch: ms)
        store = os.path.join(root, "db", "kv")

        def worker(prefix, *extra):
            t0 = time.monotonic()
            p = subprocess.run([DS, "--addr", s.addr, "--prefix", prefix, "--region", "all"] + list(extra),
                               capture_output=True)
            if p.returncode != 0:
                sys.exit("downsample --region all failed: %s" % p.stderr.decode()[-800:])
            m = re.search(r"event=store_reads url=\S+ direct=(\d+) via_server=(\d+)", p.stderr.decode())
            if extra and not (m and int(m.group(1)) > 0 and int(m.group(2)) == 0):
                sys.exit("the --store run did not read every block directly: %s" % p.stderr.decode()[-800:])
            return time.monotonic() - t0

        def anchor(src):
            t0 = time.monotonic()
            r = subprocess.run([DS, "--bench-in-process", src], check=True, capture_output=True)
            return time.monotonic() - t0, json.loads(r.stdout)

        # both timed the same way, as the wall time of their process (start-up and exit
        # included); the anchor's own timer (its compute loop only) is printed too
        secs, vias, anchors, anchor_walls, smalls, small_anchors = [], [], [], [], [], []
        for k in range(RUNS):
            wall, a = anchor(vol)
            anchor_walls.append(wall)
            anchors.append(a)
            secs.append(worker("seg%s/" % (k or ""), "--store", store))
            vias.append(worker("via%d/" % k))
            small_anchors.append(anchor(small))
            smalls.append(worker("small%d/" % k, "--store", store))
        nbytes = anchors[0]["mip0_bytes"]
        sec, via, asec = statistics.median(secs), statistics.median(vias), statistics.median(anchor_walls)
        aloop = statistics.median(a["seconds"] for a in anchors)
        mbps, via_mbps, in_mbps = nbytes / sec / 1e6, nbytes / via / 1e6, nbytes / asec / 1e6
        nblocks = 1
        for d in range(3):
            nblocks *= SIZE[d] // (CHUNK * 4)
        print("BENCH downsample_MBps %.1f MB/s vs in_process %.2f (worker reading mip 0 from the store's "
              "files, --store: %.2f s, in-process %.2f s, its compute loop %.2f s; processes' wall times for "
              "%d MiB of mip 0, 3 scales, %d blocks of 128^3; medians of %d runs)" %
              (mbps, mbps / in_mbps, sec, asec, aloop, nbytes >> 20, nblocks, RUNS), flush=True)
        print("BENCH downsample_via_server_MBps %.1f MB/s vs in_process %.2f (every read through the "
              "server: %.2f s; medians of %d runs)" % (via_mbps, via_mbps / in_mbps, via, RUNS), flush=True)
        sbytes = small_anchors[0][1]["mip0_bytes"]
        ssec, sasec = statistics.median(smalls), statistics.median(a[0] for a in small_anchors)
        print("BENCH downsample_128MiB_MBps %.1f MB/s vs in_process %.2f (--store: %.2f s, in-process %.2f s; "
              "%d MiB of mip 0, 8 blocks; medians of %d runs)" %
              (sbytes / ssec / 1e6, sasec / ssec, ssec, sasec, sbytes >> 20, RUNS), flush=True)

        # pyramid_lag_ms: a follow worker, splits one after another; the worker first
        # catches up with the populate's history of seg/ (--until, which exits), so the
        # first split's lag is not the catch-up's
        subprocess.run([DS, "--addr", s.addr, "--prefix", "seg/", "--until", str(c.latest().generation),
                        "--name", "lag"], check=True, capture_output=True)
        w = subprocess.Popen([DS, "--addr", s.addr, "--prefix", "seg/", "--follow", "--name", "lag"],
                             stderr=subprocess.PIPE, text=True)
        done = {}  # generation -> time (ms) of its last block commit
        cv = threading.Condition()

        def reader():
            for line in w.stderr:
                m = re.search(r"t_ms=(\d+) event=block gen=(\d+) .*checkpoint=1", line)
                m2 = re.search(r"t_ms=(\d+) event=checkpoint gen=(\d+)", line)
                m = m or m2
                if m:
                    with cv:
                        done[int(m.group(2))] = int(m.group(1))
                        cv.notify_all()
        th = threading.Thread(target=reader, daemon=True)
        th.start()
        g = [SIZE[d] // CHUNK for d in range(3)]
        lags = []
        for k in range(SPLITS):
            idx = (k * 37) % (g[0] * g[1] * g[2])  # a different chunk each time (37 is coprime)
            cc = (idx % g[0], idx // g[0] % g[1], idx // (g[0] * g[1]))
            sv, a, b = pick_seeds(other, key0, cc)
            sp = subprocess.run([SPLIT, "--addr", s.addr, "--prefix", "seg/", "--sv", str(sv), "--source",
                                 "%d,%d,%d" % a, "--sink", "%d,%d,%d" % b, "--json"], capture_output=True)
            if sp.returncode != 0:
                sys.exit("split failed: %s" % sp.stderr.decode()[-800:])
            gen = json.loads(sp.stdout)["generation"]
            with cv:
                if not cv.wait_for(lambda: gen in done, timeout=120):
                    sys.exit("the worker did not process generation %d" % gen)
            v = next(iter(c.versions(gen, gen)))
            lags.append(done[gen] - v.commit_time_ns / 1e6)
        w.terminate()
        w.wait(timeout=60)
        lags.sort()
        p99 = lags[min(len(lags) - 1, int(round(0.99 * (len(lags) - 1))))]
        print("BENCH pyramid_lag_ms %.1f ms p99 %.1f ms (%d splits, one --follow worker, blocks of 128^3 "
              "mip-0 voxels)" % (statistics.median(lags), p99, len(lags)), flush=True)
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
