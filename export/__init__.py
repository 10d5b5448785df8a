"""edgefl.export: torch → ONNX per device profile, verification, bundles, TensorRT preparation.

The library calls behind `edgefl export`, importable from here (loaded on first use, so importing
edgefl.export.profiles stays cheap):

    export_module(model, samples, profile=..., out=...)   any nn.Module with sample inputs
    export_checkpoint(ExportRequest(...))                  an edgefl checkpoint directory
    export_onnx(ExportRequest(...))                        an ONNX file
"""

# public name -> module that defines it
_LAZY = {
    "ExportRequest": "edgefl.export.pipeline",
    "ExportResult": "edgefl.export.pipeline",
    "export_checkpoint": "edgefl.export.pipeline",
    "export_module": "edgefl.export.pipeline",
    "export_onnx": "edgefl.export.onnx_in",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'edgefl.export' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LAZY[name]), name)
