"""A classifier's head and features, for any nn.Module: what bundles export as `logits` + `features`.

Zoo models have `features(x)` and a final `classifier` nn.Linear. A user's model need not: its head
is the module named by the user, else its last nn.Linear, and its features are the head's input,
caught by a forward hook. The device fine-tunes that head on those features, so the model's output
must be the head's output (nothing may run after it).
"""

from torch import nn

from edgefl.errors import EdgeflError


def find_head(model, name: str = None):
    """(name, module) of the classifier head: `name` if given, else `classifier` when it is an nn.Linear,
    else the last nn.Linear registered in the model.

    Raises:
        EdgeflError: no such module, or it is not a linear layer.
    """
    modules = dict(model.named_modules())
    if name:
        if name not in modules:
            linear = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
            raise EdgeflError(
                f"model {type(model).__name__} has no module {name!r} — its linear layers are "
                f"{linear or 'none'}; pass one of them as --head"
            )
        if not isinstance(modules[name], nn.Linear):
            raise EdgeflError(
                f"--head {name} is a {type(modules[name]).__name__}, not an nn.Linear — "
                "name the final linear layer"
            )
        return name, modules[name]
    if isinstance(modules.get("classifier"), nn.Linear):
        return "classifier", modules["classifier"]
    linear = [(n, m) for n, m in modules.items() if isinstance(m, nn.Linear)]
    if not linear:
        raise EdgeflError(
            f"model {type(model).__name__} has no nn.Linear head — bundles need a final linear "
            "layer (logits = W·features + b) for on-device fine-tuning; add one"
        )
    return linear[-1]


def _has_zoo_interface(model) -> bool:
    return callable(getattr(model, "features", None)) and isinstance(
        getattr(model, "classifier", None), nn.Linear
    )


class ZooTwoHeaded(nn.Module):
    """features(x) → classifier: the zoo's own interface (the graph edgefl has always exported)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.head_name = "classifier"

    def forward(self, x):
        feats = self.inner.features(x)
        return self.inner.classifier(feats), feats


class HookedTwoHeaded(nn.Module):
    """model(x), with a forward hook on the head that keeps the head's input as the features."""

    def __init__(self, inner, head_name: str):
        super().__init__()
        self.inner = inner
        self.head_name = head_name

    def forward(self, x):
        seen = []
        head = self.inner.get_submodule(self.head_name)
        handle = head.register_forward_hook(lambda _module, args, out: seen.append((args[0], out)))
        try:
            logits = self.inner(x)
        finally:
            handle.remove()
        if len(seen) != 1:
            raise EdgeflError(
                f"head {self.head_name} ran {len(seen)} times in one forward pass — pass "
                "--head NAME of the final linear layer"
            )
        feats, out = seen[0]
        if logits is not out:
            raise EdgeflError(
                f"the model's output is not the output of its head {self.head_name} (something "
                "runs after it) — pass --head NAME of the layer that produces the logits"
            )
        if feats.dim() != 2:
            raise EdgeflError(
                f"head {self.head_name} takes a {feats.dim()}-D input; bundles need N×F features "
                "— flatten before the final linear layer"
            )
        return logits, feats


def two_headed(model, head: str = None) -> nn.Module:
    """Wrap `model` so forward(x) returns (logits, features), features N×F being the head's input.

    Args:
        model: a classifier (eval mode is left to the caller).
        head: name of the head module (None: see `find_head`).
    """
    if head is None and _has_zoo_interface(model):
        return ZooTwoHeaded(model)
    name, _module = find_head(model, head)
    return HookedTwoHeaded(model, name)
