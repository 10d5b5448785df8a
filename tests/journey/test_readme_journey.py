"""The README's "journey in commands" runs as written: the block after the journey marker is taken out of
README.md and run with bash, with the quick settings the README names, in a fresh copy of the repository
(tracked and new files, a new git repository; `.venv` linked from this checkout, as the setup command
would have made it). It must end with exit code 0, leave the artefacts each line promises, and leave
`git status` clean.
"""

import html
import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from edgefl.sim.summary import start_note

ROOT = Path(__file__).resolve().parents[2]
MARKER = "<!-- journey:"
QUICK = {"MODEL": "small_cnn", "EPOCHS": "1", "HOLDOUT": "0.9", "ROUNDS": "2", "HOURS": "3", "STEPS": "20"}


def journey_block(readme: str) -> str:
    """The fenced bash block that follows the journey marker."""
    after = readme[readme.index(MARKER):]
    match = re.search(r"^```bash\n(.*?)^```$", after, re.S | re.M)
    assert match, "no ```bash block after the journey marker in README.md"
    return match.group(1)


def quick_settings(readme: str) -> dict:
    """The quick settings as the README states them (`MODEL=small_cnn EPOCHS=1 ...` in backticks)."""
    stated = re.search(r"`((?:[A-Z_]+=\S+ ?)+)`", readme[readme.index("## The journey in commands"):])
    return dict(pair.split("=", 1) for pair in stated.group(1).split())


def fresh_copy(dest: Path) -> Path:
    """This checkout's tracked and untracked-but-not-ignored files, committed in a new repository."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    git = ["git", "-c", "user.name=journey", "-c", "user.email=journey@example.invalid"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "fresh clone"]):
        subprocess.run([*git, *args], cwd=dest, check=True, capture_output=True)
    (dest / ".venv").symlink_to(ROOT / ".venv")  # what the README's setup command creates
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_block_is_found_and_its_quick_settings_are_its_variables():
    readme = (ROOT / "README.md").read_text()
    block = journey_block(readme)
    assert block.startswith("set -euo pipefail\n") and "edgefl detect" in block
    settings = quick_settings(readme)
    assert settings == QUICK
    for name in settings:  # each quick setting is a variable the block reads, with the full-size default
        assert re.search(rf"^{name}=\${{{name}:-[^}}]+}}", block, re.M), name


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_readme_journey_runs_in_a_fresh_clone(tmp_path):
    readme = (ROOT / "README.md").read_text()
    clone = fresh_copy(tmp_path / "clone")
    script = tmp_path / "journey.sh"
    script.write_text(journey_block(readme))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "COLUMNS", "PYTHON"))}
    env.update(quick_settings(readme), PORT=str(free_port()))
    done = subprocess.run(["bash", str(script)], cwd=clone, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=1100)
    log = done.stdout.decode(errors="replace")
    assert done.returncode == 0, log[-6000:]
    assert "Traceback" not in log, log[-6000:]

    runs = clone / "runs" / "journey"
    for made in ("float/config.json", "ghost/config.json", "bundle/manifest.json", "trt/manifest.json",
                 "fed/broker/mosquitto.conf", "parts.json", "shares/client-002.npz", "agent.tar.gz",
                 "fl/report.html", "sim/report.html", "stad/bundle/manifest.json", "detect"):
        assert (runs / made).exists(), made
    rounds = [json.loads(line) for line in (runs / "fl" / "metrics.jsonl").read_text().splitlines()]
    assert [r["round"] for r in rounds] == [1, 2]
    # both host agents and the packed edge agent (client-002, python -m edgefl.runtime) in every round
    assert all(r["clients"] == 3 for r in rounds), rounds
    assert any(p.suffix == ".npy" for p in (runs / "detect").iterdir())
    # the simulation's starting point and target: the same sentence in the terminal and in the report
    note = start_note(json.loads((runs / "sim" / "sim" / "simulation.json").read_text()))
    assert note and note in log.splitlines(), log[-6000:]
    assert html.escape(note) in (runs / "sim" / "report.html").read_text()

    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=clone,
                            capture_output=True, text=True, check=True).stdout
    assert status == "", f"the journey left files git sees:\n{status}"
