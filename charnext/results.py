"""What the API is asked and what it answers: request records and typed results, each result
with the `to_dict()` that is its command's `--json` (so the view and the JSON cannot drift)."""

from __future__ import annotations

import dataclasses
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from charnext.config import SampleConfig, check_options, parse_duration
from charnext.errors import InvalidValue
from charnext.inference.evaluation import Evaluation
from charnext.inference.steps import StepPrediction

if TYPE_CHECKING:
    from charnext.inference.surprise import Surprise


def at_least(low: int, **values: int) -> None:
    """Each value (named by the API's word) is a whole number of at least `low`: the one check
    of counts, lengths and offsets, for every request."""
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise InvalidValue(name, f"must be a whole number, not {value!r}")
        if value < low:
            raise InvalidValue(name, f"must be {low} or more, not {value}" if low < 1 else
                               f"must be at least {low}, not {value}")  # fmt: skip


def check_counts(length: int | None, num_samples: int) -> None:
    """The one check of how much to draw: a length of 0 or more (None: a line model's line),
    at least one sample."""
    if length is not None:
        at_least(0, length=length)
    at_least(1, num_samples=num_samples)


LINE_CHARS = 256  # a line model's line, drawn with no length given, ends by this many characters
MAX_STOPS = 4  # stop strings a request may give (as OpenAI's API allows)


def check_stops(stop: tuple[str, ...]) -> None:
    """The one check of stop strings: at most MAX_STOPS, each a text of one character or more."""
    if isinstance(stop, str) or not isinstance(stop, tuple | list):
        raise InvalidValue("stop", f"must be a list of texts, not {stop!r}")
    if len(stop) > MAX_STOPS:
        raise InvalidValue("stop", f"takes at most {MAX_STOPS} texts, not {len(stop)}")
    if not all(isinstance(s, str) and s for s in stop):
        raise InvalidValue("stop", "must be texts of one character or more")


UNIT = re.compile(r"\s*(\d+)\s*:\s*([ch]?)\s*(\d+)\s*")  # LAYER:INDEX, LAYER:hINDEX, LAYER:cINDEX


@dataclass(frozen=True)
class PredictRequest:
    """What `charnext predict` asks: a prefix to read, and what to draw past it."""

    prefix: str = ""  # read one character at a time
    length: int | None = 0  # characters drawn past the prefix (0: none; None: a line model's line)
    sample: SampleConfig | None = None  # how they are drawn
    num_samples: int = 1  # continuations drawn
    alternatives: int = 3  # most likely characters shown per step
    skip_unknown: bool = False  # drop the characters the vocabulary lacks instead of refusing them
    generated_steps: bool = False  # also the per-step predictions over the first continuation
    stop: tuple[str, ...] = ()  # a continuation ends where it reaches one of these (not kept)
    best_of: int | None = None  # draw this many, keep the num_samples most likely (mean log-prob)

    def __post_init__(self) -> None:
        at_least(1, alternatives=self.alternatives)
        check_counts(self.length, self.num_samples)
        check_stops(self.stop)
        if self.best_of is not None:
            at_least(1, best_of=self.best_of)
            if self.best_of < self.num_samples:
                n, best = self.num_samples, self.best_of
                raise InvalidValue(
                    "best_of", f"must be at least {{num_samples}} ({n}), not {best}", "num_samples"
                )
        if not self.prefix and self.length == 0:
            raise InvalidValue(
                "prefix", "is empty and {length} is 0: give a prefix to read or a length to draw", "length"
            )
        greedy = self.sample is None or self.sample.temperature == 0
        if greedy and self.num_samples > 1 and self.length != 0:
            raise InvalidValue("num_samples", "must be 1 when {temperature} is 0 (greedy): every sample "
                               "would be the same", "temperature")  # fmt: skip

    def drawn(self, line_mode: bool) -> int:
        """Characters to draw past the prefix: `length`, or (None) a line model's whole line,
        up to LINE_CHARS; a stream model has no line's end to stop at."""
        if self.length is not None:
            return self.length
        if not line_mode:
            raise InvalidValue("length", "is needed: a stream model has no line's end to stop at")
        return LINE_CHARS


@dataclass(frozen=True)
class EvaluateRequest:
    """What `charnext evaluate` asks: a text to score, and with `show` the surprise of a stretch."""

    text: str  # the text scored, every character predicted from those before it
    skip_unknown: bool = False  # drop (and count) the characters the vocabulary lacks
    show: bool = False  # also each character's surprise over text[offset:offset + show_chars]
    show_chars: int = 600  # characters of the stretch
    offset: int = 0  # where the stretch starts
    most: int = 10  # the most surprising characters listed
    alternatives: int = 3  # the characters expected instead, per character of the stretch
    precision: str = "fp32"  # the forward pass's precision: fp32, bf16 or auto

    def __post_init__(self) -> None:
        at_least(1, show_chars=self.show_chars, alternatives=self.alternatives)
        at_least(0, offset=self.offset, most=self.most)
        if self.precision not in ("fp32", "bf16", "auto"):
            raise InvalidValue("precision", f"must be fp32, bf16 or auto, not {self.precision!r}")


@dataclass(frozen=True)
class NeuronsRequest:
    """What `charnext neurons` asks: a text to record every unit over, and a unit to show."""

    text: str  # the text read
    unit: str | None = None  # LAYER:INDEX (an LSTM's cell), LAYER:hINDEX (its hidden state); None: all
    top: int = 10  # units listed
    max_chars: int | None = 100_000  # characters recorded from the text's start; None or 0: all
    offset: int = 0  # where the unit's stretch starts
    show_chars: int = 600  # characters of the unit's stretch
    skip_unknown: bool = False  # drop the characters the vocabulary lacks

    def __post_init__(self) -> None:
        at_least(1, top=self.top, show_chars=self.show_chars)
        at_least(0, offset=self.offset, max_chars=self.max_chars or 0)
        if self.unit is not None and not UNIT.fullmatch(self.unit):
            raise InvalidValue(
                "unit", f"must read LAYER:INDEX, e.g. 0:42 (or 0:h42, 0:c42), not {self.unit!r}"
            )


@dataclass(frozen=True)
class PlayRequest:
    """What `charnext play` asks: how many alternatives to show, and how it writes."""

    alternatives: int = 5  # most likely characters shown after each key
    length: int = 40  # characters one request to write draws
    sample: SampleConfig | None = None  # how they are drawn (None: temperature 0.8, seed 0)

    def __post_init__(self) -> None:
        at_least(1, alternatives=self.alternatives, length=self.length)


@dataclass(frozen=True)
class TrainRequest:
    """What `charnext train` asks besides its text: the training options given (ModelConfig and
    TrainConfig fields; the rest are planned), where to save, and how to start."""

    options: dict = field(default_factory=dict)  # training options by config name, as given
    out: str | Path | None = None  # the checkpoint to write (None: checkpoint.pt; resumed: that file)
    resume: str | Path | None = None  # continue the run saved in this checkpoint
    init_from: str | Path | None = None  # start from this checkpoint's weights
    extend_vocab: bool = False  # with init_from: add the text's new characters
    command: list[str] | None = None  # the command line, for the checkpoint's provenance
    threads: int | None = None  # CPU threads (None: the idle cores)
    dist_timeout: float | str = 600.0  # seconds (or "10m") a process waits for the others
    force: bool = False  # let `out` replace a file that is not a charnext checkpoint

    @classmethod
    def of(cls, **fields) -> TrainRequest:
        """A request of its own fields, the training options among them put in `options`."""
        own = {f.name for f in dataclasses.fields(cls)}
        options = {**fields.pop("options", {}), **{k: v for k, v in fields.items() if k not in own}}
        return cls(**{k: v for k, v in fields.items() if k in own}, options=options)

    def __post_init__(self) -> None:
        check_options(self.options)
        if self.threads is not None:
            at_least(1, threads=self.threads)
        if isinstance(self.dist_timeout, str):
            object.__setattr__(self, "dist_timeout", parse_duration(self.dist_timeout, "dist_timeout"))
        elif not self.dist_timeout > 0:
            raise InvalidValue("dist_timeout", f"must be positive, not {self.dist_timeout}")
        if self.resume is not None and self.init_from is not None:
            raise InvalidValue(
                "init_from", "cannot go with {resume}: a resumed run has its own weights", "resume"
            )
        if self.extend_vocab and self.init_from is None:
            raise InvalidValue(
                "extend_vocab", "grows the vocabulary of {init_from}'s model: give {init_from}", "init_from"
            )


@dataclass
class PredictResult:
    """Per-step predictions for a prefix."""

    steps: list[StepPrediction]  # one per prefix character
    skipped: list[str] = field(default_factory=list)  # unknown characters dropped from the prefix
    start: StepPrediction | None = None  # a line model's prediction after its newline, first

    @property
    def prefix(self) -> str:
        """The prefix as read: without the characters that were skipped."""
        return "".join(s.input for s in self.steps)

    @property
    def prediction(self) -> str:
        """The decoded prediction after each step (`ihello` for `hihell`)."""
        return "".join(s.predicted for s in self.steps)

    def to_dict(self) -> dict:
        """Plain values, for JSON (a line model's `start` too)."""

        def step(s: StepPrediction) -> dict:
            top = [{"char": c, "probability": p} for c, p in s.top]
            return {"input": s.input, "predicted": s.predicted, "probability": s.probability, "top": top}

        extra = {"start": step(self.start)} if self.start is not None else {}
        return {
            "prefix": self.prefix,
            "prediction": self.prediction,
            **extra,
            "steps": [step(s) for s in self.steps],
            "skipped": self.skipped,
        }


@dataclass
class Completion:
    """What `charnext predict` computes: the per-step predictions for the prefix, and the
    continuations drawn past it (with, for a line-mode model, whether each is a training line)."""

    prediction: PredictResult
    samples: list[str] = field(default_factory=list)  # one per sample; empty without a length
    seed: int | None = None  # the sampling seed (None: greedy, or nothing drawn)
    seen_in_training: list[bool | None] | None = None  # line mode only
    generated_steps: list[StepPrediction] = field(default_factory=list)  # over the first sample
    streamed: bool = False  # the sample went character by character to a listener as drawn

    def to_dict(self) -> dict:
        """Plain values, for JSON: exactly `charnext predict --json`."""
        extra = {"seen_in_training": self.seen_in_training} if self.seen_in_training is not None else {}
        first = self.samples[0] if self.samples else ""
        return {**self.prediction.to_dict(), "generated": first, "samples": self.samples, "seed": self.seed,
                **extra}  # fmt: skip


@dataclass
class EvaluateReport:
    """What `charnext evaluate` computes: the scores, and with --show the surprise of a stretch."""

    evaluation: Evaluation
    surprise: Surprise | None = None
    most: int = 10  # the most surprising characters listed

    def to_dict(self) -> dict:
        """Plain values, for JSON: exactly `charnext evaluate --json`."""
        shown = {"surprise": self.surprise.to_dict(self.most)} if self.surprise is not None else {}
        return {**self.evaluation.to_dict(), **shown}


@dataclass
class NeuronsReport:
    """What `charnext neurons` computes: the scan of every unit, and the unit asked for if any."""

    scan: Any  # charnext.inside.neurons.NeuronScan
    top: int = 10  # units listed
    unit: Any = None  # the unit asked for (--unit), or None

    def to_dict(self) -> dict:
        """Plain values, for JSON: exactly `charnext neurons --json`."""
        shown = {"unit": self.scan.unit_to_dict(self.unit)} if self.unit is not None else {}
        return {**self.scan.to_dict(self.top), **shown}


@dataclass
class Description:
    """What `charnext inspect` shows: a checkpoint's contents as plain data."""

    info: dict

    def to_dict(self) -> dict:
        """Plain values, for JSON: exactly `charnext inspect --json`."""
        return self.info

    def model_rows(self) -> list[tuple[str, str]]:
        """The model's labelled rows, as `inspect` shows them (and the web page's card)."""
        from charnext.storage.describe import model_rows

        return model_rows(self.info)


@dataclass
class ExportResult:
    """What `charnext export` wrote: the inference-only file, and how it compares."""

    path: Path  # the file written
    size: int  # its bytes
    checkpoint_size: int  # the bytes of the checkpoint it came from

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return {"path": str(self.path), "size": self.size, "checkpoint_size": self.checkpoint_size}
