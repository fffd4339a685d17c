"""Validation loss reached by `charnext train` in a wall-clock budget, on real text.

Runs the real command line (a fresh process each time) with `--json` and reports the best
validation loss (nats/char and bits/char) on the held-out part, with chars/s and the plan.

    python benchmarks/quality.py --max-time 90s                      # one run, defaults
    python benchmarks/quality.py --max-time 10m -- --hidden-size 512  # any train options
    python benchmarks/quality.py --file ../shared/data/names.txt --max-time 90s -- --lines
    python benchmarks/quality.py --smoke       # a 1-second budget, a tiny model, the data's text

The scaling table: each cell is charnext with defaults, then the plain 60-line LSTM loop
(benchmarks/plain_lstm_loop.py, bf16) with the same budget, one after the other in the
same session, never side by side (two torch processes on two cores slow each other down):

    python benchmarks/quality.py --table                       # all cells: about 135 minutes
    python benchmarks/quality.py --table --cells shakespeare:90s names:90s
    python benchmarks/quality.py --table --cells pynames:90s pynames:10m  # the stdlib's function names
    python benchmarks/quality.py --table --only plain --cells names:10m   # one side only
    python benchmarks/quality.py --quick     # the 90 s cells of five texts: about 17 minutes

The plain loop validates on the last 10% of the characters. For names in line mode charnext
holds out a seeded 10% of the lines, so the plain loop is given a copy of the file with those
lines moved to its end, both parts shuffled (names.txt ends in sorted runs of rare names,
which a stream would exploit): both then validate on (nearly) the same names.

The texts come from the data folder (tinyshakespeare.txt, names.txt, prose_english.txt,
code_python.txt, nonlatin.txt: cells shakespeare, names, prose, code, nonlatin). A cell's
charnext figure is the run's final one (`val_loss`: the last weights on all of the held-out
part where the run affords it, as the plain loop scores its own), the best check's on the
checks' sample beside it. One JSON line per run, or per cell of the table.
"""

from __future__ import annotations

import json
import math
import re
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

import harness

PLAIN = Path(__file__).resolve().parent / "plain_lstm_loop.py"  # a copy of the reference loop
TEXTS = {
    "shakespeare": "tinyshakespeare.txt",
    "names": "names.txt",
    "prose": "prose_english.txt",
    "code": "code_python.txt",
    "nonlatin": "nonlatin.txt",
}  # files of the data folder
SMOKE_TRAIN = ["--hidden-size", "16", "--num-layers", "1", "--seq-len", "16", "--batch-size", "4"]
CELLS = ["shakespeare:90s", "shakespeare:10m", "shakespeare:30m", "names:90s", "names:10m",
         "pynames:90s", "pynames:10m"]  # fmt: skip
# --quick: the quality table that every change of the plan is measured against (issue 32), five
# texts at 90 s, each beside the plain loop: about 17 minutes on a 2-core machine
QUICK = ["shakespeare:90s", "prose:90s", "code:90s", "nonlatin:90s", "names:90s"]
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
        summary = json.loads(harness.run_command(cmd))
        wall = time.perf_counter() - t
    return summary, wall, cmd


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
    out = harness.run_command([sys.executable, str(PLAIN), str(file), str(seconds(budget)), "--bf16"])
    line = out.strip().splitlines()[-1]
    return float(re.search(r"val_loss ([0-9.]+)", line).group(1)), line


def difference(a: float | None, b: float | None) -> float | None:
    return a - b if a is not None and b is not None else None


def text_file(a, name: str) -> Path:
    """The file of a table's text: the data folder's, the stdlib's names, or a path."""
    if name in TEXTS:
        return harness.data_file(a, TEXTS[name])
    return pynames_file() if name == "pynames" else Path(name)


def table(a) -> None:
    """Each cell: charnext with defaults, then the plain loop; a Markdown table at the end.
    `a.only` runs one side ("charnext" or "plain"); the other shows as nan."""
    records = []
    for cell in a.cells:
        name, budget = cell.split(":")
        file = text_file(a, name)
        lines = name in LINE_TEXTS
        r, wall = {"val_loss": None, "steps": 0, "chars_per_sec": 0.0, "precision": None}, 0.0
        if a.only != "plain":
            r, wall, _ = charnext(file, budget, (["--lines"] if lines else []) + a.extra)
        p, p_line = None, "plain loop not run"
        if a.only != "charnext":
            with tempfile.TemporaryDirectory() as tmp:
                plain_file = held_out_last(file, Path(tmp)) if lines else file
                p, p_line = plain(plain_file, budget)
        text = name + (" (lines)" if lines else "")
        # the final figure, on all of the held-out part where the run affords it (val_all), as the
        # plain loop scores its own; the best check (on the checks' sample) beside it
        figures = {"text": text, "budget": budget, "charnext": r["val_loss"], "val_all": r.get("val_all"),
                   "best_check": r.get("best_val_loss"), "best_check_se": r.get("best_val_se"),
                   "plain_loop": p, "difference": difference(r["val_loss"], p), "steps": r["steps"],
                   "chars_per_sec": r["chars_per_sec"], "plan": (r.get("plan") or {}).get("why", "-"),
                   "charnext_process_s": wall, "plain_line": p_line}  # fmt: skip
        records.append(harness.emit(a, figures, r["precision"], r.get("threads")))
    columns = ["text", "budget", "charnext", "best_check", "plain_loop", "difference", "steps"]
    columns += ["chars_per_sec", "plan"]
    harness.table(records, columns)


def main() -> None:
    p = harness.parser(__doc__)
    p.add_argument("--file", type=Path, help="text to train on [default: tinyshakespeare.txt of the data]")
    p.add_argument("--max-time", default="90s")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--table", action="store_true", help="the scaling table, beside the plain loop")
    p.add_argument("--cells", nargs="*", default=CELLS, help="TEXT:BUDGET cells of the table")
    p.add_argument("--quick", action="store_true", help="the table's 90 s cells of five texts (QUICK)")
    p.add_argument("--only", choices=["charnext", "plain"], help="run one side of each cell")
    p.add_argument("extra", nargs="*", help="further `charnext train` options, after --")
    a = p.parse_args()
    harness.smoke(a, max_time="1s", runs=1, cells=["shakespeare:1s"], extra=[*a.extra, *SMOKE_TRAIN])
    if a.quick:  # with --smoke, its one-second cell
        a.table, a.cells = True, a.cells if a.smoke else QUICK
    if a.table:
        table(a)
        return
    file = a.file or harness.data_file(a, TEXTS["shakespeare"])
    best = harness.Runs()
    for run in range(a.runs):
        r, wall, cmd = charnext(file, a.max_time, a.extra)
        plan = (r.get("plan") or {}).get("why", "-")
        val = r["best_val_loss"]  # None: nothing was held out
        figures = {"run": run + 1, "best_val_loss": val, "best_val_bpc": val / math.log(2) if val else None,
                   "val_loss": r["val_loss"], "steps": r["steps"], "chars_per_sec": r["chars_per_sec"],
                   "process_s": wall, "plan": plan, "train": " ".join(cmd[2:])}  # fmt: skip
        harness.emit(a, figures, precision=r["precision"], threads=r.get("threads"))
        shown = harness.shown
        harness.say(f"run {run + 1}: best val {shown(val)} nats/char ({shown(figures['best_val_bpc'])} "
                    f"bits/char), final val {shown(r['val_loss'])}, {r['steps']} steps, "
                    f"{r['chars_per_sec']:,.0f} chars/s, {r['precision']}, process wall {wall:.1f}s, "
                    f"plan {plan}")  # fmt: skip
        if val is not None:
            best.add(val)
    if best.values:
        harness.say(f"median best val loss over {len(best.values)} run(s): {best.median:.4f} nats/char")


if __name__ == "__main__":
    main()
