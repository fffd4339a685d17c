"""The run's state: one record the loop reads and writes, and its one clock.

`RunState` is what a run is at any moment, as nanoGPT's `train.py` keeps it in a few names:
the step, the seconds trained, the history, the best validation, when the latest validation
was, and each change the run made to its plan's regularisation. Saving turns it into the
checkpoint's resume section in one step (`to_resume`), restoring back in one step
(`from_checkpoint`). The objects the loop also continues (the weights, the optimizer, the
random state, the carried recurrent state, the divergence guard, the weight average) are saved
beside it by `charnext.training.run_state`.

`Session` holds what one session (a resumed run is a new session) shows and reports but never
saves: its latest figures and the speed of the progress line.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields

RATE_WINDOW = 2.0  # seconds of steps over which the progress line's chars/s is measured
HISTORY_KEYS = ("step", "loss", "accuracy", "lr", "val_step", "val_loss", "val_accuracy", "val_se")
# fields kept elsewhere in the checkpoint: the step and history at its top level, the changes
# of regularisation in its provenance beside the plan they changed
NOT_IN_RESUME = ("step", "history", "replans", "started")


def new_history() -> dict[str, list]:
    """An empty history: per step (step, loss, accuracy, lr) and per check of the held-out
    part (its step, loss, accuracy and the loss's standard error, on the run's fixed sample)."""
    return {key: [] for key in HISTORY_KEYS}


@dataclass
class RunState:
    """Everything the loop changes. The field names are the resume section's keys."""

    step: int = 0  # optimizer steps made
    elapsed: float = 0.0  # seconds of the run before this session (see `seconds`)
    history: dict = field(default_factory=new_history)
    best_val_loss: float | None = None  # the best validation (of live or averaged weights)
    evals_since_best: int = 0  # validations since the best one (for --patience)
    skipped_steps: int = 0  # steps whose gradients were not finite
    best_val_loss_live: float | None = None  # the best validation of the live weights
    best_val_loss_average: float | None = None  # and of their average
    best_weights: str = "live"  # the weights of the best validation: "live" or "average"
    best_val_se: float | None = None  # the standard error of the best validation's loss
    best_step: int | None = None  # the step of the best validation
    last_eval_step: int = 0  # the step of the latest validation
    last_eval_at: float = 0.0  # run seconds at the start of the latest validation
    eval_seconds: float = 0.0  # how long the latest validation took, with its save and preview
    # the held-out characters every check scores (charnext.training.validation.Sample), chosen
    # at the run's first check; None before it, and in a checkpoint written before there was one
    val_sample: dict | None = None
    # each change of the plan's dropout, weight decay and weight drop during the run: {step,
    # passes, dropout, weight_decay, weight_drop}, the plan itself kept as chosen at the start
    replans: list = field(default_factory=list)
    # where a time-budgeted run's validation turned up and it anneals to its end: {step, at, until
    # (run seconds), lr, val_loss, best_val_loss} (charnext.training.schedule.Schedule.turn); None
    # before a turn, or without one
    turn: dict | None = None
    # perf_counter at this session's start; None while no session runs (not saved)
    started: float | None = field(default=None, compare=False, repr=False)

    def seconds(self) -> float:
        """The run's clock: seconds trained so far, earlier sessions included."""
        running = time.perf_counter() - self.started if self.started is not None else 0.0
        return self.elapsed + running

    def start(self) -> None:
        """Start this session's clock."""
        self.started = time.perf_counter()

    def stop(self) -> float:
        """Stop the clock (its seconds are added to `elapsed`); the session's seconds."""
        session = time.perf_counter() - self.started if self.started is not None else 0.0
        self.elapsed, self.started = self.elapsed + session, None
        return session

    def to_resume(self) -> dict:
        """The checkpoint's resume section (the step, history and replans go elsewhere)."""
        saved = {k: v for k, v in asdict(self).items() if k not in NOT_IN_RESUME}
        saved["elapsed"] = self.seconds()
        return saved

    @classmethod
    def from_checkpoint(cls, raw: dict) -> RunState:
        """The state a loaded checkpoint saved; a field an older checkpoint lacks keeps its
        default (the latest validation's end: this session's start, as for a new session), and
        one it has that this version does not know is ignored."""
        resume = raw.get("resume") or {}
        known = {f.name for f in fields(cls)} - set(NOT_IN_RESUME)
        values = {k: v for k, v in resume.items() if k in known and v is not None}
        history = new_history()
        history.update({k: list(v) for k, v in (raw.get("history") or {}).items()})
        missing = len(history["val_step"]) - len(history["val_se"])  # checks recorded without one
        history["val_se"] = [None] * max(0, missing) + history["val_se"]
        replans = (raw.get("provenance") or {}).get("replans")
        state = cls(step=int(raw["step"]), history=history, **values)
        state.replans = [dict(r) for r in replans] if isinstance(replans, list) else []
        state.elapsed = float(state.elapsed)
        state.evals_since_best = int(state.evals_since_best)
        state.skipped_steps = int(state.skipped_steps)
        state.best_weights = str(state.best_weights)
        state.last_eval_step = int(state.last_eval_step)
        state.best_step = int(state.best_step) if state.best_step is not None else None
        state.last_eval_at = float(resume.get("last_eval_at", state.elapsed) or 0.0)
        state.eval_seconds = float(state.eval_seconds)
        state.val_sample = dict(state.val_sample) if isinstance(state.val_sample, dict) else None
        state.turn = _turn(state.turn)
        return state


def _turn(saved) -> dict | None:
    """A saved turn, if whole: its times and learning rate finite numbers (else none, as if the
    run had not turned)."""
    if not isinstance(saved, dict):
        return None
    numbers = [saved.get(k) for k in ("step", "at", "until", "lr")]
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
        return None
    return dict(saved)


@dataclass
class Session:
    """One session of a run: its latest figures (a session that makes no step reports them as
    they were) and the progress line's speed. Never saved."""

    start_step: int  # the run's step at the session's start
    loss: float  # the latest step's training loss
    accuracy: float  # and accuracy
    last_val: float | None  # the latest validation loss
    reason: str = "steps"  # what ended the session
    train_time: float = 0.0  # seconds in optimizer steps
    last_row_fraction: float = 0.0  # share of the run done at the latest table row
    seconds: float = 0.0  # wall-clock seconds of the session, once it has ended
    rate: float = 0.0  # the progress line's chars/s, measured over RATE_WINDOW
    rate_time: float = 0.0
    rate_chars: int = 0

    @classmethod
    def begin(cls, run: RunState) -> Session:
        """A session continuing `run` (whose clock it starts)."""
        h = run.history
        last = lambda key: h[key][-1] if h[key] else math.nan  # noqa: E731
        run.start()
        return cls(run.step, last("loss"), last("accuracy"), h["val_loss"][-1] if h["val_loss"] else None)

    def end(self, run: RunState) -> None:
        """Stop `run`'s clock; the session's seconds are kept."""
        self.seconds = run.stop()

    def count(self, seconds: float, chars: int) -> float:
        """Add one step's time and characters; the chars/s to show."""
        self.train_time += seconds
        self.rate_time, self.rate_chars = self.rate_time + seconds, self.rate_chars + chars
        if self.rate_time >= RATE_WINDOW or not self.rate:
            self.rate, self.rate_time, self.rate_chars = self.rate_chars / max(self.rate_time, 1e-9), 0.0, 0
        return self.rate
