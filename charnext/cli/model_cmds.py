"""`charnext evaluate`, `inspect` and `export`: what a checkpoint scores and holds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from charnext.cli import options
from charnext.cli.common import handle_errors, print_json, read_input, usage, warn_skipped
from charnext.config import DeviceName, Engine
from charnext.errors import ConfigError


@handle_errors
def evaluate(
    text: options.ScoreText = None,
    file: options.ScoreFile = None,
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop (and count) characters the vocabulary lacks.")
    ] = False,
    device: options.Device = DeviceName.cpu,
    show: Annotated[
        bool, typer.Option("--show", help="Colour a stretch of the text by how surprising each character is.")
    ] = False,
    show_chars: Annotated[int, typer.Option(help="Characters of the text --show colours.")] = 600,
    offset: Annotated[int, typer.Option(help="Where the --show stretch starts (0 = the beginning).")] = 0,
    most: Annotated[int, typer.Option(help="Most surprising characters --show lists.")] = 10,
    json_out: options.Json = False,
) -> None:
    """Score a checkpoint on TEXT (or --file): loss, bits/char, perplexity and accuracy.

    Each character is predicted from the text before it; --show colours a stretch of the text
    by how surprising each character was.
    """
    from charnext import api
    from charnext.rendering import console, evaluate_view, widgets

    if show and (show_chars < 1 or most < 0):
        raise ConfigError("--show-chars must be at least 1 and --most 0 or more")
    content = read_input(text, file, "to score")
    ckpt = api.load(checkpoint, device.value)
    result = api.evaluate(ckpt, content, skip_unknown)
    view = api.surprisal(ckpt, content, offset, show_chars, skip_unknown=skip_unknown) if show else None
    if result.skipped:
        warn_skipped(result.skipped_chars)
    if json_out:
        print_json(api.EvaluateReport(result, view, most).to_dict())
        return
    con = console.console()
    if file is not None:
        source = "standard input" if str(file) == "-" else [widgets.shown_path(file)]
    else:
        source = "standard input" if text == "-" else f"TEXT ({len(content):,} characters)"
    con.print(evaluate_view.evaluation_table(result, str(checkpoint), source))
    if view is not None:
        evaluate_view.show_surprise(con, view, most)


@handle_errors
def inspect(
    path: Annotated[
        Path | None,
        typer.Argument(
            metavar="CHECKPOINT", help="Checkpoint to describe [default: checkpoint.pt]", show_default=False
        ),
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-c", help="The same as CHECKPOINT.", show_default=False)
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the loss curves into this image, e.g. loss.png (needs matplotlib).",
            show_default=False,
        ),
    ] = None,
    engine: options.EngineChoice = Engine.auto,
    json_out: options.Json = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, training and loss history.

    The training curve is smoothed (an exponential moving average) with the raw losses faint.
    """
    from charnext import api
    from charnext.rendering import console, inspect_view, widgets

    if path is not None and checkpoint is not None:
        raise usage("give CHECKPOINT or --checkpoint, not both")
    path = path or checkpoint or Path("checkpoint.pt")
    info = api.describe(api.load(path, engine=engine.value))
    if plot is not None:  # first, so that a missing matplotlib fails before anything is shown
        from charnext.rendering.plot import plot_history

        plot_history(info, plot)
    description = api.Description(info)
    if json_out:
        print_json(description.to_dict())
    else:
        inspect_view.show_checkpoint(console.console(), info, description.model_rows())
    if plot is not None:
        console.error_console().print(
            f"loss curves written to {widgets.shown_path(plot)}", markup=False, soft_wrap=True
        )


@handle_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="Checkpoint to export.")] = Path(
        "checkpoint.pt"
    ),
    out: Annotated[Path, typer.Option("--out", "-o", help="Inference-only file to write.")] = Path(
        "model.safetensors"
    ),
) -> None:
    """Write an inference-only file: the weights, the vocabulary and the model's configuration.

    No optimizer state or history, so it is a fraction of the size; predict, inspect and the
    Python API read it like any checkpoint, and any safetensors reader reads its weights.
    """
    from charnext import api
    from charnext.rendering import widgets

    written = api.export(checkpoint, out)
    before, after = checkpoint.stat().st_size, written.stat().st_size
    typer.echo(f"wrote {widgets.shown_path(written)}: {after:,} bytes (the checkpoint has {before:,})")
