"""Training throughput of charnext end to end against the bare PyTorch step.

Runs `../shared/bench/raw_rnn_loop.py` (the ceiling: one training step on tensors made up
front) and charnext's Trainer on real text with the same cell, sizes, window, batch and
precision, alternating them several times, and prints the medians and their ratio.

    python benchmarks/throughput.py --cell lstm --precision bf16 --rounds 3
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RAW = HERE.parent.parent / "shared" / "bench" / "raw_rnn_loop.py"
TEXT = HERE.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def raw_rate(a) -> float:
    cmd = [sys.executable, str(a.raw), "--cell", a.cell, "--hidden-size", str(a.hidden_size),
           "--num-layers", str(a.num_layers), "--embedding-size", str(a.embedding_size),
           "--seq-len", str(a.seq_len), "--batch-size", str(a.batch_size), "--vocab-size", "65",
           "--steps", str(a.steps), "--precision", a.precision]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    print("  " + out.strip())
    return float(re.search(r"([\d,]+) chars/s", out).group(1).replace(",", ""))


def charnext_rate(a) -> float:
    """Median chars/s of charnext training steps, measured around whole steps of trainer.run()."""
    import torch  # noqa: F401

    from charnext.config import TrainConfig
    from charnext.events import StepEvent
    from charnext.training.runs import new_run

    text = Path(a.text).read_text(encoding="utf-8")
    config = TrainConfig(steps=a.steps + 3, seq_len=a.seq_len, batch_size=a.batch_size, precision=a.precision,
                         device="cpu", val_fraction=0.0, random_windows=a.random_windows)  # fmt: skip
    trainer = new_run(text, None, config, None, cell=a.cell, hidden_size=a.hidden_size,
                          num_layers=a.num_layers, embedding_size=a.embedding_size)  # fmt: skip
    rates, last = [], None
    for event in trainer.run():
        if isinstance(event, StepEvent):
            now = time.perf_counter()
            if last is not None and event.step > 3:
                rates.append(a.batch_size * trainer.seq_len / (now - last))
            last = now
    rate = statistics.median(rates)
    print(f"  charnext {a.cell} loop: {rate:,.0f} chars/s median over {len(rates)} steps (whole steps, "
          f"with batching, reporting and bookkeeping)")  # fmt: skip
    return rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cell", default="lstm")
    p.add_argument("--hidden-size", type=int, default=256)
    p.add_argument("--num-layers", type=int, default=2)
    p.add_argument("--embedding-size", type=int, default=64)
    p.add_argument("--seq-len", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--random-windows", action="store_true")
    p.add_argument("--text", default=str(TEXT))
    p.add_argument("--raw", default=str(RAW))
    a = p.parse_args()
    raws, ours = [], []
    for r in range(a.rounds):
        print(f"round {r + 1}/{a.rounds}")
        raws.append(raw_rate(a))
        ours.append(charnext_rate(a))
    raw, mine = statistics.median(raws), statistics.median(ours)
    print(f"raw median {raw:,.0f} chars/s; charnext median {mine:,.0f} chars/s; ratio {mine / raw:.3f}")


if __name__ == "__main__":
    main()
