"""Hypothesis properties of the streaming fold: any order, any grouping, bitwise the same."""
from collections import OrderedDict

import numpy as np
import pytest

from edgefl.runtime.aggregator import AggregatorConfig, AggregatorCore

SHAPES = OrderedDict([("b", (3,)), ("w", (4, 5))])  # test_fold.SHAPES, the shapes foldkit folds


hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402

weighted = st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(1, 1000)), min_size=1, max_size=9)


@settings(max_examples=60, deadline=None)
@given(weighted, st.randoms(use_true_random=False), st.integers(1, 4))
def test_any_order_and_any_grouping_give_bitwise_the_same_sum(foldkit, items, rnd, groups):
    k = foldkit
    ups = [(k._update(seed), n) for seed, n in items]
    flat = k._fold()
    for t, n in ups:
        flat.add(t, n, n)
    # Execute: the same updates shuffled and split among regional folds, merged at a root.
    shuffled = list(ups)
    rnd.shuffle(shuffled)
    parts = [k._fold() for _ in range(groups)]
    for i, (t, n) in enumerate(shuffled):
        parts[rnd.randrange(groups)].add(t, n, n)
    root = k._fold()
    for p in parts:
        root.merge(p.exact_sums(), p.weight, p.count)
    # Assert
    assert k._same(k._sums(root), k._sums(flat)) and root.weight == flat.weight
    assert all(root.mean(n).tobytes() == flat.mean(n).tobytes() for n in SHAPES)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(-4, 4), st.integers(1, 500)), min_size=3, max_size=3),
       st.permutations([0, 1, 2]), st.sampled_from(["sync", "async"]))
def test_the_aggregator_gives_bitwise_the_same_model_for_any_arrival_order(items, order, mode):
    from edgefl.runtime.agent import AgentConfig, AgentCore, TrainResult

    model = OrderedDict((n, np.linspace(-1, 1, int(np.prod(s)), dtype=np.float32).reshape(s))
                        for n, s in SHAPES.items())
    cfg = AggregatorConfig("fed", mode=mode, rounds=1, min_clients=3, clients_per_round=3,
                           buffer_size=3)

    def run(sequence):
        agg = AggregatorCore(cfg, model)
        ann = [a for a in agg.start(0.0) if getattr(a, "topic", "").endswith("/round")][0]
        for i in sequence:
            shift, n = items[i]
            agent = AgentCore(AgentConfig("fed", "c{}".format(i)))
            job = agent.on_message(ann.topic, ann.payload)
            local = OrderedDict((k, v + np.float32(shift) * 1e-3 * (1 + v))
                                for k, v in job.global_model.items())
            agg.on_message(*agent.on_trained(job, TrainResult(local, n, {})), now=1.0)
        assert agg.history
        return agg.global_model

    a, b = run([0, 1, 2]), run(order)
    assert all(a[n].tobytes() == b[n].tobytes() for n in SHAPES)
