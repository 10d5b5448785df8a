"""`edgefl compress stad`: train the STAD teacher on anomaly-free scenes and distil the device student."""

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.cli.staging import relocate, staged
from edgefl.progress import progress_for
from edgefl.stad.config import StadSettings

_D = StadSettings()


def _scene_list(text: str) -> list:
    """--scenes: comma-separated (or repeated) shipped names or .mat/.npy files."""
    return [validate.scene(t.strip()) for t in text.split(",") if t.strip()]


def command(
    scenes: list[str] = typer.Option(
        ..., "--scenes", parser=options.parser_of(_scene_list), metavar="SCENE,...",
        help="Shipped scene names or .mat/.npy paths; comma-separated or repeated.",
    ),
    out: Path = options.out(Path("runs/stad"), "Output directory (teacher/, student/, bundle/)."),
    force: bool = options.force(),
    channels: int = options.integer(_D.channels, "--channels", low=2,
                                    help="Bands C the networks use (even; recorded in the checkpoints)."),
    band_mode: str = options.choice(_D.band_mode, ("uniform", "first"), "band mode", "--band-mode",
                                    help="Band selection: uniform (evenly spaced) or first."),
    teacher_steps: int = options.integer(_D.teacher_steps, "--teacher-steps", low=1),
    student_steps: int = options.integer(_D.student_steps, "--student-steps", low=1),
    student_hidden: int = options.integer(_D.student_hidden, "--student-hidden", low=1,
                                          help="Hidden width of the student's conv blocks."),
    student_kernel: int = options.integer(_D.student_kernel, "--student-kernel", low=1, high=3,
                                          help="Student kernel: 1 (per-pixel) or 3 (3×3 conv)."),
    score: str = options.choice(_D.score, ("recon", "gradient"), "score", "--score",
                                help="Anomaly score: recon (weighted reconstruction error) or gradient."),
    seed: int = options.seed(),
    profile: str = options.profile(),
    export: bool = typer.Option(True, "--export/--no-export",
                                help="Also export the device bundle (bundle/)."),
    cube_key: str = typer.Option(None, help="Cube variable in .mat files (guessed if omitted)."),
    gt_key: str = typer.Option(None, help="Ground-truth variable in .mat files (guessed if omitted)."),
    as_json: bool = options.as_json(),
    quiet: bool = options.quiet(),
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
    ).check()
    names = [s for group in scenes for s in group]
    with staged(out, force) as stage, progress_for(not quiet) as progress:
        result = compress_stad(names, stage, cfg, progress, profile if export else None, cube_key, gt_key)
    result = relocate(result, stage, out)
    if as_json:
        emit_json(result)
        return
    shown = {k: v for k, v in result.items() if k != "config"}
    console.print(key_value_table("STAD teacher + student", shown))
