"""The report's page (`charnext report`): web/report.html filled in with the data `report.collect`
gathers, with web/report.css and web/report.js inline, the loss curves as inline SVG, and a
Content Security Policy that lets the page load nothing at all, so it works offline and leaks
nothing.

report.js: hover (or tap, on a phone) a character of a heat map and its details appear in the
info bar, fixed at the bottom of the window only while a character is hovered or tapped, so that
it never covers the rest of the page (a label of the loss chart, say).

The skeleton's second line is long, and report.css and report.js start with an empty line, so
that the page is byte for byte the one written when they were strings in report.py.
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from pathlib import Path
from string import Template

from charnext.events import plus_minus
from charnext.inference.surprise import SURPRISE_LEVELS, surprise_level
from charnext.inside.curves import loss_axis
from charnext.inside.neurons import FEATURES, diverging_level, scale
from charnext.inside.report import ReportData
from charnext.storage.replacing import GENERATOR, REPORT
from charnext.text.vocab import visible, visible_running
from charnext.version import __version__

LN2 = math.log(2)
WEB = Path(__file__).parent / "web"  # the report's skeleton, style and script (package data)


def _asset(name: str) -> str:
    return (WEB / name).read_text(encoding="utf-8")


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
        ("validation loss", f"{_fmt(t['val_loss'])}{plus_minus(t.get('val_se'))} nats/char"
         + (f" ({t['val_loss'] / LN2:.3f} bits/char)" if isinstance(t["val_loss"], float) else "")),
        ("best validation", f"{_fmt(t['best_val_loss'])}{plus_minus(t.get('best_val_se'))} nats/char"),
        ("training time", f"{_fmt(t['elapsed'], '.1f')} s on {t.get('device') or '-'}, "
                          f"{t.get('precision') or '-'}"),
        ("training text", f"{(t.get('text') or {}).get('length', 0):,} characters"),
        ("written by", f"charnext {d.info.get('charnext_version')}, {d.info.get('created')}"),
    ]  # fmt: skip
    if not any(_finite(t.get(k)) for k in ("val_loss", "best_val_loss")):  # nothing held out
        rows = [r for r in rows if r[0] not in ("validation loss", "best validation")]
    items = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in rows)
    return f'<section id="summary"><h2>Model and training</h2><dl>{items}</dl></section>'


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


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
    title = "Training and validation loss" if val else "Training loss"  # no curve for what was not held out
    head = f'<section id="curves"><h2>{title}</h2>'
    if not train and not val:
        return head + '<p class="note">No loss history in this checkpoint.</p></section>'
    W, H, L, R, T, B = 640, 280, 48, 12, 12, 36  # size and margins of the plot, in SVG units
    pts = train + val
    # the axis starts where the run did (step 0), not at the first bin's mean step (4 or 5)
    first = min(x for x in [*d.info["history_steps"], *d.info["validation"]["steps"]] if _finite(x))
    x_lo, x_hi = (0 if first <= 1 else first), max(p[0] for p in pts)
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
    shown = [(colour, name) for series, colour, name in ((train, "#2166ac", "training loss"),
             (val, "#d6604d", "validation loss")) if series]  # fmt: skip
    for i, (colour, name) in enumerate(shown):
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
    alternatives = len(d.prefix_steps[0]["top"])
    rows = []
    first = [(0, d.start_step)] if d.start_step is not None else []  # a line model's start: step 0
    for i, s in first + list(enumerate(d.prefix_steps, 1)):
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
        f'<th class="num">prob</th><th>top {alternatives}</th></tr></thead><tbody>{"".join(rows)}</tbody>'
        "</table></div>"
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
    """The whole page: one string, nothing to fetch (web/report.html filled in)."""
    css, script = _asset("report.css"), _asset("report.js")
    csp = (
        f"default-src 'none'; style-src {_csp_hash(css)}; script-src {_csp_hash(script)}; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    sections = [_summary(d), _curves(d), _predictions(d), _surprise(d), _units(d), _live_view(d)]
    return Template(_asset("report.html")).substitute(
        generator=GENERATOR[REPORT],  # what `--out` recognises as its own file
        csp=csp,
        css=css,
        title=_e(d.title),
        version=_e(__version__),
        created=_e(d.created),
        sections="".join(sections),
        script=script,
    )
