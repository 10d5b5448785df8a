"""The generated federation security with the TX2 stack: an agent under Python 3.6 (paho-mqtt
1.6, onnxruntime 1.10) and one on this interpreter, both started with `python -m
edgefl.runtime agent` and the configs `edgefl federation init` wrote (mutual TLS with the
federation CA, password, ACL, HMAC key), and the aggregator with its generated config
(keyring: signatures required). The round completes with both signed updates."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.slow
def test_python36_agent_over_generated_tls_acl_and_hmac(secured_federation, tmp_path, python36, edge36_path):
    fed, bundle = secured_federation("tx2", 2)
    rng = np.random.RandomState(0)
    procs = []

    def complete(path: Path, **more) -> Path:
        cfg = json.loads(path.read_text())
        cfg.update(more)
        path.write_text(json.dumps(cfg))
        return path

    agg_cfg = json.loads(fed.aggregator_config.read_text())
    agg_cfg["aggregator"].update(rounds=1, min_clients=2, deadline_s=60)
    fed.aggregator_config.write_text(json.dumps(agg_cfg))
    complete(fed.aggregator_config, model=str(bundle), timeout_s=90)
    env = dict(os.environ, PYTHONPATH=edge36_path)
    try:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "edgefl.runtime", "aggregate", "--config", str(fed.aggregator_config)],
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
        for cid, interpreter in zip(fed.clients, [python36, sys.executable]):
            data = tmp_path / f"{cid}.npz"
            np.savez(data, x=rng.randint(0, 256, (32, 1, 4, 4)).astype(np.uint8), y=rng.randint(0, 3, 32))
            cfg = complete(
                fed.agent_configs[cid],
                bundle=str(bundle),
                data=str(data),
                backend="onnxruntime",
                state_path=str(tmp_path / f"{cid}.state"),
                timeout_s=90,
            )
            procs.append(
                subprocess.Popen(
                    [interpreter, "-m", "edgefl.runtime", "agent", "--config", str(cfg)],
                    cwd=tmp_path,
                    env=env if interpreter == python36 else None,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                )
            )
        outs = [p.communicate(timeout=150) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()[-3000:]
    agg_result = json.loads(outs[0][0].decode().strip().splitlines()[-1])
    assert agg_result["done"] and [h["clients"] for h in agg_result["history"]] == [fed.clients]
    assert "rejected update" not in outs[0][1].decode()
    for out, _ in outs[1:]:
        result = json.loads(out.decode().strip().splitlines()[-1])
        assert result["statuses"] == [[1, True, ""]]
