"""Training throughput on an idle machine and beside a CPU-burning process, per thread setting.

Runs `charnext train --json` (a fresh process each time, OMP_NUM_THREADS unset so that the
adaptive default decides) on real text, once idle and once while another process spins on one
core, alternating, and prints chars/s (training characters over training time) and the share
of the idle speed kept. The issue's bar: beside one busy process, at least 60% of idle.

    python benchmarks/busy.py                                  # default threads, 1 and 2
    python benchmarks/busy.py --steps 300 --rounds 3 --threads default 1 2
    python benchmarks/busy.py -- --cell gru                    # any further train options

Run it alone on the machine: other work on the cores is exactly what it measures. One JSON
line per thread setting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import harness

BURN = "while True: pass"  # one core, fully busy
SMOKE_TRAIN = ["--hidden-size", "16", "--num-layers", "1", "--seq-len", "16", "--batch-size", "4"]


def train_rate(a, threads: str) -> tuple[float, int, str]:
    """chars/s, threads used and precision of one `charnext train` run with `--threads threads`
    ("default": none given)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "charnext", "train", "--file", str(a.file), "--steps", str(a.steps),
               "--val-fraction", "0", "--out", str(Path(tmp) / "busy.pt"), "--json", *a.extra]  # fmt: skip
        if threads != "default":
            cmd += ["--threads", threads]
        result = json.loads(harness.run_command(cmd, env=env))
    return result["chars_per_sec"], result["threads"], result["precision"]


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--file", type=Path, help="text to train on [default: tinyshakespeare.txt of the data]")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", nargs="+", default=["default", "1", "2"])
    p.add_argument("extra", nargs="*", help="further `charnext train` options, after --")
    a = p.parse_args()
    harness.smoke(a, steps=3, rounds=1, threads=["default"], extra=[*a.extra, *SMOKE_TRAIN])
    a.file = a.file or harness.data_file(a, "tinyshakespeare.txt")
    harness.say(f"{os.cpu_count()} CPUs; {a.steps} steps a run; {a.rounds} rounds; text {a.file}")
    records = []
    for threads in a.threads:
        idle, busy, used = harness.Runs(), harness.Runs(), {}
        for r in range(a.rounds):
            rate, used["idle"], precision = train_rate(a, threads)
            idle.add(rate)
            burner = subprocess.Popen([sys.executable, "-c", BURN])
            try:
                time.sleep(0.5)  # let it take its core
                rate, used["busy"], _ = train_rate(a, threads)
                busy.add(rate)
            finally:
                burner.kill()
                burner.wait()
            harness.say(f"  threads {threads}, round {r + 1}: idle {idle.values[-1]:,.0f}, "
                        f"busy {busy.values[-1]:,.0f} chars/s")  # fmt: skip
        figures = {"threads_option": threads, "threads_busy": used["busy"], "idle_chars_per_sec": idle.median,
                   "busy_chars_per_sec": busy.median, "kept": busy.median / idle.median,
                   "idle_runs": idle.values, "busy_runs": busy.values}  # fmt: skip
        records.append(harness.emit(a, figures, precision=precision, threads=used["idle"]))
    harness.table(records, ["threads_option", "threads", "threads_busy", "idle_chars_per_sec",
                            "busy_chars_per_sec", "kept"])  # fmt: skip
    best_idle = max(r["idle_chars_per_sec"] for r in records)
    for r in records:
        if r["threads_option"] == "default":
            harness.say(f"default beside a busy process keeps {r['busy_chars_per_sec'] / best_idle:.0%} "
                        "of the best idle speed")  # fmt: skip


if __name__ == "__main__":
    main()
