#!/usr/bin/python3
"""stratactl on its own, with no server it shares: every command's --help, usage errors and
issue 18's strictness (pins, `@` keys, suggestions, `lock key` hex), the version lines, the man
pages against --help, docs/readers.md's specs, `audit --since`, an unreachable server, and the
inactivity deadline of the streaming commands against a fake server (tests/stratactl/
test_stratactl_servers.py starts servers of its own, test_stratactl_shared.py shares one).

Environment: STRATACTL_BIN, STRATA_SERVER_BIN, CTL_FIXTURE_BIN (see ctl_common.py). Standard
library only. Prints cmocka-style "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)." lines for
tests/run-tier.sh; exit 0 = every check passed.
"""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

from tier_report import check, report
from ctl_common import CTL, SERVER, block_key, chunk_key, ctl, free_port, hx, usage_error


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
    files = [x for x in kv if isinstance(x["base"], str)]
    s3 = [x for x in kv if isinstance(x["base"], dict)]
    check(len(blocks) == len(specs) == 7 and len(kv) == 5 and len(ng) == 2 and
          all(x["base"].startswith("file:///") and x["base"].endswith("/") for x in files) and
          sum(x["base"].endswith("/kv/") for x in files) == 3 and
          None in versions and any(isinstance(v, int) and v >= 1 for v in versions) and
          any(isinstance(v, str) and re.fullmatch(tensorstore_time, v) for v in versions),
          "docs/readers.md: ocdbt specs latest, at a generation (>= 1), at a time in tensorstore's layout, "
          "and on a shared file system", specs)
    # tensorstore's kvstore/s3 schema: bucket required; path a prefix ending in "/"; endpoint an
    # http(s) URL; aws_region a string; aws_credentials a context resource with a type.
    check(len(s3) == 1 and all(set(x["base"]) <= {"driver", "bucket", "path", "endpoint", "aws_region",
                                                   "aws_credentials", "requester_pays", "host_header"}
                               and x["base"]["driver"] == "s3" and x["base"]["bucket"]
                               and x["base"]["path"].endswith("/") and not x["base"]["path"].startswith("/")
                               and re.match(r"https?://", x["base"]["endpoint"])
                               and x["base"]["aws_credentials"]["type"] == "environment" for x in s3),
          "docs/readers.md: the ocdbt spec over the s3 kvstore has the members tensorstore's schema takes", s3)
    check(all(x["kvstore"]["driver"] == "ocdbt" and x["kvstore"]["path"].endswith("/") and
              "scale_index" in x for x in ng) and any("version" in x["kvstore"] for x in ng),
          "docs/readers.md: neuroglancer_precomputed over ocdbt, latest and pinned", ng)
    for v in versions:
        if isinstance(v, str):  # the same time is a pin stratactl takes (exit 3: no server, not 2: usage)
            r = ctl("--timeout", "1s", "kv", "get", "k@" + v, addr="127.0.0.1:%d" % free_port())
            check(r.rc == 3, "the time in docs/readers.md is a valid stratactl pin", r)




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


def main():
    tmp = tempfile.mkdtemp(prefix="strata-ctl-")
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
    test_stream_deadlines()
    shutil.rmtree(tmp, ignore_errors=True)
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
