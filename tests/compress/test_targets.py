"""Target arithmetic (edgefl.compress.targets) and the max-drop back-off loop of ``run``, by hand."""

from dataclasses import dataclass, replace

import pytest

from edgefl.compress import targets as tg
from edgefl.compress.method import CompressionResult, Method, run
from edgefl.errors import EdgeflError


@pytest.mark.parametrize(
    "text,expected",
    [
        ("150000", (150000.0, None)),
        (150000, (150000.0, None)),
        ("150kB", (150000.0, None)),
        ("146KiB", (146 * 1024.0, None)),
        ("1.5MB", (1.5e6, None)),
        ("12x", (None, 12.0)),
        ("12×", (None, 12.0)),
        (" 8 X ", (None, 8.0)),
    ],
)
def test_parse_size_accepts_bytes_units_and_ratios(text, expected):
    assert tg.parse_size(text) == expected


@pytest.mark.parametrize("bad", ["abc", "-5", "0", "12y", "0.5x", "kB", True])
def test_parse_size_refuses_anything_else_naming_the_option(bad):
    with pytest.raises(EdgeflError, match="--target-size"):
        tg.parse_size(bad)


@dataclass(frozen=True)
class _Settings(tg.TargetSettings):
    seed: int = 0


def test_target_from_settings_and_its_budget():
    assert tg.target_from(_Settings()) is None
    t = tg.target_from(_Settings(target_bops=50, target_size="4x", max_drop=0.5))
    assert (t.bops_ratio, t.size_bytes, t.size_ratio, t.max_drop, t.has_cost) == (50, None, 4.0, 0.5, True)
    b = t.budget(bops_ref=1000.0, size_ref=400.0)
    assert (b.bops, b.size_bytes) == (20.0, 100.0)
    assert b.fits(20.0, 100.0) and not b.fits(20.1, 50) and not b.fits(10, 100.5)
    assert not tg.target_from(_Settings(max_drop=1.0)).has_cost
    assert tg.target_from(_Settings(target_size=2048)).budget(1.0, 1e9).size_bytes == 2048
    assert t.requested() == {"bops_ratio": 50, "size_ratio": 4.0, "max_drop_points": 0.5}


@pytest.mark.parametrize(
    "kw,option",
    [
        ({"target_bops": 0.5}, "--target-bops"),
        ({"target_bops": float("nan")}, "--target-bops"),
        ({"max_drop": -1}, "--max-drop"),
        ({"max_drop": 101}, "--max-drop"),
    ],
)
def test_target_values_out_of_range_are_refused(kw, option):
    with pytest.raises(EdgeflError, match=option):
        tg.target_from(_Settings(**kw))


def test_cost_at_bits_by_hand():
    layers = [
        tg.LayerCost("a", "conv", macs=100, weights=10, other_params=2),
        tg.LayerCost("b", "linear", macs=50, weights=5, other_params=0),
    ]
    bops, size = tg.cost_at_bits(layers, other_bits=64, w_bits={"a": 4}, a_bits={"a": 8})
    assert bops == 100 * 4 * 8 + 50 * 32 * 32
    assert size == (10 * 4 + 2 * 32 + 5 * 32 + 64) / 8


def test_largest_passing_finds_the_threshold_of_a_monotone_test():
    assert tg.largest_passing(0.0, 1.0, lambda x: x <= 0.3, steps=20) == pytest.approx(0.3, abs=1e-5)
    assert tg.largest_passing(0.0, 1.0, lambda x: True) == 1.0
    assert tg.largest_passing(0.5, 1.0, lambda x: x <= 0.3) is None


def test_refuse_names_the_option_and_the_best_reachable():
    t = tg.Target(bops_ratio=100)
    b = t.budget(1000.0, 100.0)
    tg.refuse(t, b, 10.0, 1.0, 1000.0, 100.0, "x")  # 100x reachable: no error
    with pytest.raises(EdgeflError, match=r"--target-bops 100 is out of reach: even x gives 50\.0x"):
        tg.refuse(t, b, 20.0, 1.0, 1000.0, 100.0, "x")
    s = tg.Target(size_bytes=10)
    with pytest.raises(EdgeflError, match="--target-size 10 bytes is out of reach.*at least 20 bytes"):
        tg.refuse(s, s.budget(1.0, 100.0), 1.0, 20.0, 1.0, 100.0, "y")


def _totals(drop, bops_ratio=50.0, size_ratio=8.0):
    return {
        "bops_ratio": bops_ratio,
        "size_bytes": 100.0,
        "size_ratio": size_ratio,
        "accuracy_before": 0.9,
        "accuracy_after": 0.9 - drop / 100,
        "accuracy_drop_points": drop,
    }


def test_report_checks_each_part_of_the_target():
    t = tg.Target(bops_ratio=50, size_ratio=10, max_drop=0.5)
    rep = tg.report(t, _totals(0.4), {"k": 1})
    assert rep["checks"] == {"bops_ratio": True, "size_ratio": False, "max_drop_points": True}
    assert rep["met"] is False and rep["knobs"] == {"k": 1}
    assert rep["reached"]["drop_points"] == 0.4
    assert tg.report(None, _totals(3.0))["met"] is True  # no target: nothing to miss


# --- the back-off loop of run(), on a fake method whose drop is a function of one knob -------------


@dataclass(frozen=True)
class _FakeSettings(tg.TargetSettings):
    aggressiveness: int = 3

    def check(self):
        return self


def _fake_method(drop_of):
    def plan(model, data, s, progress):
        return {"knobs": {"aggressiveness": s.aggressiveness}}

    def apply(model, data, plan, s, progress):
        return CompressionResult(None, {}, [], _totals(drop_of(plan["knobs"]["aggressiveness"])))

    def back_off(s, plan, attempt, target):
        if s.aggressiveness == 0:
            return None
        return replace(s, aggressiveness=s.aggressiveness - 1), None

    return Method("fake", "fake", _FakeSettings, plan, apply, back_off=back_off)


def test_run_backs_off_until_the_drop_is_met():
    method = _fake_method(lambda a: 0.3 * a)  # drops 0.9, 0.6, 0.3
    res = run(method, None, None, _FakeSettings(max_drop=0.5))
    rep = res.extra["target"]
    assert [a["knobs"]["aggressiveness"] for a in rep["attempts"]] == [3, 2, 1]
    assert rep["met"] is True and res.totals["accuracy_drop_points"] == pytest.approx(0.3)


def test_run_reports_failure_with_the_best_attempt_after_max_attempts():
    method = _fake_method(lambda a: {3: 2.0, 2: 1.0, 1: 1.5, 0: 0.1}[a])
    res = run(method, None, None, _FakeSettings(max_drop=0.5))
    rep = res.extra["target"]
    assert len(rep["attempts"]) == tg.MAX_ATTEMPTS == 3
    assert rep["met"] is False and rep["checks"] == {"max_drop_points": False}
    assert res.totals["accuracy_drop_points"] == 1.0  # the smallest drop of the three, not the last


def test_run_stops_when_nothing_gentler_is_left_and_tries_once_without_max_drop():
    method = _fake_method(lambda a: 2.0)
    res = run(method, None, None, _FakeSettings(aggressiveness=0, max_drop=0.5))
    assert len(res.extra["target"]["attempts"]) == 1 and not res.extra["target"]["met"]
    res = run(method, None, None, _FakeSettings(target_bops=10))
    assert res.extra["target"]["attempts"] == [] and res.extra["target"]["checks"] == {"bops_ratio": True}
    assert res.to_dict()["bops_ratio"] == 50.0 and res.to_dict()["target"]["met"] is True
