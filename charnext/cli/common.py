"""What every command shares: errors as one line and an exit code, reading TEXT or --file, JSON out."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import typer

from charnext.errors import CharnextError, ConfigError


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr (one line) and return the Exit to raise."""
    from rich.markup import escape

    from charnext.rendering.console import error_console

    # the message is plain text: escaped, so that "[plot]" or an unknown "[" print as they are
    error_console().print(
        f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True, highlight=False
    )
    return typer.Exit(code)


def usage(message: str) -> typer.Exit:
    """A usage error (a missing input, options that exclude each other): exit 2, as Typer's own."""
    return fail(message, 2)


def handle_errors(fn):
    """Turn charnext errors into one line on stderr and their exit code; Ctrl-C into 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharnextError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except BrokenPipeError:  # `charnext inspect run.pt | head -2`: the reader has enough
            from charnext.rendering.console import stdout_closed

            stdout_closed()
            raise typer.Exit(0) from None

    return wrapper


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False, default=json_default) + "\n")


def json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def read_input(text: str | None, file: Path | None, purpose: str = "to train on") -> str:
    """TEXT itself, the --file, or standard input for `-`; neither or both is a usage error."""
    from charnext.api import decode_utf8, read_text

    if file is not None and text is not None:
        raise usage("give either TEXT or --file, not both")
    if file is not None:
        return read_text(file)
    if text == "-":
        return decode_utf8(sys.stdin.buffer.read(), "standard input")
    if text is None:
        raise usage(f"give the text {purpose}: TEXT, --file PATH, or - for standard input")
    return text


def source_of(text: str | None, file: Path | None, data: Path | None):
    """What to train on: a literal TEXT, standard input (-), --file or --data; None if none given."""
    from charnext.api import Source, decode_utf8

    if file is not None and text is not None:
        raise usage("give either TEXT or --file, not both")
    if data is not None and (text is not None or file is not None):
        raise ConfigError("give TEXT, --file or --data, not several")
    if file is not None:
        return Source.file(file)
    if data is not None:
        return Source.folder(data)
    if text == "-":
        return Source(text=decode_utf8(sys.stdin.buffer.read(), "standard input"), kind="stdin")
    if text is not None:
        if names_a_file(text):  # `charnext train input.txt`: --file forgotten
            from charnext.rendering.console import error_console

            error_console().print(
                f"note: training on the literal text {text!r}; did you mean --file {text}?",
                markup=False, highlight=False, soft_wrap=True,
            )  # fmt: skip
        return Source(text=text, kind="text")
    return None


def names_a_file(text: str) -> bool:
    """Whether TEXT is the name of an existing file (a short, one-line text only)."""
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long, a NUL character
        return False


def warn_skipped(chars: list[str]) -> None:
    """Say on stderr which characters were dropped as unknown."""
    from charnext.rendering.console import skipped_note

    skipped_note(chars)


def write_html(out: Path, html: str, what: str) -> None:
    """Write an HTML file and say so on stderr (`report written to r.html (118 KiB)`), one line."""
    from charnext.rendering import console, widgets

    try:
        out.write_text(html, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {widgets.shown_path(out)}: {e.strerror or e}") from None
    size = len(html.encode()) / 1024
    note = f"{what} written to {widgets.shown_path(out)} ({size:,.0f} KiB)"
    console.error_console().print(note, markup=False, highlight=False, soft_wrap=True)


def random_seed() -> int:
    """A fresh sampling seed, small enough to retype."""
    import secrets

    return secrets.randbelow(1_000_000)


def command_line() -> list[str]:
    """The command line as typed, for the checkpoint's provenance."""
    return ["charnext", *sys.argv[1:]]
