"""Per-step predictions: the model's next-character probabilities after every character it reads.

`step_probs` is the one path from characters to probabilities: predict's table, the surprise
view, the report and play all read them here, from a runner (charnext.modeling.runner) on
either engine. Drawing the next character from them is charnext.inference.sampling's job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from charnext.config import SampleConfig
from charnext.modeling.runner import Runner, as_runner
from charnext.text.vocab import Vocab

if TYPE_CHECKING:
    from charnext.modeling.model import CharModel

__all__ = ["SampleConfig", "StepPrediction", "predict_steps", "step_probs", "top_of"]


@dataclass
class StepPrediction:
    """What the model predicts after reading one input character."""

    input: str  # the character read at this step
    predicted: str  # the most likely next character
    probability: float  # its probability
    top: list[tuple[str, float]] = field(default_factory=list)  # k most likely, best first
    target: str | None = None  # the actual next character, where known


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (float64) along the last axis."""
    z = logits.astype(np.float64)
    z -= z.max(axis=-1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=-1, keepdims=True)
    return z


def step_probs(
    runner: Runner | CharModel, vocab: Vocab, text: str, state: Any = None
) -> tuple[np.ndarray, Any]:
    """Read `text` (from `state`, or the zero state) in one forward pass: the next-character
    probabilities after each of its characters, (T, V) float64, and the state after the last."""
    logits, state = as_runner(runner).forward(vocab.encode_array(text)[None], state)  # (1, T, V)
    return softmax(logits[0]), state


def top_of(probs: np.ndarray, vocab: Vocab, k: int) -> list[list[tuple[str, float]]]:
    """probs (T, V) -> for each step the k most likely characters with their probabilities, best
    first (ties: the earlier character in the vocabulary first)."""
    k = max(1, min(k, len(vocab)))
    top_i = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # (T, k)
    top_p = np.take_along_axis(probs, top_i, axis=-1)
    chars = vocab.chars
    return [[(chars[i], p) for i, p in zip(ii, pp)] for ii, pp in zip(top_i.tolist(), top_p.tolist())]


def predict_steps(
    runner: Runner | CharModel, vocab: Vocab, prefix: str, top_k: int = 3
) -> list[StepPrediction]:
    """Feed `prefix` and report the prediction after every character (one forward pass)."""
    if not prefix:
        return []
    probs, _ = step_probs(runner, vocab, prefix)
    steps = []
    for t, (ch, top) in enumerate(zip(prefix, top_of(probs, vocab, top_k))):
        target = prefix[t + 1] if t + 1 < len(prefix) else None
        steps.append(StepPrediction(ch, top[0][0], top[0][1], top, target))
    return steps
