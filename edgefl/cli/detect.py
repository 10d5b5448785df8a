"""`edgefl detect`: anomaly map of a hyperspectral scene with a STAD bundle or checkpoint."""

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json, key_value_table


def command(
    model: Path = typer.Argument(
        ..., help="STAD bundle (edgefl export / compress stad) or checkpoint directory."
    ),
    scene: str = typer.Argument(
        ..., help="Scene .mat/.npy file (rows × cols × bands) or a shipped scene name."
    ),
    out: Path = typer.Option(Path("runs/detect"), help="Directory for <scene>_score.npy and PNGs."),
    cube_key: str = typer.Option(None, help="Cube variable in the .mat (guessed if omitted)."),
    gt_key: str = typer.Option(None, help="Ground-truth variable in the .mat (guessed if omitted)."),
    gt: Path = typer.Option(None, help="Separate ground-truth file (.mat/.npy)."),
    path: str = typer.Option(None, help="Checkpoints only: score path graph | gradient | recon."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
):
    """Write the anomaly map (.npy + PNG); print HAD metrics when the scene has ground truth."""
    from edgefl.stad.run import detect_scene

    result = detect_scene(model, scene, out, path=path, cube_key=cube_key, gt_key=gt_key, gt_path=gt)
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
