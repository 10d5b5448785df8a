"""GHOST has one set of defaults: `edgefl compress ghost`'s options take theirs from GhostSettings, and
without --tau, --target-bits, --uniform-bits or a BOPs/size target both pick tau for a mean of
DEFAULT_MEAN_BITS bits (was: the CLI 3.5 mean bits, the library the official tau 0.1)."""

import dataclasses
import inspect

import pytest
import torch

from edgefl.cli import compress_ghost
from edgefl.errors import EdgeflError
from edgefl.ghost import DEFAULT_MEAN_BITS, GhostSettings
from edgefl.ghost.bits import mean_bits
from edgefl.ghost.student import conv_params, hybrid_bits
from edgefl.models import build_model

RENAMED = {"target_bits": "target_mean_bits", "gates": "gate_mode", "train_gates": "trainable_gates"}
NOT_SETTINGS = {"checkpoint", "data", "out", "force", "as_json", "quiet", "min_bits", "max_bits"}


def test_every_cli_default_is_the_settings_default():
    library = GhostSettings()
    params = inspect.signature(compress_ghost.command).parameters
    cli = {RENAMED.get(n, n): p.default.default for n, p in params.items() if n not in NOT_SETTINGS}
    assert cli == {k: getattr(library, k) for k in cli}
    assert (params["min_bits"].default.default, params["max_bits"].default.default) == library.bit_range
    fields = {f.name for f in dataclasses.fields(GhostSettings)}
    assert set(cli) <= fields and f"default: {DEFAULT_MEAN_BITS}" in params["target_bits"].default.help


def test_the_default_rule_is_the_mean_bit_width_and_tau_or_mean_bits_override_it():
    assert GhostSettings().hq_rule() == (None, DEFAULT_MEAN_BITS)
    assert GhostSettings(tau=120.0).hq_rule() == (120.0, None)
    assert GhostSettings(target_mean_bits=5.0).hq_rule() == (None, 5.0)
    with pytest.raises(EdgeflError, match="give one"):
        GhostSettings(tau=120.0, target_mean_bits=5.0).check()

    torch.manual_seed(0)
    model = build_model("resnet20", in_channels=1, num_classes=10)
    bits, tau = hybrid_bits(model, GhostSettings())
    assert (bits, tau) == hybrid_bits(model, GhostSettings(target_mean_bits=DEFAULT_MEAN_BITS))
    mean = mean_bits(bits, conv_params(model))
    assert DEFAULT_MEAN_BITS - 1 < mean <= DEFAULT_MEAN_BITS  # not the official tau's all-8 bits
    assert hybrid_bits(model, GhostSettings(tau=0.1))[0] != bits


def test_tau_and_target_bits_together_are_one_line_exit_2(edgefl, tmp_path):
    code, out, err = edgefl("compress", "ghost", tmp_path, "--tau", "120", "--target-bits", "3", "--out",
                            tmp_path / "g")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--tau, --target-bits" in lines[0] and "Traceback" not in err
    assert not (tmp_path / "g").exists()
