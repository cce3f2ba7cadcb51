#!/usr/bin/python3
"""stratactl against a real strata-server: every command runs as a subprocess; the
tests assert its output (table and --json), its exit code and the server state after.

The server starts on an ephemeral port (--listen 127.0.0.1:0, port read from its
event=ready log line) over a temporary data directory. Nothing is skipped: every engine is wired, so an
UNIMPLEMENTED answer is a failure like any other.

Environment: STRATACTL_BIN, STRATA_SERVER_BIN, CTL_FIXTURE_BIN (tests/stratactl/
ctl_fixture: creates ops, which stratactl itself cannot). Standard library only.
Prints cmocka-style "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)." lines for
tests/run-tier.sh; exit 0 = every check passed.
"""
import base64
import calendar
import hashlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

from tier_report import check, report

CTL = os.environ["STRATACTL_BIN"]
SERVER = os.environ["STRATA_SERVER_BIN"]
FIXTURE = os.environ["CTL_FIXTURE_BIN"]


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


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


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


# --- every command's --help, and usage errors (no server needed) -------------------------------

COMMANDS = ["lock list", "lock acquire", "lock renew", "lock release", "lock key", "op show",
            "op list", "op stuck", "op set-status", "kv get", "kv put", "kv rm", "kv ls", "kv versions", "kv diff",
            "health", "stats", "writers", "gc", "check"]


def test_help():
    for c in COMMANDS:
        r = ctl(*c.split(), "--help", addr=False)
        check(r.rc == 0 and ("usage: stratactl" in r.text) and (c in r.text) and
              "Examples:\n  stratactl " in r.text, "--help of '%s' has usage and examples" % c, r)
    r = ctl("--help", addr=False)
    check(r.rc == 0 and all(c in r.text for c in COMMANDS), "stratactl --help lists every command", r)
    r = ctl("lock", "--help", addr=False)
    check(r.rc == 0 and "lock acquire" in r.text and "kv get" not in r.text,
          "stratactl lock --help lists the lock commands", r)
    # The help describes what the command does now, not an older protocol.
    r = ctl("op", "list", "--help", addr=False)
    flat = " ".join(r.text.split())
    check(r.rc == 0 and "One Ops.List stream, newest first; the server applies the status filter" in flat
          and "Ops.Get" not in r.text and "no Ops.List" not in r.text,
          "op list --help: one Ops.List stream, filtered by the server", r)
    r = ctl("lock", "list", "--help", addr=False)
    flat = " ".join(r.text.split())
    check(r.rc == 0 and "on the server's clock" in flat and "this machine's clock" not in flat,
          "lock list --help: LEFT is on the server's clock", r)
    for c in ("acquire", "renew"):
        r = ctl("lock", c, "--help", addr=False)
        check(r.rc == 0 and "on this machine's clock" in " ".join(r.text.split()),
              "lock %s --help: time left is on this machine's clock" % c, r)


def test_usage_errors():
    cases = [
        (["frob"], "unknown command"),
        ([], "missing command"),
        (["lock"], "missing command"),
        (["lock", "frob"], "unknown command"),
        (["lock", "list", "--kind", "bogus"], "--kind"),
        (["lock", "list", "--op", "x"], "--op"),
        (["lock", "list", "--frob"], "unknown option --frob"),
        (["lock", "list", "extra"], "unexpected argument"),
        (["lock", "acquire", "k"], "--op N is required"),
        (["lock", "acquire", "--op", "1"], "missing argument"),
        (["lock", "acquire", "--op", "1", "--ttl", "5 parsecs", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--kind", "indefinite", "--ttl", "5s", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "0x123"], "even"),
        (["lock", "acquire", "--op", "1", "0xzz"], "hex digit"),
        (["lock", "renew", "k"], "--op N is required"),
        (["lock", "release", "k"], "--op N is required"),
        (["lock", "release", "--op", "1"], "--all"),
        (["lock", "release", "--op", "1", "--all", "k"], "not both"),
        (["lock", "release", "--privileged", "--all"], "--op N is required"),
        (["lock", "key"], "exactly one"),
        (["lock", "key", "--chunk", "1", "--block", "1", "2", "3"], "exactly one"),
        (["lock", "key", "--block", "1", "2"], "--block needs"),
        (["lock", "key", "--chunk", "-1"], "--chunk"),
        (["op", "show"], "missing argument"),
        (["op", "show", "0"], "operation id"),
        (["op", "list", "--status", "sleeping"], "--status"),
        (["op", "stuck", "--min-age", "soon"], "--min-age"),
        (["kv", "get"], "missing argument"),
        (["kv", "put"], "missing argument"),
        (["kv", "put", "k", "/nonexistent/file"], "cannot open"),
        (["kv", "ls", "--limit", "0"], "--limit"),
        (["kv", "diff", "@v1"], "too few"),
        (["kv", "diff", "@v1", "@yesterday"], "@yesterday"),
        (["kv", "diff", "@v1", "@2026-02-30T00:00:00Z"], "2026-02-30"),
        # out-of-range fields are refused, not normalized by timegm into another time
        (["kv", "diff", "@v1", "@2026-00-15T00:00:00Z"], "2026-00-15"),
        (["kv", "diff", "@v1", "@2026-13-01T00:00:00Z"], "2026-13-01"),
        (["kv", "diff", "@v1", "@2026-01-00T00:00:00Z"], "2026-01-00"),
        (["kv", "diff", "@v1", "@2026-01-15T24:00:00Z"], "T24:00:00"),
        (["kv", "diff", "@v1", "@2026-01-15T00:60:00Z"], "T00:60:00"),
        (["kv", "diff", "@v1", "@2026-01-15T00:00:60Z"], "T00:00:60"),
        (["kv", "diff", "@v1", "@2025-02-29T00:00:00Z"], "2025-02-29"),
        # durations are digits with an optional decimal point, then a unit: no hex,
        # exponent, sign or inf
        (["lock", "acquire", "--op", "1", "--ttl", "0x10s", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--ttl", "1e2s", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--ttl", "+5s", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--ttl", "infs", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--ttl", ".s", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--ttl", "1..5s", "k"], "--ttl"),
        (["lock", "acquire", "--op", "1", "--ttl", "5", "k"], "--ttl"),
        (["--timeout", "0x1p3s", "health"], "--timeout"),
        (["--timeout", "0", "health"], "--timeout"),
        (["--timeout", "fast", "health"], "--timeout"),
        (["--addr", "", "health"], "--addr"),
        (["--addr", "localhost", "health"], "HOST:PORT"),
        (["--addr"], "--addr needs a value"),
        (["lock", "--timeout", "soon", "list"], "--timeout"),
        (["lock", "--json"], "missing command"),
        (["lock", "--json", "frob"], "unknown command \"lock frob\""),
    ]
    for args, want in cases:
        r = ctl(*args, addr=False)
        check(usage_error(r) and want in r.etext, "usage error exits 2: %s" % " ".join(args), r)


def test_unreachable():
    port = free_port()  # nothing listens here
    addr = "127.0.0.1:%d" % port
    for args in (["health"], ["stats"], ["lock", "list"], ["op", "stuck"], ["kv", "get", "k"],
                 ["lock", "acquire", "--op", "1", "k"]):
        r = ctl(*args, addr=addr)
        check(r.rc == 3 and addr in r.etext and "cannot reach" in r.etext,
              "unreachable server exits 3 naming the address: %s" % " ".join(args), r)
    r = ctl("--json", "health", addr=addr)
    doc = r.json()
    check(r.rc == 3 and doc and doc["exit"] == 3 and doc["error"]["code"] == "ENOTCONN" and
          doc["error"]["status"] == "UNAVAILABLE" and addr in doc["error"]["message"],
          "--json unreachable: error document with exit 3", r)
    r = ctl("health", addr=False, env={"STRATA_ADDR": addr})
    check(r.rc == 3 and addr in r.etext, "$STRATA_ADDR is the default address", r)

    # A peer that accepts the connection but never speaks HTTP/2: the deadline ends it.
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(8)
    maddr = "127.0.0.1:%d" % mute.getsockname()[1]
    # The status says the deadline ended it; the time says it was --timeout's 300ms
    # and not the 10s default (the margin is for slow, loaded machines).
    t0 = time.monotonic()
    r = ctl("--timeout", "300ms", "lock", "list", addr=maddr)
    took = time.monotonic() - t0
    check(r.rc == 3 and maddr in r.etext and "DEADLINE_EXCEEDED" in r.etext and took < 8,
          "a server that does not answer exits 3 after --timeout (%.2fs)" % took, r)
    mute.close()


# --- server commands ---------------------------------------------------------------------------


def test_health_stats(data_dir):
    r = ctl("health")
    check(r.rc == 0 and r.text == "%s: SERVING\n" % ADDR, "health prints ADDR: SERVING", r)
    r = ctl("--json", "health")
    check(r.rc == 0 and r.json() == {"addr": ADDR, "status": "SERVING", "serving": True},
          "health --json", r)
    r = ctl("health", addr=False, env={"STRATA_ADDR": ADDR})
    check(r.rc == 0 and "SERVING" in r.text, "health with $STRATA_ADDR", r)
    r = ctl("stats")
    check(r.rc == 0 and "data dir:          %s\n" % data_dir in r.text and
          "max message bytes: 67108864" in r.text and
          re.search(r"^commits: +\d+ in \d+ groups \(\d+\.\d per group\)$", r.text, re.M) and
          re.search(r"^node cache: +\d+ hits, \d+ misses, \d+ bytes$", r.text, re.M) and
          re.search(r"^commit phases: +build \d+ us, fsyncs \d+ us, rename\+dir fsync \d+ us per group$",
                    r.text, re.M) and
          re.search(r"^generations: +v\d+ committed, v\d+ published \(\d+ behind; last batch \d+\.\d ms\)$",
                    r.text, re.M), "stats table", r)
    d = ctl("stats", "--json").json()  # global option after the command
    check(d and d["data_dir"] == data_dir and d["max_message_bytes"] == 64 << 20 and
          d["server_version"].startswith("strata") and d["calls_total"] >= 1 and
          set(d) == {"addr", "server_version", "uptime_ms", "latest", "calls_total", "calls_active",
                     "calls_failed", "max_message_bytes", "data_dir", "locks_held", "store"} and
          set(d["store"]) == {"commits", "commit_groups", "bytes_written", "cache_hits",
                              "cache_misses", "cache_bytes", "build_ns", "sync_ns", "publish_ns",
                              "committed_generation", "published_generation", "last_publish_lag_us",
                              "publish_stalls", "publish_stalled", "publish_error", "group_size",
                              "group_bytes"} and
          d["store"]["publish_stalled"] is False and d["store"]["publish_error"] == "" and
          d["store"]["commit_groups"] <= d["store"]["commits"] and
          # the server commits through its log: the OCDBT files may trail by a batch
          d["store"]["published_generation"] <= d["store"]["committed_generation"] ==
          (d["latest"]["generation"] if d["latest"] else 0),
          "stats --json fields", d)


# --- coordinator mode ----------------------------------------------------------------------------


def fixture_out(*args):
    rc, out, err = fixture(*args)
    check(rc == 0, "ctl_fixture %s" % " ".join(args), err)
    return out


def test_coordinator():
    wid, prefix, store = fixture_out("register-writer", "ctl-test", "600000").split()
    for name, body in (("kept", b"committed bytes"), ("junk", b"never committed")):
        with open(os.path.join(store, prefix + name), "wb") as f:
            f.write(body)
    fixture_out("commit-ref", wid, "coord/kept", prefix + "kept")
    r = ctl("writers")
    check(r.rc == 0 and re.search(r"^%s +ctl-test +live .* 1 +15 +\d+ +%s$" % (wid, re.escape(prefix)),
                                  r.text, re.M) and r.text.endswith("1 writer\n"),
          "writers table: id, name, live, files, bytes, prefix", r)
    d = ctl("--json", "writers").json()
    w = d and [x for x in d["writers"] if x["writer_id"] == int(wid)]
    check(w and w[0]["live"] and w[0]["bytes_committed"] == 15 and w[0]["files_registered"] == 1 and
          iso_ok(w[0]["lease_expires_at"]) and w[0]["prefix"] == prefix, "writers --json", d)
    # While the writer is live its unreferenced file is no orphan: check passes, GC keeps it.
    r = ctl("check")
    check(r.rc == 0 and "unreferenced: %sjunk" % prefix in r.text and "0 orphans" in r.text,
          "check with a live writer's unreferenced file: exit 0, listed", r)
    r = ctl("--json", "gc")
    check(r.rc == 0 and r.json()["files_removed"] == 0, "gc removes nothing of a live writer", r)
    fixture_out("unregister", wid)
    r = ctl("writers")
    check(r.rc == 0 and wid not in r.text, "writers leaves an ended writer out", r)
    r = ctl("writers", "--all")
    check(r.rc == 0 and re.search(r"^%s +ctl-test +ended " % wid, r.text, re.M),
          "writers --all shows it ended", r)
    r = ctl("check")
    check(r.rc == 1 and "1 orphans" in r.text and "orphans" in r.etext,
          "check exits 1 with an ended writer's unreferenced file", r)
    r = ctl("gc", "--dry-run")
    check(r.rc == 0 and "would remove %sjunk" % prefix in r.text and
          os.path.exists(os.path.join(store, prefix + "junk")), "gc --dry-run removes nothing", r)
    d = ctl("--json", "gc").json()
    check(d and d["files_removed"] == 1 and d["bytes_removed"] == 15 and d["paths"] == [prefix + "junk"]
          and d["files_kept"] == 1 and d["writers_collected"] == 1 and
          not os.path.exists(os.path.join(store, prefix + "junk")) and
          os.path.exists(os.path.join(store, prefix + "kept")), "gc --json removes the orphan only", d)
    d = ctl("--json", "check").json()
    check(d and d["ok"] and d["orphans"] == 0 and d["errors_total"] == 0 and d["missing_files"] == 0 and
          d["versions_checked"] >= 1 and d["values_checked"] >= 1, "check --json after gc: all well", d)
    r = ctl("kv", "get", "coord/kept")
    check(r.rc == 0 and r.out == b"committed bytes", "the referenced value reads back", r)


# --- locks ---------------------------------------------------------------------------------------


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


def test_lock_key():
    r = ctl("lock", "key", "--chunk", "7", addr=False)
    check(r.rc == 0 and r.text == hx(chunk_key(7)) + "\n", "lock key --chunk matches blake2b(2) || be64", r)
    big = 2 ** 64 - 1
    r = ctl("lock", "key", "--chunk", str(big), addr=False)
    check(r.rc == 0 and r.text == hx(chunk_key(big)) + "\n", "lock key --chunk 2^64-1", r)
    r = ctl("lock", "key", "--block", "1", "2", "3", addr=False)
    check(r.rc == 0 and r.text == hx(block_key(1, 2, 3)) + "\n", "lock key --block matches", r)
    d = ctl("--json", "lock", "key", "--block", "4", "5", "6", addr=False).json()
    check(d == {"row": hx(block_key(4, 5, 6)), "row_hex": hx(block_key(4, 5, 6)),
                "decoded": {"type": "block", "x": 4, "y": 5, "z": 6, "text": "block 4,5,6"}},
          "lock key --json", d)


def test_locks():
    k7 = hx(chunk_key(7))
    kb = hx(block_key(1, 2, 3))
    # The default TTL is 30s, checked on a row of its own ("in" is measured after the
    # answer arrives: a slow machine shows less than 29.x s).
    r = ctl("lock", "acquire", "--op", "4", "row-default")
    check(r.rc == 0 and re.match(r"acquired 1 row for op 4: temporal, fencing token \d+, expires "
                                 r"\S+Z \(in (1\d|2\d|30)\.\ds\)\n$", r.text), "lock acquire prints the token", r)
    l = listed_lock("row-default")
    check(l and l["expires_at_ns"] - l["acquired_at_ns"] == 30 * 10 ** 9, "the default --ttl is 30s", l)
    ctl("lock", "release", "--op", "4", "row-default")
    # Op 5's rows must stay held through many commands below: a TTL that a slow,
    # loaded machine (ASan) cannot outlast.
    r = ctl("lock", "acquire", "--op", "5", "--ttl", "10m", k7, kb, "row-a")
    check(r.rc == 0 and re.match(r"acquired 3 rows for op 5: temporal, fencing token \d+, expires "
                                 r"\S+Z \(in (9m\d\ds|10m00s)\)\n$", r.text), "lock acquire --ttl 10m", r)
    r = ctl("--json", "lock", "acquire", "--op", "6", "--ttl", "2m", k7, "row-b")
    d = r.json()
    check(r.rc == 1 and d and d["acquired"] is False and [c["op"] for c in d["conflicts"]] == [5] and
          d["conflicts"][0]["row_hex"] == k7 and "refused" in r.etext,
          "conflicting acquire exits 1 and names holder op 5 (--json)", r)
    r = ctl("lock", "acquire", "--op", "6", "row-a")
    lines = r.text.splitlines()
    cols = lines[1].split() if len(lines) == 2 else []
    check(r.rc == 1 and lines[0].split() == ["ROW", "DECODED", "KIND", "OP", "ACQUIRED", "LEFT", "TOKEN"]
          and cols[:4] == [hx(b"row-a"), "row-a", "temporal", "5"] and cols[-1] == "-",
          "conflicting acquire table names the holder in the OP column (no token)", r)
    check(lock_list_json()["counts"]["total"] == 3, "a refused acquire locked nothing")

    r = ctl("lock", "list")
    lines = r.text.splitlines()
    check(r.rc == 0 and lines[0].split() == ["ROW", "DECODED", "KIND", "OP", "ACQUIRED", "LEFT", "TOKEN"]
          and lines[-1] == "3 locks: 3 temporal (0 expired), 0 indefinite", "lock list table header and counts", r)
    rows = {l.split()[0]: l for l in lines[1:-1]}
    check(set(rows) == {k7, kb, hx(b"row-a")}, "lock list shows every row in hex", rows)
    check(" chunk 7 " in rows.get(k7, "") and " block 1,2,3 " in rows.get(kb, "") and
          " row-a " in rows.get(hx(b"row-a"), ""), "lock list decodes chunk, block and text keys", rows)
    check(all(re.search(r" temporal +5 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +\d+m\d\ds +\d+$", l)
              for l in rows.values()), "lock list kind, op, acquired-at, time left, token", rows)

    d = lock_list_json()
    by = {l["row_hex"]: l for l in d["locks"]}
    l7 = by[k7]
    check(l7["decoded"] == {"type": "chunk", "chunk_id": 7, "text": "chunk 7"} and l7["kind"] == "temporal"
          and l7["op"] == 5 and iso_ok(l7["acquired_at"]) and iso_ok(l7["expires_at"]) and
          l7["expires_at_ns"] - l7["acquired_at_ns"] == 600 * 10 ** 9 and 0 < l7["time_left_ms"] <= 600000
          and l7["expired"] is False and l7["fencing_token"] >= 1, "lock list --json fields", l7)
    check(by[hx(b"row-a")]["decoded"] is None and by[hx(b"row-a")]["row"] == "row-a",
          "lock list --json: text key, no decoded form", by)
    check(d["counts"] == {"total": 3, "temporal": 3, "expired": 0, "indefinite": 0}, "lock list --json counts", d)
    # Global options work anywhere, also between the command words.
    def same_listing(doc):
        return doc and [l["row_hex"] for l in doc["locks"]] == [l["row_hex"] for l in d["locks"]] \
            and doc["counts"] == d["counts"]
    for argv in (["lock", "--json", "list"], ["lock", "list", "--json"], ["--json", "lock", "list"]):
        r = ctl(*argv)
        check(r.rc == 0 and same_listing(r.json()), "global option anywhere: %s" % " ".join(argv), r)
    r = ctl("lock", "--addr", ADDR, "--timeout", "5s", "--json", "list", addr=False)
    check(r.rc == 0 and same_listing(r.json()), "lock --addr A --timeout 5s --json list", r)
    r = ctl("lock", "--timeout=5s", "--addr=" + ADDR, "list", addr=False)
    check(r.rc == 0 and r.text.splitlines()[-1] == "3 locks: 3 temporal (0 expired), 0 indefinite",
          "lock --timeout=5s --addr=A list", r)
    check(len(lock_list_json("--op", "5")["locks"]) == 3 and lock_list_json("--op", "6")["locks"] == [],
          "lock list --op filters by holder")
    check([l["row"] for l in lock_list_json("--prefix", "row-")["locks"]] == ["row-a"],
          "lock list --prefix (text)")
    check([l["row_hex"] for l in lock_list_json("--prefix", k7[:6])["locks"]] == [k7],
          "lock list --prefix (hex)")
    check(lock_list_json("--kind", "indefinite")["locks"] == [] and
          len(lock_list_json("--kind", "temporal")["locks"]) == 3, "lock list --kind")

    # durations: sums and fractions
    for ttl, ms in (("1m30s", 90000), ("1.5s", 1500), ("250ms", 250), ("1h", 3600000)):
        d = ctl("--json", "lock", "acquire", "--op", "12", "--ttl", ttl, "row-ttl").json()
        l = listed_lock("row-ttl")
        check(d and d["acquired"] and l and l["expires_at_ns"] - l["acquired_at_ns"] == ms * 10 ** 6,
              "--ttl %s is %d ms" % (ttl, ms), (d, l))
        ctl("lock", "release", "--op", "12", "row-ttl")

    # renew
    r = ctl("lock", "renew", "--op", "5", "--ttl", "2m", k7)
    check(r.rc == 0 and re.match(r"renewed 1 row for op 5 until \S+Z \(in (1m[0-5]\ds|2m00s)\)\n$", r.text),
          "lock renew", r)
    d = lock_list_json("--prefix", k7)["locks"][0]
    check(60000 < d["time_left_ms"] <= 120000, "lock renew moved the expiry to 2m (from 10m)", d)
    r = ctl("--json", "lock", "renew", "--op", "6", k7)
    check(r.rc == 1 and r.json()["error"]["status"] == "FAILED_PRECONDITION" and
          r.json()["error"]["code"] == "STRATA_ELOCKED" and r.json()["exit"] == 1,
          "lock renew of a row another op holds exits 1 (STRATA_ELOCKED)", r)
    r = ctl("lock", "renew", "--op", "5", "row-never")
    check(r.rc == 1 and "FAILED_PRECONDITION" in r.etext and "row-never" in r.etext,
          "lock renew of a row the op does not hold exits 1 naming the row", r)

    # release: a non-holder releases nothing; the holder releases; privileged frees any holder's
    r = ctl("lock", "release", "--op", "6", "row-a")
    check(r.rc == 1 and r.text == "released 0 locks\n" and "nothing released" in r.etext,
          "lock release by a non-holder exits 1", r)
    check(len(lock_list_json()["locks"]) == 3, "... and the lock is still there")
    r = ctl("lock", "release", "--op", "5", "row-a")
    check(r.rc == 0 and r.text == "released 1 lock\n", "lock release by the holder", r)
    r = ctl("--json", "lock", "release", "--privileged", k7)
    check(r.rc == 0 and r.json() == {"released": 1, "op": 0, "privileged": True, "all": False},
          "lock release --privileged (any holder) --json", r)
    check([l["row_hex"] for l in lock_list_json()["locks"]] == [kb], "privileged release freed the row")
    r = ctl("lock", "release", "--privileged", "--op", "6", kb)
    check(r.rc == 1 and r.text == "released 0 locks\n" and
          "nothing released: op 6 holds none of these rows" in r.etext and "--privileged)" not in r.etext,
          "lock release --privileged --op must match the holder", r)
    check([(l["row_hex"], l["op"]) for l in lock_list_json()["locks"]] == [(kb, 5)],
          "... and the row is still held by op 5")
    r = ctl("lock", "release", "--op", "5", "--all")
    check(r.rc == 0 and r.text == "released 1 lock\n", "lock release --all", r)
    r = ctl("lock", "list")
    check(r.rc == 0 and r.text.splitlines()[-1] == "0 locks: 0 temporal (0 expired), 0 indefinite"
          and len(r.text.splitlines()) == 2, "lock list is empty afterwards", r)

    # a server-side INVALID_ARGUMENT is a usage error; a long listing spans stream messages
    r = ctl("lock", "acquire", "--op", "5", "0x" + "ab" * 4097)
    check(usage_error(r) and "INVALID_ARGUMENT" in r.etext, "a row the server rejects as too long exits 2", r)
    many = ["row-%05d" % i for i in range(3000)]
    r = ctl("lock", "acquire", "--op", "11", "--ttl", "10m", *many)
    check(r.rc == 0 and r.text.startswith("acquired 3000 rows for op 11"), "acquire 3000 rows at once", r)
    d = lock_list_json("--op", "11")
    check(d and [l["row"] for l in d["locks"]] == many and d["counts"]["total"] == 3000,
          "lock list returns all 3000 rows in order", d and d["counts"])
    r = ctl("lock", "list", "--op", "11")
    check(r.rc == 0 and len(r.text.splitlines()) == 3002, "lock list table of 3000 rows", r.text[-200:])
    r = ctl("lock", "release", "--op", "11", "--all")
    check(r.rc == 0 and r.text == "released 3000 locks\n", "release --all of 3000 rows", r)

    # expiry, --expired and --wait
    r = ctl("lock", "acquire", "--op", "7", "--ttl", "300ms", "row-exp")
    check(r.rc == 0, "acquire with a 300ms TTL", r)
    time.sleep(0.5)
    d = lock_list_json("--expired")
    check(d and [l["row"] for l in d["locks"]] == ["row-exp"] and d["locks"][0]["expired"] is True and
          d["locks"][0]["time_left_ms"] is None and d["counts"]["expired"] == 1,
          "lock list --expired shows the expired lock", d)
    r = ctl("lock", "list", "--expired")
    check(re.search(r"^0x726f772d657870 +row-exp +temporal +7 +\S+Z +expired +\d+$", r.text, re.M) and
          r.text.splitlines()[-1] == "1 lock: 1 temporal (1 expired), 0 indefinite",
          "lock list --expired table marks it expired", r)
    check(lock_list_json()["locks"] == [], "lock list without --expired leaves expired locks out")
    # --wait: op 9 waits for op 8's lock. The server's clock says when op 9 got it
    # (its expiry minus the default 30s TTL): not before op 8's lock expired, and
    # long before its 60s of --wait ran out (the margin is for slow machines).
    d8 = ctl("--json", "lock", "acquire", "--op", "8", "--ttl", "3s", "row-wait").json()
    r = ctl("--json", "lock", "acquire", "--op", "9", "--wait", "60s", "row-wait")
    d9 = r.json()
    after = None
    if r.rc == 0 and d8 and d8["acquired"] and d9 and d9["acquired"]:
        after = (d9["expires_at_ns"] - 30 * 10 ** 9 - d8["expires_at_ns"]) / 1e9
    check(after is not None and 0 <= after < 20,
          "lock acquire --wait gets the row once it expires (%s s after the expiry)" % after, r)
    r = ctl("lock", "acquire", "--op", "10", "--wait", "300ms", "row-wait")
    check(r.rc == 1 and "refused" in r.etext, "lock acquire --wait gives up after the wait", r)
    ctl("lock", "release", "--op", "9", "--all")
    ctl("lock", "release", "--op", "7", "--all")

    # A waiting acquire whose client dies stops on the server and takes nothing: op 14
    # waits (60s) for op 13's row, its stratactl is killed, the server ends the call (it
    # would otherwise wait out the minute), and op 13's release then grants op 14 nothing.
    ctl("lock", "acquire", "--op", "13", "--ttl", "10m", "row-gone")
    base = calls_active()
    p = subprocess.Popen([CTL, "--addr", ADDR, "lock", "acquire", "--op", "14", "--wait", "60s",
                          "row-gone"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    waiting = wait_until(lambda: calls_active() > base, 60)
    p.kill()
    p.wait()
    ended = wait_until(lambda: calls_active() <= base, 30)
    ctl("lock", "release", "--op", "13", "--all")
    d = lock_list_json("--op", "14")
    check(waiting and ended and d is not None and d["locks"] == [],
          "a waiting acquire whose client died stops on the server and takes nothing",
          (waiting, ended, d))


# --- ops -------------------------------------------------------------------------------------------


def fixture(*args):
    p = subprocess.run([FIXTURE, ADDR] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    return p.returncode, p.stdout.decode().strip(), p.stderr.decode()


def test_ops_empty():
    r = ctl("op", "show", "999")
    check(r.rc == 1 and "NOT_FOUND" in r.etext and "999" in r.etext, "op show of a missing op exits 1", r)
    r = ctl("--json", "op", "show", "999")
    check(r.rc == 1 and r.json() == {"error": {"code": "STRATA_ENOTFOUND", "status": "NOT_FOUND",
                                               "message": r.json()["error"]["message"]}, "exit": 1}
          and r.json()["error"]["message"].startswith("Ops.Get: NOT_FOUND: ") and "999" in r.json()["error"]["message"],
          "op show --json of a missing op: the call's gRPC status", r)
    r = ctl("op", "stuck")
    check(r.rc == 0 and r.text.splitlines()[0].split() == ["OP", "CREATED", "AGE", "USER", "KIND",
                                                            "STATUS", "SCOPE"]
          and r.text.splitlines()[-1] == "0 stuck ops", "op stuck with no stuck ops", r)
    r = ctl("op", "list")
    check(r.rc == 0 and r.text.splitlines() == ["OP  CREATED  AGE  USER  KIND  STATUS  SCOPE",
                                                "0 ops (the op log is empty)"],
          "op list of an empty op log says so", r)
    d = ctl("--json", "op", "list").json()
    check(d == {"ops": [], "count": 0, "last_op_id": 0, "truncated": False}, "op list --json, empty log", d)


def test_ops():
    rc, out, err = fixture("create-op", "alice", "split")
    check(rc == 0, "fixture creates an op", err)
    a = int(out)
    b = int(fixture("create-op", "bob", "merge")[1])
    c = int(fixture("create-op", "carol", "split")[1])
    check(fixture("set-status", str(b), "5")[0] == 0, "fixture sets WRITE_FAILED")
    check(fixture("set-status", str(c), "3")[0] == 0, "fixture sets SUCCESS")

    r = ctl("op", "show", str(a))
    check(r.rc == 0 and re.search(r"^op: +%d$" % a, r.text, re.M) and re.search(r"^status: +CREATED$", r.text, re.M)
          and re.search(r"^user: +alice$", r.text, re.M) and re.search(r"^kind: +split$", r.text, re.M) and
          re.search(r"^created: +\S+Z \(\S+ ago\)$", r.text, re.M) and re.search(r"^scope: +0 rows$", r.text, re.M),
          "op show table", r)
    d = ctl("--json", "op", "show", str(b)).json()
    check(d and d["op"] == b and d["status"] == "WRITE_FAILED" and d["user"] == "bob" and d["kind"] == "merge"
          and iso_ok(d["created_at"]) and d["scope"] == [] and d["payload_base64"] == "" and
          d["age_ms"] >= 0, "op show --json", d)

    r = ctl("op", "list")
    lines = r.text.splitlines()
    check(r.rc == 0 and [l.split()[0] for l in lines[1:-1]] == [str(a), str(b), str(c)] and
          lines[-1] == "3 ops", "op list shows every op in id order", r)
    d = ctl("--json", "op", "list", "--status", "write_failed").json()
    check(d and [o["op"] for o in d["ops"]] == [b] and d["count"] == 1 and d["last_op_id"] == c,
          "op list --status write_failed", d)
    d = ctl("--json", "op", "list", "--limit", "2").json()
    check(d and [o["op"] for o in d["ops"]] == [b, c] and d["truncated"] is True, "op list --limit keeps the newest", d)
    r = ctl("op", "list", "--limit", "2")
    lines = r.text.splitlines()
    check(r.rc == 0 and [l.split()[0] for l in lines[1:-1]] == [str(b), str(c)] and
          lines[-1] == "2 ops (limit reached; older ops were not shown, raise --limit)",
          "op list --limit table footer says older ops were left out", r)
    r = ctl("op", "list", "--limit", "3")
    check(r.rc == 0 and r.text.splitlines()[-1] == "3 ops", "op list --limit equal to the count: no footer note", r)
    r = ctl("op", "list", "--status", "WRITE_FAILED")
    lines = r.text.splitlines()
    check(r.rc == 0 and lines[0].split() == ["OP", "CREATED", "AGE", "USER", "KIND", "STATUS", "SCOPE"] and
          len(lines) == 3 and lines[1].split()[0] == str(b) and lines[1].split()[3:] == ["bob", "merge", "WRITE_FAILED", "0"]
          and lines[-1] == "1 op", "op list --status table", r)
    r = ctl("op", "list", "--status", "exception")
    check(r.rc == 0 and len(r.text.splitlines()) == 2 and r.text.splitlines()[-1] == "0 ops",
          "op list --status with no match: no rows, and the log is not called empty", r)

    # An indefinite lock gives the op a scope: it is stuck until released.
    k = hx(chunk_key(99))
    r = ctl("lock", "acquire", "--op", str(a), "--kind", "indefinite", k)
    check(r.rc == 0 and "indefinite" in r.text and "expires" not in r.text, "lock acquire --kind indefinite", r)
    # Rows are exclusive: another op's plain (temporal) acquire is refused, naming the holder.
    r = ctl("--json", "lock", "acquire", "--op", "999", k)
    d = r.json() if r.rc == 1 else None
    check(d and d["acquired"] is False and [(c["op"], c["kind"]) for c in d["conflicts"]] == [(a, "indefinite")]
          and "--privileged" in r.etext, "a temporal acquire of a row held indefinitely is refused", r)
    d = lock_list_json("--kind", "indefinite")
    check(d and d["locks"][0]["expires_at"] is None and d["locks"][0]["time_left_ms"] is None and
          d["counts"]["indefinite"] == 1, "indefinite lock listed without expiry", d)
    r = ctl("op", "stuck")
    lines = r.text.splitlines()
    check(r.rc == 0 and len(lines) == 4 and lines[1].split()[0] == str(a) and lines[1].split()[-2:] == ["CREATED", "1"]
          and lines[2] == "op %d step: locked, before commit" % a and lines[-1] == "1 stuck op",
          "op stuck lists the op with its scope size and the step it reached", r)
    d = ctl("--json", "op", "stuck", "--min-age", "1h").json()
    check(d and d["ops"] == [] and d["min_age_ms"] == 3600000, "op stuck --min-age 1h filters it out", d)
    r = ctl("op", "show", str(a))
    check(re.search(r"^scope: +1 row$", r.text, re.M) and ("%s  chunk 99" % k) in r.text, "op show lists the scope decoded", r)
    d = ctl("--json", "op", "show", str(a)).json()
    check(d and d["scope"] == [{"row": k, "row_hex": k, "decoded": {"type": "chunk", "chunk_id": 99,
                                                                    "text": "chunk 99"}}],
          "op show --json scope", d)
    r = ctl("lock", "release", "--privileged", k)
    check(r.rc == 0, "privileged release of the indefinite lock", r)
    check(lock_list_json()["locks"] == [] and ctl("--json", "op", "stuck").json()["ops"] == [],
          "after the privileged release nothing is locked or stuck")

    # The runbook's clean-up (docs/operations.md, "An edit worker died"), with --privileged
    # (as an operator may add it) and exactly as written (without).
    k2, k3 = hx(chunk_key(100)), hx(block_key(7, 8, 9))
    r = ctl("lock", "acquire", "--op", str(a), "--kind", "indefinite", k2, k3)
    check(r.rc == 0 and [o["op"] for o in ctl("--json", "op", "stuck").json()["ops"]] == [a],
          "runbook: op %d holds two rows indefinitely and is stuck" % a, r)
    r = ctl("lock", "release", "--privileged", "--op", str(a), "--all")
    check(r.rc == 0 and r.text == "released 2 locks\n", "runbook: lock release --privileged --op N --all", r)
    check(lock_list_json("--op", str(a))["locks"] == [] and lock_list_json()["locks"] == [],
          "runbook: the op's locks are gone")
    r = ctl("op", "stuck")
    check(r.rc == 0 and r.text.splitlines()[-1] == "0 stuck ops", "runbook: the op left op stuck", r)
    d = ctl("--json", "op", "show", str(a)).json()
    check(d and d["scope"] == [], "runbook: the op's scope is empty", d)
    # As written in the runbook: an op's own locks need no --privileged.
    ctl("lock", "acquire", "--op", str(a), "--kind", "indefinite", k2)
    r = ctl("lock", "release", "--op", str(a), "--all")
    check(r.rc == 0 and r.text == "released 1 lock\n" and lock_list_json()["locks"] == [] and
          ctl("--json", "op", "stuck").json()["ops"] == [],
          "runbook: lock release --op N --all (no --privileged) frees a stuck op's locks too", r)


# --- kv ----------------------------------------------------------------------------------------------


def test_kv(tmp):
    r = ctl("kv", "versions")
    check(r.rc == 0 and r.text.splitlines()[-1] == "0 versions", "kv versions on an empty store", r)
    r = ctl("kv", "put", "greeting", stdin=b"hello")
    m = re.match(r"put greeting \(5 bytes\) at v(\d+) \((\S+Z)\)\n$", r.text)
    check(r.rc == 0 and m, "kv put from stdin", r)
    g1 = int(m.group(1)) if m else 1
    path = os.path.join(tmp, "value.bin")
    with open(path, "wb") as f:
        f.write(b"bonjour\x00\xff")
    d = ctl("--json", "kv", "put", "greeting", path).json()
    check(d and d["key"] == "greeting" and d["size"] == 9 and d["version"]["generation"] == g1 + 1 and
          iso_ok(d["version"]["commit_time"]), "kv put FILE --json", d)
    g2 = d["version"]["generation"] if d else g1 + 1
    r = ctl("kv", "get", "greeting")
    check(r.rc == 0 and r.out == b"bonjour\x00\xff", "kv get returns the bytes", r)
    r = ctl("kv", "get", "greeting@v%d" % g1)
    check(r.rc == 0 and r.out == b"hello", "kv get KEY@v1 returns the old value", r)
    d = ctl("--json", "kv", "get", "greeting@v%d" % g1).json()
    check(d and d["found"] and d["value"] == "hello" and d["value_base64"] == base64.b64encode(b"hello").decode()
          and d["version"]["generation"] == g1, "kv get --json", d)
    d = ctl("--json", "kv", "get", "greeting").json()
    check(d and d["value"] is None and base64.b64decode(d["value_base64"]) == b"bonjour\x00\xff",
          "kv get --json of binary value: base64, value null", d)
    # time pins: the commit time of g1 reads g1; a time before it reads nothing
    v = ctl("--json", "kv", "versions").json()
    check(v and [x["generation"] for x in v["versions"]] == [g2, g1] and v["count"] == 2, "kv versions newest first", v)
    t1 = [x for x in v["versions"] if x["generation"] == g1][0]["commit_time"]
    r = ctl("kv", "get", "greeting@" + t1)
    check(r.rc == 0 and r.out == b"hello", "kv get KEY@<ISO time> reads that version", r)
    r = ctl("kv", "versions", "--limit", "1")
    check(r.rc == 0 and r.text.splitlines()[1].split()[0] == "v%d" % g2 and r.text.splitlines()[-1] == "1 version",
          "kv versions --limit 1 table", r)
    r = ctl("kv", "get", "nosuchkey")
    check(r.rc == 1 and "not found" in r.etext and r.out == b"", "kv get of a missing key exits 1", r)
    r = ctl("kv", "get", "greeting@1999-01-01T00:00:00Z")
    check(r.rc == 1 and "NOT_FOUND" in r.etext, "kv get at a time before the first commit exits 1", r)
    # A key that contains '@': kv put refuses it as typed (kv get would read a pin),
    # and takes it in hex or after --; kv get reads it back the same two ways.
    r = ctl("kv", "put", "mail@example", stdin=b"@")
    check(usage_error(r) and "hex" in r.etext and "--" in r.etext and
          ctl("kv", "get", "--", "mail@example").rc == 1,
          "kv put KEY-with-@ is a usage error naming hex and --, and writes nothing", r)
    r = ctl("kv", "put", "--", "mail@example", stdin=b"@")
    check(r.rc == 0 and r.text.startswith("put mail@example (1 bytes)"), "kv put -- KEY-with-@", r)
    g_at = int(re.search(r"at v(\d+)", r.text).group(1)) if r.rc == 0 else 0
    r = ctl("kv", "get", "--", "mail@example")
    check(r.rc == 0 and r.out == b"@", "kv get -- KEY-with-@ reads it back", r)
    r = ctl("kv", "get", hx(b"mail@example") + "@v%d" % g_at)
    check(r.rc == 0 and r.out == b"@", "kv get HEXKEY@PIN of a key with '@'", r)
    r = ctl("kv", "get", "mail@example")
    check(usage_error(r) and '"example" is not a pin' in r.etext, "kv get KEY-with-@ as typed: not a pin", r)
    r = ctl("kv", "rm", "--", "mail@example")
    check(r.rc == 0 and r.text.startswith("deleted mail@example"), "kv rm -- KEY-with-@", r)
    # RFC 3339 offsets read the same instant as Z
    import datetime
    z = datetime.datetime.strptime(t1[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    frac = t1[19:-1]
    for off in ("+01:00", "-05:30", "+00:00"):
        h, m = int(off[1:3]), int(off[4:6])
        delta = datetime.timedelta(hours=h, minutes=m) * (1 if off[0] == "+" else -1)
        local = (z + delta).strftime("%Y-%m-%dT%H:%M:%S") + frac + off
        r = ctl("kv", "get", "greeting@" + local)
        check(r.rc == 0 and r.out == b"hello", "kv get KEY@<RFC 3339 time with offset %s>" % off, (local, r))
    r = ctl("kv", "get", "greeting@" + t1.replace("T", "t").replace("Z", "z"))
    check(r.rc == 0 and r.out == b"hello", "kv get KEY@<time with lower-case t and z>", r)
    ctl("kv", "rm", "mail@example")
    big = os.urandom(5 << 20)
    with open(path, "wb") as f:
        f.write(big)
    r = ctl("kv", "put", "big", path)
    check(r.rc == 0 and "(5242880 bytes)" in r.text and ctl("kv", "get", "big").out == big,
          "kv put/get of a 5 MiB value round-trips", r)
    ctl("kv", "rm", "big")
    r = ctl("kv", "get", "greeting@v999999")
    check(r.rc == 1 and "OUT_OF_RANGE" in r.etext, "kv get at a future generation exits 1", r)

    # binary keys are accepted and shown as 0x...
    r = ctl("kv", "put", "0x00ff", stdin=b"bin")
    check(r.rc == 0 and r.text.startswith("put 0x00ff (3 bytes)"), "kv put of a hex key", r)
    r = ctl("kv", "put", "dir/a", stdin=b"1")
    r = ctl("kv", "put", "dir/b", stdin=b"2")
    g5 = int(re.search(r"at v(\d+)", r.text).group(1))
    r = ctl("kv", "ls")
    check(r.rc == 0 and r.text.splitlines()[:-1] == ["0x00ff", "dir/a", "dir/b", "greeting"] and
          re.match(r"4 keys at v%d \(" % g5, r.text.splitlines()[-1]), "kv ls lists keys in order", r)
    d = ctl("--json", "kv", "ls", "dir/").json()
    check(d and [k["key"] for k in d["keys"]] == ["dir/a", "dir/b"] and d["count"] == 2 and
          d["version"]["generation"] == g5, "kv ls PREFIX --json", d)
    r = ctl("kv", "ls", "--limit", "1")
    check(r.text.splitlines()[0] == "0x00ff" and len(r.text.splitlines()) == 2, "kv ls --limit", r)
    r = ctl("kv", "ls", "@v%d" % g2)
    check(r.text.splitlines()[:-1] == ["greeting"], "kv ls @PIN", r)
    r = ctl("kv", "ls", "dir/@v%d" % g2)
    check(r.rc == 0 and re.fullmatch(r"0 keys at v%d \(\S+Z\)\n" % g2, r.text), "kv ls PREFIX@PIN", r)
    d = ctl("--json", "kv", "ls", "dir/@v%d" % g2).json()
    check(d and d["keys"] == [] and d["count"] == 0 and d["version"]["generation"] == g2,
          "kv ls --json with no keys still names the version", d)

    # rm
    r = ctl("kv", "rm", "dir/a")
    check(r.rc == 0 and r.text.startswith("deleted dir/a at v"), "kv rm", r)
    g6 = g5 + 1
    r = ctl("kv", "get", "dir/a")
    check(r.rc == 1, "kv get after kv rm exits 1", r)
    r = ctl("kv", "get", "dir/a@v%d" % g5)
    check(r.rc == 0 and r.out == b"1", "the deleted key is still there at the older version", r)
    r = ctl("kv", "rm", "dir/a")
    check(r.rc == 1 and "not found" in r.etext, "kv rm of a missing key exits 1", r)
    r = ctl("--json", "kv", "rm", "dir/a")
    d = r.json()
    check(r.rc == 1 and d and d["exit"] == 1 and d["error"]["code"] == "STRATA_ENOTFOUND" and
          d["error"]["status"] == "REFUSED" and "nothing deleted" in d["error"]["message"],
          "kv rm --json of a missing key: error document with status REFUSED", r)

    # a FILE (or stdin) that cannot be read: exit 1 naming it and the reason
    r = ctl("kv", "put", "k-dir", tmp)
    check(r.rc == 1 and ("cannot read %s: Is a directory" % tmp) in r.etext, "kv put of an unreadable FILE", r)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        r = ctl("kv", "put", "k-dir", stdin=None, stdin_fd=fd)
    finally:
        os.close(fd)
    check(r.rc == 1 and "cannot read stdin: Is a directory" in r.etext, "kv put of an unreadable stdin", r)
    check(ctl("kv", "get", "k-dir").rc == 1, "... and nothing was written")

    # diff
    ctl("kv", "put", "greeting", stdin=b"hello")  # changed back to its g1 value
    g7 = g6 + 1
    r = ctl("kv", "diff", "@v%d" % g1, "@v%d" % g7)
    check(r.rc == 0 and r.text.splitlines() == ["+ 0x00ff", "+ dir/b",
                                                "2 changes from v%d to v%d: 2 added, 0 removed, 0 modified" % (g1, g7)],
          "kv diff: added keys; a key changed back is not listed", r)
    r = ctl("kv", "diff", "@v%d" % g1, "@" + t1)
    check(r.rc == 0 and r.text == "0 changes from v%d to v%d: 0 added, 0 removed, 0 modified\n" % (g1, g1),
          "kv diff with a time pin", r)
    d = ctl("--json", "kv", "diff", "@v%d" % g5, "@v%d" % g7).json()
    check(d and d["from"]["generation"] == g5 and d["to"]["generation"] == g7 and
          [(c["key"], c["change"]) for c in d["changes"]] == [("dir/a", "removed"), ("greeting", "modified")]
          and d["counts"] == {"total": 2, "added": 0, "removed": 1, "modified": 1}, "kv diff --json", d)
    d = ctl("--json", "kv", "diff", "@v%d" % g7, "@v%d" % g5).json()
    check(d and [(c["key"], c["change"]) for c in d["changes"]] == [("dir/a", "added"), ("greeting", "modified")],
          "kv diff in reverse order", d)
    d = ctl("--json", "kv", "diff", "@v%d" % g2, "@v%d" % g2).json()
    check(d and d["changes"] == [], "kv diff of a version with itself is empty", d)


# --- issue 18: strictness, suggestions, versions, recovery, generation 0 -----------------------

PIN_WORDS = "A pin is"


def test_strict_usage():
    # A malformed pin is a usage error in every command that takes one, saying what a pin is.
    for args in (["kv", "get", "k@2026-00-06T00:00:00Z"], ["kv", "get", "k@vX"], ["kv", "get", "k@v"],
                 ["kv", "get", "k@2026-11-21T10:00:00"], ["kv", "get", "k@2026-11-21T10:00:00+24:00"],
                 ["kv", "get", "k@2026-11-21T10:00:00+01"], ["kv", "get", "k@"],
                 # past int64 nanoseconds (April 2262): 5000-01-01 wrapped to a time in 2077
                 ["kv", "get", "k@2263-01-01T00:00:00Z"], ["kv", "get", "k@5000-01-01T00:00:00Z"],
                 ["kv", "ls", "dir/@vX"], ["kv", "ls", "@yesterday"],
                 ["kv", "diff", "@vX", "@v1"], ["kv", "diff", "@v1", "@2026-00-06T00:00:00Z"]):
        r = ctl(*args, addr=False)
        check(usage_error(r) and "is not a pin" in r.etext and PIN_WORDS in r.etext and
              "v<generation>" in r.etext and "RFC 3339" in r.etext,
              "malformed pin is a usage error saying what a pin is: %s" % " ".join(args), r)
    # retention hold and release take a generation, vN, quoted back as typed when it is not one
    for args in (["retention", "hold", "vX"], ["retention", "release", "v0"], ["retention", "hold", "2026-01-01T00:00:00Z"]):
        r = ctl(*args, addr=False)
        check(usage_error(r) and 'expected a version vN (N >= 1), got "%s"' % args[-1] in r.etext,
              "%s: a usage error quoting the argument" % " ".join(args), r)
    for args in (["kv", "put", "a@b"], ["kv", "rm", "a@v1"]):
        r = ctl(*args, addr=False, stdin=b"")
        check(usage_error(r) and "takes no pin" in r.etext and "hex" in r.etext,
              "%s: a key with '@' is a usage error naming hex and --" % " ".join(args), r)
    # "did you mean"
    for args, want in ((["lokc", "list"], "did you mean 'lock'?"), (["lock", "lsit"], "did you mean 'lock list'?"),
                       (["kv", "versoins"], "did you mean 'kv versions'?"), (["healht"], "did you mean 'health'?"),
                       (["op", "set-stauts", "1", "x"], "did you mean 'op set-status'?"),
                       (["lock", "list", "--exipred"], "did you mean --expired?"),
                       (["lock", "acquire", "--op", "1", "--tll", "5s", "k"], "did you mean --ttl?"),
                       (["--jsno", "health"], "did you mean --json?"),
                       (["kv", "ls", "--timout", "5s"], "did you mean --timeout?"),
                       # the TLS and token options are global too, after the command as before it
                       (["health", "--tokn", "x"], "did you mean --token?"),
                       (["kv", "ls", "--tls-cat", "ca.pem"], "did you mean --tls-ca?"),
                       (["--tls-kye", "k.pem", "health"], "did you mean --tls-key?"),
                       (["--versoin"], "did you mean --version?")):
        r = ctl(*args, addr=False)
        check(usage_error(r) and want in r.etext, "suggestion: %s -> %s" % (" ".join(args), want), r)
    r = ctl("frobnicate", addr=False)
    check(usage_error(r) and "did you mean" not in r.etext, "no suggestion for a word far from every command", r)
    # lock key --chunk in decimal and 0x-hex
    r = ctl("lock", "key", "--chunk", "0x100000000000001", addr=False)
    check(r.rc == 0 and r.text == hx(chunk_key(0x100000000000001)) + "\n", "lock key --chunk 0x-hex", r)
    r = ctl("lock", "key", "--chunk", "0xFFFFFFFFFFFFFFFF", addr=False)
    check(r.rc == 0 and r.text == hx(chunk_key(2 ** 64 - 1)) + "\n", "lock key --chunk 0xFFFFFFFFFFFFFFFF", r)
    r = ctl("lock", "key", "--block", "0x1", "2", "0x3", addr=False)
    check(r.rc == 0 and r.text == hx(block_key(1, 2, 3)) + "\n", "lock key --block with hex coordinates", r)
    for bad in ("0x", "0x1g", "0x10000000000000000", "18446744073709551616", "7.5"):
        r = ctl("lock", "key", "--chunk", bad, addr=False)
        check(usage_error(r) and "decimal" in r.etext and "0x-hex" in r.etext,
              "lock key --chunk %s is a usage error" % bad, r)
    # op set-status arguments
    for args, want in ((["op", "set-status", "1", "sleeping"], "STATUS"), (["op", "set-status", "0", "success"], "operation id"),
                       (["op", "set-status", "1"], "too few")):
        r = ctl(*args, addr=False)
        check(usage_error(r) and want in r.etext, "usage error: %s" % " ".join(args), r)


def git_commit():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    if not os.path.exists(os.path.join(root, ".git")):
        return "unknown"
    p = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], stdout=subprocess.PIPE, text=True)
    return p.stdout.strip() if p.returncode == 0 else "unknown"


VERSION_RE = r"%s (\d+\.\d+\.\d+) \(commit ([0-9a-f]{7,}|unknown), built (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)\)\n"


def test_versions():
    want = git_commit()
    for prog, argv in (("stratactl", [CTL, "--version"]), ("strata-server", [SERVER, "--version"])):
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=60)
        m = re.fullmatch(VERSION_RE % prog, p.stdout)
        check(p.returncode == 0 and m and m.group(2) == want,
              "%s --version prints version, commit %s and build date" % (prog, want), (p.stdout, p.stderr))
    r = ctl("version", addr=False)
    check(r.rc == 0 and r.text.startswith("stratactl "), "stratactl version (as a command)", r)


def test_audit_since(tmp):
    """audit --since reads times as pins do: RFC 3339 with Z or an offset, every field in
    range; a malformed time is a usage error, not a silently different instant."""
    path = os.path.join(tmp, "since-audit.log")
    # 2026-12-06T22:00:00Z and 23:00:00Z
    t1, t2 = 1796594400 * 10 ** 9, 1796598000 * 10 ** 9
    with open(path, "w") as f:
        for i, t in enumerate((t1, t2)):
            f.write(json.dumps({"time_ns": t, "event": "server_start", "listen": "r%d" % i}) + "\n")
    for since, n in (("2026-12-06T22:30:00Z", 1), ("2026-12-06T23:30:00+01:00", 1), ("2026-12-06T22:30:00+00:00", 1),
                     ("2026-12-06T17:00:00-05:00", 2), ("2026-12-06T23:00:00.5Z", 0), ("2026-12-06", 2),
                     ("2026-12-06 22:30:00", 1), ("2026-12-06T22:30", 1), ("2026-12-07", 0)):
        r = ctl("--json", "audit", "--file", path, "--since", since, addr=False)
        check(r.rc == 0 and len(r.json()["records"]) == n, "audit --since %s: %d of 2 records" % (since, n), r)
    for bad in ("2026-02-30", "2026-00-06T00:00:00Z", "2026-12-06T24:00:00Z", "2026-12-06T22:00:00+24:00",
                "2026-12-06T22:00:00+01", "yesterday", "2026-12-06x"):
        r = ctl("audit", "--file", path, "--since", bad, addr=False)
        check(usage_error(r) and "--since" in r.etext and "+01:00" in r.etext,
              "audit --since %s is a usage error" % bad, r)


def test_man_pages():
    """The man pages keep up with the binaries: every option strata-server --help names is
    described in docs/strata-server.1, every stratactl command in docs/stratactl.1."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.run([SERVER, "--help"], stdout=subprocess.PIPE, text=True, timeout=60)
    opts = sorted(set(re.findall(r"--[a-z][a-z-]+", p.stdout)))
    with open(os.path.join(root, "docs/strata-server.1")) as f:
        man = f.read().replace("\\-", "-")
    missing = [o for o in opts if not re.search(r"\.(B|BI|RB)[^\n]*%s\b" % re.escape(o), man)]
    check(p.returncode == 0 and len(opts) > 15 and not missing,
          "docs/strata-server.1 describes every option of strata-server --help", missing)
    r = ctl("--help", addr=False)
    cmds = set()
    for line in r.text.splitlines():
        if not re.match(r"  [a-z]", line):
            continue
        words = []
        for w in line.split():  # the command words end at the first argument or option
            if not re.fullmatch(r"[a-z][a-z-]*", w):
                break
            words.append(w)
        cmds.add(" ".join(words))
    with open(os.path.join(root, "docs/stratactl.1")) as f:
        lines = [re.sub(r"\\f[RBIP]", "", ln).replace("\\-", "-") for ln in f.read().splitlines()]
    # "retention show | set ... | hold ..." on one .B line names all four
    missing = [c for c in sorted(cmds) if not any(
        re.search(r"\b%s\b" % re.escape(c.split()[0]), ln) and re.search(r"\b%s\b" % re.escape(c.split()[-1]), ln)
        for ln in lines if ln.startswith(".B"))]
    check(r.rc == 0 and len(cmds) > 25 and not missing, "docs/stratactl.1 names every command of stratactl --help",
          (missing, sorted(cmds)))


def test_readers_doc():
    """docs/readers.md's tensorstore specs are valid JSON of the shapes tensorstore's ocdbt
    and neuroglancer_precomputed drivers take, and its time pin is one stratactl reads the
    same way (tensorstore itself is not installable here: docs/readers.md says so)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "docs/readers.md")) as f:
        text = f.read()
    blocks = re.findall(r"```json\n(.*?)```", text, re.S)
    specs = []
    for b in blocks:
        try:
            specs.append(json.loads(b))
        except ValueError as e:
            check(False, "docs/readers.md: a json block parses", (b, str(e)))
    kv = [x for x in specs if x.get("driver") == "ocdbt"]
    ng = [x for x in specs if x.get("driver") == "neuroglancer_precomputed"]
    tensorstore_time = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"  # %Y-%m-%dT%H:%M:%E*SZ
    versions = [x.get("version") for x in kv]
    check(len(blocks) == len(specs) == 5 and len(kv) == 3 and len(ng) == 2 and
          all(x["base"].startswith("file:///") and x["base"].endswith("/kv/") for x in kv) and
          None in versions and any(isinstance(v, int) and v >= 1 for v in versions) and
          any(isinstance(v, str) and re.fullmatch(tensorstore_time, v) for v in versions),
          "docs/readers.md: ocdbt specs latest, at a generation (>= 1), at a time in tensorstore's layout", specs)
    check(all(x["kvstore"]["driver"] == "ocdbt" and x["kvstore"]["path"].endswith("/") and
              "scale_index" in x for x in ng) and any("version" in x["kvstore"] for x in ng),
          "docs/readers.md: neuroglancer_precomputed over ocdbt, latest and pinned", ng)
    for v in versions:
        if isinstance(v, str):  # the same time is a pin stratactl takes (exit 3: no server, not 2: usage)
            r = ctl("--timeout", "1s", "kv", "get", "k@" + v, addr="127.0.0.1:%d" % free_port())
            check(r.rc == 3, "the time in docs/readers.md is a valid stratactl pin", r)


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


def test_server_refusals(tmp):
    # Port in use: one line, and no data directory created.
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    addr = "127.0.0.1:%d" % busy.getsockname()[1]
    d = os.path.join(tmp, "never-created")
    rc, err = run_server_once(d, addr)
    busy.close()
    check(rc == 1 and err.count("\n") == 1 and err.startswith("strata-server: cannot listen on %s: " % addr)
          and "already in use" in err and not os.path.exists(d),
          "port in use: one line naming the address, no data directory created", (rc, err))
    # Not a Strata directory.
    d = os.path.join(tmp, "photos")
    os.makedirs(d)
    open(os.path.join(d, "cat.jpg"), "w").close()
    rc, err = run_server_once(d)
    check(rc == 1 and err.count("\n") == 1 and "is not a Strata data directory" in err and "cat.jpg" in err
          and sorted(os.listdir(d)) == ["cat.jpg"], "a directory of other files is refused naming them", (rc, err))
    d = os.path.join(tmp, "a-file")
    open(d, "w").close()
    rc, err = run_server_once(d)
    check(rc == 1 and "is not a directory" in err, "a data dir that is a file is refused", (rc, err))
    # Newer format marker.
    d = os.path.join(tmp, "newer")
    os.makedirs(d)
    with open(os.path.join(d, "FORMAT"), "w") as f:
        f.write("strata data directory format 99\n")
    rc, err = run_server_once(d)
    check(rc == 1 and err.count("\n") == 1 and "format 99" in err and "newer" in err and
          sorted(os.listdir(d)) == ["FORMAT"], "a data dir of a newer format is refused with what was found", (rc, err))
    with open(os.path.join(d, "FORMAT"), "w") as f:
        f.write("hello\n")
    rc, err = run_server_once(d)
    check(rc == 1 and "not a Strata format marker" in err and '"hello"' in err,
          "a FORMAT file that is not ours is refused quoting it", (rc, err))
    # A manifest of a newer OCDBT format version (the envelope's version varint).
    d = os.path.join(tmp, "newer-ocdbt")
    os.makedirs(os.path.join(d, "kv"))
    with open(os.path.join(d, "kv", "manifest.ocdbt"), "wb") as f:
        f.write(bytes.fromhex("0cdb3a2a") + struct.pack("<Q", 64) + b"\x01" + b"\x00" * 51)
    rc, err = run_server_once(d)
    check(rc == 1 and "OCDBT format version 1" in err and "manifest.ocdbt" in err,
          "a store of a newer OCDBT format version is refused", (rc, err))
    with open(os.path.join(d, "kv", "manifest.ocdbt"), "wb") as f:
        f.write(b"PK\x03\x04" + b"\x00" * 60)
    rc, err = run_server_once(d)
    check(rc == 1 and "is not an OCDBT manifest" in err and "0x504b0304" in err,
          "a manifest.ocdbt that is not one is refused with its magic", (rc, err))
    # A fresh directory gets the marker; a data dir from before the marker is accepted.
    d = os.path.join(tmp, "fresh")
    proc, port = start_server(d)
    stop_server(proc)
    with open(os.path.join(d, "FORMAT")) as f:
        check(f.read() == "strata data directory format 1\n", "a new data directory gets FORMAT")
    os.unlink(os.path.join(d, "FORMAT"))
    proc, port = start_server(d)
    r = ctl("health", addr="127.0.0.1:%d" % port)
    stop_server(proc)
    check(r.rc == 0 and os.path.exists(os.path.join(d, "FORMAT")),
          "a data directory without FORMAT (older server) is used and marked", r)
    # A damaged lock database: the start fails naming the directory and what RocksDB found,
    # not a C function of the lock manager ("lk_open").
    d2 = os.path.join(tmp, "damaged-locks")
    shutil.copytree(d, d2)
    with open(os.path.join(d2, "locks", "CURRENT"), "w") as f:
        f.write("garbage\n")
    rc, err = run_server_once(d2)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    check(rc == 1 and last.startswith("strata-server: lock manager in %s/locks: " % d2) and "CURRENT" in last and
          not C_NAME.search(err), "a damaged lock database: the start fails naming it, no C function", (rc, err))


def test_server_bad_flags(tmp):
    """A bad strata-server flag is one line saying what is wrong and a pointer to --help
    (not getopt's line scrolled away by the whole usage), exit 2, nothing created."""
    d = os.path.join(tmp, "never-created-flags")
    for args, want in ((["--lisen", "127.0.0.1:0"], "unknown option --lisen"),
                       (["--listen"], "--listen needs a value"),
                       (["--insecure-listen=1"], "--insecure-listen takes no value"),
                       (["-x"], "unknown option -x"),
                       (["extra"], 'unexpected argument "extra"')):
        p = subprocess.run([SERVER, "--data-dir", d] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, timeout=60)
        check(p.returncode == 2 and p.stderr == "strata-server: %s\nRun 'strata-server --help' for the options.\n" % want
              and not os.path.exists(d), "strata-server %s: exit 2, one line (%s) and the --help hint"
              % (" ".join(args), want), (p.returncode, p.stderr[:300]))


def test_listen_refusals(tmp):
    """--listen and --metrics-listen are checked before anything is created: a port out of
    range is refused (getaddrinfo would bind it modulo 65536), a missing port is a syntax
    error (not "not a loopback address"), a metrics port in use is one line with no
    library output before it."""
    d = os.path.join(tmp, "never-created-listen")
    for listen, want in (("127.0.0.1:99999", "the port must be a number in 0..65535"),
                         ("127.0.0.1:7420x", "the port must be a number in 0..65535"),
                         ("127.0.0.1:-1", "the port must be a number in 0..65535"),
                         ("127.0.0.1", 'expected HOST:PORT, got "127.0.0.1"')):
        rc, err = run_server_once(d, listen)
        check(rc == 1 and err.count("\n") == 1 and err.startswith("strata-server: --listen") and want in err
              and "loopback" not in err and not os.path.exists(d),
              "--listen %s: one line (%s), no data directory" % (listen, want), (rc, err))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    maddr = "127.0.0.1:%d" % busy.getsockname()[1]
    rc, err = run_server_once(d, "127.0.0.1:0", "--metrics-listen", maddr)
    busy.close()
    check(rc == 1 and err.count("\n") == 1 and err.startswith("strata-server: cannot listen on %s: " % maddr)
          and "already in use" in err and "--metrics-listen" in err and not os.path.exists(d),
          "--metrics-listen on a port in use: one line naming the flag, no data directory", (rc, err))
    for maddr, want in (("127.0.0.1:99999", "0..65535"), ("[::1]:9420", "not an IPv4 address"),
                        ("localhost", "expected HOST:PORT")):
        rc, err = run_server_once(d, "127.0.0.1:0", "--metrics-listen", maddr)
        check(rc == 1 and err.count("\n") == 1 and "--metrics-listen" in err and want in err and
              not os.path.exists(d), "--metrics-listen %s: one line (%s), no data directory" % (maddr, want),
              (rc, err))


def test_generation_zero():
    """Generation 0 is the empty store before the first commit, pinnable on an empty
    store and later alike (an op created on an empty store starts there)."""
    r = ctl("kv", "get", "k@v0")
    check(r.rc == 1 and "not found at v0" in r.etext, "empty store: kv get KEY@v0 is not found at v0", r)
    d = ctl("--json", "kv", "ls", "@v0").json()
    check(d and d["count"] == 0 and d["version"]["generation"] == 0, "empty store: kv ls @v0", d)


def test_generation_zero_later():
    r = ctl("kv", "put", "zero-a", stdin=b"1")
    g = int(re.search(r"at v(\d+)", r.text).group(1))
    d = ctl("--json", "kv", "get", "zero-a@v0").json()
    check(d and d["found"] is False and d["version"] == {"generation": 0, "commit_time": None, "commit_time_ns": 0},
          "after a commit: kv get KEY@v0 finds nothing at generation 0", d)
    r = ctl("kv", "ls", "@v0")
    check(r.rc == 0 and r.text == "0 keys at v0 (-)\n", "after a commit: kv ls @v0 lists nothing", r)
    r = ctl("kv", "diff", "@v0", "@v%d" % g)
    keys = ctl("kv", "ls").text.splitlines()[:-1]
    check(r.rc == 0 and r.text.splitlines()[:-1] == ["+ " + k for k in keys] and "+ zero-a" in r.text and
          r.text.splitlines()[-1].startswith("%d changes from v0 to v%d: %d added, 0 removed" % (len(keys), g, len(keys))),
          "kv diff @v0 @vN: every key is new since the empty store", r)
    ctl("kv", "rm", "zero-a")


def test_diff_from_v0_after_retention(tmp):
    """kv diff @v0 @vN is every key at vN, also when retention has dropped the generations
    after v0 (it lists vN instead of watching history from v0)."""
    proc, port = start_server(os.path.join(tmp, "diff-v0-data"))
    addr = "127.0.0.1:%d" % port
    try:
        r = ctl("retention", "set", "--keep-versions", "1", addr=addr)
        check(r.rc == 0, "retention set --keep-versions 1", r)
        for k in ("a", "b", "c"):
            ctl("kv", "put", "v0diff/" + k, stdin=k.encode(), addr=addr)
        ctl("kv", "rm", "v0diff/b", addr=addr)
        # The floor follows the policy within about a second; a commit drops what is below
        # it. Commit (rewriting one key) until v1 reads OUT_OF_RANGE.
        start, dropped, g = time.monotonic(), None, 0
        while time.monotonic() - start < 120:
            w = ctl("kv", "put", "v0diff/a", stdin=b"a%d" % g, addr=addr)
            g = int(re.search(r"at v(\d+)", w.text).group(1))
            r = ctl("kv", "get", "v0diff/a@v1", addr=addr)
            if r.rc == 1 and "OUT_OF_RANGE" in r.etext:
                dropped = r
                break
            time.sleep(0.1)  # polling the floor, not a synchronisation
        d = ctl("kv", "diff", "@v0", "@v%d" % g, addr=addr)
        check(dropped and d.rc == 0 and d.text == "+ v0diff/a\n+ v0diff/c\n2 changes from v0 to v%d: 2 added, 0 removed, "
              "0 modified\n" % g, "kv diff @v0 @vN after retention dropped v1: the keys at vN, added", (dropped, d))
        d = ctl("kv", "diff", "@v%d" % g, "@v0", addr=addr)
        check(d.rc == 0 and d.text.splitlines()[:2] == ["- v0diff/a", "- v0diff/c"], "... and in reverse: removed", d)
    finally:
        check(stop_server(proc) == 0, "the retention server exits 0 on SIGTERM")


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


def test_progress_on_terminal():
    g = ctl("--json", "kv", "versions", "--limit", "1").json()["versions"][0]["generation"]
    plain = ctl("kv", "diff", "@v1", "@v%d" % g)
    p, tty = tty_stderr("kv", "diff", "@v1", "@v%d" % g)
    check(p.returncode == 0 and p.stdout == plain.out and "kv diff: read the changes of v" in tty and
          tty.endswith("\r\x1b[K"), "kv diff shows progress on a terminal, erased before the result", (tty, p.stdout))
    p, tty = tty_stderr("kv", "diff", "@v0", "@v%d" % g)
    check(p.returncode == 0 and p.stdout == ctl("kv", "diff", "@v0", "@v%d" % g).out and
          "kv diff: listed the keys at v%d" % g in tty and tty.endswith("\r\x1b[K"),
          "kv diff from v0 shows its listing progress on a terminal", (tty, p.stdout))
    check(plain.etext == "", "no progress when stderr is not a terminal", plain)
    p, tty = tty_stderr("--json", "kv", "diff", "@v0", "@v%d" % g)
    check(p.returncode == 0 and tty == "", "no progress with --json", tty)
    p, tty = tty_stderr("kv", "ls")
    check(p.returncode == 0 and p.stdout == ctl("kv", "ls").out and re.search(r"kv ls: \d+ keys so far", tty)
          and tty.endswith("\r\x1b[K"), "kv ls into a file counts the keys on a terminal", tty)
    p, tty = tty_stderr("op", "list")
    check(p.returncode == 0 and re.search(r"Ops.List: \d+ ops received", tty) and tty.endswith("\r\x1b[K"),
          "op list counts the ops received on a terminal", tty)


def test_put_from_terminal():
    """kv put with stdin on a terminal says it is reading the value there (else it looks
    hung), and takes what is typed up to Ctrl-D."""
    import pty
    import select
    master, slave = pty.openpty()
    p = subprocess.Popen([CTL, "--addr", ADDR, "kv", "put", "typed-key"], stdin=slave, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    os.close(slave)
    try:
        ready = select.select([p.stderr], [], [], 60)[0]  # the hint comes before the read
        hint = p.stderr.readline().decode() if ready else ""
        os.write(master, b"typed value\n\x04")
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # still waiting for input after one Ctrl-D
            p.kill()
            out, err = p.communicate()
            err += b" (killed: still reading 120 s after Ctrl-D)"
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
    check(p.returncode == 0 and "reading the value of typed-key from the terminal" in hint and "Ctrl-D" in hint,
          "kv put from a terminal says where the value is read and how to end it", (hint, out, err))
    check(ctl("kv", "get", "typed-key").out == b"typed value\n", "... and stores what was typed")
    ctl("kv", "rm", "typed-key")
    r = ctl("kv", "put", "piped-key", stdin=b"x")
    check(r.rc == 0 and r.etext == "", "no hint when stdin is not a terminal", r)
    ctl("kv", "rm", "piped-key")


def test_set_status():
    rc, out, err = fixture("create-op", "dave", "split")
    op = int(out)
    r = ctl("op", "set-status", str(op), "write_started")
    r = ctl("op", "set-status", str(op), "write_failed", "--reason", "rolled back by hand, ticket 123")
    check(r.rc == 0 and re.search(r"^status: +WRITE_FAILED$", r.text, re.M) and
          re.search(r"^reason: +rolled back by hand, ticket 123$", r.text, re.M),
          "op set-status N STATUS --reason prints the op with the reason", r)
    d = ctl("--json", "op", "show", str(op)).json()
    check(d and d["status"] == "WRITE_FAILED" and d["reason"] == "rolled back by hand, ticket 123",
          "the status and reason are kept (op show --json)", d)
    d = ctl("--json", "op", "set-status", str(op), "SUCCESS").json()
    check(d and d["status"] == "SUCCESS" and d["reason"] == "", "set-status without --reason clears it", d)
    r = ctl("op", "set-status", "999999", "success")
    check(r.rc == 1 and "NOT_FOUND" in r.etext and "Ops.SetStatus" in r.etext and "oplog" not in r.etext,
          "set-status of an unknown op exits 1 naming the RPC, not a C function", r)
    r = ctl("op", "set-status", str(op), "success", "--reason", "x" * (64 * 1024 + 1))
    check(r.rc == 2 and "reason" in r.etext, "a reason above 64 KiB is INVALID_ARGUMENT (exit 2)", r)


def test_messages_name_rpcs():
    r = ctl("lock", "acquire", "--op", "999999", "--kind", "indefinite", "row-msg")
    check(r.rc == 1 and "Ops.Create" in r.etext and not C_NAME.search(r.etext),
          "an indefinite lock for an op not in the log: the message names Ops.Create", r)


def pb_bytes(field, b):
    n, v = len(b), b""
    while True:
        v += bytes([(n & 0x7f) | (0x80 if n > 0x7f else 0)])
        n >>= 7
        if not n:
            break
    return bytes([field << 3 | 2]) + v + b


def pb_varint(field, v):
    b = b""
    while True:
        b += bytes([(v & 0x7f) | (0x80 if v > 0x7f else 0)])
        v >>= 7
        if not v:
            break
    return bytes([field << 3]) + b


def pb_fields(b):
    """The fields of a protobuf message as {number: [values]} (varints as ints, the rest bytes)."""
    out, i = {}, 0
    while i < len(b):
        key, shift = 0, 0
        while True:
            key |= (b[i] & 0x7f) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 0x80:
                break
        f, wt = key >> 3, key & 7
        v, shift = 0, 0
        while True:  # a varint, or a length
            v |= (b[i] & 0x7f) << shift
            shift += 7
            i += 1
            if not b[i - 1] & 0x80:
                break
        if wt == 2:
            v, i = b[i:i + v], i + v
        out.setdefault(f, []).append(v)
    return out


def fake_server(gaps):
    """A gRPC server (python3-grpcio, raw bytes) answering Health/Check SERVING, and three
    streams that send one message per entry of gaps, each after sleeping that many
    seconds: Kv/List (a key each), Ops/List (an op each, newest first) and Kv/Watch (one
    changed key per generation from_generation+1 .. +len(gaps)); Kv/Get resolves a
    generation pin to itself and Kv/BatchGet finds every key with the value "v<generation>",
    for kv diff (every key modified). Returns (server, addr)."""
    import grpc
    from concurrent import futures

    def version(field, g):
        return pb_bytes(field, pb_varint(1, g) + pb_varint(2, 1796594400 * 10 ** 9 + g))

    def health(req, ctx):
        return b"\x08\x01"

    def kv_list(req, ctx):
        for i, gap in enumerate(gaps):
            time.sleep(gap)
            kv = pb_bytes(1, b"key%02d" % i) + b"\x10\x01"
            yield pb_bytes(1, kv) + pb_bytes(2, b"\x08\x05")

    def ops_list(req, ctx):
        n = len(gaps)
        for i, gap in enumerate(gaps):
            time.sleep(gap)
            op = pb_varint(1, n - i) + pb_bytes(4, b"u") + pb_bytes(5, b"k") + pb_varint(7, 1)
            yield pb_bytes(1, op) + pb_varint(2, n)

    def kv_get(req, ctx):
        pin = pb_fields(pb_fields(req).get(2, [b""])[0])
        return version(3, pin.get(2, [0])[0])  # GetResponse.version

    def kv_watch(req, ctx):
        lo = pb_fields(req).get(1, [0])[0]
        for i, gap in enumerate(gaps):
            time.sleep(gap)
            yield version(1, lo + 1 + i) + pb_bytes(2, pb_bytes(1, b"key%02d" % i))

    def kv_batch_get(req, ctx):
        f = pb_fields(req)
        g = pb_fields(f[2][0] if 2 in f else b"").get(2, [0])[0]  # pin.generation
        entries = b"".join(pb_bytes(1, pb_bytes(1, k) + b"\x10\x01" + pb_bytes(3, b"v%d" % g)) for k in f.get(1, []))
        return entries + version(2, g)

    ident = lambda b: b  # noqa: E731 -- raw bytes in and out
    s = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    s.add_generic_rpc_handlers([
        grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
            "Check": grpc.unary_unary_rpc_method_handler(health, ident, ident)}),
        grpc.method_handlers_generic_handler("strata.v1.Kv", {
            "List": grpc.unary_stream_rpc_method_handler(kv_list, ident, ident),
            "Get": grpc.unary_unary_rpc_method_handler(kv_get, ident, ident),
            "BatchGet": grpc.unary_unary_rpc_method_handler(kv_batch_get, ident, ident),
            "Watch": grpc.unary_stream_rpc_method_handler(kv_watch, ident, ident)}),
        grpc.method_handlers_generic_handler("strata.v1.Ops", {
            "List": grpc.unary_stream_rpc_method_handler(ops_list, ident, ident)})])
    port = s.add_insecure_port("127.0.0.1:0")
    s.start()
    return s, "127.0.0.1:%d" % port


def test_stream_deadlines():
    # Listings longer than --timeout in total, with short gaps: the deadline covers
    # inactivity, not the whole command (total 4 s, --timeout 2.5s, gaps 0.2 s), for each
    # long command: kv ls, op list, kv diff (its Kv.Watch).
    s, addr = fake_server([0.2] * 20)
    try:
        t0 = time.monotonic()
        r = ctl("--timeout", "2500ms", "kv", "ls", addr=addr)
        took = time.monotonic() - t0
        t0 = time.monotonic()
        o = ctl("--timeout", "2500ms", "op", "list", addr=addr)
        took_o = time.monotonic() - t0
        t0 = time.monotonic()
        d = ctl("--timeout", "2500ms", "kv", "diff", "@v1", "@v21", addr=addr)
        took_d = time.monotonic() - t0
    finally:
        s.stop(0)
    check(r.rc == 0 and r.text.splitlines()[:2] == ["key00", "key01"] and r.text.splitlines()[-1].startswith("20 keys at v5")
          and took >= 4.0, "kv ls longer than --timeout in total succeeds (%.1fs)" % took, r)
    check(o.rc == 0 and o.text.splitlines()[-1] == "20 ops" and took_o >= 4.0,
          "op list longer than --timeout in total succeeds (%.1fs)" % took_o, o)
    check(d.rc == 0 and d.text.splitlines()[0] == "~ key00" and
          d.text.splitlines()[-1] == "20 changes from v1 to v21: 0 added, 0 removed, 20 modified" and took_d >= 4.0,
          "kv diff over changes arriving longer than --timeout in total succeeds (%.1fs)" % took_d, d)
    # A stream that stops sending: exit 3 after --timeout of silence, saying what was
    # slow, with what arrived before printed.
    s, addr = fake_server([0, 0, 30])
    try:
        r = ctl("--timeout", "1s", "kv", "ls", addr=addr)
        o = ctl("--timeout", "1s", "op", "list", addr=addr)
        d = ctl("--timeout", "1s", "kv", "diff", "@v1", "@v4", addr=addr)
    finally:
        s.stop(0)
    check(r.rc == 3 and r.text == "key00\nkey01\n" and "Kv.List was too slow" in r.etext and
          "sent nothing for 1.0s" in r.etext and "longer --timeout" in r.etext and
          "is strata-server running" not in r.etext,
          "a stalled stream exits 3 after --timeout of silence, output so far printed, message says what was slow", r)
    for res, cmd, what in ((o, "op list", "Ops.List"), (d, "kv diff", "Kv.Watch")):
        check(res.rc == 3 and ("%s was too slow" % what) in res.etext and "sent nothing for 1.0s" in res.etext and
              "is strata-server running" not in res.etext,
              "%s stalled: exit 3 after --timeout of silence naming %s" % (cmd, what), res)


def test_security(tmp):
    """TLS, tokens, auth hash and audit (docs/security.md)."""
    pki = os.path.join(tmp, "pki")
    subprocess.check_call(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rpc",
                                              "mkcerts.sh"), pki])
    ca = os.path.join(pki, "ca.pem")
    r = ctl("auth", "hash", "wally", "writer", stdin=b"tok-w\n", addr=False)
    want = "wally writer " + hashlib.sha256(b"tok-w").hexdigest()
    check(r.rc == 0 and r.text == want + "\n", "auth hash: the line holds the token's SHA-256", r)
    r = ctl("auth", "hash", "rita", "reader", stdin=b"tok-r", addr=False)
    lines = [want, r.text.strip()]
    r = ctl("auth", "hash", "--generate", "olga", "operator", addr=False)
    tok_op = r.etext.strip().rsplit(" ", 1)[-1]
    check(r.rc == 0 and re.fullmatch(r"[0-9a-f]{64}", tok_op)
          and r.text.strip() == "olga operator " + hashlib.sha256(tok_op.encode()).hexdigest(),
          "auth hash --generate: a new token on stderr, its line on stdout", r)
    lines.append(r.text.strip())
    r = ctl("auth", "hash", "x", "admin", stdin=b"t", addr=False)
    check(usage_error(r) and "reader, writer or operator" in r.etext, "auth hash: an unknown role", r)
    r = ctl("--json", "auth", "hash", "x", "reader", stdin=b"t", addr=False)
    check(r.rc == 0 and r.json()["sha256"] == hashlib.sha256(b"t").hexdigest(), "auth hash --json", r)
    auth = os.path.join(tmp, "auth")
    with open(auth, "w") as f:
        f.write("\n".join(lines) + "\n")
    data = os.path.join(tmp, "sec-data")
    proc, port = start_server(data, "--tls-cert", os.path.join(pki, "server.pem"),
                                   "--tls-key", os.path.join(pki, "server.key"), "--auth-file", auth)
    addr = "127.0.0.1:%d" % port
    try:
        r = ctl("--tls-ca", ca, "--token", "tok-r", "health", addr=addr)
        check(r.rc == 0 and "SERVING" in r.text, "health over TLS with --tls-ca and --token", r)
        r = ctl("health", addr=addr, env={"STRATA_TLS_CA": ca, "STRATA_TOKEN": "tok-r"})
        check(r.rc == 0, "health over TLS with $STRATA_TLS_CA and $STRATA_TOKEN", r)
        r = ctl("--tls-ca", ca, "health", addr=addr)
        check(r.rc == 1 and "UNAUTHENTICATED" in r.etext, "no token: refused UNAUTHENTICATED, exit 1", r)
        r = ctl("--tls-ca", ca, "--token", "tok-r", "kv", "put", "sec-k", stdin=b"v", addr=addr)
        check(r.rc == 1 and "PERMISSION_DENIED" in r.etext and "needs role writer" in r.etext,
              "a reader's kv put: PERMISSION_DENIED naming the role", r)
        r = ctl("--tls-ca", ca, "--token", "tok-w", "kv", "put", "sec-k", stdin=b"v", addr=addr)
        check(r.rc == 0, "a writer's kv put over TLS", r)
        r = ctl("--tls-ca", os.path.join(pki, "other-ca.pem"), "--token", "tok-r", "health", addr=addr)
        check(r.rc == 3 and "TLS handshake" in r.etext and "E1" not in r.etext,
              "a CA that did not sign the server's certificate: exit 3, a TLS hint, no gRPC log lines", r)
        r = ctl("--tls-ca", os.path.join(tmp, "missing.pem"), "health", addr=addr)
        check(r.rc == 2 and "--tls-ca " + os.path.join(tmp, "missing.pem") in r.etext,
              "a missing --tls-ca file is named", r)
        r = ctl("--tls-ca", ca, "--token", "tok-w", "lock", "acquire", "--op", "9", "sec-row", addr=addr)
        check(r.rc == 0, "a writer acquires a lock", r)
        r = ctl("--tls-ca", ca, "--token", "tok-w", "lock", "release", "--privileged", "sec-row", addr=addr)
        check(r.rc == 1 and "needs role operator" in r.etext, "a writer's privileged release is refused", r)
        r = ctl("--tls-ca", ca, "--token", tok_op, "lock", "release", "--privileged", "sec-row", addr=addr)
        check(r.rc == 0, "an operator's privileged release", r)
        r = ctl("audit", "--data-dir", data, addr=False)
        rows = [l for l in r.text.splitlines() if "/strata.v1.Locks/Release" in l]
        check(r.rc == 0 and any(" olga " in l and "intent" in l and "privileged" in l for l in rows)
              and any(" olga " in l and " OK " in l for l in rows)
              and any(" wally " in l and "PERMISSION_DENIED" in l for l in rows),
              "audit: the privileged release (intent, outcome) and the refused one, with callers", r)
        r = ctl("--json", "audit", "--data-dir", data, "--since", "1h", addr=False)
        recs = (r.json() or {}).get("records", [])
        check(r.rc == 0 and any(x.get("event") == "refused" and x.get("status") == "UNAUTHENTICATED"
                                for x in recs) and recs[0]["event"] == "server_start",
              "audit --json --since 1h", r)
        r = ctl("--json", "audit", "--file", os.path.join(data, "audit.log"), "--since", "2200-01-01", addr=False)
        check(r.rc == 0 and r.json()["records"] == [], "audit --since a future time: no records", r)
        with open(os.path.join(data, "audit.log"), "a") as f:
            f.write('{"event":"torn')
        r = ctl("--json", "audit", "--data-dir", data, addr=False)
        check(r.rc == 0 and r.json()["skipped_lines"] == 1 and "skipped 1 line" in r.etext,
              "audit skips a torn last line and says so", r)
    finally:
        rc = stop_server(proc)
        check(rc == 0, "the TLS server exits 0 on SIGTERM (%s)" % rc)
    # Mutual TLS: the client's certificate from $STRATA_TLS_CERT / $STRATA_TLS_KEY.
    proc, port = start_server(os.path.join(tmp, "mtls-data"), "--tls-cert",
                                   os.path.join(pki, "server.pem"), "--tls-key",
                                   os.path.join(pki, "server.key"), "--tls-client-ca", ca)
    addr = "127.0.0.1:%d" % port
    try:
        r = ctl("health", addr=addr, env={"STRATA_TLS_CA": ca,
                                          "STRATA_TLS_CERT": os.path.join(pki, "client.pem"),
                                          "STRATA_TLS_KEY": os.path.join(pki, "client.key")})
        check(r.rc == 0, "mutual TLS with $STRATA_TLS_CERT and $STRATA_TLS_KEY", r)
        r = ctl("--tls-ca", ca, "health", addr=addr)
        check(r.rc == 3, "mutual TLS without a client certificate: refused (exit 3)", r)
    finally:
        rc = stop_server(proc)
        check(rc == 0, "the mTLS server exits 0 on SIGTERM (%s)" % rc)


def main():
    global ADDR
    tmp = tempfile.mkdtemp(prefix="strata-ctl-")
    data_dir = os.path.join(tmp, "data")
    t0 = time.time()
    test_help()
    test_usage_errors()
    test_strict_usage()
    test_versions()
    test_man_pages()
    test_readers_doc()
    test_audit_since(tmp)
    test_unreachable()
    test_lock_key()
    test_server_refusals(tmp)
    test_listen_refusals(tmp)
    test_server_bad_flags(tmp)
    test_diff_from_v0_after_retention(tmp)
    test_stream_deadlines()
    test_security(tmp)
    proc, port = start_server(data_dir)
    ADDR = "127.0.0.1:%d" % port
    try:
        test_health_stats(data_dir)
        test_locks()
        test_ops_empty()
        test_ops()
        test_set_status()
        test_messages_name_rpcs()
        test_generation_zero()
        test_kv(tmp)
        test_generation_zero_later()
        test_put_from_terminal()
        test_progress_on_terminal()
        test_coordinator()
    finally:
        rc = stop_server(proc)
        check(rc == 0, "strata-server exits 0 on SIGTERM (%s)" % rc)
    shutil.rmtree(tmp, ignore_errors=True)
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
