"""Kv, Admin and Health through strata.Client: results, pins, conditions, errors."""
import datetime as dt

import pytest

import strata
from strata import Generation


def test_health_and_stats(client):
    assert client.health() is True
    assert client.health("strata.v1.Kv") is True
    with pytest.raises(strata.NotFound):
        client.health("no.such.Service")
    st = client.stats()
    assert st.server_version.startswith("strata")
    assert st.max_message_bytes == 64 << 20


def test_put_get_delete(client, prefix):
    k = prefix + b"a"
    assert client.get(k).value is None and not client.get(k).found
    v1 = client.put(k, b"one")
    r = client.get(k)
    assert r.value == b"one" and r.found and r.version == v1
    v2 = client.delete(k)
    assert v2.generation > v1.generation
    assert client.get(k).value is None
    assert client.get(k, at=v1).value == b"one"  # a Version pins its generation


def test_batch_get_and_list(client, prefix):
    v = client.commit({prefix + b"1": b"x", prefix + b"2": b"", prefix + b"3": b"z"})
    rs = client.batch_get([prefix + b"3", prefix + b"missing", prefix + b"1"])
    assert [(r.key, r.value) for r in rs] == [(prefix + b"3", b"z"), (prefix + b"missing", None),
                                              (prefix + b"1", b"x")]
    assert all(r.version.generation >= v.generation for r in rs)
    got = [(r.key, r.value) for r in client.list(prefix)]
    assert got == [(prefix + b"1", b"x"), (prefix + b"2", b""), (prefix + b"3", b"z")]
    assert [r.key for r in client.list(prefix, limit=2, keys_only=True)] == [prefix + b"1",
                                                                             prefix + b"2"]
    assert [r.key for r in client.list(start=prefix + b"2", end=prefix + b"3")] == [prefix + b"2"]


def test_list_stream_of_many_messages(client, prefix):
    """More entries than one List message holds (1000): the iterator joins them."""
    n = 2500
    client.commit({prefix + b"%05d" % i: b"v" for i in range(n)})
    keys = [r.key for r in client.list(prefix, keys_only=True)]
    assert keys == [prefix + b"%05d" % i for i in range(n)]


def test_pins(client, prefix):
    k = prefix + b"k"
    v1 = client.put(k, b"1")
    v2 = client.put(k, b"2")
    assert client.get(k, at=Generation(v1.generation)).value == b"1"
    assert client.get(k, at=Generation(v2.generation)).value == b"2"
    assert client.get(k, at="latest").value == b"2"
    # A time pin reads the newest generation committed at or before it.
    later = v2.commit_time + dt.timedelta(microseconds=1)  # datetime: microsecond precision
    assert client.get(k, at=later).value == b"2"
    iso = dt.datetime.fromtimestamp(v1.commit_time_ns / 1e9, dt.timezone.utc)
    ns = v1.commit_time_ns
    s = "%s.%09dZ" % (iso.strftime("%Y-%m-%dT%H:%M:%S"), ns % 10**9)
    r = client.get(k, at=s)
    assert r.value == b"1" and r.version == v1
    with pytest.raises(strata.OutOfRange):
        client.get(k, at=Generation(v2.generation + 1000))
    with pytest.raises(strata.NotFound):
        client.get(k, at="1971-01-01T00:00:00Z")
    with pytest.raises(TypeError):
        client.get(k, at=5)
    with pytest.raises(ValueError):
        client.get(k, at="yesterday")


def test_versions(client, prefix):
    a = client.put(prefix + b"v", b"1")
    b = client.put(prefix + b"v", b"2")
    vs = list(client.versions(a.generation, b.generation))
    assert vs[0] == a and vs[-1] == b
    assert [v.generation for v in vs] == list(range(a.generation, b.generation + 1))
    assert list(client.versions(a.generation, b.generation, descending=True, limit=1)) == [b]
    assert client.latest().generation >= b.generation


def test_conditions(client, prefix):
    k = prefix + b"c"
    v = client.commit({k: b"1"}, conditions=[strata.absent(k)])
    with pytest.raises(strata.ConditionFailed) as ei:
        client.commit({k: b"2", prefix + b"other": b"x"},
                      conditions=[strata.value_hash(k, b"1"), strata.absent(k)])
    assert ei.value.key == k and ei.value.condition == strata.absent(k)
    assert ei.value.code == "STRATA_ECONDITION"
    assert client.get(k).value == b"1" and client.get(prefix + b"other").value is None
    client.commit({k: b"2"}, conditions=[strata.unchanged_since(k, v), strata.value_hash(k, b"1")])
    with pytest.raises(strata.ConditionFailed) as ei:
        client.commit({k: b"3"}, conditions=[strata.unchanged_since(k, v)])
    assert ei.value.condition.kind == strata.unchanged_since(k, v).kind
    assert client.get(k).value == b"2"


def test_invalid_arguments(client, prefix):
    with pytest.raises(strata.InvalidArgument):
        client.get(b"")
    with pytest.raises(strata.InvalidArgument):
        client.get(b"x" * 70000)
    with pytest.raises(strata.InvalidArgument):
        client.commit()  # nothing to write
    with pytest.raises(strata.InvalidArgument):
        list(client.list(start=b"b", end=b"a"))
    with pytest.raises(TypeError):
        client.get("a str key")


def test_message_above_the_server_limit_is_resource_exhausted(small_server):
    with strata.Client(small_server.addr, timeout=60) as c:
        with pytest.raises(strata.ResourceExhausted):
            c.put(b"big", b"x" * 100000)
        assert c.get(b"big").value is None and c.health()  # the server carries on


def test_a_passed_deadline_is_deadline_exceeded(server):
    # A Watch with nothing to send stays open until its deadline passes: the status is
    # DEADLINE_EXCEEDED whatever the machine's speed (a microsecond deadline on a Get
    # was not: it raced the call once on a loaded machine).
    from strata.v1 import kv_pb2
    with strata.Client(server.addr, timeout=10) as c:
        with pytest.raises(strata.DeadlineExceeded):
            for _ in c._stream(c._kv.Watch, kv_pb2.WatchRequest(prefix=b"nothing-here/"),
                               timeout=0.5):
                pass


def test_unreachable_server_is_unavailable():
    with strata.Client("127.0.0.1:1", timeout=10) as c:
        with pytest.raises(strata.Unavailable):
            c.get(b"k")


def test_token_is_sent_and_tls_needs_a_tls_server(server):
    with strata.Client(server.addr, token="secret") as c:
        assert c.health()
    with strata.Client(server.addr, tls=True, timeout=10) as c:
        with pytest.raises(strata.Unavailable):
            c.health()


def test_ops_and_ids(client):
    op = client.create_op("alice", "split", b"payload")
    assert op.status == strata.OpStatus.CREATED and op.user == "alice" and op.payload == b"payload"
    assert client.get_op(op.op_id) == op
    op2 = client.set_status(op.op_id, strata.OpStatus.WRITE_STARTED)
    assert op2.status == strata.OpStatus.WRITE_STARTED and op2.reason == ""
    op3 = client.set_status(op.op_id, strata.OpStatus.EXCEPTION, reason="worker lost its node")
    assert client.get_op(op.op_id).reason == "worker lost its node" == op3.reason
    op2 = client.set_status(op.op_id, strata.OpStatus.WRITE_STARTED)
    assert op2.reason == ""  # a change without a reason clears the earlier one
    assert op.op_id in [o.op_id for o in client.ops(strata.OpStatus.WRITE_STARTED)]
    newest = next(client.ops(newest_first=True))
    assert newest.op_id >= op.op_id
    with pytest.raises(strata.NotFound):
        client.get_op(op.op_id + 10**9)
    with pytest.raises(strata.InvalidArgument):
        client.create_op("", "split")
    ids = client.allocate_ids("sv/chunk/7", 10)
    more = client.allocate_ids("sv/chunk/7", 5)
    assert len(ids) == 10 and len(more) == 5 and more.start >= ids.stop


def test_operation_reader_sees_the_state_before_the_op(client, prefix):
    k = prefix + b"doc"
    client.put(k, b"before")
    with client.op("bob", "edit") as op:
        client.put(k, b"after")
        assert op.reader.get(k).value == b"before"
        assert [r.value for r in op.reader.list(prefix)] == [b"before"]
        assert client.get_op(op.op_id).start_generation == op.base_generation
    assert client.get_op(op.op_id).status == strata.OpStatus.SUCCESS
    with pytest.raises(RuntimeError):
        with client.op("bob", "edit") as op2:
            op2.set_status(strata.OpStatus.WRITE_STARTED)
            raise RuntimeError("boom")
    assert client.get_op(op2.op_id).status == strata.OpStatus.WRITE_FAILED
