#!/usr/bin/python3
"""strata-populate against a real strata-server (issue 12): end to end with 4 writer
processes, crashes (writers SIGKILLed at every stage, the server SIGKILLed mid-populate),
two runs racing over one volume, and bad input. Every read-back goes through the
server (Kv.List/Get, Watch, Admin.Check) and is compared with the source files read
here, not with anything the tool reports.

Environment: STRATA_SERVER_BIN, POPULATE_BIN, GENVOL_BIN, STRATACTL_BIN, PYTHONPATH (the strata
package, make python), STRATA_SEED (default: time; printed)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from popcommon import (Server, admin, check, dump, expected_markers, finish, genvol,
                       kill_server_when, populate, report, rng, seed, source_files,
                       wait_writers_ended)

import strata  # noqa: E402

CTL = os.environ["STRATACTL_BIN"]

PREFIX = "seg/"
BLOCK = 2
SEED = seed()
R = rng(SEED)
T0 = time.time()
TMP = tempfile.mkdtemp(prefix="strata-populate-test-")
servers = []


def new_server(name, extra=()):
    s = Server(os.path.join(TMP, name), extra)
    servers.append(s)
    return s


def chunk_items(files):
    return {(PREFIX + k).encode(): v for k, v in files.items()}


def check_db_equals_source(tag, db, files, markers):
    want = chunk_items(files)
    got_chunks = {k: v for k, v in db.items() if not k.startswith((PREFIX + ".populated/").encode())}
    missing = [k for k in want if k not in got_chunks]
    extra = [k for k in got_chunks if k not in want]
    differ = [k for k in want if k in got_chunks and got_chunks[k] != want[k]]
    check(not missing and not extra and not differ,
          "%s: every chunk of every scale and the info read back byte-identical" % tag,
          "missing %s extra %s differ %s" % (missing[:3], extra[:3], differ[:3]))
    got_markers = {k.decode()[len(PREFIX + ".populated/"):]
                   for k in db if k.startswith((PREFIX + ".populated/").encode())}
    check(got_markers == markers | {"meta"}, "%s: one marker per task, and the meta" % tag,
          "missing %s extra %s" % (sorted(markers - got_markers)[:5],
                                   sorted(got_markers - markers - {"meta"})[:5]))


def check_store(tag, c, addr, expect_gc_removed=None):
    ck = admin(c, "Check")
    check(ck.errors_total == 0 and ck.missing_files == 0,
          "%s: Admin.Check: no errors, no missing file" % tag, str(ck)[:800])
    gc = admin(c, "Gc")
    if expect_gc_removed:
        check(gc.files_removed > 0, "%s: gc removed the files the crashes left" % tag, str(gc))
    ck = admin(c, "Check")
    check(ck.unreferenced_files == 0 and ck.missing_files == 0 and ck.errors_total == 0,
          "%s: after gc, Admin.Check reports 0 unreferenced files, 0 missing" % tag, str(ck)[:800])
    r = subprocess.run([CTL, "--addr", addr, "--json", "check"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    try:
        j = json.loads(r.stdout)
    except ValueError:
        j = {}
    check(r.returncode == 0 and j.get("orphans") == 0 and j.get("missing_files") == 0 and
          j.get("errors_total") == 0, "%s: stratactl check exits 0: 0 orphans, 0 missing" % tag,
          "rc %d %r %r" % (r.returncode, r.stdout[:400], r.stderr[:400]))
    return gc


# --- a: end to end, 4 writer processes -----------------------------------------------------
def test_end_to_end(src, files, markers):
    s = new_server("e2e")
    r = populate(src, PREFIX, s.addr, "--workers", "4", "--block", str(BLOCK))
    j = r["json"] or {}
    check(r["rc"] == 0 and j.get("done") == len(markers) and j.get("failed") == 0,
          "e2e: populate exits 0 with every task done", repr(r)[:1500])
    with strata.Client(s.addr, timeout=120) as c:
        db = dump(c, PREFIX)
        check_db_equals_source("e2e", db, files, markers)
        one = sorted(k for k in chunk_items(files) if b"/" in k[len(PREFIX):])[0]
        check(c.get(one).value == chunk_items(files)[one], "e2e: Kv.Get of a chunk reads its bytes")
        bodies = [json.loads(db[(PREFIX + ".populated/" + m).encode()]) for m in markers]
        check(all({"writer", "time", "chunks", "bytes"} <= set(b) for b in bodies),
              "e2e: markers carry writer, time, chunk count, bytes", repr(bodies[:2]))
        nchunks = sum(1 for k in files if k != "info")
        check(sum(b["chunks"] for b in bodies) == nchunks and
              sum(b["bytes"] for b in bodies) == sum(len(v) for k, v in files.items() if k != "info"),
              "e2e: the markers' chunk and byte counts add up to the source's")
        check_store("e2e", c, s.addr)
        before = c.latest().generation
        r2 = populate(src, PREFIX, s.addr, "--workers", "4", "--block", str(BLOCK))
        j2 = r2["json"] or {}
        check(r2["rc"] == 0 and j2.get("skipped") == len(markers) and j2.get("done") == 0 and
              c.latest().generation == before,
              "e2e: a rerun skips every task and commits nothing", repr(r2)[:800])
    s.stop()


# --- modes: standalone, and the store directory seen through another path --------------------
def test_modes(src, files, markers):
    s = new_server("standalone")
    r = populate(src, PREFIX, s.addr, "--workers", "3", "--block", str(BLOCK), "--standalone")
    check(r["rc"] == 0 and (r["json"] or {}).get("done") == len(markers),
          "standalone: populate exits 0 with every task done", repr(r)[:800])
    with strata.Client(s.addr, timeout=120) as c:
        check_db_equals_source("standalone", dump(c, PREFIX), files, markers)
        r = populate(src, PREFIX, s.addr, "--block", str(BLOCK))
        check(r["rc"] == 0 and (r["json"] or {}).get("skipped") == len(markers),
              "standalone: a coordinator-mode rerun resumes from its markers", repr(r)[:600])
    s.stop()

    # Tasks slower than the lease: the workers' renewals keep their writers alive.
    s = new_server("lease")
    r = populate(src, PREFIX, s.addr, "--workers", "4", "--block", str(BLOCK * 2), "--lease", "1000",
                 env={"STRATA_POPULATE_TASK_DELAY_MS": "1600"})
    check(r["rc"] == 0 and (r["json"] or {}).get("failed") == 0,
          "lease: tasks longer than the 1 s lease commit (the lease is renewed)", repr(r)[:800])
    s.stop()

    s = new_server("storedir")
    mnt = os.path.join(TMP, "mnt")
    os.symlink(os.path.join(s.data_dir, "kv"), mnt)
    r = populate(src, PREFIX, s.addr, "--workers", "2", "--block", str(BLOCK), "--store-dir",
                 os.path.join(TMP, "nowhere"))
    check(r["rc"] == 1 and os.path.join(TMP, "nowhere") in r["err"] and
          (r["json"] or {}).get("done") == 0,
          "store-dir: a store directory that is not there fails every task naming it",
          repr(r)[:600])
    r = populate(src, PREFIX, s.addr, "--workers", "2", "--block", str(BLOCK), "--store-dir", mnt)
    check(r["rc"] == 0 and (r["json"] or {}).get("done") == len(markers),
          "store-dir: workers write through another path to the store directory", repr(r)[:600])
    with strata.Client(s.addr, timeout=120) as c:
        check_db_equals_source("store-dir", dump(c, PREFIX), files, markers)
    s.stop()


# --- b: crashes ----------------------------------------------------------------------------
STAGES = ["before-write", "mid-write", "after-fsync", "after-register", "mid-commit", "after-commit"]


def test_crash(src, files, markers):
    ref = new_server("crash-ref")
    r = populate(src, PREFIX, ref.addr, "--workers", "4", "--block", str(BLOCK))
    check(r["rc"] == 0, "crash: the reference run completes", repr(r)[:800])
    with strata.Client(ref.addr, timeout=120) as c:
        ref_db = dump(c, PREFIX)
    ref.stop()

    s = new_server("crash")
    lease = ["--lease", "2000"]
    env_seed = {"STRATA_SEED": str(SEED)}
    # Writers SIGKILL themselves at each stage in turn, the first time they pass it: each
    # round touches at most one task per worker, so every stage meets unfinished tasks.
    for i, stage in enumerate(R.sample(STAGES, len(STAGES))):
        env = dict(env_seed, STRATA_SEED=str(SEED + i), STRATA_POPULATE_CRASH=stage)
        r = populate(src, PREFIX, s.addr, "--workers", "4", "--block", str(BLOCK), *lease, env=env)
        print("crash round %s: rc %d %s" % (stage, r["rc"], r["out"].strip()), flush=True)
        check(r["rc"] == 1 and (r["json"] or {}).get("workers_killed") == 4,
              "crash: at %s every worker died and the run exits 1" % stage, repr(r)[:600])
    # The server SIGKILLed mid-populate and restarted on the same data directory: the
    # workers retry UNAVAILABLE and finish. Tasks are slowed so the kill lands inside.
    p = populate(src, PREFIX, s.addr, "--workers", "2", "--block", str(BLOCK), *lease,
                 env=dict(env_seed, STRATA_POPULATE_TASK_DELAY_MS="30"), wait=False)
    with strata.Client(s.addr, timeout=120) as c:
        have = len(dump(c, PREFIX + ".populated/"))
    target = have + 1 + R.randrange(4)
    seen = kill_server_when(s, p, PREFIX, target)
    killed_mid = seen is not None and seen < len(markers) + 1
    r = finish(p)
    print("server-kill round: rc %d %s %s" % (r["rc"], r["out"].strip(), r["err"][-400:]), flush=True)
    check(killed_mid, "crash: the server was SIGKILLed while markers were still missing")
    check(r["rc"] == 0 and (r["json"] or {}).get("retries", 0) > 0,
          "crash: the populate the server died under retried and completed", repr(r)[:1200])
    r = populate(src, PREFIX, s.addr, "--workers", "4", "--block", str(BLOCK), *lease)
    check(r["rc"] == 0 and (r["json"] or {}).get("failed") == 0, "crash: the final rerun completes",
          repr(r)[:800])
    with strata.Client(s.addr, timeout=120) as c:
        db = dump(c, PREFIX)
        check_db_equals_source("crash", db, files, markers)
        mk = (PREFIX + ".populated/").encode()
        same = {k for k in ref_db if not k.startswith(mk)} == {k for k in db if not k.startswith(mk)} \
            and all(db.get(k) == v for k, v in ref_db.items() if not k.startswith(mk)) \
            and {k for k in ref_db if k.startswith(mk)} == {k for k in db if k.startswith(mk)}
        check(same, "crash: the database equals the run that never crashed (every key's value; "
              "markers by key, their bodies name the writer)")
        check(wait_writers_ended(c), "crash: the dead writers' leases end on the server clock")
        gc = check_store("crash", c, s.addr, expect_gc_removed=True)
        print("gc after crashes: %d files, %d bytes removed" % (gc.files_removed, gc.bytes_removed))
    s.stop()


# --- c: two runs racing --------------------------------------------------------------------
def test_race(src, files, markers):
    s = new_server("race")
    ps = [populate(src, PREFIX, s.addr, "--workers", "2", "--block", str(BLOCK), wait=False)
          for _ in range(2)]
    rs = [finish(p) for p in ps]
    js = [r["json"] or {} for r in rs]
    check(all(r["rc"] == 0 for r in rs), "race: both runs exit 0 (a lost task is no error)",
          repr(rs)[:1500])
    check(sum(j.get("done", 0) for j in js) == len(markers) and
          all(j.get("failed") == 0 for j in js),
          "race: the runs' done tasks add up to the tasks, none failed", repr(js))
    with strata.Client(s.addr, timeout=120) as c:
        db = dump(c, PREFIX)
        check_db_equals_source("race", db, files, markers)
        latest = c.latest().generation
        writes = {}
        for ev in c.watch(PREFIX.encode(), 0):
            for ch in ev.changes:
                writes[bytes(ch.key)] = writes.get(bytes(ch.key), 0) + 1
            if ev.version.generation >= latest:
                break
        twice = [k for k, n in writes.items() if n != 1]
        check(not twice and len(writes) == len(db),
              "race: every chunk and marker was committed exactly once (Watch from v0)",
              repr(twice[:5]))
        check_store("race", c, s.addr)
    s.stop()


# --- d: bad input --------------------------------------------------------------------------
def test_bad_input(src, files, markers):
    s = new_server("bad")
    with strata.Client(s.addr, timeout=120) as c:
        empty = os.path.join(TMP, "empty")
        os.mkdir(empty)
        r = populate(empty, PREFIX, s.addr)
        check(r["rc"] == 2 and os.path.join(empty, "info") in r["err"] and c.latest().generation == 0,
              "bad: a missing info is refused naming the file, nothing committed", repr(r)[:600])
        bad = os.path.join(TMP, "badjson")
        shutil.copytree(src, bad)
        open(os.path.join(bad, "info"), "w").write('{"type": "segmentation", ')
        r = populate(bad, PREFIX, s.addr)
        check(r["rc"] == 2 and os.path.join(bad, "info") in r["err"] and "JSON" in r["err"] and
              c.latest().generation == 0, "bad: malformed info JSON is refused naming the file",
              repr(r)[:600])
        info = json.load(open(os.path.join(src, "info")))
        info["scales"][1]["encoding"] = "jpeg"
        open(os.path.join(bad, "info"), "w").write(json.dumps(info))
        r = populate(bad, PREFIX, s.addr)
        check(r["rc"] == 2 and "scales[1].encoding" in r["err"] and c.latest().generation == 0,
              "bad: an unsupported encoding is refused naming the field", repr(r)[:600])

        short = os.path.join(TMP, "short")
        shutil.copytree(src, short)
        victim = sorted(k for k in files if k.startswith(json.load(open(os.path.join(src, "info")))
                                                        ["scales"][0]["key"] + "/"))[0]
        with open(os.path.join(short, victim), "r+b") as f:
            f.truncate(len(files[victim]) - 8)
        r = populate(short, PREFIX, s.addr, "--workers", "2", "--block", str(BLOCK))
        layer = 2 + BLOCK.bit_length() - 1
        victim_marker = PREFIX + ".populated/%d_0_0_0" % layer
        db = dump(c, PREFIX)
        check(r["rc"] == 1 and os.path.join(short, victim) in r["err"] and victim_marker in r["err"]
              and (r["json"] or {}).get("failed") == 1,
              "bad: a chunk of the wrong size fails its task, naming the file and the task",
              repr(r)[:800])
        check((PREFIX + victim).encode() not in db and victim_marker.encode() not in db and
              len([k for k in db if k.startswith((PREFIX + ".populated/").encode())]) == len(markers),
              "bad: nothing of the failed task is committed; every other task is")

        gen = c.latest().generation
        r = populate(src, PREFIX, s.addr, "--block", str(BLOCK * 2))
        check(r["rc"] == 2 and "block: recorded %d, this run %d" % (BLOCK, BLOCK * 2) in r["err"]
              and c.latest().generation == gen,
              "bad: a re-run with another block size is refused saying what differs", repr(r)[:600])
        other = os.path.join(TMP, "other")
        genvol(other, "64,64,24", "32,32,8", 2, SEED)
        r = populate(other, PREFIX, s.addr, "--block", str(BLOCK))
        check(r["rc"] == 2 and "scales: recorded 3, source has 2" in r["err"] and
              "scales[0].size" in r["err"] and "scales[0].chunk_size" in r["err"]
              and c.latest().generation == gen,
              "bad: a re-run from a volume of another layout is refused naming the fields",
              repr(r)[:600])
    s.stop()


def main():
    src = os.path.join(TMP, "vol")
    genvol(src, "96,80,40", "16,16,8", 3, SEED)
    files = source_files(src)
    markers = expected_markers(src, BLOCK)
    print("volume: %d files, %d bytes, %d tasks" % (len(files), sum(map(len, files.values())),
                                                    len(markers)), flush=True)
    try:
        for t in (test_end_to_end, test_modes, test_race, test_bad_input, test_crash):
            print("--", t.__name__, flush=True)
            try:
                t(src, files, markers)
            except Exception as e:  # a failed step fails the test, the others still run
                import traceback
                traceback.print_exc()
                check(False, "%s raised %r" % (t.__name__, e))
    finally:
        for s in servers:
            s.stop()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(TMP, ignore_errors=True)
    return report(T0)


if __name__ == "__main__":
    sys.exit(main())
