"""The aggregator's persisted state: one safetensors blob, written atomically after every
accepted update and every round change (``edgefl.runtime.state_store`` does the writing).

What it holds: the round state (JSON: round, digest, versions, sample, deadline, history, the
contributors with their example counts and metrics), the running sum of the round
(``fold/<name>``, int64, see ``edgefl.runtime.fold``) — not the updates — and the models
(``global/``, ``server/``, ``delta/``). Two things can live in files of their own, referenced
by name: the models (``models``: written once per round, not once per update) and, for
strategies that keep every update (median, trimmed mean), each update (``external``).

State files from before the streaming fold (every accepted update inlined or in a file) still
load: their updates are folded when the state is restored.
"""

import json
from collections import OrderedDict
from dataclasses import asdict

import numpy as np

from edgefl.runtime.errors import EdgeRuntimeError, WireError
from edgefl.runtime.fold import Fold
from edgefl.runtime.persist import mapped_tensors
from edgefl.runtime.wire import decode_tensors, tensor_chunks

__all__ = ["MODEL_PREFIXES", "map_models", "model_tensors", "restore_core", "state_bytes",
           "state_chunks"]

META = "edgefl.aggregator_state"
MODEL_PREFIXES = ("global/", "server/", "delta/")


def model_tensors(core):
    """The models of ``core`` as prefixed tensors (what a models file holds)."""
    tensors = OrderedDict(("global/" + n, v) for n, v in core.global_model.items())
    if core.server_model is not core.global_model:
        tensors.update(("server/" + n, v) for n, v in core.server_model.items())
    if core.delta is not None:
        tensors.update(("delta/" + n, v) for n, v in core.delta[0].items())
    return tensors


def map_models(core, path):
    """Hold the core's global and server models as copy-on-write maps of ``path`` (a models
    file just written from them by ``model_tensors``) instead of in memory: between closes the
    aggregator then keeps no model of its own; the close reads it block by block and writes
    the new model over its private copy (``aggregator._applied``). A tensor the file holds in
    another shape or dtype stays as it is (never read to compare: that would map every page)."""
    mapped = mapped_tensors(path, ("global/", "server/"))

    def swap(prefix, model):
        def pick(n, v):
            m = mapped.get(prefix + n)
            same = m is not None and np.shape(v) == m.shape and np.asarray(v).dtype == m.dtype
            return m if same else v
        return OrderedDict((n, pick(n, v)) for n, v in model.items())

    shared = core.server_model is core.global_model
    core.global_model = swap("global/", core.global_model)
    core.server_model = core.global_model if shared else swap("server/", core.server_model)


def state_bytes(core, external=None, models=None):
    """The state of ``core`` as bytes (:func:`state_chunks` joined)."""
    return b"".join(state_chunks(core, external, models))


def state_chunks(core, external=None, models=None):
    """The state of ``core`` as ``wire.tensor_chunks``: the running sum is written from its
    arrays, never copied into one blob.

    Args:
        external: (client, version) -> file already holding that kept update.
        models: a file already holding ``model_tensors(core)``: referenced, not inlined.
    """
    external = external or {}
    tensors = OrderedDict() if models else model_tensors(core)
    index = []
    for i, (key, (n, m)) in enumerate(core.accepted.items()):
        entry = {"client": key[0], "version": key[1], "num_examples": n, "metrics": m}
        if key in external:
            entry["file"] = external[key]
        elif key in core.buffered:
            tensors.update(("update/{}/{}".format(i, k), a) for k, a in core.buffered[key].items())
            entry["inline"] = True
        index.append(entry)
    fold = None
    if core.fold is not None:
        sums, fold = core.fold.to_state()
        tensors.update(("fold/" + n, a) for n, a in sums.items())
    state = {"round": core.round, "digest": core.digest, "versions": list(core.versions.items()),
             "sampled": core.sampled, "deadline": core.deadline, "done": core.done,
             "history": core.history, "accepted": index, "rejected": core.rejected,
             "contributed": sorted([c, v] for c, v in core.contributed),
             "bytes_in": core.bytes_in, "epoch": core.epoch, "config": asdict(core.cfg),
             "delta": None if core.delta is None else core.delta[1], "fold": fold,
             "merged": sorted([st, r, q] for st, r, q in core.merged),
             "models": models, "announcement_bytes": core.announce_bytes,
             "snapshot_bytes": core.snapshot_bytes}
    return tensor_chunks(tensors, {META: json.dumps(state)})


def restore_core(cls, blob, config=None):
    """An ``AggregatorCore`` (``cls``) from :func:`state_bytes` output."""
    try:
        tensors, meta = decode_tensors(blob)
        state = json.loads(meta[META])
    except (WireError, KeyError, ValueError) as exc:
        raise EdgeRuntimeError("aggregator state file is unreadable ({}) — delete it to start "
                               "over".format(exc))
    if state.get("models"):
        tensors.update(_read_file(state["models"], "the models file"))
    cfg = config or cls.config_type(**state["config"])
    core = cls(cfg, _prefixed(tensors, "global/"))
    core.round, core.digest = state["round"], state["digest"]
    core.versions = OrderedDict((d, v) for d, v in state["versions"])
    core.sampled, core.deadline, core.done = state["sampled"], state["deadline"], state["done"]
    core.history, core.rejected = state["history"], state["rejected"]
    core.bytes_in, core.epoch = state["bytes_in"], state.get("epoch", 0)
    server = _prefixed(tensors, "server/")
    core.server_model = server if server else core.global_model
    if state.get("delta") is not None:
        core.delta = (_prefixed(tensors, "delta/"), state["delta"])
    core.announce_bytes = state.get("announcement_bytes", 0)
    core.snapshot_bytes = state.get("snapshot_bytes", 0)
    if state.get("fold") is not None:
        core.fold = Fold.from_state(_prefixed(tensors, "fold/", copy=False), state["fold"])
    elif core.round and not core.done:
        core.fold = core._new_fold()  # a state from before the fold: its updates are folded below
    older = []
    for i, e in enumerate(state["accepted"]):
        key = (e["client"], e["version"])
        core.accepted[key] = (e["num_examples"], e["metrics"])
        kept = _kept_update(tensors, i, e)
        if kept is None:
            continue
        if state.get("fold") is None and core.fold is not None:
            older.append((key, kept))
        else:
            core.buffered[key] = kept
    for (cid, version), kept in older:
        _fold_older(core, cid, version, kept)
    core.contributed = set((c, v) for c, v in state.get("contributed", [])) | set(core.accepted)
    core.merged = set((st, r, q) for st, r, q in state.get("merged", []))
    return core


def _fold_older(core, client, version, tensors):
    """Fold an update a pre-fold state file kept (it was validated when it arrived)."""
    n = core.accepted[(client, version)][0]
    reason, _ = core._fold_in(tensors, n, core.round - version, None)
    if reason:
        raise EdgeRuntimeError("the state's update of {!r} does not fold ({}) — delete the state "
                               "file to start over".format(client, reason))


def _kept_update(tensors, i, entry):
    if "file" in entry:
        return _prefixed(_read_file(entry["file"], "accepted update"), "")
    pre = "update/{}/".format(i)
    if entry.get("inline") or any(k.startswith(pre) for k in tensors):
        return _prefixed(tensors, pre)
    return None


def _prefixed(tensors, prefix, copy=True):
    make = np.array if copy else np.asarray
    return OrderedDict((k[len(prefix):], make(v)) for k, v in tensors.items()
                       if k.startswith(prefix))


def _read_file(path, what):
    try:
        with open(path, "rb") as f:
            tensors, _ = decode_tensors(f.read())
    except (IOError, OSError, WireError) as exc:
        raise EdgeRuntimeError("{} {} cannot be read ({}) — the aggregator state is "
                               "incomplete; delete it to start over".format(what, path, exc))
    return tensors
