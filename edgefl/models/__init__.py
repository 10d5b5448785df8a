"""Model zoo behind a name registry; models by reference (edgefl.models.reference) and heads (.head)."""

from edgefl.models.reference import build_model
from edgefl.models.registry import MODELS, model_names

__all__ = ["MODELS", "build_model", "model_names"]
