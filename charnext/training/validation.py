"""How a run checks itself on its held-out part, and what the checks cost.

Periodic checks score a fixed sample of the held-out part: the same characters every time (the
first characters of a stream's held-out part, the first held-out lines of a line corpus, which
are a seeded random sample), so that any two of them compare like for like. Its size is set
once, before the first check, so that one check costs about `CHECK_SHARE` of the run; the
checkpoint keeps it, so a resumed run scores the same characters. The final check scores all of
the held-out part, under every kind of budget; the figures the summary compares (the final
weights and the best, live and averaged) come from the same characters.

A check's noise is the standard error of its mean loss over independent pieces (the 32 rows a
stream is scored in, or the lines), recorded with the sample's size.
"""

from __future__ import annotations

import torch

# A periodic check costs about this share of the run's training time.
CHECK_SHARE = 0.005
# Scoring a character costs about this share of training on one (forward only, in parallel rows);
# measured during the run once a check has been timed.
FORWARD_COST = 1 / 3
MIN_SAMPLE_CHARS = 4_000  # below this a check's noise (about 0.03 nats/char) says little
# What follows the last step besides the final checks: the checkpoint write is timed at each
# check (this estimate holds until then: bytes at a modest disk speed), the summary and exit.
SAVE_BYTES_PER_SECOND = 300e6
EXIT_SECONDS = 0.3


def sample_chars(run_chars: float, val_chars: int) -> int:
    """Characters of the fixed sample for a run expected to train on `run_chars` characters:
    a check then costs CHECK_SHARE of the run (at least MIN_SAMPLE_CHARS, at most all)."""
    wanted = int(CHECK_SHARE * run_chars / FORWARD_COST)
    return max(1, min(val_chars, max(MIN_SAMPLE_CHARS, wanted)))


def expected_save_seconds(parameters: int, with_optimizer: bool = True) -> float:
    """A checkpoint write before one has been timed: the weights (and AdamW's two moments)."""
    copies = 3 if with_optimizer else 1
    return 0.05 + parameters * 4 * copies / SAVE_BYTES_PER_SECOND


def score_all(trainer, last_sample: float | None) -> tuple[float | None, float | None]:
    """The final check: the final weights and the best on all of the held-out part (the
    same characters for both). Where the sample is all of it, the checks already said."""
    rec = trainer.record
    if rec.val_sample_chars is not None and rec.val_sample_chars >= trainer.val_chars:
        return last_sample, rec.best_val_loss
    final = trainer._timed_score(None).loss
    latest_is_best = rec.best_weights == "live" and rec.history["val_loss"][-1:] == [rec.best_val_loss]
    if trainer._best_copy is None or latest_is_best:
        return final, final if latest_is_best else rec.best_val_loss
    params = list(trainer.model.parameters())
    saved = [p.detach().clone() for p in params]
    with torch.no_grad():
        torch._foreach_copy_(params, trainer._best_copy)
        try:
            best = trainer.evaluate_validation(None).loss
        finally:
            torch._foreach_copy_(params, saved)
    return final, best
