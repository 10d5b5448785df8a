"""Run an aggregator or an agent from a config dict (the JSON files of ``edgefl.runtime.config``).

Shared by ``python -m edgefl.runtime`` on the device and the host CLI (``edgefl aggregate``,
``edgefl agent``), which may pass its own trainer (torch) and log function.
"""

import sys
import time

from edgefl.runtime.errors import EdgeRuntimeError


# Payload bytes the aggregator's client holds unhandled before the broker holds the rest: a
# flood waits at the broker (which drops beyond its queue limit; agents resend what was theirs)
# instead of growing the aggregator's memory.
AGGREGATOR_QUEUE_BYTES = 16 * 1024 * 1024


def stderr_log(level, text):
    sys.stderr.write("[{}] {} {}\n".format(time.strftime("%H:%M:%S"), level, text))
    sys.stderr.flush()


def _round_line(h):
    ev = h.get("eval")
    scored = ", accuracy {:.4f} (loss {:.4f}, evaluated in {:.2f}s)".format(
        ev["accuracy"], ev["loss"], ev["seconds"]) if ev else ""
    return "round {} closed: {} clients, {} bytes in, {} rejected{}".format(
        h["round"], len(h["clients"]), h["bytes_in"], h["rejected"], scored)


def evaluator_from_config(section):
    """The edge evaluator of an ``evaluation`` config section ({"data": .npz, "bundle": dir}), or None."""
    if not section:
        return None
    if not isinstance(section, dict) or "data" not in section or "bundle" not in section:
        raise EdgeRuntimeError("the evaluation section needs \"data\" (held-out .npz) and \"bundle\" "
                               "(the graph to score with); on the host, edgefl aggregate also takes "
                               "--eval-checkpoint")
    from edgefl.runtime.evaluation import bundle_evaluator_from_files

    return bundle_evaluator_from_files(section["bundle"], section["data"],
                                       int(section.get("threads", 1)))


def head_trainer_from_arrays(bundle, x, y, backend="auto", seed=0):
    """A head trainer on the bundle engine's features of local data x (NCHW), labels y; the engine
    runs when the agent's loop prepares it (see ``head_trainer.BundleHeadTrainer``)."""
    from edgefl.runtime.head_trainer import BundleHeadTrainer

    return BundleHeadTrainer(bundle, x, y, backend, seed)


def head_trainer_from_config(cfg):
    """Head mode (the TX2 mode): local .npz data through the bundle's engine."""
    from edgefl.runtime.config import load_npz_data

    x, y = load_npz_data(cfg["data"])
    return head_trainer_from_arrays(cfg["bundle"], x, y, cfg.get("backend", "auto"),
                                    int(cfg.get("seed", 0)))


def _fold_line(log):
    """Build the compiled fold before the first update arrives, log what folds, and have freed
    model-sized buffers go back to the system (``heap``)."""
    from edgefl.runtime import fold_kernel
    from edgefl.runtime.heap import return_freed_memory

    return_freed_memory()
    line = "fold: " + fold_kernel.prepare()
    if log:
        log("info", line)


def run_aggregator_from_config(cfg, log=stderr_log, on_round=None, evaluator=None):
    """Serve a federation until its last round; returns a summary dict.

    Args:
        on_round: called with each closed round's history entry (after evaluation).
        evaluator: scores each new global model (an ``evaluation.Evaluator``); default: the one
            the config's ``evaluation`` section describes, if any. ``metrics_path`` in the config
            names the JSON-lines file of per-round metrics.
    """
    from edgefl.runtime.aggregator import AggregatorConfig
    from edgefl.runtime.config import (AGGREGATE_KEYS, build_dataclass, check_keys, load_model_tensors,
                                       make_transport, save_model_tensors)
    from edgefl.runtime.loops import open_aggregator, serve_aggregator

    check_keys(cfg, AGGREGATE_KEYS, "aggregate")
    acfg = build_dataclass(AggregatorConfig, cfg.get("aggregator"), "aggregator").check()
    if "model" not in cfg:
        raise EdgeRuntimeError("aggregate config needs \"model\" (initial weights)")
    _fold_line(log)
    core = open_aggregator(acfg, load_model_tensors(cfg["model"]), cfg.get("state_path"))
    signing = cfg.get("signing") or {}
    if signing.get("keyring"):  # {"signing": {"keyring": "keyring.json"}}: only HMAC-signed updates
        from edgefl.runtime.signing import Keyring

        core.keyring = Keyring.from_file(signing["keyring"])
    if signing.get("private_key"):  # {"signing": {"private_key": "announce.key"}}: Ed25519
        from edgefl.runtime.announce import AnnouncementSigner

        core.announce_signer = AnnouncementSigner.from_file(signing["private_key"])
    from edgefl.runtime.round_log import CountingTransport, RoundRecorder

    evaluator = evaluator or evaluator_from_config(cfg.get("evaluation"))
    transport = CountingTransport(make_transport(
        cfg.get("client_id", "aggregator-" + acfg.federation), cfg.get("mqtt"),
        cfg.get("max_payload", 1024 * 1024), max_message=acfg.max_update_bytes,
        max_queued_bytes=AGGREGATOR_QUEUE_BYTES))
    recorder = RoundRecorder(core, transport, evaluator, cfg.get("metrics_path"),
                             then=on_round or (lambda h: log and log("info", _round_line(h))))
    try:
        serve_aggregator(core, transport, state_path=cfg.get("state_path"),
                         timeout=cfg.get("timeout_s"), log=log, on_round=recorder,
                         commit_s=float(cfg.get("commit_interval_s") or 0.0))
    finally:
        transport.close()
    if cfg.get("output"):
        save_model_tensors(cfg["output"], core.global_model, {"round": str(core.round)})
    return {"round": core.round, "done": core.done, "history": core.history}


def run_regional_from_config(cfg, log=stderr_log):
    """Run a station's regional aggregator until the root's last round; returns a summary dict."""
    from edgefl.runtime.config import REGIONAL_KEYS, build_dataclass, check_keys, make_transport
    from edgefl.runtime.loops import serve_regional
    from edgefl.runtime.regional import RegionalConfig, RegionalCore
    from edgefl.runtime.signing import Keyring, key_from_hex

    check_keys(cfg, REGIONAL_KEYS, "regional")
    rcfg = build_dataclass(RegionalConfig, cfg.get("regional"), "regional")
    _fold_line(log)
    signing = cfg.get("signing") or {}
    if signing.get("aggregator_public_key"):
        rcfg.announce_key = signing["aggregator_public_key"]
    keyring = Keyring.from_file(signing["keyring"]) if signing.get("keyring") else None
    try:
        key = key_from_hex(signing["station_key"]) if signing.get("station_key") else None
    except ValueError as exc:
        raise EdgeRuntimeError(str(exc))
    core = RegionalCore(rcfg, keyring, key)
    transport = make_transport(cfg.get("client_id", "regional-" + rcfg.station), cfg.get("mqtt"),
                               cfg.get("max_payload", 1024 * 1024),
                               max_message=rcfg.max_update_bytes,
                               max_queued_bytes=AGGREGATOR_QUEUE_BYTES)
    try:
        serve_regional(core, transport, state_path=cfg.get("state_path"),
                       timeout=cfg.get("timeout_s"), log=log,
                       commit_s=float(cfg.get("commit_interval_s") or 0.0))
    finally:
        transport.close()
    return {"station": rcfg.station, "done": core.done, "rejected": core.rejected,
            "partials": [{"round": r, "seq": q, "clients": c} for r, q, c in core.sent]}


def run_agent_from_config(cfg, log=stderr_log, trainer=None):
    """Take part in a federation; head mode (numpy, engine features) unless ``trainer`` is given."""
    from edgefl.runtime.agent import AgentConfig, AgentCore
    from edgefl.runtime.config import AGENT_KEYS, check_keys, load_model_tensors, make_transport
    from edgefl.runtime.loops import run_agent

    check_keys(cfg, AGENT_KEYS, "agent")
    needed = ("federation", "client_id") + (() if trainer else ("bundle", "data"))
    for key in needed:
        if key not in cfg:
            raise EdgeRuntimeError("agent config needs {!r}".format(key))
    if trainer is None:
        trainer = head_trainer_from_config(cfg)
    signing = cfg.get("signing") or {}
    core = AgentCore(AgentConfig(cfg["federation"], cfg["client_id"], int(cfg.get("seed", 0)),
                                 announce_key=signing.get("aggregator_public_key") or "",
                                 max_examples=cfg.get("max_examples") or 0,
                                 resend_s=float(cfg.get("resend_s", 60.0))))
    start = cfg.get("model") or cfg.get("bundle")
    if start:  # the federation's initial model as this client holds it: a first delta applies
        core.preload(load_model_tensors(start))
    transport = make_transport(cfg["client_id"], cfg.get("mqtt"),
                               cfg.get("max_payload", 1024 * 1024),
                               will_topic=core.topics.online(cfg["client_id"]))
    key = signing.get("key")
    if key:  # {"signing": {"key": HEX}}: sign every update (the aggregator holds the keyring)
        from edgefl.runtime.signing import SigningTransport, key_from_hex

        try:
            transport = SigningTransport(transport, key_from_hex(key))
        except ValueError as exc:
            raise EdgeRuntimeError(str(exc))
    try:
        sent = run_agent(core, transport, trainer, state_path=cfg.get("state_path"),
                         timeout=cfg.get("timeout_s"), max_rounds=cfg.get("max_rounds") or None,
                         log=log)
    finally:
        transport.close()
    return {"client_id": cfg["client_id"], "updates_sent": sent, "last_round": core.last_round,
            "model_round": core.model_round, "model_digest": core.model_digest,
            "announcement_bytes": dict(core.received), "statuses": core.statuses}


