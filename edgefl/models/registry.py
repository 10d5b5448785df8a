"""The zoo: name → model class. Every zoo classifier has `features(x)` (flattened penultimate activations)
and a final `classifier` nn.Linear; models from elsewhere need not (edgefl.models.head finds their head)."""

import importlib

from edgefl.errors import EdgeflError

# name → "module:callable" (imported on use, so an optional family never breaks the others)
MODELS = {
    "small_cnn": "edgefl.models.small_cnn:SmallCNN",
    "resnet20": "edgefl.models.resnet:resnet20",
    "resnet32": "edgefl.models.resnet:resnet32",
    "resnet56": "edgefl.models.resnet:resnet56",
    "stad_teacher": "edgefl.models.stad_teacher:StadTeacher",
    "stad_student": "edgefl.models.stad_student:StadStudent",
}


def model_names() -> list:
    return sorted(MODELS)


def build_zoo_model(name: str, **args):
    """Build a zoo model by name (edgefl.models.build_model also takes references)."""
    if name not in MODELS:
        raise EdgeflError(f"unknown model '{name}' — choose one of: {', '.join(model_names())}")
    module, attr = MODELS[name].split(":")
    builder = getattr(importlib.import_module(module), attr)
    try:
        return builder(**args)
    except TypeError as e:
        raise EdgeflError(f"model '{name}' does not accept these arguments ({e})"
                          " — check --model-arg") from None
