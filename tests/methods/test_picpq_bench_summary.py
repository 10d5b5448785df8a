"""bench/picpq_summary.py: the mean over seeds and the bar on it, worked by hand."""

import json

import pytest



@pytest.fixture(scope="module")
def summary(bench_script):
    return bench_script("picpq_summary")


def _run(seed, picpq_acc, mag_acc, mag_bits, ratio=60.0):
    row = lambda m, acc, r: {  # noqa: E731
        "method": m, "bops_ratio": r, "size_ratio": 10.0, "accuracy": acc, "drop_points": 100 * (0.985 - acc)
    }
    return {
        "settings": {"seed": seed},
        "bar": {"picpq_at_least_magnitude_accuracy": picpq_acc >= mag_acc},
        "rows": [
            row("FP32 ResNet-20", 0.985, 1.0),
            row("PIC-PQ", picpq_acc, ratio),
            row(f"L1 magnitude + uniform {mag_bits}-bit", mag_acc, ratio),
        ],
    }


def test_mean_over_seeds_matches_magnitude_rows_across_bit_widths(summary):
    runs = [_run(0, 0.984, 0.980, 4), _run(1, 0.978, 0.981, 5, ratio=40.0)]
    out = summary.summarise(runs)
    rows = {r["method"]: r for r in out["rows"]}
    assert set(rows) == {"FP32 ResNet-20", "PIC-PQ", "L1 magnitude + uniform, same BOPs"}
    pq = rows["PIC-PQ"]
    assert pq["seeds"] == 2 and pq["accuracy_mean"] == pytest.approx(0.981)
    assert pq["drop_points_mean"] == pytest.approx(0.4) and pq["drop_points_max"] == pytest.approx(0.7)
    assert pq["bops_ratio_mean"] == pytest.approx(50.0)
    # 0.981 vs magnitude 0.9805: ahead on the mean although behind at seed 1
    assert out["bar_on_mean"] == {
        "picpq_bops_ratio_ge_50": True,
        "picpq_drop_le_0_5_points": True,
        "picpq_at_least_magnitude_accuracy": True,
    }
    assert out["bar_per_seed"]["1"]["picpq_at_least_magnitude_accuracy"] is False


def test_bar_fails_when_the_mean_misses(summary):
    out = summary.summarise([_run(0, 0.975, 0.980, 4, ratio=49.0)])
    assert out["bar_on_mean"] == {
        "picpq_bops_ratio_ge_50": False,
        "picpq_drop_le_0_5_points": False,
        "picpq_at_least_magnitude_accuracy": False,
    }


def test_load_runs_orders_by_seed(summary, tmp_path):
    (tmp_path / "picpq_seed2.json").write_text(json.dumps(_run(2, 0.98, 0.98, 4)))
    (tmp_path / "picpq.json").write_text(json.dumps(_run(0, 0.98, 0.98, 4)))
    (tmp_path / "picpq_seed1.json").write_text(json.dumps(_run(1, 0.98, 0.98, 4)))
    assert [r["settings"]["seed"] for r in summary.load_runs(tmp_path)] == [0, 1, 2]
