"""`edgefl agent --config`: the host agent joins a federation `edgefl federation init` secured, through the
installed console script and a real Mosquitto running the generated TLS + password + ACL configuration.

With its client's agent.json the agent connects (mutual TLS, its password), HMAC-signs its update (the
aggregator's generated config holds the keyring and refuses unsigned updates), verifies the aggregator's
signed announcements and keeps its state where init put the config. A second agent whose config carries
another aggregator public key refuses every announcement and sends nothing — so the key in the config is
the one the agent checks against."""

import json
import subprocess

import numpy as np
import pytest

from edgefl.runtime.announce import generate_key_pair


@pytest.mark.slow
def test_agent_config_from_federation_init_connects_signs_and_verifies(secured_federation, tmp_path, tool):
    edgefl = tool("edgefl", "the edgefl console script (pip install -e .)")
    fed, bundle = secured_federation("cfg", 2)
    agg_cfg = json.loads(fed.aggregator_config.read_text())
    agg_cfg["aggregator"].update(rounds=1, min_clients=1, deadline_s=8)
    agg_cfg.update(model=str(bundle), timeout_s=60)
    fed.aggregator_config.write_text(json.dumps(agg_cfg))
    good, bad = fed.clients
    forged_cfg = json.loads(fed.agent_configs[bad].read_text())
    forged_cfg["signing"]["aggregator_public_key"] = generate_key_pair()[1]  # not the aggregator's key
    fed.agent_configs[bad].write_text(json.dumps(forged_cfg))
    rng = np.random.RandomState(0)
    data = tmp_path / "local.npz"
    np.savez(data, x=rng.randint(0, 256, (32, 1, 4, 4)).astype(np.uint8), y=rng.randint(0, 3, 32))
    procs = []
    try:
        procs.append(subprocess.Popen([edgefl, "aggregate", "--config", str(fed.aggregator_config), "--json"],
                                      cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for cid, timeout in ((good, 60), (bad, 20)):
            procs.append(subprocess.Popen(
                [edgefl, "agent", "--config", str(fed.agent_configs[cid]), "--bundle", str(bundle), "--data",
                 str(data), "--no-split", "--backend", "onnxruntime", "--timeout", str(timeout), "--json"],
                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            ))
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err.decode()[-3000:]
    summary, mine, forged = (json.loads(out.decode()) for out, _ in outs)
    assert summary["done"] and [h["clients"] for h in summary["history"]] == [[good]]
    assert "rejected update" not in outs[0][1].decode()  # the keyring requires signed updates: it was signed
    assert mine["client_id"] == good and mine["updates_sent"] == 1 and mine["statuses"] == [[1, True, ""]]
    assert (fed.agent_configs[good].parent / "agent_state.safetensors").is_file()  # init's relative path
    assert forged["client_id"] == bad and forged["updates_sent"] == 0 and forged["model_round"] == 0
    assert "bad signature (not made with the aggregator's key)" in outs[2][1].decode()
