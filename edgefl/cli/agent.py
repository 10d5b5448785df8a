"""`edgefl agent`: take part in a federation from this machine (torch or head-only training)."""

from pathlib import Path
from typing import Optional

import typer

from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.errors import EdgeflError


def local_data(data: str, partition: Optional[str], alpha: float, seed: int, partition_file=None,
               client_id: str = "", no_split: bool = False):
    """The agent's examples: the train part of the seeded split (all of `data` with `no_split`), optionally
    one share: INDEX/COUNT of a Dirichlet split, or this client's entry of a partition file."""
    from edgefl.data import load_split
    from edgefl.data.partition_file import client_share
    from edgefl.fl.experiment import client_datasets, parse_partition

    if partition and partition_file:
        raise EdgeflError("pass one of --partition INDEX/COUNT or --partition-file, not both")
    if partition_file and Path(partition_file).is_dir():  # one .npz per client: the data as given
        return client_share(partition_file, client_id, None), None
    split = load_split(data, None, seed, no_split=no_split)
    train, preprocessing = split.train, split.preprocessing
    if partition:
        index, count = parse_partition(partition)
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
    federation: str = typer.Option("demo", help="Federation name."),
    client_id: str = typer.Option(..., help="Stable client id (keeps the persistent MQTT session)."),
    host: str = typer.Option("127.0.0.1", help="MQTT broker host."),
    port: int = typer.Option(1883, help="MQTT broker port."),
    username: Optional[str] = typer.Option(None, help="MQTT username (default: the client id)."),
    password: Optional[str] = typer.Option(None, help="MQTT password."),
    tls_ca: Optional[Path] = typer.Option(None, help="CA certificate: connect with TLS."),
    checkpoint: Optional[Path] = typer.Option(
        None, help="Train the full model from this checkpoint (torch)."
    ),
    bundle: Optional[Path] = typer.Option(
        None, help="Fine-tune only the head on this bundle's features (numpy)."
    ),
    backend: str = typer.Option(
        "auto", help="Inference backend for --bundle: auto | onnxruntime | tensorrt."
    ),
    data: str = typer.Option("mnist", help="'mnist' (shipped), an .npz file or an image folder."),
    partition: Optional[str] = typer.Option(None, help="Use one non-IID share: INDEX/COUNT, e.g. 0/10."),
    alpha: float = typer.Option(0.5, help="Dirichlet alpha for --partition."),
    partition_file: Optional[Path] = typer.Option(
        None, help="This client's share: its id's indices in a partition file (`edgefl data partition`), "
        "or CLIENT_ID.npz in a folder."
    ),
    no_split: bool = typer.Option(
        False, "--no-split", help="Use --data as given (hold nothing out); e.g. a user's own training set."
    ),
    seed: int = typer.Option(0),
    max_rounds: int = typer.Option(
        0, min=0, help="Stop after this many updates (0: until the federation ends)."
    ),
    timeout: Optional[float] = typer.Option(None, help="Stop after this many seconds."),
    state: Optional[Path] = typer.Option(
        None, help="Agent state file (last round, error-feedback residual)."
    ),
    max_payload: int = typer.Option(1 << 20, help="Chunk MQTT payloads above this many bytes."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Join a federation: pull the global model, train locally, send compressed updates."""
    from edgefl.runtime.errors import EdgeRuntimeError
    from edgefl.runtime.service import run_agent_from_config, stderr_log

    train, _ = local_data(data, partition, alpha, seed, partition_file, client_id, no_split)
    trainer = build_trainer(checkpoint, bundle, backend, train, seed)
    cfg = {
        "federation": federation,
        "client_id": client_id,
        "seed": seed,
        "mqtt": {
            "host": host,
            "port": port,
            "username": username or client_id,
            "password": password,
            "tls": tls_ca is not None,
            "ca_certs": str(tls_ca) if tls_ca else None,
        },
        "model": str(checkpoint or bundle),  # the initial model: a first coded delta applies to it
        "state_path": str(state) if state else None,
        "max_payload": max_payload,
        "max_rounds": max_rounds,
        "timeout_s": timeout,
    }
    try:
        result = run_agent_from_config(cfg, log=None if as_json else stderr_log, trainer=trainer)
    except EdgeRuntimeError as exc:
        raise EdgeflError(str(exc)) from None
    result["examples"] = len(train)
    if as_json:
        emit_json(result)
        return
    shown = {k: v for k, v in result.items() if k != "statuses"}
    shown["rejected"] = sum(1 for _, ok, _ in result["statuses"] if not ok)
    console.print(key_value_table(f"agent {client_id}", shown))
