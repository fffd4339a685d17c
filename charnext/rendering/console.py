"""Where output goes: the console (streams, colour on or off, width) that every view is handed;
the only module that makes one."""

from __future__ import annotations

import os
import sys

from rich.console import Console

from charnext.errors import ConfigError


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


def colour_on(out: Console) -> bool:
    """Whether `out` shows colour (a terminal without NO_COLOR); without it, views mark instead."""
    return out.color_system is not None and not out.no_color


def require_terminal() -> None:
    """`play` reads single keys: refuse, with a reason, when stdin or stdout is not a terminal."""
    if not sys.stdin.isatty():
        raise ConfigError(
            "play needs a terminal: standard input is not one (for scripts, use `charnext predict`)"
        )
    if not sys.stdout.isatty():
        raise ConfigError("play needs a terminal: standard output is not one")


def skipped_note(chars: list[str]) -> None:
    """Say on stderr which characters were dropped as unknown."""
    from charnext.text.vocab import visible

    shown = " ".join(f"'{visible(c)}'" for c in chars)
    noun = "character" if len(chars) == 1 else "characters"
    error_console().print(f"skipped {noun} not in the vocabulary: {shown}", markup=False)
