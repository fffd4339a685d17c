"""Recording units on numpy or on torch: `charnext neurons` and `charnext report` on each engine.

A 2x256 LSTM (untrained unless --checkpoint: the work is the same) reads the first --chars
characters of a text. Two measurements, each the median of --runs alternating runs:

- record: `scan` alone in this process (recording every unit and its sums; no start-up), per
  engine, with the numpy engine's seconds over torch's;
- commands: `charnext neurons` and `charnext report --file` as a user runs them (a fresh
  process each, output thrown away) with `--engine numpy` and `--engine torch`.

    python benchmarks/neurons_engines.py                      # 100,000 characters of tinyshakespeare
    python benchmarks/neurons_engines.py --chars 5000 --runs 1  # a quick check that it runs
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
ENGINES = ("numpy", "torch")


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def record_times(ckpt_path: str, text: str, runs: int) -> dict[str, list[float]]:
    """Seconds `scan` takes on each engine, in this process (the checkpoint loaded once each)."""
    from charnext import api
    from charnext.inside.neurons import scan

    ckpts = {engine: api.load(ckpt_path, engine=engine) for engine in ENGINES}
    times: dict[str, list[float]] = {engine: [] for engine in ENGINES}
    for _ in range(runs):
        for engine, ckpt in ckpts.items():
            kept, _ = ckpt.vocab.known(text, True)
            runner = ckpt.runner  # built before the clock starts
            start = time.perf_counter()
            scan(runner, ckpt.vocab, kept, None)
            times[engine].append(time.perf_counter() - start)
    return times


def command_times(ckpt: str, text: Path, out: Path, runs: int) -> dict[str, list[float]]:
    """Seconds `charnext neurons` and `charnext report --file` take per engine, fresh processes."""
    charnext = [sys.executable, "-m", "charnext"]
    commands = {}
    for engine in ENGINES:
        options = ["-c", ckpt, "-f", str(text), "--skip-unknown", "--max-chars", "0", "--engine", engine]
        commands[f"neurons {engine}"] = [*charnext, "neurons", *options]
        commands[f"report {engine}"] = [*charnext, "report", *options, "-o", str(out)]
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(runs):  # alternate, so that a busy moment hits all alike
        for name, argv in commands.items():
            times[name].append(timed(argv))
    return times


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="model to use [default: an untrained 2x256 LSTM]")
    p.add_argument("--text", default=str(TEXT), help="text whose first --chars characters are read")
    p.add_argument("--chars", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = Path(a.text).read_text(encoding="utf-8")[: a.chars]
        text_file = folder / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        ckpt = a.checkpoint
        if ckpt is None:
            from charnext import api

            ckpt = str(folder / "model.pt")
            api.train(text[:5000], out=ckpt, steps=1, hidden_size=256, num_layers=2, cell="lstm",
                      device="cpu", val_fraction=0.0)  # fmt: skip
        recorded = record_times(ckpt, text, a.runs)
        commands = command_times(ckpt, text_file, folder / "report.html", a.runs)
    print(f"{len(text):,} characters, {a.runs} runs, medians:")
    med = {name: statistics.median(v) for name, v in {**recorded, **commands}.items()}
    for engine in ENGINES:
        print(f"  record (scan) {engine:<6} {med[engine]:7.2f} s")
    print(f"  record: numpy / torch = {med['numpy'] / med['torch']:.2f}")
    for command in ("neurons", "report"):
        for engine in ENGINES:
            print(f"  {command} --engine {engine:<6} {med[f'{command} {engine}']:7.2f} s")
        print(f"  {command}: numpy / torch = {med[f'{command} numpy'] / med[f'{command} torch']:.2f}")


if __name__ == "__main__":
    main()
