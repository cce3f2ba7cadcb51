#!/usr/bin/python3
"""make bench-gluster (part of make bench): Strata with its OCDBT files on GlusterFS against
local disk, in one run. GlusterFS 10.3 from Debian runs on loopback (tests/gluster/glusterlo.py:
glusterd started by hand, one volume mounted twice, torn down at the end), once with one
brick and once with `replica 2` on two directories; the bricks, the local databases and the
generated volume all live under --dir (one disk).

For each place (the one-brick volume, then replica 2), against local disk measured in the
same minutes (a local server up at the same time, runs alternating, local first):
- durable 1 KiB puts at 16 calls in flight: `strata-bench --inflight 16` against a
  strata-server whose OCDBT files are there (`--data-url MOUNT_A/NAME-store`; the commit
  log and lock table on local disk), BENCH_RUNS runs of BENCH_SECONDS each, the medians of
  the rate and of the p99; one put alone (`--inflight 1`, one run): its median latency,
  what a commit costs;
- populate MB/s: strata-populate in coordinator mode, 4 writers, --block 2, the writers
  writing their data files through mount B (`--store-dir`), the wall-clock time of one run
  (GLUSTER_BENCH_MIB, default 228: one z-layer of 10x10 chunks of 64^3, 3 scales), into a
  fresh server each;
and on replica 2 the price of the commit log on the replicated volume: the same puts with
`--log-dir MOUNT_A/NAME-log` and the OCDBT files local. The local anchors are printed as
`BENCH gluster_<place>_local_...` lines next to each figure.

Prints BENCH lines with `vs local <ratio>` (tools/README.md). Without GlusterFS (not
installed, or it cannot start here) it prints one line saying why and exits 0. Without the
server's --data-url (an older server) the whole data directory goes on the mount."""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "populate"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "gluster"))
from popcommon import Server, genvol, populate  # noqa: E402
from glusterlo import Gluster, GlusterError, version as gluster_version  # noqa: E402

SERVER = os.environ["STRATA_SERVER_BIN"]
BENCH = os.environ["STRATA_BENCH_BIN"]
CHUNK = 64
LAYER_MIB = 640 * 640 * CHUNK * 8 / 2 ** 20 * (1 + 1 / 8 + 1 / 64)  # one z-layer, 3 scales


def server_flags():
    return subprocess.run([SERVER, "--help"], stdout=subprocess.PIPE, timeout=60).stdout.decode()


HELP = server_flags()
HAS_DATA_URL = "--data-url" in HELP
HAS_LOG_DIR = "--log-dir" in HELP


def server_on(root, name, mount=None, log_on=None):
    """A strata-server with a local data directory under root; its OCDBT files on mount
    (None: local), its commit log in log_on (None: the default)."""
    local = os.path.join(root, name)
    extra = ["--grace-ms", "0"]
    if mount and HAS_DATA_URL:
        extra += ["--data-url", os.path.join(mount, name + "-store")]
    elif mount:
        local = os.path.join(mount, name)
    if log_on:
        extra += ["--log-dir", os.path.join(log_on, name + "-log")]
    return Server(local, extra)


def bench_figures(s, inflight, seconds, *names):
    """The values of strata-bench's BENCH lines rpc_put_1k_c<inflight>_<name>."""
    out = subprocess.run([BENCH, "--addr", s.addr, "--inflight", str(inflight), "--seconds",
                          str(seconds)], stdout=subprocess.PIPE, check=True,
                         timeout=600).stdout.decode()
    return [float(re.search(r"BENCH rpc_put_1k_c%d_%s ([\d.]+)" % (inflight, n), out).group(1))
            for n in names]


def puts_vs_local(root, name, runs, seconds, mount=None, log_on=None):
    """Puts against a local server and one with its OCDBT files on mount (or its commit
    log in log_on), both up, runs alternating (local first), so that load from elsewhere
    falls on both: ({qps, p99, c1_p50} of the place, the same of local), medians. qps and
    p99 at 16 in flight over `runs` runs each; c1_p50, one put alone (--inflight 1), what
    a commit costs, one run each."""
    servers = [server_on(root, name + "-local", None), server_on(root, name, mount, log_on)]
    try:
        got = [{"qps": [], "p99": [], "c1_p50": []} for _ in servers]
        for _ in range(runs):
            for s, d in zip(servers, got):
                q, p = bench_figures(s, 16, seconds, "qps", "p99")
                d["qps"].append(q)
                d["p99"].append(p)
        for s, d in zip(servers, got):
            d["c1_p50"] += bench_figures(s, 1, seconds, "p50")
    finally:
        for s in servers:
            s.stop()
    local, place = [{k: statistics.median(v) for k, v in d.items()} for d in got]
    return place, local


def populate_rate(root, name, vol, g=None):
    """MB/s of one coordinator-mode populate (4 writers, --block 2) into a fresh server
    whose OCDBT files are on g's mount A, the writers writing through mount B (g None:
    all local)."""
    s = server_on(root, name, g.mounts[0] if g else None)
    try:
        args = ["--workers", "4", "--block", "2"]
        if g:
            args += ["--store-dir", store_dir_on(s, *g.mounts)]
        t0 = time.monotonic()
        r = populate(vol, "seg/", s.addr, *args)
        secs = time.monotonic() - t0
    finally:
        s.stop()
        shutil.rmtree(os.path.join(root, name), ignore_errors=True)
    j = r["json"] or {}
    if r["rc"] != 0 or j.get("failed") != 0:
        sys.exit("bench-gluster: populate failed: %r" % r)
    return j["bytes"] / 1e6 / secs


def store_dir_on(s, mount_a, mount_b):
    """The store directory the server names, as mount B shows it."""
    import strata
    with strata.Client(s.addr, timeout=60) as c:
        w = c.register_writer("bench-probe", lease_ttl=1)
        c.unregister_writer(w.writer_id)
    return os.path.join(mount_b, os.path.relpath(os.path.realpath(w.store_dir), mount_a))


def line(name, value, unit, anchor=None, fmt="%.1f"):
    s = ("BENCH %s " + fmt + " %s") % (name, value, unit)
    if anchor is not None:
        s += " vs local %.2f" % (value / anchor if anchor else 0)
    print(s, flush=True)


def measure(root, tag, vol, runs, seconds, g, log_dir=False):
    """The figures of one place against local disk, printed. log_dir: the commit log on
    g's mount A and the OCDBT files local; else the OCDBT files on mount A."""
    name = "gluster_%s%s" % (tag, "_log_dir" if log_dir else "")
    place, local = puts_vs_local(root, name, runs, seconds,
                                 None if log_dir else g.mounts[0], g.mounts[0] if log_dir else None)
    line(name + "_local_put_1k_c16_qps", local["qps"], "ops/s")
    line(name + "_put_1k_c16_qps", place["qps"], "ops/s", local["qps"])
    line(name + "_local_put_1k_c16_p99", local["p99"], "us", fmt="%.0f")
    line(name + "_put_1k_c16_p99", place["p99"], "us", local["p99"], fmt="%.0f")
    line(name + "_local_put_1k_c1_p50", local["c1_p50"], "us", fmt="%.0f")
    line(name + "_put_1k_c1_p50", place["c1_p50"], "us", local["c1_p50"], fmt="%.0f")
    if not log_dir:
        loc = populate_rate(root, name + "-pop-local", vol)
        mb = populate_rate(root, name + "-pop", vol, g)
        line(name + "_local_populate_MBps", loc, "MB/s")
        line(name + "_populate_MBps", mb, "MB/s", loc)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: Gluster comes down
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    seconds = float(os.environ.get("BENCH_SECONDS", "2"))
    mib = int(os.environ.get("GLUSTER_BENCH_MIB", "228"))
    root = os.path.join(os.path.realpath(a.dir), "gluster")
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    g = None
    try:
        # Gluster first: when it cannot run here, nothing else is measured.
        g = Gluster(os.path.join(root, "g1"), replica=1, log=lambda m: print(m, file=sys.stderr))
        try:
            g.up()
        except GlusterError as e:
            g = None
            print("bench-gluster: GlusterFS cannot run here, nothing measured: %s"
                  % str(e).splitlines()[0])
            return 0
        vol = os.path.join(root, "vol")
        layers = max(1, round(mib / LAYER_MIB))
        genvol(vol, "640,640,%d" % (layers * CHUNK), "%d,%d,%d" % (CHUNK, CHUNK, CHUNK), 3, 1)
        nbytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(vol) for f in fs)
        print("bench-gluster: %s; %.0f MiB volume; puts %d x %.1f s per place (median); "
              "OCDBT files via %s; %d CPUs; %s" % (
                  gluster_version(), nbytes / 2 ** 20, runs, seconds,
                  "--data-url" if HAS_DATA_URL else "--data-dir", os.cpu_count(),
                  time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), flush=True)
        measure(root, "1brick", vol, runs, seconds, g)
        g.down()
        g = Gluster(os.path.join(root, "g2"), replica=2, log=lambda m: print(m, file=sys.stderr))
        g.up()
        measure(root, "replica2", vol, runs, seconds, g)
        if HAS_LOG_DIR:
            measure(root, "replica2", vol, runs, seconds, g, log_dir=True)
        else:
            print("bench-gluster: this strata-server has no --log-dir: the commit log on the "
                  "replicated volume is not measured")
    finally:
        if g:
            g.down()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
