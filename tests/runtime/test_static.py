"""runtime/ stays Python-3.6 compatible (vermin), and never imports host-only packages."""
import ast
import os
import subprocess

RUNTIME = os.path.join(os.path.dirname(__file__), "..", "..", "runtime")
FORBIDDEN = ("torch", "typer", "safetensors", "scipy", "rich", "edgefl.cli", "edgefl.models",
             "edgefl.export", "edgefl.data")
VERMIN_ARGS = ["-t=3.6-", "--no-tips", "--violations", "--backport", "dataclasses"]


def vermin(tool):
    """vermin from the running interpreter's venv (both suites install it), else PATH."""
    return [tool("vermin", "vermin (the test extra; .ci/edge36-constraints.txt)")] + VERMIN_ARGS


def run(command):
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.communicate()[0].decode()
    return proc.returncode, out


def test_vermin_says_python_36(tool):
    code, out = run(vermin(tool) + [RUNTIME])
    assert code == 0, out


def test_vermin_refuses_what_python_36_lacks(tool, tmp_path):
    newer = tmp_path / "newer.py"
    newer.write_text(u"import math\n\n\ndef f(n):\n    return math.prod(range(1, n + 1))\n")
    code, out = run(vermin(tool) + [str(tmp_path)])
    assert code != 0 and "math.prod" in out, out


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
