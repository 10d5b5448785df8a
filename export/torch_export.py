"""torch module -> ONNX ModelProto at a fixed opset, with two named outputs (logits, features).

Uses the TorchScript exporter (``dynamo=False``): in torch 2.13 the default dynamo exporter
silently emits opset 18 when asked for 13 (it logs "Setting ONNX exporter to use operator set version
18 because the requested opset_version 13 is a lower version than we have implementations for", its
down-conversion fails and opset 18 is kept; ``onnx.version_converter`` cannot bring such a model down
either). The opset actually written is checked afterwards anyway.
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


def _pooling_matrix(size_in: int, size_out: int):
    """Row i averages input cells floor(i·n/m) .. ceil((i+1)·n/m) - 1 (torch's adaptive pooling bins)."""
    import numpy as np

    matrix = np.zeros((size_out, size_in), np.float32)
    for i in range(size_out):
        start, end = (i * size_in) // size_out, -((-(i + 1) * size_in) // size_out)
        matrix[i, start:end] = 1.0 / (end - start)
    return matrix


def _adaptive_avg_pool_module():
    import torch

    class MatmulAdaptiveAvgPool2d(torch.nn.Module):
        """AdaptiveAvgPool2d as P_h · X · P_wᵀ with constant matrices.

        The TorchScript exporter refuses adaptive pooling whose output size does not divide the input
        (e.g. SmallCNN's 7×7 -> 4×4); two MatMuls with the bin-averaging matrices compute the same
        values and export at any opset. Spatial sizes are static in the exported graph.
        """

        def __init__(self, output_size):
            super().__init__()
            size = output_size if isinstance(output_size, (tuple, list)) else (output_size, output_size)
            self.output_size = tuple(size)

        def forward(self, x):
            height, width = int(x.shape[-2]), int(x.shape[-1])
            out_h = self.output_size[0] or height
            out_w = self.output_size[1] or width
            if height % out_h == 0 and width % out_w == 0:
                return torch.nn.functional.adaptive_avg_pool2d(x, (out_h, out_w))
            rows = torch.from_numpy(_pooling_matrix(height, out_h)).to(x.dtype)
            cols = torch.from_numpy(_pooling_matrix(width, out_w).T.copy()).to(x.dtype)
            return torch.matmul(torch.matmul(rows, x), cols)

    return MatmulAdaptiveAvgPool2d


def exportable(model):
    """The model with export-hostile modules swapped for equivalent ones (a copy when anything changes)."""
    import copy

    import torch

    if not any(isinstance(m, torch.nn.AdaptiveAvgPool2d) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    replacement = _adaptive_avg_pool_module()
    for name, module in list(model.named_modules()):
        if isinstance(module, torch.nn.AdaptiveAvgPool2d):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, replacement(module.output_size))
    return model


def prepare_for_export(model):
    """The model in its export form: ``edgefl.compress.prepare_for_export`` (the compression core).

    Quantized layers become fake-quant ops in 8-bit container ranges with constant scales and BN is
    folded into them; pruned shapes are already physical; float models pass through.
    """
    from edgefl.compress import prepare_for_export as export_form

    return export_form(model)


def export_metadata(model) -> dict:
    """Per-layer bit widths for ONNX ``metadata_props`` (``edgefl.compress.export_metadata``; {} if float)."""
    from edgefl.compress import export_metadata as bits_metadata

    return dict(bits_metadata(model))


def add_metadata(model: onnx.ModelProto, entries: dict) -> None:
    """Set ONNX ``metadata_props`` (string key/values) in place."""
    existing = {p.key: p for p in model.metadata_props}
    for key, value in sorted(entries.items()):
        if key in existing:
            existing[key].value = str(value)
        else:
            model.metadata_props.add(key=str(key), value=str(value))


def onnx_from_module(
    model, input_shape, opset: int, batch: int = 1, dynamic_batch: bool = False, head: str | None = None
) -> onnx.ModelProto:
    """Export ``model`` to ONNX with outputs (logits, features) and clean the graph for deployment.

    Args:
        model: torch classifier in eval mode (``features(x)`` + ``classifier``, or any model whose
            last nn.Linear — or the module named ``head`` — produces its output).
        input_shape: [C, H, W].
        opset: target opset (the profile's ceiling).
        batch: static batch size (ignored for the exported dimension when ``dynamic_batch``).
        dynamic_batch: make the batch dimension symbolic ("batch").
        head: name of the head module (default: see ``edgefl.models.head.find_head``).

    Returns:
        The cleaned ModelProto (opset checked, IR version lowered to what the opset needs).
    """
    import torch

    from edgefl.models.head import two_headed

    wrapped = two_headed(exportable(model), head).eval()
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
