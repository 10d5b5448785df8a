"""`edgefl agent`: take part in a federation from this machine (torch or head-only training)."""

from pathlib import Path
from typing import Optional

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, key_value_table, mqtt_section
from edgefl.runtime.engine import ENGINES
from edgefl.errors import EdgeflError


def local_data(data: str, partition: Optional[str], alpha: float, seed: int, partition_file=None,
               client_id: str = "", no_split: bool = False):
    """The agent's examples: the train part of the seeded split (all of `data` with `no_split`), optionally
    one share: INDEX/COUNT of a Dirichlet split, or this client's entry of a partition file."""
    from edgefl.data import load_split
    from edgefl.data.partition_file import client_share
    from edgefl.fl.experiment import client_datasets

    if partition and partition_file:
        raise EdgeflError("pass one of --partition INDEX/COUNT or --partition-file, not both")
    if partition_file and Path(partition_file).is_dir():  # one .npz per client: the data as given
        return client_share(partition_file, client_id, None), None
    split = load_split(data, None, seed, no_split=no_split)
    train, preprocessing = split.train, split.preprocessing
    if partition:
        index, count = partition
        train = client_datasets(train, count, alpha, seed)[index]
    if partition_file:
        train = client_share(partition_file, client_id, train)
    return train, preprocessing


def build_trainer(checkpoint: Optional[Path], bundle: Optional[Path], backend: str, train, seed: int):
    """Torch trainer from a checkpoint (full model) or the numpy head trainer from a bundle."""
    if (checkpoint is None) == (bundle is None):
        raise EdgeflError(
            "pass exactly one of --checkpoint (full model, torch) or --bundle (head only, numpy)"
        )
    if checkpoint is not None:
        from edgefl.fl.torch_trainer import TorchTrainer

        return TorchTrainer.from_checkpoint(checkpoint, train, seed=seed)
    from edgefl.runtime.service import head_trainer_from_arrays

    return head_trainer_from_arrays(str(bundle), train.x, train.y, backend, seed)


def command(
    federation: str = options.federation(),
    client_id: str = options.name(..., "client id", "--client-id",
                                  help="Stable client id (keeps the persistent MQTT session)."),
    broker: str = options.broker("mqtt://127.0.0.1:1883", help="MQTT broker URL (mqtts:// = TLS)."),
    username: Optional[str] = typer.Option(None, help="MQTT username (default: the client id)."),
    password: Optional[str] = typer.Option(None, help="MQTT password."),
    tls_ca: Optional[Path] = options.existing(None, "file", "--tls-ca",
                                              help="CA certificate: connect with TLS."),
    checkpoint: Optional[Path] = options.existing(None, "dir", "--checkpoint",
                                                  help="Train the full model from this checkpoint (torch)."),
    bundle: Optional[Path] = options.existing(None, "dir", "--bundle",
                                              help="Fine-tune only the head on this bundle's features "
                                              "(numpy)."),
    backend: str = options.choice("auto", ("auto", *ENGINES), "backend", "--backend",
                                  help="Inference backend for --bundle."),
    data: str = options.data(),
    partition: Optional[str] = options.partition("--partition", help="Use one non-IID share: INDEX/COUNT, "
                                                 "e.g. 0/10."),
    alpha: float = options.number(0.5, "--alpha", low=0, low_open=True,
                                  help="Dirichlet alpha for --partition."),
    partition_file: Optional[Path] = options.existing(
        None, "any", "--partition-file", help="This client's share: its id's indices in a partition file "
        "(`edgefl data partition`), or CLIENT_ID.npz in a folder."
    ),
    no_split: bool = typer.Option(
        False, "--no-split", help="Use --data as given (hold nothing out); e.g. a user's own training set."
    ),
    seed: int = options.seed(),
    max_rounds: int = options.integer(0, "--max-rounds", low=0,
                                      help="Stop after this many updates (0: until the federation ends)."),
    timeout: Optional[float] = options.number(None, "--timeout", low=0, low_open=True,
                                              help="Stop after this many seconds (broker wait included)."),
    state: Optional[Path] = typer.Option(None, "--state", parser=options.parser_of(validate.writable_target),
                                         help="Agent state file (last round, error-feedback residual)."),
    max_payload: int = options.integer(1 << 20, "--max-payload", low=1024,
                                       help="Chunk MQTT payloads above this many bytes."),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
    host: str = options.legacy_host(),
    port: int = options.legacy_port(),
):
    """Join a federation: pull the global model, train locally, send compressed updates."""
    from edgefl.runtime.errors import EdgeRuntimeError
    from edgefl.runtime.service import run_agent_from_config, stderr_log

    if (checkpoint is None) == (bundle is None):
        raise EdgeflError("pass exactly one of --checkpoint (full model, torch) or --bundle (head only, "
                          "numpy)")
    broker = options.broker_with_legacy(broker, host, port)
    mqtt = mqtt_section(broker, username, password, tls_ca)
    mqtt.setdefault("username", client_id)
    if state is not None:  # a path validate.writable_target accepted: its missing folders are ours to make
        state.parent.mkdir(parents=True, exist_ok=True)
    train, _ = local_data(data, partition, alpha, seed, partition_file, client_id, no_split)
    trainer = build_trainer(checkpoint, bundle, backend, train, seed)
    cfg = {
        "federation": federation,
        "client_id": client_id,
        "seed": seed,
        "mqtt": mqtt,
        "model": str(checkpoint or bundle),  # the initial model: a first coded delta applies to it
        "state_path": str(state) if state else None,
        "max_payload": max_payload,
        "max_rounds": max_rounds,
        "timeout_s": timeout,
    }
    try:
        result = run_agent_from_config(cfg, log=None if quiet else stderr_log, trainer=trainer)
    except EdgeRuntimeError as exc:
        raise EdgeflError(str(exc)) from None
    result["examples"] = len(train)
    if as_json:
        emit_json(result)
        return
    shown = {k: v for k, v in result.items() if k != "statuses"}
    shown["rejected"] = sum(1 for _, ok, _ in result["statuses"] if not ok)
    console.print(key_value_table(f"agent {client_id}", shown))
