"""The Python API: load, predict, generate, evaluate, train and serve without Typer or Rich.
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

import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charnext.config import Cell, Engine, ModelConfig, SampleConfig, TrainConfig, split_options
from charnext.errors import UsageError
from charnext.events import EvalResult, TrainResult
from charnext.inference.evaluation import Evaluation, evaluate_text, seen_in_training
from charnext.inference.sampling import generate as _generate
from charnext.inference.steps import StepPrediction, predict_steps, start_step
from charnext.inference.streams import Stream, StreamBatch, StreamSpec, Token
from charnext.results import (
    Completion,
    Description,
    EvaluateReport,
    EvaluateRequest,
    ExportResult,
    NeuronsReport,
    NeuronsRequest,
    PlayRequest,
    PredictRequest,
    PredictResult,
    TrainRequest,
    check_counts,
)
from charnext.storage.checkpoint import Checkpoint
from charnext.storage.checkpoint import load as _load_checkpoint
from charnext.storage.replacing import check_out, write_page
from charnext.text.source import Source
from charnext.text.vocab import Vocab
from charnext.training.handle import RunHeader, TrainingRun, training_processes

if TYPE_CHECKING:  # torch's modules load on first use: load, predict and generate never need them
    from charnext.events import Event
    from charnext.inference.surprise import CharSurprise, Surprise
    from charnext.inside.page import PageData
    from charnext.inside.play import PlaySession
    from charnext.inside.report import ReportRequest
    from charnext.modeling.loss import sequence_loss
    from charnext.modeling.model import CharModel as Model
    from charnext.serve.app import ServedApp
    from charnext.text.prepare import PrepareResult

# The one list of public names: `charnext` re-exports exactly these (lazily), and a test holds
# every public function of this module to it.
__all__ = [
    # what a model is and how it is configured
    "Cell", "Checkpoint", "Engine", "Model", "ModelConfig", "SampleConfig", "TrainConfig", "Vocab",
    # requests, and the typed results they get
    "CharSurprise", "Completion", "Description", "EvalResult", "EvaluateReport", "EvaluateRequest",
    "Evaluation", "ExportResult", "NeuronsReport", "NeuronsRequest", "PlayRequest", "PredictRequest",
    "PredictResult", "PrepareResult", "ReportRequest", "RunHeader", "Source", "StepPrediction",
    "Stream", "StreamBatch", "StreamSpec", "Surprise", "Token", "TrainRequest", "TrainResult", "TrainingRun",
    # functions
    "check_out", "complete", "describe", "evaluate", "export", "generate", "generate_stream", "load",
    "neurons", "play_session", "predict", "prepare", "report_page", "score", "seen_in_training",
    "sequence_loss", "serve_app", "start_run", "streams", "surprisal", "train", "training_processes",
    "web_page", "write_page",
]  # fmt: skip


_LAZY = {  # name -> (module, name there): imported (with torch) only when first asked for
    "Model": ("charnext.modeling.model", "CharModel"),
    "ReportRequest": ("charnext.inside.report", "ReportRequest"),
    "PrepareResult": ("charnext.text.prepare", "PrepareResult"),
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


def _renamed(old: str, new: str, value: int | None, current: int) -> int:
    """A keyword renamed in 0.3, still taken for one release with a DeprecationWarning."""
    if value is None:
        return current
    warnings.warn(f"{old}= is now {new}= (the characters shown per step); {old} will be removed in 0.4",
                  DeprecationWarning, stacklevel=3)  # fmt: skip
    return value


NEWLINE = "\n"


def load(
    path: str | Path = "checkpoint.pt", device: str = "cpu", engine: str = "auto", threads: int = 1
) -> Checkpoint:
    """Load a checkpoint (safely: no code in it runs) for `device` (auto/cpu/cuda/mps).

    `engine` runs predict, generate, surprisal, neurons, the report and play: "numpy" (the CPU
    only; no torch imported for a format-2 file), "torch", or "auto" (numpy on the CPU, torch
    elsewhere). `evaluate`, `score` and `.model` use torch whatever the engine. With `threads`,
    numpy splits the rows of a large batch across that many threads (BLAS then runs on one each)."""
    from charnext.modeling.runner import resolve_engine

    if device != "cpu":
        from charnext.modeling.device import resolve_device

        device = str(resolve_device(device))
    ckpt = _load_checkpoint(path, device, resolve_engine(engine, device))
    if threads > 1 and ckpt.engine == "numpy":  # a batch's rows split across threads
        ckpt.runner.use_threads(threads)
    return ckpt


def predict(
    ckpt: Checkpoint,
    prefix: str,
    alternatives: int = 3,
    skip_unknown: bool = False,
    *,
    top_k: int | None = None,
) -> PredictResult:
    """Feed `prefix` one character at a time; the prediction and the `alternatives` most likely
    characters after each. (`top_k=` is the old name of `alternatives`, deprecated.)"""
    alternatives = _renamed("top_k", "alternatives", top_k, alternatives)
    prefix, skipped = ckpt.vocab.known(prefix, skip_unknown)
    steps = predict_steps(ckpt, prefix, alternatives)
    return PredictResult(steps, skipped, start_step(ckpt, prefix, alternatives) if steps else None)


def generate_stream(
    ckpt: Checkpoint,
    prefix: str = "",
    length: int = 200,
    sample: SampleConfig | None = None,
    num_samples: int = 1,
    skip_unknown: bool = False,
) -> Iterator[list[str]]:
    """Yield the next character of each sample, `length` times (state carried forward); a
    line-mode checkpoint stops each sample at the end of its line."""
    check_counts(length, num_samples)
    prefix, _ = ckpt.vocab.known(prefix, skip_unknown)
    yield from _generate(ckpt, prefix, length, sample, num_samples)


def generate(
    ckpt: Checkpoint,
    prefix: str = "",
    length: int = 200,
    sample: SampleConfig | None = None,
    num_samples: int = 1,
    skip_unknown: bool = False,
) -> list[str]:
    """`num_samples` continuations of `prefix`, each up to `length` characters."""
    steps = list(generate_stream(ckpt, prefix, length, sample, num_samples, skip_unknown))
    out = ["".join(chars) for chars in zip(*steps)] if steps else [""] * num_samples  # per sample
    return [o.rstrip(NEWLINE) for o in out] if ckpt.line_mode else out


def streams(ckpt: Checkpoint) -> StreamBatch:
    """Independent streams of the checkpoint drawn together (continuous batching): `add` a
    StreamSpec (its prompt, length, sampling, PCG32 stream, stop strings), `step()` them all.
    A line-mode model's streams end at their line's end."""
    return StreamBatch(ckpt)


def serve_app(checkpoints: list, names: list[str] | None = None, **options) -> ServedApp:
    """`charnext serve`'s ASGI app (the `serve` extra) over these checkpoints (paths, or loaded on
    numpy), named by `names` or their files' stems. `options`: api_key, max_streams, limits,
    log (an access line a request). `.close()` ends the streams in flight, `.stop()` the rest."""
    from charnext.inference.scheduler import served
    from charnext.serve.app import build_app

    threads = options.pop("threads", 1)  # each model's batch split across this many threads
    ckpts = [
        c if isinstance(c, Checkpoint) else load(c, engine="numpy", threads=threads) for c in checkpoints
    ]
    ids = [
        (names or [])[i] if i < len(names or []) else Path(c.path or f"model{i}").stem
        for i, c in enumerate(ckpts)
    ]
    if len(set(ids)) < len(ids):
        raise UsageError(f"two models are named alike ({', '.join(ids)}): give each its own --name")
    models = {i: served(i, c, options.pop("max_streams", 64)) for i, c in zip(ids, ckpts)}
    return build_app(models, **options)


def complete(
    ckpt: Checkpoint,
    request: PredictRequest | None = None,
    on_prefix: Callable[[PredictResult], None] | None = None,
    on_char: Callable[[str], None] | None = None,
    **fields,
) -> Completion:
    """`charnext predict`: the per-step predictions for the prefix of `request` (or a request of
    these `fields`), handed to `on_prefix` as soon as they are read, then the continuations; a
    single one of a stream model goes character by character to `on_char` as it is drawn."""
    request = request or PredictRequest(**fields)
    n = request.drawn(ckpt.line_mode)  # before anything is read or shown
    prediction = predict(ckpt, request.prefix, request.alternatives, request.skip_unknown)
    if not prediction.steps and request.length == 0:
        raise UsageError("every character of the prefix was unknown and skipped: nothing to predict")
    if on_prefix is not None:
        on_prefix(prediction)
    kept, sample = prediction.prefix, request.sample
    streamed = on_char is not None and n > 0 and request.num_samples == 1 and not ckpt.line_mode
    samples: list[str] = []
    if n and (request.stop or request.best_of):  # independent streams: stops, the best of several
        count, r = request.best_of or request.num_samples, request
        specs = [StreamSpec(kept, n, sample or SampleConfig(), i, r.stop) for i in range(count)]
        samples = streams(ckpt).best(specs, r.num_samples, on_char if streamed else None)
    elif streamed:
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


def evaluate(ckpt: Checkpoint, text: str, skip_unknown: bool = False, precision: str = "fp32") -> Evaluation:
    """Loss (nats/char), bits/char, perplexity and accuracy of the checkpoint on `text`."""
    return evaluate_text(ckpt, text, skip_unknown, precision)


def score(ckpt: Checkpoint, request: EvaluateRequest | None = None, **fields) -> EvaluateReport:
    """`charnext evaluate`: the scores of `request`'s text (or a request of these `fields`), and
    with `show` the surprise of each character of its stretch."""
    r = request or EvaluateRequest(**fields)
    evaluation = evaluate_text(ckpt, r.text, r.skip_unknown, r.precision)
    surprise = _surprise(ckpt, r) if r.show else None
    return EvaluateReport(evaluation, surprise, r.most)


def surprisal(
    ckpt: Checkpoint,
    text: str,
    offset: int = 0,
    length: int = 600,
    alternatives: int = 3,
    skip_unknown: bool = False,
    *,
    top_k: int | None = None,
) -> Surprise:
    """The probability the checkpoint gives each character of `text[offset:offset + length]`,
    with its surprisal in bits and the `alternatives` characters it expected instead
    (`charnext evaluate --show`). (`top_k=` is the old name of `alternatives`, deprecated.)

    With `skip_unknown`, unknown characters are dropped first and `offset` counts in what remains.
    """
    alternatives = _renamed("top_k", "alternatives", top_k, alternatives)
    request = EvaluateRequest(text, skip_unknown, True, length, offset, alternatives=alternatives)
    return _surprise(ckpt, request)


def _surprise(ckpt: Checkpoint, r: EvaluateRequest) -> Surprise:
    from charnext.inference.surprise import score_stretch

    return score_stretch(ckpt, r.text, r.offset, r.show_chars, r.alternatives, r.skip_unknown)


def describe(ckpt: Checkpoint) -> Description:
    """What a checkpoint holds, as plain data (`charnext inspect`)."""
    from charnext.storage.describe import describe as describe_checkpoint

    return Description(describe_checkpoint(ckpt))


def export(path: str | Path, out: str | Path, force: bool = False) -> ExportResult:
    """A checkpoint's inference-only file: weights, vocabulary, model config (`force`: see check_out)."""
    from charnext.storage.checkpoint import export as export_checkpoint

    written = export_checkpoint(path, out, force)
    return ExportResult(written, written.stat().st_size, Path(path).stat().st_size)


def prepare(file: str | Path | list, out: str | Path, on_progress: Callable | None = None,
            force: bool = False) -> PrepareResult:  # fmt: skip
    """Encode a text (a list: several, kept apart) into a token folder (`force`: see check_out)."""
    from charnext.text.prepare import prepare as prepare_text

    return prepare_text(file, out, on_progress=on_progress, force=force)


def neurons(ckpt: Checkpoint, request: NeuronsRequest | str | None = None, **fields) -> NeuronsReport:
    """Which units of the model follow which features of a text (`charnext neurons`): the scan,
    and the unit named by `unit` (LAYER:INDEX, or LAYER:hINDEX) if one is. Takes a
    `NeuronsRequest`, or the text and these `fields` (unit, top, max_chars, offset, show_chars,
    skip_unknown)."""
    from charnext.inside.neurons import parse_unit, scan

    r = request if isinstance(request, NeuronsRequest) else NeuronsRequest(request, **fields)
    chosen = parse_unit(r.unit, ckpt.config) if r.unit is not None else None
    kept, unknown = ckpt.vocab.known(r.text, r.skip_unknown)
    result = scan(ckpt.runner, ckpt.vocab, kept, r.max_chars or None, r.offset, r.show_chars, ckpt.line_mode)
    result.skipped = unknown
    return NeuronsReport(result, r.top, chosen)


def play_session(ckpt: Checkpoint, request: PlayRequest | SampleConfig | None = None) -> PlaySession:
    """A typing session with the checkpoint (`charnext play`): type, see the next character; what
    it writes is drawn with the request's sample (or this SampleConfig). On the numpy engine it
    imports no torch."""
    from charnext.inside.play import PlaySession

    sample = request.sample if isinstance(request, PlayRequest) else request
    return PlaySession(ckpt, sample)


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
    force: bool = False,
    **options,
) -> TrainResult:
    """Train a model on `text` and write it to `out` (None: keep it in memory only).

    `options` are ModelConfig fields (cell, hidden_size, num_layers, embedding_size, dropout)
    and TrainConfig fields (steps, lr, seq_len, max_time: seconds or "90s", ...); an unknown one
    is refused with a ConfigError naming the options that exist. Without `model` and `config`,
    the fields they leave out are planned (charnext.training.planner), as `charnext train` does.
    `on_event` receives each event; the result's `.model` is the model trained (`force`: check_out)."""
    from charnext.training.handle import TrainingRun
    from charnext.training.runs import new_run

    model_options, train_options = split_options(options)
    # with no config object, what `options` leave out is planned for the text and the budget
    given = set(options) if model is None and config is None else None
    config = config or TrainConfig(**train_options)
    handle = TrainingRun(new_run(text, model, config, out, given=given, force=force, **model_options))
    result = handle.run(on_event)
    result.model = handle.model  # type: ignore[attr-defined]
    return result


def start_run(source: Source | str | None, request: TrainRequest | None = None, **fields) -> TrainingRun:
    """A run ready to train, as `charnext train` starts it, for `request` (or a TrainRequest of
    these `fields`, training options among them: `start_run("hihello", steps=100)`): resumed
    from the checkpoint `resume` (options marked resumable apply, the others are refused unless
    equal; `source` may be None: the run reopens its text), or new on
    `source` (a Source, or a text; from `init_from`'s weights if given; the options not given are
    planned). Nothing is trained yet: call the handle's `run()` or iterate its `events()`."""
    from charnext.training.handle import start

    source = Source.literal(source) if isinstance(source, str) else source
    return start(source, request or TrainRequest.of(**fields))
