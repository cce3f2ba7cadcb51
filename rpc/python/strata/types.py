"""The values the client returns and takes: versions, reads, locks, ops, conditions.

Plain frozen dataclasses converted from the protobuf messages, so callers never
handle generated code.
"""
import datetime as _dt
import enum
import hashlib
from dataclasses import dataclass, field
from typing import List, Optional

from .v1 import kv_pb2, locks_pb2, ops_pb2

__all__ = ["Version", "Read", "Change", "WatchEvent", "LockKind", "LockInfo", "AcquireResult",
           "CheckResult", "OpStatus", "Op", "Condition", "Fence", "absent", "unchanged_since",
           "value_hash", "DataRef", "Writer", "WriterInfo"]


def _time(ns):
    return _dt.datetime.fromtimestamp(ns // 10**9, _dt.timezone.utc) + \
        _dt.timedelta(microseconds=(ns % 10**9) // 1000)


@dataclass(frozen=True)
class Version:
    """A committed version: ``generation`` (1 for the first commit) and
    ``commit_time_ns`` (server clock, ns since the Unix epoch).

    ``fence_expired_in_flight`` is set only on the version a fenced commit returns
    (and does not take part in comparisons): a temporal lock of the fence reached
    its expiry while the commit was made durable. The commit is valid (the rows
    stayed the op's until it was decided), but the lock has expired: re-acquire
    before the next commit (a renewing lock from :mod:`strata.locks` finds out at
    its next renewal and raises :class:`strata.LockLost`)."""
    generation: int
    commit_time_ns: int
    fence_expired_in_flight: bool = field(default=False, compare=False, repr=False)

    @property
    def commit_time(self):
        """The commit time as an aware UTC datetime (microsecond precision)."""
        return _time(self.commit_time_ns)

    @classmethod
    def _of(cls, m):
        return cls(m.generation, m.commit_time_ns)


@dataclass(frozen=True)
class Read:
    """One key read at ``version``: ``value`` is ``None`` when the key does not exist
    (or, for keys-only listings, ``b""``)."""
    key: bytes
    value: Optional[bytes]
    version: Version

    @property
    def found(self):
        """True when the key exists at the version read."""
        return self.value is not None


@dataclass(frozen=True)
class Change:
    """One key a commit changed: written, or ``deleted``."""
    key: bytes
    deleted: bool


@dataclass(frozen=True)
class WatchEvent:
    """Every change one generation made under the watched prefix, in key order."""
    version: Version
    changes: List[Change]


class LockKind(enum.IntEnum):
    """TEMPORAL (expires after its TTL) or INDEFINITE (held until released)."""
    TEMPORAL = locks_pb2.LOCK_KIND_TEMPORAL
    INDEFINITE = locks_pb2.LOCK_KIND_INDEFINITE


@dataclass(frozen=True)
class LockInfo:
    """A held lock: ``row``, ``kind``, holder ``op_id``, ``acquired_at_ns``,
    ``expires_at_ns`` (0 for indefinite) and ``fencing_token`` (0 in conflicts)."""
    row: bytes
    kind: LockKind
    op_id: int
    acquired_at_ns: int
    expires_at_ns: int
    fencing_token: int = 0

    @classmethod
    def _of(cls, m):
        return cls(m.row, LockKind(m.kind), m.op_id, m.acquired_at_ns, m.expires_at_ns,
                   m.fencing_token)


@dataclass(frozen=True)
class AcquireResult:
    """Locks.Acquire's answer. ``acquired`` with a ``fencing_token`` and (temporal)
    ``expires_at_ns``; or not, with the ``conflicts`` (a :class:`LockInfo` per row
    another op holds). A refusal is a result, not an exception."""
    acquired: bool
    fencing_token: int = 0
    expires_at_ns: int = 0
    conflicts: List[LockInfo] = field(default_factory=list)

    def __bool__(self):
        return self.acquired


@dataclass(frozen=True)
class CheckResult:
    """Locks.Check's answer: ``all_held``, and the ``missing`` rows in request order."""
    all_held: bool
    missing: List[bytes]

    def __bool__(self):
        return self.all_held


class OpStatus(enum.IntEnum):
    """An op's status, as PyChunkedGraph's operation log uses them."""
    CREATED = ops_pb2.OP_STATUS_CREATED
    WRITE_STARTED = ops_pb2.OP_STATUS_WRITE_STARTED
    SUCCESS = ops_pb2.OP_STATUS_SUCCESS
    EXCEPTION = ops_pb2.OP_STATUS_EXCEPTION
    WRITE_FAILED = ops_pb2.OP_STATUS_WRITE_FAILED


@dataclass(frozen=True)
class Op:
    """An op-log row: ``op_id``, ``created_at_ns``, ``start_generation`` (the latest
    generation when it was created), ``user``, ``kind``, ``payload``, ``status``,
    ``scope`` (rows it holds indefinitely), ``updated_at_ns`` and ``reason`` (why
    the status was last set; "" when no reason was given)."""
    op_id: int
    created_at_ns: int
    start_generation: int
    user: str
    kind: str
    payload: bytes
    status: OpStatus
    scope: List[bytes]
    updated_at_ns: int
    reason: str = ""

    @classmethod
    def _of(cls, m):
        return cls(m.op_id, m.created_at_ns, m.start_generation, m.user, m.kind, m.payload,
                   OpStatus(m.status), list(m.scope), m.updated_at_ns, m.reason)


@dataclass(frozen=True)
class Condition:
    """A commit condition; build one with :func:`absent`, :func:`unchanged_since`
    or :func:`value_hash`."""
    key: bytes
    kind: int
    generation: int = 0
    hash: bytes = b""

    def _pb(self):
        return kv_pb2.Condition(key=self.key, kind=self.kind, generation=self.generation,
                                value_hash=self.hash)


def absent(key):
    """Condition: ``key`` does not exist at commit time."""
    return Condition(bytes(key), kv_pb2.Condition.KIND_ABSENT)


def unchanged_since(key, generation):
    """Condition: no commit after ``generation`` (an int or a :class:`Version`)
    wrote or deleted ``key``."""
    g = generation.generation if isinstance(generation, Version) else int(generation)
    return Condition(bytes(key), kv_pb2.Condition.KIND_UNCHANGED_SINCE, generation=g)


def value_hash(key, value=None, *, digest=None):
    """Condition: ``key`` exists and its value is ``value`` (compared by its
    BLAKE2b-256 hash; or pass the 32-byte ``digest`` directly)."""
    if digest is None:
        digest = hashlib.blake2b(bytes(value), digest_size=32).digest()
    return Condition(bytes(key), kv_pb2.Condition.KIND_VALUE_HASH, hash=bytes(digest))


@dataclass(frozen=True)
class Fence:
    """A commit fence: the commit applies only while ``op_id`` holds every row.
    Locks from :mod:`strata.locks` are fences too (``commit(..., fence=lock)``)."""
    op_id: int
    rows: List[bytes]

    def fence(self):
        """This fence (the protocol every fence-like object follows)."""
        return self


@dataclass(frozen=True)
class DataRef:
    """A put's value by reference (coordinator mode, docs/protocol.md "Coordinator"):
    ``length`` bytes at ``offset`` of ``path`` (relative to the store directory,
    under a registered writer's prefix and registered with
    :meth:`strata.Client.register_file`). ``crc32c``, when not ``None``, is the
    CRC-32C of the range, checked by the server before the commit applies
    (:class:`strata.DataLoss` on a mismatch). Pass it as a value in
    ``client.commit({key: DataRef(...)}, writer_id=w)``."""
    path: str
    offset: int
    length: int
    crc32c: Optional[int] = None

    def _pb(self):
        m = kv_pb2.DataRef(path=self.path, offset=self.offset, length=self.length)
        if self.crc32c is not None:
            m.has_crc32c = True
            m.crc32c = self.crc32c
        return m


@dataclass(frozen=True)
class Writer:
    """A registered coordinator-mode writer, from
    :meth:`strata.Client.register_writer`: ``writer_id`` (never reused),
    ``lease_expires_ns`` (server clock), ``prefix`` (the path prefix, relative to
    the store directory, under which only this writer creates files) and
    ``store_dir`` (the store directory on the server's host)."""
    writer_id: int
    lease_expires_ns: int
    prefix: str
    store_dir: str


@dataclass(frozen=True)
class WriterInfo:
    """One writer of :meth:`strata.Client.writers`: ``writer_id``, ``name``,
    ``registered_ns``, ``lease_expires_ns``, ``live`` (False once its lease ended or
    it unregistered), ``files_registered``, ``bytes_committed`` (by reference),
    ``last_commit_generation`` (0: none) and ``prefix``."""
    writer_id: int
    name: str
    registered_ns: int
    lease_expires_ns: int
    live: bool
    files_registered: int
    bytes_committed: int
    last_commit_generation: int
    prefix: str

    @classmethod
    def _of(cls, m):
        return cls(m.writer_id, m.name, m.registered_ns, m.lease_expires_ns, m.live,
                   m.files_registered, m.bytes_committed, m.last_commit_generation, m.prefix)
