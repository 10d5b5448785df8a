"""The sources cite what a clone contains: no pointers to design notes a user lacks, no machine paths."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SPECS = "specs" + "/"  # spelled in two parts so that this file does not match itself
MACHINE = "/" + "tmp" + "/"


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


def test_no_machine_paths_in_tests():
    assert _hits(["tests"], MACHINE, {".py", ".json", ".txt", ".toml"}) == []
