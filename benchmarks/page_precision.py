"""The page against the numpy engine: the largest probability difference per cell and input kind,
with float32 and with float16 weights, and what float16 does to the loss.

    python benchmarks/page_precision.py --file tinyshakespeare.txt --names names.txt
    python benchmarks/page_precision.py -c shake.pt -c names.pt --file tinyshakespeare.txt
    python benchmarks/page_precision.py --smoke      # one tiny model of each kind, 200 characters

Without checkpoints it trains, for --steps steps each, a 2-layer model of every cell with
one-hot and with embedding input on --file (default: tinyshakespeare.txt of the data folder),
and (with --names) a line-mode LSTM on the names. For each model it writes a float32 and a
float16 page, reads --chars characters of the text in headless Chromium (the page's own
reader: the checkpoint's prime, then a stream, or each line after a newline from the zero
state), and compares every step's distribution with the numpy engine's (float32 weights).
It also gives the loss (nats/char) on that text with float32 and float16 weights, and what
`charnext page` chose ("auto": float16 below a 0.001 move). Load does not change any figure
here: they are counts, not times. One JSON line per model. Needs Selenium and Debian's
chromium and chromium-driver.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import harness
import numpy as np

from charnext import api
from charnext.inference.steps import read, softmax
from charnext.inside import page as web
from charnext.text.reading import read_text


def reference(ckpt, text: str) -> list:
    """The numpy engine's distributions as the page reads: after the checkpoint's prime (if it
    has one), then after each character (a line-mode model reads each line from the zero state)."""
    after_prime, _ = read(ckpt, "")  # (1, 1, V), or None
    logits, _ = read(ckpt, text)  # (1, T, V)
    parts = ([after_prime[0]] if after_prime is not None else []) + [logits[0]]
    return list(softmax(np.concatenate(parts)))


def page_probs(driver, html: str, folder: Path, text: str) -> list:
    from selenium.webdriver.support.ui import WebDriverWait

    path = folder / "page.html"
    path.write_text(html, encoding="utf-8")
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))
    driver.execute_script(
        "const t = document.getElementById('text'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('input'));",
        text,
    )
    WebDriverWait(driver, 300).until(
        lambda d: (
            d.execute_script("return charnextPage.reader.text.length") == len(text)
            and not d.execute_script("return document.body.dataset.busy")
        )
    )
    probs = driver.execute_script("return charnextPage.reader.probs.map(p => p && Array.from(p))")
    return [p for p in probs if p is not None]  # none before the first character: no prime


def train_models(folder: Path, text: str, names: str | None, a) -> list[Path]:
    kinds = [("lstm", 32)] if a.smoke else [(cell, emb) for cell in ("rnn", "gru", "lstm") for emb in (0, 32)]
    paths = []
    for cell, emb in kinds:
        path = folder / f"{cell}-{'emb' if emb else 'onehot'}.pt"
        api.train(text, out=path, cell=cell, embedding_size=emb, hidden_size=a.hidden_size, num_layers=2,
                  steps=a.steps, device="cpu", precision="fp32")  # fmt: skip
        paths.append(path)
    if names:
        path = folder / "lstm-lines.pt"
        api.train(names, out=path, cell="lstm", embedding_size=32, hidden_size=a.hidden_size, num_layers=2,
                  steps=a.steps, lines=True, device="cpu", precision="fp32")  # fmt: skip
        paths.append(path)
    return paths


def compare(driver, path: Path, text: str, names: str | None, chars: int, folder: Path) -> dict:
    """One model: the page's largest probability difference from the numpy engine with float32
    and float16 weights, and the loss with each."""
    ckpt = api.load(path, engine="numpy")
    lines = bool(ckpt.train_config.get("lines"))
    source = names if lines and names else text
    sample = "".join(c for c in source if c in ckpt.vocab)[:chars]
    if lines:
        sample = sample[: sample.rfind("\n")]  # whole lines
    want = reference(ckpt, sample)
    diffs = []
    for dtype in ("float32", "float16"):
        got = page_probs(driver, api.web_page(ckpt, dtype).html(), folder, sample)
        assert len(got) == len(want), (len(got), len(want))
        diffs.append(max(float(np.abs(np.array(g) - w).max()) for g, w in zip(got, want)))
    loss32 = web.text_loss(ckpt.runner, ckpt.vocab, sample, lines)
    loss16 = web.text_loss(web.as_float16(ckpt.runner), ckpt.vocab, sample, lines)
    c = ckpt.config
    kind = f"emb {c.embedding_size}" if c.embedding_size else "one-hot"
    kind += ", lines" if lines else ""
    model = f"{path.name} ({c.cell.value} {c.num_layers}x{c.hidden_size}, {kind})"
    return {"model": model, "chars": len(sample),
            "float32_max_dp": diffs[0], "float16_max_dp": diffs[1], "loss_f32": loss32, "loss_f16": loss16,
            "loss_move": loss16 - loss32,
            "auto": "float16" if abs(loss16 - loss32) < web.FLOAT16_TOLERANCE else "float32"}  # fmt: skip


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("-c", "--checkpoint", action="append", type=Path, help="checkpoints to compare")
    parser.add_argument("--file", type=Path, help="text to read (and to train on) "
                        "[default: tinyshakespeare.txt of the data]")  # fmt: skip
    parser.add_argument("--names", type=Path, help="a names file for a line-mode model [--smoke: names.txt "
                        "of the data]")  # fmt: skip
    parser.add_argument("--steps", type=int, default=300, help="training steps of each model built here")
    parser.add_argument("--hidden-size", type=int, default=128, help="width of each model built here")
    parser.add_argument("--chars", type=int, default=2000, help="characters of the text the page reads")
    args = parser.parse_args()
    harness.smoke(args, steps=2, hidden_size=16, chars=200)
    text = read_text(args.file or harness.data_file(args, "tinyshakespeare.txt"))
    if args.smoke:
        args.names = args.names or harness.data_file(args, "names.txt")
    names = read_text(args.names) if args.names else None
    if args.smoke:
        text, names = text[:5000], names[:5000]
    records = []
    with harness.browser() as driver, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for path in args.checkpoint or train_models(folder, text, names, args):
            figures = compare(driver, path, text, names, args.chars, folder)
            records.append(harness.emit(args, figures))
    harness.table(records, ["model", "float32_max_dp", "float16_max_dp", "loss_f32", "loss_f16", "loss_move",
                            "auto"])  # fmt: skip


if __name__ == "__main__":
    main()
