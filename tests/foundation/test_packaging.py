"""Build the wheel, install it in a fresh venv, import the mapped packages from outside the repo."""
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_wheel_installs_mapped_packages(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
                            str(ROOT)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next(dist.glob("*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert not any(n.startswith(("export/", "runtime/", "device_profiles/")) for n in names)
    assert "edgefl/device_profiles/jetson-tx2.toml" in names
    assert "edgefl/datasets/mnist/t10k-images-idx3-ubyte.gz" in names
    # every package folder in the source tree made it into the wheel
    for top, mapped in (("edgefl", "edgefl"), ("export", "edgefl/export"), ("runtime", "edgefl/runtime")):
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.relative_to(ROOT / top).as_posix()
            assert f"{mapped}/{rel}" in names, \
                f"package {init.parent} missing from the wheel (pyproject packages)"
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True)
    code = ("import edgefl, edgefl.export, edgefl.runtime, edgefl.device_profiles, sys;"
            "assert 'torch' not in sys.modules, 'import edgefl pulled torch';"
            "from edgefl.export.profiles import load_profile;"
            "assert load_profile('jetson-tx2').max_opset == 13;"
            "print(edgefl.runtime.__file__)")
    out = subprocess.run([str(py), "-c", code], cwd=str(tmp_path), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert str(venv) in out.stdout
    bare = subprocess.run([str(py), "-c", "import export"], cwd=str(tmp_path), capture_output=True, text=True)
    assert bare.returncode != 0 and "No module named 'export'" in bare.stderr
    env = dict(os.environ, PYTHONPATH="")
    assert subprocess.run([str(py), "-c", "import runtime"], cwd=str(tmp_path), env=env).returncode != 0
