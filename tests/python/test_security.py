"""Security (docs/security.md) from Python grpcio against a real strata-server:
TLS, mutual TLS, bearer tokens and roles, the audit log, SIGHUP reloads and the
loopback-only default.

The certificates are made at test time by tests/rpc/mkcerts.sh (openssl). The
role matrix calls every RPC the server serves with no token, a bad token and
each role's token, asserts the exact status of every cell, and for every
refused cell asserts that the store, the lock table, the op log and the id
counter are exactly as before the call.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import grpc
import pytest

import strata
from strata.v1 import admin_pb2, kv_pb2, locks_pb2, ops_pb2

from conftest import ROOT, SERVER, Server

MKCERTS = os.path.join(ROOT, "tests/rpc/mkcerts.sh")
TOKENS = {"reader": "tok-reader-1", "writer": "tok-writer-1", "operator": "tok-operator-1"}
NAMES = {"reader": "rita", "writer": "wally", "operator": "olga"}
RANK = {"reader": 1, "writer": 2, "operator": 3}
WAIT = 60  # seconds a condition polled for may take on a loaded CI machine


def auth_line(name, role, token):
    return "%s %s %s\n" % (name, role, hashlib.sha256(token.encode()).hexdigest())


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="strata-pki-")
    subprocess.check_call(["sh", MKCERTS, d])
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_auth(path, tokens):
    with open(path, "w") as f:
        f.write("# test tokens\n")
        for role, tok in tokens.items():
            f.write(auth_line(NAMES[role], role, tok))


@pytest.fixture(scope="module")
def secured(pki):
    """A server with TLS and an auth file."""
    d = tempfile.mkdtemp(prefix="strata-pytest-sec-")
    auth = os.path.join(d, "auth")
    write_auth(auth, TOKENS)
    s = Server(os.path.join(d, "data"), "--tls-cert", os.path.join(pki, "server.pem"),
               "--tls-key", os.path.join(pki, "server.key"), "--auth-file", auth)
    s.auth_file = auth
    s.start()
    yield s
    s.kill()
    shutil.rmtree(d, ignore_errors=True)


def ca_creds(pki, ca="ca.pem", cert=None):
    read = lambda n: open(os.path.join(pki, n), "rb").read()
    if cert:
        return grpc.ssl_channel_credentials(read(ca), read(cert + ".key"), read(cert + ".pem"))
    return grpc.ssl_channel_credentials(read(ca))


def channel(server, pki, **kw):
    return grpc.secure_channel(server.addr, ca_creds(pki, **kw))


def md(token):
    return (("authorization", "Bearer " + token),) if token else None


def audit_records(server):
    """The whole records of the server's audit log (a torn last line skipped)."""
    out = []
    with open(os.path.join(server.data_dir, "audit.log")) as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out


def wait_for(what, cond):
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)  # polling a condition, not a synchronisation sleep
    raise AssertionError("not within %d s: %s" % (WAIT, what))


# --- the role matrix ---------------------------------------------------------------------

class Calls:
    """Builds each RPC's call on a channel; fresh rows, ops and keys per call."""

    def __init__(self, ch, op_ch):
        self.ch = ch
        self.op = op_ch  # an operator's channel, for setup and state snapshots
        self.n = 0

    def uu(self, ch, path, req, resp):
        return ch.unary_unary(path, request_serializer=req.SerializeToString,
                              response_deserializer=resp.FromString)

    def us(self, ch, path, req, resp):
        return ch.unary_stream(path, request_serializer=req.SerializeToString,
                               response_deserializer=resp.FromString)

    def as_op(self, path, req, resp):
        return self.uu(self.op, path, type(req), resp)(req, timeout=WAIT,
                                                       metadata=md(TOKENS["operator"]))

    def snapshot(self):
        """Everything a refused call must leave alone."""
        o = md(TOKENS["operator"])
        kvs = [(e.key, e.value) for r in self.us(self.op, "/strata.v1.Kv/List", kv_pb2.ListRequest,
                                                 kv_pb2.ListResponse)(kv_pb2.ListRequest(), timeout=WAIT, metadata=o)
               for e in r.entries]
        locks = sorted((l.row, l.op_id, l.kind, l.fencing_token, l.expires_at_ns)
                       for r in self.us(self.op, "/strata.v1.Locks/List", locks_pb2.ListLocksRequest,
                                        locks_pb2.ListLocksResponse)(locks_pb2.ListLocksRequest(), timeout=WAIT, metadata=o)
                       for l in r.locks)
        ops = [o2.SerializeToString() for r in self.us(self.op, "/strata.v1.Ops/List", ops_pb2.ListOpsRequest,
                                                        ops_pb2.ListOpsResponse)(ops_pb2.ListOpsRequest(), timeout=WAIT, metadata=o)
               for o2 in r.ops]
        # The counter's next id, read by allocating one: the next snapshot expects +1.
        nxt = self.as_op("/strata.v1.Ops/AllocateIds", ops_pb2.AllocateIdsRequest(counter="matrix", count=1),
                         ops_pb2.AllocateIdsResponse).first
        return kvs, locks, ops, nxt

    def seed(self):
        self.as_op("/strata.v1.Kv/Commit", kv_pb2.CommitRequest(puts=[kv_pb2.Put(key=b"seed", value=b"s")]),
                   kv_pb2.CommitResponse)
        self.seed_op = self.as_op("/strata.v1.Ops/Create", ops_pb2.CreateOpRequest(user="seed", kind="k"),
                                  ops_pb2.CreateOpResponse).op.op_id
        r = self.as_op("/strata.v1.Locks/Acquire",
                       locks_pb2.AcquireRequest(op_id=self.seed_op, rows=[b"seedrow"],
                                                kind=locks_pb2.LOCK_KIND_TEMPORAL, ttl_ms=3600000),
                       locks_pb2.AcquireResponse)
        assert r.acquired

    def call(self, method, token):
        """Runs one cell; returns the status code (OK when the call succeeded)."""
        self.n += 1
        n = self.n
        m = md(token)
        ch = self.ch
        try:
            if method == "/grpc.health.v1.Health/Check":
                ch.unary_unary(method)(b"", timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Admin/Stats":
                self.uu(ch, method, admin_pb2.StatsRequest, admin_pb2.StatsResponse)(
                    admin_pb2.StatsRequest(), timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Kv/Get":
                r = self.uu(ch, method, kv_pb2.GetRequest, kv_pb2.GetResponse)(
                    kv_pb2.GetRequest(key=b"seed"), timeout=WAIT, metadata=m)
                assert r.found and r.value == b"s"
            elif method == "/strata.v1.Kv/BatchGet":
                self.uu(ch, method, kv_pb2.BatchGetRequest, kv_pb2.BatchGetResponse)(
                    kv_pb2.BatchGetRequest(keys=[b"seed"]), timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Kv/Commit":
                self.uu(ch, method, kv_pb2.CommitRequest, kv_pb2.CommitResponse)(
                    kv_pb2.CommitRequest(puts=[kv_pb2.Put(key=b"m%d" % n, value=b"v")]),
                    timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Kv/List":
                list(self.us(ch, method, kv_pb2.ListRequest, kv_pb2.ListResponse)(
                    kv_pb2.ListRequest(), timeout=WAIT, metadata=m))
            elif method == "/strata.v1.Kv/Versions":
                list(self.us(ch, method, kv_pb2.VersionsRequest, kv_pb2.VersionsResponse)(
                    kv_pb2.VersionsRequest(), timeout=WAIT, metadata=m))
            elif method == "/strata.v1.Kv/Watch":
                it = self.us(ch, method, kv_pb2.WatchRequest, kv_pb2.WatchResponse)(
                    kv_pb2.WatchRequest(from_generation=0), timeout=WAIT, metadata=m)
                next(it)  # the seed commit: served; the stream is then cancelled
                it.cancel()
            elif method == "/strata.v1.Locks/Acquire":
                r = self.uu(ch, method, locks_pb2.AcquireRequest, locks_pb2.AcquireResponse)(
                    locks_pb2.AcquireRequest(op_id=100000 + n, rows=[b"acq%d" % n],
                                             kind=locks_pb2.LOCK_KIND_TEMPORAL, ttl_ms=3600000),
                    timeout=WAIT, metadata=m)
                assert r.acquired
            elif method == "/strata.v1.Locks/Renew":
                self.uu(ch, method, locks_pb2.RenewRequest, locks_pb2.RenewResponse)(
                    locks_pb2.RenewRequest(op_id=self.seed_op, rows=[b"seedrow"], ttl_ms=3600000),
                    timeout=WAIT, metadata=m)
            elif method in ("/strata.v1.Locks/Release", "/strata.v1.Locks/Release(privileged)"):
                priv = method.endswith("(privileged)")
                row, op = b"rel%d" % n, 200000 + n
                assert self.as_op("/strata.v1.Locks/Acquire",
                                  locks_pb2.AcquireRequest(op_id=op, rows=[row], kind=locks_pb2.LOCK_KIND_TEMPORAL,
                                                           ttl_ms=3600000), locks_pb2.AcquireResponse).acquired
                self._before = self.snapshot()
                r = self.uu(ch, "/strata.v1.Locks/Release", locks_pb2.ReleaseRequest, locks_pb2.ReleaseResponse)(
                    locks_pb2.ReleaseRequest(op_id=0 if priv else op, rows=[row], privileged=priv),
                    timeout=WAIT, metadata=m)
                assert r.released == 1
            elif method == "/strata.v1.Locks/List":
                list(self.us(ch, method, locks_pb2.ListLocksRequest, locks_pb2.ListLocksResponse)(
                    locks_pb2.ListLocksRequest(), timeout=WAIT, metadata=m))
            elif method == "/strata.v1.Locks/Check":
                r = self.uu(ch, method, locks_pb2.CheckRequest, locks_pb2.CheckResponse)(
                    locks_pb2.CheckRequest(op_id=self.seed_op, rows=[b"seedrow"]), timeout=WAIT, metadata=m)
                assert r.all_held
            elif method == "/strata.v1.Ops/Create":
                self.uu(ch, method, ops_pb2.CreateOpRequest, ops_pb2.CreateOpResponse)(
                    ops_pb2.CreateOpRequest(user="u%d" % n, kind="k"), timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Ops/Get":
                self.uu(ch, method, ops_pb2.GetOpRequest, ops_pb2.GetOpResponse)(
                    ops_pb2.GetOpRequest(op_id=self.seed_op), timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Ops/SetStatus":
                op = self.as_op("/strata.v1.Ops/Create", ops_pb2.CreateOpRequest(user="s%d" % n, kind="k"),
                                ops_pb2.CreateOpResponse).op.op_id
                self._before = self.snapshot()
                self.uu(ch, method, ops_pb2.SetStatusRequest, ops_pb2.SetStatusResponse)(
                    ops_pb2.SetStatusRequest(op_id=op, status=ops_pb2.OP_STATUS_WRITE_STARTED),
                    timeout=WAIT, metadata=m)
            elif method == "/strata.v1.Ops/ListStuck":
                list(self.us(ch, method, ops_pb2.ListStuckRequest, ops_pb2.ListStuckResponse)(
                    ops_pb2.ListStuckRequest(), timeout=WAIT, metadata=m))
            elif method == "/strata.v1.Ops/List":
                list(self.us(ch, method, ops_pb2.ListOpsRequest, ops_pb2.ListOpsResponse)(
                    ops_pb2.ListOpsRequest(), timeout=WAIT, metadata=m))
            elif method == "/strata.v1.Ops/AllocateIds":
                self.uu(ch, method, ops_pb2.AllocateIdsRequest, ops_pb2.AllocateIdsResponse)(
                    ops_pb2.AllocateIdsRequest(counter="matrix", count=5), timeout=WAIT, metadata=m)
            else:
                # A method without a call of its own here (added to the protocol later):
                # an empty request. Its refusals are exact; when allowed, any answer
                # but a refusal will do (GENERIC).
                if served_kinds()[method] == "STREAM":
                    it = ch.unary_stream(method)(b"", timeout=WAIT, metadata=m)
                    next(it, None)
                    it.cancel()
                else:
                    ch.unary_unary(method)(b"", timeout=WAIT, metadata=m)
        except grpc.RpcError as e:
            return e.code(), e.details()
        return grpc.StatusCode.OK, ""


# Which role each method needs (docs/security.md's table; server/auth.c's is the one
# the server uses). The second Release row is a privileged release.
NEEDS = {
    "/grpc.health.v1.Health/Check": "reader",
    "/strata.v1.Admin/Stats": "reader",
    "/strata.v1.Kv/Get": "reader",
    "/strata.v1.Kv/BatchGet": "reader",
    "/strata.v1.Kv/List": "reader",
    "/strata.v1.Kv/Versions": "reader",
    "/strata.v1.Kv/Watch": "reader",
    "/strata.v1.Kv/Commit": "writer",
    "/strata.v1.Locks/Acquire": "writer",
    "/strata.v1.Locks/Renew": "writer",
    "/strata.v1.Locks/Release": "writer",
    "/strata.v1.Locks/Release(privileged)": "operator",
    "/strata.v1.Locks/List": "reader",
    "/strata.v1.Locks/Check": "reader",
    "/strata.v1.Ops/Create": "writer",
    "/strata.v1.Ops/Get": "reader",
    "/strata.v1.Ops/SetStatus": "writer",
    "/strata.v1.Ops/ListStuck": "reader",
    "/strata.v1.Ops/List": "reader",
    "/strata.v1.Ops/AllocateIds": "writer",
    # Served once the coordinator and GC work lands; here so that the matrix covers them
    # the day they are registered (with an empty request: GENERIC below).
    "/strata.v1.Coordinator/RegisterWriter": "writer",
    "/strata.v1.Coordinator/RenewWriter": "writer",
    "/strata.v1.Coordinator/UnregisterWriter": "writer",
    "/strata.v1.Coordinator/RegisterFile": "writer",
    "/strata.v1.Coordinator/ListWriters": "reader",
    "/strata.v1.Admin/Gc": "operator",
    "/strata.v1.Admin/Check": "operator",
    "/strata.v1.Admin/Retention": "operator",
}
# The methods Calls.call builds a real request for (their allowed cells must be OK).
SPECIFIC = {m for m in NEEDS if not m.startswith(("/strata.v1.Coordinator/", "/strata.v1.Admin/Gc",
                                                  "/strata.v1.Admin/Check", "/strata.v1.Admin/Retention"))}


def served_kinds():
    """Every method path in RPC_METHOD_MAP (rpc/methods.h), what the server serves: its kind."""
    text = open(os.path.join(ROOT, "rpc/methods.h")).read()
    return {p: k for p, k in re.findall(r'XX\(\w+, "(/[^"]+)", (UNARY|STREAM)', text)}


def served_methods():
    return set(served_kinds())


def test_matrix_covers_every_served_method():
    missing = served_methods() - set(NEEDS)
    assert not missing, "add these methods to the matrix (and to server/auth.c's table): %s" % missing


def test_role_matrix(secured, pki):
    ch = channel(secured, pki)
    calls = Calls(ch, channel(secured, pki))
    calls.seed()
    creds = [("none", None), ("bad", "not-a-token")] + [(r, TOKENS[r]) for r in ("reader", "writer", "operator")]
    failures = []
    served = served_methods()
    for method, need in sorted(NEEDS.items()):
        if method.split("(")[0] not in served:
            continue
        for who, token in creds:
            calls._before = None
            before = calls.snapshot()
            code, details = calls.call(method, token)
            before = calls._before or before
            if who in ("none", "bad"):
                want = grpc.StatusCode.UNAUTHENTICATED
            elif RANK[who] < RANK[need]:
                want = grpc.StatusCode.PERMISSION_DENIED
            else:
                want = grpc.StatusCode.OK
            generic = want == grpc.StatusCode.OK and method not in SPECIFIC
            if generic and code not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
                continue
            if code != want:
                failures.append("%s as %s: %s (%s), expected %s" % (method, who, code, details, want))
                continue
            if want == grpc.StatusCode.PERMISSION_DENIED and "needs role " + need not in details:
                failures.append("%s as %s: the message does not name role %s: %s" % (method, who, need, details))
            if want != grpc.StatusCode.OK:
                after = calls.snapshot()
                kvs, locks, ops, nxt = before
                if (after[0], after[1], after[2], after[3]) != (kvs, locks, ops, nxt + 1):
                    failures.append("%s as %s was refused but changed the store, locks, ops or ids"
                                    % (method, who))
    assert not failures, "\n".join(failures)


def test_privileged_release_and_refusals_are_audited(secured, pki):
    ch = channel(secured, pki)
    op = md(TOKENS["operator"])
    acq = ch.unary_unary("/strata.v1.Locks/Acquire", request_serializer=locks_pb2.AcquireRequest.SerializeToString,
                         response_deserializer=locks_pb2.AcquireResponse.FromString)
    rel = ch.unary_unary("/strata.v1.Locks/Release", request_serializer=locks_pb2.ReleaseRequest.SerializeToString,
                         response_deserializer=locks_pb2.ReleaseResponse.FromString)
    assert acq(locks_pb2.AcquireRequest(op_id=777, rows=[b"audited-row"], kind=locks_pb2.LOCK_KIND_TEMPORAL,
                                        ttl_ms=3600000), metadata=md(TOKENS["writer"]), timeout=WAIT).acquired
    # A writer may not release another op's rows with privileged = true. Refusal
    # records are rate limited (earlier tests refused many calls): repeat the
    # refused call until its record is written.
    t0 = time.time_ns()

    def writer_refused_and_recorded():
        with pytest.raises(grpc.RpcError) as e:
            rel(locks_pb2.ReleaseRequest(rows=[b"audited-row"], privileged=True),
                metadata=md(TOKENS["writer"]), timeout=WAIT)
        assert e.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "needs role operator" in e.value.details()
        return [r for r in audit_records(secured) if r["event"] == "refused" and r["time_ns"] >= t0
                and r.get("caller") == NAMES["writer"]]
    refused = wait_for("the writer's refused privileged release is audited", writer_refused_and_recorded)
    assert refused[-1]["status"] == "PERMISSION_DENIED" and refused[-1]["role"] == "writer"
    assert refused[-1]["request"] == {"rows": ["0x" + b"audited-row".hex()], "privileged": True}
    assert refused[-1]["method"] == "/strata.v1.Locks/Release"
    assert rel(locks_pb2.ReleaseRequest(rows=[b"audited-row"], privileged=True), metadata=op,
               timeout=WAIT).released == 1
    recs = [r for r in audit_records(secured) if r["time_ns"] >= t0]
    intents = [r for r in recs if r["event"] == "call" and r["phase"] == "intent"]
    assert len(intents) == 1 and intents[0]["caller"] == NAMES["operator"] and intents[0]["role"] == "operator"
    assert intents[0]["request"] == {"rows": ["0x" + b"audited-row".hex()], "privileged": True}
    assert intents[0]["method"] == "/strata.v1.Locks/Release" and intents[0]["privileged"] is True
    assert intents[0]["peer"].startswith("ipv")
    outcomes = [r for r in recs if r["event"] == "call" and r["phase"] == "outcome"]
    assert len(outcomes) == 1 and outcomes[0]["status"] == "OK"
    assert outcomes[0]["caller"] == NAMES["operator"] and outcomes[0]["time_ns"] >= intents[0]["time_ns"]

    # An unauthenticated call is recorded too, without a caller.
    def unauthenticated_recorded():
        with pytest.raises(grpc.RpcError) as e:
            ch.unary_unary("/strata.v1.Admin/Stats")(b"", metadata=md("wrong"), timeout=WAIT)
        assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
        return [r for r in audit_records(secured) if r["event"] == "refused" and r["time_ns"] >= t0
                and r["status"] == "UNAUTHENTICATED"]
    last = wait_for("an unauthenticated call is audited", unauthenticated_recorded)[-1]
    assert "caller" not in last and last["method"] == "/strata.v1.Admin/Stats"


def test_refusal_flood_is_rate_limited(secured, pki):
    ch = channel(secured, pki)
    stats = ch.unary_unary("/strata.v1.Admin/Stats")
    start = len(audit_records(secured))
    sent = 0
    for _ in range(300):
        with pytest.raises(grpc.RpcError):
            stats(b"", metadata=md("flood"), timeout=WAIT)
        sent += 1

    def accounted():
        recs = [r for r in audit_records(secured)[start:] if r["event"] == "refused"]
        return len(recs), sum(r.get("dropped_refusals", 0) for r in recs)

    written, _ = accounted()
    assert written < sent, "a flood of %d refused calls wrote %d records: no rate limit" % (sent, written)

    # Later refusals report how many were dropped: every refused call is accounted for.
    def all_accounted():
        nonlocal sent
        with pytest.raises(grpc.RpcError):
            stats(b"", metadata=md("flood"), timeout=WAIT)
        sent += 1
        w, d = accounted()
        return w + d == sent
    wait_for("the dropped refusals are counted in a later record", all_accounted)


def test_strata_client_tls_and_token(secured, pki):
    ca = os.path.join(pki, "ca.pem")
    with strata.Client(secured.addr, tls=ca, token=TOKENS["writer"], timeout=WAIT) as c:
        v = c.put(b"py-tls", b"1")
        assert c.get(b"py-tls").value == b"1" and v.generation > 0
    with strata.Client(secured.addr, tls=ca, token=TOKENS["reader"], timeout=WAIT) as c:
        assert c.get(b"py-tls").value == b"1"
        with pytest.raises(strata.PermissionDenied) as e:
            c.put(b"py-tls", b"2")
        assert "needs role writer" in e.value.details
    with strata.Client(secured.addr, tls=ca, timeout=WAIT) as c:
        with pytest.raises(strata.Unauthenticated):
            c.get(b"py-tls")


def test_untrusted_ca_fails(secured, pki):
    with strata.Client(secured.addr, tls=os.path.join(pki, "other-ca.pem"), token=TOKENS["reader"],
                       timeout=WAIT) as c:
        with pytest.raises(strata.Unavailable):
            c.get(b"x")
    # Plaintext to a TLS server fails as well.
    with strata.Client(secured.addr, tls=False, token=TOKENS["reader"], timeout=WAIT) as c:
        with pytest.raises(strata.Unavailable):
            c.get(b"x")


def test_sighup_reloads_tokens_and_keeps_the_old_table_on_a_bad_file(secured, pki):
    ca = os.path.join(pki, "ca.pem")
    new = dict(TOKENS, reader="tok-reader-2")
    write_auth(secured.auth_file, new)
    secured.proc.send_signal(signal.SIGHUP)

    def new_token_works():
        with strata.Client(secured.addr, tls=ca, token="tok-reader-2", timeout=WAIT) as c:
            try:
                c.get(b"x")
                return True
            except strata.Unauthenticated:
                return False
    wait_for("the new reader token is accepted after SIGHUP", new_token_works)
    with strata.Client(secured.addr, tls=ca, token=TOKENS["reader"], timeout=WAIT) as c:
        with pytest.raises(strata.Unauthenticated):
            c.get(b"x")  # rotated out
    ok = [r for r in audit_records(secured) if r["event"] == "auth_reload"]
    assert ok and ok[-1]["status"] == "OK" and ok[-1]["tokens"] == 3

    with open(secured.auth_file, "a") as f:
        f.write("broken-line reader\n")
    n = len(ok)
    secured.proc.send_signal(signal.SIGHUP)
    failed = wait_for("the failed reload is audited", lambda: [
        r for r in audit_records(secured) if r["event"] == "auth_reload"][n:])
    assert failed[-1]["status"] == "FAILED" and "line" in failed[-1]["message"]
    with strata.Client(secured.addr, tls=ca, token="tok-reader-2", timeout=WAIT) as c:
        c.get(b"x")  # the previous table is still in force
    write_auth(secured.auth_file, TOKENS)
    secured.proc.send_signal(signal.SIGHUP)
    with strata.Client(secured.addr, tls=ca, token=TOKENS["reader"], timeout=WAIT) as c:
        wait_for("the original tokens are back", lambda: c.get(b"x") is not None)


def test_audit_survives_kill_9(pki):
    d = tempfile.mkdtemp(prefix="strata-pytest-audit-")
    try:
        auth = os.path.join(d, "auth")
        write_auth(auth, TOKENS)
        s = Server(os.path.join(d, "data"), "--auth-file", auth).start()
        ch = grpc.insecure_channel(s.addr)
        assert ch.unary_unary("/strata.v1.Locks/Acquire",
                              request_serializer=locks_pb2.AcquireRequest.SerializeToString,
                              response_deserializer=locks_pb2.AcquireResponse.FromString)(
            locks_pb2.AcquireRequest(op_id=4242, rows=[b"k9row"], kind=locks_pb2.LOCK_KIND_TEMPORAL,
                                     ttl_ms=3600000), metadata=md(TOKENS["writer"]), timeout=WAIT).acquired
        rel = ch.unary_unary("/strata.v1.Locks/Release",
                             request_serializer=locks_pb2.ReleaseRequest.SerializeToString,
                             response_deserializer=locks_pb2.ReleaseResponse.FromString)
        assert rel(locks_pb2.ReleaseRequest(rows=[b"k9row"], privileged=True),
                   metadata=md(TOKENS["operator"]), timeout=WAIT).released == 1
        s.kill()  # SIGKILL: the records were durable before the call answered
        recs = audit_records(s)
        assert any(r["event"] == "call" and r["phase"] == "intent" and r["caller"] == NAMES["operator"]
                   for r in recs)
        assert any(r["event"] == "call" and r["phase"] == "outcome" and r["status"] == "OK" for r in recs)
        # A torn last line (a crash mid-append) is skipped, and the restarted server
        # starts its records on a line of their own.
        with open(os.path.join(s.data_dir, "audit.log"), "a") as f:
            f.write('{"time":"torn')
        s.start()
        try:
            ch2 = grpc.insecure_channel(s.addr)

            def refused():  # the first calls may meet the old connection's backoff
                try:
                    ch2.unary_unary("/strata.v1.Admin/Stats")(b"", timeout=WAIT)
                except grpc.RpcError as e:
                    return e.code() == grpc.StatusCode.UNAUTHENTICATED
                raise AssertionError("a call without a token was served")
            wait_for("the restarted server refuses a call without a token", refused)
            lines = open(os.path.join(s.data_dir, "audit.log")).read().split("\n")
            assert '{"time":"torn' in lines
            after = lines[lines.index('{"time":"torn') + 1:]
            assert [json.loads(l)["event"] for l in after if l][:2] == ["server_start", "refused"]
        finally:
            s.kill()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unrecordable_operator_call_is_not_run(pki, monkeypatch):
    """Recording is part of the call: when the intent record cannot be made durable
    the privileged release fails INTERNAL and the lock stays held."""
    d = tempfile.mkdtemp(prefix="strata-pytest-auditfail-")
    try:
        auth = os.path.join(d, "auth")
        write_auth(auth, TOKENS)
        monkeypatch.setenv("STRATA_TEST_AUDIT_FAIL_AFTER", "1")  # server_start only
        s = Server(os.path.join(d, "data"), "--auth-file", auth).start()
        monkeypatch.delenv("STRATA_TEST_AUDIT_FAIL_AFTER")
        try:
            ch = grpc.insecure_channel(s.addr)
            uu = lambda path, req, resp: ch.unary_unary(path, request_serializer=req.SerializeToString,
                                                          response_deserializer=resp.FromString)
            acq = uu("/strata.v1.Locks/Acquire", locks_pb2.AcquireRequest, locks_pb2.AcquireResponse)
            assert acq(locks_pb2.AcquireRequest(op_id=5, rows=[b"kept"], kind=locks_pb2.LOCK_KIND_TEMPORAL,
                                                ttl_ms=3600000), metadata=md(TOKENS["writer"]), timeout=WAIT).acquired
            rel = uu("/strata.v1.Locks/Release", locks_pb2.ReleaseRequest, locks_pb2.ReleaseResponse)
            with pytest.raises(grpc.RpcError) as e:
                rel(locks_pb2.ReleaseRequest(rows=[b"kept"], privileged=True), metadata=md(TOKENS["operator"]),
                    timeout=WAIT)
            assert e.value.code() == grpc.StatusCode.INTERNAL
            assert "audit log" in e.value.details() and "was not run" in e.value.details()
            chk = uu("/strata.v1.Locks/Check", locks_pb2.CheckRequest, locks_pb2.CheckResponse)
            assert chk(locks_pb2.CheckRequest(op_id=5, rows=[b"kept"]), metadata=md(TOKENS["reader"]),
                       timeout=WAIT).all_held, "the unrecorded privileged release took effect"
            # An ordinary release (not audited) still works.
            assert rel(locks_pb2.ReleaseRequest(op_id=5, rows=[b"kept"]), metadata=md(TOKENS["writer"]),
                       timeout=WAIT).released == 1
        finally:
            s.kill()
    finally:
        shutil.rmtree(d, ignore_errors=True)


# --- mutual TLS ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mtls(pki):
    d = tempfile.mkdtemp(prefix="strata-pytest-mtls-")
    s = Server(os.path.join(d, "data"), "--tls-cert", os.path.join(pki, "server.pem"),
               "--tls-key", os.path.join(pki, "server.key"),
               "--tls-client-ca", os.path.join(pki, "ca.pem")).start()
    yield s
    s.kill()
    shutil.rmtree(d, ignore_errors=True)


def test_mtls_requires_a_client_certificate(mtls, pki):
    stats = lambda ch: ch.unary_unary("/strata.v1.Admin/Stats")(b"", timeout=WAIT)
    stats(channel(mtls, pki, cert="client"))
    for kw in ({}, {"cert": "other-client"}):
        with pytest.raises(grpc.RpcError) as e:
            stats(channel(mtls, pki, **kw))
        assert e.value.code() == grpc.StatusCode.UNAVAILABLE, kw


def test_mtls_subject_names_the_caller_in_the_audit(mtls, pki):
    ch = channel(mtls, pki, cert="client")
    ch.unary_unary("/strata.v1.Locks/Release", request_serializer=locks_pb2.ReleaseRequest.SerializeToString,
                   response_deserializer=locks_pb2.ReleaseResponse.FromString)(
        locks_pb2.ReleaseRequest(rows=[b"mtls-row"], privileged=True), timeout=WAIT)
    intents = [r for r in audit_records(mtls) if r["event"] == "call" and r["phase"] == "intent"]
    assert intents and "CN=test-client" in intents[-1]["caller"], intents[-1:]
    assert "CN=test-client" in intents[-1]["cert"]


def test_strata_client_mtls(mtls, pki):
    p = lambda n: os.path.join(pki, n)
    with strata.Client(mtls.addr, tls=p("ca.pem"), tls_cert=p("client.pem"), tls_key=p("client.key"),
                       timeout=WAIT) as c:
        c.put(b"mtls", b"1")
        assert c.get(b"mtls").value == b"1"


# --- startup refusals -----------------------------------------------------------------------

def run_server(args, tmp):
    """Starts strata-server; returns (exit code or None if it served, its stderr)."""
    log = os.path.join(tmp, "start.log")
    with open(log, "w") as f:
        p = subprocess.Popen([SERVER, "--data-dir", os.path.join(tmp, "d"), "--grace-ms", "0"] + args,
                             stderr=f, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        rc = p.poll()
        text = open(log).read()
        if rc is not None:
            return rc, text
        if "event=ready" in text:
            p.send_signal(signal.SIGTERM)
            p.wait()
            return None, text
        time.sleep(0.01)  # polling the log for readiness
    p.kill()
    raise AssertionError("strata-server neither served nor exited:\n" + open(log).read())


def test_non_loopback_needs_protection_or_insecure_listen(tmp_path, pki):
    t = str(tmp_path)
    rc, err = run_server(["--listen", "0.0.0.0:0"], t)
    assert rc == 1 and "--insecure-listen" in err and "0.0.0.0:0" in err, err
    assert not os.path.exists(os.path.join(t, "d")), "a refused start left the data directory behind"
    rc, err = run_server(["--listen", "0.0.0.0:0", "--insecure-listen"], t)
    assert rc is None and "event=insecure_listen" in err and "level=warn" in err, err
    auth = os.path.join(t, "auth")
    write_auth(auth, TOKENS)
    rc, err = run_server(["--listen", "0.0.0.0:0", "--auth-file", auth], t)
    assert rc is None and "insecure_listen" not in err, err
    rc, err = run_server(["--listen", "localhost:0"], t)
    assert rc is None and "insecure_listen" not in err, err


def test_bad_tls_and_auth_files_name_the_file(tmp_path, pki):
    t = str(tmp_path)
    p = lambda n: os.path.join(pki, n)
    cases = [
        (["--tls-cert", os.path.join(t, "missing.pem"), "--tls-key", p("server.key")], "missing.pem"),
        (["--tls-cert", p("server.pem"), "--tls-key", p("client.key")], "does not match"),
        (["--tls-cert", p("server.key"), "--tls-key", p("server.key")], "no PEM certificate"),
        (["--tls-cert", p("server.pem")], "--tls-key"),
        (["--auth-file", os.path.join(t, "nope")], "nope"),
    ]
    bad = os.path.join(t, "bad-auth")
    with open(bad, "w") as f:
        f.write("alice admin " + "0" * 64 + "\n")
    cases.append((["--auth-file", bad], "line 1: role \"admin\""))
    for args, want in cases:
        rc, err = run_server(["--listen", "127.0.0.1:0"] + args, t)
        assert rc == 1 and want in err, (args, err)
