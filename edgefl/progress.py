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

    with fitting_bars(Console(stderr=True)) as p:
        try:
            yield RichProgress(p)
        except BaseException:
            p.live.transient = True  # a failed command ends with its one error line, not a stale bar
            raise


def fitting_bars(console):
    """A rich Progress whose lines fit ``console``'s width without cutting a count, a time or a word: the
    bar takes the room the other columns leave (at least 4 cells); when even that does not fit, a short bar
    and the description and info wrapped between words."""
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)
    from rich.table import Column

    class FittingProgress(Progress):
        def make_tasks_table(self, tasks):
            tasks = list(tasks)
            if hasattr(self, "live"):  # rich renders once before it has a console
                self.expand = self.others_width(tasks) + BAR_MIN <= self.console.width
            bar.bar_width = None if self.expand else BAR_MIN
            return super().make_tasks_table(tasks)

        def others_width(self, tasks) -> int:
            visible = [t for t in tasks if t.visible]
            widths = [max((self.console.measure(column(t)).maximum for t in visible), default=0)
                      for column in self.columns if column is not bar]
            return sum(widths) + len(self.columns) - 1  # one space between columns

    whole = {"table_column": Column(no_wrap=True)}  # counts and times are never cut
    words = {"table_column": Column(overflow="fold")}  # descriptions and info wrap between words
    bar = BarColumn(bar_width=None, table_column=Column(ratio=1, min_width=BAR_MIN, max_width=40))
    # descriptions hold user text (paths, names): printed literally, never as rich markup
    columns = (TextColumn("{task.description}", markup=False, **words), bar, MofNCompleteColumn(**whole),
               TimeElapsedColumn(**whole), TimeRemainingColumn(**whole),
               TextColumn("{task.fields[info]}", markup=False, **words))
    return FittingProgress(*columns, console=console)


BAR_MIN = 4  # cells of the narrowest bar
