"""Progress reporting seam: library code calls `progress.task(...)`; the CLI decides how it shows.

`RichProgress` draws bars on stderr when it is a terminal; `PlainProgress` writes whole lines instead
when stderr is captured or piped (a CI log, `2> log`), where a bar would be cut at 80 columns;
`NullProgress` (for --quiet, tests and libraries) shows nothing.
"""

import contextlib
import sys
import time


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


class _PlainTask:
    def __init__(self, owner, description: str, total: int):
        self._owner, self.description, self.total = owner, description, total
        self.done, self.info, self.finished = 0, "", False
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1, **fields):
        self.done += n
        self.update(**fields)

    def update(self, **fields):
        if fields:
            self.info = _fields(fields)["info"]
        now = time.monotonic()
        if self.total and self.done >= self.total:
            self.close()
        elif now - self.last >= self._owner.every_s:
            self._owner.write(self.line(now))
            self.last = now

    def close(self):
        if not self.finished:
            self.finished = True
            self._owner.write(self.line(time.monotonic()))

    def line(self, now: float) -> str:
        count = f"{self.done}/{self.total}" if self.total else str(self.done)
        info = f"  {self.info}" if self.info else ""
        return f"{self.description}: {count} in {now - self.start:.1f} s{info}"


class PlainProgress:
    """One line per task on a stream when it finishes, and one every ``every_s`` seconds while it runs;
    lines are never cut or wrapped (for captured and piped stderr)."""

    def __init__(self, stream=None, every_s: float = 30.0):
        self.stream, self.every_s = stream, every_s

    def task(self, description: str, total: int):
        return _PlainTask(self, description, total)

    def write(self, line: str) -> None:
        stream = self.stream or sys.stderr
        stream.write(line + "\n")
        stream.flush()


@contextlib.contextmanager
def progress_for(enabled: bool = True):
    """Yield a RichProgress on a terminal, a PlainProgress when stderr is captured or piped, or a
    NullProgress (not enabled); bars are removed from the screen at the end."""
    if not enabled:
        yield NullProgress()
        return
    if not sys.stderr.isatty():
        yield PlainProgress()
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
