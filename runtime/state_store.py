"""Incremental, atomic persistence of the aggregator's state.

``path`` holds the global model, the round state and the index of accepted updates; each
accepted update lives once in ``path.updates/`` (written when it is accepted, never rewritten),
so persisting after every accepted update costs one update plus the global model, not all the
updates of the round again. Order of writes: the update file, then the state file that names
it (both atomic), so a crash at any point leaves a loadable state. Update files of rounds the
state no longer needs are removed one round late, so a reader holding the previous state file
can still load it.
"""

import hashlib
import os

from edgefl.runtime.aggregator import AggregatorCore
from edgefl.runtime.persist import atomic_write, read_bytes
from edgefl.runtime.wire import encode_tensors

SUFFIX = ".safetensors"


class StateStore(object):
    """Saves and loads an :class:`AggregatorCore` at ``path``."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.dir = self.path + ".updates"
        self._written = set()

    def update_file(self, client, version):
        h = hashlib.sha256(u"{}|{}".format(version, client).encode("utf-8")).hexdigest()[:24]
        return os.path.join(self.dir, "{}-{}{}".format(int(version), h, SUFFIX))

    def save(self, core):
        refs = {}
        for key, (_, tensors, _) in core.accepted.items():
            f = self.update_file(*key)
            if f not in self._written:
                atomic_write(f, encode_tensors(tensors))
                self._written.add(f)
            refs[key] = f
        atomic_write(self.path, core.to_bytes(external=refs))
        self._clean(core, set(refs.values()))

    def _clean(self, core, keep):
        if not os.path.isdir(self.dir):
            return
        oldest = core.round - 1 - (core.cfg.max_staleness if core.cfg.mode == "async" else 0)
        if core.done:
            oldest = float("inf")
        for name in os.listdir(self.dir):
            full = os.path.join(self.dir, name)
            version = name.split("-", 1)[0]
            if (name.endswith(SUFFIX) and full not in keep and version.isdigit()
                    and int(version) < oldest):
                os.remove(full)
                self._written.discard(full)

    def load(self, config=None):
        """The persisted core, or None when nothing was saved yet."""
        blob = read_bytes(self.path)
        return AggregatorCore.from_bytes(blob, config) if blob else None
