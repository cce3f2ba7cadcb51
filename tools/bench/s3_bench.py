#!/usr/bin/python3
"""make bench-s3 (part of make bench): strata-server with its OCDBT files on S3 (Ceph's radosgw on
loopback, tests/s3/rgw.py) against the same server on local disk, in the same run.

- Durable 1 KiB puts at 16 in flight (tools/strata-bench --inflight 16, which also measures gets),
  BENCH_RUNS runs of BENCH_SECONDS against each server, alternating, the medians reported:
  `BENCH s3_put_1k_c16_qps ... vs local <ratio>`.
- Publication lag on S3 under that put load: Admin.Stats polled every few ms during the S3 runs;
  each time the published generation moves, its `last_publish_lag_us` (the newest batch's time
  from its first commit to its manifest being published) is one sample; p50 and p99 of those.
- strata-populate MB/s on S3 against local disk, in **standalone** mode (the values travel in
  Kv.Commit and the server writes them): coordinator-mode writers write their files directly into
  the store's directory, which an S3 prefix is not. A generated volume of S3_BENCH_POPULATE_MIB
  (default 256), 4 writers, --block 2, each on a fresh server.
- Ceph itself: startup seconds and the daemons' resident memory after the load.

When Ceph is not installed or does not start, one line says so and the exit status is 0 (a
benchmark, not a test). Prints BENCH lines (tools/README.md).
Environment: STRATA_SERVER_BIN, POPULATE_BIN, GENVOL_BIN, PYTHONPATH with the strata package.
"""
import argparse
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "s3"))
sys.path.insert(0, os.path.join(ROOT, "tests", "populate"))
import rgw  # noqa: E402
from popcommon import Server, genvol, populate  # noqa: E402

import strata  # noqa: E402


def bench_once(bench, addr, seconds):
    """{figure name: value} of one strata-bench --inflight 16 run."""
    p = subprocess.run([bench, "--addr", addr, "--inflight", "16", "--seconds", str(seconds)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=600)
    if p.returncode != 0:
        raise RuntimeError("strata-bench against %s: exit %d: %s" % (addr, p.returncode,
                                                                     p.stderr.decode()[-400:]))
    return {m.group(1): float(m.group(2))
            for m in re.finditer(r"^BENCH (\S+) ([0-9.]+)", p.stdout.decode(), re.M)}


class LagSampler:
    """Polls Admin.Stats; one lag sample per move of the published generation."""

    def __init__(self, addr):
        self.c = strata.Client(addr, timeout=10)
        self.samples, self.polls, self.moves = [], 0, 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        last = None
        while not self.stop.is_set():
            st = self.c.stats().store
            self.polls += 1
            if last is not None and st.published_generation != last:
                self.samples.append(st.last_publish_lag_us / 1000.0)
                self.moves += 1
            last = st.published_generation
            time.sleep(0.003)

    def finish(self):
        self.stop.set()
        self.t.join()
        self.c.close()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else 0.0


def timed_populate(path, vol, extra):
    s = Server(path, extra)
    try:
        t0 = time.monotonic()
        r = populate(vol, "seg/", s.addr, "--workers", "4", "--block", "2", "--standalone")
        secs = time.monotonic() - t0
        j = r["json"] or {}
        if r["rc"] != 0 or j.get("failed") != 0:
            raise RuntimeError("populate on %s failed: %r" % (path, r)[:600])
        return j["bytes"] / 1e6 / secs
    finally:
        s.stop()


def line(name, v, unit, anchor=None, av=None):
    if anchor:
        print("BENCH %s %.1f %s vs %s %.3f" % (name, v, unit, anchor, v / av if av else 0.0), flush=True)
    else:
        print("BENCH %s %.1f %s" % (name, v, unit), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--bench", required=True, help="tools/strata-bench")
    a = ap.parse_args()
    runs = int(os.environ.get("BENCH_RUNS", "3"))
    seconds = float(os.environ.get("BENCH_SECONDS", "2"))
    pop_mib = int(os.environ.get("S3_BENCH_POPULATE_MIB", "256"))
    missing = [t for t in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin") if not shutil.which(t)]
    if missing:
        print("bench-s3: Ceph is not installed (%s missing): no S3 figures" % ", ".join(missing))
        return 0
    shutil.rmtree(a.dir, ignore_errors=True)
    os.makedirs(a.dir)
    cluster = rgw.Cluster(os.path.join(a.dir, "rgw"))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    servers = []
    try:
        try:
            env, stats = cluster.start()
        except rgw.StartError as e:
            print("bench-s3: Ceph did not start (%s): no S3 figures" % e)
            return 0
        os.environ.update(env)
        print("bench-s3: Ceph %s, radosgw at %s up in %.1f s; %d CPUs; %s" % (
            subprocess.run(["ceph", "--version"], stdout=subprocess.PIPE).stdout.decode().split()[2],
            env["STRATA_S3_ENDPOINT"], stats["startup_s"], os.cpu_count(),
            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())), flush=True)
        s3_flags = ["--data-url", "s3://%s/bench-%s" % (env["STRATA_S3_BUCKET"], secrets.token_hex(3)),
                    "--s3-endpoint", env["STRATA_S3_ENDPOINT"], "--s3-region", env["AWS_REGION"]]
        local = Server(os.path.join(a.dir, "local"), ["--grace-ms", "0"])
        servers.append(local)
        s3 = Server(os.path.join(a.dir, "s3"), ["--grace-ms", "0"] + s3_flags)
        servers.append(s3)
        res = {"local": [], "s3": []}
        lags, polls, moves = [], 0, 0
        for _ in range(runs):
            res["local"].append(bench_once(a.bench, local.addr, seconds))
            sampler = LagSampler(s3.addr)
            try:
                res["s3"].append(bench_once(a.bench, s3.addr, seconds))
            finally:
                sampler.finish()
            lags += sampler.samples
            polls += sampler.polls
            moves += sampler.moves
        med = {k: {f: statistics.median(r[f] for r in v) for f in v[0]} for k, v in res.items()}
        for f, unit in (("rpc_put_1k_c16_qps", "ops/s"), ("rpc_put_1k_c16_p50", "us"),
                        ("rpc_put_1k_c16_p99", "us"), ("rpc_get_1k_c16_qps", "ops/s")):
            name = f.replace("rpc_", "")
            line("local_" + name, med["local"][f], unit)
            line("s3_" + name, med["s3"][f], unit, "local", med["local"][f])
        line("s3_publish_lag_c16_p50", pct(lags, 0.5), "ms")
        line("s3_publish_lag_c16_p99", pct(lags, 0.99), "ms")
        print("bench-s3: publication lag from %d batches seen in %d Admin.Stats polls" % (len(lags), polls),
              flush=True)
        for s in servers:
            s.stop()
        servers = []
        vol = os.path.join(a.dir, "vol")
        layers = max(1, round(pop_mib / 228))  # a z-layer of 10x10 chunks of 64^3, 3 scales: ~228 MiB
        genvol(vol, "640,640,%d" % (layers * 64), "64,64,64", 3, 1)
        lp = timed_populate(os.path.join(a.dir, "pop-local"), vol, [])
        sp = timed_populate(os.path.join(a.dir, "pop-s3"), vol, s3_flags[:1] + [
            "s3://%s/pop-%s" % (env["STRATA_S3_BUCKET"], secrets.token_hex(3))] + s3_flags[2:])
        nbytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(vol) for f in fs)
        print("bench-s3: populate --standalone of a %.0f MiB volume" % (nbytes / 2 ** 20), flush=True)
        line("local_populate_MBps_standalone", lp, "MB/s")
        line("s3_populate_MBps_standalone", sp, "MB/s", "local", lp)
        rss = {n: rgw.rss_mib(p) for n, p in cluster.pids()}
        line("rgw_startup_s", stats["startup_s"], "s")
        line("rgw_idle_rss_MiB", stats["rss_total_mib"], "MiB")
        line("rgw_rss_after_load_MiB", sum(rss.values()), "MiB")
        print("bench-s3: resident MiB after the load: %s" % ", ".join("%s %.0f" % kv for kv in rss.items()))
        return 0
    finally:
        for s in servers:
            s.stop()
        if cluster.created:
            cluster.stop()
        shutil.rmtree(a.dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
