"""Rich rendering: tables, live training display, charts. The core never imports this."""

from __future__ import annotations

import math
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

from charnext.events import EvalEvent, ReportEvent, StepEvent, TrainResult
from charnext.vocab import visible, visible_text

LN2 = math.log(2)


class _Console(Console):
    """A Console that lets a closed pipe reach the command (Rich itself would exit with 1), which
    decides: output-only commands end quietly, training goes on."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def console(stderr: bool = False, quiet: bool = False) -> Console:
    """A console for stdout (or stderr); colour only on a terminal, NO_COLOR respected.
    `quiet` drops everything (the processes of a multi-process run other than rank 0)."""
    return _Console(stderr=stderr, highlight=False, soft_wrap=False, quiet=quiet)


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
        # step, loss, validation loss, chars/s and ETA fit in 80 columns; the bar takes the rest
        self.progress = Progress(
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            TextColumn("{task.fields[info]}"),
            TextColumn("eta"),
            TimeRemainingColumn(compact=True),
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

    def step(self, e: StepEvent) -> None:
        """After an optimizer step: the progress bar, or a plain line now and then."""
        val = f" val {e.val_loss:.3f}" if e.val_loss is not None else ""
        total = f"/{e.total}" if e.total else ""
        info = f"step {e.step}{total} loss {e.loss:.3f}{val} {e.chars_per_sec / 1000:.1f}k chars/s"
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

    def report(self, e: ReportEvent) -> None:
        """One row of the lecture's table."""
        self.rows += 1
        self.table.add_row(
            str(e.step),
            f"{e.loss:.4f}",
            f"{e.accuracy:.0%}",
            visible_text(e.prediction),
            visible_text(e.target),
        )

    def evaluation(self, e: EvalEvent) -> None:
        """Validation figures and a sample, printed above the bar."""
        mark = " [green](best)[/]" if e.best else ""
        line = f"[cyan]step {e.step}[/] val loss {e.val_loss:.4f} ({e.val_bpc:.3f} bits/char){mark}"
        # the sample reads as text: spaces stay spaces, line breaks show as ↵, on one line
        width = max(20, self.out.width - 2)
        natural = _crop((e.prompt + e.sample).replace("\n", "↵"), width)
        cut = min(len(e.prompt), len(natural))
        sample = Text("  ") + Text(natural[:cut], style="bold") + Text(natural[cut:], style="italic")
        if self.live is not None:
            self.live.console.print(line)
            self.live.console.print(sample)
        else:
            self.out.print(line)
            self.out.print(sample)


def train_summary(out: Console, r: TrainResult) -> None:
    """The table printed after training."""
    t = Table(title="training done" if r.reason != "interrupted" else "training interrupted",
              box=box.SIMPLE_HEAD, show_header=False, title_justify="left")  # fmt: skip
    t.add_column(style="cyan", no_wrap=True)
    t.add_column(overflow="fold")
    stopped = {"steps": "step budget reached", "max-time": "time budget reached",
               "patience": "no validation improvement (patience)", "interrupted": "Ctrl-C"}  # fmt: skip
    t.add_row("steps", f"{r.steps:,} ({stopped.get(r.reason, r.reason)})")
    # chars/s: training characters over the time in optimizer steps (validation, previews and
    # checkpoint writes excluded), as on the progress line
    t.add_row(
        "time",
        f"{fmt_duration(r.elapsed)}, of which training {fmt_duration(r.train_time)} at "
        f"{fmt_rate(r.chars_per_sec)} on {r.device}, {r.precision}",
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
    if r.metrics_log:
        t.add_row("metrics log", str(r.metrics_log))
    if r.skipped_steps:
        t.add_row("skipped steps", f"{r.skipped_steps:,} (gradients not finite)")
    out.print(t)


# ---------------------------------------------------------------------------------------------
# prepare


class PrepareView:
    """Progress of `charnext prepare`: a bar per pass over the file on a terminal; nothing in a
    pipe or a log (the summary follows)."""

    def __init__(self, out: Console):
        self.progress = Progress(
            TextColumn("{task.description:<10}"),
            BarColumn(bar_width=None),
            TaskProgressColumn(),
            TextColumn("{task.fields[mb]}"),
            TimeElapsedColumn(),
            console=out,
            transient=True,
            expand=True,
        )
        self.live = out.is_terminal
        self.tasks: dict[str, object] = {}

    def __enter__(self) -> PrepareView:
        if self.live:
            self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live:
            self.progress.stop()

    def update(self, phase: str, done: int, total: int) -> None:
        """Bytes `done` of `total` in pass `phase` (vocabulary, encoding)."""
        if not self.live:
            return
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=max(total, 1), mb="")
        self.progress.update(self.tasks[phase], completed=done, mb=f"{done / 1e6:,.0f}/{total / 1e6:,.0f} MB")


def prepare_summary(out: Console, r) -> None:
    """The table printed after `charnext prepare` (a PrepareResult)."""
    rows = [
        ("folder", str(r.path)),
        ("text", f"{r.characters:,} characters, {r.bytes:,} bytes"),
        ("vocabulary", f"{r.vocab_size:,} characters; tokens stored as {r.dtype}"),
        ("time", f"{fmt_duration(r.seconds)} ({r.mb_per_sec:,.1f} MB/s)"),
        ("train on it", f"charnext train --data {r.path}"),
    ]
    out.print(key_value_table("prepared", rows))


# ---------------------------------------------------------------------------------------------
# predict


def _alternatives(top: Sequence[tuple[str, float]]) -> str:
    return "  ".join(f"{visible(c)} {p:.2f}" for c, p in top)


TABLE_ROWS = 60  # the most rows a per-step table shows: the last ones, with a note


def prediction_table(
    steps, top_k: int, title: str = "per-step prediction", max_rows: int = TABLE_ROWS, start: int = 1
) -> Table:
    """One row per step (numbered from `start`): input, predicted next character, its
    probability, the top-k. Past `max_rows` steps only the last ones show, as the caption says."""
    hidden = max(0, len(steps) - max_rows)
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left")
    if hidden:
        t.caption = f"the first {hidden:,} of {len(steps):,} steps are not shown"
    t.add_column("step", justify="right", style="cyan")
    t.add_column("input", justify="center")
    t.add_column("predicted", justify="center", style="bold")
    t.add_column("prob", justify="right")
    t.add_column(f"top {top_k}", overflow="fold")
    for i, s in enumerate(steps[hidden:], start + hidden):
        hit = "" if s.target is None else (" ✓" if s.target == s.predicted else " ✗")
        t.add_row(
            str(i), visible(s.input), visible(s.predicted) + hit, f"{s.probability:.3f}", _alternatives(s.top)
        )
    return t


def stream_text(out: Console, prefix: str, chars: Iterable[str]) -> str:
    """Print `prefix`, then each character the moment it comes; return the characters."""
    out.print(prefix, style="bold", end="", markup=False, highlight=False)
    parts: list[str] = []
    for ch in chars:
        parts.append(ch)
        out.file.write(ch)
        out.file.flush()
    text = "".join(parts)
    if not text.endswith("\n"):
        out.file.write("\n")
    out.file.flush()
    return text


def samples(
    out: Console, prefix: str, generated: Sequence[str], seen: Sequence[bool | None] | None = None
) -> None:
    """Each continuation after its prefix; with several, a header before each. With `seen`
    (line mode), one line per sample, marked new or found among the training lines."""
    if seen is not None:
        for g, known in zip(generated, seen):
            mark = "" if known is None else ("  (in training text)" if known else "  (new)")
            out.print(Text(prefix, style="bold") + Text(visible_text(g)) + Text(mark, style="dim"))
        return
    for i, g in enumerate(generated, 1):
        if len(generated) > 1:
            out.print(f"--- sample {i} ---", style="dim")
        out.print(Text(prefix, style="bold") + Text(g), soft_wrap=True)


# ---------------------------------------------------------------------------------------------
# evaluate


def evaluation_table(r, checkpoint: str, source: str) -> Table:
    """Loss, bits/char, perplexity and accuracy of a checkpoint on a text (an Evaluation)."""
    rows = [
        ("checkpoint", checkpoint),
        ("text", source),
        ("scored", f"{r.characters:,} characters"),
        ("loss", f"{r.loss:.4f} nats/char"),
        ("bits/char", f"{r.bits_per_char:.4f}"),
        ("perplexity", f"{r.perplexity:.3f}"),
        ("accuracy", f"{r.accuracy:.1%} of next characters predicted exactly"),
    ]
    if r.skipped:
        shown = " ".join(f"'{visible(c)}'" for c in r.skipped_chars[:12])
        more = " ..." if len(r.skipped_chars) > 12 else ""
        rows.append(("skipped", f"{r.skipped:,} characters not in the vocabulary: {shown}{more}"))
    return key_value_table("evaluation", rows)


# Heat map buckets by the probability the model gave a character: confident characters are
# calm (green, yellow text), surprising ones loud (yellow, then red backgrounds; a background
# also shows a surprising space). Without colour, marks go on a line of their own under the text.
_HEAT = [  # (lowest probability, style, mark, label)
    (0.5, "green", " ", "≥ 50%"),
    (0.1, "yellow", ".", "10-50%"),
    (0.01, "black on yellow", "+", "1-10%"),
    (0.0, "bold white on red", "!", "< 1%"),
]


def _bucket(prob: float | None) -> tuple[str, str]:
    """(style, mark) of a probability; unscored characters are dim and unmarked."""
    if prob is None:
        return "dim", " "
    return next((style, mark) for low, style, mark, _ in _HEAT if prob >= low)


def _shown(ch: str) -> str:
    """A character as the heat map shows it: newline as ↵ (then a line break), space as space."""
    return "↵" if ch == "\n" else " " if ch == " " else visible(ch)


def heat_map(chars, width: int, colour: bool) -> Text:
    """The stretch, wrapped at `width` cells, each character styled by its probability; without
    `colour`, a line of marks under each line of text instead."""
    from rich.cells import cell_len

    out = Text()
    line, marks, used = Text(), [], 0

    def flush() -> None:
        out.append("  ")
        out.append_text(line)
        out.append("\n")
        if not colour:
            out.append(("  " + "".join(marks)).rstrip() + "\n", style="bold")

    for c in chars:
        shown = _shown(c.char)
        style, mark = _bucket(c.prob)
        w = cell_len(shown)
        if used + w > width:
            flush()
            line, marks, used = Text(), [], 0
        line.append(shown, style=style if colour else None)
        marks.append(mark * w)
        used += w
        if c.char == "\n":
            flush()
            line, marks, used = Text(), [], 0
    if used:
        flush()
    return out


def heat_legend(colour: bool) -> Text:
    """What the colours (or marks) of the heat map mean: two short lines."""
    out = Text("  probability the model gave each character")
    if colour:
        out.append(":\n  ")
        for _, style, _, label in _HEAT:
            out.append(f" {label} ", style=style)
            out.append(" ")
        out.append(" unscored", style="dim")
    else:
        out.append(", marked under it:\n  ")
        out.append("   ".join(f"{mark} {label}" for _, _, mark, label in _HEAT[1:]))
        out.append("   (no mark: ≥ 50%)")
    return out


def _context(chars, i: int, before: int = 12) -> Text:
    """The characters before position i of the stretch, then the character itself in brackets."""
    head = visible_text("".join(c.char for c in chars[max(0, i - before) : i]))
    return Text(head[-before:], style="dim") + Text(f"[{visible(chars[i].char)}]", style="bold red")


def surprise_table(view, n: int = 10) -> Table:
    """The `n` most surprising characters of a Surprise, with what the model expected instead."""
    t = Table(title=f"most surprising characters (of {len(view.chars):,} shown)", box=box.SIMPLE_HEAD,
              title_justify="left")  # fmt: skip
    t.add_column("pos", justify="right", style="cyan")
    t.add_column("context", no_wrap=True)
    t.add_column("prob", justify="right")
    t.add_column("bits", justify="right")
    t.add_column("expected instead", overflow="fold")
    for c in view.most_surprising(n):
        i = c.position - view.offset
        t.add_row(str(c.position), _context(view.chars, i), f"{c.prob:.4f}", f"{c.surprisal:.1f}",
                  _alternatives(c.top))  # fmt: skip
    return t


def show_surprise(out: Console, view, n: int = 10) -> None:
    """`charnext evaluate --show`: the heat map of a stretch, its legend, the most surprising."""
    colour = out.color_system is not None and not out.no_color
    end = view.offset + len(view.chars)
    out.print(Text(f"characters {view.offset:,} to {end:,}", style="italic"))
    out.print(heat_legend(colour))
    out.print()
    out.print(heat_map(view.chars, max(20, out.width - 4), colour), end="", soft_wrap=True)
    out.print()
    out.print(surprise_table(view, n))


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


def line_chart(series: dict[str, tuple[list[float], list[float]]], width: int = 60, height: int = 12) -> Text:
    """Curves drawn with characters: {name: (x, y)}; each series its own marker and colour.

    The points that fall in one column are averaged, so thousands of steps stay readable. The
    scale fits the curves after their first tenth: the steep drop at the start of training would
    otherwise squash the rest (where train and validation part) into a row or two; earlier
    points above the scale sit on the top row, as the chart notes.
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
    late = [y for cols in columns for c, y in cols.items() if c >= width // 10]
    y_lo, y_hi = min(values), max(late or values)
    clipped = max(values) > y_hi
    if y_hi - y_lo < 1e-9:
        y_hi = y_lo + 1e-9
    grid: list[list[tuple[str, str] | None]] = [[None] * width for _ in range(height)]
    for cols, (mark, style) in zip(columns, styles):
        for col, y in cols.items():
            row = max(0, height - 1 - round((y - y_lo) / (y_hi - y_lo) * (height - 1)))
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
    if clipped:
        out.append("\n" + " " * (label_w + 2) + f"(early values up to {max(values):.2f} sit on the top row)")
    return out


def provenance_rows(p: dict, log: dict | None) -> list[tuple[str, str]]:
    """Where a run came from, for `inspect`: command, source, versions, batch and schedule."""
    source = p.get("source") or {}
    schedule = p.get("schedule") or {}
    plan = (
        f"{schedule['total_steps']:,} steps" if schedule.get("total_steps") else
        f"{fmt_duration(schedule['max_time'])} budget" if schedule.get("max_time") else "-"
    )  # fmt: skip
    rows = [
        ("command", " ".join(p["command"]) if p.get("command") else "- (Python API)"),
        ("source", f"{source.get('kind', '-')}" + (f" {source['path']}" if source.get("path") else "")),
        ("versions", f"charnext {p.get('charnext')}, torch {p.get('torch')}, Python {p.get('python')}"),
        ("platform", str(p.get("platform"))),
        ("batch", f"{p.get('batch_size')} x {p.get('seq_len')} characters per step, "
                  f"{p.get('processes', 1)} process(es), {p.get('threads') or '-'} thread(s) each"),
        ("schedule", f"{plan}, peak lr {schedule.get('lr')}, warm-up {schedule.get('warmup_steps')} "
                     f"steps, cosine to {schedule.get('min_lr_ratio')} of the peak"),
    ]  # fmt: skip
    if log:
        counts = f"{log['steps']:,} steps, {len(log['validations'])} validations"
        rows.append(("metrics log", f"{log['path']} ({counts})"))
    return rows


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
    if info.get("provenance"):
        out.print(key_value_table("provenance", provenance_rows(info["provenance"], info.get("metrics_log"))))
    series = {"train loss": (info["history_steps"], info["history"])}
    if info["validation"]["steps"]:
        series["validation loss"] = (info["validation"]["steps"], info["validation"]["loss"])
    width = max(20, min(60, out.width - 12))
    out.print(Text("loss history", style="italic"))
    out.print(line_chart({k: ([x for x, y in zip(*v) if y is not None], [y for y in v[1] if y is not None])
                          for k, v in series.items()}, width=width))  # fmt: skip
