"""Generic restorer for pruned and/or quantized checkpoints (PIC-PQ, baselines, GHOST).

``config["compression"]`` holds ``{"method": ..., "prune": plan or None, "layers": {name: quantizer
spec}, ...}``; restoring replays the pruning plan on the fresh registry model (shapes only; the
weights come from the checkpoint) and swaps in the quantized wrappers. No pickle anywhere.
"""

from __future__ import annotations

from edgefl.errors import EdgeflError


def compression_state(method: str, plan: dict | None, layer_specs: dict, **extra) -> dict:
    """The JSON ``config["compression"]`` entry for a pruned/quantized model."""
    return {"method": method, "prune": plan, "layers": layer_specs, **extra}


def restore_pruned_quantized(model, state: dict, state_dict: dict):
    """Apply ``state["prune"]`` then ``state["layers"]`` to a fresh float model (in place)."""
    from edgefl.compress.prune import apply_plan
    from edgefl.compress.qmodules import quantize_model

    try:
        if state.get("prune"):
            apply_plan(model, state["prune"])
        quantize_model(model, state.get("layers") or {})
    except (KeyError, ValueError, TypeError) as e:
        raise EdgeflError(
            f"compression state of method {state.get('method')!r} does not fit the model ({e}) — "
            "re-create the compressed checkpoint"
        ) from None
    return model
