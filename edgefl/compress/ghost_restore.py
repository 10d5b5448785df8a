"""Rebuild a GHOST checkpoint's quantized structure before its weights are loaded.

GHOST changes no shapes: every conv becomes a ``QConv2d`` with a DoReFa weight quantizer at its HQ
bits and an input activation quantizer at the previous conv's bits. The layer specs are stored in
``config["compression"]["layers"]``; the shared restorer swaps the wrappers in.
"""

from __future__ import annotations

from edgefl.errors import EdgeflError

SUPPORTED_VERSIONS = (1,)


def restore(model, state: dict, state_dict: dict):
    """Swap in GHOST's quantized wrappers (in place) and return the model.

    Args:
        model: the fresh float registry model.
        state: ``config["compression"]`` with ``method == "ghost"``, ``version`` and ``layers``.
        state_dict: the checkpoint tensors (unused: GHOST keeps every shape).

    Raises:
        EdgeflError: unknown state version or layer specs that do not fit the model.
    """
    from edgefl.compress.restore import restore_pruned_quantized

    version = state.get("version", 1)
    if version not in SUPPORTED_VERSIONS:
        raise EdgeflError(
            f"GHOST checkpoint state version {version} is not supported (known: {SUPPORTED_VERSIONS}) — "
            "upgrade edgefl or re-run `edgefl compress ghost`"
        )
    if not state.get("layers"):
        raise EdgeflError("GHOST checkpoint state lists no quantized layers — re-run `edgefl compress ghost`")
    return restore_pruned_quantized(model, {**state, "prune": None}, state_dict)
