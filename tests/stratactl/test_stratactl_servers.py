#!/usr/bin/python3
"""strata-server and stratactl where each test starts (or fails to start) a server of its own:
the start refusals (bad flags, `--listen`/`--metrics-listen`, port in use, foreign or newer data
directories, a damaged lock database: one line, nothing created), `--data-url` / `--log-dir` and
their record in STORE, `kv diff` from v0 after retention,
and TLS / mutual TLS with tokens from flags and `$STRATA_TLS_*`/`$STRATA_TOKEN`, `auth hash`, `audit`.

Environment: STRATACTL_BIN, STRATA_SERVER_BIN, CTL_FIXTURE_BIN (see ctl_common.py). Standard
library only. Prints cmocka-style "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)." lines for
tests/run-tier.sh; exit 0 = every check passed.
"""
import hashlib
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
from ctl_common import C_NAME, SERVER, ctl, run_server_once, start_server, stop_server, usage_error


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


def test_store_places(tmp):
    """--data-url and --log-dir: the OCDBT files in another directory (a shared file
    system's mount stands in), the commit log elsewhere; recorded in DATA_DIR/STORE at the
    first start that works, so a later start without the flags finds the store and one
    with other places is refused; a kill -9 loses nothing acknowledged (the log replays
    from its own directory); bad places are one line and record nothing."""
    shared = os.path.join(tmp, "mnt-shared")
    os.makedirs(shared)
    d = os.path.join(tmp, "placed")
    store = os.path.join(shared, "store")
    logs = os.path.join(tmp, "local-log")
    # A parent that does not exist (an unmounted file system) is refused, not created.
    rc, err = run_server_once(d, "127.0.0.1:0", "--data-url", os.path.join(tmp, "not-mounted", "store"))
    check(rc == 1 and err.count("\n") == 1 and "not-mounted does not exist" in err and "mounted" in err
          and not os.path.exists(os.path.join(tmp, "not-mounted")) and not os.path.exists(os.path.join(d, "STORE")),
          "--data-url under a missing parent: one line, nothing created there, nothing recorded", (rc, err))
    for url, want in (("ftp://host/x", "unknown scheme"), ("s3://AB", "the bucket must be"),
                      ("s3://bucket/a//b", "the prefix must be"), ("file://relative", "absolute path")):
        rc, err = run_server_once(d, "127.0.0.1:0", "--data-url", url)
        check(rc == 1 and err.count("\n") == 1 and want in err and not os.path.exists(os.path.join(d, "STORE")),
              "--data-url %s: one line (%s), nothing recorded" % (url, want), (rc, err))
    # Relative paths are recorded absolute: a restart from another directory finds them.
    proc = subprocess.Popen([os.path.abspath(SERVER), "--listen", "127.0.0.1:0", "--data-dir", "placed", "--data-url",
                             "mnt-shared/store", "--log-dir", "./local-log", "--publish-interval-ms", "600000"], cwd=tmp,
                            stderr=open(d + ".log", "w"))
    port = wait_ready(d + ".log", proc)
    for i in range(20):
        r = ctl("kv", "put", "k%02d" % i, stdin=b"v%d" % i, addr="127.0.0.1:%d" % port)
        check(r.rc == 0, "put k%02d into the placed store" % i, r)
    proc.kill()
    proc.wait()
    with open(os.path.join(d, "STORE")) as f:
        text = f.read()
        check(re.fullmatch(r"data-url %s\nlog-dir %s\nowner [0-9a-f]{32}\n" % (re.escape(store), re.escape(logs)), text),
              "STORE records both places, absolute, and the data directory's owner id", text)
    check(os.path.exists(os.path.join(store, "manifest.ocdbt")) and os.path.isdir(os.path.join(logs, "log"))
          and not os.path.exists(os.path.join(d, "kv")),
          "the OCDBT files are in --data-url, the log in --log-dir, no kv/ in the data directory",
          sorted(os.listdir(d)))
    check(not [n for n in os.listdir(store) if n.startswith("manifest.0")],
          "nothing was published before the kill (a 10-minute batch): the puts live only in the log",
          sorted(os.listdir(store)))
    proc, port = start_server(d)  # no flags: the recorded places
    got = [ctl("kv", "get", "k%02d" % i, addr="127.0.0.1:%d" % port).text for i in range(20)]
    check(got == ["v%d" % i for i in range(20)], "after kill -9 every acknowledged put is back", got)
    check("store=%s " % store in open(d + ".log").read(), "the start log names the store's place")
    stop_server(proc)
    for flag, other in (("--data-url", os.path.join(shared, "other")), ("--log-dir", os.path.join(tmp, "elsewhere"))):
        rc, err = run_server_once(d, "127.0.0.1:0", flag, other)
        check(rc == 1 and err.count("\n") == 1 and "names another place" in err and flag in err
              and not os.path.exists(other), "%s naming another place than STORE: refused, one line" % flag, (rc, err))
    proc, port = start_server(d, "--data-url", store, "--log-dir", logs)
    check(ctl("kv", "get", "k19", addr="127.0.0.1:%d" % port).text == "v19", "the recorded places given again are accepted")
    stop_server(proc)
    # A data directory whose store is already in kv/ cannot be moved with a flag.
    d2 = os.path.join(tmp, "in-kv")
    proc, port = start_server(d2)
    stop_server(proc)
    rc, err = run_server_once(d2, "127.0.0.1:0", "--data-url", os.path.join(shared, "moved"))
    check(rc == 1 and "already holds its store" in err and not os.path.exists(os.path.join(shared, "moved")),
          "--data-url on a data directory with its store in kv/: refused", (rc, err))


def wait_ready(logpath, proc):
    """The port of a server started by hand once its log says ready (or exit the test)."""
    start = time.monotonic()
    while time.monotonic() - start < 60 and proc.poll() is None:
        m = re.search(r"event=ready .*port=(\d+)", open(logpath).read())
        if m:
            return int(m.group(1))
        time.sleep(0.01)
    stop_server(proc)
    sys.exit("strata-server did not start: " + open(logpath).read()[-2000:])


def test_poller_threads(tmp):
    """--threads' default is half the CPUs the server may run on, 1 to 8 (server/README.md
    "Threads"): started with its CPU set cut to one CPU and with the whole set, its
    rpc_listening line names that many pollers; --threads 3 is taken as given. Each
    answers stratactl."""
    cpus = sorted(os.sched_getaffinity(0))
    for i, (sets, args, want) in enumerate(((cpus[:1], [], 1), (cpus, [], max(1, min(8, len(cpus) // 2))),
                                            (cpus, ["--threads", "3"], 3))):
        d = os.path.join(tmp, "pollers%d" % i)
        proc = subprocess.Popen([SERVER, "--listen", "127.0.0.1:0", "--data-dir", d] + args,
                                stderr=open(d + ".log", "w"), preexec_fn=lambda s=sets: os.sched_setaffinity(0, s))
        port = wait_ready(d + ".log", proc)
        m = re.search(r"event=rpc_listening .*threads=(\d+)", open(d + ".log").read())
        r = ctl("kv", "put", "k", stdin=b"v", addr="127.0.0.1:%d" % port)
        check(m and int(m.group(1)) == want and r.rc == 0, "%d CPUs, %s: %d pollers, answers"
              % (len(sets), " ".join(args) or "no --threads", want), (m and m.group(0), r))
        check(stop_server(proc) == 0, "the server with %d pollers exits 0 on SIGTERM" % want)


def test_large_value_pages(tmp):
    """A value above 64 KiB leaves the OS page cache once durable, and reads back intact
    from the disk; --keep-value-pages keeps it cached (storage/README.md "Large values and
    the page cache"). Residency of the batch's one data file (a 10-minute batch), by fincore."""
    value = os.urandom(4 << 20)
    for keep in (False, True):
        d = os.path.join(tmp, "pages-keep" if keep else "pages")
        proc, port = start_server(d, "--publish-interval-ms", "600000", *(["--keep-value-pages"] if keep else []))
        addr = "127.0.0.1:%d" % port
        r = ctl("kv", "put", "big", stdin=value, addr=addr)
        files = [os.path.join(d, "kv", "d", n) for n in os.listdir(os.path.join(d, "kv", "d")) if len(n) == 32]
        res = [int(subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", f], check=True,
                                  capture_output=True, text=True).stdout) for f in files]
        g = ctl("kv", "get", "big", addr=addr)
        if keep:
            check(r.rc == 0 and len(res) == 1 and res[0] >= len(value) and g.out == value,
                  "--keep-value-pages: a 4 MiB value stays in the page cache and reads back", (r, res))
        else:
            check(r.rc == 0 and len(res) == 1 and res[0] <= (2 << 20) + (64 << 10) and g.out == value,
                  "a 4 MiB value leaves the page cache once durable (at most a 2 MiB folio past it "
                  "stays) and reads back intact from the disk", (r, res))
        check(stop_server(proc) == 0, "the server exits 0 on SIGTERM")


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


def test_security(tmp):
    """TLS, tokens, auth hash and audit (docs/security.md)."""
    pki = os.path.join(tmp, "pki")
    subprocess.check_call(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "rpc",
                                              "mkcerts.sh"), pki])
    auth, tok_op = test_auth_hash(tmp)
    test_tls_tokens_audit(tmp, pki, auth, tok_op)
    test_mutual_tls(tmp, pki)


def test_auth_hash(tmp):
    """auth hash lines for wally (writer, tok-w), rita (reader, tok-r) and olga (operator, a
    generated token) into tmp/auth; returns (that file, olga's token)."""
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
    return auth, tok_op


def test_tls_tokens_audit(tmp, pki, auth, tok_op):
    ca = os.path.join(pki, "ca.pem")
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


def test_mutual_tls(tmp, pki):
    ca = os.path.join(pki, "ca.pem")
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
    tmp = tempfile.mkdtemp(prefix="strata-ctl-")
    t0 = time.time()
    test_server_refusals(tmp)
    test_listen_refusals(tmp)
    test_server_bad_flags(tmp)
    test_store_places(tmp)
    test_poller_threads(tmp)
    test_large_value_pages(tmp)
    test_diff_from_v0_after_retention(tmp)
    test_security(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    return report(t0)


if __name__ == "__main__":
    sys.exit(main())
