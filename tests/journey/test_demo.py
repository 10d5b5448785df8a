"""The demo journey end to end with tiny settings (the real demo only differs in sizes)."""

import json
import re

import pytest

from edgefl.demo import STEPS, DemoConfig, run_demo
from edgefl.errors import EdgeflError


@pytest.mark.slow
def test_demo_runs_every_step_and_writes_the_report(tmp_path):
    # 3 h at 1440x made the first new model hang on one contact: a round closes with all 3 sampled
    # satellites (or at the 3 h deadline, never reached in 3 h), and sat-01's only upload chance was
    # its 3.1-minute window at 177 min, 0.13 s of wall time before the run ended; a satellite
    # process a little late under load missed it and no mode had a version. 4.5 h give each mode a
    # second way to its first version (sync: the 3 h deadline with 2 of 3; async: sat-02's upload
    # at 245 min), and at 1200x an 8-minute window is 0.4 s of wall time (lags under load 30: <= 1.1
    # simulated minutes).
    cfg = DemoConfig(train_examples=400, satellites=3, planes=3, hours=4.5, speedup=1200.0, latency_runs=30)
    doc = run_demo(cfg, tmp_path / "run")
    assert [s["name"] for s in doc["steps"]] == [name for name, _ in STEPS]
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    page = str(tmp_path / "run" / "report.html")
    assert doc == dict(run, report=page, report_seconds=doc["report_seconds"])
    assert run["wall_s"] == round(sum(s["seconds"] for s in run["steps"]), 1)  # the one total shown
    facts = run["summary"]
    assert facts["opset"] == 13 and facts["export_precision"] == "int8/onnx"
    assert facts["mean_bits"] <= 4.0 + 1e-6 and facts["bops_ratio"] > 1
    assert (tmp_path / "run" / "agent.tar.gz").stat().st_size == facts["pack_bytes"]
    versions = {k: facts[k] for k in facts if "version" in k}
    assert facts["sync_versions"] >= 1 and facts["async_versions"] >= 1, versions
    page = (tmp_path / "run" / "report.html").read_text()
    assert {"accuracy-vs-time", "contact-timeline", "layers", "latency"} <= set(
        re.findall(r'data-plot="([^"]+)"', page)
    )


def test_demo_refuses_a_used_directory(tmp_path):
    (tmp_path / "x").write_text("keep me")
    with pytest.raises(EdgeflError, match="not empty"):
        run_demo(DemoConfig(), tmp_path)
