"""Loss curves as numbers, for the three views that draw them (the terminal chart of
`inspect`, its `--plot` image and the HTML report): smoothing, and the loss axis."""

from __future__ import annotations

import math
from collections.abc import Iterable


def smooth(values: list[float], span: int | None = None) -> list[float]:
    """An exponential moving average of noisy per-step losses, corrected for its start (as
    TensorBoard's smoothing is) so that the first points are not pulled towards zero.

    `span` is the number of recent steps that carry most of the weight; by default a fortieth of
    the run, so that a curve of any length smooths to about the same look."""
    if not values:
        return []
    span = span or max(1, len(values) // 40)
    decay = 1 - 2 / (span + 1)
    out, avg, weight = [], 0.0, 0.0
    for v in values:
        avg = decay * avg + (1 - decay) * v
        weight = decay * weight + (1 - decay)
        out.append(avg / weight)
    return out


def loss_axis(points: Iterable[tuple[float, float]]) -> tuple[float, float]:
    """The losses a chart of (step, loss) points spans: from the lowest to the highest after the
    first tenth of the steps.

    The untrained model's first losses fall steeply; a scale that fitted them would squash the
    rest of the curve (where training and validation part) into a sliver. Earlier points above
    the scale sit on the chart's top edge, and each chart says so."""
    pts = [(x, y) for x, y in points if math.isfinite(y)]
    if not pts:
        raise ValueError("a loss axis needs at least one finite point")
    x_lo, x_hi = min(x for x, _ in pts), max(x for x, _ in pts)
    first_tenth = x_lo + (x_hi - x_lo) / 10
    late = [y for x, y in pts if x >= first_tenth]
    return min(y for _, y in pts), max(late)
