"""A shareable report of a model as one self-contained HTML file (`charnext report`): its data.

`collect` gathers plain data from a checkpoint and a text on the checkpoint's engine (numpy on
the CPU by default: no torch); `report_html.to_html` turns that data into the page.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field

from charnext.config import SampleConfig
from charnext.errors import InvalidValue
from charnext.inference.sampling import generate
from charnext.inference.steps import predict_steps, start_step
from charnext.inference.surprise import score_chars
from charnext.inside.neurons import scan
from charnext.storage.checkpoint import Checkpoint
from charnext.storage.describe import describe

SAMPLE_CHARS = 3000  # without a text, the report reads this many characters the model writes
SAMPLE_LINES = 128  # or, from a line model, this many lines (each at most SAMPLE_LINE_CHARS)
SAMPLE_LINE_CHARS = 200


@dataclass
class ReportData:
    """Everything the page shows, as plain values."""

    title: str  # the checkpoint's name
    info: dict  # describe(checkpoint)
    source: str  # where the text came from
    prefix_steps: list[dict]  # per-step predictions for the prefix: input, top [(char, p)], target
    surprise: list[dict]  # per character of the stretch: char, prob (None: unscored), top
    units: list[dict]  # the most telling units: name, description, feature, r, values
    neuron_chars: int  # characters the unit scores cover
    start_step: dict | None = None  # a line model's prediction after its newline, before the prefix
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )


def _sample(ckpt: Checkpoint, sample: SampleConfig) -> str:
    """A text the model writes itself from its start, as `predict` continues an empty prefix
    (reproducible with a seed): SAMPLE_CHARS characters of a stream model, or SAMPLE_LINES
    whole lines of a line model, line i drawn as `predict --num-samples` draws sample i."""
    if not ckpt.line_mode:  # a model with no prime begins as its text did (the vocabulary's first)
        begin = "" if ckpt.start.prime else ckpt.vocab.chars[0]
        return begin + "".join(chars[0] for chars in generate(ckpt, begin, SAMPLE_CHARS - len(begin), sample))
    steps = list(generate(ckpt, "", SAMPLE_LINE_CHARS, sample, SAMPLE_LINES))
    return "\n".join("".join(chars).rstrip("\n") for chars in zip(*steps))


def _prefix_steps(ckpt: Checkpoint, prefix: str, alternatives: int) -> list[dict]:
    """The lecture's table: after each character of `prefix`, the `alternatives` most likely
    next ones (read from the model's start, as `predict` reads it)."""
    return [
        {"input": s.input, "top": s.top, "target": s.target}
        for s in predict_steps(ckpt, prefix, alternatives)
    ]


def _start_step(ckpt: Checkpoint, prefix: str, alternatives: int) -> dict | None:
    """A line model's first prediction, after the newline its lines are read after (as
    `predict` shows it, step 0); None for a stream model."""
    s = start_step(ckpt, prefix, alternatives)
    return None if s is None else {"input": s.input, "top": s.top, "target": s.target}


def _described(sample: SampleConfig) -> str:
    """'temperature 0.8, seed 0' (top-k and top-p where they cut)."""
    parts = [f"temperature {sample.temperature:g}"]
    parts += [f"top-k {sample.top_k}"] if sample.top_k else []
    parts += [f"top-p {sample.top_p:g}"] if sample.top_p < 1 else []
    return ", ".join(parts + ([f"seed {sample.seed}"] if sample.seed is not None else []))


@dataclass(frozen=True)
class ReportRequest:
    """What a report is asked to show (`charnext report`'s options)."""

    text: str | None = None  # the text read; None: a sample the model writes itself
    source: str | None = None  # where the text came from, as the page names it
    prefix: str | None = None  # the per-step table's prefix; None: the stretch's first line
    offset: int = 0  # where the heat maps start in the text
    chars: int = 500  # characters the heat maps show
    units: int = 6  # units shown as heat maps
    alternatives: int = 5  # most likely characters shown per step
    max_chars: int | None = 100_000  # characters the units are scored on; None: all
    skip_unknown: bool = False  # drop characters the vocabulary lacks
    sample: SampleConfig | None = None  # how the model's own sample is drawn (temperature 0.8, seed 0)

    def __post_init__(self) -> None:
        """Each value checked once, where the request is made (before anything loads)."""
        if self.offset < 0:
            raise InvalidValue("offset", f"must be 0 or more, not {self.offset}")
        if self.chars < 1:
            raise InvalidValue("chars", f"must be at least 1, not {self.chars}")
        if self.units < 0:
            raise InvalidValue("units", f"must be 0 or more, not {self.units}")
        if self.alternatives < 1:
            raise InvalidValue("alternatives", f"must be at least 1, not {self.alternatives}")
        if self.max_chars is not None and self.max_chars < 1:
            raise InvalidValue("max_chars", f"must be at least 1 (None: all), not {self.max_chars}")


def collect(ckpt: Checkpoint, request: ReportRequest | None = None, **fields) -> ReportData:
    """Gather the report's data for `request` (or a request of these `fields`). Without a text,
    the model's own sample is read."""
    r = request or ReportRequest(**fields)
    text, source, prefix, offset, chars, units = r.text, r.source, r.prefix, r.offset, r.chars, r.units
    alternatives, max_chars, skip_unknown, sample = r.alternatives, r.max_chars, r.skip_unknown, r.sample
    if text is None:
        sample = sample or SampleConfig(temperature=0.8, seed=0)
        text, source = _sample(ckpt, sample), f"a sample the model wrote ({_described(sample)})"
    text, _ = ckpt.vocab.known(text, skip_unknown)
    if prefix is None:  # the first line of the stretch, up to 40 characters
        first = text[offset:].split("\n", 1)[0]
        prefix = (first or text[offset:])[:40]
    prefix, _ = ckpt.vocab.known(prefix, skip_unknown)
    line_mode = ckpt.line_mode
    scanned = scan(ckpt.runner, ckpt.vocab, text, max_chars, offset, chars, line_mode)
    view = score_chars(ckpt, text, offset, chars, alternatives)
    chosen = [
        {
            "name": s.unit.name,
            "description": s.unit.description,
            "feature": s.feature,
            "r": s.r,
            "values": [float(v) for v in scanned.activation(s.unit)],
        }
        for s in scanned.best_per_feature()[:units]
    ]
    return ReportData(
        title=ckpt.path.name if ckpt.path else "model",
        info=describe(ckpt),
        source=source or "the text given",
        prefix_steps=_prefix_steps(ckpt, prefix, alternatives) if prefix else [],
        start_step=_start_step(ckpt, prefix, alternatives) if prefix else None,
        surprise=[{"char": c.char, "prob": c.prob, "top": c.top} for c in view.chars],
        units=chosen,
        neuron_chars=scanned.characters,
    )
