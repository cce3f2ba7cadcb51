#!/usr/bin/python3
"""strata-server with its OCDBT files on S3 (Ceph radosgw, tests/s3/rgw.py), over real sockets.

- basic: commits through the server land in the bucket (data files and numbered manifests under
  the prefix, none on local disk: there only the commit log and the lock table); an external
  reader (this file's own S3 client and OCDBT envelope check, no Strata code) sees the newest
  manifest at the acknowledged generation; `stratactl check` passes.
- kill: SIGKILL of the server (its commit log in a --log-dir of its own) at random points under
  a concurrent write load (4 client threads,
  values inline, out of line and above the log's by-reference size), several times, restarting
  on the same data directory and prefix each time: every acknowledged commit reads back (an
  unacknowledged one in flight may or may not be there), `stratactl check` passes, the external
  reader sees the published generation.
- gc: retention keep-versions 2 and `stratactl gc` with a grace period: inside the grace nothing
  is removed from the bucket, past it the dropped versions' objects go; then each remaining data
  object is hidden in turn (deleted, the server restarted with a cold cache, the check run, the
  object put back): every one is needed, so none is an orphan; no numbered manifest of a dropped
  generation and no temporary object is left. A kill -9 during a GC pass, then the check.
- second, second_idle: a second server on another --data-dir pointed at the same s3:// prefix,
  while the first commits under load, and after everything the first wrote is published: the
  second is refused at start or exits with an error saying why, everything it acknowledged is in
  the store, every commit the first acknowledged reads back from it and after its restart, and
  the bucket's newest manifest is the first's latest generation.

Environment: STRATA_SERVER_BIN, STRATACTL_BIN, PYTHONPATH with the strata package, and the S3
variables of rgw.py's env file (STRATA_S3_ENDPOINT, STRATA_S3_BUCKET, AWS_ACCESS_KEY_ID,
AWS_SECRET_ACCESS_KEY, AWS_REGION); STRATA_SEED (printed); STRATA_S3_KILLS (default 4).
Prints the cmocka-style lines tests/run-tier.sh counts.
"""
import json
import os
import random
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "stratactl"))
sys.path.insert(0, os.path.join(HERE, "..", "populate"))
from s3http import S3  # noqa: E402
from tier_report import check, report  # noqa: E402

os.environ.setdefault("POPULATE_BIN", "")
os.environ.setdefault("GENVOL_BIN", "")
from popcommon import Server  # noqa: E402

import strata  # noqa: E402

SERVER = os.environ["STRATA_SERVER_BIN"]
CTL = os.environ["STRATACTL_BIN"]
BUCKET = os.environ["STRATA_S3_BUCKET"]
ENDPOINT = os.environ["STRATA_S3_ENDPOINT"]
REGION = os.environ.get("AWS_REGION", "us-east-1")
s3 = S3.from_env()

MANIFEST_RE = re.compile(r"manifest\.([0-9a-f]{16})$")
DATA_RE = re.compile(r"d/[0-9a-f]{32}$")


def s3_flags(prefix):
    return ["--data-url", "s3://%s/%s" % (BUCKET, prefix), "--s3-endpoint", ENDPOINT,
            "--s3-region", REGION]


def ctl(addr, *args, timeout=300):
    p = subprocess.run([CTL, "--addr", addr, "--json"] + list(args), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    try:
        j = json.loads(p.stdout.decode())
    except ValueError:
        j = None
    return p.returncode, j, p.stderr.decode()


def store_ok(addr, what):
    rc, j, err = ctl(addr, "check")
    return check(rc == 0 and j is not None and j["errors_total"] == 0 and j["missing_files"] == 0,
                 what, (err + json.dumps(j))[:800])


def wait_published(addr, gen, limit_s=60):
    """Whether the server's published generation (Admin.Stats) reaches gen within limit_s."""
    deadline = time.time() + limit_s
    with strata.Client(addr, timeout=10) as c:
        while time.time() < deadline:
            if c.stats().store.published_generation >= gen:
                return True
            time.sleep(0.05)
    return False


# --- the external reader: the bucket listing and OCDBT's manifest envelope ---------------
_CRC_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC_TABLE.append(_c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = _CRC_TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def objects(prefix):
    """{name relative to the prefix: size} of every object under s3://BUCKET/PREFIX/."""
    return {k[len(prefix) + 1:]: v for k, v in s3.list(BUCKET, prefix + "/").items()}


def newest_manifest(prefix):
    """(generation, None) of the newest numbered manifest in the bucket whose OCDBT
    envelope is sound (magic, length, CRC-32C, version 0), or (None, what is wrong)."""
    gens = sorted(int(m.group(1), 16) for m in map(MANIFEST_RE.match, objects(prefix)) if m)
    if not gens:
        return None, "no numbered manifest under %s/" % prefix
    g = gens[-1]
    b = s3.get(BUCKET, "%s/manifest.%016x" % (prefix, g))
    if b is None or len(b) < 16:
        return None, "manifest.%016x unreadable" % g
    magic, length = struct.unpack(">I", b[:4])[0], struct.unpack("<Q", b[4:12])[0]
    if magic != 0x0CDB3A2A or length != len(b) or b[12] != 0:
        return None, "manifest.%016x: magic %#x length %d/%d version %d" % (g, magic, length, len(b), b[12])
    if crc32c(b[:-4]) != struct.unpack("<I", b[-4:])[0]:
        return None, "manifest.%016x: CRC-32C mismatch" % g
    return g, None


def reader_sees(prefix, gen, what):
    g, err = newest_manifest(prefix)
    return check(g is not None and g >= gen, what, err or "newest manifest %s < %d" % (g, gen))


# --- a concurrent write load that records what was acknowledged --------------------------
class Load:
    """THREADS client threads putting keys under `tag/`; each thread owns its keys, so
    `acked[key]` is the last acknowledged value and `pending[key]` the one in flight when
    the server went away (it may or may not have been committed). A thread ends at its
    first failed call."""
    SIZES = (0, 100, 3000, 70000)  # inline, out of line, above the log's by-reference size

    def __init__(self, addr, tag, rnd, threads=4, keys=40):
        self.addr, self.tag, self.keys = addr, tag, keys
        self.acked, self.pending, self.errors = {}, {}, []
        self.last_gen = 0
        self.mu = threading.Lock()
        self.stop = threading.Event()
        self.seeds = [rnd.randrange(1 << 30) for _ in range(threads)]
        self.threads = [threading.Thread(target=self.run, args=(i,)) for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, i):
        rnd = random.Random(self.seeds[i])
        c = strata.Client(self.addr, timeout=20)
        n = 0
        try:
            while not self.stop.is_set():
                key = b"%s/t%d/k%03d" % (self.tag.encode(), i, rnd.randrange(self.keys))
                val = b"%d:%d:" % (i, n) + bytes([rnd.randrange(256)]) * rnd.choice(self.SIZES)
                with self.mu:
                    self.pending[key] = val
                try:
                    v = c.put(key, val)
                except Exception as e:  # noqa: B902 -- the server was killed or stopped
                    with self.mu:
                        self.errors.append(type(e).__name__)
                    return
                with self.mu:
                    self.acked[key] = val
                    del self.pending[key]
                    self.last_gen = max(self.last_gen, v.generation)
                n += 1
        finally:
            c.close()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=120)

    def count(self):
        with self.mu:
            return len(self.acked)


def verify(addr, model, pending, what):
    """Every key of model reads model[key] or, if it had a put in flight, that value;
    a key only in pending reads nothing or that value. Returns the values read (the
    model from now on), or None on a mismatch."""
    c = strata.Client(addr, timeout=60)
    try:
        keys = sorted(set(model) | set(pending))
        got = {}
        for i in range(0, len(keys), 500):
            for r in c.batch_get(keys[i:i + 500]):
                got[r.key] = r.value
    finally:
        c.close()
    bad = [k for k in keys if got[k] not in ({model.get(k), pending.get(k)} - ({None} if k in model else set()))]
    check(not bad, what, [(k, (got[k] or b"")[:20], (model.get(k) or b"")[:20]) for k in bad[:5]])
    return None if bad else {k: v for k, v in got.items() if v is not None}


def local_ocdbt_files(data_dir):
    """OCDBT data files and manifests under the local data directory (there must be none:
    with --data-url only the commit log and the lock table are local)."""
    found = []
    for root, _, names in os.walk(data_dir):
        for n in names:
            if re.fullmatch(r"[0-9a-f]{32}", n) or n.startswith("manifest."):
                found.append(os.path.relpath(os.path.join(root, n), data_dir))
    return found


# --- the tests ----------------------------------------------------------------------------
def test_basic(root, rnd):
    prefix = "basic-" + secrets.token_hex(3)
    srv = Server(os.path.join(root, "basic"), s3_flags(prefix) + ["--grace-ms", "0"])
    try:
        c = strata.Client(srv.addr)
        want = {}
        for i in range(30):
            k, v = b"b/%02d" % (i % 12), bytes([i]) * rnd.choice((5, 2000, 100000))
            gen = c.put(k, v).generation
            want[k] = v
        check(all(c.get(k).value == v for k, v in want.items()), "basic: every put reads back")
        check(wait_published(srv.addr, gen), "basic: generation %d is published" % gen)
        objs = objects(prefix)
        check(any(DATA_RE.match(n) for n in objs) and "manifest.ocdbt" in objs,
              "basic: data objects and manifest.ocdbt are in the bucket under the prefix",
              sorted(objs)[:10])
        reader_sees(prefix, gen, "basic: the external reader sees the newest manifest at the "
                    "acknowledged generation (envelope and CRC-32C sound)")
        check(not local_ocdbt_files(srv.data_dir), "basic: no OCDBT file on local disk",
              local_ocdbt_files(srv.data_dir)[:5])
        store_ok(srv.addr, "basic: stratactl check passes")
        c.close()
        srv.stop()
        check(srv.proc.returncode == 0, "basic: SIGTERM stops the server cleanly", srv.proc.returncode)
        srv.start()
        c = strata.Client(srv.addr)
        check(all(c.get(k).value == v for k, v in want.items()), "basic: every put reads back "
              "after a restart")
        c.close()
    finally:
        srv.stop()


def test_kill(root, rnd):
    prefix = "kill-" + secrets.token_hex(3)
    log_dir = os.path.join(root, "kill-log")  # the commit log elsewhere (a replicated volume's place)
    srv = Server(os.path.join(root, "kill"), s3_flags(prefix) + ["--grace-ms", "0", "--log-dir", log_dir])
    model = {}
    rounds = int(os.environ.get("STRATA_S3_KILLS", "4"))
    try:
        # A short history keeps the check (every retained version, node and value read back
        # from S3) to seconds; GC of the dropped versions' files stays off (its grace).
        rc, j, err = ctl(srv.addr, "retention", "set", "--keep-versions", "8")
        check(rc == 0, "kill: retention keep-versions 8", err)
        for r in range(rounds):
            load = Load(srv.addr, "kill", rnd)
            t0 = time.time()
            while load.count() < 20 and time.time() - t0 < 60:  # the load is running
                time.sleep(0.01)
            time.sleep(rnd.random() * 1.5)  # a random point, not a synchronisation
            srv.kill()
            load.join()
            check(load.count() > 0, "round %d: the load committed before the kill" % r, load.errors)
            model.update(load.acked)
            srv.start()
            m = verify(srv.addr, model, load.pending, "round %d: every acknowledged commit reads "
                       "back after kill -9 and restart (%d keys)" % (r, len(model)))
            model = m if m is not None else model
            store_ok(srv.addr, "round %d: stratactl check passes" % r)
            c = strata.Client(srv.addr)
            latest = c.latest().generation
            c.close()
            check(latest >= load.last_gen, "round %d: the latest generation is at least the last "
                  "acknowledged" % r, (latest, load.last_gen))
            if check(wait_published(srv.addr, latest), "round %d: published after restart" % r):
                reader_sees(prefix, latest, "round %d: the external reader sees generation %d" % (r, latest))
        check(not local_ocdbt_files(srv.data_dir), "kill: no OCDBT file on local disk",
              local_ocdbt_files(srv.data_dir)[:5])
        logged = [f for _, _, fs in os.walk(log_dir) for f in fs]
        check(logged and not os.path.exists(os.path.join(srv.data_dir, "kv-log")),
              "kill: the commit log is in --log-dir, not in the data directory", logged[:5])
    finally:
        srv.stop()


def test_gc(root, rnd):
    prefix = "gc-" + secrets.token_hex(3)
    grace = 3
    srv = Server(os.path.join(root, "gc"), s3_flags(prefix) +
                 ["--grace-ms", "0", "--gc-grace", str(grace), "--gc-interval", "0"])
    try:
        c = strata.Client(srv.addr)
        rc, j, err = ctl(srv.addr, "retention", "set", "--keep-versions", "2")
        check(rc == 0, "gc: retention keep-versions 2", err)
        want = {}
        for b in range(12):  # a dozen publication batches, each overwriting every key
            for i in range(8):
                k, v = b"g/%d" % i, bytes([b, i]) * rnd.choice((3, 1500, 20000))
                gen = c.put(k, v).generation
                want[k] = v
            wait_published(srv.addr, gen)
        # The server moves the retention floor about once a second and a commit applies it:
        # commit (one key rewritten) until the dropped range covers the batches.
        deadline = time.time() + 30
        while time.time() < deadline:
            rc, ret, err = ctl(srv.addr, "retention", "show")
            if rc == 0 and ret["retained"]["oldest_generation"] >= gen - 2:
                break
            time.sleep(0.3)
            gen = c.put(b"g/0", want[b"g/0"]).generation
        check(ret["retained"]["oldest_generation"] >= gen - 2, "gc: the versions below the newest "
              "two are dropped", ret["retained"])
        check(wait_published(srv.addr, gen), "gc: the last batch is published")
        before = objects(prefix)
        rc, j, err = ctl(srv.addr, "gc")
        check(rc == 0 and j["own_files_removed"] == 0 and j["own_files_waiting"] > 0,
              "gc: inside the grace period nothing is removed, the dropped files wait", (err, j))
        check(set(before) <= set(objects(prefix)), "gc: every object is still in the bucket "
              "inside the grace period")
        time.sleep(grace + 0.5)  # the grace is the behaviour under test
        rc, j, err = ctl(srv.addr, "gc")
        check(rc == 0 and j["own_files_removed"] > 0, "gc: past the grace the dropped versions' "
              "files are removed", (err, j))
        after = objects(prefix)
        gone = set(before) - set(after)
        check(len(gone) >= j["own_files_removed"], "gc: the removed files are gone from the bucket",
              (len(gone), j["own_files_removed"]))
        rc, ret, err = ctl(srv.addr, "retention", "show")
        oldest = ret["retained"]["oldest_generation"]
        stale = [n for n in after if MANIFEST_RE.match(n) and int(MANIFEST_RE.match(n).group(1), 16) < oldest]
        check(not stale, "gc: no numbered manifest of a dropped generation (< %d) is left" % oldest, stale)
        tmp = [n for n in after if "tmp" in n.rsplit("/", 1)[-1]]
        check(not tmp, "gc: no temporary object is left", tmp)
        store_ok(srv.addr, "gc: stratactl check passes after GC")
        check(all(c.get(k).value == v for k, v in want.items()), "gc: every key reads as last written")
        c.close()
        # No orphan: every data object left is needed by a retained version. Each is hidden
        # in turn from a freshly started server (cold node cache): its start or the check
        # must fail, then it is put back.
        data = sorted(n for n in after if DATA_RE.match(n))
        srv.stop()
        orphans = []
        for n in data:
            key = "%s/%s" % (prefix, n)
            body = s3.get(BUCKET, key)
            s3.delete(BUCKET, key)
            try:
                p = Proc(srv.data_dir, prefix)
                if p.port is not None:
                    rc, j, err = ctl(p.addr, "check")
                    if rc == 0 and j and j["errors_total"] == 0 and j["missing_files"] == 0:
                        orphans.append(n)
                p.stop()
            finally:
                s3.put(BUCKET, key, body)
        check(data and not orphans, "gc: each of the %d data objects left is needed (hidden, the "
              "check fails): no orphan" % len(data), orphans)
        # A kill -9 during a GC pass, then the check and a complete GC.
        srv.start()
        c = strata.Client(srv.addr)
        for i in range(40):
            gen = c.put(b"g/%d" % (i % 8), bytes([i]) * 3000).generation
        c.close()
        wait_published(srv.addr, gen)
        time.sleep(grace + 0.5)
        gc = subprocess.Popen([CTL, "--addr", srv.addr, "gc"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        time.sleep(rnd.random() * 0.05)  # a random point, not a synchronisation
        srv.kill()
        gc.communicate(timeout=120)
        srv.start()
        store_ok(srv.addr, "gc: the store verifies after kill -9 during GC")
    finally:
        srv.stop()


class Proc:
    """A strata-server on data_dir and the prefix, its stderr in data_dir + ".err": port is
    the one of its event=ready line, or None when it exited first (refused at start)."""

    def __init__(self, data_dir, prefix, extra=(), limit_s=60):
        self.err = data_dir + ".err"
        with open(self.err, "ab") as f:
            self.p = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                                       "--grace-ms", "0"] + s3_flags(prefix) + list(extra), stderr=f)
        self.port = None
        t = time.time()
        while time.time() - t < limit_s:
            m = re.search(r"event=ready .*port=(\d+)", self.text())
            if m:
                self.port = int(m.group(1))
                return
            if self.p.poll() is not None:
                return
            time.sleep(0.02)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def text(self):
        return open(self.err, errors="replace").read()

    def exited(self, limit_s):
        try:
            self.p.wait(timeout=limit_s)
        except subprocess.TimeoutExpired:
            pass
        return self.p.poll() is not None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            if not self.exited(60):
                self.p.kill()
                self.p.wait()


def second_server(root, name, prefix, b_puts):
    """Starts a second server on prefix and, when it starts, puts up to b_puts keys b/N through
    it until one fails or it exits. Returns (Proc, {key: value} it acknowledged, what it said:
    its stderr and the first refused put)."""
    b = Proc(os.path.join(root, name), prefix)
    acked, said = {}, ""
    if b.port is not None:
        cb = strata.Client(b.addr, timeout=10)
        for i in range(b_puts):
            k, v = b"b/%d" % i, b"from the second server %d" % i
            try:
                cb.put(k, v)
                acked[k] = v
            except Exception as e:  # noqa: B902 -- a refusal is what is expected
                said = "refused put: %s\n" % e
                break
            if b.p.poll() is not None:
                break
            time.sleep(0.02)
        cb.close()
    b.exited(5)
    return b, acked, said + b.text()


def second_checks(tag, a_addr, b, b_acked, said):
    """The second server's fate: refused at start, or out (exited) once it could not publish;
    why said; everything it acknowledged is in the store the first server serves."""
    started = b.port is not None
    check(b.p.poll() is not None and b.p.returncode != 0,
          "%s: the second server on the same prefix is refused at start or exits with an error "
          "(started: %s, its commits acknowledged: %d, exit %s)" % (tag, started, len(b_acked), b.p.poll()),
          said[-800:])
    why = "\n".join(ln for ln in said.splitlines()
                    if "level=error" in ln or ln.startswith(("strata-server:", "refused put:")))
    if why:
        print("%s: the second server said: %s" % (tag, why.strip()[-600:]), flush=True)
    check(re.search(r"generation|manifest|exists|s3://", why, re.I) is not None,
          "%s: the second server says why (the prefix, the generation or the manifest)" % tag,
          (why or said)[-800:])
    with strata.Client(a_addr, timeout=20) as c:
        lost = [k for k, v in b_acked.items() if c.get(k).value != v]
    check(not lost, "%s: every commit the second server acknowledged is in the store (%d acknowledged)"
          % (tag, len(b_acked)), lost[:5])


def test_second(root, rnd):
    """A second server on another --data-dir and the same prefix while the first commits under
    load."""
    prefix = "two-" + secrets.token_hex(3)
    a = Server(os.path.join(root, "two-a"), s3_flags(prefix) + ["--grace-ms", "0"])
    b = None
    try:
        ctl(a.addr, "retention", "set", "--keep-versions", "8")
        load = Load(a.addr, "a", rnd)
        t0 = time.time()
        while load.count() < 20 and time.time() - t0 < 60:
            time.sleep(0.01)
        b, b_acked, said = second_server(root, "two-b", prefix, 200)
        b.stop()
        time.sleep(0.5)  # the first server's load goes on past the second's end
        check(a.proc.poll() is None, "second: the first server is still running", a.proc.poll())
        load.join()
        second_checks("second", a.addr, b, b_acked, said)
        check(not load.errors, "second: the first server's load saw no error", load.errors)
        verify(a.addr, load.acked, {}, "second: every commit the first server acknowledged reads "
               "back (%d keys)" % len(load.acked))
        c = strata.Client(a.addr)
        latest = c.latest().generation
        c.close()
        if check(wait_published(a.addr, latest), "second: the first server publishes on"):
            reader_sees(prefix, latest, "second: the bucket's newest manifest is the first server's "
                        "latest generation")
        store_ok(a.addr, "second: stratactl check passes on the first server")
        a.stop()
        a.start()
        verify(a.addr, load.acked, {}, "second: every commit the first server acknowledged reads "
               "back after its restart")
    finally:
        if b is not None:
            b.stop()
        a.stop()


def test_second_idle(root, rnd):
    """The first server idle (everything published) when the second starts: whatever the second
    does, a commit the first acknowledges afterwards must not be lost (it reads back from the
    first, and after the second is gone and the first restarts), and the two must not both
    acknowledge a commit of one generation."""
    prefix = "idle-" + secrets.token_hex(3)
    a = Server(os.path.join(root, "idle-a"), s3_flags(prefix) + ["--grace-ms", "0"])
    b = None
    try:
        c = strata.Client(a.addr, timeout=20)
        for i in range(10):
            gen = c.put(b"a/%d" % i, b"first %d" % i).generation
        check(wait_published(a.addr, gen), "idle: the first server's commits are published")
        b, b_acked, said = second_server(root, "idle-b", prefix, 1)
        if b.port is not None and b_acked:
            wait_published(b.addr, gen + 1, limit_s=5)
        acked = None
        try:
            acked = c.put(b"a/after", b"acknowledged by the first").generation
        except Exception as e:  # noqa: B902 -- a refusal is allowed, a loss is not
            print("idle: the first server refused a commit: %r" % e, flush=True)
        b.stop()
        said += b.text()
        if acked is not None:
            check(c.get(b"a/after").value == b"acknowledged by the first",
                  "idle: the first server's acknowledged commit reads back from it")
        c.close()
        a.stop()
        a.start()
        if acked is not None:
            with strata.Client(a.addr, timeout=20) as c2:
                got = c2.get(b"a/after").value
            check(got == b"acknowledged by the first", "idle: the first server's acknowledged commit "
                  "(generation %d) survives its restart after the second server ran" % acked, got)
        second_checks("idle", a.addr, b, b_acked, said)
    finally:
        if b is not None:
            b.stop()
        a.stop()


def radosgw_pid():
    """The harness's radosgw (RGW_DIR/pids), or None."""
    for line in open(os.path.join(os.environ["RGW_DIR"], "pids")).read().split("\n"):
        if line.startswith("radosgw "):
            return int(line.split()[1])
    return None


def test_lock(root, rnd):
    """The store's writer lock (strata.lock under the prefix): a kill -9 leaves it, and the same
    data directory takes it back at its restart; another server is refused until the first
    stops cleanly (which deletes it) or is started with --take-over-store after its loss."""
    prefix = "lock-" + secrets.token_hex(3)
    a = Server(os.path.join(root, "lock-a"), s3_flags(prefix) + ["--grace-ms", "0"])
    c = strata.Client(a.addr, timeout=20)
    g = c.put(b"k", b"a1").generation
    c.close()
    m = re.search(r"event=rpc_listening .*threads=(\d+)", open(os.path.join(root, "lock-a") + ".log").read())
    check(m and int(m.group(1)) >= 4, "lock: a server on an s3:// store runs at least 4 pollers by default "
          "(its reads wait on the network)", m and m.group(0))
    check("strata.lock" in objects(prefix), "lock: the running server holds strata.lock under the prefix",
          sorted(objects(prefix)))
    a.kill()
    check("strata.lock" in objects(prefix), "lock: a kill -9 leaves strata.lock")
    a.start()  # the same data directory, no flags: its recorded owner takes the lock back
    with strata.Client(a.addr, timeout=20) as c:
        check(c.get(b"k").value == b"a1", "lock: the restarted owner serves its acknowledged commit")
    b_dir = os.path.join(root, "lock-b")
    p = subprocess.run([SERVER, "--listen", "127.0.0.1:0", "--data-dir", b_dir] + s3_flags(prefix),
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 1 and "strata.lock is held by another server" in p.stderr and "--take-over-store" in p.stderr
          and os.path.join(root, "lock-a") in p.stderr, "lock: a second server is refused, naming the holder",
          p.stderr[-600:])
    a.stop()
    check("strata.lock" not in objects(prefix), "lock: a clean stop deletes strata.lock")
    b = Server(b_dir, s3_flags(prefix) + ["--grace-ms", "0"])  # a new server after a clean stop
    with strata.Client(b.addr, timeout=20) as c:
        check(c.get(b"k").value == b"a1" and c.latest().generation >= g,
              "lock: a new server on the store after a clean stop serves it")
        c.put(b"k", b"b1")
    b.kill()  # b's machine is lost: its lock stays
    p = subprocess.run([SERVER, "--listen", "127.0.0.1:0", "--data-dir", os.path.join(root, "lock-a")],
                       capture_output=True, text=True, timeout=120)
    check(p.returncode == 1 and "held by another server" in p.stderr,
          "lock: the first server is refused while the lost one's lock stands", p.stderr[-400:])
    a.extra = a.extra + ["--take-over-store"]
    a.start()
    with strata.Client(a.addr, timeout=20) as c:
        # b's last put was acknowledged from b's log, which a cannot see: only published ones come over
        v = c.get(b"k").value
        check(v in (b"a1", b"b1"), "lock: --take-over-store starts on the lost server's published store", v)
    a.stop()


def test_outage(root, rnd):
    """radosgw stopped (SIGSTOP) while commits go on: commits are acknowledged from the log,
    publication waits and retries, and once radosgw answers again it catches up; the server
    never refuses a commit for it."""
    pid = radosgw_pid()
    if not check(pid is not None, "outage: the harness's radosgw pid is known"):
        return
    prefix = "out-" + secrets.token_hex(3)
    srv = Server(os.path.join(root, "outage"), s3_flags(prefix) + ["--grace-ms", "0"])
    c = strata.Client(srv.addr, timeout=30)
    c.put(b"before", b"1")
    os.kill(pid, signal.SIGSTOP)
    try:
        gens = []
        t0 = time.time()
        while time.time() - t0 < 4:  # past the store's own retries (timeouts of 2 x 30 s are longer:
            gens.append(c.put(b"during/%d" % len(gens), b"x").generation)  # the PUT hangs, then retries)
            time.sleep(0.02)
        published = c.stats().store.published_generation
        check(gens and published < gens[-1],
              "outage: commits are acknowledged while the object store does not answer (%d, published %d)"
              % (len(gens), published))
    finally:
        os.kill(pid, signal.SIGCONT)
    check(wait_published(srv.addr, gens[-1], limit_s=120),
          "outage: publication catches up once the object store answers again")
    g = c.put(b"after", b"2").generation
    check(wait_published(srv.addr, g, limit_s=60) and c.get(b"during/0").value == b"x",
          "outage: the server goes on committing and publishing after it")
    c.close()
    store_ok(srv.addr, "outage: stratactl check passes after the outage")
    srv.stop()


def main():
    seed = int(os.environ.get("STRATA_SEED", str(int(time.time()))))
    print("STRATA_SEED=%d" % seed, flush=True)
    rnd = random.Random(seed)
    t0 = time.time()
    root = tempfile.mkdtemp(prefix="strata-s3-")
    try:
        for t in (test_basic, test_kill, test_gc, test_second, test_second_idle, test_lock, test_outage):
            t1 = time.time()
            try:
                t(root, rnd)
            except (Exception, SystemExit) as e:  # noqa: B902 -- a crash of one test is its failure
                import traceback
                traceback.print_exc()
                check(False, "%s ran to its end" % t.__name__, repr(e))
            print("%s: %.1f s" % (t.__name__, time.time() - t1), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
