#!/usr/bin/python3
"""Strata on GlusterFS (issue 19, part 1): Debian's GlusterFS on loopback (glusterlo.py),
once with one brick and once with `replica 2`, each volume mounted twice (mount A and mount
B stand in for two machines). On each:

- a real strata-server keeps its OCDBT files on mount A (`--data-url A/...` with the
  commit log and lock table on local disk when the server has that flag, else its whole
  `--data-dir` on A);
- coordinator-mode `strata-populate` writers write their data files through mount B
  (`--store-dir`, the store directory as mount B shows it) while 4 client threads put
  unique keys and record every acknowledged commit;
- the server, the writers, or both are SIGKILLed at random points (STRATA_SEED) and
  restarted; a last populate completes;
- then: every chunk of the source volume reads back byte-identical with one marker per
  task, every acknowledged put is there, Admin.Check finds no error or missing file, and
  after the dead writers' leases end `stratactl gc` (server --gc-grace 1) leaves
  `stratactl check` with 0 orphans; on replica 2 both bricks hold the same store files;
- a second strata-server on mount B pointed at the same store is refused while the first
  runs;
- machine loss: store and commit log (`--log-dir`) on mount A, publication held back, the
  server SIGKILLed and its data directory deleted: a new server through mount B has every
  acknowledged put.

Gluster's start, stop and any failure to start are reported as checks: a machine where
Gluster cannot run FAILS this tier, naming the reason.

Environment: STRATA_SERVER_BIN, POPULATE_BIN, GENVOL_BIN, STRATACTL_BIN, PYTHONPATH (the
strata package), STRATA_SEED (default: time; printed), KEEP_TMP=1 keeps the scratch dir."""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "populate"))
from popcommon import (Server, admin, check, dump, expected_markers, finish, genvol,  # noqa: E402
                       populate, report, rng, seed, source_files, wait_writers_ended)
from glusterlo import Gluster, GlusterError, version  # noqa: E402

import strata  # noqa: E402
from strata.errors import StrataError  # noqa: E402

SERVER = os.environ["STRATA_SERVER_BIN"]
CTL = os.environ["STRATACTL_BIN"]
PREFIX = "seg/"
BLOCK = 1
LOAD_THREADS = 4
SEED = seed()
R = rng(SEED)
T0 = time.time()


def server_has(flag):
    out = subprocess.run([SERVER, "--help"], stdout=subprocess.PIPE, timeout=60).stdout.decode()
    return flag in out


DATA_URL = server_has("--data-url")


def ctl(addr, *args):
    """stratactl --json ARGS: (exit status, the JSON answer or None, what it printed)."""
    p = subprocess.run([CTL, "--addr", addr, "--json", *args], capture_output=True, timeout=600)
    out = p.stdout.decode()
    return p.returncode, json.loads(out) if out.lstrip().startswith("{") else None, \
        p.stderr.decode() + out[:400]


class Load:
    """LOAD_THREADS threads put unique keys load/<t>/<i> until stopped; acked holds every
    (key, value) whose commit returned. A failed call (the server is down) is not
    acknowledged: the thread takes a new channel and goes on with the next key."""

    def __init__(self, server):
        self.server, self.acked, self.failed = server, [], 0
        self.stop_ev = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(t,)) for t in range(LOAD_THREADS)]
        for t in self.threads:
            t.start()

    def run(self, t):
        i = 0
        c = None
        while not self.stop_ev.is_set():
            key, value = b"load/%d/%06d" % (t, i), b"%d:%d:%d" % (t, i, SEED)
            i += 1
            try:
                if c is None:
                    c = strata.Client(self.server.addr, timeout=10)
                c.put(key, value)
                self.acked.append((key, value))
            except Exception:  # UNAVAILABLE, a deadline, a refused channel: not acked
                self.failed += 1
                if c is not None:
                    c.close()
                    c = None
                time.sleep(0.05)
        if c is not None:
            c.close()

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join()


def killpg(p):
    """SIGKILL strata-populate and its forked writers (their own process group)."""
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    p.communicate()


def db_matches_source(tag, db, files, markers):
    want = {(PREFIX + k).encode(): v for k, v in files.items()}
    mk = (PREFIX + ".populated/").encode()
    got = {k: v for k, v in db.items() if not k.startswith(mk)}
    bad = [k for k in want if got.get(k) != want[k]] + [k for k in got if k not in want]
    check(not bad, "%s: every chunk of every scale and the info read back byte-identical" % tag,
          "%d wrong, e.g. %r" % (len(bad), bad[:3]))
    got_markers = {k[len(mk):].decode() for k in db if k.startswith(mk)}
    check(got_markers == markers | {"meta"}, "%s: one marker per task, and the meta" % tag,
          "missing %s extra %s" % (sorted(markers - got_markers)[:5],
                                   sorted(got_markers - markers - {"meta"})[:5]))


def gc_until_clean(addr, limit_s=60):
    """stratactl gc until stratactl check finds no orphan: the server's --gc-grace (1 s)
    counts from the pass that first found a file unreferenced. Returns the last check."""
    t0 = time.monotonic()
    removed = 0
    while True:
        rc, j, err = ctl(addr, "gc")
        check_ok = rc == 0
        if j:
            removed += j.get("files_removed", 0) + j.get("own_files_removed", 0)
        rc2, ck, err2 = ctl(addr, "check")
        if (ck and ck.get("orphans") == 0) or time.monotonic() - t0 > limit_s or not check_ok:
            return rc, rc2, ck, removed, err + err2
        time.sleep(0.3)


def second_server(tag, args):
    """Starts a strata-server with args (the running server's store through mount B) and
    checks it is refused: it exits non-zero naming the lock before it serves. One that
    gets to event=ready is SIGKILLed at once."""
    log = tempfile.TemporaryFile()
    p = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0"] + args, stdout=subprocess.DEVNULL,
                         stderr=log)
    t0 = time.monotonic()
    ready = False
    while p.poll() is None and time.monotonic() - t0 < 60:
        log.seek(0)
        if b"event=ready" in log.read():
            ready = True
            break
        time.sleep(0.05)
    if p.poll() is None:
        p.kill()
    p.wait()
    log.seek(0)
    err = log.read().decode(errors="replace").strip()
    print("%s: a second server on mount B: %s, exit %d: %s"
          % (tag, "SERVED (event=ready)" if ready else "not ready", p.returncode, err[-700:]),
          flush=True)
    check(not ready and p.returncode != 0 and ("in use" in err or "open for writing" in err),
          "%s: a second strata-server on mount B over the same store is refused" % tag,
          "%s exit %d: %s" % ("it served;" if ready else "", p.returncode, err[-400:]))


def machine_loss(g, tag):
    """The deployment shape that survives losing the server's machine: OCDBT files and the
    commit log (`--log-dir`) on the volume through mount A, publication held back (10 min)
    so that acknowledged commits exist only in the log. The server is SIGKILLed under the
    put load and its data directory deleted; a new server on another data directory opens
    the same store and log through mount B: every acknowledged put is there."""
    a, b = g.mounts
    lost, new = (tempfile.mkdtemp(prefix="strata-gluster-%s-" % w) for w in ("lost", "new"))
    s = Server(os.path.join(lost, "db"), ["--data-url", os.path.join(a, "ml-store"), "--log-dir",
                                          os.path.join(a, "ml-log"), "--publish-interval-ms",
                                          "600000", "--grace-ms", "0"])
    load = Load(s)
    s2 = None
    try:
        while len(load.acked) < 200:
            time.sleep(0.05)
        rc, st, err = ctl(s.addr, "stats")
        s.kill()
        load.stop()
        shutil.rmtree(lost)
        published = (st or {}).get("store", {}).get("published_generation", -1)
        check(rc == 0 and 0 <= published < 200,
              "%s, machine loss: acknowledged commits only in the log at the kill" % tag,
              "published generation %r: %s" % (published, err))
        s2 = Server(os.path.join(new, "db"), ["--data-url", os.path.join(b, "ml-store"),
                                              "--log-dir", os.path.join(b, "ml-log")])
        with strata.Client(s2.addr, timeout=60) as c:
            got = dump(c, "load/")
        lost_keys = [k for k, v in load.acked if got.get(k) != v]
        check(not lost_keys, "%s, machine loss: a new server through mount B has all %d "
              "acknowledged puts" % (tag, len(load.acked)),
              "%d lost, e.g. %r" % (len(lost_keys), lost_keys[:3]))
    finally:
        load.stop()
        s.kill()
        if s2:
            s2.stop()
        for d in (lost, new):
            shutil.rmtree(d, ignore_errors=True)


def store_layout(g, tag):
    """(server args, the data dir for Server, the store directory as mount B shows it,
    a second server's args on mount B)."""
    a, b = g.mounts
    local = tempfile.mkdtemp(prefix="strata-gluster-%s-" % tag.replace(" ", ""))
    if DATA_URL:
        extra = ["--data-url", os.path.join(a, "store")]
        second = ["--data-dir", os.path.join(local, "second"), "--data-url", os.path.join(b, "store")]
        return os.path.join(local, "db"), extra, local, second
    second = ["--data-dir", os.path.join(b, "db")]
    return os.path.join(a, "db"), [], local, second


def scenario(g, tag, src, files, markers):
    a, b = g.mounts
    data_dir, extra, local, second = store_layout(g, tag)
    print("%s: server %s %s" % (tag, data_dir, " ".join(extra)), flush=True)
    s = Server(data_dir, extra + ["--gc-grace", "1", "--gc-interval", "0", "--grace-ms", "0"])
    load = None
    try:
        with strata.Client(s.addr, timeout=60) as c:
            w = c.register_writer("probe", lease_ttl=1)
            c.unregister_writer(w.writer_id)
        store_a = w.store_dir
        check(os.path.realpath(store_a).startswith(a + "/"),
              "%s: the server's store directory is on mount A" % tag, store_a)
        store_b = os.path.join(b, os.path.relpath(os.path.realpath(store_a), a))
        check(os.path.isdir(store_b), "%s: mount B shows the store directory" % tag, store_b)

        load = Load(s)
        lease = ["--lease", "2000"]
        pop_args = ["--workers", "3", "--block", str(BLOCK), "--store-dir", store_b] + lease
        # The writers, the server or both SIGKILLed from outside at a random time; one
        # round where every writer SIGKILLs itself at a random stage of its task
        # (strata-populate's STRATA_POPULATE_CRASH); the server-only round last, since
        # its writers retry and finish the volume.
        kinds = R.sample(["writers", "both", "writers", "both", "stage"], 5) + ["server"]
        landed = 0
        for rnd, kind in enumerate(kinds):
            env = {"STRATA_SEED": str(SEED + rnd), "STRATA_POPULATE_TASK_DELAY_MS": "20"}
            e = dict(os.environ, **env)
            e.pop("STRATA_POPULATE_CRASH", None)
            if kind == "stage":
                stage = R.choice(["mid-write", "after-fsync", "after-register", "mid-commit"])
                e["STRATA_POPULATE_CRASH"] = stage
                e["STRATA_POPULATE_CRASH_PERMILLE"] = "300"
                p = subprocess.Popen([os.environ["POPULATE_BIN"], "--source", src, "--prefix",
                                      PREFIX, "--addr", s.addr, "--json"] + pop_args,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
                r = finish(p)
                check(r["rc"] == 1 and (r["json"] or {}).get("workers_killed", 0) > 0,
                      "%s: writers SIGKILLed at %s, the run exits 1" % (tag, stage), repr(r)[:600])
                print("%s: round %d: writers killed themselves at %s" % (tag, rnd, stage),
                      flush=True)
                landed += 1
                continue
            p = subprocess.Popen([os.environ["POPULATE_BIN"], "--source", src, "--prefix", PREFIX,
                                  "--addr", s.addr, "--json"] + pop_args, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, env=e, start_new_session=True)
            time.sleep(R.uniform(0.2, 0.7))
            running = p.poll() is None
            landed += running
            if kind in ("server", "both"):
                s.kill()
            if kind in ("writers", "both"):
                killpg(p)
            if kind in ("server", "both"):
                s.start()
            if kind == "server":
                r = finish(p)
                check(r["rc"] == 0 and (r["json"] or {}).get("failed") == 0,
                      "%s: the populate the server died under retried and completed" % tag,
                      repr(r)[:800])
            print("%s: round %d: SIGKILL %s %s" % (tag, rnd, kind,
                                                   "mid-run" if running else "after the run"),
                  flush=True)
        check(landed == len(kinds), "%s: every SIGKILL landed while populate ran" % tag,
              "%d of %d" % (landed, len(kinds)))
        r = populate(src, PREFIX, s.addr, *pop_args)
        check(r["rc"] == 0 and (r["json"] or {}).get("failed") == 0,
              "%s: the last populate completes" % tag, repr(r)[:800])
        # One more server kill under the put load, then stop the load.
        time.sleep(R.uniform(0.1, 0.5))
        s.kill()
        s.start()
        time.sleep(0.3)
        load.stop()
        acked = load.acked
        print("%s: %d puts acknowledged, %d failed calls" % (tag, len(acked), load.failed),
              flush=True)
        check(len(acked) > 0, "%s: the put load had commits acknowledged" % tag)

        with strata.Client(s.addr, timeout=120) as c:
            db = dump(c, PREFIX)
            db_matches_source(tag, db, files, markers)
            got = dump(c, "load/")
            lost = [k for k, v in acked if got.get(k) != v]
            check(not lost, "%s: every acknowledged put is there after the kills" % tag,
                  "%d lost, e.g. %r" % (len(lost), lost[:3]))
            ck = admin(c, "Check")
            check(ck.errors_total == 0 and ck.missing_files == 0,
                  "%s: Admin.Check: no errors, no missing file" % tag, str(ck)[:800])
            check(wait_writers_ended(c), "%s: the dead writers' leases end" % tag)
        rc, rc2, ck, removed, err = gc_until_clean(s.addr)
        print("%s: gc removed %d files; check %s" % (tag, removed, ck), flush=True)
        check(rc == 0, "%s: stratactl gc exits 0" % tag, err)
        check(rc2 == 0 and ck and ck.get("orphans") == 0 and ck.get("missing_files") == 0 and
              ck.get("errors_total") == 0,
              "%s: after gc, stratactl check exits 0: 0 orphans, 0 missing, 0 errors" % tag, err)
        check(removed > 0, "%s: gc removed the files the killed writers left" % tag)
        if g.replica == 2:
            rel = os.path.relpath(os.path.realpath(store_a), a)
            sets = []
            for brick in g.bricks:
                root = os.path.join(brick, rel)
                sets.append({os.path.relpath(os.path.join(d, f), root)
                             for d, _, fs in os.walk(root) for f in fs})
            check(sets[0] == sets[1] and len(sets[0]) > 0,
                  "%s: both bricks hold the same %d store files" % (tag, len(sets[0])),
                  "only on brick 1: %s, only on brick 2: %s"
                  % (sorted(sets[0] - sets[1])[:5], sorted(sets[1] - sets[0])[:5]))
        # Last, since a second server that is not refused may change the store: one on
        # mount B over the same store while the first runs.
        second_server(tag, second)
        if DATA_URL:
            # The whole data directory on the volume (the layout before --data-url): its
            # server.lock, a regular file, through the other mount.
            whole = Server(os.path.join(a, "whole"), ["--grace-ms", "0"])
            try:
                second_server(tag + " (whole --data-dir on A)",
                              ["--data-dir", os.path.join(b, "whole")])
            finally:
                whole.stop()
    finally:
        if load:
            load.stop()
        s.stop()
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(local, ignore_errors=True)


def main():
    # run-tier.sh's timeout sends SIGTERM: unwind so that Gluster is torn down.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="strata-gluster-test-")
    print("%s; mode: %s" % (version() or "GlusterFS not installed",
                            "--data-url on mount A" if DATA_URL else "--data-dir on mount A"),
          flush=True)
    try:
        src = os.path.join(tmp, "vol")
        genvol(src, "128,128,48", "16,16,8", 3, SEED)  # 384 tasks at --block 1
        files, markers = source_files(src), expected_markers(src, BLOCK)
        for replica in (1, 2):
            g = Gluster(os.path.join(tmp, "gluster"), replica=replica)
            tag = g.describe()
            try:
                g.up()
            except GlusterError as e:
                check(False, "%s: GlusterFS starts on loopback" % tag, str(e))
                continue
            try:
                scenario(g, tag, src, files, markers)
                if DATA_URL and server_has("--log-dir"):
                    machine_loss(g, tag)
            except Exception as e:  # a failed step fails the test; the teardown still runs
                import traceback
                traceback.print_exc()
                check(False, "%s: the scenario raised %r" % (tag, e))
            finally:
                errors = g.down()
                check(not errors, "%s: Gluster torn down (%.1f s up, %.1f s down)"
                      % (tag, g.up_s, g.down_s), "; ".join(errors))
    finally:
        if not os.environ.get("KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
    return report(T0)


if __name__ == "__main__":
    sys.exit(main())
