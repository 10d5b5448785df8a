"""Name → model class. Every classifier has `features(x)` (flattened penultimate activations) and a
final `classifier` nn.Linear, so the device can fine-tune the head on features from the engine."""

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


def build_model(name: str, **args):
    """Build a model by zoo name or by reference (package.module:factory, path/to/file.py:factory).

    Args:
        name: zoo name or reference (see edgefl.models.reference).
        args: keyword arguments for the model (e.g. in_channels, num_classes).
    """
    if name not in MODELS:
        from edgefl.models.reference import call_factory, load_factory, resolve_model_reference

        factory, _source = load_factory(resolve_model_reference(name, MODELS))
        return call_factory(factory, args, name)
    module, attr = MODELS[name].split(":")
    builder = getattr(importlib.import_module(module), attr)
    try:
        return builder(**args)
    except TypeError as e:
        raise EdgeflError(f"model '{name}' does not accept these arguments ({e})"
                          " — check --model-arg") from None
