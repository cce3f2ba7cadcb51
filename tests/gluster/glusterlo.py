"""GlusterFS on loopback for the gluster tier (tests/gluster/test_gluster.py) and
`make bench-gluster` (tools/bench/gluster_bench.py): Debian's glusterd started by hand (no
systemd), one volume of one brick or `replica 2` on two directories, mounted twice with
the FUSE client (two mounts stand in for two machines), and everything torn down again.

    with Gluster(scratch, replica=2) as g:
        g.mounts  # [mount A, mount B], two FUSE mounts of one volume

Isolation: glusterd runs with a volfile of our own whose working directory is under
`scratch`, so nothing is written to /var/lib/glusterd; what glusterd creates under
/var/run/gluster (brick pid files and sockets) and /var/run/glusterd.socket is removed
at the end when it was not there before; the brick processes log to
/var/log/glusterfs/bricks/<brick path>.log, which is removed too; the mounts log into
`scratch`. Gluster allows one glusterd per machine (port 24007): a flock on LOCK_PATH
serialises users, and STATE_PATH records what is up so that the next user tears down
what a SIGKILLed one left (processes are killed by PID, and only when their command
line names our working directory or volume). Any failure to start raises GlusterError
with the reason and the tails of the logs; `down()` is safe after any failure and runs
from `__exit__`.
"""
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import time

LOCK_PATH = "/run/lock/strata-gluster.lock"
STATE_PATH = "/run/lock/strata-gluster.state"
RUN_DIR = "/var/run/gluster"
GLUSTERD_SOCK = "/var/run/glusterd.socket"
GLUSTERD_PORT = 24007
BRICK_LOG_DIR = "/var/log/glusterfs/bricks"
VOLUME = "strata-t"


class GlusterError(Exception):
    pass


def loopback_host():
    """A name of this machine that resolves to 127.0.0.1 only: Gluster refuses a brick on
    `localhost` or an address, and a name resolving elsewhere would not be loopback."""
    tried = []
    for name in (socket.gethostname(), socket.getfqdn()):
        if not name or name in tried or name == "localhost":
            continue
        tried.append(name)
        try:
            addrs = {ai[4][0] for ai in socket.getaddrinfo(name, None, socket.AF_INET)}
        except socket.gaierror:
            continue
        if addrs and all(a.startswith("127.") for a in addrs):
            return name
    raise GlusterError("no name of this machine resolves to 127.0.0.1 (tried %s); Gluster "
                       "refuses localhost bricks: add the host name to /etc/hosts" % tried)


def _bin(name):
    """The path of a GlusterFS program (in /usr/sbin, which a non-root PATH may lack)."""
    return shutil.which(name) or next((d + name for d in ("/usr/sbin/", "/sbin/")
                                       if os.path.exists(d + name)), None)


def version():
    """glusterd's version line ("glusterfs 10.3"), or "" when it is not installed."""
    b = _bin("glusterd")
    return _run([b, "--version"], timeout=30)[1].splitlines()[0] if b else ""


def _cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError):
        return ""


def _kill(pid, needles, wait_s=10.0):
    """SIGTERM, then SIGKILL after wait_s, to pid if it is alive and its command line
    contains every one of needles (a reused PID is left alone)."""
    ours = lambda: all(n in _cmdline(pid) for n in needles)  # noqa: E731
    if not pid or not ours():
        return
    for sig, limit in ((signal.SIGTERM, wait_s), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        t0 = time.monotonic()
        while time.monotonic() - t0 < limit:
            if not ours() or _zombie(pid):
                return
            time.sleep(0.05)


def _zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


def _run(argv, timeout=120):
    try:
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, "%s: no answer after %d s" % (" ".join(argv), timeout)
    return p.returncode, p.stdout.decode(errors="replace").strip()


def _mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def _port_taken(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("0.0.0.0", port))
        return False
    except OSError:
        return True
    finally:
        s.close()


class Gluster:
    """One volume (1 brick, or replica 2) on loopback, mounted twice under scratch."""

    def __init__(self, scratch, replica=1, log=print):
        if replica not in (1, 2):
            raise ValueError("replica must be 1 or 2")
        self.scratch = os.path.realpath(scratch)
        self.replica = replica
        self.log = log
        self.workdir = os.path.join(self.scratch, "glusterd")
        self.bricks = [os.path.join(self.scratch, "brick%d" % i) for i in range(1, replica + 1)]
        self.mounts = [os.path.join(self.scratch, m) for m in ("mntA", "mntB")]
        self.lock_fd = None
        self.state = {}
        self.up_s = self.down_s = 0.0

    # --- the lock and the record of what is up -------------------------------------------
    def _lock(self, limit_s=900):
        self.lock_fd = os.open(LOCK_PATH, os.O_RDWR | os.O_CREAT, 0o644)
        t0 = time.monotonic()
        said = False
        while True:
            try:
                fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not said:
                    self.log("gluster: waiting for %s (another user of Gluster on this machine)"
                             % LOCK_PATH)
                    said = True
                if time.monotonic() - t0 > limit_s:
                    raise GlusterError("%s still locked after %d s: another run uses Gluster "
                                       "(one glusterd per machine)" % (LOCK_PATH, limit_s))
                time.sleep(0.5)

    def _save(self):
        tmp = STATE_PATH + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f)
        os.replace(tmp, STATE_PATH)

    def _recover_stale(self):
        """A previous user was killed before its teardown: tear down what it recorded."""
        try:
            with open(STATE_PATH) as f:
                old = json.load(f)
        except (OSError, ValueError):
            return
        self.log("gluster: tearing down what an interrupted run left (%s)" % STATE_PATH)
        _teardown(old, self.log)

    # --- up -------------------------------------------------------------------------------
    def up(self):
        t0 = time.monotonic()
        self._lock()
        try:
            self._recover_stale()
            self._up()
        except BaseException:
            self.down()
            raise
        self.up_s = time.monotonic() - t0
        self.log("gluster: %s up in %.1f s: %s" % (self.describe(), self.up_s, self.mounts))
        return self

    def describe(self):
        return "one brick" if self.replica == 1 else "replica 2"

    def _up(self):
        for b in ("glusterd", "gluster", "glusterfs", "mount.glusterfs"):
            if not _bin(b):
                raise GlusterError("GlusterFS is not installed (%s not found): Debian packages "
                                   "glusterfs-server and glusterfs-client (make gluster-deps)" % b)
        host = loopback_host()
        if _port_taken(GLUSTERD_PORT):
            raise GlusterError("port %d is taken (another glusterd? Gluster allows one per "
                               "machine)" % GLUSTERD_PORT)
        st = self.state = {"workdir": self.workdir, "volume": VOLUME, "mounts": [],
                           "glusterd_pid": 0, "pids": [], "logs": [],
                           "run_dir_existed": os.path.isdir(RUN_DIR),
                           "run_before": sorted(os.listdir(RUN_DIR)) if os.path.isdir(RUN_DIR) else [],
                           "sock_existed": os.path.exists(GLUSTERD_SOCK),
                           "remove": [self.workdir] + self.bricks}
        self._save()
        for d in [self.workdir] + self.bricks + self.mounts:
            if os.path.isdir(d) and not _mounted(d):
                shutil.rmtree(d)
            os.makedirs(d, exist_ok=True)
        vol = os.path.join(self.scratch, "glusterd.vol")
        with open("/etc/glusterfs/glusterd.vol") as f:
            text = f.read()
        if "/var/lib/glusterd" not in text:
            raise GlusterError("/etc/glusterfs/glusterd.vol names no working directory "
                               "/var/lib/glusterd to replace")
        with open(vol, "w") as f:
            f.write(text.replace("/var/lib/glusterd", self.workdir))
        self.glusterd_log = os.path.join(self.scratch, "glusterd.log")
        p = subprocess.Popen([_bin("glusterd"), "-N", "-f", vol, "-l", self.glusterd_log,
                              "-p", os.path.join(self.scratch, "glusterd.pid")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                             start_new_session=True)
        self.glusterd = p
        st["glusterd_pid"] = p.pid
        self._save()
        t0 = time.monotonic()
        while True:
            rc, out = _run([_bin("gluster"), "--mode=script", "volume", "list"], timeout=30)
            if rc == 0:
                break
            if p.poll() is not None:
                raise GlusterError("glusterd exited with status %d:\n%s"
                                   % (p.returncode, _tail(self.glusterd_log)))
            if time.monotonic() - t0 > 60:
                raise GlusterError("glusterd does not answer after 60 s (%s):\n%s"
                                   % (out, _tail(self.glusterd_log)))
            time.sleep(0.2)
        argv = [_bin("gluster"), "--mode=script", "volume", "create", VOLUME]
        if self.replica == 2:
            argv += ["replica", "2"]
        argv += ["%s:%s" % (host, b) for b in self.bricks] + ["force"]
        self._gluster(argv)
        st["volume_created"] = True
        for b in self.bricks:
            st["logs"].append(os.path.join(BRICK_LOG_DIR, b.strip("/").replace("/", "-") + ".log"))
        self._save()
        self._gluster([_bin("gluster"), "--mode=script", "volume", "start", VOLUME])
        st["pids"] = self._volume_pids()
        self._save()
        for m in self.mounts:
            mlog = m + ".log"
            st["mounts"].append(m)
            self._save()
            rc, out = _run(["mount", "-t", "glusterfs", "-o", "log-file=" + mlog,
                            "%s:/%s" % (host, VOLUME), m], timeout=60)
            if rc != 0 or not _mounted(m):
                raise GlusterError("mount -t glusterfs %s:/%s %s failed (%d): %s\n%s"
                                   % (host, VOLUME, m, rc, out, _tail(mlog)))
        st["pids"] = sorted(set(st["pids"]) | set(self._client_pids()))
        self._save()
        # Two machines' view: what one mount writes the other reads.
        probe = os.path.join(self.mounts[0], ".strata-gluster-probe")
        with open(probe, "w") as f:
            f.write("probe")
        with open(os.path.join(self.mounts[1], ".strata-gluster-probe")) as f:
            if f.read() != "probe":
                raise GlusterError("mount B does not read what mount A wrote")
        os.unlink(probe)

    def _gluster(self, argv):
        rc, out = _run(argv, timeout=120)
        if rc != 0:
            raise GlusterError("%s failed (%d): %s\n%s" % (" ".join(argv), rc, out,
                                                          _tail(self.glusterd_log)))
        return out

    def _volume_pids(self):
        """The brick (and replica's self-heal daemon) PIDs from glusterd's pid files."""
        pids = []
        for d in (os.path.join(RUN_DIR, "vols", VOLUME), os.path.join(RUN_DIR, "shd", VOLUME)):
            for n in os.listdir(d) if os.path.isdir(d) else []:
                if n.endswith(".pid"):
                    try:
                        with open(os.path.join(d, n)) as f:
                            pids.append(int(f.read().strip()))
                    except (OSError, ValueError):
                        pass
        return pids

    def _client_pids(self):
        pids = []
        for n in os.listdir("/proc"):
            if n.isdigit():
                c = _cmdline(int(n))
                if "--volfile-id=/%s" % VOLUME in c and any(m in c for m in self.mounts):
                    pids.append(int(n))
        return pids

    # --- down -----------------------------------------------------------------------------
    def down(self):
        t0 = time.monotonic()
        errors = []
        if self.state:
            errors = _teardown(self.state, self.log)
            if getattr(self, "glusterd", None):
                self.glusterd.poll()
            self.state = {}
        if self.lock_fd is not None:
            os.close(self.lock_fd)
            self.lock_fd = None
        self.down_s = time.monotonic() - t0
        return errors

    def __enter__(self):
        return self.up()

    def __exit__(self, *exc):
        errors = self.down()
        if errors and exc[0] is None:
            raise GlusterError("teardown: " + "; ".join(errors))


def _teardown(st, log):
    """Unmounts, stops and deletes the volume, kills glusterd and whatever of the volume's
    processes is left (by PID), removes what was created. Returns what went wrong."""
    errors = []
    for m in st.get("mounts", []):
        if _mounted(m):
            rc, out = _run(["umount", m], timeout=60)
            if rc != 0:
                errors.append("umount %s: %s" % (m, out))
                _run(["umount", "-l", m], timeout=60)
    gd = st.get("glusterd_pid", 0)
    workdir = st.get("workdir", "")
    if st.get("volume_created") and gd and workdir in _cmdline(gd):
        rc, out = _run([_bin("gluster"), "--mode=script", "volume", "stop", st["volume"], "force"])
        if rc != 0:
            errors.append("volume stop: " + out)
        rc, out = _run([_bin("gluster"), "--mode=script", "volume", "delete", st["volume"]])
        if rc != 0:
            errors.append("volume delete: " + out)
    _kill(gd, ["glusterd", workdir])
    for pid in st.get("pids", []):
        _kill(pid, ["/usr/sbin/glusterfs", st.get("volume", VOLUME)])
    if os.path.isdir(RUN_DIR):
        keep = set(st.get("run_before", []))
        for n in os.listdir(RUN_DIR):
            if n not in keep:
                p = os.path.join(RUN_DIR, n)
                shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.unlink(p)
        if st.get("run_dir_existed") is False:
            shutil.rmtree(RUN_DIR, ignore_errors=True)
        else:
            for sub in ("vols", "shd"):
                shutil.rmtree(os.path.join(RUN_DIR, sub, st.get("volume", VOLUME)),
                              ignore_errors=True)
    if not st.get("sock_existed", True) and os.path.exists(GLUSTERD_SOCK):
        os.unlink(GLUSTERD_SOCK)
    for p in st.get("logs", []):
        if os.path.exists(p):
            os.unlink(p)
    for d in st.get("remove", []):
        if not any(_mounted(m) for m in st.get("mounts", [])):
            shutil.rmtree(d, ignore_errors=True)
    for m in st.get("mounts", []):
        if not _mounted(m):
            shutil.rmtree(m, ignore_errors=True)
    try:
        os.unlink(STATE_PATH)
    except FileNotFoundError:
        pass
    if errors:
        log("gluster: teardown: " + "; ".join(errors))
    return errors
