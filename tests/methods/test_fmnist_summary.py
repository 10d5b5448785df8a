"""bench/fmnist_summary.py: mean ± std over seeds, drops against the same seed's float model, McNemar per
claim on the stored predictions, the bar, and the README block — worked by hand on tiny rows."""

import json

import pytest


@pytest.fixture(scope="module")
def summary(bench_script):
    return bench_script("fmnist_summary")


LABELS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]


def _row(name, seed, preds, bops=1.0, latency=None):
    acc = sum(p == y for p, y in zip(preds, LABELS)) / len(LABELS)
    doc = {
        "row": name,
        "seed": seed,
        "accuracy": acc,
        "bops_ratio": bops,
        "size_ratio": bops / 4,
        "predictions": "".join(map(str, preds)),
    }
    if latency:
        doc["latency"] = latency
    return doc


def _write(tmp_path, docs):
    for d in docs:
        path = tmp_path / f"seed{d['seed']}" / f"{d['row']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(d))


def test_rows_claims_and_bar_by_hand(summary, tmp_path):
    right = list(LABELS)
    one_wrong = [9] + LABELS[1:]  # wrong on image 0
    two_wrong = [9, 9] + LABELS[2:]
    _write(
        tmp_path,
        [
            _row("fp32", 0, right, latency={"b1_p50_ms": 1.0, "b32_p50_ms": 10.0, "bundle_bytes": 2048}),
            _row("fp32", 1, right, latency={"b1_p50_ms": 3.0, "b32_p50_ms": 10.0, "bundle_bytes": 2048}),
            _row("picpq", 0, one_wrong, bops=60.0),
            _row("picpq", 1, two_wrong, bops=62.0),
            _row("magnitude", 0, right, bops=60.0),
        ],
    )
    out = summary.summarise(summary.load_rows(tmp_path), LABELS)
    pq = out["rows"]["picpq"]
    assert pq["seeds"] == [0, 1] and pq["accuracy"] == pytest.approx((85.0, 7.0710678), rel=1e-6)
    assert pq["drop_points"] == pytest.approx((15.0, 7.0710678), rel=1e-6)  # 10 and 20 points lost
    assert pq["bops_ratio"] == pytest.approx((61.0, 1.4142136), rel=1e-6)
    assert out["rows"]["fp32"]["latency_b1_ms"] == (2.0, pytest.approx(1.4142136)) and out["rows"]["fp32"][
        "bundle_kib"
    ] == (2.0, 0.0)
    vs_mag = out["claims"]["picpq vs magnitude"]  # only seed 0 has both rows
    assert vs_mag["seeds"] == [0] and (vs_mag["b"], vs_mag["c"]) == (0, 1) and vs_mag["p"] == 1.0
    vs_fp = out["claims"]["picpq vs fp32"]
    assert (vs_fp["b"], vs_fp["c"]) == (0, 3) and vs_fp["p"] == pytest.approx(0.25)
    assert not vs_fp["significant"] and vs_fp["accuracy_difference_points"] == pytest.approx(-15.0)
    assert out["bars"]["picpq"] == {
        "bops_ratio_at_least": 50,
        "drop_at_most": 1.0,
        "met": False,
        "met_every_seed": False,
        "worst_over_seeds": [60.0, pytest.approx(20.0)],
    }
    text = summary.markdown(out)
    assert (
        "- Bar, PIC-PQ (--target-bops 50): ≥ 50× BOPs at ≤ 1.0 points lost — 61.0× at 15.00 points over "
        "2 seeds: **not met**; not every seed meets it (worst over seeds: 60.0×, 20.00 points)." in text
    )
    assert "| PIC-PQ (--target-bops 50) | 2 | 85.00 ± 7.07 | 15.00 ± 7.07 | 61.0 ± 1.4x |" in text
    assert "| picpq vs fp32 | 2 | -15.00 | 0 / 3 | 0.25 | no |" in text


def test_labels_come_from_the_rows_and_smoke_rows_never_reach_the_readme(summary, tmp_path):
    marks = {"labels": "0123456789", "smoke": 600}
    labelled = {**_row("fp32", 0, LABELS), **marks}
    _write(tmp_path, [labelled, {**_row("picpq", 0, LABELS, bops=60.0), **marks}])
    rows = summary.load_rows(tmp_path)
    assert summary.test_labels(rows) == LABELS
    readme = summary.ROOT / "README.md"
    before = readme.read_text()
    with pytest.raises(SystemExit, match="--smoke rows .*not the study"):
        summary.main(["--results", str(tmp_path), "--out", str(tmp_path / "s.json"), "--readme"])
    assert readme.read_text() == before and not (tmp_path / "s.json").exists()
    summary.main(["--results", str(tmp_path), "--out", str(tmp_path / "s.json")])  # without --readme: fine
    assert json.loads((tmp_path / "s.json").read_text())["rows"]["picpq"]["accuracy"][0] == 100.0
    _write(tmp_path, [{**labelled, "row": "ghost", "labels": "9876543210"}])
    with pytest.raises(SystemExit, match="different test sets"):
        summary.test_labels(summary.load_rows(tmp_path))
