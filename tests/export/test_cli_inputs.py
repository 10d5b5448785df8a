"""CLI argument parsing, user sample files, and the --json document."""

import json

import numpy as np
import pytest

from edgefl.cli.app import main
from edgefl.errors import EdgeflError
from edgefl.export.samples import load_samples


def test_user_sample_file_is_split_and_normalised(tmp_path):
    x = np.random.default_rng(0).random((10, 1, 28, 28)).astype(np.float32)
    np.save(str(tmp_path / "s.npy"), x, allow_pickle=False)
    prep = {"mean": [0.5], "std": [0.25]}
    samples = load_samples({"preprocessing": prep}, (1, 28, 28), tmp_path / "s.npy", parity_count=3)
    np.testing.assert_allclose(samples.parity, (x[:3] - 0.5) / 0.25, rtol=1e-6)
    assert len(samples.calibration) == 5  # the second half
    with pytest.raises(EdgeflError, match="model takes"):
        load_samples({"preprocessing": prep}, (3, 28, 28), tmp_path / "s.npy")
    with pytest.raises(EdgeflError, match="pass --samples"):
        load_samples({"preprocessing": prep, "data": None}, (1, 28, 28))


def test_pickled_sample_file_is_refused(tmp_path):
    np.save(str(tmp_path / "p.npy"), np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(EdgeflError, match="cannot read samples"):
        load_samples({}, (1, 28, 28), tmp_path / "p.npy")


def test_json_output_is_one_document(resnet20_checkpoint, tmp_path, capsys):
    code = main(
        [
            "export",
            str(resnet20_checkpoint),
            "--profile",
            "jetson-xavier-nx",
            "--out",
            str(tmp_path / "b"),
            "--parity-samples",
            "16",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    document = json.loads(out)
    assert code == 0 and document["manifest"]["opset"] == 17 and document["bundle"] == str(tmp_path / "b")
    assert document["manifest"]["parity"]["fp32"]["samples"] == 16
