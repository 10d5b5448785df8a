"""The one --out rule, and outputs published whole: written in a staging place, renamed into place at the end.

A command checks its --out before any work (`edgefl.cli.validate.out_rule`: new, or an empty directory;
--force replaces what is there), writes everything under a hidden staging path next to it, and renames
that into place only when it succeeded. A failure (or Ctrl-C) leaves nothing at --out and no staging
directory; a rerun works.

Outputs that record their own absolute location inside their files (`federation init` writes paths into
mosquitto.conf and the agent configs; `demo` records its data file in its checkpoint) are written in place
instead (``in_place=True``): same rule, and a failure removes what was written and puts back what --force
was replacing.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from edgefl.cli.validate import out_rule
from edgefl.errors import EdgeflError


def check_out(out: Path, force: bool = False, kind: str = "dir") -> Path:
    """The --out rule as a command-level check (EdgeflError, one line)."""
    try:
        return out_rule(Path(out), force, kind)
    except ValueError as exc:
        raise EdgeflError(f"--out {exc}") from None


@contextlib.contextmanager
def staged(out: Path, force: bool = False, kind: str = "dir", in_place: bool = False):
    """Yield a path to write instead of ``out`` (a directory, or a file for kind='file'); publish on success.

    Args:
        out: the path the command creates.
        force: replace what is at ``out``.
        kind: 'dir' (yield an empty staging directory) or 'file' (yield a file path in one).
        in_place: yield ``out`` itself (a new empty directory); removed again on failure.
    """
    out = check_out(out, force, kind)
    if in_place:
        with _in_place(out) as target:
            yield target
        return
    created = _missing_ancestors(out.parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=str(out.parent)))
    target = stage if kind == "dir" else stage / out.name
    try:
        yield target
        _publish(target, out, stage)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        for path in created:  # parents this command made, deepest first, if they stayed empty
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def _in_place(out: Path):
    created = _missing_ancestors(out)
    old = None
    if out.exists() or out.is_symlink():
        out.parent.mkdir(parents=True, exist_ok=True)
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        out.rename(old)
    out.mkdir(parents=True)
    try:
        yield out
    except BaseException:
        shutil.rmtree(out, ignore_errors=True)
        if old is not None:
            old.rename(out)
        for path in created[1:]:
            with contextlib.suppress(OSError):
                path.rmdir()
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True) if old.is_dir() and not old.is_symlink() else old.unlink()


def _missing_ancestors(path: Path) -> list:
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _publish(target: Path, out: Path, stage: Path) -> None:
    """Rename ``target`` to ``out``; what was at ``out`` is moved aside first and removed after."""
    old = None
    if out.exists() or out.is_symlink():
        old = stage.parent / f".{out.name}.replaced-{os.getpid()}"
        out.rename(old)
    try:
        target.rename(out)
    except BaseException:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()


def relocate(obj, staging: Path, out: Path):
    """``obj`` (a JSON-like result) with every path string under ``staging`` re-rooted at ``out``."""
    if isinstance(obj, dict):
        return {k: relocate(v, staging, out) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(relocate(v, staging, out) for v in obj)
    if isinstance(obj, (str, Path)):
        text, root = str(obj), str(staging)
        if text == root or text.startswith(root + os.sep):
            moved = str(out) + text[len(root):]
            return Path(moved) if isinstance(obj, Path) else moved
    return obj
