"""A federated round with torch agents through the embedded amqtt broker (edgefl broker)."""
import socket

import numpy as np
import pytest

pytest.importorskip("amqtt")
torch = pytest.importorskip("torch")

from edgefl.broker import EmbeddedBroker  # noqa: E402
from edgefl.data import ArrayData  # noqa: E402
from edgefl.fl.experiment import run_federation  # noqa: E402
from edgefl.fl.torch_trainer import TorchTrainer, federated_tensors  # noqa: E402
from edgefl.models import build_model  # noqa: E402
from edgefl.runtime.aggregator import AggregatorConfig  # noqa: E402
from edgefl.runtime.config import make_transport  # noqa: E402
from edgefl.runtime.transport.paho_mqtt import MqttOptions  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fedfq_round_through_the_embedded_broker():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    init = federated_tensors(build_model("small_cnn", num_classes=3, width=8, hidden=16))
    trainers = {}
    for i in range(3):
        x = rng.random((24, 1, 28, 28)).astype(np.float32)
        trainers[f"c{i}"] = TorchTrainer(build_model("small_cnn", num_classes=3, width=8, hidden=16),
                                         ArrayData(x, rng.integers(0, 3, 24)), seed=i)
    cfg = AggregatorConfig("amqtt", rounds=2, min_clients=3, clients_per_round=3, deadline_s=60,
                           codec="fedfq", codec_options={"rate": 0.05}, train={"epochs": 1, "lr": 0.05})
    port = free_port()
    with EmbeddedBroker(port=port):
        opts = MqttOptions(port=port, username="edgefl")  # amqtt drops anonymous sessions
        core = run_federation(cfg, init, trainers, lambda cid: make_transport(cid, opts, 64 * 1024),
                              timeout=90)
    assert core.done and [sorted(h["clients"]) for h in core.history] == [["c0", "c1", "c2"]] * 2
    assert all(h["rejected"] == 0 for h in core.history)
    fp32 = 4 * sum(v.size for v in init.values())
    assert all(h["bytes_in"] < 3 * fp32 / 5 for h in core.history)  # compressed on the wire
    assert any(not np.array_equal(core.global_model[k], init[k]) for k in init)
