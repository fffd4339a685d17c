"""Training throughput of charnext end to end against the bare PyTorch step.

Runs benchmarks/raw_rnn_loop.py (the ceiling: one training step on tensors made up front; a
copy of ../shared/bench/raw_rnn_loop.py) and charnext's training loop on real text with the same
cell, sizes, window, batch and precision, alternating them several times, and prints the
medians and their ratio.

    python benchmarks/throughput.py --cell lstm --precision bf16 --rounds 3
    python benchmarks/throughput.py --smoke        # a tiny model, 3 steps, one round

charnext's rate is measured around whole steps of its loop (between the StepEvents that
`charnext.train` hands to `on_event`: batching, reporting and bookkeeping included); the step
alone (each StepEvent's `seconds`) is given beside it. The text is tinyshakespeare.txt of the
data folder unless --text. One JSON line.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import harness

RAW = Path(__file__).resolve().parent / "raw_rnn_loop.py"
WARMUP = 3  # charnext steps not counted


def raw_rate(a) -> float:
    cmd = [sys.executable, str(a.raw), "--cell", a.cell, "--hidden-size", str(a.hidden_size),
           "--num-layers", str(a.num_layers), "--embedding-size", str(a.embedding_size),
           "--seq-len", str(a.seq_len), "--batch-size", str(a.batch_size), "--vocab-size", "65",
           "--steps", str(a.steps), "--precision", a.precision]  # fmt: skip
    out = harness.run_command(cmd)
    harness.say("  " + out.strip())
    return float(re.search(r"([\d,]+) chars/s", out).group(1).replace(",", ""))


def charnext_rate(a, text: str) -> tuple[float, float]:
    """Median chars/s of charnext's training steps: around whole steps of the loop, and of the
    step alone."""
    from charnext import api
    from charnext.config import ModelConfig, TrainConfig
    from charnext.events import StepEvent

    whole, alone, last = harness.Runs(), harness.Runs(), None

    def on_event(event) -> None:
        nonlocal last
        if isinstance(event, StepEvent):
            now = time.perf_counter()
            if last is not None and event.step > WARMUP:
                whole.add(now - last)
                alone.add(event.seconds)
            last = now

    model = ModelConfig(cell=a.cell, hidden_size=a.hidden_size, num_layers=a.num_layers,
                        embedding_size=a.embedding_size)  # fmt: skip
    config = TrainConfig(steps=a.steps + WARMUP, seq_len=a.seq_len, batch_size=a.batch_size,
                         precision=a.precision, device="cpu", val_fraction=0.0,
                         random_windows=a.random_windows)  # fmt: skip
    result = api.train(text, None, model=model, config=config, on_event=on_event)
    chars = result.batch_size * result.seq_len
    rate, step_rate = chars / whole.median, chars / alone.median
    harness.say(f"  charnext {a.cell} loop: {rate:,.0f} chars/s median over {len(whole.values)} whole steps "
                f"(with batching, reporting and bookkeeping); the step alone {step_rate:,.0f}")  # fmt: skip
    return rate, step_rate


def main() -> None:
    p = harness.parser(__doc__)
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
    p.add_argument("--text", type=Path, help="text to train on [default: tinyshakespeare.txt of the data]")
    p.add_argument("--raw", type=Path, default=RAW, help="the bare PyTorch loop [default: %(default)s]")
    a = p.parse_args()
    harness.smoke(
        a, hidden_size=16, num_layers=1, embedding_size=8, seq_len=16, batch_size=4, steps=3, rounds=1
    )
    text = (a.text or harness.data_file(a, "tinyshakespeare.txt")).read_text(encoding="utf-8")
    raws, ours, steps = harness.Runs(), harness.Runs(), harness.Runs()
    for r in range(a.rounds):
        harness.say(f"round {r + 1}/{a.rounds}")
        raws.add(raw_rate(a))
        rate, step_rate = charnext_rate(a, text)
        ours.add(rate)
        steps.add(step_rate)
    import torch

    figures = {"cell": a.cell, "shape": f"{a.num_layers}x{a.hidden_size}, embedding {a.embedding_size}",
               "batch": f"{a.batch_size}x{a.seq_len}", "raw_chars_per_sec": raws.median,
               "charnext_chars_per_sec": ours.median, "ratio": ours.median / raws.median,
               "step_alone_chars_per_sec": steps.median, "raw_runs": raws.values,
               "charnext_runs": ours.values}  # fmt: skip
    harness.emit(a, figures, precision=a.precision, threads=torch.get_num_threads())
    harness.say(f"raw median {raws.median:,.0f} chars/s; charnext median {ours.median:,.0f} chars/s; "
                f"ratio {ours.median / raws.median:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
