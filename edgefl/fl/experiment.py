"""Helpers for federated experiments on one host: client data, trainers, a federation in threads.

Everything goes through the real protocol: the runtime's aggregator and agents exchange wire
messages over a transport (Mosquitto, the embedded broker, or the in-memory twin).
"""

import threading
import time
from collections import OrderedDict

import numpy as np

from edgefl.data import ArrayData, partition_dirichlet
from edgefl.errors import EdgeflError
from edgefl.runtime.agent import AgentConfig, AgentCore
from edgefl.runtime.aggregator import AggregatorCore
from edgefl.runtime.errors import EdgeRuntimeError
from edgefl.runtime.loops import run_agent, serve_aggregator


def client_datasets(train: ArrayData, n_clients: int, alpha: float, seed: int = 0) -> list:
    """Non-IID client splits (Dirichlet label skew, every example used once)."""
    return [train.subset(idx) for idx in partition_dirichlet(train.y, n_clients, alpha, seed)]


def parse_options(pairs) -> dict:
    """["lr=0.1", "epochs=2"] -> {"lr": 0.1, "epochs": 2} (values parsed as JSON when possible)."""
    import json

    out = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep or not key:
            raise EdgeflError(f"option {p!r} must look like key=value (e.g. lr=0.05)")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


class TrainLock:
    """Serialises local training across agent threads (keeps a shared machine at one core)."""

    def __init__(self, trainer, lock):
        self.trainer, self.lock = trainer, lock

    def train(self, global_model, options):
        with self.lock:
            return self.trainer.train(global_model, options)


def run_federation(config, global_model, trainers: dict, transport_for, *, timeout=600.0,
                   on_round=None, serial_training=True, preload=True, make_agent=None):
    """Run an aggregator and one agent thread per trainer until the federation ends.

    Args:
        config: AggregatorConfig.
        global_model: initial tensors {name: float32 array}.
        trainers: client id -> Trainer.
        transport_for: client id -> a connected-on-demand Transport (e.g. make_transport).
        on_round: called as on_round(core, history_entry) when a round closes.
        preload: agents start with ``global_model`` (as from their bundle), so the first coded
            delta applies; False: they start empty and fetch the snapshot.
        make_agent: client id -> AgentCore (default: a plain one), e.g. to keep the agents.
    Returns:
        the finished AggregatorCore (history, global_model).
    """
    lock = threading.Lock()
    agents, errors = [], []

    def default_agent(cid):
        return AgentCore(AgentConfig(config.federation, cid, config.seed))

    def agent_thread(cid, trainer):
        transport = transport_for(cid)
        core = (make_agent or default_agent)(cid)
        if preload:
            core.preload(global_model)
        try:
            run_agent(core, transport, TrainLock(trainer, lock) if serial_training else trainer,
                      timeout=timeout)
        except Exception as exc:  # surfaced after the run: a thread cannot raise to the caller
            errors.append((cid, exc))
        finally:
            transport.close()

    for cid, trainer in sorted(trainers.items()):
        t = threading.Thread(target=agent_thread, args=(cid, trainer), daemon=True)
        t.start()
        agents.append(t)
    core = AggregatorCore(config, OrderedDict(global_model))
    transport = transport_for("aggregator-" + config.federation)
    try:
        serve_aggregator(core, transport, timeout=timeout,
                         on_round=(lambda h: on_round(core, h)) if on_round else None)
    except EdgeRuntimeError as exc:
        raise EdgeflError(str(exc)) from None
    finally:
        transport.close()
    end = time.time() + 30
    for t in agents:
        t.join(max(0.0, end - time.time()))
    if errors:
        cid, exc = errors[0]
        raise EdgeflError(f"agent {cid} failed: {exc}")
    if not core.done:
        raise EdgeflError(f"the federation did not finish within {timeout:.0f}s (round {core.round}) — "
                          "raise the timeout or lower min_clients")
    return core


def evaluate_tensors(model, tensors, data: ArrayData, preprocessing) -> dict:
    """Accuracy of a torch model after loading federated tensors into it."""
    from edgefl.fl.torch_trainer import load_federated_tensors
    from edgefl.train import evaluate

    load_federated_tensors(model, tensors)
    return evaluate(model, data, preprocessing)


def bytes_sent_by_clients(core) -> int:
    return int(sum(h["bytes_in"] for h in core.history))


def as_float32(tensors):
    return OrderedDict((k, np.asarray(v, np.float32)) for k, v in tensors.items())
