"""Recording units on numpy or on torch: `charnext neurons` and `charnext report` on each engine.

A 2x256 LSTM (untrained unless --checkpoint: the work is the same) reads the first --chars
characters of a text. Two measurements, each the median of --runs alternating runs:

- record: `scan` alone in this process (recording every unit and its sums; no start-up), per
  engine, with the numpy engine's seconds over torch's;
- commands: `charnext neurons` and `charnext report --file` as a user runs them (a fresh
  process each, output thrown away) with `--engine numpy` and `--engine torch`.

    python benchmarks/neurons_engines.py                      # 100,000 characters of tinyshakespeare
    python benchmarks/neurons_engines.py --chars 5000 --runs 1  # a quick look

One JSON line per measurement and engine.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import harness

ENGINES = ("numpy", "torch")


def record_times(ckpt_path: str, text: str, runs: int) -> dict[str, harness.Runs]:
    """Seconds `scan` takes on each engine, in this process (the checkpoint loaded once each)."""
    from charnext import api
    from charnext.inside.neurons import scan

    scans = {}
    for engine in ENGINES:
        ckpt = api.load(ckpt_path, engine=engine)
        kept, _ = ckpt.vocab.known(text, True)
        runner = ckpt.runner  # built before the clock starts
        scans[engine] = lambda runner=runner, vocab=ckpt.vocab, kept=kept: scan(runner, vocab, kept, None)
    return harness.median_of_runs(scans, runs)


def command_times(ckpt: str, text: Path, out: Path, runs: int, engines=ENGINES) -> dict[str, harness.Runs]:
    """Seconds `charnext neurons` and `charnext report --file` take per engine, fresh processes."""
    charnext = [sys.executable, "-m", "charnext"]
    commands = {}
    for engine in engines:
        options = ["-c", ckpt, "-f", str(text), "--skip-unknown", "--max-chars", "0", "--engine", engine]
        commands[f"neurons {engine}"] = [*charnext, "neurons", *options]
        commands[f"report {engine}"] = [*charnext, "report", *options, "-o", str(out)]
    return harness.median_of_runs(commands, runs)  # alternating: a busy moment hits all alike


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--checkpoint", help="model to use [default: the untrained 2x256 LSTM]")
    p.add_argument("--text", type=Path, help="text whose first --chars characters are read "
                   "[default: tinyshakespeare.txt of the data]")  # fmt: skip
    p.add_argument("--chars", type=int, default=100_000)
    p.add_argument("--runs", type=int, default=3)
    a = p.parse_args()
    harness.smoke(a, chars=2_000, runs=1)
    text = (a.text or harness.data_file(a, "tinyshakespeare.txt")).read_text(encoding="utf-8")[: a.chars]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        text_file = folder / "text.txt"
        text_file.write_text(text, encoding="utf-8")
        ckpt = a.checkpoint or str(harness.untrained_lstm(text, tiny=a.smoke))
        recorded = record_times(ckpt, text, a.runs)
        import torch  # loaded by the torch engine's scan

        threads = torch.get_num_threads()
        engines = ("numpy",) if a.smoke else ENGINES  # the torch engine's commands: its scan is timed above
        commands = command_times(ckpt, text_file, folder / "report.html", a.runs, engines)
    harness.say(f"{len(text):,} characters, {a.runs} runs, medians:")
    records = []
    for what, times, in_process in (("record (scan)", recorded, True), ("commands", commands, False)):
        for name, runs in times.items():
            command, _, engine = name.rpartition(" ")
            figures = {"what": command or what, "engine": engine, "chars": len(text), "wall_s": runs.median,
                       "cpu_s": runs.cpu_median, "runs_s": runs.values}  # fmt: skip
            records.append(
                harness.emit(a, figures, precision="fp32", threads=threads if in_process else None)
            )
    harness.table(records, ["what", "engine", "wall_s", "cpu_s"])
    wall = {(r["what"], r["engine"]): r["wall_s"] for r in records}
    for what in ("record (scan)", "neurons", "report"):
        if (what, "torch") in wall:
            harness.say(f"  {what}: numpy / torch = {wall[what, 'numpy'] / wall[what, 'torch']:.2f}")


if __name__ == "__main__":
    main()
