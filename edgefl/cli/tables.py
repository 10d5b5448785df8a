"""Tables that never split a word, whatever the width (a terminal, or 80 columns when piped).

A table is laid out when it is printed, for the width it gets: boxed when every column fits, else without
box lines (two spaces between columns); else the same with cells wrapped between words (never narrower
than their longest word, at most MAX_CELL_LINES lines a cell); else as plain lines, one per row
(``first: header value, ...``), wrapped between words with a two-space indent (a word longer than the
width, such as a path, stays whole on its own line). ``--json`` stays the machine interface;
this is for people reading a terminal or a CI log.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

from rich import box
from rich.table import Table
from rich.text import Text

# (name, box, width taken by borders and padding for n columns): boxed with edges; no box, no outer padding
LAYOUTS = (
    ("boxed", box.HEAVY_HEAD, lambda n: 3 * n + 1),
    ("compact", None, lambda n: 2 * (n - 1)),
)
MAX_CELL_LINES = 3  # a table whose cells would wrap onto more lines reads better as plain lines


def longest_line(text: str) -> int:
    return max((len(line) for line in text.splitlines()), default=0)


def longest_word(text: str) -> int:
    return max((len(word) for word in text.split()), default=0)


def fit_widths(natural: list[int], minimum: list[int], room: int) -> list[int] | None:
    """Column widths within ``room`` characters: natural widths if they fit, else each column at least its
    minimum, the narrowest columns widened to their natural width first (a label column stays one line
    while a long text column wraps); None when even the minima do not fit."""
    if sum(natural) <= room:
        return list(natural)
    if sum(minimum) > room:
        return None
    widths = list(minimum)
    spare = room - sum(widths)
    for i in sorted(range(len(widths)), key=lambda k: natural[k]):
        give = min(natural[i] - widths[i], spare)
        widths[i] += give
        spare -= give
    return widths


@dataclass
class Layout:
    name: str  # "boxed" | "compact" | "lines"
    widths: list[int] | None = None


def wrapped_lines(text: str, width: int) -> int:
    """Lines ``text`` takes when wrapped between words at ``width`` (greedy, as rich wraps)."""
    count = 0
    for paragraph in text.splitlines() or [""]:
        used = None
        for word in paragraph.split():
            if used is None or used + 1 + len(word) > width:
                count, used = count + 1, len(word)
            else:
                used += 1 + len(word)
        count += used is None
    return count


def choose_layout(columns: list[str], rows: list[list[str]], width: int) -> Layout:
    """The first layout whose columns fit ``width`` without cutting a word: unwrapped (boxed, then compact),
    else with cells wrapped between words on at most MAX_CELL_LINES lines, else plain lines."""
    cells = [[c, *(r[i] for r in rows)] for i, c in enumerate(columns)]
    natural = [max(longest_line(t) for t in col) for col in cells]
    minimum = [max(longest_word(t) for t in col) for col in cells]
    for name, _, overhead in LAYOUTS:
        if sum(natural) <= width - overhead(len(columns)):
            return Layout(name, natural)
    need = [narrowest(col, low, high) for col, low, high in zip(cells, minimum, natural)]
    for name, _, overhead in LAYOUTS:
        widths = fit_widths(natural, need, width - overhead(len(columns)))
        if widths is not None:
            return Layout(name, widths)
    return Layout("lines")


def narrowest(cells: list[str], low: int, high: int) -> int:
    """The narrowest width from ``low`` to ``high`` at which no cell wraps onto more than MAX_CELL_LINES."""
    fits = (w for w in range(low, high) if all(wrapped_lines(t, w) <= MAX_CELL_LINES for t in cells))
    return next(fits, high)


def plain_lines(title: str, columns: list[str], rows: list[list[str]]) -> list[str]:
    """One line per row: the first cell, then ``header value`` for the others (empty cells left out); a
    two-column table (field, value) is ``field: value``."""
    lines = [title] if title else []
    named = len(columns) > 2
    for row in rows:
        rest = ", ".join(f"{h} {v}" if h and named else v for h, v in zip(columns[1:], row[1:]) if v)
        lines.append(f"{row[0]}: {rest}" if rest else row[0])
    return lines


def wrap_line(line: str, width: int) -> list[str]:
    """``line`` in pieces of at most ``width`` characters, cut only between words, the continuations
    indented by two spaces; a word longer than the width is never cut."""
    pieces = []
    for paragraph in line.split("\n"):
        pieces += textwrap.wrap(paragraph, max(width, 8), subsequent_indent="  ", break_long_words=False,
                                break_on_hyphens=False) or [""]
    return pieces


class FitTable:
    """A rich renderable: the table laid out for the width it is printed at (see the module docstring)."""

    def __init__(self, title: str, columns: list[str], rows: list[list[str]]):
        self.title, self.columns, self.rows = title, columns, rows

    def layout(self, width: int) -> Layout:
        return choose_layout(self.columns, self.rows, width)

    def __rich_console__(self, console, options):
        layout = self.layout(options.max_width)
        if layout.name == "lines":
            for line in plain_lines(self.title, self.columns, self.rows):
                for piece in wrap_line(line, options.max_width):
                    yield Text(piece, no_wrap=True, overflow="ignore")
            return
        style = next(s for s in LAYOUTS if s[0] == layout.name)
        boxed = style[1] is not None
        title = self.title
        if title and longest_word(title) > sum(layout.widths) + style[2](len(self.columns)):
            yield Text(title, no_wrap=True, overflow="ignore")  # a long path in a title: its own line
            title = None
        t = Table(title=title or None, box=style[1], pad_edge=boxed, show_edge=boxed,
                  header_style="bold" if boxed else "bold underline")
        for column, w in zip(self.columns, layout.widths):
            t.add_column(column, width=w, overflow="fold")
        for row in self.rows:
            t.add_row(*row)
        yield t
