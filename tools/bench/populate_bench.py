#!/usr/bin/python3
"""make bench-populate (part of make bench): strata-populate's throughput in coordinator
mode and in standalone mode against a raw sequential write of the same bytes with
fsync on the same filesystem, in the same run; and the files left unreferenced after
writers and the server were SIGKILLed mid-populate, once GC ran.

The volume (POPULATE_BENCH_MIB, default 2048: a generated segmentation of at least
that many bytes over 3 scales, 64^3 chunks) is generated before any timing starts.
Each populate runs against a fresh strata-server over its own data directory under
--dir, 4 writer processes, --block 2 (a task is 8 mip-0 chunks, ~18 MiB, so a
standalone task fits in one 64 MiB Kv.Commit). Figures are wall-clock times of the
whole command; the raw anchor is the best of three writes. Prints BENCH lines (tools/README.md)."""
import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests",
                                "populate"))
from popcommon import Server, admin, genvol, kill_server_when, populate, wait_writers_ended  # noqa: E402

import strata  # noqa: E402

CHUNK = 64
LAYER_MIB = 640 * 640 * CHUNK * 8 / 2 ** 20  # one z-layer of 10x10 mip-0 chunks
SCALES_FACTOR = 1 + 1 / 8 + 1 / 64           # bytes of 3 scales per mip-0 byte


def raw_write(path, nbytes):
    """Sequential 8 MiB writes of nbytes, then fsync: the baseline's MB/s."""
    buf = os.urandom(8 << 20)
    t0 = time.monotonic()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    left = nbytes
    while left > 0:
        left -= os.write(fd, buf[:min(left, len(buf))])
    os.fsync(fd)
    os.close(fd)
    secs = time.monotonic() - t0
    os.unlink(path)
    return nbytes / 1e6 / secs


def timed_populate(root, name, vol, *args):
    s = Server(os.path.join(root, name))
    try:
        t0 = time.monotonic()
        r = populate(vol, "seg/", s.addr, "--workers", "4", "--block", "2", *args)
        secs = time.monotonic() - t0
        j = r["json"] or {}
        if r["rc"] != 0 or j.get("failed") != 0:
            sys.exit("populate %s failed: %r" % (name, r))
        return j["bytes"] / 1e6 / secs
    finally:
        s.stop()
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)


STAGES = ["before-write", "mid-write", "after-fsync", "after-register", "mid-commit", "after-commit"]


def orphans_after_crashes(root):
    """Writers SIGKILLed at every stage, the server SIGKILLed once, a final run, the
    leases left to expire, GC; returns Admin.Check's unreferenced files."""
    vol = os.path.join(root, "crash-vol")
    genvol(vol, "256,256,128", "64,64,32", 3, 1)
    s = Server(os.path.join(root, "crash-db"))
    lease = ("--lease", "2000")
    try:
        for st in STAGES:
            populate(vol, "seg/", s.addr, "--workers", "4", "--block", "1", *lease,
                     env={"STRATA_POPULATE_CRASH": st})
        p = populate(vol, "seg/", s.addr, "--workers", "4", "--block", "1", *lease,
                     env={"STRATA_POPULATE_TASK_DELAY_MS": "20"}, wait=False)
        kill_server_when(s, p, "seg/", 16)
        p.communicate(timeout=600)
        r = populate(vol, "seg/", s.addr, "--workers", "4", "--block", "1", *lease)
        if r["rc"] != 0:
            sys.exit("the final populate after crashes failed: %r" % r)
        with strata.Client(s.addr, timeout=600) as c:
            if not wait_writers_ended(c):
                sys.exit("writer leases did not end")
            gc = admin(c, "Gc")
            ck = admin(c, "Check")
            if ck.errors_total or ck.missing_files:
                sys.exit("check after crashes: %r" % ck)
            return ck.unreferenced_files, gc.files_removed
    finally:
        s.stop()
        shutil.rmtree(os.path.join(root, "crash-db"), ignore_errors=True)
        shutil.rmtree(vol, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    mib = int(os.environ.get("POPULATE_BENCH_MIB", "2048"))
    root = os.path.join(a.dir, "populate")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    vol = os.path.join(root, "vol")
    layers = max(1, -(-int(mib) // int(LAYER_MIB * SCALES_FACTOR)))
    genvol(vol, "640,640,%d" % (layers * CHUNK), "%d,%d,%d" % (CHUNK, CHUNK, CHUNK), 3, 1)
    nbytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(vol) for f in fs
                 if f != "info")
    print("populate bench: %.0f MiB volume (%d z-layers of 10x10 chunks of 64^3, 3 scales)"
          % (nbytes / 2 ** 20, layers), flush=True)
    # The raw write's speed swings widely on this VM (writeback state): its best of
    # three is the anchor, which can only understate populate's ratio.
    raw = max(raw_write(os.path.join(root, "raw"), nbytes) for _ in range(3))
    coord = timed_populate(root, "db-coord", vol)
    alone = timed_populate(root, "db-standalone", vol, "--standalone")
    print("BENCH populate_MBps %.1f MB/s vs raw %.2f" % (coord, coord / raw))
    print("BENCH populate_MBps_standalone %.1f MB/s vs coordinator %.2f" % (alone, alone / coord))
    print("BENCH populate_raw_write_MBps %.1f MB/s" % raw)
    orphans, removed = orphans_after_crashes(root)
    print("BENCH orphan_files_after_crashes %d files (gc removed %d)" % (orphans, removed))
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
