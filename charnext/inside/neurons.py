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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from charnext.config import Cell
from charnext.errors import ConfigError, TextError
from charnext.modeling.model import CharModel, eval_mode
from charnext.text.vocab import Vocab

CHUNK = 1024  # characters per call: (PIECES, CHUNK, 3H) gates stay small (4096: 15-25% slower)
PIECES = 16  # most pieces of a long text read side by side, as one batch
WARMUP = 1024  # characters each piece but the first reads before it (unrecorded)

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
# recording


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


def all_units(model: CharModel) -> list[Unit]:
    """The model's units in recording order: per layer, cell states (LSTM) then hidden states."""
    c = model.config
    kinds = ("c", "h") if c.cell is Cell.lstm else ("h",)
    return [Unit(layer, k, i) for layer in range(c.num_layers) for k in kinds for i in range(c.hidden_size)]


def parse_unit(spec: str, model: CharModel) -> Unit:
    """`LAYER:INDEX` (an LSTM's cell state; its hidden state is `LAYER:hINDEX`) -> a Unit."""
    m = re.fullmatch(r"\s*(\d+)\s*:\s*([ch]?)\s*(\d+)\s*", spec)
    c = model.config
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


def _single_layers(model: CharModel) -> list[nn.Module]:
    """One single-layer recurrent module per layer, sharing the model's weights (no copy).

    nn.LSTM/GRU/RNN return only the top layer's outputs over time; run one layer at a time,
    the states of every layer are there.
    """
    rnn = model.rnn
    layers = []
    for layer in range(model.config.num_layers):
        one = type(rnn)(
            rnn.input_size if layer == 0 else rnn.hidden_size, rnn.hidden_size, 1, batch_first=True
        )
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(one, f"{name}_l0", getattr(rnn, f"{name}_l{layer}"))
        one.flatten_parameters() if hasattr(one, "flatten_parameters") else None
        layers.append(one.to(model.head.weight.device).eval())
    return layers


def _lstm_cells(one: nn.LSTM, x: torch.Tensor, out: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor):
    """The cell states c (B, T, H) of a single-layer LSTM that read x (B, T, in) and gave out
    (B, T, H) from (h0, c0) (B, H): one batched gate product, then the elementwise recurrence
    c_t = f_t * c_{t-1} + i_t * g_t."""
    B, T, H = out.shape
    h_prev = torch.cat([h0[:, None], out[:, :-1]], dim=1)  # (B, T, H): each step's starting h
    n = 3 * H  # the input, forget and cell gates; the output gate is not needed
    w_ih, w_hh = one.weight_ih_l0[:n].float().cpu(), one.weight_hh_l0[:n].float().cpu()
    bias = (one.bias_ih_l0[:n] + one.bias_hh_l0[:n]).float().cpu()
    gates = torch.addmm(bias, x.reshape(B * T, -1), w_ih.T).addmm_(h_prev.reshape(B * T, H), w_hh.T)
    i, f, g = gates.view(B, T, n).transpose(0, 1).chunk(3, dim=-1)  # each (T, B, H)
    f = torch.sigmoid(f).contiguous().numpy()
    u = (torch.sigmoid(i) * torch.tanh(g)).contiguous().numpy()  # what each step writes
    c = np.empty_like(u)
    prev = c0.numpy()
    for t in range(T):  # elementwise: a few µs a step, far below the matrix products
        prev = c[t] = f[t] * prev + u[t]
    return torch.from_numpy(c).transpose(0, 1)  # (B, T, H)


@contextmanager
def _one_thread(device: torch.device) -> Iterator[None]:
    """Record on one CPU thread, then restore the thread count.

    Each step of a recurrent layer is a small matrix product that must wait for the one
    before: a second thread gains little on a quiet machine and, on a busy one, waiting for it
    at every step costs far more. 100,000 characters through a 2x256 LSTM, read as one
    sequence, measured on a loaded 2-core machine: 20 s on one thread; 26-29 s with only the
    recurrent layers on one thread; 80-95 s on two.
    """
    if device.type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def pieces(n: int) -> list[tuple[int, int]]:
    """(start, end) of the pieces a text of n characters is read in, side by side.

    A text up to 2 x CHUNK characters is one piece, read exactly. A longer one is cut into up
    to PIECES equal pieces read as one batch: a batch of 16 costs a step about twice what one
    sequence does, so the text takes about a third of the time. Each piece but the first reads
    the WARMUP characters before it first (or its own length, at least CHUNK / 2, if shorter),
    so its state is what a reader of the whole text would have: a trained network's memory
    fades long before (a test checks the states match).
    """
    if n <= 2 * CHUNK:
        return [(0, n)]
    size = math.ceil(n / min(PIECES, math.ceil(n / CHUNK)))
    return [(s, min(n, s + size)) for s in range(0, n, size)]


def record(
    model: CharModel,
    idx: torch.Tensor,
    on_chunk: Callable[[int, list[torch.Tensor]], None],
    newline: int | None = None,
) -> None:
    """Run idx (T,) through the model from the zero state and hand over every unit's states.

    For each chunk of the text calls on_chunk(start, states): the chunk's offset in the text and
    one (t, H) float32 CPU tensor per layer and kind, in the order of all_units. A stream is
    read in the pieces of `pieces`, each in chunks of up to CHUNK characters. With `newline`
    (the index of the line break, for a line-mode model) every line is read on its own, as
    training read it: from the zero state, after a line break.
    """
    with _one_thread(model.head.weight.device), torch.no_grad(), eval_mode(model):
        run = _LayerStepper(model)
        if newline is None:
            _record_stream(run, idx, on_chunk)
        else:
            _record_lines(run, idx, on_chunk, newline)


class _LayerStepper:
    """Runs every layer of a model over a batch (B, t) from given states; returns every state."""

    def __init__(self, model: CharModel):
        self.model = model
        self.device = model.head.weight.device
        self.layers = _single_layers(model)
        self.lstm = model.config.cell is Cell.lstm

    def zeros(self, batch: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Zero hidden and cell states, (1, B, H) per layer."""
        H = self.model.config.hidden_size
        return ([torch.zeros(1, batch, H, device=self.device) for _ in self.layers],
                [torch.zeros(1, batch, H, device=self.device) for _ in self.layers])  # fmt: skip

    def __call__(self, chunk: torch.Tensor, h: list, cs: list, keep: bool = True) -> list[torch.Tensor]:
        """Read chunk (B, t) from states h, cs (updated in place, per layer); the states after
        every character, (B, t, H) per layer and kind (none if not `keep`)."""
        chunk = chunk.long().to(self.device)
        m = self.model
        x = m.embedding(chunk) if m.embedding is not None else nn.functional.one_hot(
            chunk, m.config.vocab_size).float()  # fmt: skip
        states = []
        for layer, one in enumerate(self.layers):
            if self.lstm:
                out, (h_new, c_new) = one(x, (h[layer], cs[layer]))  # out (B, t, H)
                if keep:
                    states.append(_lstm_cells(one, x.float().cpu(), out.float().cpu(), h[layer][0].cpu(),
                                              cs[layer][0].cpu()))  # fmt: skip
                cs[layer] = c_new
            else:
                out, h_new = one(x, h[layer])
            if keep:
                states.append(out.float().cpu())
            h[layer] = h_new
            x = out
        return states


def _record_stream(run: _LayerStepper, idx: torch.Tensor, on_chunk: Callable) -> None:
    spans = pieces(len(idx))
    h, cs = run.zeros(len(spans))
    if len(spans) > 1:  # warm-up: each piece but the first reads the characters before it, unrecorded
        w = min(WARMUP, spans[1][0])
        run(torch.stack([idx[s - w : s] if s else idx[:w] for s, _ in spans]), h, cs, keep=False)
        for state in h + cs:
            state[:, 0] = 0  # the first piece starts the text: the zero state
    longest = max(e - s for s, e in spans)
    for t0 in range(0, longest, CHUNK):
        t1 = min(t0 + CHUNK, longest)
        rows = [idx[s + t0 : min(e, s + t1)] for s, e in spans]
        # a short last piece is padded at its end: what the padding gives is dropped
        states = run(torch.stack([nn.functional.pad(r, (0, t1 - t0 - len(r))) for r in rows]), h, cs)
        for b, ((s, _), r) in enumerate(zip(spans, rows)):
            if len(r):
                on_chunk(s + t0, [state[b, : len(r)] for state in states])


def _record_lines(run: _LayerStepper, idx: torch.Tensor, on_chunk: Callable, newline: int) -> None:
    # Each line break starts a line: the state at it is the zero state after reading it, and the
    # line's characters follow. The text's first line reads a line break first, unrecorded.
    breaks = (idx == newline).nonzero().flatten().tolist()
    starts = sorted({0, *breaks})
    lines = [(s, e) for s, e in zip(starts, starts[1:] + [len(idx)])]
    lead = torch.tensor([newline], dtype=idx.dtype)
    group: list[tuple[int, int]] = []

    def flush() -> None:
        rows = [idx[s:e] if idx[s] == newline else torch.cat([lead, idx[s:e]]) for s, e in group]
        longest = max(len(r) for r in rows)
        h, cs = run.zeros(len(rows))
        states = run(torch.stack([nn.functional.pad(r, (0, longest - len(r))) for r in rows]), h, cs)
        for b, ((s, e), r) in enumerate(zip(group, rows)):
            skip = len(r) - (e - s)  # the unrecorded line break in front of the first line
            on_chunk(s, [state[b, skip : len(r)] for state in states])
        group.clear()

    for s, e in lines:  # batches of lines, up to PIECES x CHUNK padded characters each
        if group and (len(group) + 1) * max(e - s + 1, *(b - a + 1 for a, b in group)) > PIECES * CHUNK:
            flush()
        group.append((s, e))
    if group:
        flush()


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
    model: CharModel,
    vocab: Vocab,
    text: str,
    max_chars: int | None = 100_000,
    stretch_offset: int = 0,
    stretch_length: int = 600,
    line_mode: bool = False,
) -> NeuronScan:
    """Record every unit over the first `max_chars` characters of `text` (None: all) and
    correlate each with every feature; keep all activations over a stretch of the text.

    Every character must be in the vocabulary (drop unknown ones before). A `line_mode`
    model reads every line on its own, from the zero state, as it was trained.
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
    units = all_units(model)
    U = len(units)
    n = len(text)
    # running sums over chunks: sum a, sum a^2, sum a*f_z (f_z has mean 0, std 1). In torch, not
    # numpy: numpy's BLAS threads would spin beside torch's and slow both many times over.
    fz = torch.from_numpy(Fz.astype(np.float32))  # (T, F)
    s1 = torch.zeros(U, dtype=torch.float64)
    s2 = torch.zeros(U, dtype=torch.float64)
    sf = torch.zeros(U, len(names), dtype=torch.float64)
    s_end = min(n, stretch_offset + stretch_length)
    acts = np.zeros((s_end - stretch_offset, U), dtype=np.float32)

    def collect(start: int, states: list[torch.Tensor]) -> None:
        a = torch.cat(states, dim=1)  # (t, U) float32: a chunk's sums are exact enough, the totals float64
        end = start + len(a)
        s1.add_(a.sum(dim=0))
        s2.add_((a * a).sum(dim=0))
        sf.add_(a.T @ fz[start:end])
        lo, hi = max(start, stretch_offset), min(end, s_end)
        if lo < hi:
            acts[lo - stretch_offset : hi - stretch_offset] = a[lo - start : hi - start].numpy()

    newline = vocab.chars.index("\n") if line_mode and "\n" in vocab else None
    record(model, vocab.encode(text), collect, newline)
    mean = s1.numpy() / n
    std = np.sqrt(np.maximum(s2.numpy() / n - mean * mean, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = sf.numpy() / n / std[:, None]  # sum (a - mean) f_z = sum a f_z, since sum f_z = 0
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
