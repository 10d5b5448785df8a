"""Bundles, checkpoints and packs on disk: their documents are read, written and verified here only.

Each is a directory with one JSON document that names its format and version, records the sha256
of the other files it uses under ``files`` and carries, under ``document_sha256``, the sha256 of its
own canonical JSON (sorted keys, no whitespace, without that key). So a changed byte anywhere --
a weight, the ONNX file, a compression setting in ``config.json`` -- is refused before anything is
used. Every name under ``files`` stays inside the directory: relative, no ``..``, no symlink
leading out.

=========== ================ ================== ==========================================
kind        document         format             written by
=========== ================ ================== ==========================================
bundle      manifest.json    edgefl.bundle      ``edgefl export`` (and STAD's exporter)
checkpoint  config.json      edgefl.checkpoint  ``edgefl train`` / ``compress``
pack        PACK.json        edgefl.pack        ``edgefl pack`` (checked by its installer)
=========== ================ ================== ==========================================

Standard library only: the pack installer uses it on the device before numpy is installed.
Edge code: Python 3.6.
"""

import hashlib
import json
import os
from collections import namedtuple

from edgefl.runtime.errors import EdgeRuntimeError

SEAL = "document_sha256"
MANIFEST, CHECKPOINT_CONFIG, PACK_DOCUMENT = "manifest.json", "config.json", "PACK.json"

Kind = namedtuple("Kind", "what document format version fix")
KINDS = {
    "bundle": Kind("bundle", MANIFEST, "edgefl.bundle", 1, "re-export it with `edgefl export`"),
    "checkpoint": Kind("checkpoint", CHECKPOINT_CONFIG, "edgefl.checkpoint", 1,
                       "re-create it with `edgefl train` or `edgefl compress`"),
    "pack": Kind("pack", PACK_DOCUMENT, "edgefl.pack", 1,
                 "unpack the archive again, or re-create it with `edgefl pack`"),
}
# for ``files`` names: these never name a file inside a directory
_FORBIDDEN_PARTS = ("", ".", "..")

__all__ = ["KINDS", "SEAL", "hash_files", "read_checkpoint_config", "read_document", "read_manifest",
           "read_pack", "seal", "sha256_bytes", "sha256_file", "verify_files", "write_document"]


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, block=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def _canonical(doc):
    body = dict((k, v) for k, v in doc.items() if k != SEAL)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def seal(doc):
    """``doc`` as it reads back from JSON, with its ``document_sha256`` (pure).

    Returns:
        a new dict; tuples became lists and keys strings, exactly as a reader will see them.
    """
    doc = json.loads(json.dumps(doc))
    doc[SEAL] = sha256_bytes(_canonical(doc))
    return doc


def _problem(kind, directory, text):
    return EdgeRuntimeError("{} {}: {} — {}".format(kind.what, directory, text, kind.fix))


def confined_path(directory, name, kind=KINDS["bundle"]):
    """The path of ``name`` inside ``directory``; refuses names that lead anywhere else.

    Raises:
        EdgeRuntimeError: ``name`` is absolute, has an empty, ``.`` or ``..`` part, or resolves
            (through symlinks) outside ``directory``.
    """
    parts = name.replace("\\", "/").split("/") if isinstance(name, str) else [""]
    if (not isinstance(name, str) or os.path.isabs(name) or name.startswith("\\")
            or any(p in _FORBIDDEN_PARTS for p in parts) or ":" in parts[0]):
        raise _problem(kind, directory, "the file name {!r} points outside the {}".format(
            name, kind.what))
    root = os.path.realpath(directory)
    full = os.path.realpath(os.path.join(root, *parts))
    if not full.startswith(root + os.sep):
        raise _problem(kind, directory, "{} leads outside the {} (a symlink)".format(name, kind.what))
    return full


def hash_files(directory, names, kind=KINDS["bundle"]):
    """{name: sha256} of files inside ``directory`` (names checked as ``confined_path`` does)."""
    return dict((name, sha256_file(confined_path(directory, name, kind))) for name in names)


def verify_files(directory, files, kind=KINDS["bundle"]):
    """Check each ``{name: sha256}`` against the file inside ``directory``."""
    for name, digest in sorted(files.items()):
        full = confined_path(directory, name, kind)
        if not os.path.isfile(full):
            raise _problem(kind, directory, "{} is missing (copy the whole {})".format(name, kind.what))
        got = sha256_file(full)
        if got != digest:
            raise _problem(kind, directory, "{} fails its sha256 ({}... != {}...; corrupt or "
                                            "changed)".format(name, got[:12], str(digest)[:12]))


def _checked(doc, kind, directory):
    """The structure every document shares: format, version, seal, a ``files`` table."""
    if not isinstance(doc, dict) or doc.get("format") != kind.format:
        raise _problem(kind, directory, "{} is not an {} document".format(kind.document, kind.format))
    version = doc.get("version")
    if version != kind.version:
        newer = isinstance(version, int) and version > kind.version
        raise EdgeRuntimeError("{} {}: format version {!r} is not supported (this edgefl reads {}) — "
                               "{}".format(kind.what, directory, version, kind.version,
                                           "upgrade edgefl" if newer else kind.fix))
    if SEAL not in doc:
        raise _problem(kind, directory, "{} carries no {} (written before documents were "
                                        "sealed)".format(kind.document, SEAL))
    if doc[SEAL] != sha256_bytes(_canonical(doc)):
        raise _problem(kind, directory, "{} fails its sha256 ({} does not match: the file was "
                                        "changed after it was written)".format(kind.document, SEAL))
    files = doc.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise _problem(kind, directory, "{} records no sha256 table (files)".format(kind.document))
    for name in files:
        confined_path(directory, name, kind)
    return doc


def read_document(directory, kind_name, verify=True):
    """Load, check and (with ``verify``) hash-check the document of a directory.

    Args:
        directory: the bundle, checkpoint or pack directory.
        kind_name: "bundle", "checkpoint" or "pack" (``KINDS``).
        verify: also check every file under ``files`` against its sha256 (the document's own
            seal is always checked).

    Returns:
        the document dict.
    """
    kind = KINDS[kind_name]
    path = os.path.join(directory, kind.document)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except (IOError, OSError):
        raise EdgeRuntimeError("{} {} not found (no {}) — check the path, or {}".format(
            kind.what, directory, kind.document, kind.fix))
    try:
        doc = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        raise _problem(kind, directory, "{} is corrupt (not JSON: {})".format(kind.document, exc))
    _checked(doc, kind, directory)
    if verify:
        verify_files(directory, doc["files"], kind)
    return doc


def write_document(directory, kind_name, doc):
    """Seal ``doc`` and write it atomically as the directory's document; returns the sealed doc.

    Raises:
        EdgeRuntimeError: a name under ``files`` leads outside the directory.
    """
    kind = KINDS[kind_name]
    body = {"format": kind.format, "version": kind.version}  # first, for a reader of the file
    body.update((k, v) for k, v in doc.items() if k not in body and k != SEAL)
    sealed = seal(body)
    for name in sealed.get("files") or {}:
        confined_path(directory, name, kind)
    path = os.path.join(directory, kind.document)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(sealed, indent=2) + "\n")
    os.replace(tmp, path)
    return sealed


def read_manifest(bundle_dir, verify=True):
    """A bundle's manifest; with ``verify`` every listed file against its sha256 first."""
    manifest = read_document(bundle_dir, "bundle", verify=verify)
    named = [manifest.get("model_file")] + ([manifest["head"]] if manifest.get("head") else [])
    missing = [n for n in named if n not in manifest["files"]]
    if missing:
        raise _problem(KINDS["bundle"], bundle_dir, "the manifest names {} without a sha256".format(
            ", ".join(repr(n) for n in missing)))
    return manifest


def read_checkpoint_config(checkpoint_dir, verify=True):
    """A checkpoint's config.json; with ``verify`` its weights against their sha256 first."""
    return read_document(checkpoint_dir, "checkpoint", verify=verify)


def read_pack(pack_dir, verify=True):
    """An unpacked agent pack's PACK.json; with ``verify`` every file of the pack first."""
    return read_document(pack_dir, "pack", verify=verify)
