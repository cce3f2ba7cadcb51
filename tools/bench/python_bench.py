#!/usr/bin/python3
"""The Python client's cost: durable 1 KiB puts and point gets through strata.Client
from 16 threads, next to the C driver (tools/strata-bench --inflight 16) measured in
the same run against the same strata-server. Prints

  BENCH c_driver_put_1k_c16_qps  <ops/s>
  BENCH python_put_1k_t16_qps    <ops/s> vs c_driver_put_1k_c16_qps <ratio>
  (and the same for gets)

Usage: python_bench.py --server BIN --c-driver BIN [--dir DIR] [--seconds S] [--threads N]
(run by `make bench-python`, which `make bench` calls; PYTHONPATH=build/python).
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import strata

VALUE = b"v" * 1024


def start_server(binary, data_dir):
    log = open(data_dir + ".log", "w+")
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--data-dir", data_dir],
                            stderr=log, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        log.seek(0)
        m = re.search(r"event=ready .*port=(\d+)", log.read())
        if m:
            return proc, "127.0.0.1:" + m.group(1)
        time.sleep(0.01)
    proc.kill()
    log.seek(0)
    sys.exit("python_bench: strata-server did not start:\n" + log.read())


def c_driver(binary, addr, threads, seconds):
    out = subprocess.run([binary, "--addr", addr, "--inflight", str(threads),
                          "--seconds", str(seconds)], capture_output=True, text=True, check=True)
    qps = dict(re.findall(r"^BENCH rpc_(put|get)_1k_c\d+_qps ([0-9.]+)", out.stdout, re.M))
    return float(qps["put"]), float(qps["get"])


def run_threads(n, seconds, body):
    """Runs body(thread_index, counter_list) in n threads for `seconds`; returns ops/s."""
    counts = [0] * n
    stop = threading.Event()
    errors = []

    def worker(i):
        rnd = random.Random(i)
        try:
            while not stop.is_set():
                body(i, rnd)
                counts[i] += 1
        except Exception as e:  # reported below: a failed call must not pass as fast
            errors.append(e)
            stop.set()

    ts = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in ts:
        t.join()
    if errors:
        sys.exit("python_bench: a call failed: %r" % errors[0])
    return sum(counts) / (time.monotonic() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--server", required=True)
    ap.add_argument("--c-driver", required=True)
    ap.add_argument("--dir", default=os.environ.get("STRATA_BENCH_DIR") or tempfile.gettempdir())
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("STRATA_BENCH_SECONDS") or 1.5))
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="python-bench-", dir=a.dir)
    proc, addr = start_server(a.server, os.path.join(work, "data"))
    try:
        c_put, c_get = c_driver(a.c_driver, addr, a.threads, a.seconds)
        client = strata.Client(addr)
        written = [0] * a.threads

        def put(i, rnd):
            client.put(b"pybench/%02d/%08d" % (i, written[i]), VALUE)
            written[i] += 1

        def get(i, rnd):
            j = rnd.randrange(a.threads)
            client.get(b"pybench/%02d/%08d" % (j, rnd.randrange(max(1, written[j]))))

        run_threads(a.threads, a.seconds / 3, lambda i, rnd: client.health())  # warm up
        py_put = run_threads(a.threads, a.seconds, put)
        py_get = run_threads(a.threads, a.seconds, get)
        client.close()
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)
    t = a.threads
    print("BENCH c_driver_put_1k_c%d_qps %.1f ops/s" % (t, c_put))
    print("BENCH python_put_1k_t%d_qps %.1f ops/s vs c_driver_put_1k_c%d_qps %.3f"
          % (t, py_put, t, py_put / c_put))
    print("BENCH c_driver_get_1k_c%d_qps %.1f ops/s" % (t, c_get))
    print("BENCH python_get_1k_t%d_qps %.1f ops/s vs c_driver_get_1k_c%d_qps %.3f"
          % (t, py_get, t, py_get / c_get))


if __name__ == "__main__":
    main()
