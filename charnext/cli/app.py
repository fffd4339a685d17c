"""The command line: options, one call into the API, rendering. No tensor code here.

torch is imported inside the commands, so that `charnext --help` stays fast.
"""

from __future__ import annotations

import functools
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

from charnext.cli.inside_cmds import neurons, page, play, report
from charnext.cli.model_cmds import evaluate, export, inspect
from charnext.cli.predict_cmd import predict
from charnext.cli.serve_cmd import serve
from charnext.cli.train_cmd import prepare, train
from charnext.version import __version__

# Click's usage error (a bad or missing option, an unknown command), found through Typer's public
# BadParameter rather than its vendored module's private path
_PARSER_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


class _Group(TyperGroup):
    """The command list of `charnext --help` with each command's first sentence whole (Click
    would cut it at the terminal's width with "..."); long ones wrap instead. The parser's usage
    errors print one line, as every other error does (Click prints the usage, a hint, a blank
    line and the error)."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PARSER_ERROR as e:
            e.show = functools.partial(_one_line, e)  # still exit 2, as Click's
            raise

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=1000)) for name, cmd in self.commands.items()
                if not cmd.hidden]  # fmt: skip
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


app = typer.Typer(
    name="charnext",
    cls=_Group,
    help="Next-character language models (RNN, GRU, LSTM): train, predict, evaluate, inspect.\n\n"
    "In tables, ␣ stands for a space and ↵ for a newline. Usage errors exit with 2, bad input with 1.",
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish, PowerShell
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    # -h as well as --help everywhere; choices (--cell LSTM, --device CPU) in any case
    context_settings={"help_option_names": ["-h", "--help"], "token_normalize_func": str.lower},
)


def _one_line(e, file=None) -> None:  # noqa: ARG001 - Click's show(file)
    """`error: Invalid value for '--most': 'x' is not a valid integer (charnext evaluate -h)`."""
    from charnext.cli.common import fail

    command = e.ctx.command_path if e.ctx is not None else "charnext"
    fail(f"{e.format_message()} ({command} -h for help)", e.exit_code)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"charnext {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Next-character language models (RNN, GRU, LSTM): train, predict, evaluate, inspect."""


# the commands, in the order `charnext --help` lists them
app.command()(train)
app.command()(prepare)
app.command()(predict)
app.command()(evaluate)
app.command()(inspect)
app.command()(export)
app.command()(neurons)
app.command()(report)
app.command()(page)
app.command()(play)
app.command()(serve)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="charnext")  # the same name (and completion variable) for `python -m charnext`
    except BrokenPipeError:  # a closed stdout outside a command (e.g. during --help): quietly done
        from charnext.rendering.console import stdout_closed

        stdout_closed()
        sys.exit(0)
