"""The compression methods by name: one line per method (see README, "Extending edgefl").

``edgefl compress NAME`` (for entries with ``command``), the Python API ``edgefl.methods.NAME(...)`` and
the export routing of compressed checkpoints are all built from ``METHODS``. Importing this module
imports each method's entry module only (torch is imported when a method runs).
"""

from __future__ import annotations

from edgefl import baselines, ghost, picpq, stad
from edgefl.compress.method import Method
from edgefl.errors import EdgeflError

METHODS: dict[str, Method] = {
    "picpq": picpq.METHOD,
    "ghost": ghost.METHOD,
    "stad": stad.METHOD,
    "uniform": baselines.UNIFORM,
    "magnitude": baselines.MAGNITUDE,
}


def method_named(name: str) -> Method:
    """The registry entry ``name``, or EdgeflError listing the known names."""
    try:
        return METHODS[name]
    except KeyError:
        raise EdgeflError(f"unknown compression method {name!r} — known: {', '.join(METHODS)}") from None


def exporting_method(checkpoint) -> Method | None:
    """The method whose own exporter handles ``checkpoint`` (None: the generic classifier exporter)."""
    return next((m for m in METHODS.values() if m.export is not None and m.claims(checkpoint)), None)
