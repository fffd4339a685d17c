"""The model's web page in headless Chromium: its size, time to interactive and generation speed.

    python benchmarks/page_speed.py -c shake.pt -c hi.pt        # trained checkpoints
    python benchmarks/page_speed.py                             # the untrained 2x256 LSTM
    python benchmarks/page_speed.py --smoke                     # a tiny one, 1 load, 50 characters

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

Take figures on an otherwise idle machine: the browser's speed is the CPU's. One JSON line per
checkpoint. Needs Selenium and Debian's chromium and chromium-driver.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import harness

from charnext import api
from charnext.config import SampleConfig

PROMPT = "First Citizen:\nBefore we proceed any f"
WINDOW = ["--window-size=1200,1400"]


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


def ready(driver, page: Path) -> None:
    """Open the page and wait until it has its model and takes keys."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready"))


def measure(path: Path, weights: str, loads: int, chars: int, folder: Path) -> dict:
    from selenium.webdriver.support.ui import WebDriverWait

    ckpt = api.load(path, engine="numpy")
    c = ckpt.config
    t0 = time.perf_counter()
    data = api.web_page(ckpt, weights, name=path.name)
    html = data.html()
    made_in = time.perf_counter() - t0
    out = folder / f"{path.stem}.html"
    out.write_text(html, encoding="utf-8")
    row = {
        "model": f"{path.name}: {c.cell.value} {c.num_layers}x{c.hidden_size}, vocab {c.vocab_size}",
        "size": out.stat().st_size,
        "weights": data.precision.dtype,
        "weights_why": data.precision.describe(),
        "written_s": round(made_in, 2),
    }
    prompt = "".join(ch for ch in PROMPT if ch in ckpt.vocab)
    interactive = harness.Runs()
    for _ in range(loads):
        with harness.browser(*WINDOW) as driver:  # a fresh browser each time: nothing cached
            ready(driver, out)
            interactive.add(driver.execute_script("return charnextPage.readyAt") / 1000)
    row["interactive_s"], row["interactive_runs_s"] = round(interactive.median, 3), interactive.values
    with harness.browser(*WINDOW) as driver:
        driver.set_script_timeout(600)
        ready(driver, out)
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
        row["page_chars_per_sec"] = round(made / seconds)
        for label, use_js in (("engine_chars_per_sec", False), ("plain_js_chars_per_sec", True)):
            made, seconds = driver.execute_async_script(ENGINE_SPEED, chars, prompt, use_js)
            row[label] = round(made / seconds)
    t0 = time.perf_counter()
    generated = api.generate(ckpt, prompt, chars, SampleConfig(temperature=1.0, seed=1))[0]
    row["numpy_chars_per_sec"] = round(len(generated) / (time.perf_counter() - t0))
    return row


def main() -> None:
    parser = harness.parser(__doc__)
    parser.add_argument("-c", "--checkpoint", action="append", type=Path, help="checkpoint(s) to measure")
    parser.add_argument("--weights", default="auto", choices=["auto", "float16", "float32"])
    parser.add_argument("--loads", type=int, default=5, help="page loads for the time to interactive")
    parser.add_argument("--chars", type=int, default=5000, help="characters generated per speed figure")
    args = parser.parse_args()
    harness.smoke(args, loads=1, chars=50)
    harness.require_browser()  # before a model is built
    paths = args.checkpoint or [harness.untrained_lstm(harness.SHAKESPEARE_CHARS, tiny=args.smoke)]
    records = []
    with tempfile.TemporaryDirectory() as folder:
        for path in paths:
            row = measure(path, args.weights, args.loads, args.chars, Path(folder))
            records.append(harness.emit(args, row, precision=row["weights"]))
            harness.say(f"{row['model']}: {row['weights_why']}")
    speeds = ["page_chars_per_sec", "engine_chars_per_sec", "plain_js_chars_per_sec", "numpy_chars_per_sec"]
    harness.table(records, ["model", "size", "weights", "interactive_s", *speeds])


if __name__ == "__main__":
    main()
