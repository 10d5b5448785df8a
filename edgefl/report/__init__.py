"""`edgefl report RUN_DIR`: one self-contained HTML page (plots embedded as PNG) for a run."""

from __future__ import annotations

from pathlib import Path

__all__ = ["render_report"]


def render_report(run_dir: str | Path, out: str | Path | None = None, title: str | None = None) -> Path:
    """Write the report page for a run directory.

    Args:
        run_dir: folder written by `edgefl demo --out` or `edgefl simulate --out`.
        out: page to write (default RUN_DIR/report.html).
        title: page title (default from run.json, else 'edgefl run report').

    Returns:
        the path of the page written.
    """
    from edgefl.report.html import html_from_run
    from edgefl.report.load import load_run

    run = load_run(run_dir)
    page = html_from_run(run, title or (run.run or {}).get("title") or "edgefl run report")
    path = Path(out) if out else Path(run_dir) / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
