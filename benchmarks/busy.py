"""Training throughput on an idle machine and beside a CPU-burning process, per thread setting.

Runs `charnext train --json` (a fresh process each time, OMP_NUM_THREADS unset so that the
adaptive default decides) on real text, once idle and once while another process spins on one
core, alternating, and prints chars/s (training characters over training time) and the share
of the idle speed kept. The issue's bar: beside one busy process, at least 60% of idle.

    python benchmarks/busy.py                                  # default threads, 1 and 2
    python benchmarks/busy.py --steps 300 --rounds 3 --threads default 1 2
    python benchmarks/busy.py -- --cell gru                    # any further train options

Run it alone on the machine: other work on the cores is exactly what it measures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TEXT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"
BURN = "while True: pass"  # one core, fully busy


def train_rate(a, threads: str) -> tuple[float, int]:
    """chars/s of one `charnext train` run with `--threads threads` ("default": none given)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "charnext", "train", "--file", a.file, "--steps", str(a.steps),
               "--val-fraction", "0", "--out", str(Path(tmp) / "busy.pt"), "--json", *a.extra]  # fmt: skip
        if threads != "default":
            cmd += ["--threads", threads]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"charnext train failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    result = json.loads(proc.stdout)
    return result["chars_per_sec"], result["threads"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--file", default=str(TEXT))
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--threads", nargs="+", default=["default", "1", "2"])
    p.add_argument("extra", nargs="*", help="further `charnext train` options, after --")
    a = p.parse_args()
    print(f"{os.cpu_count()} CPUs; {a.steps} steps a run; {a.rounds} rounds; text {a.file}")
    rows = []
    for threads in a.threads:
        idle, busy, used = [], [], {}
        for r in range(a.rounds):
            rate, n = train_rate(a, threads)
            idle.append(rate)
            used["idle"] = n
            burner = subprocess.Popen([sys.executable, "-c", BURN])
            try:
                time.sleep(0.5)  # let it take its core
                rate, n = train_rate(a, threads)
                busy.append(rate)
                used["busy"] = n
            finally:
                burner.kill()
                burner.wait()
            print(f"  threads {threads}, round {r + 1}: idle {idle[-1]:,.0f}, busy {busy[-1]:,.0f} chars/s")
        rows.append((threads, used, statistics.median(idle), statistics.median(busy)))
    print()
    print(f"{'threads':>8} {'used idle/busy':>15} {'idle chars/s':>13} {'busy chars/s':>13} {'kept':>6}")
    for threads, used, i, b in rows:
        print(f"{threads:>8} {used['idle']:>7}/{used['busy']:<7} {i:>13,.0f} {b:>13,.0f} {b / i:>6.0%}")
    best_idle = max(i for _, _, i, _ in rows)
    default = [r for r in rows if r[0] == "default"]
    if default:
        print(f"default beside a busy process keeps {default[0][3] / best_idle:.0%} of the best idle speed")


if __name__ == "__main__":
    main()
