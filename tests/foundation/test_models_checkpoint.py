import json

import pytest
import torch

from edgefl.checkpoint import load_checkpoint, save_checkpoint
from edgefl.errors import EdgeflError
from edgefl.models import build_model, model_names
from edgefl.runtime.bundle import seal


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("name,params", [("resnet20", 0.27e6), ("resnet32", 0.46e6), ("resnet56", 0.85e6)])
def test_cifar_resnet_sizes_match_the_paper(name, params):
    # He et al. 2016, Table 6: 0.27M, 0.46M, 0.85M parameters (option-A shortcuts, CIFAR-10 head)
    m = build_model(name, in_channels=3, num_classes=10)
    assert abs(n_params(m) - params) / params < 0.02


@pytest.mark.parametrize("name", ["small_cnn", "resnet20"])
def test_features_and_classifier_compose_to_forward(name):
    torch.manual_seed(0)
    m = build_model(name, in_channels=1, num_classes=10).eval()
    x = torch.randn(3, 1, 28, 28)
    f = m.features(x)
    assert f.ndim == 2 and f.shape[1] == m.classifier.in_features
    assert torch.allclose(m.classifier(f), m(x))


def test_shortcut_b_variant_and_registry_errors():
    m = build_model("resnet20", in_channels=1, num_classes=10, shortcut="B")
    assert m(torch.randn(1, 1, 28, 28)).shape == (1, 10)
    with pytest.raises(EdgeflError, match="unknown model 'vgg99'"):
        build_model("vgg99")
    with pytest.raises(EdgeflError, match="does not accept"):
        build_model("small_cnn", depth=3)
    assert {"small_cnn", "resnet20", "resnet32", "resnet56"} <= set(model_names())


def _save(tmp_path):
    torch.manual_seed(0)
    m = build_model("small_cnn", in_channels=1, num_classes=10)
    cfg = {"model": "small_cnn", "model_args": {"in_channels": 1, "num_classes": 10},
           "input_shape": [1, 28, 28], "num_classes": 10}
    return m, save_checkpoint(tmp_path / "ck", m, cfg)


def test_checkpoint_round_trip_is_exact(tmp_path):
    m, path = _save(tmp_path)
    ck = load_checkpoint(path)
    x = torch.randn(2, 1, 28, 28)
    m.eval()
    assert torch.equal(ck.model(x), m(x))
    assert ck.config["format"] == "edgefl.checkpoint" and len(ck.config["files"]["model.safetensors"]) == 64


def test_corrupt_or_tampered_checkpoints_give_one_clear_error(tmp_path):
    _, path = _save(tmp_path)
    w = path / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(EdgeflError, match="model.safetensors fails its sha256"):
        load_checkpoint(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(EdgeflError, match="corrupt"):
        load_checkpoint(path)
    with pytest.raises(EdgeflError, match="not found"):
        load_checkpoint(tmp_path / "nope")


def test_weights_that_do_not_fit_the_architecture(tmp_path):
    _, path = _save(tmp_path)
    cfg = json.loads((path / "config.json").read_text())
    cfg["model_args"]["num_classes"] = 7
    (path / "config.json").write_text(json.dumps(seal(cfg)))  # consistent, but not these weights
    with pytest.raises(EdgeflError, match="does not fit model"):
        load_checkpoint(path)


def test_checkpoint_is_not_a_pickle(tmp_path):
    _, path = _save(tmp_path)
    head = (path / "model.safetensors").read_bytes()[:8]
    n = int.from_bytes(head, "little")
    header = json.loads((path / "model.safetensors").read_bytes()[8 : 8 + n])
    assert "classifier.weight" in header


def test_very_short_training_runs_do_not_break_the_schedule():
    import numpy as np

    from edgefl.data import ArrayData
    from edgefl.train import train_classifier

    x = np.random.default_rng(0).random((6, 1, 28, 28)).astype(np.float32)
    data = ArrayData(x, np.arange(6) % 2)
    m = build_model("small_cnn", in_channels=1, num_classes=2)
    before = m.classifier.weight.detach().clone()
    metrics = train_classifier(m, data, data, epochs=2, batch_size=4, lr=0.01)
    assert metrics["epochs"] == 2 and not torch.equal(before, m.classifier.weight)
