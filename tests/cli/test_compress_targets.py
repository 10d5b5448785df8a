"""`edgefl compress picpq|ghost --target-bops/--target-size/--max-drop` through the installed console script:
a target is met (the JSON says what was asked and what was reached) or refused in one line, exit 2,
before any training. Small: 300 MNIST images, one training epoch, minimal search and QAT."""

import json

import pytest

HANG_S = 1800  # bounds a hang, not a slow machine: under load 30 one compression here takes > 10 min
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3 * HANG_S)]

FAST_PICPQ = "--generations 0 --population 1 --tau-hat 0 --ft-epochs 0 --qat-epochs 1"
HEADLINE = ("bops_ratio", "size_ratio", "accuracy_before", "accuracy_after", "target")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, edgefl, mnist_npz):
    work = tmp_path_factory.mktemp("targets")
    options = "--model resnet20 --epochs 1 --seed 0 --json".split()
    code, out, err = edgefl("train", "--data", mnist_npz(300), "--out", work / "ck", *options, timeout=HANG_S)
    assert code == 0, err
    return work / "ck"


def compress(edgefl, method, checkpoint, out, options: str):
    """(exit code, stdout, stderr) of `edgefl compress METHOD CK --out OUT --json OPTIONS...`."""
    return edgefl("compress", method, checkpoint, "--out", out, "--json", *options.split(), timeout=HANG_S)


def _json(code, out, err):
    assert code == 0, err
    doc = json.loads(out)
    assert all(key in doc for key in HEADLINE)
    return doc


def test_picpq_meets_a_bops_target_and_reports_it(edgefl, checkpoint, tmp_path):
    doc = _json(*compress(edgefl, "picpq", checkpoint, tmp_path / "pq", f"--target-bops 50 {FAST_PICPQ}"))
    t = doc["target"]
    assert t["requested"] == {"bops_ratio": 50.0} and t["met"] is True and t["checks"] == {"bops_ratio": True}
    assert doc["bops_ratio"] >= 50 and t["reached"]["bops_ratio"] == doc["bops_ratio"]
    assert t["knobs"]["predicted_bops"] == pytest.approx(doc["totals"]["bops"])  # the plan's cost is exact
    stages = t["knobs"]["max_bits"][1:]
    assert len(set(stages)) == 1 and 3 <= stages[0] <= 8 and 0 < t["knobs"]["flops_target"] <= 0.9


def test_ghost_meets_bops_and_size_targets_at_once(edgefl, checkpoint, tmp_path):
    options = "--target-bops 40 --target-size 7x --epochs 1"
    doc = _json(*compress(edgefl, "ghost", checkpoint, tmp_path / "g", options))
    t = doc["target"]
    assert t["met"] is True and t["checks"] == {"bops_ratio": True, "size_ratio": True}
    assert doc["bops_ratio"] >= 40 and doc["size_ratio"] >= 7 and t["knobs"]["tau"] == doc["tau"]
    assert t["knobs"]["predicted_bops"] == pytest.approx(doc["totals"]["bops"])


def test_max_drop_of_the_whole_range_is_met_at_the_first_attempt(edgefl, checkpoint, tmp_path):
    options = "--target-bops 30 --max-drop 100 --epochs 1"
    doc = _json(*compress(edgefl, "ghost", checkpoint, tmp_path / "g", options))
    t = doc["target"]
    assert t["met"] is True and len(t["attempts"]) == 1
    assert t["attempts"][0]["drop_points"] == doc["totals"]["accuracy_drop_points"]


@pytest.mark.parametrize(
    "method,options,needle",
    [
        ("ghost", "--target-bops 5000", "--target-bops 5000 is out of reach"),
        ("ghost", "--target-size 1kB", "bits per conv weight"),
        ("picpq", "--target-bops 1e6", "--target-bops 1e+06 is out of reach"),
        ("picpq", "--target-size 100", "--target-size 100 bytes is out of reach"),
        ("picpq", "--target-bops 50 --max-bits 32,4,4,4", "chooses --max-bits"),
        ("ghost", "--target-bops 50 --tau 1", "give the target or tau"),
        ("ghost", "--target-size lots", "--target-size 'lots' is not a size"),
        ("picpq", "--max-drop -1", "--max-drop"),
        ("ghost", "--target-bops 0.5", "--target-bops"),
    ],
)
def test_an_impossible_or_contradictory_target_is_one_line_exit_2(
    edgefl, checkpoint, tmp_path, method, options, needle
):
    code, out, err = compress(edgefl, method, checkpoint, tmp_path / "x", options)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err
    assert needle in json.loads(out)["error"]  # with --json the error is also a JSON document
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_a_missed_target_is_one_line_and_exit_3_after_the_json(capsys):
    from edgefl.cli.common import TARGET_MISSED_EXIT, exit_if_target_missed

    block = {"requested": {"max_drop_points": 0.5}, "met": False, "checks": {"max_drop_points": False},
             "reached": {"drop_points": 0.8, "bops_ratio": 52.0}, "attempts": [{}, {}, {}]}
    with pytest.raises(SystemExit) as exc:
        exit_if_target_missed({"target": block, "checkpoint": "runs/pq"})
    assert exc.value.code == TARGET_MISSED_EXIT == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "0.80 points lost" in err[0] and "3 attempt(s)" in err[0] and "runs/pq" in err[0]
    exit_if_target_missed({"target": {**block, "met": True}, "checkpoint": "x"})  # met: returns
