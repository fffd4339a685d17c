"""`charnext prepare`: the progress bars and the summary."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from charnext.config import format_duration
from charnext.rendering.widgets import key_value_table
from charnext.text.paths import shown_path


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
    text = f"{r.characters:,} characters, {r.bytes:,} bytes"
    if r.files > 1:
        text += f", {r.files:,} files kept apart"
    if r.skipped:
        text += f" ({r.skipped:,} not UTF-8 text left out)"
    rows = [
        ("folder", [shown_path(r.path)]),
        ("text", text),
        ("vocabulary", f"{r.vocab_size:,} characters; tokens stored as {r.dtype}"),
        ("time", f"{format_duration(r.seconds)} ({r.mb_per_sec:,.1f} MB/s)"),
        ("train on it", ["charnext", "train", "--data", shown_path(r.path)]),
    ]
    out.print(key_value_table("prepared", rows))
