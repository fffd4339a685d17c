"""Inside the model: `charnext neurons`, `report`, `page` and `play`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated

import typer

from charnext.cli import options
from charnext.cli.common import finish, handle_errors, read_input, warn_skipped, write_html
from charnext.config import DeviceName, Engine, PageWeights


@handle_errors
def neurons(
    text: options.ReadText = None,
    file: options.ReadFile = None,
    checkpoint: options.CheckpointPath = Path("checkpoint.pt"),
    unit: Annotated[
        str | None,
        typer.Option(
            help="Show this unit over the text: LAYER:INDEX (an LSTM's cell; LAYER:hINDEX its hidden state)."
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Units to list.")] = 10,
    max_chars: Annotated[
        int, typer.Option(help="Characters of the text to record (from its start); 0 = all.")
    ] = 100_000,
    show_chars: Annotated[int, typer.Option(help="Characters of the text --unit shows.")] = 600,
    offset: Annotated[int, typer.Option(help="Where the --unit stretch starts (0 = the beginning).")] = 0,
    skip_unknown: options.SkipUnknown = False,
    device: options.Device = DeviceName.cpu,
    engine: options.EngineChoice = Engine.auto,
    json_out: options.Json = False,
) -> None:
    """Find which units follow which features of a text: line position, quotes, brackets, indents.

    Records every unit of every layer (an LSTM's cell and hidden states) over the text and
    lists those whose activation correlates best with a feature; --unit colours one of them
    over the text.
    """
    from charnext import api
    from charnext.rendering import console, neurons_view

    request = api.NeuronsRequest("", unit, top, max_chars, offset, show_chars, skip_unknown)  # checked
    request = dataclasses.replace(request, text=read_input(text, file, "to read"))
    report = api.neurons(api.load(checkpoint, device.value, engine.value), request)
    warn_skipped(report.scan.skipped)
    finish(report, json_out, lambda: neurons_view.show_report(console.console(), report))


@handle_errors
def report(
    checkpoint: options.CheckpointPath = Path("checkpoint.pt"),
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="UTF-8 text to read [default: a sample the model writes itself]."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
    force: options.Force = False,
    prefix: Annotated[
        str | None, typer.Option(help="Prefix of the per-step table [default: the stretch's first line].")
    ] = None,
    chars: Annotated[int, typer.Option(help="Characters the heat maps show.")] = 500,
    offset: Annotated[int, typer.Option(help="Where the heat maps start in the text.")] = 0,
    units: Annotated[int, typer.Option(help="Units shown as heat maps.")] = 6,
    alternatives: options.Alternatives = 5,
    max_chars: Annotated[
        int, typer.Option(help="Characters of the text the units are scored on; 0 = all.")
    ] = 100_000,
    temperature: options.Temperature = 0.8,
    top_k: options.TopK = 0,
    top_p: options.TopP = 1.0,
    seed: options.Seed = 0,
    skip_unknown: options.SkipUnknown = False,
    device: options.Device = DeviceName.cpu,
    engine: options.EngineChoice = Engine.auto,
) -> None:
    """Write a self-contained HTML report: model, loss curves, predictions, surprise, units.

    One file with inline CSS and SVG that loads nothing from the network: open it in any
    browser, send it, print it. Without --file the model writes the text itself, drawn with
    --temperature, --top-k, --top-p and --seed.
    """
    from charnext import api
    from charnext.config import SampleConfig

    sample = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values
    source = None if file is None else ("standard input" if str(file) == "-" else file.name)
    request = api.ReportRequest(
        source=source, prefix=prefix, offset=offset, chars=chars, units=units, alternatives=alternatives,
        max_chars=max_chars or None, skip_unknown=skip_unknown, sample=sample,
    )  # fmt: skip
    api.check_out(out, "report", force)  # before anything loads: a foreign file is refused at once
    if file is not None:
        request = dataclasses.replace(request, text=read_input(None, file, "to read"))
    page = api.report_page(api.load(checkpoint, device.value, engine.value), request)
    write_html(out, page, "report", force)


@handle_errors
def page(
    checkpoint: options.CheckpointPath = Path("checkpoint.pt"),
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("model.html"),
    force: options.Force = False,
    prefix: Annotated[str, typer.Option(help="Text the page opens with (its table shows at once).")] = "",
    weights: Annotated[
        PageWeights,
        typer.Option(
            help="How the weights are stored: auto is float16 where that moves the loss by under "
            "0.001 nats/char (on --file, else on a sample the model writes), float32 otherwise."
        ),
    ] = PageWeights.auto,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="UTF-8 text the float16 check scores [default: a sample]."),
    ] = None,
) -> None:
    """Write the model as one web page that runs it in any browser, offline: type and see, generate.

    One self-contained HTML file (weights, JavaScript forward pass, page) that loads nothing
    from the network: open it from disk or send it; nothing needs to be installed.
    """
    from charnext import api
    from charnext.rendering import console

    api.check_out(out, "page", force)  # before anything loads: a foreign file is refused at once
    text = read_input(None, file, "to score") if file is not None else None
    ckpt = api.load(checkpoint, engine="numpy")
    data = api.web_page(ckpt, weights.value, text, prefix, checkpoint.name)
    write_html(out, data.html(), "page", force)
    err = console.error_console()
    err.print(f"weights {data.precision.describe()}", markup=False, highlight=False, soft_wrap=True)


@handle_errors
def play(
    checkpoint: options.CheckpointPath = Path("checkpoint.pt"),
    alternatives: options.Alternatives = 5,
    length: Annotated[int, typer.Option("--length", "-n", help="Characters Ctrl-G writes.")] = 40,
    temperature: options.Temperature = 0.8,
    top_k: options.TopK = 0,
    top_p: options.TopP = 1.0,
    seed: options.Seed = 0,
    device: options.Device = DeviceName.cpu,
    engine: options.EngineChoice = Engine.auto,
) -> None:
    """Type, and watch the model's next-character probabilities after every key (a terminal app).

    Tab accepts the most likely character, Ctrl-G writes the next --length characters (drawn
    with --temperature, --top-k, --top-p and --seed), Backspace deletes one, Ctrl-C or Ctrl-D
    leaves; the text is printed on leaving.
    """
    from charnext import api
    from charnext.config import SampleConfig
    from charnext.rendering import console
    from charnext.rendering.play_ui import require_terminal, run

    sample = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values
    request = api.PlayRequest(alternatives, length, sample)
    require_terminal()  # before loading anything: refuse at once
    ckpt = api.load(checkpoint, device.value, engine.value)
    session = api.play_session(ckpt, request)
    c = ckpt.config
    title = f"charnext play · {checkpoint.name} · {c.cell.value} {c.num_layers}×{c.hidden_size}"
    con = console.console()
    text = run(session, con, title, request.alternatives, request.length)
    if text:
        con.print(text, markup=False, highlight=False, soft_wrap=True)
