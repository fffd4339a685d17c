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

from charnext import __version__
from charnext.config import Cell, DeviceName, Engine, ModelConfig, Precision, TrainConfig, parse_duration
from charnext.errors import CharnextError, ConfigError


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


_ENGINE_HELP = (
    "What runs the model: numpy (no torch imported; the CPU only) or torch. auto picks numpy on "
    "the CPU and torch on a GPU: measured, numpy starts without torch's ~1.3 s import and "
    "generates faster on a CPU."
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    """Print `error: message` on stderr (one line) and return the Exit to raise."""
    from rich.markup import escape

    from charnext.render import error_console

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
            _stdout_closed()
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
    from charnext.data import decode_utf8, read_text

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
    from charnext.data import decode_utf8
    from charnext.runs import Source

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
            from charnext.render import error_console

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


# Defaults of `train`, shown in --help. The options themselves default to None ("not given"),
# so that a resumed run can tell an option the user typed from one left at its default.
_MODEL_DEFAULTS = ModelConfig(vocab_size=1)
_TRAIN_DEFAULTS = TrainConfig()


# What the planner chooses when the option is not given (charnext.planner; the run's `plan:` line).
_PLANNED = "[default: planned for the text, the budget and this machine]"


def _default(value) -> str:
    return f"[default: {getattr(value, 'value', value)}]"


@app.command()
@handle_errors
def train(
    text: Annotated[
        str | None, typer.Argument(help="Text to train on; - reads standard input.", show_default=False)
    ] = None,
    file: Annotated[Path | None, typer.Option("--file", "-f", help="Train on this UTF-8 text file.")] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", "-d", help="Train on a folder made by `charnext prepare` (memory-mapped)."),
    ] = None,
    cell: Annotated[
        Cell | None,
        typer.Option(help=f"Recurrent cell. {_default(_MODEL_DEFAULTS.cell)}", show_default=False),
    ] = None,
    hidden_size: Annotated[
        int | None, typer.Option(help=f"Units per recurrent layer. {_PLANNED}", show_default=False)
    ] = None,
    num_layers: Annotated[
        int | None, typer.Option(help=f"Stacked recurrent layers. {_PLANNED}", show_default=False)
    ] = None,
    embedding_size: Annotated[
        int | None,
        typer.Option(
            help="Learned input embedding width; 0 feeds one-hot vectors. "
            + _default(_MODEL_DEFAULTS.embedding_size)
        ),
    ] = None,
    dropout: Annotated[
        float | None,
        typer.Option(
            help=f"Dropout between layers and before the head, 0..1. {_PLANNED}", show_default=False
        ),
    ] = None,
    weight_drop: Annotated[
        float | None,
        typer.Option(help=f"DropConnect on the recurrent weights, 0..1. {_default(0.0)}", show_default=False),
    ] = None,
    seq_len: Annotated[
        int | None,
        typer.Option(
            help=f"Characters per training window (BPTT length). {_default(_TRAIN_DEFAULTS.seq_len)}"
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(help=f"Windows (lines with --lines) per step. {_PLANNED}", show_default=False),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Optimizer steps [default: sized to the text]", show_default=False)
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over the text, instead of --steps.")] = None,
    max_time: Annotated[
        str | None, typer.Option(help="Wall-clock budget, e.g. 90s, 10m, 2h; the schedule fits it.")
    ] = None,
    weight_decay: Annotated[
        float | None,
        typer.Option(help=f"AdamW weight decay. {_PLANNED}", show_default=False),
    ] = None,
    lr: Annotated[
        float | None, typer.Option(help=f"Peak learning rate. {_PLANNED}", show_default=False)
    ] = None,
    seed: Annotated[int | None, typer.Option(help=f"Random seed. {_default(_TRAIN_DEFAULTS.seed)}")] = None,
    device: Annotated[DeviceName | None, typer.Option(help="Where to train. [default: auto]")] = None,
    precision: Annotated[
        Precision | None, typer.Option(help="Forward-pass precision; auto = bf16 where fast. [default: auto]")
    ] = None,
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
        bool | None, typer.Option("--lines", help="Line mode: each non-empty line is a sequence.")
    ] = None,
    random_windows: Annotated[
        bool | None,
        typer.Option("--random-windows", help="Draw windows at random instead of carrying state."),
    ] = None,
    cold_starts: Annotated[
        float | None,
        typer.Option(
            help="Share of stream windows read from the zero state, so that the model also learns "
            f"to start cold, as predict does. {_default(_TRAIN_DEFAULTS.cold_starts)}",
            show_default=False,
        ),
    ] = None,
    sample_prompt: Annotated[
        str | None,
        typer.Option(help="Prompt of the previews after each validation [default: the text's first line]"),
    ] = None,
    sample_temperature: Annotated[
        float | None,
        typer.Option(
            help="Temperature of those previews (fixed seed; 0 = greedy). "
            + _default(_TRAIN_DEFAULTS.sample_temperature)
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads for torch [default: the idle cores, measured at start; OMP_NUM_THREADS if set]",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        str | None,  # a string, not a Path: `runs/` keeps its slash (a folder: runs/checkpoint.pt)
        typer.Option(
            "--out",
            "-o",
            help="Checkpoint to write; DIR/ or an existing folder means DIR/checkpoint.pt, and a "
            "missing folder is created. [default: checkpoint.pt; with --resume, that file]",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue the run saved in this checkpoint.")] = None,
    init_from: Annotated[Path | None, typer.Option(help="Start from this checkpoint's weights.")] = None,
    extend_vocab: Annotated[
        bool, typer.Option("--extend-vocab", help="With --init-from: add the text's new characters.")
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
    dist_timeout: Annotated[
        str, typer.Option(help="Under torchrun: how long a process waits for the others before failing.")
    ] = "10m",
) -> None:
    """Train a character model on TEXT (or --file, --data, or standard input) and save a checkpoint.

    With --resume, the text may be left out: the run reopens the file or folder it trained on.
    Started by `torchrun --nproc-per-node=N -m charnext train ...` it trains in N processes
    (DistributedDataParallel); only the first writes checkpoints and output. A diverging run
    stops with exit code 3 and keeps its last good checkpoints.
    """
    if not json_out:  # a first word before the slow part (torch, reading, planning) begins
        _say_starting(text, file, data, resume)
    from charnext import distributed, render, runs
    from charnext.device import configure_threads
    from charnext.events import EvalEvent, ReportEvent, StepEvent
    from charnext.trainer import stop_on_sigint

    budget = parse_duration(max_time) if max_time is not None else None
    model_options = dict(
        cell=cell,
        hidden_size=hidden_size,
        num_layers=num_layers,
        embedding_size=embedding_size,
        dropout=dropout,
        weight_drop=weight_drop,
    )
    train_options = dict(
        seq_len=seq_len, batch_size=batch_size, steps=steps, epochs=epochs, max_time=budget, lr=lr,
        weight_decay=weight_decay, seed=seed,
        device=device.value if device else None, precision=precision.value if precision else None,
        val_fraction=val_fraction, eval_every=eval_every, patience=patience, lines=lines,
        random_windows=random_windows, cold_starts=cold_starts, sample_prompt=sample_prompt,
        sample_temperature=sample_temperature,
    )  # fmt: skip
    given_model = {k: v for k, v in model_options.items() if v is not None}
    given_train = {k: v for k, v in train_options.items() if v is not None}
    configure_threads(threads)
    with distributed.process_group(device.value if device else "auto", parse_duration(dist_timeout)) as procs:
        source = _source(text, file, data)
        if resume is not None:
            if init_from is not None:
                raise ConfigError("--resume and --init-from exclude each other")
            if extend_vocab:
                raise ConfigError("--extend-vocab goes with --init-from, not with --resume")
            trainer = runs.resume_run(
                resume, source, out=out, command=_command(), **given_model, **given_train
            )
        else:
            if source is None:
                raise _usage(
                    "give the text to train on: TEXT, --file PATH, --data DIR, or - for standard input"
                )
            trainer = runs.new_run(
                source, ModelConfig(vocab_size=1, **given_model), TrainConfig(**given_train),
                out or Path("checkpoint.pt"), init_from=init_from, extend_vocab=extend_vocab,
                command=_command(), given={*given_model, *given_train},
            )  # fmt: skip

        con = render.console(stderr=json_out, quiet=not procs.main)
        c = trainer.model.config
        title = (
            f"{c.cell.value} {c.num_layers}x{c.hidden_size}, {len(trainer.vocab)} chars, "
            f"batch {trainer.batch_size}x{trainer.seq_len}, {trainer.device} {trainer.precision}"
        )
        plan = trainer.recorded_plan()
        if plan and trainer.resumed_from is None:
            title += f"\nplan: {plan['why']}" + _given_note(plan)
        con.file = _OutputThatMayClose(con.file)  # `| head`: the run goes on and saves
        with stop_on_sigint(trainer), render.TrainView(con, title) as view:
            for event in trainer.run():
                if isinstance(event, StepEvent):
                    view.step(event)
                elif isinstance(event, ReportEvent):
                    view.report(event)
                elif isinstance(event, EvalEvent):
                    view.evaluation(event)
        result = trainer.result
        if json_out and procs.main:
            _print_json(result.to_dict())
        render.train_summary(con, result, _next_command(trainer, result))
        if result.reason == "interrupted":
            raise _fail(f"interrupted at step {result.steps}; resume with --resume {result.checkpoint}", 130)


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
        _stdout_closed()


def _size(n: int) -> str:
    """A file size in bytes, KB or MB (decimal)."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _next_command(trainer, result) -> str | None:
    """What to try with the model just trained: its predictions for the text's first line
    (a line-mode model: five new lines), from the best checkpoint where there is one."""
    import shlex

    path = result.best_checkpoint or result.checkpoint
    if path is None or result.reason == "interrupted":
        return None
    where = f"-c {shlex.quote(str(path))}"
    if trainer.config.lines:
        return f"charnext predict --length 40 --num-samples 5 {where}"
    prompt = trainer.sample_prompt()[:24]
    return f"charnext predict {shlex.quote(prompt)} --length 200 {where}" if prompt else None


def _given_note(plan: dict) -> str:
    """' (batch_size as given)': what the plan did not choose because the user did."""
    kept = [
        n for n in ("hidden_size", "num_layers", "dropout", "batch_size", "lr") if n not in plan["planned"]
    ]
    return f" ({', '.join('--' + n.replace('_', '-') for n in kept)} as given)" if kept else ""


def _command() -> list[str]:
    """The command line as typed, for the checkpoint's provenance."""
    return ["charnext", *sys.argv[1:]]


class _OutputThatMayClose:
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
        _stdout_closed()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


def _stdout_closed() -> None:
    """Point standard output at /dev/null, so that nothing later fails writing to the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (e.g. under a test runner)
        pass
    finally:
        os.close(devnull)


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
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Encode a text of any size once into a memory-mapped token folder, for `train --data`.

    The file is streamed in chunks, twice (vocabulary, then encoding): memory stays flat.
    """
    from charnext import render
    from charnext.prepare import prepare as prepare_text

    con = render.console(stderr=json_out)
    with render.PrepareView(con) as view:
        result = prepare_text(file, out, on_progress=view.update)
    if json_out:
        _print_json(result.to_dict())
    else:
        render.prepare_summary(con, result)


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
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")] = Path(
        "checkpoint.pt"
    ),
    length: Annotated[
        int, typer.Option("--length", "-n", help="Characters to generate past the prefix.")
    ] = 0,
    temperature: Annotated[
        float,
        typer.Option(
            help="Sampling temperature: 1 samples from the model as it is, lower is safer, "
            "0 is greedy (always the most likely character)."
        ),
    ] = 1.0,
    top_k: Annotated[
        int, typer.Option(help="Sample only among the k most likely characters; 0 = all of them.")
    ] = 0,
    top_p: Annotated[
        float,
        typer.Option(help="Sample only among the most likely characters whose probability adds up to p."),
    ] = 1.0,
    seed: Annotated[
        int | None,
        typer.Option(
            help="Sampling seed: the same seed gives the same text. Without it, a random "
            "seed is drawn and printed on stderr.",
            show_default=False,
        ),
    ] = None,
    num_samples: Annotated[int, typer.Option(help="Continuations to generate.")] = 1,
    alternatives: Annotated[
        int, typer.Option(help="Most likely characters shown per step in the table (the 'top' column).")
    ] = 3,
    table: Annotated[
        bool, typer.Option("--table", help="Also tabulate the generated steps (the last 60).")
    ] = False,
    text_only: Annotated[
        bool,
        typer.Option("--text", help="Print only the generated text (prefix and continuation) on stdout."),
    ] = False,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop prefix characters the vocabulary lacks.")
    ] = False,
    device: Annotated[DeviceName, typer.Option(help="Where to run.")] = DeviceName.cpu,
    engine: Annotated[Engine, typer.Option(help=_ENGINE_HELP)] = Engine.auto,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Show the model's most likely next character after each character of PREFIX, and continue it.

    The table is the argmax view of the lecture (␣ is a space, ↵ a newline); --length N then
    samples N characters past the prefix (--temperature 0: greedy).
    """
    from charnext import api, render
    from charnext.config import SampleConfig

    if prefix_arg is not None and prefix is not None:
        raise _usage("give PREFIX or --prefix, not both")
    prefix = prefix_arg if prefix_arg is not None else prefix or ""
    if alternatives < 1:
        raise ConfigError(f"--alternatives must be at least 1, not {alternatives}")
    if length < 0 or num_samples < 1:
        raise ConfigError("--length must be 0 or more and --num-samples at least 1")
    if text_only and json_out:
        raise _usage("--text and --json exclude each other")
    if text_only and not length:
        raise _usage("--text prints generated text: give --length N")
    greedy = temperature == 0
    if greedy and num_samples > 1 and length:
        raise _usage("--temperature 0 is greedy: every sample would be the same; drop --num-samples")
    if greedy and seed is not None:
        render.error_console().print("note: --seed has no effect with --temperature 0 (greedy)", markup=False)
    if length and not greedy and seed is None:
        seed = _random_seed()
    sample = SampleConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)  # checks values
    ckpt = api.load(checkpoint, device.value, engine.value)
    result = api.predict(ckpt, prefix, alternatives, skip_unknown)
    if result.skipped:
        _warn_skipped(result.skipped)
    if not result.steps and not length:
        raise _usage("give PREFIX to predict, or --length N to generate")
    kept = result.prefix
    if length and not greedy and seed is not None:
        # stderr, so that stdout keeps only the output; the seed lets a good sample be made again
        render.error_console().print(f"seed {seed}", markup=False, highlight=False)
    con = render.console(stderr=json_out)
    if result.steps and not json_out and not text_only:
        con.print(render.prediction_table(result.steps, alternatives, width=con.width))
        con.print(f"prediction: [bold]{render.visible_text(result.prediction)}[/]")
    generated: list[str] = []
    line_mode = api.line_mode(ckpt)
    stream = length and not json_out and num_samples == 1 and con.is_terminal and not line_mode
    if stream:
        # one continuation on a terminal: print each character the moment it is produced
        chars = (step[0] for step in api.generate_stream(ckpt, kept, length, sample=sample))
        generated = [render.stream_text(con, kept, chars)]
    elif length:
        generated = api.generate(ckpt, kept, length, sample=sample, num_samples=num_samples)
    # line mode: say whether each generated line is new or one of the training lines
    seen = [api.seen_in_training(ckpt, kept + g) for g in generated] if line_mode else None
    if json_out:
        extra = {"seen_in_training": seen} if seen is not None else {}
        _print_json(
            {
                **result.to_dict(),
                "generated": generated[0] if generated else "",
                "samples": generated,
                "seed": seed,
                **extra,
            }
        )
        return
    if generated and not stream:
        if text_only:
            render.plain_samples(con, kept, generated)
        else:
            render.samples(con, kept, generated, seen)
    if table and generated and not text_only:
        steps = api.predict(ckpt, kept + generated[0], alternatives).steps[len(kept) :]
        con.print(
            render.prediction_table(
                steps, alternatives, "generated steps", start=len(kept) + 1, width=con.width
            )
        )


def _random_seed() -> int:
    """A fresh sampling seed, small enough to retype."""
    import secrets

    return secrets.randbelow(1_000_000)


def _warn_skipped(chars: list[str]) -> None:
    """Say on stderr which characters were dropped as unknown."""
    from charnext import render

    shown = " ".join(f"'{render.visible(c)}'" for c in chars)
    noun = "character" if len(chars) == 1 else "characters"
    render.error_console().print(f"skipped {noun} not in the vocabulary: {shown}", markup=False)


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
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")] = Path(
        "checkpoint.pt"
    ),
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop (and count) characters the vocabulary lacks.")
    ] = False,
    device: Annotated[DeviceName, typer.Option(help="Where to run.")] = DeviceName.cpu,
    show: Annotated[
        bool, typer.Option("--show", help="Colour a stretch of the text by how surprising each character is.")
    ] = False,
    show_chars: Annotated[int, typer.Option(help="Characters of the text --show colours.")] = 600,
    offset: Annotated[int, typer.Option(help="Where the --show stretch starts (0 = the beginning).")] = 0,
    most: Annotated[int, typer.Option(help="Most surprising characters --show lists.")] = 10,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Score a checkpoint on TEXT (or --file): loss, bits/char, perplexity and accuracy.

    Each character is predicted from the text before it; --show colours a stretch of the text
    by how surprising each character was.
    """
    from charnext import api, render

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
    con = render.console()
    if file is not None:
        source = "standard input" if str(file) == "-" else str(file)
    else:
        source = "standard input" if text == "-" else f"TEXT ({len(content):,} characters)"
    con.print(render.evaluation_table(result, str(checkpoint), source))
    if view is not None:
        render.show_surprise(con, view, most)


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
    engine: Annotated[Engine, typer.Option(help=_ENGINE_HELP)] = Engine.auto,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Show what a checkpoint holds: model, vocabulary, training and loss history.

    The training curve is smoothed (an exponential moving average) with the raw losses faint.
    """
    from charnext import api, render
    from charnext.describe import describe

    if path is not None and checkpoint is not None:
        raise _usage("give CHECKPOINT or --checkpoint, not both")
    path = path or checkpoint or Path("checkpoint.pt")
    info = describe(api.load(path, engine=engine.value))
    if plot is not None:  # first, so that a missing matplotlib fails before anything is shown
        from charnext.plot import plot_history

        plot_history(info, plot)
    if json_out:
        _print_json(info)
    else:
        render.show_checkpoint(render.console(), info)
    if plot is not None:
        render.error_console().print(f"loss curves written to {plot}", markup=False)


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
    from charnext.checkpoint import export as export_checkpoint

    written = export_checkpoint(checkpoint, out)
    before, after = checkpoint.stat().st_size, written.stat().st_size
    typer.echo(f"wrote {written}: {after:,} bytes (the checkpoint has {before:,})")


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
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")] = Path(
        "checkpoint.pt"
    ),
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
    device: Annotated[DeviceName, typer.Option(help="Where to run.")] = DeviceName.cpu,
    json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
) -> None:
    """Find which units follow which features of a text: line position, quotes, brackets, indents.

    Records every unit of every layer (an LSTM's cell and hidden states) over the text and
    lists those whose activation correlates best with a feature; --unit colours one of them
    over the text.
    """
    from charnext import render
    from charnext.checkpoint import load
    from charnext.device import resolve_device
    from charnext.neurons import known_text, parse_unit, scan

    if top < 1 or max_chars < 0 or show_chars < 1 or offset < 0:
        raise ConfigError("--top and --show-chars must be at least 1, --max-chars and --offset 0 or more")
    text = _read_input(text, file, "to read")
    ckpt = load(checkpoint, resolve_device(device.value))
    chosen = parse_unit(unit, ckpt.model) if unit is not None else None
    text, unknown = known_text(ckpt.vocab, text, skip_unknown)
    if unknown:
        _warn_skipped(unknown)
    line_mode = bool(ckpt.train_config.get("lines"))
    result = scan(ckpt.model, ckpt.vocab, text, max_chars or None, offset, show_chars, line_mode)
    result.skipped = unknown
    if json_out:
        extra = {}
        if chosen is not None:
            extra["unit"] = {
                **result.score(chosen).to_dict(),
                "offset": result.stretch_offset,
                "text": result.stretch,
                "activations": [round(float(v), 5) for v in result.activation(chosen)],
            }
        _print_json({**result.to_dict(top), **extra})
        return
    con = render.console()
    if chosen is not None:
        render.show_unit(con, result, chosen)
    else:
        render.show_neurons(con, result, top)


@app.command()
@handle_errors
def report(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to describe.")] = Path(
        "checkpoint.pt"
    ),
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
    top_k: Annotated[int, typer.Option(help="Alternatives shown per character.")] = 5,
    max_chars: Annotated[
        int, typer.Option(help="Characters of the text the units are scored on; 0 = all.")
    ] = 100_000,
    skip_unknown: Annotated[
        bool, typer.Option("--skip-unknown", help="Drop characters the vocabulary lacks.")
    ] = False,
    device: Annotated[DeviceName, typer.Option(help="Where to run.")] = DeviceName.cpu,
) -> None:
    """Write a self-contained HTML report: model, loss curves, predictions, surprise, units.

    One file with inline CSS and SVG that loads nothing from the network: open it in any
    browser, send it, print it.
    """
    from charnext import render
    from charnext.checkpoint import load
    from charnext.data import read_text
    from charnext.device import resolve_device
    from charnext.report import collect, to_html

    text = read_text(file) if file is not None else None
    ckpt = load(checkpoint, resolve_device(device.value))
    source = None if file is None else ("standard input" if str(file) == "-" else file.name)
    data = collect(ckpt, text, source, prefix, offset, chars, units, top_k, max_chars or None, skip_unknown)
    page = to_html(data)
    try:
        out.write_text(page, encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot write {out}: {e.strerror or e}") from None
    render.error_console().print(
        f"report written to {out} ({len(page.encode()) / 1024:,.0f} KiB)", markup=False
    )


@app.command()
@handle_errors
def play(
    checkpoint: Annotated[Path, typer.Option("--checkpoint", "-c", help="Checkpoint to use.")] = Path(
        "checkpoint.pt"
    ),
    top_k: Annotated[int, typer.Option(help="Most likely next characters shown.")] = 5,
    length: Annotated[int, typer.Option("--length", "-n", help="Characters Ctrl-G writes.")] = 40,
    temperature: Annotated[
        float, typer.Option(help="Randomness of what Ctrl-G writes; 0 = always the most likely.")
    ] = 0.8,
    seed: Annotated[int, typer.Option(help="Seed of what Ctrl-G writes.")] = 0,
    device: Annotated[DeviceName, typer.Option(help="Where to run.")] = DeviceName.cpu,
) -> None:
    """Type, and watch the model's next-character probabilities after every key (a terminal app).

    Tab accepts the most likely character, Ctrl-G writes the next --length characters,
    Backspace deletes one, Ctrl-C or Ctrl-D leaves; the text is printed on leaving.
    """
    from charnext import render
    from charnext.play_ui import require_terminal, run

    require_terminal()  # before loading anything: refuse at once
    if top_k < 1 or length < 1 or temperature < 0:
        raise ConfigError("--top-k and --length must be at least 1, --temperature 0 or more")
    from charnext.checkpoint import load
    from charnext.device import resolve_device
    from charnext.play import PlaySession

    ckpt = load(checkpoint, resolve_device(device.value))
    session = PlaySession(ckpt, seed=seed)
    c = ckpt.config
    title = f"charnext play · {checkpoint.name} · {c.cell.value} {c.num_layers}×{c.hidden_size}"
    con = render.console()
    text = run(session, con, title, top_k, length, temperature)
    if text:
        con.print(text, markup=False, highlight=False, soft_wrap=True)


def main() -> None:
    """Console-script entry point."""
    try:
        app(prog_name="charnext")  # the same name (and completion variable) for `python -m charnext`
    except BrokenPipeError:  # a closed stdout outside a command (e.g. during --help): quietly done
        _stdout_closed()
        sys.exit(0)
