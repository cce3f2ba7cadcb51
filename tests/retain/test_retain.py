#!/usr/bin/python3
"""History retention and GC against a real strata-server (server/README.md "Retention").

- pins: an op's base generation, a live (stalled) watcher's position and a hold survive
  every retention setting; reads of dropped versions are OUT_OF_RANGE naming the oldest
  retained generation; once the pin goes, the version goes.
- kill: kill -9 of the server at random points while GC removes files, repeatedly: each
  restart opens, `stratactl check` verifies every retained version (no error, no missing
  file), the data reads as written, and GC completes at the end (nothing left unreferenced).

Environment: STRATA_SERVER_BIN, STRATACTL_BIN, PYTHONPATH with the strata package;
STRATA_SEED (printed). Prints the cmocka-style lines tests/run-tier.sh counts.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "stratactl"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "populate"))
from tier_report import check, report  # noqa: E402

# The server helper of tests/populate (start, kill -9, restart on the same port); its
# module wants the populate tools' paths, which these tests do not use.
os.environ.setdefault("POPULATE_BIN", "")
os.environ.setdefault("GENVOL_BIN", "")
from popcommon import Server  # noqa: E402

import strata  # noqa: E402
from strata.errors import OutOfRange  # noqa: E402
from strata.pins import Generation  # noqa: E402
from strata.types import OpStatus  # noqa: E402

SERVER = os.environ["STRATA_SERVER_BIN"]
CTL = os.environ["STRATACTL_BIN"]


def ctl(addr, *args):
    p = subprocess.run([CTL, "--addr", addr, "--json"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=600)
    try:
        j = json.loads(p.stdout.decode())
    except ValueError:
        j = None
    return p.returncode, j, p.stderr.decode()


def wait_published(addr, gen, limit_s=60):
    """Waits until the OCDBT files show generation gen: GC walks the newest published
    manifest, so what a later commit dropped is reclaimable only once that commit's
    batch is published (25 ms after its first commit by default)."""
    deadline = time.time() + limit_s
    while time.time() < deadline:
        rc, j, err = ctl(addr, "stats")
        if rc == 0 and j["store"]["published_generation"] >= gen:
            return True
        time.sleep(0.02)
    return False


def read_err(c, key, gen):
    try:
        c.get(key, at=Generation(gen))
        return None
    except OutOfRange as e:
        return str(e)


def test_pins(root):
    srv = Server(os.path.join(root, "pins"), ["--gc-grace", "0", "--gc-interval", "0"])
    c = strata.Client(srv.addr)
    try:
        for i in range(20):
            c.put(b"k%d" % (i % 3), b"v%d" % i)
        op = c.create_op("alice", "edit")
        base = op.start_generation
        check(base == 20, "the op's base is the latest generation", base)
        # A watcher that stalls: each generation changes 64 KiB keys under its prefix, far
        # more than gRPC's flow-control window, and the client reads nothing for a while.
        big = [b"w/" + (b"%04d" % j) * 16 + b"x" * 900 for j in range(64)]
        for i in range(10):
            c.commit(puts={k: b"%d" % i for k in big})
        watch = c.watch(prefix=b"w/", from_generation=21)
        first = next(watch)  # the stream is open; the server sends ahead until blocked
        check(first.version.generation == 22, "the watch starts after generation 21",
              first.version.generation)
        for i in range(10):
            c.commit(puts={k: b"%d" % (i + 10) for k in big})
        hold_gen = 25
        rc, j, err = ctl(srv.addr, "retention", "hold", "v%d" % hold_gen, "--reason", "test hold")
        check(rc == 0 and j["holds"][0]["reason"] == "test hold", "retention hold", err)
        rc, j, err = ctl(srv.addr, "retention", "set", "--keep-versions", "1")
        check(rc == 0 and j["policy"] == "keep-versions" and j["keep_versions"] == 1,
              "retention set --keep-versions 1", err)
        check(j["oldest_op_base"] == base, "retention show names the op's base",
              j["oldest_op_base"])
        check(j["oldest_watcher"] >= 21, "retention show names the watcher's position",
              j["oldest_watcher"])
        for i in range(5):
            c.put(b"k0", b"after%d" % i)
        latest = c.latest().generation
        rc, j, err = ctl(srv.addr, "retention", "show")
        oldest = j["retained"]["oldest_generation"]
        check(1 < oldest <= base, "versions below the op's base were dropped", oldest)
        check(c.get(b"k1", at=Generation(base)).value == b"v19", "the op's base reads as written")
        check(c.get(b"k0", at=Generation(hold_gen)).value == b"v18", "the held version reads")
        e = read_err(c, b"k0", oldest - 1)
        check(e is not None and ("generation %d" % oldest) in e,
              "a dropped version is OUT_OF_RANGE naming the oldest retained", e)
        # The stalled watcher resumes and gets every generation, in order.
        gens = [first.version.generation]
        for ev in watch:
            gens.append(ev.version.generation)


            if ev.version.generation >= 40:
                break
        check(gens == list(range(22, 41)), "the watcher got generations 22..40 in order", gens)
        watch.close()
        # Pins gone: the op succeeds, the hold is released, the watch ended.
        c.set_status(op.op_id, OpStatus.SUCCESS)
        ctl(srv.addr, "retention", "release", "v%d" % hold_gen)
        rc, j, err = ctl(srv.addr, "retention", "show")
        check(j["oldest_op_base"] == 0 and j["holds"] == [], "no pins left", j)
        c.put(b"k0", b"last")
        latest = c.latest().generation
        rc, j, err = ctl(srv.addr, "retention", "show")
        check(j["retained"]["oldest_generation"] == latest - 1 or
              j["retained"]["oldest_generation"] == latest,
              "with the pins gone keep-versions 1 keeps the latest (and at most one more)", j)
        check(read_err(c, b"k1", base) is not None, "the op's base is dropped once it succeeded")
        # A watch from a dropped generation is refused with OUT_OF_RANGE.
        try:
            next(c.watch(from_generation=base))
            check(False, "a watch from a dropped generation is refused")
        except OutOfRange as e:
            check("outside the retained history" in str(e), "a watch from a dropped generation is "
                  "OUT_OF_RANGE", str(e))
        # GC reclaims the dropped versions' files once the batch that dropped them is
        # published; the store verifies.
        check(wait_published(srv.addr, latest), "the last commit's batch is published")
        rc, j, err = ctl(srv.addr, "gc")
        check(rc == 0 and j["own_files_removed"] > 0, "gc removes the dropped versions' files", j)
        rc, j, err = ctl(srv.addr, "gc", "--status")
        check(rc == 0 and j["files_removed"] > 0 and j["runs"] >= 1, "gc --status shows progress", j)
        rc, j, err = ctl(srv.addr, "check")
        check(rc == 0 and j["errors_total"] == 0 and j["missing_files"] == 0, "check after GC", err)
        # The policy is persisted.
        c.close()
        srv.stop()
        srv.start()
        c = strata.Client(srv.addr)
        rc, j, err = ctl(srv.addr, "retention", "show")
        check(j["policy"] == "keep-versions" and j["keep_versions"] == 1,
              "the policy survives a restart", j)
        rc, j, err = ctl(srv.addr, "retention", "set", "--keep-all")
        check(rc == 0 and j["policy"] == "keep-all", "retention set --keep-all", err)
        rc, j, err = ctl(srv.addr, "retention", "hold", "v1")
        check(rc != 0 and "OUT_OF_RANGE" in err, "holding a dropped version is refused", err)
    finally:
        c.close()
        srv.stop()


def test_kill(root, rnd):
    srv = Server(os.path.join(root, "kill"), ["--gc-grace", "0", "--gc-interval", "0",
                                              "--no-commit-log"])
    model = {}
    killed_in_gc = 0
    rounds = int(os.environ.get("STRATA_RETAIN_KILLS", "8"))
    try:
        c = strata.Client(srv.addr)
        ctl(srv.addr, "retention", "set", "--keep-versions", "3")
        c.close()
        for r in range(rounds):
            c = strata.Client(srv.addr)
            for i in range(120):  # one data file per commit: many files to remove
                k = b"key%03d" % rnd.randrange(40)
                v = bytes([rnd.randrange(256)]) * rnd.choice([10, 400, 3000])
                c.put(k, v)
                model[k] = v
            c.close()
            gc = subprocess.Popen([CTL, "--addr", srv.addr, "gc"], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
            time.sleep(rnd.random() * 0.03)  # a random point, not a synchronisation
            srv.kill()
            gc.communicate(timeout=120)
            killed_in_gc += gc.returncode != 0
            srv.start()
            rc, j, err = ctl(srv.addr, "check")
            check(rc == 0 and j and j["errors_total"] == 0 and j["missing_files"] == 0,
                  "round %d: the store opens and verifies after kill -9 during GC" % r, err + str(j))
            c = strata.Client(srv.addr)
            bad = [k for k, v in model.items() if c.get(k).value != v]
            check(not bad, "round %d: every key reads as last written" % r, bad[:5])
            c.close()
        # The floor is recomputed every second; setting the policy applies it at once,
        # and the next commit drops everything but the last 3 versions.
        ctl(srv.addr, "retention", "set", "--keep-versions", "3")
        c = strata.Client(srv.addr)
        c.put(b"key000", model.get(b"key000", b""))
        last = c.latest().generation
        c.close()
        check(wait_published(srv.addr, last), "the batch that dropped them is published")
        rc, j, err = ctl(srv.addr, "gc")
        check(rc == 0, "GC completes after the kills", err)
        rc, j, err = ctl(srv.addr, "gc", "--dry-run")
        check(rc == 0 and j["own_files_removed"] == 0 and j["own_files_waiting"] == 0,
              "nothing unreferenced is left after GC", j)
        rc, j, err = ctl(srv.addr, "check")
        check(rc == 0 and j["errors_total"] == 0, "the final check", err)
        n = len([f for f in os.listdir(os.path.join(srv.data_dir, "kv", "d")) if len(f) == 32])
        # the last 3 versions reference at most one file per key (its out-of-line value
        # or the leaf) plus their own 3 files
        check(n <= 40 + 3, "keep-versions 3 leaves at most one data file per key plus 3", n)
        print("kills that hit a GC in progress: %d of %d" % (killed_in_gc, rounds))
    finally:
        srv.stop()


def main():
    t0 = time.time()
    seed = int(os.environ.get("STRATA_SEED", str(int(time.time()))))
    print("STRATA_SEED=%d" % seed, flush=True)
    root = tempfile.mkdtemp(prefix="strata-retain-")
    try:
        test_pins(root)
        test_kill(root, random.Random(seed))
    finally:
        if not os.environ.get("KEEP"):
            shutil.rmtree(root, ignore_errors=True)
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
