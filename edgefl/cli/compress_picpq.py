"""`edgefl compress picpq CHECKPOINT`: PIC-PQ pruning-quantization joint learning."""

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import compression_totals, console, emit_json, key_value_table, left_as_is, table
from edgefl.cli.common import exit_if_target_missed, target_lines, target_options
from edgefl.cli.staging import relocate, staged
from edgefl.progress import progress_for

LAYER_COLUMNS = ["layer", "out", "in", "s_l1", "w_bits", "a_bits", "macs", "bops"]


def resolve_settings(paper: bool, chosen: dict, short: dict):
    """PicpqSettings from the options: ``chosen`` apply in both modes (None = the mode's default),
    ``short`` (search and schedule sizes) only without --paper."""
    from edgefl.picpq import PicpqSettings

    given = {k: v for k, v in chosen.items() if v is not None}
    settings = PicpqSettings.paper(**given) if paper else PicpqSettings(**short, **given)
    return settings.check()


def command(
    checkpoint: Path = options.existing_argument("dir", "Float checkpoint directory (from `edgefl train`).",
                                                 metavar="CHECKPOINT"),
    target_bops: float = options.number(
        None, "--target-bops", low=1,
        help="Reach at least this BOPs ratio to the float model (e.g. 50); chooses --max-bits and "
        "--flops-target.",
    ),
    target_size: str = options.target_size(),
    max_drop: float = options.number(
        None, "--max-drop", low=0, high=100,
        help="Lose at most this many accuracy points on the held-out split; when exceeded, up to two more "
        "attempts (gentler, or longer training with a cost target), then exit 3 with the best one written.",
    ),
    flops_target: float = options.number(None, "--flops-target", low=0, high=1, low_open=True,
                                         help="Fraction of FLOPs to keep (PIC-PQ prune_away = 1 - this; "
                                         "default: 0.9, or the target's)."),
    max_bits: str = typer.Option(
        None, "--max-bits", parser=options.parser_of(validate.int_list, None, 1), metavar="B,B,...",
        help="Maximum bits: stem, then one per stage (32 = FP); stages are the output resolutions "
        "(default: 32, then 4 for every stage, or the target's; the spec's ResNet setting is 32,8,6,4).",
    ),
    data: str = options.data(None, "Dataset (default: the checkpoint's)"),
    out: Path = options.out(Path("runs/picpq"), "Compressed checkpoint directory to write."),
    force: bool = options.force(),
    lam: float = options.number(1 / 6, "--lam", low=0, low_open=True,
                                help="Penalty factor lambda of the bit rule."),
    min_bits: int = options.integer(
        None, "--min-bits", low=1, high=8,
        help="Lower clamp of the bit rule (default: 3; --paper: 2; the official code has none).",
    ),
    tie_break: str = options.choice(
        None, ("l1", "none"), "tie break", "--tie-break",
        help="Order equal-rank filters by weight L1 (l1, default) or by index as the official code "
        "(none, --paper's default).",
    ),
    safeguard: float = options.number(0.1, "--safeguard", low=0, high=1,
                                      help="Minimum kept fraction per layer."),
    generations: int = options.integer(6, "--generations", low=0, help="Evolution generations (paper: 400)."),
    population: int = options.integer(6, "--population", low=1, help="Evolution population (paper: 64)."),
    tau_hat: int = options.integer(16, "--tau-hat", low=0,
                                   help="SGD steps per fitness evaluation (paper: 200)."),
    ft_epochs: int = options.integer(2, "--ft-epochs", low=0, help="Fine-tuning epochs after pruning."),
    qat_epochs: int = options.integer(1, "--qat-epochs", low=0, help="Quantization-aware training epochs."),
    lr: float = options.number(0.01, "--lr", low=0, low_open=True, help="QAT learning rate."),
    ft_lr: float = options.number(0.05, "--ft-lr", low=0, low_open=True,
                                  help="Fine-tuning learning rate (right after pruning)."),
    weight_quantizer: str = options.choice(
        None, ("symmetric", "dorefa_zero"), "weight quantizer", "--weight-quantizer",
        help="symmetric (per-channel, default) or dorefa_zero (--paper's default).",
    ),
    paper: bool = typer.Option(False, help="Use the paper's search and schedule sizes (hours)."),
    seed: int = options.seed(),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
):
    """Prune filters by the physics-inspired criterion, assign per-layer bits, fine-tune and QAT."""
    from edgefl.methods import compress_checkpoint

    chosen = dict(
        flops_target=flops_target,
        max_bits=max_bits,
        lam=lam,
        safeguard=safeguard,
        seed=seed,
        min_bits=min_bits,
        tie_break=tie_break,
        weight_quantizer=weight_quantizer,
        **target_options(target_bops, target_size, max_drop),
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
    with staged(out, force) as stage, progress_for(not quiet) as progress:
        result = compress_checkpoint("picpq", checkpoint, stage, settings, data, progress)
    result = relocate(result, stage, out)
    if as_json:
        emit_json(result)
        exit_if_target_missed(result)
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
                **left_as_is(result),
                **target_lines(result),
            },
        )
    )
    exit_if_target_missed(result)
