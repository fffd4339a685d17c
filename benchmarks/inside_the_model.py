"""`charnext neurons` and `charnext report` on a 100 KB text: seconds beyond `import torch`.

Each command runs as a user runs it (a fresh `python -m charnext` process, output thrown
away); so does a process that only imports torch. The medians of several alternating runs are
printed, and each command's time minus the import's. The issue's bar: under 10 s each.

    python benchmarks/inside_the_model.py --checkpoint shake.pt          # a trained model
    python benchmarks/inside_the_model.py                                # a fresh 2x256 LSTM
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


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="model to use [default: an untrained 2x256 LSTM]")
    p.add_argument("--text", default=str(TEXT), help="text whose first --chars characters are read")
    p.add_argument("--chars", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = folder / "text.txt"
        text.write_text(Path(a.text).read_text(encoding="utf-8")[: a.chars], encoding="utf-8")
        ckpt = a.checkpoint
        if ckpt is None:  # the default model shape, untrained: the work is the same
            from charnext import api

            ckpt = str(folder / "model.pt")
            api.train(text.read_text(encoding="utf-8")[:5000], out=ckpt, steps=1, device="cpu",
                      val_fraction=0.0)  # fmt: skip
        py = [sys.executable]
        commands = {
            "import torch": py + ["-c", "import torch"],
            "neurons": py + ["-m", "charnext", "neurons", "-c", ckpt, "-f", str(text), "--skip-unknown"],
            "report": py
            + [
                "-m",
                "charnext",
                "report",
                "-c",
                ckpt,
                "-f",
                str(text),
                "--skip-unknown",
                "-o",
                str(folder / "report.html"),
            ],  # fmt: skip
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(a.runs):  # alternate, so that a busy moment hits all alike
            for name, argv in commands.items():
                times[name].append(timed(argv))
    base = statistics.median(times["import torch"])
    print(f"{a.chars:,} characters, {a.runs} runs, medians:")
    for name, values in times.items():
        m = statistics.median(values)
        extra = "" if name == "import torch" else f"   {m - base:6.2f} s beyond import torch"
        print(f"  {name:<13} {m:6.2f} s{extra}")


if __name__ == "__main__":
    main()
