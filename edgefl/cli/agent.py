"""`edgefl agent`: take part in a federation from this machine (torch or head-only training)."""

from pathlib import Path
from typing import Optional

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, key_value_table, mqtt_section
from edgefl.runtime.engine import ENGINES
from edgefl.errors import EdgeflError

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"
# what `--config` (the agent.json `edgefl federation init` writes per client) gives this command: who the
# client is, how it reaches the broker and what it trusts; what it trains on comes from the options
CONFIG_KEYS = ("federation", "client_id", "mqtt", "signing", "max_examples", "resend_s", "state_path")
CONNECTION_FLAGS = ("--broker", "--username", "--password", "--tls-ca", "--host", "--port")


def connection(path: Optional[Path], file_cfg: Optional[dict], given: dict) -> dict:
    """The runtime config's federation, client_id, mqtt (+ signing, max_examples, resend_s, state_path from
    a --config file) — from the options alone, or from the file with options that agree with it.

    ``given``: the options as typed, None where not given: federation, client_id and CONNECTION_FLAGS
    (as "broker", "username", ...).
    """
    if file_cfg is None:
        if given["client_id"] is None:
            raise EdgeflError("--client-id is required — or pass --config with this client's agent.json from "
                              "`edgefl federation init`")
        broker = options.broker_with_legacy(given["broker"] or DEFAULT_BROKER, given["host"], given["port"])
        mqtt = mqtt_section(broker, given["username"], given["password"], given["tls_ca"])
        mqtt.setdefault("username", given["client_id"])
        return {"federation": given["federation"] or "edgefl", "client_id": given["client_id"], "mqtt": mqtt}
    where = f"--config {path}"
    other = sorted(k for k in file_cfg if k not in CONFIG_KEYS and not str(k).startswith("_"))
    if other:
        raise EdgeflError(f"{where}: key(s) {', '.join(other)} are not read here — the model, data and run "
                          f"come from the options; keep only {', '.join(CONFIG_KEYS)}")
    clash = [flag for flag in CONNECTION_FLAGS if given[flag[2:].replace("-", "_")] is not None]
    if clash:
        raise EdgeflError(f"{' '.join(clash)} with {where}: the config holds the broker connection — drop "
                          f"{' and '.join(clash)} or edit the config's mqtt section")
    for key in ("federation", "client_id", "mqtt"):
        if not file_cfg.get(key):
            raise EdgeflError(f"{where} has no {key!r} — use the agent.json `edgefl federation init` wrote")
    for key, flag in (("federation", "--federation"), ("client_id", "--client-id")):
        try:
            validate.name(str(file_cfg[key]), f"{where}: {key}")
        except ValueError as exc:
            raise EdgeflError(str(exc)) from None
        if given[key] is not None and given[key] != file_cfg[key]:
            raise EdgeflError(f"{flag} {given[key]} disagrees with {where} ({key} {file_cfg[key]!r}) — drop "
                              f"{flag} or use that client's config")
    for key in ("mqtt", "signing"):
        if not isinstance(file_cfg.get(key, {}), dict):
            raise EdgeflError(f"{where}: {key} must be a JSON object — use the agent.json `edgefl federation "
                              "init` wrote")
    resend = file_cfg.get("resend_s", 60.0)
    if isinstance(resend, bool) or not isinstance(resend, (int, float)) or not resend > 0:
        raise EdgeflError(f"{where}: resend_s {resend!r} — give a number of seconds > 0")
    cfg = {k: file_cfg[k] for k in CONFIG_KEYS if k in file_cfg and k != "state_path"}
    if file_cfg.get("state_path"):  # a relative path is the config's folder's (where init put it)
        cfg["state_path"] = str(path.parent / file_cfg["state_path"])
    return cfg


def read_config(path: Optional[Path]) -> Optional[dict]:
    from edgefl.runtime.config import load_json
    from edgefl.runtime.errors import EdgeRuntimeError

    if path is None:
        return None
    try:
        return load_json(str(path))
    except EdgeRuntimeError as exc:
        raise EdgeflError(f"--config: {exc}") from None


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
    federation: Optional[str] = options.name(
        None, "federation name", "--federation", help="Federation name (topics edgefl/NAME/...); default "
        "edgefl."
    ),
    client_id: Optional[str] = options.name(None, "client id", "--client-id",
                                            help="Stable client id (keeps the persistent MQTT session); "
                                            "required without --config."),
    config: Optional[Path] = options.existing(
        None, "file", "--config", help="This client's agent.json from `edgefl federation init`: its id, "
        "federation, broker connection (TLS, password), update signing key, the aggregator's announcement "
        "key and its declared example count."
    ),
    broker: Optional[str] = options.broker(None, help=f"MQTT broker URL (mqtts:// = TLS), default "
                                           f"{DEFAULT_BROKER}."),
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
    given = {"federation": federation, "client_id": client_id, "broker": broker, "username": username,
             "password": password, "tls_ca": tls_ca, "host": host, "port": port}
    cfg = connection(config, read_config(config), given)
    client_id = cfg["client_id"]
    if state is not None:
        cfg["state_path"] = str(state)
    if cfg.get("state_path"):  # --state passed validate.writable_target: its missing folders are ours to make
        Path(cfg["state_path"]).parent.mkdir(parents=True, exist_ok=True)
    train, _ = local_data(data, partition, alpha, seed, partition_file, client_id, no_split)
    trainer = build_trainer(checkpoint, bundle, backend, train, seed)
    cfg.update({
        "seed": seed,
        "model": str(checkpoint or bundle),  # the initial model: a first coded delta applies to it
        "max_payload": max_payload,
        "max_rounds": max_rounds,
        "timeout_s": timeout,
    })
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
