"""On the device: ``python -m edgefl.runtime agent|aggregate|build-engine --config FILE.json``.

Only the edge stack is needed (numpy, paho-mqtt, onnxruntime or TensorRT). ``build-engine``
is dispatched to ``edgefl.runtime.trt_build:main`` (imported only when asked for).
"""

import argparse
import importlib
import json
import sys
import time

from edgefl.runtime.errors import EdgeRuntimeError


def _log(level, text):
    sys.stderr.write("[{}] {} {}\n".format(time.strftime("%H:%M:%S"), level, text))
    sys.stderr.flush()


def aggregate_main(cfg):
    from edgefl.runtime.aggregator import AggregatorConfig
    from edgefl.runtime.config import (build_dataclass, load_model_tensors, make_transport,
                                       save_model_tensors)
    from edgefl.runtime.loops import open_aggregator, serve_aggregator

    acfg = build_dataclass(AggregatorConfig, cfg.get("aggregator"), "aggregator")
    if "model" not in cfg:
        raise EdgeRuntimeError("aggregate config needs \"model\" (initial weights)")
    core = open_aggregator(acfg, load_model_tensors(cfg["model"]), cfg.get("state_path"))
    keyring = (cfg.get("signing") or {}).get("keyring")
    if keyring:  # {"signing": {"keyring": "keyring.json"}}: only HMAC-signed updates count
        from edgefl.runtime.signing import Keyring

        core.keyring = Keyring.from_file(keyring)
    transport = make_transport(cfg.get("client_id", "aggregator-" + acfg.federation),
                               cfg.get("mqtt"), cfg.get("max_payload", 1024 * 1024))
    try:
        serve_aggregator(core, transport, state_path=cfg.get("state_path"),
                         timeout=cfg.get("timeout_s"), log=_log,
                         on_round=lambda h: _log("info", "round {round} closed: {n} clients, "
                                                 "{bytes_in} bytes in, {rejected} rejected".format(
                                                     n=len(h["clients"]), **h)))
    finally:
        transport.close()
    if cfg.get("output"):
        save_model_tensors(cfg["output"], core.global_model, {"round": str(core.round)})
    return {"round": core.round, "done": core.done, "history": core.history}


def agent_main(cfg):
    from edgefl.runtime.agent import AgentConfig, AgentCore
    from edgefl.runtime.config import load_npz_data, make_transport
    from edgefl.runtime.engine import open_engine, preprocess
    from edgefl.runtime.head_trainer import HeadTrainer, features_from_engine
    from edgefl.runtime.loops import run_agent

    for key in ("federation", "client_id", "bundle", "data"):
        if key not in cfg:
            raise EdgeRuntimeError("agent config needs {!r}".format(key))
    engine = open_engine(cfg["bundle"], cfg.get("backend", "auto"))
    x, y = load_npz_data(cfg["data"])
    name = engine.manifest["inputs"][0]["name"]
    feats = features_from_engine(engine, preprocess(x, engine.manifest.get("preprocessing")),
                                 input_name=name)
    trainer = HeadTrainer(feats, y, seed=int(cfg.get("seed", 0)))
    core = AgentCore(AgentConfig(cfg["federation"], cfg["client_id"], int(cfg.get("seed", 0))))
    transport = make_transport(cfg["client_id"], cfg.get("mqtt"),
                               cfg.get("max_payload", 1024 * 1024))
    key = (cfg.get("signing") or {}).get("key")
    if key:  # {"signing": {"key": HEX}}: sign every update (the aggregator holds the keyring)
        from edgefl.runtime.signing import SigningTransport, key_from_hex

        try:
            transport = SigningTransport(transport, key_from_hex(key))
        except ValueError as exc:
            raise EdgeRuntimeError(str(exc))
    try:
        sent = run_agent(core, transport, trainer, state_path=cfg.get("state_path"),
                         timeout=cfg.get("timeout_s"), max_rounds=cfg.get("max_rounds") or None,
                         log=_log)
    finally:
        transport.close()
    return {"client_id": cfg["client_id"], "updates_sent": sent, "last_round": core.last_round,
            "statuses": core.statuses}


def build_engine_main(argv):
    return importlib.import_module("edgefl.runtime.trt_build").main(argv)


COMMANDS = {"agent": agent_main, "aggregate": aggregate_main}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "build-engine":
        return build_engine_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m edgefl.runtime")
    parser.add_argument("command", choices=sorted(COMMANDS) + ["build-engine"])
    parser.add_argument("--config", required=True, help="JSON config file")
    args = parser.parse_args(argv)
    from edgefl.runtime.config import load_json

    try:
        result = COMMANDS[args.command](load_json(args.config))
    except EdgeRuntimeError as exc:
        sys.stderr.write("error: {}\n".format(exc))
        return 2
    sys.stdout.write(json.dumps(result, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
