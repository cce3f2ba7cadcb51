"""strata.Client: one typed method per Strata RPC over Debian's grpcio.

A Client holds one gRPC channel and is safe to share between threads. Every
method converts its arguments to the protocol's messages (rpc/proto/strata/v1)
and its answer to the dataclasses in :mod:`strata.types`; every failure raises a
:class:`strata.StrataError` subclass (:mod:`strata.errors`).
"""
import math
import os
import re
import time

import grpc

from . import errors
from .errors import StrataError, from_rpc_error
from .pins import Generation, to_pin
from .types import (AcquireResult, Change, CheckResult, DataRef, Fence, LockInfo, LockKind, Op,
                    OpStatus, Read, Version, WatchEvent, Writer, WriterInfo)
from .v1 import (admin_pb2, admin_pb2_grpc, coordinator_pb2, coordinator_pb2_grpc, kv_pb2,
                 kv_pb2_grpc, locks_pb2, locks_pb2_grpc, ops_pb2, ops_pb2_grpc)

__all__ = ["Client", "Operation", "Reader", "DEFAULT_ADDR"]

#: The address used when neither ``addr`` nor ``$STRATA_ADDR`` is given.
DEFAULT_ADDR = "127.0.0.1:7420"
_MAX_MESSAGE = 64 << 20  # the server's default --max-message-bytes
_HOLDER = re.compile(r"; op (\d+) holds it")


def _ms(seconds, what):
    if seconds is None or seconds < 0:
        raise ValueError("%s: %r is not a duration in seconds >= 0" % (what, seconds))
    return int(math.ceil(seconds * 1000))  # a positive duration never rounds to 0


def _bytes(v, what):
    if isinstance(v, str):
        raise TypeError("%s: pass bytes, not str (%r): keys and rows are bytes" % (what, v))
    return bytes(v)


def _read(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise errors.InvalidArgument("%s %s: cannot read: %s" % (what, path, e.strerror)) from None


def _channel_credentials(tls, cert, key):
    """The channel credentials for Client's tls/tls_cert/tls_key, or None (plaintext)."""
    if tls is None:
        tls = os.environ.get("STRATA_TLS_CA") or None
    cert = cert or os.environ.get("STRATA_TLS_CERT") or None
    key = key or os.environ.get("STRATA_TLS_KEY") or None
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    if not tls:
        if cert or key:
            raise errors.InvalidArgument("tls_cert/tls_key without tls: give the CA file as tls=")
        return None
    if bool(cert) != bool(key):
        raise errors.InvalidArgument("tls_cert and tls_key go together: give both or neither")
    root = _read(tls, "tls") if isinstance(tls, str) else None
    return grpc.ssl_channel_credentials(
        root_certificates=root,
        private_key=_read(key, "tls_key") if key else None,
        certificate_chain=_read(cert, "tls_cert") if cert else None)


class Client:
    """A connection to a strata-server.

    ``Client(addr=None, timeout=30.0, tls=None, token=None, tls_cert=None, tls_key=None,
    max_message_bytes=64 MiB)``:
    ``addr`` defaults to ``$STRATA_ADDR``, then ``127.0.0.1:7420``; ``timeout`` is
    every call's deadline in seconds (``None``: no deadline; Watch never has one).
    ``tls`` (docs/security.md): ``None`` means ``$STRATA_TLS_CA`` when set, else
    plaintext; ``False`` plaintext; a path (``str``) to the PEM file of the CA that
    signed the server's certificate; ``True`` for TLS with the system roots; or a
    ``grpc.ChannelCredentials``. ``tls_cert`` and ``tls_key`` (default
    ``$STRATA_TLS_CERT``, ``$STRATA_TLS_KEY``) are this client's certificate and key
    files for a server that requires mutual TLS (``--tls-client-ca``).
    ``token``: the bearer token sent as ``authorization: Bearer <token>`` with every
    call (default ``$STRATA_TOKEN``); a server with ``--auth-file`` refuses calls
    without a valid one (:class:`Unauthenticated`) and calls beyond the token's role
    (:class:`PermissionDenied`). Use as a context manager or call :meth:`close`.
    """

    def __init__(self, addr=None, *, timeout=30.0, tls=None, token=None, tls_cert=None,
                 tls_key=None, max_message_bytes=_MAX_MESSAGE):
        self.addr = addr or os.environ.get("STRATA_ADDR") or DEFAULT_ADDR
        self.timeout = timeout
        opts = [("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes)]
        creds = _channel_credentials(tls, tls_cert, tls_key)
        if creds is not None:
            self._channel = grpc.secure_channel(self.addr, creds, options=opts)
        else:
            self._channel = grpc.insecure_channel(self.addr, options=opts)
        if token is None:
            token = os.environ.get("STRATA_TOKEN") or None
        self._md = (("authorization", "Bearer " + token),) if token else None
        self._kv = kv_pb2_grpc.KvStub(self._channel)
        self._locks = locks_pb2_grpc.LocksStub(self._channel)
        self._ops = ops_pb2_grpc.OpsStub(self._channel)
        self._admin = admin_pb2_grpc.AdminStub(self._channel)
        self._coord = coordinator_pb2_grpc.CoordinatorStub(self._channel)
        self._health = self._channel.unary_unary("/grpc.health.v1.Health/Check")

    def close(self):
        """Closes the channel; calls in progress are cancelled."""
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- plumbing ------------------------------------------------------------------

    def _call(self, fn, req, timeout=None, conditions=()):
        try:
            return fn(req, timeout=self.timeout if timeout is None else timeout, metadata=self._md)
        except grpc.RpcError as e:
            raise from_rpc_error(e, conditions=conditions) from None

    def _stream(self, fn, req, timeout=None):
        it = fn(req, timeout=self.timeout if timeout is None else timeout, metadata=self._md)
        try:
            for m in it:
                yield m
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        finally:
            it.cancel()  # the consumer stopped early: end the stream on the server too

    # --- Kv ------------------------------------------------------------------------

    def get(self, key, at=None):
        """Reads ``key`` at version ``at`` (see :mod:`strata.pins`); returns a
        :class:`Read` whose ``value`` is ``None`` when the key does not exist."""
        r = self._call(self._kv.Get, kv_pb2.GetRequest(key=_bytes(key, "key"), pin=to_pin(at)))
        return Read(bytes(key), r.value if r.found else None, Version._of(r.version))

    def batch_get(self, keys, at=None):
        """Reads many keys at one version (one snapshot); returns a list of
        :class:`Read` in the order of ``keys``."""
        keys = [_bytes(k, "keys") for k in keys]
        r = self._call(self._kv.BatchGet, kv_pb2.BatchGetRequest(keys=keys, pin=to_pin(at)))
        v = Version._of(r.version)
        return [Read(e.key, e.value if e.found else None, v) for e in r.entries]

    def list(self, prefix=b"", *, start=b"", end=b"", limit=0, keys_only=False, at=None,
             timeout=None):
        """Iterates the keys in ``[start, end)`` beginning with ``prefix``, in key order,
        at one version; yields :class:`Read` (``value`` is ``b""`` with
        ``keys_only``). ``limit`` 0 = no limit. The call's deadline (``timeout``,
        default the client's) covers the whole listing: raise it for huge ranges."""
        req = kv_pb2.ListRequest(start=_bytes(start, "start"), end=_bytes(end, "end"),
                                 prefix=_bytes(prefix, "prefix"), limit=limit, keys_only=keys_only,
                                 pin=to_pin(at))
        for m in self._stream(self._kv.List, req, timeout):
            v = Version._of(m.version)
            for e in m.entries:
                yield Read(e.key, e.value, v)

    def commit(self, puts=None, deletes=(), conditions=(), fence=None, timeout=None, *,
               writer_id=0):
        """Applies ``puts`` (a dict or ``(key, value)`` pairs) and ``deletes`` atomically,
        if every :class:`Condition` holds and, with ``fence``, while its op holds the
        fence's rows; returns the new :class:`Version` once durable (its
        ``fence_expired_in_flight`` tells a fenced commit that a temporal lock of the
        fence expired meanwhile).

        ``fence`` is a lock from :mod:`strata.locks`, a :class:`Fence`, or a list of
        them (one op). Raises :class:`ConditionFailed` or :class:`FenceLost` (nothing
        written). A fence through a lock whose renewal already failed raises
        :class:`LockLost` without sending anything.

        Coordinator mode: a value may be a :class:`DataRef` (bytes a registered
        writer wrote into its own file); ``writer_id`` names that writer
        (:meth:`register_writer`)."""
        if puts is None:
            puts = ()
        items = puts.items() if hasattr(puts, "items") else puts
        conditions = list(conditions)
        req = kv_pb2.CommitRequest(
            puts=[kv_pb2.Put(key=_bytes(k, "puts"), ref=v._pb()) if isinstance(v, DataRef)
                  else kv_pb2.Put(key=_bytes(k, "puts"), value=bytes(v)) for k, v in items],
            deletes=[_bytes(k, "deletes") for k in deletes],
            conditions=[c._pb() for c in conditions], writer_id=writer_id)
        f = _fence_of(fence)
        if f is not None:
            req.fence.op_id = f.op_id
            req.fence.rows.extend(f.rows)
        renewing = [p for p in _parts(fence) if hasattr(p, "_commit_begin")]
        begun = []
        try:
            for lk in renewing:
                lk._commit_begin()
                begun.append(lk)
            r = self._call(self._kv.Commit, req, timeout=timeout, conditions=conditions)
            v = Version(r.version.generation, r.version.commit_time_ns,
                        fence_expired_in_flight=r.fence_expired_in_flight)
        except errors.FenceLost as e:
            raise self._fence_lost(e, f) from None
        finally:
            for lk in begun:
                lk._commit_end()
        return v

    def _fence_lost(self, e, f):
        """Fills in which rows the op lost: the server names only the first."""
        m = _HOLDER.search(e.details)
        rows = f.rows
        try:
            rows = self.check(f.op_id, f.rows).missing or f.rows
        except StrataError:
            pass
        return errors.FenceLost(e.details, rows=rows, holder=int(m.group(1)) if m else 0,
                                status=e.status, code=e.code)

    def put(self, key, value, fence=None):
        """Writes one key (a one-put :meth:`commit`); returns the new :class:`Version`."""
        return self.commit({key: value}, fence=fence)

    def delete(self, key, fence=None):
        """Deletes one key (a one-delete :meth:`commit`); returns the new :class:`Version`."""
        return self.commit(deletes=[key], fence=fence)

    def versions(self, start=0, end=0, *, limit=0, descending=False):
        """Iterates committed :class:`Version` s from generation ``start`` to ``end``
        inclusive (0 = oldest / latest), oldest first unless ``descending``."""
        req = kv_pb2.VersionsRequest(start_generation=start, end_generation=end, limit=limit,
                                     descending=descending)
        for m in self._stream(self._kv.Versions, req):
            for v in m.versions:
                yield Version._of(v)

    def latest(self):
        """The latest committed :class:`Version` (generation 0 for an empty store)."""
        return Version._of(self._call(self._admin.Stats, admin_pb2.StatsRequest()).latest)

    def watch(self, prefix=b"", from_generation=0, *, reconnect_for=60.0):
        """Iterates :class:`WatchEvent` s: for each generation after ``from_generation``
        (an int or a :class:`Version`, e.g. ``client.latest()``) that changed a key
        under ``prefix``, every change it made, replaying history and then following
        new commits.

        When the connection fails (UNAVAILABLE: server restart, network) it
        reconnects from the last generation it yielded, so no generation is ever
        skipped or repeated. It gives up, raising :class:`Unavailable`, after
        ``reconnect_for`` seconds without reaching the server. Close the iterator
        (or drop it) to end the stream."""
        if isinstance(from_generation, Version):
            from_generation = from_generation.generation
        last = int(from_generation)
        failing_since = None
        backoff = 0.05
        while True:
            req = kv_pb2.WatchRequest(from_generation=last, prefix=_bytes(prefix, "prefix"))
            it = self._kv.Watch(req, timeout=None, metadata=self._md)
            changes = []
            try:
                for m in it:
                    failing_since, backoff = None, 0.05
                    changes.extend(Change(c.key, c.deleted) for c in m.changes)
                    if m.more:
                        continue
                    ev = WatchEvent(Version._of(m.version), changes)
                    changes = []
                    last = ev.version.generation
                    yield ev
                return
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise from_rpc_error(e) from None
                now = time.monotonic()
                if failing_since is None:
                    failing_since = now
                elif now - failing_since > reconnect_for:
                    raise from_rpc_error(e) from None
            finally:
                it.cancel()
            time.sleep(backoff)  # a back-off between reconnects, not a synchronisation
            backoff = min(backoff * 2, 1.0)
            # A Watch stream carries nothing until a generation arrives, so an open but
            # quiet stream cannot show that the server was reached: ask Health. Without
            # this, the clock of an earlier outage would still run when the next one
            # began after a long quiet connection, and the watch would give up at once.
            if self._reachable():
                failing_since = None

    # --- Locks ---------------------------------------------------------------------

    def acquire(self, op_id, rows, *, kind=LockKind.TEMPORAL, ttl=None, wait=0.0):
        """Locks ``rows`` for ``op_id``, all or nothing; returns an :class:`AcquireResult`
        (a refusal is a result with the conflicts, not an exception).

        ``kind`` TEMPORAL needs ``ttl`` (seconds); INDEFINITE needs no ttl and an op
        from :meth:`create_op`, and records the rows as the op's scope. ``wait``
        seconds to wait for conflicting locks (the call's deadline is extended to
        cover it)."""
        req = locks_pb2.AcquireRequest(op_id=op_id, rows=[_bytes(r, "rows") for r in rows],
                                       kind=int(kind), wait_ms=_ms(wait, "wait"))
        if kind == LockKind.TEMPORAL:
            req.ttl_ms = _ms(ttl, "ttl")
        timeout = None if self.timeout is None else self.timeout + wait
        r = self._call(self._locks.Acquire, req, timeout=timeout)
        return AcquireResult(r.acquired, r.fencing_token, r.expires_at_ns,
                             [LockInfo._of(c) for c in r.conflicts])

    def renew(self, op_id, rows, ttl):
        """Extends ``op_id``'s temporal locks on ``rows`` to ``ttl`` seconds from now;
        returns the new expiry (ns since the epoch, server clock). Raises
        :class:`RenewRefused` when a row is no longer held (nothing is renewed)."""
        req = locks_pb2.RenewRequest(op_id=op_id, rows=[_bytes(r, "rows") for r in rows],
                                     ttl_ms=_ms(ttl, "ttl"))
        return self._call(self._locks.Renew, req).expires_at_ns

    def release(self, op_id, rows=None, *, privileged=False):
        """Releases ``op_id``'s locks on ``rows`` (all its locks when ``rows`` is None);
        returns how many were released. ``privileged`` (operator recovery) frees the
        rows whoever holds them (``op_id`` 0) or only ``op_id``'s."""
        req = locks_pb2.ReleaseRequest(op_id=op_id, privileged=privileged)
        if rows is None:
            req.all = True
        else:
            req.rows.extend(_bytes(r, "rows") for r in rows)
        return self._call(self._locks.Release, req).released

    def locks(self, *, op_id=0, kind=None, prefix=b"", expired_only=False):
        """Iterates held locks (:class:`LockInfo`) in row order, optionally only
        ``op_id``'s, one ``kind``'s, under ``prefix``, or expired-but-recorded."""
        req = locks_pb2.ListLocksRequest(op_id=op_id, kind=int(kind or 0),
                                         prefix=_bytes(prefix, "prefix"), expired_only=expired_only)
        for m in self._stream(self._locks.List, req):
            for li in m.locks:
                yield LockInfo._of(li)

    def check(self, op_id, rows):
        """Whether ``op_id`` holds every row unexpired; a :class:`CheckResult`."""
        r = self._call(self._locks.Check, locks_pb2.CheckRequest(
            op_id=op_id, rows=[_bytes(x, "rows") for x in rows]))
        return CheckResult(r.all_held, list(r.missing))

    # --- Ops -----------------------------------------------------------------------

    def create_op(self, user, kind, payload=b""):
        """Records a new op (status CREATED) and returns it as an :class:`Op`."""
        r = self._call(self._ops.Create, ops_pb2.CreateOpRequest(user=user, kind=kind,
                                                                 payload=bytes(payload)))
        return Op._of(r.op)

    def get_op(self, op_id):
        """The :class:`Op` ``op_id`` (with its scope); :class:`NotFound` if none."""
        return Op._of(self._call(self._ops.Get, ops_pb2.GetOpRequest(op_id=op_id)).op)

    def set_status(self, op_id, status, reason=""):
        """Sets an op's :class:`OpStatus`, with an optional ``reason`` kept on the op
        until the next change (an operator's note on a recovered op); returns the op
        after the change."""
        r = self._call(self._ops.SetStatus, ops_pb2.SetStatusRequest(
            op_id=op_id, status=int(status), reason=reason))
        return Op._of(r.op)

    def ops(self, status=None, *, newest_first=False, after=0, before=0, limit=0):
        """Iterates ops (:class:`Op`) in id order (descending with ``newest_first``),
        optionally of one ``status``, with ids > ``after`` (ascending) or < ``before``
        (descending), at most ``limit`` (0 = all)."""
        req = ops_pb2.ListOpsRequest(status=int(status or 0), newest_first=newest_first,
                                     after_op_id=after, before_op_id=before, limit=limit)
        for m in self._stream(self._ops.List, req):
            for o in m.ops:
                yield Op._of(o)

    def stuck_ops(self, min_age=0.0):
        """Iterates ops that hold a lock scope but did not succeed and are at least
        ``min_age`` seconds old, oldest first."""
        req = ops_pb2.ListStuckRequest(min_age_ms=_ms(min_age, "min_age"))
        for m in self._stream(self._ops.ListStuck, req):
            for o in m.ops:
                yield Op._of(o)

    def allocate_ids(self, counter, count):
        """Allocates ``count`` ids from the durable counter ``counter``; returns the
        ``range`` of them, never handed out again."""
        r = self._call(self._ops.AllocateIds, ops_pb2.AllocateIdsRequest(counter=counter,
                                                                          count=count))
        return range(r.first, r.first + r.count)

    def op(self, user, kind, payload=b""):
        """Creates an op and returns an :class:`Operation` (its id, base generation
        and a reader pinned at it)."""
        return Operation(self, self.create_op(user, kind, payload))

    # --- Coordinator ---------------------------------------------------------------

    def register_writer(self, name, lease_ttl=60.0):
        """Coordinator.RegisterWriter: registers a bulk-ingest writer whose lease lasts
        ``lease_ttl`` seconds without a renewal (1 s .. 1 day); returns a
        :class:`Writer` (its id, lease end, file prefix and the store directory)."""
        r = self._call(self._coord.RegisterWriter, coordinator_pb2.RegisterWriterRequest(
            name=name, lease_ttl_ms=_ms(lease_ttl, "lease_ttl")))
        return Writer(r.writer_id, r.lease_expires_ns, r.prefix, r.store_dir)

    def renew_writer(self, writer_id, lease_ttl=None):
        """Coordinator.RenewWriter: extends the writer's lease to ``lease_ttl`` seconds
        from now (``None``: its registered TTL); returns the new lease end (ns since
        the epoch, server clock). An ended lease raises :class:`FailedPrecondition`,
        an unknown id :class:`NotFound`."""
        ttl = 0 if lease_ttl is None else _ms(lease_ttl, "lease_ttl")
        r = self._call(self._coord.RenewWriter, coordinator_pb2.RenewWriterRequest(
            writer_id=writer_id, lease_ttl_ms=ttl))
        return r.lease_expires_ns

    def unregister_writer(self, writer_id):
        """Coordinator.UnregisterWriter: ends the writer's lease now (its files that
        no version references are GC's from then on)."""
        self._call(self._coord.UnregisterWriter,
                   coordinator_pb2.UnregisterWriterRequest(writer_id=writer_id))

    def register_file(self, writer_id, path):
        """Coordinator.RegisterFile: registers ``path`` (relative to the store
        directory, under the writer's prefix; written and fsynced) as the writer's;
        returns its size as the server sees it."""
        r = self._call(self._coord.RegisterFile, coordinator_pb2.RegisterFileRequest(
            writer_id=writer_id, path=path))
        return r.size

    def writers(self, include_expired=False):
        """Coordinator.ListWriters: the live writers (and, with ``include_expired``,
        ended ones not yet collected by GC) as a list of :class:`WriterInfo`."""
        r = self._call(self._coord.ListWriters, coordinator_pb2.ListWritersRequest(
            include_expired=include_expired))
        return [WriterInfo._of(w) for w in r.writers]

    # --- Admin, Health -------------------------------------------------------------

    def stats(self):
        """Admin.Stats: the server's ``strata.v1.StatsResponse`` message (fields in
        rpc/proto/strata/v1/admin.proto)."""
        return self._call(self._admin.Stats, admin_pb2.StatsRequest())

    def gc(self, dry_run=False):
        """Admin.Gc: removes unreferenced files of ended writers and Strata's own
        unreferenced files past the grace period (with ``dry_run`` only reports);
        returns the ``strata.v1.GcResponse`` message. Operator role."""
        return self._call(self._admin.Gc, admin_pb2.GcRequest(dry_run=dry_run))

    def check_store(self, timeout=None):
        """Admin.Check: verifies every retained version from its root down and lists
        unreferenced and missing files; returns the ``strata.v1.CheckStoreResponse``
        message (``errors_total`` 0 means a sound store). Operator role. ``timeout``
        (default the client's) bounds the whole check: raise it for a large store."""
        return self._call(self._admin.Check, admin_pb2.CheckStoreRequest(), timeout=timeout)

    def retention(self, *, keep_versions=None, keep_for=None, keep_all=False, hold=None,
                  release=None, reason=""):
        """Admin.Retention: with no argument shows the policy; otherwise does exactly
        one of: ``keep_versions=N`` (the newest N versions), ``keep_for=seconds``,
        ``keep_all=True`` (the default policy), ``hold=generation`` (never drop it;
        with ``reason``), ``release=generation`` (remove that hold). Returns the
        ``strata.v1.RetentionResponse`` message (policy, holds, retained range).
        Operator role; changes are durable when it returns."""
        acts = {k: v for k, v in (("keep_versions", keep_versions), ("keep_for", keep_for),
                                  ("hold", hold), ("release", release)) if v is not None}
        if keep_all:
            acts["keep_all"] = True
        if len(acts) > 1:
            raise ValueError("retention: one action at a time, got %s" % sorted(acts))
        req = admin_pb2.RetentionRequest(reason=reason)
        if not acts:
            req.show = True
        elif "keep_for" in acts:
            if keep_for <= 0:
                raise ValueError("retention: keep_for=%r is not a duration > 0 s" % (keep_for,))
            req.keep_for_ns = int(round(keep_for * 1e9))
        else:
            (k, v), = acts.items()
            setattr(req, k, v)
        return self._call(self._admin.Retention, req)

    def _reachable(self):
        """Whether the server answers a call now (any answer but UNAVAILABLE or a
        passed deadline)."""
        try:
            self.health()
            return True
        except (errors.Unavailable, errors.DeadlineExceeded):
            return False
        except StrataError:
            return True

    def health(self, service=""):
        """grpc.health.v1 Check: True when ``service`` ("" = the server) is SERVING.
        Raises :class:`NotFound` for an unknown service."""
        s = service.encode()
        req = (b"\x0a" + _varint(len(s)) + s) if s else b""
        resp = self._call(self._health, req)
        return resp == b"\x08\x01"  # field 1 (status) = SERVING


def _varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _parts(fence):
    if fence is None:
        return []
    return list(fence) if isinstance(fence, (list, tuple)) else [fence]


def _fence_of(fence):
    """One :class:`Fence` from a lock, a Fence, or a list of them (all one op);
    None when nothing is left to fence (privileged locks hold no rows)."""
    parts = _parts(fence)
    fs = [f for p, f in zip(parts, [p.fence() for p in parts]) if f.rows or isinstance(p, Fence)]
    if not fs:
        return None
    ops = {f.op_id for f in fs}
    if len(ops) != 1:
        raise ValueError("fence: every lock of one fence must belong to one op, got ops %s"
                         % sorted(ops))
    rows = []
    for f in fs:
        rows.extend(r for r in f.rows if r not in rows)
    return Fence(ops.pop(), rows)


class Reader:
    """Reads pinned at one generation (``at``): get, batch_get and list, all
    seeing one snapshot. Generation 0 is the empty store."""

    def __init__(self, client, generation):
        self.client = client
        self.generation = int(generation)

    def get(self, key):
        """:meth:`Client.get` at this reader's generation."""
        if self.generation == 0:
            return Read(bytes(key), None, Version(0, 0))
        return self.client.get(key, at=Generation(self.generation))

    def batch_get(self, keys):
        """:meth:`Client.batch_get` at this reader's generation."""
        if self.generation == 0:
            return [Read(bytes(k), None, Version(0, 0)) for k in keys]
        return self.client.batch_get(keys, at=Generation(self.generation))

    def list(self, prefix=b"", **kw):
        """:meth:`Client.list` at this reader's generation."""
        if self.generation == 0:
            return iter(())
        return self.client.list(prefix, at=Generation(self.generation), **kw)


class Operation:
    """An op in the op log, from :meth:`Client.op`.

    ``op_id``; ``base_generation``, the latest generation when the op was created;
    ``reader``, a :class:`Reader` pinned there (the state before the op). As a
    context manager it records the outcome: SUCCESS on a clean exit (unless a
    status was set), EXCEPTION on an exception (WRITE_FAILED if the status was
    WRITE_STARTED).
    """

    def __init__(self, client, op):
        self.client = client
        self.op = op
        self.op_id = op.op_id
        self.base_generation = op.start_generation
        self.reader = Reader(client, op.start_generation)
        self.status = op.status

    def set_status(self, status, reason=""):
        """Sets the op's status (e.g. ``OpStatus.WRITE_STARTED`` before writing),
        with an optional ``reason``."""
        self.op = self.client.set_status(self.op_id, status, reason)
        self.status = self.op.status
        return self.op

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            if self.status in (OpStatus.CREATED, OpStatus.WRITE_STARTED):
                self.set_status(OpStatus.SUCCESS)
            return False
        try:
            self.set_status(OpStatus.WRITE_FAILED if self.status == OpStatus.WRITE_STARTED
                            else OpStatus.EXCEPTION)
        except StrataError:
            pass  # the original exception matters more
        return False
