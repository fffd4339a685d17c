"""Step-budget runs for the planner's rule (docs/planning.md): loss as a function of the width
and the characters seen, which do not depend on the CPU's speed, so that a shared machine gives
the same figures as a quiet one (only slower).

usage: python benchmarks/planning_fit.py [--file TEXT] [--out runs.jsonl] [--quick]
       python benchmarks/planning_fit.py --fit runs.jsonl   # the rule's constants from the runs

Each run: `charnext train --steps S --batch-size B --hidden-size H --lr L --precision fp32`,
with the learning rate the planner would give (planner.lr_for, scaled to the batch). Each line
of the output is one run: width, batch, steps, characters seen, parameters, and the final
validation over all of the held-out text.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from charnext.training.planner import lr_for, parameters

SEQ = 64
# (width, batch, characters seen): a grid over width and characters, and the batch at one point
GRID = [(h, 32, d) for h in (128, 256, 384) for d in (500_000, 1_500_000)] + [
    (256, 16, 1_500_000), (256, 64, 1_500_000),
]  # fmt: skip
QUICK = [(128, 32, 500_000), (256, 32, 500_000)]


def run(text: Path, hidden: int, batch: int, chars: int) -> dict:
    """One step-budget run; its figures."""
    steps = max(1, chars // (batch * SEQ))
    lr = lr_for(hidden, batch)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "fit.pt"
        cmd = [sys.executable, "-m", "charnext", "train", "--file", str(text), "--steps", str(steps),
               "--batch-size", str(batch), "--hidden-size", str(hidden), "--num-layers", "2",
               "--lr", f"{lr:.5g}", "--dropout", "0", "--precision", "fp32", "--out", str(out),
               "--json"]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout)
    return {
        "text": text.name, "hidden": hidden, "batch": batch, "steps": steps, "lr": lr,
        "chars": steps * batch * SEQ, "params": parameters("lstm", hidden, 2, 65, 64),
        "val_loss": result["val_loss"], "best_val_loss": result["best_val_loss"],
    }  # fmt: skip


def fit(rows: list[dict]) -> dict:
    """L = floor + a * (N/1e6)^-alpha + b * (D/1e6)^-beta by least squares: the exponents on a
    grid, the three coefficients (none negative) solved for each; the best, with its error."""
    import numpy as np

    n = np.array([r["params"] for r in rows]) / 1e6
    d = np.array([r["chars"] for r in rows]) / 1e6
    y = np.array([r["val_loss"] for r in rows])
    best = None
    for alpha in np.arange(0.1, 1.51, 0.05):
        for beta in np.arange(0.1, 1.51, 0.05):
            x = np.stack([np.ones_like(n), n**-alpha, d**-beta], axis=1)
            coef, *_ = np.linalg.lstsq(x, y, rcond=None)
            if (coef < 0).any():
                continue
            rms = float(np.sqrt(np.mean((x @ coef - y) ** 2)))
            if best is None or rms < best["rms"]:
                best = dict(floor=coef[0], a=coef[1], alpha=alpha, b=coef[2], beta=beta, rms=rms)
    return {k: round(float(v), 4) for k, v in best.items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", type=Path, default=Path("../shared/data/tinyshakespeare.txt"))
    p.add_argument("--out", type=Path, default=Path("planning_runs.jsonl"))
    p.add_argument("--quick", action="store_true", help="two small runs only")
    p.add_argument("--fit", type=Path, help="fit the rule to the runs in this file; run nothing")
    a = p.parse_args()
    if a.fit:
        rows = [json.loads(line) for line in a.fit.read_text(encoding="utf-8").splitlines() if line.strip()]
        print(fit([r for r in rows if r["batch"] == 32] or rows))
        return
    with a.out.open("a", encoding="utf-8") as f:
        for hidden, batch, chars in QUICK if a.quick else GRID:
            row = run(a.file, hidden, batch, chars)
            print(json.dumps(row), file=f, flush=True)
            print(row, flush=True)


if __name__ == "__main__":
    main()
