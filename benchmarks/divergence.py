"""The runs behind the divergence guard's rule: cells, precisions, texts and learning rates.

Trains small models (2x64, 120 steps, 8x32 windows) on verse, on names in line mode and on
Korean, at learning rates from 0.003 to 1e6, and prints for each run its first and last loss,
its best, the largest rise of the smoothed loss above its best (in units of the untrained
loss, the rule's measure), and whether the guard stopped it. Healthy runs must never be
stopped; runs that lost what they learned should be.

    python benchmarks/divergence.py            # the whole grid, a few minutes on 2 cores
    python benchmarks/divergence.py --quick    # lr 0.03 and 1e6 only
    python benchmarks/divergence.py --smoke    # one cell at lr 0.03 and 1e6, 20 steps

One JSON line per run.
"""

from __future__ import annotations

import math
import re
import time

import harness
import torch

from charnext import api
from charnext.errors import TrainingDiverged
from charnext.events import StepEvent
from charnext.training.divergence import RISE, SMOOTHING

VERSE = (
    "Tyger Tyger, burning bright,\nIn the forests of the night;\nWhat immortal hand or eye,\n"
    "Could frame thy fearful symmetry?\n"
) * 25
NAMES = "\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn",
                   "abigail"] * 12) + "\n"  # fmt: skip
KOREAN = "안녕하세요 반갑습니다. 오늘 날씨가 좋네요.\n" * 60
RUNS = [("verse", c, "fp32", False) for c in ("rnn", "gru", "lstm")] + [
    ("verse", "lstm", "bf16", False),
    ("names", "lstm", "fp32", True),
    ("names", "rnn", "fp32", True),
    ("korean", "gru", "fp32", False),
]
TEXTS = {"verse": VERSE, "names": NAMES, "korean": KOREAN}


def rise(losses: list[float], untrained: float) -> float:
    """Largest rise of the smoothed loss above its best so far, in untrained-loss units."""
    smoothed, best, worst = None, math.inf, 0.0
    for x in losses:
        if not math.isfinite(x):
            return math.inf
        smoothed = x if smoothed is None else (1 - SMOOTHING) * smoothed + SMOOTHING * x
        best = min(best, smoothed)
        worst = max(worst, smoothed - best)
    return worst / untrained


def train(text: str, cell: str, precision: str, lines: bool, lr: float, steps: int) -> dict:
    """One run: its losses, the guard's verdict and its seconds."""
    losses: list[float] = []

    def on_event(e):
        if isinstance(e, StepEvent):
            losses.append(e.loss)

    t = time.perf_counter()
    try:
        api.train(TEXTS[text], None, cell=cell, precision=precision, lr=lr, lines=lines, steps=steps,
                  hidden_size=64, num_layers=2, seq_len=32, batch_size=8, device="cpu",
                  on_event=on_event)  # fmt: skip
        verdict = "ran to the end"
    except TrainingDiverged as e:
        verdict = "STOPPED " + str(e).split(":")[0].replace("training diverged ", "")
        losses.append(float(re.search(r"loss (\S+) nats", str(e)).group(1)))  # the stopping step
    seconds = time.perf_counter() - t
    untrained = max(math.log(len(set(TEXTS[text]))), losses[0])
    finite = [x for x in losses if math.isfinite(x)]
    return {"text": text, "cell": cell, "lr": lr, "first": losses[0], "last": losses[-1], "best": min(finite),
            "rise": rise(losses, untrained), "guard": verdict, "seconds": seconds}  # fmt: skip


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--steps", type=int, default=120)
    a = p.parse_args()
    torch.set_num_threads(1)
    lrs = [0.03, 1e6] if a.quick else [0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 10.0, 1e6]
    runs = RUNS
    if a.smoke:
        lrs, runs, a.steps = [0.03, 1e6], RUNS[:1], 20
    harness.say(
        f"rule: stop when the smoothed loss rises more than {RISE:g} x the untrained loss above its best"
    )
    records = []
    for lr in lrs:
        for text, cell, precision, lines in runs:
            figures = train(text, cell, precision, lines, lr, a.steps)
            records.append(harness.emit(a, figures, precision=precision, threads=torch.get_num_threads()))
            r = figures
            harness.say(f"{text:7} {cell:4} {precision:4} {lr:>7g} {r['first']:6.3f} {r['last']:9.3g} "
                        f"{r['best']:8.2g} {r['rise']:8.3g}  {r['guard']} ({r['seconds']:.1f}s)")  # fmt: skip
    harness.table(records, ["text", "cell", "precision", "lr", "first", "last", "best", "rise", "guard"])


if __name__ == "__main__":
    main()
