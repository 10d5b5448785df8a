"""ResNet-20 trained by `edgefl train` (defaults) on the shipped MNIST split reaches the 98% bar.

About 4–5 minutes on 2 cores, so it is marked slow; CI runs it. bench/train_resnet20.py times the same run.
"""
import json

import pytest

from edgefl.checkpoint import load_checkpoint
from edgefl.cli.app import main
from edgefl.data import MNIST_PREPROCESSING, load_mnist, train_test_split
from edgefl.train import evaluate


@pytest.mark.slow
@pytest.mark.timeout(2400)  # bounds a hang, not a loaded machine (600 s was hit at load average 30)
def test_resnet20_reaches_98_percent(tmp_path, capsys):
    code = main(["train", "--model", "resnet20", "--out", str(tmp_path / "ck"), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0
    assert result["test_accuracy"] >= 0.98
    # the checkpoint reproduces the reported accuracy on the held-out split
    _, test = train_test_split(load_mnist(), 0.2, seed=0)
    ck = load_checkpoint(tmp_path / "ck")
    assert abs(evaluate(ck.model, test, MNIST_PREPROCESSING)["accuracy"] - result["test_accuracy"]) < 1e-9
