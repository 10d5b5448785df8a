"""torch module -> ONNX ModelProto at a fixed opset, with two named outputs (logits, features).

Uses the TorchScript exporter (``dynamo=False``): in torch 2.13 the default dynamo exporter
silently emits opset 18 when asked for 13 (shared/specs/devices.md §6). The opset actually written
is checked afterwards anyway.
"""

from __future__ import annotations

import io
import warnings

import onnx

from edgefl.errors import EdgeflError
from edgefl.export.fold import clean_for_deployment
from edgefl.export.graph_checks import check_opset, ir_version_for_opset

INPUT_NAME = "input"
OUTPUT_NAMES = ("logits", "features")
# Hook name agreed with the compression owners: edgefl.compress.<EXPORT_HOOK>(model) -> model ready for
# export (fake-quant ops in 8-bit container ranges with constant scale buffers, pruned shapes physical).
EXPORT_HOOK = "prepare_for_export"


def _two_headed(model):
    """Wrap a classifier so forward returns (logits, features) — the device fine-tunes the head."""
    import torch

    if not (hasattr(model, "features") and isinstance(getattr(model, "classifier", None), torch.nn.Linear)):
        raise EdgeflError(
            f"model {type(model).__name__} has no features(x) + classifier (nn.Linear) — "
            "register it in edgefl.models with that interface to export it"
        )

    class TwoHeaded(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            feats = self.inner.features(x)
            return self.inner.classifier(feats), feats

    return TwoHeaded(model).eval()


def prepare_for_export(model):
    """Give the compression package a chance to put the model in its export form.

    Calls ``edgefl.compress.prepare_for_export(model)`` when that function exists; otherwise the
    module is exported as it is.
    """
    try:
        import edgefl.compress as compress
    except ImportError:
        return model
    hook = getattr(compress, EXPORT_HOOK, None)
    return hook(model) if callable(hook) else model


def export_metadata(model) -> dict:
    """Per-layer bit widths from ``edgefl.compress.export_metadata`` when present (else {})."""
    try:
        import edgefl.compress as compress
    except ImportError:
        return {}
    hook = getattr(compress, "export_metadata", None)
    return dict(hook(model)) if callable(hook) else {}


def add_metadata(model: onnx.ModelProto, entries: dict) -> None:
    """Set ONNX ``metadata_props`` (string key/values) in place."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in sorted(entries.items()):
        if key in existing:
            existing[key].value = str(value)
        else:
            model.metadata_props.add(key=str(key), value=str(value))


def onnx_from_module(
    model, input_shape, opset: int, batch: int = 1, dynamic_batch: bool = False
) -> onnx.ModelProto:
    """Export ``model`` (features + classifier) to ONNX and clean the graph for deployment.

    Args:
        model: torch classifier in eval mode with ``features(x)`` and ``classifier``.
        input_shape: [C, H, W].
        opset: target opset (the profile's ceiling).
        batch: static batch size (ignored for the exported dimension when ``dynamic_batch``).
        dynamic_batch: make the batch dimension symbolic ("batch").

    Returns:
        The cleaned ModelProto (opset checked, IR version lowered to what the opset needs).
    """
    import torch

    wrapped = _two_headed(model)
    example = torch.zeros((batch, *[int(d) for d in input_shape]), dtype=torch.float32)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAMES[0]: {0: "batch"}, OUTPUT_NAMES[1]: {0: "batch"}}
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter's DeprecationWarnings are expected (see module docstring).
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapped,
                (example,),
                buffer,
                dynamo=False,
                opset_version=opset,
                do_constant_folding=True,
                input_names=[INPUT_NAME],
                output_names=list(OUTPUT_NAMES),
                dynamic_axes=axes if dynamic_batch else None,
            )
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise EdgeflError(
                f"torch.onnx could not export {type(model).__name__} at opset {opset}: {first} — "
                "check the model's ops against the target opset"
            ) from exc
    proto = onnx.load_from_string(buffer.getvalue())
    check_opset(proto, opset, "the exported graph")
    proto = clean_for_deployment(proto)
    proto.ir_version = min(proto.ir_version, ir_version_for_opset(opset))
    proto.producer_name = "edgefl"
    return proto
