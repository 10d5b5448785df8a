"""Robust aggregation against poisoned clients on a small real task (MNIST subset, softmax
regression in numpy): with 2 of 10 clients (20%) sending scaled or sign-flipped updates,
median, trimmed mean and norm clipping keep test accuracy within 2 points of the clean run,
while plain FedAvg under the same attack is far off (so the attack is real)."""

from collections import OrderedDict

import numpy as np
import pytest

from edgefl.data import load_mnist
from edgefl.runtime.strategies import ClientUpdate, aggregate, update_norm

N_CLIENTS, N_POISONED, ROUNDS, LR, BATCH = 10, 2, 10, 0.1, 50


@pytest.fixture(scope="module")
def task():
    data = load_mnist()
    rng = np.random.RandomState(0)
    order = rng.permutation(len(data.y))
    x = data.x.reshape(len(data.y), -1)
    x = (x - 0.1307) / 0.3081
    train, test = order[:6000], order[6000:8000]
    shards = np.array_split(train, N_CLIENTS)
    return [(x[s], data.y[s]) for s in shards], (x[test], data.y[test])


def _logits(w, x):
    return x @ w["w"] + w["b"]


def _local_delta(w, x, y, seed):
    """One epoch of minibatch SGD on softmax regression; returns local - global."""
    rng = np.random.RandomState(seed)
    lw = OrderedDict((k, v.copy()) for k, v in w.items())
    for idx in np.array_split(rng.permutation(len(y)), len(y) // BATCH):
        z = _logits(lw, x[idx])
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(idx)), y[idx]] -= 1.0
        lw["w"] -= LR * (x[idx].T @ p / len(idx)).astype(np.float32)
        lw["b"] -= LR * p.mean(axis=0).astype(np.float32)
    return OrderedDict((k, lw[k] - w[k]) for k in w)


ATTACKS = {
    "none": lambda d: d,
    "scaled": lambda d: OrderedDict((k, 100.0 * v) for k, v in d.items()),
    "sign_flip": lambda d: OrderedDict((k, -5.0 * v) for k, v in d.items()),
}


def _run(task, strategy, attack, **options):
    """Federated training; clients 0..N_POISONED-1 apply ``attack`` to their honest delta."""
    shards, (xt, yt) = task
    w = OrderedDict([("w", np.zeros((784, 10), np.float32)), ("b", np.zeros(10, np.float32))])
    for rnd in range(ROUNDS):
        updates = []
        for cid, (x, y) in enumerate(shards):
            delta = _local_delta(w, x, y, seed=1000 * rnd + cid)
            if cid < N_POISONED:
                delta = ATTACKS[attack](delta)
            updates.append(ClientUpdate("c%02d" % cid, len(y), delta))
        opts = dict(options)
        if opts.pop("clip", False):  # clip every update to the median norm of the round
            opts["clip_norm"] = float(np.median([update_norm(u.tensors) for u in updates]))
        agg = aggregate(strategy, updates, **opts)
        w = OrderedDict((k, (w[k] + agg[k]).astype(np.float32)) for k in w)
    return float((_logits(w, xt).argmax(axis=1) == yt).mean() * 100.0)


@pytest.fixture(scope="module")
def clean_accuracy(task):
    return _run(task, "fedavg", "none")


DEFENCES = {
    "median": ("median", {}),
    "trimmed_mean": ("trimmed_mean", {"beta": 0.2}),
    "norm_clipping": ("fedavg", {"clip": True}),
}


@pytest.mark.parametrize("attack", ["scaled", "sign_flip"])
@pytest.mark.parametrize("defence", sorted(DEFENCES))
def test_robust_aggregation_within_two_points_of_clean(task, clean_accuracy, defence, attack):
    strategy, options = DEFENCES[defence]
    acc = _run(task, strategy, attack, **options)
    assert clean_accuracy > 85.0  # the task is learnt at all
    assert acc >= clean_accuracy - 2.0, f"{defence} under {attack}: {acc:.2f}% vs clean {clean_accuracy:.2f}%"


@pytest.mark.parametrize("attack", ["scaled", "sign_flip"])
def test_plain_fedavg_is_broken_by_the_same_attack(task, clean_accuracy, attack):
    acc = _run(task, "fedavg", attack)
    assert acc < clean_accuracy - 10.0, (
        f"attack too weak to show anything: {acc:.2f}% vs {clean_accuracy:.2f}%"
    )


def _run_through_aggregator(task, attack, **config):
    """The same federation through the runtime's AggregatorCore and AgentCore (wire messages,
    validation, the configured strategy / clipping / norm bound)."""
    from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult
    from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore, Publish

    shards, (xt, yt) = task
    clients = ["c%02d" % i for i in range(N_CLIENTS)]
    w0 = OrderedDict([("w", np.zeros((784, 10), np.float32)), ("b", np.zeros(10, np.float32))])
    core = AggregatorCore(
        AggregatorConfig(
            "robust", clients=clients, min_clients=N_CLIENTS - N_POISONED, rounds=ROUNDS, **config
        ),
        w0,
    )
    agents = {c: AgentCore(AgentConfig("robust", c)) for c in clients}
    ann = [a for a in core.start(0.0) if isinstance(a, Publish) and a.topic.endswith("/round")][0]
    rejected, now = [], 0.0
    for rnd in range(ROUNDS):
        actions = []
        for i, cid in enumerate(clients):
            job = agents[cid].on_message(ann.topic, ann.payload)
            x, y = shards[i]
            delta = _local_delta(job.global_model, x, y, seed=1000 * rnd + i)
            if i < N_POISONED:
                delta = ATTACKS[attack](delta)
            local = OrderedDict((k, job.global_model[k] + delta[k]) for k in delta)
            topic, payload = agents[cid].on_trained(job, TrainResult(local, len(y), {}))
            actions += core.on_message(topic, payload, now)
        if not any(isinstance(a, Publish) and a.topic.endswith("/round") for a in actions):
            now += core.cfg.deadline_s + 1.0  # the norm bound refused some: close at the deadline
            actions = core.tick(now)
        ann = [a for a in actions if isinstance(a, Publish) and a.topic.endswith("/round")][0]
        rejected.append(core.history[-1]["rejected"])
    return float((_logits(core.global_model, xt).argmax(axis=1) == yt).mean() * 100.0), rejected


@pytest.mark.parametrize(
    "attack,config",
    [
        ("sign_flip", {"strategy": "median"}),
        ("scaled", {"strategy": "trimmed_mean", "strategy_options": {"beta": 0.2}}),
        ("scaled", {"strategy": "fedavg", "max_norm": 5.0}),
    ],
    ids=["median-config", "trimmed-mean-config", "norm-bound-rejects"],
)
def test_robust_aggregation_configured_on_the_aggregator(task, clean_accuracy, attack, config):
    acc, rejected = _run_through_aggregator(task, attack, **config)
    assert acc >= clean_accuracy - 2.0, f"{config} under {attack}: {acc:.2f}% vs clean {clean_accuracy:.2f}%"
    if "max_norm" in config:  # the boosted updates were refused (with a reason), not clipped in
        assert rejected == [N_POISONED] * ROUNDS
