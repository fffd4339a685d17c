"""Validation loss reached by `charnext train` in a wall-clock budget, on real text.

Runs the real command line (a fresh process each time) with `--json` and reports the best
validation loss (nats/char and bits/char) on the held-out part, with chars/s and the plan.

    python benchmarks/quality.py --max-time 90s                      # one run, defaults
    python benchmarks/quality.py --max-time 10m -- --hidden-size 512  # any train options
    python benchmarks/quality.py --file ../shared/data/names.txt --max-time 90s -- --lines

The scaling table: each cell is charnext with defaults, then the plain 60-line LSTM loop
(benchmarks/plain_lstm_loop.py, bf16) with the same budget, one after the other in the
same session, never side by side (two torch processes on two cores slow each other down):

    python benchmarks/quality.py --table                       # all cells: about 135 minutes
    python benchmarks/quality.py --table --cells shakespeare:90s names:90s
    python benchmarks/quality.py --table --cells pynames:90s pynames:10m  # the stdlib's function names
    python benchmarks/quality.py --table --only plain --cells names:10m   # one side only

The plain loop validates on the last 10% of the characters. For names in line mode charnext
holds out a seeded 10% of the lines, so the plain loop is given a copy of the file with those
lines moved to its end, both parts shuffled (names.txt ends in sorted runs of rare names,
which a stream would exploit): both then validate on (nearly) the same names.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
PLAIN = Path(__file__).resolve().parent / "plain_lstm_loop.py"  # a copy of the reference loop
TEXTS = {"shakespeare": DATA / "tinyshakespeare.txt", "names": DATA / "names.txt"}
CELLS = ["shakespeare:90s", "shakespeare:10m", "shakespeare:30m", "names:90s", "names:10m",
         "pynames:90s", "pynames:10m"]  # fmt: skip
LINE_TEXTS = {"names", "pynames"}  # trained with --lines; pynames is made by make_line_corpus.py
SECONDS = {"s": 1, "m": 60, "h": 3600}


def seconds(budget: str) -> float:
    """'90s' -> 90, '10m' -> 600."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smh])", budget)
    if not m:
        sys.exit(f"budget {budget!r}: write it as 90s, 10m or 1h")
    return float(m.group(1)) * SECONDS[m.group(2)]


def charnext(file: Path, budget: str, extra: list[str]) -> tuple[dict, float, list[str]]:
    """One `charnext train --json` run: (its JSON summary, process wall seconds, command)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "quality.pt"
        cmd = [sys.executable, "-m", "charnext", "train", "--file", str(file), "--max-time", budget,
               "--out", str(out), "--json", *extra]  # fmt: skip
        t = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"charnext train failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout), wall, cmd


def held_out_last(file: Path, tmp: Path, seed: int = 0) -> Path:
    """A copy of a line file with charnext's held-out lines (line mode, --seed) at its end."""
    import torch

    from charnext.text.reading import text_lines

    lines = text_lines(file.read_text(encoding="utf-8"))
    n_val = int(len(lines) * 0.1)
    order = torch.randperm(len(lines), generator=torch.Generator().manual_seed(seed))
    # both parts in the seeded random order: names.txt's rare names come sorted, and a stream
    # of sorted names would let the plain loop guess a name from the one before it
    order = order.tolist()
    kept = [lines[i] for i in order[n_val:]] + [lines[i] for i in order[:n_val]]
    path = tmp / file.name
    path.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return path


def pynames_file() -> Path:
    """The second line corpus (benchmarks/make_line_corpus.py, this Python's stdlib), made once."""
    from make_line_corpus import function_names

    path = Path(tempfile.gettempdir()) / "charnext-pynames.txt"
    names, _ = function_names(Path(sysconfig.get_paths()["stdlib"]))
    path.write_text("\n".join(names) + "\n", encoding="utf-8")
    return path


def plain(file: Path, budget: str) -> tuple[float, str]:
    """The plain loop's validation loss with the same budget, and its line."""
    cmd = [sys.executable, str(PLAIN), str(file), str(seconds(budget)), "--bf16"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"plain loop failed: {proc.stderr.strip()[-2000:]}")
    line = proc.stdout.strip().splitlines()[-1]
    return float(re.search(r"val_loss ([0-9.]+)", line).group(1)), line


def table(cells: list[str], extra: list[str], only: str | None = None) -> None:
    """Each cell: charnext with defaults, then the plain loop; a Markdown table at the end.
    `only` runs one side ("charnext" or "plain"); the other shows as nan."""
    rows = []
    for cell in cells:
        name, budget = cell.split(":")
        file = TEXTS.get(name, Path(name))
        if name == "pynames":
            file = pynames_file()
        lines = name in LINE_TEXTS
        r, wall = {"best_val_loss": float("nan"), "steps": 0, "chars_per_sec": 0.0}, 0.0
        if only != "plain":
            r, wall, _ = charnext(file, budget, (["--lines"] if lines else []) + extra)
        p, p_line = float("nan"), "plain loop not run"
        if only != "charnext":
            with tempfile.TemporaryDirectory() as tmp:
                plain_file = held_out_last(file, Path(tmp)) if lines else file
                p, p_line = plain(plain_file, budget)
        plan = (r.get("plan") or {}).get("why", "-")
        row = (f"| {name}{' (lines)' if lines else ''} | {budget} | **{r['best_val_loss']:.4f}** | {p:.4f} | "
               f"{r['best_val_loss'] - p:+.4f} | {r['steps']:,} steps at {r['chars_per_sec']:,.0f} chars/s | "
               f"{plan} |")  # fmt: skip
        print(row, f"  [charnext process {wall:.0f}s; {p_line}]", flush=True)
        rows.append(row)
    print("\n| text | budget | charnext (defaults) | plain loop | difference | charnext steps | plan |")
    print("|---|---|---:|---:|---:|---|---|")
    print("\n".join(rows))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--file", default=str(TEXTS["shakespeare"]))
    p.add_argument("--max-time", default="90s")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--table", action="store_true", help="the scaling table, beside the plain loop")
    p.add_argument("--cells", nargs="*", default=CELLS, help="TEXT:BUDGET cells of the table")
    p.add_argument("--only", choices=["charnext", "plain"], help="run one side of each cell")
    p.add_argument("extra", nargs="*", help="further `charnext train` options, after --")
    a = p.parse_args()
    if a.table:
        table(a.cells, a.extra, a.only)
        return
    results = []
    for run in range(a.runs):
        r, wall, cmd = charnext(Path(a.file), a.max_time, a.extra)
        results.append(r)
        best = r["best_val_loss"]
        plan = (r.get("plan") or {}).get("why", "-")
        print(
            f"run {run + 1}: best val {best:.4f} nats/char ({best / 0.693147:.3f} bits/char), "
            f"final val {r['val_loss']:.4f}, {r['steps']} steps, {r['chars_per_sec']:,.0f} chars/s, "
            f"{r['precision']}, process wall {wall:.1f}s, plan {plan}  [{' '.join(cmd[2:])}]"
        )
    best = sorted(r["best_val_loss"] for r in results)
    print(f"median best val loss over {len(best)} run(s): {best[len(best) // 2]:.4f} nats/char")


if __name__ == "__main__":
    main()
