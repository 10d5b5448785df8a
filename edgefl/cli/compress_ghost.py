"""`edgefl compress ghost CHECKPOINT`: guided hybrid quantization with one-to-one self-teaching."""

from pathlib import Path

import typer

from edgefl.cli.common import compression_totals, console, emit_json, key_value_table, table
from edgefl.progress import progress_for

LAYER_COLUMNS = ["layer", "kind", "w_bits", "a_bits", "params", "macs", "bops"]


def command(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint directory (from `edgefl train`)."),
    data: str = typer.Option(None, help="Dataset name/path (default: the checkpoint's)."),
    out: Path = typer.Option(Path("runs/ghost"), help="Compressed checkpoint directory to write."),
    tau: float = typer.Option(
        None,
        help="HQ threshold on k-means MSE x 1e6 (official 0.1; ~120 for ResNet-20). Overrides --target-bits.",
    ),
    target_bits: float = typer.Option(3.5, help="Pick tau so the mean weight bit width is at most this."),
    min_bits: int = typer.Option(2, help="Smallest candidate bit width."),
    max_bits: int = typer.Option(8, help="Largest candidate bit width."),
    uniform_bits: int = typer.Option(None, help="Skip HQ: every conv at this width (baseline)."),
    epochs: int = typer.Option(
        3, min=1, help="QAT epochs (3: within 1 point on ResNet-20/MNIST, see bench/ghost.py)."
    ),
    lr: float = typer.Option(0.02, help="QAT learning rate (one-cycle peak)."),
    batch_size: int = typer.Option(64, min=2),
    kd_weight: float = typer.Option(400.0, help="Weight of the OST distillation loss."),
    task_weight: float = typer.Option(2.0, help="Weight of the task loss (1 + det_weight)."),
    distill: bool = typer.Option(True, help="Self-distil from the FP twin (--no-distill = plain QAT)."),
    gates: str = typer.Option("scm", help="Gate mode: scm (learned switch), open (all on), closed."),
    train_gates: bool = typer.Option(True, help="Learn the SCM projections (--no-train-gates = official)."),
    gate_margin: float = typer.Option(1.0, help="Gates open below this multiple of the mean mismatch."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
):
    """Per-layer bits by k-means (HQ), then QAT of the quantized twin distilled from the FP model."""
    from edgefl.ghost import GhostSettings
    from edgefl.methods import compress_checkpoint

    config = GhostSettings(
        tau=0.1 if tau is None else tau,
        target_mean_bits=target_bits if tau is None else None,
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
    with progress_for(not as_json) as progress:
        result = compress_checkpoint("ghost", checkpoint, out, config, data, progress)
    if as_json:
        emit_json(result)
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
    console.print(key_value_table("GHOST totals", shown))
