"""Rich rendering: tables, live training display, charts. The core never imports this."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterable, Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.measure import Measurement
from rich.padding import Padding
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

from charnext.config import PLANNED, format_duration
from charnext.events import EvalEvent, Event, RowEvent, StepEvent, TrainResult
from charnext.inside.curves import loss_axis, smooth
from charnext.text.paths import shorten_middle, shown_path
from charnext.text.vocab import visible, visible_running, visible_text

LN2 = math.log(2)


class _Console(Console):
    """A Console that lets a closed pipe reach the command (Rich itself would exit with 1), which
    decides: output-only commands end quietly, training goes on."""

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError


def console(stderr: bool = False, quiet: bool = False) -> Console:
    """A console for stdout (or stderr); colour only on a terminal, NO_COLOR respected.
    `quiet` drops everything (the processes of a multi-process run other than rank 0).
    In a pipe or a file, lines lose the spaces Rich pads them with at their end."""
    con = _Console(stderr=stderr, highlight=False, soft_wrap=False, quiet=quiet)
    if not con.is_terminal:
        con.file = TrimmedLines(con.file)
    return con


class TrimmedLines:
    """A text stream that drops the spaces at the end of each line written through it: Rich pads
    table cells to their column's width, which a terminal hides but a log file keeps."""

    def __init__(self, stream):
        self.stream = stream
        self.pending = ""  # the start of a line whose end has not been written yet

    def write(self, text: str) -> int:
        head, newline, self.pending = (self.pending + text).rpartition("\n")
        if newline:
            self.stream.write("\n".join(line.rstrip(" ") for line in head.split("\n")) + "\n")
        return len(text)

    def flush(self) -> None:
        if self.pending:  # a line without its end yet (a prompt, a stream): written as it is
            self.stream.write(self.pending)
            self.pending = ""
        self.stream.flush()

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


class OutputThatMayClose:
    """The training view's stream: once its reader is gone (`charnext train ... | head`), writes
    go nowhere and the run goes on to the end, saving as usual; the command then exits 0."""

    def __init__(self, stream):
        self.stream = stream
        self.gone = False

    def write(self, text: str) -> int:
        if not self.gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._gone()
        return len(text)

    def flush(self) -> None:
        if not self.gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._gone()

    def _gone(self) -> None:
        self.gone = True
        stdout_closed()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


def stdout_closed() -> None:
    """Point standard output at /dev/null, so that nothing later fails writing to the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. under a test runner)
        pass
    finally:
        os.close(devnull)


def error_console() -> Console:
    """The console errors go to."""
    return Console(stderr=True, highlight=False)


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
        lines: list[str] = []
        line = ""
        for word in self.words:
            word = shorten_middle(word, width, cell_len)
            if line and cell_len(line) + 1 + cell_len(word) <= width:
                line += " " + word
            else:
                if line:
                    lines.append(line)
                line = word
        lines.append(line)
        return lines


def fit(text: str, width: int, pad: bool = False) -> str:
    """`text` cut to `width` terminal cells with an ellipsis (a wide CJK character counts two);
    with `pad`, filled with spaces to exactly `width` cells."""
    out = Text(text)
    out.truncate(max(1, width), overflow="ellipsis", pad=pad)
    return out.plain


# ---------------------------------------------------------------------------------------------
# train


class TrainView:
    """Shows a training run: its header, then the lecture's table and evaluation samples line by
    line as they happen, above a progress bar on a terminal; in a file or a pipe, the same lines
    with plain progress lines (at most every 5 seconds) instead of the bar.

    The table is laid out here rather than by Rich, so that it never drops a column: the step,
    loss and accuracy keep their width, and the prediction and target share what is left,
    measured in terminal cells and shortened with an ellipsis.
    """

    STEP, LOSS, ACC = 6, 7, 4  # widths of the numeric columns, in cells

    def __init__(self, out: Console, title: str):
        self.out = out
        self.title = title
        self.live_mode = out.is_terminal
        self.lines: list[Text] = []  # the table so far: its header, rule and rows
        self.text_width = 0  # cells for the prediction and for the target; set by the first row
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

    @property
    def rows(self) -> int:
        """Rows of the table shown so far."""
        return max(0, len(self.lines) - 2)

    def __enter__(self) -> TrainView:
        # the run's header, first: its first line whole, the plan below it wrapped to the width
        first, _, rest = self.title.partition("\n")
        self.out.print(Text(first, style="italic"), soft_wrap=True)
        if rest:
            self.out.print(Text(rest, style="italic"))
        if self.live_mode:
            self.task = self.progress.add_task("train", total=1.0, info="")
            self.live = Live(self.progress, console=self.out, refresh_per_second=8)
            self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.progress.remove_task(self.task)
            self.live.__exit__(*exc)
            self.live = None

    def _line(self, step: str, loss: str, acc: str, prediction: str, target: str, style: str = "") -> Text:
        w = self.text_width
        line = Text("  ", style=style)
        line.append(f"{step:>{self.STEP}}", style=style or "cyan")
        line.append(f"  {loss:>{self.LOSS}}  {acc:>{self.ACC}}   ")
        line.append(fit(prediction, w, pad=True), style=style or "bold")
        line.append("  ")
        line.append(fit(target, w), style=style or "dim")
        line.rstrip()
        return line

    def _show(self, line: Text) -> None:
        """A line of the table, printed above the bar (on a terminal) as it comes."""
        self.lines.append(line)
        (self.live.console if self.live is not None else self.out).print(line, soft_wrap=True)

    def show(self, event: Event) -> None:
        """Any event of the run, shown where it belongs."""
        if isinstance(event, StepEvent):
            self.step(event)
        elif isinstance(event, RowEvent):
            self.row(event)
        elif isinstance(event, EvalEvent):
            self.evaluation(event)

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
            times = f"elapsed {format_duration(e.elapsed)}  eta {format_duration(eta)}"
            self.out.print(f"{info}  {e.fraction:4.0%}  {times}", soft_wrap=True)

    def row(self, e: RowEvent) -> None:
        """One row of the lecture's table."""
        prediction, target = visible_text(e.prediction), visible_text(e.target)
        if not self.lines:  # the first row sets the widths: the window is the same every time
            from rich.cells import cell_len

            fixed = 2 + self.STEP + 2 + self.LOSS + 2 + self.ACC + 3 + 2
            room = max(4, (self.out.width - fixed) // 2)
            self.text_width = min(room, max(len("prediction"), cell_len(prediction), cell_len(target)))
            self._show(self._line("step", "loss", "acc", "prediction", "target", style="bold"))
            self._show(
                Text("  " + "─" * (self.STEP + 2 + self.LOSS + 2 + self.ACC + 3 + 2 * self.text_width + 2))
            )
        self._show(self._line(str(e.step), f"{e.loss:.4f}", f"{e.accuracy:.0%}", prediction, target))

    def evaluation(self, e: EvalEvent) -> None:
        """Validation figures and a sample, printed above the bar."""
        mark = " [green](best)[/]" if e.best else ""
        line = f"[cyan]step {e.step}[/] val loss {e.val_loss:.4f} ({e.val_bpc:.3f} bits/char){mark}"
        # the sample reads as running text: spaces stay spaces, a line break shows as ↵
        width = max(20, self.out.width - 2)
        natural = fit(visible_text(e.prompt + e.sample, spaces=True), width)
        cut = min(len(visible_text(e.prompt, spaces=True)), len(natural))
        sample = Text("  ") + Text(natural[:cut], style="bold") + Text(natural[cut:], style="italic")
        target = self.live.console if self.live is not None else self.out
        target.print(line, soft_wrap=True)
        target.print(sample, soft_wrap=True)


def run_header(trainer) -> str:
    """The run's header: the model, the vocabulary, the batch and where it runs; for a new run
    the plan's line below it, with the options it kept as given."""
    c = trainer.model.config
    title = (
        f"{c.cell.value} {c.num_layers}x{c.hidden_size}, {len(trainer.vocab)} chars, "
        f"batch {trainer.batch_size}x{trainer.seq_len}, {trainer.device} {trainer.precision}"
    )
    plan = trainer.recorded_plan()
    if plan and trainer.resumed_from is None:
        title += f"\nplan: {plan['why']}" + _given_note(plan)
    if trainer.budget_line():  # resumed: what the run used and what this command adds
        title += f"\n{trainer.budget_line()}"
    return title


def _given_note(plan: dict) -> str:
    """' (--batch-size as given)': the options the planner chooses that the user gave instead."""
    kept = [name for name in PLANNED if name not in plan["planned"]]
    return f" ({', '.join('--' + n.replace('_', '-') for n in kept)} as given)" if kept else ""


def _average_note(averaging: dict | None) -> str:
    """'; live weights 1.5012, their average 1.4950': the two bests, where an average was kept."""
    if not averaging or averaging.get("best_val_loss_average") is None:
        return ""
    live, average = averaging["best_val_loss_live"], averaging["best_val_loss_average"]
    return f"; live weights {live:.4f}, their average {average:.4f}"


def train_summary(out: Console, r: TrainResult, next_command: list[str] | None = None) -> None:
    """The table printed after training, and the command to try next."""
    t = Table(title="training done" if r.reason != "interrupted" else "training interrupted",
              box=box.SIMPLE_HEAD, show_header=False, title_justify="left")  # fmt: skip
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    stopped = {"steps": "step budget reached", "max-time": "time budget reached",
               "patience": "no validation improvement (patience)", "interrupted": "Ctrl-C"}  # fmt: skip
    t.add_row("steps", f"{r.steps:,} ({stopped.get(r.reason, r.reason)})")
    # chars/s: training characters over the time in optimizer steps (validation, previews and
    # checkpoint writes excluded), as on the progress line
    rate = fmt_rate(r.chars_per_sec)
    training = f"training {format_duration(r.train_time)} at {rate} on {r.device}, {r.precision}"
    if r.session_steps < r.steps:  # resumed: this session's figures apart from the whole run's
        t.add_row(
            "this session",
            f"{r.session_steps:,} steps in {format_duration(r.session_elapsed)}, of which {training}",
        )
        t.add_row("whole run", f"{r.steps:,} steps in {format_duration(r.elapsed)}")
    else:
        t.add_row("time", f"{format_duration(r.elapsed)}, of which {training}")
    t.add_row("final loss", f"{r.loss:.4f} nats/char, accuracy {r.accuracy:.1%}")
    if r.val_loss is not None:
        t.add_row("validation", f"{r.val_loss:.4f} nats/char ({r.val_loss / LN2:.3f} bits/char)")
        t.add_row("best validation", f"{r.best_val_loss:.4f} nats/char" + _average_note(r.averaging))
    t.add_row(
        "model", f"{r.parameters:,} parameters; text {r.train_chars:,} train / {r.val_chars:,} val chars"
    )
    if r.checkpoint:
        t.add_row("checkpoint", Words([shown_path(r.checkpoint)]))
    if r.best_checkpoint:
        t.add_row("best checkpoint", Words([shown_path(r.best_checkpoint)]))
    if r.metrics_log:
        t.add_row("metrics log", Words([shown_path(r.metrics_log)]))
    if r.skipped_steps:
        t.add_row("skipped steps", f"{r.skipped_steps:,} (gradients not finite)")
    if r.outlook:  # last: what more time would buy, as the validation curve measured it
        t.add_row("outlook", r.outlook["line"])
    out.print(t)
    if next_command:
        out.print(Words(["next:", *next_command]))  # wrapped between words, never inside one


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
        ("folder", [shown_path(r.path)]),
        ("text", f"{r.characters:,} characters, {r.bytes:,} bytes"),
        ("vocabulary", f"{r.vocab_size:,} characters; tokens stored as {r.dtype}"),
        ("time", f"{format_duration(r.seconds)} ({r.mb_per_sec:,.1f} MB/s)"),
        ("train on it", ["charnext", "train", "--data", shown_path(r.path)]),
    ]
    out.print(key_value_table("prepared", rows))


# ---------------------------------------------------------------------------------------------
# predict


def _alternatives(top: Sequence[tuple[str, float]], width: int | None = None) -> str:
    """`a 0.51  b 0.20  c 0.09`; with `width`, broken into lines of at most that many cells
    between pairs, never inside one."""
    from rich.cells import cell_len

    pairs = [f"{visible(c)} {p:.2f}" for c, p in top]
    if width is None:
        return "  ".join(pairs)
    lines: list[str] = []
    for pair in pairs:
        if lines and cell_len(lines[-1]) + 2 + cell_len(pair) <= width:
            lines[-1] += "  " + pair
        else:
            lines.append(pair)
    return "\n".join(lines)


def _room(width: int | None, columns: Sequence[int]) -> int | None:
    """Cells left for the last column of a SIMPLE_HEAD table `width` wide whose other columns
    are `columns` cells wide (a cell of padding on both sides of each column, and a cell for
    each border)."""
    if width is None:
        return None
    n = len(columns) + 1
    return max(7, width - sum(columns) - 3 * n - 1)


TABLE_ROWS = 60  # the most rows a per-step table shows: the last ones, with a note


def prediction_table(
    steps,
    top_k: int,
    title: str = "per-step prediction",
    max_rows: int = TABLE_ROWS,
    start: int = 1,
    width: int | None = None,
) -> Table:
    """One row per step (numbered from `start`): input, predicted next character, its
    probability, the top-k. Past `max_rows` steps only the last ones show, as the caption says.
    With the console's `width`, a long top-k list breaks between pairs, never inside one."""
    from rich.cells import cell_len

    hidden = max(0, len(steps) - max_rows)
    shown = steps[hidden:]
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left")
    if hidden:
        t.caption = f"the first {hidden:,} of {len(steps):,} steps are not shown"
    t.add_column("step", justify="right", style="cyan", no_wrap=True)
    t.add_column("input", justify="center", no_wrap=True)
    t.add_column("predicted", justify="center", style="bold", no_wrap=True)
    t.add_column("prob", justify="right", no_wrap=True)
    t.add_column(f"top {top_k}", no_wrap=True)
    step_w = max(4, len(str(start + len(steps) - 1)))
    input_w = max([5, *(cell_len(visible(s.input)) for s in shown)])
    predicted_w = max([9, *(cell_len(visible(s.predicted)) + 2 for s in shown)])
    room = _room(width, [step_w, input_w, predicted_w, 5])
    for i, s in enumerate(shown, start + hidden):
        hit = "" if s.target is None else (" ✓" if s.target == s.predicted else " ✗")
        t.add_row(
            str(i),
            visible(s.input),
            visible(s.predicted) + hit,
            f"{s.probability:.3f}",
            _alternatives(s.top, room),
        )
    return t


def show_prediction(out: Console, steps, prediction: str, alternatives: int) -> None:
    """predict's per-step table and its prediction line."""
    out.print(prediction_table(steps, alternatives, width=out.width))
    out.print(f"prediction: [bold]{visible_text(prediction)}[/]")


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
            shown = Text(visible_text(prefix, spaces=True), style="bold") + Text(visible_text(g, spaces=True))
            out.print(shown + Text(mark, style="dim"))
        return
    for i, g in enumerate(generated, 1):
        if len(generated) > 1:
            out.print(f"--- sample {i} ---", style="dim")
        out.print(Text(prefix, style="bold") + Text(g), soft_wrap=True)


def plain_samples(out: Console, prefix: str, generated: Sequence[str]) -> None:
    """`predict --text`: each continuation after its prefix, exactly as generated, and nothing
    else; a newline ends each sample that does not end with one."""
    stream = getattr(out.file, "stream", out.file)  # as it is: no trailing space is trimmed
    for g in generated:
        text = prefix + g
        stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


# ---------------------------------------------------------------------------------------------
# evaluate


def evaluation_table(r, checkpoint: str, source: str | Sequence[str]) -> Table:
    """Loss, bits/char, perplexity and accuracy of a checkpoint on a text (an Evaluation);
    `source` as words (a path one word)."""
    rows = [
        ("checkpoint", [shown_path(checkpoint)]),
        ("text", source),
        ("scored", f"{r.characters:,} characters"),
        ("loss", f"{r.loss:.4f} nats/char"),
        ("bits/char", f"{r.bits_per_char:.4f}"),
        ("perplexity", f"{r.perplexity:.3f}"),
        ("accuracy", f"{r.accuracy:.1%} of next characters predicted exactly"),
    ]
    # what the loss compares with: the model on its own held-out text, and a model that knows
    # nothing but how often each character occurs
    if getattr(r, "training_val_loss", None) is not None:
        rows.append(("in training", f"{r.training_val_loss:.4f} nats/char on its own held-out text"))
    if getattr(r, "unigram_loss", None) is not None:
        rows.append(
            ("frequencies", f"{r.unigram_loss:.4f} nats/char knowing only how often each character occurs")
        )
    if r.skipped:
        shown = " ".join(f"'{visible(c)}'" for c in r.skipped_chars[:12])
        more = " ..." if len(r.skipped_chars) > 12 else ""
        rows.append(("skipped", f"{r.skipped:,} characters not in the vocabulary: {shown}{more}"))
    return key_value_table("evaluation", rows)


# Heat map buckets by the probability the model gave a character: confident characters are
# calm (green, yellow text), surprising ones loud (yellow, then red backgrounds; a background
# also shows a surprising space). Without colour, marks go on a line of their own under the text.
_HEAT = [  # (style, mark) of each surprise level (charnext.inference.surprise.SURPRISE_LEVELS)
    ("green", " "),
    ("yellow", "."),
    ("black on yellow", "+"),
    ("bold white on red", "!"),
]


def _bucket(prob: float | None) -> tuple[str, str]:
    """(style, mark) of a probability; unscored characters are dim and unmarked."""
    if prob is None:
        return "dim", " "
    from charnext.inference.surprise import surprise_level

    return _HEAT[surprise_level(prob)]


def _wrapped(
    cells: Iterable[tuple[str, str | None, str]], width: int, colour: bool, marks_style: str = ""
) -> Text:
    """(character, style, mark) cells wrapped at `width` terminal cells, a line break also ending
    a line; with `colour` each character in its style, without it a line of marks under each
    line of text instead."""
    from rich.cells import cell_len

    out = Text()
    line, marks, used = Text(), [], 0

    def flush() -> None:
        out.append("  ")
        out.append_text(line)
        out.append("\n")
        if not colour:
            out.append(("  " + "".join(marks)).rstrip() + "\n", style=marks_style)

    for ch, style, mark in cells:
        shown = visible_running(ch)
        w = cell_len(shown)
        if used + w > width:
            flush()
            line, marks, used = Text(), [], 0
        line.append(shown, style=style if colour else None)
        marks.append(mark * w)
        used += w
        if ch == "\n":
            flush()
            line, marks, used = Text(), [], 0
    if used:
        flush()
    return out


def heat_map(chars, width: int, colour: bool) -> Text:
    """The stretch, wrapped at `width` cells, each character styled by its probability; without
    `colour`, a line of marks under each line of text instead."""
    return _wrapped(((c.char, *_bucket(c.prob)) for c in chars), width, colour, "bold")


def heat_legend(colour: bool) -> Padding:
    """What the colours (or marks) of the heat map mean: two short lines, indented, and so is
    every line they wrap onto in a narrow terminal."""
    from charnext.inference.surprise import SURPRISE_LEVELS

    out = Text("probability the model gave each character")
    if colour:
        out.append(":\n")
        for (style, _), (_, label) in zip(_HEAT, SURPRISE_LEVELS):
            out.append(f" {label} ", style=style)
            out.append(" ")
        out.append(" unscored", style="dim")
    else:
        out.append(", marked under it:\n")
        out.append(
            "   ".join(f"{mark} {label}" for (_, mark), (_, label) in list(zip(_HEAT, SURPRISE_LEVELS))[1:])
        )
        out.append("   (no mark: ≥ 50%)")
    return Padding(out, (0, 0, 0, 2))


def _context(chars, i: int, before: int = 12) -> Text:
    """The characters before position i of the stretch, then the character itself in brackets."""
    head = visible_text("".join(c.char for c in chars[max(0, i - before) : i]))
    return Text(head[-before:], style="dim") + Text(f"[{visible(chars[i].char)}]", style="bold red")


def surprise_table(view, n: int = 10, width: int | None = None) -> Table:
    """The `n` most surprising characters of a Surprise, with what the model expected instead."""
    t = Table(title=f"most surprising characters (of {len(view.chars):,} shown)", box=box.SIMPLE_HEAD,
              title_justify="left")  # fmt: skip
    t.add_column("pos", justify="right", style="cyan")
    t.add_column("context", no_wrap=True)
    t.add_column("prob", justify="right")
    t.add_column("bits", justify="right")
    t.add_column("expected instead", no_wrap=True)
    room = _room(width, [max(3, len(f"{view.offset + len(view.chars)}")), 12 + 3, 6, 4])
    for c in view.most_surprising(n):
        i = c.position - view.offset
        t.add_row(str(c.position), _context(view.chars, i), f"{c.prob:.4f}", f"{c.surprisal:.1f}",
                  _alternatives(c.top, room))  # fmt: skip
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
    out.print(surprise_table(view, n, out.width))


# ---------------------------------------------------------------------------------------------
# inspect


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


def _inference_only_rows(info: dict) -> list[tuple[str, str]]:
    """What an exported file holds, and only that."""
    start = info.get("start") or ""
    rows = [
        ("kind", "inference-only (charnext export): the weights, the vocabulary and the model's "
                 "configuration; no training record, so it cannot be resumed"),
        ("trained for", f"{info['training']['steps']:,} steps"),
        ("mode", "lines (each line read after a newline, from zero)" if info.get("line_mode") else "stream"),
    ]  # fmt: skip
    if not info.get("line_mode"):
        rows.append(("reads first", visible_text(start) if start else "nothing (the zero state)"))
    rows.append(("written by", f"charnext {info['charnext_version']}, {info['created']}"))
    return rows


def vocab_table(
    chars: Sequence[str], counts: Sequence[int] | None, one_hot_max: int = 12, most: int = 16
) -> Group:
    """Index and character; one-hot rows for a small vocabulary, the most frequent otherwise.

    The heading and the note on what is left out are lines of their own, not the table's title
    and caption, which Rich would wrap to the narrow table's width."""
    small = len(chars) <= one_hot_max
    total = sum(counts) if counts else 0
    t = Table(box=box.SIMPLE_HEAD)
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
    heading = f"vocabulary: {len(chars)} characters" + (f", {total:,} in the training text" if counts else "")
    parts: list = [Text(heading, style="italic"), t]
    left = len(chars) - len(order)
    if left:
        parts.append(Text(f"  and {left} more (--json lists all)", style="dim"))
    return Group(*parts)


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
            row = max(0, height - 1 - round((y - y_lo) / (y_hi - y_lo) * (height - 1)))
            grid[row][col] = (mark, style)
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
    lines = [legend[0]]  # the legend's keys on lines no wider than the chart, each key whole
    for key in legend[1:]:
        if len(lines[-1]) + 3 + len(key) <= width:
            lines[-1] += "   " + key
        else:
            lines.append(key)
    out.append("\n".join(" " * (label_w + 2) + line for line in lines))
    if note:
        out.append("\n" + " " * (label_w + 2) + note)
    return out


def provenance_rows(p: dict, log: dict | None) -> list[tuple[str, str | list[str]]]:
    """Where a run came from, for `inspect`: command, source, versions, batch and schedule."""
    source = p.get("source") or {}
    if not isinstance(source, dict):
        source = {}
    path = source.get("path")
    where = [shown_path(path)] if isinstance(path, str) and path else []  # one word, spaces and all
    command = p.get("command")
    schedule = p.get("schedule") if isinstance(p.get("schedule"), dict) else {}
    total, budget = schedule.get("total_steps"), schedule.get("max_time")
    plan = (
        f"{total:,} steps" if _positive(total) else
        f"{format_duration(budget)} budget" if _positive(budget) else "-"
    )  # fmt: skip
    rows = [
        ("command", [str(a) for a in command] if isinstance(command, list) and command else "- (Python API)"),
        ("source", [str(source.get("kind", "-")), *where]),
        ("versions", f"charnext {p.get('charnext')}, torch {p.get('torch')}, Python {p.get('python')}"),
        ("platform", str(p.get("platform"))),
        ("batch", f"{p.get('batch_size')} x {p.get('seq_len')} characters per step, "
                  f"{p.get('processes', 1)} process(es), {p.get('threads') or '-'} thread(s) each"),
        ("schedule", f"{plan}, peak lr {schedule.get('lr')}, warm-up {schedule.get('warmup_steps')} "
                     f"steps, cosine to {schedule.get('min_lr_ratio')} of the peak"),
    ]  # fmt: skip
    chosen = p.get("plan")
    if isinstance(chosen, dict) and chosen.get("why"):
        names = chosen.get("planned") if isinstance(chosen.get("planned"), list) else []
        planned = ", ".join(str(n).replace("_", "-") for n in names) or "nothing"
        rows.append(("plan", f"{chosen['why']} (planned: {planned})"))
    averaging = p.get("averaging")
    if isinstance(averaging, dict):
        held = "their average" if averaging.get("weights") == "average" else "the live weights"
        rows.append(("weights", f"{held} (EMA {averaging.get('decay')} every {averaging.get('every')} "
                                f"steps from {averaging.get('start', 0):.0%} of the run)"
                                + _average_note(averaging)))  # fmt: skip
    outlook = p.get("outlook")
    if isinstance(outlook, dict) and outlook.get("line"):
        rows.append(("outlook", str(outlook["line"])))
    if log:
        counts = f"{log['steps']:,} steps, {len(log['validations'])} validations"
        rows.append(("metrics log", [shown_path(log["path"]), *f"({counts})".split(" ")]))
    return rows


def _positive(v) -> bool:
    """A number above zero (a recorded field, which a damaged file may hold as anything)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0


def _model_rows(m: dict) -> list[tuple[str, str]]:
    """The model table's rows: cell, size, input, dropout, vocabulary, parameters."""
    return [
        ("cell", m["cell"]),
        ("layers", f"{m['num_layers']} x {m['hidden_size']} units"),
        ("input", f"embedding {m['embedding_size']}" if m["embedding_size"] else "one-hot"),
        ("dropout", f"{m['dropout']:g}"),
        ("vocabulary", f"{m['vocab_size']} characters"),
        ("parameters", f"{m['parameters']:,}"),
    ]


def show_checkpoint(out: Console, info: dict) -> None:
    """`charnext inspect`: model, parameters, vocabulary, training and loss curves (an exported
    file: what it holds instead of the training)."""
    m, t = info["model"], info["training"]
    out.print(key_value_table("model", _model_rows(m)))
    out.print(parameter_table([(p["name"], tuple(p["shape"]), p["parameters"]) for p in m["layers"]]))
    out.print(vocab_table(info["vocabulary"], info.get("vocabulary_counts")))

    if info.get("inference_only"):  # `charnext export`: no training record to show
        out.print(key_value_table("file", _inference_only_rows(info)))
        return

    def num(v, fmt="{:.4f}"):
        return fmt.format(v) if isinstance(v, (int, float)) else "-"

    text = t.get("text") or {}
    raw = [(x, y) for x, y in zip(info["history_steps"], info["history"]) if y is not None]
    smoothed = smooth([y for _, y in raw])
    rows = [("steps", f"{t['steps']:,}")]
    if t["val_loss"] is not None:  # the figure that says how good the model is: first
        rows += [
            (
                "best validation",
                f"{t['best_val_loss']:.4f} nats/char ({t['best_val_loss'] / LN2:.3f} bits/char)",
            ),
            ("last validation", f"{t['val_loss']:.4f} nats/char"),
        ]
    rows += [
        ("training loss", (f"{smoothed[-1]:.4f} nats/char smoothed (last step "
                           f"{num(t['final_loss'])})") if smoothed else "-"),
        ("accuracy", num(t["accuracy"], "{:.1%}") + " (last step)"),
    ]  # fmt: skip
    rows += [
        ("time", format_duration(t["elapsed"]) if t.get("elapsed") is not None else "-"),
        ("text", f"{text.get('length', 0):,} characters, sha256 {str(text.get('sha256', '-'))[:16]}…"),
        ("device", f"{t.get('device') or '-'}, {t.get('precision') or '-'}"),
        ("resumable", "yes" if t["resumable"] else "no"),
        ("written by", f"charnext {info['charnext_version']}, {info['created']}"),
    ]
    out.print(key_value_table("training", rows))
    if info.get("provenance"):
        out.print(key_value_table("provenance", provenance_rows(info["provenance"], info.get("metrics_log"))))
    series = {"train loss, smoothed": ([x for x, _ in raw], smoothed)}
    val = [(x, y) for x, y in zip(info["validation"]["steps"], info["validation"]["loss"]) if y is not None]
    if val:
        series["validation loss"] = ([x for x, _ in val], [y for _, y in val])
    width = max(20, min(60, out.width - 12))
    out.print(Text("loss history", style="italic"))
    faint = ("per step", [x for x, _ in raw], [y for _, y in raw])
    out.print(line_chart(series, width=width, faint=faint))


# ---------------------------------------------------------------------------------------------
# neurons


# A diverging scale (ColorBrewer RdBu): blue below zero, red above, no colour near zero; dark
# backgrounds take white text. In a pipe a bar under each character gives its level instead.
_DIVERGING = {
    -4: "white on #2166ac", -3: "white on #4393c3", -2: "black on #92c5de", -1: "black on #d1e5f0",
    0: "", 1: "black on #fddbc7", 2: "black on #f4a582", 3: "white on #d6604d", 4: "white on #b2182b",
}  # fmt: skip
_SPARK = "▁▂▃▄▅▆▇█"  # the plain form: lowest (most negative) to highest (most positive)


def _spark(value: float, magnitude: float) -> str:
    """The bar under a character: ▁ at -magnitude, █ at +magnitude (0 falls on ▄/▅)."""
    v = max(-1.0, min(1.0, value / magnitude)) if magnitude > 0 else 0.0
    return _SPARK[min(len(_SPARK) - 1, int((v + 1) / 2 * len(_SPARK)))]


def unit_heat_map(text: str, values: Sequence[float], magnitude: float, width: int, colour: bool) -> Text:
    """`text` wrapped at `width` cells, each character's background coloured by a unit's
    activation (blue negative, red positive); without `colour`, a line of bars under each line
    of text (▁ most negative ... █ most positive)."""
    from charnext.inside.neurons import diverging_level

    cells = (
        (ch, _DIVERGING[diverging_level(v, magnitude)], _spark(v, magnitude)) for ch, v in zip(text, values)
    )
    return _wrapped(cells, width, colour)


def unit_legend(colour: bool, magnitude: float) -> Padding:
    """What the colours (or bars) of a unit's heat map mean (indented, wrapped lines too)."""
    if colour:
        out = Text("activation: ")
        for level in range(-4, 5):
            value = level / 4 * magnitude
            out.append(f" {value:+.2f} " if level in (-4, 0, 4) else "  ", style=_DIVERGING[level] or "dim")
        return Padding(out, (0, 0, 0, 2))
    return Padding(
        Text(f"activation, as a bar under each character: ▁ {-magnitude:+.2f} … ▄▅ 0 … █ {magnitude:+.2f}"),
        (0, 0, 0, 2),
    )


def _r(r: float) -> Text:
    return Text(f"{r:+.2f}", style="red" if r > 0 else "blue")


def neuron_tables(scan, n: int = 10, width: int | None = None) -> tuple[Table, Table]:
    """The `n` most telling units of a NeuronScan, and the best unit for each feature.

    Feature names are never cut. Where the console is too narrow, the top table gives up its
    least useful columns first: `state` (the unit's name says the same, `1:c62` = layer 1 cell
    62), then `next best`."""
    units = scan.top_units(n)
    rows = []
    for s in units:
        second = f"{s.second} {s.second_r:+.2f}" if s.second else ""
        rows.append((s.unit.name, s.unit.description, s.feature, _r(s.r), second))
    columns = ["unit", "state", "follows", "r", "next best"]
    widths = [max([len(c), *(len(r[i]) for r in rows)]) for i, c in enumerate(columns)]
    keep = list(range(len(columns)))
    for drop in (1, 4):  # state, then next best
        if width is None or sum(widths[i] for i in keep) + 3 * (len(keep) + 1) - 2 <= width:
            break
        keep.remove(drop)
    title = f"most telling units (of {len(scan.units):,}, over {scan.characters:,} characters)"
    top = Table(
        title=title, box=box.SIMPLE_HEAD, title_justify="left", min_width=min(len(title) + 2, width or 200)
    )
    styles = {"unit": "cyan", "follows": "bold", "next best": "dim"}
    for i in keep:
        name = columns[i]
        top.add_column(
            name, style=styles.get(name, ""), no_wrap=True, justify="right" if name == "r" else "left"
        )
    for r in rows:
        top.add_row(*(r[i] for i in keep))
    # min_width: a narrow table would otherwise wrap its title
    best = Table(title="best unit for each feature", box=box.SIMPLE_HEAD, title_justify="left", min_width=30)
    best.add_column("feature", style="bold", no_wrap=True)
    best.add_column("unit", style="cyan", no_wrap=True)
    best.add_column("r", justify="right")
    best.add_column("the feature at each character", style="dim", overflow="fold")
    from charnext.inside.neurons import FEATURES

    for s in scan.best_per_feature():
        best.add_row(s.feature, s.unit.name, _r(s.r), FEATURES[s.feature])
    return top, best


def show_neurons(out: Console, scan, n: int = 10) -> None:
    """`charnext neurons`: the most telling units and the best unit per feature."""
    top, best = neuron_tables(scan, n, out.width)
    out.print(top)
    out.print(best)
    if scan.top_units(1):
        out.print(Text(f"  see one over the text: --unit {scan.top_units(1)[0].unit.name}", style="dim"))


def show_unit(out: Console, scan, unit) -> None:
    """`charnext neurons --unit`: one unit's activation over the stretch, as a heat map."""
    from charnext.inside.neurons import scale

    colour = out.color_system is not None and not out.no_color
    s = scan.score(unit)
    values = scan.activation(unit)
    magnitude = scale(values)
    end = scan.stretch_offset + len(scan.stretch)
    head = Text(f"{unit.name} ({unit.description}) follows ", style="italic")
    head.append(s.feature, style="bold")
    head.append(f", r = {s.r:+.2f}; characters {scan.stretch_offset:,} to {end:,}")
    out.print(head)
    out.print(unit_legend(colour, magnitude))
    out.print()
    out.print(unit_heat_map(scan.stretch, values, magnitude, max(20, out.width - 4), colour), end="",
              soft_wrap=True)  # fmt: skip
