"""The package installs without the build tree: `pip install rpc/python` (into a
--target directory: Debian's pip refuses system installs) and `make install-python`
(into a DESTDIR), and each installed copy talks to a server."""
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROBE = """
import os, strata
assert strata.__file__.startswith(os.environ["EXPECT_UNDER"]), strata.__file__
c = strata.Client(os.environ["STRATA_ADDR"])
assert c.health()
v = c.put(b"installed/" + os.environ["WHO"].encode(), b"ok")
assert c.get(b"installed/" + os.environ["WHO"].encode(), at=v).value == b"ok"
print("ok")
"""


def probe(site, server, who):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=site, EXPECT_UNDER=site, STRATA_ADDR=server.addr, WHO=who)
    r = subprocess.run([sys.executable, "-c", PROBE], env=env, cwd="/", capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr


def copy_sources(tmp):
    """A copy of rpc/python and rpc/proto, so a build leaves no build/ or egg-info in
    the source tree; returns the copy of rpc/python."""
    src = os.path.join(tmp, "src", "rpc")
    shutil.copytree(os.path.join(ROOT, "rpc", "python"), os.path.join(src, "python"),
                    ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    shutil.copytree(os.path.join(ROOT, "rpc", "proto"), os.path.join(src, "proto"))
    return os.path.join(src, "python")


def test_pip_install_target(server):
    tmp = tempfile.mkdtemp(prefix="strata-pip-")
    try:
        src = os.path.dirname(copy_sources(tmp))
        site = os.path.join(tmp, "site")
        r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--target", site,
                            os.path.join(src, "python")], capture_output=True, text=True,
                           timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        assert os.path.exists(os.path.join(site, "strata", "v1", "kv_pb2_grpc.py"))
        probe(site, server, "pip")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_pip_install_into_a_venv(server):
    """docs/python.md's venv route: `python3 -m venv --system-site-packages v &&
    v/bin/pip install rpc/python` (here with --no-index: nothing is downloaded)."""
    tmp = tempfile.mkdtemp(prefix="strata-venv-")
    try:
        src = copy_sources(tmp)
        venv = os.path.join(tmp, "v")
        r = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", venv],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run([os.path.join(venv, "bin", "pip"), "install", "--no-index", src],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        r = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                            "import strata, sys; print(strata.__file__)"], env=env, cwd="/",
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        site = os.path.dirname(os.path.dirname(r.stdout.strip()))
        assert site.startswith(venv), site
        probe(site, server, "venv")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_make_install_python(server):
    tmp = tempfile.mkdtemp(prefix="strata-install-")
    try:
        r = subprocess.run(["make", "--no-print-directory", "-C", ROOT, "install-python",
                            "DESTDIR=" + tmp, "PREFIX=/usr/local", "PY_SITE=/usr/local/lib/py"],
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stdout + r.stderr
        probe(os.path.join(tmp, "usr/local/lib/py"), server, "make")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
