"""The divergence guard: stop a run whose loss explodes, before it saves diverged weights.

The rule (constants below), measured on 56 runs of 120 steps (rnn, gru, lstm; fp32 and bf16;
verse, names in line mode, Korean; learning rates 0.003 to 1e6; see docs/architecture.md):

1. A step whose gradients are not finite is skipped (weights and optimizer untouched), at any
   precision: under bf16 one overflowing batch then costs one step, not the run.
   MAX_SKIPPED_STEPS such steps in a row mean the weights themselves are broken: diverged.
2. The training loss, smoothed over about ten steps, rising more than RISE untrained losses
   above its best: diverged. Healthy runs (every run at lr <= 0.1) never rose more than 0.047
   untrained losses above their best; runs that spiked and recovered, 0.84 to 1.38; runs that
   lost what they had learned, over 1.5 (up to 10^4 at lr 1e6).
3. A validation loss that is not finite: diverged. One above the untrained model's (with
   VAL_TOLERANCE for the noise of an early validation): that model is not saved, and a run
   that ends on such a validation (or is stopped after it) is diverged.

The untrained model's loss is the larger of ln(vocabulary size), what a uniform guess scores,
and the run's first training loss.
"""

from __future__ import annotations

import math

from charnext.errors import TrainingDiverged

SMOOTHING = 0.1  # weight of the newest step in the smoothed loss (about the last 10 steps)
RISE = 1.5  # diverged when the smoothed loss exceeds its best by RISE x the untrained loss
MAX_SKIPPED_STEPS = 3  # non-finite steps in a row that end the run
VAL_TOLERANCE = 0.05  # a validation loss may exceed the untrained loss by 5% (noise) only


class DivergenceGuard:
    """Watches the losses of a run; `check` raises TrainingDiverged when the rule fires."""

    def __init__(self, vocab_size: int):
        self.untrained = math.log(max(vocab_size, 2))  # raised to the first step's loss
        self.smoothed: float | None = None
        self.best: float | None = None  # lowest smoothed loss so far
        self.bad_in_a_row = 0
        self.first_seen = False

    def to_dict(self) -> dict:
        """Plain values, for a resumable checkpoint."""
        return {"untrained": self.untrained, "smoothed": self.smoothed, "best": self.best,
                "first_seen": self.first_seen}  # fmt: skip

    def restore(self, state: dict | None) -> None:
        """Continue from `to_dict()`'s values (none: an older checkpoint; start afresh)."""
        if isinstance(state, dict):
            self.untrained = float(state.get("untrained", self.untrained))
            self.smoothed, self.best = state.get("smoothed"), state.get("best")
            self.first_seen = bool(state.get("first_seen", True))

    def check(self, step: int, loss: float, lr: float) -> None:
        """After a training step with loss `loss` (NaN for a skipped step); `lr` is the peak rate."""
        if not math.isfinite(loss):
            self.bad_in_a_row += 1
            if self.bad_in_a_row >= MAX_SKIPPED_STEPS:
                raise TrainingDiverged(self._message(step, loss, lr))
            return
        self.bad_in_a_row = 0
        if not self.first_seen:
            self.first_seen = True
            self.untrained = max(self.untrained, loss)
        self.smoothed = loss if self.smoothed is None else (1 - SMOOTHING) * self.smoothed + SMOOTHING * loss
        self.best = self.smoothed if self.best is None else min(self.best, self.smoothed)
        if self.smoothed > self.best + RISE * self.untrained:
            raise TrainingDiverged(self._message(step, loss, lr))

    def check_validation(self, step: int, val_loss: float, lr: float) -> bool:
        """Whether a model with validation loss `val_loss` may be saved: not when it is above the
        untrained model's (a spike the run may still recover from). Not finite: diverged."""
        if not math.isfinite(val_loss):
            raise TrainingDiverged(self._message(step, val_loss, lr, "validation loss"))
        return val_loss <= self.untrained * (1 + VAL_TOLERANCE)

    def refuse_to_save(self, step: int, val_loss: float, lr: float) -> None:
        """The run ends on a validation loss above the untrained model's: diverged."""
        raise TrainingDiverged(self._message(step, val_loss, lr, "validation loss"))

    def _message(self, step: int, loss: float, lr: float, what: str = "loss") -> str:
        best = f"{self.best:.4g}" if self.best is not None else "none"
        return (
            f"training diverged at step {step}: {what} {loss:.4g} nats/char (best smoothed {best}); "
            f"try a lower --lr than {lr:.3g}"
        )
