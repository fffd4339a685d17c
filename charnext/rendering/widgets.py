"""Layout pieces the views share: words wrapped in a width (one routine), cut text, the key-value
table, alternatives, the line chart."""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from charnext.inside.curves import loss_axis
from charnext.text.paths import shorten_middle, shown_path  # noqa: F401 - shown_path: for the CLI
from charnext.text.vocab import visible, visible_running

LN2 = math.log(2)


def fmt_rate(chars_per_sec: float) -> str:
    """12,345 chars/s."""
    return f"{chars_per_sec:,.0f} chars/s"


class Words:
    """Words laid out in the width Rich gives them: wrapped between words, never inside one; a
    word too wide for a whole line (a long path, a long name) is shortened in its middle with
    `…` (between folder names, for a path). A path with spaces is one word."""

    MIN_WIDTH = 16  # the narrowest a column of these gets before Rich squeezes it further

    def __init__(self, words: Sequence[str], style: str = ""):
        self.words = [w for w in words if w != ""] or [""]
        self.style = style

    @classmethod
    def of(cls, value: str | Sequence[str]) -> Words:
        """A plain string's words (split at spaces), or the words given as they are."""
        return cls(value.split(" ") if isinstance(value, str) else list(value))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        widths = [cell_len(w) for w in self.words]
        longest = max(widths)
        return Measurement(min(longest, self.MIN_WIDTH), sum(widths) + len(widths) - 1)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Text("\n".join(self.lines(options.max_width)), style=self.style, no_wrap=True, overflow="crop")

    def lines(self, width: int) -> list[str]:
        """The words wrapped into lines of at most `width` cells."""
        width = max(1, width)
        return pack([shorten_middle(word, width, cell_len) for word in self.words], width)


def pack(items: Sequence[str], width: int, sep: str = " ") -> list[str]:
    """`items` joined by `sep` into lines of at most `width` terminal cells, broken between items,
    never inside one (an item wider than `width` stands alone on its line). The one wrap routine
    of every view: words, alternatives, a chart's legend."""
    lines: list[str] = []
    for item in items:
        if lines and cell_len(lines[-1]) + cell_len(sep) + cell_len(item) <= width:
            lines[-1] += sep + item
        else:
            lines.append(item)
    return lines or [""]


def hanging(line: str, width: int) -> str:
    """`label: words ...` wrapped between words into lines of at most `width` cells, each line
    after the first indented under the first word after the label (a line without a label:
    wrapped as it is)."""
    label, sep, rest = line.partition(": ")
    if not sep or " " in label:
        return "\n".join(pack(line.split(" "), width))
    indent = cell_len(label) + len(sep)
    body = pack(rest.split(" "), max(1, width - indent))
    return "\n".join([label + sep + body[0], *(" " * indent + b for b in body[1:])])


def fit(text: str, width: int, pad: bool = False) -> str:
    """`text` cut to `width` terminal cells with an ellipsis (a wide CJK character counts two);
    with `pad`, filled with spaces to exactly `width` cells."""
    out = Text(text)
    out.truncate(max(1, width), overflow="ellipsis", pad=pad)
    return out.plain


def alternatives_text(top: Sequence[tuple[str, float]], width: int | None = None) -> str:
    """`a 0.51  b 0.20  c 0.09`; with `width`, broken into lines of at most that many cells
    between pairs, never inside one."""
    pairs = [f"{visible(c)} {p:.2f}" for c, p in top]
    if width is None:
        return "  ".join(pairs)
    return "\n".join(pack(pairs, width, "  "))


def room_for(width: int | None, columns: Sequence[int]) -> int | None:
    """Cells left for the last column of a SIMPLE_HEAD table `width` wide whose other columns
    are `columns` cells wide (a cell of padding on both sides of each column, and a cell for
    each border)."""
    if width is None:
        return None
    n = len(columns) + 1
    return max(7, width - sum(columns) - 3 * n - 1)


def wrapped_cells(
    cells: Iterable[tuple[str, str | None, str]], width: int, colour: bool, marks_style: str = ""
) -> Text:
    """(character, style, mark) cells wrapped at `width` terminal cells between words (a word
    with the spaces after it goes whole onto the next line; one wider than a line is broken
    inside), a line break also ending a line; with `colour` each character in its style, without
    it a line of marks under each line of text instead."""
    out = Text()
    line, marks, used = Text(), [], 0

    def flush() -> None:
        nonlocal line, marks, used
        out.append("  ")
        out.append_text(line)
        out.append("\n")
        if not colour:
            out.append(("  " + "".join(marks)).rstrip() + "\n", style=marks_style)
        line, marks, used = Text(), [], 0

    def place(word: list[tuple[str, str | None, str, int]]) -> None:
        nonlocal used
        wide = sum(c[3] for c in word)
        if used and used + wide > width and wide <= width:
            flush()  # the word goes whole onto the next line
        for shown, style, mark, w in word:
            if used + w > width:  # a word wider than a line: broken where it must be
                flush()
            line.append(shown, style=style if colour else None)
            marks.append(mark * w)
            used += w

    word: list[tuple[str, str | None, str, int]] = []  # a word, then the spaces after it
    for ch, style, mark in cells:
        if word and ch != " " and word[-1][0] == " ":  # a new word begins
            place(word)
            word = []
        shown = visible_running(ch)
        word.append((shown, style, mark, cell_len(shown)))
        if ch == "\n":
            place(word)
            word = []
            flush()
    if word:
        place(word)
    if used:
        flush()
    return out


def key_value_table(title: str, rows: Iterable[tuple[str, str | Sequence[str]]]) -> Table:
    """A two-column table of names and values. A value is a string, wrapped between its words,
    or a list of words (a path one word, whatever it holds); a word too wide for the column is
    shortened in its middle, never broken (see `Words`)."""
    t = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    for k, v in rows:
        t.add_row(k, Words.of(v))
    return t


def line_chart(
    series: dict[str, tuple[list[float], list[float]]],
    width: int = 60,
    height: int = 12,
    faint: tuple[str, list[float], list[float]] | None = None,
) -> Text:
    """Curves drawn with characters: {name: (x, y)}; each series its own marker and colour.

    The points that fall in one column are averaged, so thousands of steps stay readable. The
    scale fits the curves after their first tenth (`loss_axis`); earlier points above it sit on
    the top row, as the chart notes. `faint` (name, x, y), such
    as the raw per-step losses under their smoothed curve, is drawn dim behind the curves: in
    each column, a dot on every row between its lowest and highest value.
    """
    styles = [("•", "cyan"), ("◦", "magenta"), ("+", "yellow")]
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if math.isfinite(y)]
    if not points:
        return Text("(no history)")
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    if x_hi == x_lo:
        x_hi = x_lo + 1
    columns: list[dict[int, float]] = []  # per series: column -> mean y
    for xs, ys in series.values():
        cols: dict[int, list[float]] = {}
        for x, y in zip(xs, ys):
            if math.isfinite(y):
                cols.setdefault(round((x - x_lo) / (x_hi - x_lo) * (width - 1)), []).append(y)
        columns.append({c: sum(v) / len(v) for c, v in cols.items()})
    values = [y for cols in columns for y in cols.values()]
    y_lo, y_hi = loss_axis((c, y) for cols in columns for c, y in cols.items())
    clipped = max(values) > y_hi
    if y_hi - y_lo < 1e-9:
        y_hi = y_lo + 1e-9
    grid: list[list[tuple[str, str] | None]] = [[None] * width for _ in range(height)]

    def row_of(y: float) -> int:
        return min(height - 1, max(0, height - 1 - round((y - y_lo) / (y_hi - y_lo) * (height - 1))))

    if faint is not None:
        spread: dict[int, list[float]] = {}
        for x, y in zip(faint[1], faint[2]):
            if math.isfinite(y) and x_lo <= x <= x_hi:
                spread.setdefault(round((x - x_lo) / (x_hi - x_lo) * (width - 1)), []).append(y)
        for col, ys in spread.items():
            for row in range(row_of(max(ys)), row_of(min(ys)) + 1):
                grid[row][col] = ("·", "dim")
    for cols, (mark, style) in zip(columns, styles):
        for col, y in cols.items():
            grid[row_of(y)][col] = (mark, style)
    legend = [f"{mark} {name}" for name, (mark, _) in zip(series, styles)]
    legend += [f"· {faint[0]}"] if faint is not None else []
    note = f"(early values up to {max(values):.2f} sit on the top row)" if clipped else ""
    return _framed(grid, (y_lo, y_hi), (x_lo, x_hi), legend, note)


def _framed(
    grid: list, ys: tuple[float, float], xs: tuple[float, float], legend: list[str], note: str
) -> Text:
    """A chart's grid of (mark, style) cells with its y labels, axis, step range and legend (its
    keys wrapped between keys)."""
    (y_lo, y_hi), (x_lo, x_hi) = ys, xs
    height, width = len(grid), len(grid[0])
    label_w = max(len(f"{y_hi:.2f}"), len(f"{y_lo:.2f}"))
    out = Text()
    for r, cells in enumerate(grid):
        y = y_hi - (y_hi - y_lo) * r / (height - 1)
        label = f"{y:.2f}" if r in (0, height // 2, height - 1) else ""
        out.append(f"{label:>{label_w}} │")
        for cell in cells:
            out.append(cell[0], style=cell[1]) if cell else out.append(" ")
        out.append("\n")
    out.append(" " * label_w + " └" + "─" * width + "\n")
    left, right = f"step {int(x_lo)}", f"step {int(x_hi)}"
    out.append(" " * (label_w + 2) + left + right.rjust(width - len(left)) + "\n")
    lines = pack(legend, width, "   ")  # the legend's keys on lines no wider than the chart, each whole
    out.append("\n".join(" " * (label_w + 2) + line for line in lines))
    if note:
        out.append("\n" + " " * (label_w + 2) + note)
    return out


def average_note(averaging: dict | None) -> str:
    """'; live weights 1.5012, their average 1.4950': the two bests, where an average was kept."""
    if not averaging or averaging.get("best_val_loss_average") is None:
        return ""
    live, average = averaging["best_val_loss_live"], averaging["best_val_loss_average"]
    return f"; live weights {live:.4f}, their average {average:.4f}"


FILES_LINE = 57  # cells the line naming a run's files keeps to (60 with train's "on "), "and N more" included


def files_line(paths: tuple[str, ...], skipped: int = 0) -> str:
    """`12 files in texts/: a.txt, b.txt, c.txt and 9 more`: the files of a run, named from
    the folder they share (shortened in the middle), as many as fit in FILES_LINE cells (at
    least one)."""

    common = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
    if common in paths:  # a single path shared: name its folder
        common = os.path.dirname(common)
    names = [os.path.relpath(p, common) for p in paths]
    where = shorten_middle(shown_path(common), FILES_LINE // 3, cell_len)  # the names matter more
    line = f"{len(paths)} files" + (f" in {where}{os.sep}" if where not in (".", "") else "") + ": "
    shown: list[str] = []
    for i, name in enumerate(names):
        rest = len(names) - i - 1
        tail = f" and {rest} more" if rest else ""
        if shown and cell_len(line + ", ".join([*shown, name]) + tail) > FILES_LINE:
            break
        shown.append(name)
    left = len(names) - len(shown)
    line += ", ".join(shown) + (f" and {left} more" if left else "")
    return line + (f" ({skipped} not UTF-8 text left out)" if skipped else "")
