"""How well a loaded checkpoint predicts a text (`charnext evaluate`): the loss of each kind of
model read as it was trained, beside the figures it is measured against (its own validation
loss, and a model of the characters' frequencies alone)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from charnext.errors import TextError
from charnext.events import EvalResult

if TYPE_CHECKING:
    from charnext.storage.handle import Checkpoint

NEWLINE = "\n"


@dataclass
class Evaluation(EvalResult):
    """How well a checkpoint predicts a text (an `EvalResult`), and the characters skipped."""

    skipped: int = 0  # characters dropped because the vocabulary lacks them
    skipped_chars: list[str] = field(default_factory=list)
    training_val_loss: float | None = None  # the model's own validation loss, from training
    unigram_loss: float | None = None  # loss of the training text's character frequencies alone

    def to_dict(self) -> dict:
        """Plain values, for JSON: the EvalResult's, then these fields'."""
        extra = ("skipped", "skipped_chars", "training_val_loss", "unigram_loss")
        return {**super().to_dict(), **{name: getattr(self, name) for name in extra}}


def evaluate_text(
    ckpt: Checkpoint, text: str, skip_unknown: bool = False, precision: str = "fp32"
) -> Evaluation:
    """Loss (nats/char), bits/char, perplexity and accuracy of the checkpoint on `text`: a line
    model's lines each from its start, their ends included; a stream model's every character but
    the first, after the model's prime."""
    from charnext.inference.scoring import evaluate_stream, score_lines
    from charnext.modeling.device import resolve_precision
    from charnext.text.reading import text_lines

    kept, unknown = ckpt.vocab.known(text, skip_unknown)
    skipped = len(text) - len(kept)
    device = ckpt.model.head.weight.device
    precision = resolve_precision(precision, device, ckpt.config.cell)
    if ckpt.line_mode:
        lines = [ckpt.vocab.encode(line) for line in text_lines(kept)]
        if not lines:
            raise TextError("the text has no non-empty line of known characters; nothing to evaluate")
        sums = score_lines(ckpt.model, lines, ckpt.vocab.chars.index(NEWLINE), precision=precision)
        r = sums.score().result()
        targets = "".join(line + NEWLINE for line in text_lines(kept))  # each line and its end
    else:
        if len(kept) < 2:
            raise TextError("the text has fewer than 2 known characters; nothing to evaluate")
        prime = ckpt.vocab.encode(ckpt.start.prime) if ckpt.start.prime else None
        r = evaluate_stream(ckpt.model, ckpt.vocab.encode(kept), precision=precision, prime=prime)
        targets = kept[1:]  # every character but the first
    return Evaluation(
        r.loss,
        r.accuracy,
        r.characters,
        skipped,
        unknown,
        training_val_loss(ckpt),
        unigram_loss(ckpt, targets),
    )


def training_val_loss(ckpt: Checkpoint) -> float | None:
    """The validation loss the checkpoint's run recorded for it (None: none was)."""
    value = ckpt.summary.get("val_loss")
    if value is None and ckpt.history.get("val_loss"):
        value = ckpt.history["val_loss"][-1]
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def unigram_loss(ckpt: Checkpoint, targets: str) -> float | None:
    """Loss (nats/char) on `targets` of a model that knows only how often each character occurs
    in the training text (add-one smoothed); None where the checkpoint has no counts."""
    import numpy as np

    counts = ckpt.raw.get("vocab_counts")
    if not isinstance(counts, list) or len(counts) != len(ckpt.vocab) or not targets:
        return None
    freq = np.asarray(counts, dtype=np.float64) + 1.0
    logp = np.log(freq / freq.sum())
    return float(-logp[ckpt.vocab.encode_array(targets).astype(np.intp)].mean())


def seen_in_training(ckpt: Checkpoint, line: str) -> bool | None:
    """For a line-mode checkpoint: whether `line` is one of its training lines (None: unknown)."""
    from charnext.text.reading import in_line_index

    index = ckpt.raw.get("line_index")
    if index is None or not hasattr(index, "shape"):
        return None
    return in_line_index(index, line)
