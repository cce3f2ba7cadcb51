"""The check/report helpers the tests/stratactl scripts share: one line per check, and the
cmocka-style "[  PASSED  ] N test(s)." / "[  FAILED  ] N test(s)." lines that
tests/run-tier.sh counts; and free_port(), which the scripts that start servers share."""
import socket
import time

passed, failed = [], []


def check(cond, what, detail=""):
    if cond:
        passed.append(what)
        print("ok:", what)
    else:
        failed.append(what)
        print("FAIL:", what, detail)
    return cond


def report(t0):
    """Prints the totals since t0 (time.time()) and the failed checks; the exit status."""
    print("%d passed, %d failed in %.1fs" % (len(passed), len(failed), time.time() - t0))
    print("[  PASSED  ] %d test(s)." % len(passed))
    if failed:
        print("[  FAILED  ] %d test(s), listed below:" % len(failed))
        for f in failed:
            print("[  FAILED  ]", f)
    return 1 if failed else 0


def free_port():
    """A TCP port on 127.0.0.1 that the kernel reports free now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
