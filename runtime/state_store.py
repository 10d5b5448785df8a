"""Incremental, atomic persistence of the aggregator's state.

``path`` holds the round state and the running sum of the round (``edgefl.runtime.fold``): that
is what is rewritten after every accepted update, and its size does not grow with the number of
clients. The models (global, server, delta) change once per round: they go to
``path.models/<round>-<digest>.safetensors`` when they change and the state names that file;
the core then reads its models from that file (``aggregator_state.map_models``) and holds
none in memory between closes.
Strategies that keep every update (median, trimmed mean) keep each one once in
``path.updates/`` (written when it is accepted, never rewritten). Order of writes: the model or
update file, then the state file that names it (both atomic), so a crash at any point leaves a
loadable state. Files the state no longer needs are removed one round late, so a reader holding
the previous state file can still load it.
"""

import hashlib
import os

from edgefl.runtime.aggregator import AggregatorCore
from edgefl.runtime.aggregator_state import map_models, model_tensors
from edgefl.runtime.persist import atomic_write, read_bytes
from edgefl.runtime.wire import tensor_chunks

SUFFIX = ".safetensors"


class StateStore(object):
    """Saves and loads an :class:`AggregatorCore` at ``path``."""

    def __init__(self, path):
        self.path = os.path.abspath(path)
        self.dir = self.path + ".updates"
        self.models_dir = self.path + ".models"
        self._written = set()

    def update_file(self, client, version):
        h = hashlib.sha256(u"{}|{}".format(version, client).encode("utf-8")).hexdigest()[:24]
        return os.path.join(self.dir, "{}-{}{}".format(int(version), h, SUFFIX))

    def models_file(self, core):
        return os.path.join(self.models_dir, "{}-{}{}".format(int(core.round), core.digest[:24],
                                                              SUFFIX))

    def save(self, core):
        refs = {}
        for key, tensors in core.buffered.items():
            f = self.update_file(*key)
            if f not in self._written:
                atomic_write(f, tensor_chunks(tensors))
                self._written.add(f)
            refs[key] = f
        models = self.models_file(core)
        if models not in self._written:  # once per round (or after a restart)
            atomic_write(models, tensor_chunks(model_tensors(core)))
            self._written.add(models)
            map_models(core, models)  # the round's models are read from the file from now on
        atomic_write(self.path, core.to_chunks(external=refs, models=models))
        self._clean(self.dir, core, set(refs.values()))
        self._clean(self.models_dir, core, {models})

    def _clean(self, folder, core, keep):
        if not os.path.isdir(folder):
            return
        oldest = core.round - 1 - (core.cfg.max_staleness if core.cfg.mode == "async" else 0)
        if core.done:
            oldest = float("inf")
        for name in os.listdir(folder):
            full = os.path.join(folder, name)
            version = name.split("-", 1)[0]
            if (name.endswith(SUFFIX) and full not in keep and version.isdigit()
                    and int(version) < oldest):
                os.remove(full)
                self._written.discard(full)

    def load(self, config=None):
        """The persisted core, or None when nothing was saved yet."""
        blob = read_bytes(self.path)
        return AggregatorCore.from_bytes(blob, config) if blob else None
