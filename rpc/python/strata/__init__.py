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
                     StrataError, Unavailable, Unimplemented)
from .locks import (IndefiniteL2ChunkLock, IndefiniteLock, L2ChunkLock, RootLock, TemporalLock)
from .pins import Generation
from .types import (AcquireResult, Change, CheckResult, Condition, Fence, LockInfo, LockKind, Op,
                    OpStatus, Read, Version, WatchEvent, absent, unchanged_since, value_hash)

__version__ = "0.1"
