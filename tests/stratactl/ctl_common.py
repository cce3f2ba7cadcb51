"""What the tests/stratactl scripts share: the binaries from the environment, ctl() (one
stratactl subprocess, its Result), strata-server started and stopped, the ctl_fixture calls and the
key/listing helpers. ADDR is the address of the server a script shares between its tests: the
script sets ctl_common.ADDR once it has started it; ctl() uses it unless given addr=.

Environment: STRATACTL_BIN, STRATA_SERVER_BIN, CTL_FIXTURE_BIN (tests/stratactl/ctl_fixture: creates
ops, which stratactl itself cannot). Standard library only.
"""
import hashlib
import json
import os
import re
import struct
import subprocess
import shutil
import sys
import tempfile
import time

from tier_report import check, free_port, report  # noqa: F401 (free_port: for the scripts)

CTL = os.environ["STRATACTL_BIN"]
SERVER = os.environ["STRATA_SERVER_BIN"]
FIXTURE = os.environ["CTL_FIXTURE_BIN"]


ADDR = None


class Result:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr
        self.text = p.stdout.decode("utf-8", "replace")
        self.etext = p.stderr.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def __repr__(self):
        return "rc=%d stdout=%r stderr=%r" % (self.rc, self.text[:600], self.etext[:600])


def ctl(*args, stdin=None, addr=None, env=None, stdin_fd=None):
    e = dict(os.environ)
    e.pop("STRATA_ADDR", None)
    if env:
        e.update(env)
    argv = [CTL] + (["--addr", addr or ADDR] if addr is not False else []) + list(args)
    if stdin_fd is not None:
        p = subprocess.run(argv, stdin=stdin_fd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=120)
    else:
        p = subprocess.run(argv, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=e, timeout=120)
    return Result(p)


def start_server(data_dir, *args):
    """A server on data_dir with more flags `args`; returns (proc, port)."""
    log = open(data_dir + ".log", "w+")
    proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--data-dir", data_dir] + list(args),
                            stderr=log)
    # A server under ASan on a loaded machine can be slow to start: up to a minute.
    start = time.monotonic()
    while time.monotonic() - start < 60:
        log.seek(0)
        m = re.search(r"event=ready .*port=(\d+)", log.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.01)
    stop_server(proc)
    log.seek(0)
    print(log.read())
    sys.exit("strata-server did not start")


def stop_server(proc):
    """SIGTERM, then SIGKILL if it is still running after two minutes; returns the exit
    status (or a message), and never leaves the server running."""
    if proc.poll() is not None:
        return proc.returncode
    proc.terminate()
    try:
        return proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return "still running 120 s after SIGTERM"


def iso_ok(s):
    return isinstance(s, str) and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", s)


def usage_error(r):
    return r.rc == 2 and "usage: stratactl" in r.etext


def chunk_key(cid):
    be = struct.pack(">Q", cid)
    return hashlib.blake2b(be, digest_size=2).digest() + be


def block_key(x, y, z):
    be = struct.pack(">QQQ", x, y, z)
    return hashlib.blake2b(be, digest_size=2).digest() + be


def hx(b):
    return "0x" + b.hex()



def fixture_out(*args):
    rc, out, err = fixture(*args)
    check(rc == 0, "ctl_fixture %s" % " ".join(args), err)
    return out


def calls_active():
    """Admin.Stats calls_active, the Stats call itself included; -1 on error."""
    d = ctl("--json", "stats").json()
    return d["calls_active"] if d else -1


def wait_until(cond, seconds):
    """Polls cond for up to `seconds` of real time (slow machines); its last answer."""
    start = time.monotonic()
    while not cond():
        if time.monotonic() - start > seconds:
            return False
        time.sleep(0.05)
    return True


def lock_list_json(*args):
    r = ctl("--json", "lock", "list", *args)
    return r.json() if r.rc == 0 else None


def listed_lock(row):
    """The lock on `row` as lock list --json shows it, live or expired (a short TTL may
    run out before the listing on a slow machine), or None."""
    for args in ((), ("--expired",)):
        d = lock_list_json("--prefix", row, *args)
        if d and d["locks"]:
            return d["locks"][0]
    return None


def fixture(*args):
    p = subprocess.run([FIXTURE, ADDR] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return p.returncode, p.stdout.decode().strip(), p.stderr.decode()


def tty_stderr(*args):
    """Runs stratactl with stderr on a pseudo-terminal; (Result-like, what the terminal got)."""
    import pty
    import threading
    master, slave = pty.openpty()
    chunks = []

    def reader():
        while True:
            try:
                b = os.read(master, 4096)
            except OSError:
                break
            if not b:
                break
            chunks.append(b)

    t = threading.Thread(target=reader)
    t.start()
    try:
        p = subprocess.run([CTL, "--addr", ADDR] + list(args), stdout=subprocess.PIPE, stderr=slave, timeout=120)
    finally:
        os.close(slave)
        t.join()
        os.close(master)
    return p, b"".join(chunks).decode("utf-8", "replace")


def run_server_once(data_dir, listen="127.0.0.1:0", *extra):
    """Runs strata-server that is expected to refuse to start; returns (rc, stderr)."""
    p = subprocess.Popen([SERVER, "--listen", listen, "--data-dir", data_dir] + list(extra), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        stop_server(p)
        return "still running", ""
    return p.returncode, err


# A C function of the engines (lk_open, oplog_create, ctr_allocate, st_commit, ...): no
# message a user sees names one; they name the RPC or the command instead.
C_NAME = re.compile(r"\b(lk|oplog|ctr|st|srv|rpc|wreg)_[a-z_]+\b")




def serve(data_dir, tests):
    """Starts one server on data_dir, sets ADDR, runs tests (the script's test_ functions, or
    functools.partial of them, in order) against it, printing each one's name, and checks that
    the server exits 0 on SIGTERM, whatever the tests did, and that tests named every test_
    function of the script once (a test left out of the list would never run)."""
    global ADDR
    funcs = [getattr(t, "func", t) for t in tests]
    proc, port = start_server(data_dir)
    ADDR = "127.0.0.1:%d" % port
    try:
        for t, f in zip(tests, funcs):
            print("== %s" % f.__name__)
            t()
    finally:
        rc = stop_server(proc)
        check(rc == 0, "strata-server exits 0 on SIGTERM (%s)" % rc)
    script = vars(sys.modules[funcs[0].__module__])
    defined = sorted(n for n, v in script.items() if n.startswith("test_") and callable(v))
    ran = sorted(f.__name__ for f in funcs)
    check(ran == defined, "the script runs each of its %d test_ functions once" % len(defined), (ran, defined))


def serve_main(prefix, tests_for):
    """A script's main() when its tests share one server: a temporary directory named PREFIX...,
    the server's data directory in it, serve() of the tests that tests_for(tmp, data_dir) lists,
    then the report; returns the exit status."""
    tmp = tempfile.mkdtemp(prefix=prefix)
    data_dir = os.path.join(tmp, "data")
    t0 = time.time()
    serve(data_dir, tests_for(tmp, data_dir))
    shutil.rmtree(tmp, ignore_errors=True)
    return report(t0)
