"""Small step-budgeted runs and a fingerprint of everything they write, for proving that a change
of the trainer's shape changed nothing.

`python tests/bitwise_runs.py --write` records the fingerprints of the code as it stands in
tests/data/bitwise_runs.json, with the machine they came from; `--check` runs them again and
compares. A fingerprint is the sha256 of the final and best checkpoints' weights, the optimizer
state, the checkpoint's record (history, resume section, summary; wall-clock fields left out),
the metrics log (without `elapsed` and `chars_per_sec`) and the events (without their times).

fp32 on a CPU is reproducible on one machine, not across machines (torch picks its kernels by
the CPU's instruction set), so tests/test_bitwise.py compares these hashes only on the machine
that recorded them; what holds on any machine (a run split in two equals the run unsplit; an
old checkpoint resumes) it checks everywhere.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import random
import sys
import tempfile
from pathlib import Path

import torch

from charnext.config import TrainConfig
from charnext.events import StepEvent
from charnext.storage import checkpoint as ckpt
from charnext.storage.metrics import metrics_path
from charnext.text.source import Source
from charnext.training.runs import new_run, resume_run
from charnext.training.trainer import best_path

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "bitwise_runs.json"
# what the record's resume section gained in issue 32: a checkpoint without them is one of the
# trainer before (checked on the machine that recorded the fingerprints: the same weights,
# optimizer and record, times aside, as a checkpoint that trainer wrote)
NEW_RESUME_KEYS = ("last_eval_step", "last_eval_at", "eval_seconds", "val_sample", "best_step", "best_val_se")
TIME_FIELDS = {"elapsed", "chars_per_sec", "seconds"}
WORDS = "the a night bright tyger forest hand eye frame fearful symmetry burning of in what".split()
NAMES = "emma olivia ava isabella sophia mia amelia harper evelyn abigail noah liam oliver".split()


def stream_text(seed: int = 0, words: int = 900) -> str:
    """A few thousand characters of made-up verse, the same on every machine."""
    rng = random.Random(seed)
    lines = []
    while words > 0:
        n = rng.randint(3, 8)
        lines.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + rng.choice(",.;!?"))
        words -= n
    return "\n".join(lines) + "\n"


def names_text(seed: int = 1, count: int = 300) -> str:
    """A list of names, one per line."""
    rng = random.Random(seed)
    return "".join(rng.choice(NAMES) + "\n" for _ in range(count))


# name: (text kind, model, training config). Every one fp32 on the CPU, configs given in full
# (no planning, whose speed probe reads the clock); --eval-every given, so that which steps
# validate does not depend on the clock either. "spaced" leaves the checks to the schedule: before
# issue 32 step 3 the clock placed them (it was compared by its weights only), now its steps do.
# min_lr_ratio as the default was when the fingerprints were recorded (issue 32's plan made it 0)
BASE = dict(
    steps=40, seq_len=16, batch_size=4, val_fraction=0.1, precision="fp32", device="cpu", min_lr_ratio=0.1
)
RUNS: dict[str, tuple[str, dict, dict]] = {
    "stream": (
        "stream",
        dict(cell="lstm", hidden_size=24, num_layers=2, embedding_size=8, dropout=0.1),
        dict(BASE, eval_every=10, random_windows=True, ema=True),
    ),
    "spaced": (
        "stream",
        dict(cell="lstm", hidden_size=24, num_layers=2, embedding_size=8, dropout=0.1),
        dict(BASE),
    ),
    "lines": (
        "lines",
        dict(cell="gru", hidden_size=32, num_layers=1, embedding_size=8),
        dict(BASE, lines=True, batch_size=8, val_fraction=0.2, eval_every=10),
    ),
    "tiny": (
        "stream",
        dict(cell="lstm", hidden_size=12, num_layers=1, embedding_size=6, dropout=0.1),
        dict(BASE, eval_every=10, random_windows=True, ema=True),
    ),
    "documents": (
        "documents",
        dict(cell="rnn", hidden_size=24, num_layers=2, embedding_size=8),
        dict(BASE, eval_every=10),
    ),
}
CLOCKED: set[str] = set()  # runs whose validations the clock places (weights compared only): none now


def source(kind: str, folder: Path) -> str | Source:
    """The run's text: verse, names, or three files of verse as one corpus."""
    if kind == "stream":
        return stream_text()
    if kind == "lines":
        return names_text()
    paths = []
    for i in range(3):
        paths.append(folder / f"doc{i}.txt")
        paths[-1].write_text(stream_text(seed=10 + i, words=300), encoding="utf-8")
    return Source.files(paths)


def train(name: str, folder: Path, split_at: int | None = None) -> tuple[Path, list]:
    """Run `name` into `folder`/run.pt; with `split_at`, stop there and resume to the end."""
    kind, model, config = RUNS[name]
    text = source(kind, folder)
    out = folder / "run.pt"
    trainer = new_run(text, None, TrainConfig(**config), out, **model)
    events = []
    for event in trainer.run():
        events.append(event)
        if split_at is not None and isinstance(event, StepEvent) and event.step == split_at:
            trainer.stop()
    if split_at is not None:
        assert trainer.result.reason == "interrupted", trainer.result.reason
        events.extend(resume_from(out, kind, folder))
    return out, events


def resume_from(path: Path, kind: str, folder: Path) -> list:
    """Resume the run saved at `path` to its end; its events."""
    trainer = resume_run(path, source(kind, folder))
    return list(trainer.run())


def digest(value) -> str:
    """sha256 of a value: tensors by their bytes (and dtype and shape), the rest as JSON."""
    h = hashlib.sha256()

    def feed(v):
        if isinstance(v, torch.Tensor):
            t = v.detach().cpu().contiguous()
            h.update(f"T{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(v, dict):
            h.update(b"{")
            for k in sorted(v, key=str):
                h.update(json.dumps(str(k)).encode())
                feed(v[k])
            h.update(b"}")
        elif isinstance(v, (list, tuple)):
            h.update(b"[")
            for x in v:
                feed(x)
            h.update(b"]")
        else:
            h.update(json.dumps(v, sort_keys=True).encode())

    feed(value)
    return h.hexdigest()[:24]


# the record's fields as the trainer wrote them before issue 32; a later version may add some
RESUME_KEYS = ("rng", "state", "best_val_loss", "evals_since_best", "skipped_steps", "guard", "average",
               "best_val_loss_live", "best_val_loss_average", "best_weights")  # fmt: skip


def fingerprint(out: Path, events: list) -> dict[str, str]:
    """The hashes of what a run wrote at `out` and the events it yielded."""
    raw = ckpt.load_raw(out)
    resume = raw["resume"]
    summary = {k: v for k, v in raw["summary"].items() if k not in TIME_FIELDS}
    log = [json.loads(line) for line in metrics_path(out).read_text().splitlines()]
    found = {
        "weights": digest(raw["state_dict"]),
        "optimizer": digest(raw["optimizer"]),
        "record": digest([raw["step"], raw["history"], {k: resume.get(k) for k in RESUME_KEYS}, summary]),
        "metrics": digest([{k: v for k, v in r.items() if k not in TIME_FIELDS} for r in log]),
        "events": digest(
            [
                [type(e).__name__, {k: v for k, v in dataclasses.asdict(e).items() if k not in TIME_FIELDS}]
                for e in events
            ]
        ),
    }
    best = best_path(out)
    if best.exists():
        found["best_weights"] = digest(ckpt.load_raw(best)["state_dict"])
    return found


def machine() -> dict:
    """What fp32 results depend on: the CPU, torch, and the threads."""
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "torch": str(torch.__version__), "machine": platform.machine()}


def measure(names: list[str] | None = None) -> dict:
    """Every run's fingerprint, straight and split at step 20; the old checkpoint's resume."""
    torch.set_num_threads(1)
    found = {}
    for name in names or list(RUNS):
        for split in (None, 20):
            with tempfile.TemporaryDirectory() as folder:
                out, events = train(name, Path(folder), split)
                prints = fingerprint(out, events)
            if name in CLOCKED:
                prints = {"weights": prints["weights"], "optimizer": prints["optimizer"]}
            found[name if split is None else f"{name}/split20"] = prints
    found["old_checkpoint/resumed"] = resume_old()
    return found


def recorded_names(runs: dict) -> list[str]:
    """The runs (of RUNS, in its order) whose fingerprints `runs` holds."""
    return [name for name in RUNS if name in runs]


def resume_old() -> dict[str, str]:
    """The final weights and record of an old checkpoint (`make_old_checkpoint`) resumed to 40."""
    with tempfile.TemporaryDirectory() as folder:
        path = make_old_checkpoint(Path(folder) / "run.pt")
        resume_from(path, "stream", Path(folder))
        raw = ckpt.load_raw(path)
        resume = {k: raw["resume"].get(k) for k in RESUME_KEYS}
        return {
            "weights": digest(raw["state_dict"]),
            "record": digest([raw["step"], raw["history"], resume]),
        }


def make_old_checkpoint(path: Path) -> Path:
    """Write at `path` run "tiny" stopped at step 20 of 40 as the trainer before issue 32 wrote
    it (no NEW_RESUME_KEYS; no metrics log beside it)."""
    from charnext.storage.writing import _write  # the checkpoint's own writer, for a raw record

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as folder:
        kind, model, config = RUNS["tiny"]
        out = Path(folder) / "run.pt"
        trainer = new_run(source(kind, Path(folder)), None, TrainConfig(**config), out, **model)
        for event in trainer.run():
            if isinstance(event, StepEvent) and event.step == 20:
                trainer.stop()
        raw = ckpt.load_raw(out)
    for key in NEW_RESUME_KEYS:
        raw["resume"].pop(key, None)
    return _write(path, raw)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="record the fingerprints of this code")
    args = parser.parse_args()
    if args.write:
        REFERENCE.write_text(json.dumps({"machine": machine(), "runs": measure()}, indent=1) + "\n")
        print(f"wrote {REFERENCE}")
        return 0
    recorded = json.loads(REFERENCE.read_text())
    found = measure(recorded_names(recorded["runs"]))
    if recorded["machine"] != machine():
        print(f"note: recorded on {recorded['machine']}, this is {machine()}: fp32 may differ")
    bad = 0
    for name, prints in found.items():
        for key, value in prints.items():
            want = recorded["runs"].get(name, {}).get(key)
            same = want == value
            bad += not same
            print(f"{'same' if same else 'DIFFERENT':9} {name:24} {key:12} {value} {'' if same else want}")
    print("all the same" if not bad else f"{bad} different")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
