"""runtime/ stays Python-3.6 compatible (vermin), and never imports host-only packages."""
import ast
import os
import shutil
import subprocess

import pytest

RUNTIME = os.path.join(os.path.dirname(__file__), "..", "..", "runtime")
FORBIDDEN = ("torch", "typer", "safetensors", "scipy", "rich", "edgefl.cli", "edgefl.models",
             "edgefl.export", "edgefl.data")


def test_vermin_says_python_36():
    vermin = shutil.which("vermin") or (
        "/tmp/venv311/bin/vermin" if os.path.exists("/tmp/venv311/bin/vermin") else None)
    if vermin is None:
        pytest.skip("vermin not installed")
    proc = subprocess.Popen([vermin, "-t=3.6-", "--no-tips", "--violations",
                             "--backport", "dataclasses", RUNTIME],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0].decode()
    assert proc.returncode == 0, out


def test_no_host_imports_at_module_level():
    bad = []
    for root, _, files in os.walk(RUNTIME):
        for name in files:
            if not name.endswith(".py") or name in ("trt_engine.py", "trt_build.py"):
                continue
            path = os.path.join(root, name)
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in tree.body:  # module level only: lazy imports inside functions are fine
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                bad += ["{}: {}".format(name, n) for n in names
                        if any(n == f or n.startswith(f + ".") for f in FORBIDDEN)]
    assert bad == []
