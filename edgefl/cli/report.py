"""`edgefl report RUN_DIR`: one self-contained HTML page with the run's plots."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli.common import console, emit_json


def command(
    run_dir: Path = typer.Argument(
        ..., help="Run directory (from `edgefl demo --out` or `edgefl simulate --out`)."
    ),
    out: Path = typer.Option(None, help="Page to write (default RUN_DIR/report.html)."),
    title: str = typer.Option(None, help="Page title."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document."),
):
    """Render the run report: accuracy vs round/bytes, contact windows, compression, parity, latency."""
    from edgefl.report import render_report

    page = render_report(run_dir, out, title)
    if as_json:
        emit_json({"report": str(page), "bytes": page.stat().st_size})
        return
    console.print(f"report written: {page} ({page.stat().st_size / 1024:.0f} KiB) — open it in a browser")
