"""HMAC signatures end to end with the device entry points only: ``python -m edgefl.runtime
aggregate`` with the keyring and ``python -m edgefl.runtime agent`` processes (real bundle,
onnxruntime features, numpy head training) through Mosquitto. An agent whose config holds
another client's key is rejected with a reason; the round closes at its deadline without it."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgefl.runtime import signing

TINY_BUNDLE = Path(__file__).resolve().parents[1] / "runtime" / "data" / "tiny_bundle"


@pytest.mark.slow
def test_signed_round_with_the_runtime_entry_points(fedrun, tmp_path):
    bundle = shutil.copytree(TINY_BUNDLE, tmp_path / "bundle")
    clients = ["sat-a", "sat-b", "sat-c"]
    keys = {c: signing.generate_key() for c in clients}
    (tmp_path / "keyring.json").write_text(json.dumps({"keys": keys}))
    rng = np.random.RandomState(0)
    for c in clients:
        np.savez(
            tmp_path / f"{c}.npz",
            x=rng.randint(0, 256, (40, 1, 4, 4)).astype(np.uint8),
            y=rng.randint(0, 3, 40),
        )
    agg = dict(federation="sig", clients=clients, min_clients=2, rounds=1, deadline_s=3.0)
    aggregator = fedrun.start_aggregator(
        agg, model=str(bundle), signing={"keyring": str(tmp_path / "keyring.json")}
    )
    agents = {}
    for c in clients:
        key = keys["sat-a"] if c == "sat-c" else keys[c]  # sat-c was configured with sat-a's key
        agents[c] = fedrun.start_runtime_agent(
            c,
            federation="sig",
            bundle=str(bundle),
            data=str(tmp_path / f"{c}.npz"),
            signing={"key": key},
            state_path=str(tmp_path / f"{c}.state"),
        )
    assert fedrun.wait_exit(aggregator) == 0, fedrun.log("aggregator")
    result = json.loads(fedrun.log("aggregator").strip().splitlines()[-1])
    assert result["done"] and [h["clients"] for h in result["history"]] == [["sat-a", "sat-b"]]
    assert "rejected update on edgefl/sig/update/sat-c" in fedrun.log("aggregator")
    assert "signature: bad signature" in fedrun.log("aggregator")
    for c, proc in agents.items():
        fedrun.wait_exit(proc)
    statuses = {c: json.loads(fedrun.log(c).strip().splitlines()[-1])["statuses"] for c in clients}
    assert statuses["sat-a"] == [[1, True, ""]] and statuses["sat-b"] == [[1, True, ""]]
    assert statuses["sat-c"] == [[1, False, "signature: bad signature"]]
    final, _ = fedrun.final_model()
    assert set(final) == {"classifier.weight", "classifier.bias"}
