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
# imported first here (the command imports it inside), so that its share stands alone.
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
from charnext.modeling import device
from charnext.rendering import train_view
from charnext.training import runs, trainer

def timed(owner, name, label):
    inner = getattr(owner, name)
    def wrapper(*args, **kwargs):
        s = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            key = label(t) if callable(label) else label
            t[key] = t.get(key, 0.0) + time.perf_counter() - s
    setattr(owner, name, wrapper)

# here the idle-CPU sample waits its 0.1 s; in a plain run its window is torch's import instead
timed(device, "configure_threads", "threads (idle-CPU sample, see above)")
timed(runs, "new_run", "new run (vocabulary, plan, model, optimizer)")
timed(trainer.Trainer, "_train_step", lambda t: "first step" if "first step" not in t else "other steps")
timed(trainer.Trainer, "_save", "checkpoint writes")
timed(train_view, "train_summary", "summary table")
sys.argv = ["charnext", "train", "hihello"]
t0 = time.perf_counter()
try:
    charnext.cli.app.main()
except SystemExit as e:
    assert not e.code, e.code
t["the train command, all of it"] = time.perf_counter() - t0
t["dynamo imported"] = float("torch._dynamo" in sys.modules)
print(json.dumps(t))
"""


def wall(cmd: list[str], env: dict, cwd: str | None = None) -> tuple[float, float]:
    """Seconds a command takes from start to exit, and the CPU seconds (user + system) it used:
    on a machine busy with other work the first grows with the wait, the second hardly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd)
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
    p.add_argument("--breakdown", action="store_true", help="time the parts of `train hihello` instead")
    a = p.parse_args()
    env = dict(os.environ)
    if a.cache_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
    print(f"PYTHONDONTWRITEBYTECODE={env.get('PYTHONDONTWRITEBYTECODE', '(unset)')}")
    if a.breakdown:
        breakdown(a.runs, env)
        return

    with tempfile.TemporaryDirectory() as folder:
        path = Path(a.checkpoint) if a.checkpoint else Path(folder) / "hi.pt"
        if not a.checkpoint:
            subprocess.run([sys.executable, "-c", "import charnext; charnext.train('hihello', out="
                            f"{str(path)!r}, hidden_size=32, num_layers=1, steps=100, precision='fp32')"],
                           check=True)  # fmt: skip
        script = shutil.which("charnext")
        charnext = [script] if script else [sys.executable, "-m", "charnext"]
        predict = [*charnext, "predict", "--prefix", a.prefix, "--checkpoint", str(path)]
        play = [sys.executable, "-c", PLAY_TO_FIRST_FRAME]
        commands = {
            "import torch": [sys.executable, "-c", "import torch"],
            "predict (numpy)": predict,
            "predict --engine torch": [*predict, "--engine", "torch"],
            "inspect (numpy)": [*charnext, "inspect", str(path)],
            "inspect --engine torch": [*charnext, "inspect", str(path), "--engine", "torch"],
            "play (numpy)": [*play, "-c", str(path)],
            "play --engine torch": [*play, "-c", str(path), "--engine", "torch"],
            "report": [*charnext, "report", "-c", str(path), "-o", str(Path(folder) / "r.html")],
            "train hihello": [*charnext, "train", "hihello"],  # in a folder of its own (checkpoint.pt)
        }
        runs_in = {name: folder if name.startswith("train") else None for name in commands}
        for name, cmd in commands.items():
            print(f"{name:24s} {' '.join(cmd)}")
            wall(cmd, env, runs_in[name])  # warm the file cache (and the bytecode cache)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(a.runs):
            for name, cmd in commands.items():
                times[name].append(wall(cmd, env, runs_in[name]))
    for i, what in enumerate(("wall", "CPU")):
        base = statistics.median(t[i] for t in times["import torch"])
        print(f"\n{what} time, median of {a.runs} runs:\n")
        print("| command | seconds | / import torch | runs |")
        print("| --- | ---: | ---: | --- |")
        for name, ts in times.items():
            m = statistics.median(t[i] for t in ts)
            print(f"| {name} | {m:.3f} | {m / base:.2f} | {', '.join(f'{t[i]:.2f}' for t in ts)} |")
    m_predict = statistics.median(t[0] for t in times["predict (numpy)"])
    m_inspect = statistics.median(t[0] for t in times["inspect (numpy)"])
    base = statistics.median(t[0] for t in times["import torch"])
    ok = m_predict <= 0.35 and m_predict <= base / 4
    print(f"\npredict: {m_predict:.3f} s, {m_predict / base:.2f} of import torch "
          f"(target <= 0.35 s and <= 0.25: {'met' if ok else 'NOT met'})")  # fmt: skip
    print(f"inspect: {m_inspect:.3f} s (target <= 0.35 s: {'met' if m_inspect <= 0.35 else 'NOT met'})")
    m_train = statistics.median(t[0] for t in times["train hihello"])
    print(f"train hihello: {m_train:.3f} s, {m_train / base:.2f}x import torch "
          f"(target <= 1.25x: {'met' if m_train <= 1.25 * base else 'NOT met'})")  # fmt: skip


def breakdown(runs: int, env: dict) -> None:
    """The parts of `charnext train "hihello"`, each the median of `runs` processes."""
    import json

    results = []
    with tempfile.TemporaryDirectory() as folder:
        for i in range(runs + 1):  # the first warms the caches
            cmd = [sys.executable, "-c", BREAKDOWN]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, cwd=folder)
            if i:
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"\nparts of `charnext train hihello`, wall seconds, median of {runs} processes:\n")
    print("| part | seconds | runs |")
    print("| --- | ---: | --- |")
    for key in results[0]:
        values = [r.get(key, 0.0) for r in results]
        print(f"| {key} | {statistics.median(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")


if __name__ == "__main__":
    main()
