"""One restorer for every compressed checkpoint (PIC-PQ, the baselines, GHOST, any new method).

``config["compression"]`` holds ``{"method": ..., "version": 1, "prune": plan or None, "layers":
{name: quantizer spec}, ...}``; restoring replays the pruning plan on the fresh registry model (shapes
only; the weights come from the checkpoint) and swaps in the quantized wrappers. The method's name is
recorded for people and reports; restoring needs only the structure, so a new method that prunes or
quantizes needs no code here. No pickle anywhere.
"""

from __future__ import annotations

from edgefl.errors import EdgeflError

STATE_VERSION = 1
SUPPORTED_VERSIONS = (1,)


def compression_state(method: str, plan: dict | None, layer_specs: dict, **extra) -> dict:
    """The JSON ``config["compression"]`` entry for a pruned and/or quantized model.

    Args:
        method: registry name of the method that made it.
        plan: pruning plan (``edgefl.compress.prune.apply_plan``) or None.
        layer_specs: ``{layer: quantizer spec}`` (``edgefl.compress.qmodules.model_quant_specs``).
        extra: the method's own summary (settings, bits, search results...).
    """
    return {"method": method, "version": STATE_VERSION, "prune": plan, "layers": layer_specs, **extra}


def restore_model(model, state: dict, state_dict: dict):
    """Rebuild the compressed structure of ``model`` described by ``state`` (in place).

    Args:
        model: the freshly built registry model (float, unpruned).
        state: ``config["compression"]`` of the checkpoint.
        state_dict: the checkpoint's tensors (shapes come from the plan; never modified).
    Returns:
        the model with the compressed structure, ready for ``load_state_dict(state_dict, strict=True)``.
    Raises:
        EdgeflError: a state version this edgefl does not know, or a structure that does not fit the model.
    """
    from edgefl.compress.prune import apply_plan
    from edgefl.compress.qmodules import quantize_model

    state = state or {}
    method, version = state.get("method"), state.get("version", STATE_VERSION)
    if version not in SUPPORTED_VERSIONS:
        raise EdgeflError(
            f"checkpoint compression state ({method}) has version {version}; this edgefl reads "
            f"{SUPPORTED_VERSIONS} — upgrade edgefl or re-create the checkpoint"
        )
    try:
        if state.get("prune"):
            apply_plan(model, state["prune"])
        quantize_model(model, state.get("layers") or {})
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise EdgeflError(
            f"compression state of method {method!r} does not fit the model ({e}) — "
            "re-create the compressed checkpoint"
        ) from None
    return model
