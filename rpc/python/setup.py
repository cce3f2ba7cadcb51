"""pip install rpc/python: the strata package, with its protocol modules generated
at build time from ../proto by Debian's grpc_tools (python3-grpc-tools), exactly as
`make` generates them into build/python. No pyproject.toml on purpose: pip then
builds with the system's setuptools and grpc_tools instead of downloading a build
environment.
"""
import os
import subprocess
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO = os.path.join(HERE, "..", "proto")


class build_with_protos(build_py):
    """build_py that also writes strata/v1/*_pb2{,_grpc}.py into the build directory."""

    def run(self):
        super().run()
        out = os.path.abspath(self.build_lib)
        v1 = os.path.join(PROTO, "strata", "v1")
        protos = sorted(os.path.join(v1, f) for f in os.listdir(v1) if f.endswith(".proto"))
        os.makedirs(os.path.join(out, "strata", "v1"), exist_ok=True)
        subprocess.check_call([sys.executable, "-m", "grpc_tools.protoc", "-I" + PROTO,
                               "--python_out=" + out, "--grpc_python_out=" + out] + protos)
        with open(os.path.join(out, "strata", "v1", "__init__.py"), "w") as f:
            f.write('"""Generated from rpc/proto/strata/v1 by grpc_tools; do not edit."""\n')


setup(
    name="strata",
    version="0.1",
    description="Python client of the Strata storage server",
    packages=["strata"],
    python_requires=">=3.9",
    cmdclass={"build_py": build_with_protos},
)
