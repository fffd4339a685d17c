"""The command line: options, one call into the API, rendering. No tensor code here.

torch is imported inside the commands, so that `charnext --help` stays fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from charnext.cli import options
from charnext.config import DeviceName, Engine, PageWeights, parse_duration, training_options
from charnext.errors import CharnextError, ConfigError
from charnext.version import __version__


class _Group(TyperGroup):
    """The command list of `charnext --help` with each command's first sentence whole (Click
    would cut it at the terminal's width with "..."); long ones wrap instead."""

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


def _fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr (one line) and return the Exit to raise."""
    from rich.markup import escape

    from charnext.rendering.console import error_console

    # the message is plain text: escaped, so that "[plot]" or an unknown "[" print as they are
    error_console().print(
        f"[bold red]error:[/] {escape(message)}", soft_wrap=True, markup=True, highlight=False
    )
    return typer.Exit(code)


def _usage(message: str) -> typer.Exit:
    """A usage error (a missing input, options that exclude each other): exit 2, as Typer's own."""
    return _fail(message, 2)


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
        except BrokenPipeError:  # `charnext inspect run.pt | head -2`: the reader has enough
            from charnext.rendering.console import stdout_closed

            stdout_closed()
            raise typer.Exit(0) from None

    return wrapper


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False, allow_nan=False, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def _read_input(text: str | None, file: Path | None, purpose: str = "to train on") -> str:
    """TEXT itself, the --file, or standard input for `-`; neither or both is a usage error."""
    from charnext.api import decode_utf8, read_text

    if file is not None and text is not None:
        raise _usage("give either TEXT or --file, not both")
    if file is not None:
        return read_text(file)
    if text == "-":
        return decode_utf8(sys.stdin.buffer.read(), "standard input")
    if text is None:
        raise _usage(f"give the text {purpose}: TEXT, --file PATH, or - for standard input")
    return text


def _source(text: str | None, file: Path | None, data: Path | None):
    """What to train on: a literal TEXT, standard input (-), --file or --data; None if none given."""
    from charnext.api import Source, decode_utf8

    if file is not None and text is not None:
        raise _usage("give either TEXT or --file, not both")
    if data is not None and (text is not None or file is not None):
        raise ConfigError("give TEXT, --file or --data, not several")
    if file is not None:
        return Source.file(file)
    if data is not None:
        return Source.folder(data)
    if text == "-":
        return Source(text=decode_utf8(sys.stdin.buffer.read(), "standard input"), kind="stdin")
    if text is not None:
        if _names_a_file(text):  # `charnext train input.txt`: --file forgotten
            from charnext.rendering.console import error_console

            error_console().print(
                f"note: training on the literal text {text!r}; did you mean --file {text}?",
                markup=False, highlight=False, soft_wrap=True,
            )  # fmt: skip
        return Source(text=text, kind="text")
    return None


def _names_a_file(text: str) -> bool:
    """Whether TEXT is the name of an existing file (a short, one-line text only)."""
    if len(text) > 4096 or "\n" in text:
        return False
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # a name too long, a NUL character
        return False


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


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def train(
    text: options.TrainText = None,
    file: options.TrainFile = None,
    data: options.TrainData = None,
    cell: options.Cell = None,
    hidden_size: options.HiddenSize = None,
    num_layers: options.NumLayers = None,
    embedding_size: options.EmbeddingSize = None,
    dropout: options.Dropout = None,
    weight_drop: options.WeightDrop = None,
    seq_len: options.SeqLen = None,
    batch_size: options.BatchSize = None,
    steps: options.Steps = None,
    epochs: options.Epochs = None,
    max_time: options.MaxTime = None,
    weight_decay: options.WeightDecay = None,
    lr: options.Lr = None,
    seed: options.TrainSeed = None,
    device: options.TrainDevice = None,
    precision: options.TrainPrecision = None,
    val_fraction: options.ValFraction = None,
    eval_every: options.EvalEvery = None,
    patience: options.Patience = None,
    lines: options.Lines = None,
    random_windows: options.RandomWindows = None,
    ema: options.Ema = None,
    cold_starts: options.ColdStarts = None,
    sample_prompt: options.SamplePrompt = None,
    sample_temperature: options.SampleTemperature = None,
    threads: options.Threads = None,
    out: options.TrainOut = None,
    resume: options.Resume = None,
    init_from: options.InitFrom = None,
    extend_vocab: options.ExtendVocab = False,
    json_out: options.Json = False,
    dist_timeout: options.DistTimeout = "10m",
) -> None:
    """Train a character model on TEXT (or --file, --data, or standard input) and save a checkpoint.

    With --resume, the text may be left out: the run reopens the file or folder it trained on.
    Started by `torchrun --nproc-per-node=N -m charnext train ...` it trains in N processes
    (DistributedDataParallel); only the first writes checkpoints and output. A diverging run
    stops with exit code 3 and keeps its last good checkpoints.
    """
    if not json_out:  # a first word before the slow part (torch, reading, planning) begins
        _say_starting(text, file, data, resume)
    from charnext import api

    given = _given(locals())  # the training options typed, by their config names
    where = device.value if device else "auto"
    with api.training_processes(where, parse_duration(dist_timeout), threads) as procs:
        source = _source(text, file, data)
        if source is None and resume is None:
            raise _usage("give the text to train on: TEXT, --file PATH, --data DIR, or - for standard input")
        extra = dict(resume=resume, init_from=init_from, extend_vocab=extend_vocab, command=_command())
        _train_and_show(api.start_run(source, out, **extra, **given), procs.main, json_out)


def _train_and_show(trainer, main: bool, json_out: bool) -> None:
    """Run the trainer with the training view (in the first process only), then the summary or
    JSON; an interrupted run says how to resume it."""
    from charnext import api
    from charnext.rendering import (
        console,
        train_view,
        widgets,
    )

    con = console.console(stderr=json_out, quiet=not main)
    con.file = console.OutputThatMayClose(con.file)  # `| head`: the run goes on and saves
    with train_view.TrainView(con, train_view.run_header(trainer)) as view:
        result = api.run(trainer, view.show, stop_on_sigint=True)
    if json_out and main:
        _print_json(result.to_dict())
    train_view.train_summary(con, result, _next_command(trainer, result))
    if result.reason == "interrupted":
        again = widgets.shown_path(result.checkpoint)
        raise _fail(f"interrupted at step {result.steps}; resume with --resume {again}", 130)


def _given(values: dict) -> dict:
    """The training options among a command's arguments that were given (not None), as plain
    values for the configs: choices by their value, --max-time in seconds."""
    given = {k: v for k, v in values.items() if k in training_options() and v is not None}
    if "max_time" in given:
        given["max_time"] = parse_duration(given["max_time"])
    return {k: getattr(v, "value", v) if k in ("device", "precision") else v for k, v in given.items()}


def _say_starting(text: str | None, file: Path | None, data: Path | None, resume: Path | None) -> None:
    """One plain line on stdout at once, before torch is imported (a second or more), the text
    read and the run planned: the header follows when training starts. Only for an input that
    exists, so that an error is not preceded by it; only in the first of several processes."""
    if os.environ.get("RANK", "0") != "0":
        return
    if resume is not None and resume.is_file():
        what = f"resuming {resume.name}"
    elif file is not None and str(file) != "-" and file.is_file():
        what = f"training on {file.name} ({_size(file.stat().st_size)})"
    elif data is not None and data.is_dir():
        what = f"training on {data.name or data}"
    elif text is not None and text != "-" and file is None and data is None:
        what = f"training on a text of {len(text):,} characters"
    else:
        return
    try:
        sys.stdout.write(f"{what}: loading...\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader is gone: the run goes on, and saves, regardless
        from charnext.rendering.console import stdout_closed

        stdout_closed()


def _size(n: int) -> str:
    """A file size in bytes, KB or MB (decimal)."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _next_command(trainer, result) -> list[str] | None:
    """What to try with the model just trained, as the words of a shell command: its predictions
    for the text's first line (a line-mode model: five new lines), from the best checkpoint
    where there is one (its path from the current folder, to paste)."""
    import shlex

    from charnext.rendering import (
        widgets,
    )

    path = result.best_checkpoint or result.checkpoint
    if path is None or result.reason == "interrupted":
        return None
    where = ["-c", shlex.quote(widgets.shown_path(path, home=False))]
    if trainer.config.lines:
        return ["charnext", "predict", "--length", "40", "--num-samples", "5", *where]
    prompt = trainer.sample_prompt()[:24]
    return ["charnext", "predict", shlex.quote(prompt), "--length", "200", *where] if prompt else None


def _command() -> list[str]:
    """The command line as typed, for the checkpoint's provenance."""
    return ["charnext", *sys.argv[1:]]


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def prepare(
    file: Annotated[
        Path, typer.Option("--file", "-f", help="The UTF-8 text file to encode.", show_default=False)
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Folder to write tokens.bin and meta.json into.", show_default=False
        ),
    ],
    json_out: options.Json = False,
) -> None:
    """Encode a text of any size once into a memory-mapped token folder, for `train --data`.

    The file is streamed in chunks, twice (vocabulary, then encoding): memory stays flat.
    """
    from charnext import api
    from charnext.rendering import (
        console,
        prepare_view,
    )

    con = console.console(stderr=json_out)
    with prepare_view.PrepareView(con) as view:
        result = api.prepare(file, out, on_progress=view.update)
    if json_out:
        _print_json(result.to_dict())
    else:
        prepare_view.prepare_summary(con, result)


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def predict(
    prefix_arg: Annotated[
        str | None,
        typer.Argument(metavar="PREFIX", help="Text to feed, one character at a time.", show_default=False),
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", "-p", help="The same as PREFIX.", show_default=False)
    ] = None,
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters to generate past the prefix.")
    ] = 0,
    temperature: options.Temperature = 1.0,
    top_k: options.TopK = 0,
    top_p: options.TopP = 1.0,
    seed: options.PredictSeed = None,
    num_samples: Annotated[int, typer.Option(help="Continuations to generate.")] = 1,
    alternatives: options.Alternatives = 3,
    table: Annotated[
        bool, typer.Option("--table", help="Also tabulate the generated steps (the last 60).")
    ] = False,
    text_only: Annotated[
        bool,
        typer.Option("--text", help="Print only the generated text (prefix and continuation) on stdout."),
    ] = False,
    skip_unknown: options.SkipUnknown = False,
    device: options.Device = DeviceName.cpu,
    engine: options.EngineChoice = Engine.auto,
    json_out: options.Json = False,
) -> None:
    """Show the model's most likely next character after each character of PREFIX, and continue it.

    The table is the argmax view of the lecture (␣ is a space, ↵ a newline); --length N then
    samples N characters past the prefix (--temperature 0: greedy).
    """
    from charnext import api
    from charnext.rendering import (
        console,
        predict_view,
    )

    if prefix_arg is not None and prefix is not None:
        raise _usage("give PREFIX or --prefix, not both")
    _check_predict(length, num_samples, alternatives, text_only, json_out)
    sample = _sample_for(temperature, top_k, top_p, seed, length, num_samples)
    ckpt = api.load(checkpoint, device.value, engine.value)
    prefix = prefix_arg if prefix_arg is not None else prefix or ""
    result = api.predict(ckpt, prefix, alternatives, skip_unknown)
    if result.skipped:
        _warn_skipped(result.skipped)
    if not result.steps and not length:
        raise _usage("give PREFIX to predict, or --length N to generate")
    if length and sample.temperature:  # stderr, so that stdout keeps only the output
        console.error_console().print(f"seed {sample.seed}", markup=False, highlight=False)
    con = console.console(stderr=json_out)
    if result.steps and not json_out and not text_only:
        predict_view.show_prediction(con, result.steps, result.prediction, alternatives)
    _continue(con, ckpt, result, length, sample, num_samples, alternatives, table, text_only, json_out)


def _continue(
    con, ckpt, result, length, sample, num_samples, alternatives, table, text_only, json_out
) -> None:
    """predict past the prefix: the continuations, streamed on a terminal, listed (with whether
    each line is new, in line mode), tabulated with --table, or as JSON."""
    from charnext import api
    from charnext.rendering import (
        predict_view,
    )

    line_mode = api.line_mode(ckpt)
    stream = length and not json_out and num_samples == 1 and con.is_terminal and not line_mode
    kept, generated = result.prefix, []
    if stream:  # one continuation on a terminal: each character printed the moment it comes
        chars = (step[0] for step in api.generate_stream(ckpt, kept, length, sample=sample))
        generated = [predict_view.stream_text(con, kept, chars)]
    elif length:
        generated = api.generate(ckpt, kept, length, sample=sample, num_samples=num_samples)
    seen = [api.seen_in_training(ckpt, kept + g) for g in generated] if line_mode else None
    if json_out:
        extra = {"seen_in_training": seen} if seen is not None else {}
        first = generated[0] if generated else ""
        _print_json(
            {**result.to_dict(), "generated": first, "samples": generated, "seed": sample.seed, **extra}
        )
        return
    if generated and not stream:
        if text_only:
            predict_view.plain_samples(con, kept, generated)
        else:
            predict_view.samples(con, kept, generated, seen)
    if table and generated and not text_only:
        steps = api.predict(ckpt, kept + generated[0], alternatives).steps[len(kept) :]
        start = len(kept) + 1
        con.print(
            predict_view.prediction_table(
                steps, alternatives, "generated steps", start=start, width=con.width
            )
        )


def _check_predict(length: int, num_samples: int, alternatives: int, text_only: bool, json_out: bool) -> None:
    """predict's options that exclude each other or are out of range."""
    if alternatives < 1:
        raise ConfigError(f"--alternatives must be at least 1, not {alternatives}")
    if length < 0 or num_samples < 1:
        raise ConfigError("--length must be 0 or more and --num-samples at least 1")
    if text_only and json_out:
        raise _usage("--text and --json exclude each other")
    if text_only and not length:
        raise _usage("--text prints generated text: give --length N")


def _sample_for(
    temperature: float, top_k: int, top_p: float, seed: int | None, length: int, num_samples: int
):
    """How predict samples: without --seed, a fresh seed (printed, to make a good sample again);
    greedy needs none."""
    from charnext.config import SampleConfig
    from charnext.rendering.console import error_console

    greedy = temperature == 0
    if greedy and num_samples > 1 and length:
        raise _usage("--temperature 0 is greedy: every sample would be the same; drop --num-samples")
    if greedy and seed is not None:
        error_console().print("note: --seed has no effect with --temperature 0 (greedy)", markup=False)
    if length and not greedy and seed is None:
        seed = _random_seed()
    return SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values


def _random_seed() -> int:
    """A fresh sampling seed, small enough to retype."""
    import secrets

    return secrets.randbelow(1_000_000)


def _warn_skipped(chars: list[str]) -> None:
    """Say on stderr which characters were dropped as unknown."""
    from charnext.rendering import (
        console,
        widgets,
    )

    shown = " ".join(f"'{widgets.visible(c)}'" for c in chars)
    noun = "character" if len(chars) == 1 else "characters"
    console.error_console().print(f"skipped {noun} not in the vocabulary: {shown}", markup=False)


# ---------------------------------------------------------------------------------------------


@app.command()
@handle_errors
def evaluate(
    text: Annotated[
        str | None,
        typer.Argument(metavar="TEXT", help="Text to score; - reads standard input.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Score this UTF-8 text file; - reads standard input.", show_default=False
        ),
    ] = None,
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
    from charnext.rendering import (
        console,
        evaluate_view,
        widgets,
    )

    if show and (show_chars < 1 or most < 0):
        raise ConfigError("--show-chars must be at least 1 and --most 0 or more")
    content = _read_input(text, file, "to score")
    ckpt = api.load(checkpoint, device.value)
    result = api.evaluate(ckpt, content, skip_unknown)
    view = api.surprisal(ckpt, content, offset, show_chars, skip_unknown=skip_unknown) if show else None
    if result.skipped:
        _warn_skipped(result.skipped_chars)
    if json_out:
        _print_json({**result.to_dict(), **({"surprise": view.to_dict(most)} if view else {})})
        return
    con = console.console()
    if file is not None:
        source = "standard input" if str(file) == "-" else [widgets.shown_path(file)]
    else:
        source = "standard input" if text == "-" else f"TEXT ({len(content):,} characters)"
    con.print(evaluate_view.evaluation_table(result, str(checkpoint), source))
    if view is not None:
        evaluate_view.show_surprise(con, view, most)


# ---------------------------------------------------------------------------------------------


@app.command()
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
    from charnext.rendering import (
        console,
        inspect_view,
        widgets,
    )

    if path is not None and checkpoint is not None:
        raise _usage("give CHECKPOINT or --checkpoint, not both")
    path = path or checkpoint or Path("checkpoint.pt")
    info = api.describe(api.load(path, engine=engine.value))
    if plot is not None:  # first, so that a missing matplotlib fails before anything is shown
        from charnext.rendering.plot import plot_history

        plot_history(info, plot)
    if json_out:
        _print_json(info)
    else:
        inspect_view.show_checkpoint(console.console(), info)
    if plot is not None:
        console.error_console().print(
            f"loss curves written to {widgets.shown_path(plot)}", markup=False, soft_wrap=True
        )


# ---------------------------------------------------------------------------------------------


@app.command()
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
    from charnext.rendering import (
        widgets,
    )

    written = api.export(checkpoint, out)
    before, after = checkpoint.stat().st_size, written.stat().st_size
    typer.echo(f"wrote {widgets.shown_path(written)}: {after:,} bytes (the checkpoint has {before:,})")


# ---------------------------------------------------------------------------------------------
# inside the model: neurons, report, play


@app.command()
@handle_errors
def neurons(
    text: Annotated[
        str | None,
        typer.Argument(metavar="TEXT", help="Text to read; - reads standard input.", show_default=False),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option(
            "--file", "-f", help="Read this UTF-8 text file; - reads standard input.", show_default=False
        ),
    ] = None,
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
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
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop characters the vocabulary lacks.")
    ] = False,
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
    from charnext.rendering import (
        console,
        neurons_view,
    )

    if top < 1 or max_chars < 0 or show_chars < 1 or offset < 0:
        raise ConfigError("--top and --show-chars must be at least 1, --max-chars and --offset 0 or more")
    text = _read_input(text, file, "to read")
    ckpt = api.load(checkpoint, device.value, engine.value)
    result, chosen = api.neurons(ckpt, text, unit, max_chars or None, offset, show_chars, skip_unknown)
    if result.skipped:
        _warn_skipped(result.skipped)
    if json_out:
        _print_json({**result.to_dict(top), **({"unit": result.unit_to_dict(chosen)} if chosen else {})})
        return
    con = console.console()
    if chosen is not None:
        neurons_view.show_unit(con, result, chosen)
    else:
        neurons_view.show_neurons(con, result, top)


@app.command()
@handle_errors
def report(
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="UTF-8 text to read [default: a sample the model writes itself]."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("report.html"),
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
    text = _read_input(None, file, "to read") if file is not None else None
    ckpt = api.load(checkpoint, device.value, engine.value)
    source = None if file is None else ("standard input" if str(file) == "-" else file.name)
    page = api.report_page(
        ckpt,
        text,
        source,
        prefix,
        offset,
        chars,
        units,
        alternatives,
        max_chars or None,
        skip_unknown,
        sample,
    )
    _write_html(out, page, "report")


def _write_html(out: Path, html: str, what: str) -> None:
    """Write an HTML file and say so on stderr (`report written to r.html (118 KiB)`), one line."""
    from charnext.rendering import (
        console,
        widgets,
    )

    try:
        out.write_text(html, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {widgets.shown_path(out)}: {e.strerror or e}") from None
    size = len(html.encode()) / 1024
    note = f"{what} written to {widgets.shown_path(out)} ({size:,.0f} KiB)"
    console.error_console().print(note, markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def page(
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write.")] = Path("model.html"),
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
    from charnext.rendering import (
        console,
    )

    text = _read_input(None, file, "to score") if file is not None else None
    ckpt = api.load(checkpoint, engine="numpy")
    data = api.web_page(ckpt, weights.value, text, prefix, checkpoint.name)
    _write_html(out, data.html(), "page")
    err = console.error_console()
    err.print(f"weights {data.precision.describe()}", markup=False, highlight=False, soft_wrap=True)


@app.command()
@handle_errors
def play(
    checkpoint: options.Checkpoint = Path("checkpoint.pt"),
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
    from charnext.rendering import (
        console,
    )
    from charnext.rendering.play_ui import require_terminal, run

    require_terminal()  # before loading anything: refuse at once
    if alternatives < 1 or length < 1:
        raise ConfigError("--alternatives and --length must be at least 1")
    from charnext import api
    from charnext.config import SampleConfig

    sample = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values
    ckpt = api.load(checkpoint, device.value, engine.value)
    session = api.play_session(ckpt, sample)
    c = ckpt.config
    title = f"charnext play · {checkpoint.name} · {c.cell.value} {c.num_layers}×{c.hidden_size}"
    con = console.console()
    text = run(session, con, title, alternatives, length)
    if text:
        con.print(text, markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="charnext")  # the same name (and completion variable) for `python -m charnext`
    except BrokenPipeError:  # a closed stdout outside a command (e.g. during --help): quietly done
        from charnext.rendering.console import stdout_closed

        stdout_closed()
        sys.exit(0)
