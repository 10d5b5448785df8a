"""Model zoo behind a name registry (torch is imported here: this is host-side code)."""

from edgefl.models.registry import MODELS, build_model, model_names

__all__ = ["MODELS", "build_model", "model_names"]
