"""Version pins: which committed version of the store a read sees.

``at=None`` (or ``"latest"``) reads the newest generation;
``at=Generation(12)`` exactly generation 12; ``at=datetime`` or an ISO-8601
string (``"2026-11-21T10:00:00Z"``, up to nanosecond digits) the newest
generation committed at or before that instant; a :class:`strata.Version`
pins its generation.
"""
import datetime as _dt
import re

from .v1 import common_pb2

__all__ = ["Generation", "to_pin", "parse_time_ns"]


class Generation(int):
    """A generation number used as a pin: ``client.get(key, at=Generation(12))``.

    A plain ``int`` is refused as a pin because it could mean a generation or a
    time; wrap it in ``Generation``.
    """

    def __repr__(self):
        return "Generation(%d)" % int(self)


_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2})(?:[.,](\d{1,9}))?(Z|[+-]\d{2}:?\d{2})$")


def parse_time_ns(s):
    """Nanoseconds since the Unix epoch of an ISO-8601 time with a zone
    (``Z`` or ``+HH:MM``); raises ``ValueError`` for anything else."""
    m = _ISO.match(s.strip())
    if not m:
        raise ValueError("time %r: expected ISO-8601 with a zone, e.g. 2026-11-21T10:00:00Z" % s)
    zone = m.group(3)
    base = _dt.datetime.fromisoformat(m.group(1) + ("+00:00" if zone == "Z" else zone))
    frac = (m.group(2) or "").ljust(9, "0")
    return _datetime_ns(base) + int(frac)


def _datetime_ns(d):
    if d.tzinfo is None:
        raise ValueError("datetime %r has no time zone: pass an aware datetime (UTC)" % (d,))
    delta = d - _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 10**9 + delta.microseconds * 1000


def to_pin(at):
    """The ``strata.v1.VersionPin`` message for ``at`` (see the module doc), or
    ``None`` for the latest version."""
    from .types import Version  # types imports this module
    if at is None or (isinstance(at, str) and at == "latest"):
        return None
    if isinstance(at, Generation):
        return common_pb2.VersionPin(generation=int(at))
    if isinstance(at, Version):
        return common_pb2.VersionPin(generation=at.generation)
    if isinstance(at, _dt.datetime):
        return common_pb2.VersionPin(commit_time_ns=_datetime_ns(at))
    if isinstance(at, str):
        return common_pb2.VersionPin(commit_time_ns=parse_time_ns(at))
    raise TypeError("at=%r: pass Generation(n), a datetime, an ISO-8601 string, a Version "
                    "or None" % (at,))
