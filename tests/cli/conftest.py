"""The CLI's promises are tested through the installed `edgefl` console script in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(sys.executable).parent / "edgefl"


def run_script(*argv, cwd=None, timeout=120):
    """(exit code, stdout, stderr) of `edgefl ARGV...` run by the venv's console script."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing — install the project (pip install -e '.[host,test]')")
    env = dict(os.environ, COLUMNS="200", NO_COLOR="1", PYTHONDONTWRITEBYTECODE="1")
    done = subprocess.run([str(SCRIPT), *map(str, argv)], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture(scope="session")
def edgefl():
    """`edgefl(*argv, cwd=None)` → (exit code, stdout, stderr) through the console script."""
    return run_script
