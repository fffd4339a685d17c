"""Which units learned what: record every unit of every layer over a text and correlate each
with simple, documented features of the text (after Karpathy, Johnson and Fei-Fei 2015,
"Visualizing and Understanding Recurrent Networks").

A unit is one component of one layer's state: for the LSTM both the cell state `c` and the
hidden state `h`, for the GRU and the RNN the hidden state. Its activation at position t is its
value right after the model has read character t. Every feature below also describes the text
as a reader knows it right after character t, so a unit can only follow what it could know.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from charnext.config import Cell, ModelConfig
from charnext.errors import ConfigError, TextError
from charnext.inside.recording import layer_stepper, record
from charnext.text.vocab import Vocab

# name -> what it measures at character t (the README's and --json's documentation)
FEATURES: dict[str, str] = {
    "line_position": "characters since the start of the line (0 at its first character)",
    "indent": "leading spaces and tabs read so far on this line (a tab counts 4)",
    "bracket_depth": "open ( [ { not yet closed (never below 0)",
    "in_double_quotes": 'inside "double quotes": an odd number of " read so far',
    "in_single_quotes": "inside 'single quotes': a ' after a non-letter opens, the next ' closes; "
    "a line break closes",
    "word_start": "1 on the first letter or digit of a word",
    "word_position": "letters and digits since the start of the current word (0 outside words)",
    "upper_case": "1 on an upper-case letter",
    "digit": "1 on a digit",
    "white_space": "1 on a space, tab or line break",
    "punctuation": "1 on punctuation or a symbol",
    "caps_line": "1 while the line's letters so far are all capitals (at least 2 of them), "
    "e.g. a speaker's name",
}


# ---------------------------------------------------------------------------------------------
# features


def _line_features(text: str, alnum: np.ndarray, upper: np.ndarray, lower: np.ndarray):
    """The features that carry state along a line, in one pass: indentation, inside single
    quotes (an apostrophe inside a word is no quote), and a line of capitals so far."""
    n = len(text)
    indent = np.zeros(n, dtype=np.float32)
    in_single = np.zeros(n, dtype=bool)
    caps_line = np.zeros(n, dtype=bool)
    level, leading, single, n_upper, n_lower, prev_alnum = 0, True, False, 0, 0, False
    for t, ch in enumerate(text):
        if ch == "\n":
            level, leading, single, n_upper, n_lower = 0, True, False, 0, 0
        else:
            if leading and ch in " \t":
                level += 4 if ch == "\t" else 1
            else:
                leading = False
            if ch == "'":
                if single:
                    single = False
                elif not prev_alnum:
                    single = True
            n_upper += upper[t]
            n_lower += lower[t]
        indent[t] = level
        in_single[t] = single
        caps_line[t] = n_upper >= 2 and n_lower == 0
        prev_alnum = alnum[t]

    return indent, in_single, caps_line


def text_features(text: str) -> dict[str, np.ndarray]:
    """Every feature of FEATURES at every character of `text`, as float32 arrays (T,)."""
    n = len(text)
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    # per-character classes, looked up once per distinct character
    uniq, inverse = np.unique(cps, return_inverse=True)
    chars = [chr(c) for c in uniq.tolist()]

    def klass(pred: Callable[[str], bool]) -> np.ndarray:
        return np.array([pred(c) for c in chars], dtype=bool)[inverse]

    alnum = klass(str.isalnum)
    upper = klass(str.isupper)
    lower = klass(str.islower)
    space = klass(str.isspace)
    newline = cps == 10
    positions = np.arange(n)

    # line position: distance to the last newline before t, minus one (a newline, which ends
    # its line, gets the line's length)
    last_nl = np.maximum.accumulate(np.where(newline, positions, -1))
    line_position = positions - np.concatenate([[-1], last_nl[:-1]]) - 1

    # bracket depth, floored at 0: the running sum minus its running minimum below 0
    step = klass(lambda c: c in "([{").astype(np.int64) - klass(lambda c: c in ")]}").astype(np.int64)
    total = np.cumsum(step)
    depth = total - np.minimum(np.minimum.accumulate(total), 0)

    in_double = (np.cumsum(cps == 34) % 2).astype(bool)  # 34 = '"'

    word_start = alnum & ~np.concatenate([[False], alnum[:-1]])
    # letters since the word began: run length of alnum
    starts = np.maximum.accumulate(np.where(word_start, positions, 0))
    word_position = np.where(alnum, positions - starts, 0)

    indent, in_single, caps_line = _line_features(text, alnum, upper, lower)
    punct = ~alnum & ~space
    return {
        "line_position": line_position.astype(np.float32),
        "indent": indent,
        "bracket_depth": depth.astype(np.float32),
        "in_double_quotes": in_double.astype(np.float32),
        "in_single_quotes": in_single.astype(np.float32),
        "word_start": word_start.astype(np.float32),
        "word_position": word_position.astype(np.float32),
        "upper_case": upper.astype(np.float32),
        "digit": klass(str.isdigit).astype(np.float32),
        "white_space": space.astype(np.float32),
        "punctuation": punct.astype(np.float32),
        "caps_line": caps_line.astype(np.float32),
    }


# ---------------------------------------------------------------------------------------------
# units


@dataclass(frozen=True)
class Unit:
    """One recorded unit: layer (0 = the first, as in torch's `weight_ih_l0`), state kind
    ('c' cell or 'h' hidden) and index within the layer."""

    layer: int
    kind: str  # "c" (LSTM cell state) or "h" (hidden state)
    index: int

    @property
    def name(self) -> str:
        """`0:c42`, `1:h7` (LSTM) or `0:42` (GRU, RNN: hidden state only)."""
        return f"{self.layer}:{self.kind}{self.index}"

    @property
    def description(self) -> str:
        """Layer 0 cell 42, layer 1 hidden 7."""
        kind = "cell" if self.kind == "c" else "hidden"
        return f"layer {self.layer} {kind} {self.index}"


def all_units(config: ModelConfig) -> list[Unit]:
    """A model's units in recording order: per layer, cell states (LSTM) then hidden states."""
    c = config
    kinds = ("c", "h") if c.cell is Cell.lstm else ("h",)
    return [Unit(layer, k, i) for layer in range(c.num_layers) for k in kinds for i in range(c.hidden_size)]


def parse_unit(spec: str, config: ModelConfig) -> Unit:
    """`LAYER:INDEX` (an LSTM's cell state; its hidden state is `LAYER:hINDEX`) -> a Unit."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*([ch]?)\s*(\d+)\s*", spec)
    c = config
    if not m:
        raise ConfigError(f"cannot read unit {spec!r}: use LAYER:INDEX, e.g. 0:42 (or 0:h42, 0:c42)")
    layer, kind, index = int(m[1]), m[2] or ("c" if c.cell is Cell.lstm else "h"), int(m[3])
    if layer >= c.num_layers or index >= c.hidden_size:
        raise ConfigError(
            f"unit {spec} does not exist: the model has layers 0-{c.num_layers - 1} "
            f"of {c.hidden_size} units (indices 0-{c.hidden_size - 1})"
        )
    if kind == "c" and c.cell is not Cell.lstm:
        raise ConfigError(f"unit {spec}: only an LSTM has a cell state; a {c.cell.value} has 0:h{index}")
    return Unit(layer, kind, index)


# ---------------------------------------------------------------------------------------------
# scoring


@dataclass
class UnitScore:
    """A unit and the feature it follows best."""

    unit: Unit
    feature: str  # the best feature's name
    r: float  # Pearson correlation of the unit's activation with it, -1..1
    second: str | None = None  # the next best feature, for context
    second_r: float | None = None

    def to_dict(self) -> dict:
        """Plain values, for JSON."""
        return {
            "unit": self.unit.name,
            "layer": self.unit.layer,
            "state": "cell" if self.unit.kind == "c" else "hidden",
            "index": self.unit.index,
            "feature": self.feature,
            "r": self.r,
            "second_feature": self.second,
            "second_r": self.second_r,
        }


@dataclass
class NeuronScan:
    """Every unit's correlation with every feature over a text, and the activations of every
    unit over a stretch of it (for heat maps)."""

    units: list[Unit]  # all recorded units, in order
    features: list[str]  # feature names (those that hardly vary left out: see MIN_VARYING_SHARE)
    r: np.ndarray = field(repr=False)  # (units, features) Pearson correlations
    characters: int  # characters the scores cover
    stretch_offset: int  # where the recorded stretch starts in the text
    stretch: str  # the stretch
    activations: np.ndarray = field(repr=False)  # (len(stretch), units)
    skipped: list[str] = field(default_factory=list)  # unknown characters dropped from the text

    def score(self, unit: Unit) -> UnitScore:
        """The feature `unit` follows best (largest |r|), and the next best."""
        row = self.r[self.units.index(unit)]
        order = np.argsort(-np.abs(row), kind="stable")
        second = order[1] if len(order) > 1 else None
        return UnitScore(
            unit,
            self.features[order[0]],
            float(row[order[0]]),
            self.features[second] if second is not None else None,
            float(row[second]) if second is not None else None,
        )

    def top_units(self, n: int = 10) -> list[UnitScore]:
        """The `n` units whose activation follows some feature most closely, best first."""
        best = np.abs(self.r).max(axis=1) if self.r.size else np.zeros(len(self.units))
        order = np.argsort(-best, kind="stable")[:n]
        return [self.score(self.units[i]) for i in order]

    def best_per_feature(self) -> list[UnitScore]:
        """For each feature, the unit that follows it most closely (by |r|), strongest first;
        each unit once: a feature whose best unit already follows a stronger one gets the best
        of the others (caps_line and upper_case often share a unit)."""
        strength = np.abs(self.r)  # (units, features)
        order = np.argsort(-strength.max(axis=0), kind="stable") if self.r.size else []
        used: set[int] = set()
        out = []
        for j in order:
            column = strength[:, j].copy()
            column[list(used)] = -1.0
            i = int(np.argmax(column))
            used.add(i)
            out.append(UnitScore(self.units[i], self.features[j], float(self.r[i, j])))
        return sorted(out, key=lambda s: -abs(s.r))

    def activation(self, unit: Unit) -> np.ndarray:
        """The unit's activation over the stretch, (len(stretch),)."""
        return self.activations[:, self.units.index(unit)]

    def to_dict(self, n: int = 10) -> dict:
        """Plain values, for JSON: features (documented), the top units, the best per feature."""
        return {
            "characters": self.characters,
            "units": len(self.units),
            "features": {name: FEATURES[name] for name in self.features},
            "top_units": [s.to_dict() for s in self.top_units(n)],
            "best_per_feature": [s.to_dict() for s in self.best_per_feature()],
            "skipped": self.skipped,
        }

    def unit_to_dict(self, unit: Unit) -> dict:
        """Plain values, for JSON: one unit's score and its activations over the stretch."""
        return {
            **self.score(unit).to_dict(),
            "offset": self.stretch_offset,
            "text": self.stretch,
            "activations": [round(float(v), 5) for v in self.activation(unit)],
        }


MIN_VARYING_SHARE = 0.01  # a feature is scored where it leaves its commonest value this often


def _varies(values: np.ndarray) -> bool:
    """Whether a feature varies enough over the text to be scored (see MIN_VARYING_SHARE)."""
    if len(values) == 0 or values.std() == 0:
        return False
    _, counts = np.unique(values, return_counts=True)
    return 1 - counts.max() / len(values) >= MIN_VARYING_SHARE


def scan(
    model: Any,
    vocab: Vocab,
    text: str,
    max_chars: int | None = 100_000,
    stretch_offset: int = 0,
    stretch_length: int = 600,
    line_mode: bool = False,
) -> NeuronScan:
    """Record every unit over the first `max_chars` characters of `text` (None: all) and
    correlate each with every feature; keep all activations over a stretch of the text.

    `model` is a checkpoint's runner (the numpy engine's NumpyModel, or a TorchRunner) or a
    torch CharModel. Every character must be in the vocabulary (drop unknown ones before). A
    `line_mode` model reads every line on its own, from the zero state, as it was trained.
    """
    if max_chars is not None:
        text = text[:max_chars]
    if len(text) < 2:
        raise TextError("the text has fewer than 2 known characters; nothing to record")
    if not 0 <= stretch_offset < len(text):
        raise ConfigError(f"offset {stretch_offset} is past the end of the text ({len(text)} characters)")
    feats = text_features(text)
    # A feature scored must vary over the text: one constant, or nearly so (its commonest value
    # on more than 99% of the characters, such as indentation in a text with a few stray
    # leading spaces), would be "followed" by whichever unit happens to move at those few places.
    names = [k for k, v in feats.items() if _varies(v)]
    F = np.stack([feats[k] for k in names], axis=1).astype(np.float64)  # (T, F)
    Fz = (F - F.mean(axis=0)) / F.std(axis=0) if names else F
    stepper = layer_stepper(model)
    units = all_units(stepper.config)
    n = len(text)
    # running sums over chunks: sum a, sum a^2, sum a*f_z (f_z has mean 0, std 1)
    fz = Fz.astype(np.float32)  # (T, F)
    s1, s2 = np.zeros(len(units)), np.zeros(len(units))  # float64
    sf = np.zeros((len(units), len(names)))
    s_end = min(n, stretch_offset + stretch_length)
    acts = np.zeros((s_end - stretch_offset, len(units)), dtype=np.float32)

    def collect(start: int, states: list[np.ndarray]) -> None:
        a = np.concatenate(states, axis=1)  # (t, U) float32: a chunk's sums are exact enough
        end = start + len(a)
        s1[:] += a.sum(axis=0)  # the totals float64
        s2[:] += np.einsum("tu,tu->u", a, a)
        sf[:] += a.T @ fz[start:end]
        lo, hi = max(start, stretch_offset), min(end, s_end)
        if lo < hi:
            acts[lo - stretch_offset : hi - stretch_offset] = a[lo - start : hi - start]

    newline = vocab.chars.index("\n") if line_mode and "\n" in vocab else None
    record(stepper, vocab.encode_array(text), collect, newline)
    mean = s1 / n
    std = np.sqrt(np.maximum(s2 / n - mean * mean, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sf / n / std[:, None]  # sum (a - mean) f_z = sum a f_z, since sum f_z = 0
    r = np.nan_to_num(np.clip(r, -1.0, 1.0))  # a constant unit correlates with nothing: 0
    return NeuronScan(units, names, r, n, stretch_offset, text[stretch_offset:s_end], acts)


def scale(values: np.ndarray) -> float:
    """The magnitude heat maps divide by: the largest |activation| (at least a tiny epsilon)."""
    m = float(np.abs(values).max()) if len(values) else 0.0
    return m if m > 1e-9 and math.isfinite(m) else 1.0


def diverging_level(value: float, magnitude: float, levels: int = 4) -> int:
    """-levels..levels: the bucket of a diverging colour scale `value` falls in (0 near zero)."""
    v = max(-1.0, min(1.0, value / magnitude)) if magnitude > 0 else 0.0
    return int(round(v * levels))
