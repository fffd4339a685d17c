"""Start-up cost of `charnext predict`: its wall time minus that of `python -c "import torch"`.

Both are run as fresh processes, alternately, several times each; the medians of their wall
time and their difference are printed, and the same for the CPU time they used, which a
machine busy with other work disturbs less. The target is a wall-time difference under 0.4 s
on a small checkpoint.

    python benchmarks/startup.py --runs 7
    python benchmarks/startup.py --checkpoint hi.pt --prefix hihell
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def wall(cmd: list[str], env: dict) -> tuple[float, float]:
    """Seconds a command takes from start to exit, and the CPU seconds (user + system) it used:
    on a machine busy with other work the first grows with the wait, the second hardly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="use this checkpoint instead of training a small one")
    p.add_argument("--prefix", default="hihell")
    p.add_argument("--runs", type=int, default=7, help="runs of each command (median)")
    p.add_argument(
        "--cache-bytecode",
        action="store_true",
        help="let Python cache compiled modules (unset PYTHONDONTWRITEBYTECODE), as an installed "
        "package has them; without it, charnext's modules are compiled anew on every run where "
        "that variable is set",
    )
    a = p.parse_args()
    env = dict(os.environ)
    if a.cache_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")

    with tempfile.TemporaryDirectory() as folder:
        path = Path(a.checkpoint) if a.checkpoint else Path(folder) / "hi.pt"
        if not a.checkpoint:
            subprocess.run([sys.executable, "-c", "import charnext; charnext.train('hihello', out="
                            f"{str(path)!r}, hidden_size=32, num_layers=1, steps=100, precision='fp32')"],
                           check=True)  # fmt: skip
        script = shutil.which("charnext")
        predict = [script] if script else [sys.executable, "-m", "charnext"]
        predict += ["predict", "--prefix", a.prefix, "--checkpoint", str(path)]
        torch_only = [sys.executable, "-c", "import torch"]
        print("predict:", " ".join(predict))
        print("torch:  ", " ".join(torch_only))
        wall(torch_only, env), wall(predict, env)  # warm the file cache (and the bytecode cache)
        t_torch, t_predict = [], []
        for _ in range(a.runs):
            t_torch.append(wall(torch_only, env))
            t_predict.append(wall(predict, env))
    for i, what in enumerate(("wall", "CPU")):
        m_torch = statistics.median(t[i] for t in t_torch)
        m_predict = statistics.median(t[i] for t in t_predict)
        diff = m_predict - m_torch
        print(f"{what} time (median of {a.runs}):")
        print(f"  import torch       {m_torch:.3f} s  ({', '.join(f'{t[i]:.2f}' for t in t_torch)})")
        print(f"  charnext predict   {m_predict:.3f} s  ({', '.join(f'{t[i]:.2f}' for t in t_predict)})")
        print(f"  difference         {diff:.3f} s (target < 0.4 s: {'met' if diff < 0.4 else 'NOT met'})")


if __name__ == "__main__":
    main()
