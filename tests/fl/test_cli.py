"""`edgefl broker`, `edgefl aggregate` and `edgefl agent` as a user runs them (subprocesses)."""

import json
import os
import socket
import subprocess
import time

import numpy as np
import pytest

BUNDLE = os.path.join(os.path.dirname(__file__), "..", "runtime", "data", "tiny_bundle")


def edgefl_cmd(tool):
    return [tool("edgefl", "the edgefl console script (pip install -e .)")]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("broker did not come up")


def test_cli_round_in_head_mode_through_the_embedded_broker(tmp_path, tool):
    pytest.importorskip("amqtt")
    pytest.importorskip("onnxruntime")
    cmd = edgefl_cmd(tool)
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "local.npz", x=(rng.random((40, 1, 4, 4)) * 255).astype(np.uint8), y=rng.integers(0, 3, 40)
    )
    held_x, held_y = (rng.random((30, 1, 4, 4)) * 255).astype(np.uint8), rng.integers(0, 3, 30)
    np.savez(tmp_path / "held.npz", x=held_x, y=held_y)
    port = free_port()
    procs = []
    try:
        broker = subprocess.Popen(
            cmd + ["broker", "--port", str(port), "--duration", "120"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(broker)
        wait_port(port)
        common = ["--port", str(port), "--federation", "cli", "--json"]
        agg = subprocess.Popen(
            cmd
            + [
                "aggregate",
                "--model",
                BUNDLE,
                "--rounds",
                "1",
                "--min-clients",
                "2",
                "--clients-per-round",
                "2",
                "--codec",
                "int8",
                "--train-option",
                "epochs=2",
                "--out",
                str(tmp_path / "final.safetensors"),
                "--eval-data",
                str(tmp_path / "held.npz"),
                "--metrics",
                str(tmp_path / "metrics.jsonl"),
                "--timeout",
                "90",
            ]
            + common,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        procs.append(agg)
        agents = [
            subprocess.Popen(
                cmd
                + [
                    "agent",
                    "--client-id",
                    f"a{i}",
                    "--bundle",
                    BUNDLE,
                    "--data",
                    str(tmp_path / "local.npz"),
                    "--partition",
                    f"{i}/2",
                    "--backend",
                    "onnxruntime",
                    "--timeout",
                    "90",
                ]
                + common,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(2)
        ]
        procs += agents
        outs = [p.communicate(timeout=120) for p in agents + [agg]]
        for p, (out, err) in zip(agents + [agg], outs):
            assert p.returncode == 0, err.decode()[-2000:]
        results = [json.loads(o) for o, _ in outs]
        assert [r["updates_sent"] for r in results[:2]] == [1, 1]
        assert results[2]["done"] and sorted(results[2]["history"][0]["clients"]) == ["a0", "a1"]
        assert (tmp_path / "final.safetensors").stat().st_size > 0
        # central evaluation: the bundle (--model) scored the final head on the held-out data
        from edgefl.runtime.config import load_model_tensors
        from edgefl.runtime.evaluation import BundleEvaluator

        scored = results[2]["history"][0]["eval"]
        final = load_model_tensors(str(tmp_path / "final.safetensors"))
        expected = BundleEvaluator(BUNDLE, held_x, held_y).evaluate(final)
        assert scored["examples"] == 30 and scored["accuracy"] == expected["accuracy"]
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [(r["round"], r["clients"], r["accuracy"]) for r in rows] == [(1, 2, expected["accuracy"])]
        from edgefl.report import render_report  # the report reads the same file

        page = render_report(tmp_path).read_text()
        assert "<h2>Federation rounds</h2>" in page and 'data-plot="rounds-accuracy"' in page
        assert f'<td class="num">{expected["accuracy"]:.4g}</td>' in page
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_cli_errors_are_one_line(tmp_path, tool):
    cmd = edgefl_cmd(tool)
    p = subprocess.run(
        cmd + ["aggregate", "--model", str(tmp_path / "nope"), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "Traceback" not in p.stderr and "not found" in p.stderr
    p = subprocess.run(
        cmd + ["aggregate", "--model", BUNDLE, "--codec", "zip", "--port", "1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert p.returncode == 2 and "codec" in p.stderr and "Traceback" not in p.stderr
