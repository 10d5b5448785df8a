"""Read and verify a bundle's ``manifest.json`` (the export's output, read on the device).

Every file listed under ``files`` must exist and match its sha256 before anything is loaded.
"""

import hashlib
import json
import os

from edgefl.runtime.errors import EdgeRuntimeError

MANIFEST = "manifest.json"
FORMAT, VERSION = "edgefl.bundle", 1


def sha256_file(path, block=1 << 20):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def read_manifest(bundle_dir, verify=True):
    """Load ``bundle_dir/manifest.json``; with ``verify`` check every file's sha256.

    Returns:
        the manifest dict.
    """
    path = os.path.join(bundle_dir, MANIFEST)
    try:
        with open(path, "rb") as f:
            manifest = json.loads(f.read().decode("utf-8"))
    except (IOError, OSError):
        raise EdgeRuntimeError("no {} in {} — point at a bundle made by `edgefl export`".format(
            MANIFEST, bundle_dir))
    except ValueError as exc:
        raise EdgeRuntimeError("{} is not valid JSON ({}) — re-export the bundle".format(path, exc))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise EdgeRuntimeError("{} is not an edgefl bundle manifest — re-export".format(path))
    if manifest.get("version") != VERSION:
        raise EdgeRuntimeError("bundle manifest version {!r} is not supported (expected {}) — "
                               "re-export with this edgefl version".format(
                                   manifest.get("version"), VERSION))
    files = manifest.get("files")
    if not isinstance(files, dict) or manifest.get("model_file") not in files:
        raise EdgeRuntimeError("{} lists no files or not its model_file — re-export".format(path))
    if verify:
        verify_files(bundle_dir, files)
    return manifest


def verify_files(bundle_dir, files):
    """Check each ``{name: sha256}``; names must stay inside the bundle."""
    root = os.path.realpath(bundle_dir)
    for name, digest in sorted(files.items()):
        full = os.path.realpath(os.path.join(root, name))
        if not full.startswith(root + os.sep):
            raise EdgeRuntimeError("bundle file {!r} points outside the bundle — re-export".format(
                name))
        if not os.path.isfile(full):
            raise EdgeRuntimeError("bundle file {} is missing — copy the whole bundle".format(name))
        got = sha256_file(full)
        if got != digest:
            raise EdgeRuntimeError("bundle file {} fails its sha256 ({}... != {}...) — the copy is "
                                   "corrupt; copy the bundle again".format(name, got[:12],
                                                                           str(digest)[:12]))
