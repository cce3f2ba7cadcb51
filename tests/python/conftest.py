"""Fixtures: a real strata-server ($STRATA_SERVER_BIN) on a temporary data directory.

The server listens on 127.0.0.1:0 the first time; its port comes from the
`event=ready ... port=N` log line. restart() starts it again on the same port and
data directory, as an operator restarting it would.
"""
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import strata

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER = os.environ.get("STRATA_SERVER_BIN", os.path.join(ROOT, "build/release/server/strata-server"))
START_LIMIT = 120  # seconds a server may take to come up on a loaded CI machine


class Server:
    """One strata-server process; start(), kill(), restart(), addr."""

    def __init__(self, data_dir, *args):
        self.data_dir = data_dir
        self.args = list(args)
        self.port = 0
        self.proc = None
        self.log_path = data_dir + ".log"

    def start(self):
        log = open(self.log_path, "a+")
        start_at = log.tell()
        self.proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:%d" % self.port,
                                      "--data-dir", self.data_dir, "--grace-ms", "0"] + self.args,
                                     stderr=log, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + START_LIMIT
        while time.monotonic() < deadline and self.proc.poll() is None:
            log.seek(start_at)
            m = re.search(r"event=ready .*port=(\d+)", log.read())
            if m:
                self.port = int(m.group(1))
                log.close()
                return self
            time.sleep(0.01)  # polling the log for readiness
        log.seek(0)
        text = log.read()
        log.close()
        self.kill()
        raise RuntimeError("strata-server did not start:\n" + text)

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def restart(self):
        self.kill()
        return self.start()


def _serve(tag, *args):
    d = tempfile.mkdtemp(prefix="strata-pytest-%s-" % tag)
    s = Server(os.path.join(d, "data"), *args).start()
    try:
        yield s
    finally:
        s.kill()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def server():
    """The server most tests share (their keys carry the test's name)."""
    yield from _serve("shared")


@pytest.fixture
def own_server():
    """A server of the test's own (for restarts)."""
    yield from _serve("own")


@pytest.fixture
def small_server():
    """A server whose message limit is 64 KiB (--max-message-bytes 65536)."""
    yield from _serve("small", "--max-message-bytes", "65536")


@pytest.fixture
def client(server):
    with strata.Client(server.addr, timeout=60) as c:
        yield c


@pytest.fixture
def prefix(request):
    """Keys unique to the test, so tests share one server without interfering."""
    return ("t/%s/" % request.node.name).encode()
