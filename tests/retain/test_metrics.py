#!/usr/bin/python3
"""The Prometheus endpoint (--metrics-listen) scraped with urllib and parsed: every metric
docs/operations.md "Metrics" lists is present, well formed, and moves when its action
happens (strata_ops_stuck needs an op 10 minutes old: only its presence is checked).

Environment: STRATA_SERVER_BIN, STRATACTL_BIN, PYTHONPATH with the strata package.
"""
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "stratactl"))
from tier_report import check, report  # noqa: E402
from test_retain import CTL, Server, ctl  # noqa: E402

import grpc  # noqa: E402
import strata  # noqa: E402
from strata.v1 import coordinator_pb2, coordinator_pb2_grpc  # noqa: E402

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs", "operations.md")
LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def documented():
    text = open(DOC).read().split("## Metrics", 1)[1]
    return re.findall(r"^\| `(strata_[a-z_]+)` \|", text, re.M)


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=30) as r:
        ctype = r.headers.get("Content-Type", "")
        body = r.read().decode()
    vals, types = {}, {}
    for ln in body.splitlines():
        if ln.startswith("# TYPE "):
            _, _, name, t = ln.split(" ", 3)
            types[name] = t
        elif ln and not ln.startswith("#"):
            m = LINE.match(ln)
            if not m:
                raise ValueError("bad line %r" % ln)
            vals[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return vals, types, ctype


def gc_under_load(srv, c, port):
    """A GC pass completes while commits run (it yields to them, storage/README.md "GC
    yields to commits", but is never stopped), and the endpoint answers during it."""
    import threading
    for i in range(300):  # one data file per commit (--no-commit-log): files to remove
        c.put(b"h%d" % (i % 8), b"x" * 500)
    ctl(srv.addr, "retention", "set", "--keep-versions", "2")
    stop, done = threading.Event(), [0]

    def load():
        lc = strata.Client(srv.addr)
        while not stop.is_set():
            lc.put(b"load%d" % (done[0] % 16), b"y" * 100)
            done[0] += 1
        lc.close()

    t = threading.Thread(target=load)
    t.start()
    try:
        while done[0] < 20:  # the load is running
            time.sleep(0.01)  # polling, not a synchronisation
        v0 = scrape(port)[0]
        gc = subprocess.Popen([CTL, "--addr", srv.addr, "--json", "gc"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
        at_start, scrapes, seen_running = done[0], 0, 0
        while gc.poll() is None:
            seen_running |= scrape(port)[0].get("strata_gc_running", 0) == 1
            scrapes += 1
        out, err = gc.communicate(timeout=600)
        at_end = done[0]
    finally:
        stop.set()
        t.join(120)
    import json
    j = json.loads(out.decode() or "null")
    check(gc.returncode == 0 and j and j["own_files_removed"] >= 200,
          "a GC pass completes while commits run and removes the dropped versions' files",
          err.decode() + str(j))
    v1 = scrape(port)[0]
    check(v1["strata_gc_runs_total"] == v0["strata_gc_runs_total"] + 1 and
          v1["strata_gc_work_total"] > v0["strata_gc_work_total"] and v1["strata_gc_running"] == 0,
          "the pass is counted, its work moved, it is no longer running", (v0, v1))
    print("gc under load: %d commits during the pass, %d scrapes answered during it, running seen: %d"
          % (at_end - at_start, scrapes, seen_running))


def main():
    t0 = time.time()
    root = tempfile.mkdtemp(prefix="strata-metrics-")
    # per-group files (--no-commit-log): each commit makes its own data file, so dropping
    # versions always leaves files for GC to remove
    srv = Server(os.path.join(root, "m"), ["--metrics-listen", "127.0.0.1:0", "--gc-grace", "0",
                                           "--gc-interval", "0", "--no-commit-log"])
    try:
        log = open(srv.data_dir + ".log").read()
        port = int(re.findall(r"event=metrics_ready addr=\S+ port=(\d+)", log)[-1])
        names = documented()
        check(len(names) >= 20, "docs/operations.md lists the metrics", names)
        v0, types, ctype = scrape(port)
        check(ctype.startswith("text/plain"), "the content type is Prometheus text", ctype)
        for n in names:
            present = n in types and any(k == n or k.startswith(n + "{") or k.startswith(n + "_")
                                         for k in v0)
            check(present, "documented metric %s is exported with a TYPE" % n)
        for n in types:
            check(n in names, "exported metric %s is documented" % n)
            if types[n] == "counter":
                check(n.endswith("_total"), "counter %s ends in _total" % n)
        c = strata.Client(srv.addr)
        for i in range(30):
            c.put(b"k%d" % (i % 4), b"x" * 200)
        for i in range(10):
            c.get(b"k1")
        c.acquire(7, [b"row1"], ttl=60)
        op = c.create_op("alice", "edit")
        ctl(srv.addr, "retention", "set", "--keep-versions", "2")
        c.put(b"k0", b"y")
        c.put(b"k0", b"z")
        ctl(srv.addr, "gc")
        # A waiter: op 9 waits for the row op 7 holds; seen waiting, then granted.
        import threading
        res = {}
        t = threading.Thread(target=lambda: res.update(r=c.acquire(9, [b"row1"], ttl=60, wait=60)))
        t.start()
        deadline = time.monotonic() + 60
        seen = 0
        while time.monotonic() < deadline and not seen:
            seen = scrape(port)[0].get("strata_lock_waiters", 0) >= 1
            time.sleep(0.01)  # polling with a deadline, not a synchronisation
        check(seen, "strata_lock_waiters counts a waiting acquire")
        c.release(7, [b"row1"])
        t.join(60)
        check(res.get("r") is not None and res["r"].acquired, "the waiter got the row")
        # A fenced commit by an op that does not hold the row: refused by the fence.
        try:
            c.commit(puts={b"f": b"1"}, fence=strata.Fence(11, [b"row1"]))
        except strata.errors.StrataError:
            pass
        ch = grpc.insecure_channel(srv.addr)
        coordinator_pb2_grpc.CoordinatorStub(ch).RegisterWriter(
            coordinator_pb2.RegisterWriterRequest(name="w", lease_ttl_ms=60000), timeout=30)
        ch.close()
        v1, _, _ = scrape(port)
        moved = {
            "strata_commits_total": 32, "strata_commit_groups_total": 1, "strata_bytes_written_total": 1,
            "strata_reads_total": 10, "strata_node_cache_hits_total": 1,
            "strata_commit_duration_seconds_count": 32, "strata_commit_duration_seconds_sum": 1e-9,
            'strata_locks_held{kind="temporal"}': 1, 'strata_ops{status="CREATED"}': 1,
            "strata_latest_generation": 32, "strata_oldest_retained_generation": 2,
            "strata_gc_runs_total": 1, "strata_gc_scanned_files_total": 1, "strata_gc_scanned_bytes_total": 1,
            "strata_gc_removed_files_total": 1, "strata_gc_removed_bytes_total": 1,
            "strata_coordinator_writers_live": 1, "strata_rpc_calls_total": 40,
            "strata_lock_wait_duration_seconds_count": 1, "strata_fence_rejections_total": 1,
            # one put at a time: every group has one commit
            "strata_commit_group_size_count": 32, 'strata_commit_group_size_bucket{le="1"}': 32,
            "strata_commit_group_size_sum": 32, "strata_commit_group_bytes_count": 32,
            "strata_commit_group_bytes_sum": 32 * 200, "strata_gc_work_total": 1,
        }
        for k, d in moved.items():
            check(v1.get(k, 0) - v0.get(k, 0) >= d, "%s moved by at least %g" % (k, d),
                  (v0.get(k), v1.get(k)))
        check(v1.get("strata_node_cache_misses_total", -1) >= 0, "cache misses exported")
        check(v1.get('strata_commit_duration_seconds_bucket{le="+Inf"}') ==
              v1.get("strata_commit_duration_seconds_count"), "the +Inf bucket is the count")
        for h, total, sum_of in (("strata_commit_group_size", "strata_commit_groups_total",
                                  "strata_commits_total"),
                                 ("strata_commit_group_bytes", "strata_commit_groups_total",
                                  "strata_bytes_written_total")):
            buckets = sorted((float(k.split('"')[1]), val) for k, val in v1.items()
                             if k.startswith(h + "_bucket{le=") and "+Inf" not in k)
            counts = [val for _, val in buckets] + [v1.get(h + '_bucket{le="+Inf"}')]
            check(len(buckets) >= 5 and counts == sorted(counts), "%s: buckets cumulative" % h, counts)
            check(counts[-1] == v1.get(h + "_count") == v1.get(total),
                  "%s: +Inf bucket = count = %s" % (h, total), (counts[-1], v1.get(total)))
            check(v1.get(h + "_sum") == v1.get(sum_of), "%s: sum = %s" % (h, sum_of))
        rc, j, err = ctl(srv.addr, "stats")
        gs = (j or {}).get("store", {}).get("group_size") or {}
        check(rc == 0 and len(gs.get("counts", [])) == len(gs.get("le", [])) + 1 and
              sum(gs["counts"]) == j["store"]["commit_groups"] and gs["le"][0] == 1,
              "stratactl stats --json: the group size histogram adds up to commit_groups", j)
        p = subprocess.run([CTL, "--addr", srv.addr, "stats"], stdout=subprocess.PIPE, timeout=60)
        check(b"groups by commits: <=1: " in p.stdout, "stratactl stats prints the group sizes",
              p.stdout.decode())
        try:
            c.get(b"k0", at=strata.pins.Generation(1))
        except strata.errors.OutOfRange:
            pass
        v2, _, _ = scrape(port)
        check(v2["strata_rpc_calls_failed_total"] > v1["strata_rpc_calls_failed_total"],
              "strata_rpc_calls_failed_total moves on a failed call")
        check(v2["strata_gc_waiting_files"] >= 0 and v2["strata_ops_stuck"] >= 0 and
              v2["strata_rpc_calls_active"] >= 0, "the gauges are present")
        c.set_status(op.op_id, strata.types.OpStatus.SUCCESS)
        v3, _, _ = scrape(port)
        check(v3['strata_ops{status="SUCCESS"}'] == v2['strata_ops{status="SUCCESS"}'] + 1,
              "strata_ops moves between statuses")
        gc_under_load(srv, c, port)
        # stratactl stats --watch: the same figures as a live view (not a terminal here:
        # views are appended)
        p = subprocess.run([CTL, "--addr", srv.addr, "stats", "--watch", "--interval", "100ms",
                            "--count", "2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = p.stdout.decode()
        check(p.returncode == 0 and out.count("commits/s") == 2 and "retained v" in out and
              "gc runs" in out, "stats --watch prints two views", out + p.stderr.decode())
        c.close()
        try:
            urllib.request.urlopen("http://127.0.0.1:%d/other" % port, timeout=30)
            check(False, "another path is 404")
        except urllib.error.HTTPError as e:
            check(e.code == 404, "another path is 404", e.code)
    finally:
        srv.stop()
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
