"""The model in a web page (`charnext page`): one self-contained HTML file that runs the model in
any browser, offline, with nothing installed.

`collect` folds a checkpoint's weights as the numpy engine does (modeling/numpy_model.py), packs
them as float16 or float32, and gathers the model card; `to_html` writes the page: the weights
as a base64 data block, the JavaScript forward pass (web/charnext.js), the page's own script
(web/page.js) and style (web/page.css) inline, the WebAssembly SIMD kernel (web/kernel.wasm,
assembled from web/kernel.wat) as a second data block, and a Content-Security-Policy that lets
the page load nothing at all.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import html
import json
import math
from dataclasses import dataclass
from pathlib import Path
from string import Template

import numpy as np

from charnext.config import PageWeights, SampleConfig
from charnext.errors import ConfigError
from charnext.events import plus_minus
from charnext.inference.sampling import generate
from charnext.inference.steps import Readable, Reader, softmax
from charnext.modeling.numpy_model import NumpyModel
from charnext.storage.checkpoint import Checkpoint
from charnext.storage.describe import describe, model_rows
from charnext.storage.replacing import GENERATOR, PAGE
from charnext.text.reading import text_lines
from charnext.text.vocab import visible
from charnext.version import __version__

WEB = Path(__file__).parent / "web"  # the page's JavaScript, style and kernel (package data)
FLOAT16_TOLERANCE = 0.001  # nats/char the loss may move by for the weights to go as float16
CHECK_CHARS = 3000  # characters the float16 check scores (with --file: the first of its text)
CHECK_LINES = 200  # lines it scores in line mode
LN2 = math.log(2)
NEWLINE = "\n"


# ---------------------------------------------------------------------------------------------
# the weights, folded as the numpy engine folds them


def folded_arrays(model: NumpyModel) -> dict[str, np.ndarray]:
    """The arrays charnext.js reads (its header lists them), 2-D float32, in the page's order."""
    arrays: dict[str, np.ndarray] = {}
    for i, layer in enumerate(model.layers):
        if layer.w_ih is None:
            arrays[f"l{i}.table"] = layer.table  # (V, gates), the biases folded in
        else:
            arrays[f"l{i}.w_ih"] = layer.w_ih  # (H, gates)
            arrays[f"l{i}.b_in"] = layer.b_in[None]  # (1, gates)
        arrays[f"l{i}.w_hh"] = layer.w_hh  # (H, gates)
        if hasattr(layer, "b_hn"):
            arrays[f"l{i}.b_hn"] = layer.b_hn[None]  # (1, H), a GRU's
    arrays["head.w"] = model.head_w  # (H, V)
    arrays["head.b"] = model.head_b[None]  # (1, V)
    return arrays


def pack(arrays: dict[str, np.ndarray], dtype: str) -> tuple[dict[str, list[int]], bytes]:
    """One little-endian buffer of every array in `dtype`, and where each lies in it:
    name -> [offset in elements, rows, cols]."""
    index, parts, offset = {}, [], 0
    for name, a in arrays.items():
        rows, cols = a.shape
        index[name] = [offset, rows, cols]
        parts.append(np.ascontiguousarray(a, dtype=np.dtype(dtype).newbyteorder("<")).tobytes())
        offset += a.size
    return index, b"".join(parts)


def folded_size(config) -> int:
    """How many numbers the page holds for a model of this configuration (ModelConfig)."""
    c = config
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[c.cell.value] * c.hidden_size
    size = c.vocab_size * gates + c.hidden_size * c.vocab_size + c.vocab_size  # table, head
    size += c.num_layers * c.hidden_size * gates + (c.num_layers - 1) * (c.hidden_size + 1) * gates
    return size + (c.num_layers * c.hidden_size if c.cell.value == "gru" else 0)


def page_size(config, dtype: str = "float16") -> int:
    """About how many bytes `charnext page` writes for a model of this configuration: the
    weights in base64, and about 43 KB of page, script and kernel (measured: 42.8 KB)."""
    return folded_size(config) * np.dtype(dtype).itemsize * 4 // 3 + 43_000


def as_float16(model: NumpyModel) -> NumpyModel:
    """A copy of the numpy model with every folded weight rounded to float16, as a float16 page
    holds them (computed in float32 as before)."""

    def rounded(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float16).astype(np.float32)

    out = copy.copy(model)
    out.layers = []
    for layer in model.layers:
        layer = copy.copy(layer)
        for name in ("table", "w_ih", "b_in", "w_hh", "b_hn"):
            if getattr(layer, name, None) is not None:
                setattr(layer, name, rounded(getattr(layer, name)))
        out.layers.append(layer)
    out.head_w, out.head_b = rounded(model.head_w), rounded(model.head_b)
    return out


# ---------------------------------------------------------------------------------------------
# float16 or float32: the loss with each


def text_loss(model: NumpyModel, vocab, text: str, line_mode: bool) -> float:
    """Mean loss in nats/char: a stream read from its start (its first character unscored), or
    each line read after a newline from the zero state, its newline scored (as evaluate does)."""
    if line_mode:
        nll, count = 0.0, 0
        for line in text_lines(text):
            idx = vocab.encode_array(NEWLINE + line + NEWLINE)
            logits, _ = model.forward(idx[None, :-1])
            p = softmax(logits[0])[np.arange(len(idx) - 1), idx[1:]]
            nll, count = nll - float(np.log(p).sum()), count + len(idx) - 1
        return nll / count
    idx = vocab.encode_array(text)
    logits, _ = model.forward(idx[None, :-1])  # (1, T - 1, V)
    p = softmax(logits[0])[np.arange(len(idx) - 1), idx[1:]]
    return -float(np.log(p).mean())


def check_text(model: Readable, text: str | None) -> tuple[str, str]:
    """The text the float16 check scores, and what it is: the start of `text` (its known
    characters), else a sample the model writes itself from its start (temperature 1, seed 0)."""
    vocab, line_mode = model.vocab, model.start.lines
    if text is not None:
        kept = "".join(c for c in text if c in vocab)
        if line_mode:
            kept = NEWLINE.join(text_lines(kept)[:CHECK_LINES])
            if kept:
                return kept, f"{len(text_lines(kept)):,} lines of the text given"
        elif len(kept) > 1:
            return kept[:CHECK_CHARS], f"{min(len(kept), CHECK_CHARS):,} characters of the text given"
    sample = SampleConfig(temperature=1.0, seed=0)
    if line_mode:
        parts: list[list[str]] = [[] for _ in range(CHECK_LINES)]
        for chars in generate(model, "", 64, sample, CHECK_LINES):  # each line from the start
            for part, c in zip(parts, chars):
                part.append(c)
        lines = [line for line in ("".join(p).rstrip(NEWLINE) for p in parts) if line.strip()]
        return NEWLINE.join(lines), f"{len(lines):,} lines the model wrote (temperature 1, seed 0)"
    chars = "".join(c[0] for c in generate(model, "", CHECK_CHARS, sample))
    return chars, f"{len(chars):,} characters the model wrote (temperature 1, seed 0)"


@dataclass
class PrecisionCheck:
    """How much float16 weights move the loss, and the choice made."""

    dtype: str  # "float16" or "float32": what the page holds
    loss32: float | None  # nats/char with float32 weights (None: not measured, dtype was forced)
    loss16: float | None  # with float16 weights
    text: str = ""  # what was scored

    @property
    def delta(self) -> float | None:
        """loss16 - loss32, nats/char."""
        return None if self.loss32 is None or self.loss16 is None else self.loss16 - self.loss32

    def describe(self) -> str:
        """One line for the model card."""
        if self.delta is None:
            return f"{self.dtype} (as asked)"
        why = "<" if abs(self.delta) < FLOAT16_TOLERANCE else "≥"
        return (f"{self.dtype}: float16 moves the loss by {self.moved()} nats/char "
                f"({why} {FLOAT16_TOLERANCE}; {self.loss32:.4f} with float32) on {self.text}")  # fmt: skip

    def moved(self) -> str:
        """The delta as a figure that means something: `+0.00012`, `0` where float16 changed
        nothing, `less than 0.00001` where the change is too small for five decimals (never
        `-0.00000`)."""
        delta = self.delta or 0.0
        if delta == 0:
            return "0"
        if abs(delta) < 0.000005:
            return "less than 0.00001"
        return f"{delta:+.5f}"


def choose_precision(reader: Reader, weights: PageWeights | str, text: str | None = None) -> PrecisionCheck:
    """float16 where it moves the loss by less than FLOAT16_TOLERANCE (auto), else float32."""
    weights = PageWeights(weights)
    if weights is not PageWeights.auto:
        return PrecisionCheck(weights.value, None, None)
    model, vocab, line_mode = reader.model, reader.vocab, reader.start.lines
    scored, what = check_text(reader, text)
    if len(scored) < 2:
        return PrecisionCheck("float32", None, None, "nothing: no text to score")
    loss32 = text_loss(model, vocab, scored, line_mode)
    loss16 = text_loss(as_float16(model), vocab, scored, line_mode)
    dtype = "float16" if abs(loss16 - loss32) < FLOAT16_TOLERANCE else "float32"
    return PrecisionCheck(dtype, loss32, loss16, what)


# ---------------------------------------------------------------------------------------------
# the page's data


@dataclass
class PageData:
    """Everything the page holds, as plain values and bytes."""

    title: str  # the checkpoint's name
    spec: dict  # what charnext.js and page.js read: model shape, vocabulary, arrays, settings
    weights: bytes  # the packed arrays
    card: list[tuple[str, str]]  # the model card's rows
    precision: PrecisionCheck
    prefix: str = ""  # the text the page opens with

    def html(self) -> str:
        """The page (to_html)."""
        return to_html(self)


def _training_text(info: dict) -> str:
    """The training text's name and size, as far as the checkpoint knows them."""
    source = (info.get("provenance") or {}).get("source") or {}
    text = info["training"].get("text") or {}
    name = Path(source["path"]).name if source.get("path") else {
        "stdin": "standard input", "text": "a text given on the command line", "prepared": "prepared data"
    }.get(source.get("kind"), "unknown")  # fmt: skip
    length = text.get("length")
    return f"{name}, {length:,} characters" if isinstance(length, int) else name


def _loss_words(loss: float, se) -> str:
    """'1.4995 ± 0.022 nats/char (2.163 bits/char)'."""
    return f"{loss:.4f}{plus_minus(se)} nats/char ({loss / LN2:.3f} bits/char)"


def model_card(ckpt: Checkpoint, check: PrecisionCheck) -> list[tuple[str, str]]:
    """The rows `inspect` leads with: cell, size, vocabulary, best validation loss, the text."""
    info = describe(ckpt)
    model, t = dict(model_rows(info)), info["training"]  # inspect's rows (dropout left out: no training here)
    best = t["best_val_loss"]
    vocab = " ".join(visible(c) for c in ckpt.vocab.chars)
    line_mode = ckpt.line_mode
    return [
        *((name, model[name]) for name in ("cell", "layers", "input", "parameters")),
        ("vocabulary", f"{model['vocabulary']}: {vocab}"),
        ("best validation", "-" if best is None else _loss_words(best, t.get("best_val_se"))),
        ("training text", _training_text(info)),
        ("trained", f"{t['steps']:,} steps" + (f", {t['elapsed']:.0f} s" if t.get("elapsed") else "")),
        (
            "mode",
            "lines: each line read from the zero state after a newline"
            if line_mode
            else "a stream: the state carried through the text",
        ),  # fmt: skip
        ("weights in this page", check.describe()),
        ("written by", f"charnext {info.get('charnext_version')}, {info.get('created')}"),
    ]


def collect(
    ckpt: Checkpoint,
    weights: PageWeights | str = PageWeights.auto,
    text: str | None = None,
    prefix: str = "",
    name: str | None = None,
) -> PageData:
    """The page's data. `text` (optional) is what the float16 check scores; `prefix` is the text
    the page opens with; `name` the title (the checkpoint's file name)."""
    unknown = ckpt.vocab.unknown(prefix)
    if unknown:
        shown = " ".join(f"'{visible(c)}'" for c in unknown)
        raise ConfigError(f"the prefix has characters the model does not know: {shown}")
    # the numpy engine's folded weights, whatever engine the checkpoint was loaded for
    model = ckpt.runner if ckpt.engine == "numpy" else NumpyModel(ckpt.config, ckpt.raw["state_dict"])
    line_mode = ckpt.line_mode and NEWLINE in ckpt.vocab
    check = choose_precision(Reader(model, ckpt.vocab, ckpt.start), weights, text)
    index, blob = pack(folded_arrays(model), check.dtype)
    c = ckpt.config
    title = name or (ckpt.path.name if ckpt.path else "model")
    spec = {
        "format": "charnext-web 1",
        "cell": c.cell.value,
        "hidden_size": c.hidden_size,
        "num_layers": c.num_layers,
        "vocab": list(ckpt.vocab.chars),
        "visible": [visible(ch) for ch in ckpt.vocab.chars],
        "dtype": check.dtype,
        "arrays": index,
        "line_mode": line_mode,
        "prime": ckpt.start.prime,  # read from the zero state before the text (a stream model)
        "checkpoint": title,  # for the `charnext predict` command the page shows
    }
    return PageData(title, spec, blob, model_card(ckpt, check), check, prefix)


# ---------------------------------------------------------------------------------------------
# the page


def _asset(name: str) -> str:
    return (WEB / name).read_text(encoding="utf-8")


def kernel_bytes() -> bytes:
    """The WebAssembly SIMD kernel, as assembled from web/kernel.wat."""
    return (WEB / "kernel.wasm").read_bytes()


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _json_block(value: object) -> str:
    """JSON that cannot end its <script> block early (every < escaped), in ASCII (a lone
    surrogate of a vocabulary stays an escape)."""
    return json.dumps(value).replace("<", "\\u003c")


def content_security_policy(script: str, style: str) -> str:
    """Nothing may load: no request, no frame, no form. The only scripts are the page's own
    (by hash), and 'wasm-unsafe-eval' lets them compile the WebAssembly kernel the page holds
    (it allows no eval of JavaScript; without it the page runs its plain JavaScript kernel)."""
    return (
        f"default-src 'none'; style-src {_csp_hash(style)}; "
        f"script-src {_csp_hash(script)} 'wasm-unsafe-eval'; base-uri 'none'; form-action 'none'"
    )


def to_html(d: PageData) -> str:
    """The whole page: one string, nothing to fetch (web/page.html filled in)."""
    css = _asset("page.css")
    script = _asset("charnext.js") + "\n" + _asset("page.js")
    line_mode = d.spec["line_mode"]
    return Template(_asset("page.html")).substitute(
        generator=GENERATOR[PAGE],  # what `--out` recognises as its own file
        csp=content_security_policy(script, css),
        css=css,
        title=_e(d.title),
        prefix=_e(d.prefix),
        how=("Each line is a new sequence: after a newline the model starts afresh, as it was trained."
             if line_mode else "The model reads the text from its start, carrying its state."),
        what=("Whole lines, each starting with the last line of your text." if line_mode
              else "The model continues your text."),
        unit="lines" if line_mode else "characters",
        count=10 if line_mode else 500,
        card="".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in d.card),
        version=_e(__version__),
        dtype=_e(d.spec["dtype"]),
        spec=_json_block(d.spec),
        kernel=base64.b64encode(kernel_bytes()).decode("ascii"),
        weights=base64.b64encode(d.weights).decode("ascii"),
        script=script,
    )  # fmt: skip
