"""Locks through strata.Client and the lock context managers (strata.locks)."""
import os
import signal
import subprocess
import sys
import time

import pytest

import strata
from strata import LockKind, keys

HERE = os.path.dirname(os.path.abspath(__file__))
WAIT_LIMIT = 120  # seconds: generous bound for a condition polled on the server's clock


def wait_until(cond, what):
    deadline = time.monotonic() + WAIT_LIMIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)  # polling the server's state


def rows_of(prefix, *names):
    return [prefix + n for n in names]


def test_acquire_renew_release_check_list(client, prefix):
    a = client.create_op("t", "lock").op_id
    b = client.create_op("t", "lock").op_id
    rows = rows_of(prefix, b"r1", b"r2")
    r = client.acquire(a, rows, ttl=60)
    assert r.acquired and r.fencing_token > 0 and r.expires_at_ns > 0
    r2 = client.acquire(b, [rows[1]], ttl=60)
    assert not r2 and [c.op_id for c in r2.conflicts] == [a] and r2.conflicts[0].row == rows[1]
    assert client.check(a, rows).all_held
    assert client.check(b, rows).missing == rows
    assert client.renew(a, rows, 120) > r.expires_at_ns
    with pytest.raises(strata.RenewRefused):
        client.renew(b, rows, 10)
    held = list(client.locks(op_id=a))
    assert [li.row for li in held] == rows and all(li.kind == LockKind.TEMPORAL for li in held)
    assert client.release(a, [rows[0]]) == 1
    assert client.release(a) == 1  # all of a's locks
    assert not list(client.locks(op_id=a))
    with pytest.raises(strata.InvalidArgument):
        client.acquire(a, rows, ttl=0)


def test_fenced_commit_after_expiry_raises_fence_lost_and_writes_nothing(client, prefix):
    op = client.create_op("t", "fence").op_id
    row, key = prefix + b"row", prefix + b"key"
    assert client.acquire(op, [row], ttl=0.2)
    wait_until(lambda: not client.check(op, [row]).all_held, "the lock to expire (server clock)")
    with pytest.raises(strata.FenceLost) as ei:
        client.commit({key: b"v"}, fence=strata.Fence(op, [row]))
    assert ei.value.rows == [row] and ei.value.holder == 0 and ei.value.code == "STRATA_EFENCED"
    assert client.get(key).value is None


def test_fence_names_the_new_holder(client, prefix):
    a, b = client.create_op("t", "f").op_id, client.create_op("t", "f").op_id
    rows = rows_of(prefix, b"x", b"y")
    assert client.acquire(a, rows, ttl=60)
    client.release(a, [rows[1]])
    assert client.acquire(b, [rows[1]], ttl=60)
    with pytest.raises(strata.FenceLost) as ei:
        client.commit({prefix + b"k": b"v"}, fence=strata.Fence(a, rows))
    assert ei.value.rows == [rows[1]] and ei.value.holder == b
    v = client.commit({prefix + b"k": b"v"}, fence=strata.Fence(b, [rows[1]]))
    assert client.get(prefix + b"k").version.generation >= v.generation


def test_root_lock_conflict_raises_lock_held_and_releases_on_exit(client, prefix):
    row = prefix + b"root"
    with strata.RootLock(client, [row], ttl=30) as lock:
        assert client.check(lock.op_id, [row]).all_held
        with pytest.raises(strata.LockHeld) as ei:
            with strata.RootLock(client, [row], ttl=30):
                pass
        assert [h.op_id for h in ei.value.holders] == [lock.op_id]
        v = client.commit({prefix + b"k": b"v"}, fence=lock)
        assert v.generation > 0
    assert not client.check(lock.op_id, [row]).all_held  # released
    with pytest.raises(ValueError):
        with strata.RootLock(client, [row]) as l2:
            raise ValueError("the worker failed")
    assert not client.check(l2.op_id, [row]).all_held  # released on an exception too


def test_root_lock_renews_past_its_ttl(client, prefix):
    """The background renewal keeps the lock across several TTLs."""
    row = prefix + b"r"
    # 20 renewals per TTL: a loaded machine may delay a few without losing the lock.
    with strata.RootLock(client, [row], ttl=2.0, renew_every=0.1) as lock:
        first = next(client.locks(op_id=lock.op_id)).expires_at_ns
        # A renewal sent after the first expiry had passed (server clock) extends it
        # to more than first + TTL.
        wait_until(lambda: next(client.locks(op_id=lock.op_id)).expires_at_ns > first + 2.5e9,
                   "renewals to carry the lock past its first expiry")
        assert client.check(lock.op_id, [row]).all_held
        client.commit({prefix + b"k": b"v"}, fence=lock)
    assert lock.lost is None


def test_root_lock_root_ids_and_l2_chunk_lock_rows(client):
    with strata.RootLock(client, 0x7000000000000123, ttl=30) as r:
        assert r.rows == [keys.root(0x7000000000000123)]
    with strata.L2ChunkLock(client, [9, 8, 9], ttl=30) as l2:
        assert l2.rows == [keys.l2_chunk(9), keys.l2_chunk(8)]
        assert client.check(l2.op_id, l2.rows).all_held


def test_renew_failure_raises_lock_lost_in_the_worker_thread(client, prefix):
    """Another op's privileged release takes the rows away: the next renewal fails and
    the worker thread gets LockLost wherever it is; nothing it would write lands."""
    row, key = prefix + b"row", prefix + b"key"
    lock = strata.RootLock(client, [row], ttl=30, renew_every=0.05)
    reached = []
    with pytest.raises(strata.LockLost) as ei:
        with lock:
            client.release(0, [row], privileged=True)
            deadline = time.monotonic() + WAIT_LIMIT
            while time.monotonic() < deadline:  # the worker "computes" until interrupted
                time.sleep(0.01)
            reached.append(True)
            client.commit({key: b"late"}, fence=lock)
    assert not reached, "the worker thread was not interrupted"
    assert ei.value.rows == [row]
    assert lock.lost is not None
    assert client.get(key).value is None
    with pytest.raises(strata.LockLost):
        client.commit({key: b"late"}, fence=lock)  # refused before sending
    assert client.get(key).value is None


def test_renew_failure_without_interrupt_fails_the_fenced_commit_and_the_exit(client, prefix):
    row, key = prefix + b"row", prefix + b"key"
    lock = strata.RootLock(client, [row], ttl=30, renew_every=0.05, interrupt=False)
    with pytest.raises(strata.LockLost):
        with lock:
            client.release(0, [row], privileged=True)
            wait_until(lambda: lock.lost is not None, "the renew thread to see the loss")
            with pytest.raises(strata.FenceLost):
                client.commit({key: b"v"}, fence=lock)
    assert client.get(key).value is None


@pytest.mark.parametrize("interrupt", ["1", "0"])
def test_sigstopped_worker_loses_its_lock_and_writes_nothing(server, client, prefix, interrupt):
    """A worker process holds a RootLock (TTL 3 s); it is SIGSTOPped until the server
    expires the lock, then continued: its fenced commit raises FenceLost (or LockLost,
    a FenceLost, from the renew thread first) and the key stays absent."""
    row, key = prefix + b"row", prefix + b"key"
    p = subprocess.Popen([sys.executable, os.path.join(HERE, "renew_child.py"), server.addr,
                          key.decode(), row.decode(), "3.0", interrupt],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        words = p.stdout.readline().split()
        assert words[0] == "locked", words
        op = int(words[1])
        os.kill(p.pid, signal.SIGSTOP)
        wait_until(lambda: not client.check(op, [row]).all_held, "the server to expire the lock")
        os.kill(p.pid, signal.SIGCONT)
        p.stdin.write("go\n")
        p.stdin.flush()
        out = p.stdout.readline().split()
        assert out and out[0] in ("fence-lost", "lock-lost"), out
        assert p.wait(timeout=WAIT_LIMIT) == 0
    finally:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGCONT)
            p.kill()
            p.wait()
    assert client.get(key).value is None


def test_indefinite_l2_chunk_lock_holds_on_exception_and_records_scope(client, prefix):
    op = client.create_op("t", "split").op_id
    chunks = [101, 102]
    rows = [keys.l2_chunk(c) for c in chunks]
    with pytest.raises(RuntimeError):
        with strata.IndefiniteL2ChunkLock(client, chunks, op) as lk:
            assert sorted(client.get_op(op).scope) == sorted(rows)
            client.commit({prefix + b"seg": b"half"}, fence=lk)
            raise RuntimeError("worker died mid-write")
    # Held on purpose: another op is refused, the op shows up as stuck.
    other = client.create_op("t", "split").op_id
    with pytest.raises(strata.LockHeld) as ei:
        with strata.IndefiniteL2ChunkLock(client, chunks, other):
            pass
    assert {h.op_id for h in ei.value.holders} == {op}
    assert all(h.kind == LockKind.INDEFINITE for h in ei.value.holders)
    # Rows are exclusive whatever the kinds: a temporal lock of another op is refused too.
    with pytest.raises(strata.LockHeld) as ei:
        with strata.L2ChunkLock(client, chunks, op_id=other):
            pass
    assert {h.op_id for h in ei.value.holders} == {op}
    assert op in [o.op_id for o in client.stuck_ops()]
    # Operator recovery: privileged mode acquires nothing and releases the crashed
    # op's rows on a clean exit; the op's fence still holds inside.
    with strata.IndefiniteL2ChunkLock(client, chunks, op, privileged=True) as rec:
        client.commit({prefix + b"seg": b"repaired"}, fence=rec)
    assert client.get_op(op).scope == []
    assert op not in [o.op_id for o in client.stuck_ops()]
    with strata.IndefiniteL2ChunkLock(client, chunks, other):
        assert client.check(other, rows).all_held
    assert client.get_op(other).scope == []  # released on a clean exit
    assert not client.check(other, rows).all_held


def test_nested_root_and_indefinite_locks_fence_one_commit(client, prefix):
    """The edit-worker shape: a RootLock's op takes indefinite chunk locks; one commit
    is fenced by both."""
    with strata.RootLock(client, [prefix + b"root"], ttl=30) as root:
        with strata.IndefiniteL2ChunkLock(client, [7, 8], root.op_id) as chunks:
            v = client.commit({prefix + b"k": b"v"}, fence=[root, chunks])
    assert client.get(prefix + b"k").version.generation >= v.generation
    assert not list(client.locks(op_id=root.op_id))
    other = strata.RootLock(client, [prefix + b"x"], ttl=30)
    with other, pytest.raises(ValueError):
        client.commit({prefix + b"k": b"v"}, fence=[root, other])  # two ops: refused


def test_no_interruption_while_a_fenced_commit_is_in_flight(client, prefix):
    """A loss found while a commit fenced by the lock is in flight is not raised into
    that commit (the server's answer stands); the lock's next fence and its exit raise."""
    row = prefix + b"row"
    lock = strata.RootLock(client, [row], ttl=30, renew_every=0.05)
    with pytest.raises(strata.LockLost):
        with lock:
            lock._commit_begin()  # what client.commit(fence=lock) does around its RPC
            client.release(0, [row], privileged=True)
            wait_until(lambda: lock.lost is not None, "the renew thread to see the loss")
            for _ in range(1000):  # bytecodes and calls: an injected exception would land here
                sum(range(10))
            lock._commit_end()
            with pytest.raises(strata.LockLost):
                client.commit({prefix + b"k": b"v"}, fence=lock)
    assert client.get(prefix + b"k").value is None


def test_privileged_root_lock_recovers_an_existing_op(client, prefix):
    with pytest.raises(ValueError):
        with strata.RootLock(client, [prefix + b"r"], privileged=True):
            pass
    op = client.create_op("t", "split").op_id
    with pytest.raises(RuntimeError):
        with strata.IndefiniteL2ChunkLock(client, [555], op):
            raise RuntimeError("crash")
    with strata.RootLock(client, [prefix + b"r"], op_id=op, privileged=True) as root, \
            strata.IndefiniteL2ChunkLock(client, [555], op, privileged=True) as chunks:
        assert not list(client.locks(op_id=op, kind=LockKind.TEMPORAL))  # acquired nothing
        client.commit({prefix + b"k": b"fixed"}, fence=[root, chunks])  # fenced by the chunks
    assert client.get(prefix + b"k").value == b"fixed"
    assert client.get_op(op).scope == []


def test_lock_is_lost_when_the_server_is_unreachable_for_a_ttl(own_server):
    """Renewals that fail for transport reasons are retried until the TTL since the
    last renewal sent has run out; then the lock counts as lost."""
    with strata.Client(own_server.addr, timeout=5) as c:
        lock = strata.RootLock(c, [b"row"], ttl=2.0, renew_every=0.1, interrupt=False)
        with pytest.raises(strata.LockLost) as ei:
            with lock:
                own_server.kill()
                wait_until(lambda: lock.lost is not None, "the renew thread to give up")
                assert "within their 2 s TTL" in str(lock.lost)
        assert ei.value is lock.lost


def test_a_renewal_that_cannot_be_sent_loses_the_lock(server, prefix):
    """A renewal that fails without a server answer, here because the worker closed
    its client, ends the renewals and marks the lock lost at once (instead of the
    renew thread dying and the lock expiring unnoticed by the worker); the exit then
    raises LockLost, not the closed channel's error."""
    c = strata.Client(server.addr, timeout=60)
    lock = strata.RootLock(c, [prefix + b"row"], ttl=30, renew_every=0.05, interrupt=False)
    with pytest.raises(strata.LockLost) as ei:
        with lock:
            c.close()
            wait_until(lambda: lock.lost is not None, "the renew thread to give up")
    assert ei.value is lock.lost and "could not send" in str(lock.lost)
