"""What a training run reports: small event dataclasses and the final result, free of torch.

The loop (`charnext.training.trainer`) yields these; the views (`rendering/`) and the command line
import them without loading torch, so the front end is typed and tells events apart with `isinstance`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from charnext.text.paths import absolute_path

_DESCRIBED = {"steps": "step budget reached", "max-time": "time budget reached",
              "annealed": "validation turned up: annealed, then stopped",
              "patience": "no validation improvement (patience)", "interrupted": "Ctrl-C"}  # fmt: skip


class StopReason(str, Enum):
    """Why a run ended (`TrainResult.reason`); a str, so that JSON and comparisons keep the word."""

    steps = "steps"  # the step budget (--steps, --epochs) was reached
    max_time = "max-time"  # the time budget (--max-time) was reached
    annealed = "annealed"  # under a time budget, validation turned up; the run annealed and ended
    patience = "patience"  # validation stopped improving (--patience)
    interrupted = "interrupted"  # Ctrl-C: saved, resumable

    @property
    def described(self) -> str:
        """The reason as the summary says it."""
        return _DESCRIBED[self.value]

    @classmethod
    def describe(cls, reason: str) -> str:
        """`reason` as the summary says it (a word this version does not know: as it is)."""
        try:
            return cls(reason).described
        except ValueError:
            return reason


@dataclass
class StepEvent:
    """After every optimizer step."""

    step: int  # steps done
    total: int | None  # planned steps (None under a time budget)
    fraction: float  # share of the run done, 0..1
    loss: float  # training loss of this step, nats/char
    lr: float  # learning rate used
    chars_per_sec: float  # training characters over training time, recent steps (see TrainResult)
    elapsed: float  # seconds since training started (this session)
    val_loss: float | None  # latest validation loss
    seconds: float  # this optimizer step alone (forward, backward, update), as train_time counts it
    val_se: float | None = None  # the latest validation loss's standard error


@dataclass
class RowEvent:
    """A row of the lecture's table: loss, accuracy and decoded prediction of a fixed window."""

    step: int
    loss: float  # training loss at this step
    accuracy: float  # next-character accuracy on the step's batch
    prediction: str  # decoded argmax prediction for the window
    target: str  # the window's true next characters


@dataclass
class EvalEvent:
    """After each validation."""

    step: int
    val_loss: float  # nats/char on the run's fixed sample of the validation part
    val_bpc: float  # bits/char
    val_accuracy: float
    best: bool  # a new best validation loss (the best checkpoint holds these weights)
    prompt: str  # the prompt of the preview
    sample: str  # a short sampled continuation of the prompt (fixed seed)
    val_se: float | None = None  # standard error of val_loss over the sample's windows, nats/char
    val_chars: int = 0  # characters scored: the run's fixed sample of the validation part


Event = StepEvent | RowEvent | EvalEvent


@dataclass
class EvalResult:
    """How well a model predicts a text."""

    loss: float  # mean negative log-likelihood, nats per character
    accuracy: float  # fraction of characters predicted exactly (argmax)
    characters: int  # characters scored

    @property
    def bits_per_char(self) -> float:
        """Loss in bits per character."""
        return self.loss / math.log(2)

    @property
    def perplexity(self) -> float:
        """exp(loss)."""
        return math.exp(min(self.loss, 700.0))

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return {
            "loss": self.loss,
            "bits_per_char": self.bits_per_char,
            "perplexity": self.perplexity,
            "accuracy": self.accuracy,
            "characters": self.characters,
        }


@dataclass
class Score(EvalResult):
    """How well a model predicts some windows of a text (pieces of it, or lines), with the
    standard error of the loss over those windows: how far another sample of windows like them
    would probably move it."""

    windows: int = 0  # windows (lines) scored
    se: float | None = None  # standard error of `loss`, nats/char (None: fewer than two windows)

    def result(self) -> EvalResult:
        """The plain EvalResult (loss, accuracy, characters)."""
        return EvalResult(self.loss, self.accuracy, self.characters)


def plus_minus(se) -> str:
    """' ± 0.022': a loss's standard error after it ('' where there is none)."""
    ok = isinstance(se, (int, float)) and not isinstance(se, bool) and math.isfinite(se)
    return f" ± {se:.3f}" if ok else ""


def scored_words(scored, whole) -> str:
    """'all 111,538 held-out characters', 'a sample of 200,000 held-out characters': what a
    validation figure scored ('' where unknown: a checkpoint written before it was recorded)."""
    if not isinstance(scored, int) or isinstance(scored, bool) or scored <= 0:
        return ""
    return f"{'all' if whole is True else 'a sample of'} {scored:,} held-out characters"


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports.

    `chars_per_sec` is training characters over training time: the time spent in optimizer
    steps (forward, backward, update), excluding validation, previews and checkpoint writes.
    `train_time` is that time; `elapsed` is the whole wall-clock time of the run.
    """

    steps: int  # total optimizer steps of the run, resumed ones included
    elapsed: float  # wall-clock seconds of the run, resumed sessions included
    loss: float  # last training loss
    accuracy: float  # accuracy on the last batch
    val_loss: float | None  # final validation loss (of the latest weights; see val_scored)
    best_val_loss: float | None  # the best check's, on the checks' fixed sample
    chars_per_sec: float  # training characters / train_time, this session
    reason: str  # a StopReason's value: "steps", "max-time", "annealed", "patience" or "interrupted"
    checkpoint: Path | None  # the latest checkpoint (None: none written)
    best_checkpoint: Path | None  # the best-by-validation checkpoint, only if the file exists
    device: str
    precision: str
    parameters: int
    train_chars: int
    val_chars: int
    train_time: float = 0.0  # seconds spent in optimizer steps this session
    batch_size: int = 0  # windows (lines) per step over all processes, as used
    seq_len: int = 0  # characters per window, as used
    threads: int = 0  # CPU threads each process used for torch
    metrics_log: Path | None = None  # the JSON Lines metrics log, if one was written
    skipped_steps: int = 0  # steps skipped because their gradients were not finite
    plan: dict | None = None  # what the planner chose and why (charnext.training.planner.Plan), if it ran
    outlook: dict | None = None  # what more time would buy (charnext.training.outlook.Outlook), if known
    averaging: dict | None = None  # the weight average (EMA): settings, best validation live and averaged
    session_steps: int = 0  # optimizer steps made in this session (less than `steps` after --resume)
    session_elapsed: float = 0.0  # wall-clock seconds of this session
    val_se: float | None = None  # standard error of val_loss over the windows it scored, nats/char
    val_scored: int = 0  # characters val_loss scored (all of the held-out part where val_all)
    val_all: bool = False  # whether val_loss scored all of the held-out part
    best_val_se: float | None = None  # standard error of best_val_loss (on the checks' sample)
    best_step: int | None = None  # the step of the best check
    sample_chars: int = 0  # characters of the fixed sample every check scored (0: no check)
    checks: int = 0  # checks of the held-out part in the run, resumed sessions included
    # where validation turned up and the run annealed: {step, at, until (run seconds), lr,
    # val_loss, best_val_loss}; None where it did not
    turn: dict | None = None

    def to_dict(self) -> dict:
        """Plain values, for JSON (a figure that is not a number, e.g. no step made, is None)."""
        d = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in asdict(self).items()}
        for key in ("checkpoint", "best_checkpoint", "metrics_log"):
            d[key] = absolute_path(d[key]) if d[key] is not None else None
        return d
