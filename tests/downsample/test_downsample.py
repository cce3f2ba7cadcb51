#!/usr/bin/python3
"""strata-downsample and stratactl downsample status against real strata-servers (issue 14),
on a volume strata-genvol made and strata-populate loaded, edited by strata-split. Every
coarser chunk is compared with a from-scratch mode downsampling of the final mip 0 computed
here, in Python, independently of the tool.

Environment: STRATA_SERVER_BIN, DOWNSAMPLE_BIN, SPLIT_BIN, STRATACTL_BIN, POPULATE_BIN,
GENVOL_BIN, PYTHONPATH (the strata package), STRATA_SEED (default: time; printed)."""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from array import array

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "populate"))
from popcommon import (check, dump, genvol, populated_server,  # noqa: E402
                       report, run_tool, seed)

import strata  # noqa: E402

DS = os.environ["DOWNSAMPLE_BIN"]
SPLIT = os.environ["SPLIT_BIN"]
CTL = os.environ["STRATACTL_BIN"]
PREFIX = "seg/"
SIZE, CHUNK, SCALES = (128, 96, 64), 16, 3  # coarsest 32x24x16: 2x2x1 blocks of 64^3
SEED = seed()
RNG = random.Random(SEED)
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="strata-downsample-test-")
servers = []


def new_server(name):
    return populated_server(TMP, name, servers, SRC, PREFIX)


def run(argv, env=None, wait=True):
    return run_tool(argv, "STRATA_DOWNSAMPLE_DIE_AT", env, wait, timeout=600)


def ds(addr, *args, env=None, wait=True):
    return run([DS, "--addr", addr, "--prefix", PREFIX, "--ttl-ms", "2000"] + list(args), env, wait)


def latest(c):
    return c.latest().generation


# --- the volume and the reference pyramid, computed here ---------------------------------
SRC = os.path.join(TMP, "vol")
genvol(SRC, "%d,%d,%d" % SIZE, "%d,%d,%d" % (CHUNK, CHUNK, CHUNK), SCALES, SEED, "--segments", "6")
INFO = json.load(open(os.path.join(SRC, "info")))
S = INFO["scales"]


def grid(s):
    return [-(-s["size"][d] // s["chunk_sizes"][0][d]) for d in range(3)]


def chunk_boxes(s):
    """[(name, lo, hi)] of every chunk of scale s."""
    out = []
    g, ch = grid(s), s["chunk_sizes"][0]
    for z in range(g[2]):
        for y in range(g[1]):
            for x in range(g[0]):
                lo = (x * ch[0], y * ch[1], z * ch[2])
                hi = tuple(min(lo[d] + ch[d], s["size"][d]) for d in range(3))
                out.append(("%d-%d_%d-%d_%d-%d" % (lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]), lo, hi))
    return out


def load_scale(db, i):
    """Scale i as one flat array (x fastest) from a dump."""
    s = S[i]
    nx, ny, nz = s["size"]
    vol = array("Q", bytes(8 * nx * ny * nz))
    for name, lo, hi in chunk_boxes(s):
        a = array("Q")
        a.frombytes(db[("%s%s/%s" % (PREFIX, s["key"], name)).encode()])
        w = hi[0] - lo[0]
        k = 0
        for z in range(lo[2], hi[2]):
            for y in range(lo[1], hi[1]):
                o = (z * ny + y) * nx + lo[0]
                vol[o:o + w] = a[k:k + w]
                k += w
    return vol


def mode_down(fine, fsize, f, csize):
    out = array("Q", bytes(8 * csize[0] * csize[1] * csize[2]))
    i = 0
    for z in range(csize[2]):
        for y in range(csize[1]):
            for x in range(csize[0]):
                count = {}
                for Z in range(f[2] * z, min(f[2] * z + f[2], fsize[2])):
                    for Y in range(f[1] * y, min(f[1] * y + f[1], fsize[1])):
                        o = (Z * fsize[1] + Y) * fsize[0]
                        for X in range(f[0] * x, min(f[0] * x + f[0], fsize[0])):
                            v = fine[o + X]
                            count[v] = count.get(v, 0) + 1
                out[i] = min(count, key=lambda v: (-count[v], v))
                i += 1
    return out


def reference(db):
    """{key: bytes} of every coarser chunk, downsampled here from the dump's mip 0."""
    vol = load_scale(db, 0)
    ref = {}
    for i in range(1, len(S)):
        f = [round(S[i]["resolution"][d] / S[i - 1]["resolution"][d]) for d in range(3)]
        vol = mode_down(vol, S[i - 1]["size"], f, S[i]["size"])
        nx, ny, _ = S[i]["size"]
        for name, lo, hi in chunk_boxes(S[i]):
            a = array("Q")
            for z in range(lo[2], hi[2]):
                for y in range(lo[1], hi[1]):
                    o = (z * ny + y) * nx
                    a.extend(vol[o + lo[0]:o + hi[0]])
            ref[("%s%s/%s" % (PREFIX, S[i]["key"], name)).encode()] = a.tobytes()
    return ref


def pyramid_mismatches(db):
    """Coarser chunks that differ from the reference of the dump's own mip 0 (all compared)."""
    ref = reference(db)
    return sorted(k.decode() for k, v in ref.items() if db.get(k) != v), len(ref)


def check_pyramid(tag, c):
    db = dump(c, PREFIX)
    bad, n = pyramid_mismatches(db)
    check(not bad, "%s: all %d coarser chunks equal the downsampling of the final mip 0" % (tag, n),
          "%d differ, e.g. %s" % (len(bad), bad[:5]))
    return db


# --- random splits -------------------------------------------------------------------------
def random_split(c, addr, tag):
    """Splits a random supervoxel between two of its voxels; returns the commit generation."""
    vol = load_scale(dump(c, PREFIX + S[0]["key"] + "/"), 0)
    nx, ny, nz = SIZE
    for _ in range(20):
        x, y, z = RNG.randrange(nx), RNG.randrange(ny), RNG.randrange(nz)
        sv = vol[(z * ny + y) * nx + x]
        cx, cy, cz = x // CHUNK, y // CHUNK, z // CHUNK
        pts = [(X, Y, Z) for Z in range(cz * CHUNK, cz * CHUNK + CHUNK)
               for Y in range(cy * CHUNK, cy * CHUNK + CHUNK)
               for X in range(cx * CHUNK, cx * CHUNK + CHUNK) if vol[(Z * ny + Y) * nx + X] == sv]
        if len(pts) < 50:
            continue
        pts.sort(key=lambda p: (sum(p), p))
        rc, out, err = run([SPLIT, "--addr", addr, "--prefix", PREFIX, "--sv", str(sv), "--source",
                            "%d,%d,%d" % pts[0], "--sink", "%d,%d,%d" % pts[-1], "--root-ttl-ms",
                            "2000", "--wait-ms", "10000", "--json"])
        if rc == 0:
            return json.loads(out)["generation"]
    check(False, "%s: a split committed" % tag, err[-400:])
    return 0


def multi_block_edit(c):
    """One commit that relabels part of one mip-0 chunk in every block (a generation that
    touches every block, so a crash between its block commits is exercised)."""
    s0 = S[0]
    nb = [-(-S[-1]["size"][d] // S[-1]["chunk_sizes"][0][d]) for d in range(3)]
    edge = [S[-1]["chunk_sizes"][0][d] * 2 ** (len(S) - 1) for d in range(3)]
    puts = {}
    for bz in range(nb[2]):
        for by in range(nb[1]):
            for bx in range(nb[0]):
                lo = [min(b * e + RNG.randrange(e // CHUNK) * CHUNK, (SIZE[d] - 1) // CHUNK * CHUNK)
                      for d, (b, e) in enumerate(zip((bx, by, bz), edge))]
                name = "%d-%d_%d-%d_%d-%d" % (lo[0], lo[0] + CHUNK, lo[1], lo[1] + CHUNK, lo[2], lo[2] + CHUNK)
                key = ("%s%s/%s" % (PREFIX, s0["key"], name)).encode()
                a = array("Q")
                a.frombytes(c.get(key).value)
                v = a[RNG.randrange(len(a))]
                k = RNG.randrange(1, CHUNK) * CHUNK * CHUNK
                a[:k] = array("Q", [v]) * k
                puts[key] = a.tobytes()
    return c.commit(puts=puts).generation


def splits(c, addr, tag, n):
    gens = [random_split(c, addr, "%s split %d" % (tag, i)) for i in range(n)]
    return max(gens)


def ckpt(c, name="default"):
    r = c.get((PREFIX + ".downsample/checkpoint/" + name).encode())
    return int(r.value) if r.value is not None else 0


def block_writes(err):
    """{(gen, block)} of a worker's log (event=block lines: it committed that block)."""
    return set(re.findall(r"event=block gen=(\d+) block=(\S+)", err))


# --- 1: random splits, then --until: the pyramid equals a from-scratch downsampling ---------
def test_after_splits():
    s = new_server("a")
    c = strata.Client(s.addr)
    last = splits(c, s.addr, "after-splits", 6)
    bad, _ = pyramid_mismatches(dump(c, PREFIX))
    check(bad, "after-splits: the splits left coarser chunks stale (the test is meaningful)")
    rc, _, err = ds(s.addr, "--until", str(latest(c)))
    check(rc == 0, "after-splits: --until exits 0", err[-600:])
    check_pyramid("after-splits", c)
    check(ckpt(c) >= last, "after-splits: the checkpoint (%d) covers the last split (%d)" % (ckpt(c), last))
    check(not list(c.locks()), "after-splits: no lock left")
    rc, out, err = run([CTL, "--addr", s.addr, "--json", "downsample", "status", "--prefix", PREFIX])
    st = json.loads(out) if rc == 0 else {}
    w = {x["worker"]: x for x in st.get("workers", [])}
    check(rc == 0 and "default" in w and int(w["default"]["checkpoint"]) == ckpt(c)
          and int(st["latest"]) == latest(c),
          "after-splits: stratactl downsample status shows the checkpoint and the latest", out + err)
    # a second run with nothing new writes no block
    rc, _, err = ds(s.addr, "--until", str(latest(c)))
    check(rc == 0 and not block_writes(err), "after-splits: a caught-up worker rewrites nothing", err[-400:])
    # --region BOX repairs the blocks of the box and only those
    bad_key = ("%s%s/16-32_0-16_0-16" % (PREFIX, S[2]["key"])).encode()  # block 1_0_0's
    c.put(bad_key, bytes(len(c.get(bad_key).value)))
    rc, _, err = ds(s.addr, "--region", "64,0,0,128,64,64", "--name", "repair")
    blocks = {b for _, b in block_writes(err)}
    check(rc == 0 and blocks == {"1_0_0"}, "after-splits: --region BOX recomputes exactly its block",
          "%r %s" % (blocks, err[-400:]))
    check(ckpt(c, "repair") == 0, "after-splits: --region BOX (not the whole volume) sets no checkpoint")
    check_pyramid("after-splits --region", c)
    return s, c


# --- 2: SIGKILL at random points, restarted, repeatedly ---------------------------------------
def test_kills():
    s = new_server("k")
    c = strata.Client(s.addr)
    kills = 0
    for rnd in range(3):
        splits(c, s.addr, "kills round %d" % rnd, 2)
        multi_block_edit(c)
        splits(c, s.addr, "kills round %d" % rnd, 1)
        target = latest(c)
        for attempt in range(40):
            stage = RNG.choice(["read", "computed", "commit_before", "commit_after"])
            # the first attempt of a round always dies (every stage is reached at least once
            # when a round has edits); later ones at a random hit, possibly past the end
            n = 1 if attempt == 0 else RNG.randint(1, 4)
            rc, _, err = ds(s.addr, "--until", str(target), env={"STRATA_DOWNSAMPLE_DIE_AT": "%s:%d" % (stage, n)})
            if rc == -signal.SIGKILL:
                kills += 1
                continue
            check(rc == 0, "kills round %d: a restarted worker finishes (last at %s:%d)" % (rnd, stage, n),
                  err[-600:])
            break
        check(ckpt(c) >= target, "kills round %d: the checkpoint reached %d" % (rnd, target))
    check(kills >= 3, "kills: the worker was SIGKILLed %d times" % kills)
    check_pyramid("kills", c)


# --- 3: two workers at once on overlapping edits -----------------------------------------------
def test_two_workers():
    s = new_server("t")
    c = strata.Client(s.addr)
    procs = {n: ds(s.addr, "--follow", "--name", n, wait=False) for n in ("a", "b")}
    last = splits(c, s.addr, "two-workers", 8)
    t = time.monotonic()
    while time.monotonic() - t < 120 and min(ckpt(c, "a"), ckpt(c, "b")) < last:
        time.sleep(0.05)
    check(min(ckpt(c, "a"), ckpt(c, "b")) >= last, "two-workers: both checkpoints reach the last split")
    logs = {}
    for n, p in procs.items():
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=120)
        logs[n] = err.decode()
        check(p.returncode == 0, "two-workers: worker %s stops cleanly on SIGTERM" % n, logs[n][-600:])
    wa, wb = block_writes(logs["a"]), block_writes(logs["b"])
    print("two-workers: blocks written by a: %d, by b: %d" % (len(wa), len(wb)))
    check(wa or wb, "two-workers: the workers wrote blocks")
    check(not (wa & wb), "two-workers: no block written by both in one generation", repr(sorted(wa & wb))[:400])
    check(not list(c.locks()), "two-workers: no lock left")
    check_pyramid("two-workers", c)


# --- 4: a checkpoint the server cannot Watch from ----------------------------------------------
def test_unservable(s, c):
    # (retention, issue 17, gives NOT_FOUND for a generation no longer in history; until it
    # lands, a checkpoint newer than the store, as after restoring an older store, is the
    # from_generation the server cannot serve)
    key = (PREFIX + ".downsample/checkpoint/stale").encode()
    c.put(key, str(latest(c) + 1000).encode())
    rc, _, err = ds(s.addr, "--follow", "--name", "stale")
    check(rc == 1 and "--region all" in err and "--name stale" in err,
          "unservable: the worker fails telling the operator to run --region over the whole volume",
          err[-600:])
    splits(c, s.addr, "unservable", 1)
    rc, _, err = ds(s.addr, "--region", "all", "--name", "stale")
    check(rc == 0, "unservable: --region all succeeds", err[-600:])
    check(ckpt(c, "stale") <= latest(c), "unservable: --region all reset the checkpoint to a served generation")
    check_pyramid("unservable", c)
    rc, _, err = ds(s.addr, "--until", str(latest(c)), "--name", "stale")
    check(rc == 0, "unservable: the worker resumes after the repair", err[-600:])


# --- 5: --store: mip 0 read from the OCDBT files, the rest through the server -----------------
def store_reads(err):
    """(direct, via_server) of a worker's event=store_reads line, or None."""
    m = re.search(r"event=store_reads url=\S+ direct=(\d+) via_server=(\d+)", err)
    return (int(m.group(1)), int(m.group(2))) if m else None


def test_direct_reads():
    s = new_server("d")
    c = strata.Client(s.addr)
    store = os.path.join(s.data_dir, "kv")
    last = splits(c, s.addr, "direct", 4)
    t = time.monotonic()
    while c.stats().store.published_generation < last and time.monotonic() - t < 60:
        time.sleep(0.01)
    check(c.stats().store.published_generation >= last, "direct: the splits are published")
    rc, _, err = ds(s.addr, "--until", str(latest(c)), "--store", store)
    check(rc == 0 and "event=store url=%s" % store in err, "direct: --until with --store exits 0", err[-600:])
    r = store_reads(err)
    check(r is not None and r[0] > 0 and r[1] == 0,
          "direct: every block's mip 0 came from the OCDBT files, none through the server", r)
    check_pyramid("direct", c)
    # a server that publishes only every 10 minutes: the edits are not in the files, so
    # the worker reads them through the server and the pyramid is still exact
    s.stop()
    s.extra = ["--publish-interval-ms", "600000"]
    s.start()
    c = strata.Client(s.addr)
    splits(c, s.addr, "direct unpublished", 2)
    check(c.stats().store.published_generation < latest(c), "direct: the new edits are not published")
    rc, _, err = ds(s.addr, "--until", str(latest(c)), "--store", store)
    r = store_reads(err)
    check(rc == 0 and r is not None and r[1] > 0,
          "direct: blocks of unpublished generations are read through the server", (r, err[-600:]))
    check_pyramid("direct unpublished", c)
    # a --store that is not the store: refused at start, nothing written
    before = latest(c)
    for bad, want in ((os.path.join(TMP, "no-such-dir"), "no directory"), (TMP, "is not a database")):
        rc, _, err = ds(s.addr, "--until", str(latest(c)), "--store", bad)
        check(rc == 1 and "--store %s" % bad in err and want in err and latest(c) == before
              and not os.path.exists(os.path.join(TMP, "no-such-dir")),
              "direct: --store %s is refused (%s), nothing committed or created" % (os.path.basename(bad), want),
              err[-400:])


# --- 6: slow blocks: the rows held meanwhile stay held --------------------------------------
def test_slow_blocks():
    """Every block's compute stalled past the lock's TTL: while block i is computed the
    worker already holds block i+1's row (taken ahead with its stamp and mip 0), and both
    rows outlive the stall only because the renewal covers both. The run must finish with
    every block committed under its fence, no renewal failure, no lock left."""
    s = new_server("slow")
    c = strata.Client(s.addr)
    splits(c, s.addr, "slow", 2)
    argv = [DS, "--addr", s.addr, "--prefix", PREFIX, "--ttl-ms", "600", "--region", "all"]
    rc, _, err = run(argv, env={"STRATA_DOWNSAMPLE_STALL": "computed:1000"})
    blocks = re.findall(r"event=block gen=\d+ block=(\S+)", err)
    check(rc == 0 and "renew_failed" not in err, "slow: --region all with each compute stalled 1 s past "
          "the 600 ms TTL exits 0 with no renewal failure", err[-800:])
    check(len(blocks) == 4 and len(set(blocks)) == 4, "slow: all 4 blocks committed, each once", blocks)
    check(not list(c.locks()), "slow: no lock left")
    check_pyramid("slow", c)


try:
    s1, c1 = test_after_splits()
    test_slow_blocks()
    test_direct_reads()
    test_unservable(s1, c1)
    test_kills()
    test_two_workers()
finally:
    for s in servers:
        s.stop()
    shutil.rmtree(TMP, ignore_errors=True)
sys.exit(report(T0))
