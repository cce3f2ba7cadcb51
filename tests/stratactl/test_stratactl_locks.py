#!/usr/bin/python3
"""stratactl lock against a strata-server of its own: every lock command runs as a subprocess;
the tests assert its output (table and --json), its exit code and the lock table after. The tests
run in order on the same server; each releases the locks it took, and the ones that need held
locks take them first (test_op_holding_rows: op 5's rows through acquire, list, renew, release).

The server starts on an ephemeral port (--listen 127.0.0.1:0, port read from its event=ready log
line) over a temporary data directory. Nothing is skipped: an UNIMPLEMENTED answer is a failure
like any other.

Environment: STRATACTL_BIN, STRATA_SERVER_BIN, CTL_FIXTURE_BIN (see ctl_common.py). Standard
library only. Prints cmocka-style "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)." lines for
tests/run-tier.sh; exit 0 = every check passed.
"""
import re
import subprocess
import sys
import time

import ctl_common
from ctl_common import (CTL, block_key, calls_active, chunk_key, ctl, hx, iso_ok, listed_lock,
    lock_list_json, usage_error, wait_until)
from tier_report import check


def test_lock_default_ttl():
    # The default TTL is 30s, checked on a row of its own ("in" is measured after the
    # answer arrives: a slow machine shows less than 29.x s).
    r = ctl("lock", "acquire", "--op", "4", "row-default")
    check(r.rc == 0 and re.match(r"acquired 1 row for op 4: temporal, fencing token \d+, expires "
                                 r"\S+Z \(in (1\d|2\d|30)\.\ds\)\n$", r.text), "lock acquire prints the token", r)
    l = listed_lock("row-default")
    check(l and l["expires_at_ns"] - l["acquired_at_ns"] == 30 * 10 ** 9, "the default --ttl is 30s", l)
    ctl("lock", "release", "--op", "4", "row-default")


def test_lock_ttl_durations():
    """--ttl takes sums and fractions."""
    for ttl, ms in (("1m30s", 90000), ("1.5s", 1500), ("250ms", 250), ("1h", 3600000)):
        d = ctl("--json", "lock", "acquire", "--op", "12", "--ttl", ttl, "row-ttl").json()
        l = listed_lock("row-ttl")
        check(d and d["acquired"] and l and l["expires_at_ns"] - l["acquired_at_ns"] == ms * 10 ** 6,
              "--ttl %s is %d ms" % (ttl, ms), (d, l))
        ctl("lock", "release", "--op", "12", "row-ttl")


# --- op 5 holds three rows: each step starts from the locks the one before left -----------------


def test_op_holding_rows():
    """Op 5 takes chunk 7, block 1,2,3 and row-a for 10m; the steps below list, renew and release
    them in order, and the last leaves the lock table empty."""
    k7 = hx(chunk_key(7))
    kb = hx(block_key(1, 2, 3))
    acquire_held_rows(k7, kb)
    listing = list_held_rows(k7, kb)
    list_options(k7, listing)
    renew_held_row(k7)
    release_held_rows(k7, kb)


def acquire_held_rows(k7, kb):
    """Op 5 takes k7, kb and row-a; op 6's conflicting acquires are refused and take nothing."""
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


def list_held_rows(k7, kb):
    """lock list of op 5's three rows, as a table and as --json; returns the --json listing."""
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
    return d


def list_options(k7, d):
    """Global options anywhere on the line, and lock list's filters; d is the plain --json listing."""
    # Global options work anywhere, also between the command words.
    def same_listing(doc):
        return doc and [l["row_hex"] for l in doc["locks"]] == [l["row_hex"] for l in d["locks"]] \
            and doc["counts"] == d["counts"]
    for argv in (["lock", "--json", "list"], ["lock", "list", "--json"], ["--json", "lock", "list"]):
        r = ctl(*argv)
        check(r.rc == 0 and same_listing(r.json()), "global option anywhere: %s" % " ".join(argv), r)
    r = ctl("lock", "--addr", ctl_common.ADDR, "--timeout", "5s", "--json", "list", addr=False)
    check(r.rc == 0 and same_listing(r.json()), "lock --addr A --timeout 5s --json list", r)
    r = ctl("lock", "--timeout=5s", "--addr=" + ctl_common.ADDR, "list", addr=False)
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


def renew_held_row(k7):
    """Op 5 renews k7 (10m -> 2m); renewing a row another op holds, or none holds, is refused."""
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


def release_held_rows(k7, kb):
    """A non-holder releases nothing; the holder releases; privileged frees any holder's."""
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


# --- limits, expiry, waiting ----------------------------------------------------------------------


def test_lock_row_too_long():
    """A server-side INVALID_ARGUMENT is a usage error."""
    r = ctl("lock", "acquire", "--op", "5", "0x" + "ab" * 4097)
    check(usage_error(r) and "INVALID_ARGUMENT" in r.etext, "a row the server rejects as too long exits 2", r)


def test_lock_many_rows():
    """A long listing spans stream messages."""
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


def test_lock_expiry():
    """--expired lists the locks whose TTL ran out, which a plain listing leaves out."""
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
    ctl("lock", "release", "--op", "7", "--all")


def test_lock_wait():
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


def test_lock_wait_client_died():
    # A waiting acquire whose client dies stops on the server and takes nothing: op 14
    # waits (60s) for op 13's row, its stratactl is killed, the server ends the call (it
    # would otherwise wait out the minute), and op 13's release then grants op 14 nothing.
    ctl("lock", "acquire", "--op", "13", "--ttl", "10m", "row-gone")
    base = calls_active()
    p = subprocess.Popen([CTL, "--addr", ctl_common.ADDR, "lock", "acquire", "--op", "14", "--wait", "60s",
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


def main():
    return ctl_common.serve_main("strata-ctl-locks-", lambda tmp, data_dir: [
        test_lock_default_ttl,
        test_lock_ttl_durations,
        test_op_holding_rows,
        test_lock_row_too_long,
        test_lock_many_rows,
        test_lock_expiry,
        test_lock_wait,
        test_lock_wait_client_died,
    ])


if __name__ == "__main__":
    sys.exit(main())
