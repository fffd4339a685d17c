"""The page against the numpy engine: the largest probability difference per cell and input kind,
with float32 and with float16 weights, and what float16 does to the loss.

    python benchmarks/page_precision.py --file tinyshakespeare.txt --names names.txt
    python benchmarks/page_precision.py -c shake.pt -c names.pt --file tinyshakespeare.txt

Without checkpoints it trains, for --steps steps each, a 2-layer model of every cell with
one-hot and with embedding input on --file, and (with --names) a line-mode LSTM on the names.
For each model it writes a float32 and a float16 page, reads --chars characters of the text
in headless Chromium (the page's own reader: a stream from the zero state, or each line after
a newline from the zero state), and compares every step's distribution with the numpy
engine's (float32 weights). It also gives the loss (nats/char) on that text with float32 and
float16 weights, and what `charnext page` chose ("auto": float16 below a 0.001 move).
Load does not change any figure here: they are counts, not times.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np

from charnext import api
from charnext.inference.steps import softmax
from charnext.inside import page as web
from charnext.text.reading import read_text


def reference(ckpt, text: str, lines: bool) -> list:
    """The numpy engine's distributions after each position, read as the page reads."""
    model, vocab = ckpt.runner, ckpt.vocab
    if not lines:
        logits, _ = model.forward(vocab.encode_array(text)[None])
        return list(softmax(logits[0]))  # after characters 1..n (the page's positions 1..n)
    out = []
    for line in text.split("\n"):
        logits, _ = model.forward(vocab.encode_array("\n" + line)[None])
        out += list(softmax(logits[0]))
    return out


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
    return [p for p in probs if p is not None]


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


def train_models(folder: Path, text: str, names: str | None, steps: int) -> list[Path]:
    paths = []
    for cell in ("rnn", "gru", "lstm"):
        for emb in (0, 32):
            path = folder / f"{cell}-{'emb' if emb else 'onehot'}.pt"
            api.train(text, out=path, cell=cell, embedding_size=emb, hidden_size=128, num_layers=2,
                      steps=steps, device="cpu", precision="fp32")  # fmt: skip
            paths.append(path)
    if names:
        path = folder / "lstm-lines.pt"
        api.train(names, out=path, cell="lstm", embedding_size=32, hidden_size=128, num_layers=2,
                  steps=steps, lines=True, device="cpu", precision="fp32")  # fmt: skip
        paths.append(path)
    return paths


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("-c", "--checkpoint", action="append", type=Path, help="checkpoints to compare")
    parser.add_argument("--file", type=Path, required=True, help="text to read (and to train on)")
    parser.add_argument("--names", type=Path, help="a names file for a line-mode model")
    parser.add_argument("--steps", type=int, default=300, help="training steps of each model built here")
    parser.add_argument("--chars", type=int, default=2000, help="characters of the text the page reads")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp())
    text = read_text(args.file)
    names = read_text(args.names) if args.names else None
    paths = args.checkpoint or train_models(folder, text, names, args.steps)
    driver = browser()
    print(f"\n{'model':<44} {'float32 max |Δp|':>17} {'float16 max |Δp|':>17} {'loss f32':>9} "
          f"{'loss f16':>9} {'Δloss':>9}  auto")  # fmt: skip
    try:
        for path in paths:
            ckpt = api.load(path, engine="numpy")
            lines = bool(ckpt.train_config.get("lines"))
            source = names if lines and names else text
            sample = "".join(c for c in source if c in ckpt.vocab)[: args.chars]
            if lines:
                sample = sample[: sample.rfind("\n")]  # whole lines
            want = reference(ckpt, sample, lines)
            diffs = []
            for dtype in ("float32", "float16"):
                got = page_probs(driver, api.web_page(ckpt, dtype).html(), folder, sample)
                assert len(got) == len(want), (len(got), len(want))
                diffs.append(max(float(np.abs(np.array(g) - w).max()) for g, w in zip(got, want)))
            loss32 = web.text_loss(ckpt.runner, ckpt.vocab, sample, lines)
            loss16 = web.text_loss(web.as_float16(ckpt.runner), ckpt.vocab, sample, lines)
            auto = "float16" if abs(loss16 - loss32) < web.FLOAT16_TOLERANCE else "float32"
            c = ckpt.config
            kind = f"emb {c.embedding_size}" if c.embedding_size else "one-hot"
            kind += ", lines" if lines else ""
            name = f"{path.name} ({c.cell.value} {c.num_layers}x{c.hidden_size}, {kind})"
            print(f"{name:<44} {diffs[0]:>17.1e} {diffs[1]:>17.1e} {loss32:>9.4f} {loss16:>9.4f} "
                  f"{loss16 - loss32:>+9.5f}  {auto}")  # fmt: skip
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
