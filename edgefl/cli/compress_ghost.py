"""`edgefl compress ghost CHECKPOINT`: guided hybrid quantization with one-to-one self-teaching."""

from pathlib import Path

import typer

from edgefl.cli import options
from edgefl.cli.common import compression_totals, console, emit_json, key_value_table, left_as_is, table
from edgefl.cli.common import exit_if_target_missed, target_lines, target_options
from edgefl.cli.staging import relocate, staged
from edgefl.ghost import DEFAULT_MEAN_BITS, GATE_MODES, GhostSettings
from edgefl.progress import progress_for

LAYER_COLUMNS = ["layer", "kind", "w_bits", "a_bits", "params", "macs", "bops"]
_D = GhostSettings()  # every default below is the library's


def command(
    checkpoint: Path = options.existing_argument("dir", "Float checkpoint directory (from `edgefl train`).",
                                                 metavar="CHECKPOINT"),
    data: str = options.data(None, "Dataset (default: the checkpoint's)"),
    out: Path = options.out(Path("runs/ghost"), "Compressed checkpoint directory to write."),
    force: bool = options.force(),
    target_bops: float = options.number(
        None, "--target-bops", low=1,
        help="Reach at least this BOPs ratio to the float model (e.g. 40); chooses the HQ threshold.",
    ),
    target_size: str = options.target_size(),
    max_drop: float = options.number(
        None, "--max-drop", low=0, high=100,
        help="Lose at most this many accuracy points on the held-out split; when exceeded, up to two more "
        "attempts (one more mean bit each, or longer training with a cost target), then exit 3 with the "
        "best one written.",
    ),
    tau: float = options.number(
        None, "--tau", low=0, low_open=True,
        help="HQ threshold on k-means MSE x 1e6 (official 0.1; ~120 for ResNet-20); excludes --target-bits.",
    ),
    target_bits: float = options.number(_D.target_mean_bits, "--target-bits", low=1, high=8,
                                        help="Pick tau so the mean weight bit width is at most this "
                                        f"(default: {DEFAULT_MEAN_BITS} without --tau, --uniform-bits or a "
                                        "BOPs/size target)."),
    min_bits: int = options.integer(_D.bit_range[0], "--min-bits", low=1, high=8,
                                    help="Smallest candidate bit width."),
    max_bits: int = options.integer(_D.bit_range[1], "--max-bits", low=1, high=8,
                                    help="Largest candidate bit width."),
    uniform_bits: int = options.integer(_D.uniform_bits, "--uniform-bits", low=1, high=8,
                                        help="Skip HQ: every conv at this width (baseline)."),
    epochs: int = options.integer(
        _D.epochs, "--epochs", low=1,
        help=f"QAT epochs ({_D.epochs}: within 1 point on ResNet-20/MNIST, see bench/ghost.py).",
    ),
    lr: float = options.number(_D.lr, "--lr", low=0, low_open=True,
                               help="QAT learning rate (one-cycle peak)."),
    batch_size: int = options.integer(_D.batch_size, "--batch-size", low=2),
    kd_weight: float = options.number(_D.kd_weight, "--kd-weight", low=0,
                                      help="Weight of the OST distillation loss."),
    task_weight: float = options.number(_D.task_weight, "--task-weight", low=0, low_open=True,
                                        help="Weight of the task loss (1 + det_weight)."),
    distill: bool = typer.Option(_D.distill, help="Self-distil from the FP twin (--no-distill = plain QAT)."),
    gates: str = options.choice(_D.gate_mode, GATE_MODES, "gate mode", "--gates",
                                help="Gate mode: scm (learned switch), open (all on), closed."),
    train_gates: bool = typer.Option(_D.trainable_gates,
                                     help="Learn the SCM projections (--no-train-gates = official)."),
    gate_margin: float = options.number(_D.gate_margin, "--gate-margin", low=0, low_open=True,
                                        help="Gates open below this multiple of the mean mismatch."),
    seed: int = options.seed(),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
):
    """Per-layer bits by k-means (HQ), then QAT of the quantized twin distilled from the FP model."""
    from edgefl.methods import compress_checkpoint

    config = GhostSettings(
        **target_options(target_bops, target_size, max_drop),
        tau=tau,
        target_mean_bits=target_bits,
        bit_range=(min_bits, max_bits),
        uniform_bits=uniform_bits,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        kd_weight=kd_weight,
        task_weight=task_weight,
        distill=distill,
        gate_mode=gates,
        trainable_gates=train_gates,
        gate_margin=gate_margin,
        seed=seed,
    ).check()
    with staged(out, force) as stage, progress_for(not quiet) as progress:
        result = compress_checkpoint("ghost", checkpoint, stage, config, data, progress)
    result = relocate(result, stage, out)
    if as_json:
        emit_json(result)
        exit_if_target_missed(result)
        return
    rows = [[r.get(c) for c in LAYER_COLUMNS] for r in result["layers"]]
    console.print(table("GHOST per layer", LAYER_COLUMNS, rows))
    t = result["totals"]
    gates_seen = [h["gate_open_rate"] for h in result["history"] if "gate_open_rate" in h]
    shown = {
        "checkpoint": result["checkpoint"],
        "tau": "uniform" if result["tau"] is None else f"{result['tau']:.4g}",
        "mean bits": f"{t['mean_bits']:.2f} (weights, parameter-weighted)",
        **compression_totals(t),
    }
    if gates_seen:
        last = gates_seen[-1]
        shown["gate open rate"] = f"{sum(last) / len(last):.2f} (last epoch, mean over {len(last)} layers)"
    shown["definitions"] = f"{t['size_definition']}; {t['bops_definition']}"
    shown.update(left_as_is(result))
    shown.update(target_lines(result))
    console.print(key_value_table("GHOST totals", shown))
    exit_if_target_missed(result)
