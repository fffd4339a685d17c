"""How surprised a model is by each character of a text: its probability, and what was expected."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from charnext.inference.steps import Readable, step_probs, top_of

if TYPE_CHECKING:
    from charnext.storage.handle import Checkpoint

NEWLINE = "\n"


# How surprising a character was, in four levels by the probability the model gave it (the
# lowest probability of each, and its label): the terminal's heat map and the report's agree.
SURPRISE_LEVELS = ((0.5, "≥ 50%"), (0.1, "10–50%"), (0.01, "1–10%"), (0.0, "< 1%"))


def surprise_level(prob: float) -> int:
    """0 (expected: at least 50%) .. 3 (a surprise: below 1%)."""
    return next(i for i, (low, _) in enumerate(SURPRISE_LEVELS) if prob >= low)


@dataclass
class CharSurprise:
    """The model's view of one character of a text, given everything before it."""

    position: int  # offset of the character in the text
    char: str  # the character
    prob: float | None  # probability the model gave it; None where nothing came before it
    top: list[tuple[str, float]] = field(default_factory=list)  # most likely instead, best first

    @property
    def surprisal(self) -> float | None:
        """-log2(prob): bits of surprise; 0 for a certain character."""
        if self.prob is None:
            return None
        return -math.log2(self.prob) if self.prob > 0 else math.inf

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        s = self.surprisal
        return {
            "position": self.position,
            "char": self.char,
            "probability": self.prob,
            "surprisal_bits": s if s is None or math.isfinite(s) else None,
            "top": [{"char": c, "probability": p} for c, p in self.top],
        }


@dataclass
class Surprise:
    """Per-character probabilities over a stretch of a text."""

    offset: int  # where the stretch starts in the text
    chars: list[CharSurprise]  # one per character of the stretch
    skipped: list[str] = field(default_factory=list)  # unknown characters dropped from the text

    @property
    def text(self) -> str:
        """The stretch itself."""
        return "".join(c.char for c in self.chars)

    def most_surprising(self, n: int = 10) -> list[CharSurprise]:
        """The `n` scored characters with the lowest probability, in order of surprise."""
        scored = [c for c in self.chars if c.prob is not None]
        return sorted(scored, key=lambda c: (c.prob, c.position))[:n]

    def to_dict(self, n: int = 10) -> dict:
        """Plain values, for JSON: the stretch, every character, and the `n` most surprising."""
        return {
            "offset": self.offset,
            "text": self.text,
            "chars": [c.to_dict() for c in self.chars],
            "most_surprising": [c.to_dict() for c in self.most_surprising(n)],
        }


def _scores(model: Readable, inputs: str, targets: str, alternatives: int) -> list[tuple]:
    """Read `inputs` from the model's start; for each step, (probability of the target, top-k)."""
    probs, _ = step_probs(model, inputs)  # (T, V), the path predict takes
    p = probs[np.arange(len(targets)), model.vocab.encode_array(targets)].tolist()
    return list(zip(p, top_of(probs, model.vocab, alternatives)))


def score_chars(
    model: Readable, text: str, offset: int = 0, length: int = 600, alternatives: int = 3, context: int = 2000
) -> Surprise:
    """The probability the model gives each character of `text[offset:offset + length]`.

    Stream models read up to `context` characters before the stretch first (not shown), so the
    state at the stretch is what a reader of the whole text would have, to within the memory of
    an RNN; the text's first character has nothing before it and stays unscored. Line-mode
    models (`start.lines`) read each line as they were trained: after a newline, from zero.
    Every character of `text` must be in the vocabulary.
    """
    start = model.start
    end = min(len(text), offset + length)
    out: list[CharSurprise] = []
    if start.lines:
        pos = offset
        while pos < end:
            first = text.rfind(NEWLINE, 0, pos) + 1  # this line's first character
            stop = text.find(NEWLINE, pos)
            stop = len(text) if stop < 0 else stop  # the line's newline (or the text's end)
            last = min(stop + 1, len(text))  # score the newline too, where there is one
            # the line's start (the prime, a newline) predicts its first character
            scores = _scores(model, NEWLINE + text[first:stop], text[first:last], alternatives)
            for p in range(pos, min(last, end)):
                prob, top = scores[p - first]
                out.append(CharSurprise(p, text[p], prob, top))
            pos = last
    else:
        s = max(0, offset - context)
        inputs, targets = text[s : end - 1], text[s + 1 : end]
        scores = _scores(model, inputs, targets, alternatives) if end > 1 else []
        for p in range(offset, end):
            if p == 0:
                out.append(CharSurprise(0, text[0], None, []))
            else:
                prob, top = scores[p - 1 - s]
                out.append(CharSurprise(p, text[p], prob, top))
    return Surprise(offset, out)


def score_stretch(
    ckpt: Checkpoint, text: str, offset: int, length: int, alternatives: int, skip_unknown: bool
) -> Surprise:
    """`score_chars` for a loaded checkpoint, read from its start; with `skip_unknown` the unknown
    characters are dropped first (and listed), and `offset` counts in what remains."""
    from charnext.errors import InvalidValue

    kept, unknown = ckpt.vocab.known(text, skip_unknown)
    if offset >= len(kept):
        raise InvalidValue("offset", f"is past the end of the text ({len(kept)} characters), at {offset}")
    result = score_chars(ckpt, kept, offset, length, alternatives)
    result.skipped = unknown
    return result
