"""Validation loss reached by `charnext train` in a wall-clock budget, on real text.

Runs the real command line (a fresh process each time) with `--json` and reports the best
validation loss (nats/char and bits/char) on the last 10% of the text, with chars/s.

    python benchmarks/quality.py --max-time 90s                      # the 90-second bar
    python benchmarks/quality.py --max-time 10m                      # the 10-minute bar
    python benchmarks/quality.py --max-time 90s -- --cell gru --lr 0.005   # any train options
    python benchmarks/quality.py --file ../shared/data/names.txt --max-time 90s -- --lines
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--file", default=str(TEXT))
    p.add_argument("--max-time", default="90s")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("extra", nargs="*", help="further `charnext train` options, after --")
    a = p.parse_args()
    results = []
    for run in range(a.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "quality.pt"
            cmd = [sys.executable, "-m", "charnext", "train", "--file", a.file, "--max-time", a.max_time,
                   "--out", str(out), "--json", *a.extra]  # fmt: skip
            t = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True)
            wall = time.perf_counter() - t
            if proc.returncode != 0:
                sys.exit(f"charnext train failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
            r = json.loads(proc.stdout)
        results.append(r)
        best = r["best_val_loss"]
        print(
            f"run {run + 1}: best val {best:.4f} nats/char ({best / 0.693147:.3f} bits/char), "
            f"final val {r['val_loss']:.4f}, {r['steps']} steps, {r['chars_per_sec']:,.0f} chars/s, "
            f"{r['precision']}, process wall {wall:.1f}s  [{' '.join(cmd[2:])}]"
        )
    best = sorted(r["best_val_loss"] for r in results)
    print(f"median best val loss over {len(best)} run(s): {best[len(best) // 2]:.4f} nats/char")


if __name__ == "__main__":
    main()
