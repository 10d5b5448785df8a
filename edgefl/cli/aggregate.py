"""`edgefl aggregate`: serve a federation's rounds over MQTT (the runtime's aggregator).

The aggregator's options are the fields of the runtime's ``AggregatorConfig`` (edgefl.cli.derive), with
the choices taken from the codec, strategy and staleness registries; only the connection and the files
are written here.
"""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli import derive, options, validate
from edgefl.cli.common import console, emit_json, mqtt_section, table
from edgefl.cli.derive import param
from edgefl.cli.staging import check_out
from edgefl.errors import EdgeflError
from edgefl.runtime import strategies
from edgefl.runtime.aggregator import AggregatorConfig
from edgefl.runtime.codecs import CODECS

# what AggregatorConfig cannot say itself: flag names, ranges, registries
FIELDS = {
    "federation": {"default": "edgefl", "kind": "name", "what": "federation name"},
    "mode": {"names": ("sync", "async"), "what": "mode"},
    "strategy": {"names": strategies.STRATEGIES, "what": "strategy"},
    "strategy_options": {"flag": "--strategy-option"},
    "codec": {"names": CODECS, "what": "codec"},
    "codec_options": {"flag": "--codec-option"},
    "downlink_codec": {"names": CODECS, "what": "downlink codec"},
    "downlink_options": {"flag": "--downlink-option"},
    "train": {"flag": "--train-option"},
    "rounds": {"low": 0},
    "min_clients": {"low": 1, "default": 2},
    "clients_per_round": {"low": 0},
    "clients": {"flag": "--client-ids", "what": "client id"},
    "deadline_s": {"flag": "--deadline", "low": 0, "low_open": True},
    "server_lr": {"low": 0, "low_open": True},
    "buffer_size": {"low": 1},
    "max_staleness": {"low": 0},
    "staleness_weight": {"names": strategies.STALENESS, "what": "staleness weight"},
    "clip_norm": {"low": 0, "low_open": True},
    "max_norm": {"low": 0, "low_open": True},
    "max_update_bytes": {"low": 1},
    "max_examples": {"low": 1},
    "client_max_examples": {"flag": "--client-max-examples"},
    "seed": {"low": 0},
}


def check_aggregator(values: dict) -> AggregatorConfig:
    """AggregatorConfig from the options, checked (cross-option rules and codec options) before any work."""
    from edgefl.runtime.codecs import make_codec
    from edgefl.runtime.errors import EdgeRuntimeError

    try:
        config = AggregatorConfig(**values).check()
        make_codec(config.codec, **config.codec_options)
        make_codec(config.downlink_codec, **config.downlink_options)
    except (EdgeRuntimeError, TypeError, ValueError) as exc:
        raise EdgeflError(f"{exc} — see `edgefl aggregate --help`") from None
    return config


def evaluation_source(model, eval_data, eval_bundle, eval_checkpoint):
    """(bundle, checkpoint) to score with: the one given, else --model when it is a bundle or a checkpoint."""
    if eval_data is None:
        if eval_bundle or eval_checkpoint:
            raise EdgeflError("--eval-bundle/--eval-checkpoint score on --eval-data: pass the held-out "
                              ".npz too")
        return None, None
    if eval_bundle and eval_checkpoint:
        raise EdgeflError("pass one of --eval-bundle (onnxruntime) or --eval-checkpoint (torch), not both")
    if not Path(eval_data).is_file():
        raise EdgeflError(f"--eval-data {eval_data} not found — pass a held-out .npz with arrays x and y")
    if eval_bundle or eval_checkpoint:
        return eval_bundle, eval_checkpoint
    model = Path(model) if model else None
    if model and (model / "manifest.json").is_file():
        return model, None
    if model and (model / "config.json").is_file():
        return None, model
    raise EdgeflError("--eval-data needs a graph to score with: --eval-bundle B (onnxruntime) or "
                      "--eval-checkpoint C (torch), unless --model is a bundle or a checkpoint")


def run(cfg: dict, quiet: bool, evaluator=None) -> dict:
    """Library call behind the command: runtime errors become EdgeflError."""
    from edgefl.runtime.errors import EdgeRuntimeError
    from edgefl.runtime.service import run_aggregator_from_config, stderr_log

    try:
        return run_aggregator_from_config(cfg, log=None if quiet else stderr_log, evaluator=evaluator)
    except EdgeRuntimeError as exc:
        raise EdgeflError(str(exc)) from None


def check_model(path: Path) -> Path:
    """Initial weights: a checkpoint or bundle directory, or a .safetensors file that reads as one."""
    from edgefl.runtime.config import load_model_tensors
    from edgefl.runtime.errors import EdgeRuntimeError

    try:
        load_model_tensors(str(path))
    except EdgeRuntimeError as exc:
        raise EdgeflError(f"--model {path}: {exc} — pass a checkpoint, a bundle or a .safetensors file "
                          "written by edgefl") from None
    return path


def command(**values):
    """Serve federated rounds over MQTT: announce, collect, validate, aggregate, persist."""
    config_file, as_json, quiet = values["config"], values["as_json"], values["quiet"]
    if config_file is not None:
        from edgefl.runtime.config import load_json
        from edgefl.runtime.errors import EdgeRuntimeError

        try:
            cfg = load_json(str(config_file))
        except EdgeRuntimeError as exc:
            raise EdgeflError(str(exc)) from None
    else:
        if values["model"] is None:
            raise EdgeflError("--model is required (a checkpoint, a bundle or a .safetensors file), or pass "
                              "--config")
        config = check_aggregator(derive.field_values(AggregatorConfig, values))
        check_model(values["model"])
        if values["out"] is not None:
            check_out(values["out"], values["force"], kind="file")
        broker = options.broker_with_legacy(values["broker"], values["host"], values["port"])
        cfg = {
            "aggregator": {k: getattr(config, k) for k in derive.field_values(AggregatorConfig, values)},
            "mqtt": mqtt_section(broker, values["username"], values["password"], values["tls_ca"]),
            "model": str(values["model"]),
            "state_path": str(values["state"]) if values["state"] else None,
            "output": str(values["out"]) if values["out"] else None,
            "max_payload": values["max_payload"],
            "timeout_s": values["timeout"],
        }
    bundle, checkpoint = evaluation_source(cfg.get("model"), values["eval_data"], values["eval_bundle"],
                                           values["eval_checkpoint"])
    if bundle:
        cfg["evaluation"] = {"data": str(values["eval_data"]), "bundle": str(bundle)}
    if values["metrics"]:
        cfg["metrics_path"] = str(values["metrics"])
    for path in (cfg.get("state_path"), cfg.get("output"), cfg.get("metrics_path")):
        if path:  # a path validate.writable_target accepted: its missing folders are ours to make
            Path(path).parent.mkdir(parents=True, exist_ok=True)
    evaluator = None
    if checkpoint:
        from edgefl.fl.central_eval import evaluator_from_checkpoint

        evaluator = evaluator_from_checkpoint(checkpoint, values["eval_data"])
    result = run(cfg, quiet, evaluator)
    if as_json:
        emit_json(result)
        return
    rows = [
        (
            h["round"],
            len(h["clients"]),
            h["num_examples"],
            h["bytes_in"],
            h.get("bytes_down"),
            h["rejected"],
            h["client_metrics"].get("train_loss"),
            (h.get("eval") or {}).get("accuracy"),
            (h.get("eval") or {}).get("loss"),
            h.get("round_s"),
            (h.get("eval") or {}).get("seconds"),
        )
        for h in result["history"]
    ]
    console.print(
        table(
            f"federation {cfg['aggregator']['federation']}: {'done' if result['done'] else 'stopped'}",
            ["round", "clients", "examples", "bytes up", "bytes down", "rejected", "train loss", "accuracy",
             "loss", "round s", "eval s"],
            rows,
        )
    )


derive.with_signature(command, [
    param("model", Path, options.existing(None, "any", "--model", help="Initial weights: checkpoint dir, "
                                           "bundle dir (its head) or .safetensors.")),
    param("broker", str, options.broker("mqtt://127.0.0.1:1883", help="MQTT broker URL (mqtts:// = TLS).")),
    param("username", str, typer.Option("edgefl-aggregator", help="MQTT username (the embedded broker "
                                         "needs one).")),
    param("password", str, typer.Option(None, help="MQTT password.")),
    param("tls_ca", Path, options.existing(None, "file", "--tls-ca",
                                            help="CA certificate: connect with TLS.")),
    *derive.dataclass_options(AggregatorConfig, FIELDS),
    param("state", Path, typer.Option(None, "--state", parser=options.parser_of(validate.writable_target),
                                       help="State file: persisted after every accepted update; resumes.")),
    param("out", Path, typer.Option(None, "--out", "-o", parser=options.parser_of(validate.writable_target),
                                     help="Write the final global model here (.safetensors); new unless "
                                     "--force.")),
    param("force", bool, options.force()),
    param("max_payload", int, options.integer(1 << 20, "--max-payload", low=1024,
                                               help="Chunk MQTT payloads above this many bytes.")),
    param("timeout", float, options.number(None, "--timeout", low=0, low_open=True,
                                            help="Stop after this many seconds (broker wait included).")),
    param("eval_data", Path, options.existing(
        None, "file", "--eval-data", help="Held-out .npz (x, y): score the global model after every round.")),
    param("eval_bundle", Path, options.existing(
        None, "dir", "--eval-bundle", help="Score with this bundle's graph in onnxruntime (default: --model, "
        "if a bundle).")),
    param("eval_checkpoint", Path, options.existing(
        None, "dir", "--eval-checkpoint",
        help="Score with this checkpoint's model in torch (default: --model, if a checkpoint).")),
    param("metrics", Path, typer.Option(
        None, "--metrics", parser=options.parser_of(validate.writable_target),
        help="Append one JSON line per round: time, bytes each way, accuracy, clients, rejections.")),
    param("config", Path, options.existing(None, "file", "--config", help="JSON config (python -m "
                                            "edgefl.runtime format); replaces the flags.")),
    param("as_json", bool, options.as_json()),
    param("quiet", bool, options.quiet()),
    param("host", str, options.legacy_host()),
    param("port", int, options.legacy_port()),
])
