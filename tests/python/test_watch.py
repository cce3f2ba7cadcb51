"""client.watch: history then live, split generations joined, and reconnection
across a server restart without skipping or repeating a generation."""
import queue
import threading

import pytest

import strata

LIMIT = 120  # seconds to wait for an expected event on a loaded machine


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

    def consume(it):
        try:
            for ev in it:
                events.put(ev)
                if ev.version.generation == 10:
                    return
        except Exception as e:  # the assertion below reports it
            events.put(e)

    it = c.watch(b"w/", from_generation=0, reconnect_for=LIMIT)
    t = threading.Thread(target=consume, args=(it,), daemon=True)
    t.start()
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
