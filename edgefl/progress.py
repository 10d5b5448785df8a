"""Progress reporting seam: library code calls `progress.task(...)`; the CLI decides how it shows.

`RichProgress` draws bars on stderr; `NullProgress` (for --json, tests and libraries) draws nothing.
"""

import contextlib


class NullProgress:
    """Accepts progress calls and shows nothing."""

    def task(self, description: str, total: int):
        return _NullTask()


class _NullTask:
    def advance(self, n: int = 1, **fields):
        pass

    def update(self, **fields):
        pass

    def close(self):
        pass


class _RichTask:
    def __init__(self, progress, task_id):
        self._progress, self._id = progress, task_id

    def advance(self, n: int = 1, **fields):
        self._progress.update(self._id, advance=n, **_fields(fields))

    def update(self, **fields):
        self._progress.update(self._id, **_fields(fields))

    def close(self):
        self._progress.update(self._id, visible=True)


def _fields(fields: dict) -> dict:
    if not fields:
        return {}
    return {"info": "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                              for k, v in fields.items())}


class RichProgress:
    """rich progress bars on stderr (one line per task)."""

    def __init__(self, progress):
        self._progress = progress

    def task(self, description: str, total: int):
        return _RichTask(self._progress, self._progress.add_task(description, total=total, info=""))


@contextlib.contextmanager
def progress_for(enabled: bool = True):
    """Yield a RichProgress (enabled) or NullProgress; bars are removed from the screen at the end."""
    if not enabled:
        yield NullProgress()
        return
    from rich.console import Console
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    # descriptions hold user text (paths, names): printed literally, never as rich markup
    columns = (TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}", markup=False))
    with Progress(*columns, console=Console(stderr=True)) as p:
        try:
            yield RichProgress(p)
        except BaseException:
            p.live.transient = True  # a failed command ends with its one error line, not a stale bar
            raise
