"""Compression methods by name: the registry, the Python API a notebook calls, checkpoint in/out.

One function per registry entry, mirroring ``edgefl compress NAME``::

    import edgefl.methods as methods
    from edgefl.compress.method import ClassifierData

    data = ClassifierData(train, test, preprocessing)        # edgefl.data.ArrayData splits
    result = methods.ghost(model, data, epochs=1)             # -> CompressionResult
    result = methods.picpq(model, data, flops_target=0.7)
    result = methods.ghost(model, data, target_bops=40, max_drop=1.0)   # a target picks the knobs
    result.totals["bops_ratio"], result.layers[0], result.model

Keyword options are the fields of the method's settings dataclass (``METHODS[name].settings``; PIC-PQ's
and GHOST's include the targets ``target_bops``, ``target_size``, ``max_drop`` of
``edgefl.compress.targets``; ``result.extra["target"]`` reports them); pass
``settings=`` to give a ready instance instead. ``compress_checkpoint(name, checkpoint, out)`` is the
checkpoint-to-checkpoint call behind the CLI.
"""

from __future__ import annotations

from edgefl.compress.method import CompressionResult, run
from edgefl.methods.checkpoints import compress_checkpoint
from edgefl.methods.registry import METHODS, exporting_method, method_named

__all__ = ["METHODS", "compress", "compress_checkpoint", "exporting_method", "method_named", *METHODS]


def compress(name: str, model, data, settings=None, progress=None, **options) -> CompressionResult:
    """Compress ``model`` with the registry method ``name``.

    Args:
        name: a key of ``METHODS``.
        model: the trained float model (not modified).
        data: ``ClassifierData`` (STAD: a list of ``edgefl.data.HSIScene``).
        settings: an instance of the method's settings (excludes ``options``).
        progress: an ``edgefl.progress`` object (None = silent).
        options: settings fields, e.g. ``epochs=1``.
    Returns:
        the CompressionResult.
    """
    method = method_named(name)
    if settings is not None and options:
        raise TypeError("pass either settings= or keyword options, not both")
    return run(
        method, model, data, settings if settings is not None else method.settings(**options), progress
    )


def _api(name: str):
    def compress_with(model, data, settings=None, progress=None, **options) -> CompressionResult:
        return compress(name, model, data, settings, progress, **options)

    method = METHODS[name]
    compress_with.__name__ = compress_with.__qualname__ = name
    compress_with.__doc__ = (
        f"Compress ``model`` with {method.label} (``edgefl compress {name}``); options are the fields of "
        f"``{method.settings.__name__}``. See ``edgefl.methods.compress``."
    )
    return compress_with


def __getattr__(name: str):
    if name in METHODS:
        return _api(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(METHODS))
