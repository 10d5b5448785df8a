"""`edgefl report RUN_DIR`: one self-contained HTML page with the run's plots."""

from __future__ import annotations

from pathlib import Path

import typer

from edgefl.cli import options, validate
from edgefl.cli.common import console, emit_json
from edgefl.cli.staging import staged


def command(
    run_dir: Path = options.existing_argument(
        "dir", "Run directory (from `edgefl demo --out` or `edgefl simulate --out`).", metavar="RUN_DIR"),
    out: Path = typer.Option(None, "--out", "-o", parser=options.parser_of(validate.writable_target),
                             metavar="PATH", help="Page to write; new unless --force. Default: RUN_DIR/"
                             "report.html, the run's own page, which is regenerated."),
    force: bool = options.force(),
    title: str = typer.Option(None, help="Page title."),
    as_json: bool = options.as_json(),
):
    """Render the run report: accuracy vs round/bytes, contact windows, compression, parity, latency."""
    from edgefl.report import render_report

    page = out or run_dir / "report.html"
    with staged(page, force or out is None, kind="file") as stage:
        render_report(run_dir, stage, title)
    size = page.stat().st_size
    if as_json:
        emit_json({"report": str(page), "bytes": size})
        return
    console.print(f"report written: {page} ({size / 1024:.0f} KiB) — open it in a browser")
