"""`charnext train`: the header, the live table and progress, the summary."""

from __future__ import annotations

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from charnext.config import PLANNED, format_duration
from charnext.events import (
    EvalEvent,
    Event,
    RowEvent,
    StepEvent,
    StopReason,
    TrainResult,
    plus_minus,
    scored_words,
)
from charnext.rendering.widgets import (
    LN2,
    Words,
    average_note,
    files_line,
    fit,
    fmt_rate,
    hanging,
    pack,
)
from charnext.text.paths import shown_path
from charnext.text.vocab import visible_text


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
        # between words, its further lines indented under the text after `plan: `
        first, _, rest = self.title.partition("\n")
        self.out.print(Text(first, style="italic"), soft_wrap=True)
        for line in rest.splitlines():
            self.out.print(Text(hanging(line, self.out.width), style="italic"), soft_wrap=True)
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
        figures = [f"step {e.step}" + (f"/{e.total}" if e.total else ""), f"loss {e.loss:.3f}"]
        if e.val_loss is not None:
            figures.append(f"val {e.val_loss:.3f}{plus_minus(e.val_se)}")
        figures.append(f"{e.chars_per_sec / 1000:.1f}k chars/s")
        info = " ".join(figures)
        if self.live is not None:
            self.progress.update(self.task, completed=e.fraction, info=info)
        elif (e.fraction - self.last_plain >= 0.1 and e.elapsed - self.last_plain_time >= 5.0) or (
            e.fraction >= 1.0 and e.elapsed >= 5.0
        ):
            self.last_plain, self.last_plain_time = e.fraction, e.elapsed
            eta = (e.elapsed / e.fraction) * (1 - e.fraction) if e.fraction > 0 else 0.0
            times = [f"elapsed {format_duration(e.elapsed)}", f"eta {format_duration(eta)}"]
            line = f"{info}  {e.fraction:4.0%}  {'  '.join(times)}"
            if cell_len(line) > self.out.width:  # folded between its figures, never past the edge
                body = pack([*figures, f"{e.fraction:.0%}", *times], self.out.width - 2)
                line = "\n".join([body[0], *(f"  {b}" for b in body[1:])])
            self.out.print(line, soft_wrap=True)

    def row(self, e: RowEvent) -> None:
        """One row of the lecture's table."""
        prediction, target = visible_text(e.prediction), visible_text(e.target)
        if not self.lines:  # the first row sets the widths: the window is the same every time
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
        val = f"{e.val_loss:.4f}{plus_minus(e.val_se)} ({e.val_bpc:.3f} bits/char)"
        line = f"[cyan]step {e.step}[/] val loss {val}{mark}"
        # the sample reads as running text: spaces stay spaces, a line break shows as ↵
        width = max(20, self.out.width - 2)
        natural = fit(visible_text(e.prompt + e.sample, spaces=True), width)
        cut = min(len(visible_text(e.prompt, spaces=True)), len(natural))
        sample = Text("  ") + Text(natural[:cut], style="bold") + Text(natural[cut:], style="italic")
        target = self.live.console if self.live is not None else self.out
        target.print(line, soft_wrap=True)
        target.print(sample, soft_wrap=True)


def best_words(r: TrainResult) -> str:
    """'1.4995 ± 0.022 nats/char at step 2,001, on the checks' 16,384-character sample'."""
    words = f"{r.best_val_loss:.4f}{plus_minus(r.best_val_se)} nats/char"
    if r.best_step is not None:
        words += f" at step {r.best_step:,}"
    if r.sample_chars and not (r.val_all and r.sample_chars == r.val_scored):
        words += f", on the checks' {r.sample_chars:,}-character sample"
    return words


def run_header(h) -> str:
    """The run's header (a RunHeader): the model, the vocabulary, the batch and where it runs;
    for a new run the plan's line below it, with the options it kept as given."""
    title = (
        f"{h.cell} {h.num_layers}x{h.hidden_size}, {h.vocab_size} chars, "
        f"batch {h.batch_size}x{h.seq_len}, {h.device} {h.precision}"
    )
    if h.files:
        title += "\non " + files_line(h.files, h.skipped)
    if h.resumed:
        title += f"\nresuming {h.resumed}"
    if h.plan:
        title += f"\nplan: {h.plan['why']}" + _given_note(h.plan)
    return title


def _given_note(plan: dict) -> str:
    """' (--batch-size as given)': the options the planner chooses that the user gave instead."""
    kept = [name for name in PLANNED if name not in plan["planned"]]
    return f" ({', '.join('--' + n.replace('_', '-') for n in kept)} as given)" if kept else ""


def train_summary(out: Console, r: TrainResult, next_command: list[str] | None = None) -> None:
    """The table printed after training, and the command to try next."""
    t = Table(title="training done" if r.reason != StopReason.interrupted else "training interrupted",
              box=box.SIMPLE_HEAD, show_header=False, title_justify="left")  # fmt: skip
    t.add_column(style="cyan", no_wrap=True)
    t.add_column()
    t.add_row("steps", f"{r.steps:,} ({StopReason.describe(r.reason)})")
    if r.turn:
        turn = r.turn
        back = f"back to step {turn['back_to']:,}, " if turn.get("back_to") is not None else ""
        t.add_row("turn", f"at step {turn['step']:,} validation read {turn['val_loss']:.4f} against the best "
                          f"{turn['best_val_loss']:.4f}: {back}the learning rate fell from {turn['lr']:.2g} "
                          f"to zero over {format_duration(turn['until'] - turn['at'])}")  # fmt: skip
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
        scored = scored_words(r.val_scored, r.val_all)
        figure = f"{r.val_loss:.4f}{plus_minus(r.val_se)} nats/char ({r.val_loss / LN2:.3f} bits/char)"
        t.add_row("validation", figure + (f", {scored}" if scored else ""))
        t.add_row("best validation", best_words(r) + average_note(r.averaging))
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
        # a command to copy and paste stands whole on one line, however narrow the terminal:
        # beside its label where both fit, else on a line of its own (which the terminal may
        # fold on screen; no line break is put inside it, and no path is shortened)
        command = " ".join(next_command)
        if cell_len(f"next: {command}") > out.width:
            out.print("next:", soft_wrap=True)
            out.print(Text(command), soft_wrap=True)
        else:
            out.print(Text(f"next: {command}"), soft_wrap=True)
