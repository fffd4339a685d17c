"""The command line: options, one call into the API, rendering. No tensor code here.

torch is imported inside the commands, so that `charnext --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from charnext import __version__
from charnext.config import Cell, DeviceName, ModelConfig, Precision, TrainConfig
from charnext.errors import CharnextError, ConfigError

app = typer.Typer(
    name="charnext",
    help="Next-character language models (RNN, GRU, LSTM): train, predict, evaluate, inspect.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_MODEL = ModelConfig(vocab_size=1)  # defaults, for --help
_TRAIN = TrainConfig()


def _fail(message: str, code: int = 1) -> typer.Exit:
    from charnext.render import error_console

    error_console().print(f"[bold red]error:[/] {message}", soft_wrap=True, markup=True, highlight=False)
    return typer.Exit(code)


def handle_errors(fn):
    """Turn charnext errors into one line on stderr and their exit code; Ctrl-C into 130."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CharnextError as e:
            raise _fail(str(e), e.exit_code) from None
        except KeyboardInterrupt:
            raise _fail("interrupted", 130) from None

    return wrapper


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def parse_duration(value: str) -> float:
    """`90s`, `10m`, `2h`, `1h30m` or plain seconds -> seconds."""
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text)
    else:
        parts = re.findall(r"(\d+(?:\.\d+)?)\s*(h|m|s)", text)
        if not parts or "".join(a + b for a, b in parts) != text.replace(" ", ""):
            raise ConfigError(f"cannot read duration {value!r}: use e.g. 90s, 10m, 2h or 1h30m")
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"duration must be positive, not {value!r}")
    return seconds


def _read_input(text: str | None, file: Path | None) -> str:
    from charnext.data import decode_utf8, read_text

    if file is not None and text is not None:
        raise ConfigError("give either TEXT or --file, not both")
    if file is not None:
        return read_text(file)
    if text == "-":
        return decode_utf8(sys.stdin.buffer.read(), "standard input")
    if text is None:
        raise ConfigError("give the text to train on: TEXT, --file PATH, or - for standard input")
    return text


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


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def train(
    text: Annotated[
        str | None, typer.Argument(help="Text to train on; - reads standard input.", show_default=False)
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Train on this UTF-8 text file.")] = None,
    cell: Annotated[Cell, typer.Option(help="Recurrent cell.")] = _MODEL.cell,
    hidden_size: Annotated[int, typer.Option(help="Units per recurrent layer.")] = _MODEL.hidden_size,
    num_layers: Annotated[int, typer.Option(help="Stacked recurrent layers.")] = _MODEL.num_layers,
    embedding_size: Annotated[
        int, typer.Option(help="Learned input embedding width; 0 feeds one-hot vectors.")
    ] = _MODEL.embedding_size,
    dropout: Annotated[float, typer.Option(help="Dropout between layers, 0..1.")] = _MODEL.dropout,
    seq_len: Annotated[
        int, typer.Option(help="Characters per training window (BPTT length).")
    ] = _TRAIN.seq_len,
    batch_size: Annotated[int, typer.Option(help="Windows (or lines) per step.")] = _TRAIN.batch_size,
    steps: Annotated[
        int | None, typer.Option(help="Optimizer steps [default: sized to the text]", show_default=False)
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the text, instead of --steps.")] = None,
    max_time: Annotated[
        str | None, typer.Option(help="Wall-clock budget, e.g. 90s, 10m, 2h; the schedule fits it.")
    ] = None,
    lr: Annotated[float, typer.Option(help="Peak learning rate.")] = _TRAIN.lr,
    seed: Annotated[int, typer.Option(help="Random seed.")] = _TRAIN.seed,
    device: Annotated[DeviceName, typer.Option(help="Where to train.")] = DeviceName.auto,
    precision: Annotated[
        Precision, typer.Option(help="Forward-pass precision; auto = bf16 where fast.")
    ] = Precision.auto,
    val_fraction: Annotated[
        float | None,
        typer.Option(help="Share of the text held out at its end [default: 0.1, 0 for short texts]"),
    ] = None,
    eval_every: Annotated[
        int | None, typer.Option(help="Steps between validations [default: ~10 per run]")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Stop after N validations without improvement.")
    ] = None,
    lines: Annotated[
        bool, typer.Option("--lines", help="Line mode: each non-empty line is a sequence.")
    ] = False,
    random_windows: Annotated[
        bool, typer.Option("--random-windows", help="Draw windows at random instead of carrying state.")
    ] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint to write.")] = Path("checkpoint.pt"),
    resume: Annotated[Path | None, typer.Option(help="Continue the run saved in this checkpoint.")] = None,
    init_from: Annotated[Path | None, typer.Option(help="Start from this checkpoint's weights.")] = None,
    extend_vocab: Annotated[
        bool, typer.Option("--extend-vocab", help="With --init-from: add the text's new characters.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Train a character model on TEXT (or --file, or standard input) and save a checkpoint."""
    from charnext import render
    from charnext.train import Trainer, stop_on_sigint

    corpus = _read_input(text, file)
    budget = parse_duration(max_time) if max_time is not None else None
    if resume is not None:
        if init_from is not None:
            raise ConfigError("--resume and --init-from exclude each other")
        trainer = Trainer.resume(
            resume, corpus, out=out if out != Path("checkpoint.pt") else resume,
            steps=steps, epochs=epochs, max_time=budget, patience=patience,
            device=device.value if device is not DeviceName.auto else None, eval_every=eval_every,
        )  # fmt: skip
    else:
        config = TrainConfig(
            seq_len=seq_len, batch_size=batch_size, steps=steps, epochs=epochs, max_time=budget, lr=lr,
            seed=seed, device=device.value, precision=precision.value, val_fraction=val_fraction,
            eval_every=eval_every, patience=patience, lines=lines, random_windows=random_windows,
        )  # fmt: skip
        model = ModelConfig(
            vocab_size=1, cell=cell, hidden_size=hidden_size, num_layers=num_layers,
            embedding_size=embedding_size, dropout=dropout,
        )  # fmt: skip
        trainer = Trainer.new(corpus, model, config, out, init_from=init_from, extend_vocab=extend_vocab)

    con = render.console(stderr=json_out)
    c = trainer.model.config
    title = (
        f"{c.cell.value} {c.num_layers}x{c.hidden_size}, {len(trainer.vocab)} chars, "
        f"batch {trainer.batch_size}x{trainer.seq_len}, {trainer.device} {trainer.precision}"
    )
    with stop_on_sigint(trainer), render.TrainView(con, title) as view:
        for event in trainer.run():
            kind = type(event).__name__
            if kind == "StepEvent":
                view.step(event)
            elif kind == "ReportEvent":
                view.report(event)
            else:
                view.evaluation(event)
    result = trainer.result
    if json_out:
        _print_json(result.to_dict())
    render.train_summary(con, result)
    if result.reason == "interrupted":
        raise _fail(f"interrupted at step {result.steps}; resume with --resume {result.checkpoint}", 130)


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def predict(
    prefix: Annotated[
        str, typer.Option("--prefix", "-p", help="Text to feed, one character at a time.")
    ] = "",
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")] = Path(
        "checkpoint.pt"
    ),
    top_k: Annotated[
        int | None,
        typer.Option(help="Alternatives shown per step [default: 3]; when sampling, draw only among these."),
    ] = None,
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters to generate past the prefix.")
    ] = 0,
    temperature: Annotated[float, typer.Option(help="0 = greedy; higher = more random.")] = 0.0,
    top_p: Annotated[float, typer.Option(help="Sample from the smallest set with this much mass.")] = 1.0,
    seed: Annotated[int | None, typer.Option(help="Sampling seed (same seed, same text).")] = None,
    num_samples: Annotated[int, typer.Option(help="Continuations to generate.")] = 1,
    table: Annotated[bool, typer.Option("--table", help="Also tabulate the generated steps.")] = False,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop prefix characters the vocabulary lacks.")
    ] = False,
    device: Annotated[DeviceName, typer.Option(help="Where to run.")] = DeviceName.cpu,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Show the model's prediction after each character of --prefix, and continue it."""
    from charnext import api, render
    from charnext.config import SampleConfig

    if top_k is not None and top_k < 1:
        raise ConfigError(f"top-k must be at least 1, not {top_k}")
    if length < 0 or num_samples < 1:
        raise ConfigError("--length must be 0 or more and --num-samples at least 1")
    sample = SampleConfig(temperature=temperature, top_k=top_k or 0, top_p=top_p, seed=seed)
    ckpt = api.load(checkpoint, device.value)
    result = api.predict(ckpt, prefix, top_k or 3, skip_unknown)
    con = render.console(stderr=json_out)
    if result.skipped:
        skipped = " ".join(f"'{render.visible(c)}'" for c in result.skipped)
        render.error_console().print(f"skipped characters not in the vocabulary: {skipped}", markup=False)
    kept_prefix = "".join(s.input for s in result.steps)
    if not json_out:
        if result.steps:
            con.print(render.prediction_table(result.steps, top_k or 3))
            con.print(f"prediction: [bold]{render.visible_text(result.prediction)}[/]")
        elif not length:
            raise ConfigError("give --prefix TEXT to predict, or --length N to generate")
    generated: list[str] = []
    if length:
        stream = api.generate_stream(ckpt, kept_prefix, length, sample, num_samples)
        if json_out or num_samples > 1 or not con.is_terminal:
            generated = [""] * num_samples
            for chars in stream:
                generated = [g + c for g, c in zip(generated, chars)]
        else:  # one sample on a terminal: stream it as it comes
            con.print(kept_prefix, style="bold", end="")
            text = ""
            for (ch,) in stream:
                text += ch
                con.print(ch, end="", markup=False, highlight=False)
            con.print()
            generated = [text]
        if api._line_mode(ckpt):
            generated = [g.rstrip("\n") for g in generated]
        if not json_out and (num_samples > 1 or not con.is_terminal):
            for i, g in enumerate(generated, 1):
                head = f"--- sample {i} ---\n" if num_samples > 1 else ""
                con.print(head + kept_prefix + g, markup=False, highlight=False)
        if table and not json_out:
            full = api.predict(ckpt, kept_prefix + generated[0], top_k or 3)
            con.print(render.prediction_table(full.steps, top_k or 3, title="prefix and generated steps"))
    if json_out:
        obj = result.to_dict()
        obj["generated"] = generated[0] if num_samples == 1 and generated else ("" if not generated else "")
        if num_samples > 1:
            obj["samples"] = generated
            obj["generated"] = generated[0]
        _print_json(obj)


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="Checkpoint to describe.")] = Path("checkpoint.pt"),
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, training and loss history."""
    from charnext import api, render
    from charnext.describe import describe

    info = describe(api.load(path))
    if json_out:
        _print_json(info)
        return
    render.show_checkpoint(render.console(), info)


def main() -> None:
    """Console-script entry point."""
    app()
