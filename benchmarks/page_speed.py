"""The model's web page in headless Chromium: its size, time to interactive and generation speed.

    python benchmarks/page_speed.py -c shake.pt -c hi.pt        # trained checkpoints
    python benchmarks/page_speed.py                             # a 2x256 LSTM built here

For each checkpoint it writes the page as `charnext page` does (weights "auto" unless
--weights), opens it from file:// `--loads` times in a fresh headless Chromium and reads:

- size: the HTML file's bytes;
- interactive: when the page has its model and takes keys (performance.now() at that moment,
  counted from the start of navigation), the median of the loads;
- chars/s, three ways, each over `--chars` characters at temperature 1 after a 40-character
  prompt: the Generate button (streaming into the page), the engine alone in the page
  (charnext.generate in a loop), and the same with the plain-JavaScript kernel (what a
  browser that refuses WebAssembly runs); beside them, `charnext predict`'s numpy engine in
  this process.

Take figures on an otherwise idle machine: the browser's speed is the CPU's.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from charnext import api
from charnext.config import SampleConfig

PROMPT = "First Citizen:\nBefore we proceed any f"


def build_default(folder: Path) -> Path:
    """An untrained 2x256 LSTM (embedding 64) over tinyshakespeare's 65 characters."""
    import torch

    from charnext.config import ModelConfig
    from charnext.modeling.model import CharModel
    from charnext.storage.checkpoint import save
    from charnext.text.vocab import Vocab

    chars = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    vocab = Vocab.from_text(chars)
    torch.manual_seed(0)
    model = CharModel(ModelConfig(len(vocab), "lstm", 256, 2, 64))
    return save(folder / "lstm-2x256.pt", model, vocab, step=0)


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--no-first-run", "--window-size=1200,1400"):  # fmt: skip
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)


ENGINE_SPEED = """
const [n, prompt, useJs, done] = arguments;
const p = charnextPage;
const model = useJs
  ? new charnext.CharModel(p.spec, charnext.readArrays(p.spec, p.weights), charnext.jsKernel())
  : p.model;
const idx = Array.from(prompt, (c) => p.spec.vocab.indexOf(c)).filter((i) => i >= 0);
const rng = new charnext.Pcg32(1n, 0);
const t0 = performance.now();
let made = 0;
for (const _ of charnext.generate(model, idx, n, {temperature: 1, topK: 0, topP: 1}, rng)) made++;
done([made, (performance.now() - t0) / 1000]);
"""


def measure(path: Path, weights: str, loads: int, chars: int) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    ckpt = api.load(path, engine="numpy")
    c = ckpt.config
    t0 = time.perf_counter()
    data = api.web_page(ckpt, weights, name=path.name)
    html = data.html()
    made_in = time.perf_counter() - t0
    out = Path(tempfile.mkdtemp()) / f"{path.stem}.html"
    out.write_text(html, encoding="utf-8")
    row = {
        "model": f"{path.name}: {c.cell.value} {c.num_layers}x{c.hidden_size}, vocab {c.vocab_size}",
        "size": out.stat().st_size,
        "weights": data.precision.describe(),
        "written in s": round(made_in, 2),
    }
    prompt = "".join(ch for ch in PROMPT if ch in ckpt.vocab)
    ready = []
    for _ in range(loads):
        driver = browser()  # a fresh browser each time: nothing cached
        try:
            driver.get(out.resolve().as_uri())
            WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))
            ready.append(driver.execute_script("return charnextPage.readyAt") / 1000)
        finally:
            driver.quit()
    row["interactive s"] = round(statistics.median(ready), 3)
    driver = browser()
    try:
        driver.set_script_timeout(600)
        driver.get(out.resolve().as_uri())
        WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))
        row["kernel"] = driver.find_element("id", "engine").text
        driver.find_element("id", "text").send_keys(prompt)
        fill = "document.getElementById(arguments[0]).value = arguments[1]"
        for key, value in {"gen-n": chars, "gen-temperature": 1, "gen-seed": 1}.items():
            driver.execute_script(fill, key, str(value))
        driver.find_element("id", "gen-go").click()
        WebDriverWait(driver, 600).until(lambda d: d.execute_script("return charnextPage.lastGeneration"))
        made, seconds = driver.execute_script(
            "const g = charnextPage.lastGeneration; return [g.made, g.seconds]"
        )
        row["page chars/s (Generate)"] = round(made / seconds)
        for label, use_js in (("engine chars/s", False), ("plain JS chars/s", True)):
            made, seconds = driver.execute_async_script(ENGINE_SPEED, chars, prompt, use_js)
            row[label] = round(made / seconds)
    finally:
        driver.quit()
    t0 = time.perf_counter()
    generated = api.generate(ckpt, prompt, chars, SampleConfig(temperature=1.0, seed=1))[0]
    row["numpy engine chars/s"] = round(len(generated) / (time.perf_counter() - t0))
    return row


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("-c", "--checkpoint", action="append", type=Path, help="checkpoint(s) to measure")
    parser.add_argument("--weights", default="auto", choices=["auto", "float16", "float32"])
    parser.add_argument("--loads", type=int, default=5, help="page loads for the time to interactive")
    parser.add_argument("--chars", type=int, default=5000, help="characters generated per speed figure")
    args = parser.parse_args()
    paths = args.checkpoint or [build_default(Path(tempfile.mkdtemp()))]
    for path in paths:
        row = measure(path, args.weights, args.loads, args.chars)
        print()
        for key, value in row.items():
            shown = f"{value:,}" if isinstance(value, int) else value
            print(f"  {key:<26} {shown}")


if __name__ == "__main__":
    main()
