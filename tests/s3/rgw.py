#!/usr/bin/python3
"""Ceph's S3 gateway (radosgw) on loopback, on demand: a one-node cluster under DIR.

    python3 tests/s3/rgw.py start DIR    # prints the endpoint, writes DIR/env
    python3 tests/s3/rgw.py stop DIR     # kills exactly the recorded daemons, removes DIR

`start` writes DIR/ceph.conf (a fresh fsid, auth off, msgr2 with crc, pools of size 1, small
caches), makes a monitor (127.0.0.1, a free port) and one bluestore OSD on a sparse file, starts
ceph-mon, ceph-osd and radosgw (beast on 127.0.0.1, a free port) in the foreground (-f) as
children of their own session, with every path (run dir, admin sockets, logs, data) under DIR.
Each daemon's pid goes to DIR/pids the moment it is started. It then creates an S3 user with
generated keys (radosgw-admin) and a bucket, round-trips an object, and writes DIR/env:

    STRATA_S3_ENDPOINT=http://127.0.0.1:PORT  STRATA_S3_BUCKET=...  AWS_ACCESS_KEY_ID=...
    AWS_SECRET_ACCESS_KEY=...  AWS_REGION=us-east-1

and DIR/stats (startup seconds, resident memory per daemon). A failed start stops what it
started, removes DIR, prints one line with the reason (and the failing daemon's log tail) and
exits 1. `stop` sends SIGTERM to each recorded pid that is still that daemon (its
/proc/PID/cmdline names the binary), SIGKILL after STOP_TIMEOUT seconds, then removes DIR.
No systemd, no /etc/ceph, no /var/lib/ceph. Needs root only as far as Ceph does not.
"""
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import string
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "stratactl"))
from s3http import S3, S3Error  # noqa: E402
from tier_report import free_port  # noqa: E402

STOP_TIMEOUT = 20
OSD_BLOCK_BYTES = 6 << 30  # sparse: only what bluestore writes takes disk space
DAEMONS = ("ceph-mon", "ceph-osd", "radosgw")


class StartError(Exception):
    pass


class Interrupted(BaseException):
    """SIGTERM or SIGINT during start: never taken for a step that is not ready yet."""


def conf_text(d, fsid, mon_port, rgw_port):
    return """[global]
fsid = {fsid}
mon_host = v2:127.0.0.1:{mon_port}
ms_bind_msgr1 = false
ms_bind_ipv6 = false
public_addr = 127.0.0.1
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# radosgw cannot reach the monitor with auth off unless the mon session is crc
ms_mon_client_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
keyring = {d}/keyring
run_dir = {d}/run
admin_socket = {d}/run/$name.asok
pid_file = {d}/run/$name.pid
log_file = {d}/log/$name.log
mon_cluster_log_file = {d}/log/cluster.log
log_to_stderr = false
err_to_stderr = true
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_allow_pool_delete = true
mon_warn_on_pool_no_redundancy = false
mon_max_pg_per_osd = 1000
mon_data_avail_warn = 2
mon_data_avail_crit = 1

[mon]
mon_data = {d}/mon/$cluster-$id
mon_initial_members = a

[osd]
osd_data = {d}/osd/$cluster-$id
osd_objectstore = bluestore
bluestore_block_create = true
bluestore_block_size = {block}
bluestore_block_db_create = false
bluestore_block_wal_create = false
bluestore_cache_autotune = false
bluestore_cache_size = 67108864
osd_memory_target = 536870912
osd_op_num_shards = 2
osd_op_num_threads_per_shard = 1
osd_max_object_name_len = 460
osd_max_object_namespace_len = 64

[client.rgw.strata]
rgw_frontends = beast endpoint=127.0.0.1:{rgw_port} tcp_nodelay=1
rgw_data = {d}/rgw
rgw_thread_pool_size = 32
rgw_enable_usage_log = false
rgw_dns_name = 127.0.0.1
rgw_init_timeout = 120
""".format(d=d, fsid=fsid, mon_port=mon_port, rgw_port=rgw_port, block=OSD_BLOCK_BYTES)


class Cluster:
    def __init__(self, d):
        self.d = os.path.abspath(d)
        self.conf = os.path.join(self.d, "ceph.conf")
        self.created = False  # DIR is ours to remove

    # --- processes ---------------------------------------------------------------
    def run(self, argv, what, timeout=60):
        """A Ceph tool to completion: its stdout, or StartError naming what failed."""
        try:
            p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL)
        except OSError as e:
            raise StartError("%s: %s" % (what, e))
        try:  # a timeout or an interrupt (a signal raises here) kills the tool too
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise StartError("%s: timed out after %d s (%s)" % (what, timeout, " ".join(argv)))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if p.returncode != 0:
            raise StartError("%s: exit %d: %s" % (what, p.returncode,
                                                   err.decode(errors="replace").strip()[-600:]))
        return out.decode()

    def spawn(self, name, argv):
        """Starts a daemon in the foreground in a session of its own (it outlives this
        process) and records its pid before anything else can fail."""
        out = open(os.path.join(self.d, "log", name + ".out"), "ab")
        try:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        except OSError as e:
            raise StartError("%s: %s" % (argv[0], e))
        with open(os.path.join(self.d, "pids"), "a") as f:
            f.write("%s %d\n" % (name, p.pid))
            f.flush()
            os.fsync(f.fileno())
        return p

    def tail(self, name, n=12):
        lines = []
        for suffix in (".out", ".log"):
            path = os.path.join(self.d, "log", name + suffix)
            try:
                lines += open(path, errors="replace").read().splitlines()[-n:]
            except OSError:
                pass
        return " | ".join(lines[-n:])

    def ceph(self, *args, timeout=60):
        return self.run(["ceph", "-c", self.conf, "--connect-timeout", "30"] + list(args),
                        "ceph " + " ".join(args), timeout)

    def wait(self, what, cond, proc, name, limit):
        t = time.monotonic()
        while True:
            if proc is not None and proc.poll() is not None:
                raise StartError("%s exited (status %d) before %s: %s" % (name, proc.returncode, what,
                                                                         self.tail(name)))
            try:
                if cond():
                    return
            except (StartError, OSError, http.client.HTTPException, S3Error):
                pass
            if time.monotonic() - t > limit:
                raise StartError("%s: not %s after %d s: %s" % (name, what, limit, self.tail(name)))
            time.sleep(0.2)

    # --- start -------------------------------------------------------------------
    def start(self, attempts=3):
        """Starts the cluster; a start that lost one of its ports to another process
        between the check and the bind is stopped and retried on new ports."""
        for i in range(attempts):
            try:
                return self._start()
            except StartError as e:
                if i + 1 == attempts or not self.created or not re.search(
                        r"[Aa]ddress already in use|EADDRINUSE|bind", str(e)):
                    raise
                print("rgw: a port was taken, starting again: %s" % str(e)[:200], file=sys.stderr)
                self.stop()
                self.created = False

    def _start(self):
        t0 = time.monotonic()
        if os.path.exists(self.d):
            raise StartError("%s exists: stop it first (rgw.py stop %s)" % (self.d, self.d))
        for tool in ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "monmaptool",
                     "ceph-authtool"):
            if not shutil.which(tool):
                raise StartError("%s is not installed (make test-s3 installs Ceph from Debian)" % tool)
        os.makedirs(self.d)
        self.created = True
        for sub in ("run", "log", "mon", "osd/ceph-0", "rgw"):
            os.makedirs(os.path.join(self.d, sub))
        fsid = str(uuid.uuid4())
        mon_port, rgw_port = free_port(), free_port()
        while rgw_port == mon_port:
            rgw_port = free_port()
        with open(self.conf, "w") as f:
            f.write(conf_text(self.d, fsid, mon_port, rgw_port))
        c = ["-c", self.conf]
        kr = os.path.join(self.d, "keyring")
        self.run(["ceph-authtool", "--create-keyring", kr, "--gen-key", "-n", "mon.",
                  "--cap", "mon", "allow *"], "ceph-authtool")
        monmap = os.path.join(self.d, "monmap")
        self.run(["monmaptool", "--create", "--fsid", fsid, "--addv", "a",
                  "[v2:127.0.0.1:%d]" % mon_port, monmap], "monmaptool")
        self.run(["ceph-mon"] + c + ["--mkfs", "-i", "a", "--monmap", monmap, "--keyring", kr],
                 "ceph-mon --mkfs")
        phases = {"mkfs_mon": time.monotonic() - t0}
        mon = self.spawn("ceph-mon", ["ceph-mon"] + c + ["-f", "-i", "a"])
        self.wait("answering", lambda: self.ceph("mon", "stat", timeout=40) is not None, mon,
                  "mon.a", 60)
        phases["mon_up"] = time.monotonic() - t0
        osd_uuid = str(uuid.uuid4())
        osd_id = self.ceph("osd", "new", osd_uuid).strip()
        if osd_id != "0":
            raise StartError("ceph osd new: expected id 0, got %r" % osd_id)
        self.run(["ceph-osd"] + c + ["-i", "0", "--mkfs", "--osd-uuid", osd_uuid], "ceph-osd --mkfs",
                 timeout=120)
        phases["mkfs_osd"] = time.monotonic() - t0
        osd = self.spawn("ceph-osd", ["ceph-osd"] + c + ["-f", "-i", "0"])

        def osd_up():
            j = json.loads(self.ceph("osd", "stat", "-f", "json", timeout=40))
            j = j.get("osdmap", j)
            return j.get("num_up_osds") == 1 and j.get("num_in_osds") == 1
        self.wait("up and in", osd_up, osd, "osd.0", 90)
        phases["osd_up"] = time.monotonic() - t0
        rgw = self.spawn("radosgw", ["radosgw"] + c + ["-f", "-n", "client.rgw.strata"])

        def rgw_answers():  # radosgw itself: an anonymous GET / lists no bucket
            conn = http.client.HTTPConnection("127.0.0.1", rgw_port, timeout=2)
            try:
                conn.request("GET", "/")
                return b"ListAllMyBucketsResult" in conn.getresponse().read()
            finally:
                conn.close()
        self.wait("listening on 127.0.0.1:%d" % rgw_port, rgw_answers, rgw, "client.rgw.strata", 120)
        phases["rgw_listening"] = time.monotonic() - t0
        alphabet = string.ascii_uppercase + string.digits
        access = "STRATA" + "".join(secrets.choice(alphabet) for _ in range(14))
        secret = secrets.token_urlsafe(30)
        self.run(["radosgw-admin"] + c + ["-n", "client.rgw.strata", "user", "create", "--uid", "strata",
                  "--display-name", "strata tests", "--access-key", access, "--secret-key", secret],
                 "radosgw-admin user create", timeout=60)
        bucket = "strata-" + secrets.token_hex(4)
        env = {"STRATA_S3_ENDPOINT": "http://127.0.0.1:%d" % rgw_port, "STRATA_S3_BUCKET": bucket,
               "AWS_ACCESS_KEY_ID": access, "AWS_SECRET_ACCESS_KEY": secret, "AWS_REGION": "us-east-1"}
        s3 = S3.from_env(env)

        def bucket_made():  # the new user's key may take a moment to be served
            return s3.request("PUT", "/" + bucket)[0] == 200
        self.wait("creating bucket " + bucket, bucket_made, rgw, "client.rgw.strata", 30)
        probe = secrets.token_bytes(1000)
        s3.put(bucket, "rgw-probe", probe)
        if s3.get(bucket, "rgw-probe") != probe:
            raise StartError("radosgw: an object did not round-trip (PUT then GET)")
        s3.delete(bucket, "rgw-probe")
        startup = time.monotonic() - t0
        with open(os.path.join(self.d, "env.tmp"), "w") as f:
            f.write("".join("%s=%s\n" % kv for kv in env.items()))
        os.rename(os.path.join(self.d, "env.tmp"), os.path.join(self.d, "env"))
        rss = {n: rss_mib(p) for n, p in self.pids()}
        stats = {"startup_s": round(startup, 1), "rss_mib": rss,
                 "phases_s": {k: round(v, 1) for k, v in phases.items()},
                 "rss_total_mib": round(sum(rss.values()), 1)}
        with open(os.path.join(self.d, "stats"), "w") as f:
            json.dump(stats, f)
        return env, stats

    # --- stop --------------------------------------------------------------------
    def pids(self):
        try:
            lines = open(os.path.join(self.d, "pids")).read().split("\n")
        except OSError:
            return []
        return [(ln.split()[0], int(ln.split()[1])) for ln in lines if len(ln.split()) == 2]

    def stop(self):
        """Stops exactly the recorded daemons, then removes DIR. Returns the names
        that needed SIGKILL and each daemon's resident MiB just before the stop."""
        live = [(n, p) for n, p in self.pids() if is_daemon(p, n)]
        rss = {n: rss_mib(p) for n, p in live}
        for n, p in live:
            signal_pid(p, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(is_daemon(p, n) for n, p in live):
            time.sleep(0.1)
        killed = []
        for n, p in live:
            if is_daemon(p, n):
                signal_pid(p, signal.SIGKILL)
                killed.append(n)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(is_daemon(p, n) for n, p in live):
            time.sleep(0.05)
        left = [n for n, p in live if is_daemon(p, n)]
        if left:
            raise StartError("still running after SIGKILL: %s" % ", ".join(left))
        shutil.rmtree(self.d, ignore_errors=True)
        return killed, rss


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def is_daemon(pid, name):
    """The pid is alive (not a zombie) and still runs the named binary: a pid reused by
    another process after the daemon died is never signalled."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                return False
        argv0 = open("/proc/%d/cmdline" % pid, "rb").read().split(b"\0")[0].decode(errors="replace")
    except (OSError, IndexError):
        return False
    return os.path.basename(argv0) == name


def rss_mib(pid):
    try:
        for ln in open("/proc/%d/status" % pid):
            if ln.startswith("VmRSS:"):
                return round(int(ln.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def read_env(d):
    """DIR/env as a dict."""
    env = {}
    for ln in open(os.path.join(d, "env")):
        if "=" in ln:
            k, v = ln.strip().split("=", 1)
            env[k] = v
    return env


def main(argv):
    if len(argv) != 3 or argv[1] not in ("start", "stop"):
        print("usage: rgw.py start|stop DIR", file=sys.stderr)
        return 2
    c = Cluster(argv[2])
    if argv[1] == "stop":
        try:
            killed, rss = c.stop()
        except StartError as e:
            print("rgw: stop: %s" % e, file=sys.stderr)
            return 1
        print("rgw: stopped; RSS before the stop %.0f MiB (%s)%s" % (
            sum(rss.values()), ", ".join("%s %.0f" % kv for kv in rss.items()),
            "; SIGKILL: " + ", ".join(killed) if killed else ""))
        return 0
    def interrupted(signum, frame):
        raise Interrupted("interrupted by signal %d" % signum)
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        env, stats = c.start()
    except BaseException as e:  # noqa: B902 -- a ^C too: never leave daemons behind
        reason = str(e) if isinstance(e, StartError) else "%s: %s" % (type(e).__name__, e)
        if c.created:
            try:
                c.stop()
            except StartError as e2:
                reason += "; " + str(e2)
        print("rgw: Ceph did not start: %s" % reason, file=sys.stderr)
        return 1
    print("rgw: %s bucket %s up in %.1f s, RSS %.0f MiB (%s)" % (
        env["STRATA_S3_ENDPOINT"], env["STRATA_S3_BUCKET"], stats["startup_s"], stats["rss_total_mib"],
        ", ".join("%s %.0f" % kv for kv in stats["rss_mib"].items())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
