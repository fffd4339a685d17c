"""`charnext evaluate`, `inspect` and `export`: what a checkpoint scores and holds."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from charnext.cli import options
from charnext.cli.common import finish, handle_errors, read_input, usage, warn_skipped
from charnext.config import DeviceName, Engine


@handle_errors
def evaluate(
    text: options.ScoreText = None,
    file: options.ScoreFile = None,
    checkpoint: options.CheckpointPath = Path("checkpoint.pt"),
    skip_unknown: options.SkipUnknown = False,
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
    from charnext.rendering import console, evaluate_view

    request = api.EvaluateRequest("", skip_unknown, show, show_chars, offset, most)  # values checked
    content = read_input(text, file, "to score")
    report = api.score(api.load(checkpoint, device.value), dataclasses.replace(request, text=content))
    warn_skipped(report.evaluation.skipped_chars)
    source = evaluate_view.source_name(text, file, len(content))
    finish(
        report,
        json_out,
        lambda: evaluate_view.show_report(console.console(), report, str(checkpoint), source),
    )


@handle_errors
def inspect(
    path: options.CheckpointArgument = None,
    checkpoint: options.SameCheckpoint = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the loss curves into this image, e.g. loss.png (needs matplotlib).",
            show_default=False,
        ),
    ] = None,
    force: options.Force = False,
    engine: options.EngineChoice = Engine.auto,
    json_out: options.Json = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, training and loss history.

    The training curve is smoothed (an exponential moving average) with the raw losses faint.
    """
    from charnext import api
    from charnext.rendering import console, inspect_view, widgets

    path = _one_checkpoint(path, checkpoint)
    if plot is not None:
        api.check_out(plot, "plot", force)  # before loading: a foreign file is refused at once
    description = api.describe(api.load(path, engine=engine.value))
    if plot is not None:  # first, so that a missing matplotlib fails before anything is shown
        from charnext.rendering.plot import plot_history

        plot_history(description.info, plot)
    info, rows = description.info, description.model_rows
    finish(description, json_out, lambda: inspect_view.show_checkpoint(console.console(), info, rows()))
    if plot is not None:
        console.error_console().print(
            f"loss curves written to {widgets.shown_path(plot)}", markup=False, soft_wrap=True
        )


@handle_errors
def export(
    path: options.CheckpointArgument = None,
    checkpoint: options.SameCheckpoint = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Inference-only file to write.")] = Path(
        "model.safetensors"
    ),
    force: options.Force = False,
    json_out: options.Json = False,
) -> None:
    """Write an inference-only file: the weights, the vocabulary and the model's configuration.

    No optimizer state or history, so it is a fraction of the size; predict, inspect and the
    Python API read it like any checkpoint, and any safetensors reader reads its weights.
    """
    from charnext import api
    from charnext.rendering import widgets

    result = api.export(_one_checkpoint(path, checkpoint), out, force)
    shown = (
        f"wrote {widgets.shown_path(result.path)}: {result.size:,} bytes "
        f"(the checkpoint has {result.checkpoint_size:,})"
    )
    finish(result, json_out, lambda: typer.echo(shown))


def _one_checkpoint(path: Path | None, checkpoint: Path | None) -> Path:
    """The checkpoint named as the argument or by -c/--checkpoint (not both), else checkpoint.pt."""
    if path is not None and checkpoint is not None:
        raise usage("give CHECKPOINT or --checkpoint, not both")
    return path or checkpoint or Path("checkpoint.pt")
