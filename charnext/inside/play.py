"""A typing session with a model: the text so far and the model's next-character probabilities,
updated one character at a time (the core of `charnext play`; the terminal side is
charnext.rendering.play_ui). It runs on a runner, so on the numpy engine no torch is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from charnext.config import SampleConfig
from charnext.inference.sampling import Sampler
from charnext.inference.steps import Readable, read, softmax, top_of


@dataclass
class _Step:
    """The model after one more character: its state and its next-character distribution."""

    state: Any  # the runner's state; None before any character
    probs: np.ndarray | None  # (V,) next-character probabilities; None when nothing was read


class PlaySession:
    """The text typed so far and what the model expects next. Every character costs one step of
    the model with its state carried; deleting one goes back to the state before it."""

    def __init__(self, model: Readable, sample: SampleConfig | None = None):
        self.model, self.vocab = model, model.vocab  # reading begins at its start: the prime, line mode
        self.draw = Sampler(sample or SampleConfig(temperature=0.8, seed=0))  # what generate draws with
        self.text = ""
        self._steps = [self._feed(_Step(None, None), "")]

    def _feed(self, step: _Step, text: str) -> _Step:
        """The model after reading `text` on from `step` (from the start, before anything)."""
        logits, state = read(self.model, text, state=step.state)
        if logits is None:  # nothing read and no prime: no prediction yet
            return _Step(None, None)
        return _Step(state, softmax(logits[0, -1]))

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely next characters and their probabilities, best first ([] before
        the first character of a stream model: it predicts only after reading)."""
        probs = self._steps[-1].probs
        return [] if probs is None else top_of(probs[None], self.vocab, k)[0]

    def type(self, ch: str) -> bool:
        """Add one character; False (and nothing changes) when the vocabulary lacks it."""
        if ch not in self.vocab:
            return False
        self._steps.append(self._feed(self._steps[-1], ch))  # a line-mode newline starts afresh
        self.text += ch
        return True

    def backspace(self) -> None:
        """Remove the last character, and the model's state goes back with it."""
        if self.text:
            self.text = self.text[:-1]
            self._steps.pop()

    def accept(self) -> str | None:
        """Add the most likely next character; it, or None before the model predicts anything."""
        top = self.top(1)
        if not top:
            return None
        self.type(top[0][0])
        return top[0][0]

    def generate(self, n: int) -> str:
        """Add up to `n` characters drawn from the model with the session's sampling settings
        (temperature, top-k, top-p; seeded once per session)."""
        out = []
        for _ in range(n):
            probs = self._steps[-1].probs
            if probs is None:
                break
            logits = np.log(np.maximum(probs, 1e-30))[None]  # (1, V): log-probabilities draw the same
            ch = self.vocab.chars[int(self.draw(logits)[0])]
            self.type(ch)
            out.append(ch)
        return "".join(out)
