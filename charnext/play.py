"""A typing session with a model: the text so far and the model's next-character probabilities,
updated one character at a time (the core of `charnext play`; the terminal side is play_ui.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from charnext.checkpoint import Checkpoint
from charnext.inference import read, softmax


@dataclass
class _Step:
    """The model after one more character: its state and its next-character distribution."""

    state: Any  # the model's state (L, 1, S); None before anything was read
    probs: torch.Tensor | None  # (V,) next-character probabilities; None when nothing was read


class PlaySession:
    """The text typed so far and what the model expects next. Every character costs one step of
    the model with its state carried; deleting one goes back to the state before it."""

    def __init__(self, ckpt: Checkpoint, seed: int = 0):
        self.model, self.vocab = ckpt.model, ckpt.vocab
        self.model.eval()
        self.start = ckpt.start  # where reading begins: the prime, and line mode's reset
        self.text = ""
        self.generator = torch.Generator().manual_seed(seed)
        self._steps = [self._feed(_Step(None, None), "")]

    def _feed(self, step: _Step, text: str) -> _Step:
        """The model after reading `text` on from `step` (from the start, before anything)."""
        logits, state = read(self.model, self.vocab, text, self.start, state=step.state)
        if logits is None:  # nothing read and no prime: no prediction yet
            return _Step(None, None)
        return _Step(state, torch.from_numpy(softmax(logits[0, -1])))

    def top(self, k: int = 5) -> list[tuple[str, float]]:
        """The k most likely next characters and their probabilities, best first ([] before
        the first character of a stream model: it predicts only after reading)."""
        probs = self._steps[-1].probs
        if probs is None:
            return []
        p, i = probs.topk(min(k, len(self.vocab)))
        return [(self.vocab.chars[j], q) for j, q in zip(i.tolist(), p.tolist())]

    def type(self, ch: str) -> bool:
        """Add one character; False (and nothing changes) when the vocabulary lacks it."""
        if ch not in self.vocab:
            return False
        self._steps.append(self._feed(self._steps[-1], ch))
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

    def generate(self, n: int, temperature: float = 0.8) -> str:
        """Add `n` characters drawn from the model (temperature 0: always the most likely)."""
        out = []
        for _ in range(n):
            probs = self._steps[-1].probs
            if probs is None:
                break
            if temperature == 0:
                j = int(probs.argmax())
            else:
                weights = probs.clamp_min(1e-30).log() / temperature
                j = int(torch.multinomial(torch.softmax(weights, dim=-1), 1, generator=self.generator))
            ch = self.vocab.chars[j]
            self.type(ch)
            out.append(ch)
        return "".join(out)
