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
