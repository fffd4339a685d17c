"""The Python API: load, predict, generate, evaluate and train without Typer or Rich.

    import charnext
    result = charnext.train("hihello", out="hi.pt", steps=200)
    ckpt = charnext.load("hi.pt")
    charnext.predict(ckpt, "hihell").prediction       # 'ihello'
    charnext.generate(ckpt, "h", length=20)            # ['ihello...']
    charnext.evaluate(ckpt, "hihello").bits_per_char

The command line is a thin layer over exactly these functions. `load`, `predict`,
`generate`, `surprisal`, `neurons` and `report_page` run on numpy by default (engine "auto" on
the CPU) and never import torch; `evaluate` and `train` use torch, imported when first called.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charnext.config import Cell, Engine, ModelConfig, SampleConfig, TrainConfig, split_options
from charnext.errors import ConfigError, TextError, UsageError
from charnext.events import EvalResult
from charnext.inference.sampling import generate as _generate
from charnext.inference.steps import StepPrediction, predict_steps
from charnext.results import (
    Completion,
    Description,
    EvaluateReport,
    Evaluation,
    NeuronsReport,
    PredictRequest,
    PredictResult,
    check_counts,
)
from charnext.storage.checkpoint import Checkpoint
from charnext.storage.checkpoint import load as _load_checkpoint
from charnext.text.reading import decode_utf8, read_text  # noqa: F401 - for the command line
from charnext.text.vocab import Vocab

if TYPE_CHECKING:  # torch's modules load on first use: load, predict and generate never need them
    from charnext.events import Event, TrainResult
    from charnext.inference.surprise import CharSurprise, Surprise
    from charnext.inside.page import PageData
    from charnext.inside.play import PlaySession
    from charnext.inside.report import ReportRequest
    from charnext.modeling.loss import sequence_loss
    from charnext.modeling.model import CharModel as Model
    from charnext.training.runs import Source
    from charnext.training.trainer import Trainer

__all__ = [
    "Cell",
    "CharSurprise",
    "Checkpoint",
    "Completion",
    "PredictRequest",
    "Description",
    "Engine",
    "EvalResult",
    "EvaluateReport",
    "Evaluation",
    "Model",
    "ModelConfig",
    "NeuronsReport",
    "PredictResult",
    "ReportRequest",
    "SampleConfig",
    "StepPrediction",
    "Surprise",
    "TrainConfig",
    "TrainResult",
    "Vocab",
    "evaluate",
    "generate",
    "generate_stream",
    "complete",
    "load",
    "predict",
    "sequence_loss",
    "surprisal",
    "train",
    "web_page",
]


_LAZY = {  # name -> (module, name there): imported (with torch) only when first asked for
    "TrainResult": ("charnext.events", "TrainResult"),
    "Trainer": ("charnext.training.trainer", "Trainer"),
    "Source": ("charnext.training.runs", "Source"),
    "Model": ("charnext.modeling.model", "CharModel"),
    "ReportRequest": ("charnext.inside.report", "ReportRequest"),
    "sequence_loss": ("charnext.modeling.loss", "sequence_loss"),
    "CharSurprise": ("charnext.inference.surprise", "CharSurprise"),
    "Surprise": ("charnext.inference.surprise", "Surprise"),
}


def __getattr__(name: str) -> Any:
    """The names that need torch import their modules only when first asked for."""
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'charnext.api' has no attribute {name!r}")


NEWLINE = "\n"


def load(path: str | Path = "checkpoint.pt", device: str = "cpu", engine: str = "auto") -> Checkpoint:
    """Load a checkpoint (safely: no code in it runs) for `device` (auto/cpu/cuda/mps).

    `engine` is what `predict`, `generate`, `surprisal`, `neurons`, `report_page` and
    `play_session` run on: "numpy" (the CPU only; no torch imported for a format-2 file),
    "torch", or "auto": numpy on the CPU, torch elsewhere (see
    `charnext.modeling.runner.resolve_engine`). `evaluate` and `.model` use torch whatever the
    engine.
    """
    from charnext.modeling.runner import resolve_engine

    if device != "cpu":
        from charnext.modeling.device import resolve_device

        device = str(resolve_device(device))
    return _load_checkpoint(path, device, resolve_engine(engine, device))


def predict(ckpt: Checkpoint, prefix: str, top_k: int = 3, skip_unknown: bool = False) -> PredictResult:
    """Feed `prefix` one character at a time; the prediction and top-k after each."""
    prefix, skipped = ckpt.vocab.known(prefix, skip_unknown)
    return PredictResult(predict_steps(ckpt.runner, ckpt.vocab, prefix, top_k, ckpt.start), skipped)


def generate_stream(
    ckpt: Checkpoint,
    prefix: str = "",
    length: int = 200,
    sample: SampleConfig | None = None,
    num_samples: int = 1,
    skip_unknown: bool = False,
) -> Iterator[list[str]]:
    """Yield the next character of each sample, `length` times (state carried forward).

    A line-mode checkpoint stops each sample at the end of its line.
    """
    check_counts(length, num_samples)
    prefix, _ = ckpt.vocab.known(prefix, skip_unknown)
    stop = NEWLINE if ckpt.line_mode else None
    yield from _generate(ckpt.runner, ckpt.vocab, prefix, length, sample, num_samples, stop, ckpt.start)


def generate(
    ckpt: Checkpoint,
    prefix: str = "",
    length: int = 200,
    sample: SampleConfig | None = None,
    num_samples: int = 1,
    skip_unknown: bool = False,
) -> list[str]:
    """`num_samples` continuations of `prefix`, each up to `length` characters."""
    parts: list[list[str]] = [[] for _ in range(num_samples)]
    for chars in generate_stream(ckpt, prefix, length, sample, num_samples, skip_unknown):
        for part, c in zip(parts, chars):
            part.append(c)
    out = ["".join(part) for part in parts]
    if ckpt.line_mode:
        out = [o.rstrip(NEWLINE) for o in out]
    return out


def seen_in_training(ckpt: Checkpoint, line: str) -> bool | None:
    """For a line-mode checkpoint: whether `line` is one of its training lines (None: unknown)."""
    from charnext.text.reading import in_line_index

    index = ckpt.raw.get("line_index")
    if index is None or not hasattr(index, "shape"):
        return None
    return in_line_index(index, line)


def _training_val_loss(ckpt: Checkpoint) -> float | None:
    """The validation loss the checkpoint's run recorded for it (None: none was)."""
    value = ckpt.summary.get("val_loss")
    if value is None and ckpt.history.get("val_loss"):
        value = ckpt.history["val_loss"][-1]
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def _unigram_loss(ckpt: Checkpoint, targets: str) -> float | None:
    """Loss (nats/char) on `targets` of a model that knows only how often each character occurs
    in the training text (add-one smoothed); None where the checkpoint has no counts."""
    import numpy as np

    counts = ckpt.raw.get("vocab_counts")
    if not isinstance(counts, list) or len(counts) != len(ckpt.vocab) or not targets:
        return None
    freq = np.asarray(counts, dtype=np.float64) + 1.0
    logp = np.log(freq / freq.sum())
    return float(-logp[ckpt.vocab.encode_array(targets).astype(np.intp)].mean())


def evaluate(ckpt: Checkpoint, text: str, skip_unknown: bool = False, precision: str = "fp32") -> Evaluation:
    """Loss (nats/char), bits/char, perplexity and accuracy of the checkpoint on `text`."""
    from charnext.inference.scoring import evaluate_lines, evaluate_stream
    from charnext.modeling.device import resolve_precision
    from charnext.text.reading import text_lines

    kept, unknown = ckpt.vocab.known(text, skip_unknown)
    skipped = len(text) - len(kept)
    device = ckpt.model.head.weight.device
    precision = resolve_precision(precision, device, ckpt.config.cell)
    if ckpt.line_mode:
        lines = [ckpt.vocab.encode(line) for line in text_lines(kept)]
        if not lines:
            raise TextError("the text has no non-empty line of known characters; nothing to evaluate")
        r = evaluate_lines(ckpt.model, lines, ckpt.vocab.chars.index(NEWLINE), precision=precision)
        targets = "".join(line + NEWLINE for line in text_lines(kept))  # each line and its end
    else:
        if len(kept) < 2:
            raise TextError("the text has fewer than 2 known characters; nothing to evaluate")
        prime = ckpt.vocab.encode(ckpt.start.prime) if ckpt.start.prime else None
        r = evaluate_stream(ckpt.model, ckpt.vocab.encode(kept), precision=precision, prime=prime)
        targets = kept[1:]  # every character but the first
    return Evaluation(
        r.loss,
        r.accuracy,
        r.characters,
        skipped,
        unknown,
        _training_val_loss(ckpt),
        _unigram_loss(ckpt, targets),
    )


def surprisal(
    ckpt: Checkpoint,
    text: str,
    offset: int = 0,
    length: int = 600,
    top_k: int = 3,
    skip_unknown: bool = False,
) -> Surprise:
    """The probability the checkpoint gives each character of `text[offset:offset + length]`,
    with its surprisal in bits and the characters it expected instead (`charnext evaluate --show`).

    With `skip_unknown`, unknown characters are dropped first and `offset` counts in what remains.
    """
    if offset < 0 or length < 1 or top_k < 1:
        raise ConfigError("offset must be 0 or more, and the length and top-k at least 1")
    from charnext.inference.surprise import score_chars

    kept, unknown = ckpt.vocab.known(text, skip_unknown)
    if offset >= len(kept):
        raise ConfigError(f"offset {offset} is past the end of the text ({len(kept)} characters)")
    result = score_chars(ckpt.runner, ckpt.vocab, kept, offset, length, top_k, start=ckpt.start)
    result.skipped = unknown
    return result


def complete(
    ckpt: Checkpoint,
    request: PredictRequest,
    on_prefix: Callable[[PredictResult], None] | None = None,
    on_char: Callable[[str], None] | None = None,
) -> Completion:
    """`charnext predict`: the per-step predictions for the prefix (handed to `on_prefix` as soon
    as they are read), then the continuations; a single one of a stream model goes character by
    character to `on_char` as it is drawn, when one is given."""
    prediction = predict(ckpt, request.prefix, request.alternatives, request.skip_unknown)
    if not prediction.steps and not request.length:
        raise UsageError("give PREFIX to predict, or --length N to generate")
    if on_prefix is not None:
        on_prefix(prediction)
    kept, n, sample = prediction.prefix, request.length, request.sample
    streamed = on_char is not None and n > 0 and request.num_samples == 1 and not ckpt.line_mode
    samples: list[str] = []
    if streamed:
        parts = []
        for chars in generate_stream(ckpt, kept, n, sample):  # each character the moment it comes
            on_char(chars[0])
            parts.append(chars[0])
        samples = ["".join(parts)]
    elif n:
        samples = generate(ckpt, kept, n, sample, request.num_samples)
    seen = [seen_in_training(ckpt, kept + s) for s in samples] if ckpt.line_mode else None
    steps = predict(ckpt, kept + samples[0], request.alternatives).steps[len(kept) :] if (
        request.generated_steps and samples) else []  # fmt: skip
    return Completion(prediction, samples, sample.seed if sample else None, seen, steps, streamed)


def describe(ckpt: Checkpoint) -> dict:
    """What a checkpoint holds, as plain data (`charnext inspect`)."""
    from charnext.storage.describe import describe as describe_checkpoint

    return describe_checkpoint(ckpt)


def export(path: str | Path, out: str | Path) -> Path:
    """Write the inference-only file of a checkpoint: weights, vocabulary, model config."""
    from charnext.storage.checkpoint import export as export_checkpoint

    return export_checkpoint(path, out)


def prepare(file: str | Path, out: str | Path, on_progress: Callable | None = None):
    """Encode a text of any size once into a memory-mapped token folder (`charnext prepare`)."""
    from charnext.text.prepare import prepare as prepare_text

    return prepare_text(file, out, on_progress=on_progress)


def neurons(
    ckpt: Checkpoint,
    text: str,
    unit: str | None = None,
    max_chars: int | None = 100_000,
    offset: int = 0,
    show_chars: int = 600,
    skip_unknown: bool = False,
):
    """Which units of the model follow which features of `text` (`charnext neurons`): the scan,
    and the unit named by `unit` (LAYER:INDEX, or LAYER:hINDEX) if one is."""
    from charnext.inside.neurons import parse_unit, scan

    chosen = parse_unit(unit, ckpt.config) if unit is not None else None
    kept, unknown = ckpt.vocab.known(text, skip_unknown)
    result = scan(ckpt.runner, ckpt.vocab, kept, max_chars, offset, show_chars, ckpt.line_mode)
    result.skipped = unknown
    return result, chosen


def play_session(ckpt: Checkpoint, sample: SampleConfig | None = None) -> PlaySession:
    """A typing session with the checkpoint (`charnext play`): type, see the next character; what
    it writes is drawn with `sample`. On the numpy engine it imports no torch."""
    from charnext.inside.play import PlaySession

    return PlaySession(ckpt.runner, ckpt.vocab, ckpt.start, sample)


def report_page(ckpt: Checkpoint, request: ReportRequest | None = None, **fields) -> str:
    """The HTML report of a checkpoint (`charnext report`), as one self-contained page, for a
    `ReportRequest` (or one of these `fields`: text, source, prefix, offset, chars, units,
    alternatives, max_chars, skip_unknown, sample). Without a text it reads a sample the model
    writes itself."""
    from charnext.inside import report, report_html

    return report_html.to_html(report.collect(ckpt, request, **fields))


def web_page(
    ckpt: Checkpoint,
    weights: str = "auto",
    text: str | None = None,
    prefix: str = "",
    name: str | None = None,
) -> PageData:
    """The model as one self-contained web page (`charnext page`); `.html()` is the page.

    `weights` "auto" embeds float16 weights where they move the loss by under 0.001 nats/char
    on `text` (else on a sample the model writes), float32 otherwise; "float16" or "float32"
    force one. `prefix` is the text the page opens with.
    """
    from charnext.inside.page import collect

    return collect(ckpt, weights, text, prefix, name)


def train(
    text: str,
    out: str | Path | None = "checkpoint.pt",
    *,
    model: ModelConfig | None = None,
    config: TrainConfig | None = None,
    on_event: Callable[[Event], None] | None = None,
    **options,
) -> TrainResult:
    """Train a model on `text` and write it to `out` (None: keep it in memory only).

    `options` are ModelConfig fields (cell, hidden_size, num_layers, embedding_size, dropout)
    and TrainConfig fields (steps, lr, seq_len, max_time: seconds or "90s", ...); an unknown one
    is refused with a ConfigError naming the options that exist. Without `model` and `config`,
    the fields they leave out are planned (charnext.training.planner), as `charnext train` does.
    `on_event` receives each event.
    """
    from charnext.training.runs import new_run

    model_options, train_options = split_options(options)
    # with no config object, what `options` leave out is planned for the text and the budget
    given = set(options) if model is None and config is None else None
    config = config or TrainConfig(**train_options)
    trainer = new_run(text, model, config, out, given=given, **model_options)
    result = run(trainer, on_event)
    result.model = trainer.model  # type: ignore[attr-defined]
    return result


def start_run(
    source: Source | None,
    out: str | Path | None = None,
    *,
    resume: str | Path | None = None,
    init_from: str | Path | None = None,
    extend_vocab: bool = False,
    command: list[str] | None = None,
    **options,
) -> Trainer:
    """A run ready to train, as `charnext train` starts it: resumed from the checkpoint `resume`
    (options marked resumable apply, the others are refused unless equal; `source` may be None:
    the run reopens its text), or new on `source` (from `init_from`'s weights if given; the
    options not given are planned). Nothing is trained yet: see `run`."""
    from charnext.training.runs import new_run, resume_run

    if resume is not None:
        if init_from is not None:
            raise ConfigError("--resume and --init-from exclude each other")
        if extend_vocab:
            raise ConfigError("--extend-vocab goes with --init-from, not with --resume")
        return resume_run(resume, source, out=out, command=command, **options)
    model_options, train_options = split_options(options)
    return new_run(
        source, ModelConfig(**model_options), TrainConfig(**train_options), out or Path("checkpoint.pt"),
        init_from=init_from, extend_vocab=extend_vocab, command=command, given=set(options),
    )  # fmt: skip


def run(
    trainer: Trainer, on_event: Callable[[Event], None] | None = None, stop_on_sigint: bool = False
) -> TrainResult:
    """Train `trainer` to its end, handing each event to `on_event`; its result. With
    `stop_on_sigint` the first Ctrl-C stops the run after the current step and saves it."""
    from charnext.training.trainer import stop_on_sigint as sigint_stops

    with sigint_stops(trainer) if stop_on_sigint else contextlib.nullcontext():
        for event in trainer.run():
            if on_event is not None:
                on_event(event)
    return trainer.result


@contextlib.contextmanager
def training_processes(device: str = "auto", timeout: float = 600.0, threads: int | None = None) -> Iterator:
    """The processes a run trains in (one, or torchrun's), with `threads` CPU threads each: set up
    for a block and taken down after it; yields who this process is (`.main`, `.rank`, `.world`).
    The default threads count the idle cores over torch's import, which happens here."""
    from charnext.modeling.cpuload import IdleSample

    idle = IdleSample()  # its window: the imports below (torch's, seconds), not a pause of its own
    from charnext.modeling.device import configure_threads
    from charnext.training import distributed

    configure_threads(threads, idle)
    with distributed.process_group(device, timeout) as procs:
        yield procs
