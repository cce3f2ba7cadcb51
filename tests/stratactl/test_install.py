#!/usr/bin/python3
"""make install and make run, as a new user does them (issue 18).

1. `make install DESTDIR=$tmp PREFIX=/usr/local` installs the binaries, both man pages,
   the C client library (libstrata_rpc.a, libstrata.a), its headers and strata.pc.
2. tests/stratactl/install_client.c is copied out of the tree and built with
   `cc client.c $(pkg-config --cflags --libs strata)`, pkg-config pointed into $tmp with
   PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR; it runs against the *installed*
   strata-server: Health SERVING, a put, a get.
3. `make run PORT=P DATA_DIR=D` serves on P over D: Health SERVING there, D created with
   its FORMAT marker, the server's pid (event=ready, D/server.lock) is make's child;
   SIGTERM to that pid stops it and make exits 0.

Environment: STRATA_REPO (the source tree), STRATA_BUILD (its build directory).
Prints cmocka-style "[  PASSED  ]" / "[  FAILED  ]" lines for tests/run-tier.sh.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from tier_report import check, free_port, report

REPO = os.environ["STRATA_REPO"]
BUILD = os.environ.get("STRATA_BUILD", "build")


def clean_env(**extra):
    """The environment without the parent make's jobserver (its fds are not ours)."""
    e = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
    e.update(extra)
    return e


def make(*args, timeout=1800):
    return subprocess.run(["make", "--no-print-directory", "-C", REPO, "BUILD=" + BUILD] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=clean_env(),
                          timeout=timeout)


def wait_ready(proc, log_path, seconds=120):
    """The (pid, port) of the event=ready line, or None if the process exits first."""
    start = time.monotonic()
    while time.monotonic() - start < seconds:
        with open(log_path) as f:
            m = re.search(r"event=ready pid=(\d+) port=(\d+)", f.read())
        if m:
            return int(m.group(1)), int(m.group(2))
        if proc.poll() is not None:
            return None
        time.sleep(0.02)
    return None


def stop(proc, pid=None):
    """SIGTERM to pid (default the process), then wait; SIGKILL after two minutes."""
    if proc.poll() is None:
        try:
            os.kill(pid or proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        if pid:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()
        return "still running 120 s after SIGTERM"


def health(ctl, port):
    p = subprocess.run([ctl, "--addr", "127.0.0.1:%d" % port, "--timeout", "30s", "health"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    return p.returncode, p.stdout + p.stderr


def test_install(tmp):
    root = os.path.join(tmp, "root")
    prefix = os.path.join(root, "usr", "local")
    r = make("install", "DESTDIR=" + root, "PREFIX=/usr/local")
    check(r.returncode == 0, "make install DESTDIR=... PREFIX=/usr/local", r.stdout[-3000:])
    want = ["bin/strata-server", "bin/stratactl", "share/man/man1/strata-server.1",
            "share/man/man1/stratactl.1", "lib/libstrata.a", "lib/libstrata_rpc.a",
            "lib/pkgconfig/strata.pc", "include/strata/rpc/client.h", "include/strata/rpc/methods.h",
            "include/strata/common/err.h", "include/strata/strata/v1/kv.pb-c.h",
            "include/strata/grpc/health/v1/health.pb-c.h"]
    missing = [w for w in want if not os.path.isfile(os.path.join(prefix, w))]
    check(not missing, "make install installs binaries, man pages, libraries, headers, strata.pc", missing)
    if missing:
        return
    with open(os.path.join(prefix, "lib/pkgconfig/strata.pc")) as f:
        pc = f.read()
    check("prefix=/usr/local\n" in pc and root not in pc and "Requires: grpc" in pc and
          "-lstrata_rpc -lstrata" in pc and "-lrocksdb" in pc and "libzstd libb2" in pc,
          "strata.pc names PREFIX (not DESTDIR) and the libraries with their dependencies", pc)
    p = subprocess.run([os.path.join(prefix, "bin/strata-server"), "--version"], stdout=subprocess.PIPE, text=True)
    check(p.returncode == 0 and p.stdout.startswith("strata-server "), "installed strata-server --version", p.stdout)

    # An out-of-tree client through pkg-config.
    src = os.path.join(tmp, "client")
    os.makedirs(src)
    shutil.copy(os.path.join(REPO, "tests/stratactl/install_client.c"), os.path.join(src, "client.c"))
    env = clean_env(PKG_CONFIG_PATH=os.path.join(prefix, "lib/pkgconfig"), PKG_CONFIG_SYSROOT_DIR=root)
    p = subprocess.run("cc -std=c11 -Wall -Werror client.c $(pkg-config --cflags --libs strata) -o client",
                       shell=True, cwd=src, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(p.returncode == 0, "an out-of-tree C client builds with pkg-config --cflags --libs strata", p.stdout[-3000:])
    if p.returncode:
        return
    log = os.path.join(tmp, "installed-server.log")
    with open(log, "w") as lf:
        srv = subprocess.Popen([os.path.join(prefix, "bin/strata-server"), "--listen", "127.0.0.1:0",
                                "--data-dir", os.path.join(tmp, "installed-data")], stderr=lf)
    try:
        ready = wait_ready(srv, log)
        check(ready is not None, "the installed strata-server starts")
        if ready:
            c = subprocess.run([os.path.join(src, "client"), "127.0.0.1:%d" % ready[1]], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, timeout=120)
            check(c.returncode == 0 and c.stdout == "health: SERVING\nput at v1\nget: hello\n",
                  "the client talks to the installed server: Health, put, get", (c.stdout, c.stderr))
    finally:
        check(stop(srv) == 0, "the installed server exits 0 on SIGTERM")


def test_make_run(tmp):
    port = free_port()
    data = os.path.join(tmp, "run data")  # a space: DATA_DIR is quoted
    log = os.path.join(tmp, "make-run.log")
    ctl = os.path.join(REPO, BUILD, "release/tools/stratactl")
    with open(log, "w") as lf:
        proc = subprocess.Popen(["make", "--no-print-directory", "-C", REPO, "BUILD=" + BUILD, "run",
                                 "PORT=%d" % port, "DATA_DIR=" + data], stdout=lf, stderr=subprocess.STDOUT,
                                env=clean_env())
    pid = None
    try:
        ready = wait_ready(proc, log, seconds=600)  # make run builds first (up to date here)
        with open(log) as f:
            text = f.read()
        check(ready is not None and ready[1] == port, "make run PORT=%d serves on that port" % port, text[-3000:])
        if not ready:
            return
        pid = ready[0]
        rc, out = health(ctl, port)
        check(rc == 0 and "SERVING" in out, "Health is SERVING on PORT", out)
        check(os.path.isfile(os.path.join(data, "FORMAT")) and os.path.isdir(os.path.join(data, "kv")),
              "make run DATA_DIR=... created the data directory there")
        with open(os.path.join(data, "server.lock")) as f:
            check(f.read().strip() == str(pid), "DATA_DIR/server.lock holds the pid of event=ready")
        check(os.readlink("/proc/%d/exe" % pid).endswith("/strata-server"),
              "that pid is strata-server (the recipe execs it)")
    finally:
        rc = stop(proc, pid)
    check(rc == 0, "SIGTERM to the server's pid stops it and make run exits 0 (%s)" % rc)


def main():
    t0 = time.time()
    tmp = tempfile.mkdtemp(prefix="strata-install-")
    try:
        test_install(tmp)
        test_make_run(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
