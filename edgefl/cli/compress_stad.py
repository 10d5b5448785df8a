"""`edgefl compress stad`: train the STAD teacher on anomaly-free scenes and distil the device student."""

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.progress import progress_for
from edgefl.stad.config import StadSettings

_D = StadSettings()


def command(
    scenes: list[str] = typer.Option(
        ...,
        "--scenes",
        help="Shipped scene names (abu-urban-2, abu-beach-4, hydice, "
        "pavia) or .mat/.npy paths; comma-separated or repeated.",
    ),
    out: Path = typer.Option(Path("runs/stad"), help="Output directory (teacher/, student/, bundle/)."),
    channels: int = typer.Option(
        _D.channels, min=2, help="Bands C the networks use (recorded in the checkpoints)."
    ),
    band_mode: str = typer.Option(_D.band_mode, help="Band selection: 'uniform' (evenly spaced) or 'first'."),
    teacher_steps: int = typer.Option(_D.teacher_steps, min=1),
    student_steps: int = typer.Option(_D.student_steps, min=1),
    student_hidden: int = typer.Option(
        _D.student_hidden, min=1, help="Hidden width of the student's conv blocks."
    ),
    student_kernel: int = typer.Option(
        _D.student_kernel, help="Student kernel: 1 (per-pixel) or 3 (3×3 conv)."
    ),
    score: str = typer.Option(
        _D.score, help="Anomaly score: 'recon' (weighted reconstruction error) or 'gradient'."
    ),
    seed: int = typer.Option(_D.seed),
    export_profile: str = typer.Option(
        "jetson-tx2", help="Also export the device bundle for this profile ('' to skip)."
    ),
    cube_key: str = typer.Option(None, help="Cube variable in .mat files (guessed if omitted)."),
    gt_key: str = typer.Option(None, help="Ground-truth variable in .mat files (guessed if omitted)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Train STAD (Transformer teacher → small CNN student) with progress bars; write checkpoints."""
    from edgefl.stad.run import compress_stad

    cfg = StadSettings(
        channels=channels,
        band_mode=band_mode,
        teacher_steps=teacher_steps,
        student_steps=student_steps,
        student_hidden=student_hidden,
        student_kernel=student_kernel,
        score=score,
        seed=seed,
    )
    with progress_for(not as_json) as progress:
        result = compress_stad(scenes, out, cfg, progress, export_profile or None, cube_key, gt_key)
    if as_json:
        emit_json(result)
        return
    shown = {k: v for k, v in result.items() if k != "config"}
    console.print(key_value_table("STAD teacher + student", shown))
