"""`edgefl aggregate`: serve a federation's rounds over MQTT (the runtime's aggregator)."""

from pathlib import Path
from typing import List, Optional

import typer

from edgefl.cli.common import console, emit_json, table
from edgefl.errors import EdgeflError


def aggregate_config(
    *,
    model,
    federation,
    host,
    port,
    username,
    password,
    tls_ca,
    rounds,
    min_clients,
    clients_per_round,
    clients,
    deadline,
    mode,
    strategy,
    codec,
    codec_option,
    train_option,
    downlink_codec="none",
    downlink_option=None,
    buffer_size,
    max_staleness,
    staleness_weight,
    clip_norm,
    max_norm,
    state,
    out,
    max_payload,
    timeout,
    seed,
) -> dict:
    """The runtime config dict (same format as `python -m edgefl.runtime aggregate --config`)."""
    from edgefl.fl.experiment import parse_options

    return {
        "aggregator": {
            "federation": federation,
            "mode": mode,
            "strategy": strategy,
            "codec": codec,
            "codec_options": parse_options(codec_option),
            "downlink_codec": downlink_codec,
            "downlink_options": parse_options(downlink_option),
            "train": parse_options(train_option),
            "rounds": rounds,
            "min_clients": min_clients,
            "clients_per_round": clients_per_round,
            "clients": [c for c in (clients or "").split(",") if c],
            "deadline_s": deadline,
            "buffer_size": buffer_size,
            "max_staleness": max_staleness,
            "staleness_weight": staleness_weight,
            "clip_norm": clip_norm,
            "max_norm": max_norm,
            "seed": seed,
        },
        "mqtt": {
            "host": host,
            "port": port,
            "username": username,
            "password": password,
            "tls": tls_ca is not None,
            "ca_certs": str(tls_ca) if tls_ca else None,
        },
        "model": str(model),
        "state_path": str(state) if state else None,
        "output": str(out) if out else None,
        "max_payload": max_payload,
        "timeout_s": timeout,
    }


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

    def log(level, text):
        if not quiet:
            stderr_log(level, text)

    try:
        return run_aggregator_from_config(cfg, log=log, evaluator=evaluator)
    except EdgeRuntimeError as exc:
        raise EdgeflError(str(exc)) from None


def command(
    model: Path = typer.Option(
        None, help="Initial weights: checkpoint dir, bundle dir (its head) or .safetensors."
    ),
    federation: str = typer.Option("demo", help="Federation name (topics edgefl/<name>/...)."),
    host: str = typer.Option("127.0.0.1", help="MQTT broker host."),
    port: int = typer.Option(1883, help="MQTT broker port."),
    username: str = typer.Option("edgefl-aggregator", help="MQTT username (the embedded broker needs one)."),
    password: Optional[str] = typer.Option(None, help="MQTT password."),
    tls_ca: Optional[Path] = typer.Option(None, help="CA certificate: connect with TLS."),
    rounds: int = typer.Option(10, min=0, help="Rounds (sync) or model versions (async); 0 = forever."),
    min_clients: int = typer.Option(
        2, min=1, help="Quorum: a round closes at the deadline only with this many."
    ),
    clients_per_round: int = typer.Option(
        0, min=0, help="Sample this many clients per round (0 = all / open)."
    ),
    clients: str = typer.Option("", help="Comma-separated known client ids (for sampling)."),
    deadline: float = typer.Option(300.0, help="Seconds a round stays open before closing with the quorum."),
    mode: str = typer.Option("sync", help="sync | async (FedBuff)."),
    strategy: str = typer.Option("fedavg", help="fedavg | median | trimmed_mean (sync mode)."),
    codec: str = typer.Option(
        "none", help="Update codec agents must use: none, fp16, int8, topk, rsdgc, fedfq."
    ),
    codec_option: List[str] = typer.Option(None, help="Codec option key=value (repeatable), e.g. rate=0.01."),
    train_option: List[str] = typer.Option(
        None, help="Local training option key=value, e.g. epochs=1 lr=0.05."
    ),
    downlink_codec: str = typer.Option(
        "none",
        help="Announce each new model as a delta coded by this codec (int8, topk, fedfq, ...), "
        "with a full snapshot retained for clients that missed a version; none = full fp32 models.",
    ),
    downlink_option: List[str] = typer.Option(
        None, help="Downlink codec option key=value (repeatable), e.g. rate=0.05."
    ),
    buffer_size: int = typer.Option(4, min=1, help="Async: updates per new model version (K)."),
    max_staleness: int = typer.Option(3, min=0, help="Async: oldest accepted base version."),
    staleness_weight: str = typer.Option(
        "inv_sqrt_1p", help="Async: inv_sqrt_1p (FedBuff paper) | inv_1p_sqrt."
    ),
    clip_norm: Optional[float] = typer.Option(
        None, help="Clip each update to this L2 norm before aggregating."
    ),
    max_norm: Optional[float] = typer.Option(None, help="Reject updates with a larger L2 norm."),
    state: Optional[Path] = typer.Option(
        None, help="State file: persisted after every accepted update; resumes."
    ),
    out: Optional[Path] = typer.Option(None, help="Write the final global model here (.safetensors)."),
    max_payload: int = typer.Option(1 << 20, help="Chunk MQTT payloads above this many bytes."),
    timeout: Optional[float] = typer.Option(None, help="Stop after this many seconds."),
    seed: int = typer.Option(0, help="Client-sampling seed."),
    eval_data: Optional[Path] = typer.Option(
        None, help="Held-out .npz (x, y): score the global model after every round (version)."
    ),
    eval_bundle: Optional[Path] = typer.Option(
        None, help="Score with this bundle's graph in onnxruntime (default: --model, if a bundle)."
    ),
    eval_checkpoint: Optional[Path] = typer.Option(
        None, help="Score with this checkpoint's model in torch (default: --model, if a checkpoint)."
    ),
    metrics: Optional[Path] = typer.Option(
        None, help="Append one JSON line per round: time, bytes each way, accuracy, clients, rejections."
    ),
    config: Optional[Path] = typer.Option(
        None, help="JSON config (python -m edgefl.runtime format); replaces the flags."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Serve federated rounds over MQTT: announce, collect, validate, aggregate, persist."""
    if config is not None:
        from edgefl.runtime.config import load_json
        from edgefl.runtime.errors import EdgeRuntimeError

        try:
            cfg = load_json(str(config))
        except EdgeRuntimeError as exc:
            raise EdgeflError(str(exc)) from None
    else:
        if model is None:
            raise EdgeflError(
                "--model is required (a checkpoint, a bundle or a .safetensors file), or pass --config"
            )
        cfg = aggregate_config(
            model=model,
            federation=federation,
            host=host,
            port=port,
            username=username,
            password=password,
            tls_ca=tls_ca,
            rounds=rounds,
            min_clients=min_clients,
            clients_per_round=clients_per_round,
            clients=clients,
            deadline=deadline,
            mode=mode,
            strategy=strategy,
            codec=codec,
            codec_option=codec_option,
            train_option=train_option,
            downlink_codec=downlink_codec,
            downlink_option=downlink_option,
            buffer_size=buffer_size,
            max_staleness=max_staleness,
            staleness_weight=staleness_weight,
            clip_norm=clip_norm,
            max_norm=max_norm,
            state=state,
            out=out,
            max_payload=max_payload,
            timeout=timeout,
            seed=seed,
        )
    bundle, checkpoint = evaluation_source(cfg.get("model"), eval_data, eval_bundle, eval_checkpoint)
    if bundle:
        cfg["evaluation"] = {"data": str(eval_data), "bundle": str(bundle)}
    if metrics:
        cfg["metrics_path"] = str(metrics)
    evaluator = None
    if checkpoint:
        from edgefl.fl.central_eval import evaluator_from_checkpoint

        evaluator = evaluator_from_checkpoint(checkpoint, eval_data)
    result = run(cfg, quiet=as_json, evaluator=evaluator)
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
