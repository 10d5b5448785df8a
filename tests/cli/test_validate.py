"""The pure checks behind every option type, the --out rule and staging, the old spellings, and the
options derived from AggregatorConfig — tested directly (the console script is tested in test_bad_inputs)."""

import dataclasses
import os

import pytest

from edgefl.cli import aliases, derive, validate
from edgefl.cli.staging import relocate, staged
from edgefl.errors import EdgeflError


@pytest.mark.parametrize("call,expected", [
    (lambda: validate.integer("7", 1), 7),
    (lambda: validate.integer(" 0 ", 0, 3), 0),
    (lambda: validate.number("0.5", 0, 1, low_open=True), 0.5),
    (lambda: validate.number("1", 0, 1), 1.0),
    (lambda: validate.port("8883"), 8883),
    (lambda: validate.host("broker.local"), "broker.local"),
    (lambda: validate.host("10.0.0.7"), "10.0.0.7"),
    (lambda: validate.broker_url("mqtts://u:p@broker.local:8883"), "mqtts://u:p@broker.local:8883"),
    (lambda: validate.broker_url("mqtt://127.0.0.1"), "mqtt://127.0.0.1"),
    (lambda: validate.name("orbit-1.a_b", "federation name"), "orbit-1.a_b"),
    (lambda: validate.key_value("rate=0.01"), ("rate", 0.01)),
    (lambda: validate.key_value("init=spec"), ("init", "spec")),
    (lambda: validate.partition("2/10"), (2, 10)),
    (lambda: validate.int_list("1,28,28", 3), (1, 28, 28)),
    (lambda: validate.names("a, b,,c"), ["a", "b", "c"]),
    (lambda: validate.names(""), []),
    (lambda: validate.station("svalbard"), "svalbard"),
    (lambda: validate.station("gs:60:10:10"), {"name": "gs", "lat_deg": 60.0, "lon_deg": 10.0,
                                                 "min_elevation_deg": 10.0}),
    (lambda: validate.model_ref("resnet20"), "resnet20"),
    (lambda: validate.model_ref("mypkg.nets:build"), "mypkg.nets:build"),
    (lambda: validate.dataset("mnist"), "mnist"),
    (lambda: validate.scene("abu-urban-2"), "abu-urban-2"),
    (lambda: validate.choice("fp16", ("fp32", "fp16"), "precision"), "fp16"),
])
def test_good_values_parse(call, expected):
    assert call() == expected


@pytest.mark.parametrize("call,message", [
    (lambda: validate.integer("x", 1), "'x' is not a whole number — pass e.g. 1"),
    (lambda: validate.integer("0", 1), "0 is out of range — pass a whole number ≥ 1"),
    (lambda: validate.integer("9", 1, 8), "pass a whole number ≥ 1 and ≤ 8"),
    (lambda: validate.number("nan"), "not a finite number"),
    (lambda: validate.number("inf", 0), "not a finite number"),
    (lambda: validate.number("0", 0, low_open=True), "pass a number > 0"),
    (lambda: validate.number("-5", 0, low_open=True), "-5 is out of range"),
    (lambda: validate.port("99999"), "not a TCP port — pass a number in 1..65535"),
    (lambda: validate.port("0"), "not a TCP port"),
    (lambda: validate.host("bad host"), "not a host name or IP address"),
    (lambda: validate.broker_url("bogus url"), "not a broker URL"),
    (lambda: validate.broker_url("http://h:1883"), "not a broker URL"),
    (lambda: validate.broker_url("mqtt://h:99999"), "no valid port"),
    (lambda: validate.broker_url("mqtt://h:1883/topic"), "scheme, host and port only"),
    (lambda: validate.name("a+b", "federation name"), "federation name 'a+b' is not a safe MQTT topic level"),
    (lambda: validate.name("sat/#1", "client id"), "client id 'sat/#1'"),
    (lambda: validate.name("", "client id"), "client id ''"),
    (lambda: validate.name("x" * 65, "client id"), "at most 64"),
    (lambda: validate.key_value("rate"), "is not key=value"),
    (lambda: validate.key_value("=3"), "is not key=value"),
    (lambda: validate.partition("0/0"), "COUNT must be ≥ 1"),
    (lambda: validate.partition("3/2"), "INDEX must be in 0..1 for 2 shares"),
    (lambda: validate.partition("a/b"), "is not INDEX/COUNT"),
    (lambda: validate.int_list("1,28", 3), "is not 3 comma-separated whole numbers ≥ 1"),
    (lambda: validate.int_list("0,28,28", 3), "≥ 1"),
    (lambda: validate.names("a,b+c"), "client id 'b+c'"),
    (lambda: validate.station("atlantis"), "unknown ground station 'atlantis'"),
    (lambda: validate.station("gs:100:0"), "latitude in -90..90"),
    (lambda: validate.station("gs:1"), "use a known name or name:lat:lon"),
    (lambda: validate.model_ref("resnet99"), "unknown model 'resnet99' — choose one of"),
    (lambda: validate.model_ref("pkg:"), "not a model reference"),
    (lambda: validate.dataset("nowhere.npz"), "not found: neither a shipped dataset"),
    (lambda: validate.scene("atlantis"), "neither a shipped scene"),
    (lambda: validate.choice("int4", ("fp32", "int8"), "precision"),
     "unknown precision 'int4' — choose one of fp32, int8"),
    (lambda: validate.features("nope"), "neither 'pixels' nor a bundle"),
    (lambda: validate.export_input(__file__), "is a .py file — pass a checkpoint directory or an .onnx"),
])
def test_bad_values_name_problem_and_fix(call, message):
    with pytest.raises(ValueError) as info:
        call()
    assert message in str(info.value) and "\n" not in str(info.value)
    assert " — " in str(info.value)  # the problem, then what to do


def test_paths(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    assert validate.existing(tmp_path, "dir") == tmp_path
    with pytest.raises(ValueError, match="is a file, not a directory"):
        validate.existing(tmp_path / "f.txt", "dir")
    with pytest.raises(ValueError, match="is a directory, not a file"):
        validate.existing(tmp_path, "file")
    with pytest.raises(ValueError, match="not found"):
        validate.existing(tmp_path / "missing")
    assert validate.writable_target(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    with pytest.raises(ValueError, match="is a file"):
        validate.writable_target(tmp_path / "f.txt" / "sub")
    with pytest.raises(ValueError, match="not writable"):
        validate.writable_target("/proc/x")
    with pytest.raises(ValueError, match="empty path"):
        validate.writable_target("")
    assert validate.tarball(tmp_path / "a.tar.gz").name == "a.tar.gz"
    with pytest.raises(ValueError, match="name it"):
        validate.tarball(tmp_path / "a.zip")


def test_out_rule(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    (tmp_path / "f.txt").write_text("x")
    assert validate.out_rule(tmp_path / "new", False)
    assert validate.out_rule(tmp_path / "empty", False)
    with pytest.raises(ValueError, match="exists \\(a non-empty directory\\) — .* pass --force"):
        validate.out_rule(tmp_path / "full", False)
    assert validate.out_rule(tmp_path / "full", True)
    with pytest.raises(ValueError, match="is a file, not a directory"):
        validate.out_rule(tmp_path / "f.txt", True, "dir")
    with pytest.raises(ValueError, match="exists \\(a file\\)"):
        validate.out_rule(tmp_path / "f.txt", False, "file")
    assert validate.out_rule(tmp_path / "f.txt", True, "file")


def test_staged_publishes_whole_or_leaves_nothing(tmp_path):
    out = tmp_path / "deep" / "run"
    with pytest.raises(RuntimeError):
        with staged(out) as stage:
            (stage / "half.txt").write_text("half")
            raise RuntimeError("failed mid-way")
    assert list(tmp_path.iterdir()) == []  # no output, no staging folder, no parent it created
    with staged(out) as stage:
        (stage / "whole.txt").write_text("whole")
    assert os.listdir(out) == ["whole.txt"] and os.listdir(out.parent) == ["run"]
    with pytest.raises(EdgeflError, match="pass --force"):
        with staged(out):
            pass
    with pytest.raises(RuntimeError):
        with staged(out, force=True) as stage:
            raise RuntimeError("the rerun fails")
    assert os.listdir(out) == ["whole.txt"]  # what --force would replace survives a failure
    with staged(out, force=True) as stage:
        (stage / "new.txt").write_text("new")
    assert os.listdir(out) == ["new.txt"] and os.listdir(out.parent) == ["run"]


def test_staged_file_and_in_place(tmp_path):
    page = tmp_path / "report.html"
    with staged(page, kind="file") as stage:
        stage.write_text("<html>")
    assert page.read_text() == "<html>" and os.listdir(tmp_path) == ["report.html"]
    run = tmp_path / "demo"
    with pytest.raises(RuntimeError):
        with staged(run, in_place=True) as target:
            assert target == run
            (target / "run.json").write_text("{}")
            raise RuntimeError("failed")
    assert not run.exists()
    assert relocate({"a": [str(tmp_path / ".x" / "b")], "c": 1}, tmp_path / ".x", tmp_path / "x") == {
        "a": [str(tmp_path / "x" / "b")], "c": 1}


def test_old_spellings_are_rewritten_for_their_command_only():
    argv, notes = aliases.rewrite(["export", "ck", "--batch=4", "--out", "b"])
    assert argv == ["export", "ck", "--batch-size=4", "--out", "b"] and len(notes) == 1
    assert aliases.rewrite(["train", "--batch", "4"]) == (["train", "--batch", "4"], [])
    argv, _ = aliases.rewrite(["federation", "init", "orbit", "-n", "3"])
    assert argv == ["federation", "init", "orbit", "--clients", "3"]
    argv, _ = aliases.rewrite(["simulate", "--", "--satellites"])
    assert argv == ["simulate", "--", "--satellites"]


def test_aggregate_options_are_the_config_fields():
    from edgefl.cli.aggregate import FIELDS, command
    from edgefl.runtime.aggregator import AggregatorConfig

    fields = [f.name for f in dataclasses.fields(AggregatorConfig)]
    params = command.__signature__.parameters
    assert all(name in params for name in fields) and set(FIELDS) <= set(fields)
    docs = derive.attribute_docs(AggregatorConfig)
    assert set(docs) == set(fields), "every AggregatorConfig field has a help line in its docstring"
    values = derive.field_values(AggregatorConfig, {"federation": "f", "codec_options": [("rate", 0.1)],
                                                    "clients": None, "rounds": 3, "model": "x"})
    assert values == {"federation": "f", "codec_options": {"rate": 0.1}, "clients": [], "rounds": 3}
