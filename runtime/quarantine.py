"""Poison quarantine: a message that was being processed when the aggregator died is never
processed again.

Before the aggregator handles a message, :meth:`Quarantine.begin` writes the message's sha256 to
``STATE.inflight``; :meth:`Quarantine.end` empties that file once the message is handled. A
restart that finds a digest there (the process died while handling that message) moves it to
``STATE.quarantine`` (a JSON list, written atomically), and the aggregator rejects that message
with reason ``quarantined`` from then on — so an update that crashes the process, resent by its
agent after the restart, cannot crash it again and again.

The in-flight file is written without fsync: it guards against a message that kills the
process, and the page cache outlives the process; a power cut that loses it only means the
message is processed once more.
"""

import json
import os
import re

from edgefl.runtime.persist import atomic_write, read_bytes
from edgefl.runtime.wire import payload_digest

__all__ = ["Quarantine"]

_DIGEST = re.compile(r"\A[0-9a-f]{64}\Z")


class Quarantine(object):
    """The in-flight marker and the quarantined digests next to an aggregator state file.

    Args:
        state_path: the aggregator's state file; the quarantine files sit beside it.
        keep: how many quarantined digests to remember (oldest forgotten first).
    """

    def __init__(self, state_path, keep=1000):
        self.inflight_path = state_path + ".inflight"
        self.path = state_path + ".quarantine"
        self.keep = keep
        self._order = _read_list(self.path)[-keep:]
        self.digests = set(self._order)  # the aggregator core holds this same set
        self._fd = None

    def recover(self):
        """Quarantine the message in flight when the process died; its digest, or None."""
        blob = read_bytes(self.inflight_path) or b""
        digest = blob.decode("ascii", "replace").strip()
        found = None
        if _DIGEST.match(digest) and digest not in self.digests:
            self._order = (self._order + [digest])[-self.keep:]
            self.digests.clear()
            self.digests.update(self._order)
            atomic_write(self.path, json.dumps({"quarantined": self._order}).encode("utf-8"))
            found = digest
        self._fd = os.open(self.inflight_path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._fd, 0)
        return found

    def begin(self, payload):
        """Mark ``payload`` as being processed; returns its sha256 (hex)."""
        digest = payload_digest(payload)
        if self._fd is None:
            self.recover()
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, digest.encode("ascii"))  # 64 bytes, always: no truncate needed
        return digest

    def end(self):
        """The message being processed is handled."""
        os.ftruncate(self._fd, 0)

    def close(self):
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _read_list(path):
    blob = read_bytes(path)
    try:
        items = json.loads(blob.decode("utf-8"))["quarantined"] if blob else []
    except (ValueError, KeyError, TypeError):
        items = []  # unreadable: start with an empty quarantine rather than refuse to run
    if not isinstance(items, list):
        return []
    return [d for d in items if isinstance(d, str) and _DIGEST.match(d)]
