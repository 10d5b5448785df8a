"""What an aggregator keeps in memory between closes: its models are mapped from the round's
persisted models file (never written back), and the close gives the running sum back as it
reads it — with bitwise the same new model as an aggregator that holds everything."""
import hashlib
import os
from collections import OrderedDict

import numpy as np

from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore
from edgefl.runtime.fold import Fold, grid_for
from edgefl.runtime.state_store import StateStore

CLIENTS = ["a", "b", "c"]


def _model():
    rng = np.random.RandomState(0)
    return OrderedDict([("w", (rng.randn(300, 700) * 0.05).astype(np.float32)),
                        ("b", np.zeros(300, np.float32))])


def _updates(core, rounds_seed):
    """One update per client for the core's open round (what agents would send)."""
    announce = [a for a in core.start(0.0) if getattr(a, "topic", "").endswith("/round")][0]
    out, rng = [], np.random.RandomState(rounds_seed)
    for i, cid in enumerate(CLIENTS):
        agent = AgentCore(AgentConfig("fed", cid))
        job = agent.on_message(announce.topic, announce.payload)
        local = OrderedDict((k, v + rng.randn(*v.shape).astype(np.float32) * 1e-2)
                            for k, v in job.global_model.items())
        out.append(agent.on_trained(job, TrainResult(local, 10 + 7 * i, {})))
    return out


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def test_models_are_mapped_from_the_file_and_the_close_never_writes_it(tmp_path):
    cfg = AggregatorConfig("fed", rounds=2, min_clients=3, clients=CLIENTS)
    held = AggregatorCore(cfg, _model())  # keeps everything in memory: the reference
    mapped = AggregatorCore(cfg, _model())
    store = StateStore(str(tmp_path / "agg.state"))
    updates = _updates(held, 1)
    mapped.start(0.0)
    store.save(mapped)
    models_file = store.models_file(mapped)
    before = _sha(models_file)
    # Assert: the models are views of the file's pages, equal to the held ones.
    for name, v in mapped.global_model.items():
        assert not v.flags["OWNDATA"] and v.flags["WRITEABLE"]
        assert np.array_equal(v, held.global_model[name])
    # Execute: the same updates into both; the last one closes round 1.
    for topic, payload in updates:
        held.on_message(topic, payload, 1.0)
        mapped.on_message(topic, payload, 1.0)
    # Assert: bitwise the same new model; the first round's file is as it was written.
    assert mapped.round == held.round == 2
    for name in held.global_model:
        assert mapped.global_model[name].tobytes() == held.global_model[name].tobytes()
    assert mapped.digest == held.digest
    assert os.path.exists(models_file) and _sha(models_file) == before
    # and the new round's file is written and mapped in turn
    store.save(mapped)
    assert store.models_file(mapped) != models_file
    assert not mapped.global_model["w"].flags["OWNDATA"]
    restored = store.load(cfg)
    assert restored.digest == held.digest


def test_the_close_gives_the_sum_back_and_the_mean_is_unchanged():
    shapes = OrderedDict([("w", (1 << 19,))])
    model = OrderedDict([("w", np.ones(1 << 19, np.float32))])
    rng = np.random.RandomState(3)
    fold = Fold(shapes, grid_for(model, 1000))
    for k in range(3):
        fold.add(OrderedDict([("w", (rng.randn(1 << 19) * 1e-2).astype(np.float32))]), 5 + k, 5 + k)
    expected = fold.mean("w").copy()
    got = np.empty(1 << 19, np.float32)
    for s, e, block in fold.mean_blocks("w", release=True):
        got[s:e] = block
    assert got.tobytes() == expected.tobytes()
    # given back: the sum's pages read as zeros now (they were freed, not kept)
    assert not np.any(fold.sums["w"])
