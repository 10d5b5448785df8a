"""The compression core: what a compressed model is made of and how it is measured and rebuilt.

Quantizers (``quant``), quantized layers (``qmodules``), BN folding (``bn_fold``), the traced layer graph
(``graph``: Torch-Pruning's dependency graph, producers, stages, layers left float), channel layouts and
pruning plans for any conv net (``layout``, ``layout_graph``, ``layout_resnet``, ``prune``,
``prune_plan``), the BOPs/size accountant (``bops``) and its report rows (``report``), the
QAT set-up every method shares (``qat``), the restorer (``restore``) and the shape every method has
(``method``). The methods themselves (``edgefl.ghost``, ``edgefl.picpq``, ``edgefl.baselines``,
``edgefl.stad``) and their registry (``edgefl.methods``) build on this package; it never imports them.

Public API (host side; torch is imported lazily by the functions that need it):
- ``restore_model(model, compression_state, state_dict)`` — rebuild a compressed checkpoint's module
  structure (pruned shapes, quant wrappers) before ``load_state_dict`` (``edgefl.compress.restore``).
- ``prepare_for_export(model)`` — a copy of a (compressed) model ready for ``torch.onnx.export``
  (``dynamo=False``, opset 13): BN folded into the quantized convs, quantizers in export mode so
  fake-quant becomes QuantizeLinear/DequantizeLinear with constant scales. Float models pass through
  (BN folding only).
- ``export_metadata(model)`` — ONNX ``metadata_props`` entries (per-layer bits) for the exporter.
"""

from __future__ import annotations

__all__ = ["export_metadata", "prepare_for_export", "restore_model"]


def restore_model(model, compression_state: dict, state_dict: dict):
    """Rebuild the compressed structure of ``model`` described by ``compression_state``.

    Args:
        model: the freshly built registry model (float, unpruned).
        compression_state: ``config["compression"]`` of the checkpoint.
        state_dict: the checkpoint's tensors (never modified).
    Returns:
        the model with the compressed structure, ready for ``load_state_dict(state_dict, strict=True)``.
    """
    from edgefl.compress.restore import restore_model as restore

    return restore(model, compression_state, state_dict)


def prepare_for_export(model):
    """Deep copy of ``model`` in eval mode with BN folded and quantizers in export mode.

    Float models (no quantized layers) come back as an unchanged eval-mode copy: ONNX Runtime and
    TensorRT fold their BNs themselves. BN folding needs a torch.fx trace; a quantized model that
    cannot be traced is exported with its BNs (still exact, just not fused).
    """
    import copy

    from edgefl.compress.bn_fold import export_form, fold_batchnorm
    from edgefl.compress.qmodules import quant_layers

    model = copy.deepcopy(model).eval()
    if not quant_layers(model):
        return model
    try:
        model = fold_batchnorm(model)
    except Exception:  # noqa: BLE001 - torch.fx raises several types for untraceable forwards
        model = copy.deepcopy(model)
    return export_form(model)


def export_metadata(model) -> dict:
    """``{"edgefl.bits.<layer>": "w4a4", ...}`` for every quantized layer (empty for float models)."""
    from edgefl.compress.bn_fold import bits_metadata

    return bits_metadata(model)
