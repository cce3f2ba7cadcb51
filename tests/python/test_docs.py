"""docs/python.md's examples run as written (every ```python block, in order, in one
script) against a fresh server."""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def test_docs_python_md_example_runs(own_server):
    text = open(os.path.join(ROOT, "docs", "python.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2, "docs/python.md lost its examples"
    env = dict(os.environ, STRATA_ADDR=own_server.addr)
    r = subprocess.run([sys.executable, "-c", "\n".join(blocks)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
