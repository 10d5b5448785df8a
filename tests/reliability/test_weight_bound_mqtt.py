"""Bounded client weights through a real Mosquitto, on MNIST (softmax regression in numpy).

`edgefl federation init` declares 600 examples per client. Nine honest clients and one that
claims 10^9 examples with a 100x scaled update take part through the runtime's agents, MQTT
transport and aggregator under FedAvg: the liar is rejected (`weight-bound`) every round and
the model stays within 2 accuracy points of the honest-only federation. Without the declared
bound the same attack costs more than 10 points (the attack is real)."""

import json
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.data import load_mnist
from edgefl.runtime.agent import Trainer, TrainResult
from edgefl.runtime.aggregator import AggregatorConfig
from edgefl.security import init_federation

N_CLIENTS, PER_CLIENT, ROUNDS, STEPS, LR = 10, 600, 3, 10, 0.5
LIAR, CLAIM, SCALE = "client-009", 10**9, 100.0


class SoftmaxGD(Trainer):
    """Full-batch gradient descent on softmax regression over the client's shard; a liar
    scales its step by ``scale`` and claims ``claim`` examples."""

    def __init__(self, x, y, scale=1.0, claim=None):
        self.x, self.y, self.scale, self.claim = x, y, scale, claim

    def train(self, global_model, options):
        w = OrderedDict((k, np.array(v, np.float64)) for k, v in global_model.items())
        onehot = np.eye(10)[self.y]
        for _ in range(STEPS):
            z = self.x @ w["w"] + w["b"]
            p = np.exp(z - z.max(axis=1, keepdims=True))
            grad = (p / p.sum(axis=1, keepdims=True) - onehot) / len(self.y)
            w["w"] -= LR * self.x.T @ grad
            w["b"] -= LR * grad.sum(axis=0)
        local = OrderedDict(
            (k, (global_model[k] + self.scale * (w[k] - global_model[k])).astype(np.float32)) for k in w
        )
        return TrainResult(local, self.claim or len(self.y), {})


@pytest.fixture(scope="module")
def mnist():
    data = load_mnist()
    x = ((data.x.reshape(len(data.y), -1) - 0.1307) / 0.3081).astype(np.float32)
    order = np.random.RandomState(1).permutation(len(data.y))
    shards = np.split(order[: N_CLIENTS * PER_CLIENT], N_CLIENTS)
    return [(x[s], data.y[s]) for s in shards], (x[order[-2000:]], data.y[order[-2000:]])


def trainers(mnist, ids):
    shards, _ = mnist
    return {cid: SoftmaxGD(*shards[i], **(dict(scale=SCALE, claim=CLAIM) if cid == LIAR else {}))
            for i, cid in enumerate(ids)}


def accuracy(model, mnist):
    _, (x, y) = mnist
    return float(((x @ model["w"] + model["b"]).argmax(axis=1) == y).mean() * 100.0)


def zeros():
    return OrderedDict([("w", np.zeros((784, 10), np.float32)), ("b", np.zeros(10, np.float32))])


@pytest.mark.slow
def test_a_client_claiming_1e9_examples_cannot_outweigh_the_federation(tmp_path, live, flkit, mnist):
    fed = init_federation("rel", N_CLIENTS, tmp_path / "fed", examples=PER_CLIENT)
    section = json.loads(fed.aggregator_config.read_text())["aggregator"]
    assert section["client_max_examples"] == dict.fromkeys(fed.clients, PER_CLIENT)
    assert all(json.loads(p.read_text())["max_examples"] == PER_CLIENT for p in fed.agent_configs.values())
    config = AggregatorConfig(**dict(section, rounds=ROUNDS, min_clients=N_CLIENTS - 1, deadline_s=2.0))
    by_client = trainers(mnist, fed.clients)

    agents = {cid: live.agent(cid) for cid in [LIAR] + sorted(set(fed.clients) - {LIAR})}
    for cid, agent in agents.items():
        agent.trainer = by_client[cid]
    agg = live.aggregator(config, zeros())
    for rnd in range(1, ROUNDS + 1):  # the liar sends first: it is judged before the round closes
        for agent in agents.values():
            agent.publish(agent.train(agent.job(rnd)))
        agg.wait_round(rnd + 1)
    agg.join()
    for rnd in range(1, ROUNDS + 1):
        for cid, agent in agents.items():
            if cid == LIAR:
                assert agent.status(rnd) == (rnd, False, f"weight-bound: {LIAR!r} claims {CLAIM} examples, "
                                                         f"it declared at most {PER_CLIENT}")
            else:
                assert agent.status(rnd) == (rnd, True, "")
    assert [h["clients"] for h in agg.core.history] == [sorted(set(fed.clients) - {LIAR})] * ROUNDS

    honest = [c for c in fed.clients if c != LIAR]
    honest_only = flkit.reference_run(config, zeros(), [honest] * ROUNDS, by_client).global_model
    unbounded = AggregatorConfig(**dict(section, rounds=ROUNDS, min_clients=N_CLIENTS - 1, deadline_s=2.0,
                                        max_examples=CLAIM, client_max_examples={}))
    attacked = flkit.reference_run(unbounded, zeros(), [fed.clients] * ROUNDS, by_client).global_model
    acc, clean, broken = (accuracy(m, mnist) for m in (agg.core.global_model, honest_only, attacked))
    assert clean > 80.0, f"the honest federation did not learn: {clean:.2f}%"
    assert abs(acc - clean) <= 2.0, f"bounded run {acc:.2f}% vs honest-only {clean:.2f}%"
    assert broken < clean - 10.0, f"attack too weak to show anything: {broken:.2f}% vs {clean:.2f}%"
