"""`edgefl compress stad` + `edgefl detect` end to end, and the one-line errors for bad scenes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy.io import savemat


def edgefl(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "edgefl.cli.app", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        timeout=timeout,
        env={"OMP_NUM_THREADS": "1", **__import__("os").environ},
    )


def test_compress_writes_checkpoints_and_a_verified_bundle(tiny_stad):
    out, result = tiny_stad
    assert (out / "teacher" / "config.json").is_file() and (out / "student" / "model.safetensors").is_file()
    manifest = json.loads((out / "bundle" / "manifest.json").read_text())
    assert [o["name"] for o in manifest["outputs"]] == ["score"]
    assert manifest["inputs"][0]["shape"] == [1, 10, "height", "width"]
    assert manifest["parity"]["passed"] and manifest["parity"]["max_rel_diff"] < 1e-4
    assert result["teacher_parameters"] > 10 * result["student_parameters"]


def test_detect_with_checkpoint_and_bundle_give_the_same_map(tiny_stad, tmp_path):
    out, _ = tiny_stad
    r1 = edgefl("detect", out / "student", "hydice", "--out", tmp_path / "ckpt", "--json")
    assert r1.returncode == 0, r1.stderr
    r2 = edgefl("detect", out / "bundle", "hydice", "--out", tmp_path / "bundle", "--json")
    assert r2.returncode == 0, r2.stderr
    a, b = json.loads(r1.stdout), json.loads(r2.stdout)
    assert a["score_path"] == "graph-recon" and b["score_path"].startswith("bundle")
    s1 = np.load(a["files"]["score"])
    s2 = np.load(b["files"]["score"])
    assert s1.shape == (100, 80)
    assert np.abs(s1 - s2).max() <= 1e-5 * np.abs(s1).max()
    assert abs(a["metrics"]["auc_df"] - b["metrics"]["auc_df"]) < 1e-4
    for key in ("map", "roc", "metrics"):
        assert (tmp_path / "bundle" / f"hydice_{key}.{'json' if key == 'metrics' else 'png'}").is_file()


def test_detect_prints_a_metrics_table(tiny_stad, tmp_path):
    out, _ = tiny_stad
    r = edgefl("detect", out / "bundle", "abu-beach-4", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert "auc_df" in r.stdout and "auc_ftau" in r.stdout


def _bad_scene(tmp_path, kind):
    rng = np.random.default_rng(0)
    cube = rng.random((20, 20, 12))
    gt = np.zeros((20, 20), np.uint8)
    gt[4, 4] = 1
    if kind == "map shape":
        gt = np.zeros((20, 21), np.uint8)
    elif kind == "NaN":
        cube[:, :, 3] = np.nan
    elif kind == "bands":
        cube = cube[:, :, :5]
    path = tmp_path / f"bad_{kind.replace(' ', '_')}.mat"
    savemat(str(path), {"data": cube, "map": gt})
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("map shape", "ground-truth map is (20, 21) but the cube is (20, 20)"),
        ("NaN", "band(s) [3] contain NaN"),
        ("bands", "only 5 bands but the model uses 10"),
    ],
)
def test_bad_scene_gives_one_clear_line(tiny_stad, tmp_path, kind, message):
    out, _ = tiny_stad
    r = edgefl("detect", out / "bundle", _bad_scene(tmp_path, kind), "--out", tmp_path / "o")
    assert r.returncode == 2
    lines = [line for line in r.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr
    assert message in " ".join(r.stderr.split())
    assert not (tmp_path / "o").exists()
