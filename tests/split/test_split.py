#!/usr/bin/python3
"""strata-split and stratactl op replay against real strata-servers (issue 13), on a volume
made by strata-genvol and loaded by strata-populate. The split is checked here from the
chunks read back through the server, independently of what the tool reports.

Environment: STRATA_SERVER_BIN, SPLIT_BIN, STRATACTL_BIN, POPULATE_BIN, GENVOL_BIN,
PYTHONPATH (the strata package), STRATA_SEED (default: time; printed)."""
import json
import os
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

SPLIT = os.environ["SPLIT_BIN"]
CTL = os.environ["STRATACTL_BIN"]
PREFIX = "seg/"
SIZE, CHUNK = 64, 32
SEED = seed()
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="strata-split-test-")
servers = []
STEPS = ["create", "root_lock", "chunk_locks", "read", "compute", "ids", "commit_before",
         "commit_after", "success"]
# Steps after which the op holds its chunk locks and is not SUCCESS: op stuck lists it.
STUCK = {"chunk_locks", "read", "compute", "ids", "commit_before", "commit_after"}
# Steps after which the op holds a scope: op replay completes it.
REPLAYABLE = STUCK | {"success"}


def new_server(name, src=None):
    return populated_server(TMP, name, servers, src or SRC, PREFIX)


def run(argv, env=None, wait=True):
    return run_tool(argv, "STRATA_SPLIT_DIE_AT", env, wait, timeout=300)


def split(addr, sv, src, sink, env=None, wait=True, extra=()):
    fmt = lambda pts: ";".join("%d,%d,%d" % tuple(p) for p in pts)
    return run([SPLIT, "--addr", addr, "--prefix", PREFIX, "--sv", str(sv), "--source", fmt(src),
                "--sink", fmt(sink), "--root-ttl-ms", "1000", "--wait-ms", "3000", "--json"] +
               list(extra), env, wait)


def ctl(addr, *args):
    return run([CTL, "--addr", addr] + list(args))


def chunk_names():
    g = SIZE // CHUNK
    return {(x, y, z): "%d-%d_%d-%d_%d-%d" % (x * CHUNK, x * CHUNK + CHUNK, y * CHUNK, y * CHUNK + CHUNK,
                                              z * CHUNK, z * CHUNK + CHUNK)
            for x in range(g) for y in range(g) for z in range(g)}


def volume(db):
    """{(x,y,z): label} of the whole mip-0 volume from a dump."""
    key = json.loads(db[(PREFIX + "info").encode()])["scales"][0]["key"]
    vol = {}
    for c, name in chunk_names().items():
        a = array("Q")
        a.frombytes(db[("%s%s/%s" % (PREFIX, key, name)).encode()])
        i = 0
        for z in range(CHUNK):
            for y in range(CHUNK):
                for x in range(CHUNK):
                    vol[(c[0] * CHUNK + x, c[1] * CHUNK + y, c[2] * CHUNK + z)] = a[i]
                    i += 1
    return vol


def connected(points):
    pts = set(points)
    if not pts:
        return False
    start = next(iter(pts))
    seen, todo = {start}, [start]
    while todo:
        x, y, z = todo.pop()
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                for dz in (-1, 0, 1):
                    n = (x + dx, y + dy, z + dz)
                    if n in pts and n not in seen:
                        seen.add(n)
                        todo.append(n)
    return len(seen) == len(pts)


def segmentation(db):
    return {k: v for k, v in db.items() if not k.startswith((PREFIX + ".").encode())}


def locks_of(c):
    return list(c.locks())


# --- the fixture: a generated volume and one supervoxel with two seeds -------------------------
SRC = os.path.join(TMP, "vol")
genvol(SRC, "%d,%d,%d" % (SIZE, SIZE, SIZE), "%d,%d,%d" % (CHUNK, CHUNK, CHUNK), 1, SEED,
       "--segments", "4")


def pick(vol):
    """The largest supervoxel touching chunk (0,0,0)'s far corner region, and seeds at the
    two ends of its voxels (smallest and largest x+y+z)."""
    count = {}
    for p, v in vol.items():
        if p[0] < CHUNK and p[1] < CHUNK and p[2] < CHUNK:
            count[v] = count.get(v, 0) + 1
    sv = max(sorted(count), key=lambda v: count[v])
    pts = sorted((p for p, v in vol.items() if v == sv), key=lambda p: (sum(p), p))
    return sv, [pts[0]], [pts[-1]], pts


def check_split(tag, before, after, res, sv, src, sink):
    vb, va = volume(before), volume(after)
    old = [p for p, v in vb.items() if v == sv]
    others_same = all(va[p] == v for p, v in vb.items() if v != sv)
    check(others_same, "%s: no voxel outside the supervoxel changed" % tag)
    new = {va[p] for p in old}
    ids = set(res["new_ids"]["source"]) | set(res["new_ids"]["sink"])
    check(new <= ids and sv not in new and not set(res["new_ids"]["source"]) & set(res["new_ids"]["sink"]),
          "%s: every voxel of the old supervoxel has exactly one new id" % tag, "%s vs %s" % (new, ids))
    side_src = [p for p in old if va[p] in res["new_ids"]["source"]]
    side_sink = [p for p in old if va[p] in res["new_ids"]["sink"]]
    check(len(side_src) + len(side_sink) == len(old) and side_src and side_sink,
          "%s: both sides non-empty and they partition the supervoxel" % tag)
    check(connected(side_src) and connected(side_sink), "%s: both sides are 26-connected" % tag)
    check(all(va[tuple(p)] in res["new_ids"]["source"] for p in src) and
          all(va[tuple(p)] in res["new_ids"]["sink"] for p in sink), "%s: seeds on their sides" % tag)
    changed = {k for k in segmentation(after) if segmentation(before).get(k) != after[k]}
    check(changed == {("%s%s/%s" % (PREFIX, res["scale"], n)).encode() for n in res["chunks_written"]},
          "%s: the chunks written are exactly the chunks that changed" % tag,
          "%s vs %s" % (sorted(changed), res["chunks_written"]))
    lin = [k for k in after if k.startswith(("%s.split/lineage/%d/" % (PREFIX, sv)).encode())]
    check(len(lin) == 1, "%s: one lineage record" % tag)
    if lin:
        l = json.loads(after[lin[0]])
        check(sorted(e["chunk"] for e in l["chunks"]) == sorted(res["chunks_written"]) and
              {e["source"] for e in l["chunks"] if e["source"]} == set(res["new_ids"]["source"]) and
              {e["sink"] for e in l["chunks"] if e["sink"]} == set(res["new_ids"]["sink"]),
              "%s: the lineage names every chunk written and its new ids" % tag, repr(l)[:400])


def check_commit_keys(tag, c, res):
    """The split's commit wrote the changed chunks, the lineage and the result, nothing else."""
    w = c.watch(PREFIX.encode(), from_generation=res["generation"] - 1)
    ev = next(w)
    w.close()
    keys = {bytes(ch.key) for ch in ev.changes}
    want = {("%s%s/%s" % (PREFIX, res["scale"], n)).encode() for n in res["chunks_written"]}
    extra = {k for k in keys - want if not k.startswith((PREFIX + ".split/").encode())}
    check(ev.version.generation == res["generation"] and want <= keys and not extra and
          len(keys - want) == 2, "%s: the one commit holds the changed chunks + lineage + result" % tag,
          repr(sorted(keys))[:600])


# --- a: an uncrashed split (the reference) -----------------------------------------------------
ref = new_server("ref")
with strata.Client(ref.addr, timeout=120) as c:
    before = dump(c, PREFIX)
    SV, SRCS, SINKS, PTS = pick(volume(before))
    print("sv=%d voxels=%d source=%s sink=%s" % (SV, len(PTS), SRCS, SINKS), flush=True)
    rc, out, err = split(ref.addr, SV, SRCS, SINKS)
    check(rc == 0, "split: exits 0", err[-1500:])
    RES = json.loads(out) if rc == 0 else {}
    check("step=chunk_locks" in err and "step=commit" in err and "step=done" in err,
          "split: key=value progress lines on stderr", err[-600:])
    REF = dump(c, PREFIX)
    if RES:
        check_split("split", before, REF, RES, SV, SRCS, SINKS)
        check_commit_keys("split", c, RES)
    check(not locks_of(c), "split: no lock left")
    op = c.get_op(RES.get("op", 1))
    check(op.status.name.endswith("SUCCESS") and not op.scope, "split: op SUCCESS, scope empty",
          repr(op)[:300])
    # refusals before anything is locked
    other = next(p for p, v in volume(before).items() if v != SV)
    for what, a, b in [("seed outside the supervoxel", SRCS, [other]),
                       ("same voxel on both sides", SRCS, SRCS),
                       ("seed outside the volume", SRCS, [(SIZE, 0, 0)])]:
        n_ops = len(list(c.ops()))
        rc, out, err = split(ref.addr, SV, a, b)
        check(rc == 2 and "refused" in err and len(list(c.ops())) == n_ops and not locks_of(c),
              "refusal (%s): exit 2, no op, no lock" % what, err[-400:])
    rc, out, err = run([SPLIT, "--addr", ref.addr, "--prefix", PREFIX, "--sv", str(SV), "--source",
                        "%d,%d,%d" % SRCS[0], "--sink", ""])
    check(rc == 2, "refusal (empty side): exit 2", err[-300:])
ref.stop()


# --- a2: a supervoxel spanning all 8 chunks (a ball painted into the generated volume),
# several seeds per side drawn from STRATA_SEED: new ids per chunk and side ---------------
import random  # noqa: E402
R = random.Random(SEED)
BALL = os.path.join(TMP, "ball-vol")
shutil.copytree(SRC, BALL)
BALL_ID = (1 << 56) | 1000  # layer 1, chunk 0,0,0, a segment genvol never uses
bkey = json.load(open(os.path.join(BALL, "info")))["scales"][0]["key"]
rad = R.randint(14, 22)
for (cx, cy, cz), name in chunk_names().items():
    path = os.path.join(BALL, bkey, name)
    a = array("Q")
    a.frombytes(open(path, "rb").read())
    for i in range(len(a)):
        x, y, z = cx * CHUNK + i % CHUNK, cy * CHUNK + (i // CHUNK) % CHUNK, cz * CHUNK + i // (CHUNK * CHUNK)
        if (x - 32) ** 2 + (y - 32) ** 2 + (z - 32) ** 2 < rad * rad:
            a[i] = BALL_ID
    open(path, "wb").write(a.tobytes())
s = new_server("ball", BALL)
with strata.Client(s.addr, timeout=120) as c:
    bbefore = dump(c, PREFIX)
    ball = [p for p, v in volume(bbefore).items() if v == BALL_ID]
    left = [p for p in ball if p[0] < 32 - rad // 2]
    right = [p for p in ball if p[0] > 32 + rad // 2]
    bsrc, bsink = R.sample(left, 2), R.sample(right, 3)
    print("ball radius=%d source=%s sink=%s" % (rad, bsrc, bsink), flush=True)
    rc, out, err = split(s.addr, BALL_ID, bsrc, bsink)
    check(rc == 0, "ball: a split across 8 chunks exits 0", err[-1200:])
    if rc == 0:
        bres = json.loads(out)
        check(len(bres["chunks_written"]) == 8 and len(bres["new_ids"]["source"]) >= 4 and
              len(bres["new_ids"]["sink"]) >= 4, "ball: 8 chunks written, one new id per chunk and side",
              out[:600])
        check_split("ball", bbefore, dump(c, PREFIX), bres, BALL_ID, bsrc, bsink)
        check_commit_keys("ball", c, bres)
    check(not locks_of(c), "ball: no lock left")
s.stop()

# --- b: crash at every step, then op stuck / op replay ----------------------------------------
def seg_equal(tag, got):
    a, b = segmentation(got), segmentation(REF)
    check(a == b, "%s: final segmentation equals the uncrashed run's, key for key" % tag,
          "differ: %s" % sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))[:4])


for step in STEPS:
    s = new_server("crash-" + step)
    with strata.Client(s.addr, timeout=120) as c:
        rc, out, err = split(s.addr, SV, SRCS, SINKS, env={"STRATA_SPLIT_DIE_AT": step})
        check(rc == -signal.SIGKILL, "crash %s: the worker died by SIGKILL there" % step, err[-400:])
        op = max(o.op_id for o in c.ops())
        r = ctl(s.addr, "--json", "op", "stuck")
        stuck = [o for o in json.loads(r[1] or "{}").get("ops", [])]
        listed = any(str(o.get("op")) == str(op) for o in stuck)
        check(r[0] == 0 and listed == (step in STUCK),
              "crash %s: op stuck %s it" % (step, "lists" if step in STUCK else "does not list"),
              r[1][:600])
        rr = ctl(s.addr, "op", "replay", str(op))
        if step in REPLAYABLE:
            check(rr[0] == 0, "crash %s: op replay completes it" % step, (rr[1] + rr[2])[-800:])
            seg_equal("crash " + step, dump(c, PREFIX))
        else:
            check(rr[0] == 1 and "no lock scope" in rr[2], "crash %s: op replay refuses (no scope)" % step,
                  rr[2][-400:])
            check(segmentation(dump(c, PREFIX)) == segmentation(before),
                  "crash %s: nothing was written" % step)
            # a fresh worker then does the split (waiting out the dead one's root lock)
            rc, out, err = split(s.addr, SV, SRCS, SINKS)
            check(rc == 0, "crash %s: a new worker splits after the root lock's TTL" % step, err[-600:])
            seg_equal("crash %s then rerun" % step, dump(c, PREFIX))
        check(not locks_of(c), "crash %s: no lock left" % step, repr(locks_of(c))[:300])
        st = c.get_op(op).status.name
        check(step not in REPLAYABLE or st.endswith("SUCCESS"), "crash %s: the op is SUCCESS" % step, st)
        rr = ctl(s.addr, "op", "replay", str(op))
        check(rr[0] == 1 and "refused" in rr[2], "crash %s: a second replay refuses" % step, rr[2][-300:])
    s.stop()

# --- b2: a replay after an operator freed one of the op's rows refuses, naming it ----------
s = new_server("released-row")
with strata.Client(s.addr, timeout=120) as c:
    rc, out, err = split(s.addr, SV, SRCS, SINKS, env={"STRATA_SPLIT_DIE_AT": "read"})
    op = max(o.op_id for o in c.ops())
    row = bytes(c.get_op(op).scope[-1])
    r = ctl(s.addr, "lock", "release", "--privileged", "0x" + row.hex())
    check(r[0] == 0, "released-row: an operator frees one scope row", r[2][-300:])
    gen0 = c.latest().generation
    rr = ctl(s.addr, "op", "replay", str(op))
    check(rr[0] == 1 and "refused" in rr[2] and row.hex() in rr[2],
          "released-row: op replay refuses, naming the row", rr[2][-500:])
    check(c.latest().generation == gen0 and segmentation(dump(c, PREFIX)) == segmentation(before),
          "released-row: nothing was written")
s.stop()

# --- c: a worker paused past its root lock's TTL cannot commit --------------------------------
s = new_server("sigstop")
with strata.Client(s.addr, timeout=120) as c:
    p = split(s.addr, SV, SRCS, SINKS, env={"STRATA_SPLIT_STOP_AT": "commit_before"}, wait=False)
    # the worker stops itself (SIGSTOP) just before its commit; wait for that, then let
    # the root lock run out on the server's clock (observed, not slept)
    while True:
        st = open("/proc/%d/stat" % p.pid).read().split(")")[-1].split()[0]
        if st == "T" or p.poll() is not None:
            break
        time.sleep(0.01)
    gen0 = c.latest().generation
    while any(l.kind.name.endswith("TEMPORAL") for l in c.locks()) and \
            not any(l.kind.name.endswith("TEMPORAL") for l in c.locks(expired_only=True)):
        time.sleep(0.05)
    p.send_signal(signal.SIGCONT)
    out, err = p.communicate(timeout=300)
    check(p.returncode == 1 and "Kv.Commit" in err.decode(),
          "sigstop: the commit is rejected once the root lock expired", err.decode()[-600:])
    check(c.latest().generation == gen0 and segmentation(dump(c, PREFIX)) == segmentation(before),
          "sigstop: nothing was written")
    check(not locks_of(c), "sigstop: the worker released its locks")
s.stop()

# --- d: overlapping workers serialize; disjoint ones all commit -------------------------------
s = new_server("concurrent")
with strata.Client(s.addr, timeout=120) as c:
    p1 = split(s.addr, SV, SRCS, SINKS, env={"STRATA_SPLIT_STOP_AT": "read"}, wait=False,
               extra=["--root-ttl-ms", "60000"])
    while open("/proc/%d/stat" % p1.pid).read().split(")")[-1].split()[0] != "T" and p1.poll() is None:
        time.sleep(0.01)
    holder = max(o.op_id for o in c.ops())
    rc, out, err = split(s.addr, SV, SRCS, SINKS, extra=["--wait-ms", "300", "--root-ttl-ms", "60000"])
    check(rc == 1 and ("op %d" % holder) in err, "overlap: the second worker fails naming the holder op",
          err[-600:])
    p1.send_signal(signal.SIGCONT)
    o1, e1 = p1.communicate(timeout=300)
    check(p1.returncode == 0, "overlap: the first worker commits", e1.decode()[-400:])
    seg_equal("overlap", dump(c, PREFIX))
s.stop()

# a 192x32x32 volume: supervoxels at x-chunks 0 and 5 lock chunks 0..1 and 4..5
WIDE = os.path.join(TMP, "wide")
genvol(WIDE, "192,32,32", "32,32,32", 1, SEED + 1, "--segments", "4")
s = new_server("disjoint", WIDE)
with strata.Client(s.addr, timeout=120) as c:
    info = json.loads(open(os.path.join(WIDE, "info")).read())
    key = info["scales"][0]["key"]
    jobs = []
    for cx in (0, 5):
        a = array("Q")
        a.frombytes(open(os.path.join(WIDE, key, "%d-%d_0-32_0-32" % (cx * 32, cx * 32 + 32)), "rb").read())
        v = a[0]
        pts = [(cx * 32 + i % 32, (i // 32) % 32, i // 1024) for i in range(len(a)) if a[i] == v]
        pts.sort(key=lambda p: (sum(p), p))
        jobs.append((v, [pts[0]], [pts[-1]]))
    procs = [split(s.addr, v, a, b, wait=False, extra=["--wait-ms", "0"]) for v, a, b in jobs]
    res = [p.communicate(timeout=300) for p in procs]
    check(all(p.returncode == 0 for p in procs), "disjoint: every worker commits at once (no wait)",
          repr([r[1][-300:] for r in res]))
    check(not locks_of(c), "disjoint: no lock left")
s.stop()

shutil.rmtree(TMP, ignore_errors=True)
report(T0)
