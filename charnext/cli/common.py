"""What every command shares: errors as one line and an exit code, reading TEXT or --file, JSON out."""

from __future__ import annotations

import functools
import json
import shlex
import sys
from pathlib import Path

import typer

from charnext.errors import CharnextError, ConfigError, InvalidValue


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
        except InvalidValue as e:  # the API names the value; the user typed an option
            raise fail(e.naming(lambda param: option_name(fn, param)), e.exit_code) from None
        except CharnextError as e:
            raise fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise fail("interrupted", 130) from None
        except BrokenPipeError:  # `charnext inspect run.pt | head -2`: the reader has enough
            from charnext.rendering.console import stdout_closed

            stdout_closed()
            raise typer.Exit(0) from None

    return wrapper


def option_name(command, param: str) -> str:
    """How `command` spells the API's `param`: its option's long flag (`--num-samples`), or its
    argument's metavar (`PREFIX`), read from its signature's Typer declarations; a name it does
    not declare, as a flag."""
    import typing

    from typer.models import ArgumentInfo, OptionInfo

    hints = typing.get_type_hints(command, include_extras=True)
    for info in getattr(hints.get(param), "__metadata__", ()):
        if isinstance(info, ArgumentInfo):
            return info.metavar or param.upper()
        if isinstance(info, OptionInfo):
            flags = [d for d in info.param_decls or () if d.startswith("--")]
            if flags:
                return max(flags, key=len)
    return "--" + param.replace("_", "-")


def finish(result, json_out: bool, view) -> None:
    """Every command's ending: the result's JSON on stdout, or its view (called with nothing)."""
    if json_out:
        print_json(result.to_dict())
    else:
        view()


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False, default=json_default) + "\n")


def json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def read_input(text: str | None, file: Path | None, purpose: str = "to train on") -> str:
    """TEXT itself, the --file, or standard input for `-`; neither or both is a usage error."""
    from charnext.api import Source

    if file is not None and text is not None:
        raise usage("give either TEXT or --file, not both")
    if file is not None:
        return Source.file(file).text  # "-" is standard input here too
    if text == "-":
        return Source.stdin().text
    if text is None:
        raise usage(f"give the text {purpose}: TEXT, --file PATH, or - for standard input")
    file_note(text, "--file", purpose)
    return text


def file_note(text: str, flag: str, purpose: str) -> None:
    """Say on stderr, where a literal text names an existing file, that the text itself is what
    is read, and how to read the file instead (`charnext evaluate heldout.txt`: --file forgotten)."""
    if names_a_file(text):
        from charnext.rendering.console import error_console

        error_console().print(
            f"note: the text {purpose} is the literal {text!r} ({len(text)} characters), not the file; "
            f"did you mean {flag} {text}?", markup=False, highlight=False, soft_wrap=True,
        )  # fmt: skip


def train_inputs(text: list[str] | None, files: list[Path] | None) -> tuple[str | None, list[Path]]:
    """TEXT and the --file paths of `train`, checked: at most one TEXT; with --file, words
    after it that all name files or folders are more files (the shell gives `--file *.txt` so:
    `--file a.txt b.txt c.txt`), anything else beside --file is a usage error."""
    texts, files = list(text or []), list(files or [])
    if files and texts:
        if not all(_exists(t) for t in texts):
            raise usage("give either TEXT or --file, not both")
        return None, files + [Path(t) for t in texts]
    if len(texts) > 1:
        raise usage(f"give one TEXT (quote a text of several words), not {len(texts)}; files go after --file")
    if texts and names_a_file(texts[0]):  # `charnext train input.txt`: --file forgotten; the user chooses
        name = texts[0]
        raise usage(
            f"{name!r} names a file: train on the file with --file {name}, or on these {len(name)} "
            f"characters themselves with: printf %s {shlex.quote(name)} | charnext train -"
        )
    return (texts[0] if texts else None), files


def _exists(name: str) -> bool:
    try:
        return name != "-" and Path(name).exists()
    except (OSError, ValueError):  # a name too long, a NUL character
        return False


def source_of(text: str | None, files: list[Path], data: Path | None, resume: Path | None = None):
    """What to train on: a literal TEXT, standard input (-), --file (several, or a folder: kept
    apart) or --data; None if none given, which only a --resume may do (it reopens its own)."""
    from charnext.api import Source

    if files and text is not None:
        raise usage("give either TEXT or --file, not both")
    if data is not None and (text is not None or files):
        raise ConfigError("give TEXT, --file or --data, not several")
    if len(files) == 1 and not files[0].is_dir():
        return Source.file(files[0])  # one file, as it always was ("-" is standard input)
    if files:
        return Source.files(files)
    if data is not None:
        return Source.folder(data)
    if text == "-":
        return Source.stdin()
    if text is not None:
        return Source.literal(text)
    if resume is None:
        raise usage("give the text to train on: TEXT, --file PATH, --data DIR, or - for standard input")
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
    """Say on stderr which characters were dropped as unknown (nothing, if none was)."""
    from charnext.rendering.console import skipped_note

    if chars:
        skipped_note(chars)


def write_html(out: Path, html: str, what: str, force: bool = False) -> None:
    """Write a report or page (`what`) through the API, which refuses a file of another kind
    unless `force`, and say so on stderr (`report written to r.html (118 KiB)`), one line."""
    from charnext import api
    from charnext.rendering import console, widgets

    api.write_page(out, html, what, force)
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
