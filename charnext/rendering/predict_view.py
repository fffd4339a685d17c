"""`charnext predict`: the per-step table, the prediction line, the continuations."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from rich.text import Text

from charnext.rendering.console import error_console, skipped_note
from charnext.rendering.widgets import alternatives_text, room_for
from charnext.text.vocab import visible, visible_text

TABLE_ROWS = 60  # the most rows a per-step table shows: the last ones, with a note


def prediction_table(
    steps,
    alternatives: int,
    title: str = "per-step prediction",
    max_rows: int = TABLE_ROWS,
    start: int = 1,
    width: int | None = None,
) -> Table:
    """One row per step (numbered from `start`): input, predicted next character, its
    probability, the top-k. Past `max_rows` steps only the last ones show, as the caption says.
    With the console's `width`, a long top-k list breaks between pairs, never inside one."""
    hidden = max(0, len(steps) - max_rows)
    shown = steps[hidden:]
    t = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", caption_justify="left")
    if hidden:
        t.caption = f"the first {hidden:,} of {len(steps):,} steps are not shown"
    t.add_column("step", justify="right", style="cyan", no_wrap=True)
    t.add_column("input", justify="center", no_wrap=True)
    t.add_column("predicted", justify="center", style="bold", no_wrap=True)
    t.add_column("prob", justify="right", no_wrap=True)
    t.add_column(f"top {alternatives}", no_wrap=True)
    step_w = max(4, len(str(start + len(steps) - 1)))
    input_w = max([5, *(cell_len(visible(s.input)) for s in shown)])
    predicted_w = max([9, *(cell_len(visible(s.predicted)) + 2 for s in shown)])
    room = room_for(width, [step_w, input_w, predicted_w, 5])
    for i, s in enumerate(shown, start + hidden):
        hit = "" if s.target is None else (" ✓" if s.target == s.predicted else " ✗")
        t.add_row(
            str(i),
            visible(s.input),
            visible(s.predicted) + hit,
            f"{s.probability:.3f}",
            alternatives_text(s.top, room),
        )
    return t


def show_prediction(out: Console, steps, prediction: str, alternatives: int, start: int = 1) -> None:
    """predict's per-step table (its steps numbered from `start`) and its prediction line."""
    out.print(prediction_table(steps, alternatives, start=start, width=out.width))
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
    else; a newline ends each sample that does not end with one. Where a sample runs over
    several lines, an empty line sets each sample off from the next (a line model's samples
    are one line each, one a line)."""
    stream = getattr(out.file, "stream", out.file)  # as it is: no trailing space is trimmed
    several_lines = any("\n" in (prefix + g).rstrip("\n") for g in generated)
    for i, g in enumerate(generated):
        text = prefix + g
        if i and several_lines:
            stream.write("\n")
        stream.write(text if text.endswith("\n") else text + "\n")
    stream.flush()


class PredictView:
    """`charnext predict` as it happens: the notes and the per-step table once the prefix is read,
    then each character of a streamed continuation as it comes, then the rest (`finish`)."""

    def __init__(self, out: Console, alternatives: int, table: bool = True, seed_note: int | None = None):
        self.out = out
        self.alternatives = alternatives
        self.table = table  # the per-step table of the prefix (not with --text or --json)
        self.seed_note = seed_note  # the sampling seed, said on stderr before the output
        self.prefix = ""
        self.streaming = False

    def prefix_read(self, result) -> None:
        """After the prefix (a PredictResult): its skipped characters and the seed on stderr, then
        the lecture's table and the prediction line."""
        if result.skipped:
            skipped_note(result.skipped)
        if self.seed_note is not None:  # stderr, so that stdout keeps only the output
            error_console().print(f"seed {self.seed_note}", markup=False, highlight=False)
        self.prefix = result.prefix
        if result.steps and self.table:  # a line model's start first, as step 0
            steps, first = ([result.start], 0) if result.start is not None else ([], 1)
            show_prediction(self.out, steps + result.steps, result.prediction, self.alternatives, first)

    def char(self, ch: str) -> None:
        """One character of the continuation, printed the moment it is drawn (after the prefix)."""
        if not self.streaming:
            self.out.print(self.prefix, style="bold", end="", markup=False, highlight=False)
            self.streaming = True
        self.out.file.write(ch)
        self.out.file.flush()

    def finish(self, c, text_only: bool = False) -> None:
        """The end of a streamed line, or the continuations listed; with --table, their steps."""
        if c.streamed:
            if not c.samples[0].endswith("\n"):
                self.out.file.write("\n")
            self.out.file.flush()
        elif c.samples and text_only:
            plain_samples(self.out, self.prefix, c.samples)
        elif c.samples:
            samples(self.out, self.prefix, c.samples, c.seen_in_training)
        if c.generated_steps:
            start = len(self.prefix) + 1
            table = prediction_table(c.generated_steps, self.alternatives, "generated steps", start=start,
                                     width=self.out.width)  # fmt: skip
            self.out.print(table)
