"""Exceptions raised by the strata package.

Every failed call raises a subclass of :class:`StrataError`. The class comes from
the server's ``strata-error`` trailer (the exact Strata code, e.g.
``STRATA_EFENCED``) when present, else from the gRPC status alone, so callers can
catch what they mean (``except strata.FenceLost``) without parsing messages.
"""
import re

import grpc


class StrataError(Exception):
    """Base of every error this package raises.

    Attributes: ``status`` (a ``grpc.StatusCode``), ``code`` (the Strata code the
    server named in its ``strata-error`` trailer, e.g. ``"STRATA_EFENCED"``, or
    ``None`` when it sent none) and ``details`` (the server's message).
    """

    status = grpc.StatusCode.UNKNOWN

    def __init__(self, details="", *, status=None, code=None):
        super().__init__(details)
        self.details = details
        if status is not None:
            self.status = status
        self.code = code


class InvalidArgument(StrataError):
    """The request was malformed (INVALID_ARGUMENT); the message names the field."""
    status = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(StrataError):
    """A pinned generation, op id or commit time is not there (NOT_FOUND)."""
    status = grpc.StatusCode.NOT_FOUND


class OutOfRange(StrataError):
    """A pinned or watched generation is newer than the latest (OUT_OF_RANGE)."""
    status = grpc.StatusCode.OUT_OF_RANGE


class AlreadyExists(StrataError):
    """ALREADY_EXISTS."""
    status = grpc.StatusCode.ALREADY_EXISTS


class ResourceExhausted(StrataError):
    """A message above the size limit, or the server is out of memory or disk."""
    status = grpc.StatusCode.RESOURCE_EXHAUSTED


class Aborted(StrataError):
    """The server was busy (ABORTED): retry."""
    status = grpc.StatusCode.ABORTED


class Unimplemented(StrataError):
    """The server does not know the method (UNIMPLEMENTED)."""
    status = grpc.StatusCode.UNIMPLEMENTED


class Unavailable(StrataError):
    """The server cannot be reached or is shutting down (UNAVAILABLE): retry later."""
    status = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(StrataError):
    """The call's deadline passed (DEADLINE_EXCEEDED). A commit may still have applied."""
    status = grpc.StatusCode.DEADLINE_EXCEEDED


class Cancelled(StrataError):
    """The call was cancelled (CANCELLED)."""
    status = grpc.StatusCode.CANCELLED


class DataLoss(StrataError):
    """The server found corrupt data on disk (DATA_LOSS)."""
    status = grpc.StatusCode.DATA_LOSS


class Internal(StrataError):
    """An I/O or internal server error (INTERNAL)."""
    status = grpc.StatusCode.INTERNAL


class PermissionDenied(StrataError):
    """PERMISSION_DENIED."""
    status = grpc.StatusCode.PERMISSION_DENIED


class Unauthenticated(StrataError):
    """UNAUTHENTICATED: the call carried no valid token (docs/security.md)."""
    status = grpc.StatusCode.UNAUTHENTICATED


class FailedPrecondition(StrataError):
    """FAILED_PRECONDITION without a more specific class (e.g. a configuration mismatch)."""
    status = grpc.StatusCode.FAILED_PRECONDITION


class ConditionFailed(FailedPrecondition):
    """A commit condition did not hold; nothing was written.

    ``condition`` is the :class:`strata.Condition` from the request that failed
    (``None`` if the server named an index the request did not have) and ``key``
    its key.
    """

    def __init__(self, details="", *, key=None, condition=None, **kw):
        super().__init__(details, **kw)
        self.key = key
        self.condition = condition


class FenceLost(FailedPrecondition):
    """A fenced commit was refused: its op no longer holds ``rows``; nothing was written.

    ``rows`` are the fence rows the op does not hold (as far as the client could
    tell), ``holder`` the op id that holds the first of them now (0 when free).
    Re-acquire the locks and redo the work from a fresh read.
    """

    def __init__(self, details="", *, rows=(), holder=0, **kw):
        super().__init__(details, **kw)
        self.rows = list(rows)
        self.holder = holder


class LockLost(FenceLost):
    """A lock's renewal failed: its rows expired or went to another op.

    Raised in the worker's thread by :class:`strata.RootLock` (and the other
    renewing locks) so the worker stops before it writes, and by a fenced commit
    through such a lock. A subclass of :class:`FenceLost`: catching ``FenceLost``
    covers both ways a worker learns it lost its locks.
    """


class RenewRefused(FailedPrecondition):
    """Locks.Renew refused: a row is no longer held by the op (released, expired,
    or held by another op); nothing was renewed."""


class LockHeld(StrataError):
    """Acquiring locks was refused because other ops hold rows.

    Not a server error (Acquire answers OK with the conflicts): the lock context
    managers raise it. ``holders`` is the list of :class:`strata.LockInfo` of the
    conflicting rows (holder op, kind, expiry).
    """

    status = grpc.StatusCode.OK

    def __init__(self, details="", *, holders=(), **kw):
        super().__init__(details, **kw)
        self.holders = list(holders)


_BY_STATUS = {c.status: c for c in (
    InvalidArgument, NotFound, OutOfRange, AlreadyExists, ResourceExhausted, Aborted,
    Unimplemented, Unavailable, DeadlineExceeded, Cancelled, DataLoss, Internal,
    PermissionDenied, Unauthenticated, FailedPrecondition)}

_BY_CODE = {
    "STRATA_ECONDITION": ConditionFailed,
    "STRATA_EFENCED": FenceLost,
    "STRATA_ELOCKED": RenewRefused,
    "STRATA_EEXPIRED": RenewRefused,
}

_CONDITION_INDEX = re.compile(r"conditions\[(\d+)\]")


def trailer_code(err):
    """The ``strata-error`` trailer of a ``grpc.RpcError``, or ``None``."""
    try:
        md = err.trailing_metadata() or ()
    except Exception:  # a locally generated error may carry none
        return None
    for k, v in md:
        if k == "strata-error":
            return v.decode() if isinstance(v, bytes) else v
    return None


def from_rpc_error(err, *, conditions=()):
    """The :class:`StrataError` for a ``grpc.RpcError``.

    ``conditions`` are the request's conditions, so a :class:`ConditionFailed`
    can name the one the server reported (by index). A fence refusal's rows are
    filled in by the client, which knows the fence.
    """
    status = err.code()
    details = err.details() or ""
    code = trailer_code(err)
    cls = _BY_CODE.get(code) or _BY_STATUS.get(status, StrataError)
    if cls is ConditionFailed:
        m = _CONDITION_INDEX.search(details)
        cond = None
        if m and int(m.group(1)) < len(conditions):
            cond = conditions[int(m.group(1))]
        return ConditionFailed(details, key=cond.key if cond else None, condition=cond,
                               status=status, code=code)
    return cls(details, status=status, code=code)
