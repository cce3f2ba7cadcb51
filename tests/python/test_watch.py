"""client.watch: history then live, split generations joined, and reconnection
across a server restart without skipping or repeating a generation."""
import queue
import threading

import pytest

import strata

LIMIT = 120  # seconds to wait for an expected event on a loaded machine


def consume(it, events, last):
    """Puts the watch iterator's events (or the exception it raised) into the queue
    `events` from a thread of its own, until generation `last`; returns the thread."""
    def run():
        try:
            for ev in it:
                events.put(ev)
                if ev.version.generation == last:
                    return
        except Exception as e:  # the test's assertion reports it
            events.put(e)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_watch_replays_history_joins_split_generations_and_filters(client, prefix):
    start = client.latest().generation
    v1 = client.put(prefix + b"a", b"1")
    client.put(b"elsewhere/" + prefix, b"x")  # outside the prefix: skipped
    many = {prefix + b"m%05d" % i: b"" for i in range(2500)}  # > 1000 changes: several messages
    v2 = client.commit(many)
    v3 = client.delete(prefix + b"a")
    it = client.watch(prefix, from_generation=start)
    evs = [next(it) for _ in range(3)]
    it.close()
    assert [e.version for e in evs] == [v1, v2, v3]
    assert evs[0].changes == [strata.Change(prefix + b"a", False)]
    assert [c.key for c in evs[1].changes] == sorted(many)
    assert evs[2].changes == [strata.Change(prefix + b"a", True)]
    it = client.watch(prefix, from_generation=v2)  # a Version: its generation
    assert next(it).version == v3
    it.close()


def test_watch_errors_are_typed(client):
    with pytest.raises(strata.OutOfRange):
        next(client.watch(b"", from_generation=client.latest().generation + 100))


def test_watch_survives_a_server_restart_without_gaps_or_repeats(own_server):
    """Commits 1..5, watches from 0, reads two events, SIGKILLs the server and starts
    it again on the same port and data directory, commits 6..10: the iterator yields
    generations 1..10, each once, in order."""
    c = strata.Client(own_server.addr, timeout=60)
    for i in range(1, 6):
        assert c.put(b"w/%d" % i, b"v").generation == i
    events = queue.Queue()
    it = c.watch(b"w/", from_generation=0, reconnect_for=LIMIT)
    t = consume(it, events, 10)
    got = [events.get(timeout=LIMIT) for _ in range(2)]
    own_server.restart()  # kill -9 and start again while the iterator is live
    c2 = strata.Client(own_server.addr, timeout=60)
    for i in range(6, 11):
        assert c2.put(b"w/%d" % i, b"v").generation == i
    while not got or not isinstance(got[-1], strata.WatchEvent) or got[-1].version.generation < 10:
        got.append(events.get(timeout=LIMIT))
        assert isinstance(got[-1], strata.WatchEvent), got[-1]
    t.join(LIMIT)
    assert [e.version.generation for e in got] == list(range(1, 11))
    assert [e.changes for e in got] == [[strata.Change(b"w/%d" % i, False)] for i in range(1, 11)]
    c.close()
    c2.close()


def test_watch_gives_up_when_the_server_stays_away(own_server):
    c = strata.Client(own_server.addr, timeout=60)
    c.put(b"k", b"v")
    it = c.watch(b"", reconnect_for=0.5)
    assert next(it).version.generation == 1
    own_server.kill()
    with pytest.raises(strata.Unavailable):
        next(it)


def test_watch_reconnects_again_after_a_long_quiet_connection(own_server, monkeypatch):
    """reconnect_for counts time without reaching the server, not time since the first
    outage: a watch that reconnected after a restart and then received nothing for
    longer than reconnect_for still reconnects after the next restart. The watch's
    clock is the test's (strata.client's `time` patched), so no real waiting is
    needed and a slow restart cannot make it give up."""
    import time as real_time

    import strata.client as sc

    class Clock:
        now = 1000.0
        monotonic = staticmethod(lambda: Clock.now)
        sleep = staticmethod(real_time.sleep)

    monkeypatch.setattr(sc, "time", Clock)
    c = strata.Client(own_server.addr, timeout=60)
    assert c.put(b"q/1", b"v").generation == 1
    events = queue.Queue()
    consume(c.watch(b"q/", from_generation=0, reconnect_for=10), events, 2)
    assert events.get(timeout=LIMIT).version.generation == 1

    def reconnected():
        """Waits until the watch's stream is open on the restarted server."""
        with strata.Client(own_server.addr, timeout=60) as probe:
            deadline = real_time.monotonic() + LIMIT
            while probe.stats().calls_active < 2:  # this Stats call and the Watch
                assert real_time.monotonic() < deadline, "the watch did not reconnect"
                assert events.empty(), events.get()
                real_time.sleep(0.02)  # polling the server's call count

    own_server.restart()
    reconnected()
    Clock.now += 100  # a quiet connection, ten times reconnect_for
    own_server.restart()
    reconnected()
    with strata.Client(own_server.addr, timeout=60) as c2:
        assert c2.put(b"q/2", b"v").generation == 2
    ev = events.get(timeout=LIMIT)
    assert isinstance(ev, strata.WatchEvent), ev
    assert ev.version.generation == 2
    c.close()
