"""`edgefl detect`: anomaly map of a hyperspectral scene with a STAD bundle or checkpoint."""

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json, key_value_table
from edgefl.cli.staging import relocate, staged

SCORE_PATHS = ("graph", "gradient", "recon")


def command(
    model: Path = options.existing_argument(
        "dir", "STAD bundle (edgefl export / compress stad) or checkpoint directory.", metavar="MODEL"),
    scene: str = typer.Argument(..., parser=options.parser_of(validate.scene), metavar="SCENE",
                                help="Scene .mat/.npy file (rows × cols × bands) or a shipped scene name."),
    out: Path = options.out(Path("runs/detect"), "Directory for <scene>_score.npy and PNGs."),
    force: bool = options.force(),
    cube_key: str = typer.Option(None, help="Cube variable in the .mat (guessed if omitted)."),
    gt_key: str = typer.Option(None, help="Ground-truth variable in the .mat (guessed if omitted)."),
    gt: Path = options.existing(None, "file", "--gt", help="Separate ground-truth file (.mat/.npy)."),
    path: str = options.choice(None, SCORE_PATHS, "score path", "--path",
                               help="Checkpoints only: the score path."),
    as_json: bool = options.as_json(),
):
    """Write the anomaly map (.npy + PNG); print HAD metrics when the scene has ground truth."""
    from edgefl.stad.run import detect_scene

    with staged(out, force) as stage:
        result = detect_scene(model, scene, stage, path=path, cube_key=cube_key, gt_key=gt_key, gt_path=gt)
    result = relocate(result, stage, out)
    if as_json:
        emit_json(result)
        return
    console.print(
        key_value_table(
            f"STAD detection — {result['scene']}",
            {k: v for k, v in result.items() if k not in ("metrics", "files")},
        )
    )
    if result["metrics"]:
        console.print(key_value_table("metrics (AUC(F,τ): lower is better)", result["metrics"]))
    console.print(key_value_table("files", result["files"]))
