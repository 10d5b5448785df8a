"""The sources cite what a clone contains: no pointers to design notes a user lacks, no machine paths."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPECS = "specs" + "/"  # spelled in two parts so that this file does not match itself
MACHINE = "/" + "tmp" + "/"
NOTE = "ghost" + ".md"  # a design note a clone does not hold, spelled in parts like SPECS


def _hits(folders, needle, suffixes):
    return [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*"))
        if path.suffix in suffixes and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if needle in line
    ]


def test_no_references_to_documents_outside_the_repo():
    folders = ["edgefl", "export", "runtime", "device_profiles"]
    assert _hits(folders, SPECS, {".py", ".toml", ".md", ".txt"}) == []


def _md_references(root, folders, suffixes):
    """(where, name) of every markdown file name a source line holds (`NOTE §1.3`, `(spec NOTE)`)."""
    pattern = re.compile(r"\b([\w-]+\.md)\b")
    return [
        (f"{path.relative_to(root)}:{number}", name)
        for folder in folders
        for path in sorted((root / folder).rglob("*"))
        if path.suffix in suffixes and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        for name in pattern.findall(line)
    ]


def test_markdown_references_name_files_of_the_clone():
    """A docstring citing a design note's section sends the reader to a file they do not have: cite the
    paper, or a document the repository holds."""
    folders = ["edgefl", "export", "runtime", "device_profiles", "tests", "bench"]
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True)
    names = {Path(p).name for p in tracked.stdout.split()} or {
        p.name for p in [*ROOT.glob("*.md"), *(q for f in folders for q in (ROOT / f).rglob("*.md"))]}
    found = _md_references(ROOT, folders, {".py", ".toml", ".txt", ".json", ".sh"})
    assert [f"{where}: {name}" for where, name in found if name not in names] == []


def test_the_markdown_check_sees_a_section_reference(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(f'"""Bits by k-means (spec {NOTE} §1.1); see README.md."""\n')
    found = _md_references(tmp_path, ["pkg"], {".py"})
    assert found == [("pkg/m.py:1", NOTE), ("pkg/m.py:1", "README.md")]


def test_no_machine_paths_in_tests():
    assert _hits(["tests"], MACHINE, {".py", ".json", ".txt", ".toml"}) == []
