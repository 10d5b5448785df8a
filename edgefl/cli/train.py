"""`edgefl train`: train a model (zoo name or reference) on a dataset and write a checkpoint."""

from pathlib import Path

from edgefl.cli import options
from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.cli.staging import relocate, staged
from edgefl.progress import progress_for


def command(
    model: str = options.model(),
    data: str = options.data(),
    out: Path = options.out(Path("runs/train"), "Checkpoint directory to write."),
    force: bool = options.force(),
    epochs: int = options.integer(5, "--epochs", low=1),
    lr: float = options.number(0.05, "--lr", low=0, low_open=True, help="Peak learning rate (one-cycle)."),
    batch_size: int = options.integer(128, "--batch-size", low=1),
    test_fraction: float = options.number(None, "--test-fraction", low=0, high=0.9, low_open=True,
                                          help="Hold out this fraction, stratified (default: the dataset's "
                                          "official test split if it has one, else 0.2)."),
    seed: int = options.seed(),
    model_arg: list[str] = options.key_values("--model-arg", help="Model argument (repeatable), e.g. "
                                              "width=2; values are JSON scalars, else strings."),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
):
    """Train a model on this machine with progress bars; write a safetensors checkpoint and metrics."""
    from edgefl.models.reference import parse_model_args
    from edgefl.train_checkpoint import train_to_checkpoint

    model_args = parse_model_args(model_arg)
    with staged(out, force) as stage, progress_for(not quiet) as progress:
        result = train_to_checkpoint(stage, model=model, data=data, epochs=epochs, lr=lr,
                                     batch_size=batch_size, test_fraction=test_fraction, seed=seed,
                                     model_args=model_args, progress=progress)
    result = relocate(result, stage, out)
    if as_json:
        emit_json(result)
        return
    shown = {k: v for k, v in result.items() if k != "history"}
    console.print(key_value_table(f"trained {model} on {data}", shown))
