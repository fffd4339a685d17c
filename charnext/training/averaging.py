"""An exponential moving average (EMA) of the weights over the end of a run, validated beside
the live weights; the best checkpoint keeps whichever scores better.

The average costs nothing at inference (it is a set of weights of the same model) and little in
training: it is updated every `EVERY` steps with one fused `torch._foreach_lerp_` over the
parameters, only once the run is `START` of the way through (the weights of its first half are
far from where it ends). The first updates are a plain running mean (weight 1/n), so the average
is usable at once; then each update moves it `1 - DECAY` of the way to the live weights: with
DECAY 0.98 every 4 steps it averages over about the last 200 steps (its time constant).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

EVERY = 4  # steps between updates: the average changes slowly, so updating each step buys nothing
DECAY = 0.98  # per update: a time constant of EVERY / (1 - DECAY) = 200 steps
START = 0.5  # share of the run done before the average starts
MIN_UPDATES = 10  # updates before the average is validated (a mean of 40 steps' weights)


class WeightAverage:
    """The EMA of a model's parameters (float32, on the model's device)."""

    def __init__(self, model: torch.nn.Module):
        self.params = [p for p in model.parameters()]
        self.shadow: list[torch.Tensor] | None = None  # None until the first update
        self.updates = 0

    def due(self, step: int, fraction: float) -> bool:
        """Whether to update after `step`, `fraction` of the way through the run."""
        return fraction >= START and step % EVERY == 0

    def update(self) -> None:
        """Move the average towards the live weights (a running mean for the first updates)."""
        live = [p.detach() for p in self.params]
        if self.shadow is None:
            self.shadow = [p.float().clone() for p in live]
        else:
            weight = max(1.0 - DECAY, 1.0 / (self.updates + 1))
            torch._foreach_lerp_(self.shadow, [p.float() for p in live], weight)
        self.updates += 1

    def ready(self) -> bool:
        """Whether the average has seen enough updates to be worth validating."""
        return self.shadow is not None and self.updates >= MIN_UPDATES

    @contextmanager
    def applied(self) -> Iterator[None]:
        """The model holds the averaged weights inside the block and its own weights, bit for
        bit, after it."""
        assert self.shadow is not None
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.shadow)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, saved)

    def state(self) -> dict:
        """What a resumed run needs, for the checkpoint."""
        return {"updates": self.updates, "shadow": list(self.shadow) if self.shadow is not None else None}

    def restore(self, saved: dict | None) -> None:
        """Back to the average `state()` recorded (nothing recorded: none yet)."""
        if not isinstance(saved, dict) or saved.get("shadow") is None:
            return
        device = self.params[0].device
        self.shadow = [t.float().to(device).clone() for t in saved["shadow"]]
        self.updates = int(saved.get("updates", 0))

    @staticmethod
    def describe() -> dict:
        """The averaging's settings, for the checkpoint's provenance."""
        return {"kind": "ema", "decay": DECAY, "every": EVERY, "start": START}
