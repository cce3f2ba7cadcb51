"""The package's surface without a server: every public name documented, every
RPC of the .proto files reachable through a Client method, and the one mapping
from gRPC errors to exception classes."""
import inspect
import os
import re

import grpc
import pytest

import strata
from strata import errors, keys, locks, pins, types
from strata.v1 import kv_pb2

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULES = [strata, strata.client, errors, keys, locks, pins, types]


def public_names():
    """(qualified name, object) for every public name of the package: each module's
    __all__ (or its non-underscore globals defined there), their public methods and
    properties, classes' included."""
    seen = set()
    for mod in MODULES:
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        yield mod.__name__, mod
        for n in names:
            obj = getattr(mod, n)
            if id(obj) in seen or (inspect.ismodule(obj)):
                continue
            seen.add(id(obj))
            yield "%s.%s" % (mod.__name__, n), obj
            if inspect.isclass(obj) and not issubclass(obj, int):
                for an, attr in vars(obj).items():
                    if an.startswith("_"):
                        continue
                    if inspect.isfunction(attr) or isinstance(attr, (property, classmethod,
                                                                     staticmethod)):
                        yield "%s.%s.%s" % (mod.__name__, n, an), attr


def test_every_public_name_has_a_docstring():
    names = list(public_names())
    assert len(names) > 80
    missing = []
    for qn, obj in names:
        doc = obj.__func__.__doc__ if isinstance(obj, (classmethod, staticmethod)) else obj.__doc__
        if not (doc or "").strip():
            missing.append(qn)
        elif inspect.isclass(obj) and doc.startswith(obj.__name__ + "("):
            missing.append(qn + " (only the dataclass signature)")
    assert missing == []


# The Client method that calls each RPC of rpc/proto/strata/v1 (grpc.health.v1's
# Watch is not served: docs/protocol.md).
RPC_METHODS = {
    "Kv.Get": "get", "Kv.BatchGet": "batch_get", "Kv.List": "list", "Kv.Commit": "commit",
    "Kv.Versions": "versions", "Kv.Watch": "watch",
    "Locks.Acquire": "acquire", "Locks.Renew": "renew", "Locks.Release": "release",
    "Locks.List": "locks", "Locks.Check": "check",
    "Ops.Create": "create_op", "Ops.Get": "get_op", "Ops.SetStatus": "set_status",
    "Ops.ListStuck": "stuck_ops", "Ops.List": "ops", "Ops.AllocateIds": "allocate_ids",
    "Coordinator.RegisterWriter": "register_writer", "Coordinator.RenewWriter": "renew_writer",
    "Coordinator.UnregisterWriter": "unregister_writer",
    "Coordinator.RegisterFile": "register_file", "Coordinator.ListWriters": "writers",
    "Admin.Stats": "stats", "Admin.Gc": "gc", "Admin.Check": "check_store",
    "Admin.Retention": "retention",
}


def test_every_rpc_of_the_protos_has_a_client_method():
    proto_dir = os.path.join(ROOT, "rpc", "proto", "strata", "v1")
    rpcs = set()
    for f in sorted(os.listdir(proto_dir)):
        text = open(os.path.join(proto_dir, f)).read()
        for svc, body in re.findall(r"service (\w+) \{(.*?)\n\}", text, re.S):
            rpcs.update("%s.%s" % (svc, m) for m in re.findall(r"rpc (\w+)\(", body))
    assert len(rpcs) >= 26
    assert rpcs == set(RPC_METHODS), "RPCs without a Client method: %s" % sorted(
        rpcs - set(RPC_METHODS))
    for rpc, meth in RPC_METHODS.items():
        assert callable(getattr(strata.Client, meth, None)), (rpc, meth)


class FakeRpcError(grpc.RpcError):
    def __init__(self, status, details="", trailer=None):
        self._status, self._details = status, details
        self._md = (("strata-error", trailer),) if trailer else ()

    def code(self):
        return self._status

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._md


def test_every_status_maps_to_its_class():
    by_status = {
        grpc.StatusCode.INVALID_ARGUMENT: strata.InvalidArgument,
        grpc.StatusCode.NOT_FOUND: strata.NotFound,
        grpc.StatusCode.OUT_OF_RANGE: strata.OutOfRange,
        grpc.StatusCode.ALREADY_EXISTS: strata.AlreadyExists,
        grpc.StatusCode.RESOURCE_EXHAUSTED: strata.ResourceExhausted,
        grpc.StatusCode.ABORTED: strata.Aborted,
        grpc.StatusCode.UNIMPLEMENTED: strata.Unimplemented,
        grpc.StatusCode.UNAVAILABLE: strata.Unavailable,
        grpc.StatusCode.DEADLINE_EXCEEDED: strata.DeadlineExceeded,
        grpc.StatusCode.CANCELLED: strata.Cancelled,
        grpc.StatusCode.DATA_LOSS: strata.DataLoss,
        grpc.StatusCode.INTERNAL: strata.Internal,
        grpc.StatusCode.PERMISSION_DENIED: strata.PermissionDenied,
        grpc.StatusCode.UNAUTHENTICATED: strata.Unauthenticated,
        grpc.StatusCode.FAILED_PRECONDITION: strata.FailedPrecondition,
    }
    for status, cls in by_status.items():
        e = errors.from_rpc_error(FakeRpcError(status, "why"))
        assert type(e) is cls and e.status == status and e.details == "why" and e.code is None
        assert isinstance(e, strata.StrataError)
    e = errors.from_rpc_error(FakeRpcError(grpc.StatusCode.UNKNOWN, "?"))
    assert type(e) is strata.StrataError


def test_strata_codes_map_before_the_status():
    fp = grpc.StatusCode.FAILED_PRECONDITION
    conds = [strata.absent(b"a"), strata.value_hash(b"b", b"x")]
    e = errors.from_rpc_error(FakeRpcError(fp, "conditions[1] (key 'b') failed",
                                           "STRATA_ECONDITION"), conditions=conds)
    assert type(e) is strata.ConditionFailed and e.condition is conds[1] and e.key == b"b"
    e = errors.from_rpc_error(FakeRpcError(fp, "row r not held", "STRATA_EFENCED"))
    assert type(e) is strata.FenceLost and e.code == "STRATA_EFENCED"
    for code in ("STRATA_ELOCKED", "STRATA_EEXPIRED"):
        assert type(errors.from_rpc_error(FakeRpcError(fp, "", code))) is strata.RenewRefused
    # A code the client does not know: the status decides.
    assert type(errors.from_rpc_error(FakeRpcError(fp, "", "STRATA_ENEW"))) is \
        strata.FailedPrecondition


class FakeKv:
    """Answers Commit like a server whose fenced lock expired while the commit was
    made durable."""

    def __init__(self):
        self.requests = []

    def Commit(self, req, timeout=None, metadata=None):
        self.requests.append(req)
        r = kv_pb2.CommitResponse(fence_expired_in_flight=True)
        r.version.generation, r.version.commit_time_ns = 9, 123
        return r


def test_commit_reports_fence_expired_in_flight_and_sends_refs():
    c = strata.Client("127.0.0.1:1")
    try:
        c._kv = FakeKv()
        v = c.commit({b"k": b"v", b"r": strata.DataRef("d/w1-f", 4, 5, crc32c=0)},
                     fence=strata.Fence(3, [b"row"]), writer_id=7)
        assert v.fence_expired_in_flight and v == strata.Version(9, 123)
        req = c._kv.requests[0]
        assert req.writer_id == 7 and req.fence.op_id == 3 and list(req.fence.rows) == [b"row"]
        assert req.puts[0].value == b"v" and not req.puts[0].HasField("ref")
        ref = req.puts[1].ref
        assert (ref.path, ref.offset, ref.length, ref.has_crc32c, ref.crc32c) == \
            ("d/w1-f", 4, 5, True, 0)
        assert not strata.DataRef("p", 0, 1)._pb().has_crc32c
    finally:
        c.close()


def test_pins_convert_to_the_protocol():
    import datetime as dt
    assert pins.to_pin(None) is None and pins.to_pin("latest") is None
    assert pins.to_pin(strata.Generation(12)).generation == 12
    assert pins.to_pin(strata.Version(5, 1)).generation == 5
    assert pins.to_pin("2026-11-21T10:00:00Z").commit_time_ns == 1795255200 * 10**9
    assert pins.to_pin("2026-11-21T11:00:00.000000001+01:00").commit_time_ns == \
        1795255200 * 10**9 + 1
    d = dt.datetime(2026, 11, 21, 10, 0, 0, 5, tzinfo=dt.timezone.utc)
    assert pins.to_pin(d).commit_time_ns == 1795255200 * 10**9 + 5000
    with pytest.raises(ValueError):
        pins.to_pin(dt.datetime(2026, 11, 21))  # naive: which zone?
    with pytest.raises(TypeError):
        pins.to_pin(12)
