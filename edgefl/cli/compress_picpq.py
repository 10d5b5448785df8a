"""`edgefl compress picpq CHECKPOINT`: PIC-PQ pruning-quantization joint learning."""

from pathlib import Path

import typer

from edgefl.cli.common import compression_totals, console, emit_json, key_value_table, table
from edgefl.errors import EdgeflError
from edgefl.progress import progress_for

LAYER_COLUMNS = ["layer", "out", "in", "s_l1", "w_bits", "a_bits", "macs", "bops"]


def _bits(text: str) -> tuple:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise EdgeflError(
            f"--max-bits {text!r} must be comma-separated integers, e.g. 32,8,6,4 (stem, then one per stage)"
        ) from None


def resolve_settings(paper: bool, chosen: dict, short: dict):
    """PicpqSettings from the options: ``chosen`` apply in both modes (None = the mode's default),
    ``short`` (search and schedule sizes) only without --paper."""
    from edgefl.picpq import PicpqSettings

    given = {k: v for k, v in chosen.items() if v is not None}
    settings = PicpqSettings.paper(**given) if paper else PicpqSettings(**short, **given)
    return settings.check()


def command(
    checkpoint: Path = typer.Argument(..., help="Float checkpoint directory (from `edgefl train`)."),
    flops_target: float = typer.Option(0.5, help="Fraction of FLOPs to keep (PIC-PQ prune_away = 1 - this)."),
    max_bits: str = typer.Option(
        "32,8,6,4",
        help="Maximum bits: stem, then one per stage (32 = FP). The spec's ResNet-56/CIFAR setting; on MNIST "
        "ResNet-20 bench/picpq.py uses 32,4,4,4 with --flops-target 0.8 (4 bits is lossless there).",
    ),
    data: str = typer.Option(None, help="Dataset name/path (default: the checkpoint's)."),
    out: Path = typer.Option(Path("runs/picpq"), help="Compressed checkpoint directory to write."),
    lam: float = typer.Option(1 / 6, help="Penalty factor lambda of the bit rule."),
    min_bits: int = typer.Option(
        None, min=1, help="Lower clamp of the bit rule [default: 3; --paper: 2; the official code has none]."
    ),
    tie_break: str = typer.Option(
        None,
        help="Order equal-rank filters by weight L1 ('l1', default) or by index as the official code "
        "('none', --paper's default).",
    ),
    safeguard: float = typer.Option(0.1, help="Minimum kept fraction per layer."),
    generations: int = typer.Option(6, min=0, help="Evolution generations (paper: 400)."),
    population: int = typer.Option(6, min=1, help="Evolution population (paper: 64)."),
    tau_hat: int = typer.Option(16, min=0, help="SGD steps per fitness evaluation (paper: 200)."),
    ft_epochs: int = typer.Option(2, min=0, help="Fine-tuning epochs after pruning."),
    qat_epochs: int = typer.Option(1, min=0, help="Quantization-aware training epochs."),
    lr: float = typer.Option(0.01, help="QAT learning rate."),
    ft_lr: float = typer.Option(0.05, help="Fine-tuning learning rate (right after pruning)."),
    weight_quantizer: str = typer.Option(
        None, help="'symmetric' (per-channel, default) or 'dorefa_zero' (--paper's default)."
    ),
    paper: bool = typer.Option(False, help="Use the paper's search and schedule sizes (hours)."),
    seed: int = typer.Option(0),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON document."),
):
    """Prune filters by the physics-inspired criterion, assign per-layer bits, fine-tune and QAT."""
    from edgefl.methods import compress_checkpoint

    if weight_quantizer not in (None, "symmetric", "dorefa_zero"):
        raise EdgeflError(
            f"--weight-quantizer {weight_quantizer!r} is unknown — use symmetric or dorefa_zero"
        )
    chosen = dict(
        flops_target=flops_target,
        max_bits=_bits(max_bits),
        lam=lam,
        safeguard=safeguard,
        seed=seed,
        min_bits=min_bits,
        tie_break=tie_break,
        weight_quantizer=weight_quantizer,
    )
    short = dict(
        generations=generations,
        population=population,
        sample=max(1, min(3, population)),
        tau_hat=tau_hat,
        ft_epochs=ft_epochs,
        qat_epochs=qat_epochs,
        lr=lr,
        ft_lr=ft_lr,
    )
    settings = resolve_settings(paper, chosen, short)
    with progress_for(not as_json) as progress:
        result = compress_checkpoint("picpq", checkpoint, out, settings, data, progress)
    if as_json:
        emit_json(result)
        return
    rows = [[r.get(c) for c in LAYER_COLUMNS] for r in result["layers"]]
    console.print(table("PIC-PQ per layer", LAYER_COLUMNS, rows))
    t = result["totals"]
    console.print(
        key_value_table(
            "PIC-PQ totals",
            {
                "checkpoint": result["checkpoint"],
                "params": f"{t['params']:,} (was {t['params_ref']:,})",
                "FLOPs kept": f"{100 * t['flops_kept']:.1f} %",
                **compression_totals(t),
                "search": f"best loss {result['search']['best_loss']:.4f} "
                f"vs identity {result['search']['identity_loss']:.4f}",
                "size definition": t["size_definition"],
            },
        )
    )
