"""`charnext train` and `charnext prepare`: options, one call into the API, the views."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from charnext.cli import options
from charnext.cli.common import (
    command_line,
    fail,
    handle_errors,
    print_json,
    source_of,
    train_inputs,
)
from charnext.config import parse_duration, training_options
from charnext.events import StopReason


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
    force: options.Force = False,
    resume: options.Resume = None,
    init_from: options.InitFrom = None,
    extend_vocab: options.ExtendVocab = False,
    json_out: options.Json = False,
    dist_timeout: options.DistTimeout = "10m",
) -> None:
    """Train a character model on TEXT (or --file, --data, or standard input) and save a checkpoint.

    With --resume, the text may be left out: the run reopens the files or folder it trained on.
    Started by `torchrun --nproc-per-node=N -m charnext train ...` it trains in N processes
    (DistributedDataParallel); only the first writes checkpoints and output. A diverging run
    stops with exit code 3 and keeps its last good checkpoints.
    """
    from charnext import api

    # every value is checked here, before anything loads (the configs' own checks)
    request = api.TrainRequest(
        options=_given(locals()), out=out, resume=resume, init_from=init_from, extend_vocab=extend_vocab,
        command=command_line(), threads=threads, dist_timeout=dist_timeout, force=force,
    )  # fmt: skip
    text, files = train_inputs(text, file)  # `--file *.txt`: the shell's words after --file are files
    _begin(text, files, data, resume, out, force, json_out)
    where = device.value if device else "auto"
    with api.training_processes(where, request.dist_timeout, request.threads) as procs:
        source = source_of(text, files, data, resume)
        _train_and_show(api.start_run(source, request), procs.main, json_out)


def _train_and_show(run, main: bool, json_out: bool) -> None:
    """Train the run with the training view (in the first process only), then the summary or
    JSON; an interrupted run says how to resume it."""
    from charnext.rendering import console, train_view, widgets

    con = console.console(stderr=json_out, quiet=not main)
    con.file = console.OutputThatMayClose(con.file)  # `| head`: the run goes on and saves
    with train_view.TrainView(con, train_view.run_header(run.header)) as view:
        result = run.run(view.show, stop_on_sigint=True)
    if json_out and main:
        print_json(result.to_dict())
    train_view.train_summary(con, result, _next_command(run.header, result))
    if result.reason == StopReason.interrupted:
        again = widgets.shown_path(result.checkpoint)
        raise fail(f"interrupted at step {result.steps}; resume with --resume {again}", 130)


def _given(values: dict) -> dict:
    """The training options among a command's arguments that were given (not None), as plain
    values for the configs: choices by their value, --max-time in seconds."""
    given = {k: v for k, v in values.items() if k in training_options() and v is not None}
    if "max_time" in given:
        given["max_time"] = parse_duration(given["max_time"], "max_time")
    return {k: getattr(v, "value", v) if k in ("device", "precision") else v for k, v in given.items()}


def _begin(text, files: list[Path], data, resume, out, force: bool, json_out: bool) -> None:
    """Before the slow part (torch, reading, planning): a foreign file at --out refused at once
    (the core checks it again, and what is beside it), then the first word."""
    from charnext import api

    target = Path(out) if out is not None else Path(resume or "checkpoint.pt")
    inputs = [Path(f).resolve() for f in [*files, *([data] if data else [])] if str(f) != "-"]  # named better
    read = any(target.resolve() == f or f in target.resolve().parents for f in inputs)
    if not read and not target.is_dir() and not str(target).endswith(("/", os.sep)):
        api.check_out(target, "checkpoint", force)
    if not json_out:
        _say_starting(text, files, data, resume)


def _say_starting(text: str | None, files: list[Path], data: Path | None, resume: Path | None) -> None:
    """One plain line on stdout at once, before torch is imported (a second or more), the text
    read and the run planned: the header follows when training starts. Only for an input that
    exists, so that an error is not preceded by it; only in the first of several processes."""
    if os.environ.get("RANK", "0") != "0":
        return
    file = files[0] if len(files) == 1 else None
    if resume is not None and resume.is_file():
        what = f"resuming {resume.name}"
    elif file is not None and str(file) != "-" and file.is_file():
        what = f"training on {file.name} ({_size(file.stat().st_size)})"
    elif files and all(f.exists() for f in files):
        what = f"training on {_count_files(files)}"
    elif data is not None and data.is_dir():
        what = f"training on {data.name or data}"
    elif text is not None and text != "-" and not files and data is None:
        what = f"training on a text of {len(text):,} characters"
    else:
        return
    try:
        sys.stdout.write(f"{what}: loading...\n")
        sys.stdout.flush()
    except BrokenPipeError:  # the reader is gone: the run goes on, and saves, regardless
        from charnext.rendering.console import stdout_closed

        stdout_closed()


def _count_files(paths: list[Path]) -> str:
    """`3 files (12.0 KB)`, `texts/`, or `2 files and folders`: what was given, before reading it
    (the header then names the files found)."""
    if all(p.is_file() for p in paths):
        return f"{len(paths)} files ({_size(sum(p.stat().st_size for p in paths))})"
    if len(paths) == 1:
        return f"{paths[0].name or paths[0]}/"
    return f"{len(paths)} files and folders"


def _size(n: int) -> str:
    """A file size in bytes, KB or MB (decimal)."""
    for unit, scale in (("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _next_command(header, result) -> list[str] | None:
    """What to try with the model just trained, as the words of a shell command: its predictions
    for the text's first line (a line-mode model: five new lines), from the best checkpoint
    where there is one (its path from the current folder, to paste)."""
    import shlex

    from charnext.rendering import widgets

    path = result.best_checkpoint or result.checkpoint
    if path is None or result.reason == StopReason.interrupted:
        return None
    where = ["-c", shlex.quote(widgets.shown_path(path, home=False))]
    if header.line_mode:
        return ["charnext", "predict", "--length", "40", "--num-samples", "5", *where]
    prompt = header.sample_prompt[:24]
    return ["charnext", "predict", shlex.quote(prompt), "--length", "200", *where] if prompt else None


@handle_errors
def prepare(
    file: options.PrepareFile,
    out: options.PrepareOut,
    more: options.PrepareMore = None,
    force: options.Force = False,
    json_out: options.Json = False,
) -> None:
    """Encode a text of any size once into a memory-mapped token folder, for `train --data`.

    The file is streamed in chunks, twice (vocabulary, then encoding): memory stays flat.
    Several files or folders make one corpus whose files stay apart, as `train --file` keeps them.
    """
    from charnext import api
    from charnext.rendering import console, prepare_view

    files = [*file, *(more or [])]
    con = console.console(stderr=json_out)
    with prepare_view.PrepareView(con) as view:
        inputs = files[0] if len(files) == 1 else files
        result = api.prepare(inputs, out, on_progress=view.update, force=force)
    if json_out:
        print_json(result.to_dict())
    else:
        prepare_view.prepare_summary(con, result)
