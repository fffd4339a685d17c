"""Start-up cost of `charnext predict`, `inspect`, `play` (to its first frame), `report` and
`train "hihello"`, on the numpy and the torch engine, against `python -c "import torch"`.

Every command runs as a fresh process, all of them in turn, several times; the medians of
their wall time and of the CPU time they used (which a machine busy with other work disturbs
less) are printed, with each one's ratio to `import torch`. The targets (issue 11): `predict
--prefix hihell` at most 0.35 s and at most a quarter of `import torch`; `inspect` at most
0.35 s; `train "hihello"` (the lecture's first command, 60 steps) at most 1.25x `import torch`
(issue 17). `--breakdown` times the parts of one `train "hihello"` in a process of its own:
import torch, the CLI's other imports, and each part of the command.

    python benchmarks/startup.py --runs 7 --cache-bytecode
    python benchmarks/startup.py --checkpoint hi.pt --prefix hihell
    python benchmarks/startup.py --breakdown --runs 5 --cache-bytecode
    python benchmarks/startup.py --smoke     # each numpy command once, and one breakdown

The breakdown's steps are timed from the training loop's own events (each StepEvent's
`seconds`), handed to it through `TrainingRun.run` (what `charnext.api.start_run` returns).
One JSON line per command (or part).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import harness

# `charnext play` to its first frame, without a terminal: the command as typed, its screen
# replaced by one that types the first character, reads the prediction and leaves.
PLAY_TO_FIRST_FRAME = """
import sys
from charnext.cli.app import main
from charnext.rendering import play_ui

def first_frame(session, out, title, k, length):
    session.type(session.vocab.chars[0])
    session.top(k)
    return ""

play_ui.require_terminal = lambda: None
play_ui.run = first_frame
sys.argv = ["charnext", "play", *sys.argv[1:]]
main()
"""

# One `charnext train "hihello"` with its parts timed (wall seconds), printed as JSON. torch is
# imported first here (the command imports it inside), so that its share stands alone. The parts
# are public functions the command calls, wrapped; its steps are timed by the loop's events.
BREAKDOWN = r"""
import json, sys, time
t = {}
t0 = time.perf_counter()
import torch
t["import torch"] = time.perf_counter() - t0
t0 = time.perf_counter()
import charnext.cli.app
t["import the CLI (typer, charnext.config)"] = time.perf_counter() - t0
t0 = time.perf_counter()
import charnext.api, charnext.rendering.train_view, charnext.training.runs, charnext.training.trainer
t["import train's modules (rich, charnext)"] = time.perf_counter() - t0
from charnext import api
from charnext.events import StepEvent
from charnext.modeling import device
from charnext.rendering import train_view
from charnext.training.handle import TrainingRun

def clocked(owner, name, key):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        s = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            t[key] = t.get(key, 0.0) + time.perf_counter() - s
    setattr(owner, name, wrapper)

def run_timing_steps(handle, on_event=None, **options):
    steps = []  # each step's own seconds (its StepEvent's), and when the event came
    def listen(event):
        if isinstance(event, StepEvent):
            steps.append((event.seconds, time.perf_counter()))
        if on_event is not None:
            on_event(event)
    start = time.perf_counter()
    result = run(handle, listen, **options)
    end = time.perf_counter()
    own = [seconds for seconds, _ in steps]
    t["first step"] = own[0]
    t["other steps"] = sum(own[1:])
    t["between the steps (events, table rows, validations)"] = steps[-1][1] - start - sum(own)
    t["after the last step (last validation, checkpoint)"] = end - steps[-1][1]
    return result

run, TrainingRun.run = TrainingRun.run, run_timing_steps
# here the idle-CPU sample waits its 0.1 s; in a plain run its window is torch's import instead
clocked(device, "configure_threads", "threads (idle-CPU sample, see above)")
clocked(api, "start_run", "new run (vocabulary, plan, model, optimizer)")
clocked(train_view, "train_summary", "summary table")
sys.argv = ["charnext", "train", "hihello", *sys.argv[1:]]
t0 = time.perf_counter()
try:
    charnext.cli.app.main()
except SystemExit as e:
    assert not e.code, e.code
t["the train command, all of it"] = time.perf_counter() - t0
t["dynamo imported"] = float("torch._dynamo" in sys.modules)
print(json.dumps(t))
"""


def commands(a, path: Path, folder: str) -> dict[str, list[str]]:
    """The commands timed, by name (with --smoke, those the targets read)."""
    script = shutil.which("charnext")
    charnext = [script] if script else [sys.executable, "-m", "charnext"]
    predict = [*charnext, "predict", "--prefix", a.prefix, "--checkpoint", str(path)]
    play = [sys.executable, "-c", PLAY_TO_FIRST_FRAME]
    out = {
        "import torch": [sys.executable, "-c", "import torch"],
        "predict (numpy)": predict,
        "predict --engine torch": [*predict, "--engine", "torch"],
        "inspect (numpy)": [*charnext, "inspect", str(path)],
        "inspect --engine torch": [*charnext, "inspect", str(path), "--engine", "torch"],
        "play (numpy)": [*play, "-c", str(path)],
        "play --engine torch": [*play, "-c", str(path), "--engine", "torch"],
        "report": [*charnext, "report", "-c", str(path), "-o", str(Path(folder) / "r.html")],
        "train hihello": [*charnext, "train", "hihello", *a.train_options],  # in the folder (checkpoint.pt)
    }
    smoke = ("import torch", "predict (numpy)", "inspect (numpy)", "train hihello")  # the targets
    return {name: cmd for name, cmd in out.items() if not a.smoke or name in smoke}


def main() -> None:
    p = harness.parser(__doc__)
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
    p.add_argument("--breakdown", action="store_true", help="time the parts of `train hihello` instead")
    a = p.parse_args()
    a.warmup, a.steps, a.train_options = 1, 100, []
    harness.smoke(a, runs=1, warmup=0, steps=5, train_options=["--steps", "5"])
    env = dict(os.environ)
    if a.cache_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    harness.say(f"PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")
    if a.breakdown or a.smoke:
        breakdown(a, env)
        if not a.smoke:
            return

    with tempfile.TemporaryDirectory() as folder:
        path = Path(a.checkpoint) if a.checkpoint else Path(folder) / "hi.pt"
        if not a.checkpoint:
            train = (f"import charnext; charnext.train('hihello', out={str(path)!r}, hidden_size=32, "
                     f"num_layers=1, steps={a.steps}, precision='fp32')")  # fmt: skip
            harness.run_command([sys.executable, "-c", train])
        named = commands(a, path, folder)
        for name, cmd in named.items():
            words = ["PLAY_TO_FIRST_FRAME" if c == PLAY_TO_FIRST_FRAME else c for c in cmd]
            harness.say(f"{name:24s} {' '.join(words)}")
        # the warm-up run of each warms the file cache (and the bytecode cache)
        times = harness.median_of_runs(named, a.runs, warmup=a.warmup, env=env, cwd=folder)
    base = times["import torch"]
    records = []
    for name, runs in times.items():
        figures = {"name": name, "wall_s": runs.median, "wall_over_import_torch": runs.median / base.median,
                   "cpu_s": runs.cpu_median, "cpu_over_import_torch": runs.cpu_median / base.cpu_median,
                   "runs_s": runs.values, "cpu_runs_s": runs.cpu}  # fmt: skip
        records.append(harness.emit(a, figures, precision="fp32"))
    harness.table(records, ["name", "wall_s", "wall_over_import_torch", "cpu_s", "cpu_over_import_torch"])
    targets(times)


def targets(times: dict[str, harness.Runs]) -> None:
    """The issues' targets, met or not (wall time)."""
    base, m_predict = times["import torch"].median, times["predict (numpy)"].median
    m_inspect, m_train = times["inspect (numpy)"].median, times["train hihello"].median
    ok = m_predict <= 0.35 and m_predict <= base / 4
    harness.say(f"\npredict: {m_predict:.3f} s, {m_predict / base:.2f} of import torch "
                f"(target <= 0.35 s and <= 0.25: {'met' if ok else 'NOT met'})")  # fmt: skip
    harness.say(f"inspect: {m_inspect:.3f} s (target <= 0.35 s: {'met' if m_inspect <= 0.35 else 'NOT met'})")
    harness.say(f"train hihello: {m_train:.3f} s, {m_train / base:.2f}x import torch "
                f"(target <= 1.25x: {'met' if m_train <= 1.25 * base else 'NOT met'})")  # fmt: skip


def breakdown(a, env: dict) -> None:
    """The parts of `charnext train "hihello"`, each the median of `a.runs` processes (after one
    that warms the caches)."""
    parts: dict[str, harness.Runs] = {}
    with tempfile.TemporaryDirectory() as folder:
        for i in range(a.warmup + a.runs):
            out = harness.run_command(
                [sys.executable, "-c", BREAKDOWN, *a.train_options], env=env, cwd=folder
            )
            if i >= a.warmup:
                for key, value in json.loads(out.strip().splitlines()[-1]).items():
                    parts.setdefault(key, harness.Runs()).add(value)
    harness.say(f"\nparts of `charnext train hihello`, wall seconds, median of {a.runs} processes:")
    records = [harness.emit(a, {"part": key, "seconds": runs.median, "runs_s": runs.values}, precision="fp32")
               for key, runs in parts.items()]  # fmt: skip
    harness.table(records, ["part", "seconds", "runs_s"])


if __name__ == "__main__":
    main()
