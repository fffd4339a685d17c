"""Every colour the terminal views use, once: the surprise levels and the diverging activation scale."""

from __future__ import annotations

# Heat map buckets by the probability the model gave a character: confident characters are
# calm (green, yellow text), surprising ones loud (yellow, then red backgrounds; a background
# also shows a surprising space). Without colour, marks go on a line of their own under the text.
HEAT = [  # (style, mark) of each surprise level (charnext.inference.surprise.SURPRISE_LEVELS)
    ("green", " "),
    ("yellow", "."),
    ("black on yellow", "+"),
    ("bold white on red", "!"),
]


# A diverging scale (ColorBrewer RdBu): blue below zero, red above, no colour near zero; dark
# backgrounds take white text. In a pipe a bar under each character gives its level instead.
DIVERGING = {
    -4: "white on #2166ac", -3: "white on #4393c3", -2: "black on #92c5de", -1: "black on #d1e5f0",
    0: "", 1: "black on #fddbc7", 2: "black on #f4a582", 3: "white on #d6604d", 4: "white on #b2182b",
}  # fmt: skip


SPARK = "▁▂▃▄▅▆▇█"  # the plain form: lowest (most negative) to highest (most positive)
