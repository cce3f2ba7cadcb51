"""strata: the Python client of the Strata storage server.

``strata.Client`` calls every RPC; :mod:`strata.locks` has the lock context
managers edit workers use; :mod:`strata.keys` builds PyChunkedGraph's lock row
keys; :mod:`strata.errors` the exceptions. See docs/python.md.
"""
from . import errors, keys, locks
from .client import DEFAULT_ADDR, Client, Operation, Reader
from .errors import (Aborted, AlreadyExists, Cancelled, ConditionFailed, DataLoss, DeadlineExceeded,
                     FailedPrecondition, FenceLost, Internal, InvalidArgument, LockHeld, LockLost,
                     NotFound, OutOfRange, PermissionDenied, RenewRefused, ResourceExhausted,
                     StrataError, Unauthenticated, Unavailable, Unimplemented)
from .locks import (IndefiniteL2ChunkLock, IndefiniteLock, L2ChunkLock, RootLock, TemporalLock)
from .pins import Generation
from .types import (AcquireResult, Change, CheckResult, Condition, DataRef, Fence, LockInfo,
                    LockKind, Op, OpStatus, Read, Version, WatchEvent, Writer, WriterInfo,
                    absent, unchanged_since, value_hash)

__version__ = "0.1"

__all__ = [
    "Client", "Operation", "Reader", "DEFAULT_ADDR", "Generation",
    "errors", "keys", "locks",
    "StrataError", "InvalidArgument", "NotFound", "OutOfRange", "AlreadyExists",
    "ResourceExhausted", "Aborted", "Unimplemented", "Unavailable", "DeadlineExceeded",
    "Cancelled", "DataLoss", "Internal", "PermissionDenied", "Unauthenticated", "FailedPrecondition",
    "ConditionFailed", "FenceLost", "LockLost", "RenewRefused", "LockHeld",
    "TemporalLock", "RootLock", "L2ChunkLock", "IndefiniteLock", "IndefiniteL2ChunkLock",
    "Version", "Read", "Change", "WatchEvent", "LockKind", "LockInfo", "AcquireResult",
    "CheckResult", "OpStatus", "Op", "Condition", "Fence", "absent", "unchanged_since",
    "value_hash", "DataRef", "Writer", "WriterInfo",
]
