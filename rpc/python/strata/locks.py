"""Lock context managers with the semantics of PyChunkedGraph's lock classes.

- :class:`RootLock` / :class:`L2ChunkLock` (temporal): acquire all rows or raise
  :class:`LockHeld`; a background thread renews them; if a renewal fails the
  lock raises :class:`LockLost` **in the worker's thread** (and refuses to fence
  a commit), so the worker cannot go on writing; released on exit, whatever
  happened.
- :class:`IndefiniteL2ChunkLock` (indefinite): the server records the rows as the
  op's scope in the same write; on an exception the rows stay held **on
  purpose** (a half-done edit blocks new edits on its chunks until an operator
  recovers it); released on a clean exit.
- ``privileged=True`` (operator recovery of an existing op): acquires nothing;
  an indefinite lock then releases the crashed op's rows on a clean exit.

Every lock is a fence: ``client.commit(..., fence=lock)`` applies only while
the lock's op still holds its rows.
"""
import ctypes
import getpass
import threading
import time

from . import keys
from .errors import LockHeld, LockLost, RenewRefused, StrataError
from .types import Fence, LockKind

__all__ = ["TemporalLock", "RootLock", "L2ChunkLock", "IndefiniteLock", "IndefiniteL2ChunkLock"]


def _rows_of(items, to_row):
    if isinstance(items, (bytes, bytearray)) or not hasattr(items, "__iter__"):
        items = [items]  # one id (int, numpy.uint64) or one row
    rows = []
    for it in items:
        r = bytes(it) if isinstance(it, (bytes, bytearray)) else to_row(it)
        if r not in rows:
            rows.append(r)
    if not rows:
        raise ValueError("a lock needs at least one row")
    return rows


def _lost_class(exc):
    """A LockLost subclass that PyThreadState_SetAsyncExc can raise: it takes a
    class and instantiates it without arguments."""
    class _Lost(LockLost):
        def __init__(self, *args):
            LockLost.__init__(self, exc.details, rows=exc.rows, holder=exc.holder,
                              status=exc.status, code=exc.code)
    _Lost.__name__ = _Lost.__qualname__ = "LockLost"
    return _Lost


def _set_async_exc(tid, cls):
    return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(tid),
                                                      ctypes.py_object(cls) if cls else None)


class TemporalLock:
    """Temporal locks on ``rows`` (bytes), renewed in the background.

    ``TemporalLock(client, rows, *, op_id=None, user=None, kind="lock", ttl=60.0,
    renew_every=ttl/3, wait=0.0, privileged=False, interrupt=True)``.
    Without ``op_id`` a new op is created (``user``, ``kind``) on enter, as
    PyChunkedGraph's RootLock creates an operation id. ``wait`` seconds to wait
    for other holders before raising :class:`LockHeld`. With ``interrupt`` a
    failed renewal raises :class:`LockLost` asynchronously in the thread that
    entered the lock (never while a commit fenced by the lock is in flight: that
    commit's own answer stands, and the loss is raised by the next fence and the
    exit); without ``interrupt``, only the next fenced commit and the exit raise.
    ``privileged`` (recovery of the existing op ``op_id``) acquires nothing and
    fences nothing.
    Attributes after enter: ``op_id``, ``rows``, ``fencing_token``, ``lost`` (the
    :class:`LockLost` once a renewal failed, else None).
    """

    def __init__(self, client, rows, *, op_id=None, user=None, kind="lock", ttl=60.0,
                 renew_every=None, wait=0.0, privileged=False, interrupt=True):
        self.client = client
        self.rows = _rows_of(rows, bytes)
        self.op_id = op_id
        self.user = user
        self.kind = kind
        self.ttl = float(ttl)
        self.renew_every = self.ttl / 3 if renew_every is None else float(renew_every)
        self.wait = wait
        self.privileged = privileged
        self.interrupt = interrupt
        self.fencing_token = 0
        self.acquired = False
        self.lost = None
        self._mu = threading.Lock()
        self._active = False
        self._injected = False
        self._committing = 0
        self._stop = threading.Event()
        self._thread = None
        self._tid = None

    def __enter__(self):
        if self.privileged:
            if not self.op_id:
                raise ValueError("privileged mode recovers an existing op: pass its op_id")
            return self
        if not self.op_id:
            self.op_id = self.client.create_op(self.user or getpass.getuser(), self.kind).op_id
        sent = time.monotonic()
        r = self.client.acquire(self.op_id, self.rows, kind=LockKind.TEMPORAL, ttl=self.ttl,
                                wait=self.wait)
        if not r.acquired:
            raise LockHeld("op %d could not lock %d rows: %d held by other ops (ops %s)"
                           % (self.op_id, len(self.rows), len(r.conflicts),
                              sorted({c.op_id for c in r.conflicts})), holders=r.conflicts)
        self.acquired = True
        self.fencing_token = r.fencing_token
        self._tid = threading.get_ident()
        self._active = True
        self._thread = threading.Thread(target=self._renew_loop, args=(sent,), daemon=True,
                                        name="strata-renew-%d" % self.op_id)
        self._thread.start()
        return self

    def _renew_loop(self, last_ok):
        while not self._stop.wait(self.renew_every):
            sent = time.monotonic()
            try:
                self.client.renew(self.op_id, self.rows, self.ttl)
                last_ok = sent
                continue
            except RenewRefused as e:
                lost = LockLost("renewing op %d's locks failed: %s" % (self.op_id, e.details),
                                rows=self.rows, status=e.status, code=e.code)
            except StrataError as e:
                if time.monotonic() - last_ok < self.ttl:
                    continue  # transient (server restarting): the locks may still be live
                lost = LockLost("op %d could not renew its locks within their %.3g s TTL: %s"
                                % (self.op_id, self.ttl, e.details), rows=self.rows)
            except Exception as e:  # no RPC possible (a closed client): renewals are over
                lost = LockLost("op %d could not send a renewal of its locks: %r"
                                % (self.op_id, e), rows=self.rows)
            self._lose(lost)
            return

    def _lose(self, lost):
        with self._mu:
            self.lost = lost
            # Never while a commit fenced by this lock is in flight: the server's fence
            # check decides that commit, and its answer must reach the caller as is.
            if self._active and self.interrupt and not self._committing:
                self._injected = True
                _set_async_exc(self._tid, _lost_class(lost))

    def _commit_begin(self):
        """A fenced commit through this lock starts: raises the loss if known, and
        holds off the asynchronous LockLost until :meth:`_commit_end`."""
        with self._mu:
            if self.lost is not None:
                raise self.lost
            self._committing += 1

    def _commit_end(self):
        with self._mu:
            self._committing -= 1

    def fence(self):
        """The :class:`Fence` of this lock; raises its :class:`LockLost` once a
        renewal failed (so the commit is never sent). A privileged lock fences
        nothing (it holds nothing)."""
        if self.lost is not None:
            raise self.lost
        return Fence(self.op_id, [] if self.privileged else list(self.rows))

    def __exit__(self, exc_type, exc, tb):
        try:
            with self._mu:
                self._active = False
                if self._injected:
                    _set_async_exc(self._tid, None)  # drop one not yet raised
        except LockLost:
            pass  # it was raised just now: the exit below reports it
        self._stop.set()
        if self._thread:
            self._thread.join()
        if self.acquired:
            try:
                self.client.release(self.op_id, self.rows)
            except Exception:  # a StrataError, or a client closed meanwhile
                pass  # the locks expire anyway; the caller's outcome matters more
            self.acquired = False
        if self.lost is not None and exc_type is None:
            raise self.lost
        return False


class RootLock(TemporalLock):
    """PyChunkedGraph's RootLock: temporal locks on root ids (ints, rows from
    :func:`strata.keys.root`, or bytes rows), renewed in the background; see
    :class:`TemporalLock` for the options."""

    def __init__(self, client, root_ids, **kw):
        super().__init__(client, _rows_of(root_ids, keys.root), **kw)


class L2ChunkLock(TemporalLock):
    """PyChunkedGraph's L2ChunkLock: temporal locks on L2 chunks (chunk ids, rows
    from :func:`strata.keys.l2_chunk`); see :class:`TemporalLock`."""

    def __init__(self, client, chunk_ids, **kw):
        super().__init__(client, _rows_of(chunk_ids, keys.l2_chunk), **kw)


class IndefiniteLock:
    """Indefinite locks on ``rows`` for the existing op ``op_id``.

    Enter acquires them (the server records them as the op's scope in the same
    write) or raises :class:`LockHeld`; a clean exit releases them (and clears
    the scope); an exception leaves them held on purpose. ``privileged=True``
    acquires nothing and releases ``op_id``'s rows on a clean exit (operator
    recovery of a crashed op). ``wait`` as for :class:`TemporalLock`.
    """

    def __init__(self, client, rows, op_id, *, privileged=False, wait=0.0):
        if not op_id:
            raise ValueError("an indefinite lock needs the op id of an op from create_op")
        self.client = client
        self.rows = _rows_of(rows, bytes)
        self.op_id = op_id
        self.privileged = privileged
        self.wait = wait
        self.acquired = False

    def __enter__(self):
        if self.privileged:
            self.acquired = True
            return self
        r = self.client.acquire(self.op_id, self.rows, kind=LockKind.INDEFINITE, wait=self.wait)
        if not r.acquired:
            raise LockHeld("op %d could not lock %d rows indefinitely: %d held by other ops "
                           "(ops %s)" % (self.op_id, len(self.rows), len(r.conflicts),
                                         sorted({c.op_id for c in r.conflicts})),
                           holders=r.conflicts)
        self.acquired = True
        return self

    def fence(self):
        """The :class:`Fence` of this lock."""
        return Fence(self.op_id, list(self.rows))

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None or not self.acquired:
            return False  # hold the rows: the op's scope tells the operator what to recover
        self.client.release(self.op_id, self.rows, privileged=self.privileged)
        self.acquired = False
        return False


class IndefiniteL2ChunkLock(IndefiniteLock):
    """PyChunkedGraph's IndefiniteL2ChunkLock: indefinite locks on L2 chunks
    (chunk ids, rows from :func:`strata.keys.l2_chunk`) for op ``op_id``; see
    :class:`IndefiniteLock`."""

    def __init__(self, client, chunk_ids, op_id, **kw):
        super().__init__(client, _rows_of(chunk_ids, keys.l2_chunk), op_id, **kw)
