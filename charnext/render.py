"""Rich rendering: tables, live training display, charts. The core never imports this."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterable, Sequence

from rich import box
from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from charnext.vocab import visible, visible_text

LN2 = math.log(2)


def console(stderr: bool = False) -> Console:
    """A console for stdout (or stderr); colour only on a terminal, NO_COLOR respected."""
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


def error_console() -> Console:
    """The console errors go to."""
    return Console(stderr=True, highlight=False)


def fmt_duration(seconds: float) -> str:
    """12.3s, 4m05s, 1h02m."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"
    return f"{int(seconds // 3600)}h{int(seconds % 3600 // 60):02d}m"


def fmt_rate(chars_per_sec: float) -> str:
    """12,345 chars/s."""
    return f"{chars_per_sec:,.0f} chars/s"


def _crop(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# ---------------------------------------------------------------------------------------------
# train


class TrainView:
    """Shows a training run: the lecture's table, a progress bar and evaluation samples on a
    terminal; plain periodic lines when the output is a file or a pipe."""

    def __init__(self, out: Console, title: str):
        self.out = out
        self.live_mode = out.is_terminal
        self.table = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
        self.table.add_column("step", justify="right", style="cyan")
        self.table.add_column("loss", justify="right")
        self.table.add_column("acc", justify="right")
        self.table.add_column("prediction", style="bold", overflow="crop", no_wrap=True)
        self.table.add_column("target", style="dim", overflow="crop", no_wrap=True)
        self.rows = 0
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=out,
            transient=True,
            expand=True,
        )
        self.task = None
        self.live: Live | None = None
        self.last_plain = 0.0  # fraction done at the last plain line
        self.last_plain_time = 0.0  # and its elapsed seconds: plain lines come at most every 5 s

    def __enter__(self) -> TrainView:
        if self.live_mode:
            self.task = self.progress.add_task("train", total=1.0, info="")
            self.live = Live(Group(self.table, self.progress), console=self.out, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.progress.remove_task(self.task)
            self.live.__exit__(*exc)
            self.live = None
        elif self.rows:
            self.out.print(self.table)

    def step(self, e) -> None:
        """A StepEvent."""
        val = f" val {e.val_loss:.3f}" if e.val_loss is not None else ""
        total = f"/{e.total}" if e.total else ""
        info = f"step {e.step}{total} loss {e.loss:.3f}{val} {fmt_rate(e.chars_per_sec)}"
        if self.live is not None:
            self.progress.update(self.task, completed=e.fraction, info=info)
        elif (e.fraction - self.last_plain >= 0.1 and e.elapsed - self.last_plain_time >= 5.0) or (
            e.fraction >= 1.0 and e.elapsed >= 5.0
        ):
            self.last_plain, self.last_plain_time = e.fraction, e.elapsed
            eta = (e.elapsed / e.fraction) * (1 - e.fraction) if e.fraction > 0 else 0.0
            self.out.print(
                f"{info}  {e.fraction:4.0%}  elapsed {fmt_duration(e.elapsed)}  eta {fmt_duration(eta)}"
            )

    def report(self, e) -> None:
        """A ReportEvent: one row of the lecture's table."""
        self.rows += 1
        self.table.add_row(
            str(e.step),
            f"{e.loss:.4f}",
            f"{e.accuracy:.0%}",
            visible_text(e.prediction),
            visible_text(e.target),
        )

    def evaluation(self, e) -> None:
        """An EvalEvent: validation figures and a sample, printed above the bar."""
        mark = " [green](best)[/]" if e.best else ""
        line = f"[cyan]step {e.step}[/] val loss {e.val_loss:.4f} ({e.val_bpc:.3f} bits/char){mark}"
        sample = Text(f"  {visible_text(e.prompt)}", style="bold") + Text(
            _crop(visible_text(e.sample), 200), style="italic"
        )
        if self.live is not None:
            self.live.console.print(line)
            self.live.console.print(sample)
        else:
            self.out.print(line)
            self.out.print(sample)


def train_summary(out: Console, r) -> None:
    """The table printed after training (a TrainResult)."""
    t = Table(title="training done" if r.reason != "interrupted" else "training interrupted",
              box=box.SIMPLE_HEAD, show_header=False, title_justify="left")  # fmt: skip
    t.add_column(style="cyan", no_wrap=True)
    t.add_column(overflow="fold")
    stopped = {"steps": "step budget reached", "max-time": "time budget reached",
               "patience": "no validation improvement (patience)", "interrupted": "Ctrl-C"}  # fmt: skip
    t.add_row("steps", f"{r.steps:,} ({stopped.get(r.reason, r.reason)})")
    t.add_row(
        "time", f"{fmt_duration(r.elapsed)} at {fmt_rate(r.chars_per_sec)} on {r.device}, {r.precision}"
    )
    t.add_row("final loss", f"{r.loss:.4f} nats/char, accuracy {r.accuracy:.1%}")
    if r.val_loss is not None:
        t.add_row("validation", f"{r.val_loss:.4f} nats/char ({r.val_loss / LN2:.3f} bits/char)")
        t.add_row("best validation", f"{r.best_val_loss:.4f} nats/char")
    t.add_row(
        "model", f"{r.parameters:,} parameters; text {r.train_chars:,} train / {r.val_chars:,} val chars"
    )
    if r.checkpoint:
        t.add_row("checkpoint", str(r.checkpoint))
    if r.best_checkpoint:
        t.add_row("best checkpoint", str(r.best_checkpoint))
    out.print(t)


# ---------------------------------------------------------------------------------------------
# predict


def _alternatives(top: Sequence[tuple[str, float]]) -> str:
    return "  ".join(f"{visible(c)} {p:.2f}" for c, p in top)


def prediction_table(steps, top_k: int, title: str = "per-step prediction") -> Table:
    """One row per step: input, predicted next character, its probability, the top-k."""
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("step", justify="right", style="cyan")
    t.add_column("input", justify="center")
    t.add_column("predicted", justify="center", style="bold")
    t.add_column("prob", justify="right")
    t.add_column(f"top {top_k}", overflow="fold")
    for i, s in enumerate(steps, 1):
        hit = "" if s.target is None else (" ✓" if s.target == s.predicted else " ✗")
        t.add_row(
            str(i), visible(s.input), visible(s.predicted) + hit, f"{s.probability:.3f}", _alternatives(s.top)
        )
    return t


# ---------------------------------------------------------------------------------------------
# inspect


def key_value_table(title: str, rows: Iterable[tuple[str, str]]) -> Table:
    """A two-column table of names and values."""
    t = Table(title=title, box=box.SIMPLE_HEAD, show_header=False, title_justify="left")
    t.add_column(style="cyan", no_wrap=True)
    t.add_column(overflow="fold")
    for k, v in rows:
        t.add_row(k, v)
    return t


def parameter_table(params: Sequence[tuple[str, tuple[int, ...], int]]) -> Table:
    """Per-tensor parameter counts."""
    t = Table(title="parameters", box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("tensor", style="cyan")
    t.add_column("shape", justify="right")
    t.add_column("count", justify="right")
    for name, shape, n in params:
        t.add_row(name, " x ".join(map(str, shape)), f"{n:,}")
    t.add_row("[bold]total[/]", "", f"[bold]{sum(p[2] for p in params):,}[/]")
    return t


def vocab_table(
    chars: Sequence[str], counts: Sequence[int] | None, one_hot_max: int = 12, most: int = 16
) -> Table:
    """Index and character; one-hot rows for a small vocabulary, the most frequent otherwise."""
    small = len(chars) <= one_hot_max
    total = sum(counts) if counts else 0
    title = f"vocabulary ({len(chars)} characters)"
    if not small and counts:
        title += f", {min(most, len(chars))} most frequent of {total:,}"
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left")
    t.add_column("index", justify="right", style="cyan")
    t.add_column("char", justify="center", style="bold")
    if small:
        t.add_column("one-hot")
    if counts:
        t.add_column("count", justify="right")
        t.add_column("share", justify="right")
    order = list(range(len(chars)))
    if not small and counts:
        order = sorted(order, key=lambda i: -counts[i])[:most]
    elif not small:
        order = order[:most]
    for i in order:
        row = [str(i), visible(chars[i])]
        if small:
            row.append(" ".join("1" if j == i else "0" for j in range(len(chars))))
        if counts:
            row += [f"{counts[i]:,}", f"{counts[i] / total:.1%}" if total else ""]
        t.add_row(*row)
    return t


def line_chart(series: dict[str, tuple[list[float], list[float]]], width: int = 60, height: int = 10) -> Text:
    """Curves drawn with characters: {name: (x, y)}; each series its own marker and colour."""
    styles = [("•", "cyan"), ("◦", "magenta"), ("+", "yellow")]
    points = [(x, y) for xs, ys in series.values() for x, y in zip(xs, ys) if math.isfinite(y)]
    if not points:
        return Text("(no history)")
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_lo, y_hi = min(p[1] for p in points), max(p[1] for p in points)
    if y_hi - y_lo < 1e-9:
        y_hi = y_lo + 1e-9
    if x_hi == x_lo:
        x_hi = x_lo + 1
    grid: list[list[tuple[str, str] | None]] = [[None] * width for _ in range(height)]
    for (_, (xs, ys)), (mark, style) in zip(series.items(), styles):
        # average the points that fall in each column, so long histories stay readable
        cols: dict[int, list[float]] = {}
        for x, y in zip(xs, ys):
            if math.isfinite(y):
                cols.setdefault(round((x - x_lo) / (x_hi - x_lo) * (width - 1)), []).append(y)
        for col, vals in cols.items():
            y = sum(vals) / len(vals)
            row = height - 1 - round((y - y_lo) / (y_hi - y_lo) * (height - 1))
            grid[row][col] = (mark, style)
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
    legend = "   ".join(f"{mark} {name}" for name, (mark, _) in zip(series, styles))
    out.append(" " * (label_w + 2) + legend)
    return out


def stdout_is_terminal() -> bool:
    """Whether stdout is a terminal."""
    return sys.stdout.isatty()


def show_checkpoint(out: Console, info: dict) -> None:
    """`charnext inspect`: model, parameters, vocabulary, training and loss curves."""
    m, t = info["model"], info["training"]
    input_kind = f"embedding {m['embedding_size']}" if m["embedding_size"] else "one-hot"
    out.print(
        key_value_table(
            "model",
            [
                ("cell", m["cell"]),
                ("layers", f"{m['num_layers']} x {m['hidden_size']} units"),
                ("input", input_kind),
                ("dropout", f"{m['dropout']:g}"),
                ("vocabulary", f"{m['vocab_size']} characters"),
                ("parameters", f"{m['parameters']:,}"),
            ],
        )
    )
    out.print(parameter_table([(p["name"], tuple(p["shape"]), p["parameters"]) for p in m["layers"]]))
    out.print(vocab_table(info["vocabulary"], info.get("vocabulary_counts")))

    def num(v, fmt="{:.4f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    text = t.get("text") or {}
    rows = [
        ("steps", f"{t['steps']:,}"),
        ("final loss", num(t["final_loss"]) + " nats/char"),
        ("best loss", num(t["best_loss"]) + " nats/char"),
        ("accuracy", num(t["accuracy"], "{:.1%}")),
    ]
    if t["val_loss"] is not None:
        rows += [
            ("validation loss", f"{t['val_loss']:.4f} nats/char ({t['val_loss'] / LN2:.3f} bits/char)"),
            ("best validation", f"{t['best_val_loss']:.4f} nats/char"),
        ]
    rows += [
        ("time", fmt_duration(t["elapsed"]) if t.get("elapsed") is not None else "-"),
        ("text", f"{text.get('length', 0):,} characters, sha256 {str(text.get('sha256', '-'))[:16]}…"),
        ("device", f"{t.get('device') or '-'}, {t.get('precision') or '-'}"),
        ("resumable", "yes" if t["resumable"] else "no"),
        ("written by", f"charnext {info['charnext_version']}, {info['created']}"),
    ]
    out.print(key_value_table("training", rows))
    series = {"train loss": (info["history_steps"], info["history"])}
    if info["validation"]["steps"]:
        series["validation loss"] = (info["validation"]["steps"], info["validation"]["loss"])
    width = max(20, min(60, out.width - 12))
    out.print(Text("loss history", style="italic"))
    out.print(line_chart({k: ([x for x, y in zip(*v) if y is not None], [y for y in v[1] if y is not None])
                          for k, v in series.items()}, width=width))  # fmt: skip
