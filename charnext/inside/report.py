"""A shareable report of a model as one self-contained HTML file (`charnext report`).

`collect` gathers plain data from a checkpoint and a text on the checkpoint's engine (numpy on
the CPU by default: no torch); `to_html` turns that data into the page: inline CSS and SVG, a few
lines of JavaScript, and a Content Security Policy that lets the page load nothing at all, so it
works offline and leaks nothing.
"""

from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import html
import math
from dataclasses import dataclass, field

from charnext.config import SampleConfig
from charnext.errors import ConfigError
from charnext.inference.sampling import generate
from charnext.inference.steps import predict_steps
from charnext.inference.surprise import SURPRISE_LEVELS, score_chars, surprise_level
from charnext.inside.curves import loss_axis
from charnext.inside.neurons import FEATURES, diverging_level, scale, scan
from charnext.storage.checkpoint import Checkpoint
from charnext.storage.describe import describe
from charnext.text.vocab import visible, visible_running
from charnext.version import __version__

LN2 = math.log(2)
SAMPLE_CHARS = 3000  # without a text, the report reads this many characters the model writes


@dataclass
class ReportData:
    """Everything the page shows, as plain values."""

    title: str  # the checkpoint's name
    info: dict  # describe(checkpoint)
    source: str  # where the text came from
    prefix_steps: list[dict]  # per-step predictions for the prefix: input, top [(char, p)], target
    surprise: list[dict]  # per character of the stretch: char, prob (None: unscored), top
    units: list[dict]  # the most telling units: name, description, feature, r, values
    neuron_chars: int  # characters the unit scores cover
    created: str = field(
        default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    )


def _sample(ckpt: Checkpoint, length: int, sample: SampleConfig) -> str:
    """A text the model writes itself, from its zero state (reproducible with a seed)."""
    start = "\n" if "\n" in ckpt.vocab else ckpt.vocab.chars[0]
    drawn = "".join(chars[0] for chars in generate(ckpt.runner, ckpt.vocab, start, length, sample))
    return ("" if start == "\n" else start) + drawn


def _prefix_steps(ckpt: Checkpoint, prefix: str, top_k: int) -> list[dict]:
    """The lecture's table: after each character of `prefix`, the k most likely next ones
    (read from the model's start, as `predict` reads it)."""
    return [
        {"input": s.input, "top": s.top, "target": s.target}
        for s in predict_steps(ckpt.runner, ckpt.vocab, prefix, top_k, ckpt.start)
    ]


def _described(sample: SampleConfig) -> str:
    """'temperature 0.8, seed 0' (top-k and top-p where they cut)."""
    parts = [f"temperature {sample.temperature:g}"]
    parts += [f"top-k {sample.top_k}"] if sample.top_k else []
    parts += [f"top-p {sample.top_p:g}"] if sample.top_p < 1 else []
    return ", ".join(parts + ([f"seed {sample.seed}"] if sample.seed is not None else []))


@dataclass(frozen=True)
class ReportRequest:
    """What a report is asked to show (`charnext report`'s options)."""

    text: str | None = None  # the text read; None: a sample the model writes itself
    source: str | None = None  # where the text came from, as the page names it
    prefix: str | None = None  # the per-step table's prefix; None: the stretch's first line
    offset: int = 0  # where the heat maps start in the text
    chars: int = 500  # characters the heat maps show
    units: int = 6  # units shown as heat maps
    alternatives: int = 5  # most likely characters shown per step
    max_chars: int | None = 100_000  # characters the units are scored on; None: all
    skip_unknown: bool = False  # drop characters the vocabulary lacks
    sample: SampleConfig | None = None  # how the model's own sample is drawn (temperature 0.8, seed 0)


def collect(ckpt: Checkpoint, request: ReportRequest | None = None, **fields) -> ReportData:
    """Gather the report's data for `request` (or a request of these `fields`). Without a text,
    the model's own sample is read."""
    r = request or ReportRequest(**fields)
    text, source, prefix, offset, chars, units = r.text, r.source, r.prefix, r.offset, r.chars, r.units
    top_k, max_chars, skip_unknown, sample = r.alternatives, r.max_chars, r.skip_unknown, r.sample
    if chars < 1 or units < 0 or top_k < 1 or offset < 0:
        raise ConfigError("the stretch and top-k must be at least 1, units and offset 0 or more")
    if text is None:
        sample = sample or SampleConfig(temperature=0.8, seed=0)
        text, source = _sample(ckpt, SAMPLE_CHARS, sample), f"a sample the model wrote ({_described(sample)})"
    text, _ = ckpt.vocab.known(text, skip_unknown)
    if prefix is None:  # the first line of the stretch, up to 40 characters
        first = text[offset:].split("\n", 1)[0]
        prefix = (first or text[offset:])[:40]
    prefix, _ = ckpt.vocab.known(prefix, skip_unknown)
    line_mode = ckpt.line_mode
    scanned = scan(ckpt.runner, ckpt.vocab, text, max_chars, offset, chars, line_mode)
    view = score_chars(ckpt.runner, ckpt.vocab, text, offset, chars, top_k, start=ckpt.start)
    chosen = [
        {
            "name": s.unit.name,
            "description": s.unit.description,
            "feature": s.feature,
            "r": s.r,
            "values": [float(v) for v in scanned.activation(s.unit)],
        }
        for s in scanned.best_per_feature()[:units]
    ]
    return ReportData(
        title=ckpt.path.name if ckpt.path else "model",
        info=describe(ckpt),
        source=source or "the text given",
        prefix_steps=_prefix_steps(ckpt, prefix, top_k) if prefix else [],
        surprise=[{"char": c.char, "prob": c.prob, "top": c.top} for c in view.chars],
        units=chosen,
        neuron_chars=scanned.characters,
    )


# ---------------------------------------------------------------------------------------------
# the page

_CSS = """
:root { --fg: #1b1b1b; --muted: #5f6368; --rule: #d9d9d9; --accent: #2166ac; --bg: #fff; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: var(--bg); }
main { max-width: 60rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.6rem; margin: .5rem 0 0; }
h2 { font-size: 1.25rem; margin: 2rem 0 .5rem; border-bottom: 1px solid var(--rule); }
h3 { font-size: 1rem; margin: 1.2rem 0 .3rem; }
p.note, .muted { color: var(--muted); font-size: .9rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; }
dt { color: var(--muted); } dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; background:
  linear-gradient(to right, #fff 30%, #fff0), linear-gradient(to left, #fff 30%, #fff0) 100% 0,
  radial-gradient(farthest-side at 0 50%, #0003, #0000),
  radial-gradient(farthest-side at 100% 50%, #0003, #0000) 100% 0;
  background-repeat: no-repeat; background-size: 2.5rem 100%, 2.5rem 100%, .8rem 100%, .8rem 100%;
  background-attachment: local, local, scroll, scroll; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { padding: .2rem .6rem; border-bottom: 1px solid var(--rule); text-align: left; white-space: nowrap; }
td.num, th.num { text-align: right; }
td.ch { font-family: ui-monospace, Menlo, Consolas, monospace; text-align: center; }
.alt { margin-right: .6rem; white-space: nowrap; display: inline-block; }
code { background: #f0f0f0; padding: 0 .2rem; border-radius: 2px; }
.hit { color: #1a7f37; } .miss { color: #b2182b; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 12px system-ui, sans-serif; fill: var(--muted); }
.heat { font: 15px/1.9 ui-monospace, Menlo, Consolas, monospace; white-space: pre-wrap;
  overflow-wrap: anywhere; border: 1px solid var(--rule); padding: .5rem; }
.heat span { border-radius: 2px; }
.heat span:hover, .heat span.on { outline: 2px solid var(--fg); }
.legend span { display: inline-block; padding: 0 .4rem; margin: .1rem; font-size: .85rem; }
.nl { color: var(--muted); }
.s0 { color: #1a7f37; } .s1 { background: #fff3bf; } .s2 { background: #ffd43b; }
.s3 { background: #c92a2a; color: #fff; } .su { color: var(--muted); }
.n4 { background: #2166ac; color: #fff; } .n3 { background: #4393c3; color: #fff; }
.n2 { background: #92c5de; } .n1 { background: #d1e5f0; }
.p1 { background: #fddbc7; } .p2 { background: #f4a582; }
.p3 { background: #d6604d; color: #fff; } .p4 { background: #b2182b; color: #fff; }
#info { position: fixed; left: 0; right: 0; bottom: 0; margin: 0; padding: .4rem .6rem;
  background: #f6f8fa; border-top: 1px solid var(--rule); font-size: .9rem; display: none; }
#info.shown { display: block; }
footer { margin: 3rem 0 1rem; color: var(--muted); font-size: .8rem; }
@media (max-width: 40rem) { main { padding: .6rem; } .heat { font-size: 13px; }
  table { font-size: .85rem; } th, td { padding: .15rem .3rem; }
  td.alts { white-space: normal; min-width: 7rem; } .alt { margin-right: .35rem; }
  svg text { font-size: 20px; } }
@media print {
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  main { max-width: none; padding: 0; } #info, #info.shown { display: none; }
  h2, h3 { break-after: avoid; } table, svg, .legend { break-inside: avoid; }
  body { font-size: 11pt; }
}
"""

# Hover (or tap, on a phone) a character of a heat map: its details appear in the info bar,
# fixed at the bottom of the window only while a character is hovered or tapped, so that it
# never covers the rest of the page (a label of the loss chart, say).
_JS = """
(function () {
  var info = document.getElementById("info"), last = null;
  function show(e) {
    var t = e.target;
    if (t.tagName !== "SPAN" || !t.title) return;
    if (last) last.classList.remove("on");
    t.classList.add("on"); last = t;
    info.textContent = t.title; info.classList.add("shown");
  }
  function hide() {
    if (last) last.classList.remove("on");
    last = null; info.classList.remove("shown");
  }
  document.querySelectorAll(".heat").forEach(function (h) {
    h.addEventListener("mouseover", show);
    h.addEventListener("click", function (e) { e.stopPropagation(); show(e); });
    h.addEventListener("mouseleave", hide);
  });
  document.addEventListener("click", hide);
})();
"""


def _csp_hash(source: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(source.encode()).digest()).decode() + "'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _span(ch: str, cls: str, detail: str) -> str:
    """One character of a heat map; a line break shows as ↵ and breaks the line."""
    shown = _e(visible_running(ch))  # the one notation: ↵, \t, \x1b, ...
    span = f'<span class="{cls}" title="{_e(detail)}">{shown}</span>'
    return span + ("\n" if ch == "\n" else "")


def _fmt(v: object, spec: str = ".4f") -> str:
    return format(v, spec) if isinstance(v, (int, float)) and math.isfinite(v) else "-"


def _summary(d: ReportData) -> str:
    m, t = d.info["model"], d.info["training"]
    rows = [
        ("model", f"{m['cell']} · {m['num_layers']} × {m['hidden_size']} units · "
                  + (f"embedding {m['embedding_size']}" if m["embedding_size"] else "one-hot input")),
        ("parameters", f"{m['parameters']:,}"),
        ("vocabulary", f"{m['vocab_size']} characters"),
        ("steps", f"{t['steps']:,}"),
        ("final loss", f"{_fmt(t['final_loss'])} nats/char"),
        ("validation loss", f"{_fmt(t['val_loss'])} nats/char"
         + (f" ({t['val_loss'] / LN2:.3f} bits/char)" if isinstance(t["val_loss"], float) else "")),
        ("best validation", f"{_fmt(t['best_val_loss'])} nats/char"),
        ("training time", f"{_fmt(t['elapsed'], '.1f')} s on {t.get('device') or '-'}, "
                          f"{t.get('precision') or '-'}"),
        ("training text", f"{(t.get('text') or {}).get('length', 0):,} characters"),
        ("written by", f"charnext {d.info.get('charnext_version')}, {d.info.get('created')}"),
    ]  # fmt: skip
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<section id="summary"><h2>Model and training</h2><dl>{items}</dl></section>'


def _bins(xs: list, ys: list, n: int = 300) -> list[tuple[float, float]]:
    """At most `n` points: the mean of the points in each of n equal steps of x."""
    pts = [(x, y) for x, y in zip(xs, ys) if isinstance(y, (int, float)) and math.isfinite(y)]
    if len(pts) <= n:
        return pts
    lo, hi = pts[0][0], pts[-1][0]
    groups: dict[int, list] = {}
    for x, y in pts:
        groups.setdefault(min(n - 1, int((x - lo) / max(hi - lo, 1e-9) * n)), []).append((x, y))
    return [(sum(p[0] for p in g) / len(g), sum(p[1] for p in g) / len(g)) for _, g in sorted(groups.items())]


def _curves(d: ReportData) -> str:
    train = _bins(d.info["history_steps"], d.info["history"])
    val = _bins(d.info["validation"]["steps"], d.info["validation"]["loss"])
    head = '<section id="curves"><h2>Training and validation loss</h2>'
    if not train and not val:
        return head + '<p class="note">No loss history in this checkpoint.</p></section>'
    W, H, L, R, T, B = 640, 280, 48, 12, 12, 36  # size and margins of the plot, in SVG units
    pts = train + val
    x_lo, x_hi = min(p[0] for p in pts), max(p[0] for p in pts)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1
    y_lo, y_hi = loss_axis(pts)  # fits the curves after their first tenth
    y_hi = y_hi if y_hi > y_lo else y_lo + 1e-3

    def sx(x: float) -> float:
        return L + (x - x_lo) / (x_hi - x_lo) * (W - L - R)

    def sy(y: float) -> float:
        return T + (1 - (min(y, y_hi) - y_lo) / (y_hi - y_lo)) * (H - T - B)

    parts = [f'<svg viewBox="0 0 {W} {H}" role="img" aria-label="loss over training steps">']
    for i in range(5):  # horizontal grid lines with their values
        y = y_lo + (y_hi - y_lo) * i / 4
        parts.append(f'<line x1="{L}" x2="{W - R}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" stroke="#e5e5e5"/>')
        parts.append(f'<text x="{L - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:.2f}</text>')
    for x, anchor in ((x_lo, "start"), ((x_lo + x_hi) / 2, "middle"), (x_hi, "end")):  # inside the edges
        parts.append(f'<text x="{sx(x):.1f}" y="{H - B + 18}" text-anchor="{anchor}">{x:,.0f}</text>')
    parts.append(f'<text x="{(L + W - R) / 2}" y="{H - 4}" text-anchor="middle">step</text>')
    for series, colour in ((train, "#2166ac"), (val, "#d6604d")):
        # above the scale a curve leaves the chart: it is cut at the top edge there, and each
        # place it leaves or enters is marked with a caret, so that it never looks flat
        for segment, exits in _clip(series, y_hi):
            line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in segment)
            parts.append(f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="2"/>')
            for x in exits:
                caret = f"M{sx(x) - 5:.1f},{T + 6:.1f} L{sx(x):.1f},{T - 2:.1f} L{sx(x) + 5:.1f},{T + 6:.1f}"
                parts.append(f'<path d="{caret}" fill="none" stroke="{colour}" stroke-width="2"/>')
        if len(series) <= 60:
            parts += [
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3" fill="{colour}"/>'
                for x, y in series
                if y <= y_hi
            ]
    legend_x = W - R - 330  # room for the labels at a phone's larger type
    for i, (colour, name) in enumerate((("#2166ac", "training loss"), ("#d6604d", "validation loss"))):
        y = T + 14 + i * 22
        parts.append(f'<rect x="{legend_x}" y="{y - 8}" width="14" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{legend_x + 20}" y="{y}">{name} (nats/char)</text>')
    parts.append("</svg>")
    clipped = max(p[1] for p in pts) > y_hi
    note = (f'<p class="note">The scale fits the curves after their first tenth: above it (^) the early '
            f"losses run up to {max(p[1] for p in pts):.2f}.</p>" if clipped else "")  # fmt: skip
    return head + "".join(parts) + note + "</section>"


def _clip(series: list[tuple[float, float]], top: float) -> list[tuple[list, list]]:
    """A curve cut where it rises above `top`: its visible pieces, each with the x where it
    crosses the top edge (to mark). A crossing is interpolated onto the edge."""
    pieces: list[tuple[list, list]] = []
    current: list = []
    crossings: list = []
    for i, (x, y) in enumerate(series):
        if i:
            (x0, y0) = series[i - 1]
            if (y0 > top) != (y > top):  # crosses the edge between the two points
                xc = x0 + (top - y0) / (y - y0) * (x - x0)
                current.append((xc, top))
                crossings.append(xc)
                if y > top:  # leaves: this piece ends at the edge
                    pieces.append((current, crossings))
                    current, crossings = [], []
        if y <= top:
            current.append((x, y))
    if current:
        pieces.append((current, crossings))
    elif crossings and pieces:
        pieces[-1][1].extend(crossings)
    return [(p, c) for p, c in pieces if p]


def _predictions(d: ReportData) -> str:
    head = '<section id="predictions"><h2>Per-step predictions</h2>'
    if not d.prefix_steps:
        return head + '<p class="note">No prefix.</p></section>'
    prefix = "".join(s["input"] for s in d.prefix_steps)
    k = len(d.prefix_steps[0]["top"])
    rows = []
    for i, s in enumerate(d.prefix_steps, 1):
        best, p = s["top"][0]
        hit = ' <span class="hit">✓</span>' if s["target"] == best else ' <span class="miss">✗</span>'
        mark = "" if s["target"] is None else hit
        alts = " ".join(f'<span class="alt"><code>{_e(visible(c))}</code> {q:.2f}</span>'
                        for c, q in s["top"])  # fmt: skip
        rows.append(f'<tr><td class="num">{i}</td><td class="ch">{_e(visible(s["input"]))}</td>'
                    f'<td class="ch">{_e(visible(best))}{mark}</td><td class="num">{p:.3f}</td>'
                    f'<td class="alts">{alts}</td></tr>')  # fmt: skip
    return (
        head + f'<p class="note">The model reads <code>{_e(prefix)}</code> one character at a time; '
        "after each it predicts the next (✓: the next character of the prefix).</p>"
        f'<div class="scroll"><table><thead><tr><th class="num">step</th><th>input</th><th>predicted</th>'
        f'<th class="num">prob</th><th>top {k}</th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
        "</section>"
    )


def _surprise(d: ReportData) -> str:
    spans = []
    for c in d.surprise:
        if c["prob"] is None:
            spans.append(_span(c["char"], "su", f"{visible(c['char'])}: first character, not predicted"))
            continue
        cls = f"s{surprise_level(c['prob'])}"
        bits = -math.log2(c["prob"]) if c["prob"] > 0 else math.inf
        alts = ", ".join(f"{visible(a)} {p:.0%}" for a, p in c["top"])
        spans.append(
            _span(c["char"], cls, f"{visible(c['char'])}: {c['prob']:.1%} ({bits:.1f} bits); expected {alts}")
        )
    legend = "".join(f'<span class="s{i}">{label}</span>' for i, (_, label) in enumerate(SURPRISE_LEVELS))
    return (
        '<section id="surprise"><h2>Surprise</h2>'
        f'<p class="note">{len(d.surprise):,} characters of {_e(d.source)}, coloured by the probability '
        "the model gave each one. Hover or tap a character to see what the model expected instead.</p>"
        f'<p class="legend">{legend}</p><div class="heat">{"".join(spans)}</div></section>'
    )


def _units(d: ReportData) -> str:
    head = '<section id="units"><h2>What the units follow</h2>'
    if not d.units:
        return head + '<p class="note">No units asked for.</p></section>'
    text = "".join(c["char"] for c in d.surprise)
    parts = [
        head,
        f'<p class="note">Every unit of every layer was recorded over {d.neuron_chars:,} characters and '
        "correlated with simple features of the text; for the features with the strongest unit, that "
        "unit's activation after each character: blue below zero, red above.</p>",
        '<p class="legend">' + "".join(f'<span class="{c}">{t}</span>' for c, t in (
            ("n4", "most negative"), ("n2", "−"), ("", "0"), ("p2", "+"), ("p4", "most positive"))) + "</p>",
    ]  # fmt: skip
    for u in d.units:
        magnitude = scale(u["values"])
        spans = []
        for ch, v in zip(text, u["values"]):
            level = diverging_level(v, magnitude)
            cls = f"n{-level}" if level < 0 else f"p{level}" if level > 0 else ""
            spans.append(_span(ch, cls, f"{visible(ch)}: {u['name']} = {v:+.3f}"))
        parts.append(
            f'<h3>{_e(u["name"])} <span class="muted">({_e(u["description"])})</span> follows '
            f"{_e(u['feature'])}, r = {u['r']:+.2f}</h3>"
            f'<p class="note">{_e(u["feature"])}: {_e(FEATURES.get(u["feature"], ""))}; '
            f"the scale runs from {-magnitude:+.2f} to {magnitude:+.2f}.</p>"
            f'<div class="heat">{"".join(spans)}</div>'
        )
    parts.append("</section>")
    return "".join(parts)


def _live_view(d: ReportData) -> str:
    """How to make the live page (charnext page). Linked, not embedded: it holds the weights,
    about 2.4 MB for the default 2 × 256 LSTM, many times the report (about 140 KB), which is
    made to be sent and printed; and its script compiles WebAssembly, which the report's
    policy does not allow."""
    from charnext.config import ModelConfig
    from charnext.inside.page import page_size

    m = d.info["model"]
    shape = ("vocab_size", "cell", "hidden_size", "num_layers", "embedding_size")
    size = page_size(ModelConfig(**{k: m[k] for k in shape})) / 1e6
    name = d.title.rsplit(".", 1)[0]
    return (
        '<section id="live"><h2>Try the model</h2><p class="note">To type and watch its predictions, or '
        f"to let it write, in any browser: <code>charnext page -c {_e(d.title)} --out {_e(name)}.html</code> "
        f"writes the model as a page of its own (about {size:.1f} MB with float16 weights).</p></section>"
    )


def to_html(d: ReportData) -> str:
    """The whole page: one string, nothing to fetch."""
    csp = (
        f"default-src 'none'; style-src {_csp_hash(_CSS)}; script-src {_csp_hash(_JS)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    body = "".join(
        [
            f"<header><h1>charnext report: {_e(d.title)}</h1>"
            f'<p class="muted">Made by charnext {__version__} on {_e(d.created)}.</p></header>',
            _summary(d),
            _curves(d),
            _predictions(d),
            _surprise(d),
            _units(d),
            _live_view(d),
            '<p id="info" aria-live="polite">Hover or tap a coloured character for details.</p>',
            "<footer>A self-contained page: it loads nothing from the network.</footer>",
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>charnext report: {_e(d.title)}</title><style>{_CSS}</style></head>"
        f"<body><main>{body}</main><script>{_JS}</script></body></html>\n"
    )
