"""What the API is asked and what it answers: request records and typed results, each result
with the `to_dict()` that is its command's `--json` (so the view and the JSON cannot drift)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from charnext.config import SampleConfig
from charnext.errors import ConfigError
from charnext.events import EvalResult
from charnext.inference.steps import StepPrediction

if TYPE_CHECKING:
    from charnext.inference.surprise import Surprise


def check_counts(length: int, num_samples: int) -> None:
    """The one check of how much to draw: a length of 0 or more, at least one sample."""
    if length < 0 or num_samples < 1:
        raise ConfigError("the length (--length) must be 0 or more and the samples (--num-samples) 1 or more")


@dataclass(frozen=True)
class PredictRequest:
    """What `charnext predict` asks: a prefix to read, and what to draw past it."""

    prefix: str = ""  # read one character at a time
    length: int = 0  # characters drawn past the prefix (0: none)
    sample: SampleConfig | None = None  # how they are drawn
    num_samples: int = 1  # continuations drawn
    alternatives: int = 3  # most likely characters shown per step
    skip_unknown: bool = False  # drop the characters the vocabulary lacks instead of refusing them
    generated_steps: bool = False  # also the per-step predictions over the first continuation

    def __post_init__(self) -> None:
        if self.alternatives < 1:
            raise ConfigError(f"--alternatives must be at least 1, not {self.alternatives}")
        check_counts(self.length, self.num_samples)


@dataclass
class PredictResult:
    """Per-step predictions for a prefix."""

    steps: list[StepPrediction]  # one per prefix character
    skipped: list[str] = field(default_factory=list)  # unknown characters dropped from the prefix

    @property
    def prefix(self) -> str:
        """The prefix as read: without the characters that were skipped."""
        return "".join(s.input for s in self.steps)

    @property
    def prediction(self) -> str:
        """The decoded prediction after each step (`ihello` for `hihell`)."""
        return "".join(s.predicted for s in self.steps)

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return {
            "prefix": self.prefix,
            "prediction": self.prediction,
            "steps": [
                {
                    "input": s.input,
                    "predicted": s.predicted,
                    "probability": s.probability,
                    "top": [{"char": c, "probability": p} for c, p in s.top],
                }
                for s in self.steps
            ],
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
class Evaluation(EvalResult):
    """How well a checkpoint predicts a text (an `EvalResult`), and the characters skipped."""

    skipped: int = 0  # characters dropped because the vocabulary lacks them
    skipped_chars: list[str] = field(default_factory=list)
    training_val_loss: float | None = None  # the model's own validation loss, from training
    unigram_loss: float | None = None  # loss of the training text's character frequencies alone

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return {
            **super().to_dict(),
            "skipped": self.skipped,
            "skipped_chars": self.skipped_chars,
            "training_val_loss": self.training_val_loss,
            "unigram_loss": self.unigram_loss,
        }


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
