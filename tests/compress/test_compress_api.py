"""Public API of edgefl.compress: __all__, the restorer registry, one-line errors for bad methods."""

import importlib
import inspect

import pytest

import edgefl.compress as compress
from edgefl.errors import EdgeflError


def test_all_matches_public_names():
    public = {
        n
        for n, obj in vars(compress).items()
        if not n.startswith("_") and inspect.isfunction(obj) and obj.__module__ == compress.__name__
    }
    assert set(compress.__all__) == public | {"RESTORERS"}


def test_every_restorer_resolves():
    for method, target in compress.RESTORERS.items():
        module, func = target.split(":")
        assert callable(getattr(importlib.import_module(module), func)), method


def test_unknown_method_is_an_edgefl_error():
    with pytest.raises(EdgeflError, match="known: "):
        compress.restore_model(None, {"method": "zip"}, {})
