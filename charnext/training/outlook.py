"""What more time would buy, read from a run's validation curve: one of three measured cases.

1. **overfit**: the best validation came before the end, and the end is clearly worse
   (by more than `OVERFIT_RISE`): the rest of the run overfit; the best checkpoint holds that step.
2. **improving**: over the last `LAST_SHARE` of the run's steps the validation loss still fell
   by more than `LEVEL_CHANGE`: more time (or a larger budget) would probably help.
3. **level**: neither; the validation loss moved less than `LEVEL_CHANGE` over that last part.
4. **turned**: under a time budget the validation turned up, and the run went back to its best
   state (where it held one) and annealed to its end (charnext.training.schedule): what the
   curve did after that is the anneal, and more time at this plan would not help.

It states what was measured, not a promise: a cosine schedule ends at a low learning rate,
so the last part of a run always improves a little; the thresholds ask for more than that.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

# A change smaller than this (nats/char) is "level": repeating a 90-second run on tinyshakespeare
# moves its best validation by about 0.015 (docs/planning.md), and one run's curve is steadier
# than two runs, so a change of 0.01 within one run is the smallest worth naming.
LEVEL_CHANGE = 0.01
# The end scores this much (nats/char) above the best before "overfit" is said: the same noise.
OVERFIT_RISE = 0.01
# The last part of the run the trend is read over: its last quarter of steps.
LAST_SHARE = 0.25
MIN_VALIDATIONS = 3  # fewer validations than this say nothing about a trend


@dataclass
class Outlook:
    """The validation curve's verdict on more time: recorded in the checkpoint and the JSON."""

    kind: str  # "improving", "overfit" or "level"
    steps: int  # steps of the run (at its last validation)
    best_step: int  # the step of the best validation
    best_val_loss: float  # nats/char
    last_val_loss: float  # the last validation, nats/char
    change: float  # validation change over the last LAST_SHARE of the run, nats/char (negative: fell)
    line: str  # the sentence the summary and inspect show

    def to_dict(self) -> dict:
        """Plain values, for the checkpoint's provenance and JSON."""
        return asdict(self)


def read_outlook(
    val_steps: list[int], val_losses: list[float], best_name: str = "*.best.pt", turn: dict | None = None
) -> Outlook | None:
    """The outlook of a run whose validations at `val_steps` scored `val_losses`; None with fewer
    than MIN_VALIDATIONS finite validations. `best_name` is how the line names the best checkpoint;
    `turn` is where the run's validation turned up (charnext.training.state.RunState.turn), if it did."""
    points = [
        (s, v) for s, v in zip(val_steps, val_losses) if isinstance(v, (int, float)) and math.isfinite(v)
    ]
    if len(points) < MIN_VALIDATIONS:
        return None
    last_step, last = points[-1]
    best_step, best = min(points, key=lambda p: p[1])
    # the validation at or before the start of the last part (the first one if none is)
    start = last_step * (1 - LAST_SHARE)
    before = [v for s, v in points if s <= start]
    change = min(v for s, v in points if s > start) - (before[-1] if before else points[0][1])
    figures = dict(
        steps=last_step, best_step=best_step, best_val_loss=best, last_val_loss=last, change=change
    )
    if turn is not None:
        back = f" went back to step {turn['back_to']:,}," if turn.get("back_to") is not None else ""
        line = (
            f"validation turned up at step {turn['step']:,}; the run{back} annealed and ended at "
            f"{last:.4f}: more time would not help this plan (best {best:.4f} at step {best_step:,})"
        )
        return Outlook("turned", line=line, **figures)
    if best_step < last_step and last - best > OVERFIT_RISE:
        line = (
            f"best validation {best:.4f} at step {best_step:,} of {last_step:,}; the rest overfit "
            f"(the last scored {last:.4f}): {best_name} holds step {best_step:,}"
        )
        return Outlook("overfit", line=line, **figures)
    share = f"the last {LAST_SHARE:.0%} of the run"
    if change < -LEVEL_CHANGE:
        line = (
            f"still improving at the end: validation fell {-change:.4f} nats/char over {share}; "
            "more time or a larger budget would help"
        )
        return Outlook("improving", line=line, **figures)
    line = f"level: validation moved {abs(change):.4f} nats/char over {share} (best {best:.4f})"
    return Outlook("level", line=line, **figures)
