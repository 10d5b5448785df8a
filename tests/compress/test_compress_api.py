"""Public API of the compression core: __all__, one restorer for every method, one-line errors."""

import inspect

import pytest
import torch

import edgefl.compress as compress
from edgefl.compress.restore import compression_state
from edgefl.errors import EdgeflError
from edgefl.models import build_model


def test_all_matches_public_names():
    public = {
        n
        for n, obj in vars(compress).items()
        if not n.startswith("_") and inspect.isfunction(obj) and obj.__module__ == compress.__name__
    }
    assert set(compress.__all__) == public


def test_a_newer_state_version_is_an_edgefl_error():
    with pytest.raises(EdgeflError, match="has version 2; this edgefl reads"):
        compress.restore_model(None, {"method": "ghost", "version": 2}, {})


def test_a_state_that_does_not_fit_the_model_is_an_edgefl_error():
    model = build_model("small_cnn", in_channels=1, num_classes=10)
    state = compression_state("anything", None, {"no.such.layer": {"w": {"kind": "dorefa", "bits": 4}}})
    with pytest.raises(EdgeflError, match="does not fit the model .* re-create"):
        compress.restore_model(model, state, {})


def test_restore_needs_the_structure_not_the_method_name():
    """A method the core has never heard of restores through the same state format."""
    torch.manual_seed(0)
    model = build_model("small_cnn", in_channels=1, num_classes=10)
    spec = {"w": {"kind": "symmetric", "bits": 4}, "a": {"kind": "range", "bits": 4}}
    restored = compress.restore_model(model, compression_state("brand-new", None, {"body.3": spec}), {})
    assert type(restored.body[3]).__name__ == "QConv2d" and restored.body[3].w_bits == 4
    assert type(restored.body[0]).__name__ == "Conv2d"
