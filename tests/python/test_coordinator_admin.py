"""Coordinator (writer registry, commits by reference) and Admin (Gc, Check,
Retention) through strata.Client, against a server of the test's own."""
import os

import pytest

import strata


def crc32c(data):
    """CRC-32C (Castagnoli, reflected 0x82F63B78), bit by bit: the test's own reference."""
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_crc32c_reference():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value


def write_file(w, name, data):
    path = w.prefix + name
    with open(os.path.join(w.store_dir, path), "xb") as f:  # created new, as the protocol asks
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return path


def test_writer_lifecycle_and_commit_by_reference(own_server):
    with strata.Client(own_server.addr, timeout=60) as c:
        w = c.register_writer("pytest/ingest", lease_ttl=60)
        assert w.writer_id > 0 and w.prefix.startswith("d/w") and os.path.isabs(w.store_dir)
        assert w.lease_expires_ns > 0
        data = b"header|" + b"value-one" + b"value-two"
        path = write_file(w, "part-0", data)
        assert c.register_file(w.writer_id, path) == len(data)
        one, two = 7, 16
        v = c.commit({b"ref/1": strata.DataRef(path, one, 9, crc32c=crc32c(data[one:one + 9])),
                      b"ref/2": strata.DataRef(path, two, 9),
                      b"plain": b"by value"}, writer_id=w.writer_id)
        assert [r.value for r in c.batch_get([b"ref/1", b"ref/2", b"plain"], at=v)] == \
            [b"value-one", b"value-two", b"by value"]
        # A wrong checksum, a range past the end: refused, nothing written.
        with pytest.raises(strata.DataLoss):
            c.commit({b"ref/bad": strata.DataRef(path, one, 9, crc32c=crc32c(b"other"))},
                     writer_id=w.writer_id)
        with pytest.raises(strata.OutOfRange):
            c.commit({b"ref/bad": strata.DataRef(path, 0, len(data) + 1)}, writer_id=w.writer_id)
        with pytest.raises(strata.InvalidArgument):
            c.commit({b"ref/bad": strata.DataRef(path, 0, 1)})  # no writer_id
        assert c.get(b"ref/bad").value is None

        info = {x.writer_id: x for x in c.writers()}[w.writer_id]
        assert info.live and info.name == "pytest/ingest" and info.prefix == w.prefix
        assert info.files_registered == 1 and info.bytes_committed == 18
        assert info.last_commit_generation == v.generation
        assert c.renew_writer(w.writer_id, 120) > w.lease_expires_ns
        assert c.renew_writer(w.writer_id) > 0  # the registered TTL
        with pytest.raises(strata.NotFound):
            c.renew_writer(w.writer_id + 1000)

        # A file nobody references, left by the writer: GC removes it once the lease ended.
        orphan = write_file(w, "orphan", b"never committed")
        c.register_file(w.writer_id, orphan)
        c.unregister_writer(w.writer_id)
        assert w.writer_id not in [x.writer_id for x in c.writers()]
        ended = {x.writer_id: x for x in c.writers(include_expired=True)}[w.writer_id]
        assert not ended.live
        with pytest.raises(strata.FailedPrecondition):
            c.renew_writer(w.writer_id)
        with pytest.raises(strata.FailedPrecondition) as ei:
            c.commit({b"ref/late": strata.DataRef(path, 0, 1)}, writer_id=w.writer_id)
        assert ei.value.code == "STRATA_EEXPIRED"

        dry = c.gc(dry_run=True)
        assert orphan in list(dry.paths) and path not in list(dry.paths)
        assert os.path.exists(os.path.join(w.store_dir, orphan))
        done = c.gc()
        assert orphan in list(done.paths) and done.files_kept >= 1
        assert not os.path.exists(os.path.join(w.store_dir, orphan))
        assert c.get(b"ref/2").value == b"value-two"  # referenced: kept

        chk = c.check_store()
        assert chk.errors_total == 0 and list(chk.errors) == []
        assert chk.versions_checked >= 1 and chk.missing_files == 0


def test_retention_policy_and_holds(own_server):
    with strata.Client(own_server.addr, timeout=60) as c:
        gens = [c.put(b"r/k", b"%d" % i).generation for i in range(5)]
        r = c.retention()
        assert r.policy == "keep-all" and list(r.holds) == []
        assert r.retained.latest_generation == gens[-1]
        r = c.retention(hold=gens[1], reason="pytest audit")
        assert [(h.generation, h.reason) for h in r.holds] == [(gens[1], "pytest audit")]
        r = c.retention(keep_versions=2)
        assert r.policy == "keep-versions" and r.keep_versions == 2
        r = c.retention(keep_for=3600)
        assert r.policy == "keep-for" and r.keep_for_ns == 3600 * 10**9
        with pytest.raises(strata.NotFound):
            c.retention(release=gens[2])  # no hold there
        with pytest.raises(strata.OutOfRange):
            c.retention(hold=gens[-1] + 100)
        r = c.retention(release=gens[1])
        assert list(r.holds) == []
        assert c.retention(keep_all=True).policy == "keep-all"
        with pytest.raises(ValueError):
            c.retention(keep_versions=2, hold=gens[0])
