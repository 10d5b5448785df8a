"""`edgefl train`: train a zoo model on a dataset and write a checkpoint."""

import json
from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.errors import EdgeflError
from edgefl.progress import progress_for


def _model_args(pairs):
    args = {}
    for p in pairs or []:
        key, sep, value = p.partition("=")
        if not sep:
            raise EdgeflError(f"--model-arg {p!r} must look like key=value (e.g. width=2)")
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError:
            args[key] = value
    return args


def command(
    model: str = typer.Option("resnet20", help="Model name from the zoo (edgefl train --help lists them)."),
    data: str = typer.Option("mnist", help="'mnist' (shipped), 'fashion-mnist' (apt-get install "
                             "dataset-fashion-mnist), an .npz file, an image folder or a folder of idx "
                             "files."),
    out: Path = typer.Option(Path("runs/train"), help="Checkpoint directory to write."),
    epochs: int = typer.Option(5, min=1),
    lr: float = typer.Option(0.05, help="Peak learning rate of the one-cycle schedule."),
    batch_size: int = typer.Option(128, min=1),
    test_fraction: float = typer.Option(None, help="Hold out this fraction, stratified (default: the "
                                        "dataset's official test split if it has one, else 0.2)."),
    seed: int = typer.Option(0),
    model_arg: list[str] = typer.Option(None, help="Extra model argument key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Train a model on this machine with progress bars; write a safetensors checkpoint and metrics."""
    from edgefl.train_checkpoint import train_to_checkpoint

    with progress_for(not as_json) as progress:
        result = train_to_checkpoint(out, model=model, data=data, epochs=epochs, lr=lr,
                                     batch_size=batch_size, test_fraction=test_fraction, seed=seed,
                                     model_args=_model_args(model_arg),
                                     progress=progress)
    if as_json:
        emit_json(result)
        return
    shown = {k: v for k, v in result.items() if k != "history"}
    console.print(key_value_table(f"trained {model} on {data}", shown))
