#!/usr/bin/python3
"""stratactl against one shared strata-server: every command that reads or changes server state
runs as a subprocess; the tests assert its output (table and --json), its exit code and the server
state after. The tests run in order on the same server (ops, then kv, ...): each starts from the
state the previous ones left; a test made of steps passes that state on from step to step.
test_stratactl_locks.py tests stratactl lock on a server of its own.

The server starts on an ephemeral port (--listen 127.0.0.1:0, port read from its event=ready log
line) over a temporary data directory. Nothing is skipped: every engine is wired, so an
UNIMPLEMENTED answer is a failure like any other.

Environment: STRATACTL_BIN, STRATA_SERVER_BIN, CTL_FIXTURE_BIN (see ctl_common.py). Standard
library only. Prints cmocka-style "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)." lines for
tests/run-tier.sh; exit 0 = every check passed.
"""
import base64
import datetime
import functools
import os
import re
import subprocess
import sys

import ctl_common
from ctl_common import (CTL, C_NAME, block_key, chunk_key, ctl, fixture, fixture_out, hx, iso_ok,
    lock_list_json, tty_stderr, usage_error)
from tier_report import check


# --- server commands ---------------------------------------------------------------------------


def test_health_stats(data_dir):
    r = ctl("health")
    check(r.rc == 0 and r.text == "%s: SERVING\n" % ctl_common.ADDR, "health prints ADDR: SERVING", r)
    r = ctl("--json", "health")
    check(r.rc == 0 and r.json() == {"addr": ctl_common.ADDR, "status": "SERVING", "serving": True},
          "health --json", r)
    r = ctl("health", addr=False, env={"STRATA_ADDR": ctl_common.ADDR})
    check(r.rc == 0 and "SERVING" in r.text, "health with $STRATA_ADDR", r)
    r = ctl("stats")
    check(r.rc == 0 and "data dir:          %s\n" % data_dir in r.text and
          "max message bytes: 67108864" in r.text and
          re.search(r"^commits: +\d+ in \d+ groups \(\d+\.\d per group\)$", r.text, re.M) and
          re.search(r"^node cache: +\d+ hits, \d+ misses, \d+ bytes$", r.text, re.M) and
          re.search(r"^commit phases: +build \d+ us, sync \d+ us, after sync \d+ us per group$",
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
                              "tree_wait_ns", "committed_generation", "published_generation", "last_publish_lag_us",
                              "publish_stalls", "publish_stalled", "publish_error", "group_size",
                              "group_bytes"} and
          d["store"]["publish_stalled"] is False and d["store"]["publish_error"] == "" and
          d["store"]["commit_groups"] <= d["store"]["commits"] and
          # the server commits through its log: the OCDBT files may trail by a batch
          d["store"]["published_generation"] <= d["store"]["committed_generation"] ==
          (d["latest"]["generation"] if d["latest"] else 0),
          "stats --json fields", d)


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



# --- ops -------------------------------------------------------------------------------------------


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
    """Three ops in the op log test_ops_empty found empty: alice's split (CREATED), bob's merge
    (WRITE_FAILED), carol's split (SUCCESS). The steps run in order on those three ops."""
    a, b, c = create_ops()
    show_ops(a, b)
    list_ops(a, b, c)
    indefinite_lock_scope(a)
    runbook_cleanup(a)


def create_ops():
    rc, out, err = fixture("create-op", "alice", "split")
    check(rc == 0, "fixture creates an op", err)
    a = int(out)
    b = int(fixture("create-op", "bob", "merge")[1])
    c = int(fixture("create-op", "carol", "split")[1])
    check(fixture("set-status", str(b), "5")[0] == 0, "fixture sets WRITE_FAILED")
    check(fixture("set-status", str(c), "3")[0] == 0, "fixture sets SUCCESS")
    return a, b, c


def show_ops(a, b):
    r = ctl("op", "show", str(a))
    check(r.rc == 0 and re.search(r"^op: +%d$" % a, r.text, re.M) and re.search(r"^status: +CREATED$", r.text, re.M)
          and re.search(r"^user: +alice$", r.text, re.M) and re.search(r"^kind: +split$", r.text, re.M) and
          re.search(r"^created: +\S+Z \(\S+ ago\)$", r.text, re.M) and re.search(r"^scope: +0 rows$", r.text, re.M),
          "op show table", r)
    d = ctl("--json", "op", "show", str(b)).json()
    check(d and d["op"] == b and d["status"] == "WRITE_FAILED" and d["user"] == "bob" and d["kind"] == "merge"
          and iso_ok(d["created_at"]) and d["scope"] == [] and d["payload_base64"] == "" and
          d["age_ms"] >= 0, "op show --json", d)


def list_ops(a, b, c):
    """op list of exactly the ops a, b, c (the log holds no others)."""
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


def indefinite_lock_scope(a):
    """Op a holds a row indefinitely, is stuck and shows the row as its scope, until a
    privileged release frees it."""
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


def runbook_cleanup(a):
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
    """One history of the store, in order: each step starts from the keys and generations the
    steps before left, and kv_diff at the end checks that whole history (g1: greeting=hello; g2:
    greeting's binary value; g5: dir/b added; g5+1: dir/a removed; g5+2: greeting back to hello)."""
    g1, g2, t1 = kv_put_get_versions(tmp)
    kv_keys_with_at()
    kv_time_pin_offsets(t1)
    kv_big_value(tmp)
    g5 = kv_ls(g2)
    kv_rm(g5)
    kv_put_unreadable(tmp)
    kv_diff(g1, g2, g5, t1)


def kv_put_get_versions(tmp):
    """From an empty store: greeting=hello at g1, then its binary value at g2; returns g1, g2 and
    g1's commit time."""
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
    r = ctl("kv", "get", "greeting@v999999")
    check(r.rc == 1 and "OUT_OF_RANGE" in r.etext, "kv get at a future generation exits 1", r)
    return g1, g2, t1


def kv_keys_with_at():
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
    ctl("kv", "rm", "mail@example")


def kv_time_pin_offsets(t1):
    # RFC 3339 offsets read the same instant as Z
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


def kv_big_value(tmp):
    path = os.path.join(tmp, "value.bin")
    big = os.urandom(5 << 20)
    with open(path, "wb") as f:
        f.write(big)
    r = ctl("kv", "put", "big", path)
    check(r.rc == 0 and "(5242880 bytes)" in r.text and ctl("kv", "get", "big").out == big,
          "kv put/get of a 5 MiB value round-trips", r)
    ctl("kv", "rm", "big")


def kv_ls(g2):
    """Adds 0x00ff, dir/a and dir/b (g5 is dir/b's generation) and lists them; returns g5."""
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
    return g5


def kv_rm(g5):
    r = ctl("kv", "rm", "dir/a")
    check(r.rc == 0 and r.text.startswith("deleted dir/a at v"), "kv rm", r)
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


def kv_put_unreadable(tmp):
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


def kv_diff(g1, g2, g5, t1):
    g6 = g5 + 1  # kv_rm removed dir/a; kv_put_unreadable wrote nothing
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
    p = subprocess.Popen([CTL, "--addr", ctl_common.ADDR, "kv", "put", "typed-key"], stdin=slave, stdout=subprocess.PIPE,
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


def main():
    return ctl_common.serve_main("strata-ctl-", lambda tmp, data_dir: [
        functools.partial(test_health_stats, data_dir),
        test_ops_empty,
        test_ops,
        test_set_status,
        test_messages_name_rpcs,
        test_generation_zero,
        functools.partial(test_kv, tmp),
        test_generation_zero_later,
        test_put_from_terminal,
        test_progress_on_terminal,
        test_coordinator,
    ])


if __name__ == "__main__":
    sys.exit(main())
