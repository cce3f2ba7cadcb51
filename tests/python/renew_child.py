"""A worker process for test_locks: holds a RootLock, waits for the parent's go
line on stdin, then makes one fenced commit and reports the outcome on stdout.

Usage: renew_child.py ADDR KEY ROW TTL_S INTERRUPT(0|1)
Prints "locked OP_ID", then after the go line one of "committed", "fence-lost",
"lock-lost" (LockLost raised outside the commit), "error TYPE".
"""
import sys

import strata

addr, key, row, ttl, interrupt = sys.argv[1:6]
client = strata.Client(addr, timeout=60)
try:
    with strata.RootLock(client, [row.encode()], user="test", kind="renew-child", ttl=float(ttl),
                         interrupt=interrupt == "1") as lock:
        print("locked", lock.op_id, flush=True)
        sys.stdin.readline()  # the parent stops us, lets the lock expire, continues us
        try:
            client.commit({key.encode(): b"written"}, fence=lock)
            print("committed", flush=True)
        except strata.FenceLost as e:
            print("fence-lost", type(e).__name__, flush=True)
            raise
except strata.FenceLost as e:
    # LockLost (a FenceLost) raised in this thread by the renew thread lands here
    # when it interrupts us before the commit is reached.
    print("lock-lost", type(e).__name__, flush=True)
except Exception as e:  # reported, so the parent's assertion shows it
    print("error", type(e).__name__, e, flush=True)
