"""`charnext neurons` and `charnext report` on a 100 KB text: seconds beyond `import torch`.

Each command runs as a user runs it (a fresh `python -m charnext` process, output thrown
away); so does a process that only imports torch. The medians of several alternating runs are
printed, and each command's time minus the import's. The issue's bar: under 10 s each.

    python benchmarks/inside_the_model.py --checkpoint shake.pt          # a trained model
    python benchmarks/inside_the_model.py                                # the untrained 2x256 LSTM

One JSON line per command.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import harness


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--checkpoint", help="model to use [default: the untrained 2x256 LSTM]")
    p.add_argument("--text", type=Path, help="text whose first --chars characters are read "
                   "[default: tinyshakespeare.txt of the data]")  # fmt: skip
    p.add_argument("--chars", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    harness.smoke(a, chars=2_000, runs=1)
    source = a.text or harness.data_file(a, "tinyshakespeare.txt")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text = folder / "text.txt"
        text.write_text(source.read_text(encoding="utf-8")[: a.chars], encoding="utf-8")
        # the default model's shape, untrained: the work is the same
        ckpt = a.checkpoint or str(harness.untrained_lstm(text.read_text(encoding="utf-8"), tiny=a.smoke))
        charnext = [sys.executable, "-m", "charnext"]
        read = ["-c", ckpt, "-f", str(text), "--skip-unknown"]
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "neurons": [*charnext, "neurons", *read],
            "report": [*charnext, "report", *read, "-o", str(folder / "report.html")],
        }
        times = harness.median_of_runs(commands, a.runs)  # alternating: a busy moment hits all alike
    base = times["import torch"].median
    harness.say(f"{a.chars:,} characters, {a.runs} runs, medians:")
    records = []
    for name, runs in times.items():
        figures = {"name": name, "chars": a.chars, "wall_s": runs.median, "cpu_s": runs.cpu_median,
                   "beyond_import_torch_s": runs.median - base, "runs_s": runs.values}  # fmt: skip
        records.append(harness.emit(a, figures, precision="fp32"))
    harness.table(records, ["name", "wall_s", "beyond_import_torch_s", "cpu_s"])


if __name__ == "__main__":
    main()
