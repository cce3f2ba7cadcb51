"""What the tests/populate scripts share: the binaries (from the environment), a
strata-server on a fixed port over a data directory that survives restarts, the
source volume walked independently of the tools, and the check/report helpers of
tests/stratactl (cmocka-style lines for tests/run-tier.sh)."""
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "stratactl"))
from tier_report import check, report  # noqa: E402,F401

SERVER = os.environ["STRATA_SERVER_BIN"]
POPULATE = os.environ["POPULATE_BIN"]
GENVOL = os.environ["GENVOL_BIN"]


def seed():
    """STRATA_SEED (default: time), printed so a failure can be replayed."""
    s = int(os.environ.get("STRATA_SEED", str(int(time.time()))))
    print("STRATA_SEED=%d" % s, flush=True)
    return s


class Server:
    """A strata-server over data_dir; start/kill/stop by pid. The first start takes an
    ephemeral port (from its event=ready line); restarts listen on the same one."""

    def __init__(self, data_dir, extra=()):
        self.data_dir, self.port, self.extra = data_dir, 0, list(extra)
        self.proc = None
        self.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        log = open(self.data_dir + ".log", "a+")
        start_at = log.tell()
        # The port may still be held for a moment after a SIGKILL: retry the start.
        for _ in range(200):
            self.proc = subprocess.Popen([SERVER, "--listen", self.addr, "--data-dir",
                                          self.data_dir] + self.extra, stderr=log)
            t0 = time.monotonic()
            while time.monotonic() - t0 < 60:
                log.seek(start_at)
                m = re.search(r"event=ready .*port=(\d+)", log.read())
                if m:
                    self.port = int(m.group(1))
                    return
                if self.proc.poll() is not None:
                    break
                time.sleep(0.01)
            if self.proc.poll() is None:
                break
            time.sleep(0.05)
        log.seek(start_at)
        print(log.read())
        self.stop()
        sys.exit("strata-server did not start on " + self.addr)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def populate(src, prefix, addr, *args, env=None, wait=True):
    e = dict(os.environ)
    e.pop("STRATA_POPULATE_CRASH", None)
    if env:
        e.update(env)
    argv = [POPULATE, "--source", src, "--prefix", prefix, "--addr", addr, "--json"] + list(args)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    return finish(p) if wait else p


def populated_server(tmp, name, servers, src, prefix):
    """A Server on tmp/name (appended to servers, for the teardown) that src's volume
    was populated into under prefix by two writers."""
    s = Server(os.path.join(tmp, name))
    servers.append(s)
    r = populate(src, prefix, s.addr, "--workers", "2", "--block", "2")
    check(r["rc"] == 0, "%s: populate the generated volume" % name, repr(r)[:600])
    return s


def run_tool(argv, die_at_env, env=None, wait=True, timeout=600):
    """Runs an edit worker (argv) with die_at_env removed from the environment
    unless env sets it: (rc, stdout, stderr), or the Popen with wait=False."""
    e = dict(os.environ)
    e.pop(die_at_env, None)
    e.update(env or {})
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e)
    if not wait:
        return p
    out, err = p.communicate(timeout=timeout)
    return p.returncode, out.decode(), err.decode()


def finish(p):
    out, err = p.communicate(timeout=600)
    r = {"rc": p.returncode, "out": out.decode(), "err": err.decode(), "json": None}
    try:
        r["json"] = json.loads(r["out"].strip().splitlines()[-1])
    except (ValueError, IndexError):
        pass
    return r


def genvol(out, size, chunk, scales, seed_value, *extra):
    subprocess.run([GENVOL, "--out", out, "--size", size, "--chunk", chunk, "--scales",
                    str(scales), "--seed", str(seed_value), "--quiet"] + list(extra), check=True)


def source_files(src):
    """{relative path: bytes} of every file of a volume directory (info included)."""
    files = {}
    for root, _, names in os.walk(src):
        for n in names:
            path = os.path.join(root, n)
            files[os.path.relpath(path, src)] = open(path, "rb").read()
    return files


def expected_markers(src, block):
    """The marker names a populate with --block `block` must write, computed here
    from the info (mip-0 grid / block), independently of the tool."""
    info = json.load(open(os.path.join(src, "info")))
    s0 = info["scales"][0]
    layer = 2 + block.bit_length() - 1
    ceil = lambda a, b: -(-a // b)
    nb = [ceil(ceil(s0["size"][d], s0["chunk_sizes"][0][d]), block) for d in range(3)]
    return {"%d_%d_%d_%d" % (layer, x, y, z)
            for x in range(nb[0]) for y in range(nb[1]) for z in range(nb[2])}


def dump(client, prefix):
    """{key: value} of everything under prefix at the latest version."""
    return {bytes(r.key): bytes(r.value) for r in client.list(prefix.encode(), timeout=600)}


def admin(client, method, **kw):
    """Admin.Gc / Admin.Check through the generated stubs (the Python client has no
    wrapper for them)."""
    from strata.v1 import admin_pb2
    req = {"Gc": admin_pb2.GcRequest, "Check": admin_pb2.CheckStoreRequest}[method](**kw)
    return getattr(client._admin, method)(req, timeout=600)


def wait_writers_ended(client, limit_s=120):
    """Polls ListWriters until no writer is live (their leases run out on the server
    clock); returns True when none is. The bound is generous: leases are seconds."""
    from strata.v1 import coordinator_pb2, coordinator_pb2_grpc
    stub = coordinator_pb2_grpc.CoordinatorStub(client._channel)
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit_s:
        r = stub.ListWriters(coordinator_pb2.ListWritersRequest(include_expired=False), timeout=60)
        if not any(w.live for w in r.writers):
            return True
        time.sleep(0.2)
    return False


def rng(s):
    return random.Random(s)


def kill_server_when(server, proc, prefix, target):
    """SIGKILLs the server once `target` keys exist under prefix + ".populated/" (the
    meta and task markers) while populate `proc` runs, then restarts it on the same
    data directory and port. Returns the marker count seen at the kill (None when
    the run ended first)."""
    import strata
    seen = None
    with strata.Client(server.addr, timeout=30) as c:
        while proc.poll() is None:
            n = len(dump(c, prefix + ".populated/"))
            if n >= target:
                seen = n
                break
            time.sleep(0.005)
    server.kill()
    server.start()
    return seen
