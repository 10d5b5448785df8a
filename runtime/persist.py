"""Atomic files: write a temp file in the same folder, fsync, ``os.replace``, fsync the folder.

A reader sees the old file or the new one, never a torn write, even after ``kill -9`` or power
loss.
"""

import os
import tempfile


def atomic_write(path, data):
    """Replace ``path`` with ``data`` atomically: bytes, or a list of bytes-like chunks written
    one after the other (``wire.tensor_chunks``: no file-sized copy in memory)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        os.makedirs(folder)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in data if isinstance(data, list) else [data]:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_bytes(path):
    """The file's bytes, or None when it does not exist."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except (IOError, OSError):
        return None


def mapped_tensors(path, prefixes):
    """The float32 tensors of safetensors file ``path`` whose names start with one of
    ``prefixes``, as copy-on-write maps of the file: nothing is read until used, pages read are
    the page cache's, and a write changes this process's copy only. Tensors of another dtype,
    empty ones and a file that does not parse are left out (the caller keeps its arrays)."""
    import json
    import mmap
    import struct

    import numpy as np

    out = {}
    try:
        with open(path, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(size).decode("utf-8"))
            whole = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    except (IOError, OSError, ValueError, struct.error):
        return out
    base = 8 + size
    for name, entry in header.items():
        if name == "__metadata__" or not name.startswith(tuple(prefixes)):
            continue
        start, end = entry["data_offsets"]
        shape = tuple(int(d) for d in entry["shape"])
        count = int(np.prod(shape)) if shape else 1
        if entry["dtype"] != "F32" or count == 0 or end - start != 4 * count or base % 4:
            continue
        out[name] = np.frombuffer(whole, np.dtype("<f4"), count=count,
                                  offset=base + start).reshape(shape)
    return out
