"""Per-step predictions: the model's next-character probabilities after every character it reads.

`step_probs` is the one path from characters to probabilities: predict's table, the surprise
view, the report and play all read them here, from a runner (charnext.modeling.runner) on
either engine. Drawing the next character from them is charnext.inference.sampling's job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from charnext.config import SampleConfig
from charnext.modeling.runner import Runner, as_runner
from charnext.text.vocab import Vocab

if TYPE_CHECKING:
    pass

__all__ = [
    "Readable", "Reader", "SampleConfig", "Start", "StepPrediction",
    "predict_steps", "read", "start_step", "step_probs", "top_of",
]  # fmt: skip

NEWLINE = "\n"


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


@dataclass(frozen=True)
class Start:
    """Where a model starts reading, the same on every engine (the checkpoint's `start` field).

    The rule, in full: read `prime` from the zero state, showing no prediction for it; then the
    text. A line-mode model (`lines`) also returns to the zero state before each newline it
    reads, so that every line is read as training read it: after a newline, from zero.
    """

    prime: str = ""  # read first, from the zero state; its predictions are not shown
    lines: bool = False  # line mode: the state returns to zero before each newline

    @classmethod
    def of(cls, raw: dict) -> Start:
        """The start a checkpoint's fields record. Checkpoints older than the field start as
        they were trained: a line-mode model after a newline, a stream model from zero."""
        lines = bool((raw.get("train_config") or {}).get("lines"))
        start = raw.get("start")
        if isinstance(start, dict) and isinstance(start.get("prime"), str):
            return cls(start["prime"], lines)
        return cls(NEWLINE if lines else "", lines)

    def to_dict(self) -> dict:
        """Plain values, for the checkpoint."""
        return {"prime": self.prime}


class Readable(Protocol):
    """A model as reading and generating take it: its forward pass, its vocabulary and where it
    starts (its prime and line mode). A loaded checkpoint is one, so no caller can read or
    generate from a model while forgetting its start; training makes a `Reader` of the model
    it trains."""

    @property
    def runner(self) -> Runner: ...

    @property
    def vocab(self) -> Vocab: ...

    @property
    def start(self) -> Start: ...


@dataclass(frozen=True)
class Reader:
    """A Readable of parts: a runner (or a torch CharModel), a vocabulary and a start."""

    model: Any  # a Runner, or a CharModel (wrapped on use)
    vocab: Vocab
    start: Start = field(default_factory=Start)

    @property
    def runner(self) -> Runner:
        return as_runner(self.model)


def read(model: Readable, text: str, n: int = 1, state: Any = None) -> tuple[np.ndarray | None, Any]:
    """Read `text` from the model's start, as `n` identical rows: the logits after each character
    (n, len(text), V) and the state after the last. The one place where reading begins:
    predict, generation, evaluate --show, play, the report and training's view all call it.

    `state` None begins at the start (the prime first); a state from an earlier call goes on
    from there. With an empty text, the logits are those after the prime (n, 1, V), or None.
    """
    runner, vocab, start = model.runner, model.vocab, model.start

    def rows(s: str) -> np.ndarray:
        return np.broadcast_to(vocab.encode_array(s), (n, len(s)))  # (n, len(s))

    logits = None
    if state is None and start.prime:
        logits, state = runner.forward(rows(start.prime))
        logits = logits[:, -1:]
    if not text:
        return logits, state
    pieces = [text]
    if start.lines:  # a newline begins a piece, read from the zero state
        pieces = [p for p in re.split(f"(?={NEWLINE})", text) if p]
    out = []
    for piece in pieces:
        if start.lines and piece.startswith(NEWLINE):
            state = None
        piece_logits, state = runner.forward(rows(piece), state)
        out.append(piece_logits)
    return (out[0] if len(out) == 1 else np.concatenate(out, axis=1)), state


def step_probs(model: Readable, text: str, state: Any = None) -> tuple[np.ndarray, Any]:
    """Read `text` from the model's start (see `read`; or on from `state`): the next-character
    probabilities after each of its characters, (T, V) float64, and the state after the last."""
    logits, state = read(model, text, state=state)  # (1, T, V)
    return softmax(logits[0]), state


def top_of(probs: np.ndarray, vocab: Vocab, k: int) -> list[list[tuple[str, float]]]:
    """probs (T, V) -> for each step the k most likely characters with their probabilities, best
    first (ties: the earlier character in the vocabulary first)."""
    k = max(1, min(k, len(vocab)))
    top_i = np.argsort(-probs, axis=-1, kind="stable")[:, :k]  # (T, k)
    top_p = np.take_along_axis(probs, top_i, axis=-1)
    chars = vocab.chars
    return [[(chars[i], p) for i, p in zip(ii, pp)] for ii, pp in zip(top_i.tolist(), top_p.tolist())]


def predict_steps(model: Readable, prefix: str, alternatives: int = 3) -> list[StepPrediction]:
    """Feed `prefix` from the model's start and report the prediction after every character."""
    if not prefix:
        return []
    probs, _ = step_probs(model, prefix)
    steps = []
    for t, (ch, top) in enumerate(zip(prefix, top_of(probs, model.vocab, alternatives))):
        target = prefix[t + 1] if t + 1 < len(prefix) else None
        steps.append(StepPrediction(ch, top[0][0], top[0][1], top, target))
    return steps


def start_step(model: Readable, prefix: str, alternatives: int = 3) -> StepPrediction | None:
    """A line model's prediction after its start (the newline a line is read after, from the
    zero state): the line's first character, the prefix's first as the target. None for a
    stream model, whose predictions begin after the first character it reads."""
    if not model.start.lines:
        return None
    logits, _ = read(model, "")  # (1, 1, V): after the prime
    top = top_of(softmax(logits[0]), model.vocab, alternatives)[0]
    return StepPrediction(model.start.prime, top[0][0], top[0][1], top, prefix[:1] or None)
