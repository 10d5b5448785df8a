"""The CLI adapters: one library call each, --json prints one document, errors are one line."""

import json

from typer.testing import CliRunner

from edgefl.cli.app import build_app, main

runner = CliRunner()


def test_simulate_write_schedule_json(tmp_path):
    out = tmp_path / "s.csv"
    res = runner.invoke(
        build_app(),
        [
            "simulate",
            "--write-schedule",
            str(out),
            "--hours",
            "3",
            "--clients",
            "4",
            "--planes",
            "2",
            "--station",
            "svalbard",
            "--station",
            "gs:60:10:10",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["satellites"] == 4 and doc["stations"] == 2 and doc["contacts"] > 0
    assert out.read_text().startswith("satellite,station,start_s,end_s")


def test_report_json(tmp_path, run_dir):
    res = runner.invoke(build_app(), ["report", str(run_dir), "--out", str(tmp_path / "r.html"), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["bytes"] == (tmp_path / "r.html").stat().st_size > 10_000


def test_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert main(["report", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "not found" in err and "Traceback" not in err
    assert main(["simulate", "--write-schedule", str(tmp_path / "s.json"), "--station", "atlantis"]) == 2
    assert "unknown ground station" in capsys.readouterr().err
    assert main(["pack", "--bundle", str(tmp_path), "--out", str(tmp_path / "a.tar.gz")]) == 2
    assert "edgefl export" in capsys.readouterr().err
