#!/usr/bin/python3
"""Python interop: Debian's python3-grpcio talks to a real strata-server.

Messages come from `protoc --python_out` run at test time on rpc/proto (no gRPC
plugin: calls go through channel.unary_unary / unary_stream with the method
path). Every RPC is called, including grpc.health.v1.Health/Check and the
server-streaming ones; results and status codes are asserted.

Usage: interop.py [STRATA_SERVER_BIN [PROTO_DIR [WORK_DIR]]]   (exit 0 = pass)
The arguments default to $STRATA_SERVER_BIN, rpc/proto and $STRATA_WORK_DIR (or a
temporary directory), so tests/run-tier.sh can run it without arguments.
"""
import atexit
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import grpc

args = sys.argv[1:] + [None] * 3
server_bin = args[0] or os.environ["STRATA_SERVER_BIN"]
proto_dir = args[1] or os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../rpc/proto")
work = args[2] or os.environ.get("STRATA_WORK_DIR") or tempfile.mkdtemp(prefix="strata-interop-py-")
gen = os.path.join(work, "py")
shutil.rmtree(gen, ignore_errors=True)
os.makedirs(gen)
protos = [os.path.join(dp, f) for dp, _, fs in os.walk(proto_dir) for f in fs if f.endswith(".proto")]
subprocess.check_call(["protoc", "--python_out=" + gen, "-I" + proto_dir] + protos)
sys.path.insert(0, gen)
from strata.v1 import admin_pb2, kv_pb2, locks_pb2, ops_pb2  # noqa: E402

# grpc/health/v1/health_pb2.py would shadow the grpc package: load it by path.
spec = importlib.util.spec_from_file_location("health_pb2", os.path.join(gen, "grpc/health/v1/health_pb2.py"))
health_pb2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(health_pb2)

failures = []
# Deadline of each call: generous, since CI machines are slow and loaded; no
# check here is about timing, so a longer deadline never hides a failure.
TIMEOUT = 30


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)
    else:
        print("ok:", what)


data_dir = tempfile.mkdtemp(prefix="strata-interop-")
log = open(data_dir + ".log", "w+")
proc = subprocess.Popen([server_bin, "--listen", "127.0.0.1:0", "--data-dir", data_dir], stderr=log)


@atexit.register
def kill_server():
    """Whatever ends this script (a failed check, an exception), no server is left running."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


port = None
start = time.monotonic()
while port is None and proc.poll() is None and time.monotonic() - start < 60:
    log.seek(0)
    m = re.search(r"event=ready .*port=(\d+)", log.read())
    if m:
        port = int(m.group(1))
    else:
        time.sleep(0.01)
if port is None:
    log.seek(0)
    print(log.read())
    print("server did not start")
    sys.exit(1)

ch = grpc.insecure_channel("127.0.0.1:%d" % port)


def unary(path, req_cls, resp_cls):
    return ch.unary_unary(path, request_serializer=req_cls.SerializeToString,
                          response_deserializer=resp_cls.FromString)


def stream(path, req_cls, resp_cls):
    return ch.unary_stream(path, request_serializer=req_cls.SerializeToString,
                           response_deserializer=resp_cls.FromString)


def code_of(fn, req, timeout=TIMEOUT):
    try:
        fn(req, timeout=timeout)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as e:
        return e.code(), e.details()


def stream_code(fn, req, timeout=TIMEOUT):
    try:
        return grpc.StatusCode.OK, list(fn(req, timeout=timeout))
    except grpc.RpcError as e:
        return e.code(), e.details()


# Health
hc = unary("/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest, health_pb2.HealthCheckResponse)
r = hc(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
check(r.status == health_pb2.HealthCheckResponse.SERVING, "Health.Check SERVING")
check(code_of(hc, health_pb2.HealthCheckRequest(service="nope"))[0] == grpc.StatusCode.NOT_FOUND,
      "Health.Check unknown service NOT_FOUND")

# Admin
st = unary("/strata.v1.Admin/Stats", admin_pb2.StatsRequest, admin_pb2.StatsResponse)(admin_pb2.StatsRequest(), timeout=TIMEOUT)
check(st.data_dir == data_dir and st.max_message_bytes == 64 << 20, "Admin.Stats data_dir and limit")

# Locks
acq = unary("/strata.v1.Locks/Acquire", locks_pb2.AcquireRequest, locks_pb2.AcquireResponse)
T = locks_pb2.LOCK_KIND_TEMPORAL
a = acq(locks_pb2.AcquireRequest(op_id=7, rows=[b"\x01\x02", b"py"], kind=T, ttl_ms=30000), timeout=TIMEOUT)
check(a.acquired and a.fencing_token > 0, "Locks.Acquire granted with a fencing token")
b = acq(locks_pb2.AcquireRequest(op_id=8, rows=[b"py"], kind=T, ttl_ms=30000), timeout=TIMEOUT)
check(not b.acquired and b.conflicts[0].op_id == 7, "Locks.Acquire refusal names holder op 7")
check(code_of(acq, locks_pb2.AcquireRequest(op_id=8, rows=[b"py"], kind=T, ttl_ms=0))
      == (grpc.StatusCode.INVALID_ARGUMENT, "ttl_ms: must be > 0 for a temporal lock"),
      "Locks.Acquire TTL 0 INVALID_ARGUMENT naming ttl_ms")
ren = unary("/strata.v1.Locks/Renew", locks_pb2.RenewRequest, locks_pb2.RenewResponse)
check(ren(locks_pb2.RenewRequest(op_id=7, rows=[b"py"], ttl_ms=60000), timeout=TIMEOUT).expires_at_ns > 0,
      "Locks.Renew by holder")
code, msg = code_of(ren, locks_pb2.RenewRequest(op_id=8, rows=[b"py"], ttl_ms=1000))
check(code == grpc.StatusCode.FAILED_PRECONDITION and "op 7" in msg, "Locks.Renew by other op FAILED_PRECONDITION")
chk = unary("/strata.v1.Locks/Check", locks_pb2.CheckRequest, locks_pb2.CheckResponse)
c = chk(locks_pb2.CheckRequest(op_id=7, rows=[b"py", b"zz"]), timeout=TIMEOUT)
check(not c.all_held and list(c.missing) == [b"zz"], "Locks.Check lists missing rows")
code, msgs = stream_code(stream("/strata.v1.Locks/List", locks_pb2.ListLocksRequest, locks_pb2.ListLocksResponse),
                         locks_pb2.ListLocksRequest(op_id=7))
rows = sorted(l.row for m in msgs for l in m.locks) if code == grpc.StatusCode.OK else None
check(rows == [b"\x01\x02", b"py"], "Locks.List (stream) returns op 7's rows")
code, _ = stream_code(stream("/strata.v1.Locks/List", locks_pb2.ListLocksRequest, locks_pb2.ListLocksResponse),
                      locks_pb2.ListLocksRequest(kind=9))
check(code == grpc.StatusCode.INVALID_ARGUMENT, "Locks.List unknown kind INVALID_ARGUMENT")
rel = unary("/strata.v1.Locks/Release", locks_pb2.ReleaseRequest, locks_pb2.ReleaseResponse)
check(rel(locks_pb2.ReleaseRequest(op_id=0, rows=[b"py"], privileged=True), timeout=TIMEOUT).released == 1,
      "Locks.Release privileged frees op 7's row")
check(rel(locks_pb2.ReleaseRequest(op_id=7, all=True), timeout=TIMEOUT).released == 1, "Locks.Release all")

# Ops
alloc = unary("/strata.v1.Ops/AllocateIds", ops_pb2.AllocateIdsRequest, ops_pb2.AllocateIdsResponse)
x = alloc(ops_pb2.AllocateIdsRequest(counter="py", count=5), timeout=TIMEOUT)
y = alloc(ops_pb2.AllocateIdsRequest(counter="py", count=5), timeout=TIMEOUT)
check(x.first == 1 and y.first == 6, "Ops.AllocateIds hands out consecutive ranges")
check(code_of(alloc, ops_pb2.AllocateIdsRequest(counter="py", count=0))[0] == grpc.StatusCode.INVALID_ARGUMENT,
      "Ops.AllocateIds count 0 INVALID_ARGUMENT")
oget = unary("/strata.v1.Ops/Get", ops_pb2.GetOpRequest, ops_pb2.GetOpResponse)
setst = unary("/strata.v1.Ops/SetStatus", ops_pb2.SetStatusRequest, ops_pb2.SetStatusResponse)
create = unary("/strata.v1.Ops/Create", ops_pb2.CreateOpRequest, ops_pb2.CreateOpResponse)
op = create(ops_pb2.CreateOpRequest(user="py", kind="split", payload=b"p"), timeout=TIMEOUT).op
check(op.op_id > 0 and op.status == ops_pb2.OP_STATUS_CREATED, "Ops.Create")
check(oget(ops_pb2.GetOpRequest(op_id=op.op_id), timeout=TIMEOUT).op.user == "py", "Ops.Get")
s2 = setst(ops_pb2.SetStatusRequest(op_id=op.op_id, status=ops_pb2.OP_STATUS_SUCCESS), timeout=TIMEOUT).op
check(s2.status == ops_pb2.OP_STATUS_SUCCESS, "Ops.SetStatus")
olist = stream("/strata.v1.Ops/List", ops_pb2.ListOpsRequest, ops_pb2.ListOpsResponse)
code, msgs = stream_code(olist, ops_pb2.ListOpsRequest(status=ops_pb2.OP_STATUS_SUCCESS, newest_first=True, limit=1))
check(code == grpc.StatusCode.OK and [o.op_id for m in msgs for o in m.ops] == [op.op_id]
      and msgs[0].last_op_id == op.op_id, "Ops.List (stream) newest SUCCESS op")
check(stream_code(olist, ops_pb2.ListOpsRequest(status=42))[0] == grpc.StatusCode.INVALID_ARGUMENT,
      "Ops.List unknown status INVALID_ARGUMENT")
check(code_of(oget, ops_pb2.GetOpRequest(op_id=999999))[0] == grpc.StatusCode.NOT_FOUND, "Ops.Get missing NOT_FOUND")
check(code_of(setst, ops_pb2.SetStatusRequest(op_id=1, status=77))[0] == grpc.StatusCode.INVALID_ARGUMENT,
      "Ops.SetStatus unknown status INVALID_ARGUMENT")
# An op holding an indefinite lock is stuck; min_age_ms of an hour excludes it while young.
stuck = create(ops_pb2.CreateOpRequest(user="py", kind="stuck"), timeout=TIMEOUT).op
check(acq(locks_pb2.AcquireRequest(op_id=stuck.op_id, rows=[b"py/stuck"], kind=locks_pb2.LOCK_KIND_INDEFINITE),
          timeout=TIMEOUT).acquired, "Locks.Acquire indefinite for a stuck op")
lstuck = stream("/strata.v1.Ops/ListStuck", ops_pb2.ListStuckRequest, ops_pb2.ListStuckResponse)
code, msgs = stream_code(lstuck, ops_pb2.ListStuckRequest(min_age_ms=0))
listed = [o for m in msgs for o in m.ops if o.op_id == stuck.op_id] if code == grpc.StatusCode.OK else []
check(len(listed) == 1 and list(listed[0].scope) == [b"py/stuck"], "Ops.ListStuck (stream) lists the stuck op")
code, msgs = stream_code(lstuck, ops_pb2.ListStuckRequest(min_age_ms=3600000))
check(code == grpc.StatusCode.OK and all(o.op_id != stuck.op_id for m in msgs for o in m.ops),
      "Ops.ListStuck min_age_ms excludes a fresh op")
check(rel(locks_pb2.ReleaseRequest(op_id=stuck.op_id, all=True), timeout=TIMEOUT).released == 1,
      "Locks.Release the stuck op's row")

# Kv
get = unary("/strata.v1.Kv/Get", kv_pb2.GetRequest, kv_pb2.GetResponse)
commit = unary("/strata.v1.Kv/Commit", kv_pb2.CommitRequest, kv_pb2.CommitResponse)
bget = unary("/strata.v1.Kv/BatchGet", kv_pb2.BatchGetRequest, kv_pb2.BatchGetResponse)
check(code_of(get, kv_pb2.GetRequest())[0] == grpc.StatusCode.INVALID_ARGUMENT, "Kv.Get empty key INVALID_ARGUMENT")
c1 = commit(kv_pb2.CommitRequest(puts=[kv_pb2.Put(key=b"k", value=b"v1")]), timeout=TIMEOUT)
check(c1.version.generation >= 1, "Kv.Commit returns a generation")
g = get(kv_pb2.GetRequest(key=b"k"), timeout=TIMEOUT)
check(g.found and g.value == b"v1", "Kv.Get reads the commit")
code, msg = code_of(commit, kv_pb2.CommitRequest(
    puts=[kv_pb2.Put(key=b"k", value=b"v2")],
    conditions=[kv_pb2.Condition(key=b"k", kind=kv_pb2.Condition.KIND_ABSENT)]))
check(code == grpc.StatusCode.FAILED_PRECONDITION and "conditions[0]" in msg, "Kv.Commit condition FAILED_PRECONDITION")
bg = bget(kv_pb2.BatchGetRequest(keys=[b"k", b"nope"]), timeout=TIMEOUT)
check([e.found for e in bg.entries] == [True, False], "Kv.BatchGet")
code, msgs = stream_code(stream("/strata.v1.Kv/List", kv_pb2.ListRequest, kv_pb2.ListResponse), kv_pb2.ListRequest())
check(code == grpc.StatusCode.OK and [e.key for m in msgs for e in m.entries] == [b"k"], "Kv.List (stream)")
code, msgs = stream_code(stream("/strata.v1.Kv/Versions", kv_pb2.VersionsRequest, kv_pb2.VersionsResponse),
                         kv_pb2.VersionsRequest())
check(code == grpc.StatusCode.OK and len([v for m in msgs for v in m.versions]) >= 1, "Kv.Versions (stream)")
w = stream("/strata.v1.Kv/Watch", kv_pb2.WatchRequest, kv_pb2.WatchResponse)(kv_pb2.WatchRequest(from_generation=0), timeout=TIMEOUT)
first = next(w)
check(first.version.generation == 1 and first.changes[0].key == b"k", "Kv.Watch (stream) replays generation 1")
w.cancel()

# Text that is not UTF-8 (or holds a NUL) is refused at the edge, so every later reply
# that echoes ops stays parseable by this standard protobuf client.
raw_create = ch.unary_unary("/strata.v1.Ops/Create")
for user, what in ((b"a\xff", "is not valid UTF-8"), (b"a\x00b", "contains a NUL byte")):
    body = b"\x0a" + bytes([len(user)]) + user + b"\x12\x05split"
    code, msg = code_of(raw_create, body)
    check(code == grpc.StatusCode.INVALID_ARGUMENT and ("user: " + what) in msg,
          "Ops.Create with user %r INVALID_ARGUMENT naming the field (%s)" % (user, msg))
code, msgs = stream_code(stream("/strata.v1.Ops/List", ops_pb2.ListOpsRequest, ops_pb2.ListOpsResponse),
                         ops_pb2.ListOpsRequest())
check(code == grpc.StatusCode.OK, "Ops.List parses after refused bad text (%s)" % code)

# Unknown method, oversize message
code, _ = code_of(ch.unary_unary("/strata.v1.Kv/Nope"), b"", timeout=TIMEOUT)
check(code == grpc.StatusCode.UNIMPLEMENTED, "unknown method UNIMPLEMENTED")
big = grpc.insecure_channel("127.0.0.1:%d" % port, options=[("grpc.max_send_message_length", 80 << 20)])
try:
    big.unary_unary("/strata.v1.Kv/Get", request_serializer=kv_pb2.GetRequest.SerializeToString)(
        kv_pb2.GetRequest(key=b"x" * ((64 << 20) + 10)), timeout=60)
    code, trailer = grpc.StatusCode.OK, None
except grpc.RpcError as e:
    code, trailer = e.code(), dict(e.trailing_metadata() or ()).get("strata-error")
check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, "message above --max-message-bytes RESOURCE_EXHAUSTED")
check(trailer == "STRATA_ETOOBIG", "oversize answer carries strata-error: STRATA_ETOOBIG (%s)" % trailer)
check(hc(health_pb2.HealthCheckRequest(), timeout=TIMEOUT).status == health_pb2.HealthCheckResponse.SERVING,
      "server carries on after the oversize message")

ch.close()
big.close()
proc.send_signal(signal.SIGTERM)
try:
    rc = proc.wait(timeout=120)
except subprocess.TimeoutExpired:
    rc = "still running 120 s after SIGTERM"
check(rc == 0, "strata-server exits 0 on SIGTERM (%s)" % rc)
shutil.rmtree(data_dir, ignore_errors=True)
print("%d failures" % len(failures))
sys.exit(1 if failures else 0)
